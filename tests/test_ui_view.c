/*
 * test_ui_view.c - the dashboard's drawing (ui/ui_view.h), rendered into
 * ncurses pads on a screen whose output goes to /dev/null: no terminal
 * needed. Checks the text of the rows: the figures, the composition
 * placeholder or bar (exact categories, the focused one's evidence), the
 * timeline's peak marker, stacking and step ticks, the site order, the
 * overlays, the layout at 80x24 and larger, and ASCII-only output in the
 * ASCII fallback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curses.h>

#include "ui/ui_model.h"
#include "ui/ui_view.h"

static SCREEN *scr;
static FILE *out, *in;

static int setup(void **state)
{
    out = fopen("/dev/null", "w");
    in = fopen("/dev/null", "r");
    scr = newterm("xterm", out, in);
    if (!scr)
        return -1;
    set_term(scr);
    return 0;
}

static int teardown(void **state)
{
    if (scr) {
        endwin();
        delscreen(scr);
    }
    fclose(out);
    fclose(in);
    return 0;
}

static prof_frame_t *frame(const char *fn, const char *file, uint32_t line)
{
    prof_frame_t *f = calloc(1, sizeof *f);
    f->function = strdup(fn);
    f->file = strdup(file);
    f->line = line;
    f->module = strdup("/bin/train");
    return f;
}

/* A snapshot like e2e_peak's at its end: peak 3,000,000 bytes at 2 ms. */
static void fill_model(ui_model_t *m, const char *category)
{
    prof_result_t r;
    memset(&r, 0, sizeof r);
    r.site_count = 3;
    r.sites = calloc(3, sizeof *r.sites);
    const uint64_t live[] = {0, 0, 12345}, peak[] = {2000000, 1000000, 0};
    const uint32_t line[] = {10, 9, 18};
    for (int i = 0; i < 3; i++) {
        r.sites[i].stack_id = (uint32_t)i + 1;
        r.sites[i].live_bytes = live[i];
        r.sites[i].live_bytes_at_peak = peak[i];
        r.sites[i].allocations = 1;
        r.sites[i].bytes_allocated = peak[i] + live[i];
        r.sites[i].frames = frame("main", "/src/e2e_peak.c", line[i]);
        r.sites[i].frame_count = 1;
        r.sites[i].category = category;
    }
    r.timeline_count = 4;
    r.timeline = calloc(4, sizeof *r.timeline);
    const uint64_t t[] = {0, 2000000, 6000000, 9000000}, v[] = {0, 3000000, 500000, 12345};
    for (int i = 0; i < 4; i++) {
        r.timeline[i].time_ns = t[i];
        r.timeline[i].live_bytes = v[i];
        r.timeline[i].rss_bytes = 5u << 20;
    }
    if (category) {
        /* Attribution: weights 1,000,000 and activations 2,000,000 at the
         * peak; the weights stay (12,345 at the end). */
        static const char *names[MLMEM_CATEGORY_COUNT] = {
            "other", "weights", "gradients", "optimizer_state", "activations", "data",
            "temporaries"};
        r.category_count = MLMEM_CATEGORY_COUNT;
        for (int i = 0; i < MLMEM_CATEGORY_COUNT; i++)
            r.categories[i].name = names[i];
        r.categories[MLMEM_CAT_WEIGHTS].bytes_at_peak = 1000000;
        r.categories[MLMEM_CAT_WEIGHTS].bytes_at_end = 12345;
        r.categories[MLMEM_CAT_WEIGHTS].confidence = 1.0;
        r.categories[MLMEM_CAT_WEIGHTS].evidence = strdup("annotations (region)");
        r.categories[MLMEM_CAT_ACTIVATIONS].bytes_at_peak = 2000000;
        r.categories[MLMEM_CAT_ACTIVATIONS].confidence = 0.9;
        r.categories[MLMEM_CAT_ACTIVATIONS].evidence = strdup("rule: function *_acts*");
        for (int i = 0; i < 4; i++) {
            uint64_t wt = v[i] < 1000000 ? v[i] : 1000000;
            r.timeline[i].category_bytes[MLMEM_CAT_WEIGHTS] = wt;
            r.timeline[i].category_bytes[MLMEM_CAT_ACTIVATIONS] = v[i] - wt;
        }
    }
    r.summary.peak_bytes = 3000000;
    r.summary.peak_time_ns = 2000000;
    r.summary.live_bytes = 12345;
    r.summary.duration_ns = 10000000;
    r.summary.events = 11;
    r.thread_count = 1;
    r.threads = calloc(1, sizeof *r.threads);
    r.threads[0].tid = 4242;
    snprintf(r.threads[0].name, sizeof r.threads[0].name, "trainer");
    ui_model_init(m);
    ui_model_set_command(m, "e2e_peak --steps 3", 4242);
    ui_model_update(m, &r, 1, 0);
    ui_model_set_state(m, UI_RUN_EXITED, 3, 0);
}

