/*
 * test_train_layers: finite-difference gradient checks (fp32) for every layer
 * and the losses, and for a whole model's backward.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/data.h"
#include "trainer/memory.h"
#include "trainer/model.h"

static void fill(float *x, size_t n, uint64_t seed, float scale)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = (2.0f * train_rand_uniform(&s) - 1.0f) * scale;
}

/* Agreement of an analytic and a central-difference derivative: relative
 * error 'tol', with an absolute floor for the float rounding of the probe. */
static void assert_close(double analytic, double numeric, double tol, const char *what, size_t i)
{
    double err = fabs(analytic - numeric) / fmax(1e-2, fabs(analytic) + fabs(numeric));
    if (err > tol)
        fail_msg("%s[%zu]: analytic %.6g numeric %.6g (rel err %.3g)", what, i, analytic,
                 numeric, err);
}

/* Scalar objective: sum of y * r for a fixed random r, so dL/dy = r. */
static double dot(const float *y, const float *r, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)y[i] * r[i];
    return s;
}

enum { B = 3, IN = 5, OUT = 4 };

static double linear_objective(const float *x, const float *w, const float *b, const float *r)
{
    float y[B * OUT];
    train_linear_forward(y, x, w, b, B, IN, OUT);
    return dot(y, r, B * OUT);
}

static void test_train_layers_linear_gradients(void **state)
{
    float x[B * IN], w[OUT * IN], b[OUT], r[B * OUT];
    float dx[B * IN], dw[OUT * IN], db[OUT];
    fill(x, B * IN, 1, 1.0f);
    fill(w, OUT * IN, 2, 0.5f);
    fill(b, OUT, 3, 0.5f);
    fill(r, B * OUT, 4, 1.0f);
    train_linear_backward(dx, dw, db, r, x, w, B, IN, OUT, 0.0f);
    const float h = 1e-2f;
    struct { float *p; float *g; size_t n; const char *name; } params[] = {
        {x, dx, B * IN, "dx"}, {w, dw, OUT * IN, "dw"}, {b, db, OUT, "db"}};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < params[k].n; i++) {
            float keep = params[k].p[i];
            params[k].p[i] = keep + h;
            double up = linear_objective(x, w, b, r);
            params[k].p[i] = keep - h;
            double down = linear_objective(x, w, b, r);
            params[k].p[i] = keep;
            assert_close(params[k].g[i], (up - down) / (2 * h), 1e-3, params[k].name, i);
        }
    }
    /* beta = 1 accumulates: a second call doubles dw and db */
    float dw2[OUT * IN], db2[OUT];
    memcpy(dw2, dw, sizeof(dw));
    memcpy(db2, db, sizeof(db));
    train_linear_backward(NULL, dw2, db2, r, x, w, B, IN, OUT, 1.0f);
    for (int i = 0; i < OUT * IN; i++)
        assert_true(fabsf(dw2[i] - 2 * dw[i]) <= 1e-5f * (1 + fabsf(dw[i])));
    for (int i = 0; i < OUT; i++)
        assert_true(fabsf(db2[i] - 2 * db[i]) <= 1e-5f * (1 + fabsf(db[i])));
}

static void check_activation(int gelu)
{
    enum { N = 64 };
    float z[N], r[N], a[N], dz[N];
    fill(z, N, 11, 3.0f);
    fill(r, N, 12, 1.0f);
    for (int i = 0; i < N; i++)
        if (fabsf(z[i]) < 0.05f)
            z[i] = 0.5f;                /* keep ReLU's kink away from the probe */
    if (gelu)
        train_gelu_backward(dz, r, z, N);
    else
        train_relu_backward(dz, r, z, N);
    const double h = 1e-2;
    for (int i = 0; i < N; i++) {
        float keep = z[i];
        double vals[2];
        for (int s = 0; s < 2; s++) {
            z[i] = (float)(keep + (s ? -h : h));
            if (gelu)
                train_gelu_forward(a, z, N);
            else
                train_relu_forward(a, z, N);
            vals[s] = dot(a, r, N);
        }
        z[i] = keep;
        assert_close(dz[i], (vals[0] - vals[1]) / (2 * h), 2e-3, gelu ? "gelu dz" : "relu dz", i);
    }
}

static void test_train_layers_relu_gradient(void **state)
{
    check_activation(0);
    float z[4] = {-1.0f, 0.0f, 2.0f, -0.0f}, a[4];
    train_relu_forward(a, z, 4);
    assert_true(a[0] == 0.0f && a[1] == 0.0f && a[2] == 2.0f && a[3] == 0.0f);
}

static void test_train_layers_gelu_gradient(void **state)
{
    check_activation(1);
    float z[3] = {0.0f, 1.0f, -1.0f}, a[3];
    train_gelu_forward(a, z, 3);
    assert_float_equal(a[0], 0.0f, 1e-7f);
    assert_float_equal(a[1], 0.841192f, 1e-4f);   /* tanh approximation at 1 */
    assert_float_equal(a[2], -0.158808f, 1e-4f);
}

