/*
 * fold.c - temporaries counted in the thread instead of sent.
 *
 * The commonest allocation there is, a small block freed by the thread that
 * made it soon after, before it does anything of note, cost two events
 * through the ring, the writer and the analyzer: on an allocation-bound
 * program most of mlmem's time. A thread now holds the small blocks it
 * makes, up to SHIM_FOLD_HELD of them and together below the stack
 * threshold, instead of sending them (the newest apart from the older
 * ones: the allocation storm's hooks touch only it); a free of one it
 * holds makes the pair one more "folded temporary" (a count, their bytes
 * and the largest), and nothing is sent. The held and folded blocks share
 * one stack: none (unsampled), or under --stacks=all the same call site in
 * a loop; a block of another stack sends them first. Anything else the
 * thread sends first sends what it folded (one TEMPORARIES event, with
 * their stack) and then the blocks it holds (ALLOCs, oldest first), so
 * each event keeps its place in the thread's order and the analyzer's
 * figures stay exact (docs/shim.md, "Folded temporaries"):
 *  - the peak: the live bytes rose, between the thread's two events, by
 *    the most bytes it held at once, which TEMPORARIES carries ('most');
 *  - temporaries: the analyzer calls a block temporary when its thread
 *    frees it before making or freeing anything else; a folded pair that
 *    is not (the thread made or freed another block in between: the outer
 *    call's block) is counted 'nested';
 *  - the thread's latest allocation: when the newest held block is not
 *    the last thing the thread made or freed, its ALLOC says so
 *    (MLMEM_FN_NOT_LATEST), so that a realloc of it next is not taken for
 *    the free of a temporary.
 *
 * A held block's ALLOC takes its number when it is sent, later than the
 * malloc. If another thread was handed the block meanwhile and freed it,
 * that FREE came first in the order. So each held block remembers the seq
 * counter as it was made ('after'); when other numbers were taken between
 * that and its own, it travels as ALLOC_LATE with that value, and the
 * analyzer pairs it with a FREE of the same address it saw in between
 * (profiler/accounting.c). The allocator may then hand that address back,
 * to this thread (holding it a second time sends the first) or to another
 * that hands it over: so a free of an address the thread holds folds only
 * if nobody took a number since the block was made (a free of the block
 * by another thread takes one), else it is sent. A thread that blocks
 * keeps its held blocks and counts until its next event, its exit, or the
 * final drain, where the writer reads them (shim_fold_peek).
 */
#include <string.h>

#include "record.h"

/* The slots carry TEMPORARIES' five figures: count, bytes and the largest
 * in the second slot, the most held at once in the first slot's address,
 * and the nested ones in its size bits (below 2^48: shim_fold_free_nested
 * folds no more). */
void shim_fold_temporaries_event(shim_event_t *e, shim_event_ext_t *x,
                                 const shim_fold_state_t *f)
{
    e->addr = f->most;
    e->info = SHIM_EVI(MLMEM_EV_TEMPORARIES, 0, f->nested) | SHIM_EVI_EXT;
    x->size = f->bytes;
    x->old_addr = f->largest;
    x->arg = f->count;
    x->stack_id = f->stack;
}

/* The number decides the type: an ALLOC if nobody took a number since the
 * malloc, else an ALLOC_LATE carrying the counter of then. */
void shim_fold_held_event(shim_event_t *e, shim_event_ext_t *x, const shim_fold_state_t *f,
                          unsigned i)
{
    const shim_held_t *h = &f->held[i];
    int type = e->seq == h->after + 1 ? MLMEM_EV_ALLOC : MLMEM_EV_ALLOC_LATE;
    unsigned fn = SHIM_HELD_FN(h);
    if (i == f->held_n - 1 && !f->fresh)
        fn |= MLMEM_FN_NOT_LATEST;
    uint64_t size = SHIM_HELD_SIZE(h);
    e->addr = h->addr;
    e->info = SHIM_EVI(type, fn, size) | SHIM_EVI_EXT;
    x->size = size;
    x->old_addr = 0;
    x->arg = h->after;
    x->stack_id = f->stack;
}

/* A free of an older held block, or of the newest after the thread freed
 * another (record.h's shim_fold_free does the common case). */
int shim_fold_free_nested(shim_ring_t *r, void *p)
{
    if (!shim_fold_begin(r))
        return 0;
    uintptr_t a = (uintptr_t)p;
    uint32_t n = r->held_older_n, i = n;
    if (a != r->held.addr)
        while (i-- > 0 && r->held_older[i].addr != a)
            ;
    /* Not held (or a signal handler sent it), numbers taken since, or no
     * room in the count's slot (below 2^48). */
    const shim_held_t *h = i == n ? &r->held : i < n ? &r->held_older[i] : NULL;
    if (!h || !r->held.addr ||
        h->after != atomic_load_explicit(&g_shim.seq, memory_order_relaxed) ||
        r->folded_nested == SHIM_EVI_SIZE_MASK) {
        shim_fold_end(r);
        return 0;
    }
    uint64_t size = SHIM_HELD_SIZE(h);
    r->folded_nested += i != n || !r->fold_fresh; /* the newest, freed right after: no */
    shim_fold_count(r, size);
    if (i == n) {
        shim_fold_drop_newest(r);
    } else {
        for (; i + 1 < n; i++)
            r->held_older[i] = r->held_older[i + 1];
        r->held_older_n = n - 1;
        r->held_older_bytes -= size;
    }
    r->fold_fresh = 0;
    shim_fold_end(r);
    return 1;
}

