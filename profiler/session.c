/*
 * session.c - the processes of one run; see session.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

typedef struct {
    uint32_t id;
    int open;
    int failed;
    prof_analysis_t *analysis;
} stream_t;

struct prof_session {
    stream_t *streams;
    size_t count, cap;
    int have_run_info;
    prof_run_info_t run;
    const prof_rules_t *rules; /* attribution rules for every stream       */
    int prefetch;              /* prof_session_prefetch_symbols() was called */
    int32_t prefetch_pid;      /* its pid: 0 for the main process          */
    size_t mark_index;         /* prof_session_set_mark(); hook NULL: none */
    uint64_t mark_seq;
    void (*mark_hook)(void *ctx);
    void *mark_ctx;
    char error[512];
};

prof_session_t *prof_session_new(void)
{
    return calloc(1, sizeof(prof_session_t));
}

void prof_session_set_rules(prof_session_t *s, const prof_rules_t *rules)
{
    s->rules = rules;
    for (size_t i = 0; i < s->count; i++)
        if (s->streams[i].analysis)
            prof_analysis_set_rules(s->streams[i].analysis, rules);
}

void prof_session_prefetch_symbols(prof_session_t *s, int32_t pid)
{
    s->prefetch = 1;
    s->prefetch_pid = pid;
}

/* The main process is the first stream's (the command starts first), or a
 * later image of it after an exec; its pid is known once that stream said
 * HELLO. */
static int32_t prefetch_pid_for_new_stream(const prof_session_t *s)
{
    if (!s->prefetch)
        return 0;
    if (s->prefetch_pid)
        return s->prefetch_pid;
    return s->count == 0 ? -1 : prof_analysis_pid(s->streams[0].analysis);
}

void prof_session_finish_symbols(prof_session_t *s)
{
    for (size_t i = 0; i < s->count; i++)
        prof_analysis_finish_symbols(s->streams[i].analysis);
}

void prof_session_free(prof_session_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->count; i++)
        prof_analysis_free(s->streams[i].analysis);
    free(s->streams);
    free(s->run.command);
    free(s);
}

static stream_t *find(prof_session_t *s, uint32_t id)
{
    for (size_t i = s->count; i-- > 0;)
        if (s->streams[i].id == id)
            return &s->streams[i];
    return NULL;
}

int prof_session_open(prof_session_t *s, uint32_t id)
{
    if (find(s, id)) {
        snprintf(s->error, sizeof s->error, "stream %u was opened twice", id);
        return -1;
    }
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        stream_t *ns = realloc(s->streams, cap * sizeof *ns);
        if (!ns) {
            snprintf(s->error, sizeof s->error, "out of memory");
            return -1;
        }
        s->streams = ns;
        s->cap = cap;
    }
    stream_t *st = &s->streams[s->count];
    memset(st, 0, sizeof *st);
    st->id = id;
    st->open = 1;
    st->analysis = prof_analysis_new();
    if (!st->analysis) {
        snprintf(s->error, sizeof s->error, "out of memory");
        return -1;
    }
    prof_analysis_set_rules(st->analysis, s->rules);
    prof_analysis_prefetch_symbols(st->analysis, prefetch_pid_for_new_stream(s));
    if (s->mark_hook && s->count == s->mark_index)
        prof_analysis_set_mark(st->analysis, s->mark_seq, s->mark_hook, s->mark_ctx);
    s->count++;
    return 0;
}

static int stream_failed(prof_session_t *s, stream_t *st)
{
    if (!st->failed) {
        st->failed = 1;
        snprintf(s->error, sizeof s->error, "stream %u (pid %d): %s", st->id,
                 (int)prof_analysis_pid(st->analysis), prof_analysis_error(st->analysis));
    }
    return -1;
}

int prof_session_data(prof_session_t *s, uint32_t id, const uint8_t *data, size_t len)
{
    stream_t *st = find(s, id);
    if (!st || !st->open) {
        snprintf(s->error, sizeof s->error, "data for stream %u, which is not open", id);
        return -1;
    }
    if (st->failed)
        return -1;
    if (prof_analysis_feed(st->analysis, data, len) != 0)
        return stream_failed(s, st);
    return 0;
}

int prof_session_close(prof_session_t *s, uint32_t id)
{
    stream_t *st = find(s, id);
    if (!st || !st->open) {
        snprintf(s->error, sizeof s->error, "close of stream %u, which is not open", id);
        return -1;
    }
    st->open = 0;
    if (prof_analysis_finish(st->analysis) != 0 && !st->failed)
        return stream_failed(s, st);
    return st->failed ? -1 : 0;
}

void prof_session_close_all(prof_session_t *s)
{
    for (size_t i = 0; i < s->count; i++)
        if (s->streams[i].open)
            prof_session_close(s, s->streams[i].id);
}

void prof_session_set_run_info(prof_session_t *s, const prof_run_info_t *info)
{
    free(s->run.command);
    s->run = *info;
    s->have_run_info = 1;
}

