/*
 * test_attribution.c - attribution (profiler/attribution.h) and the
 * annotation side of accounting (profiler/accounting.h): region nesting,
 * tags over regions, the exact composition of the peak, annotated steps;
 * step detection on synthetic histories (regular, jittered, warm-up steps,
 * evaluation passes); each behaviour rule; the rules-file parser.
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

#include "profiler/accounting.h"
#include "profiler/attribution.h"
#include "profiler/heap_table.h" /* PROF_CAT_NONE */

/* Categories plus "not annotated" (PROF_CAT_NONE, the last). */
#define TST_SLOTS (MLMEM_CATEGORY_COUNT + 1)
#include "profiler/prof_result.h"
#include "acct_stream.h"


static void t_begin(tst_t *s, uint32_t tid, int cat)
{
    tst_ev(s, (prof_event_t){.type = MLMEM_EV_REGION_BEGIN, .tid = tid, .arg = (uint64_t)cat});
}

static void t_end(tst_t *s, uint32_t tid)
{
    tst_ev(s, (prof_event_t){.type = MLMEM_EV_REGION_END, .tid = tid});
}

static void t_tag(tst_t *s, uint32_t tid, uint64_t addr, int cat)
{
    tst_ev(s, (prof_event_t){.type = MLMEM_EV_TAG, .tid = tid, .addr = addr,
                             .arg = (uint64_t)cat});
}

static const prof_site_t *site_of(const prof_result_t *r, uint32_t stack)
{
    for (size_t i = 0; i < r->site_count; i++)
        if (r->sites[i].stack_id == stack)
            return &r->sites[i];
    fail_msg("no site for stack %u", stack);
    return NULL;
}

/* ---- annotations in accounting ------------------------------------------- */

/* Regions nest per thread; another thread's allocations are not inside
 * them; an end without a begin is counted and ignored. */
static void test_attribution_region_nesting(void **state)
{
    (void)state;
    tst_t s;
    tst_init(&s, 0);
    t_end(&s, 1); /* unmatched */
    t_begin(&s, 1, MLMEM_CAT_WEIGHTS);
    t_alloc(&s, 1, 1, 0x1000, 100);
    t_begin(&s, 1, MLMEM_CAT_GRADIENTS);
    t_alloc(&s, 1, 2, 0x2000, 200);
    t_alloc(&s, 2, 5, 0x5000, 7); /* other thread: not annotated */
    t_end(&s, 1);
    t_alloc(&s, 1, 3, 0x3000, 300);
    t_end(&s, 1);
    t_alloc(&s, 1, 4, 0x4000, 400);

    prof_result_t r = {0};
    assert_int_equal(prof_acct_result(s.a, &r), 0);
    assert_int_equal(r.annotated_at_end[MLMEM_CAT_WEIGHTS], 400);
    assert_int_equal(r.annotated_at_end[MLMEM_CAT_GRADIENTS], 200);
    assert_int_equal(r.attribution.region_unmatched_ends, 1);
    assert_int_equal(r.attribution.region_allocations, 3);
    assert_int_equal(site_of(&r, 4)->unannotated_bytes, 400);
    assert_int_equal(site_of(&r, 5)->unannotated_bytes, 7);
    assert_int_equal(site_of(&r, 1)->unannotated_bytes, 0);
    assert_int_equal(site_of(&r, 2)->annotated_category, MLMEM_CAT_GRADIENTS);
    assert_int_equal(site_of(&r, 4)->annotated_category, -1);
    prof_result_free(&r);
    prof_acct_free(s.a);
}

/* Beyond 16 open regions the 16th applies; deeper begins are counted and
 * their ends unwind before the kept ones. */
static void test_attribution_region_overflow(void **state)
{
    (void)state;
    tst_t s;
    tst_init(&s, 0);
    for (int i = 0; i < 15; i++)
        t_begin(&s, 1, MLMEM_CAT_DATA);
    t_begin(&s, 1, MLMEM_CAT_ACTIVATIONS); /* the 16th */
    t_begin(&s, 1, MLMEM_CAT_WEIGHTS);     /* 17th: not kept */
    t_begin(&s, 1, MLMEM_CAT_WEIGHTS);     /* 18th */
    t_alloc(&s, 1, 1, 0x1000, 10);
    t_end(&s, 1);
    t_end(&s, 1);
    t_alloc(&s, 1, 1, 0x2000, 20); /* still the 16th */
    t_end(&s, 1);
    t_alloc(&s, 1, 1, 0x3000, 40); /* the 15th: data */
    prof_result_t r = {0};
    assert_int_equal(prof_acct_result(s.a, &r), 0);
    assert_int_equal(r.attribution.region_overflows, 2);
    assert_int_equal(r.annotated_at_end[MLMEM_CAT_ACTIVATIONS], 30);
    assert_int_equal(r.annotated_at_end[MLMEM_CAT_DATA], 40);
    assert_int_equal(r.annotated_at_end[MLMEM_CAT_WEIGHTS], 0);
    prof_result_free(&r);
    prof_acct_free(s.a);
}

/* A tag re-categorizes the live block at its start address, over its
 * region; inner addresses and dead blocks are counted as unknown; a tagged
 * block that is reallocated outside a region keeps its category; a tagged
 * mapping moves all its bytes. */
static void test_attribution_tag_overrides_region(void **state)
{
    (void)state;
    tst_t s;
    tst_init(&s, 0);
    t_begin(&s, 1, MLMEM_CAT_WEIGHTS);
    t_alloc(&s, 1, 1, 0x1000, 100);
    t_end(&s, 1);
    t_tag(&s, 1, 0x1000, MLMEM_CAT_OPTIMIZER_STATE);
    t_tag(&s, 1, 0x1008, MLMEM_CAT_DATA); /* inside the block: unknown */
    t_tag(&s, 1, 0x9000, MLMEM_CAT_DATA); /* never allocated */
    t_alloc(&s, 1, 2, 0x2000, 50);
    t_tag(&s, 1, 0x2000, MLMEM_CAT_DATA);
    tst_ev(&s, (prof_event_t){.type = MLMEM_EV_REALLOC, .tid = 1, .stack_id = 3,
                              .old_addr = 0x2000, .addr = 0x2800, .size = 80,
                              .fn = MLMEM_FN_REALLOC});
    tst_ev(&s, (prof_event_t){.type = MLMEM_EV_MMAP, .tid = 1, .stack_id = 4,
                              .addr = 0x100000, .size = 0x3000});
    t_tag(&s, 1, 0x100000, MLMEM_CAT_ACTIVATIONS);
    tst_ev(&s, (prof_event_t){.type = MLMEM_EV_MUNMAP, .tid = 1, .addr = 0x101000,
                              .size = 0x1000}); /* cut in the middle */

    prof_result_t r = {0};
    assert_int_equal(prof_acct_result(s.a, &r), 0);
    assert_int_equal(r.annotated_at_end[MLMEM_CAT_WEIGHTS], 0);
    assert_int_equal(r.annotated_at_end[MLMEM_CAT_OPTIMIZER_STATE], 100);
    assert_int_equal(r.annotated_at_end[MLMEM_CAT_DATA], 80);
    assert_int_equal(r.annotated_at_end[MLMEM_CAT_ACTIVATIONS], 0x2000);
    assert_int_equal(r.attribution.tags, 5);
    assert_int_equal(r.attribution.tags_unknown, 2);
    assert_int_equal(site_of(&r, 4)->unannotated_bytes, 0);
    assert_int_equal(r.annotated_max[MLMEM_CAT_WEIGHTS], 100);
    prof_result_free(&r);
    prof_acct_free(s.a);
}

/* The per-category split at the global peak equals a brute-force replay,
 * sums to the peak, and each category's maximum is its own maximum. */
