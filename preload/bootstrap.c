/*
 * bootstrap.c - finding the real allocator, and memory for the moments
 * before we have it.
 *
 * dlsym() may itself call calloc/malloc before the real functions are known;
 * those requests are served from a static pool (like heaptrack does) and
 * never reach the real free. The shim's own large structures (rings, the
 * stack table) come from raw mmap syscalls so they never pass through the
 * hooks and never count as the program's memory, inside one region the
 * shim reserves before the program starts (see shim_os_region_init).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

_Alignas(64) unsigned char shim_pool[SHIM_POOL_SIZE];
static _Atomic size_t pool_used;

/* Each pool block is preceded by 16 bytes holding its size, so a realloc of
 * a pool block knows how much to copy. */
void *shim_pool_alloc(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    uintptr_t base = (uintptr_t)shim_pool;
    size_t old = atomic_load(&pool_used), start;
    do {
        /* Align the address, not the offset: the pool is only 64-aligned. */
        start = (size_t)(((base + old + 16 + align - 1) & ~(uintptr_t)(align - 1)) - base);
        if (size > SHIM_POOL_SIZE || start + size > SHIM_POOL_SIZE)
            return NULL;
    } while (!atomic_compare_exchange_weak(&pool_used, &old, start + size));
    memcpy(shim_pool + start - 16, &size, sizeof size);
    return shim_pool + start; /* static storage is zeroed: calloc is satisfied */
}

size_t shim_pool_size(const void *p)
{
    size_t size;
    memcpy(&size, (const unsigned char *)p - 16, sizeof size);
    return size;
}

/* The shim's own mappings (rings, the stack table, the stack walker's rule
 * table, and libunwind's memory: hooks_os.c) are cut from one region of
 * address space reserved before the program's main. Placed by the kernel
 * instead, a mapping made while the program runs can land in a hole the
 * program made inside a range of its own (mmap 10 pages, munmap 3 in the
 * middle), and the program's munmap of its whole range then takes it away:
 * a test program did exactly that, and the writer thread crashed in
 * libunwind one run in 20. Pieces are never reused: freed, they go back to
 * reserved address space. When the region is used up (some 200 threads'
 * rings), or the program runs under an address-space limit (RLIMIT_AS: the
 * reservation would count against it), mappings come from anywhere, as
 * before. */
#define OWN_REGION_SIZE ((size_t)64 << 20)
#define OWN_REGION_ALIGN ((size_t)2 << 20) /* huge pages for the stack table */

static uintptr_t own_start, own_end;
static _Atomic uintptr_t own_next;

static void *raw_mmap(void *addr, size_t size, int prot, int flags)
{
    long r = syscall(SYS_mmap, addr, size, prot, flags, -1, 0);
    if (r < 0 && r > -4096)
        return NULL;
    return (void *)r;
}

void shim_os_region_init(void)
{
    struct rlimit as;
    if (own_start || getrlimit(RLIMIT_AS, &as) != 0 || as.rlim_cur != RLIM_INFINITY)
        return;
    uint8_t *p = raw_mmap(NULL, OWN_REGION_SIZE + OWN_REGION_ALIGN, PROT_NONE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    if (!p)
        return; /* everything then maps anywhere */
    uintptr_t start = ((uintptr_t)p + OWN_REGION_ALIGN - 1) & ~(uintptr_t)(OWN_REGION_ALIGN - 1);
    own_start = own_next = start;
    own_end = start + OWN_REGION_SIZE;
}

int shim_os_owns(const void *p, size_t size)
{
    uintptr_t a = (uintptr_t)p;
    return own_start && a >= own_start && a < own_end && size <= own_end - a;
}

void *shim_os_mmap(size_t size)
{
    size_t page = (size_t)getpagesize();
    size = (size + page - 1) & ~(page - 1);
    uintptr_t at = atomic_fetch_add(&own_next, size);
    if (own_start && at < own_end && size <= own_end - at) {
        void *p = raw_mmap((void *)at, size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED);
        if (p)
            return p;
    }
    return raw_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
}

void shim_os_munmap(void *p, size_t size)
{
    if (shim_os_owns(p, size))
        raw_mmap(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED);
    else
        syscall(SYS_munmap, p, size);
}

#define RESOLVE(field, name)                                   \
    do {                                                       \
        void *sym = dlsym(RTLD_NEXT, name);                    \
        memcpy(&g_shim.real.field, &sym, sizeof sym);          \
    } while (0)

/* Resolves every real function once. Calls made meanwhile (from dlsym
 * itself) see NULL pointers and use the pool. */
void shim_resolve_real(void)
{
    static _Atomic int done;
    if (atomic_load(&done))
        return;
    int saved = shim_guard;
    shim_guard = SHIM_GUARD_PASS;
    shim_real_t r;
    memset(&r, 0, sizeof r);
    /* Resolve into g_shim.real field by field; malloc last, since its being
     * non-NULL is what tells the hooks that bootstrap is over. */
    RESOLVE(free, "free");
    RESOLVE(calloc, "calloc");
    RESOLVE(realloc, "realloc");
    RESOLVE(reallocarray, "reallocarray");
    RESOLVE(posix_memalign, "posix_memalign");
    RESOLVE(aligned_alloc, "aligned_alloc");
    RESOLVE(memalign, "memalign");
    RESOLVE(valloc, "valloc");
    RESOLVE(pvalloc, "pvalloc");
    RESOLVE(mmap, "mmap");
    RESOLVE(mmap64, "mmap64");
    RESOLVE(munmap, "munmap");
    RESOLVE(mremap, "mremap");
    RESOLVE(dlopen, "dlopen");
    RESOLVE(dlclose, "dlclose");
    RESOLVE(fork, "fork");
    RESOLVE(exit, "exit");
    RESOLVE(underscore_exit, "_exit");
    RESOLVE(abort, "abort");
    RESOLVE(read, "read");
    RESOLVE(pread, "pread");
    RESOLVE(pread64, "pread64");
    RESOLVE(fread, "fread");
    RESOLVE(pipe2, "pipe2");
    RESOLVE(malloc, "malloc");
    (void)r;
    shim_guard = saved;
    atomic_store(&done, 1);
}
