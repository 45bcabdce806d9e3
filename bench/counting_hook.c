/*
 * counting_hook.c - the floor of issue 6: an LD_PRELOAD library whose malloc
 * and free only count, per thread, and call glibc's. What any interposing
 * profiler pays before it records anything (the hooks' calls, a thread-local
 * access); mlmem's default mode is compared with it in docs/benchmarks.md.
 *
 *   LD_PRELOAD=build/bench/libcounting_hook.so build/bench/alloc_storm 400 1
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *p);

static __thread uint64_t allocations, frees;

void *malloc(size_t size)
{
    allocations++;
    return __libc_malloc(size);
}

void free(void *p)
{
    frees++;
    __libc_free(p);
}
