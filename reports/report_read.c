/*
 * report_read.c - reads back what advice and diffs need from a JSON report
 * (report.h: report_json_read()): the command and how it ended, the summary
 * figures, the categories at the peak, the steps, the sites with their
 * frames and the timeline's live bytes.
 */
#define _GNU_SOURCE
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const char *const rr_cat_names[MLMEM_CATEGORY_COUNT] = {
    "other", "weights", "gradients", "optimizer_state", "activations", "data", "temporaries",
};

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} rr_ctx_t;

__attribute__((format(printf, 2, 3)))
static int rr_fail(rr_ctx_t *c, const char *fmt, ...)
{
    if (c->err && c->errlen) {
        int n = snprintf(c->err, c->errlen, "%s: ", c->path);
        if (n >= 0 && (size_t)n < c->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
        /* jansson quotes the bad token as it is: nothing of it may drive
         * the terminal that shows the message. */
        report_make_printable(c->err, strlen(c->err));
    }
    return -1;
}

/* obj[key] as a non-negative integer into *v; 'where' names obj. A missing
 * key is an error unless 'optional' (then *v stays). */
static int rr_u64(rr_ctx_t *c, json_t *obj, const char *where, const char *key, uint64_t *v,
                  int optional)
{
    json_t *x = json_object_get(obj, key);
    if (!x || json_is_null(x)) {
        if (optional)
            return 0;
        return rr_fail(c, "field %s.%s is missing", where, key);
    }
    if (!json_is_integer(x) || json_integer_value(x) < 0)
        return rr_fail(c, "field %s.%s is not a non-negative integer", where, key);
    *v = (uint64_t)json_integer_value(x);
    return 0;
}

static int rr_object(rr_ctx_t *c, json_t *root, const char *key, json_t **out)
{
    *out = json_object_get(root, key);
    if (!json_is_object(*out))
        return rr_fail(c, "field %s is missing or not an object", key);
    return 0;
}

static int rr_categories(rr_ctx_t *c, json_t *root, prof_result_t *r)
{
    json_t *cats;
    if (rr_object(c, root, "categories", &cats) != 0)
        return -1;
    if (json_object_size(cats) == 0)
        return 0; /* attribution did not run: no advice */
    for (int k = 0; k < MLMEM_CATEGORY_COUNT; k++) {
        json_t *o = json_object_get(cats, rr_cat_names[k]);
        char where[64];
        snprintf(where, sizeof where, "categories.%s", rr_cat_names[k]);
        if (!json_is_object(o))
            return rr_fail(c, "field %s is missing or not an object", where);
        r->categories[k].name = rr_cat_names[k];
        if (rr_u64(c, o, where, "bytes_at_peak", &r->categories[k].bytes_at_peak, 0) != 0 ||
            rr_u64(c, o, where, "max_bytes", &r->categories[k].max_bytes, 1) != 0 ||
            rr_u64(c, o, where, "bytes_at_end", &r->categories[k].bytes_at_end, 1) != 0)
            return -1;
        json_t *conf = json_object_get(o, "confidence");
        if (json_is_number(conf))
            r->categories[k].confidence = json_number_value(conf);
    }
    r->category_count = MLMEM_CATEGORY_COUNT;
    return 0;
}

static int rr_steps(rr_ctx_t *c, json_t *root, prof_result_t *r)
{
    json_t *st = json_object_get(root, "steps");
    if (!st || json_is_null(st))
        return 0;
    if (!json_is_object(st))
        return rr_fail(c, "field steps is not an object");
    if (rr_u64(c, st, "steps", "count", &r->steps.count, 0) != 0 ||
        rr_u64(c, st, "steps", "period_ns", &r->steps.period_ns, 1) != 0 ||
        rr_u64(c, st, "steps", "first_step_ns", &r->steps.first_step_ns, 1) != 0 ||
        rr_u64(c, st, "steps", "last_step_ns", &r->steps.last_step_ns, 1) != 0)
        return -1;
    if (rr_u64(c, st, "steps", "eval_batches", &r->steps.eval_batches, 1) != 0)
        return -1;
    /* source: the analyzer's own names, as static strings. */
    static const char *const sources[] = {"annotations", "detected", "none"};
    json_t *src = json_object_get(st, "source");
    for (size_t i = 0; json_is_string(src) && i < sizeof sources / sizeof sources[0]; i++)
        if (strcmp(json_string_value(src), sources[i]) == 0)
            r->steps.source = sources[i];
    /* peak_where: one of the analyzer's own names (advice compares them). */
    static const char *const wheres[] = {"before_steps", "step", "after_steps", "evaluation"};
    json_t *pw = json_object_get(st, "peak_where");
    if (pw && !json_is_null(pw)) {
        const char *w = json_string_value(pw);
        for (size_t i = 0; w && i < sizeof wheres / sizeof wheres[0]; i++)
            if (strcmp(w, wheres[i]) == 0)
                r->steps.peak_where = wheres[i];
        if (!r->steps.peak_where)
            return rr_fail(c, "field steps.peak_where is not one of before_steps, step, "
                              "after_steps, evaluation");
    }
    if (rr_u64(c, st, "steps", "peak_step", &r->steps.peak_step, 1) != 0)
        return -1;
    json_t *pf = json_object_get(st, "peak_step_fraction");
    r->steps.peak_step_fraction = json_is_number(pf) ? json_number_value(pf) : -1;
    json_t *pk = json_object_get(st, "peak_bytes");
    if (json_is_array(pk) && json_array_size(pk) > 0) {
        size_t n = json_array_size(pk);
        r->steps.peak_bytes = calloc(n, sizeof *r->steps.peak_bytes);
        if (!r->steps.peak_bytes)
            return rr_fail(c, "out of memory");
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_array_get(pk, i);
            if (!json_is_integer(x) || json_integer_value(x) < 0)
                return rr_fail(c, "field steps.peak_bytes[%zu] is not a non-negative integer", i);
            r->steps.peak_bytes[i] = (uint64_t)json_integer_value(x);
        }
        r->steps.peak_count = n;
    }
    return 0;
}

