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

/* The next number of the global order (see seq.c): an unlocked xadd for
 * the owner of the counter, a locked one while it is shared; 'seq_busy'
 * brackets the read of the owner and the increment. */
static inline uint64_t shim_next_seq(shim_ring_t *r)
{
    for (;;) {
        uint32_t busy = atomic_load_explicit(&r->seq_busy, memory_order_relaxed);
        atomic_store_explicit(&r->seq_busy, busy + 1, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst);
        uintptr_t owner = atomic_load_explicit(&g_shim.seq_owner, memory_order_acquire);
        if (SHIM_LIKELY(owner == (uintptr_t)r)) {
            uint64_t s = shim_xadd((uint64_t *)&g_shim.seq, 1) + 1;
            atomic_store_explicit(&r->seq_busy, busy, memory_order_release);
            return s;
        }
        if (owner == SHIM_SEQ_SHARED || busy) {
            /* Shared; or a signal handler that interrupted this thread
             * taking a number, which can not wait for a move to end. */
            uint64_t s = atomic_fetch_add_explicit(&g_shim.seq, 1, memory_order_relaxed) + 1;
            atomic_store_explicit(&r->seq_busy, busy, memory_order_release);
            if (!busy) {
                r->seq_run = s == r->seq_last + 1 ? r->seq_run + 1 : 0;
                r->seq_last = s;
                if (SHIM_UNLIKELY(r->seq_run >= SHIM_SEQ_PROMOTE_RUN))
                    shim_seq_promote(r);
            }
            return s;
        }
        atomic_store_explicit(&r->seq_busy, busy, memory_order_release);
        shim_seq_settle(r, owner);
    }
}

/* Events reuse the thread's last clock read for this many events, unless
 * the writer has made a pass since (then they read the clock again). */
#define SHIM_CLOCK_REUSE 15u

/* The event's time in ticks. rdtsc costs as much as a malloc here (11 ns
 * in this VM), so small events may carry the time of an earlier event of
 * the same thread: at most SHIM_CLOCK_REUSE events and one writer pass
 * (a few ms) older. 'fresh' events (large blocks, mappings, annotations)
 * always read the clock, and so does the event after one: a program
 * computes between allocating a large block and its next call (a layer
 * fills its output), and that next event, often the free of a large
 * block, carried the allocation's time (an inferred backward pass ended
 * at 56% of the step instead of 60%). */
static inline uint64_t shim_event_ticks(shim_ring_t *r, int fresh)
{
    uint32_t epoch = atomic_load_explicit(&g_shim.clock_epoch, memory_order_relaxed);
    if (fresh || epoch != r->clock_epoch || r->clock_reuse == 0) {
        r->clock_epoch = epoch;
        r->clock_reuse = fresh ? 0 : SHIM_CLOCK_REUSE;
        r->clock_ticks = shim_ticks();
    } else {
        r->clock_reuse--;
    }
    return r->clock_ticks;
}

