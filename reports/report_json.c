/*
 * report_json.c - the JSON report ("mlmem-report/1", docs/report-schema.md),
 * built with jansson and written atomically.
 *
 * Building follows one rule: every json_t made goes straight into its parent
 * through rj_set()/rj_push(), which also record an out-of-memory failure in
 * the builder, so the tree is freed in one place whatever failed.
 */
#define _GNU_SOURCE
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mlmem/trace_format.h"

/* ------------------------------------------------------------------------ */
/* Value helpers                                                             */

/* Builder state: false once any allocation failed. */
typedef struct {
    bool ok;
} rj_builder_t;

/* Sets obj[key] = v, taking the reference; a NULL v (a failed allocation)
 * marks the builder. */
static void rj_set(rj_builder_t *b, json_t *obj, const char *key, json_t *v)
{
    if (v == NULL || obj == NULL || json_object_set_new(obj, key, v) != 0)
        b->ok = false;
}

/* Appends v to arr, taking the reference; NULL marks the builder. */
static void rj_push(rj_builder_t *b, json_t *arr, json_t *v)
{
    if (v == NULL || arr == NULL || json_array_append_new(arr, v) != 0)
        b->ok = false;
}

/* An unsigned figure as a JSON integer, clamped to the signed 64-bit range
 * jansson uses. */
static json_t *rj_u64(uint64_t v)
{
    return json_integer(v > (uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)v);
}

/* An address or offset as a "0x..." string: 64-bit addresses do not fit
 * the integers most JSON readers use (doubles). */
static json_t *rj_hex(uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
    return json_string(buf);
}

/* A C string as a JSON string: NULL becomes null, invalid UTF-8 bytes become
 * U+FFFD each. Control characters are kept (jansson escapes them) and long
 * strings are kept whole. */
static json_t *rj_str(const char *s)
{
    if (s == NULL)
        return json_null();
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = report_utf8_len(p + i, n - i, &cp);
        if (k == 0)
            break;
        i += k;
    }
    if (i == n)
        return json_stringn(s, n);

    char *clean = malloc(3 * n + 1);     /* each bad byte grows to 3 */
    if (clean == NULL)
        return NULL;
    size_t o = 0;
    for (i = 0; i < n;) {
        uint32_t cp;
        size_t k = report_utf8_len(p + i, n - i, &cp);
        if (k == 0) {
            memcpy(clean + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(clean + o, p + i, k);
            o += k;
            i += k;
        }
    }
    json_t *v = json_stringn(clean, o);
    free(clean);
    return v;
}

/* A bounded char array (not always terminated) as a JSON string. */
static json_t *rj_strn(const char *s, size_t max)
{
    char buf[64];
    size_t n = strnlen(s, max < sizeof(buf) - 1 ? max : sizeof(buf) - 1);
    memcpy(buf, s, n);
    buf[n] = '\0';
    return rj_str(buf);
}

/* Wall-clock nanoseconds as ISO 8601 UTC ("2026-01-02T03:04:05.123456789Z"),
 * or null when 0 (unknown). */
static json_t *rj_time(uint64_t realtime_ns)
{
    if (realtime_ns == 0)
        return json_null();
    time_t sec = (time_t)(realtime_ns / 1000000000u);
    struct tm tm;
    if (gmtime_r(&sec, &tm) == NULL)
        return json_null();
    char date[32], buf[48];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, sizeof(buf), "%s.%09" PRIu64 "Z", date, realtime_ns % 1000000000u);
    return json_string(buf);
}

/* ------------------------------------------------------------------------ */
/* Sections                                                                  */

/* Sets exit_code, signal and signal_name: each null unless the end state
 * makes it meaningful. */
static void rj_end_fields(rj_builder_t *b, json_t *o, prof_end_t end, int32_t exit_code,
                          int32_t sig)
{
    char name[24];
    rj_set(b, o, "end", json_string(report_end_name(end)));
    rj_set(b, o, "exit_code", end == PROF_END_EXITED ? json_integer(exit_code) : json_null());
    if (end == PROF_END_SIGNALED) {
        rj_set(b, o, "signal", json_integer(sig));
        rj_set(b, o, "signal_name", json_string(report_signal_name(sig, name, sizeof(name))));
    } else {
        rj_set(b, o, "signal", json_null());
        rj_set(b, o, "signal_name", json_null());
    }
}