static void test_attribution_peak_composition_exact(void **state)
{
    (void)state;
    tst_t s;
    tst_init(&s, 0);
    enum { SLOTS = 64 };
    uint64_t live_size[SLOTS] = {0};
    int live_cat[SLOTS];
    uint64_t cat_live[TST_SLOTS] = {0}, cat_max[TST_SLOTS] = {0};
    uint64_t at_peak[TST_SLOTS] = {0}, peak = 0, total = 0;
    uint64_t x = 12345;
    for (int i = 0; i < 5000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned slot = (unsigned)(x % SLOTS);
        uint64_t addr = 0x10000 + (uint64_t)slot * 0x100;
        if (live_size[slot]) {
            if ((x >> 20) % 4 == 0) { /* re-tag */
                int cat = (int)((x >> 24) % MLMEM_CATEGORY_COUNT);
                t_tag(&s, 1, addr, cat);
                cat_live[live_cat[slot]] -= live_size[slot];
                cat_live[cat] += live_size[slot];
                live_cat[slot] = cat;
            } else {
                t_free(&s, 1, addr);
                cat_live[live_cat[slot]] -= live_size[slot];
                total -= live_size[slot];
                live_size[slot] = 0;
            }
        } else {
            int cat = (int)((x >> 8) % (MLMEM_CATEGORY_COUNT + 1)); /* 7: none */
            uint64_t size = 1 + (x >> 32) % 5000;
            if (cat < MLMEM_CATEGORY_COUNT)
                t_begin(&s, 1, cat);
            t_alloc(&s, 1, 1 + (uint32_t)(x >> 40) % 5, addr, size);
            if (cat < MLMEM_CATEGORY_COUNT)
                t_end(&s, 1);
            live_size[slot] = size;
            live_cat[slot] = cat;
            cat_live[cat] += size;
            total += size;
        }
        for (int c = 0; c < TST_SLOTS; c++)
            if (cat_live[c] > cat_max[c])
                cat_max[c] = cat_live[c];
        if (total > peak) {
            peak = total;
            memcpy(at_peak, cat_live, sizeof at_peak);
        }
    }
    prof_result_t r = {0};
    assert_int_equal(prof_acct_result(s.a, &r), 0);
    assert_int_equal(r.summary.peak_bytes, peak);
    uint64_t sum = 0, unann = 0;
    for (int c = 0; c < MLMEM_CATEGORY_COUNT; c++) {
        assert_int_equal(r.annotated_at_peak[c], at_peak[c]);
        assert_int_equal(r.annotated_max[c], cat_max[c]);
        assert_int_equal(r.annotated_at_end[c], cat_live[c]);
        sum += r.annotated_at_peak[c];
    }
    for (size_t i = 0; i < r.site_count; i++)
        unann += r.sites[i].unannotated_bytes_at_peak;
    assert_int_equal(unann, at_peak[PROF_CAT_NONE]);
    assert_int_equal(sum + unann, peak);

    /* After attribution the categories still sum to the peak, and every
     * timeline point's categories sum to its live bytes. */
    prof_attr_input_t in = {0};
    assert_int_equal(prof_attribute(&r, &in), 0);
    uint64_t total_at_peak = 0;
    for (int c = 0; c < MLMEM_CATEGORY_COUNT; c++) {
        total_at_peak += r.categories[c].bytes_at_peak;
        assert_true(r.categories[c].bytes_at_peak >= at_peak[c]);
    }
    assert_int_equal(total_at_peak, peak);
    for (size_t i = 0; i < r.timeline_count; i++) {
        uint64_t t = 0;
        for (int c = 0; c < MLMEM_CATEGORY_COUNT; c++)
            t += r.timeline[i].category_bytes[c];
        assert_int_equal(t, r.timeline[i].live_bytes);
    }
    prof_result_free(&r);
    prof_acct_free(s.a);
}

/* STEP marks: count, each step's peak (the last one runs to the end), the
 * phases seen, the mean period. */
static void test_attribution_steps_annotated(void **state)
{
    (void)state;
    tst_t s;
    tst_init(&s, 0);
    t_alloc(&s, 1, 1, 0x1000, 1000); /* setup */
    for (uint64_t step = 0; step < 3; step++) {
        tst_ev(&s, (prof_event_t){.type = MLMEM_EV_STEP, .tid = 1, .arg = step});
        tst_ev(&s, (prof_event_t){.type = MLMEM_EV_PHASE, .tid = 1, .arg = MLMEM_PHASE_FORWARD});
        t_alloc(&s, 1, 2, 0x2000, 100 * (step + 1));
        tst_ev(&s, (prof_event_t){.type = MLMEM_EV_PHASE, .tid = 1,
                                  .arg = MLMEM_PHASE_BACKWARD});
        t_free(&s, 1, 0x2000);
    }
    prof_result_t r = {0};
    assert_int_equal(prof_acct_result(s.a, &r), 0);
    assert_string_equal(r.steps.source, "annotations");
    assert_int_equal(r.steps.count, 3);
    assert_int_equal(r.steps.peak_count, 3);
    assert_int_equal(r.steps.peak_bytes[0], 1100);
    assert_int_equal(r.steps.peak_bytes[1], 1200);
    assert_int_equal(r.steps.peak_bytes[2], 1300);
    assert_int_equal(r.steps.phases_seen,
                     (1u << MLMEM_PHASE_FORWARD) | (1u << MLMEM_PHASE_BACKWARD));
    assert_int_equal(r.steps.period_ns, 50);
    prof_result_free(&r);
    prof_acct_free(s.a);
}

/* ---- step detection ------------------------------------------------------ */

typedef struct {
    uint32_t *keys;
    uint64_t *times;
    size_t n, cap;
} hist_t;

static void h_push(hist_t *h, uint32_t key)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 1024;
        h->keys = realloc(h->keys, h->cap * sizeof *h->keys);
        h->times = realloc(h->times, h->cap * sizeof *h->times);
        assert_non_null(h->keys);
        assert_non_null(h->times);
    }
    h->keys[h->n] = key;
    h->times[h->n] = h->n * 100;
    h->n++;
}

/* One training step: data, a forward with per-layer activations (the same
 * stack for every layer), backward, optimizer. 12 allocations. */
static void h_step(hist_t *h)
{
    static const uint32_t step[] = {10, 11, 20, 20, 20, 20, 21, 30, 31, 30, 31, 40};
    for (size_t i = 0; i < sizeof step / sizeof step[0]; i++)
        h_push(h, step[i]);
}

static void h_setup(hist_t *h)
{
    for (uint32_t k = 1; k <= 9; k++)
        h_push(h, k);
}

static void h_free(hist_t *h)
{
    free(h->keys);
    free(h->times);
}

static void test_attribution_steps_regular(void **state)
{
    (void)state;
    hist_t h = {0};
    h_setup(&h);
    for (int i = 0; i < 50; i++)
        h_step(&h);
    prof_step_detect_t d;
    assert_int_equal(prof_steps_detect(h.keys, h.times, h.n, &d), 0);
    assert_int_equal(d.count, 50);
    assert_int_equal(d.period, 12);
    assert_int_equal(d.first_ns, 9 * 100);   /* the setup's 9 come first */
    assert_int_equal(d.period_ns, 12 * 100);
    assert_true(d.confidence > 0.95);
    h_free(&h);

    /* Every stack allocates twice per step (two layers): still one step
     * per period. */
    hist_t h2 = {0};
    for (int i = 0; i < 40; i++) {
        static const uint32_t two[] = {20, 21, 20, 21, 30, 31, 30, 31};
        for (size_t k = 0; k < 8; k++)
            h_push(&h2, two[k]);
    }
    assert_int_equal(prof_steps_detect(h2.keys, h2.times, h2.n, &d), 0);
    assert_int_equal(d.count, 40);
    assert_int_equal(d.period, 8);
    h_free(&h2);

    /* One loop allocates every layer's activation, another every layer's
     * gradient (6 layers): each key repeats at once, the step is its runs. */
    hist_t h3 = {0};
    h_setup(&h3);
    for (int i = 0; i < 30; i++)
        for (size_t k = 0; k < 12; k++)
            h_push(&h3, k < 6 ? 60 : 61);
    assert_int_equal(prof_steps_detect(h3.keys, h3.times, h3.n, &d), 0);
    assert_int_equal(d.count, 30);
    assert_int_equal(d.period, 12);
    assert_int_equal(d.first_ns, 9 * 100);
    h_free(&h3);
}

/* Every third step has an extra allocation and every fifth loses one. */
static void test_attribution_steps_jittered(void **state)
{
    (void)state;
    hist_t h = {0};
    h_setup(&h);
    for (int i = 0; i < 60; i++) {
        if (i % 3 == 0)
            h_push(&h, 99);
        if (i % 5 == 0) {
            static const uint32_t short_step[] = {10, 11, 20, 20, 20, 21, 30, 31, 30, 31, 40};
            for (size_t k = 0; k < 11; k++)
                h_push(&h, short_step[k]);
        } else {
            h_step(&h);
        }
    }
    prof_step_detect_t d;
    assert_int_equal(prof_steps_detect(h.keys, h.times, h.n, &d), 0);
    assert_int_equal(d.count, 60);
    assert_int_equal(d.period, 12);
    h_free(&h);
}

/* Two warm-up steps allocate extra things (a workspace found once, a
 * cache); they still count as steps. */
static void test_attribution_steps_warmup(void **state)
{
    (void)state;
    hist_t h = {0};
    h_setup(&h);
    for (int i = 0; i < 2; i++) {
        h_push(&h, 70 + (uint32_t)i);
        h_step(&h);
        h_push(&h, 80);
        h_push(&h, 81);
    }
    for (int i = 0; i < 40; i++)
        h_step(&h);
    prof_step_detect_t d;
    assert_int_equal(prof_steps_detect(h.keys, h.times, h.n, &d), 0);
    assert_int_equal(d.count, 42);
    assert_int_equal(d.period, 12);
    h_free(&h);
}

/* Every 10 steps an evaluation pass (its own stacks, 6 batches) runs. */
static void test_attribution_steps_eval_passes(void **state)
{
    (void)state;
    hist_t h = {0};
    h_setup(&h);
    for (int i = 0; i < 50; i++) {
        h_step(&h);
        if (i % 10 == 9)
            for (int b = 0; b < 6; b++) {
                h_push(&h, 50);
                h_push(&h, 51);
                h_push(&h, 52);
            }
    }
    prof_step_detect_t d;
    assert_int_equal(prof_steps_detect(h.keys, h.times, h.n, &d), 0);
    assert_int_equal(d.count, 50);
    assert_int_equal(d.period, 12);
    h_free(&h);
}