static const ui_view_opts_t ascii = {.unicode = 0, .color = 0, .title = "live"};

/* Row 'y' of 'w' as a string (trailing blanks kept). */
static const char *row(WINDOW *w, int y)
{
    static char buf[512];
    int cols = getmaxx(w);
    mvwinnstr(w, y, 0, buf, cols < 511 ? cols : 511);
    return buf;
}

/* The first row holding 'text', or -1. */
static int find(WINDOW *w, const char *text)
{
    for (int y = 0; y < getmaxy(w); y++)
        if (strstr(row(w, y), text))
            return y;
    return -1;
}

static void test_ui_view_header_figures_at_80x24(void **state)
{
    ui_model_t m;
    fill_model(&m, NULL);
    WINDOW *w = newpad(24, 80);
    ui_view_render(w, &ascii, &m);
    assert_non_null(strstr(row(w, 0), "e2e_peak --steps 3"));
    assert_non_null(strstr(row(w, 0), "pid 4242"));
    assert_non_null(strstr(row(w, 0), "exited with code 3"));
    assert_true(find(w, "peak heap 2.86 MiB at 2.00 ms") == 1);
    assert_true(find(w, "live heap 12.06 KiB") == 1);
    assert_true(find(w, "dropped 0") == 2);
    assert_true(find(w, "step -  phase -") == 2); /* no STEP annotation */
    m.own.steps.source = "detected"; /* no period: no position to estimate */
    m.own.steps.count = 12;
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "step -  phase -") == 2);
    /* Detected, with the end 20% into the third step: estimates, marked. */
    m.own.steps.first_step_ns = m.own.summary.duration_ns - 2200;
    m.own.steps.period_ns = 1000;
    m.own.steps.last_step_ns = m.own.steps.first_step_ns + 11000;
    m.own.steps.phase_source = "inferred";
    m.own.steps.forward_end = 0.3;
    m.own.steps.backward_end = 0.6;
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "step ~3/12  phase ~forward") == 2);
    m.own.steps.source = "annotations";
    m.own.steps.phases_seen = (1u << MLMEM_PHASE_FORWARD) | (1u << MLMEM_PHASE_BACKWARD);
    m.own.steps.current_step = 11; /* the program's own number of its step */
    m.own.steps.current_phase = MLMEM_PHASE_BACKWARD;
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "step 11  phase backward") == 2);
    assert_true(find(w, "q quit") == 23); /* keys on the last row */
    delwin(w);
    ui_model_free(&m);
}

static void test_ui_view_composition_placeholder_without_attribution(void **state)
{
    ui_model_t m;
    fill_model(&m, NULL);
    WINDOW *w = newpad(24, 80);
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "no attribution in this snapshot") == 3);
    assert_true(find(w, "no recommendations") == 22);
    delwin(w);
    ui_model_free(&m);
}

