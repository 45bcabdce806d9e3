/* A program with an allocator of its own (jemalloc or tcmalloc, linked or
 * preloaded: the build makes e2e_ownalloc_je, e2e_ownalloc_tc and the
 * unlinked e2e_ownalloc). Each block has a size of its own, so the report
 * tells which calls mlmem saw:
 *   100001 malloc, kept          100005 new[] / delete[]
 *   100002 calloc, freed         100006 operator new, kept
 *   100003 realloc of a malloc(1000), freed
 *   100004 posix_memalign, freed
 *   100007 the allocator's own API (mallocx, tc_malloc), kept
 *   100008 the allocator's own API, then free()
 * The own API is declared weak (no dlsym, which allocates for its error
 * message), so one source serves every build.
 * Exit code: 10 jemalloc, 11 tcmalloc, 12 neither (glibc); 1 on error. */
#include <stdlib.h>
#include <string.h>
#include <new>

extern "C" void *mallocx(size_t size, int flags) __attribute__((weak));
extern "C" void *tc_malloc(size_t size) __attribute__((weak));

static void touch(void *p, size_t n)
{
    if (!p)
        exit(1);
    memset(p, 1, n);
}

int main()
{
    int kind = 12;
    if (mallocx)
        kind = 10;
    else if (tc_malloc)
        kind = 11;

    void *kept = malloc(100001);
    touch(kept, 100001);
    void *c = calloc(1, 100002);
    touch(c, 100002);
    free(c);
    void *r = malloc(1000);
    touch(r, 1000);
    r = realloc(r, 100003);
    touch(r, 100003);
    free(r);
    void *a = nullptr;
    if (posix_memalign(&a, 64, 100004) != 0)
        return 1;
    touch(a, 100004);
    free(a);

    char *arr = new char[100005];
    touch(arr, 100005);
    delete[] arr;
    void *n = operator new(100006);
    touch(n, 100006);

    if (kind == 10) {
        touch(mallocx(100007, 0), 100007);
        void *x = mallocx(100008, 0);
        touch(x, 100008);
        free(x);
    } else if (kind == 11) {
        touch(tc_malloc(100007), 100007);
        void *x = tc_malloc(100008);
        touch(x, 100008);
        free(x);
    }
    return kind;
}
