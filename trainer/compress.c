/*
 * trainer/compress.c - pruning, CSR storage, int8 quantization (see compress.h).
 */
#include "compress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

// ----------------------------------------------------------------------------
// pruning

typedef struct {
    float mag;
    uint32_t idx;
} mag_idx_t;

static int mag_idx_less(const mag_idx_t *a, const mag_idx_t *b)
{
    return a->mag < b->mag || (a->mag == b->mag && a->idx < b->idx);
}

/* In-place heapsort by (magnitude, index): glibc's qsort may malloc a merge
 * buffer behind the accountant's back, this never allocates. */
static void sort_mag_idx(mag_idx_t *v, size_t n)
{
    for (size_t start = n / 2; start-- > 0;) {
        for (size_t root = start;;) {
            size_t child = 2 * root + 1;
            if (child >= n)
                break;
            if (child + 1 < n && mag_idx_less(&v[child], &v[child + 1]))
                child++;
            if (!mag_idx_less(&v[root], &v[child]))
                break;
            mag_idx_t t = v[root]; v[root] = v[child]; v[child] = t;
            root = child;
        }
    }
    for (size_t end = n; end-- > 1;) {
        mag_idx_t t = v[0]; v[0] = v[end]; v[end] = t;
        for (size_t root = 0;;) {
            size_t child = 2 * root + 1;
            if (child >= end)
                break;
            if (child + 1 < end && mag_idx_less(&v[child], &v[child + 1]))
                child++;
            if (!mag_idx_less(&v[root], &v[child]))
                break;
            mag_idx_t u = v[root]; v[root] = v[child]; v[child] = u;
            root = child;
        }
    }
}

int train_prune_masks(train_model_t *m, float sparsity, uint8_t **masks, size_t *pruned)
{
    *pruned = 0;
    for (int t = 0; t < m->n_tensors; t++)
        masks[t] = NULL;
    for (int l = 0; l < m->n_layers; l++) {
        int t = 2 * l;
        size_t n = m->tsize[t];
        size_t k = (size_t)floor((double)sparsity * (double)n + 0.5);
        masks[t] = train_mem_alloc(m->mem, TRAIN_CAT_WEIGHTS, n);
        mag_idx_t *order = train_mem_alloc(m->mem, TRAIN_CAT_TEMPORARIES, n * sizeof(mag_idx_t));
        if (!masks[t] || !order) {
            train_mem_free(m->mem, order);
            train_prune_free_masks(m, masks);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            order[i].mag = fabsf(m->param[t][i]);
            order[i].idx = (uint32_t)i;
        }
        sort_mag_idx(order, n);
        memset(masks[t], 1, n);
        for (size_t i = 0; i < k; i++) {
            masks[t][order[i].idx] = 0;
            m->param[t][order[i].idx] = 0.0f;
        }
        *pruned += k;
        train_mem_free(m->mem, order);
    }
    train_model_sync_lp(m);
    return 0;
}

void train_prune_free_masks(train_model_t *m, uint8_t **masks)
{
    for (int t = 0; t < m->n_tensors; t++) {
        train_mem_free(m->mem, masks[t]);
        masks[t] = NULL;
    }
}

size_t train_count_zero_weights(const train_model_t *m)
{
    size_t zeros = 0;
    for (int l = 0; l < m->n_layers; l++)
        for (size_t i = 0; i < m->tsize[2 * l]; i++)
            zeros += m->param[2 * l][i] == 0.0f;
    return zeros;
}

// ----------------------------------------------------------------------------
// CSR model

static void act_inplace(train_act_t act, float *x, size_t n)
{
    if (act == TRAIN_ACT_GELU)
        train_gelu_forward(x, x, n);
    else
        train_relu_forward(x, x, n);
}

static int max_dim(const int *dims, int n_layers)
{
    int d = 0;
    for (int l = 0; l <= n_layers; l++)
        d = dims[l] > d ? dims[l] : d;
    return d;
}

