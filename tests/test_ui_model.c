/*
 * test_ui_model.c - the dashboard's model (ui/ui_model.h): sorting,
 * selection, pause, resize, help, replay stepping, speed, jump to the peak,
 * rates, categories (exact, from attribution's result), the timeline's
 * scaling and stacking by category, step ticks. No terminal involved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ui/ui_model.h"

/* ---- fixtures ------------------------------------------------------------------- */

typedef struct {
    uint32_t stack_id;
    uint64_t live, at_peak, allocs;
    const char *category;
} site_spec_t;

/* A result with the given sites, a timeline of 'points' (time, live) pairs,
 * and summary figures. */
static prof_result_t make_result(const site_spec_t *sites, size_t n, const uint64_t (*points)[2],
                                 size_t npoints, uint64_t peak, uint64_t peak_time,
                                 uint64_t duration, uint64_t events)
{
    prof_result_t r;
    memset(&r, 0, sizeof r);
    r.sites = calloc(n ? n : 1, sizeof *r.sites);
    r.site_count = n;
    for (size_t i = 0; i < n; i++) {
        r.sites[i].stack_id = sites[i].stack_id;
        r.sites[i].live_bytes = sites[i].live;
        r.sites[i].live_bytes_at_peak = sites[i].at_peak;
        r.sites[i].allocations = sites[i].allocs;
        r.sites[i].category = sites[i].category;
    }
    r.timeline = calloc(npoints ? npoints : 1, sizeof *r.timeline);
    r.timeline_count = npoints;
    for (size_t i = 0; i < npoints; i++) {
        r.timeline[i].time_ns = points[i][0];
        r.timeline[i].live_bytes = points[i][1];
        r.timeline[i].rss_bytes = 1000 + i;
    }
    r.summary.peak_bytes = peak;
    r.summary.peak_time_ns = peak_time;
    r.summary.duration_ns = duration;
    r.summary.events = events;
    return r;
}

/* Three sites whose order differs by each key:
 *   live:   B(300) A(200) C(100)
 *   peak:   C(900) A(500) B(100)
 *   allocs: A(50)  C(20)  B(10)            */
static const site_spec_t abc[] = {
    {1, 200, 500, 50, NULL}, /* A */
    {2, 300, 100, 10, NULL}, /* B */
    {3, 100, 900, 20, NULL}, /* C */
};

static void model_with_abc(ui_model_t *m)
{
    ui_model_init(m);
    prof_result_t r = make_result(abc, 3, NULL, 0, 0, 0, 0, 0);
    assert_int_equal(ui_model_update(m, &r, 1, 0), 0);
    assert_null(r.sites); /* the model took it */
}

static uint32_t order_at(const ui_model_t *m, size_t i)
{
    const prof_site_t *s = ui_model_site(m, i);
    assert_non_null(s);
    return s->stack_id;
}

/* ---- sorting ---------------------------------------------------------------------- */

static void test_ui_model_sort_by_live_bytes(void **state)
{
    ui_model_t m;
    model_with_abc(&m);
    assert_int_equal(m.sort, UI_SORT_LIVE); /* the default */
    assert_int_equal(order_at(&m, 0), 2);
    assert_int_equal(order_at(&m, 1), 1);
    assert_int_equal(order_at(&m, 2), 3);
    assert_null(ui_model_site(&m, 3));
    ui_model_free(&m);
}

static void test_ui_model_sort_by_peak_contribution(void **state)
{
    ui_model_t m;
    model_with_abc(&m);
    assert_int_equal(ui_model_apply(&m, UI_ACT_SORT_PEAK), 1);
    assert_int_equal(order_at(&m, 0), 3);
    assert_int_equal(order_at(&m, 1), 1);
    assert_int_equal(order_at(&m, 2), 2);
    assert_non_null(strstr(m.message, "peak contribution"));
    ui_model_free(&m);
}

static void test_ui_model_sort_by_allocation_count(void **state)
{
    ui_model_t m;
    model_with_abc(&m);
    ui_model_apply(&m, UI_ACT_SORT_COUNT);
    assert_int_equal(order_at(&m, 0), 1);
    assert_int_equal(order_at(&m, 1), 3);
    assert_int_equal(order_at(&m, 2), 2);
    /* 's' cycles: count -> live -> peak. */
    ui_model_apply(&m, UI_ACT_SORT_NEXT);
    assert_int_equal(m.sort, UI_SORT_LIVE);
    ui_model_apply(&m, UI_ACT_SORT_NEXT);
    assert_int_equal(m.sort, UI_SORT_PEAK);
    ui_model_free(&m);
}

static void test_ui_model_sort_ties_by_stack_id(void **state)
{
    static const site_spec_t tie[] = {{9, 10, 0, 1, NULL}, {4, 10, 0, 1, NULL}, {7, 10, 0, 1, NULL}};
    ui_model_t m;
    ui_model_init(&m);
    prof_result_t r = make_result(tie, 3, NULL, 0, 0, 0, 0, 0);
    ui_model_update(&m, &r, 1, 0);
    assert_int_equal(order_at(&m, 0), 4);
    assert_int_equal(order_at(&m, 1), 7);
    assert_int_equal(order_at(&m, 2), 9);
    ui_model_free(&m);
}

/* ---- selection ---------------------------------------------------------------------- */

static void test_ui_model_selection_moves_and_clamps(void **state)
{
    ui_model_t m;
    model_with_abc(&m);
    ui_model_set_list_rows(&m, 2, 1);
    assert_int_equal(m.site_sel, 0);
    ui_model_apply(&m, UI_ACT_UP); /* already at the top */
    assert_int_equal(m.site_sel, 0);
    ui_model_apply(&m, UI_ACT_DOWN);
    ui_model_apply(&m, UI_ACT_DOWN);
    assert_int_equal(m.site_sel, 2);
    assert_int_equal(m.site_top, 1); /* scrolled to keep it visible */
    ui_model_apply(&m, UI_ACT_DOWN); /* past the end: stays */
    assert_int_equal(m.site_sel, 2);
    ui_model_apply(&m, UI_ACT_HOME);
    assert_int_equal(m.site_sel, 0);
    assert_int_equal(m.site_top, 0);
    ui_model_apply(&m, UI_ACT_PAGE_DOWN);
    assert_int_equal(m.site_sel, 2);
    ui_model_apply(&m, UI_ACT_PAGE_UP);
    assert_int_equal(m.site_sel, 0);
    ui_model_apply(&m, UI_ACT_END);
    assert_int_equal(m.site_sel, 2);
    assert_int_equal(ui_model_selected_site(&m)->stack_id, 3);
    ui_model_free(&m);
}