static json_t *rj_process(rj_builder_t *b, const prof_process_t *p)
{
    json_t *o = json_object();
    rj_set(b, o, "pid", json_integer(p->pid));
    rj_set(b, o, "ppid", json_integer(p->ppid));
    rj_set(b, o, "command", rj_str(p->command));
    rj_set(b, o, "exe", rj_str(p->exe));
    rj_set(b, o, "start_realtime_ns", rj_u64(p->start_realtime_ns));
    rj_set(b, o, "end_realtime_ns",
           p->end_realtime_ns ? rj_u64(p->end_realtime_ns) : json_null());
    rj_set(b, o, "start_time", rj_time(p->start_realtime_ns));
    rj_set(b, o, "end_time", rj_time(p->end_realtime_ns));
    rj_end_fields(b, o, p->end, p->exit_code, p->signal);
    const char *mode = p->stack_mode == MLMEM_STACKS_SAMPLED ? "sampled"
                       : p->stack_mode == MLMEM_STACKS_ALL   ? "all"
                                                             : "unknown";
    rj_set(b, o, "stack_mode", json_string(mode));
    rj_set(b, o, "sample_threshold", rj_u64(p->sample_threshold));
    rj_set(b, o, "sample_rate", rj_u64(p->sample_rate));
    return o;
}

static json_t *rj_summary(rj_builder_t *b, const prof_summary_t *s)
{
    json_t *o = json_object();
    rj_set(b, o, "peak_bytes", rj_u64(s->peak_bytes));
    rj_set(b, o, "peak_time_ns", rj_u64(s->peak_time_ns));
    rj_set(b, o, "peak_seq", rj_u64(s->peak_seq));
    rj_set(b, o, "peak_heap_bytes", rj_u64(s->peak_heap_bytes));
    rj_set(b, o, "peak_mmap_bytes", rj_u64(s->peak_mmap_bytes));
    rj_set(b, o, "total_allocations", rj_u64(s->total_allocations));
    rj_set(b, o, "total_frees", rj_u64(s->total_frees));
    rj_set(b, o, "total_bytes", rj_u64(s->total_bytes));
    rj_set(b, o, "live_bytes", rj_u64(s->live_bytes));
    rj_set(b, o, "leaked_bytes", rj_u64(s->leaked_bytes));
    rj_set(b, o, "leaked_allocations", rj_u64(s->leaked_allocations));
    rj_set(b, o, "temporary_allocations", rj_u64(s->temporary_allocations));
    rj_set(b, o, "file_mapped_bytes", rj_u64(s->file_mapped_bytes));
    rj_set(b, o, "peak_file_mapped_bytes", rj_u64(s->peak_file_mapped_bytes));
    rj_set(b, o, "peak_rss_bytes", rj_u64(s->peak_rss_bytes));
    rj_set(b, o, "peak_rss_time_ns", rj_u64(s->peak_rss_time_ns));
    rj_set(b, o, "rss_samples", rj_u64(s->rss_samples));
    rj_set(b, o, "events", rj_u64(s->events));
    rj_set(b, o, "dropped_events", rj_u64(s->dropped_events));
    rj_set(b, o, "lost_events", rj_u64(s->lost_events));
    rj_set(b, o, "stacks_lost", rj_u64(s->stacks_lost));
    rj_set(b, o, "unmatched_frees", rj_u64(s->unmatched_frees));
    rj_set(b, o, "approximate", json_boolean(s->dropped_events + s->lost_events > 0));
    rj_set(b, o, "duration_ns", rj_u64(s->duration_ns));
    rj_set(b, o, "steps_annotated", rj_u64(s->steps_annotated));
    rj_set(b, o, "file_read_bytes", rj_u64(s->file_read_bytes));
    return o;
}

static json_t *rj_timeline(rj_builder_t *b, const prof_result_t *r)
{
    json_t *a = json_array();
    for (size_t i = 0; r->timeline != NULL && i < r->timeline_count && b->ok; i++) {
        const prof_timeline_point_t *t = &r->timeline[i];
        json_t *o = json_object();
        rj_set(b, o, "time_ns", rj_u64(t->time_ns));
        rj_set(b, o, "live_bytes", rj_u64(t->live_bytes));
        rj_set(b, o, "heap_bytes", rj_u64(t->heap_bytes));
        rj_set(b, o, "mmap_bytes", rj_u64(t->mmap_bytes));
        rj_set(b, o, "rss_bytes", rj_u64(t->rss_bytes));
        if (r->category_count > 0) {
            json_t *c = json_object();
            for (size_t k = 0; k < r->category_count; k++)
                rj_set(b, c, r->categories[k].name, rj_u64(t->category_bytes[k]));
            rj_set(b, o, "categories", c);
        }
        rj_push(b, a, o);
    }
    return a;
}

