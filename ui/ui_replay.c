/*
 * ui_replay.c - driver of the replay dashboard (see ui_replay.h).
 */
#define _GNU_SOURCE
#include "ui_replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "profiler/session.h"
#include "profiler/trace_file.h"
#include "ui_input.h"
#include "ui_model.h"
#include "ui_view.h"

#define MIN_PIECE 64        /* stream bytes fed between progress calls ... */
#define MAX_PIECE (1 << 20) /* ... at least and at most                    */

typedef struct {
    prof_session_t *session;
    int32_t pid;
    prof_result_t *frames;
    prof_thread_site_t **ts;     /* per frame, every thread's sites       */
    size_t *ts_n;
    int no_ts;                   /* not the main process: none kept       */
    size_t count;
    size_t peak_frame;           /* the frame taken at the peak, or SIZE_MAX */
    uint64_t step, last_at;
    int oom;
} collect_t;

/* Drops the frames' stacks once attribution has read them: the dashboard
 * looks stacks up in the symbolized result of the whole run. */
static void strip_frames(prof_result_t *r)
{
    for (size_t i = 0; i < r->site_count; i++)
        prof_site_drop_frames(&r->sites[i]);
}

/* Halves the frames (keeps the even ones, and the peak's) and doubles the
 * step. */
static void thin(collect_t *c)
{
    size_t k = 0;
    for (size_t i = 0; i < c->count; i++) {
        if (i % 2 == 0 || i == c->peak_frame) {
            if (i == c->peak_frame)
                c->peak_frame = k;
            c->ts[k] = c->ts[i];
            c->ts_n[k] = c->ts_n[i];
            c->frames[k++] = c->frames[i];
        } else {
            prof_result_free(&c->frames[i]);
            free(c->ts[i]);
        }
    }
    c->count = k;
    c->step *= 2;
}

/* Every thread's live figures per site at this point of the stream, the
 * largest UI_REPLAY_MAX_SITES sites of each thread kept. */
static void take_thread_sites(collect_t *c, size_t i)
{
    c->ts[i] = NULL;
    c->ts_n[i] = 0;
    prof_analysis_t *a = c->no_ts ? NULL : prof_session_main(c->session);
    if (!a || (c->pid && prof_analysis_pid(a) != c->pid)) {
        c->no_ts = 1;
        return;
    }
    prof_thread_site_t *v;
    size_t n, k = 0, run = 0;
    if (prof_acct_thread_sites(prof_analysis_acct(a), PROF_ACCT_ALL_THREADS, &v, &n) != 0) {
        c->oom = 1;
        return;
    }
    for (size_t j = 0; j < n; j++) { /* sorted by tid, then bytes */
        run = j > 0 && v[j].tid == v[j - 1].tid ? run + 1 : 0;
        if (run < UI_REPLAY_MAX_SITES)
            v[k++] = v[j];
    }
    prof_thread_site_t *shrunk = k ? realloc(v, k * sizeof *v) : NULL;
    if (!shrunk) {
        free(v);
        shrunk = NULL;
        k = 0;
    }
    c->ts[i] = shrunk;
    c->ts_n[i] = k;
}

static void take(collect_t *c)
{
    prof_result_t r;
    /* Symbolized, as live: rules match functions, files and modules, so a
     * frame without symbols would be attributed otherwise than the report
     * (the symbolizer caches each address; the strings go again at once). */
    if (c->oom || prof_session_result(c->session, c->pid, 1, UI_REPLAY_MAX_SITES, &r) != 0)
        return;
    if (c->count && c->frames[c->count - 1].summary.events == r.summary.events) {
        prof_result_free(&r); /* nothing happened since the last frame */
        return;
    }
    strip_frames(&r);
    if (c->count >= UI_REPLAY_MAX_FRAMES)
        thin(c);
    take_thread_sites(c, c->count);
    c->frames[c->count++] = r;
}

/* Right after the event that reached the peak: a frame of that moment, so
 * that P shows the peak itself, not the end of the slice of the stream
 * that holds it (which may end after the frees that follow it). */
static void on_peak(void *ctx)
{
    collect_t *c = ctx;
    take(c);
    if (c->count)
        c->peak_frame = c->count - 1;
}

static void on_progress(void *ctx, uint64_t bytes)
{
    collect_t *c = ctx;
    if (bytes - c->last_at < c->step)
        return;
    c->last_at = bytes;
    take(c);
}

void ui_replay_frames_free(ui_replay_frames_t *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->count; i++)
        prof_result_free(&f->frames[i]);
    free(f->frames);
    prof_result_free(&f->symbols);
    for (size_t i = 0; f->thread_sites && i < f->count; i++)
        free(f->thread_sites[i]);
    free(f->thread_sites);
    free(f->thread_site_counts);
    memset(f, 0, sizeof *f);
}

