/*
 * accounting.c - exact heap accounting from ordered events (accounting.h).
 *
 * The state is: the live heap blocks (heap_table.h), the mappings
 * (interval_map.h), one dense record per stack ("site") and per thread, and a
 * fixed-size timeline. Every event is O(1) apart from mapping events, which
 * are O(log mappings) plus the regions they touch.
 *
 * What was live at the peak, per site and per thread, is kept lazily with
 * epochs, so a new peak costs O(1) however many sites there are:
 * - a new global peak bumps 'epoch';
 * - before a site (or thread) changes, if its 'epoch' is older than the
 *   global one, it has not changed since the last peak, so its current live
 *   figures are its figures at the peak: they are copied to 'at_peak' and the
 *   site's epoch is brought up to date;
 * - when asked, a site whose epoch is older than the global one reports its
 *   current live figures as at-peak, the others their copies.
 * The peak is judged after a whole event is applied, so a realloc (old block
 * out, new block in) or an mremap never makes a false peak.
 *
 * Counting conventions beyond the header:
 * - A mapping call (MMAP, or the new side of an MREMAP) is one allocation; it
 *   is one free when its last byte is unmapped, however many MUNMAPs that
 *   takes. A mapping cut in the middle stays one live allocation.
 * - MREMAP is counted like REALLOC: the old range leaves (a free if that was
 *   the mapping's last byte), the new range arrives as an allocation of the
 *   event's stack. An old range that was not mapped is an unmatched free; a
 *   remap of a file mapping stays a file mapping.
 * - MMAP / MMAP_FILE over an address range that is still mapped (MAP_FIXED)
 *   first releases what was there, as a MUNMAP would.
 * - REALLOC whose old block is not live counts an unmatched free and no
 *   free; so for every site allocations - frees == live allocations.
 * - A block retired because its address came back from ALLOC counts as a
 *   free (lifetime included), never as a temporary.
 * - Events with address 0 (ALLOC, FREE, MMAP*) carry nothing to track: they
 *   are counted in 'events' only.
 * - Time is taken as the running maximum of event times, so a thread whose
 *   clock read lags a little can not make negative lifetimes or a timeline
 *   that goes back.
 * - Thread 'frees' are the frees a thread performed; its live bytes are the
 *   bytes it allocated that are still live, whoever frees them.
 *
 * The timeline has at most 'timeline_points' buckets of equal, power-of-two
 * width starting at time 0; when time runs past the last one, neighbours
 * merge in pairs and the width doubles, so it always covers the whole run.
 * A bucket keeps the highest live bytes seen after any event in its span,
 * the time that was first reached and the heap/mmap split then, and the
 * latest RSS sample; so the global peak is always one of its points.
 */
#include "accounting.h"

#include <stdlib.h>
#include <string.h>

#include "heap_table.h"
#include "interval_map.h"

/* ---- state --------------------------------------------------------------- */

typedef struct {
    uint32_t stack_id;
    uint32_t is_mmap;
    uint64_t epoch;           /* global epoch when last changed            */
    uint64_t live_bytes;
    uint64_t live_allocs;
    uint64_t at_peak_bytes;   /* valid when epoch == the global epoch      */
    uint64_t at_peak_allocs;
    uint64_t peak_live_bytes;
    uint64_t allocations;
    uint64_t frees;
    uint64_t bytes_allocated;
    uint64_t temporaries;
    uint64_t largest;
    uint64_t lifetime_min;
    uint64_t lifetime_max;
    uint64_t lifetime_sum;
    uint64_t ann_live;        /* live bytes an annotation named            */
    uint64_t ann_at_peak;     /* valid like at_peak_bytes                  */
    uint64_t first_born_ns;
    uint64_t last_born_ns;
    uint64_t first_free_ns;
    uint64_t file_read_bytes; /* read from files into its blocks           */
    uint8_t ann_cat;          /* 1 + last annotated category; 0 = none     */
    uint8_t ann_mixed;        /* annotations gave it several categories    */
} prof_acct_site_t;

typedef struct {
    uint32_t tid;
    char name[16];
    uint64_t epoch;
    uint64_t live_bytes;
    uint64_t at_peak_bytes;
    uint64_t peak_live_bytes;
    uint64_t allocations;
    uint64_t frees;
    uint64_t bytes_allocated;
    uint64_t last_alloc;      /* address if this thread's latest alloc/free
                                 event was an allocation of it, else 0     */
    uint32_t region_depth;    /* open regions, may exceed ACCT_REGIONS     */
    uint8_t region_cat;       /* category of the innermost open region, or
                                 PROF_CAT_NONE                             */
    uint8_t regions[16];      /* the stack, ACCT_REGIONS deep              */
} prof_acct_thread_t;

/* One mapping call that still has bytes mapped. Free ones form a list
 * through 'site'. */
typedef struct {
    uint32_t pieces;          /* regions left; 0 = free slot               */
    uint32_t site;
    uint32_t thread;
    uint8_t cat;              /* as in prof_heap_entry_t                   */
    uint8_t evidence;
    uint64_t born_ns;
} prof_acct_origin_t;

typedef struct {
    uint64_t time_ns;         /* when 'live' was first reached in the span */
    uint64_t live;
    uint64_t heap;
    uint64_t mmap;
    uint64_t rss;
    uint32_t used;
    uint64_t cat[MLMEM_CATEGORY_COUNT]; /* annotated bytes per category at
                                           'live' (all 0 until the first
                                           annotated allocation)           */
} prof_acct_point_t;

/* u32 -> u32 open-addressing map (tids, and stack ids too large to index
 * directly). UINT32_MAX in 'vals' marks an empty slot. */
typedef struct {
    uint32_t *keys;
    uint32_t *vals;
    size_t mask;
    size_t count;
} prof_acct_map_t;

#define ACCT_NONE UINT32_MAX
#define ACCT_DIRECT_STACKS (1u << 22) /* stack ids below index an array */
#define ACCT_TCACHE 64                /* thread lookups cached by tid % 64 */
#define ACCT_REGIONS 16               /* region nesting kept per thread    */
/* The per-event path is a handful of small steps, inlined into
 * prof_acct_apply(); bench/acct_throughput measures it. */
#define ACCT_HOT static inline __attribute__((always_inline))

/* A free that found no live block, kept for a while in case the block's
 * ALLOC arrives late (an ALLOC_LATE: the shim held the block, and another
 * thread freed it before the owner sent it; preload/fold.c). */
#define ACCT_ORPHANS 4096   /* sets of ACCT_ORPHAN_WAYS: a full set forgets */
#define ACCT_ORPHAN_WAYS 8  /* its oldest (a thread holds up to 32 blocks)  */
typedef struct {
    uint64_t addr;            /* 0: empty                                  */
    uint64_t seq;             /* the free's number                         */
    uint32_t thread;          /* index of the thread that freed it         */
} acct_orphan_t;

struct prof_acct {
    prof_heap_table_t heap;
    prof_interval_map_t maps;

    prof_acct_origin_t *origins;
    size_t origin_n, origin_cap;
    uint32_t origin_free;     /* head of the free list, or ACCT_NONE       */
    uint64_t live_origins;

    prof_acct_site_t *sites;
    size_t site_n, site_cap;
    uint32_t *site_of_stack;  /* stack id -> site index + 1; 0 = none      */
    size_t site_of_stack_n;
    prof_acct_map_t big_stacks;

    prof_acct_thread_t *threads;
    size_t thread_n, thread_cap;
    prof_acct_map_t tids;
    uint32_t tcache_tid[ACCT_TCACHE];   /* direct-mapped tid -> index cache */
    uint32_t tcache_idx[ACCT_TCACHE];   /* ACCT_NONE: empty slot             */

    uint64_t epoch;
    uint64_t heap_live, mmap_live, file_live;
    uint64_t now;             /* running maximum of event times            */
    uint64_t rss;
    prof_summary_t sum;       /* counters; live figures filled at result   */

    prof_acct_point_t *tl;
    size_t tl_cap;
    size_t tl_cur;            /* index of the bucket that holds 'now'      */
    uint64_t tl_width;        /* ns per bucket, a power of two            */
    uint64_t tl_end;          /* end of the current bucket's span          */
    uint32_t sum_phases;      /* bit per PHASE value seen                  */
    uint64_t current_step;    /* the last STEP annotation's number         */
    uint32_t current_phase;   /* the last PHASE since it (0: none)         */

