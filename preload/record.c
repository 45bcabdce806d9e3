/*
 * record.c - the slow half of the hot path: full rings, sampling decisions,
 * and the recording helpers the hooks share.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <math.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "record.h"

uint64_t shim_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t ring_used(shim_ring_t *r)
{
    r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
    SHIM_HAPPENS_AFTER(&r->tail);
    return __atomic_load_n(&r->reserve, __ATOMIC_RELAXED) - r->tail_cache;
}

/* Sleeps until the writer has drained this ring (it bumps 'tail_futex'
 * after moving 'tail' and wakes a thread that said it waits), or 2 ms.
 * Sleeping rather than yielding in a loop leaves the core to the writer and
 * the analyzer, which are what the thread is waiting for. The waiting flag
 * and the writer's tail are a store-then-load pair on each side (seq_cst):
 * either the writer sees the flag, or this thread sees the new tail. */
static void ring_wait_for_space(shim_ring_t *r)
{
    uint32_t gen = atomic_load(&r->tail_futex);
    atomic_store(&r->space_waiting, 1);
    uint64_t tail = atomic_load(&r->tail);
    if (tail == r->tail_cache) {
        struct timespec ts = {0, 2000000};
        syscall(SYS_futex, &r->tail_futex, FUTEX_WAIT_PRIVATE, gen, &ts, NULL, 0);
    }
    atomic_store_explicit(&r->space_waiting, 0, memory_order_relaxed);
}

/* A ring is (nearly) full, or its thread is dropping. Policy (documented in
 * docs/shim.md): wake the writer and sleep for room as long as the analyzer
 * reads (the writer's bytes sent move); once it has read nothing for
 * block_ms, drop this event and every further one until the ring is half
 * empty, so a stalled analyzer costs the program at most one wait while a
 * slow one (a busy machine) slows the program down instead of losing
 * events. Events of a signal handler never wait: they may use the slack,
 * else drop. */
static shim_event_t *event_slow(shim_ring_t *r, unsigned n)
{
    uint64_t used = ring_used(r);
    int nested = r->depth > 1;

    if (r->dropping) {
        if (used < SHIM_RING_SLOTS / 2)
            r->dropping = 0;
        else
            goto drop;
    }
    if (used + n <= SHIM_RING_SLOTS - SHIM_RING_SLACK || (nested && used + n <= SHIM_RING_SLOTS))
        goto take;
    if (nested)
        goto drop;

    shim_writer_wake();
    uint64_t block_ns = (uint64_t)g_shim.config.block_ms * 1000000ull;
    uint64_t deadline = shim_now() + block_ns;
    uint64_t sent = atomic_load_explicit(&g_shim.bytes_sent, memory_order_relaxed);
    for (;;) {
        ring_wait_for_space(r);
        used = ring_used(r);
        if (used + n <= SHIM_RING_SLOTS - SHIM_RING_SLACK)
            goto take;
        if (atomic_load_explicit(&g_shim.mode, memory_order_relaxed) != SHIM_ACTIVE)
            break;
        uint64_t now = shim_now(), s = atomic_load_explicit(&g_shim.bytes_sent,
                                                             memory_order_relaxed);
        if (s != sent) { /* the analyzer read something: it is slow, not stalled */
            sent = s;
            deadline = now + block_ns;
        } else if (now >= deadline) {
            break;
        }
    }
    r->dropping = 1;
drop:
    r->dropped++;
    shim_event_cancel(r);
    return NULL;
take: {
        uint64_t slot = shim_xadd(&r->reserve, n);
        return &r->slots[slot & (SHIM_RING_SLOTS - 1)].ev;
    }
}

/* The program's errno survives: the wait makes system calls (futex waits
 * time out), and a successful malloc or free must leave errno as it was. */
shim_event_t *shim_event_slow(shim_ring_t *r, unsigned n)
{
    int saved_errno = errno;
    shim_event_t *ev = event_slow(r, n);
    errno = saved_errno;
    return ev;
}

/* Draws the bytes until the next sampled allocation: exponential with mean
 * sample_rate, so every byte has the same chance 1/rate of being sampled
 * and an allocation of s bytes is sampled with probability 1 - exp(-s/rate).
 * That is what makes the sample unbiased (docs/shim.md, "Sampling"). */
static int64_t next_sample_gap(shim_ring_t *r)
{
    /* xorshift64*: per-thread, no locks, good enough for sampling. */
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    double u = (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
    if (u <= 0.0)
        u = 1e-300;
    double gap = -log(u) * (double)g_shim.config.sample_rate;
    return gap < 1.0 ? 1 : (int64_t)gap;
}

uint32_t shim_stack_for(shim_ring_t *r, uint64_t size, int force)
{
    if (!force && g_shim.config.stack_mode != MLMEM_STACKS_ALL &&
        size < g_shim.config.stack_threshold) {
        if (r->sample_countdown == 0)
            r->sample_countdown = next_sample_gap(r);
        r->sample_countdown -= (int64_t)size;
        if (r->sample_countdown > 0)
            return MLMEM_STACK_NONE;
        r->sample_countdown = next_sample_gap(r);
    }
    if (shim_guard == SHIM_GUARD_UNWIND)
        return MLMEM_STACK_NONE; /* a signal handler interrupted libunwind */
    return shim_stack_capture(r);
}

/* The common event, one slot; a stack id or a huge size take a second. */
void shim_record_alloc(int fn, void *p, size_t size)
{
    shim_ring_t *r = shim_ring_get();
    if (!r)
        return;
    uint32_t stack = shim_stack_for(r, size, 0);
    if (shim_fold_hold(r, fn, p, size, stack))
        return;
    unsigned n = stack != MLMEM_STACK_NONE || size > SHIM_EVI_SIZE_MASK ? 2 : 1;
    shim_event_t *e = shim_event_reserve(r, n);
    if (!e)
        return;
    shim_event_stamp(r, e, size >= g_shim.config.stack_threshold);
    e->addr = (uintptr_t)p;
    if (n == 1) {
        e->info = SHIM_EVI(MLMEM_EV_ALLOC, fn, size);
    } else {
        e->info = SHIM_EVI(MLMEM_EV_ALLOC, fn, size) | SHIM_EVI_EXT;
        shim_event_ext_t *x = shim_event_ext(r, e);
        x->size = size;
        x->old_addr = 0;
        x->arg = 0;
        x->stack_id = stack;
    }
    shim_event_commit(r);
    if (SHIM_UNLIKELY(r->fold_from_next)) { /* its first: folding starts */
        r->fold_from_next = 0;
        r->fold_ok = 1;
    }
}

/* Records an event that is not a heap allocation (mappings, annotations),
 * always in two slots: they are rare. 'want_stack' asks for a stack
 * regardless of size. */
void shim_record_simple(int type, uint64_t addr, uint64_t size, uint64_t arg, int want_stack)
{
    shim_ring_t *r = shim_ring_get();
    if (!r)
        return;
    uint32_t stack = want_stack ? shim_stack_for(r, size, 1) : MLMEM_STACK_NONE;
    shim_event_t *e = shim_event_reserve(r, 2);
    if (!e)
        return;
    shim_event_stamp(r, e, 1);
    e->addr = addr;
    e->info = SHIM_EVI(type, 0, size) | SHIM_EVI_EXT;
    shim_event_ext_t *x = shim_event_ext(r, e);
    x->size = size;
    x->old_addr = 0;
    x->arg = arg;
    x->stack_id = stack;
    shim_event_commit(r);
}