static void test_ui_model_selection_follows_site_across_snapshots(void **state)
{
    ui_model_t m;
    model_with_abc(&m);
    ui_model_set_list_rows(&m, 10, 1);
    ui_model_apply(&m, UI_ACT_DOWN); /* A, at row 1 */
    assert_int_equal(ui_model_selected_site(&m)->stack_id, 1);
    /* A grows to the top: the selection goes with it. */
    static const site_spec_t grown[] = {{1, 999, 500, 50, NULL}, {2, 300, 100, 10, NULL},
                                        {3, 100, 900, 20, NULL}};
    prof_result_t r = make_result(grown, 3, NULL, 0, 0, 0, 0, 0);
    ui_model_update(&m, &r, 2, 0);
    assert_int_equal(m.site_sel, 0);
    assert_int_equal(ui_model_selected_site(&m)->stack_id, 1);
    /* A disappears: the row stays, clamped to the shorter list. */
    ui_model_apply(&m, UI_ACT_END);
    static const site_spec_t fewer[] = {{2, 300, 100, 10, NULL}};
    r = make_result(fewer, 1, NULL, 0, 0, 0, 0, 0);
    ui_model_update(&m, &r, 3, 0);
    assert_int_equal(m.site_sel, 0);
    assert_int_equal(ui_model_selected_site(&m)->stack_id, 2);
    ui_model_free(&m);
}

static void test_ui_model_selection_on_empty_list(void **state)
{
    ui_model_t m;
    ui_model_init(&m);
    assert_null(ui_model_selected_site(&m));
    ui_model_apply(&m, UI_ACT_DOWN);
    ui_model_apply(&m, UI_ACT_END);
    assert_int_equal(m.site_sel, 0);
    assert_int_equal(ui_model_apply(&m, UI_ACT_SELECT), 0); /* no stack to open */
    assert_int_equal(m.stack_view, 0);
    ui_model_free(&m);
}

/* Nothing was selected (an empty table): the first snapshot with sites
 * selects the top row. Stack 0 is a real site (the unsampled small
 * allocations), so "no selection" must not follow it down the table. */
static void test_ui_model_selection_starts_at_top_after_empty_list(void **state)
{
    ui_model_t m;
    ui_model_init(&m);
    ui_model_set_list_rows(&m, 2, 1);
    prof_result_t r = make_result(NULL, 0, NULL, 0, 0, 0, 0, 0);
    ui_model_update(&m, &r, 1, 0);
    static const site_spec_t later[] = {{5, 900, 900, 1, NULL}, {6, 500, 500, 1, NULL},
                                        {7, 300, 300, 1, NULL}, {0, 10, 20, 9, NULL}};
    r = make_result(later, 4, NULL, 0, 0, 0, 0, 0);
    ui_model_update(&m, &r, 2, 0);
    assert_int_equal(m.site_sel, 0);
    assert_int_equal(m.site_top, 0);
    assert_int_equal(ui_model_selected_site(&m)->stack_id, 5);
    /* Selected on purpose, stack 0 is followed like any other. */
    ui_model_apply(&m, UI_ACT_END);
    assert_int_equal(ui_model_selected_site(&m)->stack_id, 0);
    static const site_spec_t grown[] = {{5, 900, 900, 1, NULL}, {0, 950, 950, 9, NULL}};
    r = make_result(grown, 2, NULL, 0, 0, 0, 0, 0);
    ui_model_update(&m, &r, 3, 0);
    assert_int_equal(m.site_sel, 0);
    assert_int_equal(ui_model_selected_site(&m)->stack_id, 0);
    ui_model_free(&m);
}

static void test_ui_model_focus_moves_thread_selection(void **state)
{
    ui_model_t m;
    model_with_abc(&m);
    prof_result_t r = make_result(abc, 3, NULL, 0, 0, 0, 0, 0);
    r.threads = calloc(2, sizeof *r.threads);
    r.thread_count = 2;
    r.threads[0].tid = 10;
    r.threads[1].tid = 11;
    ui_model_update(&m, &r, 2, 0);
    ui_model_apply(&m, UI_ACT_FOCUS_NEXT);
    assert_int_equal(m.focus, UI_PANE_THREADS);
    ui_model_apply(&m, UI_ACT_DOWN);
    ui_model_apply(&m, UI_ACT_DOWN);
    assert_int_equal(m.thread_sel, 1);
    assert_int_equal(m.site_sel, 0);
    ui_model_apply(&m, UI_ACT_FOCUS_NEXT);
    assert_int_equal(m.focus, UI_PANE_SITES);
    ui_model_free(&m);
}

static void test_ui_model_stack_view_opens_and_closes(void **state)
{
    ui_model_t m;
    model_with_abc(&m);
    assert_int_equal(ui_model_apply(&m, UI_ACT_SELECT), 1);
    assert_int_equal(m.stack_view, 1);
    ui_model_apply(&m, UI_ACT_BACK);
    assert_int_equal(m.stack_view, 0);
    ui_model_apply(&m, UI_ACT_SELECT);
    ui_model_apply(&m, UI_ACT_SELECT);
    assert_int_equal(m.stack_view, 0);
    ui_model_free(&m);
}

/* ---- pause, help, resize, quit ------------------------------------------------------ */

static void test_ui_model_pause_ignores_snapshots(void **state)
{
    ui_model_t m;
    model_with_abc(&m);
    ui_model_apply(&m, UI_ACT_PAUSE);
    assert_int_equal(m.paused, 1);
    static const site_spec_t one[] = {{5, 1, 1, 1, NULL}};
    prof_result_t r = make_result(one, 1, NULL, 0, 0, 0, 0, 0);
    assert_int_equal(ui_model_update(&m, &r, 2, 0), 0);
    assert_null(r.sites); /* released, not shown */
    assert_int_equal(m.cur->site_count, 3);
    /* The final snapshot is forced through. */
    r = make_result(one, 1, NULL, 0, 0, 0, 0, 0);
    ui_model_update(&m, &r, 3, 1);
    assert_int_equal(m.cur->site_count, 1);
    ui_model_apply(&m, UI_ACT_PAUSE);
    assert_int_equal(m.paused, 0);
    ui_model_free(&m);
}

static void test_ui_model_help_toggles(void **state)
{
    ui_model_t m;
    ui_model_init(&m);
    ui_model_apply(&m, UI_ACT_HELP);
    assert_int_equal(m.help, 1);
    ui_model_apply(&m, UI_ACT_HELP);
    assert_int_equal(m.help, 0);
    ui_model_apply(&m, UI_ACT_HELP);
    ui_model_apply(&m, UI_ACT_BACK);
    assert_int_equal(m.help, 0);
    assert_int_equal(ui_model_apply(&m, UI_ACT_BACK), 0); /* nothing to close */
    ui_model_apply(&m, UI_ACT_QUIT);
    assert_int_equal(m.quit, 1);
    ui_model_free(&m);
}

static void test_ui_model_resize_clamps_to_minimum(void **state)
{
    ui_model_t m;
    ui_model_init(&m);
    ui_model_resize(&m, 10, 40);
    assert_int_equal(m.rows, UI_MIN_ROWS);
    assert_int_equal(m.cols, UI_MIN_COLS);
    ui_model_resize(&m, 50, 200);
    assert_int_equal(m.rows, 50);
    assert_int_equal(m.cols, 200);
    ui_model_free(&m);
}

