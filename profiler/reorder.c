/*
 * reorder.c - see reorder.h. A slot is occupied when its seq field equals
 * the seq that maps to it; seq 0 never occurs, so zeroed slots are empty.
 * An ALLOC with 'freed_next' spans two numbers (it stands for its FREE at
 * seq + 1 too): releasing it moves 'next' by two, and anything held at
 * seq + 1 is a duplicate.
 */
#include <stdlib.h>
#include <string.h>

#include "reorder.h"

int prof_reorder_init(prof_reorder_t *r, size_t max_window, prof_reorder_emit_t emit, void *ctx)
{
    memset(r, 0, sizeof *r);
    r->cap = 4096;
    r->max_window = max_window ? max_window : (size_t)4 << 20;
    r->slots = calloc(r->cap, sizeof *r->slots);
    if (!r->slots)
        return -1;
    r->next = 1;
    r->emit = emit;
    r->ctx = ctx;
    return 0;
}

void prof_reorder_destroy(prof_reorder_t *r)
{
    free(r->slots);
    r->slots = NULL;
}

/* The last number event 'e' stands for. */
static uint64_t last_seq(const prof_event_t *e)
{
    return e->seq + (e->freed_next ? 1 : 0);
}

/* Broken input only: a pair whose second number would wrap to 0. */
static int last_seq_wraps(const prof_event_t *e)
{
    return e->freed_next && e->seq == UINT64_MAX;
}

static void release_run(prof_reorder_t *r)
{
    size_t mask = r->cap - 1;
    while (r->held) {
        prof_event_t *s = &r->slots[r->next & mask];
        if (s->seq != r->next)
            break;
        prof_event_t e = *s;
        s->seq = 0;
        r->held--;
        r->next = last_seq(&e) + 1;
        if (e.freed_next) {
            prof_event_t *dup = &r->slots[(e.seq + 1) & mask];
            if (dup->seq == e.seq + 1) {
                dup->seq = 0;
                r->held--;
                r->duplicates++;
            }
        }
        r->emit(r->ctx, &e);
    }
}

/* Skips the gap at 'next': the smallest held seq becomes next. */
static void skip_gap(prof_reorder_t *r)
{
    size_t mask = r->cap - 1;
    uint64_t s = r->next;
    while (s <= r->highest && r->slots[s & mask].seq != s)
        s++;
    r->lost += s - r->next;
    r->next = s;
}

static int grow(prof_reorder_t *r, size_t need)
{
    size_t cap = r->cap;
    while (cap < need)
        cap *= 2;
    prof_event_t *ns = calloc(cap, sizeof *ns);
    if (!ns)
        return -1;
    /* The held events are the old slots' seqs in [next, next + old cap):
     * a walk over the slots, not over [next, highest], which broken input
     * can make as long as it likes. */
    for (size_t i = 0; i < r->cap; i++) {
        const prof_event_t *old = &r->slots[i];
        if (old->seq >= r->next && old->seq - r->next < r->cap)
            ns[old->seq & (cap - 1)] = *old;
    }
    free(r->slots);
    r->slots = ns;
    r->cap = cap;
    return 0;
}

int prof_reorder_push(prof_reorder_t *r, const prof_event_t *e)
{
    if (last_seq_wraps(e)) {
        r->lost++;
        return 0;
    }
    if (e->seq == r->next && !r->held) {
        /* In order with nothing waiting: the common case of one thread. */
        r->next = last_seq(e) + 1;
        if (r->next - 1 > r->highest)
            r->highest = r->next - 1;
        r->emit(r->ctx, e);
        return 0;
    }
    if (e->seq < r->next) {
        r->duplicates++;
        return 0;
    }
    while (e->seq - r->next >= r->max_window) {
        /* Hostile or broken input: give up on the oldest gap. */
        if (!r->held) {
            r->lost += e->seq - r->next;
            r->next = e->seq;
            break;
        }
        skip_gap(r);
        release_run(r);
    }
    if (e->seq - r->next >= r->cap && grow(r, (size_t)(e->seq - r->next + 1)) != 0) {
        r->lost++;
        return -1;
    }
    prof_event_t *s = &r->slots[e->seq & (r->cap - 1)];
    if (s->seq == e->seq) {
        r->duplicates++;
        return 0;
    }
    *s = *e;
    r->held++;
    if (last_seq(e) > r->highest)
        r->highest = last_seq(e);
    if (e->seq == r->next)
        release_run(r);
    return 0;
}

void prof_reorder_flush(prof_reorder_t *r)
{
    while (r->held) {
        release_run(r);
        if (r->held)
            skip_gap(r);
    }
}
