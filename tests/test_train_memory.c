/*
 * test_train_memory: the accounting allocator is exact (live bytes, peak and
 * its split, per-category high-water marks) under any alloc/free order, and
 * the model's allocations have exactly the sizes the layouts promise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "trainer/data.h"
#include "trainer/memory.h"
#include "trainer/model.h"
#include "trainer/optim.h"

#include <mlmem/annotate.h>

/* Strong definitions of the shim's weak entry points: the test plays the
 * shim and counts what the trainer tells it. */
static int n_region_begin, n_region_end, n_tag, last_tag_category;
void mlmem_annotate_step(uint64_t step) { (void)step; }
void mlmem_annotate_phase(int phase) { (void)phase; }
void mlmem_annotate_region_begin(int category) { (void)category; n_region_begin++; }
void mlmem_annotate_region_end(void) { n_region_end++; }
void mlmem_annotate_tag(const void *ptr, int category)
{
    (void)ptr;
    n_tag++;
    last_tag_category = category;
}

static void test_train_memory_peak_and_split(void **state)
{
    static train_mem_t mem;
    train_mem_init(&mem, 0);
    assert_null(train_mem_alloc(&mem, TRAIN_CAT_WEIGHTS, 0));
    void *w = train_mem_alloc(&mem, TRAIN_CAT_WEIGHTS, 1000);
    train_mem_set_step(&mem, 3);
    train_mem_set_phase(&mem, 2);
    void *a = train_mem_alloc(&mem, TRAIN_CAT_ACTIVATIONS, 500);
    void *t = train_mem_alloc(&mem, TRAIN_CAT_TEMPORARIES, 70);
    train_mem_free(&mem, a);
    train_mem_set_phase(&mem, 3);
    void *g = train_mem_alloc(&mem, TRAIN_CAT_GRADIENTS, 400);    /* below the old peak */
    assert_int_equal(mem.peak_total, 1570);
    assert_int_equal(mem.peak[TRAIN_CAT_WEIGHTS], 1000);
    assert_int_equal(mem.peak[TRAIN_CAT_ACTIVATIONS], 500);
    assert_int_equal(mem.peak[TRAIN_CAT_TEMPORARIES], 70);
    assert_int_equal(mem.peak[TRAIN_CAT_GRADIENTS], 0);
    assert_int_equal(mem.peak_step, 3);
    assert_int_equal(mem.peak_phase, 2);
    assert_int_equal(mem.max[TRAIN_CAT_GRADIENTS], 400);
    assert_int_equal(mem.cur_total, 1470);
    train_mem_free(&mem, w);
    train_mem_free(&mem, t);
    train_mem_free(&mem, g);
    train_mem_free(&mem, NULL);
    assert_int_equal(mem.cur_total, 0);
    assert_int_equal(mem.n_allocs, 4);
    assert_int_equal(mem.n_frees, 4);
    assert_false(mem.overflow);
}

/* Random interleavings against a shadow list: the hash table's deletion must
 * never lose or misattribute a block. */
static void test_train_memory_random_churn(void **state)
{
    static train_mem_t mem;
    train_mem_init(&mem, 0);
    enum { LIVE = 3000 };
    static void *ptrs[LIVE];
    static size_t sizes[LIVE];
    static int cats[LIVE];
    size_t shadow[TRAIN_CAT_COUNT] = {0};
    uint64_t rng = 1;
    for (int round = 0; round < 200000; round++) {
        int i = (int)(train_rand_u64(&rng) % LIVE);
        if (ptrs[i]) {
            train_mem_free(&mem, ptrs[i]);
            shadow[cats[i]] -= sizes[i];
            ptrs[i] = NULL;
        } else {
            sizes[i] = 1 + train_rand_u64(&rng) % 256;
            cats[i] = (int)(train_rand_u64(&rng) % TRAIN_CAT_COUNT);
            ptrs[i] = train_mem_alloc(&mem, (train_cat_t)cats[i], sizes[i]);
            assert_non_null(ptrs[i]);
            shadow[cats[i]] += sizes[i];
        }
    }
    for (int c = 0; c < TRAIN_CAT_COUNT; c++)
        assert_int_equal(mem.cur[c], shadow[c]);
    for (int i = 0; i < LIVE; i++)
        train_mem_free(&mem, ptrs[i]);
    assert_int_equal(mem.cur_total, 0);
    assert_int_equal(mem.live_blocks, 0);
    assert_false(mem.overflow);
}

static void test_train_memory_unknown_pointer_flagged(void **state)
{
    static train_mem_t mem;
    train_mem_init(&mem, 0);
    void *p = malloc(16);
    train_mem_free(&mem, p);      /* frees it, but accounting is now suspect */
    assert_true(mem.overflow);
}

static train_model_config_t config(train_layout_t layout)
{
    train_model_config_t c = {.n_in = 784, .n_out = 10, .depth = 3, .width = 100,
                              .act = TRAIN_ACT_RELU, .micro_batch = 32,
                              .act_dtype = TRAIN_F32, .weight_dtype = TRAIN_F32,
                              .grad_dtype = TRAIN_F32, .layout = layout, .with_grads = 1};
    return c;
}