/* No repetition, or too little history: no steps. */
static void test_attribution_steps_none(void **state)
{
    (void)state;
    hist_t h = {0};
    uint64_t x = 99;
    for (int i = 0; i < 2000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        h_push(&h, (uint32_t)(x % 1000));
    }
    prof_step_detect_t d;
    assert_int_equal(prof_steps_detect(h.keys, h.times, h.n, &d), 0);
    assert_int_equal(d.count, 0);
    assert_int_equal(prof_steps_detect(h.keys, h.times, 4, &d), 0);
    assert_int_equal(d.count, 0);
    h_free(&h);
}

/* A handful of repeats of slower iterations over a sliver of the run (a
 * report writer's loop, 200 us each) is a burst, not training. */
static void test_attribution_steps_short_burst(void **state)
{
    (void)state;
    size_t n = 0, cap = 400;
    uint32_t *keys = calloc(cap, sizeof *keys);
    uint64_t *times = calloc(cap, sizeof *times);
    assert_non_null(keys);
    assert_non_null(times);
    for (int i = 0; i < 20; i++, n++) { /* setup: distinct stacks over 1 s */
        keys[n] = 1000 + (uint32_t)i;
        times[n] = (uint64_t)i * 50000000ull;
    }
    uint64_t t = times[n - 1];
    for (int rep = 0; rep < 5; rep++)
        for (int k = 0; k < 4; k++, n++) {
            keys[n] = 10 + (uint32_t)k;
            times[n] = t += 50000; /* 4 x 50 us: 200 us a repeat */
        }
    for (int i = 0; i < 5; i++, n++) {
        keys[n] = 5000 + (uint32_t)i;
        times[n] = t += 1000000;
    }
    prof_step_detect_t d;
    assert_int_equal(prof_steps_detect(keys, times, n, &d), 0);
    assert_int_equal(d.count, 0);
    free(keys);
    free(times);
}

/* ---- behaviour ----------------------------------------------------------- */

/* A result with 'n' sites, stack ids 1..n, a run of 10 s whose steps (from
 * "annotations") start at 1 s and last 100 ms, the last at 9 s. */
static prof_result_t *b_result(size_t n)
{
    prof_result_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->sites = calloc(n, sizeof *r->sites);
    assert_non_null(r->sites);
    r->site_count = n;
    for (size_t i = 0; i < n; i++) {
        r->sites[i].stack_id = (uint32_t)i + 1;
        r->sites[i].annotated_category = -1;
    }
    r->summary.duration_ns = 10000000000ull;
    r->steps.source = "annotations";
    r->steps.count = 81;
    r->steps.first_step_ns = 1000000000ull;
    r->steps.last_step_ns = 9000000000ull;
    r->steps.period_ns = 100000000ull;
    return r;
}

/* A site that lives through training: 'n' blocks of 'bytes' in all, born
 * at 'born', freed in the teardown (or alive at the end with 'leak'). */
static void b_persistent(prof_site_t *s, uint64_t n, uint64_t bytes, uint64_t born, int leak)
{
    s->allocations = n;
    s->bytes_allocated = bytes;
    s->largest_allocation = bytes / n;
    s->first_alloc_ns = s->last_alloc_ns = born;
    s->live_bytes_at_peak = s->unannotated_bytes_at_peak = bytes;
    s->peak_live_bytes = bytes;
    if (leak) {
        s->live_allocations = n;
        s->live_bytes = s->unannotated_bytes = bytes;
    } else {
        s->frees = n;
        s->first_free_ns = 9900000000ull;
        s->lifetime_sum_ns = n * (9900000000ull - born);
    }
}

/* A site allocating 'n' blocks during the steps, each living 'life' ns. */
static void b_per_step(prof_site_t *s, uint64_t n, uint64_t size, uint64_t life, uint64_t temps)
{
    s->allocations = s->frees = n;
    s->bytes_allocated = n * size;
    s->largest_allocation = size;
    s->first_alloc_ns = 1000000000ull + 10;
    s->last_alloc_ns = 9000000000ull + 10;
    s->first_free_ns = s->first_alloc_ns + life;
    s->lifetime_sum_ns = n * life;
    s->temporary_allocations = temps;
    s->live_bytes_at_peak = s->unannotated_bytes_at_peak = size;
    s->peak_live_bytes = size;
}

static void b_free(prof_result_t *r)
{
    prof_result_free(r);
    free(r);
}

static uint64_t b_total_at_peak(const prof_result_t *r)
{
    uint64_t t = 0;
    for (int c = 0; c < MLMEM_CATEGORY_COUNT; c++)
        t += r->categories[c].bytes_at_peak;
    return t;
}

/* Sites of the same shape that live through training are copies of the
 * parameters: in birth order weights, gradients, then optimizer state. */
static void test_attribution_behaviour_size_groups(void **state)
{
    (void)state;
    prof_result_t *r = b_result(6);
    b_persistent(&r->sites[0], 3, 3000000, 300, 0);  /* born after its copies' */
    b_persistent(&r->sites[1], 3, 3000000, 100, 0);  /* weights */
    b_persistent(&r->sites[2], 3, 3000000, 400, 1);  /* 2nd state, alive at end */
    b_persistent(&r->sites[3], 3, 3000010, 200, 0);  /* gradients (+10 bytes) */
    b_persistent(&r->sites[4], 1, 2048, 150, 0);     /* bias: no copies: other */
    b_persistent(&r->sites[5], 1, 3000000, 500, 0);  /* one block: no copy, data */
    prof_attr_input_t in = {0};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->sites[1].category, "weights");
    assert_string_equal(r->sites[3].category, "gradients");
    assert_string_equal(r->sites[0].category, "optimizer_state");
    assert_string_equal(r->sites[2].category, "optimizer_state");
    assert_string_equal(r->sites[4].category, "other");
    assert_string_equal(r->sites[5].category, "data");
    assert_int_equal(r->sites[1].category_source, PROF_EVIDENCE_BEHAVIOUR);
    assert_int_equal(r->categories[MLMEM_CAT_WEIGHTS].bytes_at_peak, 3000000);
    assert_int_equal(r->categories[MLMEM_CAT_OPTIMIZER_STATE].bytes_at_peak, 6000000);
    assert_int_equal(r->categories[MLMEM_CAT_OPTIMIZER_STATE].bytes_at_end, 3000000);
    assert_int_equal(b_total_at_peak(r), 15002048 + 3000010 - 3000000);
    b_free(r);
}

/* Without gradients (inference), what lives through is weights; with them,
 * a large unmatched block is a resident dataset. */
static void test_attribution_behaviour_persistent(void **state)
{
    (void)state;
    prof_result_t *r = b_result(1);
    b_persistent(&r->sites[0], 1, 5000000, 100, 1);
    prof_attr_input_t in = {0};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->sites[0].category, "weights");
    b_free(r);

    r = b_result(3);
    b_persistent(&r->sites[0], 1, 4000000, 100, 0);
    b_persistent(&r->sites[1], 1, 4000000, 200, 0);
    b_persistent(&r->sites[2], 1, 8000000, 50, 0);
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->sites[0].category, "weights");
    assert_string_equal(r->sites[1].category, "gradients");
    assert_string_equal(r->sites[2].category, "data");
    b_free(r);
}

/* Freed within steps: long-lived (across phases) is activations, short is
 * temporaries, freed with nothing in between is temporaries, born and
 * freed before the first step is temporaries, born during training and
 * kept is other. */
static void test_attribution_behaviour_lifetimes(void **state)
{
    (void)state;
    prof_result_t *r = b_result(5);
    b_per_step(&r->sites[0], 80, 65536, 60000000, 0);  /* 60% of a step */
    b_per_step(&r->sites[1], 80, 65536, 2000000, 0);   /* 2% */
    b_per_step(&r->sites[2], 80, 512, 60000000, 80);   /* immediate frees */
    b_per_step(&r->sites[3], 1, 4096, 1000, 0);
    r->sites[3].first_alloc_ns = r->sites[3].last_alloc_ns = 500;
    r->sites[3].first_free_ns = 1500;
    b_persistent(&r->sites[4], 1, 1000, 5000000000ull, 1); /* born mid-run, kept */
    prof_attr_input_t in = {0};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->sites[0].category, "activations");
    assert_string_equal(r->sites[1].category, "temporaries");
    assert_string_equal(r->sites[2].category, "temporaries");
    assert_string_equal(r->sites[3].category, "temporaries");
    assert_string_equal(r->sites[4].category, "other");
    b_free(r);
}

static prof_frame_t *frames_n(int n, const char *const *names)
{
    prof_frame_t *f = calloc((size_t)n, sizeof *f);
    assert_non_null(f);
    for (int i = 0; i < n; i++)
        f[i].function = strdup(names[i]);
    return f;
}

/* A persistent site that is no copy of the parameters but is allocated by
 * the function that allocated them is a model buffer: activations. A
 * function every site goes through (a framework's allocator) or main says
 * nothing. */