    /* Attribution from annotations: live bytes per category (slot
     * not annotated: the rest of the live bytes), their maxima and their
     * split at the global peak. Unannotated runs never touch them. */
    uint64_t cat_live[MLMEM_CATEGORY_COUNT];
    uint64_t cat_max[MLMEM_CATEGORY_COUNT];
    uint64_t cat_at_peak[MLMEM_CATEGORY_COUNT];
    uint64_t ann_live;        /* sum of cat_live                           */
    int any_ann;              /* an annotated allocation was seen: the
                                 timeline and the peak copy cat_live      */
    prof_attr_counts_t attr;

    /* Annotated steps: the peak of each finished step, and the current one. */
    uint64_t *step_peaks;
    size_t step_n, step_cap;
    uint64_t step_max;
    uint64_t step_first_ns, step_last_ns;

    prof_acct_logged_t *log;  /* the first PROF_ACCT_LOG_CAP allocations   */
    size_t log_n;

    /* Lowest and highest live bytes per span of the run, finer than the
     * timeline and nothing else: what detected steps' peaks and phases
     * are read from. Same power-of-two scheme as the timeline. */
    prof_live_range_t *rng;
    size_t rng_cur;
    uint64_t rng_width;
    uint64_t rng_end;

    uint64_t seq;             /* the number of the event being applied     */
    acct_orphan_t *orphans;   /* unmatched frees an ALLOC_LATE may claim   */
};

/* ---- small maps ---------------------------------------------------------- */

static size_t acct_map_home(const prof_acct_map_t *m, uint32_t key)
{
    return (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> 32) & m->mask;
}

/* Returns the value for 'key', or ACCT_NONE. */
static uint32_t acct_map_get(const prof_acct_map_t *m, uint32_t key)
{
    if (!m->vals)
        return ACCT_NONE;
    for (size_t i = acct_map_home(m, key);; i = (i + 1) & m->mask) {
        if (m->vals[i] == ACCT_NONE)
            return ACCT_NONE;
        if (m->keys[i] == key)
            return m->vals[i];
    }
}

/* Adds 'key' (not present) -> 'val', growing at half load. Returns 0, or -1
 * if out of memory with the map unchanged. */
static int acct_map_put(prof_acct_map_t *m, uint32_t key, uint32_t val)
{
    if (!m->vals || (m->count + 1) * 2 > m->mask + 1) {
        size_t cap = m->vals ? (m->mask + 1) * 2 : 64;
        prof_acct_map_t n = {malloc(cap * sizeof(uint32_t)), malloc(cap * sizeof(uint32_t)),
                             cap - 1, 0};
        if (!n.keys || !n.vals) {
            free(n.keys);
            free(n.vals);
            return -1;
        }
        memset(n.vals, 0xff, cap * sizeof(uint32_t));
        for (size_t i = 0; m->vals && i <= m->mask; i++)
            if (m->vals[i] != ACCT_NONE)
                acct_map_put(&n, m->keys[i], m->vals[i]); /* cannot grow */
        free(m->keys);
        free(m->vals);
        *m = n;
    }
    size_t i = acct_map_home(m, key);
    while (m->vals[i] != ACCT_NONE)
        i = (i + 1) & m->mask;
    m->keys[i] = key;
    m->vals[i] = val;
    m->count++;
    return 0;
}

static void acct_map_destroy(prof_acct_map_t *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

/* Grows '*arr' (of '*cap' elements of 'size' bytes) to hold at least 'need'.
 * The new part is left as it is: the arrays grown here are appended to, and
 * each element is written whole when taken. (Zeroing the new half touched
 * pages that were never used: with a PyTorch run's 600,000 sites, 150 MiB.)
 * Returns 0, or -1 if out of memory (unchanged). */
static int acct_grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * size);
    if (!p)
        return -1;
    *arr = p;
    *cap = n;
    return 0;
}

/* acct_grow for a table indexed directly, where 0 means absent: the new
 * part is zeroed. */
static int acct_grow_zeroed(void **arr, size_t *cap, size_t need, size_t size)
{
    size_t old = *cap;
    if (acct_grow(arr, cap, need, size) < 0)
        return -1;
    memset((char *)*arr + old * size, 0, (*cap - old) * size);
    return 0;
}

/* ---- sites and threads --------------------------------------------------- */

/* The slow path of acct_site(): large ids, and new sites. A new site had
 * nothing live at the last peak, so it starts in the current epoch with zero
 * at-peak figures. */
static __attribute__((noinline)) int acct_site_slow(prof_acct_t *a, uint32_t stack_id,
                                                    uint32_t *out)
{
    uint32_t idx;
    if (stack_id < ACCT_DIRECT_STACKS) {
        if (acct_grow_zeroed((void **)&a->site_of_stack, &a->site_of_stack_n,
                             (size_t)stack_id + 1, sizeof(uint32_t)) < 0)
            return -1;
    } else if ((idx = acct_map_get(&a->big_stacks, stack_id)) != ACCT_NONE) {
        *out = idx;
        return 0;
    }
    if (acct_grow((void **)&a->sites, &a->site_cap, a->site_n + 1, sizeof(*a->sites)) < 0)
        return -1;
    idx = (uint32_t)a->site_n;
    if (stack_id < ACCT_DIRECT_STACKS)
        a->site_of_stack[stack_id] = idx + 1;
    else if (acct_map_put(&a->big_stacks, stack_id, idx) < 0)
        return -1;
    prof_acct_site_t *s = &a->sites[a->site_n++];
    memset(s, 0, sizeof(*s));
    s->stack_id = stack_id;
    s->epoch = a->epoch;
    s->first_born_ns = a->now; /* sites are made for their first allocation */
    *out = idx;
    return 0;
}

/* Returns the site index of 'stack_id' in *out, creating the site. Returns
 * 0, or -1 if out of memory. */
ACCT_HOT int acct_site(prof_acct_t *a, uint32_t stack_id, uint32_t *out)
{
    if (stack_id < a->site_of_stack_n && a->site_of_stack[stack_id]) {
        *out = a->site_of_stack[stack_id] - 1;
        return 0;
    }
    return acct_site_slow(a, stack_id, out);
}

/* The slow path of acct_thread(): the tid map, and new threads. */
static __attribute__((noinline)) int acct_thread_slow(prof_acct_t *a, uint32_t tid,
                                                      uint32_t *out)
{
    uint32_t idx = acct_map_get(&a->tids, tid);
    if (idx == ACCT_NONE) {
        if (acct_grow((void **)&a->threads, &a->thread_cap, a->thread_n + 1,
                      sizeof(*a->threads)) < 0)
            return -1;
        idx = (uint32_t)a->thread_n;
        if (acct_map_put(&a->tids, tid, idx) < 0)
            return -1;
        prof_acct_thread_t *t = &a->threads[a->thread_n++];
        memset(t, 0, sizeof(*t));
        t->tid = tid;
        t->epoch = a->epoch;
        t->region_cat = PROF_CAT_NONE;
    }
    a->tcache_tid[tid % ACCT_TCACHE] = tid;
    a->tcache_idx[tid % ACCT_TCACHE] = idx;
    *out = idx;
    return 0;
}

/* Returns the thread index of 'tid' in *out, creating the thread. Returns 0,
 * or -1 if out of memory. */
ACCT_HOT int acct_thread(prof_acct_t *a, uint32_t tid, uint32_t *out)
{
    uint32_t slot = tid % ACCT_TCACHE;
    if (a->tcache_tid[slot] == tid && a->tcache_idx[slot] != ACCT_NONE) {
        *out = a->tcache_idx[slot];
        return 0;
    }
    return acct_thread_slow(a, tid, out);
}

/* Saves a site's live figures as its at-peak figures if it has not changed
 * since the last peak; call before changing its live figures. */
ACCT_HOT void acct_site_touch(const prof_acct_t *a, prof_acct_site_t *s)
{
    if (s->epoch != a->epoch) {
        s->at_peak_bytes = s->live_bytes;
        s->at_peak_allocs = s->live_allocs;
        s->ann_at_peak = s->ann_live;
        s->epoch = a->epoch;
    }
}

ACCT_HOT void acct_thread_touch(const prof_acct_t *a, prof_acct_thread_t *t)
{
    if (t->epoch != a->epoch) {
        t->at_peak_bytes = t->live_bytes;
        t->epoch = a->epoch;
    }
}

/* Adds 'size' annotated bytes of category 'cat' (not PROF_CAT_NONE) to
 * site 's' and the totals. */
ACCT_HOT void acct_add_cat(prof_acct_t *a, prof_acct_site_t *s, unsigned cat, uint64_t size)
{
    a->cat_live[cat] += size;
    if (a->cat_live[cat] > a->cat_max[cat])
        a->cat_max[cat] = a->cat_live[cat];
    a->ann_live += size;
    a->any_ann = 1;
    s->ann_live += size;
    if (s->ann_cat != cat + 1) {
        s->ann_mixed |= s->ann_cat != 0;
        s->ann_cat = (uint8_t)(cat + 1);
    }
}