static json_t *rj_frame(rj_builder_t *b, const prof_frame_t *f)
{
    json_t *o = json_object();
    rj_set(b, o, "address", rj_hex(f->address));
    rj_set(b, o, "function", rj_str(f->function));
    rj_set(b, o, "file", rj_str(f->file));
    rj_set(b, o, "line", f->line ? json_integer(f->line) : json_null());
    rj_set(b, o, "module", rj_str(f->module));
    rj_set(b, o, "module_offset", f->module ? rj_hex(f->module_offset) : json_null());
    rj_set(b, o, "inlined", json_boolean(f->inlined));
    return o;
}

static json_t *rj_site(rj_builder_t *b, const prof_site_t *s)
{
    json_t *o = json_object();
    rj_set(b, o, "stack_id", json_integer(s->stack_id));
    json_t *frames = json_array();
    for (uint32_t i = 0; s->frames != NULL && i < s->frame_count; i++)
        rj_push(b, frames, rj_frame(b, &s->frames[i]));
    rj_set(b, o, "frames", frames);
    rj_set(b, o, "allocations", rj_u64(s->allocations));
    rj_set(b, o, "frees", rj_u64(s->frees));
    rj_set(b, o, "bytes_allocated", rj_u64(s->bytes_allocated));
    rj_set(b, o, "live_bytes_at_peak", rj_u64(s->live_bytes_at_peak));
    rj_set(b, o, "live_allocations_at_peak", rj_u64(s->live_allocations_at_peak));
    rj_set(b, o, "peak_live_bytes", rj_u64(s->peak_live_bytes));
    rj_set(b, o, "leaked_bytes", rj_u64(s->live_bytes));
    rj_set(b, o, "leaked_allocations", rj_u64(s->live_allocations));
    rj_set(b, o, "temporary_allocations", rj_u64(s->temporary_allocations));
    rj_set(b, o, "largest_allocation", rj_u64(s->largest_allocation));
    rj_set(b, o, "file_read_bytes", rj_u64(s->file_read_bytes));
    json_t *life = json_object();
    if (s->frees > 0) {
        rj_set(b, life, "min_ns", rj_u64(s->lifetime_min_ns));
        rj_set(b, life, "max_ns", rj_u64(s->lifetime_max_ns));
        rj_set(b, life, "mean_ns", rj_u64(s->lifetime_sum_ns / s->frees));
    } else {
        rj_set(b, life, "min_ns", json_null());
        rj_set(b, life, "max_ns", json_null());
        rj_set(b, life, "mean_ns", json_null());
    }
    rj_set(b, o, "lifetime", life);
    rj_set(b, o, "sampled", json_boolean(s->sampled));
    rj_set(b, o, "is_mmap", json_boolean(s->is_mmap));
    if (s->category != NULL) {
        rj_set(b, o, "category", rj_str(s->category));
        rj_set(b, o, "confidence", json_real(s->category_confidence));
        rj_set(b, o, "evidence", rj_str(s->category_evidence));
        static const char *const sources[] = {"none", "annotation", "rule", "behaviour"};
        rj_set(b, o, "evidence_kind",
               json_string(s->category_source < 4 ? sources[s->category_source] : "none"));
        rj_set(b, o, "unannotated_bytes_at_peak", rj_u64(s->unannotated_bytes_at_peak));
    }
    return o;
}

/* categories: one object per category, keyed by name; {} until attribution
 * ran. */
static json_t *rj_categories(rj_builder_t *b, const prof_result_t *r)
{
    json_t *o = json_object();
    for (size_t i = 0; i < r->category_count && b->ok; i++) {
        const prof_category_t *c = &r->categories[i];
        json_t *k = json_object();
        rj_set(b, k, "bytes_at_peak", rj_u64(c->bytes_at_peak));
        rj_set(b, k, "max_bytes", rj_u64(c->max_bytes));
        rj_set(b, k, "max_exact", json_boolean(c->max_exact));
        rj_set(b, k, "bytes_at_end", rj_u64(c->bytes_at_end));
        rj_set(b, k, "confidence", json_real(c->confidence));
        rj_set(b, k, "evidence", rj_str(c->evidence));
        json_t *by = json_object();
        rj_set(b, by, "annotation", rj_u64(c->bytes_at_peak_by[PROF_EVIDENCE_ANNOTATION]));
        rj_set(b, by, "rule", rj_u64(c->bytes_at_peak_by[PROF_EVIDENCE_RULE]));
        rj_set(b, by, "behaviour", rj_u64(c->bytes_at_peak_by[PROF_EVIDENCE_BEHAVIOUR]));
        rj_set(b, k, "bytes_at_peak_by_evidence", by);
        rj_set(b, o, c->name, k);
    }
    return o;
}

