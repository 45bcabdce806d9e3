/*
 * fold.c - temporaries counted in the thread instead of sent.
 *
 * The commonest allocation there is, a small block freed by the thread that
 * made it before it makes or frees anything else, cost two events through
 * the ring, the writer and the analyzer: on an allocation-bound program
 * most of mlmem's time. A thread now holds its last small block (below the
 * stack threshold) instead of sending it; if the next thing it does is free
 * that block, the pair becomes one more "folded temporary" (a count, their
 * bytes and the largest), and nothing is sent. The folded blocks share one
 * stack: none (unsampled), or under --stacks=all the same call site in a
 * loop; a block of another stack sends them first. Anything else the
 * thread sends first sends what it folded (one TEMPORARIES event, with
 * their stack) and then the block it holds (an ALLOC), so each event
 * keeps its place in the thread's order and the analyzer's figures stay
 * exact: a run of temporaries between two events raises the live bytes by
 * its largest block at most, which is what TEMPORARIES tells it
 * (docs/shim.md, "Folded temporaries").
 *
 * The held block's ALLOC takes its number when it is sent, later than the
 * malloc. If another thread was handed the block meanwhile and freed it,
 * that FREE came first in the order. So the held block remembers the seq
 * counter as it was made ('held_after'); when other numbers were taken
 * between that and its own, it travels as ALLOC_LATE with that value, and
 * the analyzer pairs it with a FREE of the same address it saw in between
 * (profiler/accounting.c). A thread that blocks keeps its held block and
 * counts until its next event, its exit, or the final drain, where the
 * writer reads them (shim_fold_peek).
 */
#include <string.h>

#include "record.h"

void shim_fold_temporaries_event(shim_event_t *e, shim_event_ext_t *x,
                                 const shim_fold_state_t *f)
{
    e->addr = 0;
    e->info = SHIM_EVI(MLMEM_EV_TEMPORARIES, 0, 0) | SHIM_EVI_EXT;
    x->size = f->bytes;
    x->old_addr = f->largest;
    x->arg = f->count;
    x->stack_id = f->stack;
}

/* The number decides the type: an ALLOC if nobody took a number since the
 * malloc, else an ALLOC_LATE carrying the counter of then. */
void shim_fold_held_event(shim_event_t *e, shim_event_ext_t *x, const shim_fold_state_t *f)
{
    int type = e->seq == f->held_after + 1 ? MLMEM_EV_ALLOC : MLMEM_EV_ALLOC_LATE;
    e->addr = f->held_addr;
    e->info = SHIM_EVI(type, f->held_fn, f->held_size) | SHIM_EVI_EXT;
    x->size = f->held_size;
    x->old_addr = 0;
    x->arg = f->held_after;
    x->stack_id = f->held_stack;
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

/* Sends the held block: always two slots, since its type is known only
 * once it has its number. */
static void send_held(shim_ring_t *r, const shim_fold_state_t *f)
{
    shim_event_t *e = shim_event_reserve(r, 2);
    if (!e)
        return;
    shim_event_stamp(r, e, 0);
    shim_fold_held_event(e, shim_event_ext(r, e), f);
    shim_event_commit(r);
}

/* A copy of the fold state (relaxed loads: the writer reads another
 * thread's). */
static void fold_copy(const shim_ring_t *r, shim_fold_state_t *out)
{
    memset(out, 0, sizeof *out); /* padding too: the copies are compared whole */
    out->count = __atomic_load_n(&r->folded_count, __ATOMIC_RELAXED);
    out->bytes = __atomic_load_n(&r->folded_bytes, __ATOMIC_RELAXED);
    out->largest = __atomic_load_n(&r->folded_largest, __ATOMIC_RELAXED);
    out->stack = __atomic_load_n(&r->folded_stack, __ATOMIC_RELAXED);
    out->held_addr = __atomic_load_n(&r->held_addr, __ATOMIC_RELAXED);
    out->held_size = __atomic_load_n(&r->held_size, __ATOMIC_RELAXED);
    out->held_after = __atomic_load_n(&r->held_after, __ATOMIC_RELAXED);
    out->held_fn = __atomic_load_n(&r->held_fn, __ATOMIC_RELAXED);
    out->held_stack = __atomic_load_n(&r->held_stack, __ATOMIC_RELAXED);
}

/* Nothing held, nothing folded. */
static void fold_clear(shim_ring_t *r)
{
    r->folded_count = 0;
    r->folded_bytes = 0;
    r->folded_largest = 0;
    r->folded_stack = MLMEM_STACK_NONE;
    r->held_addr = 0;
}

void shim_fold_flush(shim_ring_t *r)
{
    if (!shim_fold_begin(r))
        return; /* a signal handler interrupted a change: the owner sends it */
    shim_fold_state_t f;
    fold_copy(r, &f);
    fold_clear(r);
    shim_fold_end(r);
    /* The folded pairs all came before the held block was made. */
    if (f.count)
        send_folded(r, &f);
    if (f.held_addr)
        send_held(r, &f);
}

void shim_fold_reset(shim_ring_t *r)
{
    r->fold_busy = 0;
    fold_clear(r);
    r->fold_ok = g_shim.config.fold_temporaries;
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
        fold_copy(r, out);
        atomic_thread_fence(memory_order_acquire);
        fold_copy(r, &again);
        if (!__atomic_load_n(&r->fold_busy, __ATOMIC_ACQUIRE) &&
            memcmp(out, &again, sizeof again) == 0)
            return 1;
    }
    return 0;
}
