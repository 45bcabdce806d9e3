/*
 * test_train_precision: bf16/fp16 conversion and rounding, dynamic loss
 * scaling, and a real fp16 overflow being skipped.
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
#include "trainer/precision.h"

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_train_precision_bf16_rounding(void **state)
{
    /* exact values survive */
    assert_int_equal(train_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(train_f32_to_bf16(-2.0f), 0xc000);
    assert_true(train_bf16_to_f32(0x3f80) == 1.0f);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (down) */
    assert_int_equal(train_f32_to_bf16(from_bits(0x3f808000)), 0x3f80);
    /* 1 + 3*2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6: ties up to even */
    assert_int_equal(train_f32_to_bf16(from_bits(0x3f818000)), 0x3f82);
    /* just above halfway rounds up */
    assert_int_equal(train_f32_to_bf16(from_bits(0x3f808001)), 0x3f81);
    /* overflow to inf, inf stays inf, NaN stays NaN */
    assert_int_equal(train_f32_to_bf16(from_bits(0x7f7fffff)), 0x7f80);
    assert_int_equal(train_f32_to_bf16(INFINITY), 0x7f80);
    assert_true(isnan(train_bf16_to_f32(train_f32_to_bf16(NAN))));
    /* 8 significant bits: relative error at most half an ulp, 2^-8 */
    uint64_t rng = 3;
    for (int i = 0; i < 100000; i++) {
        float v = (train_rand_uniform(&rng) - 0.5f) * 1e4f;
        float r = train_bf16_to_f32(train_f32_to_bf16(v));
        assert_true(fabsf(r - v) <= fabsf(v) * (1.0f / 256.0f));
    }
}

