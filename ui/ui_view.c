/*
 * ui_view.c - the dashboard's drawing and the terminal's setup/restoration.
 *
 * Layout, top to bottom (80x24 shown; taller windows give the timeline and
 * the lists the extra rows):
 *   0      title: command, pid, state, elapsed
 *   1-2    figures: live heap, peak heap, RSS, events/s, dropped, step/phase
 *   3-5    composition by category, now and at the peak; the selected
 *          site's (or the largest) category with confidence and evidence
 *   6..    timeline: title, bars stacked by category, axis with the peak
 *          marked and step starts ticked
 *   ..     sites (sortable) and threads, or an overlay (stack, log, help)
 *   -2     advice (up to 3 rows from 32 rows up)
 *   -1     keys
 */
#define _GNU_SOURCE
#include "ui_view.h"

#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "reports/report.h"
#include "ui_input.h"

enum { PAIR_TITLE = 1, PAIR_BAR, PAIR_PEAK, PAIR_DIM, PAIR_SEL, PAIR_CAT0 };
#define UI_CAT_MARKS 7 /* one colour or glyph per category (mlmem_category_t) */

/* The terminal is process-wide: one struct holds what restoring it needs. */
static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define NFATAL (sizeof fatal_signals / sizeof fatal_signals[0])

static struct {
    int active;
    int atexit_done;
    SCREEN *screen;
    ui_view_opts_t opts;
    struct sigaction old_int, old_term, old_fatal[NFATAL];
} term;

static volatile sig_atomic_t interrupted;

/* ---- terminal ----------------------------------------------------------------- */

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void on_fatal(int sig)
{
    /* Not async-signal-safe, but the process is dying anyway and a sane
     * terminal is worth the risk. */
    if (term.active) {
        term.active = 0;
        endwin();
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Our handlers, the previous ones saved for ui_view_end(). */
static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, &term.old_int);
    sigaction(SIGTERM, &sa, &term.old_term);
    sa.sa_handler = on_fatal;
    for (size_t i = 0; i < NFATAL; i++)
        sigaction(fatal_signals[i], &sa, &term.old_fatal[i]);
}

static void restore_handlers(void)
{
    sigaction(SIGINT, &term.old_int, NULL);
    sigaction(SIGTERM, &term.old_term, NULL);
    for (size_t i = 0; i < NFATAL; i++)
        sigaction(fatal_signals[i], &term.old_fatal[i], NULL);
}

int ui_view_interrupted(void)
{
    return interrupted != 0;
}

void ui_view_end(void)
{
    if (!term.active)
        return;
    term.active = 0;
    endwin();
    fflush(stdout);
    restore_handlers();
}

static void at_exit(void)
{
    ui_view_end();
}

int ui_view_begin(const ui_view_opts_t *o, char *err, size_t errlen)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        snprintf(err, errlen, "the dashboard needs a terminal (stdin and stdout are not both "
                              "terminals); use mlmem run or mlmem report instead");
        return -1;
    }
    setlocale(LC_ALL, "");
    term.opts = *o;
#ifdef UI_HAVE_NCURSESW
    const char *cs = nl_langinfo(CODESET);
    term.opts.unicode = o->unicode && cs && strcmp(cs, "UTF-8") == 0;
#else
    term.opts.unicode = 0;
#endif
    const char *ascii = getenv("MLMEM_ASCII");
    if (ascii && *ascii && strcmp(ascii, "0") != 0)
        term.opts.unicode = 0;
    /* Our handlers first, so ncurses does not install its own. */
    install_handlers();
    term.screen = newterm(NULL, stdout, stdin);
    if (!term.screen) {
        restore_handlers();
        const char *t = getenv("TERM");
        snprintf(err, errlen, "cannot use the terminal (TERM=%s): set TERM to your terminal's "
                              "type, e.g. xterm-256color", t ? t : "(unset)");
        return -1;
    }
    set_term(term.screen);
    term.active = 1;
    if (!term.atexit_done) {
        atexit(at_exit);
        term.atexit_done = 1;
    }
    cbreak(); /* not raw(): Ctrl-C stays a signal, which launch.c forwards */
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);
    const char *nc = getenv("NO_COLOR");
    term.opts.color = o->color && has_colors() && !(nc && *nc);
    if (term.opts.color) {
        start_color();
        use_default_colors();
        init_pair(PAIR_TITLE, COLOR_WHITE, COLOR_BLUE);
        init_pair(PAIR_BAR, COLOR_GREEN, -1);
        init_pair(PAIR_PEAK, COLOR_RED, -1);
        init_pair(PAIR_DIM, COLOR_CYAN, -1);
        init_pair(PAIR_SEL, COLOR_BLACK, COLOR_CYAN);
        /* By mlmem_category_t: other, weights, gradients, optimizer
         * state, activations, data, temporaries. */
        static const short cat_colors[UI_CAT_MARKS] = {COLOR_WHITE, COLOR_BLUE, COLOR_MAGENTA,
                                                       COLOR_YELLOW, COLOR_CYAN, COLOR_GREEN,
                                                       COLOR_RED};
        for (int i = 0; i < UI_CAT_MARKS; i++)
            init_pair((short)(PAIR_CAT0 + i), cat_colors[i], -1);
    }
    return 0;
}

int ui_view_getkey(int timeout_ms)
{
    timeout(timeout_ms);
    return getch();
}

