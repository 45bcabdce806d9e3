/* Anonymous mappings, a partial munmap, mremap, and a file mapping.
 * Live mapped bytes: 40960; 28672 after cutting 3 pages from the middle;
 * 45056 with b; 61440 after growing b to 8 pages (the peak); then 0. The
 * file mapping (4096 bytes) is counted apart. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096

int main(void)
{
    char *a = mmap(NULL, 10 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        return 1;
    a[0] = 1;
    if (munmap(a + 2 * PAGE, 3 * PAGE) != 0)
        return 1;
    char *b = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        return 1;
    char *b2 = mremap(b, 4 * PAGE, 8 * PAGE, MREMAP_MAYMOVE);
    if (b2 == MAP_FAILED)
        return 1;
    b2[7 * PAGE] = 1;
    munmap(b2, 8 * PAGE);
    munmap(a, 10 * PAGE); /* covers both pieces and the hole between */

    int fd = open("/proc/self/exe", O_RDONLY);
    char *f = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f == MAP_FAILED)
        return 1;
    volatile char c = f[0];
    (void)c;
    munmap(f, PAGE);
    close(fd);
    return 0;
}