/* obj[key] as a string copy into *out (NULL when missing or null). */
static int rr_str(rr_ctx_t *c, json_t *obj, const char *where, const char *key, char **out)
{
    json_t *x = json_object_get(obj, key);
    *out = NULL;
    if (!x || json_is_null(x))
        return 0;
    if (!json_is_string(x))
        return rr_fail(c, "field %s.%s is not a string", where, key);
    if (!(*out = strdup(json_string_value(x))))
        return rr_fail(c, "out of memory");
    return 0;
}

/* obj[key] as an address string "0x..." into *v (0 when missing or null). */
static int rr_hex(rr_ctx_t *c, json_t *obj, const char *where, const char *key, uint64_t *v)
{
    json_t *x = json_object_get(obj, key);
    *v = 0;
    if (!x || json_is_null(x))
        return 0;
    const char *t = json_is_string(x) ? json_string_value(x) : NULL;
    char *end = NULL;
    if (t && t[0] == '0' && (t[1] == 'x' || t[1] == 'X') && t[2]) {
        errno = 0;
        unsigned long long u = strtoull(t + 2, &end, 16);
        if (!errno && *end == '\0') {
            *v = u;
            return 0;
        }
    }
    return rr_fail(c, "field %s.%s is not an address (\"0x...\")", where, key);
}

/* A site's frames (optional: the report keeps them; sites past the
 * analyzer's first 20,000 have none). */
static int rr_frames(rr_ctx_t *c, json_t *o, const char *where, prof_site_t *s)
{
    json_t *fr = json_object_get(o, "frames");
    if (!fr || json_is_null(fr))
        return 0;
    if (!json_is_array(fr))
        return rr_fail(c, "field %s.frames is not an array", where);
    size_t n = json_array_size(fr);
    if (n == 0)
        return 0;
    if (n > UINT32_MAX || !(s->frames = calloc(n, sizeof *s->frames)))
        return rr_fail(c, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_array_get(fr, i);
        prof_frame_t *out = &s->frames[i];
        s->frame_count = (uint32_t)i + 1; /* what is there is freed on failure */
        char fwhere[96];
        snprintf(fwhere, sizeof fwhere, "%s.frames[%zu]", where, i);
        if (!json_is_object(f))
            return rr_fail(c, "field %s is not an object", fwhere);
        uint64_t line = 0;
        if (rr_str(c, f, fwhere, "function", &out->function) != 0 ||
            rr_str(c, f, fwhere, "file", &out->file) != 0 ||
            rr_str(c, f, fwhere, "module", &out->module) != 0 ||
            rr_u64(c, f, fwhere, "line", &line, 1) != 0 ||
            rr_hex(c, f, fwhere, "address", &out->address) != 0 ||
            rr_hex(c, f, fwhere, "module_offset", &out->module_offset) != 0)
            return -1;
        if (line > UINT32_MAX)
            return rr_fail(c, "field %s.line is out of range", fwhere);
        out->line = (uint32_t)line;
        out->inlined = json_is_true(json_object_get(f, "inlined"));
    }
    return 0;
}

