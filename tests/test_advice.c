/*
 * test_advice.c - the advisor (profiler/advice.h) on hand-built results:
 * each recommendation's arithmetic, only what applies, the order, budget
 * plans that fit or fall short, mlmem-train flags, and the JSON report's
 * recommendations read back by report_json_read().
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

#include "profiler/advice.h"
#include "reports/report.h"

#define MiB (1024ull * 1024ull)

static const char *const names[MLMEM_CATEGORY_COUNT] = {
    "other", "weights", "gradients", "optimizer_state", "activations", "data", "temporaries",
};

/* A result with these bytes at the peak per category (the peak is their
 * sum) and this command line; 'sites' zeroed sites are added. */
static void make(prof_result_t *r, const char *cmd, uint64_t w, uint64_t g, uint64_t opt,
                 uint64_t act, uint64_t data, uint64_t tmp)
{
    memset(r, 0, sizeof *r);
    uint64_t b[MLMEM_CATEGORY_COUNT] = {0, w, g, opt, act, data, tmp};
    for (int k = 0; k < MLMEM_CATEGORY_COUNT; k++) {
        r->categories[k].name = names[k];
        r->categories[k].bytes_at_peak = b[k];
        r->summary.peak_bytes += b[k];
    }
    r->category_count = MLMEM_CATEGORY_COUNT;
    r->process.command = cmd ? strdup(cmd) : NULL;
}

/* The only recommendation of 'kind' whose flags (or title) contain 'key';
 * fails the test if there is none or several. */
static const prof_recommendation_t *find(const prof_result_t *r, prof_advice_kind_t kind,
                                         const char *key)
{
    const prof_recommendation_t *hit = NULL;
    for (size_t i = 0; i < r->recommendation_count; i++) {
        const prof_recommendation_t *a = &r->recommendations[i];
        if (a->kind != kind)
            continue;
        if (key && !(a->flags && strstr(a->flags, key)) && !strstr(a->title, key))
            continue;
        assert_null(hit);
        hit = a;
    }
    assert_non_null(hit);
    return hit;
}

static int count_kind(const prof_result_t *r, prof_advice_kind_t kind)
{
    int n = 0;
    for (size_t i = 0; i < r->recommendation_count; i++)
        n += r->recommendations[i].kind == kind;
    return n;
}

#define TRAIN "/x/bin/mlmem-train --epochs 1"

