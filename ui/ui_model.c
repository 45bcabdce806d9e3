/*
 * ui_model.c - the dashboard's state and how keys and snapshots change it.
 * No ncurses here (see ui_model.h).
 */
#define _GNU_SOURCE
#include "ui_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double speeds[UI_SPEED_COUNT] = {0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 100};

void ui_model_init(ui_model_t *m)
{
    memset(m, 0, sizeof *m);
    m->rows = UI_MIN_ROWS;
    m->cols = UI_MIN_COLS;
    m->site_rows = 1;
    m->thread_rows = 1;
    m->sort = UI_SORT_LIVE;
    m->speed = UI_SPEED_DEFAULT;
    m->pid = -1;
}

void ui_model_free(ui_model_t *m)
{
    if (!m)
        return;
    prof_result_free(&m->own);
    free(m->order);
    free(m->thread_rate);
    free(m->prev_tid);
    free(m->prev_allocs);
    free(m->ts_own);
    free(m->trows);
    memset(m, 0, sizeof *m);
}

void ui_model_set_command(ui_model_t *m, const char *command, int32_t pid)
{
    if (command)
        snprintf(m->command, sizeof m->command, "%s", command);
    m->pid = pid;
}

void ui_model_set_state(ui_model_t *m, ui_run_state_t st, int32_t exit_code, int32_t sig)
{
    m->state = st;
    m->exit_code = exit_code;
    m->signal = sig;
}

const char *ui_model_sort_name(ui_sort_t s)
{
    switch (s) {
    case UI_SORT_LIVE: return "live bytes";
    case UI_SORT_PEAK: return "peak contribution";
    case UI_SORT_COUNT: return "allocations";
    default: return "?";
    }
}

/* ---- sorting and selection --------------------------------------------------- */

static uint64_t sort_key(const prof_site_t *s, ui_sort_t by)
{
    switch (by) {
    case UI_SORT_PEAK: return s->live_bytes_at_peak;
    case UI_SORT_COUNT: return s->allocations;
    default: return s->live_bytes;
    }
}

typedef struct {
    const prof_site_t *sites;
    ui_sort_t by;
} sort_ctx_t;

static int cmp_sites(const void *a, const void *b, void *arg)
{
    const sort_ctx_t *c = arg;
    const prof_site_t *x = &c->sites[*(const size_t *)a], *y = &c->sites[*(const size_t *)b];
    uint64_t kx = sort_key(x, c->by), ky = sort_key(y, c->by);
    if (kx != ky)
        return kx > ky ? -1 : 1;
    /* Second key: bytes allocated, then the stack id so the order is total. */
    if (x->bytes_allocated != y->bytes_allocated)
        return x->bytes_allocated > y->bytes_allocated ? -1 : 1;
    return x->stack_id < y->stack_id ? -1 : x->stack_id > y->stack_id;
}

/* The filtered table: the thread's figures joined with the snapshot's
 * sites by stack id. */
typedef struct {
    const ui_thread_row_t *rows;
    ui_sort_t by;
} trow_ctx_t;

static uint64_t trow_key(const ui_thread_row_t *r, ui_sort_t by)
{
    switch (by) {
    case UI_SORT_PEAK: return r->known ? r->site.live_bytes_at_peak : 0;
    case UI_SORT_COUNT: return r->t->live_allocations;
    default: return r->t->live_bytes;
    }
}

static int cmp_trows(const void *a, const void *b, void *arg)
{
    const trow_ctx_t *c = arg;
    const ui_thread_row_t *x = &c->rows[*(const size_t *)a], *y = &c->rows[*(const size_t *)b];
    uint64_t kx = trow_key(x, c->by), ky = trow_key(y, c->by);
    if (kx != ky)
        return kx > ky ? -1 : 1;
    if (x->t->live_bytes != y->t->live_bytes)
        return x->t->live_bytes > y->t->live_bytes ? -1 : 1;
    return x->site.stack_id < y->site.stack_id ? -1 : x->site.stack_id > y->site.stack_id;
}

typedef struct {
    uint32_t stack_id;
    size_t index;
} stack_ix_t;

static int cmp_stack_ix(const void *a, const void *b)
{
    uint32_t x = ((const stack_ix_t *)a)->stack_id, y = ((const stack_ix_t *)b)->stack_id;
    return x < y ? -1 : x > y;
}

