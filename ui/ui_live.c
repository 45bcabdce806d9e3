/*
 * ui_live.c - driver of the live dashboard (see ui_live.h).
 */
#define _GNU_SOURCE
#include "ui_live.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "profiler/accounting.h"
#include "ui_input.h"
#include "ui_model.h"
#include "ui_view.h"

#define LIVE_MAX_SITES 200            /* sites per snapshot                 */
#define MESSAGE_NS 4000000000ull      /* how long a message stays           */
#define MIN_SNAP_NS 180000000ull      /* snapshots at most ~5 per second    */
#define SNAP_BUDGET 20                /* ... and at most 1/20 of the time   */

struct ui_live {
    prof_session_t *session;
    ui_model_t model;
    ui_view_opts_t opts;
    char *log_path;
    uint64_t start_ns;
    uint64_t message_at;
    char last_message[sizeof ((ui_model_t *)0)->message];
    int quit_presses;
    int running;
    uint64_t last_events, last_snap_ns;  /* when the last snapshot was taken */
    uint64_t next_snap_ns;               /* not before this                 */
    uint64_t cpu_ns;                     /* CPU time spent in ticks          */
    size_t last_streams;
    int32_t shown_pid;                   /* the process of the last snapshot */
};

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

ui_live_t *ui_live_begin(prof_session_t *s, const char *command, const char *log_path,
                         char *err, size_t errlen)
{
    ui_live_t *l = calloc(1, sizeof *l);
    if (!l || (log_path && !(l->log_path = strdup(log_path)))) {
        free(l);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->session = s;
    ui_model_init(&l->model);
    ui_model_set_command(&l->model, command, -1);
    l->opts = (ui_view_opts_t){.unicode = 1, .color = 1, .log_path = l->log_path,
                               .title = "live"};
    if (ui_view_begin(&l->opts, err, errlen) != 0) {
        ui_model_free(&l->model);
        free(l->log_path);
        free(l);
        return NULL;
    }
    l->start_ns = mono_ns();
    l->running = 1;
    ui_view_draw(&l->model);
    return l;
}

/* The thread filter (t / T): the sites of one thread are not in the
 * snapshot; they are computed from the accounting state on demand, here,
 * in the thread that feeds it, only while a filter is on (after a switch,
 * and after each snapshot). */
static void feed_thread_sites(ui_live_t *l)
{
    uint32_t tid = ui_model_thread_sites_wanted(&l->model);
    if (!tid)
        return;
    prof_analysis_t *a = prof_session_process(l->session, l->model.proc_pid);
    prof_thread_site_t *ts = NULL;
    size_t n = 0;
    if (a && prof_acct_thread_sites(prof_analysis_acct(a), tid, &ts, &n) == 0)
        ui_model_set_thread_sites(&l->model, tid, ts, n);
}

/* Clears a message after a while, so the advice line comes back. */
static void age_message(ui_live_t *l, uint64_t now)
{
    ui_model_t *m = &l->model;
    if (strcmp(m->message, l->last_message) != 0) {
        snprintf(l->last_message, sizeof l->last_message, "%s", m->message);
        l->message_at = now;
    } else if (m->message[0] && now - l->message_at > MESSAGE_NS && !m->paused) {
        m->message[0] = 0;
        l->last_message[0] = 0;
    }
}

/* Quitting while the command runs: stop it first, harder each time. */
static void stop_command(ui_live_t *l)
{
    ui_model_t *m = &l->model;
    l->quit_presses++;
    if (l->quit_presses == 1) {
        raise(SIGINT); /* launch.c forwards it to the command */
        snprintf(m->message, sizeof m->message, "stopping the command (SIGINT); q again: SIGTERM");
    } else if (l->quit_presses == 2) {
        raise(SIGTERM);
        snprintf(m->message, sizeof m->message, "stopping the command (SIGTERM); q again: SIGKILL");
    } else if (m->pid > 0) {
        kill(m->pid, SIGKILL);
        snprintf(m->message, sizeof m->message, "sent SIGKILL to pid %d", (int)m->pid);
    }
}

/* A snapshot of the process shown (0: the run's main one), applied even
 * while paused when 'force'. */
static void take_snapshot(ui_live_t *l, uint64_t now, int force)
{
    prof_result_t r;
    if (prof_session_result(l->session, l->model.proc_pid, 1, LIVE_MAX_SITES, &r) == 0)
        ui_model_update(&l->model, &r, now, force);
    l->shown_pid = l->model.proc_pid;
}

static void handle_keys(ui_live_t *l)
{
    int key;
    while ((key = ui_view_getkey(0)) != ERR) {
        ui_action_t a = ui_input_action(key, 0);
        ui_model_apply(&l->model, a);
        if (a == UI_ACT_QUIT && l->running) {
            l->model.quit = 0;
            stop_command(l);
        }
    }
}

void ui_live_tick(ui_live_t *l)
{
    if (!l)
        return;
    uint64_t now = mono_ns(), cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    handle_keys(l);
    if (!l->model.paused || l->model.proc_pid != l->shown_pid) {
        /* A snapshot only when something happened: an idle target costs
         * nothing but the redraw (rates fall to 0 after a second). */
        prof_analysis_t *a = prof_session_process(l->session, l->model.proc_pid);
        uint64_t ev = a ? prof_analysis_events(a) : 0;
        size_t ns = prof_session_stream_count(l->session);
        int switched = l->model.proc_pid != l->shown_pid; /* < or > since */
        int changed = ev != l->last_events || ns != l->last_streams;
        if ((now >= l->next_snap_ns || switched) &&
            (changed || switched || now - l->last_snap_ns > 1000000000ull)) {
            take_snapshot(l, now, switched);
            feed_thread_sites(l);
            l->last_events = ev;
            l->last_streams = ns;
            l->last_snap_ns = now;
            /* The snapshot runs in the thread that reads the streams: keep
             * it under ~5% of the time (a 10 ms snapshot waits 200 ms). */
            uint64_t cost = mono_ns() - now;
            l->next_snap_ns = now + (cost * SNAP_BUDGET > MIN_SNAP_NS ? cost * SNAP_BUDGET
                                                                        : MIN_SNAP_NS);
        }
        l->model.elapsed_ns = now - l->start_ns;
    }
    feed_thread_sites(l); /* a switch since the snapshot (or while paused) */
    age_message(l, now);
    ui_view_draw(&l->model);
    l->cpu_ns += clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
}

void ui_live_message(ui_live_t *l, const char *msg)
{
    if (l)
        snprintf(l->model.message, sizeof l->model.message, "%s", msg);
}

void ui_live_end_run(ui_live_t *l, const prof_run_info_t *info)
{
    if (!l)
        return;
    ui_model_t *m = &l->model;
    uint64_t now = mono_ns();
    l->running = 0;
    take_snapshot(l, now, 1);
    feed_thread_sites(l);
    m->paused = 0;
    m->elapsed_ns = now - l->start_ns;
    if (info->root_pid > 0)
        m->pid = info->root_pid;
    if (info->end == PROF_END_EXITED)
        ui_model_set_state(m, UI_RUN_EXITED, info->exit_code, 0);
    else if (info->end == PROF_END_SIGNALED)
        ui_model_set_state(m, UI_RUN_SIGNALED, 0, info->signal);
    else
        ui_model_set_state(m, UI_RUN_ENDED, 0, 0);
    if (prof_session_stream_count(l->session) == 0)
        snprintf(m->message, sizeof m->message, "no process of the run loaded the shim "
                 "(statically linked or setuid?): nothing was measured");
    else if (!m->quit && l->quit_presses == 0)
        snprintf(m->message, sizeof m->message, "the command has ended: final figures (q "
                 "quits); the dashboard used %.1f%% of a core", m->elapsed_ns ?
                 100.0 * (double)l->cpu_ns / (double)m->elapsed_ns : 0.0);
    ui_view_draw(m);
}

void ui_live_wait(ui_live_t *l)
{
    if (!l || l->quit_presses)
        return;
    ui_model_t *m = &l->model;
    while (!m->quit && !ui_view_interrupted()) {
        int key = ui_view_getkey(250);
        if (key != ERR)
            ui_model_apply(m, ui_input_action(key, 0));
        if (m->proc_pid != l->shown_pid) /* < or >: the final figures of that one */
            take_snapshot(l, mono_ns(), 1);
        feed_thread_sites(l);
        age_message(l, mono_ns());
        ui_view_draw(m);
    }
}

int ui_live_quit_requested(const ui_live_t *l)
{
    return l && (l->quit_presses || l->model.quit);
}

void ui_live_close(ui_live_t *l)
{
    if (!l)
        return;
    ui_view_end();
    ui_model_free(&l->model);
    free(l->log_path);
    free(l);
}
