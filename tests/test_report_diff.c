/*
 * test_report_diff.c - mlmem diff's join of two runs (reports/report_diff.c)
 * and its text and JSON forms, on the hand-made result of
 * test_report_fixture.c and a changed copy of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "mlmem/trace_format.h"
#include "report.h"
#include "test_report_fixture.h"

#define MiB 1048576u

/* The new run: the same program with "--epochs 2" replaced by
 * "--checkpoint sqrt". train_forward holds 256 KiB at the peak instead of
 * 1 MiB, through another stack id and addresses moved by ASLR (the same
 * function, file and line); Loader::next is gone; a new site appears twice
 * (two stack ids, the same frames: counted as one site); the unsampled site
 * is unchanged. The peak is 1.50 MiB - 768 KiB + 2 x 64 KiB - 512 KiB
 * = 384 KiB. */
static prof_result_t *new_run(void)
{
    prof_result_t *r = rtest_result_new();
    free(r->process.command);
    r->process.command = rtest_strdup("python3 train.py --checkpoint sqrt");
    prof_site_t *a = &r->sites[0];
    a->stack_id = 17;
    for (uint32_t i = 0; i < a->frame_count; i++)
        a->frames[i].address += 0x1000000;
    a->live_bytes_at_peak = 256 * 1024;
    a->allocations = 400;
    /* Loader::next's place: the first copy of the new site. */
    prof_site_t *b = &r->sites[1];
    b->stack_id = 30;
    free(b->frames[0].function);
    b->frames[0].function = rtest_strdup("recompute_segment");
    free(b->frames[0].file);
    b->frames[0].file = rtest_strdup("/src/checkpoint.c");
    b->frames[0].line = 12;
    b->frames[0].inlined = 0;
    b->live_bytes_at_peak = 64 * 1024;
    b->allocations = 5;
    b->live_bytes = 0;
    /* Its second copy: a fourth site with the same frames. */
    r->sites = realloc(r->sites, 4 * sizeof *r->sites);
    assert_non_null(r->sites);
    prof_site_t *d = &r->sites[3];
    *d = r->sites[1];
    d->stack_id = 31;
    d->frames = calloc(d->frame_count, sizeof *d->frames);
    assert_non_null(d->frames);
    for (uint32_t i = 0; i < d->frame_count; i++) {
        d->frames[i] = r->sites[1].frames[i];
        d->frames[i].address += 8; /* another call of the same line */
        d->frames[i].function = d->frames[i].function ? rtest_strdup(d->frames[i].function) : NULL;
        d->frames[i].file = d->frames[i].file ? rtest_strdup(d->frames[i].file) : NULL;
        d->frames[i].module = d->frames[i].module ? rtest_strdup(d->frames[i].module) : NULL;
    }
    d->allocations = 7;
    r->site_count = 4;
    r->summary.peak_bytes = 1572864 - 768 * 1024 + 128 * 1024 - 512 * 1024;
    r->summary.total_allocations = 1300;
    return r;
}

/* Two recommendations in the base: the nearest to the new peak wins; a
 * churn one and a deployment-only one would be nearer and do not count. */
static void add_advice(prof_result_t *r)
{
    static const struct {
        prof_advice_kind_t kind;
        uint64_t predicted;
        uint32_t deployment_only;
    } recs[] = {
        {PROF_ADVICE_PRECISION, 1200000, 0},
        {PROF_ADVICE_CHECKPOINTING, 394000, 0},  /* the nearest: 784 B above */
        {PROF_ADVICE_CHURN, 393216, 0},
        {PROF_ADVICE_COMPRESSION, 393300, 1},
    };
    r->recommendation_count = 4;
    r->recommendations = calloc(4, sizeof *r->recommendations);
    assert_non_null(r->recommendations);
    for (size_t i = 0; i < 4; i++) {
        r->recommendations[i].kind = recs[i].kind;
        r->recommendations[i].predicted_peak_bytes = recs[i].predicted;
        r->recommendations[i].deployment_only = recs[i].deployment_only;
        r->recommendations[i].title = rtest_strdup(prof_advice_kind_name(recs[i].kind));
    }
}

