/* Every aligned allocator once: 1000 + 8192 + 300 + 5000 + 100 = 14592
 * bytes requested, all live at once (the peak), all freed. Exits 1 if an
 * allocator returned a misaligned block. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

static int misaligned(void *p, uintptr_t a)
{
    return !p || ((uintptr_t)p & (a - 1)) != 0;
}

int main(void)
{
    void *a = NULL;
    if (posix_memalign(&a, 64, 1000) != 0 || misaligned(a, 64))
        return 1;
    void *b = aligned_alloc(4096, 8192);
    void *c = memalign(128, 300);
    void *d = valloc(5000);
    void *e = pvalloc(100);
    if (misaligned(b, 4096) || misaligned(c, 128) || misaligned(d, 4096) || misaligned(e, 4096))
        return 1;
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    return 0;
}