static void test_ui_view_composition_bar_with_categories(void **state)
{
    ui_model_t m;
    fill_model(&m, "activations");
    WINDOW *w = newpad(24, 80);
    ui_view_render(w, &ascii, &m);
    assert_int_equal(find(w, "no attribution"), -1);
    /* Now: the weights only; at the peak both, exact, largest first. */
    assert_non_null(strstr(row(w, 3), "now"));
    assert_non_null(strstr(row(w, 3), "# weights 12.06 KiB"));
    assert_null(strstr(row(w, 3), "activations"));
    assert_non_null(strstr(row(w, 3), "################")); /* the whole bar */
    assert_non_null(strstr(row(w, 4), "peak"));
    assert_non_null(strstr(row(w, 4), "* activations 1.91 MiB"));
    assert_non_null(strstr(row(w, 4), "# weights 976.56 KiB"));
    assert_non_null(strstr(row(w, 4), "***********#####")); /* 2/3 and 1/3 */
    /* The selected site's category, with confidence and evidence. */
    assert_non_null(strstr(row(w, 5), "* activations 67% of the peak, 90% sure: "
                                      "rule: function *_acts*"));
    delwin(w);
    ui_model_free(&m);
}

static void test_ui_view_timeline_marks_peak(void **state)
{
    ui_model_t m;
    fill_model(&m, NULL);
    WINDOW *w = newpad(24, 80);
    ui_view_render(w, &ascii, &m);
    int title = find(w, "timeline");
    assert_int_equal(title, 6);
    /* 4 bar rows, then the axis with '^' under the peak's column: 2 ms of
     * 10 ms over 67 columns from x = 12. */
    const char *axis = row(w, title + 5);
    const char *caret = strchr(axis + 13, '^');
    assert_non_null(caret);
    assert_int_equal(caret - axis, 12 + 13);
    assert_null(strchr(axis, '|')); /* no steps, no ticks */
    /* The peak column is full height. */
    assert_int_equal(row(w, title + 1)[12 + 13], '#');
    assert_non_null(strstr(row(w, title + 1), "2.86 MiB"));
    delwin(w);
    ui_model_free(&m);
}

static void test_ui_view_timeline_stacked_with_step_ticks(void **state)
{
    ui_model_t m;
    fill_model(&m, "activations");
    /* Three annotated steps from 1 ms, every 3 ms: 1, 4 and 7 ms. */
    m.own.steps.source = "annotations";
    m.own.steps.count = 3;
    m.own.steps.first_step_ns = 1000000;
    m.own.steps.period_ns = 3000000;
    m.own.steps.last_step_ns = 7000000;
    WINDOW *w = newpad(24, 80);
    ui_view_render(w, &ascii, &m);
    int title = find(w, "timeline");
    assert_int_equal(title, 6);
    assert_non_null(strstr(row(w, title), "live bytes by category"));
    assert_non_null(strstr(row(w, title), "| 3 annotated steps"));
    /* The peak's column: weights ('#', 1/3) at the bottom, activations
     * ('*', 2/3) above. */
    assert_int_equal(row(w, title + 4)[12 + 13], '#');
    assert_int_equal(row(w, title + 2)[12 + 13], '*');
    assert_int_equal(row(w, title + 1)[12 + 13], '*');
    /* Step ticks on the axis at 1, 4 and 7 ms of 10 ms over 67 columns. */
    const char *axis = row(w, title + 5);
    assert_int_equal(axis[12 + 6], '|');
    assert_int_equal(axis[12 + 26], '|');
    assert_int_equal(axis[12 + 46], '|');
    assert_int_equal(axis[12 + 13], '^');
    delwin(w);
    ui_model_free(&m);
}

#ifdef UI_HAVE_ADVICE
/* The analyzer's recommendations: title, predicted peak, saving; one row at
 * 80x24 (with a count of the others), more when the window is tall. */
static void test_ui_view_advice_shows_recommendations(void **state)
{
    ui_model_t m;
    fill_model(&m, "activations");
    WINDOW *w = newpad(24, 80);
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "no recommendations: nothing to change found") == 22);
    m.own.recommendation_count = 3;
    m.own.recommendations = calloc(3, sizeof *m.own.recommendations);
    const char *titles[] = {"Store activations in bf16", "Halve the micro-batch", "Prune"};
    for (int i = 0; i < 3; i++) {
        m.own.recommendations[i].title = strdup(titles[i]);
        m.own.recommendations[i].predicted_peak_bytes = 2000000 + 100000 * (uint64_t)i;
        m.own.recommendations[i].bytes_saved = 1000000 - 100000 * (uint64_t)i;
    }
    m.own.recommendations[2].deployment_only = 1;
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "1/3 Store activations in bf16: peak 1.91 MiB, saves 976.56 KiB") == 22);
    assert_true(find(w, "q quit") == 23);
    delwin(w);
    w = newpad(40, 120);
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "1/3 Store activations in bf16") == 36);
    assert_true(find(w, "2/3 Halve the micro-batch: peak 2.00 MiB") == 37);
    assert_true(find(w, "3/3 Prune: peak 2.10 MiB, saves 781.25 KiB deployed") == 38);
    assert_true(find(w, "q quit") == 39);
    delwin(w);
    ui_model_free(&m);
}
#endif

