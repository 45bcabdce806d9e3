/*
 * trainer/model.c - MLP layers, forward/backward, checkpointing (see model.h).
 */
#include "model.h"

#include <math.h>
#include <string.h>

#include <cblas.h>

#include "data.h"

#define ALIGN_BYTES 64

/* One past the last hidden layer of checkpoint segment 'seg'. */
static int seg_end(const train_model_t *m, int seg)
{
    int e = (seg + 1) * m->seg_len;
    return e < m->cfg.depth ? e : m->cfg.depth;
}

static size_t align_up(size_t n)
{
    return (n + ALIGN_BYTES - 1) & ~(size_t)(ALIGN_BYTES - 1);
}

// ----------------------------------------------------------------------------
// linear

void train_linear_forward(float *y, const float *x, const float *w, const float *b, int B,
                          int in, int out)
{
    for (int r = 0; r < B; r++)
        memcpy(y + (size_t)r * out, b, (size_t)out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, x, in, w, in, 1.0f,
                y, out);
}

void train_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, int B, int in, int out, float beta)
{
    /* dw (out,in) = dy^T (out,B) x (B,in) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, dy, out, x, in, beta,
                dw, in);
    if (beta == 0.0f)
        memset(db, 0, (size_t)out * sizeof(float));
    for (int r = 0; r < B; r++) {
        const float *row = dy + (size_t)r * out;
        for (int o = 0; o < out; o++)
            db[o] += row[o];
    }
    /* dx (B,in) = dy (B,out) w (out,in) */
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0f, dy, out, w, in,
                    0.0f, dx, in);
}

// ----------------------------------------------------------------------------
// activations

void train_relu_forward(float *a, const float *z, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = z[i] > 0.0f ? z[i] : 0.0f;
}

void train_relu_backward(float *dz, const float *dy, const float *z, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dz[i] = z[i] > 0.0f ? dy[i] : 0.0f;
}

#define GELU_SCALE 0.7978845608028654f   /* sqrt(2/pi) */

void train_gelu_forward(float *a, const float *z, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = z[i];
        float cube = 0.044715f * x * x * x;
        a[i] = 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + cube)));
    }
}

void train_gelu_backward(float *dz, const float *dy, const float *z, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = z[i];
        float cube = 0.044715f * x * x * x;
        float t = tanhf(GELU_SCALE * (x + cube));
        float sech2 = 1.0f - t * t;
        float local = 0.5f * (1.0f + t) +
                      x * 0.5f * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dz[i] = local * dy[i];
    }
}

// ----------------------------------------------------------------------------
// softmax, cross-entropy, distillation

void train_softmax_forward(float *probs, const float *logits, int B, int C, float temp)
{
    float inv_t = 1.0f / temp;
    for (int r = 0; r < B; r++) {
        const float *z = logits + (size_t)r * C;
        float *p = probs + (size_t)r * C;
        float mx = z[0];
        for (int c = 1; c < C; c++)
            mx = z[c] > mx ? z[c] : mx;
        float sum = 0.0f;
        for (int c = 0; c < C; c++) {
            p[c] = expf((z[c] - mx) * inv_t);
            sum += p[c];
        }
        for (int c = 0; c < C; c++)
            p[c] /= sum;
    }
}

/* log softmax(z/T)[c] for one row, computed stably. */
static float row_logsumexp(const float *z, int C, float inv_t)
{
    float mx = z[0] * inv_t;
    for (int c = 1; c < C; c++)
        mx = z[c] * inv_t > mx ? z[c] * inv_t : mx;
    double sum = 0.0;
    for (int c = 0; c < C; c++)
        sum += exp((double)(z[c] * inv_t - mx));
    return mx + (float)log(sum);
}

float train_ce_loss(const float *logits, const uint8_t *labels, int B, int C)
{
    double total = 0.0;
    for (int r = 0; r < B; r++) {
        const float *z = logits + (size_t)r * C;
        total += row_logsumexp(z, C, 1.0f) - z[labels[r]];
    }
    return (float)(total / B);
}