static void test_advice_checkpointing_takes_l_from_depth(void **state)
{
    prof_result_t r;
    /* --depth 16: z and act(z) per layer (32 units); segments of 4 keep 3
     * segment inputs + one recomputed segment less its last output (7
     * units): 10/32 of the activations */
    make(&r, TRAIN " --depth 16", 10 * MiB, 10 * MiB, 0, 64 * MiB, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    const prof_recommendation_t *a = find(&r, PROF_ADVICE_CHECKPOINTING, NULL);
    assert_int_equal(a->bytes_saved, 44 * MiB);
    assert_int_equal(a->predicted_peak_bytes, 40 * MiB);
    assert_string_equal(a->flags, "--checkpointing sqrt");
    assert_true(a->extra_compute >= 0.2 && a->extra_compute <= 0.33);
    assert_non_null(strstr(a->reasoning, "--depth"));
    prof_result_free(&r);
}

static void test_advice_checkpointing_takes_l_from_activation_sites(void **state)
{
    prof_result_t r;
    make(&r, "python3 train.py", 10 * MiB, 10 * MiB, 0, 64 * MiB, 0, 0);
    r.sites = calloc(16, sizeof *r.sites);
    r.site_count = 16;
    for (int i = 0; i < 16; i++) {
        r.sites[i].category = "activations";
        r.sites[i].live_bytes_at_peak = 4 * MiB;
    }
    assert_int_equal(prof_advise(&r), 0);
    const prof_recommendation_t *a = find(&r, PROF_ADVICE_CHECKPOINTING, NULL);
    assert_int_equal(a->bytes_saved, 32 * MiB);
    assert_null(a->flags);
    assert_non_null(strstr(a->reasoning, "activation sites"));
    prof_result_free(&r);
}

static void test_advice_checkpointing_not_for_shallow_or_already_on(void **state)
{
    prof_result_t r;
    make(&r, TRAIN " --depth 2", 10 * MiB, 10 * MiB, 0, 100 * MiB, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(count_kind(&r, PROF_ADVICE_CHECKPOINTING), 0);
    prof_result_free(&r);
    make(&r, TRAIN " --depth 15 --checkpointing sqrt", 10 * MiB, 10 * MiB, 0, 100 * MiB, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(count_kind(&r, PROF_ADVICE_CHECKPOINTING), 0);
    prof_result_free(&r);
}

static void test_advice_precision_halves_activations(void **state)
{
    prof_result_t r;
    make(&r, TRAIN " --width 1024", 10 * MiB, 10 * MiB, 0, 40 * MiB, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    const prof_recommendation_t *a = find(&r, PROF_ADVICE_PRECISION, "--act-dtype");
    /* half the activations, less an fp32 scratch layer (128 x 1024 floats) */
    assert_int_equal(a->bytes_saved, 20 * MiB - 128 * 1024 * 4);
    assert_string_equal(a->flags, "--act-dtype bf16");
    prof_result_free(&r);

    /* another program: exactly half, fp32 assumed */
    make(&r, "./train", 10 * MiB, 10 * MiB, 0, 40 * MiB, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    a = find(&r, PROF_ADVICE_PRECISION, "activations");
    assert_int_equal(a->bytes_saved, 20 * MiB);
    assert_null(a->flags);
    prof_result_free(&r);

    /* Already bf16: only the gradients' precision is left to lower. */
    make(&r, TRAIN " --act-dtype bf16", 10 * MiB, 10 * MiB, 0, 40 * MiB, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(count_kind(&r, PROF_ADVICE_PRECISION), 1);
    assert_non_null(find(&r, PROF_ADVICE_PRECISION, "--grad-dtype"));
    prof_result_free(&r);
}

/* Gradients in bf16: half of them, less the trainer's fp32 chunk of
 * scratch (64 Ki floats); the weights are never lowered for memory (a
 * working copy next to the fp32 masters would add to them). */
static void test_advice_precision_halves_gradients(void **state)
{
    (void)state;
    prof_result_t r;
    make(&r, TRAIN, 10 * MiB, 10 * MiB, 20 * MiB, 0, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    const prof_recommendation_t *a = find(&r, PROF_ADVICE_PRECISION, "--grad-dtype");
    assert_int_equal(a->bytes_saved, 5 * MiB - 65536 * 4);
    assert_string_equal(a->flags, "--grad-dtype bf16");
    assert_non_null(strstr(a->reasoning, "masters"));
    assert_int_equal(count_kind(&r, PROF_ADVICE_PRECISION), 2); /* and the optimizer state */
    prof_result_free(&r);

    make(&r, TRAIN " --grad-dtype bf16", 10 * MiB, 5 * MiB, 20 * MiB, 0, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(count_kind(&r, PROF_ADVICE_PRECISION), 1); /* only the optimizer's */
    prof_result_free(&r);
}

static void test_advice_batching_halves_activations_and_input_batch(void **state)
{
    prof_result_t r;
    make(&r, TRAIN " --batch 256 --micro-batch 128", 10 * MiB, 10 * MiB, 0, 40 * MiB, 30 * MiB, 0);
    assert_int_equal(prof_advise(&r), 0);
    const prof_recommendation_t *a = find(&r, PROF_ADVICE_BATCHING, NULL);
    /* activations / 2 plus half of a 128-row float input batch (784 each) */
    assert_int_equal(a->bytes_saved, 20 * MiB + 64 * 784 * 4);
    assert_string_equal(a->flags, "--micro-batch 64");
    prof_result_free(&r);

    /* a micro-batch of 1 cannot be halved */
    make(&r, TRAIN " --batch 8 --micro-batch 1", 10 * MiB, 10 * MiB, 0, 40 * MiB, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(count_kind(&r, PROF_ADVICE_BATCHING), 0);
    prof_result_free(&r);
}

static void test_advice_streaming_bounds_the_dataset(void **state)
{
    prof_result_t r;
    make(&r, TRAIN, 10 * MiB, 10 * MiB, 0, 0, 200 * MiB, 0);
    assert_int_equal(prof_advise(&r), 0);
    const prof_recommendation_t *a = find(&r, PROF_ADVICE_DATA_STREAMING, NULL);
    /* train and test stream buffers, four gz readers, the batch buffer */
    uint64_t bound = (1024 + 128) * 785 + 4 * 104 * 1024 + 128 * 784 * 4;
    assert_int_equal(a->predicted_peak_bytes, 20 * MiB + bound);
    assert_string_equal(a->flags, "--data stream");
    prof_result_free(&r);

    /* another program: about 1% of the dataset, said as an assumption */
    make(&r, "./train", 10 * MiB, 10 * MiB, 0, 0, 200 * MiB, 0);
    assert_int_equal(prof_advise(&r), 0);
    a = find(&r, PROF_ADVICE_DATA_STREAMING, NULL);
    assert_int_equal(a->predicted_peak_bytes, 20 * MiB + 2 * MiB);
    assert_non_null(strstr(a->reasoning, "assumption"));
    prof_result_free(&r);

    make(&r, TRAIN " --data stream", 10 * MiB, 10 * MiB, 0, 0, 200 * MiB, 0);
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(count_kind(&r, PROF_ADVICE_DATA_STREAMING), 0);
    prof_result_free(&r);
}

static void test_advice_optimizer_adam_to_momentum_and_sgd(void **state)
{
    prof_result_t r;
    make(&r, TRAIN " --optimizer adamw", 10 * MiB, 10 * MiB, 20 * MiB, 0, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(find(&r, PROF_ADVICE_OPTIMIZER, "momentum")->bytes_saved, 10 * MiB);
    assert_int_equal(find(&r, PROF_ADVICE_OPTIMIZER, "--optimizer sgd")->bytes_saved, 20 * MiB);
    assert_int_equal(find(&r, PROF_ADVICE_PRECISION, "--opt-dtype bf16")->bytes_saved, 10 * MiB);
    prof_result_free(&r);

    /* momentum: only plain SGD is lighter */
    make(&r, TRAIN " --optimizer momentum", 10 * MiB, 10 * MiB, 10 * MiB, 0, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(count_kind(&r, PROF_ADVICE_OPTIMIZER), 1);
    assert_int_equal(find(&r, PROF_ADVICE_OPTIMIZER, "sgd")->bytes_saved, 10 * MiB);
    prof_result_free(&r);

    /* another program: Adam recognised by state = 2x weights */
    make(&r, "./train", 10 * MiB, 10 * MiB, 20 * MiB, 0, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(count_kind(&r, PROF_ADVICE_OPTIMIZER), 2);
    prof_result_free(&r);
}

static void test_advice_only_what_applies(void **state)
{
    prof_result_t r;
    /* weights and gradients only, small: nothing applies */
    make(&r, TRAIN " --optimizer sgd", 512 * 1024, 512 * 1024, 0, 0, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(r.recommendation_count, 0);
    prof_result_free(&r);

    /* no attribution: no advice */
    make(&r, TRAIN, 10 * MiB, 10 * MiB, 20 * MiB, 40 * MiB, 0, 0);
    r.category_count = 0;
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(r.recommendation_count, 0);
    prof_result_free(&r);
}

static void test_advice_compression_is_for_deployment(void **state)
{
    prof_result_t r;
    make(&r, TRAIN " --optimizer sgd", 40 * MiB, 40 * MiB, 0, 0, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    const prof_recommendation_t *q = find(&r, PROF_ADVICE_COMPRESSION, "int8");
    assert_int_equal(q->bytes_saved, 30 * MiB);
    assert_true(q->deployment_only);
    const prof_recommendation_t *p = find(&r, PROF_ADVICE_COMPRESSION, "--prune 0.5");
    assert_int_equal(p->bytes_saved, 10 * MiB); /* half kept, 6 bytes each: 75% */
    /* Compression never enters a plan: only the gradients' bf16 storage
     * does (80 -> 60 MiB and a 256 KiB scratch). */
    prof_advice_plan_t plan;
    assert_int_equal(prof_advice_plan(&r, 50 * MiB, &plan), 0);
    assert_false(plan.fits);
    assert_int_equal(plan.chosen_count, 1);
    assert_int_equal(r.recommendations[plan.chosen[0]].kind, PROF_ADVICE_PRECISION);
    assert_int_equal(plan.shortfall, 10 * MiB + 65536 * 4);
    prof_advice_plan_free(&plan);
    prof_result_free(&r);
}

static void test_advice_churn_names_the_glibc_tunable(void **state)
{
    prof_result_t r;
    make(&r, "./train", 10 * MiB, 10 * MiB, 0, 0, 0, 0);
    r.steps.count = 50;
    r.steps.period_ns = 1000000;
    r.sites = calloc(2, sizeof *r.sites);
    r.site_count = 2;
    r.sites[0].allocations = 100;
    r.sites[0].frees = 100;
    r.sites[0].largest_allocation = 3 * MiB / 2;
    r.sites[0].bytes_allocated = 150 * MiB;
    r.sites[0].lifetime_sum_ns = 100 * 1000;
    /* long-lived large blocks are not churn */
    r.sites[1].allocations = 100;
    r.sites[1].frees = 10;
    r.sites[1].largest_allocation = 4 * MiB;
    assert_int_equal(prof_advise(&r), 0);
    const prof_recommendation_t *a = find(&r, PROF_ADVICE_CHURN, NULL);
    assert_int_equal(a->bytes_saved, 0);
    assert_int_equal(a->predicted_peak_bytes, r.summary.peak_bytes);
    assert_non_null(strstr(a->apply, "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=2097152"));
    assert_non_null(strstr(a->reasoning, "3.0 MiB per step"));
    prof_result_free(&r);
}

/* The peak in evaluation, above the training steps': halving the
 * evaluation batch halves its per-batch tensors (not the persistent
 * OpenBLAS-like buffer among the temporaries), down to the steps' peak at
 * most; checkpointing and micro-batching, changes to the training step,
 * are not offered. */
static void test_advice_eval_batch_when_peak_in_evaluation(void **state)
{
    for (int variant = 0; variant < 2; variant++) {
        prof_result_t r;
        make(&r, "python3 train.py", 10 * MiB, 10 * MiB, 0, 40 * MiB, 0, 20 * MiB);
        r.steps.count = 100;
        r.steps.eval_batches = 8;
        r.steps.peak_where = "evaluation";
        r.steps.peak_count = 100;
        r.steps.peak_bytes = calloc(100, sizeof(uint64_t));
        for (int i = 0; i < 100; i++)
            r.steps.peak_bytes[i] = (variant ? 75 : 60) * MiB;
        r.sites = calloc(2, sizeof *r.sites);
        r.site_count = 2;
        r.sites[0].category = "activations"; /* the forward pass's, 100 + 8 */
        r.sites[0].allocations = r.sites[0].frees = 108;
        r.sites[0].live_bytes_at_peak = 40 * MiB;
        r.sites[1].category = "temporaries"; /* a library's persistent buffer */
        r.sites[1].allocations = 1;
        r.sites[1].live_bytes_at_peak = 20 * MiB;
        assert_int_equal(prof_advise(&r), 0);
        const prof_recommendation_t *a = find(&r, PROF_ADVICE_EVAL_BATCH, NULL);
        assert_int_equal(a->predicted_peak_bytes, (variant ? 75 : 60) * MiB);
        assert_non_null(strstr(a->reasoning, "8 forward-only batches"));
        assert_int_equal(count_kind(&r, PROF_ADVICE_CHECKPOINTING), 0);
        assert_int_equal(count_kind(&r, PROF_ADVICE_BATCHING), 0);
        /* `mlmem advise REPORT.json` gives the same from the report. */
        char path[] = "/tmp/test_advice_XXXXXX", err[512];
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(report_json_write(&r, path, err, sizeof err), 0);
        prof_result_t back;
        assert_int_equal(report_json_read(path, &back, err, sizeof err), 0);
        unlink(path);
        assert_int_equal(prof_advise(&back), 0);
        assert_int_equal(find(&back, PROF_ADVICE_EVAL_BATCH, NULL)->predicted_peak_bytes,
                         a->predicted_peak_bytes);
        prof_result_free(&back);
        prof_result_free(&r);
    }

    /* A peak in a step: no such advice, and micro-batching is back. */
    prof_result_t r;
    make(&r, "python3 train.py", 10 * MiB, 10 * MiB, 0, 40 * MiB, 0, 20 * MiB);
    r.steps.count = 100;
    r.steps.peak_where = "step";
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(count_kind(&r, PROF_ADVICE_EVAL_BATCH), 0);
    assert_int_equal(count_kind(&r, PROF_ADVICE_BATCHING), 1);
    prof_result_free(&r);
}

static void test_advice_leak_from_step_peaks(void **state)
{
    prof_result_t r;
    make(&r, "./train", 10 * MiB, 10 * MiB, 0, 0, 0, 30 * MiB);
    r.steps.count = 6;
    r.steps.peak_count = 6;
    r.steps.peak_bytes = calloc(6, sizeof(uint64_t));
    /* a warm-up step, then 2 MiB more every step */
    uint64_t p[6] = {30, 40, 42, 44, 46, 48};
    for (int i = 0; i < 6; i++)
        r.steps.peak_bytes[i] = p[i] * MiB;
    assert_int_equal(prof_advise(&r), 0);
    const prof_recommendation_t *a = find(&r, PROF_ADVICE_LEAK, NULL);
    assert_int_equal(a->bytes_saved, 10 * MiB); /* 2 MiB x 5 steps */
    assert_non_null(strstr(a->reasoning, "2.00 MiB a step"));
    prof_result_free(&r);

    /* flat steps: no leak */
    make(&r, "./train", 10 * MiB, 10 * MiB, 0, 0, 0, 30 * MiB);
    r.steps.count = 6;
    r.steps.peak_count = 6;
    r.steps.peak_bytes = calloc(6, sizeof(uint64_t));
    for (int i = 0; i < 6; i++)
        r.steps.peak_bytes[i] = 50 * MiB;
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(count_kind(&r, PROF_ADVICE_LEAK), 0);
    prof_result_free(&r);
}

/* Unannotated: the timeline's troughs rise through every eighth of the
 * steps' span. */
static void test_advice_leak_from_timeline_troughs(void **state)
{
    for (int leaking = 0; leaking < 2; leaking++) {
        prof_result_t r;
        make(&r, "./train", 10 * MiB, 10 * MiB, 0, 0, 0, 30 * MiB);
        r.steps.count = 16;
        r.steps.first_step_ns = 0;
        r.steps.last_step_ns = 16000;
        r.timeline = calloc(64, sizeof *r.timeline);
        r.timeline_count = 64;
        for (int i = 0; i < 64; i++) {
            /* a saw tooth: 4 points a step, the first of each the trough;
             * leaking: 1 MiB more each step */
            r.timeline[i].time_ns = (uint64_t)i * 250;
            r.timeline[i].live_bytes = (i % 4 ? 40 : 20) * MiB + (leaking ? (uint64_t)(i / 4) * MiB : 0);
        }
        assert_int_equal(prof_advise(&r), 0);
        if (leaking) {
            const prof_recommendation_t *a = find(&r, PROF_ADVICE_LEAK, NULL);
            /* troughs 14 MiB apart over 7/8 of the span: 16 MiB */
            assert_int_equal(a->bytes_saved, 16 * MiB);
        } else {
            assert_int_equal(count_kind(&r, PROF_ADVICE_LEAK), 0);
        }
        prof_result_free(&r);
    }
}

static void test_advice_sorted_by_bytes_saved(void **state)
{
    prof_result_t r;
    make(&r, TRAIN " --depth 16", 10 * MiB, 10 * MiB, 20 * MiB, 64 * MiB, 100 * MiB, 0);
    assert_int_equal(prof_advise(&r), 0);
    assert_true(r.recommendation_count >= 6);
    for (size_t i = 1; i < r.recommendation_count; i++)
        assert_true(r.recommendations[i - 1].bytes_saved >= r.recommendations[i].bytes_saved);
    assert_int_equal(r.recommendations[0].kind, PROF_ADVICE_DATA_STREAMING);
    for (size_t i = 0; i < r.recommendation_count; i++) {
        const prof_recommendation_t *a = &r.recommendations[i];
        assert_int_equal(a->predicted_peak_bytes + a->bytes_saved, r.summary.peak_bytes);
        assert_true(a->confidence > 0 && a->confidence <= 1);
        assert_non_null(a->cost);
        assert_non_null(a->reasoning);
        assert_non_null(a->apply);
    }
    prof_result_free(&r);
}

static void test_advice_combined_changes_multiply(void **state)
{
    prof_result_t r;
    make(&r, TRAIN " --depth 16", 10 * MiB, 10 * MiB, 0, 64 * MiB, 0, 0);
    assert_int_equal(prof_advise(&r), 0);
    size_t idx[2] = {(size_t)(find(&r, PROF_ADVICE_CHECKPOINTING, NULL) - r.recommendations),
                     (size_t)(find(&r, PROF_ADVICE_PRECISION, "--act-dtype") - r.recommendations)};
    /* 64 MiB * 10/32 (checkpointing) * 0.5 (bf16) = 10 MiB, plus bf16's
     * fp32 scratch layer (128 rows x 512 x 4 bytes) */
    assert_int_equal(prof_advice_combined_peak(&r, idx, 2), 30 * MiB + 128 * 512 * 4);
    prof_result_free(&r);
}

/* The largest batch for a budget: activations (64 MiB for 128 rows) and
 * the input buffer (784 floats a row) scale with the rows of a pass. */
static void test_advice_plan_largest_batch(void **state)
{
    (void)state;
    prof_result_t r;
    make(&r, TRAIN " --depth 16", 10 * MiB, 10 * MiB, 20 * MiB, 64 * MiB, 100 * MiB, 0);
    assert_int_equal(prof_advise(&r), 0);
    const uint64_t peak = r.summary.peak_bytes;
    const double per_row = (64.0 * MiB + 128.0 * 784 * 4) / 128;
    prof_advice_plan_t plan;

    /* 150 MiB: 54 MiB less needs 128 - m >= 107.4 rows fewer, so m <= 20;
     * the largest divisor of 128 is 16 (8 passes per batch). */
    assert_int_equal(prof_advice_plan(&r, 150 * MiB, &plan), 0);
    assert_int_equal(plan.largest_batch, 16);
    assert_int_equal(plan.largest_is_micro, 1);
    assert_int_equal(plan.largest_batch_peak, (uint64_t)((double)peak - per_row * 112));
    assert_true(plan.largest_batch_peak <= 150 * MiB);
    assert_non_null(strstr(plan.batch_statement, "--micro-batch 16"));
    prof_advice_plan_free(&plan);

    /* 300 MiB: the run fits; 96 MiB more holds 190 more rows. */
    assert_int_equal(prof_advice_plan(&r, 300 * MiB, &plan), 0);
    assert_int_equal(plan.largest_batch, 128 + 190);
    assert_int_equal(plan.largest_is_micro, 0);
    assert_true(plan.largest_batch_peak <= 300 * MiB);
    assert_true((double)plan.largest_batch_peak + per_row > 300.0 * MiB);
    assert_non_null(strstr(plan.batch_statement, "--batch 318"));
    prof_advice_plan_free(&plan);

    /* Not an mlmem-train run: the batch is unknown, nothing is said. */
    prof_result_free(&r);
    make(&r, "/usr/bin/python3 train.py", 10 * MiB, 10 * MiB, 20 * MiB, 64 * MiB, 100 * MiB, 0);
    assert_int_equal(prof_advise(&r), 0);
    assert_int_equal(prof_advice_plan(&r, 150 * MiB, &plan), 0);
    assert_int_equal(plan.largest_batch, 0);
    assert_null(plan.batch_statement);
    prof_advice_plan_free(&plan);
    prof_result_free(&r);
}

static void test_advice_plan_takes_the_cheapest_that_fits(void **state)
{
    prof_result_t r;
    /* 20 + 20 (adam) + 64 act + 100 data = 204 MiB */
    make(&r, TRAIN " --depth 16", 10 * MiB, 10 * MiB, 20 * MiB, 64 * MiB, 100 * MiB, 0);
    assert_int_equal(prof_advise(&r), 0);
    prof_advice_plan_t plan;
    /* streaming alone (free) reaches ~105 MiB */
    assert_int_equal(prof_advice_plan(&r, 110 * MiB, &plan), 0);
    assert_true(plan.fits);
    assert_int_equal(plan.chosen_count, 1);
    assert_int_equal(r.recommendations[plan.chosen[0]].kind, PROF_ADVICE_DATA_STREAMING);
    assert_true(plan.predicted_peak <= 110 * MiB);
    prof_advice_plan_free(&plan);

    /* 100 MiB: streaming + bf16 optimizer state (~95 MiB) rather than
     * anything with a compute cost or a convergence risk */
    assert_int_equal(prof_advice_plan(&r, 100 * MiB, &plan), 0);
    assert_true(plan.fits);
    assert_int_equal(plan.chosen_count, 2);
    for (size_t i = 0; i < plan.chosen_count; i++) {
        const prof_recommendation_t *a = &r.recommendations[plan.chosen[i]];
        assert_true(a->kind == PROF_ADVICE_DATA_STREAMING ||
                    (a->kind == PROF_ADVICE_PRECISION && strstr(a->flags, "--opt-dtype")));
    }
    prof_advice_plan_free(&plan);

    /* already fits */
    assert_int_equal(prof_advice_plan(&r, 300 * MiB, &plan), 0);
    assert_true(plan.fits);
    assert_int_equal(plan.chosen_count, 0);
    assert_int_equal(plan.predicted_peak, r.summary.peak_bytes);
    prof_advice_plan_free(&plan);
    prof_result_free(&r);
}

static void test_advice_plan_says_how_far_it_falls_short(void **state)
{
    prof_result_t r;
    make(&r, TRAIN " --depth 16", 10 * MiB, 10 * MiB, 20 * MiB, 64 * MiB, 100 * MiB, 0);
    assert_int_equal(prof_advise(&r), 0);
    prof_advice_plan_t plan;
    assert_int_equal(prof_advice_plan(&r, 10 * MiB, &plan), 0);
    assert_false(plan.fits);
    /* everything: 20 MiB weights+grads, no optimizer state, activations
     * 64 * 10/32 * 0.5 * 0.5 = 5 MiB and bf16's fp32 scratch layer, data
     * bounded, minus half an input batch */
    uint64_t bound = (1024 + 128) * 785 + 4 * 104 * 1024 + 128 * 784 * 4;
    /* ... and gradients in bf16: 5 MiB fewer, a 256 KiB fp32 chunk more */
    uint64_t expect = 15 * MiB + 65536 * 4 + 5 * MiB + 128 * 512 * 4 + bound - 64 * 784 * 4;
    assert_int_equal(plan.predicted_peak, expect);
    assert_int_equal(plan.shortfall, expect - 10 * MiB);
    assert_non_null(strstr(plan.statement, "No combination fits"));
    prof_advice_plan_free(&plan);
    prof_result_free(&r);
}

static void test_advice_flags_only_for_mlmem_train(void **state)
{
    prof_result_t r;
    make(&r, "/usr/bin/python3 train.py --depth 15", 10 * MiB, 10 * MiB, 20 * MiB, 64 * MiB,
         100 * MiB, 0);
    assert_int_equal(prof_advise(&r), 0);
    assert_true(r.recommendation_count > 0);
    for (size_t i = 0; i < r.recommendation_count; i++)
        assert_null(r.recommendations[i].flags);
    prof_result_free(&r);

    make(&r, "mlmem-train", 10 * MiB, 10 * MiB, 20 * MiB, 64 * MiB, 100 * MiB, 0);
    assert_int_equal(prof_advise(&r), 0);
    for (size_t i = 0; i < r.recommendation_count; i++)
        assert_non_null(r.recommendations[i].flags);
    prof_result_free(&r);
}

/* A report written with its recommendations reads back into the same
 * advice. */
static void test_advice_json_report_round_trip(void **state)
{
    prof_result_t r, back;
    make(&r, TRAIN " --depth 16", 10 * MiB, 10 * MiB, 20 * MiB, 64 * MiB, 100 * MiB, 0);
    assert_int_equal(prof_advise(&r), 0);
    char path[] = "/tmp/test_advice_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char err[512];
    assert_int_equal(report_json_write(&r, path, err, sizeof err), 0);
    json_t *doc = json_load_file(path, 0, NULL);
    json_t *recs = json_object_get(doc, "recommendations");
    assert_int_equal(json_array_size(recs), r.recommendation_count);
    json_t *first = json_array_get(recs, 0);
    assert_string_equal(json_string_value(json_object_get(first, "kind")), "data_streaming");
    assert_int_equal(json_integer_value(json_object_get(first, "bytes_saved")),
                     r.recommendations[0].bytes_saved);
    json_decref(doc);

    assert_int_equal(report_json_read(path, &back, err, sizeof err), 0);
    assert_int_equal(prof_advise(&back), 0);
    assert_int_equal(back.recommendation_count, r.recommendation_count);
    for (size_t i = 0; i < r.recommendation_count; i++)
        assert_int_equal(back.recommendations[i].predicted_peak_bytes,
                         r.recommendations[i].predicted_peak_bytes);
    prof_result_free(&back);

    /* a broken report: the error names the file and the field */
    FILE *f = fopen(path, "w");
    fputs("{\"schema\": \"mlmem-report/1\", \"process\": {}, \"summary\": {}}", f);
    fclose(f);
    assert_int_equal(report_json_read(path, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "summary.peak_bytes"));
    unlink(path);
    prof_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_advice_checkpointing_takes_l_from_depth),
        cmocka_unit_test(test_advice_checkpointing_takes_l_from_activation_sites),
        cmocka_unit_test(test_advice_checkpointing_not_for_shallow_or_already_on),
        cmocka_unit_test(test_advice_precision_halves_activations),
        cmocka_unit_test(test_advice_precision_halves_gradients),
        cmocka_unit_test(test_advice_batching_halves_activations_and_input_batch),
        cmocka_unit_test(test_advice_streaming_bounds_the_dataset),
        cmocka_unit_test(test_advice_optimizer_adam_to_momentum_and_sgd),
        cmocka_unit_test(test_advice_only_what_applies),
        cmocka_unit_test(test_advice_compression_is_for_deployment),
        cmocka_unit_test(test_advice_churn_names_the_glibc_tunable),
        cmocka_unit_test(test_advice_eval_batch_when_peak_in_evaluation),
        cmocka_unit_test(test_advice_leak_from_step_peaks),
        cmocka_unit_test(test_advice_leak_from_timeline_troughs),
        cmocka_unit_test(test_advice_sorted_by_bytes_saved),
        cmocka_unit_test(test_advice_combined_changes_multiply),
        cmocka_unit_test(test_advice_plan_takes_the_cheapest_that_fits),
        cmocka_unit_test(test_advice_plan_largest_batch),
        cmocka_unit_test(test_advice_plan_says_how_far_it_falls_short),
        cmocka_unit_test(test_advice_flags_only_for_mlmem_train),
        cmocka_unit_test(test_advice_json_report_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
