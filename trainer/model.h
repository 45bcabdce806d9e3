/*
 * trainer/model.h - the MLP: layers, parameters, activations, checkpointing.
 *
 * The model is depth hidden layers of 'width' units (ReLU or GELU) and a
 * linear output layer, trained with softmax cross-entropy:
 *
 *   x_0 = input (B, n_in)
 *   z_i = x_i W_i^T + b_i,  x_{i+1} = act(z_i)      i = 0 .. depth-1
 *   logits = x_depth W_depth^T + b_depth  (B, n_out),  probs = softmax(logits)
 *
 * Memory. Parameters are fp32 master weights; with weight_dtype bf16/fp16 a
 * working copy in that dtype is what forward and backward read. Gradients
 * are stored in grad_dtype, activations (z and x per hidden layer) in
 * act_dtype; arithmetic is always fp32, through temporaries. With
 * layout BLOCK each kind is one allocation carved up by point_* helpers
 * (llm.c style) and everything is allocated once at init; with layout
 * PER_TENSOR every layer tensor is its own allocation, and activations and
 * temporaries are allocated when produced and freed when consumed, as a
 * framework's allocator would.
 *
 * Gradient checkpointing: hidden layers are cut into segments of
 * ckpt_segment layers; forward keeps only each segment's input, backward
 * recomputes a segment's activations from it. The last segment is kept from
 * forward. The same arithmetic runs in the same order, so results are
 * bit-identical to no checkpointing (ckpt_segment 0).
 *
 * Every function is a pure function of its arguments and the model; no
 * globals. Functions returning int return 0 on success and -1 when an
 * allocation fails (the model stays usable and can be freed).
 */
#ifndef TRAIN_MODEL_H
#define TRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "memory.h"
#include "precision.h"

#define TRAIN_MAX_DEPTH 64
#define TRAIN_MAX_TENSORS (2 * (TRAIN_MAX_DEPTH + 1))

typedef enum { TRAIN_ACT_RELU = 0, TRAIN_ACT_GELU = 1 } train_act_t;
typedef enum { TRAIN_LAYOUT_BLOCK = 0, TRAIN_LAYOUT_PER_TENSOR = 1 } train_layout_t;

typedef struct {
    int n_in, n_out;           /* 784, 10 for Fashion-MNIST */
    int depth, width;          /* hidden layers and their width */
    train_act_t act;
    int micro_batch;           /* most rows a forward/backward takes */
    int ckpt_segment;          /* hidden layers per segment; 0: no checkpointing */
    train_dtype_t act_dtype, weight_dtype, grad_dtype;
    train_layout_t layout;
    int with_grads;            /* 0: inference only (teacher, evaluation) */
} train_model_config_t;

/* What backward differentiates: mean cross-entropy over the batch, optionally
 * mixed with distillation from a teacher's logits. The gradient of the
 * logits is scale * ((1-alpha)(p - y) + alpha*T*(softmax(z/T) -
 * softmax(z_t/T))) per row; scale is loss_scale / effective batch. */
typedef struct {
    const uint8_t *labels;
    float scale;
    const float *teacher_logits;   /* NULL: no distillation */
    float alpha, temp;
} train_loss_t;

typedef struct {
    train_model_config_t cfg;
    train_mem_t *mem;
    int n_layers;                          /* depth + 1 */
    int dims[TRAIN_MAX_DEPTH + 2];
    int n_tensors;                         /* W_0, b_0, W_1, b_1, ... */
    size_t tsize[TRAIN_MAX_TENSORS];       /* elements per tensor */
    size_t n_params;
    float *param[TRAIN_MAX_TENSORS];       /* fp32 master */
    void *param_lp[TRAIN_MAX_TENSORS];     /* working copy; NULL for fp32 */
    void *grad[TRAIN_MAX_TENSORS];         /* grad_dtype */
    void *params_block, *lp_block, *grads_block;

    /* activations: per segment slot z[s], x[s] (B, width) in act_dtype,
     * segment inputs ckpt[j] for j >= 1, logits and probs (B, n_out) fp32 */
    int seg_len, n_segs;
    int acts_B;                            /* rows the activations hold */
    void *z[TRAIN_MAX_DEPTH], *a[TRAIN_MAX_DEPTH], *ckpt[TRAIN_MAX_DEPTH];
    float *logits, *probs;
    void *acts_block;
    int resident_seg;                      /* segment whose slots are filled */

    /* fp32 temporaries */
    float *t_x, *t_z, *t_dz, *t_dx, *t_w, *t_g;
    void *tmp_block;
    long recomputed_layers;                /* layer forwards redone in backward */
} train_model_t;

// ----------------------------------------------------------------------------
// layers (fp32). Shapes in comments; row-major.

/* y (B,out) = x (B,in) w^T (w: out,in) + b (out) */
void train_linear_forward(float *y, const float *x, const float *w, const float *b, int B,
                          int in, int out);
/* dw (out,in) = beta*dw + dy^T x; db (out) = beta*db + sum_rows dy;
 * dx (B,in) = dy w (skipped when dx is NULL). */
void train_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, int B, int in, int out, float beta);
/* a = max(z, 0); dz = dy * (z > 0). n elements. a may alias z. */
void train_relu_forward(float *a, const float *z, size_t n);
void train_relu_backward(float *dz, const float *dy, const float *z, size_t n);
/* tanh-approximation GELU and its derivative. a may alias z. */
void train_gelu_forward(float *a, const float *z, size_t n);
void train_gelu_backward(float *dz, const float *dy, const float *z, size_t n);
/* probs (B,C) = softmax(logits / temp) row-wise. */
void train_softmax_forward(float *probs, const float *logits, int B, int C, float temp);
/* Mean over rows of -log softmax(logits)[label]. */
float train_ce_loss(const float *logits, const uint8_t *labels, int B, int C);
/* Loss of train_loss_t (without the scale): (1-alpha) CE + alpha T^2
 * KL(softmax(z_t/T) || softmax(z/T)), mean over rows. */
float train_loss_value(const float *logits, const train_loss_t *loss, int B, int C);
/* dlogits (B,C) per train_loss_t; probs = softmax(logits). */
void train_loss_backward(float *dlogits, const float *logits, const float *probs,
                         const train_loss_t *loss, int B, int C);

// ----------------------------------------------------------------------------
// model

int train_model_init(train_model_t *m, const train_model_config_t *cfg, train_mem_t *mem,
                     uint64_t seed);
void train_model_free(train_model_t *m);

/* Forward of B <= micro_batch rows of x (B, n_in). Leaves logits and probs
 * in m->logits, m->probs (valid until backward or release_acts). */
int train_model_forward(train_model_t *m, const float *x, int B);
/* Backward after forward on the same x; accumulates into the gradients
 * (call zero_grad first for a new step). Frees per-tensor activations. */
int train_model_backward(train_model_t *m, const float *x, int B, const train_loss_t *loss);
/* Frees activations left by a forward without backward (evaluation).
 * No operation for the block layout. */
void train_model_release_acts(train_model_t *m);
void train_model_zero_grad(train_model_t *m);
/* Copies the fp32 master weights to the working copy (after an update). */
void train_model_sync_lp(train_model_t *m);
/* 1 when every gradient is finite. */
int train_model_grads_finite(const train_model_t *m);
/* Predicted class per row of m->logits. */
void train_model_argmax(const train_model_t *m, int B, int *pred);

/* Bytes held by parameters/working copy, gradients (what init allocated). */
size_t train_model_weight_bytes(const train_model_t *m);

#endif /* TRAIN_MODEL_H */