float train_loss_value(const float *logits, const train_loss_t *loss, int B, int C)
{
    float ce = train_ce_loss(logits, loss->labels, B, C);
    if (!loss->teacher_logits)
        return ce;
    float T = loss->temp, inv_t = 1.0f / T;
    double kl = 0.0;
    for (int r = 0; r < B; r++) {
        const float *zs = logits + (size_t)r * C, *zt = loss->teacher_logits + (size_t)r * C;
        float ls = row_logsumexp(zs, C, inv_t), lt = row_logsumexp(zt, C, inv_t);
        for (int c = 0; c < C; c++) {
            double log_pt = zt[c] * inv_t - lt, log_ps = zs[c] * inv_t - ls;
            kl += exp(log_pt) * (log_pt - log_ps);
        }
    }
    return (1.0f - loss->alpha) * ce + loss->alpha * T * T * (float)(kl / B);
}

void train_loss_backward(float *dlogits, const float *logits, const float *probs,
                         const train_loss_t *loss, int B, int C)
{
    float hard = loss->teacher_logits ? 1.0f - loss->alpha : 1.0f;
    for (int r = 0; r < B; r++) {
        const float *p = probs + (size_t)r * C;
        float *d = dlogits + (size_t)r * C;
        for (int c = 0; c < C; c++)
            d[c] = hard * (p[c] - (c == loss->labels[r] ? 1.0f : 0.0f));
    }
    if (loss->teacher_logits) {
        float T = loss->temp;
        float ps[256], pt[256];          /* C <= 256 is checked at init */
        for (int r = 0; r < B; r++) {
            train_softmax_forward(ps, logits + (size_t)r * C, 1, C, T);
            train_softmax_forward(pt, loss->teacher_logits + (size_t)r * C, 1, C, T);
            float *d = dlogits + (size_t)r * C;
            for (int c = 0; c < C; c++)
                d[c] += loss->alpha * T * (ps[c] - pt[c]);
        }
    }
    for (size_t i = 0; i < (size_t)B * C; i++)
        dlogits[i] *= loss->scale;
}

// ----------------------------------------------------------------------------
// allocation helpers: one block carved up (llm.c's malloc_and_point), or one
// allocation per tensor

/* Carves 'count' regions of sizes[i] bytes out of one allocation; each
 * region starts 64-byte aligned. Returns the block (NULL on failure). */
static void *malloc_and_point(train_mem_t *mem, train_cat_t cat, void **ptrs,
                              const size_t *sizes, int count)
{
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += sizes[i] ? align_up(sizes[i]) : 0;
    if (total == 0)
        return NULL;
    char *block = train_mem_alloc(mem, cat, total);
    if (!block)
        return NULL;
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        ptrs[i] = sizes[i] ? block + off : NULL;
        off += sizes[i] ? align_up(sizes[i]) : 0;
    }
    return block;
}

static int point_or_alloc(train_model_t *m, train_cat_t cat, void **block, void **ptrs,
                          const size_t *sizes, int count)
{
    if (m->cfg.layout == TRAIN_LAYOUT_BLOCK) {
        *block = malloc_and_point(m->mem, cat, ptrs, sizes, count);
        for (int i = 0; i < count; i++)
            if (sizes[i] && !*block)
                return -1;
        return 0;
    }
    *block = NULL;
    for (int i = 0; i < count; i++) {
        ptrs[i] = sizes[i] ? train_mem_alloc(m->mem, cat, sizes[i]) : NULL;
        if (sizes[i] && !ptrs[i])
            return -1;
    }
    return 0;
}

static void free_tensors(train_model_t *m, void **block, void **ptrs, int count)
{
    if (*block) {
        train_mem_free(m->mem, *block);
        *block = NULL;
    } else {
        for (int i = 0; i < count; i++)
            train_mem_free(m->mem, ptrs[i]);
    }
    for (int i = 0; i < count; i++)
        ptrs[i] = NULL;
}

// ----------------------------------------------------------------------------
// activations and temporaries

enum { TMP_X, TMP_Z, TMP_DZ, TMP_DX, TMP_W, TMP_G, TMP_COUNT };

static int max_hidden_dim(const train_model_t *m)
{
    int d = m->cfg.n_out;
    if (m->cfg.depth > 0 && m->cfg.width > d)
        d = m->cfg.width;
    return d;
}

/* Low-precision weights and gradients are converted a block of output rows
 * at a time, so their fp32 temporaries stay small whatever the width. */