/* ---- drawing helpers ---------------------------------------------------------- */

typedef struct {
    WINDOW *w;
    const ui_view_opts_t *o;
    int rows, cols;
} ctx_t;

static attr_t attr_of(const ctx_t *c, int pair, attr_t fallback)
{
    return c->o->color ? (attr_t)COLOR_PAIR(pair) : fallback;
}

/* Writes at most 'maxw' columns at (y, x). Control characters, bytes that
 * are not well-formed UTF-8 and bidirectional overrides become '?', and so
 * do all non-ASCII bytes without Unicode (their width is unknown). Columns
 * are counted with wcwidth, so wide characters take two. */
static void __attribute__((format(printf, 6, 7)))
put(const ctx_t *c, int y, int x, int maxw, attr_t attr, const char *fmt, ...)
{
    /* Clip to the layout and to the real window (smaller than 80x24:
     * cropped, never wrapped). */
    int wr = getmaxy(c->w), wc = getmaxx(c->w);
    if (y < 0 || y >= c->rows || y >= wr || x >= c->cols || x >= wc || maxw <= 0)
        return;
    if (x + maxw > wc)
        maxw = wc - x;
    char buf[1024], safe[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    int cols = 0;
    size_t i = 0, o = 0, len = strlen(buf);
    while (buf[i]) {
        const unsigned char *p = (const unsigned char *)buf + i;
        uint32_t cp = '?';
        size_t k = 1;
        if (*p < 0x80) {
            cp = *p;
        } else if (c->o->unicode) {
            k = report_utf8_len(p, len - i, &cp);
            if (k == 0) {
                k = 1;
                cp = '?';
            }
        } else {
            cp = '?';
        }
        if (report_char_unsafe(cp)) {
            cp = '?';
        }
        int w = cp < 0x80 ? 1 : wcwidth((wchar_t)cp);
        if (w < 0) { /* not printable here */
            cp = '?';
            w = 1;
        }
        if (cols + w > maxw || x + cols + w > c->cols)
            break;
        if (cp == '?' || cp < 0x80) {
            safe[o++] = (char)cp;
        } else {
            memcpy(safe + o, p, k);
            o += k;
        }
        cols += w;
        i += k;
    }
    safe[o] = 0;
    wattron(c->w, attr);
    mvwaddstr(c->w, y, x, safe);
    wattroff(c->w, attr);
}

static void fill_line(const ctx_t *c, int y, attr_t attr)
{
    if (y >= getmaxy(c->w))
        return;
    wattron(c->w, attr);
    mvwhline(c->w, y, 0, ' ', c->cols < getmaxx(c->w) ? c->cols : getmaxx(c->w));
    wattroff(c->w, attr);
}

static const char *fmt_bytes(uint64_t b, char *buf)
{
    return report_format_bytes(b, buf, REPORT_BYTES_BUFLEN);
}

static const char *fmt_count(double v, char *buf, size_t len)
{
    if (v >= 1e9)
        snprintf(buf, len, "%.1fG", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, len, "%.1fM", v / 1e6);
    else if (v >= 1e4)
        snprintf(buf, len, "%.1fk", v / 1e3);
    else
        snprintf(buf, len, "%.0f", v);
    return buf;
}

static const char *base_name(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p;
}

/* "function at file:line (module)" for the site's innermost frame. */
static void site_label(const ui_model_t *m, const prof_site_t *s, char *buf, size_t len)
{
    uint32_t n;
    const prof_frame_t *f = ui_model_site_frames(m, s, &n);
    if (s->stack_id == 0) {
        snprintf(buf, len, "(small allocations not sampled: no stack)");
    } else if (!f || n == 0) {
        snprintf(buf, len, "stack #%u (no frames)", s->stack_id);
    } else if (f->function) {
        if (f->file && f->line)
            snprintf(buf, len, "%s at %s:%u", f->function, base_name(f->file), f->line);
        else
            snprintf(buf, len, "%s (%s)", f->function, f->module ? base_name(f->module) : "?");
    } else {
        snprintf(buf, len, "0x%llx (%s+0x%llx)", (unsigned long long)f->address,
                 f->module ? base_name(f->module) : "?", (unsigned long long)f->module_offset);
    }
}

static void frame_text(const prof_frame_t *f, char *buf, size_t len)
{
    char where[512] = "";
    if (f->file && f->line)
        snprintf(where, sizeof where, " at %s:%u", f->file, f->line);
    if (f->function)
        snprintf(buf, len, "%s%s%s (%s)", f->function, f->inlined ? " [inlined]" : "", where,
                 f->module ? base_name(f->module) : "?");
    else
        snprintf(buf, len, "0x%llx (%s+0x%llx)", (unsigned long long)f->address,
                 f->module ? base_name(f->module) : "?", (unsigned long long)f->module_offset);
}

/* ---- sections ----------------------------------------------------------------- */

/* The state a process of the run ended in, as the title names it. */
static ui_run_state_t process_state(const prof_process_t *p)
{
    switch (p->end) {
    case PROF_END_EXITED: return UI_RUN_EXITED;
    case PROF_END_SIGNALED: return UI_RUN_SIGNALED;
    case PROF_END_RUNNING: return UI_RUN_RUNNING;
    default: return UI_RUN_ENDED;
    }
}

static void draw_title(const ctx_t *c, const ui_model_t *m)
{
    attr_t a = attr_of(c, PAIR_TITLE, A_REVERSE) | A_BOLD;
    fill_line(c, 0, a);
    /* Live, after < or >, another process of the run: its own command and
     * state in place of the run's. */
    const prof_process_t *other = m->cur && m->proc_pid ? &m->cur->process : NULL;
    if (other && (other->pid <= 0 || other->pid == m->pid))
        other = NULL;
    ui_run_state_t state = other ? process_state(other) : m->state;
    int exit_code = other ? other->exit_code : m->exit_code;
    int signal = other ? other->signal : m->signal;
    char st[64], sig[32], el[REPORT_DURATION_BUFLEN];
    switch (state) {
    case UI_RUN_STARTING: snprintf(st, sizeof st, "starting"); break;
    case UI_RUN_RUNNING: snprintf(st, sizeof st, m->paused ? "running, PAUSED" : "running"); break;
    case UI_RUN_EXITED: snprintf(st, sizeof st, "exited with code %d", exit_code); break;
    case UI_RUN_SIGNALED:
        snprintf(st, sizeof st, "killed by %s", report_signal_name(signal, sig, sizeof sig));
        break;
    case UI_RUN_ENDED: snprintf(st, sizeof st, "ended"); break;
    case UI_RUN_REPLAY: {
        const prof_result_t *last = m->frame_count ? &m->frames[m->frame_count - 1] : NULL;
        const char *how = "";
        char tmp[48] = "";
        if (last && last->process.end == PROF_END_EXITED) {
            snprintf(tmp, sizeof tmp, ", exited %d", last->process.exit_code);
            how = tmp;
        } else if (last && last->process.end == PROF_END_SIGNALED) {
            snprintf(tmp, sizeof tmp, ", killed by %s",
                     report_signal_name(last->process.signal, sig, sizeof sig));
            how = tmp;
        }
        snprintf(st, sizeof st, "replay%s%s", m->playing ? " (playing)" : "", how);
        break;
    }
    }
    report_format_duration(m->elapsed_ns, el, sizeof el);
    char right[160];
    const char *cmd = m->command[0] ? m->command : "(no command yet)";
    if (other) {
        int32_t pids[256];
        size_t n = ui_model_processes(m, pids, 256), k = 0;
        while (k < n && pids[k] != other->pid)
            k++;
        snprintf(right, sizeof right, "process %zu/%zu pid %d  %s ", k + 1, n, (int)other->pid, st);
        if (other->command && other->command[0])
            cmd = other->command;
    } else if (m->pid > 0) {
        snprintf(right, sizeof right, "pid %d  %s  %s ", (int)m->pid, st, el);
    } else {
        snprintf(right, sizeof right, "%s  %s ", st, el);
    }
    int rw = (int)strlen(right);
    /* A long command loses its program's directory first. */
    char shortcmd[sizeof m->command];
    const char *space = strchr(cmd, ' ');
    size_t prog = space ? (size_t)(space - cmd) : strlen(cmd);
    int room = c->cols - rw - 2 - 9 - (c->o->title ? (int)strlen(c->o->title) : 0);
    if ((int)strlen(cmd) > room && memchr(cmd, '/', prog)) {
        const char *slash = cmd + prog;
        while (*slash != '/')
            slash--;
        snprintf(shortcmd, sizeof shortcmd, "%s", slash + 1);
        cmd = shortcmd;
    }
    put(c, 0, 0, c->cols - rw - 2, a, " mlmem %s  %s", c->o->title ? c->o->title : "", cmd);
    put(c, 0, c->cols - rw, rw, a, "%s", right);
}

static void draw_figures(const ctx_t *c, const ui_model_t *m)
{
    char b1[16], b2[16], b3[16], b4[16], d[REPORT_DURATION_BUFLEN], r1[24];
    const prof_result_t *r = m->cur;
    if (!r) {
        put(c, 1, 1, c->cols - 2, A_NORMAL, "%s",
            m->state == UI_RUN_STARTING || m->state == UI_RUN_RUNNING
                ? "waiting for the command's first events..."
                : "no figures: no process of the run sent any events");
        return;
    }
    const prof_summary_t *s = &r->summary;
    put(c, 1, 1, c->cols - 2, A_BOLD, "live heap %s   peak heap %s at %s   RSS %s (peak %s)",
        fmt_bytes(s->live_bytes, b1), fmt_bytes(s->peak_bytes, b2),
        report_format_duration(s->peak_time_ns, d, sizeof d), fmt_bytes(ui_model_rss(m), b3),
        fmt_bytes(s->peak_rss_bytes, b4));
    char replay[96] = "", lost[48] = "";
    if (m->frames)
        snprintf(replay, sizeof replay, "frame %zu/%zu %gx %s   ", m->frame + 1, m->frame_count,
                 ui_model_speed(m), m->playing ? "playing" : "paused");
    if (s->lost_events)
        snprintf(lost, sizeof lost, "  lost %llu", (unsigned long long)s->lost_events);
    attr_t warn = (s->dropped_events || s->lost_events) ? attr_of(c, PAIR_PEAK, A_BOLD) : A_NORMAL;
    /* The current step: annotated, the program's own number and the phase
     * it marked; detected, an estimate, marked '~' (number of those found). */
    char step[48] = "-", phase[24] = "-";
    ui_step_now_t now = ui_model_step_now(m);
    if (now.known && now.detected)
        snprintf(step, sizeof step, "~%llu/%llu", (unsigned long long)now.number,
                 (unsigned long long)now.of);
    else if (now.known)
        snprintf(step, sizeof step, "%llu", (unsigned long long)now.number);
    if (now.phase)
        snprintf(phase, sizeof phase, "%s%s", now.detected ? "~" : "", now.phase);
    put(c, 2, 1, c->cols - 2, warn, "%sevents/s %s  events %llu  dropped %llu%s  step %s  phase %s",
        replay, fmt_count(m->events_per_s, r1, sizeof r1), (unsigned long long)s->events,
        (unsigned long long)s->dropped_events, lost, step, phase);
}

/* A category's mark: its colour, or without colour a glyph of its own. */
static void cat_mark(const ctx_t *c, int index, char *mark, size_t len, attr_t *a)
{
    /* By mlmem_category_t (other, weights, gradients, optimizer state,
     * activations, data, temporaries): weights get the solid mark. */
    static const char ascii_fills[UI_CAT_MARKS + 1] = "~#=%*+o";
    static const char *uni_fills[UI_CAT_MARKS] = {"\u2580", "\u2588", "\u2593", "\u2592",
                                                  "\u2591", "\u259a", "\u2596"};
    int k = index < 0 ? MLMEM_CAT_OTHER : index % UI_CAT_MARKS;
    if (c->o->unicode)
        snprintf(mark, len, "%s", c->o->color ? uni_fills[0] : uni_fills[k]);
    else
        snprintf(mark, len, "%c", ascii_fills[k]);
    *a = c->o->color ? (attr_t)COLOR_PAIR(PAIR_CAT0 + k) : A_NORMAL;
}

/* Three rows: the bar and legend now and at the peak, then the focused
 * category's share, confidence and evidence. */
static void draw_composition(const ctx_t *c, const ui_model_t *m, int y)
{
    put(c, y, 1, 12, A_BOLD, "composition");
    if (!ui_model_has_attribution(m)) {
        put(c, y, 13, c->cols - 14, A_NORMAL, "%s",
            m->cur ? "no attribution in this snapshot" : "no snapshot yet");
        put(c, y + 1, 13, c->cols - 14, attr_of(c, PAIR_DIM, A_DIM),
            "(live bytes by category, now and at the peak, show here once attribution ran)");
        return;
    }
    int barw = c->cols / 5 > 16 ? c->cols / 5 : 16; /* the legend gets the rest */
    for (int row = 0; row < 2; row++) {
        ui_category_t cs[UI_MAX_CATEGORIES];
        size_t n = ui_model_categories(m, row, cs, UI_MAX_CATEGORIES);
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++)
            total += cs[i].bytes;
        int x = 18, used = 0, lx = 18 + barw + 1;
        put(c, y + row, 13, 5, A_NORMAL, row ? "peak" : "now");
        if (n == 0)
            put(c, y + row, x, c->cols - x - 1, A_NORMAL, "no live bytes");
        for (size_t i = 0; i < n; i++) {
            char mark[8], b[16], item[96];
            attr_t a;
            cat_mark(c, cs[i].index, mark, sizeof mark, &a);
            int w = total ? (int)((double)cs[i].bytes / (double)total * barw + 0.5) : 0;
            if (w == 0 && cs[i].bytes)
                w = 1; /* every category that holds bytes shows */
            if (used + w > barw)
                w = barw - used;
            for (int j = 0; j < w; j++)
                put(c, y + row, x + used + j, 1, a, "%s", mark);
            used += w;
            /* The legend follows the bar, as many items as fit. */
            snprintf(item, sizeof item, " %s %s ", cs[i].name, fmt_bytes(cs[i].bytes, b));
            int iw = 1 + (int)strlen(item);
            if (lx + iw > c->cols - 1)
                continue;
            put(c, y + row, lx, 1, a, "%s", mark);
            put(c, y + row, lx + 1, c->cols - lx - 2, A_NORMAL, "%s", item);
            lx += iw;
        }
    }
    const prof_category_t *f = ui_model_focus_category(m);
    const prof_result_t *r = m->cur;
    if (f) {
        char mark[8];
        attr_t a;
        int idx = (int)(f - r->categories);
        cat_mark(c, idx, mark, sizeof mark, &a);
        double share = r->summary.peak_bytes
                           ? 100.0 * (double)f->bytes_at_peak / (double)r->summary.peak_bytes
                           : 0;
        put(c, y + 2, 13, 1, a, "%s", mark);
        put(c, y + 2, 15, c->cols - 16, A_NORMAL, "%s %.0f%% of the peak, %.0f%% sure: %s",
            f->name ? f->name : "?", share, f->confidence * 100,
            f->evidence && f->evidence[0] ? f->evidence : "no evidence given");
    } else {
        put(c, y + 2, 13, c->cols - 14, A_NORMAL, "no bytes at the peak yet");
    }
}

