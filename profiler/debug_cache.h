/*
 * debug_cache.h - inflated copies of compressed separate debug files, kept
 * between runs.
 *
 * Debian's -dbg and -dbgsym packages ship DWARF in zlib-compressed sections,
 * and libdw inflates every one of them each time it opens the file:
 * libc6-dbg's 4 MB file becomes 10 MB in about 60 ms, most of what a short
 * `mlmem run` costs after the program exits. The cache keeps one inflated
 * copy per build ID, which libdw then maps without inflating anything
 * (0.5 ms). Like perf's ~/.debug, it lives in the user's cache directory:
 *
 *   $MLMEM_CACHE_DIR            (set but empty: no cache)
 *   $XDG_CACHE_HOME/mlmem
 *   $HOME/.cache/mlmem
 *
 * Entries are made from the debug files Debian installs by build ID (below).
 * Entries are <build-id>.debug, written to a temporary name and renamed, so
 * concurrent runs never see half a file. An entry is checked (an ELF file
 * with the wanted build ID) before use and replaced when it fails. Entries
 * are dropped least recently used first once the cache holds more than
 * PROF_DEBUG_CACHE_MAX_BYTES. Removing the directory is always safe.
 */
#ifndef PROF_DEBUG_CACHE_H
#define PROF_DEBUG_CACHE_H

#include <stddef.h>
#include <stdint.h>

/* The most the cache keeps, all entries together. */
#define PROF_DEBUG_CACHE_MAX_BYTES (1024ull << 20)

/* Debug files whose compressed sections inflate to less than this are not
 * cached: inflating them costs a few milliseconds at most. */
#define PROF_DEBUG_CACHE_MIN_INFLATED (1u << 20)

/* Returns the cache directory the environment names (above), malloc'd, or
 * NULL when caching is off or there is no home to put it in. The directory
 * need not exist yet. */
char *prof_debug_cache_dir(void);

/* Where Debian's debug packages put separate debug files, by build ID:
 * <root>/.build-id/<first two hex digits>/<the rest>.debug. */
#define PROF_DEBUG_ROOT "/usr/lib/debug"

/* Returns a read-only descriptor of the cached inflated copy of the debug
 * file of build ID 'build_id[0..len)', and sets '*cached_path' to its path
 * (malloc'd). Without an entry, one is made (and 'dir' with it) from the
 * file of that build ID under 'debug_root' when that file has compressed
 * sections worth it. Returns -1 when there is no such file, it is not
 * worth caching or anything fails: the caller then looks for the debug
 * file as it would without the cache. */
int prof_debug_cache_open(const char *dir, const char *debug_root,
                          const unsigned char *build_id, size_t len, char **cached_path);

/* Removes the least recently used entries of 'dir' (debug files and kept
 * frames, frame_cache.h) until the rest hold at most 'max_bytes', and
 * temporary files that a killed run left over an hour ago. Returns how many
 * entries it removed. */
size_t prof_debug_cache_trim(const char *dir, uint64_t max_bytes);

/* mkdir -p 'dir', with mode 0700 for what it creates (frame_cache.c keeps
 * its files there too). 0, or -1 with errno. */
int prof_debug_cache_make_dirs(const char *dir);

#endif /* PROF_DEBUG_CACHE_H */