static void test_attribution_behaviour_siblings(void **state)
{
    (void)state;
    prof_result_t *r = b_result(8);
    static const char *const w[] = {"xalloc", "carve", "model_init", "main"};
    static const char *const g[] = {"xalloc", "carve", "model_init", "main"};
    static const char *const act[] = {"xalloc", "model_init", "main"};
    static const char *const logs[] = {"xalloc", "main"};
    static const char *const other[] = {"xalloc", "setup_tables", "main"};
    const char *const *names[] = {w, g, act, logs, other};
    int counts[] = {4, 4, 3, 2, 3};
    b_persistent(&r->sites[0], 1, 400000, 100, 0);
    b_persistent(&r->sites[1], 1, 400000, 200, 0);
    b_persistent(&r->sites[2], 1, 100000, 300, 0);
    b_persistent(&r->sites[3], 1, 100000, 50, 0);
    b_persistent(&r->sites[4], 1, 100000, 60, 0);
    for (int i = 0; i < 5; i++) {
        r->sites[i].frames = frames_n(counts[i], names[i]);
        r->sites[i].frame_count = (uint32_t)counts[i];
    }
    static const char *const step[] = {"xalloc", "forward", "train_step", "main"};
    for (int i = 5; i < 8; i++) { /* the training loop's own allocations */
        b_per_step(&r->sites[i], 80, 4096 * (uint64_t)i, 60000000, 0);
        r->sites[i].frames = frames_n(4, step);
        r->sites[i].frame_count = 4;
    }
    prof_attr_input_t in = {0};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->sites[0].category, "weights");
    assert_string_equal(r->sites[1].category, "gradients");
    assert_string_equal(r->sites[2].category, "activations");
    assert_string_equal(r->sites[3].category, "other");
    assert_string_equal(r->sites[4].category, "other");
    b_free(r);
}

/* Without steps: large and long-lived is activations, small or brief is
 * temporaries; born in the first quarter and kept to the last is
 * persistent; born late and kept is other. */
static void test_attribution_behaviour_no_steps(void **state)
{
    (void)state;
    prof_result_t *r = b_result(4);
    r->steps = (prof_steps_t){0};
    b_per_step(&r->sites[0], 10, 1 << 20, 500000000ull, 0); /* 5% of the run */
    b_per_step(&r->sites[1], 10, 1 << 20, 1000, 0);
    b_persistent(&r->sites[2], 1, 5000, 9000000000ull, 1);   /* late, kept */
    b_persistent(&r->sites[3], 1, 5000, 1000, 0);            /* early, to the end */
    prof_attr_input_t in = {0};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->steps.source, "none");
    assert_string_equal(r->sites[0].category, "activations");
    assert_string_equal(r->sites[1].category, "temporaries");
    assert_string_equal(r->sites[2].category, "other");
    assert_string_equal(r->sites[3].category, "weights"); /* no gradients: inference */
    b_free(r);
}

/* Steps come from the allocation log when nothing was annotated, and set
 * the first step's time; allocations without a stack are left out. */
static void test_attribution_behaviour_detected_steps(void **state)
{
    (void)state;
    prof_result_t *r = b_result(1);
    r->steps = (prof_steps_t){0};
    b_persistent(&r->sites[0], 1, 100, 0, 1);
    hist_t h = {0};
    h_setup(&h);
    for (int i = 0; i < 30; i++)
        h_step(&h);
    prof_acct_logged_t *log = calloc(2 * h.n, sizeof *log);
    assert_non_null(log);
    size_t n = 0;
    for (size_t i = 0; i < h.n; i++) {
        log[n++] = (prof_acct_logged_t){h.keys[i], h.times[i]};
        if (i % 3 == 0) /* unsampled small blocks in between */
            log[n++] = (prof_acct_logged_t){MLMEM_STACK_NONE, h.times[i]};
    }
    prof_attr_input_t in = {.log = log, .log_count = n};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->steps.source, "detected");
    assert_int_equal(r->steps.count, 30);
    assert_int_equal(r->steps.period_allocations, 12);
    assert_int_equal(r->steps.first_step_ns, 900);
    free(log);
    h_free(&h);
    b_free(r);
}

/* When the allocation log ended before training (an interpreter importing
 * a framework fills it), steps come from the sites' allocation counts: the
 * per-step sites allocate 1, 2 or 5 times per step; the divisors of the step
 * count (30, 20, 15...) and a few unrelated sites do not decide. */
/* Nine per-step sites allocating counts[i] blocks of 1 MiB from 2 s to
 * 7.9 s (sites 7 and 8 small), for steps found from the sites' counts. */
static prof_result_t *b_counted_sites(const uint64_t counts[9])
{
    prof_result_t *r = b_result(9);
    r->steps = (prof_steps_t){0};
    for (int i = 0; i < 9; i++) {
        b_per_step(&r->sites[i], counts[i], 1 << 20, 20000000, 0);
        r->sites[i].first_alloc_ns = 2000000000ull + 1000000ull * (uint64_t)i;
        r->sites[i].last_alloc_ns = 7900000000ull + 1000000ull * (uint64_t)i;
        r->sites[i].first_free_ns = r->sites[i].first_alloc_ns + 20000000;
    }
    r->sites[7].bytes_allocated = r->sites[8].bytes_allocated = 4096;
    return r;
}

static void test_attribution_steps_from_sites(void **state)
{
    (void)state;
    static const uint64_t counts[] = {60, 60, 60, 120, 300, 180, 30, 7, 45};
    prof_result_t *r = b_counted_sites(counts);
    r->sites[0].first_free_ns = 2150000000ull; /* the slow first step ends */
    size_t nlog = 65536; /* a full log of setup allocations, all different */
    prof_acct_logged_t *log = calloc(nlog, sizeof *log);
    assert_non_null(log);
    for (size_t i = 0; i < nlog; i++)
        log[i] = (prof_acct_logged_t){(uint32_t)(100 + i), (uint64_t)i};
    prof_attr_input_t in = {.log = log, .log_count = nlog, .log_truncated = 1};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->steps.source, "detected");
    assert_int_equal(r->steps.count, 60);
    assert_int_equal(r->steps.first_step_ns, 2000000000ull);
    assert_int_equal(r->steps.last_step_ns, 7900000000ull);
    assert_int_equal(r->steps.period_ns, 5900000000ull / 59);
    b_free(r);

    /* A site whose count is a multiple of both N and N + E counts for N
     * only: here the sites of 8 (3 bytes) and of 10 (2 bytes) with the
     * one of 40 (10 bytes) hold 15 of 45 bytes, too little for steps of
     * 8; counted again for 10 it would make 25 of 45, and steps of 8. */
    static const uint64_t twice[] = {8, 8, 8, 10, 10, 40, 7, 11, 13};
    static const uint64_t twice_bytes[] = {1, 1, 1, 1, 1, 10, 10, 10, 10};
    r = b_counted_sites(twice);
    for (int i = 0; i < 9; i++)
        r->sites[i].bytes_allocated = twice_bytes[i];
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_int_equal(r->steps.count, 0);
    b_free(r);

    /* Evaluation passes: 8 forward-only batches make the forward sites
     * allocate 68 (or 136) times; they count for 60, and eval is found. */
    static const uint64_t with_eval[] = {60, 60, 60, 68, 68, 136, 68, 7, 45};
    r = b_counted_sites(with_eval);
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->steps.source, "detected");
    assert_int_equal(r->steps.count, 60);
    assert_int_equal(r->steps.eval_batches, 8);
    assert_true(r->steps.phases_seen & (1u << MLMEM_PHASE_EVAL));
    assert_null(r->steps.peak_where); /* no peak in this result */
    /* A peak after the last step is in evaluation; one before the first
     * is in setup; one in between is in its step. */
    r->summary.peak_bytes = 1 << 20;
    static const struct {
        uint64_t t;
        const char *where;
        uint64_t step;
    } peaks[] = {{8100000000ull, "evaluation", 0},
                 {1000000000ull, "before_steps", 0},
                 {2000000000ull + 5900000000ull / 59 * 7 + 1000, "step", 7}};
    for (size_t k = 0; k < 3; k++) {
        r->summary.peak_time_ns = peaks[k].t;
        free(r->steps.peak_bytes);
        r->steps = (prof_steps_t){0};
        assert_int_equal(prof_attribute(r, &in), 0);
        assert_string_equal(r->steps.peak_where, peaks[k].where);
        assert_int_equal(r->steps.peak_step, peaks[k].step);
    }
    b_free(r);

    /* Not when the log covers the run (it found no steps: there are none). */
    r = b_result(9);
    r->steps = (prof_steps_t){0};
    for (int i = 0; i < 9; i++)
        b_per_step(&r->sites[i], counts[i], 1 << 20, 20000000, 0);
    in.log_truncated = 0;
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->steps.source, "none");
    b_free(r);

    /* Nor when the log is not full (fewer allocations than it holds). */
    r = b_result(9);
    r->steps = (prof_steps_t){0};
    for (int i = 0; i < 9; i++)
        b_per_step(&r->sites[i], counts[i], 1 << 20, 20000000, 0);
    in.log_truncated = 1;
    in.log_count = 1000;
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->steps.source, "none");
    b_free(r);
    free(log);
}

