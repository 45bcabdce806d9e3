/*
 * accounting.h - exact heap accounting of one process from its ordered
 * events: the live-heap table, counts and bytes, live bytes over time, the
 * peak and what was live at it (grouped by stack), leaks, temporaries,
 * lifetimes, per-thread and per-stack figures, RSS.
 *
 * Feed events in seq order (the reorder stage guarantees it) with
 * prof_acct_apply(); ask for figures at any time with prof_acct_result()
 * (the live dashboard does, mid-run). Memory is bounded by the live
 * allocations, the number of distinct stacks and threads, and the fixed
 * timeline size, never by the number of events.
 *
 * Annotations (annotate.h) give categories: a thread's open region (a
 * stack 16 deep per thread; deeper regions are counted and the 16th
 * applies) names the category of what the thread allocates, a TAG
 * re-categorizes the live block or anonymous mapping that starts at its
 * address (other addresses are counted in tags_unknown), a realloc outside
 * any region keeps the old block's category. Live bytes are kept per
 * category, with each category's maximum and the split at the global peak
 * (exact); bytes no annotation named are kept per site, so attribution can
 * classify them later. STEP marks give each step's peak; PHASE marks are
 * collected as a set.
 *
 * Edge cases, all counted, none fatal:
 * - FREE / MUNMAP of an address that is not live: unmatched_frees++.
 * - ALLOC at an address that is still live (an event was dropped): the old
 *   block is retired as if freed first.
 * - MUNMAP may cover part of a mapping, or several: exactly the overlapping
 *   bytes are released, and a mapping cut in the middle becomes two.
 * - REALLOC with old_addr 0 is an allocation; the old block's bytes leave
 *   and the new block's arrive in the same event, so a realloc never makes
 *   a false peak.
 *
 * Not thread-safe: one thread applies events and reads results (the TUI
 * takes a snapshot under its own lock).
 */
#ifndef PROF_ACCOUNTING_H
#define PROF_ACCOUNTING_H

#include <stddef.h>
#include <stdint.h>

#include "prof_event.h"
#include "prof_result.h"

typedef struct prof_acct prof_acct_t;

typedef struct {
    size_t timeline_points;  /* at most this many points; 0 means 1024 */
} prof_acct_options_t;

/* Returns a new accounting state, or NULL if out of memory. 'opt' may be
 * NULL for defaults. */
prof_acct_t *prof_acct_new(const prof_acct_options_t *opt);

/* Releases 'a'. No operation if 'a' is NULL. */
void prof_acct_free(prof_acct_t *a);

/* Applies one event. Returns 0, or -1 if memory ran out (the event is then
 * counted as lost and 'a' stays usable). */
int prof_acct_apply(prof_acct_t *a, const prof_event_t *ev);

/* Whether the live-heap table has outgrown the processor's caches, so
 * that applying events a few behind the one prefetched for pays. */
int prof_acct_worth_prefetching(const prof_acct_t *a);

/* Starts loading the live-heap slots that prof_acct_apply() of 'ev' will
 * look at first, so that a caller who applies events a few behind the one
 * it prefetches for does not wait on each one's cache miss. */
void prof_acct_prefetch(const prof_acct_t *a, const prof_event_t *ev);

/* Records the shim's cumulative dropped-event count and the number of seq
 * gaps the reorder stage gave up on; both go to the summary. */
void prof_acct_set_dropped(prof_acct_t *a, uint64_t dropped);
void prof_acct_add_lost(prof_acct_t *a, uint64_t lost);
/* Records how many allocations the shim sent without the stack they
 * should have had (its stack table or a ring full, or a signal handler
 * allocating while its thread took a stack). */
void prof_acct_set_stacks_lost(prof_acct_t *a, uint64_t stacks_lost);

/* Records a thread's name (from a THREAD record). */
void prof_acct_thread_name(prof_acct_t *a, uint32_t tid, const char *name);

/* Fills out->summary, out->sites (stack_id and figures; frames NULL),
 * out->threads, out->timeline, out->steps (annotated steps), out->attribution
 * and out->annotated_* from the current state (categories are left to
 * attribution.h). Leaves
 * out->process and out->children alone. Returns 0, or -1 if out of memory
 * (then 'out' holds nothing new). Callable mid-stream: "at the end" figures
 * then mean "now". */
int prof_acct_result(const prof_acct_t *a, prof_result_t *out);

/* One allocation of the log kept for step detection (the first
 * PROF_ACCT_LOG_CAP allocations of the stream). */
#define PROF_ACCT_LOG_CAP 65536
typedef struct {
    uint32_t stack_id;
    uint64_t time_ns;
} prof_acct_logged_t;

/* The allocation log, in order, and in '*count' how many entries it holds.
 * Owned by 'a': valid until its next event. */
const prof_acct_logged_t *prof_acct_alloc_log(const prof_acct_t *a, size_t *count);

/* The lowest and highest live bytes after any event in one span of the
 * run (min UINT64_MAX, max 0: no event in it), and when the span first
 * reached its highest (the time of that event). Span i covers
 * [i * width, (i + 1) * width) ns from the stream's start; the width is a
 * power of two that doubles (neighbours merge) whenever the run outgrows
 * PROF_ACCT_RANGES spans, so a run of any length has at least half that
 * many: fine enough for each step's peak and phases when a run has
 * hundreds of steps. */
#define PROF_ACCT_RANGES 16384
typedef struct {
    uint64_t min;
    uint64_t max;
    uint64_t max_ns;    /* the first event after which live bytes were max */
} prof_live_range_t;

/* The spans up to the current one, in place (valid until the next event
 * is applied): stores how many in *count and the span width in *width_ns
 * (may be NULL). */
const prof_live_range_t *prof_acct_live_ranges(const prof_acct_t *a, size_t *count,
                                               uint64_t *width_ns);

/* Current live bytes and peak, cheap, for live displays. */
uint64_t prof_acct_live_bytes(const prof_acct_t *a);
uint64_t prof_acct_peak_bytes(const prof_acct_t *a);
uint64_t prof_acct_peak_seq(const prof_acct_t *a); /* the event that reached it */

/* What one thread holds at one site now (prof_acct_thread_sites()). */
typedef struct {
    uint32_t tid;
    uint32_t stack_id;           /* the site                                */
    uint64_t live_bytes;         /* bytes the thread allocated there that
                                    are still live: heap blocks plus the
                                    still-mapped bytes of anonymous mappings */
    uint64_t live_allocations;   /* live heap blocks + mapping calls with
                                    bytes left                              */
    uint64_t mmap_bytes;         /* of live_bytes, in anonymous mappings    */
    uint64_t oldest_born_ns;     /* birth time of the oldest of them        */
} prof_thread_site_t;

/* 'tid' for every thread at once. */
#define PROF_ACCT_ALL_THREADS UINT32_MAX

/* On demand, off the event path: scans the live heap blocks and the live
 * anonymous mappings and returns in *out (malloc'ed, the caller frees it)
 * and *n one entry per site where thread 'tid' (or every thread, with
 * PROF_ACCT_ALL_THREADS: one entry per thread and site) holds live
 * allocations, sorted by tid, then live bytes descending, then stack id.
 * Exact: a thread's entries add up to its prof_thread_t.live_bytes, and
 * over all threads a site's to its live_bytes and live_allocations. A tid
 * the state does not know gives 0 entries. Cost: O(live blocks + mappings).
 * Returns 0, or -1 if out of memory (*out NULL, *n 0). */
int prof_acct_thread_sites(const prof_acct_t *a, uint32_t tid, prof_thread_site_t **out,
                           size_t *n);

#endif /* PROF_ACCOUNTING_H */
