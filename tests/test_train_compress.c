/*
 * test_train_compress: magnitude pruning keeps exactly the requested
 * sparsity (through fine-tuning too), the CSR model computes what the dense
 * one does in fewer bytes, and int8 per-row quantization stays within its
 * error bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/compress.h"
#include "trainer/data.h"
#include "trainer/memory.h"
#include "trainer/model.h"
#include "trainer/optim.h"

enum { NI = 50, NO = 10, MB = 8 };

static void make_model(train_model_t *m, train_mem_t *mem, int width)
{
    train_mem_init(mem, 0);
    train_model_config_t c = {.n_in = NI, .n_out = NO, .depth = 2, .width = width,
                              .act = TRAIN_ACT_RELU, .micro_batch = MB,
                              .act_dtype = TRAIN_F32, .weight_dtype = TRAIN_F32,
                              .grad_dtype = TRAIN_F32, .layout = TRAIN_LAYOUT_PER_TENSOR,
                              .with_grads = 1};
    assert_int_equal(train_model_init(m, &c, mem, 11), 0);
}

static void test_train_compress_prune_exact_sparsity(void **state)
{
    static train_mem_t mem;
    const float sparsities[] = {0.1f, 0.5f, 0.9f, 0.333f};
    for (size_t k = 0; k < 4; k++) {
        train_model_t m;
        make_model(&m, &mem, 30);
        /* ties: many equal magnitudes must still give the exact count */
        for (size_t i = 0; i < m.tsize[2]; i++)
            m.param[2][i] = (i % 3) ? 0.25f : -0.25f;
        static float orig[3][64 * 64];
        for (int l = 0; l < m.n_layers; l++)
            memcpy(orig[l], m.param[2 * l], m.tsize[2 * l] * sizeof(float));
        uint8_t *masks[TRAIN_MAX_TENSORS];
        size_t pruned;
        assert_int_equal(train_prune_masks(&m, sparsities[k], masks, &pruned), 0);
        size_t want = 0;
        for (int l = 0; l < m.n_layers; l++) {
            size_t n = m.tsize[2 * l], kl = (size_t)floor(sparsities[k] * n + 0.5), zeros = 0;
            for (size_t i = 0; i < n; i++)
                zeros += m.param[2 * l][i] == 0.0f;
            assert_int_equal(zeros, kl);                  /* per matrix, exactly */
            want += kl;
            assert_null(masks[2 * l + 1]);                /* biases are not pruned */
        }
        assert_int_equal(pruned, want);
        assert_int_equal(train_count_zero_weights(&m), want);
        /* the smallest magnitudes went: every kept weight >= every pruned one */
        for (int l = 0; l < m.n_layers; l++) {
            float max_pruned = 0.0f, min_kept = INFINITY;
            for (size_t i = 0; i < m.tsize[2 * l]; i++) {
                float a = fabsf(orig[l][i]);
                if (masks[2 * l][i])
                    min_kept = fminf(min_kept, a);
                else
                    max_pruned = fmaxf(max_pruned, a);
            }
            assert_true(max_pruned <= min_kept);
        }
        train_prune_free_masks(&m, masks);
        train_model_free(&m);
        assert_int_equal(mem.cur_total, 0);
    }
}

static void test_train_compress_finetune_keeps_sparsity(void **state)
{
    static train_mem_t mem;
    train_model_t m;
    make_model(&m, &mem, 30);
    train_optim_config_t oc = {.kind = TRAIN_OPT_ADAMW, .lr = 1e-2f, .beta1 = 0.9f,
                               .beta2 = 0.999f, .eps = 1e-8f};
    train_optim_t o;
    assert_int_equal(train_optim_init(&o, &oc, &m, &mem), 0);
    uint8_t *masks[TRAIN_MAX_TENSORS];
    size_t pruned;
    assert_int_equal(train_prune_masks(&m, 0.5f, masks, &pruned), 0);
    float x[MB * NI];
    uint8_t y[MB];
    uint64_t rng = 2;
    for (int s = 0; s < 10; s++) {
        for (int i = 0; i < MB * NI; i++)
            x[i] = train_rand_uniform(&rng);
        for (int i = 0; i < MB; i++)
            y[i] = (uint8_t)(train_rand_u64(&rng) % NO);
        train_loss_t loss = {.labels = y, .scale = 1.0f / MB};
        train_model_zero_grad(&m);
        assert_int_equal(train_model_forward(&m, x, MB), 0);
        assert_int_equal(train_model_backward(&m, x, MB, &loss), 0);
        train_optim_step(&o, &m, oc.lr, 1.0f, masks);
    }
    assert_int_equal(train_count_zero_weights(&m), pruned);
    for (int l = 0; l < m.n_layers; l++)
        for (size_t i = 0; i < m.tsize[2 * l]; i++)
            assert_int_equal(masks[2 * l][i] == 0, m.param[2 * l][i] == 0.0f);
    train_prune_free_masks(&m, masks);
    train_optim_free(&o);
    train_model_free(&m);
}