static prof_frame_t *frames1(const char *function, const char *file, const char *module)
{
    prof_frame_t *f = calloc(2, sizeof *f);
    assert_non_null(f);
    f[0].function = strdup("my_alloc_wrapper");
    f[1].function = function ? strdup(function) : NULL;
    f[1].file = file ? strdup(file) : NULL;
    f[1].module = module ? strdup(module) : NULL;
    return f;
}

/* Rules beat behaviour; annotations beat rules (site and bytes). */
static void test_attribution_evidence_order(void **state)
{
    (void)state;
    prof_result_t *r = b_result(3);
    b_persistent(&r->sites[0], 1, 5000000, 100, 1);
    r->sites[0].frames = frames1("load_dataset", NULL, NULL);
    r->sites[0].frame_count = 2;
    b_persistent(&r->sites[1], 1, 1000, 100, 1);
    r->sites[1].frames = frames1(NULL, NULL, "/usr/lib/libopenblas.so.0");
    r->sites[1].frame_count = 2;
    /* Annotated as weights; a rule would say optimizer state. */
    b_persistent(&r->sites[2], 1, 700, 100, 1);
    r->sites[2].frames = frames1("adam_step", NULL, NULL);
    r->sites[2].frame_count = 2;
    r->sites[2].annotated_category = MLMEM_CAT_WEIGHTS;
    r->sites[2].unannotated_bytes_at_peak = 0;
    r->sites[2].unannotated_bytes = 0;
    r->annotated_at_peak[MLMEM_CAT_WEIGHTS] = 700;
    r->annotated_at_end[MLMEM_CAT_WEIGHTS] = 700;
    r->annotated_max[MLMEM_CAT_WEIGHTS] = 700;
    prof_attr_input_t in = {0};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->sites[0].category, "data");
    assert_int_equal(r->sites[0].category_source, PROF_EVIDENCE_RULE);
    assert_string_equal(r->sites[1].category, "temporaries");
    assert_string_equal(r->sites[2].category, "weights");
    assert_int_equal(r->sites[2].category_source, PROF_EVIDENCE_ANNOTATION);
    const prof_category_t *w = &r->categories[MLMEM_CAT_WEIGHTS];
    assert_int_equal(w->bytes_at_peak, 700);
    assert_int_equal(w->bytes_at_peak_by[PROF_EVIDENCE_ANNOTATION], 700);
    assert_true(w->max_exact);
    assert_true(w->confidence > 0.999);
    assert_int_equal(r->categories[MLMEM_CAT_OPTIMIZER_STATE].bytes_at_peak, 0);
    assert_int_equal(r->categories[MLMEM_CAT_DATA].bytes_at_peak_by[PROF_EVIDENCE_RULE],
                     5000000);

    /* A user rule comes before the built-in ones. */
    prof_rules_t user = {0};
    char err[256];
    assert_int_equal(prof_rules_parse("weights function load_*\n", "u", &user, err, sizeof err), 0);
    assert_int_equal(prof_attribute(r, &(prof_attr_input_t){.rules = &user}), 0);
    assert_string_equal(r->sites[0].category, "weights");
    assert_non_null(strstr(r->sites[0].category_evidence, "u:1"));
    prof_rules_free(&user);
    b_free(r);
}

/* ---- frameworks (PyTorch) ------------------------------------------------ */

static void frames_free(prof_frame_t *f, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        free(f[i].function);
        free(f[i].module);
    }
    free(f);
}

/* Frames with a module; the strings are owned by the site. */
static prof_frame_t *frames_m(int n, const char *const *fm)
{
    prof_frame_t *f = calloc((size_t)n, sizeof *f);
    assert_non_null(f);
    for (int i = 0; i < n; i++) {
        f[i].function = fm[2 * i] ? strdup(fm[2 * i]) : NULL;
        f[i].module = fm[2 * i + 1] ? strdup(fm[2 * i + 1]) : NULL;
    }
    return f;
}

#define LIBC10 "/usr/lib/x86_64-linux-gnu/libc10.so.1.13"
#define LIBTORCH "/usr/lib/x86_64-linux-gnu/libtorch_cpu.so.1.13"
#define LIBTORCH_PY "/usr/lib/x86_64-linux-gnu/libtorch_python.so.1.13"
#define PYTHON "/usr/bin/python3.11"

/* A tensor's frames name the framework's machinery (autograd, index), not
 * the tensor's role: behaviour decides. What the framework allocates
 * outside its tensor allocator is its bookkeeping (other), and so is what
 * the interpreter allocates itself. A user's rule still applies. */
static void test_attribution_rules_framework(void **state)
{
    (void)state;
    static const char *const tensor[] = {
        "c10::alloc_cpu(unsigned long)", LIBC10,
        "at::detail::empty_cpu(c10::ArrayRef<long>)", LIBTORCH,
        "torch::autograd::THPVariable_getitem(_object*, _object*)", LIBTORCH_PY,
        "_PyEval_EvalFrameDefault", PYTHON};
    static const char *const registry[] = {
        "operator new(unsigned long)", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        "c10::Dispatcher::registerImpl(c10::OperatorName)", LIBTORCH,
        "_PyEval_EvalFrameDefault", PYTHON};
    static const char *const arena[] = {NULL, PYTHON, "PyList_New", PYTHON};
    prof_site_t site = {0};
    site.frames = frames_m(4, tensor);
    site.frame_count = 4;
    assert_true(prof_site_is_tensor(&site));
    assert_true(prof_frame_is_framework(&site.frames[0]));
    assert_false(prof_frame_is_framework(&site.frames[3]));
    assert_null(prof_rules_match(NULL, &site)); /* not "*grad*" */

    prof_rules_t user = {0};
    char err[128];
    assert_int_equal(prof_rules_parse("data function *THPVariable_getitem*\n", "u", &user, err,
                                      sizeof err), 0);
    const prof_rule_t *m = prof_rules_match(&user, &site);
    assert_non_null(m);
    assert_int_equal(m->category, MLMEM_CAT_DATA);
    prof_rules_free(&user);
    frames_free(site.frames, site.frame_count);

    site.frames = frames_m(3, registry);
    site.frame_count = 3;
    assert_false(prof_site_is_tensor(&site));
    m = prof_rules_match(NULL, &site);
    assert_non_null(m);
    assert_int_equal(m->category, MLMEM_CAT_OTHER);
    assert_string_equal(m->glob, "*/libtorch*.so*");
    frames_free(site.frames, site.frame_count);

    site.frames = frames_m(2, arena);
    site.frame_count = 2;
    m = prof_rules_match(NULL, &site);
    assert_non_null(m);
    assert_int_equal(m->category, MLMEM_CAT_OTHER);
    frames_free(site.frames, site.frame_count);
}

static void b_frames(prof_site_t *s, int n, const char *const *fm)
{
    s->frames = frames_m(n, fm);
    s->frame_count = (uint32_t)n;
}

/* PyTorch's shape: the parameters come from one stack (one torch.empty per
 * tensor), Adam's two moments from another (two zeros_like per tensor: twice
 * the blocks and bytes), and the gradients are reallocated in every backward
 * pass (zero_grad(set_to_none=True)): a per-step site of the autograd
 * engine whose largest block is the largest parameter. Activation
 * gradients from the engine have other sizes, or die sooner: temporaries. */