/* Takes 'size' annotated bytes of category 'cat' (not PROF_CAT_NONE) out. */
ACCT_HOT void acct_sub_cat(prof_acct_t *a, prof_acct_site_t *s, unsigned cat, uint64_t size)
{
    a->cat_live[cat] -= size;
    a->ann_live -= size;
    s->ann_live -= size;
}

/* An allocation made inside a region: off the path of unannotated runs. */
static __attribute__((noinline)) void acct_charge_cat(prof_acct_t *a, prof_acct_site_t *s,
                                                      unsigned cat, uint64_t size)
{
    a->attr.region_allocations++;
    acct_add_cat(a, s, cat, size);
}

/* Adds 'size' live bytes of site 's' and thread 't' (their peaks follow),
 * on the heap or in anonymous mappings. */
static inline void acct_live_add(prof_acct_t *a, prof_acct_site_t *s, prof_acct_thread_t *t,
                                 uint64_t size, int is_mmap)
{
    s->live_bytes += size;
    if (s->live_bytes > s->peak_live_bytes)
        s->peak_live_bytes = s->live_bytes;
    t->live_bytes += size;
    if (t->live_bytes > t->peak_live_bytes)
        t->peak_live_bytes = t->live_bytes;
    if (is_mmap)
        a->mmap_live += size;
    else
        a->heap_live += size;
}

/* Counts a new allocation of 'size' bytes by site 'si' and thread 'ti' in
 * category 'cat' (PROF_CAT_NONE: not annotated) and makes it live (heap or
 * anonymous mapping). */
ACCT_HOT void acct_charge(prof_acct_t *a, uint32_t si, uint32_t ti, uint64_t size,
                               int is_mmap, unsigned cat)
{
    prof_acct_site_t *s = &a->sites[si];
    prof_acct_thread_t *t = &a->threads[ti];
    acct_site_touch(a, s);
    acct_thread_touch(a, t);
    if (cat != PROF_CAT_NONE)
        acct_charge_cat(a, s, cat, size);
    s->last_born_ns = a->now;
    if (a->log_n < PROF_ACCT_LOG_CAP)
        a->log[a->log_n++] = (prof_acct_logged_t){s->stack_id, a->now};
    s->allocations++;
    s->bytes_allocated += size;
    if (size > s->largest)
        s->largest = size;
    s->live_allocs++;
    t->allocations++;
    t->bytes_allocated += size;
    a->sum.total_allocations++;
    a->sum.total_bytes += size;
    if (is_mmap)
        s->is_mmap = 1;
    acct_live_add(a, s, t, size, is_mmap);
}

/* Records a freed allocation's lifetime in its site, and when it first
 * freed one. */
ACCT_HOT void acct_lifetime(const prof_acct_t *a, prof_acct_site_t *s, uint64_t ns)
{
    if (s->frees == 0)
        s->first_free_ns = a->now;
    if (s->frees == 0 || ns < s->lifetime_min)
        s->lifetime_min = ns;
    if (ns > s->lifetime_max)
        s->lifetime_max = ns;
    s->lifetime_sum += ns;
}

/* ---- heap blocks --------------------------------------------------------- */

/* Takes the heap block 'e' out of the live figures as freed by thread
 * 'freer' (the table entry itself is left to the caller). */
ACCT_HOT void acct_heap_release(prof_acct_t *a, const prof_heap_entry_t *e, uint32_t freer,
                                     int temporary)
{
    prof_acct_site_t *s = &a->sites[e->site];
    prof_acct_thread_t *t = &a->threads[e->thread];
    acct_site_touch(a, s);
    acct_thread_touch(a, t);
    s->live_bytes -= e->size;
    s->live_allocs--;
    unsigned cat = PROF_HEAP_CAT(e);
    if (cat != PROF_CAT_NONE)
        acct_sub_cat(a, s, cat, e->size);
    acct_lifetime(a, s, a->now - PROF_HEAP_BORN_NS(e));
    s->frees++;
    t->live_bytes -= e->size;
    a->threads[freer].frees++;
    a->heap_live -= e->size;
    a->sum.total_frees++;
    if (temporary) {
        s->temporaries++;
        a->sum.temporary_allocations++;
    }
}

/* Makes the block at 'addr' live. The table must have room for one insert.
 * A block still live at 'addr' is retired first (its free was lost). */
ACCT_HOT void acct_heap_add(prof_acct_t *a, uint64_t addr, uint64_t size, uint32_t si,
                                 uint32_t ti, unsigned cat, unsigned evidence)
{
    int existed;
    prof_heap_entry_t *e = prof_heap_table_insert(&a->heap, addr, &existed);
    if (existed)
        acct_heap_release(a, e, e->thread, 0);
    e->size = size;
    e->born = PROF_HEAP_PACK(a->now, cat, evidence);
    e->site = si;
    e->thread = ti;
    acct_charge(a, si, ti, size, 0, cat);
    a->threads[ti].last_alloc = addr;
}

/* The set of ACCT_ORPHAN_WAYS entries where a free of 'addr' is kept. */
static acct_orphan_t *acct_orphan_set(const prof_acct_t *a, uint64_t addr)
{
    size_t sets = ACCT_ORPHANS / ACCT_ORPHAN_WAYS;
    size_t set = (size_t)((addr * 0x9E3779B97F4A7C15ull) >> 32) & (sets - 1);
    return &a->orphans[set * ACCT_ORPHAN_WAYS];
}

/* Remembers an unmatched free of 'addr' by thread 'ti' (event a->seq), in
 * an empty entry of its set or in place of the oldest. */
static __attribute__((noinline)) void acct_orphan_note(prof_acct_t *a, uint64_t addr,
                                                       uint32_t ti)
{
    if (!a->orphans && !(a->orphans = calloc(ACCT_ORPHANS, sizeof *a->orphans)))
        return; /* stays an unmatched free */
    acct_orphan_t *set = acct_orphan_set(a, addr), *o = set;
    for (unsigned w = 0; w < ACCT_ORPHAN_WAYS && o->addr; w++)
        if (!set[w].addr || set[w].seq < o->seq)
            o = &set[w];
    *o = (acct_orphan_t){addr, a->seq, ti};
}

/* Takes back the first unmatched free of 'addr' that came after seq
 * 'after', if one is remembered: a free of the block an ALLOC_LATE stands
 * for. */
static int acct_orphan_take(prof_acct_t *a, uint64_t addr, uint64_t after, uint32_t *freer)
{
    if (!a->orphans)
        return 0;
    acct_orphan_t *set = acct_orphan_set(a, addr), *o = NULL;
    for (unsigned w = 0; w < ACCT_ORPHAN_WAYS; w++)
        if (set[w].addr == addr && set[w].seq > after && (!o || set[w].seq < o->seq))
            o = &set[w];
    if (!o)
        return 0;
    *freer = o->thread;
    o->addr = 0;
    return 1;
}

/* Frees the block at 'addr' as thread 'ti'. Returns 1 if it was live, 0 if
 * not (counted as unmatched). A temporary is a block freed by the thread
 * that allocated it, with no other alloc/free event of that thread between. */
ACCT_HOT int acct_heap_free(prof_acct_t *a, uint64_t addr, uint32_t ti)
{
    prof_heap_entry_t *e = prof_heap_table_find(&a->heap, addr);
    if (!e) {
        a->sum.unmatched_frees++;
        acct_orphan_note(a, addr, ti);
        return 0;
    }
    int temporary = e->thread == ti && a->threads[ti].last_alloc == addr;
    acct_heap_release(a, e, ti, temporary);
    prof_heap_table_remove(&a->heap, e);
    return 1;
}

ACCT_HOT int acct_on_alloc(prof_acct_t *a, const prof_event_t *ev)
{
    uint32_t si, ti;
    if (ev->addr == 0)
        return 0;
    if (acct_thread(a, ev->tid, &ti) < 0 || acct_site(a, ev->stack_id, &si) < 0 ||
        prof_heap_table_reserve1(&a->heap) < 0)
        return -1;
    unsigned cat = a->threads[ti].region_cat;
    acct_heap_add(a, ev->addr, ev->size, si, ti, cat,
                  cat == PROF_CAT_NONE ? PROF_EVID_NONE : PROF_EVID_REGION);
    if (ev->not_latest) /* the thread freed a block since: no temporary */
        a->threads[ti].last_alloc = 0;
    return 0;
}