#define CHUNK_FLOATS 65536

static int chunk_rows(const train_model_t *m, int l)
{
    int r = CHUNK_FLOATS / m->dims[l];
    return r < 1 ? 1 : r;
}

static size_t chunk_floats(const train_model_t *m, int with_bias)
{
    size_t best = 0;
    for (int l = 0; l < m->n_layers; l++) {
        int rows = chunk_rows(m, l) < m->dims[l + 1] ? chunk_rows(m, l) : m->dims[l + 1];
        size_t n = (size_t)rows * m->dims[l];
        if (with_bias && (size_t)m->dims[l + 1] > n)
            n = (size_t)m->dims[l + 1];
        best = n > best ? n : best;
    }
    return best;
}

/* Temporaries a phase needs. X holds an fp32 copy of low-precision
 * activations (a layer's input in forward; z, then the input, in backward).
 * Forward computes z in DZ when training (DZ is idle then), in Z for an
 * inference-only model. DZ/DX are the gradients flowing down. W and G are
 * row blocks of low-precision weights and gradients. */
static void temp_sizes(const train_model_t *m, int backward, size_t *sizes)
{
    size_t rows = (size_t)m->cfg.micro_batch * max_hidden_dim(m) * sizeof(float);
    int act_lp = m->cfg.act_dtype != TRAIN_F32, train = m->cfg.with_grads;
    memset(sizes, 0, TMP_COUNT * sizeof(size_t));
    sizes[TMP_X] = act_lp ? rows : 0;
    sizes[TMP_Z] = act_lp && !train ? rows : 0;
    sizes[TMP_DZ] = act_lp && train ? rows : 0;
    sizes[TMP_W] = m->cfg.weight_dtype != TRAIN_F32 ? chunk_floats(m, 0) * sizeof(float) : 0;
    if (backward) {
        sizes[TMP_DZ] = rows;
        sizes[TMP_DX] = rows;
        sizes[TMP_G] = m->cfg.grad_dtype != TRAIN_F32 ? chunk_floats(m, 1) * sizeof(float) : 0;
    }
}

static void **temp_ptrs(train_model_t *m, void **ptrs)
{
    ptrs[TMP_X] = m->t_x; ptrs[TMP_Z] = m->t_z; ptrs[TMP_DZ] = m->t_dz;
    ptrs[TMP_DX] = m->t_dx; ptrs[TMP_W] = m->t_w; ptrs[TMP_G] = m->t_g;
    return ptrs;
}

static void temp_set(train_model_t *m, void **ptrs)
{
    m->t_x = ptrs[TMP_X]; m->t_z = ptrs[TMP_Z]; m->t_dz = ptrs[TMP_DZ];
    m->t_dx = ptrs[TMP_DX]; m->t_w = ptrs[TMP_W]; m->t_g = ptrs[TMP_G];
}

/* Per-tensor layout: temporaries live for one phase. */
static int temps_acquire(train_model_t *m, int backward)
{
    if (m->cfg.layout == TRAIN_LAYOUT_BLOCK)
        return 0;
    size_t sizes[TMP_COUNT];
    void *ptrs[TMP_COUNT] = {0};
    temp_sizes(m, backward, sizes);
    int rc = point_or_alloc(m, TRAIN_CAT_TEMPORARIES, &m->tmp_block, ptrs, sizes, TMP_COUNT);
    temp_set(m, ptrs);
    return rc;
}

static void temps_release(train_model_t *m)
{
    if (m->cfg.layout == TRAIN_LAYOUT_BLOCK)
        return;
    void *ptrs[TMP_COUNT] = {0};
    free_tensors(m, &m->tmp_block, temp_ptrs(m, ptrs), TMP_COUNT);
    temp_set(m, ptrs);
}

static size_t act_row_bytes(const train_model_t *m)
{
    return (size_t)m->cfg.micro_batch * m->cfg.width * train_dtype_size(m->cfg.act_dtype);
}