/* The category of cell 'row' (0 = bottom) of a column 'cells' high whose
 * bytes split as 'cat': the one covering the cell's middle, so every
 * category keeps its share of the height. -1 without a split. */
static int cell_category(const uint64_t *cat, uint64_t total, double cells, int row)
{
    if (!total || cells <= 0)
        return -1;
    double mid = ((double)row + 0.5 < cells ? (double)row + 0.5 : cells) / cells * (double)total;
    double acc = 0;
    int last = -1;
    for (int i = 0; i < MLMEM_CATEGORY_COUNT; i++) {
        if (!cat[i])
            continue;
        acc += (double)cat[i];
        last = i;
        if (mid <= acc)
            return i;
    }
    return last;
}

static void draw_timeline(const ctx_t *c, const ui_model_t *m, int y, int height)
{
    static const char *blocks[] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                   "\u2585", "\u2586", "\u2587", "\u2588"};
    const int left = 12;
    int width = c->cols - left - 1;
    uint64_t cols[512], cats[512][MLMEM_CATEGORY_COUNT];
    uint8_t ticks[512];
    if (width > 512)
        width = 512;
    long peak_col;
    uint64_t max;
    uint64_t t0, t1;
    int stacked = ui_model_has_attribution(m);
    size_t n = ui_model_timeline_stacked(m, (size_t)width, cols, stacked ? cats : NULL,
                                         &peak_col, &max, &t0, &t1);
    char b1[16], d1[REPORT_DURATION_BUFLEN], d2[REPORT_DURATION_BUFLEN], steps[64] = "";
    const prof_result_t *r = m->cur;
    put(c, y, 1, 9, A_BOLD, "timeline");
    if (!n || !max) {
        put(c, y, left, c->cols - left - 1, A_NORMAL, "live bytes over time: no data yet");
        return;
    }
    size_t nticks = ui_model_step_ticks(m, (size_t)width, t0, t1, ticks);
    if (ui_model_steps_known(m))
        snprintf(steps, sizeof steps, ", | %llu %s steps", (unsigned long long)r->steps.count,
                 ui_model_steps_annotated(m) ? "annotated" : "detected");
    /* The scale is on the y axis (0 .. the largest column). */
    put(c, y, left, c->cols - left - 1, A_NORMAL, "%s, %s peak at %s%s",
        stacked ? "live bytes by category" : "live bytes over time",
        c->o->unicode ? "\u25b2" : "^",
        report_format_duration(r->summary.peak_time_ns, d2, sizeof d2), steps);
    put(c, y + 1, 0, left - 1, A_NORMAL, "%10s", fmt_bytes(max, b1));
    put(c, y + height, 0, left - 1, A_NORMAL, "%10s", "0");
    for (size_t x = 0; x < n; x++) {
        double cells = (double)cols[x] / (double)max * height;
        uint64_t total = 0;
        if (stacked)
            for (int i = 0; i < MLMEM_CATEGORY_COUNT; i++)
                total += cats[x][i];
        int peak = (long)x == peak_col;
        for (int row = 0; row < height; row++) {
            double fill = cells - row;
            if (fill <= 0)
                break;
            int yy = y + height - row, xx = left + (int)x;
            int k = stacked ? cell_category(cats[x], total, cells, row) : -1;
            attr_t a = attr_of(c, PAIR_BAR, A_NORMAL);
            char mark[8] = "#";
            if (k >= 0)
                cat_mark(c, k, mark, sizeof mark, &a);
            if (peak) /* the peak's column stands out */
                a = (c->o->color && k < 0 ? attr_of(c, PAIR_PEAK, A_BOLD) : a) | A_BOLD;
            if (fill < 1) {
                /* The top cell: eighths in Unicode (under one eighth shows
                 * as a sliver on the bottom row only), ':' '.' in ASCII. */
                if (c->o->unicode) {
                    int level = (int)(fill * 8);
                    if (level == 0 && row > 0)
                        continue;
                    put(c, yy, xx, 1, a, "%s", blocks[level]);
                } else {
                    put(c, yy, xx, 1, a, "%c", fill >= 0.5 ? ':' : '.');
                }
            } else if (c->o->unicode && (k < 0 || c->o->color)) {
                put(c, yy, xx, 1, a, "%s", blocks[7]);
            } else {
                put(c, yy, xx, 1, a, "%s", mark);
            }
        }
    }
    /* Axis: step starts ticked, the time span, the peak marker on top. */
    int ay = y + height + 1;
    if (nticks)
        for (int x = 0; x < width; x++)
            if (ticks[x])
                put(c, ay, left + x, 1, attr_of(c, PAIR_DIM, A_NORMAL), "|");
    report_format_duration(t0, d2, sizeof d2);
    put(c, ay, left, (int)strlen(d2), A_NORMAL, "%s", t0 ? d2 : "0");
    report_format_duration(t1, d1, sizeof d1);
    put(c, ay, c->cols - 1 - (int)strlen(d1), (int)strlen(d1), A_NORMAL, "%s", d1);
    if (peak_col >= 0)
        put(c, ay, left + (int)peak_col, 4, attr_of(c, PAIR_PEAK, A_BOLD) | A_BOLD, "%s",
            c->o->unicode ? "\u25b2" : "^");
}