int ui_replay_load(const char *path, int32_t pid, int allow_partial, ui_replay_frames_t *out,
                   char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    collect_t c = {.pid = pid, .peak_frame = SIZE_MAX};
    /* First pass: how long the stream is, so the frames can be spaced
     * evenly (a snapshot costs far more than feeding bytes), and which
     * event reached the peak. */
    prof_trace_stats_t st;
    c.session = prof_session_new();
    if (!c.session) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (prof_trace_replay(path, c.session, allow_partial, &st, err, errlen) != 0) {
        prof_session_free(c.session);
        return -1;
    }
    size_t peak_stream = prof_session_process_index(c.session, pid);
    uint64_t peak_seq =
        peak_stream == SIZE_MAX ? 0 : prof_analysis_peak_seq(prof_session_process(c.session, pid));
    prof_session_free(c.session);
    c.step = st.stream_bytes / (UI_REPLAY_MAX_FRAMES - 1);
    if (c.step < MIN_PIECE)
        c.step = MIN_PIECE;
    size_t piece = c.step / 4 > MIN_PIECE ? (size_t)(c.step / 4) : MIN_PIECE;
    if (piece > MAX_PIECE)
        piece = MAX_PIECE;

    c.session = prof_session_new();
    if (c.session) {
        prof_session_prefetch_symbols(c.session, pid);
        if (peak_seq)
            prof_session_set_mark(c.session, peak_stream, peak_seq, on_peak, &c);
    }
    c.frames = calloc(UI_REPLAY_MAX_FRAMES + 1, sizeof *c.frames);
    c.ts = calloc(UI_REPLAY_MAX_FRAMES + 1, sizeof *c.ts);
    c.ts_n = calloc(UI_REPLAY_MAX_FRAMES + 1, sizeof *c.ts_n);
    if (!c.session || !c.frames || !c.ts || !c.ts_n) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (prof_trace_replay_progress(path, c.session, allow_partial, &st, err, errlen, piece,
                                   on_progress, &c) != 0)
        goto fail;
    /* The last frame is the whole run, with how it ended. */
    prof_result_t last;
    int rc = prof_session_result(c.session, pid, 1, UI_REPLAY_MAX_SITES, &last);
    if (rc == -2) {
        snprintf(err, errlen, pid ? "%s: no process with pid %d in this trace"
                                  : "%s: the trace holds no process", path, (int)pid);
        goto fail;
    }
    if (rc != 0 || prof_session_result(c.session, pid, 1, 0, &out->symbols) != 0) {
        if (rc == 0)
            prof_result_free(&last);
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    strip_frames(&last);
    if (c.count && c.frames[c.count - 1].summary.events == last.summary.events) {
        prof_result_free(&c.frames[--c.count]);
        free(c.ts[c.count]);
    }
    take_thread_sites(&c, c.count);
    c.frames[c.count++] = last;
    if (c.oom) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    out->frames = c.frames;
    out->count = c.count;
    if (c.no_ts) {
        for (size_t i = 0; i < c.count; i++)
            free(c.ts[i]);
        free(c.ts);
        free(c.ts_n);
    } else {
        out->thread_sites = c.ts;
        out->thread_site_counts = c.ts_n;
    }
    out->complete = st.complete;
    prof_session_free(c.session);
    return 0;
fail:
    for (size_t i = 0; c.frames && i < c.count; i++)
        prof_result_free(&c.frames[i]);
    for (size_t i = 0; c.ts && i < c.count; i++)
        free(c.ts[i]);
    free(c.ts);
    free(c.ts_n);
    free(c.frames);
    prof_session_free(c.session);
    prof_result_free(&out->symbols);
    return -1;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int ui_replay_main(const char *path, int32_t pid, int allow_partial, char *err, size_t errlen)
{
    ui_replay_frames_t f;
    if (ui_replay_load(path, pid, allow_partial, &f, err, errlen) != 0)
        return -1;
    ui_model_t m;
    ui_model_init(&m);
    if (ui_model_set_frames(&m, f.frames, f.count, &f.symbols) != 0) {
        snprintf(err, errlen, "out of memory");
        ui_model_free(&m);
        ui_replay_frames_free(&f);
        return -1;
    }
    if (f.thread_sites)
        ui_model_set_frame_thread_sites(&m, (const prof_thread_site_t *const *)f.thread_sites,
                                        f.thread_site_counts);
    if (!f.complete)
        snprintf(m.message, sizeof m.message, "this trace was cut short: it shows what it holds");
    else
        snprintf(m.message, sizeof m.message, "replay of %s: %zu frames; space plays, P jumps "
                 "to the peak", path, f.count);
    ui_view_opts_t o = {.unicode = 1, .color = 1, .title = "replay"};
    if (ui_view_begin(&o, err, errlen) != 0) {
        ui_model_free(&m);
        ui_replay_frames_free(&f);
        return -1;
    }
    uint64_t last = mono_ns(), msg_at = last;
    char shown[sizeof m.message];
    snprintf(shown, sizeof shown, "%s", m.message);
    ui_view_draw(&m);
    while (!m.quit && !ui_view_interrupted()) {
        int key = ui_view_getkey(m.playing ? 50 : 250);
        if (key != ERR)
            ui_model_apply(&m, ui_input_action(key, 1));
        uint64_t now = mono_ns();
        ui_model_tick(&m, now - last);
        last = now;
        if (strcmp(shown, m.message) != 0) {
            snprintf(shown, sizeof shown, "%s", m.message);
            msg_at = now;
        } else if (m.message[0] && now - msg_at > 6000000000ull) {
            m.message[0] = shown[0] = 0;
        }
        ui_view_draw(&m);
    }
    ui_view_end();
    ui_model_free(&m);
    ui_replay_frames_free(&f);
    return 0;
}