static void test_train_compress_sparse_matches_dense(void **state)
{
    static train_mem_t mem;
    train_model_t m;
    make_model(&m, &mem, 64);
    uint8_t *masks[TRAIN_MAX_TENSORS];
    size_t pruned;
    assert_int_equal(train_prune_masks(&m, 0.5f, masks, &pruned), 0);
    float x[MB * NI], logits[MB * NO];
    uint64_t rng = 4;
    for (int i = 0; i < MB * NI; i++)
        x[i] = train_rand_uniform(&rng) - 0.5f;
    assert_int_equal(train_model_forward(&m, x, MB), 0);
    train_sparse_model_t s;
    size_t before = mem.cur[TRAIN_CAT_WEIGHTS];
    assert_int_equal(train_sparse_from_model(&s, &m, &mem, MB), 0);
    assert_int_equal(mem.cur[TRAIN_CAT_WEIGHTS] - before, s.weight_bytes);
    train_sparse_forward(&s, x, MB, logits);
    for (int i = 0; i < MB * NO; i++)
        assert_float_equal(logits[i], m.logits[i], 1e-4f);
    /* 6 bytes per kept weight beat 4 per weight at 50% sparsity */
    size_t dense = m.n_params * sizeof(float);
    assert_true(s.weight_bytes < dense * 8 / 10);
    train_model_release_acts(&m);
    train_sparse_free(&s);
    train_prune_free_masks(&m, masks);
    train_model_free(&m);
    assert_int_equal(mem.cur_total, 0);
}

static void test_train_compress_int8_error_bound(void **state)
{
    enum { ROWS = 17, COLS = 33 };
    float w[ROWS * COLS], scale[ROWS];
    int8_t q[ROWS * COLS];
    uint64_t rng = 8;
    for (int i = 0; i < ROWS * COLS; i++)
        w[i] = (train_rand_uniform(&rng) - 0.5f) * (float)(1 + i / COLS);   /* rows differ */
    for (int c = 0; c < COLS; c++)
        w[3 * COLS + c] = 0.0f;                                              /* an all-zero row */
    train_quantize_rows(q, scale, w, ROWS, COLS);
    for (int r = 0; r < ROWS; r++) {
        float mx = 0.0f;
        for (int c = 0; c < COLS; c++)
            mx = fmaxf(mx, fabsf(w[r * COLS + c]));
        if (r != 3)
            assert_float_equal(scale[r], mx / 127.0f, 1e-9f);
        int hit127 = 0;
        for (int c = 0; c < COLS; c++) {
            float back = scale[r] * q[r * COLS + c];
            assert_true(fabsf(back - w[r * COLS + c]) <= 0.5f * scale[r] * 1.0001f);
            hit127 |= abs(q[r * COLS + c]) == 127;
            assert_true(q[r * COLS + c] >= -127 && q[r * COLS + c] <= 127);
        }
        assert_true(r == 3 ? !hit127 : hit127);           /* the row max maps to +-127 */
    }
}

static void test_train_compress_int8_model_close_to_dense(void **state)
{
    static train_mem_t mem;
    train_model_t m;
    make_model(&m, &mem, 64);
    float x[MB * NI], logits[MB * NO];
    uint64_t rng = 6;
    for (int i = 0; i < MB * NI; i++)
        x[i] = train_rand_uniform(&rng) - 0.5f;
    assert_int_equal(train_model_forward(&m, x, MB), 0);
    train_qmodel_t qm;
    size_t before = mem.cur[TRAIN_CAT_WEIGHTS];
    assert_int_equal(train_qmodel_from_model(&qm, &m, &mem, MB), 0);
    assert_int_equal(mem.cur[TRAIN_CAT_WEIGHTS] - before, qm.weight_bytes);
    /* int8 weights: one byte per weight plus a scale and a bias per row */
    size_t w = 0, rows = 0;
    for (int l = 0; l < m.n_layers; l++) {
        w += m.tsize[2 * l];
        rows += m.tsize[2 * l + 1];
    }
    assert_int_equal(qm.weight_bytes, w + 8 * rows);
    train_qmodel_forward(&qm, x, MB, logits);
    float worst = 0.0f, mag = 0.0f;
    for (int i = 0; i < MB * NO; i++) {
        worst = fmaxf(worst, fabsf(logits[i] - m.logits[i]));
        mag = fmaxf(mag, fabsf(m.logits[i]));
    }
    assert_true(worst < 0.02f * mag + 1e-3f);
    train_model_release_acts(&m);
    train_qmodel_free(&qm);
    train_model_free(&m);
    assert_int_equal(mem.cur_total, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_compress_prune_exact_sparsity),
        cmocka_unit_test(test_train_compress_finetune_keeps_sparsity),
        cmocka_unit_test(test_train_compress_sparse_matches_dense),
        cmocka_unit_test(test_train_compress_int8_error_bound),
        cmocka_unit_test(test_train_compress_int8_model_close_to_dense),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