static json_t *rj_steps(rj_builder_t *b, const prof_result_t *r)
{
    const prof_steps_t *st = &r->steps;
    json_t *o = json_object();
    rj_set(b, o, "source", json_string(st->source ? st->source : "none"));
    rj_set(b, o, "count", rj_u64(st->count));
    rj_set(b, o, "period_ns", st->period_ns ? rj_u64(st->period_ns) : json_null());
    rj_set(b, o, "period_allocations",
           st->period_allocations ? rj_u64(st->period_allocations) : json_null());
    rj_set(b, o, "first_step_ns", st->count ? rj_u64(st->first_step_ns) : json_null());
    rj_set(b, o, "last_step_ns", st->count ? rj_u64(st->last_step_ns) : json_null());
    json_t *peaks = json_array();
    for (size_t i = 0; st->peak_bytes != NULL && i < st->peak_count && b->ok; i++)
        rj_push(b, peaks, rj_u64(st->peak_bytes[i]));
    rj_set(b, o, "peak_bytes", peaks);
    static const char *const phases[] = {"none", "data", "forward", "backward", "optimizer",
                                         "eval"};
    json_t *ph = json_array();
    for (unsigned i = 1; i < 32 && b->ok; i++)
        if (st->phases_seen & (1u << i))
            rj_push(b, ph, json_string(i < 6 ? phases[i] : "unknown"));
    rj_set(b, o, "phases", ph);
    int annotated = st->source && strcmp(st->source, "annotations") == 0;
    const char *phase_source = annotated && st->phases_seen ? "annotations" : st->phase_source;
    rj_set(b, o, "phase_source", phase_source ? json_string(phase_source) : json_null());
    json_t *spans = json_array();
    if (st->forward_end > 0) {
        json_t *f = json_object();
        rj_set(b, f, "phase", json_string("forward"));
        rj_set(b, f, "start", json_real(0.0));
        rj_set(b, f, "end", json_real(st->forward_end));
        rj_push(b, spans, f);
    }
    if (st->backward_end > 0) {
        json_t *k = json_object();
        rj_set(b, k, "phase", json_string("backward"));
        rj_set(b, k, "start", json_real(st->forward_end));
        rj_set(b, k, "end", json_real(st->backward_end));
        rj_push(b, spans, k);
    }
    rj_set(b, o, "phase_spans", spans);
    rj_set(b, o, "eval_batches", st->eval_batches ? rj_u64(st->eval_batches) : json_null());
    rj_set(b, o, "peak_where", st->peak_where ? json_string(st->peak_where) : json_null());
    int in_step = st->peak_where && strcmp(st->peak_where, "step") == 0;
    rj_set(b, o, "peak_step", in_step ? rj_u64(st->peak_step) : json_null());
    rj_set(b, o, "peak_step_fraction",
           in_step && st->peak_step_fraction >= 0 ? json_real(st->peak_step_fraction)
                                                  : json_null());
    rj_set(b, o, "current_step", annotated ? rj_u64(st->current_step) : json_null());
    rj_set(b, o, "current_phase",
           annotated && st->current_phase < 6 ? json_string(phases[st->current_phase])
                                              : json_null());
    rj_set(b, o, "confidence", json_real(st->confidence));
    return o;
}

static json_t *rj_attribution(rj_builder_t *b, const prof_attr_counts_t *a)
{
    json_t *o = json_object();
    rj_set(b, o, "region_allocations", rj_u64(a->region_allocations));
    rj_set(b, o, "tags", rj_u64(a->tags));
    rj_set(b, o, "tags_unknown", rj_u64(a->tags_unknown));
    rj_set(b, o, "region_unmatched_ends", rj_u64(a->region_unmatched_ends));
    rj_set(b, o, "region_overflows", rj_u64(a->region_overflows));
    return o;
}

static json_t *rj_thread(rj_builder_t *b, const prof_thread_t *t)
{
    json_t *o = json_object();
    rj_set(b, o, "tid", json_integer(t->tid));
    rj_set(b, o, "name", rj_strn(t->name, sizeof(t->name)));
    rj_set(b, o, "allocations", rj_u64(t->allocations));
    rj_set(b, o, "frees", rj_u64(t->frees));
    rj_set(b, o, "bytes_allocated", rj_u64(t->bytes_allocated));
    rj_set(b, o, "leaked_bytes", rj_u64(t->live_bytes));
    rj_set(b, o, "peak_live_bytes", rj_u64(t->peak_live_bytes));
    rj_set(b, o, "live_bytes_at_peak", rj_u64(t->live_bytes_at_peak));
    return o;
}