const char *prof_session_error(const prof_session_t *s)
{
    return s->error[0] ? s->error : NULL;
}

size_t prof_session_stream_count(const prof_session_t *s)
{
    return s->count;
}

/* A stream that never said HELLO (its process exec'd or died at once)
 * has nothing to report. */
static int has_data(const stream_t *st)
{
    return prof_analysis_pid(st->analysis) != 0;
}

static stream_t *main_stream(prof_session_t *s)
{
    if (s->have_run_info)
        for (size_t i = s->count; i-- > 0;)
            if (has_data(&s->streams[i]) &&
                prof_analysis_pid(s->streams[i].analysis) == s->run.root_pid)
                return &s->streams[i];
    for (size_t i = 0; i < s->count; i++)
        if (has_data(&s->streams[i]))
            return &s->streams[i];
    return NULL;
}

prof_analysis_t *prof_session_main(prof_session_t *s)
{
    stream_t *st = main_stream(s);
    return st ? st->analysis : NULL;
}

/* A stream whose pid shows up again in a later stream was replaced by
 * exec, whatever its END record said (the shim cannot see exec). */
static int replaced_by_exec(prof_session_t *s, size_t i)
{
    int32_t pid = prof_analysis_pid(s->streams[i].analysis);
    for (size_t j = i + 1; j < s->count; j++)
        if (prof_analysis_pid(s->streams[j].analysis) == pid)
            return 1;
    return 0;
}

static void apply_end(prof_session_t *s, size_t i, prof_process_t *p, int open)
{
    if (replaced_by_exec(s, i)) {
        p->end = PROF_END_EXEC;
        return;
    }
    if (s->have_run_info && p->pid == s->run.root_pid && s->run.end != PROF_END_UNKNOWN) {
        p->end = s->run.end;
        p->exit_code = s->run.exit_code;
        p->signal = s->run.signal;
        p->end_realtime_ns = s->run.end_realtime_ns;
        return;
    }
    if (open && p->end == PROF_END_UNKNOWN)
        p->end = PROF_END_RUNNING;
}

/* The stream of process 'pid' (0: the run's main process): its latest
 * image with data. SIZE_MAX if there is none. */
static size_t find_process(prof_session_t *s, int32_t pid)
{
    if (pid == 0) {
        stream_t *m = main_stream(s);
        return m ? (size_t)(m - s->streams) : SIZE_MAX;
    }
    for (size_t i = s->count; i-- > 0;)
        if (has_data(&s->streams[i]) && prof_analysis_pid(s->streams[i].analysis) == pid)
            return i;
    return SIZE_MAX;
}

size_t prof_session_process_index(prof_session_t *s, int32_t pid)
{
    return find_process(s, pid);
}

void prof_session_set_mark(prof_session_t *s, size_t index, uint64_t seq,
                           void (*hook)(void *ctx), void *ctx)
{
    if (index < s->count) {
        prof_analysis_set_mark(s->streams[index].analysis, seq, hook, ctx);
        return;
    }
    s->mark_index = index;
    s->mark_seq = seq;
    s->mark_hook = hook;
    s->mark_ctx = ctx;
}

prof_analysis_t *prof_session_process(prof_session_t *s, int32_t pid)
{
    size_t i = find_process(s, pid);
    return i == SIZE_MAX ? NULL : s->streams[i].analysis;
}

int prof_session_result(prof_session_t *s, int32_t pid, int symbolize, size_t max_sites,
                        prof_result_t *out)
{
    size_t target = find_process(s, pid);
    if (target == SIZE_MAX)
        return -2;
    if (prof_analysis_result(s->streams[target].analysis, symbolize, max_sites, out) != 0)
        return -1;
    apply_end(s, target, &out->process, s->streams[target].open);
    if (s->count > 1) {
        out->children = calloc(s->count - 1, sizeof *out->children);
        if (!out->children) {
            prof_result_free(out);
            return -1;
        }
    }
    for (size_t i = 0; i < s->count; i++) {
        if (i == target || !has_data(&s->streams[i]))
            continue;
        prof_result_t r;
        if (prof_analysis_result(s->streams[i].analysis, 0, 1, &r) != 0) {
            prof_result_free(out);
            return -1;
        }
        apply_end(s, i, &r.process, s->streams[i].open);
        prof_child_t *c = &out->children[out->child_count++];
        c->pid = r.process.pid;
        c->ppid = r.process.ppid;
        c->command = r.process.command;
        r.process.command = NULL;
        c->peak_bytes = r.summary.peak_bytes;
        c->total_allocations = r.summary.total_allocations;
        c->leaked_bytes = r.summary.leaked_bytes;
        c->end = r.process.end;
        c->exit_code = r.process.exit_code;
        c->signal = r.process.signal;
        prof_result_free(&r);
    }
    return 0;
}