/* Block layout: every activation buffer in one allocation, for good. */
static int acts_alloc_block(train_model_t *m)
{
    int S = m->seg_len, count = 2 * S + m->n_segs + 2;
    size_t sizes[2 * TRAIN_MAX_DEPTH + TRAIN_MAX_DEPTH + 2];
    void *ptrs[2 * TRAIN_MAX_DEPTH + TRAIN_MAX_DEPTH + 2];
    size_t row = act_row_bytes(m);
    for (int s = 0; s < S; s++) {
        sizes[s] = row;
        sizes[S + s] = row;
    }
    sizes[2 * S] = 0;                     /* segment 0's input is the batch */
    for (int j = 1; j < m->n_segs; j++)
        sizes[2 * S + j] = row;
    size_t out = (size_t)m->cfg.micro_batch * m->cfg.n_out * sizeof(float);
    sizes[2 * S + m->n_segs] = out;
    sizes[2 * S + m->n_segs + 1] = out;
    m->acts_block = malloc_and_point(m->mem, TRAIN_CAT_ACTIVATIONS, ptrs, sizes, count);
    if (!m->acts_block)
        return -1;
    for (int s = 0; s < S; s++) {
        m->z[s] = ptrs[s];
        m->a[s] = ptrs[S + s];
    }
    for (int j = 0; j < m->n_segs; j++)
        m->ckpt[j] = ptrs[2 * S + j];
    m->logits = ptrs[2 * S + m->n_segs];
    m->probs = ptrs[2 * S + m->n_segs + 1];
    return 0;
}

/* Per-tensor layout: the slots of one segment, allocated when it is computed
 * and freed when it is dropped. */
static int seg_slots_alloc(train_model_t *m, int seg)
{
    if (m->cfg.layout == TRAIN_LAYOUT_BLOCK)
        return 0;
    int n = seg_end(m, seg) - seg * m->seg_len;
    size_t bytes = (size_t)m->acts_B * m->cfg.width * train_dtype_size(m->cfg.act_dtype);
    for (int s = 0; s < n; s++) {
        m->z[s] = train_mem_alloc(m->mem, TRAIN_CAT_ACTIVATIONS, bytes);
        m->a[s] = train_mem_alloc(m->mem, TRAIN_CAT_ACTIVATIONS, bytes);
        if (!m->z[s] || !m->a[s])
            return -1;
    }
    return 0;
}

static void seg_slots_free(train_model_t *m)
{
    if (m->cfg.layout == TRAIN_LAYOUT_BLOCK)
        return;
    for (int s = 0; s < m->seg_len; s++) {
        train_mem_free(m->mem, m->z[s]);
        train_mem_free(m->mem, m->a[s]);
        m->z[s] = m->a[s] = NULL;
    }
}

void train_model_release_acts(train_model_t *m)
{
    if (m->cfg.layout == TRAIN_LAYOUT_BLOCK)
        return;
    seg_slots_free(m);
    for (int j = 1; j < m->n_segs; j++) {
        train_mem_free(m->mem, m->ckpt[j]);
        m->ckpt[j] = NULL;
    }
    train_mem_free(m->mem, m->logits);
    train_mem_free(m->mem, m->probs);
    m->logits = m->probs = NULL;
    temps_release(m);
    m->resident_seg = -1;
}

// ----------------------------------------------------------------------------
// init and free