/* One row of a sites table at line y: three figure columns, then the
 * site's category and label; the selected row is highlighted (reverse
 * while the sites pane has the focus, bold otherwise). */
static void put_site_row(const ctx_t *c, const ui_model_t *m, int y, int sel,
                         const prof_site_t *s, const char *col1, const char *col2,
                         const char *col3)
{
    attr_t a = sel ? (m->focus == UI_PANE_SITES ? attr_of(c, PAIR_SEL, A_REVERSE) | A_REVERSE
                                                : A_BOLD)
                   : A_NORMAL;
    char label[600];
    site_label(m, s, label, sizeof label);
    if (sel)
        fill_line(c, y, a);
    put(c, y, 1, c->cols - 2, a, "%10s %10s %8s %s%s%s%s", col1, col2, col3,
        s->category ? "[" : "", s->category ? s->category : "", s->category ? "] " : "", label);
}

/* The sites table of one thread (t / T, Enter on a thread): what the
 * thread holds per site (live bytes, live blocks), with the site's
 * contribution to the peak (all threads) between them. */
static void draw_thread_sites(const ctx_t *c, ui_model_t *m, int y, int rows)
{
    size_t n = m->order_len;
    attr_t head = A_BOLD | (m->focus == UI_PANE_SITES ? A_UNDERLINE : 0);
    const char *name = m->thread_filter_name[0] ? m->thread_filter_name : "(no name)";
    put(c, y, 1, c->cols - 2, head, "%-10s %-10s %-8s thread %u %s: %zu sites (t T: threads)",
        m->sort == UI_SORT_LIVE ? "[thr live]" : " thr live",
        m->sort == UI_SORT_PEAK ? "[at peak]" : " at peak",
        m->sort == UI_SORT_COUNT ? "[blocks]" : " blocks", m->thread_filter, name, n);
    for (int i = 0; i < rows; i++) {
        size_t k = m->site_top + (size_t)i;
        const prof_site_t *s = ui_model_site(m, k);
        const prof_thread_site_t *t = ui_model_site_thread(m, k);
        if (!s || !t)
            break;
        char b1[16], b2[16], n1[24];
        put_site_row(c, m, y + 1 + i, k == m->site_sel, s, fmt_bytes(t->live_bytes, b1),
                     ui_model_site_known(m, k) ? fmt_bytes(s->live_bytes_at_peak, b2) : "-",
                     fmt_count((double)t->live_allocations, n1, sizeof n1));
    }
    if (n == 0)
        put(c, y + 1, 1, c->cols - 2, A_NORMAL, "  %s",
            !m->cur ? "no figures yet"
            : m->ts_tid != m->thread_filter ? "counting what this thread holds..."
            : ui_model_filter_thread(m) ? "this thread holds no live allocations"
                                        : "this thread is not in this snapshot");
}

