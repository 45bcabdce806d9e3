/*
 * trainer/compress.h - magnitude pruning, sparse storage, int8 quantization.
 *
 * Pruning: train_prune_masks() zeroes, in every weight matrix (not the
 * biases), exactly round(sparsity * n) entries of smallest magnitude (ties
 * broken by index, so the count is exact) and returns per-tensor masks that
 * the optimizer applies during fine-tuning. train_sparse_from_model() then
 * stores the model in CSR form (fp32 values, uint16 column indices, int32
 * row offsets), which is what makes the memory drop: 6 bytes per kept
 * weight instead of 4 per weight.
 *
 * int8 post-training quantization: per output row, scale = max|w| / 127 and
 * q = round(w / scale), so |w - scale*q| <= scale/2. Biases stay fp32.
 * Inference dequantizes one layer at a time into an fp32 temporary and runs
 * sgemm.
 *
 * All buffers go through the accountant: sparse and int8 weights as
 * TRAIN_CAT_WEIGHTS, masks as TRAIN_CAT_WEIGHTS (they belong to the model
 * while fine-tuning), work buffers as temporaries and activations. Functions
 * return 0, or -1 when an allocation fails (everything allocated freed).
 */
#ifndef TRAIN_COMPRESS_H
#define TRAIN_COMPRESS_H

#include <stdint.h>

#include "memory.h"
#include "model.h"

typedef struct {
    int rows, cols, nnz;
    float *val;            /* nnz */
    uint16_t *col;         /* nnz */
    int32_t *rowptr;       /* rows + 1 */
} train_csr_t;

typedef struct {
    int n_layers;
    int dims[TRAIN_MAX_DEPTH + 2];
    train_act_t act;
    int max_batch;
    train_csr_t w[TRAIN_MAX_DEPTH + 1];
    float *b[TRAIN_MAX_DEPTH + 1];
    float *buf_a, *buf_b;  /* feature-major activations (dim, B) */
    train_mem_t *mem;
    size_t weight_bytes;
} train_sparse_model_t;

typedef struct {
    int n_layers;
    int dims[TRAIN_MAX_DEPTH + 2];
    train_act_t act;
    int max_batch;
    int8_t *q[TRAIN_MAX_DEPTH + 1];
    float *scale[TRAIN_MAX_DEPTH + 1];
    float *b[TRAIN_MAX_DEPTH + 1];
    float *buf_a, *buf_b;  /* (B, dim) activations */
    float *tmp_w;          /* one layer dequantized */
    train_mem_t *mem;
    size_t weight_bytes;
} train_qmodel_t;

/* Prunes m's weight matrices in place; masks[t] (1 = kept) is allocated for
 * weight tensors and NULL for biases. Returns the number of zeroed weights
 * in *pruned. */
int train_prune_masks(train_model_t *m, float sparsity, uint8_t **masks, size_t *pruned);
void train_prune_free_masks(train_model_t *m, uint8_t **masks);
/* Zero entries among the weight matrices of m (biases excluded). */
size_t train_count_zero_weights(const train_model_t *m);

int train_sparse_from_model(train_sparse_model_t *s, const train_model_t *m, train_mem_t *mem,
                            int max_batch);
/* logits (B, n_out) for x (B, n_in). */
void train_sparse_forward(train_sparse_model_t *s, const float *x, int B, float *logits);
void train_sparse_free(train_sparse_model_t *s);

/* Quantizes one row-major matrix (rows, cols) with per-row scales. */
void train_quantize_rows(int8_t *q, float *scale, const float *w, int rows, int cols);
int train_qmodel_from_model(train_qmodel_t *qm, const train_model_t *m, train_mem_t *mem,
                            int max_batch);
void train_qmodel_forward(train_qmodel_t *qm, const float *x, int B, float *logits);
void train_qmodel_free(train_qmodel_t *qm);

#endif /* TRAIN_COMPRESS_H */