int train_model_init(train_model_t *m, const train_model_config_t *cfg, train_mem_t *mem,
                     uint64_t seed)
{
    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    m->mem = mem;
    m->resident_seg = -1;
    if (cfg->depth < 0 || cfg->depth > TRAIN_MAX_DEPTH || cfg->n_out > 256 || cfg->n_out < 1 ||
        cfg->n_in < 1 || (cfg->depth > 0 && cfg->width < 1) || cfg->micro_batch < 1)
        return -1;
    m->n_layers = cfg->depth + 1;
    m->dims[0] = cfg->n_in;
    for (int l = 1; l <= cfg->depth; l++)
        m->dims[l] = cfg->width;
    m->dims[m->n_layers] = cfg->n_out;
    m->n_tensors = 2 * m->n_layers;
    m->n_params = 0;
    for (int l = 0; l < m->n_layers; l++) {
        m->tsize[2 * l] = (size_t)m->dims[l] * m->dims[l + 1];
        m->tsize[2 * l + 1] = (size_t)m->dims[l + 1];
        m->n_params += m->tsize[2 * l] + m->tsize[2 * l + 1];
    }
    int depth = cfg->depth;
    m->seg_len = (cfg->ckpt_segment <= 0 || cfg->ckpt_segment >= depth) ? depth
                                                                          : cfg->ckpt_segment;
    m->n_segs = depth > 0 ? (depth + m->seg_len - 1) / m->seg_len : 0;

    size_t sizes[TRAIN_MAX_TENSORS];
    for (int t = 0; t < m->n_tensors; t++)
        sizes[t] = m->tsize[t] * sizeof(float);
    if (point_or_alloc(m, TRAIN_CAT_WEIGHTS, &m->params_block, (void **)m->param, sizes,
                       m->n_tensors) < 0)
        goto fail;
    /* PyTorch's default nn.Linear init: U(-1/sqrt(in), 1/sqrt(in)). */
    uint64_t rng = seed;
    for (int l = 0; l < m->n_layers; l++) {
        float bound = 1.0f / sqrtf((float)m->dims[l]);
        for (int t = 2 * l; t <= 2 * l + 1; t++)
            for (size_t i = 0; i < m->tsize[t]; i++)
                m->param[t][i] = (2.0f * train_rand_uniform(&rng) - 1.0f) * bound;
    }
    if (cfg->weight_dtype != TRAIN_F32) {
        for (int t = 0; t < m->n_tensors; t++)
            sizes[t] = m->tsize[t] * train_dtype_size(cfg->weight_dtype);
        if (point_or_alloc(m, TRAIN_CAT_WEIGHTS, &m->lp_block, m->param_lp, sizes,
                           m->n_tensors) < 0)
            goto fail;
        train_model_sync_lp(m);
    }
    if (cfg->with_grads) {
        for (int t = 0; t < m->n_tensors; t++)
            sizes[t] = m->tsize[t] * train_dtype_size(cfg->grad_dtype);
        if (point_or_alloc(m, TRAIN_CAT_GRADIENTS, &m->grads_block, m->grad, sizes,
                           m->n_tensors) < 0)
            goto fail;
        train_model_zero_grad(m);
    }
    if (cfg->layout == TRAIN_LAYOUT_BLOCK) {
        m->acts_B = cfg->micro_batch;
        if (acts_alloc_block(m) < 0)
            goto fail;
        size_t tsz[TMP_COUNT];
        void *ptrs[TMP_COUNT] = {0};
        temp_sizes(m, cfg->with_grads, tsz);
        m->tmp_block = malloc_and_point(mem, TRAIN_CAT_TEMPORARIES, ptrs, tsz, TMP_COUNT);
        temp_set(m, ptrs);
        for (int i = 0; i < TMP_COUNT; i++)
            if (tsz[i] && !m->tmp_block)
                goto fail;
    }
    return 0;
fail:
    train_model_free(m);
    return -1;
}

void train_model_free(train_model_t *m)
{
    if (!m->mem)
        return;
    train_model_release_acts(m);
    if (m->cfg.layout == TRAIN_LAYOUT_BLOCK) {
        train_mem_free(m->mem, m->acts_block);
        train_mem_free(m->mem, m->tmp_block);
        m->acts_block = m->tmp_block = NULL;
    }
    free_tensors(m, &m->params_block, (void **)m->param, m->n_tensors);
    free_tensors(m, &m->lp_block, m->param_lp, m->n_tensors);
    free_tensors(m, &m->grads_block, m->grad, m->n_tensors);
    m->mem = NULL;
}

size_t train_model_weight_bytes(const train_model_t *m)
{
    size_t per = 4 + (m->cfg.weight_dtype != TRAIN_F32 ? train_dtype_size(m->cfg.weight_dtype) : 0);
    return m->n_params * per;
}

void train_model_zero_grad(train_model_t *m)
{
    for (int t = 0; t < m->n_tensors; t++)
        if (m->grad[t])
            memset(m->grad[t], 0, m->tsize[t] * train_dtype_size(m->cfg.grad_dtype));
}

void train_model_sync_lp(train_model_t *m)
{
    if (m->cfg.weight_dtype == TRAIN_F32)
        return;
    for (int t = 0; t < m->n_tensors; t++)
        train_store_f32(m->cfg.weight_dtype, m->param_lp[t], m->param[t], m->tsize[t]);
}