static json_t *rj_child(rj_builder_t *b, const prof_child_t *c)
{
    json_t *o = json_object();
    rj_set(b, o, "pid", json_integer(c->pid));
    rj_set(b, o, "ppid", json_integer(c->ppid));
    rj_set(b, o, "command", rj_str(c->command));
    rj_set(b, o, "peak_bytes", rj_u64(c->peak_bytes));
    rj_set(b, o, "total_allocations", rj_u64(c->total_allocations));
    rj_set(b, o, "leaked_bytes", rj_u64(c->leaked_bytes));
    rj_end_fields(b, o, c->end, c->exit_code, c->signal);
    return o;
}

/* One recommendation (docs/report-schema.md, "recommendations"). */
static json_t *rj_recommendation(rj_builder_t *b, const prof_recommendation_t *a)
{
    json_t *o = json_object();
    rj_set(b, o, "kind", json_string(prof_advice_kind_name(a->kind)));
    rj_set(b, o, "title", rj_str(a->title));
    rj_set(b, o, "predicted_peak_bytes", rj_u64(a->predicted_peak_bytes));
    rj_set(b, o, "bytes_saved", rj_u64(a->bytes_saved));
    rj_set(b, o, "extra_compute", json_real(a->extra_compute));
    rj_set(b, o, "cost", rj_str(a->cost));
    rj_set(b, o, "confidence", json_real(a->confidence));
    rj_set(b, o, "reasoning", rj_str(a->reasoning));
    rj_set(b, o, "apply", rj_str(a->apply));
    rj_set(b, o, "flags", a->flags ? rj_str(a->flags) : json_null());
    rj_set(b, o, "deployment_only", json_boolean(a->deployment_only));
    return o;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

/* The sites a document shows. */
static size_t rj_sites_shown(const prof_result_t *r)
{
    if (r->sites == NULL)
        return 0;
    return r->site_count < REPORT_JSON_MAX_SITES ? r->site_count : REPORT_JSON_MAX_SITES;
}

/* The document for 'r'; its "sites" array left empty unless 'with_sites'
 * (rj_write_document() writes them one at a time). Arrays whose pointer is
 * NULL are written empty whatever their count says. */
static json_t *rj_build(const prof_result_t *r, bool with_sites)
{
    rj_builder_t b = {.ok = true};
    json_t *root = json_object();
    rj_set(&b, root, "schema", json_string(REPORT_SCHEMA));
    rj_set(&b, root, "process", rj_process(&b, &r->process));
    rj_set(&b, root, "summary", rj_summary(&b, &r->summary));
    rj_set(&b, root, "timeline", rj_timeline(&b, r));

    json_t *sites = json_array();
    size_t shown = rj_sites_shown(r);
    for (size_t i = 0; with_sites && i < shown && b.ok; i++)
        rj_push(&b, sites, rj_site(&b, &r->sites[i]));
    rj_set(&b, root, "sites", sites);
    rj_set(&b, root, "sites_omitted", rj_u64(r->sites != NULL ? r->site_count - shown : 0));

    json_t *threads = json_array();
    for (size_t i = 0; r->threads != NULL && i < r->thread_count && b.ok; i++)
        rj_push(&b, threads, rj_thread(&b, &r->threads[i]));
    rj_set(&b, root, "threads", threads);

    json_t *children = json_array();
    for (size_t i = 0; r->children != NULL && i < r->child_count && b.ok; i++)
        rj_push(&b, children, rj_child(&b, &r->children[i]));
    rj_set(&b, root, "children", children);

    rj_set(&b, root, "categories", rj_categories(&b, r));
    if (r->category_count > 0) {
        rj_set(&b, root, "steps", rj_steps(&b, r));
        rj_set(&b, root, "attribution", rj_attribution(&b, &r->attribution));
    }
    json_t *recs = json_array();
    for (size_t i = 0; r->recommendations != NULL && i < r->recommendation_count && b.ok; i++)
        rj_push(&b, recs, rj_recommendation(&b, &r->recommendations[i]));
    rj_set(&b, root, "recommendations", recs);

    if (!b.ok) {
        json_decref(root);
        return NULL;
    }
    return root;
}

json_t *report_json_build(const prof_result_t *r)
{
    return rj_build(r, true);
}

/* Writes all of buf to fd, retrying short writes and EINTR. 0 or -1. */
static int rj_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Formats "cannot <what> <path>: <strerror(errnum)>" into err. */
static void rj_error(char *err, size_t errlen, const char *what, const char *path, int errnum)
{
    if (err == NULL || errlen == 0)
        return;
    char ebuf[128];
    const char *msg = strerror_r(errnum, ebuf, sizeof(ebuf));
    snprintf(err, errlen, "cannot %s %s: %s", what, path, msg);
}

/* Creates a fresh temporary file next to 'path', named path.tmp.<pid>.<n>,
 * with O_EXCL so a stale or foreign file is never reused. Returns the fd and
 * the malloc'd name in *tmp_out, or -1 with errno set. */
static int rj_open_temp(const char *path, char **tmp_out)
{
    size_t len = strlen(path) + 64;
    char *tmp = malloc(len);
    if (tmp == NULL) {
        errno = ENOMEM;
        return -1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long salt = (unsigned long)ts.tv_nsec ^ ((unsigned long)ts.tv_sec << 20);
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(tmp, len, "%s.tmp.%ld.%lx", path, (long)getpid(), salt + (unsigned long)attempt);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            *tmp_out = tmp;
            return fd;
        }
        if (errno != EEXIST)
            break;
    }
    int saved = errno;
    free(tmp);
    errno = saved;
    return -1;
}