int train_sparse_from_model(train_sparse_model_t *s, const train_model_t *m, train_mem_t *mem,
                            int max_batch)
{
    memset(s, 0, sizeof(*s));
    s->mem = mem;
    s->n_layers = m->n_layers;
    s->act = m->cfg.act;
    s->max_batch = max_batch;
    memcpy(s->dims, m->dims, sizeof(s->dims));
    if (max_dim(m->dims, m->n_layers) > 65535)
        return -1;
    for (int l = 0; l < m->n_layers; l++) {
        int rows = m->dims[l + 1], cols = m->dims[l];
        const float *w = m->param[2 * l];
        int nnz = 0;
        for (size_t i = 0; i < (size_t)rows * cols; i++)
            nnz += w[i] != 0.0f;
        train_csr_t *c = &s->w[l];
        c->rows = rows;
        c->cols = cols;
        c->nnz = nnz;
        c->val = train_mem_alloc(mem, TRAIN_CAT_WEIGHTS, (size_t)(nnz ? nnz : 1) * sizeof(float));
        c->col = train_mem_alloc(mem, TRAIN_CAT_WEIGHTS, (size_t)(nnz ? nnz : 1) * sizeof(uint16_t));
        c->rowptr = train_mem_alloc(mem, TRAIN_CAT_WEIGHTS, (size_t)(rows + 1) * sizeof(int32_t));
        s->b[l] = train_mem_alloc(mem, TRAIN_CAT_WEIGHTS, (size_t)rows * sizeof(float));
        if (!c->val || !c->col || !c->rowptr || !s->b[l])
            goto fail;
        s->weight_bytes += (size_t)(nnz ? nnz : 1) * (sizeof(float) + sizeof(uint16_t)) +
                           (size_t)(rows + 1) * sizeof(int32_t) + (size_t)rows * sizeof(float);
        int k = 0;
        for (int r = 0; r < rows; r++) {
            c->rowptr[r] = k;
            for (int j = 0; j < cols; j++) {
                float v = w[(size_t)r * cols + j];
                if (v != 0.0f) {
                    c->val[k] = v;
                    c->col[k] = (uint16_t)j;
                    k++;
                }
            }
        }
        c->rowptr[rows] = k;
        memcpy(s->b[l], m->param[2 * l + 1], (size_t)rows * sizeof(float));
    }
    size_t buf = (size_t)max_batch * max_dim(m->dims, m->n_layers) * sizeof(float);
    s->buf_a = train_mem_alloc(mem, TRAIN_CAT_ACTIVATIONS, buf);
    s->buf_b = train_mem_alloc(mem, TRAIN_CAT_ACTIVATIONS, buf);
    if (!s->buf_a || !s->buf_b)
        goto fail;
    return 0;
fail:
    train_sparse_free(s);
    return -1;
}

/* Activations are kept feature-major (dim, B) so the inner loop over the
 * batch is contiguous: y[o, :] += v * x[c, :] for each kept weight. */
void train_sparse_forward(train_sparse_model_t *s, const float *x, int B, float *logits)
{
    int in0 = s->dims[0];
    float *cur = s->buf_a, *nxt = s->buf_b;
    for (int r = 0; r < B; r++)
        for (int c = 0; c < in0; c++)
            cur[(size_t)c * B + r] = x[(size_t)r * in0 + c];
    for (int l = 0; l < s->n_layers; l++) {
        const train_csr_t *w = &s->w[l];
        for (int o = 0; o < w->rows; o++) {
            float *y = nxt + (size_t)o * B;
            for (int r = 0; r < B; r++)
                y[r] = s->b[l][o];
            for (int k = w->rowptr[o]; k < w->rowptr[o + 1]; k++) {
                const float v = w->val[k];
                const float *xc = cur + (size_t)w->col[k] * B;
                for (int r = 0; r < B; r++)
                    y[r] += v * xc[r];
            }
        }
        if (l + 1 < s->n_layers)
            act_inplace(s->act, nxt, (size_t)w->rows * B);
        float *t = cur;
        cur = nxt;
        nxt = t;
    }
    int C = s->dims[s->n_layers];
    for (int r = 0; r < B; r++)
        for (int c = 0; c < C; c++)
            logits[(size_t)r * C + c] = cur[(size_t)c * B + r];
}

void train_sparse_free(train_sparse_model_t *s)
{
    if (!s->mem)
        return;
    for (int l = 0; l < s->n_layers; l++) {
        train_mem_free(s->mem, s->w[l].val);
        train_mem_free(s->mem, s->w[l].col);
        train_mem_free(s->mem, s->w[l].rowptr);
        train_mem_free(s->mem, s->b[l]);
    }
    train_mem_free(s->mem, s->buf_a);
    train_mem_free(s->mem, s->buf_b);
    memset(s, 0, sizeof(*s));
}