int train_model_grads_finite(const train_model_t *m)
{
    float buf[4096];
    for (int t = 0; t < m->n_tensors; t++) {
        if (m->cfg.grad_dtype == TRAIN_F32) {
            if (!train_all_finite(m->grad[t], m->tsize[t]))
                return 0;
            continue;
        }
        size_t es = train_dtype_size(m->cfg.grad_dtype);
        for (size_t i = 0; i < m->tsize[t]; i += 4096) {
            size_t n = m->tsize[t] - i < 4096 ? m->tsize[t] - i : 4096;
            train_load_f32(m->cfg.grad_dtype, buf, (const char *)m->grad[t] + i * es, n);
            if (!train_all_finite(buf, n))
                return 0;
        }
    }
    return 1;
}

void train_model_argmax(const train_model_t *m, int B, int *pred)
{
    int C = m->cfg.n_out;
    for (int r = 0; r < B; r++) {
        const float *z = m->logits + (size_t)r * C;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (z[c] > z[best])
                best = c;
        pred[r] = best;
    }
}

// ----------------------------------------------------------------------------
// forward

/* fp32 view of 'n' stored activations: the storage itself for fp32, else
 * converted into 'tmp'. */
static const float *act_f32(const train_model_t *m, const void *stored, float *tmp, size_t n)
{
    if (m->cfg.act_dtype == TRAIN_F32)
        return stored;
    train_load_f32(m->cfg.act_dtype, tmp, stored, n);
    return tmp;
}

/* y (B,out) = x32 W_l^T + b_l, reading the fp32 masters or, for
 * low-precision weights, converting them a row block at a time into t_w. */
static void layer_forward(train_model_t *m, int l, float *y, const float *x32, int B)
{
    int in = m->dims[l], out = m->dims[l + 1];
    train_dtype_t dt = m->cfg.weight_dtype;
    if (dt == TRAIN_F32) {
        train_linear_forward(y, x32, m->param[2 * l], m->param[2 * l + 1], B, in, out);
        return;
    }
    for (int r = 0; r < B; r++)
        train_load_f32(dt, y + (size_t)r * out, m->param_lp[2 * l + 1], (size_t)out);
    int R = chunk_rows(m, l);
    size_t es = train_dtype_size(dt);
    for (int o0 = 0; o0 < out; o0 += R) {
        int n = out - o0 < R ? out - o0 : R;
        train_load_f32(dt, m->t_w, (const char *)m->param_lp[2 * l] + (size_t)o0 * in * es,
                       (size_t)n * in);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, n, in, 1.0f, x32, in, m->t_w,
                    in, 1.0f, y + o0, out);
    }
}

/* Stored input of hidden layer i inside segment 'seg' (NULL: the batch). */
static const void *hidden_input(const train_model_t *m, int seg, int i)
{
    int s0 = seg * m->seg_len;
    if (i == 0)
        return NULL;
    if (i == s0)
        return m->ckpt[seg];
    return m->a[i - s0 - 1];
}

static void act_forward(const train_model_t *m, float *a, const float *z, size_t n)
{
    if (m->cfg.act == TRAIN_ACT_GELU)
        train_gelu_forward(a, z, n);
    else
        train_relu_forward(a, z, n);
}

/* Forward of hidden layers of segment 'seg' into its slots (allocated). */
static void forward_segment(train_model_t *m, const float *x, int seg)
{
    int B = m->acts_B, W = m->cfg.width;
    size_t n = (size_t)B * W;
    for (int i = seg * m->seg_len; i < seg_end(m, seg); i++) {
        int slot = i - seg * m->seg_len;
        const void *in = hidden_input(m, seg, i);
        const float *x32 = in ? act_f32(m, in, m->t_x, (size_t)B * m->dims[i]) : x;
        if (m->cfg.act_dtype == TRAIN_F32) {
            layer_forward(m, i, m->z[slot], x32, B);
            act_forward(m, m->a[slot], m->z[slot], n);
        } else {
            float *zt = m->cfg.with_grads ? m->t_dz : m->t_z;
            layer_forward(m, i, zt, x32, B);
            train_store_f32(m->cfg.act_dtype, m->z[slot], zt, n);
            act_forward(m, zt, zt, n);
            train_store_f32(m->cfg.act_dtype, m->a[slot], zt, n);
        }
    }
    m->resident_seg = seg;
}