static void test_attribution_behaviour_framework_copies(void **state)
{
    (void)state;
    static const char *const fwd[] = {"c10::alloc_cpu(unsigned long)", LIBC10,
                                      "at::native::empty_cpu", LIBTORCH,
                                      "_PyEval_EvalFrameDefault", PYTHON};
    static const char *const bwd[] = {
        "c10::alloc_cpu(unsigned long)", LIBC10, "at::_ops::mm::call", LIBTORCH,
        "torch::autograd::generated::AddmmBackward0::apply", LIBTORCH,
        "torch::autograd::Engine::evaluate_function", LIBTORCH, "THPEngine_run_backward",
        LIBTORCH_PY};
    for (int keep = 0; keep < 2; keep++) {
        prof_result_t *r = b_result(6);
        b_persistent(&r->sites[0], 5, 7454720, 100, 0);    /* parameters */
        r->sites[0].largest_allocation = 4194304;
        b_persistent(&r->sites[1], 10, 14909440, 1000000000ull + 500, 0); /* Adam */
        r->sites[1].largest_allocation = 4194304;
        b_per_step(&r->sites[2], 240, 4194304, 50000000, 0); /* weight gradients */
        b_per_step(&r->sites[3], 160, 1048576, 20000000, 0); /* activation grads */
        b_per_step(&r->sites[4], 240, 1048576, 60000000, 0); /* forward outputs */
        b_persistent(&r->sites[5], 2, 31440000, 50, 0);    /* the dataset */
        r->sites[5].largest_allocation = 31360000;
        b_frames(&r->sites[0], 3, fwd);
        b_frames(&r->sites[1], 3, fwd);
        b_frames(&r->sites[2], 5, bwd);
        b_frames(&r->sites[3], 5, bwd);
        b_frames(&r->sites[4], 3, fwd);
        b_frames(&r->sites[5], 3, fwd);
        if (keep) { /* gradients kept: one more persistent copy, no step site */
            r->sites[2].largest_allocation = 1048575;
            r->sites[1].allocations = 15;
            r->sites[1].bytes_allocated = 3 * 7454720;
        }
        prof_attr_input_t in = {0};
        assert_int_equal(prof_attribute(r, &in), 0);
        assert_string_equal(r->sites[0].category, "weights");
        assert_string_equal(r->sites[1].category, "optimizer_state");
        assert_string_equal(r->sites[2].category, keep ? "temporaries" : "gradients");
        assert_string_equal(r->sites[3].category, "temporaries"); /* activation grads */
        assert_string_equal(r->sites[4].category, "activations");
        assert_string_equal(r->sites[5].category, "data");
        assert_int_equal(r->sites[2].category_source, PROF_EVIDENCE_BEHAVIOUR);
        b_free(r);
    }

    /* Activation gradients of a parameter's size (batch x features ==
     * features x features) that die sooner than the gradients. */
    {
        prof_result_t *q = b_result(4);
        b_persistent(&q->sites[0], 5, 7454720, 100, 0);
        q->sites[0].largest_allocation = 4194304;
        b_persistent(&q->sites[3], 10, 14909440, 1000000000ull + 500, 0);
        b_frames(&q->sites[3], 3, fwd);
        b_per_step(&q->sites[1], 240, 4194304, 50000000, 0); /* gradients */
        b_per_step(&q->sites[2], 160, 4194304, 30000000, 0); /* activation grads */
        b_frames(&q->sites[0], 3, fwd);
        b_frames(&q->sites[1], 5, bwd);
        b_frames(&q->sites[2], 5, bwd);
        prof_attr_input_t qin = {0};
        assert_int_equal(prof_attribute(q, &qin), 0);
        assert_string_equal(q->sites[1].category, "gradients");
        assert_string_equal(q->sites[2].category, "temporaries");
        b_free(q);
    }

    /* A CNN's shape: the linear layers' parameters (2 blocks) and the
     * convolution's (1 block) come from two stacks, Adam's moments for all
     * of them from one (6 blocks, twice their bytes); gradients of both
     * sizes are reallocated every backward pass, each next to activation
     * gradients of the same size that die sooner. An unrelated persistent
     * tensor (a permutation of the dataset's indices) is none of them. */
    {
        prof_result_t *q = b_result(8);
        b_persistent(&q->sites[0], 2, 807936, 100, 0); /* fc1.weight, fc2.weight */
        q->sites[0].largest_allocation = 802816;
        b_persistent(&q->sites[1], 1, 18432, 150, 0); /* conv2.weight */
        b_persistent(&q->sites[2], 1, 480000, 120, 0); /* randperm */
        b_persistent(&q->sites[3], 6, 2 * (807936 + 18432), 1000000000ull + 500, 0);
        q->sites[3].largest_allocation = 802816;
        b_per_step(&q->sites[4], 300, 802816, 50000000, 0);  /* fc1 gradients */
        b_per_step(&q->sites[5], 300, 802816, 5000000, 0);   /* activation grads */
        b_per_step(&q->sites[6], 300, 18432, 50000000, 0);   /* conv2 gradients */
        b_per_step(&q->sites[7], 300, 18432, 4000000, 0);    /* activation grads */
        for (int i = 0; i < 4; i++)
            b_frames(&q->sites[i], 3, fwd);
        for (int i = 4; i < 8; i++)
            b_frames(&q->sites[i], 5, bwd);
        prof_attr_input_t qin = {0};
        assert_int_equal(prof_attribute(q, &qin), 0);
        static const char *const want[8] = {"weights",     "weights",   NULL, "optimizer_state",
                                            "gradients",   "temporaries", "gradients",
                                            "temporaries"};
        for (int i = 0; i < 8; i++)
            if (want[i])
                assert_string_equal(q->sites[i].category, want[i]);
        assert_string_not_equal(q->sites[2].category, "weights");
        b_free(q);
    }

    /* SGD with momentum: the buffers are a same-size copy of the parameters;
     * with gradients reallocated every step they are optimizer state, not
     * gradients. */
    prof_result_t *r = b_result(3);
    b_persistent(&r->sites[0], 5, 7454720, 100, 0);
    b_persistent(&r->sites[1], 5, 7454720, 1000000000ull + 500, 0);
    b_per_step(&r->sites[2], 240, 7454720 / 5, 50000000, 0);
    r->sites[0].largest_allocation = r->sites[1].largest_allocation = 7454720 / 5;
    b_frames(&r->sites[0], 3, fwd);
    b_frames(&r->sites[1], 3, fwd);
    b_frames(&r->sites[2], 5, bwd);
    prof_attr_input_t in = {0};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->sites[0].category, "weights");
    assert_string_equal(r->sites[1].category, "optimizer_state");
    assert_string_equal(r->sites[2].category, "gradients");
    b_free(r);
}

/* A large block that lives through training is a dataset only if some
 * frame shows code other than libc's: a library's thread buffer whose
 * frames are unresolved addresses under start_thread is not. */
static void test_attribution_behaviour_data_needs_code(void **state)
{
    (void)state;
    static const char *const thread[] = {NULL, NULL, NULL, NULL,
                                         "start_thread", "/usr/lib/x86_64-linux-gnu/libc.so.6"};
    static const char *const prog[] = {"operator new", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
                                       "main", "/opt/train"};
    prof_result_t *r = b_result(4);
    b_persistent(&r->sites[0], 1, 4000000, 100, 0);
    b_persistent(&r->sites[1], 1, 4000000, 200, 0);
    b_persistent(&r->sites[2], 1, 134217728, 300, 1);
    b_persistent(&r->sites[3], 1, 8000000, 50, 0);
    b_frames(&r->sites[2], 3, thread);
    b_frames(&r->sites[3], 2, prog);
    prof_attr_input_t in = {0};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->sites[2].category, "other");
    assert_string_equal(r->sites[3].category, "data");
    b_free(r);
}

/* A block filled from files is data, kept or not; a parameter's block
 * stays a parameter even when a checkpoint was read into it. */
static void test_attribution_behaviour_file_reads_are_data(void **state)
{
    (void)state;
    prof_result_t *r = b_result(4);
    b_persistent(&r->sites[0], 1, 4000000, 100, 0); /* parameters, read from a file */
    b_persistent(&r->sites[1], 1, 4000000, 200, 0); /* their gradients */
    b_persistent(&r->sites[2], 1, 3000000, 50, 1);  /* kept, read from a file */
    b_per_step(&r->sites[3], 100, 65536, 1000, 100); /* a reader's buffer, refilled */
    r->sites[0].file_read_bytes = 4000000;
    r->sites[2].file_read_bytes = 3000000;
    r->sites[3].file_read_bytes = 100 * 65536;
    prof_attr_input_t in = {0};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->sites[0].category, "weights");
    assert_string_equal(r->sites[2].category, "data");
    assert_string_equal(r->sites[3].category, "data");
    assert_non_null(strstr(r->sites[3].category_evidence, "files"));
    /* Half the bytes from files is the bar. */
    r->sites[3].file_read_bytes = 100 * 65536 / 2 - 1;
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->sites[3].category, "temporaries");
    b_free(r);
}

/* Steps found in the log begin where its first fully repeating period did:
 * here at the second allocation of a step (the first step's first one is a
 * warm-up's). Aligned to where live bytes start to rise, the forward phase
 * runs from the step's real start to its peak; and a site born after the
 * peak in every step is born in backward passes (temporaries), with no
 * telling function name, while the forward pass's sites stay activations.
 * Steps: A +0, B +10, C +20, D +d_off, E +45 (the peak: backward's first
 * block on top of the activations), frees down to 0 by +60, then nothing
 * until the next step at +100. Every third step from the first, the
 * forward pass takes 'stretch' ns longer (E and what follows come that
 * much later). The first step's first 'warm' allocations have keys of
 * their own (a warm-up's). The ranges are made at 1 ns and merged into
 * spans of 'width' ns as accounting merges them (the first time of the
 * highest kept). Returns the result for the caller's own checks. */
