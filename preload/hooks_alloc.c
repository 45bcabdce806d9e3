/*
 * hooks_alloc.c - the malloc family. Each hook only forwards to the real
 * function and hands the result to the recorder (record.c): allocations are
 * recorded after they succeed, releases before the block is given back, so
 * no other thread can be handed the address before its free is ordered.
 * Calls made while bootstrapping (dlsym's own calloc) are served from a
 * static pool; blocks from the pool are never passed to the real free.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "record.h"

/* Calls the real function with the guard up, so that whatever the real
 * allocator calls (mmap, in a custom allocator) is not recorded twice. */
#define REAL_CALL(result, call)                \
    do {                                       \
        int saved_guard_ = shim_guard;         \
        shim_guard = SHIM_GUARD_PASS;          \
        result = g_shim.real.call;             \
        shim_guard = saved_guard_;             \
    } while (0)

static void *pool_or_null(size_t size, size_t align)
{
    void *p = shim_pool_alloc(size, align);
    if (!p)
        errno = ENOMEM;
    return p;
}

SHIM_EXPORT void *malloc(size_t size)
{
    if (SHIM_UNLIKELY(!g_shim.real.malloc)) {
        shim_resolve_real();
        if (!g_shim.real.malloc)
            return pool_or_null(size, 16);
    }
    if (!shim_recording())
        return g_shim.real.malloc(size);
    void *p;
    REAL_CALL(p, malloc(size));
    if (p)
        shim_alloc_made(MLMEM_FN_MALLOC, p, size);
    return p;
}

SHIM_EXPORT void *calloc(size_t n, size_t size)
{
    if (SHIM_UNLIKELY(!g_shim.real.calloc)) {
        shim_resolve_real();
        if (!g_shim.real.calloc) {
            size_t total;
            if (__builtin_mul_overflow(n, size, &total)) {
                errno = ENOMEM;
                return NULL;
            }
            return pool_or_null(total, 16);
        }
    }
    if (!shim_recording())
        return g_shim.real.calloc(n, size);
    void *p;
    REAL_CALL(p, calloc(n, size));
    if (p)
        shim_alloc_made(MLMEM_FN_CALLOC, p, n * size);
    return p;
}

/* realloc and reallocarray: the seq is taken before the real call, so the
 * old block's release is ordered before anyone can be handed its address. */
static void *realloc_common(void *old, size_t size, int fn, void *(*call)(void *, size_t, size_t),
                            size_t n, size_t elem)
{
    if (old && shim_pool_owns(old)) {
        /* A pool block (from bootstrap) is moved to the real heap. */
        void *p = malloc(size);
        if (p) {
            size_t keep = shim_pool_size(old);
            memcpy(p, old, keep < size ? keep : size);
        }
        return p;
    }
    if (!shim_recording()) {
        return call(old, n, elem);
    }
    shim_ring_t *r = shim_ring_get();
    if (!r)
        return call(old, n, elem);
    /* The stack first: one defined while the event is in progress would
     * wait for it (stacks.c). A failed realloc leaves it unused. */
    uint32_t stack = shim_stack_for(r, size, 0);
    shim_event_t *e = shim_event_reserve(r, 2);
    if (!e)
        return call(old, n, elem);
    shim_event_stamp(r, e, size >= g_shim.config.stack_threshold);
    void *p;
    int saved = shim_guard;
    shim_guard = SHIM_GUARD_PASS;
    p = call(old, n, elem);
    shim_guard = saved;
    shim_event_ext_t *x = shim_event_ext(r, e);
    x->arg = 0;
    if (p) {
        e->info = SHIM_EVI(MLMEM_EV_REALLOC, fn, size) | SHIM_EVI_EXT;
        e->addr = (uintptr_t)p;
        x->size = size;
        x->old_addr = (uintptr_t)old;
        x->stack_id = stack;
    } else {
        /* glibc: realloc(p, 0) frees p; otherwise it failed and the old
         * block is untouched. */
        int type = old && size == 0 ? MLMEM_EV_FREE : MLMEM_EV_NOP;
        e->info = SHIM_EVI(type, 0, 0) | SHIM_EVI_EXT;
        e->addr = (uintptr_t)old;
        x->size = 0;
        x->old_addr = 0;
        x->stack_id = 0;
    }
    shim_event_commit(r);
    return p;
}

