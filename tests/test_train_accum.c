/*
 * test_train_accum: gradient accumulation over micro-batches gives the
 * gradients and update of the full batch (to float rounding), while the
 * activations follow the micro-batch.
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

enum { NI = 24, NO = 10, BATCH = 32, DEPTH = 3, WIDTH = 40 };

typedef struct {
    float grads[20000];
    float weights[20000];
    size_t n;
    size_t act_max;
} accum_result_t;

/* One step on a batch of BATCH rows split into BATCH/micro micro-batches. */
static void step(int micro, train_layout_t layout, accum_result_t *out)
{
    static train_mem_t mem;
    train_mem_init(&mem, 0);
    train_model_config_t cfg = {.n_in = NI, .n_out = NO, .depth = DEPTH, .width = WIDTH,
                                .act = TRAIN_ACT_GELU, .micro_batch = micro,
                                .act_dtype = TRAIN_F32, .weight_dtype = TRAIN_F32,
                                .grad_dtype = TRAIN_F32, .layout = layout, .with_grads = 1};
    train_model_t m;
    assert_int_equal(train_model_init(&m, &cfg, &mem, 77), 0);
    train_optim_config_t oc = {.kind = TRAIN_OPT_MOMENTUM, .lr = 0.1f, .momentum = 0.9f};
    train_optim_t o;
    assert_int_equal(train_optim_init(&o, &oc, &m, &mem), 0);
    float x[BATCH * NI];
    uint8_t y[BATCH];
    uint64_t rng = 5;
    for (int i = 0; i < BATCH * NI; i++)
        x[i] = 2.0f * train_rand_uniform(&rng) - 1.0f;
    for (int i = 0; i < BATCH; i++)
        y[i] = (uint8_t)(train_rand_u64(&rng) % NO);
    train_model_zero_grad(&m);
    for (int k = 0; k < BATCH / micro; k++) {
        train_loss_t loss = {.labels = y + k * micro, .scale = 1.0f / BATCH};
        assert_int_equal(train_model_forward(&m, x + (size_t)k * micro * NI, micro), 0);
        assert_int_equal(train_model_backward(&m, x + (size_t)k * micro * NI, micro, &loss), 0);
    }
    out->n = 0;
    for (int t = 0; t < m.n_tensors; t++) {
        memcpy(out->grads + out->n, m.grad[t], m.tsize[t] * sizeof(float));
        out->n += m.tsize[t];
    }
    train_optim_step(&o, &m, oc.lr, 1.0f, NULL);
    size_t n = 0;
    for (int t = 0; t < m.n_tensors; t++) {
        memcpy(out->weights + n, m.param[t], m.tsize[t] * sizeof(float));
        n += m.tsize[t];
    }
    out->act_max = mem.max[TRAIN_CAT_ACTIVATIONS];
    train_optim_free(&o);
    train_model_free(&m);
}

static void assert_close_arrays(const float *a, const float *b, size_t n, float tol)
{
    float worst = 0.0f, scale = 0.0f;
    for (size_t i = 0; i < n; i++) {
        worst = fmaxf(worst, fabsf(a[i] - b[i]));
        scale = fmaxf(scale, fabsf(a[i]));
    }
    if (worst > tol * scale)
        fail_msg("max difference %g exceeds %g x max magnitude %g", worst, tol, scale);
}

static void check_layout(train_layout_t layout)
{
    static accum_result_t full, part;
    step(BATCH, layout, &full);
    for (int micro = 16; micro >= 4; micro /= 2) {
        step(micro, layout, &part);
        assert_int_equal(part.n, full.n);
        assert_close_arrays(full.grads, part.grads, full.n, 1e-5f);
        assert_close_arrays(full.weights, part.weights, full.n, 1e-6f);
        /* activation memory follows the micro-batch */
        assert_true(part.act_max * (size_t)(BATCH / micro) <= full.act_max + 1024);
        assert_true(part.act_max < full.act_max);
    }
}

static void test_train_accum_matches_full_batch_block(void **state)
{
    check_layout(TRAIN_LAYOUT_BLOCK);
}

static void test_train_accum_matches_full_batch_per_tensor(void **state)
{
    check_layout(TRAIN_LAYOUT_PER_TENSOR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_accum_matches_full_batch_block),
        cmocka_unit_test(test_train_accum_matches_full_batch_per_tensor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