/* Sends the folded temporaries as one event (two slots): the dropped count
 * grows by the events they stand for when there is no room. */
static void send_folded(shim_ring_t *r, const shim_fold_state_t *f)
{
    shim_event_t *e = shim_event_reserve(r, 2);
    if (!e) {
        r->dropped += 2 * f->count - 1; /* the reservation counted one */
        return;
    }
    shim_event_stamp(r, e, 0);
    shim_fold_temporaries_event(e, shim_event_ext(r, e), f);
    shim_event_commit(r);
}

/* Sends the i-th held block: always two slots, since its type is known
 * only once it has its number. */
static void send_held(shim_ring_t *r, const shim_fold_state_t *f, unsigned i)
{
    shim_event_t *e = shim_event_reserve(r, 2);
    if (!e)
        return;
    shim_event_stamp(r, e, 0);
    shim_fold_held_event(e, shim_event_ext(r, e), f, i);
    shim_event_commit(r);
}

/* One held block, word by word (relaxed loads: the writer reads another
 * thread's). */
static void held_copy(const shim_held_t *h, shim_held_t *out)
{
    out->addr = __atomic_load_n(&h->addr, __ATOMIC_RELAXED);
    out->after = __atomic_load_n(&h->after, __ATOMIC_RELAXED);
    out->size_fn = __atomic_load_n(&h->size_fn, __ATOMIC_RELAXED);
}

/* A copy of the fold state, the held blocks oldest first (relaxed loads:
 * the writer reads another thread's). Only the held blocks' entries are
 * written. 'most' is the most bytes held at once since the last event:
 * while blocks were made beside older ones (fold_most), the largest folded
 * one alone, or all held now. */
static void fold_copy(const shim_ring_t *r, shim_fold_state_t *out)
{
    out->count = __atomic_load_n(&r->folded_count, __ATOMIC_RELAXED);
    out->nested = __atomic_load_n(&r->folded_nested, __ATOMIC_RELAXED);
    out->bytes = __atomic_load_n(&r->folded_bytes, __ATOMIC_RELAXED);
    out->largest = __atomic_load_n(&r->folded_largest, __ATOMIC_RELAXED);
    out->stack = __atomic_load_n(&r->fold_stack, __ATOMIC_RELAXED);
    out->fresh = __atomic_load_n(&r->fold_fresh, __ATOMIC_RELAXED);
    out->held_n = 0;
    uint64_t held_bytes = 0;
    shim_held_t newest;
    held_copy(&r->held, &newest);
    if (newest.addr) {
        uint32_t n = __atomic_load_n(&r->held_older_n, __ATOMIC_RELAXED);
        n = n < SHIM_FOLD_HELD - 1 ? n : SHIM_FOLD_HELD - 1;
        for (uint32_t i = 0; i < n; i++)
            held_copy(&r->held_older[i], &out->held[out->held_n++]);
        out->held[out->held_n++] = newest;
        for (unsigned i = 0; i < out->held_n; i++)
            held_bytes += SHIM_HELD_SIZE(&out->held[i]);
    }
    uint64_t most = __atomic_load_n(&r->fold_most, __ATOMIC_RELAXED);
    most = most > out->largest ? most : out->largest;
    out->most = most > held_bytes ? most : held_bytes;
}

/* Nothing held, nothing folded. */
static void fold_clear(shim_ring_t *r)
{
    r->held.addr = 0;
    r->held_older_n = 0;
    r->held_older_bytes = 0;
    r->fold_fresh = 0;
    r->folded_count = 0;
    r->folded_nested = 0;
    r->folded_bytes = 0;
    r->folded_largest = 0;
    r->fold_most = 0;
    r->fold_stack = MLMEM_STACK_NONE;
}

void shim_fold_flush(shim_ring_t *r)
{
    if (!shim_fold_begin(r))
        return; /* a signal handler interrupted a change: the owner sends it */
    shim_fold_state_t f;
    fold_copy(r, &f);
    fold_clear(r);
    shim_fold_end(r);
    /* The folded pairs first: 'most' counts the held blocks too. */
    if (f.count)
        send_folded(r, &f);
    for (unsigned i = 0; i < f.held_n; i++)
        send_held(r, &f, i);
}

void shim_fold_reset(shim_ring_t *r)
{
    r->fold_busy = 0;
    fold_clear(r);
    r->fold_ok = 0;
    r->fold_from_next = (uint8_t)g_shim.config.fold_temporaries;
}

void shim_fold_stop(shim_ring_t *r)
{
    r->fold_ok = 0;
    r->fold_from_next = 0;
    if (atomic_load_explicit(&g_shim.mode, memory_order_relaxed) == SHIM_ACTIVE)
        shim_fold_flush(r);
}

/* The owner may be changing the state right now (a thread still running at
 * exit): two copies taken while it is not busy must agree. A few tries,
 * then the caller counts it lost. */
int shim_fold_peek(shim_ring_t *r, shim_fold_state_t *out)
{
    for (int tries = 0; tries < 100; tries++) {
        shim_fold_state_t again;
        if (__atomic_load_n(&r->fold_busy, __ATOMIC_ACQUIRE))
            continue;
        /* Zeroed first, padding and unheld entries too: the copies are
         * compared whole. */
        memset(out, 0, sizeof *out);
        memset(&again, 0, sizeof again);
        fold_copy(r, out);
        atomic_thread_fence(memory_order_acquire);
        fold_copy(r, &again);
        if (!__atomic_load_n(&r->fold_busy, __ATOMIC_ACQUIRE) &&
            memcmp(out, &again, sizeof again) == 0)
            return 1;
    }
    return 0;
}
