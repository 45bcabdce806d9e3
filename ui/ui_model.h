/*
 * ui_model.h - the dashboard's state, with no terminal in it.
 *
 * The model holds what the screen shows (the current analysis snapshot,
 * the sort order of its sites, the selection, pause, focus, overlays, the
 * replay position and speed, the window size, the thread whose sites are
 * shown, if one is) and the functions that change
 * it: a key's action (ui_model_apply), a new live snapshot
 * (ui_model_update), a replay frame (ui_model_set_frames, ui_model_tick).
 * It never calls ncurses, never prints and never reads the clock: callers
 * pass the time in, so every behaviour is unit-tested
 * (tests/test_ui_model.c).
 *
 * Ownership: a live snapshot given to ui_model_update() belongs to the
 * model from then on (it frees it when the next one arrives or in
 * ui_model_free). Replay frames and the symbol source are borrowed: they
 * must outlive the model's use of them.
 *
 * Not thread-safe; one model per screen.
 */
#ifndef UI_MODEL_H
#define UI_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "profiler/accounting.h" /* prof_thread_site_t (the type only) */
#include "profiler/prof_result.h"

/* Advice (prof_result_t.recommendations) came with profiler/advice.h; the
 * dashboard shows it where the analyzer has it. */
#if defined(__has_include)
#if __has_include("profiler/advice.h")
#define UI_HAVE_ADVICE 1
#endif
#endif

/* Site orders, all descending; ties go by stack id ascending. */
typedef enum {
    UI_SORT_LIVE = 0,      /* live bytes now                              */
    UI_SORT_PEAK,          /* contribution to the peak (live_bytes_at_peak) */
    UI_SORT_COUNT,         /* number of allocations                       */
    UI_SORT_N
} ui_sort_t;

typedef enum { UI_PANE_SITES = 0, UI_PANE_THREADS, UI_PANE_N } ui_pane_t;

/* What the run is doing, for the header. */
typedef enum {
    UI_RUN_STARTING = 0,   /* no stream yet                               */
    UI_RUN_RUNNING,
    UI_RUN_EXITED,         /* exit_code valid                             */
    UI_RUN_SIGNALED,       /* signal valid                                */
    UI_RUN_ENDED,          /* ended, how unknown                          */
    UI_RUN_REPLAY,         /* a recorded trace                            */
} ui_run_state_t;

/* What a key asks for (ui_input.h maps keys to these). */
typedef enum {
    UI_ACT_NONE = 0,
    UI_ACT_QUIT,
    UI_ACT_HELP,           /* toggles the help screen                     */
    UI_ACT_BACK,           /* closes the help, stack or log overlay       */
    UI_ACT_SORT_LIVE,
    UI_ACT_SORT_PEAK,
    UI_ACT_SORT_COUNT,
    UI_ACT_SORT_NEXT,
    UI_ACT_UP,
    UI_ACT_DOWN,
    UI_ACT_PAGE_UP,
    UI_ACT_PAGE_DOWN,
    UI_ACT_HOME,
    UI_ACT_END,
    UI_ACT_SELECT,         /* sites: opens the selected site's stack;
                              threads: filters the sites to that thread  */
    UI_ACT_FOCUS_NEXT,     /* sites <-> threads                           */
    UI_ACT_THREAD_NEXT,    /* sites of one thread: all -> lowest tid -> ...
                              -> highest -> all                          */
    UI_ACT_THREAD_PREV,
    UI_ACT_PAUSE,          /* live: freeze the display; replay: play/pause */
    UI_ACT_LOG,            /* toggles the command's output log (live)     */
    UI_ACT_STEP_FWD,       /* replay                                      */
    UI_ACT_STEP_BACK,
    UI_ACT_JUMP_PEAK,
    UI_ACT_JUMP_START,
    UI_ACT_JUMP_END,
    UI_ACT_FASTER,
    UI_ACT_SLOWER,
    UI_ACT_WINDOW,         /* timeline: whole run, last 10 s, 60 s, 10 min */
    UI_ACT_REDRAW,
    UI_ACT_RESIZE,         /* use ui_model_resize(); kept for the mapping */
    UI_ACT_PROC_NEXT,      /* live: show the run's next process (by pid)  */
    UI_ACT_PROC_PREV,
} ui_action_t;