static void test_ui_view_sites_follow_sort(void **state)
{
    ui_model_t m;
    fill_model(&m, NULL);
    WINDOW *w = newpad(24, 80);
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "e2e_peak.c:18") < find(w, "e2e_peak.c:10")); /* live bytes */
    ui_model_apply(&m, UI_ACT_SORT_PEAK);
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "e2e_peak.c:10") < find(w, "e2e_peak.c:9"));
    assert_true(find(w, "e2e_peak.c:9") < find(w, "e2e_peak.c:18"));
    assert_true(find(w, "[at peak]") >= 0);
    assert_true(find(w, "4242 trainer") >= 0);
    delwin(w);
    ui_model_free(&m);
}

static void test_ui_view_overlays(void **state)
{
    ui_model_t m;
    fill_model(&m, NULL);
    WINDOW *w = newpad(24, 80);
    ui_model_apply(&m, UI_ACT_HELP);
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "help: keys") == 3);
    assert_true(find(w, "stop the command") >= 0); /* live keys listed */
    assert_int_equal(find(w, "jump to the frame"), -1); /* replay keys not */
    ui_model_apply(&m, UI_ACT_HELP);
    ui_model_apply(&m, UI_ACT_SELECT);
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "#0  main at /src/e2e_peak.c:18 (train)") >= 0);
    assert_true(find(w, "category: none (no attribution in this snapshot)") >= 0);
    delwin(w);
    ui_model_free(&m);
}

static void test_ui_view_reflows_when_larger(void **state)
{
    ui_model_t m;
    fill_model(&m, NULL);
    WINDOW *w = newpad(40, 120);
    ui_view_render(w, &ascii, &m);
    assert_int_equal(m.rows, 40);
    assert_int_equal(m.cols, 120);
    assert_true(find(w, "q quit") == 39);
    assert_true(find(w, "Ctrl-C stop") == 39); /* the whole key line fits */
    assert_true(m.site_rows > 6);                 /* the lists took rows */
    delwin(w);
    ui_model_free(&m);
}

static void test_ui_view_ascii_only_in_fallback(void **state)
{
    ui_model_t m;
    fill_model(&m, NULL);
    free(m.own.sites[0].frames[0].function);
    m.own.sites[0].frames[0].function = strdup("f\xc3\xa9");
    ui_model_apply(&m, UI_ACT_SORT_PEAK);
    WINDOW *w = newpad(24, 80);
    ui_view_render(w, &ascii, &m);
    for (int y = 0; y < 24; y++)
        for (const char *p = row(w, y); *p; p++)
            assert_true((unsigned char)*p < 0x80);
    assert_true(find(w, "f?? at e2e_peak.c:10") >= 0);
    delwin(w);
    ui_model_free(&m);
}

static void test_ui_view_small_window_is_cropped_with_a_note(void **state)
{
    ui_model_t m;
    fill_model(&m, NULL);
    WINDOW *w = newpad(20, 60);
    ui_view_render(w, &ascii, &m);
    assert_int_equal(m.rows, 24); /* the layout stays 80x24 */
    assert_non_null(strstr(row(w, 0), "[60x20: the dashboard needs 80x24]"));
    assert_true(find(w, "peak heap 2.86 MiB") == 1); /* cropped, not wrapped */
    assert_int_equal(find(w, "q quit"), -1);
    delwin(w);
    ui_model_free(&m);
}

/* The sites of one thread (t): the pane's title names the thread, the rows
 * show what it holds (live bytes, live blocks) with the site's peak
 * contribution, a site the snapshot does not list shows its stack id, the
 * threads pane marks the thread, the stack view says what it holds. */