static const report_diff_site_t *find_site(const report_diff_t *d, const char *function)
{
    for (size_t i = 0; i < d->site_count; i++)
        if (strstr(d->sites[i].key, function))
            return &d->sites[i];
    return NULL;
}

static void test_report_diff_joins_sites_by_frames(void **state)
{
    (void)state;
    prof_result_t *base = rtest_result_new(), *now = new_run();
    report_diff_t d;
    assert_int_equal(report_diff_compute(base, now, &d), 0);
    assert_true(d.sites_comparable);
    /* train_forward, Loader::next, recompute_segment, the unsampled site. */
    assert_int_equal(d.site_count, 4);
    const report_diff_site_t *fwd = find_site(&d, "train_forward");
    assert_non_null(fwd);
    assert_int_equal(fwd->base.at_peak, MiB);
    assert_int_equal(fwd->now.at_peak, 256 * 1024);
    assert_int_equal(fwd->base.allocations, 100);
    assert_int_equal(fwd->now.allocations, 400);
    assert_int_equal(fwd->now.site->stack_id, 17);
    const report_diff_site_t *ld = find_site(&d, "Loader::next");
    assert_non_null(ld);
    assert_int_equal(ld->base.at_peak, 512 * 1024);
    assert_null(ld->now.site);
    assert_int_equal(ld->base.leaked, 3072);
    const report_diff_site_t *rc = find_site(&d, "recompute_segment");
    assert_non_null(rc);
    assert_null(rc->base.site);
    assert_int_equal(rc->now.at_peak, 128 * 1024); /* both copies */
    assert_int_equal(rc->now.allocations, 12);
    const report_diff_site_t *un = find_site(&d, "(unsampled)");
    assert_non_null(un);
    assert_int_equal(un->base.allocations, un->now.allocations);
    /* The largest change first: -768 KiB, -512 KiB, +128 KiB, then none. */
    assert_ptr_equal(&d.sites[0], fwd);
    assert_ptr_equal(&d.sites[1], ld);
    assert_ptr_equal(&d.sites[2], rc);
    assert_ptr_equal(&d.sites[3], un);
    report_diff_free(&d);
    assert_null(d.sites);
    rtest_result_free(base);
    rtest_result_free(now);
}

static void test_report_diff_nearest_prediction(void **state)
{
    (void)state;
    prof_result_t *base = rtest_result_new(), *now = new_run();
    report_diff_t d;
    assert_int_equal(report_diff_compute(base, now, &d), 0);
    assert_int_equal(d.nearest_prediction, -1); /* the base has no advice */
    report_diff_free(&d);
    add_advice(base);
    assert_int_equal(report_diff_compute(base, now, &d), 0);
    assert_int_equal(d.nearest_prediction, 1);
    report_diff_free(&d);
    /* A new peak that is not lower: no recommendation explains it. */
    assert_int_equal(report_diff_compute(base, base, &d), 0);
    assert_int_equal(d.nearest_prediction, -1);
    report_diff_free(&d);
    rtest_result_free(base);
    rtest_result_free(now);
}

/* A report read back without frames: its sites cannot be joined. */
static void test_report_diff_sites_need_frames(void **state)
{
    (void)state;
    prof_result_t *base = rtest_result_new(), *now = new_run();
    for (size_t i = 0; i < now->site_count; i++) {
        prof_site_t *s = &now->sites[i];
        for (uint32_t k = 0; k < s->frame_count; k++) {
            free(s->frames[k].function);
            free(s->frames[k].file);
            free(s->frames[k].module);
        }
        free(s->frames);
        s->frames = NULL;
        s->frame_count = 0;
    }
    report_diff_t d;
    assert_int_equal(report_diff_compute(base, now, &d), 0);
    assert_false(d.sites_comparable);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(report_diff_text_write(base, now, &d, "a", "b", f, 0), 0);
    fclose(f);
    assert_non_null(strstr(text, "Sites are not compared"));
    assert_null(strstr(text, "#1 "));
    free(text);
    report_diff_free(&d);
    rtest_result_free(base);
    rtest_result_free(now);
}