static void *call_realloc(void *old, size_t n, size_t elem)
{
    (void)elem;
    return g_shim.real.realloc(old, n);
}

static void *call_reallocarray(void *old, size_t n, size_t elem)
{
    return g_shim.real.reallocarray(old, n, elem);
}

SHIM_EXPORT void *realloc(void *old, size_t size)
{
    if (SHIM_UNLIKELY(!g_shim.real.realloc)) {
        shim_resolve_real();
        if (!g_shim.real.realloc)
            return pool_or_null(size, 16); /* bootstrap never reallocs in practice */
    }
    return realloc_common(old, size, MLMEM_FN_REALLOC, call_realloc, size, 0);
}

SHIM_EXPORT void *reallocarray(void *old, size_t n, size_t elem)
{
    size_t total;
    if (__builtin_mul_overflow(n, elem, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (SHIM_UNLIKELY(!g_shim.real.reallocarray))
        shim_resolve_real();
    return realloc_common(old, total, MLMEM_FN_REALLOCARRAY, call_reallocarray, n, elem);
}

SHIM_EXPORT void free(void *p)
{
    if (!p || SHIM_UNLIKELY(shim_pool_owns(p)))
        return;
    if (SHIM_UNLIKELY(!g_shim.real.free)) {
        shim_resolve_real();
        if (!g_shim.real.free)
            return; /* cannot happen after bootstrap; leak rather than crash */
    }
    if (!shim_recording()) {
        g_shim.real.free(p);
        return;
    }
    shim_ring_t *r = shim_ring_get();
    if (r && shim_fold_free(r, p)) { /* a temporary: counted, not sent */
        int saved = shim_guard;
        shim_guard = SHIM_GUARD_PASS;
        g_shim.real.free(p);
        shim_guard = saved;
        return;
    }
    shim_event_t *e = r ? shim_event_reserve(r, 1) : NULL;
    if (e) {
        shim_event_stamp(r, e, 0);
        e->addr = (uintptr_t)p;
        e->info = SHIM_EVI(MLMEM_EV_FREE, 0, 0);
    }
    int saved = shim_guard;
    shim_guard = SHIM_GUARD_PASS;
    g_shim.real.free(p);
    shim_guard = saved;
    if (e)
        shim_event_commit(r);
}

SHIM_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    if (SHIM_UNLIKELY(!g_shim.real.posix_memalign)) {
        shim_resolve_real();
        if (!g_shim.real.posix_memalign) {
            void *p = shim_pool_alloc(size, align);
            if (!p)
                return ENOMEM;
            *out = p;
            return 0;
        }
    }
    if (!shim_recording())
        return g_shim.real.posix_memalign(out, align, size);
    int rc;
    REAL_CALL(rc, posix_memalign(out, align, size));
    if (rc == 0 && *out)
        shim_alloc_made(MLMEM_FN_POSIX_MEMALIGN, *out, size);
    return rc;
}

/* The remaining aligned allocators share one shape. */
#define ALIGNED_HOOK(name, fn_id, params, args, size_expr)             \
    SHIM_EXPORT void *name params                                      \
    {                                                                  \
        if (SHIM_UNLIKELY(!g_shim.real.name)) {                        \
            shim_resolve_real();                                       \
            if (!g_shim.real.name) {                                   \
                errno = ENOMEM;                                        \
                return NULL;                                           \
            }                                                          \
        }                                                              \
        if (!shim_recording())                                         \
            return g_shim.real.name args;                              \
        void *p;                                                       \
        REAL_CALL(p, name args);                                       \
        if (p)                                                         \
            shim_alloc_made(fn_id, p, size_expr);                      \
        return p;                                                      \
    }

ALIGNED_HOOK(aligned_alloc, MLMEM_FN_ALIGNED_ALLOC, (size_t align, size_t size), (align, size), size)
ALIGNED_HOOK(memalign, MLMEM_FN_MEMALIGN, (size_t align, size_t size), (align, size), size)
ALIGNED_HOOK(valloc, MLMEM_FN_VALLOC, (size_t size), (size), size)
ALIGNED_HOOK(pvalloc, MLMEM_FN_PVALLOC, (size_t size), (size), size)
