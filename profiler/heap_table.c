/*
 * heap_table.c - allocation and growth of the live-heap table; the probing
 * itself is inline in heap_table.h.
 */
#include "heap_table.h"

#include <stdlib.h>

/* Allocates a zeroed slot array of 2^bits entries into 't'. Returns 0, or -1
 * if out of memory ('t' is then untouched). */
static int heap_table_alloc(prof_heap_table_t *t, unsigned bits)
{
    size_t cap = (size_t)1 << bits;
    prof_heap_entry_t *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -1;
    t->slots = slots;
    t->mask = cap - 1;
    t->shift = 64 - bits;
    t->count = 0;
    return 0;
}

int prof_heap_table_init(prof_heap_table_t *t)
{
    return heap_table_alloc(t, PROF_HEAP_TABLE_MIN_BITS);
}

void prof_heap_table_destroy(prof_heap_table_t *t)
{
    if (!t)
        return;
    free(t->slots);
    t->slots = NULL;
    t->mask = 0;
    t->count = 0;
}

/* Doubles the capacity and reinserts every entry. On failure the old array
 * is kept, so the table stays usable. */
int prof_heap_table_grow(prof_heap_table_t *t)
{
    prof_heap_table_t bigger;
    unsigned bits = 64 - t->shift;
    if (heap_table_alloc(&bigger, bits + 1) < 0)
        return -1;
    for (size_t i = 0; i <= t->mask; i++) {
        const prof_heap_entry_t *e = &t->slots[i];
        if (e->addr == 0)
            continue;
        size_t j = prof_heap_table_home(&bigger, e->addr);
        while (bigger.slots[j].addr != 0)
            j = (j + 1) & bigger.mask;
        bigger.slots[j] = *e;
        bigger.count++;
    }
    free(t->slots);
    *t = bigger;
    return 0;
}