static void draw_sites(const ctx_t *c, ui_model_t *m, int y, int rows)
{
    if (m->thread_filter) {
        draw_thread_sites(c, m, y, rows);
        return;
    }
    const prof_result_t *r = m->cur;
    size_t n = m->order_len;
    int attrib = ui_model_has_attribution(m);
    attr_t head = A_BOLD | (m->focus == UI_PANE_SITES ? A_UNDERLINE : 0);
    put(c, y, 1, c->cols - 2, head, "%-10s %-10s %-8s sites: %zu%s by %s%s",
        m->sort == UI_SORT_LIVE ? "[live]" : " live", m->sort == UI_SORT_PEAK ? "[at peak]" : " at peak",
        m->sort == UI_SORT_COUNT ? "[allocs]" : " allocs", n,
        r && r->site_count && n >= 200 ? "+" : "", ui_model_sort_name(m->sort),
        attrib ? "" : "  (no attribution)");
    for (int i = 0; i < rows; i++) {
        const prof_site_t *s = ui_model_site(m, m->site_top + (size_t)i);
        if (!s)
            break;
        char b1[16], b2[16], n1[24];
        put_site_row(c, m, y + 1 + i, m->site_top + (size_t)i == m->site_sel, s,
                     fmt_bytes(s->live_bytes, b1), fmt_bytes(s->live_bytes_at_peak, b2),
                     fmt_count((double)s->allocations, n1, sizeof n1));
    }
    if (n == 0)
        put(c, y + 1, 1, c->cols - 2, A_NORMAL, "  no allocation sites yet");
}