/* jansson's output, written to the file through a buffer as it comes in
 * pieces (a token at a time): a report of a big run is hundreds of MB of
 * text, which is not built in memory. */
#define RJ_SINK_BYTES (256 * 1024)
typedef struct {
    int fd;
    int errnum; /* the first write error, or 0 */
    size_t len;
    char buf[RJ_SINK_BYTES];
} rj_sink_t;

static int rj_sink_flush(rj_sink_t *sink)
{
    if (sink->len && rj_write_all(sink->fd, sink->buf, sink->len) != 0) {
        sink->errnum = errno ? errno : EIO;
        return -1;
    }
    sink->len = 0;
    return 0;
}

static int rj_dump_piece(const char *buffer, size_t size, void *data)
{
    rj_sink_t *sink = data;
    if (sink->len + size > sizeof sink->buf && rj_sink_flush(sink) != 0)
        return -1;
    if (size > sizeof sink->buf) {
        if (rj_write_all(sink->fd, buffer, size) != 0) {
            sink->errnum = errno ? errno : EIO;
            return -1;
        }
        return 0;
    }
    memcpy(sink->buf + sink->len, buffer, size);
    sink->len += size;
    return 0;
}

#define RJ_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(6))
/* Where the root's empty "sites" array is, as jansson writes it. */
#define RJ_SITES_AT "\n  \"sites\": []"

/* Writes 'text' with every line after the first indented 'indent' more
 * spaces (JSON strings hold no raw newline, so each one is jansson's). */
static int rj_dump_indented(const char *text, const char *indent, rj_sink_t *sink)
{
    for (const char *nl; (nl = strchr(text, '\n')) != NULL; text = nl + 1)
        if (rj_dump_piece(text, (size_t)(nl - text) + 1, sink) != 0 ||
            rj_dump_piece(indent, strlen(indent), sink) != 0)
            return -1;
    return rj_dump_piece(text, strlen(text), sink);
}

/* Dumps 'root' (built without its sites) with the sites of 'r' written
 * into its "sites" array one at a time, each built, dumped and freed in
 * turn: the same bytes as dumping the whole tree, without holding it (with
 * 20,000 sites of 40 frames each the tree took 900 MB). -1 on failure. */
static int rj_dump_streamed(json_t *root, const prof_result_t *r, rj_sink_t *sink)
{
    char *shell = json_dumps(root, RJ_FLAGS);
    if (!shell)
        return -1;
    char *at = strstr(shell, RJ_SITES_AT);
    size_t shown = rj_sites_shown(r);
    int rc = -1;
    if (!at)
        goto done;
    at += strlen(RJ_SITES_AT) - 2; /* at "[]" */
    if (rj_dump_piece(shell, (size_t)(at - shell), sink) != 0 ||
        rj_dump_piece("[", 1, sink) != 0)
        goto done;
    for (size_t i = 0; i < shown; i++) {
        rj_builder_t b = {.ok = true};
        json_t *site = rj_site(&b, &r->sites[i]);
        char *text = b.ok ? json_dumps(site, RJ_FLAGS) : NULL;
        json_decref(site);
        const char *before = i ? ",\n    " : "\n    "; /* elements sit 4 spaces in */
        int failed = !text || rj_dump_piece(before, strlen(before), sink) != 0 ||
                     rj_dump_indented(text, "    ", sink) != 0;
        free(text);
        if (failed)
            goto done;
    }
    const char *end = shown ? "\n  ]" : "]";
    if (rj_dump_piece(end, strlen(end), sink) == 0 &&
        rj_dump_piece(at + 2, strlen(at + 2), sink) == 0)
        rc = 0;
done:
    free(shell);
    return rc;
}