static void test_train_memory_model_bytes_per_tensor(void **state)
{
    static train_mem_t mem;
    train_mem_init(&mem, 0);
    train_model_config_t c = config(TRAIN_LAYOUT_PER_TENSOR);
    train_model_t m;
    assert_int_equal(train_model_init(&m, &c, &mem, 1), 0);
    size_t n = 784 * 100 + 100 + 2 * (100 * 100 + 100) + 100 * 10 + 10;
    assert_int_equal(m.n_params, n);
    assert_int_equal(mem.cur[TRAIN_CAT_WEIGHTS], n * 4);
    assert_int_equal(mem.cur[TRAIN_CAT_GRADIENTS], n * 4);
    assert_int_equal(mem.cur[TRAIN_CAT_ACTIVATIONS], 0);     /* born in forward */
    assert_int_equal(mem.live_blocks, 2 * 8);                /* one block per tensor */
    const train_opt_kind_t kinds[3] = {TRAIN_OPT_SGD, TRAIN_OPT_MOMENTUM, TRAIN_OPT_ADAMW};
    for (int k = 0; k < 3; k++) {
        train_optim_config_t oc = {.kind = kinds[k], .lr = 0.1f};
        train_optim_t o;
        assert_int_equal(train_optim_init(&o, &oc, &m, &mem), 0);
        assert_int_equal(mem.cur[TRAIN_CAT_OPTIMIZER_STATE], (size_t)k * n * 4);
        train_optim_free(&o);
    }
    float x[32 * 784] = {0};
    assert_int_equal(train_model_forward(&m, x, 32), 0);
    assert_int_equal(mem.cur[TRAIN_CAT_ACTIVATIONS], 3 * 2 * 32 * 100 * 4 + 2 * 32 * 10 * 4);
    train_model_release_acts(&m);
    assert_int_equal(mem.cur[TRAIN_CAT_ACTIVATIONS], 0);
    /* a smaller evaluation batch holds proportionally less */
    assert_int_equal(train_model_forward(&m, x, 8), 0);
    assert_int_equal(mem.cur[TRAIN_CAT_ACTIVATIONS], 3 * 2 * 8 * 100 * 4 + 2 * 8 * 10 * 4);
    train_model_free(&m);
    assert_int_equal(mem.cur_total, 0);
}

static void test_train_memory_model_bytes_block(void **state)
{
    static train_mem_t mem;
    train_mem_init(&mem, 0);
    train_model_config_t c = config(TRAIN_LAYOUT_BLOCK);
    train_model_t m;
    assert_int_equal(train_model_init(&m, &c, &mem, 1), 0);
    /* one allocation per kind: weights, gradients, activations, temporaries */
    assert_int_equal(mem.live_blocks, 4);
    size_t w = 0;
    for (int t = 0; t < m.n_tensors; t++)
        w += (m.tsize[t] * 4 + 63) / 64 * 64;
    assert_int_equal(mem.cur[TRAIN_CAT_WEIGHTS], w);
    assert_int_equal(mem.cur[TRAIN_CAT_GRADIENTS], w);
    assert_int_equal(mem.cur[TRAIN_CAT_ACTIVATIONS], 3 * 2 * 32 * 100 * 4 + 2 * 1280);
    assert_int_equal(mem.cur[TRAIN_CAT_TEMPORARIES], 2 * 32 * 100 * 4);   /* dz, dx */
    size_t before = mem.cur_total;
    float x[32 * 784] = {0};
    uint8_t y[32] = {0};
    train_loss_t loss = {.labels = y, .scale = 1.0f / 32};
    assert_int_equal(train_model_forward(&m, x, 32), 0);
    assert_int_equal(train_model_backward(&m, x, 32, &loss), 0);
    assert_int_equal(mem.cur_total, before);                 /* nothing per step */
    assert_int_equal(mem.n_allocs, 4);
    train_model_free(&m);
    assert_int_equal(mem.cur_total, 0);
}

/* With annotate set every allocation is announced with its category;
 * without it the accountant makes no annotation call at all. */
static void test_train_memory_annotations(void **state)
{
    static train_mem_t mem;
    train_mem_init(&mem, 0);
    n_region_begin = n_region_end = n_tag = 0;
    void *p = train_mem_alloc(&mem, TRAIN_CAT_GRADIENTS, 64);
    train_mem_free(&mem, p);
    assert_int_equal(n_region_begin + n_region_end + n_tag, 0);
    train_mem_init(&mem, 1);
    p = train_mem_alloc(&mem, TRAIN_CAT_GRADIENTS, 64);
    assert_int_equal(n_region_begin, 1);
    assert_int_equal(n_region_end, 1);
    assert_int_equal(n_tag, 1);
    assert_int_equal(last_tag_category, MLMEM_CAT_GRADIENTS);
    train_mem_free(&mem, p);
    p = train_mem_alloc(&mem, TRAIN_CAT_OPTIMIZER_STATE, 8);
    assert_int_equal(last_tag_category, MLMEM_CAT_OPTIMIZER_STATE);
    train_mem_free(&mem, p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_memory_peak_and_split),
        cmocka_unit_test(test_train_memory_random_churn),
        cmocka_unit_test(test_train_memory_unknown_pointer_flagged),
        cmocka_unit_test(test_train_memory_model_bytes_per_tensor),
        cmocka_unit_test(test_train_memory_model_bytes_block),
        cmocka_unit_test(test_train_memory_annotations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