int train_model_forward(train_model_t *m, const float *x, int B)
{
    if (B < 1 || B > m->cfg.micro_batch)
        return -1;
    train_model_release_acts(m);
    m->acts_B = B;
    if (temps_acquire(m, 0) < 0)
        goto fail;
    size_t row = (size_t)B * m->cfg.width * train_dtype_size(m->cfg.act_dtype);
    for (int seg = 0; seg < m->n_segs; seg++) {
        if (seg_slots_alloc(m, seg) < 0)
            goto fail;
        forward_segment(m, x, seg);
        if (seg + 1 < m->n_segs) {
            /* keep the segment's output as the next segment's input */
            if (m->cfg.layout == TRAIN_LAYOUT_PER_TENSOR) {
                m->ckpt[seg + 1] = train_mem_alloc(m->mem, TRAIN_CAT_ACTIVATIONS, row);
                if (!m->ckpt[seg + 1])
                    goto fail;
            }
            memcpy(m->ckpt[seg + 1], m->a[seg_end(m, seg) - 1 - seg * m->seg_len], row);
            seg_slots_free(m);
        }
    }
    size_t out = (size_t)B * m->cfg.n_out * sizeof(float);
    if (m->cfg.layout == TRAIN_LAYOUT_PER_TENSOR) {
        m->logits = train_mem_alloc(m->mem, TRAIN_CAT_ACTIVATIONS, out);
        m->probs = train_mem_alloc(m->mem, TRAIN_CAT_ACTIVATIONS, out);
        if (!m->logits || !m->probs)
            goto fail;
    }
    int L = m->n_layers - 1, depth = m->cfg.depth;
    const float *x32 = x;
    if (depth > 0)
        x32 = act_f32(m, m->a[depth - 1 - (m->n_segs - 1) * m->seg_len], m->t_x,
                      (size_t)B * m->dims[L]);
    layer_forward(m, L, m->logits, x32, B);
    train_softmax_forward(m->probs, m->logits, B, m->cfg.n_out, 1.0f);
    temps_release(m);
    return 0;
fail:
    train_model_release_acts(m);
    return -1;
}

// ----------------------------------------------------------------------------
// backward

/* g (n) = round(g + add) in the gradient dtype. */
static void grad_accumulate(train_dtype_t dt, void *g, const float *add, size_t n)
{
    float chunk[1024];
    size_t es = train_dtype_size(dt);
    for (size_t i = 0; i < n; i += 1024) {
        size_t k = n - i < 1024 ? n - i : 1024;
        train_load_f32(dt, chunk, (char *)g + i * es, k);
        for (size_t j = 0; j < k; j++)
            chunk[j] += add[i + j];
        train_store_f32(dt, (char *)g + i * es, chunk, k);
    }
}

/* Backward of linear layer l given dy (B,out) and its input x32 (B,in):
 * accumulates dW, db into the gradients, writes dx (B,in) unless NULL.
 * All-fp32 models take the single-sgemm path; low-precision weights or
 * gradients go a row block at a time through t_w and t_g. */