/* Gives a reserved event its place in the order and its time. */
static inline void shim_event_stamp(shim_ring_t *r, shim_event_t *e, int fresh)
{
    e->seq = shim_next_seq(r);
    e->time = shim_event_ticks(r, fresh);
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
static inline int shim_called_by_libunwind(const void *caller)
{
    uintptr_t c = (uintptr_t)caller;
    return c >= g_shim.unwind_start && c < g_shim.unwind_end;
}

static inline int shim_recording_os(const void *caller)
{
    return atomic_load_explicit(&g_shim.mode, memory_order_relaxed) == SHIM_ACTIVE &&
           shim_guard == SHIM_GUARD_NONE && !shim_called_by_libunwind(caller);
}

static inline shim_ring_t *shim_ring_get(void)
{
    shim_ring_t *r = shim_ring;
    if (SHIM_UNLIKELY(!r))
        r = shim_ring_attach();
    return r;
}

shim_event_t *shim_event_slow(shim_ring_t *r, unsigned n);

/* How many slots ahead of the one being filled a thread claims the ring's
 * cache line for writing. The writer's core read that line one lap of the
 * ring ago, so the thread's first store to it needs the line back from
 * there: a few hundred cycles during which the thread's store buffer fills
 * and the hook stalls (perf: the stalls showed on the next pushes of the
 * hook's prologue). Asking for the line early, with write intent (a plain
 * prefetch would fetch it shared and leave the upgrade to the store),
 * overlaps that with the events in between: the storm under 'mlmem run'
 * 1.19 s -> 0.70 s (docs/benchmarks.md, fourth round). Any distance from
 * 16 to 64 slots measured the same. */
#define SHIM_RING_PREFETCH 32u

static inline void shim_ring_prefetch(shim_ring_t *r, uint64_t slot)
{
    const shim_slot_t *ahead = &r->slots[(slot + SHIM_RING_PREFETCH) & (SHIM_RING_SLOTS - 1)];
#if defined(__x86_64__)
    /* PREFETCHW is not in baseline x86-64: gated on CPUID (init.c). */
    if (SHIM_LIKELY(g_shim.prefetchw))
        __asm__ volatile("prefetchw %0" : : "m"(*ahead));
#else
    __builtin_prefetch(ahead, 1, 3);
#endif
}

/* ---- temporaries folded in the thread (fold.c) --------------------------
 * The owner brackets every change of its fold state with these:
 * 'fold_busy' is set in between. A signal handler that finds it set leaves
 * the state alone (and sends its own events as usual). One that runs
 * between the check and the store finishes its whole change first, and the
 * state is read only after the store. Plain stores, compiler fences only:
 * the storm measured 2.5 ns a pair less than with a generation counter
 * bumped by xadd (docs/benchmarks.md, fifth round). */
static inline int shim_fold_begin(shim_ring_t *r)
{
    if (r->fold_busy)
        return 0;
    r->fold_busy = 1;
    atomic_signal_fence(memory_order_seq_cst);
    return 1;
}

static inline void shim_fold_end(shim_ring_t *r)
{
    atomic_signal_fence(memory_order_seq_cst);
    r->fold_busy = 0;
}

/* Reserves n slots as shim_event_reserve does, without sending what the
 * thread holds and has folded first: for what is not an event of the
 * program (a stack definition, stacks.c). */
static inline shim_event_t *shim_slots_reserve(shim_ring_t *r, unsigned n)
{
    __atomic_store_n(&r->depth, r->depth + 1, __ATOMIC_RELAXED);
    atomic_signal_fence(memory_order_seq_cst);
    uint64_t used = __atomic_load_n(&r->reserve, __ATOMIC_RELAXED) - r->tail_cache;
    if (SHIM_UNLIKELY(used + n > SHIM_RING_SLOTS - SHIM_RING_SLACK || r->dropping))
        return shim_event_slow(r, n);
    uint64_t slot = shim_xadd(&r->reserve, n);
    shim_ring_prefetch(r, slot);
    return &r->slots[slot & (SHIM_RING_SLOTS - 1)].ev;
}

/* Reserves 'n' (1 or 2) consecutive slots in 'r' for one event, or returns
 * NULL when the event must be dropped (counted). On success the caller
 * fills the slot (and with n == 2 sets SHIM_EVI_EXT and fills
 * shim_event_ext(r, e)) and calls shim_event_commit(r). What the thread
 * holds or has folded is sent first: every event keeps its place after
 * them (fold.c). */
static inline shim_event_t *shim_event_reserve(shim_ring_t *r, unsigned n)
{
    if (SHIM_UNLIKELY(r->held.addr | r->folded_count))
        shim_fold_flush(r);
    return shim_slots_reserve(r, n);
}

/* The second slot of an event reserved with n == 2 (it may wrap). */
static inline shim_event_ext_t *shim_event_ext(shim_ring_t *r, shim_event_t *e)
{
    size_t i = (size_t)((shim_slot_t *)e - r->slots);
    return &r->slots[(i + 1) & (SHIM_RING_SLOTS - 1)].ext;
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
        SHIM_HAPPENS_BEFORE(&r->head);
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

/* Whether the thread can hold one more block of 'stack' at 'p', of 'size'
 * bytes (below the stack threshold), without sending anything first: the
 * blocks it holds stay fewer than SHIM_FOLD_HELD and smaller together than
 * the stack threshold (what a peak can miss while another thread frees
 * them: fold.c), and none is at 'p' (a block another thread freed and the
 * allocator handed back: the old one must be sent first). */
static inline int shim_fold_room(const shim_ring_t *r, uintptr_t p, size_t size,
                                 uint32_t stack)
{
    if (!r->held.addr) /* nothing held */
        return r->fold_stack == stack || !r->folded_count;
    if (r->fold_stack != stack || r->held_older_n == SHIM_FOLD_HELD - 1 ||
        r->held_older_bytes + SHIM_HELD_SIZE(&r->held) + size >= g_shim.config.stack_threshold ||
        r->held.addr == p)
        return 0;
    for (uint32_t i = 0; i < r->held_older_n; i++)
        if (r->held_older[i].addr == p)
            return 0;
    return 1;
}

/* Between shim_fold_begin and shim_fold_end, with room (shim_fold_room):
 * holds 'p' as the newest block, with the seq counter as it stands (fold.c:
 * a free sent before the block's ALLOC by another thread took a number
 * after it). The one held before becomes an older one. */
static inline void shim_fold_set_held(shim_ring_t *r, int fn, void *p, size_t size,
                                      uint32_t stack)
{
    if (SHIM_UNLIKELY(r->held.addr)) {
        r->held_older_bytes += SHIM_HELD_SIZE(&r->held);
        r->held_older[r->held_older_n++] = r->held;
        if (r->held_older_bytes + size > r->fold_most)
            r->fold_most = r->held_older_bytes + size;
    }
    r->held.addr = (uintptr_t)p;
    r->held.size_fn = (uint64_t)size | (uint64_t)fn << 56;
    r->held.after = atomic_load_explicit(&g_shim.seq, memory_order_relaxed);
    r->fold_stack = stack;
    r->fold_fresh = 1;
}

/* A small block 'p' of stack 'stack' the thread just made: held instead of
 * sent (what it holds and has folded is sent first when there is no room
 * for it: shim_fold_room), so that a free of it later can fold both into a
 * count. Returns 0 when it must be sent now. */
static inline int shim_fold_hold(shim_ring_t *r, int fn, void *p, size_t size, uint32_t stack)
{
    if (!r->fold_ok || size >= g_shim.config.stack_threshold)
        return 0;
    for (;;) {
        if (!shim_fold_begin(r))
            return 0;
        if (shim_fold_room(r, (uintptr_t)p, size, stack))
            break;
        shim_fold_end(r);
        shim_fold_flush(r);
    }
    shim_fold_set_held(r, fn, p, size, stack);
    shim_fold_end(r);
    return 1;
}

/* shim_fold_free's rest (fold.c): a free of an older held block, or of the
 * newest after the thread freed another. */
int shim_fold_free_nested(shim_ring_t *r, void *p);

/* One more folded pair, of 'size' bytes (between shim_fold_begin and
 * shim_fold_end, as the two below). */
static inline void shim_fold_count(shim_ring_t *r, uint64_t size)
{
    r->folded_count++;
    r->folded_bytes += size;
    if (size > r->folded_largest)
        r->folded_largest = size;
}

/* The newest held block is gone (folded): the one before it, if any, is
 * the newest now, and not the thread's last malloc or free. */
static inline void shim_fold_drop_newest(shim_ring_t *r)
{
    if (SHIM_UNLIKELY(r->held_older_n)) {
        r->held = r->held_older[--r->held_older_n];
        r->held_older_bytes -= SHIM_HELD_SIZE(&r->held);
        r->fold_fresh = 0;
    } else {
        r->held.addr = 0;
    }
}

/* free('p'): if 'p' is a block the thread holds and nobody took a number
 * since it was made, the pair becomes one more folded temporary and
 * nothing is sent. Returns 1 if folded. (Otherwise another thread may have
 * been handed the block and freed it, and the allocator handed the address
 * back: this free is of another block; fold.c.) The common case is done
 * here: the newest block, freed before the thread made or freed another. */
static inline int shim_fold_free(shim_ring_t *r, void *p)
{
    if ((uintptr_t)p != r->held.addr || !r->fold_fresh)
        return r->held.addr && shim_fold_free_nested(r, p);
    if (!shim_fold_begin(r))
        return 0;
    if (SHIM_UNLIKELY((uintptr_t)p != r->held.addr || !r->fold_fresh ||
                      r->held.after !=
                          atomic_load_explicit(&g_shim.seq, memory_order_relaxed))) {
        shim_fold_end(r); /* a signal handler sent it, or numbers taken since */
        return 0;
    }
    shim_fold_count(r, SHIM_HELD_SIZE(&r->held));
    shim_fold_drop_newest(r);
    shim_fold_end(r);
    return 1;
}

/* What the allocation hooks call with a block they made. The commonest case
 * is done here, inline: a small block whose stack the sampler skips, held
 * while the thread holds nothing and has folded only blocks without a
 * stack (the same steps as shim_stack_for and shim_fold_hold, in that
 * order). A block made while others are held is shim_fold_hold's, through
 * shim_record_alloc; so is everything else, and every block under
 * --stacks=all: there the countdown stays 0. */
static inline void shim_alloc_made(int fn, void *p, size_t size)
{
    shim_ring_t *r = shim_ring;
    if (SHIM_LIKELY(r != NULL) && r->fold_ok && size < g_shim.config.stack_threshold &&
        r->sample_countdown > (int64_t)size && !r->held.addr &&
        r->fold_stack == MLMEM_STACK_NONE && shim_fold_begin(r)) {
        if (SHIM_LIKELY(!r->held.addr && r->fold_stack == MLMEM_STACK_NONE)) {
            r->sample_countdown -= (int64_t)size;
            shim_fold_set_held(r, fn, p, size, MLMEM_STACK_NONE);
            shim_fold_end(r);
            return;
        }
        shim_fold_end(r); /* a signal handler held a block meanwhile */
    }
    shim_record_alloc(fn, p, size);
}

#endif /* SHIM_RECORD_H */
