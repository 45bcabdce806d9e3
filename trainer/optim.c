/*
 * trainer/optim.c - optimizers (see optim.h).
 */
#include "optim.h"

#include <math.h>
#include <string.h>

#define CHUNK 2048

const char *train_opt_name(train_opt_kind_t k)
{
    switch (k) {
    case TRAIN_OPT_SGD: return "sgd";
    case TRAIN_OPT_MOMENTUM: return "momentum";
    case TRAIN_OPT_ADAMW: return "adamw";
    }
    return "?";
}

int train_opt_parse(const char *s)
{
    if (!strcmp(s, "sgd")) return TRAIN_OPT_SGD;
    if (!strcmp(s, "momentum")) return TRAIN_OPT_MOMENTUM;
    if (!strcmp(s, "adamw") || !strcmp(s, "adam")) return TRAIN_OPT_ADAMW;
    return -1;
}

static int n_buffers(const train_optim_config_t *cfg)
{
    return cfg->kind == TRAIN_OPT_ADAMW ? 2 : cfg->kind == TRAIN_OPT_MOMENTUM ? 1 : 0;
}

size_t train_optim_state_bytes(const train_optim_t *o, size_t n_params)
{
    return (size_t)n_buffers(&o->cfg) * n_params * train_dtype_size(o->cfg.state_dtype);
}

/* One state buffer per tensor, as one block or separate allocations,
 * following the model's layout. */
static int alloc_state(train_optim_t *o, train_model_t *model, void **ptrs, void **block)
{
    size_t es = train_dtype_size(o->cfg.state_dtype);
    *block = NULL;
    if (model->cfg.layout == TRAIN_LAYOUT_BLOCK) {
        char *p = train_mem_alloc(o->mem, TRAIN_CAT_OPTIMIZER_STATE, model->n_params * es);
        if (!p)
            return -1;
        memset(p, 0, model->n_params * es);
        *block = p;
        for (int t = 0; t < model->n_tensors; t++) {
            ptrs[t] = p;
            p += model->tsize[t] * es;
        }
        return 0;
    }
    for (int t = 0; t < model->n_tensors; t++) {
        ptrs[t] = train_mem_alloc(o->mem, TRAIN_CAT_OPTIMIZER_STATE, model->tsize[t] * es);
        if (!ptrs[t])
            return -1;
        memset(ptrs[t], 0, model->tsize[t] * es);
    }
    return 0;
}

int train_optim_init(train_optim_t *o, const train_optim_config_t *cfg, train_model_t *model,
                     train_mem_t *mem)
{
    memset(o, 0, sizeof(*o));
    o->cfg = *cfg;
    o->mem = mem;
    o->n_tensors = model->n_tensors;
    int nb = n_buffers(cfg);
    if (nb >= 1 && alloc_state(o, model, o->m, &o->m_block) < 0)
        goto fail;
    if (nb >= 2 && alloc_state(o, model, o->v, &o->v_block) < 0)
        goto fail;
    return 0;
fail:
    train_optim_free(o);
    return -1;
}

static void free_state(train_optim_t *o, void **ptrs, void **block)
{
    if (*block)
        train_mem_free(o->mem, *block);
    else
        for (int t = 0; t < o->n_tensors; t++)
            train_mem_free(o->mem, ptrs[t]);
    *block = NULL;
    for (int t = 0; t < o->n_tensors; t++)
        ptrs[t] = NULL;
}

void train_optim_free(train_optim_t *o)
{
    if (!o->mem)
        return;
    free_state(o, o->m, &o->m_block);
    free_state(o, o->v, &o->v_block);
    o->mem = NULL;
}

/* Updates p[0..n) given fp32 gradient g and fp32 state m, v (in place). */
static void update_chunk(const train_optim_config_t *c, float *p, const float *g, float *m,
                         float *v, size_t n, float lr, float grad_mul, float bc1, float bc2)
{
    float wd = c->weight_decay;
    switch (c->kind) {
    case TRAIN_OPT_SGD:
        for (size_t i = 0; i < n; i++)
            p[i] -= lr * (g[i] * grad_mul + wd * p[i]);
        break;
    case TRAIN_OPT_MOMENTUM:
        for (size_t i = 0; i < n; i++) {
            m[i] = c->momentum * m[i] + g[i] * grad_mul;
            p[i] -= lr * (m[i] + wd * p[i]);
        }
        break;
    case TRAIN_OPT_ADAMW:
        for (size_t i = 0; i < n; i++) {
            float gi = g[i] * grad_mul;
            m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * gi;
            v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * gi * gi;
            float mh = m[i] / bc1, vh = v[i] / bc2;
            p[i] -= lr * (mh / (sqrtf(vh) + c->eps) + wd * p[i]);
        }
        break;
    }
}

void train_optim_step(train_optim_t *o, train_model_t *model, float lr, float grad_mul,
                      uint8_t *const *mask)
{
    o->t++;
    float bc1 = 1.0f - powf(o->cfg.beta1, (float)o->t);
    float bc2 = 1.0f - powf(o->cfg.beta2, (float)o->t);
    int nb = n_buffers(&o->cfg);
    train_dtype_t gdt = model->cfg.grad_dtype, sdt = o->cfg.state_dtype;
    size_t ges = train_dtype_size(gdt), ses = train_dtype_size(sdt);
    /* Work in chunks: fp32 data is used in place, other dtypes go through
     * small stack buffers. */
    float gbuf[CHUNK], mbuf[CHUNK], vbuf[CHUNK];
    for (int t = 0; t < model->n_tensors; t++) {
        float *p = model->param[t];
        for (size_t i = 0; i < model->tsize[t]; i += CHUNK) {
            size_t n = model->tsize[t] - i < CHUNK ? model->tsize[t] - i : CHUNK;
            const float *g = gbuf;
            if (gdt == TRAIN_F32)
                g = (const float *)model->grad[t] + i;
            else
                train_load_f32(gdt, gbuf, (const char *)model->grad[t] + i * ges, n);
            float *m = mbuf, *v = vbuf;
            if (nb >= 1) {
                if (sdt == TRAIN_F32)
                    m = (float *)o->m[t] + i;
                else
                    train_load_f32(sdt, mbuf, (const char *)o->m[t] + i * ses, n);
            }
            if (nb >= 2) {
                if (sdt == TRAIN_F32)
                    v = (float *)o->v[t] + i;
                else
                    train_load_f32(sdt, vbuf, (const char *)o->v[t] + i * ses, n);
            }
            update_chunk(&o->cfg, p + i, g, m, v, n, lr, grad_mul, bc1, bc2);
            if (sdt != TRAIN_F32) {
                if (nb >= 1)
                    train_store_f32(sdt, (char *)o->m[t] + i * ses, mbuf, n);
                if (nb >= 2)
                    train_store_f32(sdt, (char *)o->v[t] + i * ses, vbuf, n);
            }
            if (mask && mask[t]) {
                const uint8_t *mk = mask[t] + i;
                for (size_t j = 0; j < n; j++)
                    p[i + j] = mk[j] ? p[i + j] : 0.0f;
            }
        }
    }
    train_model_sync_lp(model);
}
