/*
 * symbols.h - turns raw instruction addresses of a profiled process into
 * function, file:line and module, with elfutils libdw, after the fact and
 * outside the target. Demangles C++ names. A frame that cannot be resolved
 * (no file on disk, stripped, vdso, JIT code) still gets its module and
 * offset, or just its address.
 *
 * The module map is what the shim saw through dl_iterate_phdr: each module
 * has an id, a path, a load bias (dlpi_addr), the address range its PT_LOAD
 * segments cover, and the event seq from which it was loaded (and, after a
 * dlclose, until which). An address is resolved against the module that
 * covered it at the seq the stack was captured, so a library loaded, closed
 * and another loaded at the same place resolve correctly.
 *
 * Lookups are cached per address. ELF files are opened lazily, once each,
 * or ahead of time on a helper thread (prof_symbols_prefetch). Not
 * thread-safe: one thread calls these functions.
 */
#ifndef PROF_SYMBOLS_H
#define PROF_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

#include "prof_result.h"

typedef struct prof_symbols prof_symbols_t;

/* Returns a new symbolizer, or NULL if out of memory. */
prof_symbols_t *prof_symbols_new(void);

/* Finishes (prof_symbols_finish), then releases everything the symbolizer owns (not the strings it handed out,
 * which belong to the caller). No operation if NULL. */
void prof_symbols_free(prof_symbols_t *s);

/* Registers module 'id' loaded at 'load_seq': file 'path' with load bias
 * 'bias', covering [start, end). Returns 0, or -1 if out of memory. */
int prof_symbols_add_module(prof_symbols_t *s, uint32_t id, const char *path,
                            uint64_t bias, uint64_t start, uint64_t end,
                            uint64_t load_seq);

/* Module 'id' was unloaded at 'unload_seq'. Unknown ids are ignored. */
void prof_symbols_unload_module(prof_symbols_t *s, uint32_t id, uint64_t unload_seq);

/* Starts opening, on a helper thread, the modules that the return
 * addresses 'addresses[0..count)' of a stack captured at 'seq' fall in,
 * unless they were opened or queued before: a later resolve there then
 * finds the file read. Only a hint: without memory or threads, resolve
 * opens them itself. */
void prof_symbols_prefetch(prof_symbols_t *s, const uint64_t *addresses, size_t count,
                           uint64_t seq);

/* How many modules the helper thread has opened so far (not those it was
 * given but resolve opened first). */
size_t prof_symbols_opened_ahead(prof_symbols_t *s);

/* Resolves the frame at 'address' of a stack captured at 'seq'.
 * 'is_return_address' is 1 for every frame but the innermost: the lookup then
 * uses address - 1 so a call at the end of a function resolves to it.
 * Writes up to 'max' frames to 'out' (more than one when inlined functions
 * are found: the innermost inline first, the containing function last, all
 * with the same address) and returns how many (at least 1 when max >= 1).
 * Strings in 'out' are copies the caller owns (free() them), so results
 * outlive the symbolizer. */
size_t prof_symbols_resolve(prof_symbols_t *s, uint64_t address, uint64_t seq,
                            int is_return_address, prof_frame_t *out, size_t max);

/* prof_symbols_resolve() without the copies: the strings in 'out' belong to
 * the symbolizer and stay valid until prof_symbols_free(). A caller that
 * keeps frames for longer copies what it keeps (analysis.c packs a site's
 * strings in one block: 300,000 string copies of 'import torch''s report
 * were most of its time after the program ended). */
size_t prof_symbols_resolve_shared(prof_symbols_t *s, uint64_t address, uint64_t seq,
                                   int is_return_address, prof_frame_t *out, size_t max);

/* Stops the helper thread (after the module it is opening; what it had
 * not started is opened by a later resolve) and writes the frames resolved
 * since they were read to the frame cache (frame_cache.h), for the next run
 * of the same builds: once, when the results are done, not after each of a
 * live display's snapshots. The writing is best effort. A process that
 * ends without prof_symbols_free(), which does this, must call it: the
 * helper must not be inside libdw when the process exits. */
void prof_symbols_finish(prof_symbols_t *s);

#endif /* PROF_SYMBOLS_H */
