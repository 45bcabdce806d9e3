/*
 * test_report_text.c - the text summary and the shared formatters: the
 * figures a reader looks for, sites in the right order, the leak and
 * dropped-events sections only when they apply, line width, and
 * report_format_bytes / report_format_duration / report_signal_name.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "reports/report.h"
#include "test_report_fixture.h"

/* Renders the text report of 'r' into a malloc'd string. */
static char *rttest_render(const prof_result_t *r, const report_text_options_t *opt)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(report_text_write(r, f, opt), 0);
    fclose(f);
    assert_non_null(buf);
    return buf;
}

/* Fails unless 'needle' occurs in 'text'; returns where. */
static const char *rttest_find(const char *text, const char *needle)
{
    if (text == NULL)
        fail_msg("looked for \"%s\" in nothing", needle);
    const char *p = strstr(text, needle);
    if (p == NULL)
        fail_msg("\"%s\" not found in:\n%s", needle, text ? text : "");
    return p;
}

static void test_report_text_summary_figures(void **state)
{
    prof_result_t *r = rtest_result_new();
    char *t = rttest_render(r, NULL);
    rttest_find(t, "python3 train.py --epochs 2 (pid 4242)");
    rttest_find(t, "exited with code 0 after 5.000 s");
    rttest_find(t, "Peak heap        1.50 MiB at 2.500 s (heap 1.00 MiB + mmap 512.00 KiB)");
    rttest_find(t, "Allocations      1000 (990 freed), 10.00 MiB requested");
    rttest_find(t, "Temporary        250 allocations (25.0%)");
    rttest_find(t, "Leaked           3.00 KiB in 10 allocations");
    rttest_find(t, "Peak RSS         20.00 MiB at 3.000 s");
    rttest_find(t, "stacks: every allocation of 4.00 KiB or more");
    rttest_find(t, "Child processes:");
    rttest_find(t, "pid 4300: sh -c true");
    free(t);
    rtest_result_free(r);
}

static void test_report_text_peak_sites_in_order(void **state)
{
    prof_result_t *r = rtest_result_new();
    char *t = rttest_render(r, NULL);
    const char *peak = rttest_find(t, "Peak memory came from:");
    const char *leaks = rttest_find(t, "Leaks at exit:");
    const char *first = rttest_find(peak, "#1   1.00 MiB (66.7% of peak) in 4 allocations");
    const char *a = rttest_find(peak, "train_forward at /src/model.c:120 (train)");
    const char *main_frame = rttest_find(peak, "main at /src/main.c:40 (train)");
    const char *second = rttest_find(peak, "#2   512.00 KiB (33.3% of peak) in 1 allocation");
    const char *b = rttest_find(peak, "mlmem_test::Loader::next() at /src/loader.cpp:77 "
                                      "(libloader.so) [inlined]");
    rttest_find(peak, "0x7ffff7a02000 (libloader.so+0x2000)");
    assert_true(first < a && a < main_frame && main_frame < second && second < b && b < leaks);
    free(t);

    /* The ranking is by live_bytes_at_peak, whatever the array's order. */
    prof_site_t tmp = r->sites[0];
    r->sites[0] = r->sites[1];
    r->sites[1] = tmp;
    t = rttest_render(r, NULL);
    peak = rttest_find(t, "Peak memory came from:");
    a = rttest_find(peak, "train_forward");
    b = rttest_find(peak, "mlmem_test::Loader::next()");
    assert_true(a < b);
    free(t);
    rtest_result_free(r);
}

static void test_report_text_leak_section(void **state)
{
    prof_result_t *r = rtest_result_new();
    char *t = rttest_render(r, NULL);
    const char *leaks = rttest_find(t, "Leaks at exit:");
    const char *b = rttest_find(leaks, "#1   3.00 KiB in 10 allocations");
    rttest_find(b, "mlmem_test::Loader::next()");
    const char *next = rttest_find(leaks, "Most temporary allocations");
    const char *a = strstr(leaks, "train_forward");  /* site A freed everything */
    assert_true(a == NULL || a > next);
    free(t);

    r->summary.leaked_bytes = 0;
    r->summary.leaked_allocations = 0;
    r->sites[1].live_bytes = 0;
    r->sites[1].live_allocations = 0;
    t = rttest_render(r, NULL);
    rttest_find(rttest_find(t, "Leaks at exit:"), "none: every block was freed");
    free(t);

    /* A process still running has live memory, not leaks. */
    r->process.end = PROF_END_RUNNING;
    t = rttest_render(r, NULL);
    assert_null(strstr(t, "Leaks at exit:"));
    rttest_find(t, "Still live at the end of the trace:");
    rttest_find(t, "Live at end      0 B in 0 allocations");
    rttest_find(t, "still running");
    free(t);
    rtest_result_free(r);
}

