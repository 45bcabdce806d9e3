/*
 * test_train_checkpointing: gradient checkpointing (every k-th layer, sqrt)
 * gives bit-identical losses, gradients and weights to no checkpointing,
 * recomputes what it dropped, and holds fewer activation bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "trainer/data.h"
#include "trainer/memory.h"
#include "trainer/model.h"
#include "trainer/optim.h"

enum { NI = 20, NO = 10, MB = 16, DEPTH = 6, WIDTH = 24, STEPS = 5 };

typedef struct {
    float losses[STEPS];
    float weights[200000];
    size_t n_weights;
    long recomputed;
    size_t act_max;
} run_result_t;

/* Trains STEPS AdamW steps on fixed random data; records losses, final
 * weights, recomputed layers and the activations high-water mark. */
static void run(int ckpt, train_layout_t layout, train_dtype_t act_dtype, train_act_t act,
                run_result_t *out)
{
    static train_mem_t mem;
    train_mem_init(&mem, 0);
    train_model_config_t cfg = {.n_in = NI, .n_out = NO, .depth = DEPTH, .width = WIDTH,
                                .act = act, .micro_batch = MB, .ckpt_segment = ckpt,
                                .act_dtype = act_dtype, .weight_dtype = TRAIN_F32,
                                .grad_dtype = TRAIN_F32, .layout = layout, .with_grads = 1};
    train_model_t m;
    assert_int_equal(train_model_init(&m, &cfg, &mem, 42), 0);
    train_optim_config_t oc = {.kind = TRAIN_OPT_ADAMW, .lr = 1e-2f, .beta1 = 0.9f,
                               .beta2 = 0.999f, .eps = 1e-8f, .state_dtype = TRAIN_F32};
    train_optim_t o;
    assert_int_equal(train_optim_init(&o, &oc, &m, &mem), 0);
    float x[MB * NI];
    uint8_t y[MB];
    uint64_t rng = 7;
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < MB * NI; i++)
            x[i] = 2.0f * train_rand_uniform(&rng) - 1.0f;
        for (int i = 0; i < MB; i++)
            y[i] = (uint8_t)(train_rand_u64(&rng) % NO);
        train_loss_t loss = {.labels = y, .scale = 1.0f / MB};
        train_model_zero_grad(&m);
        assert_int_equal(train_model_forward(&m, x, MB), 0);
        out->losses[s] = train_loss_value(m.logits, &loss, MB, NO);
        assert_int_equal(train_model_backward(&m, x, MB, &loss), 0);
        train_optim_step(&o, &m, oc.lr, 1.0f, NULL);
    }
    out->n_weights = 0;
    for (int t = 0; t < m.n_tensors; t++) {
        memcpy(out->weights + out->n_weights, m.param[t], m.tsize[t] * sizeof(float));
        out->n_weights += m.tsize[t];
    }
    out->recomputed = m.recomputed_layers;
    out->act_max = mem.max[TRAIN_CAT_ACTIVATIONS];
    train_optim_free(&o);
    train_model_free(&m);
    assert_int_equal(mem.cur_total, 0);
}

static void assert_bit_identical(const run_result_t *a, const run_result_t *b)
{
    assert_memory_equal(a->losses, b->losses, sizeof(a->losses));
    assert_int_equal(a->n_weights, b->n_weights);
    assert_memory_equal(a->weights, b->weights, a->n_weights * sizeof(float));
}

static void check_all_segmentings(train_layout_t layout, train_dtype_t dt, train_act_t act)
{
    static run_result_t base, other;
    run(0, layout, dt, act, &base);
    assert_int_equal(base.recomputed, 0);
    const int segs[] = {1, 2, 3, 4};     /* sqrt(6) rounds up to 3 */
    for (size_t k = 0; k < sizeof(segs) / sizeof(segs[0]); k++) {
        run(segs[k], layout, dt, act, &other);
        assert_bit_identical(&base, &other);
        /* everything but the last segment is recomputed, every step */
        int last = DEPTH - ((DEPTH - 1) / segs[k]) * segs[k];
        assert_int_equal(other.recomputed, (long)STEPS * (DEPTH - last));
        assert_true(other.act_max < base.act_max);
    }
}

static void test_train_checkpointing_bit_identical_block(void **state)
{
    check_all_segmentings(TRAIN_LAYOUT_BLOCK, TRAIN_F32, TRAIN_ACT_RELU);
}

static void test_train_checkpointing_bit_identical_per_tensor_gelu(void **state)
{
    check_all_segmentings(TRAIN_LAYOUT_PER_TENSOR, TRAIN_F32, TRAIN_ACT_GELU);
}

static void test_train_checkpointing_bit_identical_bf16(void **state)
{
    check_all_segmentings(TRAIN_LAYOUT_BLOCK, TRAIN_BF16, TRAIN_ACT_RELU);
}

/* Activation bytes, block layout: segment inputs plus one segment's z and x
 * per hidden layer, plus logits and probs (each region 64-byte aligned). */
static void test_train_checkpointing_activation_bytes(void **state)
{
    static run_result_t r;
    size_t row = (size_t)MB * WIDTH * 4, out = (size_t)MB * NO * 4;
    size_t pad = (out + 63) / 64 * 64;    /* row (1536 B) is already aligned */
    run(0, TRAIN_LAYOUT_BLOCK, TRAIN_F32, TRAIN_ACT_RELU, &r);
    assert_int_equal(r.act_max, 2 * DEPTH * row + 2 * pad);
    run(2, TRAIN_LAYOUT_BLOCK, TRAIN_F32, TRAIN_ACT_RELU, &r);
    assert_int_equal(r.act_max, (2 * 2 + 2) * row + 2 * pad);   /* 3 segments */
    run(1, TRAIN_LAYOUT_BLOCK, TRAIN_F32, TRAIN_ACT_RELU, &r);
    assert_int_equal(r.act_max, (2 * 1 + 5) * row + 2 * pad);   /* 6 segments */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_checkpointing_bit_identical_block),
        cmocka_unit_test(test_train_checkpointing_bit_identical_per_tensor_gelu),
        cmocka_unit_test(test_train_checkpointing_bit_identical_bf16),
        cmocka_unit_test(test_train_checkpointing_activation_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
