/*
 * frame_cache.h - resolved frames kept between runs, by build ID.
 *
 * Symbolizing an address with libdw (its CU's line table, its inline
 * scopes) is the larger part of what a short run pays after its command
 * exits: 4 ms of the 400-step storm's 8, 3 of them for one stack of libc's
 * printf (docs/benchmarks.md, ninth round). A module's frames depend only
 * on the file, so they are kept in the debug cache's directory
 * (debug_cache.h) as <build id>.frames: every address of that build
 * resolved before, by its offset from the module's load bias, with the
 * function, file, line and inline flag of each frame it resolved to, and
 * whether the module had debug information then (frames without a file,
 * from the symbol table alone, resolved before the module had any, are
 * resolved again once it has). The
 * file is read when the module's first address is resolved and rewritten
 * (to a temporary file, then renamed) when the symbolizer is done, if new
 * addresses were added. A file
 * that does not parse, or names another build, is ignored and replaced.
 */
#ifndef PROF_FRAME_CACHE_H
#define PROF_FRAME_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "prof_result.h"

typedef struct prof_frame_cache prof_frame_cache_t;

/* The frames of build 'id' (len bytes) kept in 'dir': what the file holds,
 * or none yet. NULL when out of memory or the build ID is empty. */
prof_frame_cache_t *prof_frame_cache_open(const char *dir, const uint8_t *id, size_t len);

/* An entry's flags. */
#define PROF_FRAME_CACHE_DEBUG_INFO 1u /* resolved while the module had debug information */

/* The frames kept for 'offset' (their function, file, line and inlined
 * fields; the cache owns them): their count, or 0 when none are kept. Their
 * flags in '*flags' unless it is NULL. */
size_t prof_frame_cache_get(const prof_frame_cache_t *c, uint64_t offset,
                            const prof_frame_t **frames, uint32_t *flags);

/* Keeps copies of frames[0, n) for 'offset' with 'flags', in place of what
 * was kept for it before. 0, or -1 when out of memory. */
int prof_frame_cache_put(prof_frame_cache_t *c, uint64_t offset, const prof_frame_t *frames,
                         size_t n, uint32_t flags);

/* Writes the file again if frames were put since it was read. 0, or -1
 * (the file is then left as it was). */
int prof_frame_cache_save(prof_frame_cache_t *c);

/* How many offsets the cache holds (read and put). */
size_t prof_frame_cache_count(const prof_frame_cache_t *c);

/* How many of them have not 'flag' among their flags. */
size_t prof_frame_cache_count_without(const prof_frame_cache_t *c, uint32_t flag);

void prof_frame_cache_free(prof_frame_cache_t *c);

#endif /* PROF_FRAME_CACHE_H */