static int rr_sites(rr_ctx_t *c, json_t *root, prof_result_t *r)
{
    json_t *sites = json_object_get(root, "sites");
    if (!json_is_array(sites))
        return rr_fail(c, "field sites is missing or not an array");
    size_t n = json_array_size(sites);
    r->sites = calloc(n + 1, sizeof *r->sites);
    if (!r->sites)
        return rr_fail(c, "out of memory");
    r->site_count = n;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(sites, i);
        prof_site_t *s = &r->sites[i];
        char where[48];
        snprintf(where, sizeof where, "sites[%zu]", i);
        if (!json_is_object(o))
            return rr_fail(c, "field %s is not an object", where);
        if (rr_u64(c, o, where, "allocations", &s->allocations, 0) != 0 ||
            rr_u64(c, o, where, "frees", &s->frees, 0) != 0 ||
            rr_u64(c, o, where, "bytes_allocated", &s->bytes_allocated, 0) != 0 ||
            rr_u64(c, o, where, "live_bytes_at_peak", &s->live_bytes_at_peak, 0) != 0 ||
            rr_u64(c, o, where, "largest_allocation", &s->largest_allocation, 1) != 0 ||
            rr_u64(c, o, where, "file_read_bytes", &s->file_read_bytes, 1) != 0 ||
            rr_u64(c, o, where, "leaked_bytes", &s->live_bytes, 1) != 0)
            return -1;
        uint64_t id = 0;
        if (rr_u64(c, o, where, "stack_id", &id, 1) != 0)
            return -1;
        if (id > UINT32_MAX)
            return rr_fail(c, "field %s.stack_id is out of range", where);
        s->stack_id = (uint32_t)id;
        if (rr_frames(c, o, where, s) != 0)
            return -1;
        json_t *life = json_object_get(o, "lifetime");
        if (json_is_object(life)) {
            uint64_t mean = 0;
            char lwhere[64];
            snprintf(lwhere, sizeof lwhere, "%s.lifetime", where);
            if (rr_u64(c, life, lwhere, "mean_ns", &mean, 1) != 0)
                return -1;
            s->lifetime_sum_ns = mean * s->frees;
        }
        json_t *cat = json_object_get(o, "category");
        if (json_is_string(cat))
            for (int k = 0; k < MLMEM_CATEGORY_COUNT; k++)
                if (strcmp(json_string_value(cat), rr_cat_names[k]) == 0)
                    s->category = rr_cat_names[k];
        json_t *mm = json_object_get(o, "is_mmap");
        s->is_mmap = json_is_true(mm) || (json_is_integer(mm) && json_integer_value(mm) != 0);
    }
    return 0;
}

static int rr_timeline(rr_ctx_t *c, json_t *root, prof_result_t *r)
{
    json_t *tl = json_object_get(root, "timeline");
    if (!tl || json_is_null(tl))
        return 0;
    if (!json_is_array(tl))
        return rr_fail(c, "field timeline is not an array");
    size_t n = json_array_size(tl);
    r->timeline = calloc(n + 1, sizeof *r->timeline);
    if (!r->timeline)
        return rr_fail(c, "out of memory");
    r->timeline_count = n;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(tl, i);
        char where[48];
        snprintf(where, sizeof where, "timeline[%zu]", i);
        if (!json_is_object(o))
            return rr_fail(c, "field %s is not an object", where);
        if (rr_u64(c, o, where, "time_ns", &r->timeline[i].time_ns, 0) != 0 ||
            rr_u64(c, o, where, "live_bytes", &r->timeline[i].live_bytes, 0) != 0)
            return -1;
    }
    return 0;
}

/* How the process ended, as the report names it (report_end_name). */
static int rr_process_end(rr_ctx_t *c, json_t *proc, prof_process_t *p)
{
    json_t *end = json_object_get(proc, "end");
    if (!end || json_is_null(end))
        return 0;
    if (!json_is_string(end))
        return rr_fail(c, "field process.end is not a string");
    static const prof_end_t ends[] = {PROF_END_UNKNOWN, PROF_END_EXITED, PROF_END_SIGNALED,
                                      PROF_END_EXEC, PROF_END_RUNNING};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++)
        if (strcmp(json_string_value(end), report_end_name(ends[i])) == 0)
            p->end = ends[i];
    uint64_t code = 0, sig = 0;
    if (rr_u64(c, proc, "process", "signal", &sig, 1) != 0)
        return -1;
    json_t *x = json_object_get(proc, "exit_code");
    if (x && !json_is_null(x)) {
        if (!json_is_integer(x) || json_integer_value(x) < INT32_MIN ||
            json_integer_value(x) > INT32_MAX)
            return rr_fail(c, "field process.exit_code is not an integer");
        code = (uint64_t)json_integer_value(x);
    }
    p->exit_code = (int32_t)code;
    p->signal = sig <= 255 ? (int32_t)sig : 0;
    return 0;
}