static void test_ui_model_resize_keeps_selection_visible(void **state)
{
    static site_spec_t many[20];
    for (uint32_t i = 0; i < 20; i++)
        many[i] = (site_spec_t){i + 1, 100 - i, 0, 1, NULL};
    ui_model_t m;
    ui_model_init(&m);
    prof_result_t r = make_result(many, 20, NULL, 0, 0, 0, 0, 0);
    ui_model_update(&m, &r, 1, 0);
    ui_model_set_list_rows(&m, 10, 1);
    ui_model_apply(&m, UI_ACT_END);
    assert_int_equal(m.site_sel, 19);
    assert_int_equal(m.site_top, 10);
    ui_model_set_list_rows(&m, 4, 1); /* the window shrank */
    assert_int_equal(m.site_top, 16);
    ui_model_set_list_rows(&m, 30, 1); /* grew past the list */
    assert_int_equal(m.site_top, 0);
    assert_int_equal(m.site_sel, 19);
    ui_model_free(&m);
}

/* ---- rates ------------------------------------------------------------------------ */

static void test_ui_model_rates_between_snapshots(void **state)
{
    ui_model_t m;
    ui_model_init(&m);
    prof_result_t r = make_result(NULL, 0, NULL, 0, 0, 0, 0, 100);
    r.threads = calloc(1, sizeof *r.threads);
    r.thread_count = 1;
    r.threads[0] = (prof_thread_t){.tid = 7, .allocations = 10};
    ui_model_update(&m, &r, 1000000000ull, 0);
    assert_true(m.events_per_s == 0); /* no previous snapshot */
    r = make_result(NULL, 0, NULL, 0, 0, 0, 0, 600);
    r.threads = calloc(2, sizeof *r.threads);
    r.thread_count = 2;
    r.threads[0] = (prof_thread_t){.tid = 8, .allocations = 5};
    r.threads[1] = (prof_thread_t){.tid = 7, .allocations = 60};
    ui_model_update(&m, &r, 1500000000ull, 0); /* half a second later */
    assert_true(m.events_per_s > 999.9 && m.events_per_s < 1000.1);
    assert_true(ui_model_thread_rate(&m, 0) == 0);   /* new thread */
    assert_true(ui_model_thread_rate(&m, 1) > 99.9 && ui_model_thread_rate(&m, 1) < 100.1);
    assert_true(ui_model_thread_rate(&m, 5) == 0);
    ui_model_free(&m);
}

/* ---- categories ---------------------------------------------------------------------- */

/* Attribution's figures for 'r': weights 500 at the peak / 300 at the end,
 * activations 400 / 0, other 100 / 50; the rest 0. The sites say otherwise
 * on purpose: the composition must come from the categories. */
static void set_categories(prof_result_t *r)
{
    static const char *names[MLMEM_CATEGORY_COUNT] = {"other", "weights", "gradients",
                                                      "optimizer_state", "activations", "data",
                                                      "temporaries"};
    r->category_count = MLMEM_CATEGORY_COUNT;
    for (int i = 0; i < MLMEM_CATEGORY_COUNT; i++)
        r->categories[i].name = names[i];
    r->categories[MLMEM_CAT_WEIGHTS].bytes_at_peak = 500;
    r->categories[MLMEM_CAT_WEIGHTS].bytes_at_end = 300;
    r->categories[MLMEM_CAT_WEIGHTS].confidence = 1.0;
    r->categories[MLMEM_CAT_WEIGHTS].evidence = strdup("annotations (region)");
    r->categories[MLMEM_CAT_ACTIVATIONS].bytes_at_peak = 400;
    r->categories[MLMEM_CAT_ACTIVATIONS].confidence = 0.5;
    r->categories[MLMEM_CAT_ACTIVATIONS].evidence = strdup("behaviour: lives a step");
    r->categories[MLMEM_CAT_OTHER].bytes_at_peak = 100;
    r->categories[MLMEM_CAT_OTHER].bytes_at_end = 50;
    r->summary.peak_bytes = 1000;
    r->summary.live_bytes = 350;
}

static void test_ui_model_categories_without_attribution(void **state)
{
    static const site_spec_t cat[] = {{1, 100, 10, 1, NULL}};
    ui_model_t m;
    model_with_abc(&m);
    assert_int_equal(ui_model_has_attribution(&m), 0);
    ui_category_t c[4];
    assert_int_equal(ui_model_categories(&m, 0, c, 4), 0);
    assert_null(ui_model_focus_category(&m));
    ui_model_free(&m);
    /* Attribution ran but no site has a category: still attribution. */
    ui_model_init(&m);
    prof_result_t r = make_result(cat, 1, NULL, 0, 0, 0, 0, 0);
    set_categories(&r);
    ui_model_update(&m, &r, 1, 0);
    assert_int_equal(ui_model_has_attribution(&m), 1);
    ui_model_free(&m);
}

static void test_ui_model_categories_from_the_result(void **state)
{
    static const site_spec_t cat[] = {{1, 100, 10, 1, "weights"}, {2, 50, 5, 1, "data"}};
    ui_model_t m;
    ui_model_init(&m);
    prof_result_t r = make_result(cat, 2, NULL, 0, 0, 0, 0, 0);
    set_categories(&r);
    ui_model_update(&m, &r, 1, 0);
    ui_category_t c[8];
    /* Now: bytes_at_end, categories without bytes left out. */
    assert_int_equal(ui_model_categories(&m, 0, c, 8), 2);
    assert_string_equal(c[0].name, "weights");
    assert_int_equal(c[0].bytes, 300);
    assert_int_equal(c[0].index, MLMEM_CAT_WEIGHTS);
    assert_string_equal(c[1].name, "other");
    assert_int_equal(c[1].bytes, 50);
    assert_int_equal(c[1].index, MLMEM_CAT_OTHER);
    /* At the peak: bytes_at_peak, exact, largest first. */
    assert_int_equal(ui_model_categories(&m, 1, c, 8), 3);
    assert_string_equal(c[0].name, "weights");
    assert_int_equal(c[0].bytes, 500);
    assert_string_equal(c[1].name, "activations");
    assert_int_equal(c[1].bytes, 400);
    assert_int_equal(c[2].bytes, 100);
    /* Fewer slots than categories: the last one takes the rest. */
    assert_int_equal(ui_model_categories(&m, 1, c, 2), 2);
    assert_int_equal(c[0].bytes + c[1].bytes, 1000);
    ui_model_free(&m);
}

static void test_ui_model_categories_now_from_the_latest_point(void **state)
{
    /* No bytes at the end in the categories while bytes are live: the
     * latest timeline point's split. */
    static const uint64_t pts[][2] = {{0, 10}, {100, 70}};
    ui_model_t m;
    ui_model_init(&m);
    prof_result_t r = make_result(NULL, 0, pts, 2, 1000, 50, 100, 2);
    set_categories(&r);
    r.categories[MLMEM_CAT_WEIGHTS].bytes_at_end = 0;
    r.categories[MLMEM_CAT_OTHER].bytes_at_end = 0;
    r.timeline[1].category_bytes[MLMEM_CAT_DATA] = 60;
    r.timeline[1].category_bytes[MLMEM_CAT_TEMPORARIES] = 10;
    ui_model_update(&m, &r, 1, 0);
    ui_category_t c[8];
    assert_int_equal(ui_model_categories(&m, 0, c, 8), 2);
    assert_string_equal(c[0].name, "data");
    assert_int_equal(c[0].bytes, 60);
    assert_string_equal(c[1].name, "temporaries");
    assert_int_equal(c[1].bytes, 10);
    ui_model_free(&m);
}

