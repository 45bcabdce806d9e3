/*
 * session.h - all the processes of one profiled run. Each stream (one exec
 * image of one process: the command, its forked children, what they exec)
 * has its own analysis; the session routes stream bytes to them, knows
 * which one is the main process, and builds results that list the others.
 *
 * The same calls serve a live run (bytes from sockets) and the replay of a
 * trace file (bytes from STREAM_DATA records), which is why both give the
 * same report.
 *
 * Not thread-safe.
 */
#ifndef PROF_SESSION_H
#define PROF_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "analysis.h"
#include "prof_result.h"

/* How the run's root process ended, as the parent saw it (waitpid). */
typedef struct {
    int32_t root_pid;
    prof_end_t end;          /* PROF_END_EXITED, _SIGNALED or _UNKNOWN     */
    int32_t exit_code;
    int32_t signal;
    uint64_t end_realtime_ns;
    char *command;           /* owned by the session once set             */
} prof_run_info_t;

typedef struct prof_session prof_session_t;

prof_session_t *prof_session_new(void);
void prof_session_free(prof_session_t *s);

/* Attribution rules (attribution.h, prof_rules_load()) for every stream of
 * the session, tried before the built-in ones; NULL for built-in only.
 * 'rules' must outlive the session. */
void prof_session_set_rules(prof_session_t *s, const prof_rules_t *rules);

/* The process whose result will be symbolized ('pid', or 0 for the main
 * one): the modules its stacks run in are opened on a helper thread while
 * the stream is still being fed, so the result does not wait for them
 * (symbols.h). Call before the first stream opens. Off by default. */
void prof_session_prefetch_symbols(prof_session_t *s, int32_t pid);

/* prof_symbols_finish() for every stream's symbolizer (their helper threads
 * stopped, their frames saved for the next run), for a process that ends
 * without prof_session_free(), which does it. */
void prof_session_finish_symbols(prof_session_t *s);

/* Starts stream 'id' (ids are unique within a run). Returns 0, or -1 if the
 * id is taken or memory ran out. */
int prof_session_open(prof_session_t *s, uint32_t id);

/* Feeds bytes of stream 'id'. Returns 0, or -1 if the id is unknown or the
 * stream is malformed (prof_session_error() names the stream, the process
 * and the offset). A malformed stream stops; the others go on. */
int prof_session_data(prof_session_t *s, uint32_t id, const uint8_t *data, size_t len);

/* Ends stream 'id'. Returns 0, or -1 if it ended inside a record. */
int prof_session_close(prof_session_t *s, uint32_t id);

/* Records how the root process ended; takes ownership of info->command. */
void prof_session_set_run_info(prof_session_t *s, const prof_run_info_t *info);

/* Ends every open stream (a live run that stops, or a truncated trace). */
void prof_session_close_all(prof_session_t *s);

const char *prof_session_error(const prof_session_t *s);

size_t prof_session_stream_count(const prof_session_t *s);

/* The main process's analysis: the last image of the root pid, else the
 * first stream; NULL if there is no stream. */
prof_analysis_t *prof_session_main(prof_session_t *s);

/* Streams are numbered from 0 in the order they opened, which a replay of
 * the same trace repeats. The number of process 'pid''s stream (its latest
 * image with data; 0: the main process), or SIZE_MAX if there is none. */
size_t prof_session_process_index(prof_session_t *s, int32_t pid);

/* prof_analysis_set_mark() for stream number 'index', now if it is open,
 * or when it opens. */
void prof_session_set_mark(prof_session_t *s, size_t index, uint64_t seq,
                           void (*hook)(void *ctx), void *ctx);

/* The analysis of process 'pid' (its latest image with data; 0: the main
 * process, as prof_session_main), or NULL. */
prof_analysis_t *prof_session_process(prof_session_t *s, int32_t pid);

/* Fills 'out' for process 'pid' (0: the main one), listing the run's other
 * processes as children. Returns 0, -1 if out of memory, or -2 if there is
 * no such process. */
int prof_session_result(prof_session_t *s, int32_t pid, int symbolize, size_t max_sites,
                        prof_result_t *out);

#endif /* PROF_SESSION_H */