/* Writes the document 'root' (its reference is taken) to 'path' through a
 * temporary file renamed over it; with 'sites_of' (not NULL), root was
 * built without sites and those of 'sites_of' are streamed into it. On
 * failure the temporary file is removed and 'path' is left untouched. A
 * path that names a device, a pipe or a socket (/dev/stdout, /dev/null, a
 * FIFO) is written in place: a file renamed over it would replace it (and
 * as root, /dev/null with it). */
static int rj_write_document(json_t *root, const prof_result_t *sites_of, const char *path,
                             char *err, size_t errlen)
{
    char *tmp = NULL;
    struct stat st;
    int in_place = stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
    int fd = in_place ? open(path, O_WRONLY | O_CLOEXEC) : rj_open_temp(path, &tmp);
    if (fd < 0) {
        rj_error(err, errlen, "create", path, errno);
        json_decref(root);
        return -1;
    }
    int rc = -1;
    rj_sink_t *sink = malloc(sizeof *sink);
    if (!sink) {
        rj_error(err, errlen, "serialize the JSON for", path, ENOMEM);
        json_decref(root);
        close(fd);
        goto fail;
    }
    sink->fd = fd;
    sink->errnum = 0;
    sink->len = 0;
    int dumped = sites_of ? rj_dump_streamed(root, sites_of, sink)
                          : json_dump_callback(root, rj_dump_piece, sink, RJ_FLAGS);
    json_decref(root);
    if (dumped == 0 && (rj_dump_piece("\n", 1, sink) != 0 || rj_sink_flush(sink) != 0))
        dumped = -1;
    int errnum = sink->errnum;
    free(sink);
    if (dumped != 0 && !errnum) {
        rj_error(err, errlen, "serialize the JSON for", path, ENOMEM);
        close(fd);
        goto fail;
    }
    if (dumped != 0 || (!in_place && fsync(fd) != 0)) {
        rj_error(err, errlen, "write", path, errnum ? errnum : errno);
        close(fd);
        goto fail;
    }
    if (close(fd) != 0) {
        rj_error(err, errlen, "write", path, errno);
        goto fail;
    }
    if (!in_place && rename(tmp, path) != 0) {
        rj_error(err, errlen, "replace", path, errno);
        goto fail;
    }
    rc = 0;
fail:
    if (rc != 0 && tmp)
        unlink(tmp);
    free(tmp);
    return rc;
}

int report_json_write(const prof_result_t *r, const char *path, char *err, size_t errlen)
{
    json_t *root = rj_build(r, false);
    if (root == NULL) {
        rj_error(err, errlen, "build report for", path, ENOMEM);
        return -1;
    }
    return rj_write_document(root, r, path, err, errlen);
}

/* ------------------------------------------------------------------------ */
/* Diff of two runs                                                          */

/* A signed change as a JSON integer. */
static json_t *rj_change(uint64_t base, uint64_t now)
{
    uint64_t mag = now > base ? now - base : base - now;
    if (mag > (uint64_t)INT64_MAX)
        mag = (uint64_t)INT64_MAX;
    return json_integer(now >= base ? (json_int_t)mag : -(json_int_t)mag);
}

static json_t *rj_diff_run(rj_builder_t *b, const char *name, const prof_result_t *r)
{
    json_t *o = json_object();
    rj_set(b, o, "input", rj_str(name));
    rj_set(b, o, "process", rj_process(b, &r->process));
    rj_set(b, o, "summary", rj_summary(b, &r->summary));
    return o;
}

static json_t *rj_diff_summary(rj_builder_t *b, const prof_summary_t *x, const prof_summary_t *y)
{
    json_t *o = json_object();
    rj_set(b, o, "peak_bytes", rj_change(x->peak_bytes, y->peak_bytes));
    rj_set(b, o, "peak_mmap_bytes", rj_change(x->peak_mmap_bytes, y->peak_mmap_bytes));
    rj_set(b, o, "peak_rss_bytes", rj_change(x->peak_rss_bytes, y->peak_rss_bytes));
    rj_set(b, o, "total_allocations", rj_change(x->total_allocations, y->total_allocations));
    rj_set(b, o, "total_bytes", rj_change(x->total_bytes, y->total_bytes));
    rj_set(b, o, "temporary_allocations",
           rj_change(x->temporary_allocations, y->temporary_allocations));
    rj_set(b, o, "leaked_bytes", rj_change(x->leaked_bytes, y->leaked_bytes));
    rj_set(b, o, "duration_ns", rj_change(x->duration_ns, y->duration_ns));
    rj_set(b, o, "peak_ratio", x->peak_bytes ? json_real((double)y->peak_bytes /
                                                         (double)x->peak_bytes)
                                             : json_null());
    return o;
}

