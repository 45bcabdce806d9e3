/*
 * trainer/optim.h - SGD, SGD with momentum, AdamW over a model's tensors.
 *
 * State is the memory choice the advisor talks about: SGD holds none,
 * momentum one buffer the size of the weights, AdamW two. State is stored
 * in state_dtype (fp32 or bf16) with the model's layout (one block per kind,
 * or one allocation per tensor), as TRAIN_CAT_OPTIMIZER_STATE. Updates are
 * computed in fp32 on the fp32 master weights; the gradient is multiplied by
 * 'grad_mul' first (1/loss_scale).
 *
 * AdamW (Loshchilov & Hutter): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr * (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd p).
 * Momentum: buf = mu buf + g; p -= lr (buf + wd p). SGD: p -= lr (g + wd p).
 *
 * An optional mask (compress.h) keeps pruned weights at zero.
 */
#ifndef TRAIN_OPTIM_H
#define TRAIN_OPTIM_H

#include "memory.h"
#include "model.h"
#include "precision.h"

typedef enum { TRAIN_OPT_SGD = 0, TRAIN_OPT_MOMENTUM = 1, TRAIN_OPT_ADAMW = 2 } train_opt_kind_t;

typedef struct {
    train_opt_kind_t kind;
    float lr, momentum, beta1, beta2, eps, weight_decay;
    train_dtype_t state_dtype;
} train_optim_config_t;

typedef struct {
    train_optim_config_t cfg;
    train_mem_t *mem;
    int n_tensors;
    void *m[TRAIN_MAX_TENSORS], *v[TRAIN_MAX_TENSORS];
    void *m_block, *v_block;
    long t;                      /* updates applied */
} train_optim_t;

/* Allocates (zeroed) state for every tensor of 'model'. -1 on failure. */
int train_optim_init(train_optim_t *o, const train_optim_config_t *cfg, train_model_t *model,
                     train_mem_t *mem);
void train_optim_free(train_optim_t *o);
/* One update of every tensor with learning rate 'lr'. 'mask' is NULL or an
 * array of per-tensor byte masks (NULL entries: no mask); masked weights
 * are set to zero after the update. */
void train_optim_step(train_optim_t *o, train_model_t *model, float lr, float grad_mul,
                      uint8_t *const *mask);
/* Bytes of state per parameter (0, 4, 8, or half of that in bf16). */
size_t train_optim_state_bytes(const train_optim_t *o, size_t n_params);
const char *train_opt_name(train_opt_kind_t k);
int train_opt_parse(const char *s);

#endif /* TRAIN_OPTIM_H */