static void check_loss(int distill)
{
    enum { R = 4, C = 10 };
    float logits[R * C], teacher[R * C], probs[R * C], d[R * C];
    uint8_t labels[R] = {3, 0, 9, 5};
    fill(logits, R * C, 21, 2.0f);
    fill(teacher, R * C, 22, 3.0f);
    train_loss_t loss = {.labels = labels, .scale = 1.0f / R};
    if (distill) {
        loss.teacher_logits = teacher;
        loss.alpha = 0.6f;
        loss.temp = 3.0f;
    }
    train_softmax_forward(probs, logits, R, C, 1.0f);
    train_loss_backward(d, logits, probs, &loss, R, C);
    const float h = 1e-2f;
    for (int i = 0; i < R * C; i++) {
        float keep = logits[i];
        logits[i] = keep + h;
        double up = train_loss_value(logits, &loss, R, C);
        logits[i] = keep - h;
        double down = train_loss_value(logits, &loss, R, C);
        logits[i] = keep;
        assert_close(d[i], (up - down) / (2 * h), 2e-3, distill ? "distill dlogits" : "ce dlogits",
                     (size_t)i);
    }
}

static void test_train_layers_softmax_ce_gradient(void **state)
{
    check_loss(0);
    /* uniform logits: loss is log(C) */
    float z[10] = {0};
    uint8_t y = 4;
    assert_float_equal(train_ce_loss(z, &y, 1, 10), logf(10.0f), 1e-5f);
}

static void test_train_layers_distill_gradient(void **state)
{
    check_loss(1);
}

/* Whole model: backward's weight gradients against central differences of
 * the mean cross-entropy, for ReLU and GELU, with checkpointing on. */
static void check_model(train_act_t act, int ckpt, train_layout_t layout)
{
    static train_mem_t mem;
    train_mem_init(&mem, 0);
    enum { MB = 4, NI = 6, NO = 5 };
    train_model_config_t cfg = {.n_in = NI, .n_out = NO, .depth = 3, .width = 7, .act = act,
                                .micro_batch = MB, .ckpt_segment = ckpt,
                                .act_dtype = TRAIN_F32, .weight_dtype = TRAIN_F32,
                                .grad_dtype = TRAIN_F32, .layout = layout, .with_grads = 1};
    train_model_t m;
    assert_int_equal(train_model_init(&m, &cfg, &mem, 5), 0);
    float x[MB * NI];
    fill(x, MB * NI, 31, 1.5f);
    uint8_t labels[MB] = {0, 4, 2, 1};
    train_loss_t loss = {.labels = labels, .scale = 1.0f / MB};
    train_model_zero_grad(&m);
    assert_int_equal(train_model_forward(&m, x, MB), 0);
    assert_int_equal(train_model_backward(&m, x, MB, &loss), 0);
    const float h = 1e-3f;
    for (int t = 0; t < m.n_tensors; t++) {
        for (size_t i = 0; i < m.tsize[t]; i++) {
            float keep = m.param[t][i];
            double v[2];
            for (int s = 0; s < 2; s++) {
                m.param[t][i] = keep + (s ? -h : h);
                assert_int_equal(train_model_forward(&m, x, MB), 0);
                v[s] = train_ce_loss(m.logits, labels, MB, NO);
                train_model_release_acts(&m);
            }
            m.param[t][i] = keep;
            double num = (v[0] - v[1]) / (2 * h);
            float g = ((float *)m.grad[t])[i];
            /* ReLU kinks can sit inside the probe: skip tiny analytic
             * gradients whose numeric twin is also tiny */
            if (fabs(num) < 1e-4 && fabsf(g) < 1e-4f)
                continue;
            assert_close(g, num, 2e-2, "model grad", (size_t)t * 1000 + i);
        }
    }
    train_model_free(&m);
    assert_int_equal(mem.cur_total, 0);
}

static void test_train_layers_model_gradient_relu(void **state)
{
    check_model(TRAIN_ACT_RELU, 0, TRAIN_LAYOUT_BLOCK);
}

static void test_train_layers_model_gradient_gelu_checkpointed(void **state)
{
    check_model(TRAIN_ACT_GELU, 1, TRAIN_LAYOUT_PER_TENSOR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_layers_linear_gradients),
        cmocka_unit_test(test_train_layers_relu_gradient),
        cmocka_unit_test(test_train_layers_gelu_gradient),
        cmocka_unit_test(test_train_layers_softmax_ce_gradient),
        cmocka_unit_test(test_train_layers_distill_gradient),
        cmocka_unit_test(test_train_layers_model_gradient_relu),
        cmocka_unit_test(test_train_layers_model_gradient_gelu_checkpointed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
