/*
 * reorder.h - puts one process's events back into seq order. Threads send
 * their events in batches, so events of different threads arrive
 * interleaved out of order; every event carries a dense sequence number
 * (1, 2, 3, ...), so the reorder stage holds events until the next number
 * is present and releases runs in order.
 *
 * Memory is bounded by how far apart the threads' batches are (the shim's
 * writer drains all rings every few milliseconds), not by the run's length.
 * A hard cap (max_window events) protects against hostile input: when a gap
 * would need more, the oldest gap is given up on and counted as lost.
 * At the end of a stream, prof_reorder_flush() releases what is left,
 * counting every missing number as lost (an event taken but never sent,
 * e.g. when the process was killed).
 */
#ifndef PROF_REORDER_H
#define PROF_REORDER_H

#include <stddef.h>
#include <stdint.h>

#include "prof_event.h"

typedef void (*prof_reorder_emit_t)(void *ctx, const prof_event_t *e);

typedef struct {
    prof_event_t *slots;   /* ring indexed by seq & (cap - 1)               */
    size_t cap;
    size_t max_window;
    uint64_t next;         /* the seq released next                         */
    uint64_t highest;      /* highest seq held                              */
    uint64_t held;
    uint64_t lost;         /* gaps given up on                              */
    uint64_t duplicates;   /* events at or below an already released seq    */
    prof_reorder_emit_t emit;
    void *ctx;
} prof_reorder_t;

/* Initializes 'r'. 'max_window' 0 means 4 Mi events (a thread preempted
 * between taking its number and publishing its event, while the others
 * send 4 million events, is far beyond what happens; a hostile stream can
 * make the window cost at most 4 Mi x 72 bytes). Returns 0 or -1. */
int prof_reorder_init(prof_reorder_t *r, size_t max_window, prof_reorder_emit_t emit, void *ctx);
void prof_reorder_destroy(prof_reorder_t *r);

/* Takes one event; releases every event that is now in order. Returns 0, or
 * -1 if out of memory (the event is then counted as lost). */
int prof_reorder_push(prof_reorder_t *r, const prof_event_t *e);

/* Releases everything held, in order, skipping (and counting) gaps. */
void prof_reorder_flush(prof_reorder_t *r);

#endif /* PROF_REORDER_H */
