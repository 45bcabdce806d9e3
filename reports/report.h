/*
 * report.h - turns an analysis result (profiler/prof_result.h) into the
 * JSON report (schema "mlmem-report/1", documented in docs/report-schema.md)
 * and the short text summary that `mlmem run` and `mlmem report` print.
 *
 * The functions only read the result; they never exit or print on their
 * own: report_text_write() writes only to the stream it is given, and every
 * function returns a status. Strings in the result need not be valid UTF-8:
 * the JSON side replaces invalid bytes with U+FFFD. Thread-safe as long as
 * the result is not changed meanwhile (no shared state).
 */
#ifndef REPORT_H
#define REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "profiler/prof_result.h"

/* Options of the text report. Zero fields take the defaults, so
 * `report_text_options_t o = {0};` is a valid set of options. */
typedef struct {
    size_t max_sites;    /* sites listed per section; 0 = 10             */
    size_t max_frames;   /* frames shown per site; 0 = 8                 */
    int use_color;       /* 1: ANSI bold headings and a red warning      */
} report_text_options_t;

#define REPORT_SCHEMA "mlmem-report/1"

/* The JSON report lists at most this many sites (the first, in the
 * result's order); the rest are counted in "sites_omitted". With
 * --stacks=all a Python program has hundreds of thousands of stacks. */
#define REPORT_JSON_MAX_SITES 20000
#define REPORT_TEXT_MAX_SITES 10
#define REPORT_TEXT_MAX_FRAMES 8
#define REPORT_TEXT_WIDTH 99           /* longest text line, in bytes    */
#define REPORT_BYTES_BUFLEN 16         /* enough for report_format_bytes */
#define REPORT_DURATION_BUFLEN 32      /* enough for report_format_duration */

/* Builds the whole JSON document for 'r'. Returns a new reference the caller
 * json_decref()s, or NULL if out of memory. Unsigned figures above
 * 2^63 - 1 are written as 2^63 - 1 (JSON integers are signed 64-bit here). */
json_t *report_json_build(const prof_result_t *r);

/* Writes the JSON report of 'r' to 'path' atomically: a temporary file in
 * the same directory is written, flushed to disk and renamed over 'path',
 * so a reader never sees half a report and a failure leaves any older file
 * in place. The file is created with mode 0644 less the umask. Returns 0, or
 * -1 with a message naming the path and the cause in 'err' (when err is not
 * NULL and errlen > 0). */
int report_json_write(const prof_result_t *r, const char *path, char *err, size_t errlen);

/* Reads back from the JSON report at 'path' what advice and diffs need
 * (profiler/advice.h, report_diff_compute): process.command and how it
 * ended, the summary's figures, the categories at the peak, the steps, the
 * sites (figures, category, stack id and frames) and the timeline's live
 * bytes. 'out' is zeroed first and owns what it gets (prof_result_free()
 * releases it). A report without categories reads with category_count 0.
 * Returns 0, or -1 with a message naming the file and the field in 'err' (a
 * report of another schema, a missing or mistyped field, invalid JSON);
 * 'out' is then empty. */
int report_json_read(const char *path, prof_result_t *out, char *err, size_t errlen);

/* Writes the human summary of 'r' to 'out': how the process ended, the peak
 * and its heap/mmap split, counts, temporaries, RSS, a warning when events
 * were dropped or lost, the peak by category (a bar of 60 cells, one letter
 * per category, and a line each; only when attribution ran) and the steps,
 * where the peak came from (each site with its category), leaks at exit, the top
 * temporary-allocation sites and the child processes. 'opt' may be NULL for
 * the defaults. Lines are at most REPORT_TEXT_WIDTH bytes (plus colour codes).
 * Returns 0, or -1 if writing to 'out' failed. */
int report_text_write(const prof_result_t *r, FILE *out, const report_text_options_t *opt);

/* ---- Diff: what changed between two runs ---------------------------------- */

#define REPORT_DIFF_SCHEMA "mlmem-diff/1"

