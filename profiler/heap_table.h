/*
 * heap_table.h - the live-heap table of the accounting stage: one entry per
 * live heap block, keyed by its address. Private to profiler/accounting.c.
 *
 * Open addressing with linear probing over a power-of-two array, Fibonacci
 * hashing of the address, and backward-shift deletion (no tombstones, so
 * probe lengths never degrade over a long run). The load factor stays at or
 * below 1/2. Address 0 marks an empty slot and can never be stored; callers
 * skip blocks at address 0.
 *
 * The hot operations are static inline so the accounting loop pays no calls.
 * Pointers returned by find/insert stay valid only until the next insert,
 * reserve or remove.
 */
#ifndef PROF_HEAP_TABLE_H
#define PROF_HEAP_TABLE_H

#include <stddef.h>
#include <stdint.h>

/* One live block: 32 bytes. 'site' and 'thread' are dense indices of the
 * accounting state, not stack ids or tids. 'born' packs the birth time (56
 * bits of nanoseconds: 2.2 years) with the block's category from
 * annotations (mlmem_category_t, or PROF_CAT_NONE when no annotation said)
 * and how it was decided (PROF_EVID_*), so the entry stays 32 bytes and is
 * written with one store; use the PROF_HEAP_* macros. */
typedef struct {
    uint64_t addr;
    uint64_t size;
    uint64_t born;
    uint32_t site;
    uint32_t thread;
} prof_heap_entry_t;

#define PROF_HEAP_BORN_MASK ((UINT64_C(1) << 56) - 1)
#define PROF_HEAP_PACK(born_ns, cat, evidence)                                                 \
    (((uint64_t)(born_ns) & PROF_HEAP_BORN_MASK) | ((uint64_t)(cat) << 56) |                  \
     ((uint64_t)(evidence) << 60))
#define PROF_HEAP_BORN_NS(e) ((e)->born & PROF_HEAP_BORN_MASK)
#define PROF_HEAP_CAT(e) ((unsigned)((e)->born >> 56) & 15u)
#define PROF_HEAP_EVIDENCE(e) ((unsigned)((e)->born >> 60))

/* Category of blocks no annotation named (attributed later by rules
 * and behaviour), and the evidence kinds an annotation can give. */
#define PROF_CAT_NONE 7
#define PROF_EVID_NONE 0
#define PROF_EVID_REGION 1
#define PROF_EVID_TAG 2

typedef struct {
    prof_heap_entry_t *slots;
    size_t mask;   /* capacity - 1 */
    size_t count;
    unsigned shift; /* 64 - log2(capacity) */
} prof_heap_table_t;

#define PROF_HEAP_TABLE_MIN_BITS 10

/* Initializes an empty table. Returns 0, or -1 if out of memory. */
int prof_heap_table_init(prof_heap_table_t *t);

/* Releases the table's memory. No operation if 't' is NULL. */
void prof_heap_table_destroy(prof_heap_table_t *t);

/* Grows the table so that one more insert keeps the load at or below 1/2.
 * Returns 0, or -1 if out of memory (the table is then unchanged). */
int prof_heap_table_grow(prof_heap_table_t *t);

static inline size_t prof_heap_table_home(const prof_heap_table_t *t, uint64_t addr)
{
    return (size_t)((addr * 0x9E3779B97F4A7C15ull) >> t->shift);
}

/* Starts loading the cache line of 'addr''s home slot, for a find or an
 * insert of it a few events later (analysis.c's pipeline). */
static inline void prof_heap_table_prefetch(const prof_heap_table_t *t, uint64_t addr)
{
    __builtin_prefetch(&t->slots[prof_heap_table_home(t, addr)], 1, 3);
}

/* Returns 0 if one more insert needs no growth, else grows (see _grow). */
static inline int prof_heap_table_reserve1(prof_heap_table_t *t)
{
    if ((t->count + 1) * 2 <= t->mask + 1)
        return 0;
    return prof_heap_table_grow(t);
}

/* Returns the entry for 'addr', or NULL if it is not live (or addr is 0). */
static inline prof_heap_entry_t *prof_heap_table_find(prof_heap_table_t *t, uint64_t addr)
{
    if (addr == 0)
        return NULL;
    size_t i = prof_heap_table_home(t, addr);
    for (;;) {
        prof_heap_entry_t *e = &t->slots[i];
        if (e->addr == addr)
            return e;
        if (e->addr == 0)
            return NULL;
        i = (i + 1) & t->mask;
    }
}

/* Returns the slot for 'addr': the live entry if there is one (*existed = 1)
 * or a new entry with only 'addr' set (*existed = 0), counted in 'count'.
 * The caller must have called prof_heap_table_reserve1() successfully, and
 * 'addr' must not be 0. */
static inline prof_heap_entry_t *prof_heap_table_insert(prof_heap_table_t *t, uint64_t addr,
                                                        int *existed)
{
    size_t i = prof_heap_table_home(t, addr);
    for (;;) {
        prof_heap_entry_t *e = &t->slots[i];
        if (e->addr == addr) {
            *existed = 1;
            return e;
        }
        if (e->addr == 0) {
            e->addr = addr;
            t->count++;
            *existed = 0;
            return e;
        }
        i = (i + 1) & t->mask;
    }
}

/* Removes the entry 'e' (a pointer from find or insert) by shifting later
 * members of its probe run back, so no tombstone is left. */
static inline void prof_heap_table_remove(prof_heap_table_t *t, prof_heap_entry_t *e)
{
    size_t hole = (size_t)(e - t->slots);
    size_t i = hole;
    for (;;) {
        i = (i + 1) & t->mask;
        prof_heap_entry_t *n = &t->slots[i];
        if (n->addr == 0)
            break;
        size_t home = prof_heap_table_home(t, n->addr);
        /* n may fill the hole only if its home is not in (hole, i]. */
        if (((i - home) & t->mask) >= ((i - hole) & t->mask)) {
            t->slots[hole] = *n;
            hole = i;
        }
    }
    t->slots[hole].addr = 0;
    t->count--;
}

#endif /* PROF_HEAP_TABLE_H */