static void test_ui_view_thread_filter(void **state)
{
    ui_model_t m;
    fill_model(&m, NULL);
    WINDOW *w = newpad(24, 80);
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "t thread") == 23); /* in the key bar */
    ui_model_apply(&m, UI_ACT_THREAD_NEXT);
    ui_view_render(w, &ascii, &m);
    int title = find(w, "thread 4242 trainer: 0 sites");
    assert_true(title > 0);
    assert_true(find(w, "[thr live]") == title);
    assert_true(find(w, "counting what this thread holds") == title + 1);
    prof_thread_site_t *ts = calloc(2, sizeof *ts);
    ts[0] = (prof_thread_site_t){4242, 3, 12345, 2, 0, 1000000};
    ts[1] = (prof_thread_site_t){4242, 99, 4096, 1, 4096, 2000000};
    assert_int_equal(ui_model_set_thread_sites(&m, 4242, ts, 2), 0);
    ui_view_render(w, &ascii, &m);
    title = find(w, "thread 4242 trainer: 2 sites (t T: threads)");
    assert_true(title > 0);
    const char *r1 = row(w, title + 1);
    assert_non_null(strstr(r1, " 12.06 KiB"));
    assert_non_null(strstr(r1, "e2e_peak.c:18"));
    assert_non_null(strstr(r1, "       2 ")); /* its live blocks */
    const char *r2 = row(w, title + 2);
    assert_non_null(strstr(r2, "4.00 KiB          -        1 stack #99 (no frames)"));
    assert_int_equal(find(w, "e2e_peak.c:10"), -1); /* the other sites are not its */
    assert_true(find(w, ">4242 trainer") > title + 2);
    ui_model_apply(&m, UI_ACT_SORT_COUNT);
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "[blocks]") == title);
    assert_true(find(w, "e2e_peak.c:18") == title + 1); /* 2 blocks before 1 */
    ui_model_apply(&m, UI_ACT_SELECT);
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "thread 4242 trainer holds 12.06 KiB here: 2 blocks, 0 B mapped, the oldest") > 0);
    assert_true(find(w, "#0  main at /src/e2e_peak.c:18 (train)") > 0);
    ui_model_apply(&m, UI_ACT_SELECT);
    ui_model_apply(&m, UI_ACT_DOWN);
    ui_model_apply(&m, UI_ACT_SELECT); /* the site the snapshot does not list */
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "site #99: not among the snapshot's top sites") == 3);
    assert_true(find(w, "holds 4.00 KiB here: 1 blocks, 4.00 KiB mapped") > 0);
    ui_model_apply(&m, UI_ACT_BACK);
    ui_model_apply(&m, UI_ACT_HELP);
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "sites of one thread") > 0);
    ui_model_apply(&m, UI_ACT_HELP);
    ui_model_apply(&m, UI_ACT_THREAD_NEXT); /* the only thread: all again */
    ui_view_render(w, &ascii, &m);
    assert_true(find(w, "sites: 3 by allocations") > 0); /* the sort stays */
    assert_int_equal(find(w, ">4242"), -1);
    delwin(w);
    ui_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ui_view_header_figures_at_80x24),
        cmocka_unit_test(test_ui_view_composition_placeholder_without_attribution),
        cmocka_unit_test(test_ui_view_composition_bar_with_categories),
        cmocka_unit_test(test_ui_view_timeline_marks_peak),
        cmocka_unit_test(test_ui_view_timeline_stacked_with_step_ticks),
#ifdef UI_HAVE_ADVICE
        cmocka_unit_test(test_ui_view_advice_shows_recommendations),
#endif
        cmocka_unit_test(test_ui_view_sites_follow_sort),
        cmocka_unit_test(test_ui_view_overlays),
        cmocka_unit_test(test_ui_view_reflows_when_larger),
        cmocka_unit_test(test_ui_view_ascii_only_in_fallback),
        cmocka_unit_test(test_ui_view_small_window_is_cropped_with_a_note),
        cmocka_unit_test(test_ui_view_thread_filter),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