static void test_ui_model_focus_category_follows_the_selection(void **state)
{
    static const site_spec_t cat[] = {{1, 100, 10, 1, "activations"}, {2, 50, 5, 1, NULL}};
    ui_model_t m;
    ui_model_init(&m);
    prof_result_t r = make_result(cat, 2, NULL, 0, 0, 0, 0, 0);
    set_categories(&r);
    ui_model_update(&m, &r, 1, 0);
    /* The selected site (the first by live bytes) is an activation. */
    const prof_category_t *f = ui_model_focus_category(&m);
    assert_non_null(f);
    assert_string_equal(f->name, "activations");
    assert_string_equal(f->evidence, "behaviour: lives a step");
    /* A site without a category: the largest at the peak. */
    ui_model_apply(&m, UI_ACT_DOWN);
    f = ui_model_focus_category(&m);
    assert_non_null(f);
    assert_string_equal(f->name, "weights");
    assert_true(f->confidence == 1.0);
    /* Threads have the focus: the largest too. */
    ui_model_apply(&m, UI_ACT_UP);
    ui_model_apply(&m, UI_ACT_FOCUS_NEXT);
    assert_string_equal(ui_model_focus_category(&m)->name, "weights");
    ui_model_free(&m);
}

/* ---- timeline ---------------------------------------------------------------------- */

static void test_ui_model_timeline_scales_and_marks_peak(void **state)
{
    /* 0..1000 ns into 10 columns of 100 ns; the peak (800) at t=450. */
    static const uint64_t pts[][2] = {{0, 100}, {120, 200}, {450, 800}, {700, 300}, {999, 50}};
    ui_model_t m;
    ui_model_init(&m);
    prof_result_t r = make_result(NULL, 0, pts, 5, 800, 450, 1000, 5);
    ui_model_update(&m, &r, 1, 0);
    uint64_t cols[10];
    long peak_col;
    uint64_t max;
    assert_int_equal(ui_model_timeline(&m, 10, cols, &peak_col, &max, NULL, NULL), 10);
    assert_int_equal(max, 800);
    assert_int_equal(peak_col, 4);
    assert_int_equal(cols[0], 100);
    assert_int_equal(cols[1], 200);
    assert_int_equal(cols[2], 200); /* empty: holds the value before */
    assert_int_equal(cols[4], 800);
    assert_int_equal(cols[7], 300);
    assert_int_equal(cols[9], 50);
    assert_int_equal(ui_model_rss(&m), 1004);
    ui_model_free(&m);
}

static void test_ui_model_timeline_fixed_span_fills_part(void **state)
{
    static const uint64_t pts[][2] = {{0, 10}, {250, 40}};
    ui_model_t m;
    ui_model_init(&m);
    prof_result_t r = make_result(NULL, 0, pts, 2, 40, 250, 250, 2);
    ui_model_update(&m, &r, 1, 0);
    m.span_ns = 1000; /* a replay shows the whole run's span */
    uint64_t cols[4];
    long peak_col;
    uint64_t max;
    assert_int_equal(ui_model_timeline(&m, 4, cols, &peak_col, &max, NULL, NULL), 2);
    assert_int_equal(peak_col, 1);
    assert_int_equal(max, 40);
    ui_model_free(&m);
}

static void test_ui_model_timeline_empty(void **state)
{
    ui_model_t m;
    ui_model_init(&m);
    uint64_t cols[4];
    long peak_col;
    uint64_t max;
    assert_int_equal(ui_model_timeline(&m, 4, cols, &peak_col, &max, NULL, NULL), 0);
    assert_int_equal(peak_col, -1);
    assert_int_equal(max, 0);
    ui_model_free(&m);
}

static void test_ui_model_timeline_window_scrolls(void **state)
{
    /* 30 s of run; the peak (900) at 5 s; the last 10 s hold 100..300. */
    static const uint64_t pts[][2] = {{0, 50},
                                      {5000000000ull, 900},
                                      {19000000000ull, 100},
                                      {25000000000ull, 300},
                                      {29500000000ull, 200}};
    ui_model_t m;
    ui_model_init(&m);
    prof_result_t r = make_result(NULL, 0, pts, 5, 900, 5000000000ull, 30000000000ull, 5);
    ui_model_update(&m, &r, 1, 0);
    ui_model_apply(&m, UI_ACT_WINDOW);
    assert_int_equal(m.window_ns, 10000000000ull);
    assert_non_null(strstr(m.message, "last 10 s"));
    uint64_t cols[10], t0, t1;
    long peak_col;
    uint64_t max;
    assert_int_equal(ui_model_timeline(&m, 10, cols, &peak_col, &max, &t0, &t1), 10);
    assert_int_equal(t0, 20000000000ull);
    assert_int_equal(t1, 30000000000ull);
    assert_int_equal(peak_col, -1);  /* the peak scrolled out */
    assert_int_equal(max, 300);      /* rescaled to what is in view */
    assert_int_equal(cols[0], 100);  /* the value when the window opens */
    assert_int_equal(cols[5], 300);
    assert_int_equal(cols[9], 200);
    /* w cycles 60 s, 10 min, then back to the whole run with the peak. */
    ui_model_apply(&m, UI_ACT_WINDOW);
    ui_model_apply(&m, UI_ACT_WINDOW);
    ui_model_apply(&m, UI_ACT_WINDOW);
    assert_int_equal(m.window_ns, 0);
    ui_model_timeline(&m, 10, cols, &peak_col, &max, &t0, &t1);
    assert_int_equal(peak_col, 1);
    assert_int_equal(max, 900);
    ui_model_free(&m);
}

