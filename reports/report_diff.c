/*
 * report_diff.c - what changed between two runs (see report.h, "Diff").
 *
 * Sites are joined by what their stacks say, not by stack id: ids are
 * handed out in the order stacks are first seen, so they differ from run to
 * run. A site's key is its frames, innermost first, each as function,
 * file and line when the symbolizer found them, else as module and offset
 * (stable across runs; raw addresses move with ASLR). Sites of one run that
 * share a key (the same lines reached through different addresses) are
 * counted as one.
 */
#define _GNU_SOURCE
#include "report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mlmem/trace_format.h"

/* One side's site, with the key it is joined on. */
typedef struct {
    char *key;
    const prof_site_t *site;
} rd_keyed_t;

/* Appends 's' to the growing string *buf (length *len, capacity *cap). */
static int rd_append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        while (c < *len + n + 1)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b)
            return -1;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
    return 0;
}

static const char *rd_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

/* The site's key, malloc'd; NULL when out of memory. Site 0 (the small
 * allocations whose stack was not sampled) is a key of its own; a site
 * without frames (a report that did not keep them) keys on its stack id,
 * which matches only by chance, so diff_sites_comparable says so. */
static char *rd_key(const prof_site_t *s)
{
    char part[640];
    if (s->stack_id == MLMEM_STACK_NONE)
        return strdup("(unsampled)");
    if (!s->frames || !s->frame_count) {
        snprintf(part, sizeof part, "(stack %" PRIu32 ")", s->stack_id);
        return strdup(part);
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (uint32_t i = 0; i < s->frame_count; i++) {
        const prof_frame_t *f = &s->frames[i];
        if (f->function)
            snprintf(part, sizeof part, "%s@%s:%" PRIu32 "|", f->function,
                     f->file ? rd_basename(f->file) : "", f->line);
        else if (f->module)
            snprintf(part, sizeof part, "%s+0x%" PRIx64 "|", rd_basename(f->module),
                     f->module_offset);
        else
            snprintf(part, sizeof part, "0x%" PRIx64 "|", f->address);
        if (rd_append(&buf, &len, &cap, part) != 0) {
            free(buf);
            return NULL;
        }
    }
    return buf;
}

static int rd_cmp_keyed(const void *a, const void *b)
{
    return strcmp(((const rd_keyed_t *)a)->key, ((const rd_keyed_t *)b)->key);
}

/* Keys every site of 'r', sorted by key. */
static rd_keyed_t *rd_keyed_sites(const prof_result_t *r)
{
    rd_keyed_t *v = calloc(r->site_count ? r->site_count : 1, sizeof *v);
    if (!v)
        return NULL;
    for (size_t i = 0; i < r->site_count; i++) {
        v[i].site = &r->sites[i];
        v[i].key = rd_key(&r->sites[i]);
        if (!v[i].key) {
            for (size_t j = 0; j < i; j++)
                free(v[j].key);
            free(v);
            return NULL;
        }
    }
    qsort(v, r->site_count, sizeof *v, rd_cmp_keyed);
    return v;
}

static void rd_add(report_diff_side_t *side, const prof_site_t *s)
{
    if (!side->site)
        side->site = s;
    side->at_peak += s->live_bytes_at_peak;
    side->allocations += s->allocations;
    side->bytes_allocated += s->bytes_allocated;
    side->leaked += s->live_bytes;
}

static uint64_t rd_gap(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

/* Largest change at the peak first, then of allocation counts, then the
 * larger site; the key last, so the order is total. */
static int rd_cmp_change(const void *a, const void *b)
{
    const report_diff_site_t *x = a, *y = b;
    uint64_t cx = rd_gap(x->base.at_peak, x->now.at_peak);
    uint64_t cy = rd_gap(y->base.at_peak, y->now.at_peak);
    if (cx != cy)
        return cx > cy ? -1 : 1;
    cx = rd_gap(x->base.allocations, x->now.allocations);
    cy = rd_gap(y->base.allocations, y->now.allocations);
    if (cx != cy)
        return cx > cy ? -1 : 1;
    uint64_t sx = x->base.at_peak + x->now.at_peak, sy = y->base.at_peak + y->now.at_peak;
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* Whether the result's sites carry frames (a trace's do, but for those
 * past the first 20,000; a report read back may not): some site with a
 * stack has frames, or no site has a stack. */
static int rd_has_frames(const prof_result_t *r)
{
    int stacks = 0;
    for (size_t i = 0; i < r->site_count; i++) {
        if (r->sites[i].frame_count)
            return 1;
        stacks |= r->sites[i].stack_id != MLMEM_STACK_NONE;
    }
    return !stacks;
}

static int rd_join(const prof_result_t *base, const prof_result_t *now, report_diff_t *d)
{
    rd_keyed_t *a = rd_keyed_sites(base), *b = a ? rd_keyed_sites(now) : NULL;
    int rc = -1;
    d->sites = calloc(base->site_count + now->site_count + 1, sizeof *d->sites);
    if (!a || !b || !d->sites)
        goto out;
    size_t i = 0, j = 0;
    while (i < base->site_count || j < now->site_count) {
        int c = i == base->site_count  ? 1
                : j == now->site_count ? -1
                                       : strcmp(a[i].key, b[j].key);
        const char *key = c <= 0 ? a[i].key : b[j].key;
        report_diff_site_t *out = &d->sites[d->site_count];
        out->key = strdup(key);
        if (!out->key)
            goto out;
        d->site_count++;
        /* Every site of either side with this key. */
        while (i < base->site_count && strcmp(a[i].key, key) == 0)
            rd_add(&out->base, a[i++].site);
        while (j < now->site_count && strcmp(b[j].key, key) == 0)
            rd_add(&out->now, b[j++].site);
    }
    qsort(d->sites, d->site_count, sizeof *d->sites, rd_cmp_change);
    rc = 0;
out:
    for (size_t k = 0; a && k < base->site_count; k++)
        free(a[k].key);
    for (size_t k = 0; b && k < now->site_count; k++)
        free(b[k].key);
    free(a);
    free(b);
    return rc;
}

/* The base's recommendation whose predicted peak is nearest the new run's
 * measured peak, among those that predict this run's peak (not churn, not
 * deployment-only savings); none unless the new peak is lower, since every
 * recommendation lowers it. */
static long rd_nearest_prediction(const prof_result_t *base, const prof_result_t *now)
{
    long best = -1;
    uint64_t best_gap = UINT64_MAX, measured = now->summary.peak_bytes;
    if (measured >= base->summary.peak_bytes)
        return -1;
    for (size_t i = 0; i < base->recommendation_count; i++) {
        const prof_recommendation_t *a = &base->recommendations[i];
        if (a->kind == PROF_ADVICE_CHURN || a->deployment_only || !a->predicted_peak_bytes)
            continue;
        uint64_t p = a->predicted_peak_bytes;
        uint64_t gap = p > measured ? p - measured : measured - p;
        if (gap < best_gap) {
            best_gap = gap;
            best = (long)i;
        }
    }
    return best;
}

int report_diff_compute(const prof_result_t *base, const prof_result_t *now, report_diff_t *d)
{
    memset(d, 0, sizeof *d);
    d->sites_comparable = rd_has_frames(base) && rd_has_frames(now);
    d->nearest_prediction = rd_nearest_prediction(base, now);
    if (rd_join(base, now, d) != 0) {
        report_diff_free(d);
        return -1;
    }
    return 0;
}

void report_diff_free(report_diff_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; d->sites && i < d->site_count; i++)
        free(d->sites[i].key);
    free(d->sites);
    memset(d, 0, sizeof *d);
}