static void draw_threads(const ctx_t *c, ui_model_t *m, int y, int rows)
{
    const prof_result_t *r = m->cur;
    size_t n = r ? r->thread_count : 0;
    attr_t head = A_BOLD | (m->focus == UI_PANE_THREADS ? A_UNDERLINE : 0);
    put(c, y, 1, c->cols - 2, head, "%10s %10s %8s %9s  threads: %zu (tid, name)%s", "live",
        "peak", "allocs", "allocs/s", n,
        m->thread_filter ? "" : m->focus == UI_PANE_THREADS ? ", Enter: its sites" : "");
    for (int i = 0; i < rows && m->thread_top + (size_t)i < n; i++) {
        size_t k = m->thread_top + (size_t)i;
        const prof_thread_t *t = &r->threads[k];
        int sel = k == m->thread_sel && m->focus == UI_PANE_THREADS;
        attr_t a = sel ? attr_of(c, PAIR_SEL, A_REVERSE) | A_REVERSE : A_NORMAL;
        char b1[16], b2[16], n1[24], n2[24];
        if (sel)
            fill_line(c, y + 1 + i, a);
        /* '>' marks the thread whose sites the sites table shows. */
        put(c, y + 1 + i, 1, c->cols - 2, a, "%10s %10s %8s %9s %s%u %s",
            fmt_bytes(t->live_bytes, b1), fmt_bytes(t->peak_live_bytes, b2),
            fmt_count((double)t->allocations, n1, sizeof n1),
            fmt_count(ui_model_thread_rate(m, k), n2, sizeof n2),
            m->thread_filter && t->tid == m->thread_filter ? ">" : " ", t->tid,
            t->name[0] ? t->name : "");
    }
}