static void test_report_text_temporaries(void **state)
{
    prof_result_t *r = rtest_result_new();
    char *t = rttest_render(r, NULL);
    const char *tmp = rttest_find(t, "Most temporary allocations");
    const char *first = rttest_find(tmp, "#1   240 temporary of 880 allocations");
    rttest_find(first, "(small allocations whose stack was not sampled)");
    const char *second = rttest_find(tmp, "#2   10 temporary of 100 allocations");
    assert_true(first < second);
    free(t);
    rtest_result_free(r);
}

static void test_report_text_dropped_warning_only_when_dropped(void **state)
{
    prof_result_t *r = rtest_result_new();
    char *t = rttest_render(r, NULL);
    assert_null(strstr(t, "dropped"));
    assert_null(strstr(t, "approximate"));
    free(t);

    r->summary.dropped_events = 5;
    t = rttest_render(r, NULL);
    rttest_find(t, "Warning: 5 events dropped by the shim and 0 lost");
    rttest_find(t, "approximate");
    free(t);

    r->summary.dropped_events = 0;
    r->summary.lost_events = 2;
    t = rttest_render(r, NULL);
    rttest_find(t, "0 events dropped by the shim and 2 lost");
    assert_null(strstr(t, "without their stack"));
    free(t);

    r->summary.lost_events = 0;
    r->summary.stacks_lost = 3;
    t = rttest_render(r, NULL);
    rttest_find(t, "Warning: 3 allocations were recorded without their stack");
    assert_null(strstr(t, "approximate"));
    free(t);
    rtest_result_free(r);
}

static void test_report_text_signal_and_children(void **state)
{
    prof_result_t *r = rtest_result_new();
    r->process.end = PROF_END_SIGNALED;
    r->process.signal = 9;
    r->children[0].end = PROF_END_SIGNALED;
    r->children[0].signal = 11;
    char *t = rttest_render(r, NULL);
    rttest_find(t, "killed by signal 9 (SIGKILL)");
    rttest_find(rttest_find(t, "Child processes:"), "killed by signal 11 (SIGSEGV)");
    free(t);

    free(r->children[0].command);
    free(r->children);
    r->children = NULL;
    r->child_count = 0;
    t = rttest_render(r, NULL);
    assert_null(strstr(t, "Child processes:"));
    free(t);
    rtest_result_free(r);
}

static void test_report_text_options_limit_output(void **state)
{
    prof_result_t *r = rtest_result_new();
    report_text_options_t opt = {.max_sites = 1, .max_frames = 1};
    char *t = rttest_render(r, &opt);
    const char *peak = rttest_find(t, "Peak memory came from:");
    const char *leaks = rttest_find(t, "Leaks at exit:");
    rttest_find(peak, "train_forward");
    rttest_find(peak, "... 1 more frames");
    const char *b = strstr(peak, "Loader::next");
    assert_true(b == NULL || b > leaks);            /* not in the peak section */
    assert_null(strstr(t, "main at"));
    assert_null(strstr(t, "\033["));
    free(t);

    opt.use_color = 1;
    t = rttest_render(r, &opt);
    rttest_find(t, "\033[1mPeak memory came from:\033[0m");
    free(t);
    rtest_result_free(r);
}

static void test_report_text_lines_fit_and_are_clean(void **state)
{
    prof_result_t *r = rtest_result_new();
    prof_frame_t *f = &r->sites[0].frames[0];
    free(f->function);
    char *name = malloc(501);
    assert_non_null(name);
    memset(name, 'n', 500);
    memcpy(name, "ns::\xc3\xa9\x1b[2J", 10);       /* UTF-8 and a terminal escape */
    name[500] = '\0';
    f->function = name;
    /* A path too long for the line is cut to its file name; one that fits
     * is kept whole. */
    free(r->sites[0].frames[1].file);
    r->sites[0].frames[1].file = rtest_strdup("/a/very/long/directory/that/goes/on/and/on/and/on/"
                                              "and/on/and/on/src/model.c");
    free(r->sites[0].frames[1].function);
    r->sites[0].frames[1].function = rtest_strdup("short_fn");
    free(r->sites[1].frames[0].file);
    r->sites[1].frames[0].file = rtest_strdup("/home/me/project/src/loader.cpp");

    char *t = rttest_render(r, NULL);
    assert_null(strchr(t, '\033'));
    rttest_find(t, "ns::\xc3\xa9?[2J");
    for (char *line = t, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        if ((size_t)(nl - line) > REPORT_TEXT_WIDTH)
            fail_msg("line of %zu bytes: %.*s", (size_t)(nl - line), (int)(nl - line), line);
    }
    rttest_find(t, "        short_fn at model.c:40 (train)\n");
    rttest_find(t, "mlmem_test::Loader::next() at /home/me/project/src/loader.cpp:77");
    free(t);
    rtest_result_free(r);
}