ACCT_HOT int acct_on_free(prof_acct_t *a, const prof_event_t *ev)
{
    uint32_t ti;
    if (ev->addr == 0)
        return 0;
    if (acct_thread(a, ev->tid, &ti) < 0)
        return -1;
    acct_heap_free(a, ev->addr, ti);
    a->threads[ti].last_alloc = 0;
    return 0;
}

/* realloc: the old block leaves and the new one arrives in this one event;
 * old_addr 0 is a plain allocation, addr 0 (realloc to size 0 that freed)
 * only frees. The new block takes the thread's open region, else the old
 * block's category (a tagged buffer that grows stays tagged). */
static int acct_on_realloc(prof_acct_t *a, const prof_event_t *ev)
{
    uint32_t si, ti;
    if (acct_thread(a, ev->tid, &ti) < 0 || acct_site(a, ev->stack_id, &si) < 0 ||
        prof_heap_table_reserve1(&a->heap) < 0)
        return -1;
    unsigned cat = a->threads[ti].region_cat;
    unsigned evidence = cat == PROF_CAT_NONE ? PROF_EVID_NONE : PROF_EVID_REGION;
    if (ev->old_addr != 0) {
        const prof_heap_entry_t *old = prof_heap_table_find(&a->heap, ev->old_addr);
        if (old && cat == PROF_CAT_NONE) {
            cat = PROF_HEAP_CAT(old);
            evidence = PROF_HEAP_EVIDENCE(old);
        }
        acct_heap_free(a, ev->old_addr, ti);
    }
    if (ev->addr != 0)
        acct_heap_add(a, ev->addr, ev->size, si, ti, cat, evidence);
    else
        a->threads[ti].last_alloc = 0;
    return 0;
}

/* ---- mappings ------------------------------------------------------------ */

typedef struct {
    prof_acct_t *a;
    uint32_t freer;
    uint32_t saw_anon;
    uint32_t saw_file;
} prof_acct_cut_t;

/* prof_imap_cut() callback: releases 'bytes' of region 'r'; when the last
 * region of a mapping call goes, that call is freed. */
static void acct_cut_cb(void *ctx, const prof_region_t *r, uint64_t bytes, int pieces)
{
    prof_acct_cut_t *c = ctx;
    prof_acct_t *a = c->a;
    if (r->is_file) {
        c->saw_file = 1;
        a->file_live -= bytes;
        return;
    }
    c->saw_anon = 1;
    prof_acct_origin_t *o = &a->origins[r->origin];
    prof_acct_site_t *s = &a->sites[o->site];
    prof_acct_thread_t *t = &a->threads[o->thread];
    acct_site_touch(a, s);
    acct_thread_touch(a, t);
    s->live_bytes -= bytes;
    t->live_bytes -= bytes;
    a->mmap_live -= bytes;
    if (o->cat != PROF_CAT_NONE)
        acct_sub_cat(a, s, o->cat, bytes);
    o->pieces = (uint32_t)((int64_t)o->pieces + pieces);
    if (o->pieces == 0) {
        s->live_allocs--;
        acct_lifetime(a, s, a->now - o->born_ns);
        s->frees++;
        a->threads[c->freer].frees++;
        a->sum.total_frees++;
        a->live_origins--;
        o->site = a->origin_free;
        a->origin_free = r->origin;
    }
}

/* Unmaps [addr, addr + size) as thread 'ti'. Returns the number of regions
 * touched; 'c' tells what kinds. The map must have one reserved slot. */
static size_t acct_unmap(prof_acct_t *a, uint64_t addr, uint64_t size, uint32_t ti,
                         prof_acct_cut_t *c)
{
    c->a = a;
    c->freer = ti;
    c->saw_anon = c->saw_file = 0;
    uint64_t end = addr + size < addr ? UINT64_MAX : addr + size;
    return prof_imap_cut(&a->maps, addr, end, acct_cut_cb, c);
}

/* Ensures an origin slot can be taken without allocating. */
static int acct_origin_reserve(prof_acct_t *a)
{
    if (a->origin_free != ACCT_NONE)
        return 0;
    return acct_grow((void **)&a->origins, &a->origin_cap, a->origin_n + 1,
                     sizeof(*a->origins));
}

/* Maps [addr, addr + size): a new anonymous allocation of site 'si' by
 * thread 'ti', or a file mapping. The range must be free, and room reserved
 * (one region, one origin). */
static void acct_map(prof_acct_t *a, uint64_t addr, uint64_t size, uint32_t si, uint32_t ti,
                     int is_file)
{
    prof_region_t r = {addr, addr + size, ACCT_NONE, (uint32_t)is_file};
    if (r.end < r.start)
        r.end = UINT64_MAX;
    size = r.end - r.start;
    if (is_file) {
        a->file_live += size;
        if (a->file_live > a->sum.peak_file_mapped_bytes)
            a->sum.peak_file_mapped_bytes = a->file_live;
    } else {
        uint32_t oi;
        if (a->origin_free != ACCT_NONE) {
            oi = a->origin_free;
            a->origin_free = a->origins[oi].site;
        } else {
            oi = (uint32_t)a->origin_n++;
        }
        unsigned cat = a->threads[ti].region_cat;
        a->origins[oi] = (prof_acct_origin_t){1, si, ti, (uint8_t)cat,
                                              cat == PROF_CAT_NONE ? PROF_EVID_NONE
                                                                   : PROF_EVID_REGION,
                                              a->now};
        a->live_origins++;
        r.origin = oi;
        acct_charge(a, si, ti, size, 1, cat);
    }
    prof_imap_insert(&a->maps, &r);
}

static int acct_on_mmap(prof_acct_t *a, const prof_event_t *ev, int is_file)
{
    uint32_t si, ti;
    prof_acct_cut_t c;
    if (ev->addr == 0 || ev->size == 0)
        return 0;
    if (acct_thread(a, ev->tid, &ti) < 0 || acct_site(a, ev->stack_id, &si) < 0 ||
        prof_imap_reserve(&a->maps, 2) < 0 || acct_origin_reserve(a) < 0)
        return -1;
    acct_unmap(a, ev->addr, ev->size, ti, &c);
    acct_map(a, ev->addr, ev->size, si, ti, is_file);
    a->threads[ti].last_alloc = 0;
    return 0;
}

static int acct_on_munmap(prof_acct_t *a, const prof_event_t *ev)
{
    uint32_t ti;
    prof_acct_cut_t c;
    if (acct_thread(a, ev->tid, &ti) < 0 || prof_imap_reserve(&a->maps, 1) < 0)
        return -1;
    if (ev->size == 0 || acct_unmap(a, ev->addr, ev->size, ti, &c) == 0)
        a->sum.unmatched_frees++;
    a->threads[ti].last_alloc = 0;
    return 0;
}

static int acct_on_mremap(prof_acct_t *a, const prof_event_t *ev)
{
    uint32_t si, ti;
    prof_acct_cut_t c, c2;
    if (acct_thread(a, ev->tid, &ti) < 0 || acct_site(a, ev->stack_id, &si) < 0 ||
        prof_imap_reserve(&a->maps, 3) < 0 || acct_origin_reserve(a) < 0)
        return -1;
    if (ev->old_size == 0 || acct_unmap(a, ev->old_addr, ev->old_size, ti, &c) == 0) {
        a->sum.unmatched_frees++;
        c.saw_anon = c.saw_file = 0;
    }
    if (ev->addr != 0 && ev->size != 0) {
        acct_unmap(a, ev->addr, ev->size, ti, &c2);
        acct_map(a, ev->addr, ev->size, si, ti, c.saw_file && !c.saw_anon);
    }
    a->threads[ti].last_alloc = 0;
    return 0;
}

/* ---- annotations --------------------------------------------------------- */

static int acct_on_region_begin(prof_acct_t *a, const prof_event_t *ev)
{
    uint32_t ti;
    if (acct_thread(a, ev->tid, &ti) < 0)
        return -1;
    prof_acct_thread_t *t = &a->threads[ti];
    unsigned cat = ev->arg < MLMEM_CATEGORY_COUNT ? (unsigned)ev->arg : MLMEM_CAT_OTHER;
    if (t->region_depth < ACCT_REGIONS)
        t->regions[t->region_depth] = (uint8_t)cat;
    else
        a->attr.region_overflows++;
    t->region_depth++;
    /* Beyond the kept depth the innermost kept region still applies. */
    t->region_cat = t->regions[t->region_depth <= ACCT_REGIONS ? t->region_depth - 1
                                                               : ACCT_REGIONS - 1];
    return 0;
}