static void test_ui_model_timeline_stacks_by_category(void **state)
{
    /* 10 columns of 100 ns; column 1 has two points: the larger one's split
     * is the column's; the empty columns 2-3 keep it. */
    static const uint64_t pts[][2] = {{0, 100}, {110, 300}, {150, 200}, {450, 800}};
    ui_model_t m;
    ui_model_init(&m);
    prof_result_t r = make_result(NULL, 0, pts, 4, 800, 450, 1000, 4);
    set_categories(&r);
    r.summary.peak_bytes = 800;
    r.timeline[0].category_bytes[MLMEM_CAT_WEIGHTS] = 100;
    r.timeline[1].category_bytes[MLMEM_CAT_WEIGHTS] = 100;
    r.timeline[1].category_bytes[MLMEM_CAT_ACTIVATIONS] = 200;
    r.timeline[2].category_bytes[MLMEM_CAT_WEIGHTS] = 200;
    r.timeline[3].category_bytes[MLMEM_CAT_WEIGHTS] = 500;
    r.timeline[3].category_bytes[MLMEM_CAT_ACTIVATIONS] = 200;
    r.timeline[3].category_bytes[MLMEM_CAT_OTHER] = 100;
    ui_model_update(&m, &r, 1, 0);
    uint64_t cols[10], cats[10][MLMEM_CATEGORY_COUNT];
    long peak_col;
    uint64_t max;
    assert_int_equal(ui_model_timeline_stacked(&m, 10, cols, cats, &peak_col, &max, NULL, NULL),
                     5);
    assert_int_equal(peak_col, 4);
    assert_int_equal(cols[1], 300);
    assert_int_equal(cats[1][MLMEM_CAT_WEIGHTS], 100);
    assert_int_equal(cats[1][MLMEM_CAT_ACTIVATIONS], 200);
    assert_int_equal(cats[3][MLMEM_CAT_ACTIVATIONS], 200); /* carried forward */
    assert_int_equal(cats[4][MLMEM_CAT_WEIGHTS], 500);
    assert_int_equal(cats[4][MLMEM_CAT_OTHER], 100);
    for (int c = 0; c < 5; c++) { /* every column's split adds up to it */
        uint64_t sum = 0;
        for (int k = 0; k < MLMEM_CATEGORY_COUNT; k++)
            sum += cats[c][k];
        assert_int_equal(sum, cols[c]);
    }
    ui_model_free(&m);
}

static void test_ui_model_step_ticks(void **state)
{
    ui_model_t m;
    ui_model_init(&m);
    prof_result_t r = make_result(NULL, 0, NULL, 0, 0, 0, 1000, 1);
    r.steps.source = "annotations";
    r.steps.count = 5;
    r.steps.first_step_ns = 100;
    r.steps.period_ns = 200;
    r.steps.last_step_ns = 905; /* exact: not first + 4 periods */
    ui_model_update(&m, &r, 1, 0);
    assert_int_equal(ui_model_steps_known(&m), 1);
    assert_int_equal(ui_model_steps_annotated(&m), 1);
    uint8_t t[10];
    assert_int_equal(ui_model_step_ticks(&m, 10, 0, 1000, t), 5);
    static const uint8_t want[10] = {0, 1, 0, 1, 0, 1, 0, 1, 0, 1};
    assert_memory_equal(t, want, 10);
    /* A window over the end: only the starts inside it. */
    assert_int_equal(ui_model_step_ticks(&m, 10, 600, 1000, t), 2);
    assert_int_equal(t[2], 1); /* 700 */
    assert_int_equal(t[7], 1); /* 905, the last */
    /* Detected steps are ticked too, but are not "annotated". */
    m.own.steps.source = "detected";
    assert_int_equal(ui_model_steps_annotated(&m), 0);
    assert_int_equal(ui_model_step_ticks(&m, 10, 0, 1000, t), 5);
    /* No steps: nothing ticked, nothing invented. */
    m.own.steps.source = "none";
    m.own.steps.count = 0;
    assert_int_equal(ui_model_steps_known(&m), 0);
    assert_int_equal(ui_model_step_ticks(&m, 10, 0, 1000, t), 0);
    static const uint8_t none[10] = {0};
    assert_memory_equal(t, none, 10);
    ui_model_free(&m);
}

/* The step now: annotated, the program's own figures; detected, which
 * span holds the snapshot's end and the inferred phase there. */
static void test_ui_model_step_now(void **state)
{
    ui_model_t m;
    ui_model_init(&m);
    prof_result_t r = make_result(NULL, 0, NULL, 0, 0, 0, 1000, 1);
    r.steps.source = "annotations";
    r.steps.count = 7;
    r.steps.current_step = 41; /* the program's numbering */
    r.steps.current_phase = 3; /* backward */
    ui_model_update(&m, &r, 1, 0);
    ui_step_now_t now = ui_model_step_now(&m);
    assert_true(now.known && !now.detected);
    assert_int_equal(now.number, 41);
    assert_string_equal(now.phase, "backward");
    /* Detected: 5 steps from 100, every 200 ns, the last at 905 (exact);
     * forward the first 40% of a step, backward to 70%. */
    m.own.steps = (prof_steps_t){.source = "detected", .count = 5, .first_step_ns = 100,
                                 .period_ns = 200, .last_step_ns = 905,
                                 .phase_source = "inferred", .forward_end = 0.4,
                                 .backward_end = 0.7};
    static const struct {
        uint64_t t, number;
        const char *phase;
    } cases[] = {
        {99, 0, NULL},            /* before the first step */
        {100, 1, "forward"},      /* its start */
        {379, 2, "forward"},      /* 300 + 79: 39.5% into step 2 */
        {381, 2, "backward"},     /* 40.5% */
        {450, 2, NULL},           /* 75%: after half-way down */
        {904, 4, NULL},           /* 700 + 204: past the mean's 5th start, before
                                     the real one: still step 4, 102% in */
        {905, 5, "forward"},      /* the last step, from its exact start */
        {1044, 5, "backward"},    /* 69.5% into it */
        {1104, 5, NULL},
        {1105, 0, NULL},          /* a period after the last start: done */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        m.own.summary.duration_ns = cases[i].t;
        now = ui_model_step_now(&m);
        assert_int_equal(now.known, cases[i].number != 0);
        if (!now.known)
            continue;
        assert_true(now.detected);
        assert_int_equal(now.number, cases[i].number);
        assert_int_equal(now.of, 5);
        if (cases[i].phase)
            assert_string_equal(now.phase, cases[i].phase);
        else
            assert_null(now.phase);
    }
    /* No phases inferred: the step alone. */
    m.own.steps.phase_source = NULL;
    m.own.summary.duration_ns = 380;
    now = ui_model_step_now(&m);
    assert_int_equal(now.number, 2);
    assert_null(now.phase);
    /* No steps: nothing. */
    m.own.steps.count = 0;
    assert_int_equal(ui_model_step_now(&m).known, 0);
    ui_model_free(&m);
}

/* < and >: the run's processes by pid, the exec'd image's pid once; the
 * next snapshot is the driver's, of m.proc_pid. */