static void layer_backward(train_model_t *m, int l, float *dx, const float *dy, const float *x32)
{
    int B = m->acts_B, in = m->dims[l], out = m->dims[l + 1];
    train_dtype_t wdt = m->cfg.weight_dtype, gdt = m->cfg.grad_dtype;
    if (wdt == TRAIN_F32 && gdt == TRAIN_F32) {
        train_linear_backward(dx, m->grad[2 * l], m->grad[2 * l + 1], dy, x32, m->param[2 * l],
                              B, in, out, 1.0f);
        return;
    }
    int R = chunk_rows(m, l);
    size_t wes = train_dtype_size(wdt), ges = train_dtype_size(gdt);
    for (int o0 = 0; o0 < out; o0 += R) {
        int n = out - o0 < R ? out - o0 : R;
        const float *wc = m->param[2 * l] + (size_t)o0 * in;
        if (wdt != TRAIN_F32) {
            train_load_f32(wdt, m->t_w, (const char *)m->param_lp[2 * l] + (size_t)o0 * in * wes,
                           (size_t)n * in);
            wc = m->t_w;
        }
        /* dW[o0:o0+n] (n,in) += dy[:, o0:o0+n]^T x */
        if (gdt == TRAIN_F32) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, in, B, 1.0f, dy + o0, out,
                        x32, in, 1.0f, (float *)m->grad[2 * l] + (size_t)o0 * in, in);
        } else {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, in, B, 1.0f, dy + o0, out,
                        x32, in, 0.0f, m->t_g, in);
            grad_accumulate(gdt, (char *)m->grad[2 * l] + (size_t)o0 * in * ges, m->t_g,
                            (size_t)n * in);
        }
        /* dx (B,in) += dy[:, o0:o0+n] W[o0:o0+n] */
        if (dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, n, 1.0f, dy + o0, out,
                        wc, in, o0 == 0 ? 0.0f : 1.0f, dx, in);
    }
    float *db = gdt == TRAIN_F32 ? m->grad[2 * l + 1] : m->t_g;
    if (gdt != TRAIN_F32)
        memset(db, 0, (size_t)out * sizeof(float));
    for (int r = 0; r < B; r++)
        for (int o = 0; o < out; o++)
            db[o] += dy[(size_t)r * out + o];
    if (gdt != TRAIN_F32)
        grad_accumulate(gdt, m->grad[2 * l + 1], db, (size_t)out);
}

int train_model_backward(train_model_t *m, const float *x, int B, const train_loss_t *loss)
{
    if (!m->cfg.with_grads || B != m->acts_B || !m->logits)
        return -1;
    if (temps_acquire(m, 1) < 0)
        return -1;
    int L = m->n_layers - 1, depth = m->cfg.depth, W = m->cfg.width;
    int act_f16 = m->cfg.act_dtype == TRAIN_F16;
    float *dy = m->t_dz, *da = m->t_dx;   /* dz of a layer, gradient of its input */

    train_loss_backward(dy, m->logits, m->probs, loss, B, m->cfg.n_out);
    const float *x32 = x;
    if (depth > 0)
        x32 = act_f32(m, m->a[depth - 1 - (m->n_segs - 1) * m->seg_len], m->t_x,
                      (size_t)B * m->dims[L]);
    layer_backward(m, L, depth > 0 ? da : NULL, dy, x32);
    if (m->cfg.layout == TRAIN_LAYOUT_PER_TENSOR) {
        train_mem_free(m->mem, m->logits);
        train_mem_free(m->mem, m->probs);
        m->logits = m->probs = NULL;
    }

    size_t n = (size_t)B * W;
    for (int seg = m->n_segs - 1; seg >= 0; seg--) {
        if (m->resident_seg != seg) {
            if (seg_slots_alloc(m, seg) < 0)
                goto fail;
            forward_segment(m, x, seg);
            m->recomputed_layers += seg_end(m, seg) - seg * m->seg_len;
        }
        for (int i = seg_end(m, seg) - 1; i >= seg * m->seg_len; i--) {
            int slot = i - seg * m->seg_len;
            const float *z32 = act_f32(m, m->z[slot], m->t_x, n);
            if (m->cfg.act == TRAIN_ACT_GELU)
                train_gelu_backward(dy, da, z32, n);
            else
                train_relu_backward(dy, da, z32, n);
            /* fp16 activations: the backward runs in fp16 too, so its
             * gradients round (and may overflow) like fp16 values. */
            if (act_f16)
                train_round_to(TRAIN_F16, dy, n);
            const void *in = hidden_input(m, seg, i);
            const float *xin = in ? act_f32(m, in, m->t_x, (size_t)B * m->dims[i]) : x;
            layer_backward(m, i, i > 0 ? da : NULL, dy, xin);
            if (act_f16 && i > 0)
                train_round_to(TRAIN_F16, da, (size_t)B * m->dims[i]);
        }
        seg_slots_free(m);
        m->resident_seg = -1;
        if (seg > 0 && m->cfg.layout == TRAIN_LAYOUT_PER_TENSOR) {
            train_mem_free(m->mem, m->ckpt[seg]);
            m->ckpt[seg] = NULL;
        }
    }
    temps_release(m);
    return 0;
fail:
    train_model_release_acts(m);
    return -1;
}