static void draw_stack(const ctx_t *c, const ui_model_t *m, int y, int rows)
{
    const prof_site_t *s = ui_model_selected_site(m);
    if (!s) {
        put(c, y, 1, c->cols - 2, A_BOLD, "no site selected (Esc returns)");
        return;
    }
    char b1[16], b2[16], b3[16], b4[16];
    if (!ui_model_site_known(m, m->site_sel))
        put(c, y, 1, c->cols - 2, A_BOLD, "site #%u: not among the snapshot's top sites; only "
            "this thread's figures   (Esc returns)", s->stack_id);
    else
        put(c, y, 1, c->cols - 2, A_BOLD, "site #%u: %s live, %s at peak, %s own peak, %llu "
            "allocations (%llu freed), largest %s%s   (Esc returns)", s->stack_id,
            fmt_bytes(s->live_bytes, b1), fmt_bytes(s->live_bytes_at_peak, b2),
            fmt_bytes(s->peak_live_bytes, b3), (unsigned long long)s->allocations,
            (unsigned long long)s->frees, fmt_bytes(s->largest_allocation, b4),
            s->sampled ? ", sampled" : "");
    if (s->category)
        put(c, y + 1, 1, c->cols - 2, A_NORMAL, "category %s (confidence %.0f%%): %s",
            s->category, s->category_confidence * 100,
            s->category_evidence ? s->category_evidence : "no evidence given");
    else
        put(c, y + 1, 1, c->cols - 2, A_NORMAL, "category: none%s",
            ui_model_has_attribution(m) ? "" : " (no attribution in this snapshot)");
    int first = 2;
    const prof_thread_site_t *t = ui_model_site_thread(m, m->site_sel);
    if (t) {
        char b5[16], b6[16], d[REPORT_DURATION_BUFLEN];
        put(c, y + 2, 1, c->cols - 2, A_NORMAL, "thread %u %s holds %s here: %llu "
            "blocks, %s mapped, the oldest from %s", t->tid, m->thread_filter_name,
            fmt_bytes(t->live_bytes, b5), (unsigned long long)t->live_allocations,
            fmt_bytes(t->mmap_bytes, b6),
            report_format_duration(t->oldest_born_ns, d, sizeof d));
        first = 3;
    }
    uint32_t n;
    const prof_frame_t *f = ui_model_site_frames(m, s, &n);
    if (!f || n == 0) {
        put(c, y + first, 3, c->cols - 4, A_NORMAL, "%s", s->stack_id == 0
            ? "small allocations that were not sampled have no stack"
            : "no frames recorded for this stack");
        return;
    }
    int avail = rows - first;
    for (uint32_t i = 0; i < n && (int)i < avail; i++) {
        char line[900];
        if ((int)i == avail - 1 && n > (uint32_t)avail) {
            put(c, y + first + (int)i, 3, c->cols - 4, A_DIM, "... %u more frames", n - i);
            break;
        }
        frame_text(&f[i], line, sizeof line);
        put(c, y + first + (int)i, 1, c->cols - 2, A_NORMAL, "#%-2u %s", i, line);
    }
}

static void draw_log(const ctx_t *c, int y, int rows)
{
    const char *path = c->o->log_path;
    put(c, y, 1, c->cols - 2, A_BOLD, "command output: %s   (o or Esc returns)",
        path ? path : "(none)");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) {
        put(c, y + 1, 3, c->cols - 4, A_NORMAL, "no output yet");
        return;
    }
    static char buf[16384];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0;
    fseek(f, from, SEEK_SET);
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    if (len && buf[len - 1] == '\n')
        buf[--len] = 0;
    /* The last rows-1 lines. */
    int want = rows - 1, lines = 0;
    char *p = buf + len;
    while (p > buf && lines < want) {
        p--;
        if (*p == '\n')
            lines++;
    }
    if (*p == '\n')
        p++;
    int row = 1;
    for (char *line = strtok(p, "\n"); line && row <= want; line = strtok(NULL, "\n"))
        put(c, y + row++, 1, c->cols - 2, A_NORMAL, "%s", line);
    if (len == 0)
        put(c, y + 1, 3, c->cols - 4, A_NORMAL, "no output yet");
}

static void draw_help(const ctx_t *c, const ui_model_t *m, int y, int rows)
{
    int mode = m->frames ? 2 : 1;
    put(c, y, 1, c->cols - 2, A_BOLD, "help: keys   (? or Esc closes)");
    int row = 1;
    for (const ui_key_help_t *k = ui_input_help(); k->keys && row < rows; k++) {
        if (!(k->modes & mode))
            continue;
        put(c, y + row, 3, 18, A_BOLD, "%s", k->keys);
        put(c, y + row, 22, c->cols - 23, A_NORMAL, "%s", k->what);
        row++;
    }
    static const char *notes[] = {
        "live heap: requested bytes of live malloc-family blocks + anonymous mmaps",
        "peak contribution: a site's live bytes at the moment of the global peak",
        "RSS: the kernel's resident set, sampled; dropped: events the shim could not send",
    };
    for (size_t i = 0; i < 3 && row + 1 < rows; i++, row++)
        put(c, y + row + 1, 3, c->cols - 4, attr_of(c, PAIR_DIM, A_DIM), "%s", notes[i]);
}