static int acct_on_region_end(prof_acct_t *a, const prof_event_t *ev)
{
    uint32_t ti;
    if (acct_thread(a, ev->tid, &ti) < 0)
        return -1;
    prof_acct_thread_t *t = &a->threads[ti];
    if (t->region_depth == 0) {
        a->attr.region_unmatched_ends++;
        return 0;
    }
    t->region_depth--;
    if (t->region_depth == 0)
        t->region_cat = PROF_CAT_NONE;
    else
        t->region_cat = t->regions[t->region_depth <= ACCT_REGIONS ? t->region_depth - 1
                                                                   : ACCT_REGIONS - 1];
    return 0;
}

/* Moves 'bytes' of site 's' from category 'from' to 'to'. */
static void acct_recat(prof_acct_t *a, prof_acct_site_t *s, uint64_t bytes, unsigned from,
                       unsigned to)
{
    acct_site_touch(a, s);
    if (from != PROF_CAT_NONE)
        acct_sub_cat(a, s, from, bytes);
    acct_add_cat(a, s, to, bytes);
}

/* TAG: the live heap block or anonymous mapping that starts at 'addr' takes
 * the category. Any other address is counted in tags_unknown. */
static void acct_on_tag(prof_acct_t *a, const prof_event_t *ev)
{
    unsigned cat = ev->arg < MLMEM_CATEGORY_COUNT ? (unsigned)ev->arg : MLMEM_CAT_OTHER;
    a->attr.tags++;
    prof_heap_entry_t *e = prof_heap_table_find(&a->heap, ev->addr);
    if (e) {
        acct_recat(a, &a->sites[e->site], e->size, PROF_HEAP_CAT(e), cat);
        e->born = PROF_HEAP_PACK(PROF_HEAP_BORN_NS(e), cat, PROF_EVID_TAG);
        return;
    }
    /* The mapping whose first region starts at addr. */
    size_t lo = 0, hi = a->maps.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->maps.v[mid].start < ev->addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (ev->addr != 0 && lo < a->maps.n && a->maps.v[lo].start == ev->addr &&
        !a->maps.v[lo].is_file) {
        uint32_t oi = a->maps.v[lo].origin;
        prof_acct_origin_t *o = &a->origins[oi];
        /* Every region of that mapping call changes category. */
        for (size_t i = 0; i < a->maps.n; i++) {
            const prof_region_t *r = &a->maps.v[i];
            if (!r->is_file && r->origin == oi)
                acct_recat(a, &a->sites[o->site], r->end - r->start, o->cat, cat);
        }
        o->cat = (uint8_t)cat;
        o->evidence = PROF_EVID_TAG;
        return;
    }
    a->attr.tags_unknown++;
}

/* STEP: the previous step's peak is kept; the new step starts at the live
 * bytes of now. */
static int acct_on_step(prof_acct_t *a)
{
    if (a->sum.steps_annotated > 0) {
        if (acct_grow((void **)&a->step_peaks, &a->step_cap, a->step_n + 1,
                      sizeof(*a->step_peaks)) < 0)
            return -1;
        a->step_peaks[a->step_n++] = a->step_max;
    } else {
        a->step_first_ns = a->now;
    }
    a->step_last_ns = a->now;
    a->sum.steps_annotated++;
    a->step_max = a->heap_live + a->mmap_live;
    return 0;
}

/* ---- reads from files ---------------------------------------------------- */

/* Bytes read from a file into a buffer: evidence that the block holding
 * the buffer is data. The buffer is found when it starts a live heap block
 * (reads into the middle of one are not: the heap table is keyed by start)
 * or lies in a live mapping. */
static void acct_on_file_read(prof_acct_t *a, const prof_event_t *ev)
{
    a->sum.file_read_bytes += ev->size;
    const prof_heap_entry_t *e = prof_heap_table_find(&a->heap, ev->addr);
    if (e) {
        a->sites[e->site].file_read_bytes += ev->size;
        return;
    }
    size_t lo = 0, hi = a->maps.n; /* regions sorted by start, disjoint */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->maps.v[mid].end <= ev->addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < a->maps.n && a->maps.v[lo].start <= ev->addr)
        a->sites[a->origins[a->maps.v[lo].origin].site].file_read_bytes += ev->size;
}

/* ---- timeline ------------------------------------------------------------ */

/* Halves the timeline's resolution: bucket j takes buckets 2j and 2j+1. The
 * maximum of a merged span is the larger of the two (the earlier on a tie),
 * its RSS the later one's. */
static __attribute__((noinline)) void acct_timeline_merge(prof_acct_t *a)
{
    size_t half = (a->tl_cap + 1) / 2;
    for (size_t j = 0; j < half; j++) {
        prof_acct_point_t p = a->tl[2 * j];
        if (2 * j + 1 < a->tl_cap) {
            const prof_acct_point_t *q = &a->tl[2 * j + 1];
            if (q->used) {
                uint64_t rss = q->rss;
                if (!p.used || q->live > p.live)
                    p = *q;
                p.rss = rss;
            }
        }
        a->tl[j] = p;
    }
    memset(&a->tl[half], 0, (a->tl_cap - half) * sizeof(*a->tl));
    a->tl_width *= 2;
}

/* Notes the live figures after an event at time 'now' in its bucket. */
ACCT_HOT void acct_timeline_note(prof_acct_t *a, uint64_t live)
{
    if (a->now >= a->tl_end) {
        while (a->now / a->tl_width >= a->tl_cap)
            acct_timeline_merge(a);
        a->tl_cur = (size_t)(a->now / a->tl_width);
        a->tl_end = (a->now / a->tl_width + 1) * a->tl_width;
        if (a->tl_end == 0) /* the last bucket before time wraps */
            a->tl_end = UINT64_MAX;
    }
    prof_acct_point_t *p = &a->tl[a->tl_cur];
    if (!p->used || live > p->live) {
        p->time_ns = a->now;
        p->live = live;
        p->heap = a->heap_live;
        p->mmap = a->mmap_live;
        p->used = 1;
        if (a->any_ann)
            memcpy(p->cat, a->cat_live, sizeof(p->cat));
    }
    p->rss = a->rss;
}

/* Halves the live ranges' resolution, as acct_timeline_merge does. */
static __attribute__((noinline)) void acct_ranges_merge(prof_acct_t *a)
{
    const size_t half = PROF_ACCT_RANGES / 2;
    for (size_t j = 0; j < half; j++) {
        prof_live_range_t p = a->rng[2 * j], q = a->rng[2 * j + 1];
        a->rng[j].min = p.min < q.min ? p.min : q.min;
        a->rng[j].max = q.max > p.max ? q.max : p.max;
        a->rng[j].max_ns = q.max > p.max ? q.max_ns : p.max_ns;
    }
    for (size_t j = half; j < PROF_ACCT_RANGES; j++)
        a->rng[j] = (prof_live_range_t){UINT64_MAX, 0, 0};
    a->rng_width *= 2;
}

/* Notes the live bytes after an event at time 'now' in its span. */
ACCT_HOT void acct_ranges_note(prof_acct_t *a, uint64_t live)
{
    if (a->now >= a->rng_end) {
        while (a->now / a->rng_width >= PROF_ACCT_RANGES)
            acct_ranges_merge(a);
        a->rng_cur = (size_t)(a->now / a->rng_width);
        a->rng_end = (a->now / a->rng_width + 1) * a->rng_width;
        if (a->rng_end == 0)
            a->rng_end = UINT64_MAX;
    }
    prof_live_range_t *p = &a->rng[a->rng_cur];
    if (live < p->min)
        p->min = live;
    if (live > p->max) {
        p->max = live;
        p->max_ns = a->now;
    }
}

/* ---- public -------------------------------------------------------------- */

prof_acct_t *prof_acct_new(const prof_acct_options_t *opt)
{
    prof_acct_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->tl_cap = opt && opt->timeline_points ? opt->timeline_points : 1024;
    a->tl = calloc(a->tl_cap, sizeof(*a->tl));
    if (!a->tl || prof_heap_table_init(&a->heap) < 0) {
        free(a->tl);
        free(a);
        return NULL;
    }
    a->log = malloc(PROF_ACCT_LOG_CAP * sizeof(*a->log));
    a->rng = malloc(PROF_ACCT_RANGES * sizeof(*a->rng));
    if (!a->log || !a->rng) {
        prof_heap_table_destroy(&a->heap);
        free(a->rng);
        free(a->log);
        free(a->tl);
        free(a);
        return NULL;
    }
    for (size_t i = 0; i < PROF_ACCT_RANGES; i++)
        a->rng[i] = (prof_live_range_t){UINT64_MAX, 0, 0};
    a->rng_width = 1;
    prof_imap_init(&a->maps);
    a->origin_free = ACCT_NONE;
    memset(a->tcache_idx, 0xff, sizeof(a->tcache_idx));
    a->tl_width = 1;
    return a;
}