/* The summary's figures: the peak must be there; the rest as found. */
static int rr_summary(rr_ctx_t *c, json_t *sum, prof_summary_t *s)
{
    static const struct {
        const char *key;
        size_t offset;
    } optional[] = {
        {"peak_time_ns", offsetof(prof_summary_t, peak_time_ns)},
        {"peak_heap_bytes", offsetof(prof_summary_t, peak_heap_bytes)},
        {"peak_mmap_bytes", offsetof(prof_summary_t, peak_mmap_bytes)},
        {"peak_rss_bytes", offsetof(prof_summary_t, peak_rss_bytes)},
        {"total_allocations", offsetof(prof_summary_t, total_allocations)},
        {"total_frees", offsetof(prof_summary_t, total_frees)},
        {"total_bytes", offsetof(prof_summary_t, total_bytes)},
        {"live_bytes", offsetof(prof_summary_t, live_bytes)},
        {"leaked_bytes", offsetof(prof_summary_t, leaked_bytes)},
        {"leaked_allocations", offsetof(prof_summary_t, leaked_allocations)},
        {"temporary_allocations", offsetof(prof_summary_t, temporary_allocations)},
        {"events", offsetof(prof_summary_t, events)},
        {"dropped_events", offsetof(prof_summary_t, dropped_events)},
        {"lost_events", offsetof(prof_summary_t, lost_events)},
        {"stacks_lost", offsetof(prof_summary_t, stacks_lost)},
        {"duration_ns", offsetof(prof_summary_t, duration_ns)},
    };
    if (rr_u64(c, sum, "summary", "peak_bytes", &s->peak_bytes, 0) != 0)
        return -1;
    for (size_t i = 0; i < sizeof optional / sizeof optional[0]; i++)
        if (rr_u64(c, sum, "summary", optional[i].key,
                   (uint64_t *)((char *)s + optional[i].offset), 1) != 0)
            return -1;
    return 0;
}

/* Frees what a failed read had taken ('out' does not link the analyzer's
 * prof_result_free). */
static void rr_release(prof_result_t *out)
{
    for (size_t i = 0; out->sites && i < out->site_count; i++) {
        prof_site_t *s = &out->sites[i];
        for (uint32_t k = 0; s->frames && k < s->frame_count; k++) {
            free(s->frames[k].function);
            free(s->frames[k].file);
            free(s->frames[k].module);
        }
        free(s->frames);
    }
    free(out->process.command);
    free(out->steps.peak_bytes);
    free(out->sites);
    free(out->timeline);
    memset(out, 0, sizeof *out);
}

int report_json_read(const char *path, prof_result_t *out, char *err, size_t errlen)
{
    rr_ctx_t c = {path, err, errlen};
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return rr_fail(&c, "not a JSON report: %s (line %d, column %d)", je.text, je.line,
                       je.column);
    int rc = -1;
    json_t *schema = json_object_get(root, "schema"), *proc, *sum;
    if (!json_is_string(schema) || strcmp(json_string_value(schema), REPORT_SCHEMA) != 0) {
        rr_fail(&c, "field schema is not \"%s\" (not an mlmem report?)", REPORT_SCHEMA);
        goto fail;
    }
    if (rr_object(&c, root, "process", &proc) != 0 || rr_object(&c, root, "summary", &sum) != 0)
        goto fail;
    json_t *cmd = json_object_get(proc, "command");
    if (json_is_string(cmd) && !(out->process.command = strdup(json_string_value(cmd)))) {
        rr_fail(&c, "out of memory");
        goto fail;
    }
    if (rr_process_end(&c, proc, &out->process) != 0 || rr_summary(&c, sum, &out->summary) != 0)
        goto fail;
    if (rr_categories(&c, root, out) != 0 || rr_steps(&c, root, out) != 0 ||
        rr_sites(&c, root, out) != 0 || rr_timeline(&c, root, out) != 0)
        goto fail;
    rc = 0;
fail:
    json_decref(root);
    if (rc != 0)
        rr_release(out);
    return rc;
}
