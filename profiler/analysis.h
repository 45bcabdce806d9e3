/*
 * analysis.h - everything the analyzer does with one process's stream:
 * decode -> reorder by seq -> exact accounting, plus the stack table and
 * module map needed to symbolize the result. One analysis per stream (one
 * exec image of one process); a session (session.h) holds all of a run's.
 *
 * Feed raw stream bytes as they arrive (live) or as a trace replays them;
 * the results are identical because decoding does not depend on chunking
 * and accounting sees events in seq order either way.
 *
 * Not thread-safe.
 */
#ifndef PROF_ANALYSIS_H
#define PROF_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "prof_result.h"

typedef struct prof_analysis prof_analysis_t;

/* Returns a new analysis, or NULL if out of memory. */
prof_analysis_t *prof_analysis_new(void);

/* Releases 'a'. No operation if NULL. */
void prof_analysis_free(prof_analysis_t *a);

/* Decodes and applies stream bytes. Returns 0, or -1 when the stream is
 * malformed (prof_analysis_error() says where and why; later calls keep
 * returning -1, and what came before the error stays analyzed). */
int prof_analysis_feed(prof_analysis_t *a, const uint8_t *data, size_t len);

/* The stream ended: releases held events (counting gaps as lost). Returns
 * 0, or -1 if the stream stopped inside a record (error set). */
int prof_analysis_finish(prof_analysis_t *a);

const char *prof_analysis_error(const prof_analysis_t *a);

/* Identity from the HELLO record (0 before it arrived). */
int32_t prof_analysis_pid(const prof_analysis_t *a);
int prof_analysis_has_end(const prof_analysis_t *a);

/* Fills 'out' (zeroed first) with the process, its figures and its sites;
 * with 'symbolize', site frames are resolved with libdw (slow the first
 * time for each module). 'max_sites' 0 means all. Every site is
 * attributed (attribution.h: categories, steps) before sites beyond
 * 'max_sites' are cut, so with 'symbolize' all sites are symbolized.
 * Returns 0, or -1 if out of memory. The caller releases 'out' with prof_result_free(). */
int prof_analysis_result(prof_analysis_t *a, int symbolize, size_t max_sites,
                         prof_result_t *out);

/* Attribution rules from the user (prof_rules_load()), tried before the
 * built-in ones; NULL (the default) for built-in only. 'rules' must outlive
 * 'a'. */
typedef struct prof_rules prof_rules_t;
void prof_analysis_set_rules(prof_analysis_t *a, const prof_rules_t *rules);

/* Which process's stacks to symbolize ahead (symbols.h,
 * prof_symbols_prefetch), for a result that will be symbolized: 'pid', or
 * -1 for whichever process this stream turns out to be; 0 (the default)
 * for none. Decided when the stream's HELLO arrives. */
void prof_analysis_prefetch_symbols(prof_analysis_t *a, int32_t pid);

/* Calls hook(ctx) once, right after the event numbered 'seq' is applied:
 * the figures are then those of that moment, and the hook may take a
 * result (prof_analysis_result(); not feed or finish). A replay uses it to
 * show the peak as it was, not at the end of a slice of the stream. */
void prof_analysis_set_mark(prof_analysis_t *a, uint64_t seq, void (*hook)(void *ctx),
                            void *ctx);

/* prof_symbols_finish() for its symbolizer; prof_analysis_free() does it
 * too. */
void prof_analysis_finish_symbols(prof_analysis_t *a);

/* Whether this stream's stacks are symbolized ahead (decided at HELLO). */
int prof_analysis_prefetching(const prof_analysis_t *a);

/* Cheap live figures for displays. */
uint64_t prof_analysis_live_bytes(const prof_analysis_t *a);
uint64_t prof_analysis_peak_bytes(const prof_analysis_t *a);
uint64_t prof_analysis_peak_seq(const prof_analysis_t *a); /* the event that reached it */
uint64_t prof_analysis_events(const prof_analysis_t *a);

/* The accounting state (accounting.h), for figures the result does not
 * carry, computed on demand (prof_acct_thread_sites(): what one thread
 * holds per site; the dashboard's thread filter). Owned by 'a'; read it
 * only between feeds, from the thread that feeds. */
const struct prof_acct *prof_analysis_acct(const prof_analysis_t *a);

#endif /* PROF_ANALYSIS_H */