static void test_train_precision_fp16_rounding(void **state)
{
    assert_int_equal(train_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(train_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(train_f32_to_f16(65504.0f), 0x7bff);          /* largest finite */
    assert_int_equal(train_f32_to_f16(65520.0f), 0x7c00);          /* rounds to inf */
    assert_int_equal(train_f32_to_f16(65519.0f), 0x7bff);
    /* 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even */
    assert_int_equal(train_f32_to_f16(1.0f + 1.0f / 2048.0f), 0x3c00);
    assert_int_equal(train_f32_to_f16(1.0f + 3.0f / 2048.0f), 0x3c02);
    /* subnormals: smallest is 2^-24; half of it ties to zero */
    assert_int_equal(train_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);
    assert_int_equal(train_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);
    assert_true(train_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(isnan(train_f16_to_f32(train_f32_to_f16(NAN))));
    /* store/load/round agree */
    float src[5] = {1.0f, 0.1f, -3.14159f, 70000.0f, 1e-9f}, back[5], r[5];
    uint16_t h[5];
    train_store_f32(TRAIN_F16, h, src, 5);
    train_load_f32(TRAIN_F16, back, h, 5);
    memcpy(r, src, sizeof(r));
    train_round_to(TRAIN_F16, r, 5);
    assert_memory_equal(back, r, sizeof(r));
    assert_true(isinf(back[3]));
    assert_false(train_all_finite(back, 5));
    assert_true(train_all_finite(back, 3));
}

static void test_train_precision_loss_scaler(void **state)
{
    train_scaler_t s;
    train_scaler_init(&s, 1024.0f, 1);
    s.growth_interval = 3;
    assert_int_equal(train_scaler_update(&s, 1), 0);     /* overflow: skip, halve */
    assert_true(s.scale == 512.0f);
    assert_int_equal(s.skipped, 1);
    for (int i = 0; i < 2; i++)
        assert_int_equal(train_scaler_update(&s, 0), 1);
    assert_true(s.scale == 512.0f);
    assert_int_equal(train_scaler_update(&s, 0), 1);     /* third good step: grow */
    assert_true(s.scale == 1024.0f);
    /* fixed scale: still skips, never changes */
    train_scaler_init(&s, 8.0f, 0);
    assert_int_equal(train_scaler_update(&s, 1), 0);
    assert_true(s.scale == 8.0f);
}

/* A real fp16 model with an absurd loss scale overflows its fp16 backward:
 * the step is detected, skipped (weights untouched) and the scale halves;
 * with a sane scale the next step applies. */
static void test_train_precision_fp16_overflow_skips_step(void **state)
{
    static train_mem_t mem;
    train_mem_init(&mem, 0);
    enum { NI = 12, NO = 10, MB = 8 };
    train_model_config_t cfg = {.n_in = NI, .n_out = NO, .depth = 2, .width = 16,
                                .act = TRAIN_ACT_RELU, .micro_batch = MB,
                                .act_dtype = TRAIN_F16, .weight_dtype = TRAIN_F32,
                                .grad_dtype = TRAIN_F16, .layout = TRAIN_LAYOUT_BLOCK,
                                .with_grads = 1};
    train_model_t m;
    assert_int_equal(train_model_init(&m, &cfg, &mem, 9), 0);
    train_optim_config_t oc = {.kind = TRAIN_OPT_SGD, .lr = 0.1f};
    train_optim_t o;
    assert_int_equal(train_optim_init(&o, &oc, &m, &mem), 0);
    train_scaler_t sc;
    train_scaler_init(&sc, 1e9f, 1);
    float x[MB * NI];
    uint8_t y[MB];
    uint64_t rng = 1;
    for (int i = 0; i < MB * NI; i++)
        x[i] = train_rand_uniform(&rng);
    for (int i = 0; i < MB; i++)
        y[i] = (uint8_t)(i % NO);
    float w_before[NI * 16];
    memcpy(w_before, m.param[0], sizeof(w_before));

    for (int attempt = 0; attempt < 2; attempt++) {
        train_loss_t loss = {.labels = y, .scale = sc.scale / MB};
        train_model_zero_grad(&m);
        assert_int_equal(train_model_forward(&m, x, MB), 0);
        assert_int_equal(train_model_backward(&m, x, MB, &loss), 0);
        int finite = train_model_grads_finite(&m);
        int apply = train_scaler_update(&sc, !finite);
        if (attempt == 0) {
            assert_false(finite);
            assert_false(apply);
            assert_true(sc.scale == 5e8f);
            assert_int_equal(sc.skipped, 1);
            assert_memory_equal(w_before, m.param[0], sizeof(w_before));
            sc.scale = 128.0f;                  /* back to a sane scale */
        } else {
            assert_true(finite);
            assert_true(apply);
            train_optim_step(&o, &m, oc.lr, 1.0f / sc.scale, NULL);
            assert_memory_not_equal(w_before, m.param[0], sizeof(w_before));
        }
    }
    train_optim_free(&o);
    train_model_free(&m);
    assert_int_equal(mem.cur_total, 0);
}

/* Low-precision storage really is 2 bytes per element, and the working
 * copy of the weights tracks the fp32 masters after an update. */
static void test_train_precision_storage_bytes(void **state)
{
    static train_mem_t mem;
    train_mem_init(&mem, 0);
    train_model_config_t cfg = {.n_in = 30, .n_out = 10, .depth = 2, .width = 20,
                                .act = TRAIN_ACT_RELU, .micro_batch = 4,
                                .act_dtype = TRAIN_BF16, .weight_dtype = TRAIN_BF16,
                                .grad_dtype = TRAIN_BF16, .layout = TRAIN_LAYOUT_PER_TENSOR,
                                .with_grads = 1};
    train_model_t m;
    assert_int_equal(train_model_init(&m, &cfg, &mem, 1), 0);
    size_t n = m.n_params;
    assert_int_equal(mem.cur[TRAIN_CAT_WEIGHTS], n * 4 + n * 2);
    assert_int_equal(mem.cur[TRAIN_CAT_GRADIENTS], n * 2);
    train_optim_config_t oc = {.kind = TRAIN_OPT_ADAMW, .lr = 1e-2f, .beta1 = 0.9f,
                               .beta2 = 0.999f, .eps = 1e-8f, .state_dtype = TRAIN_BF16};
    train_optim_t o;
    assert_int_equal(train_optim_init(&o, &oc, &m, &mem), 0);
    assert_int_equal(mem.cur[TRAIN_CAT_OPTIMIZER_STATE], 2 * n * 2);
    float x[4 * 30] = {0};
    x[3] = 1.0f;
    uint8_t y[4] = {1, 2, 3, 4};
    train_loss_t loss = {.labels = y, .scale = 0.25f};
    assert_int_equal(train_model_forward(&m, x, 4), 0);
    /* per-tensor: activations are z and x of 2 hidden layers (bf16) plus
     * fp32 logits and probs, live until backward */
    assert_int_equal(mem.cur[TRAIN_CAT_ACTIVATIONS], 4 * (size_t)4 * 20 * 2 + 2 * 4 * 10 * 4);
    assert_int_equal(train_model_backward(&m, x, 4, &loss), 0);
    assert_int_equal(mem.cur[TRAIN_CAT_ACTIVATIONS], 0);
    assert_int_equal(mem.cur[TRAIN_CAT_TEMPORARIES], 0);
    train_optim_step(&o, &m, oc.lr, 1.0f, NULL);
    for (int t = 0; t < m.n_tensors; t++)
        for (size_t i = 0; i < m.tsize[t]; i++)
            assert_int_equal(((uint16_t *)m.param_lp[t])[i], train_f32_to_bf16(m.param[t][i]));
    train_optim_free(&o);
    train_model_free(&m);
    assert_int_equal(mem.cur_total, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_precision_bf16_rounding),
        cmocka_unit_test(test_train_precision_fp16_rounding),
        cmocka_unit_test(test_train_precision_loss_scaler),
        cmocka_unit_test(test_train_precision_fp16_overflow_skips_step),
        cmocka_unit_test(test_train_precision_storage_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