/* Builds the filtered rows in m->trows and their order in m->order. */
static int build_thread_rows(ui_model_t *m)
{
    const prof_thread_site_t *ts = m->ts_tid == m->thread_filter ? m->ts : NULL;
    size_t n = 0;
    for (size_t i = 0; ts && i < m->ts_count; i++)
        n += ts[i].tid == m->thread_filter;
    if (n > m->trow_cap) {
        ui_thread_row_t *r = realloc(m->trows, n * sizeof *r);
        if (!r)
            return -1;
        m->trows = r;
        m->trow_cap = n;
    }
    if (n > m->order_cap) {
        size_t *o = realloc(m->order, n * sizeof *o);
        if (!o)
            return -1;
        m->order = o;
        m->order_cap = n;
    }
    size_t ns = m->cur ? m->cur->site_count : 0;
    stack_ix_t *ix = ns ? malloc(ns * sizeof *ix) : NULL;
    if (ns && !ix)
        return -1;
    for (size_t i = 0; i < ns; i++)
        ix[i] = (stack_ix_t){m->cur->sites[i].stack_id, i};
    if (ns > 1)
        qsort(ix, ns, sizeof *ix, cmp_stack_ix);
    size_t k = 0;
    for (size_t i = 0; ts && i < m->ts_count; i++) {
        if (ts[i].tid != m->thread_filter)
            continue;
        ui_thread_row_t *r = &m->trows[k];
        stack_ix_t key = {ts[i].stack_id, 0};
        const stack_ix_t *hit = ns ? bsearch(&key, ix, ns, sizeof *ix, cmp_stack_ix) : NULL;
        if (hit) {
            r->site = m->cur->sites[hit->index]; /* pointers borrowed */
            r->known = 1;
        } else {
            memset(&r->site, 0, sizeof r->site);
            r->site.stack_id = ts[i].stack_id;
            r->known = 0;
        }
        r->t = &ts[i];
        m->order[k] = k;
        k++;
    }
    free(ix);
    m->order_len = k;
    if (k > 1) {
        trow_ctx_t c = {m->trows, m->sort};
        qsort_r(m->order, k, sizeof *m->order, cmp_trows, &c);
    }
    return 0;
}

/* Keeps 'sel' inside [0, len) and visible in a window of 'rows' from *top. */
static void clamp_list(size_t *sel, size_t *top, size_t len, int rows)
{
    size_t r = rows > 0 ? (size_t)rows : 1;
    if (len == 0) {
        *sel = *top = 0;
        return;
    }
    if (*sel >= len)
        *sel = len - 1;
    if (*sel < *top)
        *top = *sel;
    if (*sel >= *top + r)
        *top = *sel - r + 1;
    if (*top + r > len)
        *top = len > r ? len - r : 0;
}

static void remember_selection(ui_model_t *m)
{
    const prof_site_t *s = ui_model_selected_site(m);
    m->site_sel_stack = s ? s->stack_id : 0;
    m->site_sel_held = s != NULL;
}

/* Rebuilds the sorted order; the selection stays on the same site when it
 * is still there, else on the same row. */