/* Live bytes of one category, for the composition bar. */
typedef struct {
    const char *name;      /* the result's name ("weights", ...)          */
    uint64_t bytes;
    int index;             /* mlmem_category_t: the result's categories[] */
} ui_category_t;

#define UI_MIN_ROWS 24
#define UI_MIN_COLS 80
#define UI_MAX_CATEGORIES 16
#define UI_SPEED_COUNT 9   /* 0.1x .. 100x                                */
#define UI_SPEED_DEFAULT 3 /* 1x                                          */

typedef struct {
    /* The snapshot on screen: 'own' for live, a borrowed frame in replay. */
    prof_result_t own;
    const prof_result_t *cur;        /* NULL until the first snapshot      */
    const prof_result_t *symbols;    /* optional: frames by stack id       */

    size_t *order;                   /* indices into cur->sites, sorted    */
    size_t order_len, order_cap;
    ui_sort_t sort;

    size_t site_sel, site_top;       /* selection and first visible row    */
    uint32_t site_sel_stack;         /* the selection follows this site    */
    int site_sel_held;               /* ... if there was one (stack 0 is a
                                        site too: the unsampled small ones) */
    size_t thread_sel, thread_top;
    ui_pane_t focus;

    int paused;                      /* live: snapshots ignored            */
    int help, stack_view, log_view;
    int quit;
    int rows, cols;                  /* clamped to at least 80x24          */
    int site_rows, thread_rows;      /* visible list rows (set by the view) */

    /* Header. */
    char command[256];
    int32_t pid;
    ui_run_state_t state;
    int32_t exit_code, signal;
    uint64_t elapsed_ns;

    /* Rates between the last two snapshots. */
    double events_per_s;
    double *thread_rate;             /* allocations/s, per cur->threads[i] */
    size_t thread_rate_cap;
    uint64_t prev_events, prev_ns;
    uint32_t *prev_tid;
    uint64_t *prev_allocs;
    size_t prev_thread_count, prev_thread_cap;
    int have_prev;

    /* Replay. */
    const prof_result_t *frames;     /* borrowed, in time order            */
    size_t frame_count, frame;
    int playing;
    int speed;                       /* index into the speed table         */
    uint64_t play_clock_ns;          /* replayed stream time               */
    uint64_t span_ns;                /* timeline x axis; 0: the snapshot's */
    uint64_t window_ns;              /* timeline shows the last window_ns
                                        before now; 0: the whole span     */

    /* Thread filter (memray's "switch threads"): the sites table shows
     * what one thread holds per site. The snapshot has no per-thread site
     * figures: the driver computes them on demand (prof_acct_thread_sites)
     * and hands them over with ui_model_set_thread_sites(); replay frames
     * carry them (ui_model_set_frame_thread_sites). */
    uint32_t thread_filter;          /* tid; 0: all threads                */
    int32_t proc_pid;                /* live: the process shown, for the
                                        driver's snapshots (0: the run's
                                        main one); forks and execs, < >    */
    char thread_filter_name[16];     /* its name when known                */
    prof_thread_site_t *ts_own;      /* live: the figures, owned           */
    const prof_thread_site_t *ts;    /* the figures shown (own or a frame's) */
    size_t ts_count;
    uint32_t ts_tid;                 /* whose figures 'ts' holds (0: none) */
    int ts_stale;                    /* live: a new snapshot came since    */
    const prof_thread_site_t *const *frame_ts; /* replay: per frame, borrowed */
    const size_t *frame_ts_count;
    struct ui_thread_row *trows;     /* the filtered table's rows          */
    size_t trow_cap;

    char message[160];               /* status line; "" for none           */
} ui_model_t;

/* One row of the filtered sites table: the site (the snapshot's, copied
 * with its pointers borrowed, or only its stack id when the snapshot does
 * not list it: known 0) and what the thread holds there. */
typedef struct ui_thread_row {
    prof_site_t site;
    const prof_thread_site_t *t;
    int known;
} ui_thread_row_t;

/* Initializes 'm' (zeroed, 80x24, sorted by live bytes). */
void ui_model_init(ui_model_t *m);

/* Releases what 'm' owns (not the borrowed frames). No operation if NULL. */
void ui_model_free(ui_model_t *m);

/* Sets the command line and pid shown in the header (NULL: keeps). */
void ui_model_set_command(ui_model_t *m, const char *command, int32_t pid);