void prof_acct_free(prof_acct_t *a)
{
    if (!a)
        return;
    prof_heap_table_destroy(&a->heap);
    prof_imap_destroy(&a->maps);
    free(a->origins);
    free(a->sites);
    free(a->site_of_stack);
    acct_map_destroy(&a->big_stacks);
    free(a->threads);
    acct_map_destroy(&a->tids);
    free(a->tl);
    free(a->step_peaks);
    free(a->log);
    free(a->rng);
    free(a->orphans);
    free(a);
}

/* What follows every event: the event count, the peak, this step's
 * maximum and the timeline. 'seq' is the event's number. */
ACCT_HOT void acct_after_event(prof_acct_t *a, uint64_t seq)
{
    a->sum.events++;
    uint64_t live = a->heap_live + a->mmap_live;
    if (live > a->sum.peak_bytes) {
        a->sum.peak_bytes = live;
        a->sum.peak_time_ns = a->now;
        a->sum.peak_seq = seq;
        a->sum.peak_heap_bytes = a->heap_live;
        a->sum.peak_mmap_bytes = a->mmap_live;
        if (a->any_ann)
            memcpy(a->cat_at_peak, a->cat_live, sizeof(a->cat_at_peak));
        a->epoch++;
    }
    if (live > a->step_max)
        a->step_max = live;
    acct_timeline_note(a, live);
    acct_ranges_note(a, live);
}

/* Counts a block of 'size' bytes at 'addr' made by thread 'ti' at site 'si'
 * (in the category of the thread's open region) that never enters the heap
 * table: the caller lets it go with acct_heap_release(a, &block, ...). */
static prof_heap_entry_t acct_charge_unlisted(prof_acct_t *a, uint64_t addr, uint64_t size,
                                              uint32_t si, uint32_t ti)
{
    unsigned cat = a->threads[ti].region_cat;
    unsigned evidence = cat == PROF_CAT_NONE ? PROF_EVID_NONE : PROF_EVID_REGION;
    prof_heap_entry_t block = {.addr = addr,
                               .size = size,
                               .born = PROF_HEAP_PACK(a->now, cat, evidence),
                               .site = si,
                               .thread = ti};
    acct_charge(a, si, ti, size, 0, cat);
    return block;
}

/* An ALLOC that stands for its FREE too (freed_next): exactly the figures
 * of acct_on_alloc, then acct_on_free by the same thread with nothing
 * between (so a temporary, of lifetime 0, unless the ALLOC says the thread
 * freed a block since it made this one), without the block ever entering
 * the table. */
static int acct_apply_alloc_freed(prof_acct_t *a, const prof_event_t *ev)
{
    uint32_t si, ti;
    if (ev->addr == 0) { /* nothing to track: two events counted */
        acct_after_event(a, ev->seq);
        acct_after_event(a, ev->seq + 1);
        return 0;
    }
    if (acct_thread(a, ev->tid, &ti) < 0 || acct_site(a, ev->stack_id, &si) < 0) {
        a->sum.lost_events += 2;
        return -1;
    }
    prof_heap_entry_t *old = prof_heap_table_find(&a->heap, ev->addr);
    if (old) { /* its free was lost: retired, as acct_heap_add does */
        acct_heap_release(a, old, old->thread, 0);
        prof_heap_table_remove(&a->heap, old);
    }
    prof_heap_entry_t block = acct_charge_unlisted(a, ev->addr, ev->size, si, ti);
    acct_after_event(a, ev->seq);
    acct_heap_release(a, &block, ti, !ev->not_latest);
    a->threads[ti].last_alloc = 0;
    acct_after_event(a, ev->seq + 1);
    return 0;
}

/* TEMPORARIES: 'count' blocks of 'bytes' in all, of one stack, each freed
 * by this thread before its next event (preload/fold.c). Exactly the
 * figures of sending each block's ALLOC and FREE, that stack (none before
 * version 5): the largest is made and freed as one, with the bytes the
 * thread held beside it at its fullest ('most', version 6: nested blocks,
 * and blocks it still holds, whose ALLOCs come next) live with it for
 * that instant, so that the peak is what the thread's allocations reached;
 * the rest only counted, each with lifetime 0. Temporaries are all but the
 * nested ones (freed after the thread made or freed another block). */
static int acct_apply_temporaries(prof_acct_t *a, const prof_event_t *ev)
{
    uint64_t count = ev->arg, bytes = ev->size, largest = ev->old_size;
    uint64_t beside = ev->addr > largest ? ev->addr - largest : 0;
    uint64_t temporaries = count - ev->old_addr;
    uint32_t si, ti;
    if (count == 0)
        return 0;
    if (acct_thread(a, ev->tid, &ti) < 0 || acct_site(a, ev->stack_id, &si) < 0) {
        a->sum.lost_events += 2 * count;
        return -1;
    }
    prof_acct_site_t *s = &a->sites[si];
    prof_acct_thread_t *t = &a->threads[ti];
    prof_heap_entry_t block = acct_charge_unlisted(a, 0, largest, si, ti);
    if (beside) { /* released with the block */
        block.size += beside;
        acct_live_add(a, s, t, beside, 0);
        if (PROF_HEAP_CAT(&block) != PROF_CAT_NONE)
            acct_add_cat(a, s, PROF_HEAP_CAT(&block), beside);
    }
    acct_after_event(a, ev->seq);
    acct_heap_release(a, &block, ti, temporaries > 0);
    a->threads[ti].last_alloc = 0;

    uint64_t rest = count - 1, rest_bytes = bytes - largest;
    uint64_t rest_temporaries = temporaries > 0 ? temporaries - 1 : 0;
    for (uint64_t i = 0; i < rest && a->log_n < PROF_ACCT_LOG_CAP; i++)
        a->log[a->log_n++] = (prof_acct_logged_t){s->stack_id, a->now};
    if (PROF_HEAP_CAT(&block) != PROF_CAT_NONE)
        a->attr.region_allocations += rest;
    s->allocations += rest;
    s->bytes_allocated += rest_bytes;
    s->frees += rest;
    s->temporaries += rest_temporaries;
    t->allocations += rest;
    t->bytes_allocated += rest_bytes;
    t->frees += rest;
    a->sum.total_allocations += rest;
    a->sum.total_bytes += rest_bytes;
    a->sum.total_frees += rest;
    a->sum.temporary_allocations += rest_temporaries;
    /* Events: the largest one's pair counts two, the rest two each. */
    a->sum.events += 2 * rest;
    acct_after_event(a, ev->seq);
    return 0;
}

/* ALLOC_LATE: an allocation sent after other threads' events (the shim held
 * it, preload/fold.c); 'arg' is the seq counter when it was made. If a free
 * of its address came in between, that free was this block's: both are
 * counted, and the block never lives here. Otherwise it is an ALLOC. */
static int acct_on_alloc_late(prof_acct_t *a, const prof_event_t *ev)
{
    uint32_t si, ti, freer;
    if (ev->addr == 0 || !a->orphans)
        return acct_on_alloc(a, ev);
    /* Tables first: running out of memory must not lose the free it claims. */
    if (acct_thread(a, ev->tid, &ti) < 0 || acct_site(a, ev->stack_id, &si) < 0)
        return -1;
    if (!acct_orphan_take(a, ev->addr, ev->arg, &freer))
        return acct_on_alloc(a, ev);
    a->sum.unmatched_frees--;
    prof_heap_entry_t block = acct_charge_unlisted(a, ev->addr, ev->size, si, ti);
    acct_heap_release(a, &block, freer, 0);
    return 0;
}