static void test_report_text_empty_result(void **state)
{
    prof_result_t r;
    memset(&r, 0, sizeof(r));
    char *t = rttest_render(&r, NULL);
    rttest_find(t, "Peak heap        0 B");
    rttest_find(t, "(nothing was live)");
    free(t);
}

static void test_report_text_format_bytes(void **state)
{
    char buf[REPORT_BYTES_BUFLEN];
    const struct { uint64_t v; const char *s; } cases[] = {
        {0, "0 B"},
        {1, "1 B"},
        {1023, "1023 B"},
        {1024, "1.00 KiB"},
        {1536, "1.50 KiB"},
        {1029, "1.00 KiB"},                 /* 1.0048.. rounds down */
        {1030, "1.01 KiB"},                 /* 1.0058.. rounds up */
        {1048575, "1.00 MiB"},              /* 1023.999 KiB moves up */
        {1048576, "1.00 MiB"},
        {1572864, "1.50 MiB"},
        {UINT64_C(5) << 30, "5.00 GiB"},
        {(UINT64_C(1) << 40) + (UINT64_C(1) << 38), "1.25 TiB"},
        {UINT64_C(1) << 50, "1.00 PiB"},
        {UINT64_C(3) << 60, "3.00 EiB"},
        {UINT64_MAX, "16.00 EiB"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(report_format_bytes(cases[i].v, buf, sizeof(buf)), cases[i].s);

    char small[4];
    assert_ptr_equal(report_format_bytes(1572864, small, sizeof(small)), small);
    assert_string_equal(small, "1.5");
    char untouched[2] = "x";
    report_format_bytes(1, untouched, 0);
    assert_string_equal(untouched, "x");
}

static void test_report_text_format_duration_and_signal(void **state)
{
    char buf[REPORT_DURATION_BUFLEN];
    assert_string_equal(report_format_duration(0, buf, sizeof(buf)), "0 ns");
    assert_string_equal(report_format_duration(850, buf, sizeof(buf)), "850 ns");
    assert_string_equal(report_format_duration(12500, buf, sizeof(buf)), "12.5 us");
    assert_string_equal(report_format_duration(4560000, buf, sizeof(buf)), "4.56 ms");
    assert_string_equal(report_format_duration(2345000000u, buf, sizeof(buf)), "2.345 s");
    assert_string_equal(report_format_duration(UINT64_C(187) * 1000000000, buf, sizeof(buf)),
                        "3 min 07 s");
    assert_string_equal(report_format_duration(UINT64_C(7500) * 1000000000, buf, sizeof(buf)),
                        "2 h 05 min");

    char name[24];
    assert_string_equal(report_signal_name(9, name, sizeof(name)), "SIGKILL");
    assert_string_equal(report_signal_name(11, name, sizeof(name)), "SIGSEGV");
    assert_string_equal(report_signal_name(6, name, sizeof(name)), "SIGABRT");
    assert_string_equal(report_signal_name(0, name, sizeof(name)), "SIG0");
    assert_string_equal(report_signal_name(1000, name, sizeof(name)), "SIG1000");
    assert_string_equal(report_end_name(PROF_END_EXITED), "exited");
    assert_string_equal(report_end_name(PROF_END_SIGNALED), "signaled");
    assert_string_equal(report_end_name(PROF_END_EXEC), "exec");
    assert_string_equal(report_end_name(PROF_END_RUNNING), "running");
    assert_string_equal(report_end_name(PROF_END_UNKNOWN), "unknown");
}

static void test_report_text_write_error(void **state)
{
    prof_result_t *r = rtest_result_new();
    FILE *f = fopen("/dev/full", "w");
    if (f == NULL)
        skip();
    assert_int_equal(report_text_write(r, f, NULL), -1);
    fclose(f);
    rtest_result_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_text_summary_figures),
        cmocka_unit_test(test_report_text_peak_sites_in_order),
        cmocka_unit_test(test_report_text_leak_section),
        cmocka_unit_test(test_report_text_temporaries),
        cmocka_unit_test(test_report_text_dropped_warning_only_when_dropped),
        cmocka_unit_test(test_report_text_signal_and_children),
        cmocka_unit_test(test_report_text_options_limit_output),
        cmocka_unit_test(test_report_text_lines_fit_and_are_clean),
        cmocka_unit_test(test_report_text_empty_result),
        cmocka_unit_test(test_report_text_format_bytes),
        cmocka_unit_test(test_report_text_format_duration_and_signal),
        cmocka_unit_test(test_report_text_write_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