/* Sets the run's state for the header. */
void ui_model_set_state(ui_model_t *m, ui_run_state_t st, int32_t exit_code, int32_t sig);

/* A new live snapshot taken at wall time 'now_ns' (monotonic). The model
 * takes 'snap' (and zeroes the caller's copy) unless paused, in which case
 * it is released. 'force' applies it even when paused (the final one).
 * Returns 0, or -1 if out of memory (the old snapshot stays). */
int ui_model_update(ui_model_t *m, prof_result_t *snap, uint64_t now_ns, int force);

/* Replay: borrows 'frames' (snapshots in time order; the last one is the
 * whole run) and shows the first. 'symbols', if not NULL, supplies frames
 * for sites whose snapshot has only addresses. Returns 0 or -1. */
int ui_model_set_frames(ui_model_t *m, const prof_result_t *frames, size_t n,
                        const prof_result_t *symbols);

/* Shows replay frame 'i' (clamped). Returns 0 or -1 if out of memory. */
int ui_model_show_frame(ui_model_t *m, size_t i);

/* Replay: moves the play clock on by 'wall_dt_ns' times the speed and
 * shows the frame reached. Returns 1 if the frame changed, else 0. */
int ui_model_tick(ui_model_t *m, uint64_t wall_dt_ns);

/* The frame that first reaches the run's peak (0 without frames). */
size_t ui_model_peak_frame(const ui_model_t *m);

/* The current speed factor (0.1 .. 100). */
double ui_model_speed(const ui_model_t *m);

/* Applies a key's action. Returns 1 if the screen needs a redraw. */
int ui_model_apply(ui_model_t *m, ui_action_t a);

/* The window is now rows x cols (values below 80x24 are clamped: the
 * view draws an 80x24 layout and the terminal crops it). */
void ui_model_resize(ui_model_t *m, int rows, int cols);

/* Sets how many list rows the view shows (for paging and scrolling). */
void ui_model_set_list_rows(ui_model_t *m, int site_rows, int thread_rows);

/* The site at sorted position 'i', or NULL past the end. */
const prof_site_t *ui_model_site(const ui_model_t *m, size_t i);

/* The selected site, or NULL if there is none. */
const prof_site_t *ui_model_selected_site(const ui_model_t *m);

/* The frames to show for 'site': its own if symbolized, else those of the
 * same stack in the symbol source. Sets *count; NULL if none. */
const prof_frame_t *ui_model_site_frames(const ui_model_t *m, const prof_site_t *site,
                                         uint32_t *count);

/* Fills 'out' (up to 'max') with the categories that hold bytes, largest
 * first: at the peak (categories[].bytes_at_peak), or now (bytes_at_end of
 * the snapshot, i.e. at its time; if those are all 0 while bytes are live,
 * the latest timeline point's category_bytes). Exact figures from
 * attribution, not a sum over the listed sites. Returns the count; 0
 * without a snapshot or without attribution. */
size_t ui_model_categories(const ui_model_t *m, int at_peak, ui_category_t *out, size_t max);

/* 1 if the snapshot has attribution's categories (category_count > 0). */
int ui_model_has_attribution(const ui_model_t *m);

/* The category whose confidence and evidence the composition shows: the
 * selected site's when the sites have focus and it has one, else the
 * largest at the peak. NULL without attribution or bytes at the peak. */
const prof_category_t *ui_model_focus_category(const ui_model_t *m);

/* 1 if the snapshot knows training steps (annotated or detected, count >
 * 0); ui_model_steps_annotated: 1 only for annotated ones. */
int ui_model_steps_known(const ui_model_t *m);
int ui_model_steps_annotated(const ui_model_t *m);

/* The training step the snapshot's end falls in, for the header. */
typedef struct {
    int known;                       /* 0: no step now ("-")               */
    int detected;                    /* found by detection, not annotated:
                                        number and phase are estimates     */
    uint64_t number;                 /* annotated: the program's number;
                                        detected: 1-based                  */
    uint64_t of;                     /* detected: steps found so far       */
    const char *phase;               /* "forward", ...; NULL when unknown  */
} ui_step_now_t;

/* Annotated: the last STEP's number and the phase marked since. Detected:
 * the step whose span (the first start + k periods) holds the snapshot's
 * end, while that is between the first start and one period past the
 * last, and the phase from the inferred fractions of a step (forward up
 * to the step's peak, backward to half-way down; none after that). */
