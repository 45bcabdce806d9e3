/*
 * heap_table.c - allocation and growth of the live-heap table; the probing
 * itself is inline in heap_table.h.
 */
#include "heap_table.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

/* A table this large is mapped in transparent huge pages (where the system
 * allows them, which on Debian is on request): its entries are written at
 * random, so every 4 KiB page of it is faulted in one by one otherwise, and
 * `import torch`'s 300,000 live blocks grew the table to 32 MiB through
 * 64 MiB of page faults, an eighth of the analyzer's time there. */
#define HUGE_TABLE_BYTES ((size_t)4 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

static size_t table_bytes(size_t cap)
{
    return cap * sizeof(prof_heap_entry_t);
}

/* Zeroed memory for 'bytes' of slots: calloc's, or an aligned mapping. */
static void *slots_alloc(size_t bytes)
{
    if (bytes < HUGE_TABLE_BYTES)
        return calloc(1, bytes);
    uint8_t *p = mmap(NULL, bytes + HUGE_PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uint8_t *at = (uint8_t *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (at > p)
        munmap(p, (size_t)(at - p));
    munmap(at + bytes, (size_t)(p + HUGE_PAGE - at));
#ifdef MADV_HUGEPAGE
    madvise(at, bytes, MADV_HUGEPAGE);
#endif
    return at;
}

static void slots_free(void *slots, size_t bytes)
{
    if (bytes < HUGE_TABLE_BYTES)
        free(slots);
    else if (slots)
        munmap(slots, bytes);
}

/* Allocates a zeroed slot array of 2^bits entries into 't'. Returns 0, or -1
 * if out of memory ('t' is then untouched). */
static int heap_table_alloc(prof_heap_table_t *t, unsigned bits)
{
    size_t cap = (size_t)1 << bits;
    prof_heap_entry_t *slots = slots_alloc(table_bytes(cap));
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
    slots_free(t->slots, table_bytes(t->mask + 1));
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
    slots_free(t->slots, table_bytes(t->mask + 1));
    *t = bigger;
    return 0;
}