int prof_acct_apply(prof_acct_t *a, const prof_event_t *ev)
{
    if (ev->time_ns > a->now)
        a->now = ev->time_ns;
    a->seq = ev->seq;
    if (ev->freed_next && ev->type == MLMEM_EV_ALLOC)
        return acct_apply_alloc_freed(a, ev);
    if (ev->type == MLMEM_EV_TEMPORARIES)
        return acct_apply_temporaries(a, ev);
    int rc = 0;
    switch (ev->type) {
    case MLMEM_EV_ALLOC:
        rc = acct_on_alloc(a, ev);
        break;
    case MLMEM_EV_FREE:
        rc = acct_on_free(a, ev);
        break;
    case MLMEM_EV_ALLOC_LATE:
        rc = acct_on_alloc_late(a, ev);
        break;
    case MLMEM_EV_REALLOC:
        rc = acct_on_realloc(a, ev);
        break;
    case MLMEM_EV_MMAP:
        rc = acct_on_mmap(a, ev, 0);
        break;
    case MLMEM_EV_MMAP_FILE:
        rc = acct_on_mmap(a, ev, 1);
        break;
    case MLMEM_EV_MUNMAP:
        rc = acct_on_munmap(a, ev);
        break;
    case MLMEM_EV_MREMAP:
        rc = acct_on_mremap(a, ev);
        break;
    case MLMEM_EV_RSS:
        a->rss = ev->size;
        a->sum.rss_samples++;
        if (ev->size > a->sum.peak_rss_bytes) {
            a->sum.peak_rss_bytes = ev->size;
            a->sum.peak_rss_time_ns = a->now;
        }
        break;
    case MLMEM_EV_STEP:
        a->current_step = ev->arg;
        a->current_phase = MLMEM_PHASE_NONE;
        rc = acct_on_step(a);
        break;
    case MLMEM_EV_PHASE:
        if (ev->arg < 32) {
            a->sum_phases |= 1u << ev->arg;
            a->current_phase = (uint32_t)ev->arg;
        }
        break;
    case MLMEM_EV_REGION_BEGIN:
        rc = acct_on_region_begin(a, ev);
        break;
    case MLMEM_EV_REGION_END:
        rc = acct_on_region_end(a, ev);
        break;
    case MLMEM_EV_TAG:
        acct_on_tag(a, ev);
        break;
    case MLMEM_EV_FILE_READ:
        acct_on_file_read(a, ev);
        break;
    default: /* FORK: nothing to account */
        break;
    }
    if (rc < 0) {
        a->sum.lost_events++;
        return -1;
    }
    acct_after_event(a, ev->seq);
    return 0;
}

int prof_acct_worth_prefetching(const prof_acct_t *a)
{
    /* 1 MiB of slots: a core's L2 here. Below, the slots are mostly in
     * cache, and delaying events cost the storm's replay 10%. */
    return (a->heap.mask + 1) * sizeof(prof_heap_entry_t) >= ((size_t)1 << 20);
}

void prof_acct_prefetch(const prof_acct_t *a, const prof_event_t *ev)
{
    switch (ev->type) {
    case MLMEM_EV_REALLOC:
        prof_heap_table_prefetch(&a->heap, ev->old_addr);
        /* fall through */
    case MLMEM_EV_ALLOC:
    case MLMEM_EV_ALLOC_LATE:
    case MLMEM_EV_FREE:
        prof_heap_table_prefetch(&a->heap, ev->addr);
        break;
    default:
        break;
    }
}

void prof_acct_set_dropped(prof_acct_t *a, uint64_t dropped)
{
    a->sum.dropped_events = dropped;
}

void prof_acct_set_stacks_lost(prof_acct_t *a, uint64_t stacks_lost)
{
    a->sum.stacks_lost = stacks_lost;
}

void prof_acct_add_lost(prof_acct_t *a, uint64_t lost)
{
    a->sum.lost_events += lost;
}

/* A thread that cannot be created for lack of memory stays unnamed. Names
 * longer than 15 bytes are cut, as the kernel does. */
void prof_acct_thread_name(prof_acct_t *a, uint32_t tid, const char *name)
{
    uint32_t ti;
    if (!name || acct_thread(a, tid, &ti) < 0)
        return;
    prof_acct_thread_t *t = &a->threads[ti];
    strncpy(t->name, name, sizeof(t->name) - 1);
    t->name[sizeof(t->name) - 1] = '\0';
}

uint64_t prof_acct_live_bytes(const prof_acct_t *a)
{
    return a->heap_live + a->mmap_live;
}

uint64_t prof_acct_peak_bytes(const prof_acct_t *a)
{
    return a->sum.peak_bytes;
}

uint64_t prof_acct_peak_seq(const prof_acct_t *a)
{
    return a->sum.peak_seq;
}

static int acct_cmp_site(const void *x, const void *y)
{
    const prof_site_t *p = x, *q = y;
    if (p->live_bytes_at_peak != q->live_bytes_at_peak)
        return p->live_bytes_at_peak > q->live_bytes_at_peak ? -1 : 1;
    if (p->bytes_allocated != q->bytes_allocated)
        return p->bytes_allocated > q->bytes_allocated ? -1 : 1;
    return p->stack_id < q->stack_id ? -1 : p->stack_id > q->stack_id;
}

static int acct_cmp_thread(const void *x, const void *y)
{
    const prof_thread_t *p = x, *q = y;
    if (p->bytes_allocated != q->bytes_allocated)
        return p->bytes_allocated > q->bytes_allocated ? -1 : 1;
    return p->tid < q->tid ? -1 : p->tid > q->tid;
}

/* Sites without allocations (created for an event that then ran out of
 * memory) and threads that neither allocated nor freed are left out. */
int prof_acct_result(const prof_acct_t *a, prof_result_t *out)
{
    size_t ns = 0, nt = 0, np = 0;
    for (size_t i = 0; i < a->site_n; i++)
        ns += a->sites[i].allocations > 0;
    for (size_t i = 0; i < a->thread_n; i++)
        nt += a->threads[i].allocations > 0 || a->threads[i].frees > 0;
    for (size_t i = 0; i < a->tl_cap; i++)
        np += a->tl[i].used;
    prof_site_t *sites = ns ? calloc(ns, sizeof(*sites)) : NULL;
    prof_thread_t *threads = nt ? calloc(nt, sizeof(*threads)) : NULL;
    prof_timeline_point_t *tl = np ? calloc(np, sizeof(*tl)) : NULL;
    if ((ns && !sites) || (nt && !threads) || (np && !tl)) {
        free(sites);
        free(threads);
        free(tl);
        return -1;
    }

    size_t k = 0;
    for (size_t i = 0; i < a->site_n; i++) {
        const prof_acct_site_t *s = &a->sites[i];
        if (s->allocations == 0)
            continue;
        int stale = s->epoch != a->epoch; /* unchanged since the peak */
        prof_site_t *o = &sites[k++];
        o->stack_id = s->stack_id;
        o->allocations = s->allocations;
        o->frees = s->frees;
        o->bytes_allocated = s->bytes_allocated;
        o->live_bytes_at_peak = stale ? s->live_bytes : s->at_peak_bytes;
        o->live_allocations_at_peak = stale ? s->live_allocs : s->at_peak_allocs;
        o->peak_live_bytes = s->peak_live_bytes;
        o->live_bytes = s->live_bytes;
        o->live_allocations = s->live_allocs;
        o->temporary_allocations = s->temporaries;
        o->largest_allocation = s->largest;
        o->lifetime_min_ns = s->frees ? s->lifetime_min : 0;
        o->lifetime_max_ns = s->lifetime_max;
        o->lifetime_sum_ns = s->lifetime_sum;
        o->is_mmap = s->is_mmap;
        o->unannotated_bytes_at_peak = o->live_bytes_at_peak -
                                       (stale ? s->ann_live : s->ann_at_peak);
        o->unannotated_bytes = s->live_bytes - s->ann_live;
        o->first_alloc_ns = s->first_born_ns;
        o->last_alloc_ns = s->last_born_ns;
        o->first_free_ns = s->frees ? s->first_free_ns : 0;
        o->file_read_bytes = s->file_read_bytes;
        o->annotated_category = s->ann_cat ? (int32_t)s->ann_cat - 1 : -1;
        o->annotated_mixed = s->ann_mixed;
    }
    if (ns > 1)
        qsort(sites, ns, sizeof(*sites), acct_cmp_site);

    k = 0;
    for (size_t i = 0; i < a->thread_n; i++) {
        const prof_acct_thread_t *t = &a->threads[i];
        if (t->allocations == 0 && t->frees == 0)
            continue;
        prof_thread_t *o = &threads[k++];
        o->tid = t->tid;
        memcpy(o->name, t->name, sizeof(o->name));
        o->allocations = t->allocations;
        o->frees = t->frees;
        o->bytes_allocated = t->bytes_allocated;
        o->live_bytes = t->live_bytes;
        o->peak_live_bytes = t->peak_live_bytes;
        o->live_bytes_at_peak = t->epoch != a->epoch ? t->live_bytes : t->at_peak_bytes;
    }
    if (nt > 1)
        qsort(threads, nt, sizeof(*threads), acct_cmp_thread);

    k = 0;
    for (size_t i = 0; i < a->tl_cap; i++) {
        const prof_acct_point_t *p = &a->tl[i];
        if (!p->used)
            continue;
        prof_timeline_point_t *o = &tl[k++];
        *o = (prof_timeline_point_t){p->time_ns, p->live, p->heap, p->mmap, p->rss, {0}, 0};
        memcpy(o->category_bytes, p->cat, sizeof(o->category_bytes));
        uint64_t ann = 0;
        for (size_t c = 0; c < MLMEM_CATEGORY_COUNT; c++)
            ann += p->cat[c];
        o->unannotated_bytes = p->live - ann;
    }

    uint64_t *peaks = NULL;
    size_t npk = a->sum.steps_annotated ? a->step_n + 1 : 0;
    if (npk) {
        peaks = malloc(npk * sizeof(*peaks));
        if (!peaks) {
            free(sites);
            free(threads);
            free(tl);
            return -1;
        }
        if (a->step_n) /* step_peaks is NULL before the second step */
            memcpy(peaks, a->step_peaks, a->step_n * sizeof(*peaks));
        peaks[a->step_n] = a->step_max; /* the last step runs to the end */
    }
    memset(&out->steps, 0, sizeof(out->steps));
    out->steps.source = npk ? "annotations" : "none";
    out->steps.count = a->sum.steps_annotated;
    out->steps.peak_bytes = peaks;
    out->steps.peak_count = npk;
    out->steps.phases_seen = a->sum_phases;
    out->steps.current_step = a->current_step;
    out->steps.current_phase = a->current_phase;
    out->steps.first_step_ns = a->step_first_ns;
    out->steps.last_step_ns = a->step_last_ns;
    if (a->sum.steps_annotated > 1)
        out->steps.period_ns =
            (a->step_last_ns - a->step_first_ns) / (a->sum.steps_annotated - 1);
    for (size_t c = 0; c < MLMEM_CATEGORY_COUNT; c++) {
        out->annotated_at_peak[c] = a->cat_at_peak[c];
        out->annotated_at_end[c] = a->cat_live[c];
        out->annotated_max[c] = a->cat_max[c];
    }
    out->attribution = a->attr;

    out->summary = a->sum;
    out->summary.live_bytes = a->heap_live + a->mmap_live;
    out->summary.leaked_bytes = out->summary.live_bytes;
    out->summary.leaked_allocations = a->heap.count + a->live_origins;
    out->summary.file_mapped_bytes = a->file_live;
    out->summary.duration_ns = a->now;
    out->sites = sites;
    out->site_count = ns;
    out->threads = threads;
    out->thread_count = nt;
    out->timeline = tl;
    out->timeline_count = np;
    return 0;
}