ui_step_now_t ui_model_step_now(const ui_model_t *m);

/* Marks in 'ticks' (width bytes, 1 = a step starts in that column) the
 * step starts between t0 and t1 (the timeline's edges). The result gives
 * the first and last start and the mean period, so the last tick is exact
 * and those between are at the mean period. Returns the columns ticked;
 * 0 when steps are unknown. */
size_t ui_model_step_ticks(const ui_model_t *m, size_t width, uint64_t t0, uint64_t t1,
                           uint8_t *ticks);

/* Buckets the timeline into 'width' columns of equal time over the span
 * (span_ns if set, else the snapshot's duration; with window_ns, only the
 * last window_ns before the snapshot's time, so it scrolls while running):
 * each column holds the largest live bytes of the points in it, empty
 * columns hold the value before them. Sets *peak_col to the column of the
 * peak (or -1 when not in view), *max to the largest column, and *start /
 * *end (may be NULL) to the times at the edges. Returns the columns filled
 * (0 without a timeline). */
size_t ui_model_timeline(const ui_model_t *m, size_t width, uint64_t *cols, long *peak_col,
                         uint64_t *max, uint64_t *start, uint64_t *end);

/* The same, and, if 'cats' is not NULL, each column's split by category
 * (index mlmem_category_t): the category_bytes of the point that gave the
 * column its value, so they add up to cols[c]. */
size_t ui_model_timeline_stacked(const ui_model_t *m, size_t width, uint64_t *cols,
                                 uint64_t (*cats)[MLMEM_CATEGORY_COUNT], long *peak_col,
                                 uint64_t *max, uint64_t *start, uint64_t *end);

/* The latest RSS sample, 0 if none. */
uint64_t ui_model_rss(const ui_model_t *m);

/* Allocations per second of cur->threads[i] since the last snapshot. */
double ui_model_thread_rate(const ui_model_t *m, size_t i);

const char *ui_model_sort_name(ui_sort_t s);

/* ---- thread filter ---------------------------------------------------------- */

/* Shows the sites of thread 'tid' (0: all threads again). The name comes
 * from the snapshot's threads. Live, the figures are then missing until
 * ui_model_set_thread_sites() (ui_model_thread_sites_wanted() says for
 * which tid); in a replay the frames' figures are used. Returns 1 (redraw). */
int ui_model_set_thread_filter(ui_model_t *m, uint32_t tid);

/* The run's processes the snapshot knows (the one shown and the others,
 * each pid once), in increasing pid order, at most 'max'; the count. */
size_t ui_model_processes(const ui_model_t *m, int32_t *pids, size_t max);

/* The tid whose site figures the model waits for (live, after a switch
 * or a new snapshot), or 0 when none are needed. */
uint32_t ui_model_thread_sites_wanted(const ui_model_t *m);

/* Live: what thread 'tid' holds per site (prof_acct_thread_sites()); the
 * model takes 'ts' (malloc'ed, entries of other tids are ignored) and frees
 * it later. Figures for a tid that is no longer the filter are dropped.
 * Returns 0, or -1 if out of memory. */
int ui_model_set_thread_sites(ui_model_t *m, uint32_t tid, prof_thread_site_t *ts, size_t n);

/* Replay: per frame, every thread's figures (sorted by tid), borrowed like
 * the frames; 'ts' and 'counts' have one element per frame. */
void ui_model_set_frame_thread_sites(ui_model_t *m, const prof_thread_site_t *const *ts,
                                     const size_t *counts);

/* The filtered thread's entry in the snapshot, or NULL (no filter, or the
 * thread is not in this snapshot). */
const prof_thread_t *ui_model_filter_thread(const ui_model_t *m);

/* With a filter: what the thread holds at the site of sorted row 'i'
 * (NULL past the end or without a filter). */
const prof_thread_site_t *ui_model_site_thread(const ui_model_t *m, size_t i);

/* With a filter: 1 if the site of row 'i' is listed in the snapshot (its
 * site-wide figures are known), else 0. Without a filter: 1 for every row. */
int ui_model_site_known(const ui_model_t *m, size_t i);

/* The sort key's name for the current mode ("thread live bytes", ...). */
const char *ui_model_sort_label(const ui_model_t *m);

#endif /* UI_MODEL_H */
