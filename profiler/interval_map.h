/*
 * interval_map.h - the memory mappings of one process as disjoint address
 * ranges, for the accounting stage (anonymous and file-backed mappings).
 * Private to profiler/accounting.c.
 *
 * A sorted array with binary search: programs make few mappings (the malloc
 * family's own mmaps never reach us as MMAP events), so inserts that move the
 * tail are cheap and the layout stays simple. Each region carries an 'origin'
 * (the mapping call it came from): cutting a region in the middle yields two
 * regions with the same origin, so the caller can tell when the last byte of
 * one mapping call goes away.
 */
#ifndef PROF_INTERVAL_MAP_H
#define PROF_INTERVAL_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t start;   /* inclusive */
    uint64_t end;     /* exclusive; end > start */
    uint32_t origin;  /* caller's id for the mapping call */
    uint32_t is_file; /* 1: file-backed */
} prof_region_t;

typedef struct {
    prof_region_t *v;
    size_t n;
    size_t cap;
} prof_interval_map_t;

/* Called by prof_imap_cut() for every region that overlaps the cut range,
 * before the map changes: 'r' is the region as it was, 'bytes' how many of
 * its bytes go away, 'pieces' the change in the number of regions of its
 * origin: -1 (the region vanished), 0 (trimmed at one end) or +1 (cut in the
 * middle: it became two). */
typedef void (*prof_imap_cut_fn)(void *ctx, const prof_region_t *r, uint64_t bytes, int pieces);

/* Initializes an empty map (no allocation). */
void prof_imap_init(prof_interval_map_t *m);

/* Releases the map's memory. No operation if 'm' is NULL. */
void prof_imap_destroy(prof_interval_map_t *m);

/* Makes room for 'extra' more regions. Returns 0, or -1 if out of memory
 * (the map is then unchanged). A cut needs at most one extra region, an
 * insert one. */
int prof_imap_reserve(prof_interval_map_t *m, size_t extra);

/* Removes the bytes [start, end) from every region they overlap, calling
 * 'fn' once per overlapping region. Returns the number of regions
 * overlapped (0: nothing was mapped there). Needs one reserved slot. */
size_t prof_imap_cut(prof_interval_map_t *m, uint64_t start, uint64_t end, prof_imap_cut_fn fn,
                     void *ctx);

/* Inserts 'r', which must not overlap any region (cut first). Needs one
 * reserved slot. */
void prof_imap_insert(prof_interval_map_t *m, const prof_region_t *r);

#endif /* PROF_INTERVAL_MAP_H */