static void test_report_diff_text(void **state)
{
    (void)state;
    prof_result_t *base = rtest_result_new(), *now = new_run();
    add_advice(base);
    report_diff_t d;
    assert_int_equal(report_diff_compute(base, now, &d), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(report_diff_text_write(base, now, &d, "base.zst", "new.zst", f, 2), 0);
    fclose(f);
    assert_non_null(strstr(text, "base base.zst: python3 train.py --epochs 2\n"));
    assert_non_null(strstr(text, "the new command line adds: --checkpoint sqrt; drops: --epochs 2\n"));
    /* 1.50 MiB -> 384 KiB: -1.125 MiB, -75%. */
    assert_non_null(strstr(text, "Peak heap                    1.50 MiB     384.00 KiB  "
                                 "-1.13 MiB (-75.0%)\n"));
    assert_non_null(strstr(text, "Allocations                      1000           1300  "
                                 "+300 (+30.0%)\n"));
    assert_non_null(strstr(text, "Leaked                       3.00 KiB       3.00 KiB  0\n"));
    assert_non_null(strstr(text, "[checkpointing] checkpointing\n"));
    assert_non_null(strstr(text, "predicted 384.77 KiB, measured 384.00 KiB: 0.2% above"));
    /* Two sites, as asked: the largest changes, with their frames. */
    assert_non_null(strstr(text, "#1   -768.00 KiB at the peak (1.00 MiB -> 256.00 KiB), "
                                 "100 -> 400 allocations\n"));
    assert_non_null(strstr(text, "train_forward at /src/model.c:120 (train)"));
    assert_non_null(strstr(text, "#2   -512.00 KiB at the peak (512.00 KiB -> 0 B), "
                                 "20 -> 0 allocations, only in base\n"));
    assert_null(strstr(text, "#3 "));
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(nl - line <= REPORT_TEXT_WIDTH);
        line = nl + 1;
    }
    free(text);
    report_diff_free(&d);
    rtest_result_free(base);
    rtest_result_free(now);
}

static void test_report_diff_json(void **state)
{
    (void)state;
    prof_result_t *base = rtest_result_new(), *now = new_run();
    add_advice(base);
    report_diff_t d;
    assert_int_equal(report_diff_compute(base, now, &d), 0);
    char path[] = "/tmp/mlmem-test-diff-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char err[256];
    assert_int_equal(report_diff_json_write(base, now, &d, "b.json", "n.json", 0, path, err,
                                            sizeof err), 0);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "schema")), "mlmem-diff/1");
    json_t *b = json_object_get(root, "base"), *n = json_object_get(root, "new");
    assert_string_equal(json_string_value(json_object_get(b, "input")), "b.json");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(n, "summary"),
                                                        "peak_bytes")),
                     now->summary.peak_bytes);
    json_t *ch = json_object_get(root, "change");
    assert_int_equal(json_integer_value(json_object_get(ch, "peak_bytes")),
                     -(json_int_t)(base->summary.peak_bytes - now->summary.peak_bytes));
    assert_int_equal(json_integer_value(json_object_get(ch, "total_allocations")), 300);
    json_t *p = json_object_get(root, "nearest_prediction");
    assert_string_equal(json_string_value(json_object_get(p, "kind")), "checkpointing");
    assert_int_equal(json_integer_value(json_object_get(p, "error")), 394000 - 393216);
    /* The sites that changed (not the unsampled one), largest first. */
    json_t *sites = json_object_get(root, "sites");
    assert_int_equal(json_array_size(sites), 3);
    json_t *s0 = json_array_get(sites, 0);
    assert_int_equal(json_integer_value(json_object_get(s0, "change_at_peak")), -768 * 1024);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s0, "new"),
                                                        "stack_id")), 17);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(s0, "frames"), 0), "function")),
                        "train_forward");
    assert_true(json_is_null(json_object_get(json_array_get(sites, 1), "new")));
    json_decref(root);
    unlink(path);
    report_diff_free(&d);
    rtest_result_free(base);
    rtest_result_free(now);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_diff_joins_sites_by_frames),
        cmocka_unit_test(test_report_diff_nearest_prediction),
        cmocka_unit_test(test_report_diff_sites_need_frames),
        cmocka_unit_test(test_report_diff_text),
        cmocka_unit_test(test_report_diff_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
