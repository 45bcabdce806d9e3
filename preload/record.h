/*
 * record.h - the hot path, inline: find this thread's ring, reserve a slot,
 * fill it, publish it. Used by every hook.
 *
 * Signal safety. A signal handler may interrupt a hook anywhere and allocate
 * (and so record) itself. Reservation is one non-locked xadd, atomic against
 * a handler on the same thread; 'depth' counts events in progress on this
 * thread, and only the outermost publishes 'head', after re-reading
 * 'reserve' so that events a handler wrote meanwhile are published with it
 * and 'head' never moves backwards (see shim_event_commit).
 */
#ifndef SHIM_RECORD_H
#define SHIM_RECORD_H

#include "shim.h"

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

/* Slots kept free for events of signal handlers that interrupt a hook. */
#define SHIM_RING_SLACK 256u

static inline uint64_t shim_ticks(void)
{
#if defined(__x86_64__)
    return __rdtsc();
#else
    return shim_now();
#endif
}

static inline uint64_t shim_next_seq(void)
{
    return atomic_fetch_add_explicit(&g_shim.seq, 1, memory_order_relaxed) + 1;
}

/* Non-zero when this call should be recorded: the shim is active and we are
 * not inside the real allocator or our own internals. */
static inline int shim_recording(void)
{
    return atomic_load_explicit(&g_shim.mode, memory_order_relaxed) == SHIM_ACTIVE &&
           shim_guard != SHIM_GUARD_PASS;
}

/* For mmap, munmap and mremap called from 'caller': libunwind's are its
 * own memory pools, made while unwinding or freed by its thread-exit
 * destructor; only the program's are recorded. */
static inline int shim_recording_os(const void *caller)
{
    uintptr_t c = (uintptr_t)caller;
    return atomic_load_explicit(&g_shim.mode, memory_order_relaxed) == SHIM_ACTIVE &&
           shim_guard == SHIM_GUARD_NONE &&
           !(c >= g_shim.unwind_start && c < g_shim.unwind_end);
}

static inline shim_ring_t *shim_ring_get(void)
{
    shim_ring_t *r = shim_ring;
    if (SHIM_UNLIKELY(!r))
        r = shim_ring_attach();
    return r;
}

static inline uint64_t shim_xadd(uint64_t *p, uint64_t v)
{
#if defined(__x86_64__)
    /* No lock prefix: atomic against signals on this thread, which is all
     * a single-producer ring needs, and far cheaper than a locked xadd. */
    __asm__ volatile("xaddq %0, %1" : "+r"(v), "+m"(*p) : : "memory");
    return v;
#else
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
#endif
}

shim_event_t *shim_event_slow(shim_ring_t *r);

/* Reserves a slot in 'r', or returns NULL when the event must be dropped
 * (counted). On success the caller fills the slot and calls
 * shim_event_commit(r). */
static inline shim_event_t *shim_event_reserve(shim_ring_t *r)
{
    __atomic_store_n(&r->depth, r->depth + 1, __ATOMIC_RELAXED);
    atomic_signal_fence(memory_order_seq_cst);
    uint64_t used = __atomic_load_n(&r->reserve, __ATOMIC_RELAXED) - r->tail_cache;
    if (SHIM_UNLIKELY(used >= SHIM_RING_SLOTS - SHIM_RING_SLACK || r->dropping))
        return shim_event_slow(r);
    uint64_t slot = shim_xadd(&r->reserve, 1);
    return &r->slots[slot & (SHIM_RING_SLOTS - 1)];
}

/* Abandons a reservation that got no slot (after shim_event_slow said NULL). */
static inline void shim_event_cancel(shim_ring_t *r)
{
    atomic_signal_fence(memory_order_seq_cst);
    __atomic_store_n(&r->depth, r->depth - 1, __ATOMIC_RELAXED);
}

static inline void shim_event_commit(shim_ring_t *r)
{
    atomic_signal_fence(memory_order_seq_cst);
    if (r->depth > 1) {
        __atomic_store_n(&r->depth, r->depth - 1, __ATOMIC_RELAXED);
        return;
    }
    for (;;) {
        uint64_t h = __atomic_load_n(&r->reserve, __ATOMIC_RELAXED);
        atomic_store_explicit(&r->head, h, memory_order_release);
        atomic_signal_fence(memory_order_seq_cst);
        __atomic_store_n(&r->depth, 0, __ATOMIC_RELAXED);
        atomic_signal_fence(memory_order_seq_cst);
        if (SHIM_LIKELY(__atomic_load_n(&r->reserve, __ATOMIC_RELAXED) == h))
            return;
        __atomic_store_n(&r->depth, 1, __ATOMIC_RELAXED);
        atomic_signal_fence(memory_order_seq_cst);
    }
}

#endif /* SHIM_RECORD_H */
