/* Allocation at the bottom of a deep recursion: descend(n) recurses 10000
 * frames deep (argv[1] overrides), allocates 4242 bytes every 1000 levels
 * on the way down (kept) and 12345 bytes at the bottom (kept), then frees
 * nothing. Leaks: 10 * 4242 + 12345 = 54765 bytes in 11 blocks. */
#include <stdlib.h>
#include <string.h>

static void *blocks[64];
static int nblocks;

__attribute__((noinline)) static int descend(int n)
{
    volatile char pad[32];
    pad[0] = (char)n;
    if (n > 0 && n % 1000 == 0) {
        blocks[nblocks] = malloc(4242);
        memset(blocks[nblocks++], 1, 4242);
    }
    if (n == 0) {
        blocks[nblocks] = malloc(12345);
        memset(blocks[nblocks++], 2, 12345);
        return pad[0];
    }
    return descend(n - 1) + pad[0];
}

int main(int argc, char **argv)
{
    int depth = argc > 1 ? atoi(argv[1]) : 10000;
    descend(depth);
    return nblocks == depth / 1000 + 1 ? 0 : 1;
}