static void test_ui_model_switch_process(void **state)
{
    ui_model_t m;
    ui_model_init(&m);
    prof_result_t r = make_result(NULL, 0, NULL, 0, 0, 0, 1000, 1);
    r.process.pid = 500;
    r.child_count = 3;
    r.children = calloc(3, sizeof *r.children);
    r.children[0].pid = 520; /* forked, then exec'd: two images, one pid */
    r.children[1].pid = 510;
    r.children[2].pid = 520;
    ui_model_update(&m, &r, 1, 0);
    int32_t pids[8];
    assert_int_equal(ui_model_processes(&m, pids, 8), 3);
    assert_int_equal(pids[0], 500);
    assert_int_equal(pids[1], 510);
    assert_int_equal(pids[2], 520);
    assert_int_equal(m.proc_pid, 0); /* the main one, until asked */
    ui_model_set_thread_filter(&m, 77);
    ui_model_apply(&m, UI_ACT_PROC_NEXT);
    assert_int_equal(m.proc_pid, 510);
    assert_int_equal(m.thread_filter, 0); /* tids are per process */
    assert_non_null(strstr(m.message, "process 510: 2 of 3"));
    /* The snapshot still shows 500 until the driver's next one: from 500,
     * < goes round to the highest pid. */
    ui_model_apply(&m, UI_ACT_PROC_PREV);
    assert_int_equal(m.proc_pid, 520);
    m.own.process.pid = 520; /* as the driver's snapshot of 520 would say: */
    m.own.children[2].pid = 500; /* the others are its children there */
    ui_model_apply(&m, UI_ACT_PROC_NEXT);
    assert_int_equal(m.proc_pid, 500);
    ui_model_free(&m);

    /* One process: nothing to switch to. */
    ui_model_init(&m);
    r = make_result(NULL, 0, NULL, 0, 0, 0, 1000, 1);
    r.process.pid = 600;
    ui_model_update(&m, &r, 1, 0);
    ui_model_apply(&m, UI_ACT_PROC_NEXT);
    assert_int_equal(m.proc_pid, 0);
    assert_non_null(strstr(m.message, "one process"));
    ui_model_free(&m);
}

/* ---- replay ------------------------------------------------------------------------ */

/* Five frames: live 100, 300, 900 (the peak), 400, 200 at t = 0..4 s. */
static prof_result_t *make_frames(void)
{
    static const uint64_t live[] = {100, 300, 900, 400, 200};
    prof_result_t *f = calloc(5, sizeof *f);
    uint64_t peak = 0;
    for (int i = 0; i < 5; i++) {
        if (live[i] > peak)
            peak = live[i];
        site_spec_t s = {1, live[i], peak, (uint64_t)i + 1, NULL};
        f[i] = make_result(&s, 1, NULL, 0, peak, 2000000000ull, (uint64_t)i * 1000000000ull,
                           (uint64_t)i * 10);
    }
    return f;
}

static void free_frames(prof_result_t *f)
{
    for (int i = 0; i < 5; i++)
        prof_result_free(&f[i]);
    free(f);
}

static void test_ui_model_replay_steps_and_clamps(void **state)
{
    prof_result_t *f = make_frames();
    ui_model_t m;
    ui_model_init(&m);
    assert_int_equal(ui_model_set_frames(&m, f, 5, NULL), 0);
    assert_int_equal(m.state, UI_RUN_REPLAY);
    assert_int_equal(m.frame, 0);
    assert_int_equal(m.span_ns, 4000000000ull);
    ui_model_apply(&m, UI_ACT_STEP_BACK); /* at the start: stays */
    assert_int_equal(m.frame, 0);
    ui_model_apply(&m, UI_ACT_STEP_FWD);
    ui_model_apply(&m, UI_ACT_STEP_FWD);
    assert_int_equal(m.frame, 2);
    assert_int_equal(m.cur->summary.duration_ns, 2000000000ull);
    assert_int_equal(m.elapsed_ns, 2000000000ull);
    assert_true(m.events_per_s > 9.9 && m.events_per_s < 10.1); /* 10 events in 1 s */
    ui_model_apply(&m, UI_ACT_JUMP_END);
    ui_model_apply(&m, UI_ACT_STEP_FWD); /* at the end: stays */
    assert_int_equal(m.frame, 4);
    ui_model_apply(&m, UI_ACT_JUMP_START);
    assert_int_equal(m.frame, 0);
    ui_model_free(&m);
    free_frames(f);
}

static void test_ui_model_replay_jump_to_peak(void **state)
{
    prof_result_t *f = make_frames();
    ui_model_t m;
    ui_model_init(&m);
    ui_model_set_frames(&m, f, 5, NULL);
    assert_int_equal(ui_model_peak_frame(&m), 2);
    assert_int_equal(ui_model_apply(&m, UI_ACT_JUMP_PEAK), 1);
    assert_int_equal(m.frame, 2);
    assert_int_equal(ui_model_selected_site(&m)->live_bytes, 900);
    ui_model_free(&m);
    free_frames(f);
}

static void test_ui_model_replay_plays_at_speed(void **state)
{
    prof_result_t *f = make_frames();
    ui_model_t m;
    ui_model_init(&m);
    ui_model_set_frames(&m, f, 5, NULL);
    assert_true(ui_model_speed(&m) == 1.0);
    assert_int_equal(ui_model_tick(&m, 1000000000ull), 0); /* not playing */
    ui_model_apply(&m, UI_ACT_PAUSE); /* play */
    assert_int_equal(m.playing, 1);
    assert_int_equal(ui_model_tick(&m, 500000000ull), 0); /* half a frame */
    assert_int_equal(m.frame, 0);
    assert_int_equal(ui_model_tick(&m, 600000000ull), 1);
    assert_int_equal(m.frame, 1);
    ui_model_apply(&m, UI_ACT_FASTER); /* 2x */
    assert_true(ui_model_speed(&m) == 2.0);
    ui_model_tick(&m, 1000000000ull);  /* 2 s of run */
    assert_int_equal(m.frame, 3);
    ui_model_tick(&m, 5000000000ull);  /* past the end: stops there */
    assert_int_equal(m.frame, 4);
    assert_int_equal(m.playing, 0);
    ui_model_apply(&m, UI_ACT_PAUSE); /* play again from the start */
    assert_int_equal(m.frame, 0);
    assert_int_equal(m.playing, 1);
    ui_model_apply(&m, UI_ACT_STEP_FWD); /* stepping pauses */
    assert_int_equal(m.playing, 0);
    for (int i = 0; i < 20; i++)
        ui_model_apply(&m, UI_ACT_SLOWER);
    assert_true(ui_model_speed(&m) == 0.1);
    for (int i = 0; i < 20; i++)
        ui_model_apply(&m, UI_ACT_FASTER);
    assert_true(ui_model_speed(&m) == 100.0);
    ui_model_free(&m);
    free_frames(f);
}

static void test_ui_model_replay_keys_do_nothing_live(void **state)
{
    ui_model_t m;
    model_with_abc(&m);
    assert_int_equal(ui_model_apply(&m, UI_ACT_STEP_FWD), 0);
    assert_int_equal(ui_model_apply(&m, UI_ACT_JUMP_PEAK), 0);
    assert_int_equal(ui_model_peak_frame(&m), 0);
    ui_model_free(&m);
}

static void test_ui_model_frames_from_symbol_source(void **state)
{
    /* A replay frame has no frames; the symbolized result has them. */
    site_spec_t s = {42, 1, 1, 1, NULL};
    prof_result_t frame = make_result(&s, 1, NULL, 0, 1, 0, 1, 1);
    prof_result_t sym = make_result(&s, 1, NULL, 0, 1, 0, 1, 1);
    sym.sites[0].frames = calloc(2, sizeof(prof_frame_t));
    sym.sites[0].frame_count = 2;
    sym.sites[0].frames[0].function = strdup("train_step");
    ui_model_t m;
    ui_model_init(&m);
    ui_model_set_frames(&m, &frame, 1, &sym);
    uint32_t n;
    const prof_frame_t *fr = ui_model_site_frames(&m, ui_model_selected_site(&m), &n);
    assert_int_equal(n, 2);
    assert_string_equal(fr[0].function, "train_step");
    ui_model_free(&m);
    prof_result_free(&frame);
    prof_result_free(&sym);
}

