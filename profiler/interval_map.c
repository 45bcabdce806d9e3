/*
 * interval_map.c - disjoint address ranges in a sorted array.
 */
#include "interval_map.h"

#include <stdlib.h>
#include <string.h>

void prof_imap_init(prof_interval_map_t *m)
{
    m->v = NULL;
    m->n = 0;
    m->cap = 0;
}

void prof_imap_destroy(prof_interval_map_t *m)
{
    if (!m)
        return;
    free(m->v);
    prof_imap_init(m);
}

int prof_imap_reserve(prof_interval_map_t *m, size_t extra)
{
    if (m->n + extra <= m->cap)
        return 0;
    size_t cap = m->cap ? m->cap * 2 : 16;
    while (cap < m->n + extra)
        cap *= 2;
    prof_region_t *v = realloc(m->v, cap * sizeof(*v));
    if (!v)
        return -1;
    m->v = v;
    m->cap = cap;
    return 0;
}

/* Returns the index of the first region whose end is above 'addr' (n if
 * none): the only candidate for containing or following 'addr'. */
static size_t imap_lower(const prof_interval_map_t *m, uint64_t addr)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->v[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The regions fully inside the cut are consecutive (only the first can keep
 * a head and only the last a tail), so they leave with one memmove. A cut
 * strictly inside one region splits it and touches nothing else. */
size_t prof_imap_cut(prof_interval_map_t *m, uint64_t start, uint64_t end, prof_imap_cut_fn fn,
                     void *ctx)
{
    if (end <= start)
        return 0;
    size_t i = imap_lower(m, start);
    size_t overlapped = 0;
    size_t gone_from = 0, gone_n = 0;
    for (; i < m->n && m->v[i].start < end; i++) {
        prof_region_t *r = &m->v[i];
        overlapped++;
        if (start <= r->start && end >= r->end) {
            fn(ctx, r, r->end - r->start, -1);
            if (gone_n == 0)
                gone_from = i;
            gone_n++;
        } else if (start > r->start && end < r->end) {
            fn(ctx, r, end - start, +1);
            prof_region_t tail = *r;
            tail.start = end;
            r->end = start;
            memmove(&m->v[i + 2], &m->v[i + 1], (m->n - i - 1) * sizeof(*r));
            m->v[i + 1] = tail;
            m->n++;
            return overlapped;
        } else if (start <= r->start) {
            fn(ctx, r, end - r->start, 0);
            r->start = end;
        } else {
            fn(ctx, r, r->end - start, 0);
            r->end = start;
        }
    }
    if (gone_n) {
        memmove(&m->v[gone_from], &m->v[gone_from + gone_n],
                (m->n - gone_from - gone_n) * sizeof(*m->v));
        m->n -= gone_n;
    }
    return overlapped;
}

void prof_imap_insert(prof_interval_map_t *m, const prof_region_t *r)
{
    size_t i = imap_lower(m, r->start);
    memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof(*r));
    m->v[i] = *r;
    m->n++;
}