static int resort(ui_model_t *m, int follow)
{
    if (m->thread_filter) {
        if (build_thread_rows(m) != 0)
            return -1;
        goto placed;
    }
    size_t n = m->cur ? m->cur->site_count : 0;
    if (n > m->order_cap) {
        size_t *o = realloc(m->order, n * sizeof *o);
        if (!o)
            return -1;
        m->order = o;
        m->order_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        m->order[i] = i;
    m->order_len = n;
    if (n) {
        sort_ctx_t c = {m->cur->sites, m->sort};
        qsort_r(m->order, n, sizeof *m->order, cmp_sites, &c);
    }
placed:
    if (follow && m->site_sel_held) {
        for (size_t i = 0; i < m->order_len; i++) {
            const prof_site_t *s = ui_model_site(m, i);
            if (s && s->stack_id == m->site_sel_stack) {
                m->site_sel = i;
                break;
            }
        }
    }
    clamp_list(&m->site_sel, &m->site_top, m->order_len, m->site_rows);
    remember_selection(m);
    size_t nt = m->cur ? m->cur->thread_count : 0;
    clamp_list(&m->thread_sel, &m->thread_top, nt, m->thread_rows);
    return 0;
}

const prof_site_t *ui_model_site(const ui_model_t *m, size_t i)
{
    if (!m->cur || i >= m->order_len)
        return NULL;
    if (m->thread_filter)
        return &m->trows[m->order[i]].site;
    return &m->cur->sites[m->order[i]];
}

const prof_site_t *ui_model_selected_site(const ui_model_t *m)
{
    return ui_model_site(m, m->site_sel);
}

const prof_frame_t *ui_model_site_frames(const ui_model_t *m, const prof_site_t *site,
                                         uint32_t *count)
{
    *count = 0;
    if (!site)
        return NULL;
    int resolved = 0;
    for (uint32_t i = 0; i < site->frame_count; i++)
        if (site->frames[i].function || site->frames[i].module)
            resolved = 1;
    if (!resolved && m->symbols) {
        for (size_t i = 0; i < m->symbols->site_count; i++) {
            const prof_site_t *s = &m->symbols->sites[i];
            if (s->stack_id == site->stack_id && s->frame_count) {
                *count = s->frame_count;
                return s->frames;
            }
        }
    }
    *count = site->frame_count;
    return site->frame_count ? site->frames : NULL;
}

/* ---- rates ------------------------------------------------------------------- */

static int remember_prev(ui_model_t *m, const prof_result_t *r, uint64_t ns)
{
    if (r->thread_count > m->prev_thread_cap) {
        uint32_t *t = realloc(m->prev_tid, r->thread_count * sizeof *t);
        if (!t)
            return -1;
        m->prev_tid = t;
        uint64_t *a = realloc(m->prev_allocs, r->thread_count * sizeof *a);
        if (!a)
            return -1;
        m->prev_allocs = a;
        m->prev_thread_cap = r->thread_count;
    }
    for (size_t i = 0; i < r->thread_count; i++) {
        m->prev_tid[i] = r->threads[i].tid;
        m->prev_allocs[i] = r->threads[i].allocations;
    }
    m->prev_thread_count = r->thread_count;
    m->prev_events = r->summary.events;
    m->prev_ns = ns;
    m->have_prev = 1;
    return 0;
}

/* Rates of 'r' (at time 'ns') against the remembered previous snapshot. */
static int compute_rates(ui_model_t *m, const prof_result_t *r, uint64_t ns)
{
    if (r->thread_count > m->thread_rate_cap) {
        double *d = realloc(m->thread_rate, r->thread_count * sizeof *d);
        if (!d)
            return -1;
        m->thread_rate = d;
        m->thread_rate_cap = r->thread_count;
    }
    int ok = m->have_prev && ns > m->prev_ns;
    double dt = ok ? (double)(ns - m->prev_ns) / 1e9 : 0;
    m->events_per_s = ok && r->summary.events >= m->prev_events
                          ? (double)(r->summary.events - m->prev_events) / dt : 0;
    for (size_t i = 0; i < r->thread_count; i++) {
        m->thread_rate[i] = 0;
        for (size_t j = 0; ok && j < m->prev_thread_count; j++) {
            if (m->prev_tid[j] == r->threads[i].tid) {
                if (r->threads[i].allocations >= m->prev_allocs[j])
                    m->thread_rate[i] =
                        (double)(r->threads[i].allocations - m->prev_allocs[j]) / dt;
                break;
            }
        }
    }
    return 0;
}

double ui_model_thread_rate(const ui_model_t *m, size_t i)
{
    if (!m->cur || i >= m->cur->thread_count || !m->thread_rate)
        return 0;
    return m->thread_rate[i];
}

/* ---- snapshots --------------------------------------------------------------- */

int ui_model_update(ui_model_t *m, prof_result_t *snap, uint64_t now_ns, int force)
{
    if (m->paused && !force) {
        prof_result_free(snap);
        return 0;
    }
    if (compute_rates(m, snap, now_ns) != 0)
        return -1;
    prof_result_free(&m->own);
    m->own = *snap;
    memset(snap, 0, sizeof *snap);
    m->cur = &m->own;
    if (m->state == UI_RUN_STARTING)
        m->state = UI_RUN_RUNNING;
    if (m->cur->process.pid > 0 && m->pid <= 0)
        m->pid = m->cur->process.pid;
    if (!m->command[0] && m->cur->process.command)
        snprintf(m->command, sizeof m->command, "%s", m->cur->process.command);
    if (remember_prev(m, m->cur, now_ns) != 0)
        return -1;
    m->ts_stale = 1;
    return resort(m, 1);
}

int ui_model_set_frames(ui_model_t *m, const prof_result_t *frames, size_t n,
                        const prof_result_t *symbols)
{
    m->frames = frames;
    m->frame_count = n;
    m->symbols = symbols;
    m->state = UI_RUN_REPLAY;
    m->playing = 0;
    m->span_ns = n ? frames[n - 1].summary.duration_ns : 0;
    if (n && frames[n - 1].process.pid > 0)
        m->pid = frames[n - 1].process.pid;
    if (n && !m->command[0] && frames[n - 1].process.command)
        snprintf(m->command, sizeof m->command, "%s", frames[n - 1].process.command);
    return ui_model_show_frame(m, 0);
}

int ui_model_show_frame(ui_model_t *m, size_t i)
{
    if (!m->frames || !m->frame_count)
        return 0;
    if (i >= m->frame_count)
        i = m->frame_count - 1;
    const prof_result_t *f = &m->frames[i];
    m->have_prev = 0;
    if (i > 0 && remember_prev(m, &m->frames[i - 1], m->frames[i - 1].summary.duration_ns) != 0)
        return -1;
    if (compute_rates(m, f, f->summary.duration_ns) != 0)
        return -1;
    m->frame = i;
    m->cur = f;
    if (m->frame_ts) {
        m->ts = m->frame_ts[i];
        m->ts_count = m->frame_ts_count[i];
        m->ts_tid = m->thread_filter;
    }
    m->elapsed_ns = f->summary.duration_ns;
    m->play_clock_ns = f->summary.duration_ns;
    return resort(m, 1);
}

int ui_model_tick(ui_model_t *m, uint64_t wall_dt_ns)
{
    if (!m->playing || !m->frames || !m->frame_count)
        return 0;
    m->play_clock_ns += (uint64_t)((double)wall_dt_ns * speeds[m->speed]);
    size_t i = m->frame;
    while (i + 1 < m->frame_count && m->frames[i + 1].summary.duration_ns <= m->play_clock_ns)
        i++;
    if (i + 1 >= m->frame_count)
        m->playing = 0;
    if (i == m->frame)
        return !m->playing; /* redraw once to show it stopped */
    uint64_t clock = m->play_clock_ns;
    ui_model_show_frame(m, i);
    m->play_clock_ns = clock;
    return 1;
}

size_t ui_model_peak_frame(const ui_model_t *m)
{
    if (!m->frames || !m->frame_count)
        return 0;
    uint64_t peak = m->frames[m->frame_count - 1].summary.peak_bytes;
    for (size_t i = 0; i < m->frame_count; i++)
        if (m->frames[i].summary.peak_bytes >= peak)
            return i;
    return m->frame_count - 1;
}

double ui_model_speed(const ui_model_t *m)
{
    return speeds[m->speed];
}

/* ---- keys -------------------------------------------------------------------- */

static void move_sel(ui_model_t *m, long delta, int to_end)
{
    size_t *sel, *top, len;
    int rows;
    if (m->focus == UI_PANE_THREADS) {
        sel = &m->thread_sel;
        top = &m->thread_top;
        len = m->cur ? m->cur->thread_count : 0;
        rows = m->thread_rows;
    } else {
        sel = &m->site_sel;
        top = &m->site_top;
        len = m->order_len;
        rows = m->site_rows;
    }
    if (len == 0)
        return;
    if (to_end < 0)
        *sel = 0;
    else if (to_end > 0)
        *sel = len - 1;
    else if (delta < 0)
        *sel = (size_t)-delta > *sel ? 0 : *sel - (size_t)-delta;
    else
        *sel = *sel + (size_t)delta >= len ? len - 1 : *sel + (size_t)delta;
    clamp_list(sel, top, len, rows);
    if (m->focus == UI_PANE_SITES)
        remember_selection(m);
}

static void set_sort(ui_model_t *m, ui_sort_t s)
{
    m->sort = s;
    m->site_sel = 0;
    m->site_top = 0;
    resort(m, 0);
    snprintf(m->message, sizeof m->message, "sites sorted by %s", ui_model_sort_label(m));
}

static int replay_goto(ui_model_t *m, size_t i)
{
    if (!m->frames)
        return 0;
    m->playing = 0;
    ui_model_show_frame(m, i);
    return 1;
}

static int cmp_pid(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

size_t ui_model_processes(const ui_model_t *m, int32_t *pids, size_t max)
{
    size_t n = 0;
    const prof_result_t *r = m->cur;
    for (size_t i = 0; r && i <= r->child_count && n < max; i++) {
        int32_t pid = i == 0 ? r->process.pid : r->children[i - 1].pid;
        int seen = pid <= 0;
        for (size_t k = 0; k < n && !seen; k++)
            seen = pids[k] == pid; /* an exec'd image shares its pid */
        if (!seen)
            pids[n++] = pid;
    }
    qsort(pids, n, sizeof *pids, cmp_pid);
    return n;
}

/* Live: the next or previous process of the run, by pid, round the list;
 * the driver's next snapshot is of that one. A replay holds one process. */
static void switch_process(ui_model_t *m, int dir)
{
    if (m->frames) {
        snprintf(m->message, sizeof m->message,
                 "a replay shows one process: mlmem tui --pid PID shows another");
        return;
    }
    int32_t pids[256];
    size_t n = ui_model_processes(m, pids, 256);
    if (n < 2) {
        snprintf(m->message, sizeof m->message, "the run has one process so far");
        return;
    }
    size_t at = 0;
    while (at < n && pids[at] != m->cur->process.pid)
        at++;
    at = at == n ? 0 : (at + n + (size_t)(dir > 0 ? 1 : n - 1)) % n;
    m->proc_pid = pids[at];
    m->have_prev = 0;                 /* rates start again with its snapshots */
    ui_model_set_thread_filter(m, 0); /* its threads are another process's */
    snprintf(m->message, sizeof m->message, "process %d: %zu of %zu (< > to switch)",
             (int)pids[at], at + 1, n);
}

int ui_model_apply(ui_model_t *m, ui_action_t a)
{
    long page = m->focus == UI_PANE_THREADS ? m->thread_rows : m->site_rows;
    switch (a) {
    case UI_ACT_NONE:
        return 0;
    case UI_ACT_QUIT:
        m->quit = 1;
        return 0;
    case UI_ACT_HELP:
        m->help = !m->help;
        return 1;
    case UI_ACT_BACK:
        if (m->help)
            m->help = 0;
        else if (m->stack_view)
            m->stack_view = 0;
        else if (m->log_view)
            m->log_view = 0;
        else
            return 0;
        return 1;
    case UI_ACT_SORT_LIVE: set_sort(m, UI_SORT_LIVE); return 1;
    case UI_ACT_SORT_PEAK: set_sort(m, UI_SORT_PEAK); return 1;
    case UI_ACT_SORT_COUNT: set_sort(m, UI_SORT_COUNT); return 1;
    case UI_ACT_SORT_NEXT: set_sort(m, (ui_sort_t)((m->sort + 1) % UI_SORT_N)); return 1;
    case UI_ACT_UP: move_sel(m, -1, 0); return 1;
    case UI_ACT_DOWN: move_sel(m, 1, 0); return 1;
    case UI_ACT_PAGE_UP: move_sel(m, -page, 0); return 1;
    case UI_ACT_PAGE_DOWN: move_sel(m, page, 0); return 1;
    case UI_ACT_HOME: move_sel(m, 0, -1); return 1;
    case UI_ACT_END: move_sel(m, 0, 1); return 1;
    case UI_ACT_SELECT:
        if (m->stack_view)
            m->stack_view = 0;
        else if (m->focus == UI_PANE_THREADS && m->cur && m->thread_sel < m->cur->thread_count) {
            uint32_t tid = m->cur->threads[m->thread_sel].tid;
            ui_model_set_thread_filter(m, tid == m->thread_filter ? 0 : tid);
            m->focus = UI_PANE_SITES;
        }
        else if (m->focus == UI_PANE_SITES && ui_model_selected_site(m))
            m->stack_view = 1;
        else
            return 0;
        return 1;
    case UI_ACT_FOCUS_NEXT:
        m->focus = (ui_pane_t)((m->focus + 1) % UI_PANE_N);
        return 1;
    case UI_ACT_THREAD_NEXT:
    case UI_ACT_THREAD_PREV: {
        /* By tid, which stays put while the threads pane re-sorts. */
        uint32_t best = 0;
        int next = a == UI_ACT_THREAD_NEXT;
        for (size_t i = 0; m->cur && i < m->cur->thread_count; i++) {
            uint32_t t = m->cur->threads[i].tid;
            if (t == 0)
                continue;
            if (next ? (m->thread_filter == 0 || t > m->thread_filter) && (!best || t < best)
                     : (m->thread_filter == 0 || t < m->thread_filter) && t > best)
                best = t;
        }
        return ui_model_set_thread_filter(m, best);
    }
    case UI_ACT_PROC_NEXT:
    case UI_ACT_PROC_PREV:
        switch_process(m, a == UI_ACT_PROC_NEXT ? 1 : -1);
        return 1;
    case UI_ACT_PAUSE:
        if (m->frames) {
            if (!m->playing && m->frame + 1 >= m->frame_count)
                ui_model_show_frame(m, 0);
            m->playing = !m->playing;
            m->play_clock_ns = m->cur ? m->cur->summary.duration_ns : 0;
        } else {
            m->paused = !m->paused;
            snprintf(m->message, sizeof m->message, "%s",
                     m->paused ? "paused: figures frozen (space resumes)" : "resumed");
        }
        return 1;
    case UI_ACT_LOG:
        m->log_view = !m->log_view;
        return 1;
    case UI_ACT_STEP_FWD: return replay_goto(m, m->frame + 1);
    case UI_ACT_STEP_BACK: return replay_goto(m, m->frame ? m->frame - 1 : 0);
    case UI_ACT_JUMP_PEAK: return replay_goto(m, ui_model_peak_frame(m));
    case UI_ACT_JUMP_START: return replay_goto(m, 0);
    case UI_ACT_JUMP_END: return replay_goto(m, m->frame_count ? m->frame_count - 1 : 0);
    case UI_ACT_FASTER:
        if (m->speed + 1 < UI_SPEED_COUNT)
            m->speed++;
        return 1;
    case UI_ACT_SLOWER:
        if (m->speed > 0)
            m->speed--;
        return 1;
    case UI_ACT_WINDOW: {
        static const uint64_t windows[] = {0, 10000000000ull, 60000000000ull, 600000000000ull};
        size_t i = 0;
        while (i < 4 && windows[i] != m->window_ns)
            i++;
        m->window_ns = windows[(i + 1) % 4];
        if (m->window_ns)
            snprintf(m->message, sizeof m->message, "timeline: the last %llu s",
                     (unsigned long long)(m->window_ns / 1000000000ull));
        else
            snprintf(m->message, sizeof m->message, "timeline: the whole run");
        return 1;
    }
    case UI_ACT_REDRAW:
    case UI_ACT_RESIZE:
        return 1;
    }
    return 0;
}

void ui_model_resize(ui_model_t *m, int rows, int cols)
{
    m->rows = rows < UI_MIN_ROWS ? UI_MIN_ROWS : rows;
    m->cols = cols < UI_MIN_COLS ? UI_MIN_COLS : cols;
}

void ui_model_set_list_rows(ui_model_t *m, int site_rows, int thread_rows)
{
    m->site_rows = site_rows > 0 ? site_rows : 1;
    m->thread_rows = thread_rows > 0 ? thread_rows : 1;
    clamp_list(&m->site_sel, &m->site_top, m->order_len, m->site_rows);
    clamp_list(&m->thread_sel, &m->thread_top, m->cur ? m->cur->thread_count : 0,
               m->thread_rows);
}

/* ---- derived figures ------------------------------------------------------- */

int ui_model_has_attribution(const ui_model_t *m)
{
    return m->cur && m->cur->category_count > 0;
}

static int cmp_cat(const void *a, const void *b)
{
    const ui_category_t *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    return x->index - y->index;
}

/* Now: the categories at the snapshot's end (exact, and the snapshot's end
 * is "now", live or in a replay frame); if attribution left them all at 0
 * while bytes are live, the latest timeline point's split. */
size_t ui_model_categories(const ui_model_t *m, int at_peak, ui_category_t *out, size_t max)
{
    if (!ui_model_has_attribution(m) || max == 0)
        return 0;
    const prof_result_t *r = m->cur;
    size_t nc = r->category_count < MLMEM_CATEGORY_COUNT ? r->category_count
                                                          : MLMEM_CATEGORY_COUNT;
    const uint64_t *point = NULL;
    if (!at_peak && r->timeline_count) {
        uint64_t sum = 0;
        for (size_t i = 0; i < nc; i++)
            sum += r->categories[i].bytes_at_end;
        if (sum == 0 && r->summary.live_bytes)
            point = r->timeline[r->timeline_count - 1].category_bytes;
    }
    size_t n = 0;
    for (size_t i = 0; i < nc; i++) {
        const prof_category_t *c = &r->categories[i];
        uint64_t b = at_peak ? c->bytes_at_peak : point ? point[i] : c->bytes_at_end;
        if (!b)
            continue;
        if (n == max) { /* full: the last bucket takes the rest */
            out[n - 1].bytes += b;
            continue;
        }
        out[n++] = (ui_category_t){c->name ? c->name : "?", b, (int)i};
    }
    qsort(out, n, sizeof *out, cmp_cat);
    return n;
}

const prof_category_t *ui_model_focus_category(const ui_model_t *m)
{
    if (!ui_model_has_attribution(m))
        return NULL;
    const prof_result_t *r = m->cur;
    const prof_site_t *s = m->focus == UI_PANE_SITES ? ui_model_selected_site(m) : NULL;
    if (s && s->category)
        for (size_t i = 0; i < r->category_count && i < MLMEM_CATEGORY_COUNT; i++)
            if (r->categories[i].name && strcmp(r->categories[i].name, s->category) == 0)
                return &r->categories[i];
    const prof_category_t *best = NULL;
    for (size_t i = 0; i < r->category_count && i < MLMEM_CATEGORY_COUNT; i++)
        if (!best || r->categories[i].bytes_at_peak > best->bytes_at_peak)
            best = &r->categories[i];
    return best && best->bytes_at_peak ? best : NULL;
}

int ui_model_steps_known(const ui_model_t *m)
{
    const prof_steps_t *st = m->cur ? &m->cur->steps : NULL;
    return st && st->count > 0 && st->source && strcmp(st->source, "none") != 0;
}

int ui_model_steps_annotated(const ui_model_t *m)
{
    return ui_model_steps_known(m) && strcmp(m->cur->steps.source, "annotations") == 0;
}

ui_step_now_t ui_model_step_now(const ui_model_t *m)
{
    static const char *names[] = {NULL, "data", "forward", "backward", "optimizer", "eval"};
    ui_step_now_t now = {0};
    if (!ui_model_steps_known(m))
        return now;
    const prof_steps_t *st = &m->cur->steps;
    if (ui_model_steps_annotated(m)) {
        now.known = 1;
        now.number = st->current_step;
        now.phase = st->current_phase < sizeof names / sizeof names[0]
                        ? names[st->current_phase] : NULL;
        return now;
    }
    uint64_t t = m->cur->summary.duration_ns;
    if (!st->period_ns || t < st->first_step_ns || t >= st->last_step_ns + st->period_ns)
        return now;
    /* The last start is exact; those before it are at the mean period. */
    uint64_t k = st->count - 1, start = st->last_step_ns;
    if (t < st->last_step_ns && st->count >= 2) {
        k = (t - st->first_step_ns) / st->period_ns;
        if (k > st->count - 2)
            k = st->count - 2;
        start = st->first_step_ns + k * st->period_ns;
    }
    now.known = now.detected = 1;
    now.number = k + 1;
    now.of = st->count;
    if (st->phase_source && st->forward_end > 0 && t >= start) {
        double into = (double)(t - start) / (double)st->period_ns;
        now.phase = into < st->forward_end                            ? "forward"
                    : st->backward_end > 0 && into < st->backward_end ? "backward"
                                                                      : NULL;
    }
    return now;
}

size_t ui_model_step_ticks(const ui_model_t *m, size_t width, uint64_t t0, uint64_t t1,
                           uint8_t *ticks)
{
    if (width == 0)
        return 0;
    memset(ticks, 0, width);
    if (!ui_model_steps_known(m) || t1 <= t0)
        return 0;
    const prof_steps_t *st = &m->cur->steps;
    uint64_t range = t1 - t0;
    size_t n = 0;
    uint64_t k0 = 0;
    if (st->period_ns && t0 > st->first_step_ns)
        k0 = (t0 - st->first_step_ns) / st->period_ns; /* skip what is out of view */
    if (k0 >= st->count)
        k0 = st->count - 1;
    for (uint64_t k = k0; k < st->count; k++) {
        /* The result has the first and last starts and the mean period:
         * the last start is exact, those between are at the mean. */
        uint64_t t = k + 1 == st->count ? st->last_step_ns
                     : st->period_ns    ? st->first_step_ns + k * st->period_ns
                     : k == 0           ? st->first_step_ns
                                        : UINT64_MAX;
        if (t == UINT64_MAX || t < t0 || t > t1)
            continue;
        size_t c = (size_t)((double)(t - t0) / (double)range * (double)width);
        if (c >= width)
            c = width - 1;
        if (!ticks[c])
            n++;
        ticks[c] = 1;
        if (st->period_ns && k + 2 < st->count &&
            st->first_step_ns + (k + 1) * st->period_ns > t1)
            k = st->count - 2; /* past the window: only the last start is left */
    }
    return n;
}

size_t ui_model_timeline(const ui_model_t *m, size_t width, uint64_t *cols, long *peak_col,
                         uint64_t *max, uint64_t *start, uint64_t *end)
{
    return ui_model_timeline_stacked(m, width, cols, NULL, peak_col, max, start, end);
}

size_t ui_model_timeline_stacked(const ui_model_t *m, size_t width, uint64_t *cols,
                                 uint64_t (*cats)[MLMEM_CATEGORY_COUNT], long *peak_col,
                                 uint64_t *max, uint64_t *start, uint64_t *end)
{
    *peak_col = -1;
    *max = 0;
    if (start)
        *start = 0;
    if (end)
        *end = 0;
    if (!m->cur || !m->cur->timeline_count || width == 0)
        return 0;
    const prof_result_t *r = m->cur;
    uint64_t last_t = r->timeline[r->timeline_count - 1].time_ns;
    uint64_t now = r->summary.duration_ns > last_t ? r->summary.duration_ns : last_t;
    uint64_t t0 = 0, t1 = m->span_ns > now ? m->span_ns : now;
    if (m->window_ns) {
        t1 = now;
        t0 = now > m->window_ns ? now - m->window_ns : 0;
        if (t1 - t0 < m->window_ns)
            t1 = t0 + m->window_ns; /* a young run fills the window from the left */
    }
    uint64_t range = t1 > t0 ? t1 - t0 : 1;
    if (start)
        *start = t0;
    if (end)
        *end = t0 + range;
    uint8_t *has = calloc(width, 1);
    if (!has)
        return 0;
    memset(cols, 0, width * sizeof *cols);
    if (cats)
        memset(cats, 0, width * sizeof *cats);
    const uint64_t *before_cat = NULL;
#define COL_OF(t) ((size_t)((double)((t) - t0) / (double)range * (double)width) >= width  \
                       ? width - 1                                                        \
                       : (size_t)((double)((t) - t0) / (double)range * (double)width))
    size_t last = 0;
    uint64_t before = 0;  /* the value when the window opens */
    int any = 0;
    for (size_t i = 0; i < r->timeline_count; i++) {
        uint64_t t = r->timeline[i].time_ns;
        if (t < t0) {
            before = r->timeline[i].live_bytes;
            before_cat = r->timeline[i].category_bytes;
            continue;
        }
        size_t c = COL_OF(t);
        if (r->timeline[i].live_bytes > cols[c] || !has[c]) {
            cols[c] = r->timeline[i].live_bytes;
            if (cats) /* the split of the point that sets the column */
                memcpy(cats[c], r->timeline[i].category_bytes, sizeof cats[c]);
        }
        has[c] = 1;
        any = 1;
        if (c > last)
            last = c;
    }
    if (!any && !before) {
        free(has);
        return 0;
    }
    if (!any)
        last = COL_OF(now);
    if (!has[0]) {
        cols[0] = before;
        if (cats && before_cat)
            memcpy(cats[0], before_cat, sizeof cats[0]);
    }
    for (size_t c = 1; c <= last; c++)
        if (!has[c]) {
            cols[c] = cols[c - 1];
            if (cats)
                memcpy(cats[c], cats[c - 1], sizeof cats[c]);
        }
    for (size_t c = 0; c <= last; c++)
        if (cols[c] > *max)
            *max = cols[c];
    if (r->summary.peak_bytes && r->summary.peak_time_ns >= t0) {
        size_t pc = COL_OF(r->summary.peak_time_ns);
        if (pc <= last)
            *peak_col = (long)pc;
    }
#undef COL_OF
    free(has);
    return last + 1;
}

uint64_t ui_model_rss(const ui_model_t *m)
{
    if (!m->cur || !m->cur->timeline_count)
        return 0;
    return m->cur->timeline[m->cur->timeline_count - 1].rss_bytes;
}

/* ---- thread filter ------------------------------------------------------------ */

const prof_thread_t *ui_model_filter_thread(const ui_model_t *m)
{
    for (size_t i = 0; m->thread_filter && m->cur && i < m->cur->thread_count; i++)
        if (m->cur->threads[i].tid == m->thread_filter)
            return &m->cur->threads[i];
    return NULL;
}

int ui_model_set_thread_filter(ui_model_t *m, uint32_t tid)
{
    int changed = tid != m->thread_filter;
    m->thread_filter = tid;
    if (changed)
        m->thread_filter_name[0] = 0;
    const prof_thread_t *t = ui_model_filter_thread(m);
    if (t && t->name[0])
        snprintf(m->thread_filter_name, sizeof m->thread_filter_name, "%s", t->name);
    if (m->frame_ts) {
        m->ts_tid = tid; /* the frames hold every thread's figures */
    } else if (changed) {
        free(m->ts_own);
        m->ts_own = NULL;
        m->ts = NULL;
        m->ts_count = 0;
        m->ts_tid = 0;
    }
    if (changed) {
        m->site_sel = m->site_top = 0;
        m->stack_view = 0;
        /* The selected thread follows the filter in the threads pane. */
        for (size_t i = 0; tid && m->cur && i < m->cur->thread_count; i++)
            if (m->cur->threads[i].tid == tid)
                m->thread_sel = i;
    }
    resort(m, !changed);
    if (tid && m->frames && !m->frame_ts)
        snprintf(m->message, sizeof m->message, "thread %u: this replay has no per-thread "
                 "site figures (only the main process has them)", tid);
    else if (tid)
        snprintf(m->message, sizeof m->message, "sites of thread %u %s only (t: next, T: "
                 "previous, all threads after the last)", tid, m->thread_filter_name);
    else
        snprintf(m->message, sizeof m->message, "sites of all threads");
    return 1;
}

uint32_t ui_model_thread_sites_wanted(const ui_model_t *m)
{
    if (!m->thread_filter || m->frame_ts || m->frames)
        return 0;
    return m->ts_tid != m->thread_filter || m->ts_stale ? m->thread_filter : 0;
}

int ui_model_set_thread_sites(ui_model_t *m, uint32_t tid, prof_thread_site_t *ts, size_t n)
{
    if (tid != m->thread_filter || !tid) {
        free(ts);
        return 0;
    }
    free(m->ts_own);
    m->ts_own = ts;
    m->ts = ts;
    m->ts_count = n;
    m->ts_tid = tid;
    m->ts_stale = 0;
    const prof_thread_t *t = ui_model_filter_thread(m);
    if (t && t->name[0])
        snprintf(m->thread_filter_name, sizeof m->thread_filter_name, "%s", t->name);
    return resort(m, 1);
}

void ui_model_set_frame_thread_sites(ui_model_t *m, const prof_thread_site_t *const *ts,
                                     const size_t *counts)
{
    m->frame_ts = ts;
    m->frame_ts_count = counts;
    if (ts && m->frames && m->frame < m->frame_count) {
        m->ts = ts[m->frame];
        m->ts_count = counts[m->frame];
        m->ts_tid = m->thread_filter;
    }
    if (m->thread_filter)
        resort(m, 1);
}

const prof_thread_site_t *ui_model_site_thread(const ui_model_t *m, size_t i)
{
    if (!m->thread_filter || !m->cur || i >= m->order_len)
        return NULL;
    return m->trows[m->order[i]].t;
}

int ui_model_site_known(const ui_model_t *m, size_t i)
{
    if (!m->thread_filter)
        return 1;
    return m->cur && i < m->order_len && m->trows[m->order[i]].known;
}

const char *ui_model_sort_label(const ui_model_t *m)
{
    if (!m->thread_filter)
        return ui_model_sort_name(m->sort);
    switch (m->sort) {
    case UI_SORT_LIVE: return "thread live bytes";
    case UI_SORT_PEAK: return "site peak contribution";
    case UI_SORT_COUNT: return "thread live blocks";
    default: return "?";
    }
}