static json_t *rj_diff_categories(rj_builder_t *b, const prof_result_t *x, const prof_result_t *y)
{
    json_t *a = json_array();
    if (x->category_count != MLMEM_CATEGORY_COUNT || y->category_count != MLMEM_CATEGORY_COUNT)
        return a;
    for (size_t i = 0; i < MLMEM_CATEGORY_COUNT; i++) {
        json_t *o = json_object();
        rj_set(b, o, "name", rj_str(x->categories[i].name));
        rj_set(b, o, "base_at_peak", rj_u64(x->categories[i].bytes_at_peak));
        rj_set(b, o, "new_at_peak", rj_u64(y->categories[i].bytes_at_peak));
        rj_set(b, o, "change", rj_change(x->categories[i].bytes_at_peak,
                                         y->categories[i].bytes_at_peak));
        rj_push(b, a, o);
    }
    return a;
}

static json_t *rj_diff_side(rj_builder_t *b, const report_diff_side_t *s)
{
    if (!s->site)
        return json_null();
    json_t *o = json_object();
    rj_set(b, o, "stack_id", rj_u64(s->site->stack_id));
    rj_set(b, o, "category", rj_str(s->site->category));
    rj_set(b, o, "at_peak", rj_u64(s->at_peak));
    rj_set(b, o, "allocations", rj_u64(s->allocations));
    rj_set(b, o, "bytes_allocated", rj_u64(s->bytes_allocated));
    rj_set(b, o, "leaked", rj_u64(s->leaked));
    return o;
}

static json_t *rj_diff_site(rj_builder_t *b, const report_diff_site_t *s)
{
    json_t *o = json_object();
    rj_set(b, o, "change_at_peak", rj_change(s->base.at_peak, s->now.at_peak));
    rj_set(b, o, "change_allocations", rj_change(s->base.allocations, s->now.allocations));
    rj_set(b, o, "base", rj_diff_side(b, &s->base));
    rj_set(b, o, "new", rj_diff_side(b, &s->now));
    const prof_site_t *show = s->now.site ? s->now.site : s->base.site;
    json_t *frames = json_array();
    for (uint32_t i = 0; show && show->frames && i < show->frame_count; i++)
        rj_push(b, frames, rj_frame(b, &show->frames[i]));
    rj_set(b, o, "frames", frames);
    return o;
}

int report_diff_json_write(const prof_result_t *base, const prof_result_t *now,
                           const report_diff_t *d, const char *base_name, const char *now_name,
                           size_t max_sites, const char *path, char *err, size_t errlen)
{
    rj_builder_t b = {.ok = true};
    json_t *root = json_object();
    rj_set(&b, root, "schema", json_string(REPORT_DIFF_SCHEMA));
    rj_set(&b, root, "base", rj_diff_run(&b, base_name, base));
    rj_set(&b, root, "new", rj_diff_run(&b, now_name, now));
    rj_set(&b, root, "change", rj_diff_summary(&b, &base->summary, &now->summary));
    rj_set(&b, root, "categories", rj_diff_categories(&b, base, now));
    json_t *pred = json_null();
    if (d->nearest_prediction >= 0) {
        const prof_recommendation_t *a = &base->recommendations[d->nearest_prediction];
        pred = json_object();
        rj_set(&b, pred, "kind", json_string(prof_advice_kind_name(a->kind)));
        rj_set(&b, pred, "title", rj_str(a->title));
        rj_set(&b, pred, "predicted_peak_bytes", rj_u64(a->predicted_peak_bytes));
        rj_set(&b, pred, "measured_peak_bytes", rj_u64(now->summary.peak_bytes));
        rj_set(&b, pred, "error", rj_change(now->summary.peak_bytes, a->predicted_peak_bytes));
    }
    rj_set(&b, root, "nearest_prediction", pred);
    rj_set(&b, root, "sites_comparable", json_boolean(d->sites_comparable));
    json_t *sites = json_array();
    size_t limit = max_sites ? max_sites : 1000, shown = 0;
    for (size_t i = 0; d->sites_comparable && i < d->site_count && shown < limit && b.ok; i++) {
        const report_diff_site_t *s = &d->sites[i];
        if (s->base.at_peak == s->now.at_peak && s->base.allocations == s->now.allocations)
            break; /* sorted: no change from here on */
        rj_push(&b, sites, rj_diff_site(&b, s));
        shown++;
    }
    rj_set(&b, root, "sites", sites);
    if (!b.ok) {
        json_decref(root);
        rj_error(err, errlen, "build diff for", path, ENOMEM);
        return -1;
    }
    return rj_write_document(root, NULL, path, err, errlen);
}