/* One side of a joined site: the sum over that run's sites with the key. */
typedef struct {
    const prof_site_t *site;         /* the first of them; NULL: none      */
    uint64_t at_peak;                /* live bytes at that run's peak      */
    uint64_t allocations;
    uint64_t bytes_allocated;
    uint64_t leaked;                 /* live at the end                    */
} report_diff_side_t;

typedef struct {
    char *key;                       /* frames as text (report_diff.c)     */
    report_diff_side_t base, now;
} report_diff_site_t;

typedef struct {
    report_diff_site_t *sites;       /* every key of either run, the largest
                                        change of the peak contribution
                                        first, then of allocation counts   */
    size_t site_count;
    int sites_comparable;            /* both runs' sites have frames: a
                                        report read back without them joins
                                        on stack ids, which mean nothing
                                        across runs                        */
    long nearest_prediction;         /* index in base's recommendations of
                                        the predicted peak nearest the new
                                        run's peak; -1: none               */
} report_diff_t;

/* Joins the sites of 'base' and 'now' by their symbolized stacks. Returns
 * 0, or -1 when out of memory ('d' is then empty). */
int report_diff_compute(const prof_result_t *base, const prof_result_t *now, report_diff_t *d);
void report_diff_free(report_diff_t *d);

/* The diff for people: both commands, the summary figures side by side with
 * their change, the peak by category, the base's prediction nearest the
 * new peak, and the 'max_sites' sites that changed most (0: 10), each with
 * up to REPORT_TEXT_MAX_FRAMES frames. 'base_name'/'now_name' label the
 * inputs (file names). Lines as in report_text_write. 0, or -1 if writing
 * failed. */
int report_diff_text_write(const prof_result_t *base, const prof_result_t *now,
                           const report_diff_t *d, const char *base_name, const char *now_name,
                           FILE *out, size_t max_sites);

/* The diff as JSON (schema "mlmem-diff/1", docs/report-schema.md), written
 * as report_json_write writes a report. At most 'max_sites' sites (0: 1000),
 * those with a change. */
int report_diff_json_write(const prof_result_t *base, const prof_result_t *now,
                           const report_diff_t *d, const char *base_name, const char *now_name,
                           size_t max_sites, const char *path, char *err, size_t errlen);

/* Formats 'bytes' for people: "512 B", "1.50 KiB", "3.25 MiB", ... up to
 * "16.00 EiB" (binary units, two decimals, rounded half up; a value that
 * rounds to 1024 of a unit is shown in the next one). Writes at most 'len'
 * bytes, always terminated when len > 0, and returns 'buf' so the call can
 * sit in a printf argument list. */
const char *report_format_bytes(uint64_t bytes, char *buf, size_t len);

/* Formats a duration in nanoseconds: "850 ns", "12.5 us", "4.56 ms",
 * "2.345 s", "3 min 07 s", "2 h 05 min". Same buffer contract as
 * report_format_bytes. */
const char *report_format_duration(uint64_t ns, char *buf, size_t len);

/* The end state as the JSON report names it: "exited", "signaled", "exec",
 * "running" or "unknown" (also for values outside prof_end_t). */
const char *report_end_name(prof_end_t end);

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF) of at most 'left' bytes, with its code
 * point in *cp; 0 if the bytes there are not one. Shared by the JSON and
 * text reports and the dashboard, which must all agree on what is text. */
size_t report_utf8_len(const unsigned char *p, size_t left, uint32_t *cp);

/* Characters that must not reach a terminal from a name in the trace or a
 * command line: C0 and C1 controls, DEL, and the bidirectional overrides
 * and isolates that reorder what is shown ("Trojan Source"). */
int report_char_unsafe(uint32_t cp);

/* Makes buf[0..len) safe to print, in place: each unsafe character and each
 * byte that is not part of well-formed UTF-8 becomes one '?'. Writes the
 * terminating NUL (buf needs len + 1 bytes) and returns the new length. */
size_t report_make_printable(char *buf, size_t len);

/* "SIGKILL" for 9 and so on; "SIG<n>" for numbers without a name. Same
 * buffer contract as report_format_bytes. */
const char *report_signal_name(int sig, char *buf, size_t len);

#endif /* REPORT_H */