static void draw_keys(const ctx_t *c, const ui_model_t *m, int y)
{
    attr_t a = attr_of(c, PAIR_TITLE, A_REVERSE);
    fill_line(c, y, a);
    const char *keys = m->frames
        ? " q quit  ? help  space play  ,. step  P peak  +- speed  123 sort  t thread  "
          "Enter stack  [] ends  w window  Tab threads"
        : " q quit  ? help  123 sort  Enter stack  Tab threads  t thread  space pause  "
          "o output  w window  Ctrl-C stop";
    put(c, y, 0, c->cols, a, "%s", keys);
}

/* The advice rows: a status message when there is one, else the
 * recommendations (largest saving first): title, predicted peak, saving. */
static void draw_advice(const ctx_t *c, const ui_model_t *m, int y, int rows)
{
    put(c, y, 1, 7, A_BOLD, "advice");
    if (m->message[0]) {
        put(c, y, 8, c->cols - 9, A_NORMAL, "%s", m->message);
        return;
    }
#ifdef UI_HAVE_ADVICE
    const prof_result_t *r = m->cur;
    size_t n = r ? r->recommendation_count : 0;
    if (n && r->recommendations) {
        for (int i = 0; i < rows && (size_t)i < n; i++) {
            const prof_recommendation_t *a = &r->recommendations[i];
            char b1[16], b2[16];
            /* "i/n": the count says how many more 'mlmem advise' explains. */
            put(c, y + i, 8, c->cols - 9, A_NORMAL, "%zu/%zu %s: peak %s, saves %s%s",
                (size_t)i + 1, n, a->title ? a->title : "?",
                fmt_bytes(a->predicted_peak_bytes, b1), fmt_bytes(a->bytes_saved, b2),
                a->deployment_only ? " deployed" : "");
        }
        return;
    }
    put(c, y, 8, c->cols - 9, A_NORMAL, "%s",
        ui_model_has_attribution(m) ? "no recommendations: nothing to change found"
                                    : "no recommendations (advice needs attribution)");
#else
    (void)rows;
    put(c, y, 8, c->cols - 9, A_NORMAL, "%s",
        "no recommendations yet (mlmem does not compute advice yet)");
#endif
}

/* ---- the screen --------------------------------------------------------------- */

void ui_view_render(WINDOW *w, const ui_view_opts_t *o, ui_model_t *m)
{
    int rows, cols;
    getmaxyx(w, rows, cols);
    ui_model_resize(m, rows, cols);
    /* Draw the model's size: never less than 80x24, cropped if smaller. */
    ctx_t c = {w, o, m->rows, m->cols};
    werase(w);
    draw_title(&c, m);
    draw_figures(&c, m);
    /* Advice: one row, up to 3 when the window is tall. */
    int adv_rows = 1;
#ifdef UI_HAVE_ADVICE
    if (m->rows >= 32 && m->cur && m->cur->recommendation_count > 1)
        adv_rows = m->cur->recommendation_count >= 3 ? 3 : 2;
#endif
    int bottom = m->rows - 1 - adv_rows; /* the first advice row           */
    if (m->help || m->stack_view || m->log_view) {
        /* Overlays take everything between the figures and the keys. */
        if (m->help)
            draw_help(&c, m, 3, m->rows - 1 - 3);
        else if (m->stack_view)
            draw_stack(&c, m, 3, m->rows - 1 - 3);
        else
            draw_log(&c, 3, m->rows - 1 - 3);
        draw_keys(&c, m, m->rows - 1);
        return;
    }
    draw_composition(&c, m, 3);
    int extra = m->rows - UI_MIN_ROWS;
    int tl_h = 4 + extra / 3;
    if (tl_h > 20)
        tl_h = 20;
    int y = 6;
    draw_timeline(&c, m, y, tl_h);
    y += tl_h + 2;
    /* The lists share the rest: threads get a few rows (more when tall,
     * fewer when there are fewer threads), sites the others. */
    int avail = bottom - y;
    size_t nthreads = m->cur ? m->cur->thread_count : 0;
    int trows = 3 + (avail - 11) / 4;
    if (trows < 1)
        trows = 1;
    if ((size_t)trows > nthreads && nthreads > 0)
        trows = (int)nthreads;
    int srows = avail - 2 - trows;
    ui_model_set_list_rows(m, srows, trows);
    draw_sites(&c, m, y, srows);
    draw_threads(&c, m, y + 1 + srows, trows);
    draw_advice(&c, m, bottom, adv_rows);
    draw_keys(&c, m, m->rows - 1);
    if (rows < UI_MIN_ROWS || cols < UI_MIN_COLS)
        put(&c, 0, 0, cols, A_REVERSE | A_BOLD, "[%dx%d: the dashboard needs 80x24] ", cols,
            rows);
}

void ui_view_draw(ui_model_t *m)
{
    if (!term.active)
        return;
    ui_view_render(stdscr, &term.opts, m);
    wnoutrefresh(stdscr);
    doupdate();
}