static prof_result_t *rise_steps_attribute(uint64_t width, uint32_t d_off, uint32_t stretch,
                                           uint32_t warm)
{
    enum { STEPS = 21, T0 = 1000, P = 100, A = 1, B, C, D, E };
    prof_result_t *r = b_result(5);
    r->steps = (prof_steps_t){0};
    uint64_t end = T0 + STEPS * P + (STEPS + 2) / 3 * stretch;
    r->summary.duration_ns = end;
    prof_acct_logged_t log[STEPS * 5 + 16];
    size_t n = 0;
    for (uint32_t k = 0; k < 9; k++) /* setup */
        log[n++] = (prof_acct_logged_t){100 + k, 10 * k};
    size_t nr = end;
    prof_live_range_t *rng = calloc(nr, sizeof *rng);
    assert_non_null(rng);
    for (size_t j = 0; j < nr; j++)
        rng[j] = (prof_live_range_t){UINT64_MAX, 0, 0};
    static const uint64_t mb = 1000000;
    const struct {
        uint32_t off, key;
        uint64_t lo, hi;
    } shape[] = {{0, A, 1 * mb, 1 * mb},  {10, B, 2 * mb, 2 * mb}, {20, C, 3 * mb, 3 * mb},
                 {d_off, D, 4 * mb, 4 * mb}, {45, E, 5 * mb, 5 * mb}, {50, 0, 3 * mb, 4 * mb},
                 {60, 0, 0, 2 * mb}};
    uint64_t start = T0;
    for (uint64_t k = 0; k < STEPS; k++) {
        uint32_t s = k % 3 == 0 ? stretch : 0;
        for (size_t q = 0; q < sizeof shape / sizeof shape[0]; q++) {
            uint64_t t = start + shape[q].off + (shape[q].off > d_off ? s : 0);
            rng[t] = (prof_live_range_t){shape[q].lo, shape[q].hi, t};
            uint32_t key = shape[q].key;
            if (key)
                log[n++] = (prof_acct_logged_t){k == 0 && key < A + warm ? 99 - key : key, t};
        }
        start += P + s;
    }
    size_t nw = (nr + width - 1) / width;
    for (size_t j = 0; j < nw; j++) {
        prof_live_range_t m = {UINT64_MAX, 0, 0};
        for (size_t q = j * width; q < (j + 1) * width && q < nr; q++) {
            m.min = rng[q].min < m.min ? rng[q].min : m.min;
            if (rng[q].max > m.max)
                m = (prof_live_range_t){m.min, rng[q].max, rng[q].max_ns};
        }
        rng[j] = m;
    }
    for (int i = 0; i < 5; i++) { /* A..E: one block a step each */
        uint32_t off = i == 3 ? d_off : i == 4 ? 45 : 10 * (uint32_t)i;
        b_per_step(&r->sites[i], STEPS, mb, i == 4 ? 10 : 60 - off, 0);
        r->sites[i].first_alloc_ns = T0 + off;
        r->sites[i].last_alloc_ns = end - P + off;
        r->sites[i].first_free_ns = r->sites[i].first_alloc_ns + (i == 4 ? 10 : 60 - off);
    }
    prof_attr_input_t in = {.log = log, .log_count = n, .ranges = rng, .range_count = nw,
                            .range_width_ns = width};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->steps.source, "detected");
    for (int i = 0; i < 4; i++)
        assert_string_equal(r->sites[i].category, "activations");
    assert_string_equal(r->sites[4].category, "temporaries");
    assert_non_null(strstr(r->sites[4].category_evidence, "backward"));
    free(rng);
    return r;
}

static void test_attribution_detected_steps_aligned_to_rise(void **state)
{
    (void)state;
    prof_result_t *r = rise_steps_attribute(1, 30, 0, 1);
    assert_true(r->steps.first_step_ns >= 995 && r->steps.first_step_ns <= 1000);
    assert_true(r->steps.forward_end > 0.44 && r->steps.forward_end < 0.49);
    b_free(r);
}

/* Steps realigned to where live bytes rise move along the log: each to the
 * same allocation of its own step (A), however much longer a busy machine
 * made some of them. Here the detector's steps begin at the backward pass's
 * first block (E: the first step's A to D are a warm-up's), and every third
 * step's forward pass takes 40% longer; moved by one shift in time, those
 * steps would begin in the middle of their forward pass. */
static void test_attribution_steps_aligned_in_stretched_steps(void **state)
{
    (void)state;
    prof_result_t *r = rise_steps_attribute(1, 30, 40, 4);
    assert_int_equal(r->steps.first_step_ns, 1000);
    b_free(r);
}

/* Steps whose live bytes do not build up (each block freed before the
 * next: a BLAS call's scratch buffer, with the activations made once at
 * setup) have no rise to begin at and no phases: they keep the detector's
 * starts, and the peak each. Blocks K1 +0, K2 +20, K3 +40 (the largest),
 * K4 +60, each freed 2 ns later; the first step's K1 is a warm-up's, so
 * the detector's steps begin at K2. */
static void test_attribution_flat_steps_keep_starts(void **state)
{
    (void)state;
    enum { STEPS = 21, T0 = 1000, P = 100, K1 = 1 };
    prof_result_t *r = b_result(4);
    r->steps = (prof_steps_t){0};
    r->summary.duration_ns = T0 + STEPS * P;
    prof_acct_logged_t log[STEPS * 4];
    size_t n = 0, nr = T0 + STEPS * P;
    prof_live_range_t *rng = calloc(nr, sizeof *rng);
    assert_non_null(rng);
    for (size_t j = 0; j < nr; j++)
        rng[j] = (prof_live_range_t){UINT64_MAX, 0, 0};
    static const uint64_t base = 4000000, mb = 1000000;
    for (uint64_t k = 0; k < STEPS; k++)
        for (uint32_t b = 0; b < 4; b++) {
            uint64_t t = T0 + k * P + 20 * b, size = b == 2 ? mb + mb / 10 : mb;
            rng[t] = (prof_live_range_t){base + size, base + size, t};
            rng[t + 2] = (prof_live_range_t){base, base, t + 2};
            log[n++] = (prof_acct_logged_t){k == 0 && b == 0 ? 99 : K1 + b, t};
        }
    for (int i = 0; i < 4; i++) {
        b_per_step(&r->sites[i], STEPS, i == 2 ? mb + mb / 10 : mb, 2, 0);
        r->sites[i].first_alloc_ns = T0 + 20 * (uint64_t)i;
        r->sites[i].last_alloc_ns = T0 + (STEPS - 1) * P + 20 * (uint64_t)i;
    }
    prof_attr_input_t in = {.log = log, .log_count = n, .ranges = rng, .range_count = nr,
                            .range_width_ns = 1};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->steps.source, "detected");
    assert_int_equal(r->steps.first_step_ns, T0 + 20);
    assert_int_equal(r->steps.phases_seen, 0);
    assert_null(r->steps.phase_source);
    assert_int_equal(r->steps.peak_count, r->steps.count);
    assert_int_equal(r->steps.peak_bytes[0], base + mb + mb / 10);
    free(rng);
    b_free(r);
}

/* The forward pass's last block shares its span with the step's peak (a
 * long run's spans are wide, and a busy machine stretches the steps): it
 * is still born before the peak, by the time the span reached its highest,
 * so its site stays activations. Spans of 24 ns: D at +38 and the peak at
 * +45 share a span in 3 steps of 4. */
static void test_attribution_last_forward_birth_in_peak_span(void **state)
{
    (void)state;
    b_free(rise_steps_attribute(24, 38, 0, 1));
}

/* The small allocations that were not sampled (one pseudo-site, no stack)
 * are of every kind: other, whatever their lifetimes look like; the same
 * figures with a stack are a per-step site. */
static void test_attribution_behaviour_unsampled_is_other(void **state)
{
    (void)state;
    prof_result_t *r = b_result(2);
    b_per_step(&r->sites[0], 100, 64, 1000, 0);
    b_per_step(&r->sites[1], 100, 64, 1000, 0);
    r->sites[0].stack_id = MLMEM_STACK_NONE;
    prof_attr_input_t in = {0};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_string_equal(r->sites[0].category, "other");
    assert_non_null(strstr(r->sites[0].category_evidence, "not sampled"));
    assert_string_not_equal(r->sites[1].category, "other");
    b_free(r);
}

/* One persistent site and 4 detected steps of 100 ns from 1000 ns on: the
 * live ranges that follow give them their shape. */
static prof_result_t *b_four_steps(void)
{
    prof_result_t *r = b_result(1);
    b_persistent(&r->sites[0], 1, 4000000, 100, 0);
    r->steps = (prof_steps_t){.source = "detected", .count = 4, .period_ns = 100,
                              .first_step_ns = 1000, .last_step_ns = 1300};
    return r;
}

/* The backward pass ends after the forward pass even when the steps that
 * show where it ends are not those that set the forward's median: here
 * two steps peak in their 6th span and are half-way down in their 8th,
 * two peak in their 9th and are not down before the step ends. The
 * forward pass ends at the median of its ends (0.9), the backward lasts
 * the median of its lengths after that (0.2 of the step; the median of
 * its ends would be 0.8). */
static void test_attribution_backward_ends_after_forward(void **state)
{
    (void)state;
    prof_result_t *r = b_four_steps();
    prof_live_range_t rng[140];
    for (size_t j = 0; j < 140; j++) {
        size_t k = j % 10, i = j / 10 - 10, top = i < 2 ? 5 : 8;
        uint64_t v = j < 100 ? 500 : k <= top ? 1000 + k * 1000 / top : i < 2 && k >= 7 ? 1200 : 1800;
        rng[j] = (prof_live_range_t){v * 1000, v * 1000, 0};
    }
    prof_attr_input_t in = {.ranges = rng, .range_count = 140, .range_width_ns = 10};
    assert_int_equal(prof_attribute(r, &in), 0);
    assert_int_equal(r->steps.phases_seen,
                     (1u << MLMEM_PHASE_FORWARD) | (1u << MLMEM_PHASE_BACKWARD));
    assert_true(r->steps.forward_end > 0.89 && r->steps.forward_end < 0.91);
    assert_true(r->steps.backward_end > 0.99 && r->steps.backward_end <= 1.0);
    b_free(r);
}

/* Detected steps get their peaks and inferred phases from the live ranges
 * when a step spans at least 4 of them; coarser ranges give none rather
 * than wrong ones, and steps whose live bytes do not rise give no phases. */