/* ---- thread filter ("switch threads") ------------------------------------------ */

/* abc with threads listed out of tid order: 30 "gamma", 10 "alpha", 20 "beta". */
static void model_with_threads(ui_model_t *m)
{
    ui_model_init(m);
    prof_result_t r = make_result(abc, 3, NULL, 0, 0, 0, 0, 0);
    r.threads = calloc(3, sizeof *r.threads);
    r.thread_count = 3;
    r.threads[0] = (prof_thread_t){.tid = 30, .name = "gamma", .allocations = 90};
    r.threads[1] = (prof_thread_t){.tid = 10, .name = "alpha", .allocations = 50};
    r.threads[2] = (prof_thread_t){.tid = 20, .name = "beta", .allocations = 10};
    assert_int_equal(ui_model_update(m, &r, 1, 0), 0);
}

/* What thread 10 holds: site C 80 B in 1 block, site A 50 B in 5, and a
 * site the snapshot does not list (77) 10 B in 9; one entry of thread 20
 * mixed in (ignored). */
static prof_thread_site_t *alpha_sites(size_t *n)
{
    static const prof_thread_site_t v[] = {
        {10, 3, 80, 1, 0, 5}, {10, 1, 50, 5, 0, 7}, {10, 77, 10, 9, 10, 9}, {20, 2, 999, 1, 0, 1},
    };
    prof_thread_site_t *p = malloc(sizeof v);
    memcpy(p, v, sizeof v);
    *n = 4;
    return p;
}

static void test_ui_model_thread_filter_cycles_by_tid(void **state)
{
    ui_model_t m;
    model_with_threads(&m);
    assert_int_equal(m.thread_filter, 0);
    assert_int_equal(ui_model_thread_sites_wanted(&m), 0); /* no filter: no work */
    assert_int_equal(ui_model_apply(&m, UI_ACT_THREAD_NEXT), 1);
    assert_int_equal(m.thread_filter, 10); /* the lowest tid, not the first listed */
    assert_string_equal(m.thread_filter_name, "alpha");
    assert_int_equal(ui_model_filter_thread(&m)->tid, 10);
    assert_int_equal(m.thread_sel, 1); /* the threads pane selects it too */
    assert_non_null(strstr(m.message, "thread 10 alpha"));
    /* Live: the figures are asked for, and none are shown until given. */
    assert_int_equal(ui_model_thread_sites_wanted(&m), 10);
    assert_null(ui_model_site(&m, 0));
    ui_model_apply(&m, UI_ACT_THREAD_NEXT);
    assert_int_equal(m.thread_filter, 20);
    assert_string_equal(m.thread_filter_name, "beta");
    ui_model_apply(&m, UI_ACT_THREAD_NEXT);
    assert_int_equal(m.thread_filter, 30);
    ui_model_apply(&m, UI_ACT_THREAD_NEXT); /* after the last: all threads */
    assert_int_equal(m.thread_filter, 0);
    assert_int_equal(ui_model_thread_sites_wanted(&m), 0);
    assert_int_equal(order_at(&m, 0), 2); /* the whole table again */
    assert_null(ui_model_site_thread(&m, 0));
    assert_int_equal(ui_model_site_known(&m, 0), 1);
    ui_model_apply(&m, UI_ACT_THREAD_PREV); /* backwards from all: the highest */
    assert_int_equal(m.thread_filter, 30);
    assert_string_equal(m.thread_filter_name, "gamma");
    ui_model_apply(&m, UI_ACT_THREAD_PREV);
    assert_int_equal(m.thread_filter, 20);
    ui_model_apply(&m, UI_ACT_THREAD_PREV);
    ui_model_apply(&m, UI_ACT_THREAD_PREV);
    assert_int_equal(m.thread_filter, 0);
    ui_model_free(&m);
}

static void test_ui_model_thread_filter_table(void **state)
{
    ui_model_t m;
    size_t n;
    model_with_threads(&m);
    ui_model_set_list_rows(&m, 10, 3);
    ui_model_set_thread_filter(&m, 10);
    prof_thread_site_t *ts = alpha_sites(&n);
    assert_int_equal(ui_model_set_thread_sites(&m, 10, ts, n), 0);
    assert_int_equal(ui_model_thread_sites_wanted(&m), 0); /* up to date */
    /* By the thread's live bytes: C 80, A 50, #77 10; thread 20's entry is
     * not in the table. */
    assert_int_equal(m.order_len, 3);
    assert_int_equal(order_at(&m, 0), 3);
    assert_int_equal(order_at(&m, 1), 1);
    assert_int_equal(order_at(&m, 2), 77);
    assert_null(ui_model_site(&m, 3));
    assert_int_equal(ui_model_site_thread(&m, 0)->live_bytes, 80);
    assert_int_equal(ui_model_site_thread(&m, 1)->live_allocations, 5);
    /* Rows keep the snapshot's site figures; #77 has only its stack id. */
    assert_int_equal(ui_model_site(&m, 0)->live_bytes_at_peak, 900);
    assert_int_equal(ui_model_site_known(&m, 0), 1);
    assert_int_equal(ui_model_site_known(&m, 2), 0);
    assert_int_equal(ui_model_site(&m, 2)->live_bytes, 0);
    assert_string_equal(ui_model_sort_label(&m), "thread live bytes");
    /* By the thread's live blocks, then by the site's peak contribution. */
    ui_model_apply(&m, UI_ACT_SORT_COUNT);
    assert_string_equal(ui_model_sort_label(&m), "thread live blocks");
    assert_non_null(strstr(m.message, "thread live blocks"));
    assert_int_equal(order_at(&m, 0), 77);
    assert_int_equal(order_at(&m, 1), 1);
    assert_int_equal(order_at(&m, 2), 3);
    ui_model_apply(&m, UI_ACT_SORT_PEAK);
    assert_int_equal(order_at(&m, 0), 3);  /* C 900 */
    assert_int_equal(order_at(&m, 1), 1);  /* A 500 */
    assert_int_equal(order_at(&m, 2), 77); /* unknown: last */
    /* The selection follows its site; Enter opens its stack. */
    ui_model_apply(&m, UI_ACT_DOWN);
    assert_int_equal(ui_model_selected_site(&m)->stack_id, 1);
    ui_model_apply(&m, UI_ACT_SORT_LIVE);
    ui_model_apply(&m, UI_ACT_DOWN);
    assert_int_equal(ui_model_selected_site(&m)->stack_id, 1);
    /* A new snapshot: the figures are asked for again and the old ones
     * stay on screen meanwhile, joined to the new sites. */
    static const site_spec_t next[] = {{1, 1, 700, 50, NULL}, {3, 100, 900, 20, NULL}};
    prof_result_t r = make_result(next, 2, NULL, 0, 0, 0, 0, 0);
    r.threads = calloc(1, sizeof *r.threads);
    r.thread_count = 1;
    r.threads[0] = (prof_thread_t){.tid = 10, .name = "alpha", .allocations = 60};
    ui_model_update(&m, &r, 2, 0);
    assert_int_equal(ui_model_thread_sites_wanted(&m), 10);
    assert_int_equal(m.order_len, 3);
    assert_int_equal(ui_model_selected_site(&m)->stack_id, 1);
    assert_int_equal(ui_model_selected_site(&m)->live_bytes_at_peak, 700);
    /* Figures of a thread that is not the filter any more are dropped. */
    ts = alpha_sites(&n);
    assert_int_equal(ui_model_set_thread_sites(&m, 20, ts, n), 0);
    assert_int_equal(ui_model_thread_sites_wanted(&m), 10);
    ui_model_set_thread_filter(&m, 0);
    assert_int_equal(m.order_len, 2);
    ui_model_free(&m);
}