// ----------------------------------------------------------------------------
// int8

void train_quantize_rows(int8_t *q, float *scale, const float *w, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        const float *row = w + (size_t)r * cols;
        float mx = 0.0f;
        for (int c = 0; c < cols; c++)
            mx = fabsf(row[c]) > mx ? fabsf(row[c]) : mx;
        float s = mx > 0.0f ? mx / 127.0f : 1.0f;
        scale[r] = s;
        for (int c = 0; c < cols; c++) {
            float v = nearbyintf(row[c] / s);
            v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
            q[(size_t)r * cols + c] = (int8_t)v;
        }
    }
}

int train_qmodel_from_model(train_qmodel_t *qm, const train_model_t *m, train_mem_t *mem,
                            int max_batch)
{
    memset(qm, 0, sizeof(*qm));
    qm->mem = mem;
    qm->n_layers = m->n_layers;
    qm->act = m->cfg.act;
    qm->max_batch = max_batch;
    memcpy(qm->dims, m->dims, sizeof(qm->dims));
    size_t max_w = 0;
    for (int l = 0; l < m->n_layers; l++) {
        int rows = m->dims[l + 1], cols = m->dims[l];
        size_t n = (size_t)rows * cols;
        max_w = n > max_w ? n : max_w;
        qm->q[l] = train_mem_alloc(mem, TRAIN_CAT_WEIGHTS, n);
        qm->scale[l] = train_mem_alloc(mem, TRAIN_CAT_WEIGHTS, (size_t)rows * sizeof(float));
        qm->b[l] = train_mem_alloc(mem, TRAIN_CAT_WEIGHTS, (size_t)rows * sizeof(float));
        if (!qm->q[l] || !qm->scale[l] || !qm->b[l])
            goto fail;
        qm->weight_bytes += n + 2 * (size_t)rows * sizeof(float);
        train_quantize_rows(qm->q[l], qm->scale[l], m->param[2 * l], rows, cols);
        memcpy(qm->b[l], m->param[2 * l + 1], (size_t)rows * sizeof(float));
    }
    size_t buf = (size_t)max_batch * max_dim(m->dims, m->n_layers) * sizeof(float);
    qm->buf_a = train_mem_alloc(mem, TRAIN_CAT_ACTIVATIONS, buf);
    qm->buf_b = train_mem_alloc(mem, TRAIN_CAT_ACTIVATIONS, buf);
    qm->tmp_w = train_mem_alloc(mem, TRAIN_CAT_TEMPORARIES, max_w * sizeof(float));
    if (!qm->buf_a || !qm->buf_b || !qm->tmp_w)
        goto fail;
    return 0;
fail:
    train_qmodel_free(qm);
    return -1;
}

void train_qmodel_forward(train_qmodel_t *qm, const float *x, int B, float *logits)
{
    const float *cur = x;
    for (int l = 0; l < qm->n_layers; l++) {
        int rows = qm->dims[l + 1], cols = qm->dims[l];
        for (int r = 0; r < rows; r++) {
            float s = qm->scale[l][r];
            const int8_t *q = qm->q[l] + (size_t)r * cols;
            float *w = qm->tmp_w + (size_t)r * cols;
            for (int c = 0; c < cols; c++)
                w[c] = s * (float)q[c];
        }
        float *out = l + 1 == qm->n_layers ? logits : (l % 2 ? qm->buf_b : qm->buf_a);
        train_linear_forward(out, cur, qm->tmp_w, qm->b[l], B, cols, rows);
        if (l + 1 < qm->n_layers)
            act_inplace(qm->act, out, (size_t)B * rows);
        cur = out;
    }
}

void train_qmodel_free(train_qmodel_t *qm)
{
    if (!qm->mem)
        return;
    for (int l = 0; l < qm->n_layers; l++) {
        train_mem_free(qm->mem, qm->q[l]);
        train_mem_free(qm->mem, qm->scale[l]);
        train_mem_free(qm->mem, qm->b[l]);
    }
    train_mem_free(qm->mem, qm->buf_a);
    train_mem_free(qm->mem, qm->buf_b);
    train_mem_free(qm->mem, qm->tmp_w);
    memset(qm, 0, sizeof(*qm));
}
