/*
 * test_attribution_report.c - attribution in the reports: the JSON
 * "categories", "steps", "attribution" and per-point "categories", and the
 * text report's composition bar, from a result made by accounting and
 * attribution on a small annotated stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "profiler/accounting.h"
#include "profiler/attribution.h"
#include "reports/report.h"

static uint64_t seq, t;

static void ev(prof_acct_t *a, prof_event_t e)
{
    e.seq = ++seq;
    t += 10;
    e.time_ns = t;
    assert_int_equal(prof_acct_apply(a, &e), 0);
}

static void alloc_in(prof_acct_t *a, int cat, uint32_t stack, uint64_t addr, uint64_t size)
{
    if (cat >= 0)
        ev(a, (prof_event_t){.type = MLMEM_EV_REGION_BEGIN, .tid = 1, .arg = (uint64_t)cat});
    ev(a, (prof_event_t){.type = MLMEM_EV_ALLOC, .tid = 1, .stack_id = stack, .addr = addr,
                         .size = size});
    if (cat >= 0)
        ev(a, (prof_event_t){.type = MLMEM_EV_REGION_END, .tid = 1});
}

/* Weights 3000, gradients 3000, data 1000, 1000 unannotated bytes (no
 * frames: behaviour), two annotated steps with activations of 2000: the
 * peak (10000) is in either step. */
static void make_result(prof_result_t *r)
{
    seq = t = 0;
    prof_acct_t *a = prof_acct_new(NULL);
    assert_non_null(a);
    alloc_in(a, MLMEM_CAT_WEIGHTS, 1, 0x1000, 3000);
    alloc_in(a, MLMEM_CAT_GRADIENTS, 2, 0x2000, 3000);
    alloc_in(a, MLMEM_CAT_DATA, 3, 0x3000, 1000);
    alloc_in(a, -1, 4, 0x4000, 1000);
    for (uint64_t s = 0; s < 2; s++) {
        ev(a, (prof_event_t){.type = MLMEM_EV_STEP, .tid = 1, .arg = s});
        ev(a, (prof_event_t){.type = MLMEM_EV_PHASE, .tid = 1, .arg = MLMEM_PHASE_FORWARD});
        alloc_in(a, MLMEM_CAT_ACTIVATIONS, 5, 0x5000, 2000);
        ev(a, (prof_event_t){.type = MLMEM_EV_FREE, .tid = 1, .addr = 0x5000});
    }
    memset(r, 0, sizeof *r);
    assert_int_equal(prof_acct_result(a, r), 0);
    prof_attr_input_t in = {0};
    assert_int_equal(prof_attribute(r, &in), 0);
    prof_acct_free(a);
}

static uint64_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    assert_true(json_is_integer(v));
    return (uint64_t)json_integer_value(v);
}

static void test_attribution_report_json(void **state)
{
    (void)state;
    prof_result_t r;
    make_result(&r);
    json_t *j = report_json_build(&r);
    assert_non_null(j);
    json_t *cats = json_object_get(j, "categories");
    assert_int_equal(json_object_size(cats), MLMEM_CATEGORY_COUNT);
    uint64_t sum = 0;
    const char *name;
    json_t *c;
    json_object_foreach(cats, name, c) sum += jint(c, "bytes_at_peak");
    assert_int_equal(sum, r.summary.peak_bytes);
    assert_int_equal(sum, 10000);
    json_t *w = json_object_get(cats, "weights");
    /* The unannotated block lives through and no gradient matches it: weights
     * by behaviour (inference). */
    assert_int_equal(jint(w, "bytes_at_peak"), 4000);
    assert_false(json_is_true(json_object_get(w, "max_exact")));
    assert_int_equal(jint(json_object_get(w, "bytes_at_peak_by_evidence"), "annotation"), 3000);
    assert_int_equal(jint(json_object_get(w, "bytes_at_peak_by_evidence"), "behaviour"), 1000);
    assert_string_equal(json_string_value(json_object_get(w, "evidence")),
                        "annotation 75.0%, behaviour 25.0%");
    json_t *g = json_object_get(cats, "gradients");
    assert_true(json_is_true(json_object_get(g, "max_exact")));
    assert_string_equal(json_string_value(json_object_get(g, "evidence")), "annotation 100.0%");
    assert_true(json_real_value(json_object_get(g, "confidence")) > 0.999);
    assert_int_equal(jint(json_object_get(cats, "activations"), "bytes_at_peak"), 2000);
    assert_int_equal(jint(json_object_get(cats, "activations"), "bytes_at_end"), 0);

    json_t *steps = json_object_get(j, "steps");
    assert_string_equal(json_string_value(json_object_get(steps, "source")), "annotations");
    assert_int_equal(jint(steps, "count"), 2);
    assert_int_equal(json_array_size(json_object_get(steps, "peak_bytes")), 2);
    json_t *phases = json_object_get(steps, "phases");
    assert_int_equal(json_array_size(phases), 1);
    assert_string_equal(json_string_value(json_array_get(phases, 0)), "forward");
    assert_int_equal(jint(json_object_get(j, "attribution"), "region_allocations"), 5);

    json_t *tl = json_object_get(j, "timeline");
    for (size_t i = 0; i < json_array_size(tl); i++) {
        json_t *p = json_array_get(tl, i);
        uint64_t s = 0;
        json_object_foreach(json_object_get(p, "categories"), name, c) s +=
            (uint64_t)json_integer_value(c);
        assert_int_equal(s, jint(p, "live_bytes"));
    }
    json_t *site = json_array_get(json_object_get(j, "sites"), 0);
    assert_non_null(json_object_get(site, "evidence_kind"));
    json_decref(j);
    prof_result_free(&r);
}

static void test_attribution_report_text_bar(void **state)
{
    (void)state;
    prof_result_t r;
    make_result(&r);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(report_text_write(&r, f, NULL), 0);
    fclose(f);
    assert_non_null(strstr(buf, "Peak by category:"));
    /* 60 cells: weights 30%, gradients 30%, activations 20%, data 10%,
     * and the unannotated 10% (no evidence: weights by behaviour). */
    char *bar = strstr(buf, "  [");
    assert_non_null(bar);
    char *end = strchr(bar, ']');
    assert_non_null(end);
    assert_int_equal(end - bar - 3, 60);
    size_t n[128] = {0};
    for (char *p = bar + 3; p < end; p++)
        n[(unsigned char)*p]++;
    assert_int_equal(n['W'], 24);
    assert_int_equal(n['G'], 18);
    assert_int_equal(n['A'], 12);
    assert_int_equal(n['D'], 6);
    assert_non_null(strstr(buf, "Steps            2 (annotations)"));
    assert_non_null(strstr(buf, "[weights]"));
    free(buf);
    prof_result_free(&r);
}

/* Without attribution nothing changes: {} and no bar. */
static void test_attribution_report_absent(void **state)
{
    (void)state;
    prof_result_t r = {0};
    json_t *j = report_json_build(&r);
    assert_int_equal(json_object_size(json_object_get(j, "categories")), 0);
    assert_null(json_object_get(j, "steps"));
    json_decref(j);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(report_text_write(&r, f, NULL), 0);
    fclose(f);
    assert_null(strstr(buf, "Peak by category"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attribution_report_json),
        cmocka_unit_test(test_attribution_report_text_bar),
        cmocka_unit_test(test_attribution_report_absent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