static void test_attribution_detected_step_shape(void **state)
{
    (void)state;
    for (int variant = 0; variant < 3; variant++) { /* fine, coarse, flat */
        prof_result_t *r = b_four_steps();
        /* Spans of 10 ns: step i (10 spans) rises from 1 MB to its peak
         * 2 MB + 100 i KB in its 6th span and is back to 1.4 MB in its 7th. */
        prof_live_range_t rng[140];
        for (size_t j = 0; j < 140; j++) {
            size_t k = j % 10, i = j / 10 - 10;
            uint64_t v = j < 100 ? 500 : k <= 5 ? 1000 + k * (1000 + 100 * i) / 5 : 1400;
            if (variant == 2)
                v = j < 100 ? 500 : 1000;
            v *= 1000; /* KB: rises of a few bytes are noise, not phases */
            rng[j] = (prof_live_range_t){v > 1000000 && k >= 1 && k <= 5 ? v - 100000 : v, v, 0};
        }
        prof_attr_input_t in = {.ranges = rng, .range_count = 140, .range_width_ns = 10};
        if (variant == 1) { /* the same run in 40 ns spans */
            for (size_t j = 0; j < 35; j++) {
                prof_live_range_t m = {UINT64_MAX, 0, 0};
                for (size_t q = 4 * j; q < 4 * j + 4; q++) {
                    m.min = rng[q].min < m.min ? rng[q].min : m.min;
                    m.max = rng[q].max > m.max ? rng[q].max : m.max;
                }
                rng[j] = m;
            }
            in.range_count = 35;
            in.range_width_ns = 40;
        }
        assert_int_equal(prof_attribute(r, &in), 0);
        if (variant == 1) {
            assert_null(r->steps.peak_bytes);
            assert_int_equal(r->steps.phases_seen, 0);
        } else {
            assert_int_equal(r->steps.peak_count, 4);
            for (uint64_t i = 0; i < 4; i++)
                assert_int_equal(r->steps.peak_bytes[i],
                                 variant == 2 ? 1000000 : 1000 * (2000 + 100 * i));
        }
        if (variant == 0) {
            assert_string_equal(r->steps.phase_source, "inferred");
            assert_int_equal(r->steps.phases_seen,
                             (1u << MLMEM_PHASE_FORWARD) | (1u << MLMEM_PHASE_BACKWARD));
            assert_true(r->steps.forward_end > 0.59 && r->steps.forward_end < 0.61);
            assert_true(r->steps.backward_end > 0.69 && r->steps.backward_end < 0.71);
        } else {
            assert_null(r->steps.phase_source);
            assert_true(r->steps.forward_end == 0 && r->steps.backward_end == 0);
        }
        b_free(r);
    }
}

/* ---- rules --------------------------------------------------------------- */

static void test_attribution_rules_parse(void **state)
{
    (void)state;
    prof_rules_t rules = {0};
    char err[256];
    const char *text = "# my rules\n"
                       "\n"
                       "data      function  *my_reader*\n"
                       "  temporaries\tmodule *libfoo.so*   \n"
                       "weights file */params/*.c";
    assert_int_equal(prof_rules_parse(text, "r.rules", &rules, err, sizeof err), 0);
    assert_int_equal(rules.n, 3);
    assert_int_equal(rules.v[0].category, MLMEM_CAT_DATA);
    assert_int_equal(rules.v[0].field, PROF_RULE_FUNCTION);
    assert_string_equal(rules.v[0].glob, "*my_reader*");
    assert_string_equal(rules.v[1].origin, "r.rules:4");
    assert_int_equal(rules.v[1].field, PROF_RULE_MODULE);
    assert_int_equal(rules.v[2].field, PROF_RULE_FILE);

    /* Innermost frame first, case-insensitive. */
    prof_site_t site = {0};
    prof_frame_t f[2] = {{.function = "My_Reader_next"}, {.function = "load_dataset"}};
    site.frames = f;
    site.frame_count = 2;
    const prof_rule_t *m = prof_rules_match(&rules, &site);
    assert_non_null(m);
    assert_string_equal(m->origin, "r.rules:3");
    f[0].function = "unrelated";
    m = prof_rules_match(&rules, &site);
    assert_non_null(m);
    assert_string_equal(m->origin, "built-in");
    assert_int_equal(m->category, MLMEM_CAT_DATA);
    f[1].function = "main";
    assert_null(prof_rules_match(&rules, &site));
    prof_rules_free(&rules);
    assert_int_equal(rules.n, 0);
}

static void expect_error(const char *text, const char *want)
{
    prof_rules_t rules = {0};
    char err[256] = "";
    assert_int_equal(prof_rules_parse(text, "bad.rules", &rules, err, sizeof err), -1);
    if (!strstr(err, want))
        fail_msg("error '%s' does not contain '%s'", err, want);
    prof_rules_free(&rules);
}

/* A word quoted in an error has its control bytes replaced: the message goes
 * to a terminal (found by tests/fuzz/fuzz_rules.c). */
static void test_attribution_rules_error_printable(void **state)
{
    (void)state;
    expect_error("data\033[2J function *x*\n", "bad.rules:1: unknown category 'data?[2J'");
    expect_error("data \033]0;t\007 *x*\n", "bad.rules:1: unknown field '?]0;t?'");
    expect_error("data file *x* a\x7f\n", "bad.rules:1: unexpected 'a?'");
}

static void test_attribution_rules_errors(void **state)
{
    (void)state;
    expect_error("data function *x*\nweight function *w*\n",
                 "bad.rules:2: unknown category 'weight'");
    expect_error("# c\n\ndata symbol *x*\n", "bad.rules:3: unknown field 'symbol'");
    expect_error("data function\n", "bad.rules:1: expected 'category field glob', got 2 words");
    expect_error("data function *a b*\n", "bad.rules:1: unexpected 'b*'");

    prof_rules_t rules = {0};
    char err[256];
    assert_int_equal(prof_rules_load("/nonexistent/mlmem.rules", &rules, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/mlmem.rules: "));

    char path[] = "/tmp/mlmem-rules-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "activations function *fwd*\nweights bogus x\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(prof_rules_load(path, &rules, err, sizeof err), -1);
    char want[64];
    snprintf(want, sizeof want, "%s:2: unknown field 'bogus'", path);
    assert_non_null(strstr(err, want));
    assert_int_equal(rules.n, 1); /* the good line before it */
    prof_rules_free(&rules);
    unlink(path);
}

static void test_attribution_category_names(void **state)
{
    (void)state;
    for (int c = 0; c < MLMEM_CATEGORY_COUNT; c++)
        assert_int_equal(prof_category_parse(prof_category_name(c)), c);
    assert_null(prof_category_name(MLMEM_CATEGORY_COUNT));
    assert_int_equal(prof_category_parse("Weights"), -1);
    assert_true(prof_rules_builtin()->n > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attribution_region_nesting),
        cmocka_unit_test(test_attribution_region_overflow),
        cmocka_unit_test(test_attribution_tag_overrides_region),
        cmocka_unit_test(test_attribution_peak_composition_exact),
        cmocka_unit_test(test_attribution_steps_annotated),
        cmocka_unit_test(test_attribution_steps_regular),
        cmocka_unit_test(test_attribution_steps_jittered),
        cmocka_unit_test(test_attribution_steps_warmup),
        cmocka_unit_test(test_attribution_steps_eval_passes),
        cmocka_unit_test(test_attribution_steps_none),
        cmocka_unit_test(test_attribution_steps_short_burst),
        cmocka_unit_test(test_attribution_behaviour_size_groups),
        cmocka_unit_test(test_attribution_behaviour_persistent),
        cmocka_unit_test(test_attribution_behaviour_lifetimes),
        cmocka_unit_test(test_attribution_behaviour_siblings),
        cmocka_unit_test(test_attribution_behaviour_no_steps),
        cmocka_unit_test(test_attribution_behaviour_detected_steps),
        cmocka_unit_test(test_attribution_evidence_order),
        cmocka_unit_test(test_attribution_rules_parse),
        cmocka_unit_test(test_attribution_rules_errors),
        cmocka_unit_test(test_attribution_rules_error_printable),
        cmocka_unit_test(test_attribution_category_names),
        cmocka_unit_test(test_attribution_rules_framework),
        cmocka_unit_test(test_attribution_behaviour_framework_copies),
        cmocka_unit_test(test_attribution_behaviour_data_needs_code),
        cmocka_unit_test(test_attribution_behaviour_file_reads_are_data),
        cmocka_unit_test(test_attribution_detected_step_shape),
        cmocka_unit_test(test_attribution_behaviour_unsampled_is_other),
        cmocka_unit_test(test_attribution_detected_steps_aligned_to_rise),
        cmocka_unit_test(test_attribution_last_forward_birth_in_peak_span),
        cmocka_unit_test(test_attribution_steps_aligned_in_stretched_steps),
        cmocka_unit_test(test_attribution_flat_steps_keep_starts),
        cmocka_unit_test(test_attribution_backward_ends_after_forward),
        cmocka_unit_test(test_attribution_steps_from_sites),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