static void test_ui_model_thread_filter_from_threads_pane(void **state)
{
    ui_model_t m;
    model_with_threads(&m);
    ui_model_set_list_rows(&m, 10, 3);
    ui_model_apply(&m, UI_ACT_FOCUS_NEXT);
    ui_model_apply(&m, UI_ACT_DOWN); /* the second listed: tid 10 */
    assert_int_equal(ui_model_apply(&m, UI_ACT_SELECT), 1);
    assert_int_equal(m.thread_filter, 10);
    assert_int_equal(m.focus, UI_PANE_SITES); /* back to its sites */
    assert_int_equal(m.stack_view, 0);
    ui_model_apply(&m, UI_ACT_FOCUS_NEXT);
    ui_model_apply(&m, UI_ACT_SELECT); /* the same thread again: all threads */
    assert_int_equal(m.thread_filter, 0);
    ui_model_apply(&m, UI_ACT_FOCUS_NEXT);
    ui_model_apply(&m, UI_ACT_HOME);
    ui_model_apply(&m, UI_ACT_SELECT);
    assert_int_equal(m.thread_filter, 30);
    assert_string_equal(m.thread_filter_name, "gamma");
    ui_model_free(&m);
}

static void test_ui_model_thread_filter_in_replay(void **state)
{
    prof_result_t *f = make_frames(); /* site 1 in every frame */
    for (int i = 0; i < 5; i++) {
        f[i].threads = calloc(1, sizeof *f[i].threads);
        f[i].thread_count = 1;
        f[i].threads[0] = (prof_thread_t){.tid = 5, .name = "loader", .allocations = 1};
    }
    /* Frame i: thread 5 holds 10 * i bytes at site 1; frame 0: nothing. */
    prof_thread_site_t per[5][1];
    const prof_thread_site_t *ts[5];
    size_t counts[5];
    for (int i = 0; i < 5; i++) {
        per[i][0] = (prof_thread_site_t){5, 1, 10 * (uint64_t)i, (uint64_t)i, 0, 0};
        ts[i] = per[i];
        counts[i] = i ? 1 : 0;
    }
    ui_model_t m;
    ui_model_init(&m);
    ui_model_set_frames(&m, f, 5, NULL);
    ui_model_set_frame_thread_sites(&m, ts, counts);
    ui_model_apply(&m, UI_ACT_THREAD_NEXT);
    assert_int_equal(m.thread_filter, 5);
    assert_int_equal(ui_model_thread_sites_wanted(&m), 0); /* the frames have them */
    assert_int_equal(m.order_len, 0);                       /* frame 0: nothing live */
    ui_model_apply(&m, UI_ACT_STEP_FWD);
    ui_model_apply(&m, UI_ACT_STEP_FWD);
    assert_int_equal(m.order_len, 1);
    assert_int_equal(ui_model_site_thread(&m, 0)->live_bytes, 20);
    ui_model_apply(&m, UI_ACT_JUMP_END);
    assert_int_equal(ui_model_site_thread(&m, 0)->live_bytes, 40);
    assert_int_equal(ui_model_selected_site(&m)->stack_id, 1);
    /* Without per-thread figures (another process): says so. */
    ui_model_set_thread_filter(&m, 0);
    ui_model_set_frame_thread_sites(&m, NULL, NULL);
    ui_model_apply(&m, UI_ACT_THREAD_NEXT);
    assert_non_null(strstr(m.message, "no per-thread"));
    ui_model_free(&m);
    free_frames(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ui_model_sort_by_live_bytes),
        cmocka_unit_test(test_ui_model_sort_by_peak_contribution),
        cmocka_unit_test(test_ui_model_sort_by_allocation_count),
        cmocka_unit_test(test_ui_model_sort_ties_by_stack_id),
        cmocka_unit_test(test_ui_model_selection_moves_and_clamps),
        cmocka_unit_test(test_ui_model_selection_follows_site_across_snapshots),
        cmocka_unit_test(test_ui_model_selection_on_empty_list),
        cmocka_unit_test(test_ui_model_selection_starts_at_top_after_empty_list),
        cmocka_unit_test(test_ui_model_focus_moves_thread_selection),
        cmocka_unit_test(test_ui_model_stack_view_opens_and_closes),
        cmocka_unit_test(test_ui_model_pause_ignores_snapshots),
        cmocka_unit_test(test_ui_model_help_toggles),
        cmocka_unit_test(test_ui_model_resize_clamps_to_minimum),
        cmocka_unit_test(test_ui_model_resize_keeps_selection_visible),
        cmocka_unit_test(test_ui_model_rates_between_snapshots),
        cmocka_unit_test(test_ui_model_categories_without_attribution),
        cmocka_unit_test(test_ui_model_categories_from_the_result),
        cmocka_unit_test(test_ui_model_categories_now_from_the_latest_point),
        cmocka_unit_test(test_ui_model_focus_category_follows_the_selection),
        cmocka_unit_test(test_ui_model_timeline_scales_and_marks_peak),
        cmocka_unit_test(test_ui_model_timeline_fixed_span_fills_part),
        cmocka_unit_test(test_ui_model_timeline_empty),
        cmocka_unit_test(test_ui_model_timeline_window_scrolls),
        cmocka_unit_test(test_ui_model_timeline_stacks_by_category),
        cmocka_unit_test(test_ui_model_step_ticks),
        cmocka_unit_test(test_ui_model_step_now),
        cmocka_unit_test(test_ui_model_switch_process),
        cmocka_unit_test(test_ui_model_replay_steps_and_clamps),
        cmocka_unit_test(test_ui_model_replay_jump_to_peak),
        cmocka_unit_test(test_ui_model_replay_plays_at_speed),
        cmocka_unit_test(test_ui_model_replay_keys_do_nothing_live),
        cmocka_unit_test(test_ui_model_frames_from_symbol_source),
        cmocka_unit_test(test_ui_model_thread_filter_cycles_by_tid),
        cmocka_unit_test(test_ui_model_thread_filter_table),
        cmocka_unit_test(test_ui_model_thread_filter_from_threads_pane),
        cmocka_unit_test(test_ui_model_thread_filter_in_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
