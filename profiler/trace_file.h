/*
 * trace_file.h - the trace file: every stream of a run, as the analyzer
 * received it, zstd-compressed, with the run's outcome and a trailer that
 * marks it complete (format: docs/trace-format.md, "Trace file").
 *
 * The writer flushes the zstd stream every quarter second, so a trace
 * whose writer was killed still decodes up to its last flush; it just has
 * no trailer, and the reader says so. Files are created 0600 and never
 * through a symlink.
 *
 * The reader treats its input as untrusted: every error names the file and
 * the offset (compressed for zstd errors, decompressed for record errors)
 * and what is wrong, and no length in the file can make it allocate more
 * than a bounded amount.
 */
#ifndef PROF_TRACE_FILE_H
#define PROF_TRACE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "session.h"

typedef struct prof_trace_writer prof_trace_writer_t;

/* Creates (or truncates) 'path'. Returns NULL with a message in 'err'. */
prof_trace_writer_t *prof_trace_writer_open(const char *path, char *err, size_t errlen);

/* Appends a STREAM_OPEN, STREAM_DATA or STREAM_CLOSE record. Returns 0 or
 * -1 with a message (the writer then refuses further writes). */
int prof_trace_write_stream(prof_trace_writer_t *w, uint8_t tag, uint32_t stream_id,
                            const uint8_t *data, size_t len);

/* Flushes what was written if the last flush is older than the flush
 * interval; for quiet spells, when no record arrives to trigger it. Returns 0
 * or -1 with a message. */
int prof_trace_writer_tick(prof_trace_writer_t *w);

/* Appends the RUN_INFO record. */
int prof_trace_write_run_info(prof_trace_writer_t *w, const prof_run_info_t *info);

/* Writes the trailer, finishes the zstd frame and closes. Returns 0 or -1
 * with a message in 'err'. Frees 'w' either way. */
int prof_trace_writer_close(prof_trace_writer_t *w, char *err, size_t errlen);

/* Aborts: closes without a trailer (the trace stays marked incomplete). */
void prof_trace_writer_abort(prof_trace_writer_t *w);

const char *prof_trace_writer_error(const prof_trace_writer_t *w);

typedef struct {
    int complete;            /* the trailer was found and matched          */
    uint64_t records;
    uint64_t stream_bytes;
    uint64_t compressed_bytes;
} prof_trace_stats_t;

/* Replays the trace at 'path' into 's'. With 'allow_partial', a trace
 * without a trailer (recording cut short) is analyzed as far as it goes
 * and 0 is returned, and a malformed stream stops only that stream, as in
 * a live run (prof_session_error() then tells what was wrong); otherwise
 * both are errors. Returns 0 or -1 with a message in 'err' naming the
 * file. 'stats' (may be NULL) is filled in either case. */
int prof_trace_replay(const char *path, prof_session_t *s, int allow_partial,
                      prof_trace_stats_t *stats, char *err, size_t errlen);

/* prof_trace_replay() that also reports progress: stream data is fed in
 * pieces of at most 'piece' bytes (0: 4096) and 'progress' is called after
 * each with the stream bytes fed so far, so the caller can take snapshots
 * of the run at points in time (the replay of `mlmem tui`). The results
 * are the same as prof_trace_replay()'s. */
int prof_trace_replay_progress(const char *path, prof_session_t *s, int allow_partial,
                               prof_trace_stats_t *stats, char *err, size_t errlen, size_t piece,
                               void (*progress)(void *ctx, uint64_t stream_bytes), void *ctx);

#endif /* PROF_TRACE_FILE_H */