const prof_live_range_t *prof_acct_live_ranges(const prof_acct_t *a, size_t *count,
                                               uint64_t *width_ns)
{
    *count = a->rng_end ? a->rng_cur + 1 : 0;
    if (width_ns)
        *width_ns = a->rng_width;
    return a->rng;
}

const prof_acct_logged_t *prof_acct_alloc_log(const prof_acct_t *a, size_t *count)
{
    *count = a->log_n;
    return a->log;
}

/* ---- one thread's sites, on demand ---------------------------------------- */

/* (thread index, site index) -> entry of the output, for
 * prof_acct_thread_sites(): a dense table (entry + 1, 0: none) when threads
 * x sites is small, else open addressing over a power-of-two array. */
typedef struct {
    uint32_t *dense;
    size_t dense_cols;        /* sites per row; rows: threads, or 1        */
    int by_thread;            /* dense rows are threads                    */
    uint64_t *keys;           /* thread << 32 | site; UINT64_MAX: empty     */
    uint32_t *vals;
    size_t mask;
    prof_thread_site_t *v;
    size_t n, cap;
} acct_ts_acc_t;

#define ACCT_TS_DENSE (1u << 20) /* dense table cells at most (4 MiB)       */

static int acct_ts_grow(acct_ts_acc_t *h)
{
    size_t cap = h->keys ? (h->mask + 1) * 2 : 256;
    uint64_t *k = malloc(cap * sizeof(*k));
    uint32_t *v = malloc(cap * sizeof(*v));
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    memset(k, 0xff, cap * sizeof(*k));
    for (size_t i = 0; h->keys && i <= h->mask; i++) {
        if (h->keys[i] == UINT64_MAX)
            continue;
        size_t j = (size_t)((h->keys[i] * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
        while (k[j] != UINT64_MAX)
            j = (j + 1) & (cap - 1);
        k[j] = h->keys[i];
        v[j] = h->vals[i];
    }
    free(h->keys);
    free(h->vals);
    h->keys = k;
    h->vals = v;
    h->mask = cap - 1;
    return 0;
}

/* Adds to the entry of thread 'ti' and site 'si'. Returns 0 or -1. */
static int acct_ts_add(const prof_acct_t *a, acct_ts_acc_t *h, uint32_t ti, uint32_t si,
                       uint64_t bytes, uint64_t allocs, int mapped, uint64_t born_ns)
{
    uint32_t *slot;
    if (h->dense) {
        slot = &h->dense[(h->by_thread ? (size_t)ti * h->dense_cols : 0) + si];
    } else {
        if (!h->keys || (h->n + 1) * 2 > h->mask + 1)
            if (acct_ts_grow(h) < 0)
                return -1;
        uint64_t key = (uint64_t)ti << 32 | si;
        size_t j = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & h->mask;
        while (h->keys[j] != UINT64_MAX && h->keys[j] != key)
            j = (j + 1) & h->mask;
        if (h->keys[j] == UINT64_MAX) {
            h->keys[j] = key;
            h->vals[j] = 0;
        }
        slot = &h->vals[j];
    }
    if (*slot == 0) {
        if (acct_grow((void **)&h->v, &h->cap, h->n + 1, sizeof(*h->v)) < 0)
            return -1;
        h->v[h->n++] = (prof_thread_site_t){a->threads[ti].tid, a->sites[si].stack_id, 0, 0,
                                            0, born_ns};
        *slot = (uint32_t)h->n; /* entry + 1 */
    }
    prof_thread_site_t *e = &h->v[*slot - 1];
    e->live_bytes += bytes;
    e->live_allocations += allocs;
    if (mapped)
        e->mmap_bytes += bytes;
    if (born_ns < e->oldest_born_ns)
        e->oldest_born_ns = born_ns;
    return 0;
}

static int acct_cmp_thread_site(const void *x, const void *y)
{
    const prof_thread_site_t *p = x, *q = y;
    if (p->tid != q->tid)
        return p->tid < q->tid ? -1 : 1;
    if (p->live_bytes != q->live_bytes)
        return p->live_bytes > q->live_bytes ? -1 : 1;
    return p->stack_id < q->stack_id ? -1 : p->stack_id > q->stack_id;
}

int prof_acct_thread_sites(const prof_acct_t *a, uint32_t tid, prof_thread_site_t **out,
                           size_t *n)
{
    *out = NULL;
    *n = 0;
    int all = tid == PROF_ACCT_ALL_THREADS;
    uint32_t want = ACCT_NONE;
    if (!all && (want = acct_map_get(&a->tids, tid)) == ACCT_NONE)
        return 0;
    acct_ts_acc_t h = {0};
    int rc = 0;
    size_t rows = all ? a->thread_n : 1;
    if (a->site_n && rows && rows <= ACCT_TS_DENSE / a->site_n) {
        h.dense = calloc(rows * a->site_n, sizeof(*h.dense));
        h.dense_cols = a->site_n;
        h.by_thread = all;
    }
    /* Heap blocks: the entry names its site and thread. */
    for (size_t i = 0; rc == 0 && a->heap.slots && i <= a->heap.mask; i++) {
        const prof_heap_entry_t *e = &a->heap.slots[i];
        if (e->addr == 0 || (!all && e->thread != want))
            continue;
        rc = acct_ts_add(a, &h, e->thread, e->site, e->size, 1, 0, PROF_HEAP_BORN_NS(e));
    }
    /* Anonymous mappings: bytes per region, one allocation per mapping
     * call that still has bytes (its origin), however many pieces. */
    for (size_t i = 0; rc == 0 && i < a->maps.n; i++) {
        const prof_region_t *r = &a->maps.v[i];
        if (r->is_file)
            continue;
        const prof_acct_origin_t *o = &a->origins[r->origin];
        if (!all && o->thread != want)
            continue;
        rc = acct_ts_add(a, &h, o->thread, o->site, r->end - r->start, 0, 1, o->born_ns);
    }
    for (size_t i = 0; rc == 0 && i < a->origin_n; i++) {
        const prof_acct_origin_t *o = &a->origins[i];
        if (o->pieces == 0 || (!all && o->thread != want))
            continue;
        rc = acct_ts_add(a, &h, o->thread, o->site, 0, 1, 1, o->born_ns);
    }
    free(h.dense);
    free(h.keys);
    free(h.vals);
    if (rc != 0) {
        free(h.v);
        return -1;
    }
    if (h.n > 1)
        qsort(h.v, h.n, sizeof(*h.v), acct_cmp_thread_site);
    *out = h.v;
    *n = h.n;
    return 0;
}
