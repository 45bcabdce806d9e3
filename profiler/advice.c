/*
 * advice.c - recommendations from the composition at the peak (advice.h).
 *
 * Every change is arithmetic on the category bytes at the peak: a scale and
 * a bound per category. The arithmetic follows ../shared/DESIGN.md
 * ("Advice") and docs/advisor.md, which states each assumption.
 */
#define _GNU_SOURCE /* vasprintf */
#include "advice.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)
#define CHURN_MIN_BLOCK (128u * 1024u)   /* glibc's default mmap threshold   */
#define GLIBC_MMAP_THRESHOLD_MAX (32u * 1024u * 1024u)
#define TRAIN_PREFETCH_DEFAULT 1024u
#define TRAIN_SAMPLE_BYTES 785u          /* 28x28 uint8 image + uint8 label  */
#define TRAIN_INPUT_FLOATS 784u
#define TRAIN_GRAD_CHUNK_BYTES (65536 * 4) /* trainer/model.c CHUNK_FLOATS, fp32 */
#define TRAIN_GZ_READER_BYTES (104u * 1024u) /* 64 KiB read buffer + zlib state */

/* ---- the profiled command ----------------------------------------------- */

/* What the command line says, when the command is mlmem-train. */
typedef struct {
    int is_train;
    long depth;                      /* --depth (default 2)                */
    long width;                      /* --width (default 512)              */
    long batch;                      /* --batch (default 128)              */
    long micro_batch;                /* --micro-batch (default = batch)    */
    long prefetch;                   /* --prefetch (default 1024)          */
    int act_low;                     /* activations already bf16/fp16      */
    int opt_low;                     /* --opt-dtype bf16                   */
    int grad_low;                    /* --grad-dtype bf16|fp16             */
    int streamed;                    /* --data stream                      */
    int checkpointing;               /* --checkpointing other than none    */
    char optimizer[32];              /* sgd|momentum|adamw                 */
    int prune, quantize;
    int per_tensor;                  /* --layout per-tensor                */
} cmdline_t;

/* Value following 'flag' in 'cmd' (space separated, also --flag=value),
 * copied into 'buf'; 0 if absent. */
static int cmd_value(const char *cmd, const char *flag, char *buf, size_t cap)
{
    size_t fl = strlen(flag);
    for (const char *p = cmd; (p = strstr(p, flag)) != NULL; p += fl) {
        if (p != cmd && p[-1] != ' ')
            continue;
        const char *v = p + fl;
        if (*v != ' ' && *v != '=')
            continue;
        v++;
        size_t n = strcspn(v, " ");
        if (n >= cap)
            n = cap - 1;
        memcpy(buf, v, n);
        buf[n] = '\0';
        return 1;
    }
    return 0;
}

static long cmd_long(const char *cmd, const char *flag, long dflt)
{
    char buf[32];
    if (!cmd_value(cmd, flag, buf, sizeof buf))
        return dflt;
    char *end;
    long v = strtol(buf, &end, 10);
    return *end || v <= 0 ? dflt : v;
}

static void parse_cmdline(const char *cmd, cmdline_t *c)
{
    memset(c, 0, sizeof *c);
    if (!cmd)
        return;
    size_t n = strcspn(cmd, " ");
    const char *base = cmd;
    for (size_t i = 0; i < n; i++)
        if (cmd[i] == '/')
            base = cmd + i + 1;
    c->is_train = (size_t)(cmd + n - base) == strlen("mlmem-train") &&
                  strncmp(base, "mlmem-train", strlen("mlmem-train")) == 0;
    if (!c->is_train)
        return;
    char buf[32];
    c->depth = cmd_long(cmd, "--depth", 2);
    c->width = cmd_long(cmd, "--width", 512);
    c->batch = cmd_long(cmd, "--batch", 128);
    c->micro_batch = cmd_long(cmd, "--micro-batch", c->batch);
    c->prefetch = cmd_long(cmd, "--prefetch", TRAIN_PREFETCH_DEFAULT);
    if ((cmd_value(cmd, "--act-dtype", buf, sizeof buf) ||
         cmd_value(cmd, "--precision", buf, sizeof buf)) && strcmp(buf, "fp32") != 0)
        c->act_low = 1;
    c->opt_low = cmd_value(cmd, "--opt-dtype", buf, sizeof buf) && strcmp(buf, "bf16") == 0;
    c->grad_low = cmd_value(cmd, "--grad-dtype", buf, sizeof buf) && strcmp(buf, "fp32") != 0;
    c->streamed = cmd_value(cmd, "--data", buf, sizeof buf) && strcmp(buf, "stream") == 0;
    c->checkpointing = cmd_value(cmd, "--checkpointing", buf, sizeof buf) && strcmp(buf, "none") != 0;
    strcpy(c->optimizer, "adamw");
    if (cmd_value(cmd, "--optimizer", buf, sizeof buf))
        snprintf(c->optimizer, sizeof c->optimizer, "%s", buf);
    c->per_tensor = cmd_value(cmd, "--layout", buf, sizeof buf) && strcmp(buf, "per-tensor") == 0;
    c->prune = cmd_value(cmd, "--prune", buf, sizeof buf);
    c->quantize = cmd_value(cmd, "--quantize", buf, sizeof buf);
}

/* ---- building recommendations ------------------------------------------- */

typedef struct {
    prof_result_t *r;
    prof_recommendation_t *v;
    size_t n, cap;
    int oom;
} builder_t;

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* A new recommendation with identity arithmetic, or NULL (oom noted). */
static prof_recommendation_t *add(builder_t *b, prof_advice_kind_t kind, prof_advice_group_t group)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 8;
        prof_recommendation_t *v = realloc(b->v, cap * sizeof *v);
        if (!v) {
            b->oom = 1;
            return NULL;
        }
        b->v = v;
        b->cap = cap;
    }
    prof_recommendation_t *a = &b->v[b->n++];
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->group = group;
    for (int c = 0; c < MLMEM_CATEGORY_COUNT; c++) {
        a->scale[c] = 1.0;
        a->bound[c] = UINT64_MAX;
    }
    return a;
}

/* The category bytes at the peak after applying 'n' changes. */
static uint64_t apply_changes(const prof_result_t *r, const prof_recommendation_t *const *ch, size_t n)
{
    uint64_t before = 0, after = 0;
    int64_t delta = 0;
    for (int c = 0; c < MLMEM_CATEGORY_COUNT; c++) {
        double x = (double)r->categories[c].bytes_at_peak;
        uint64_t bound = UINT64_MAX;
        for (size_t i = 0; i < n; i++) {
            x *= ch[i]->scale[c];
            if (ch[i]->bound[c] < bound)
                bound = ch[i]->bound[c];
        }
        uint64_t y = (uint64_t)llround(x);
        if (y > bound)
            y = bound;
        before += r->categories[c].bytes_at_peak;
        after += y;
    }
    for (size_t i = 0; i < n; i++)
        delta += ch[i]->peak_delta;
    int64_t peak = (int64_t)r->summary.peak_bytes;
    int64_t p = peak - (int64_t)(before - after) - delta;
    return p < 0 ? 0 : (uint64_t)p;
}

/* Fills the predicted peak and the saving from the arithmetic; notes a
 * string that could not be built. */
static void finish(builder_t *b, prof_recommendation_t *a)
{
    const prof_recommendation_t *one = a;
    uint64_t p = apply_changes(b->r, &one, 1);
    a->predicted_peak_bytes = p;
    a->bytes_saved = p < b->r->summary.peak_bytes ? b->r->summary.peak_bytes - p : 0;
    if (!a->title || !a->cost || !a->reasoning || !a->apply)
        b->oom = 1;
}

static uint64_t cat(const prof_result_t *r, int c)
{
    return r->categories[c].bytes_at_peak;
}

/* Sites of category 'name' holding bytes at the peak. */
static size_t sites_of(const prof_result_t *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->site_count; i++)
        if (r->sites[i].category && strcmp(r->sites[i].category, name) == 0 &&
            r->sites[i].live_bytes_at_peak > 0)
            n++;
    return n;
}

/* The run's peak is in evaluation (after the last training step, with
 * evaluation batches found): changes to the training step (checkpointing,
 * micro-batches) do not lower it. */
static int peak_in_evaluation(const prof_result_t *r)
{
    return r->steps.peak_where && strcmp(r->steps.peak_where, "evaluation") == 0;
}

static void advise_checkpointing(builder_t *b, const cmdline_t *cl)
{
    prof_result_t *r = b->r;
    uint64_t act = cat(r, MLMEM_CAT_ACTIVATIONS);
    if (!act || (cl->is_train && cl->checkpointing) || peak_in_evaluation(r))
        return;
    /* Generic: L layers' worth of activations fall to ~2*sqrt(L), with L
     * the number of activation sites (one buffer per layer, a guess).
     * mlmem-train (docs/trainer.md): each hidden layer keeps z and act(z);
     * segments of K = ceil(sqrt(depth)) layers keep their input (S - 1 of
     * them are activations) plus one segment recomputed at a time (2K, less
     * its last act(z), which is the next segment's input). */
    double L, keep;
    if (cl->is_train) {
        L = (double)cl->depth;
        double K = ceil(sqrt(L)), S = ceil(L / K);
        keep = S < 2 ? 1.0 : ((S - 1) + 2 * K - 1) / (2 * L);
    } else {
        L = (double)sites_of(r, "activations");
        keep = L > 0 ? 2.0 * sqrt(L) / L : 1.0;
    }
    if ((!cl->is_train && L < 5) || keep >= 0.95)
        return;
    prof_recommendation_t *a = add(b, PROF_ADVICE_CHECKPOINTING, PROF_GROUP_CHECKPOINTING);
    if (!a)
        return;
    a->scale[MLMEM_CAT_ACTIVATIONS] = keep;
    a->extra_compute = 0.33;
    a->plan_cost = 8;
    a->confidence = cl->is_train ? 0.8 : 0.5;
    a->title = fmt("Gradient checkpointing: keep %.0f%% of %.0f layers' activations", keep * 100, L);
    a->cost = fmt("about +20-33%% compute (one extra forward pass); no accuracy change");
    if (cl->is_train)
        a->reasoning = fmt("Activations hold %.1f MiB at the peak over %.0f hidden layers "
                           "(--depth); segments of %.0f layers keep their inputs and one segment "
                           "at a time, %.0f%% of them.",
                           act / MIB, L, ceil(sqrt(L)), keep * 100);
    else
        a->reasoning = fmt("Activations hold %.1f MiB at the peak over %.0f layers (counted as "
                           "activation sites); keeping segment inputs and one segment "
                           "(~2*sqrt(L) = %.1f layers) leaves %.0f%% of them.",
                           act / MIB, L, 2 * sqrt(L), keep * 100);
    a->apply = fmt("Recompute activations in backward from checkpoints every ~sqrt(L) layers "
                   "(torch.utils.checkpoint, jax.checkpoint).");
    if (cl->is_train)
        a->flags = fmt("--checkpointing sqrt");
    finish(b, a);
}

static void advise_precision(builder_t *b, const cmdline_t *cl)
{
    prof_result_t *r = b->r;
    uint64_t act = cat(r, MLMEM_CAT_ACTIVATIONS);
    if (act && !cl->act_low) {
        prof_recommendation_t *a = add(b, PROF_ADVICE_PRECISION, PROF_GROUP_ACT_PRECISION);
        if (a) {
            a->scale[MLMEM_CAT_ACTIVATIONS] = 0.5;
            /* mlmem-train computes a layer in fp32 before storing it in
             * 2 bytes: one micro-batch x width fp32 scratch buffer. */
            if (cl->is_train)
                a->peak_delta = -(int64_t)(cl->micro_batch * cl->width * 4);
            a->plan_cost = 5;
            a->extra_compute = 0.0;
            a->confidence = cl->is_train ? 0.85 : 0.6;
            a->title = fmt("Store activations in bf16");
            a->cost = fmt("no extra compute; small accuracy risk (bf16 keeps fp32's range, 8 bits "
                          "of mantissa)");
            a->reasoning = fmt("Activations hold %.1f MiB at the peak%s; 2-byte storage halves "
                               "them to %.1f MiB%s. Weights keep fp32 masters, so model state "
                               "does not shrink.",
                               act / MIB, cl->is_train ? "" : " (assumed fp32)", act / 2 / MIB,
                               cl->is_train ? ", plus one fp32 layer of scratch" : "");
            a->apply = fmt("Run forward/backward in bf16 autocast (torch.autocast, "
                           "bfloat16 activations).");
            if (cl->is_train)
                a->flags = fmt("--act-dtype bf16");
            finish(b, a);
        }
    }
    /* Below 1 MiB of gradients the trainer's fp32 scratch eats the saving. */
    uint64_t grads = cat(r, MLMEM_CAT_GRADIENTS);
    if (grads >= 4 * TRAIN_GRAD_CHUNK_BYTES && !cl->grad_low) {
        prof_recommendation_t *a = add(b, PROF_ADVICE_PRECISION, PROF_GROUP_GRAD_PRECISION);
        if (a) {
            a->scale[MLMEM_CAT_GRADIENTS] = 0.5;
            /* mlmem-train converts a block of rows at a time to fp32 in
             * backward: one chunk (64 Ki floats) of scratch. */
            if (cl->is_train)
                a->peak_delta = -(int64_t)TRAIN_GRAD_CHUNK_BYTES; /* costs memory */
            a->plan_cost = 5;
            a->confidence = cl->is_train ? 0.8 : 0.5;
            a->title = fmt("Store the gradients in bf16");
            a->cost = fmt("no extra compute; some accuracy risk (gradients rounded to 8 bits of "
                          "mantissa before the update)");
            a->reasoning = fmt("Gradients hold %.1f MiB at the peak%s; 2-byte storage halves "
                               "them. The weights are not worth lowering for memory: a bf16 "
                               "working copy sits next to the fp32 masters (+50%% of %.1f MiB).",
                               grads / MIB, cl->is_train ? "" : " (assumed fp32)",
                               cat(r, MLMEM_CAT_WEIGHTS) / MIB);
            a->apply = fmt("Keep .grad in bfloat16 (e.g. a bf16 model with fp32 master weights "
                           "in the optimizer).");
            if (cl->is_train)
                a->flags = fmt("--grad-dtype bf16");
            finish(b, a);
        }
    }
    uint64_t opt = cat(r, MLMEM_CAT_OPTIMIZER_STATE);
    if (opt && !cl->opt_low && !(cl->is_train && strcmp(cl->optimizer, "sgd") == 0)) {
        prof_recommendation_t *a = add(b, PROF_ADVICE_PRECISION, PROF_GROUP_OPT_PRECISION);
        if (a) {
            a->scale[MLMEM_CAT_OPTIMIZER_STATE] = 0.5;
            a->plan_cost = 2;
            a->confidence = cl->is_train ? 0.85 : 0.6;
            a->title = fmt("Keep the optimizer state in bf16");
            a->cost = fmt("no extra compute; small accuracy risk (rounded moment estimates)");
            a->reasoning = fmt("Optimizer state holds %.1f MiB at the peak%s; bf16 halves it to "
                               "%.1f MiB.",
                               opt / MIB, cl->is_train ? "" : " (assumed fp32)", opt / 2 / MIB);
            a->apply = fmt("Use an optimizer with bf16 state (e.g. bitsandbytes, or "
                           "torch.optim with bf16 state tensors).");
            if (cl->is_train)
                a->flags = fmt("--opt-dtype bf16");
            finish(b, a);
        }
    }
}

static void advise_batching(builder_t *b, const cmdline_t *cl)
{
    prof_result_t *r = b->r;
    uint64_t act = cat(r, MLMEM_CAT_ACTIVATIONS);
    if (!act || peak_in_evaluation(r))
        return;
    if (cl->is_train && (cl->micro_batch < 2 || (cl->batch % (cl->micro_batch / 2)) != 0))
        return;
    prof_recommendation_t *a = add(b, PROF_ADVICE_BATCHING, PROF_GROUP_BATCHING);
    if (!a)
        return;
    /* Activations scale with the micro-batch; so does mlmem-train's input
     * batch buffer, a small part of 'data' (784 floats a row). Resident
     * datasets do not, so 'data' is otherwise left alone. */
    a->scale[MLMEM_CAT_ACTIVATIONS] = 0.5;
    uint64_t batch_bytes = 0;
    if (cl->is_train) {
        batch_bytes = (uint64_t)cl->micro_batch * TRAIN_INPUT_FLOATS * 4;
        uint64_t data = cat(r, MLMEM_CAT_DATA);
        if (data > batch_bytes / 2)
            a->peak_delta = (int64_t)(batch_bytes / 2);
    }
    a->plan_cost = 6;
    a->extra_compute = 0.1;
    a->confidence = cl->is_train ? 0.8 : 0.55;
    a->title = cl->is_train ? fmt("Halve the micro-batch to %ld and accumulate gradients",
                                  cl->micro_batch / 2)
                            : fmt("Halve the micro-batch and accumulate gradients");
    a->cost = fmt("about +5-15%% step time (smaller matrix products); same effective batch, "
                  "no accuracy change");
    a->reasoning = fmt("Activations (%.1f MiB at the peak) scale with the rows per "
                       "forward/backward; half the rows, accumulated twice per step, halve "
                       "them%s.",
                       act / MIB, cl->is_train ? " and the input batch buffer" : "");
    a->apply = fmt("Split each batch in two micro-batches and sum their gradients before the "
                   "optimizer step.");
    if (cl->is_train)
        a->flags = fmt("--micro-batch %ld", cl->micro_batch / 2);
    finish(b, a);
}

/* The peak is in evaluation, above every training step's: the evaluation
 * batch's tensors (activations and temporaries of sites that allocate and
 * free again and again, at least once a step) halve with the batch, down
 * to the training steps' highest peak at most. */
static void advise_eval_batch(builder_t *b)
{
    prof_result_t *r = b->r;
    const prof_steps_t *st = &r->steps;
    if (!peak_in_evaluation(r) || !st->peak_count)
        return;
    uint64_t train_peak = 0;
    for (size_t i = 0; i < st->peak_count; i++)
        if (st->peak_bytes[i] > train_peak)
            train_peak = st->peak_bytes[i];
    uint64_t per_batch = 0;
    for (size_t i = 0; i < r->site_count; i++) {
        const prof_site_t *s = &r->sites[i];
        if (s->category && s->allocations >= st->count && s->frees * 10 >= s->allocations * 9 &&
            (strcmp(s->category, "activations") == 0 || strcmp(s->category, "temporaries") == 0))
            per_batch += s->live_bytes_at_peak;
    }
    uint64_t peak = r->summary.peak_bytes;
    if (train_peak >= peak || per_batch < 2)
        return;
    uint64_t cut = per_batch / 2 < peak - train_peak ? per_batch / 2 : peak - train_peak;
    prof_recommendation_t *a = add(b, PROF_ADVICE_EVAL_BATCH, PROF_GROUP_EVAL);
    if (!a)
        return;
    a->peak_delta = (int64_t)cut;
    a->plan_cost = 1;
    a->extra_compute = 0.0;
    a->confidence = 0.5;
    a->title = fmt("Evaluate in half-size batches: the peak is in evaluation");
    a->cost = fmt("no accuracy change; evaluation runs slightly slower");
    a->reasoning = fmt("The run peaks at %.1f MiB after the last training step, in evaluation "
                       "(%" PRIu64 " forward-only batches), above the training steps' %.1f MiB; "
                       "its per-batch tensors hold %.1f MiB at the peak and halve with the "
                       "batch. Changes to the training step would not lower this peak.",
                       peak / MIB, st->eval_batches, train_peak / MIB, per_batch / MIB);
    a->apply = fmt("Use a smaller batch in the evaluation loop, under torch.no_grad() or "
                   "inference_mode() so that no activations are kept.");
    finish(b, a);
}

static void advise_streaming(builder_t *b, const cmdline_t *cl)
{
    prof_result_t *r = b->r;
    uint64_t data = cat(r, MLMEM_CAT_DATA);
    if (cl->is_train && cl->streamed)
        return;
    uint64_t bound;
    if (cl->is_train)
        /* the training stream's buffer, the test stream's (one micro-batch),
         * four gz readers (images and labels of both) and the batch buffer */
        bound = (uint64_t)(cl->prefetch + cl->micro_batch) * TRAIN_SAMPLE_BYTES +
                4 * TRAIN_GZ_READER_BYTES + (uint64_t)cl->micro_batch * TRAIN_INPUT_FLOATS * 4;
    else
        bound = data / 100;
    if (data < 1024 * 1024 || bound >= data * 9 / 10)
        return;
    prof_recommendation_t *a = add(b, PROF_ADVICE_DATA_STREAMING, PROF_GROUP_DATA);
    if (!a)
        return;
    a->bound[MLMEM_CAT_DATA] = bound;
    a->plan_cost = 1;
    a->confidence = cl->is_train ? 0.85 : 0.5;
    a->title = fmt("Stream the dataset instead of holding it in memory");
    a->cost = fmt("no extra compute if reading keeps up; shuffling is within the buffer only");
    if (cl->is_train)
        a->reasoning = fmt("Data holds %.1f MiB at the peak; streamed through a %ld-sample "
                           "buffer (%u bytes each), with the test stream, the gz readers and the "
                           "batch buffer, it needs about %.2f MiB.",
                           data / MIB, cl->prefetch, TRAIN_SAMPLE_BYTES, bound / MIB);
    else
        a->reasoning = fmt("Data holds %.1f MiB at the peak; a bounded prefetch buffer of about "
                           "1%% of the dataset (an assumption: %.2f MiB) replaces it.",
                           data / MIB, bound / MIB);
    a->apply = fmt("Read samples from disk through a bounded shuffle/prefetch buffer "
                   "(an IterableDataset, tf.data with a shuffle buffer).");
    if (cl->is_train)
        a->flags = fmt("--data stream");
    finish(b, a);
}

static void advise_optimizer(builder_t *b, const cmdline_t *cl)
{
    prof_result_t *r = b->r;
    uint64_t opt = cat(r, MLMEM_CAT_OPTIMIZER_STATE);
    uint64_t w = cat(r, MLMEM_CAT_WEIGHTS);
    if (!opt)
        return;
    /* Adam-like when the state is about twice the weights (or says so). */
    int adam = cl->is_train ? strcmp(cl->optimizer, "adamw") == 0 || strcmp(cl->optimizer, "adam") == 0
                            : w && opt >= w * 3 / 2;
    int momentum = cl->is_train ? strcmp(cl->optimizer, "momentum") == 0 : !adam;
    if (!adam && !momentum)
        return;
    if (adam) {
        prof_recommendation_t *a = add(b, PROF_ADVICE_OPTIMIZER, PROF_GROUP_OPTIMIZER);
        if (a) {
            a->scale[MLMEM_CAT_OPTIMIZER_STATE] = 0.5;
            a->plan_cost = 3;
            a->confidence = cl->is_train ? 0.85 : 0.6;
            a->title = fmt("Use SGD with momentum instead of Adam");
            a->cost = fmt("no extra compute; convergence risk: needs a retuned learning rate");
            a->reasoning = fmt("Adam keeps two moments (%.1f MiB at the peak, %.1fx the weights); "
                               "momentum keeps one, %.1f MiB.",
                               opt / MIB, w ? (double)opt / w : 0.0, opt / 2 / MIB);
            a->apply = fmt("Switch the optimizer to SGD with momentum (torch.optim.SGD, "
                           "momentum=0.9) and retune the learning rate.");
            if (cl->is_train)
                a->flags = fmt("--optimizer momentum");
            finish(b, a);
        }
    }
    prof_recommendation_t *a = add(b, PROF_ADVICE_OPTIMIZER, PROF_GROUP_OPTIMIZER);
    if (!a)
        return;
    a->scale[MLMEM_CAT_OPTIMIZER_STATE] = 0.0;
    a->plan_cost = 4;
    a->confidence = cl->is_train ? 0.85 : 0.6;
    a->title = fmt("Use plain SGD (no optimizer state)");
    a->cost = fmt("no extra compute; convergence risk: slower training, retuned learning rate");
    a->reasoning = fmt("The optimizer state holds %.1f MiB at the peak; plain SGD keeps none.",
                       opt / MIB);
    a->apply = fmt("Switch to plain SGD (torch.optim.SGD, momentum=0).");
    if (cl->is_train)
        a->flags = fmt("--optimizer sgd");
    finish(b, a);
}

static void advise_compression(builder_t *b, const cmdline_t *cl)
{
    prof_result_t *r = b->r;
    uint64_t w = cat(r, MLMEM_CAT_WEIGHTS);
    if (w < 1024 * 1024)
        return;
    if (!(cl->is_train && cl->quantize)) {
        prof_recommendation_t *a = add(b, PROF_ADVICE_COMPRESSION, PROF_GROUP_COMPRESSION);
        if (a) {
            a->scale[MLMEM_CAT_WEIGHTS] = 0.25;
            a->deployment_only = 1;
            a->plan_cost = 20;
            a->confidence = 0.7;
            a->title = fmt("Deploy with int8 weights");
            a->cost = fmt("for deployment only (training needs fp32); small accuracy risk, "
                          "check the evaluation");
            a->reasoning = fmt("Weights hold %.1f MiB (assumed fp32); int8 with a per-row scale "
                               "needs a quarter, %.1f MiB, in the deployed model.",
                               w / MIB, w / 4 / MIB);
            a->apply = fmt("Quantize the trained weights to int8 with per-row scales "
                           "(torch.ao.quantization, ONNX Runtime).");
            if (cl->is_train)
                a->flags = fmt("--quantize int8");
            finish(b, a);
        }
    }
    if (!(cl->is_train && cl->prune)) {
        prof_recommendation_t *a = add(b, PROF_ADVICE_COMPRESSION, PROF_GROUP_COMPRESSION);
        if (a) {
            /* CSR keeps a fp32 value and a 16-bit column per kept weight. */
            a->scale[MLMEM_CAT_WEIGHTS] = 0.5 * 6.0 / 4.0;
            a->deployment_only = 1;
            a->plan_cost = 21;
            a->confidence = 0.6;
            a->title = fmt("Prune 50%% of the weights and store them as CSR");
            a->cost = fmt("for deployment only; a fine-tuning epoch; accuracy risk, check the "
                          "evaluation");
            a->reasoning = fmt("Weights hold %.1f MiB; half kept as fp32 values with 16-bit "
                               "column indices is 75%% of that, %.1f MiB.",
                               w / MIB, w * 0.75 / MIB);
            a->apply = fmt("Prune by magnitude, fine-tune with the mask, store sparse (CSR).");
            if (cl->is_train)
                a->flags = fmt("--prune 0.5");
            finish(b, a);
        }
    }
}

static void advise_churn(builder_t *b, const cmdline_t *cl)
{
    prof_result_t *r = b->r;
    uint64_t steps = r->steps.count;
    const prof_site_t *worst = NULL;
    uint64_t worst_bytes = 0;
    for (size_t i = 0; i < r->site_count; i++) {
        const prof_site_t *s = &r->sites[i];
        if (s->largest_allocation < CHURN_MIN_BLOCK || s->allocations < 8 ||
            s->frees * 10 < s->allocations * 9)
            continue;
        if (steps >= 2 && s->allocations < steps)
            continue;
        if (steps >= 2 && r->steps.period_ns && s->frees &&
            s->lifetime_sum_ns / s->frees > r->steps.period_ns)
            continue;
        if (s->bytes_allocated > worst_bytes) {
            worst_bytes = s->bytes_allocated;
            worst = s;
        }
    }
    if (!worst)
        return;
    uint64_t total = 0, blocks = 0, largest = 0;
    for (size_t i = 0; i < r->site_count; i++) {
        const prof_site_t *s = &r->sites[i];
        if (s->largest_allocation < CHURN_MIN_BLOCK || s->allocations < 8 ||
            s->frees * 10 < s->allocations * 9)
            continue;
        total += s->bytes_allocated;
        blocks += s->allocations;
        if (s->largest_allocation > largest)
            largest = s->largest_allocation;
    }
    prof_recommendation_t *a = add(b, PROF_ADVICE_CHURN, PROF_GROUP_CHURN);
    if (!a)
        return;
    double per_step = steps ? (double)total / steps : (double)total;
    /* Round the tunable up to a MiB above the largest block. */
    uint64_t thr = ((largest >> 20) + 1) << 20;
    a->plan_cost = 30;
    a->confidence = 0.6;
    a->title = fmt("Avoid mmap/munmap churn of large per-step blocks");
    a->cost = fmt("none in compute (saves page faults each step); peak unchanged; a higher "
                  "threshold can keep freed memory in the heap");
    a->reasoning = fmt("%llu blocks of at least 128 KiB (up to %.1f MiB) are allocated and freed "
                       "again, %.1f MiB %s; each goes through mmap/munmap and faults its pages in "
                       "anew.",
                       (unsigned long long)blocks, largest / MIB, per_step / MIB,
                       steps ? "per step" : "in all");
    if (largest < GLIBC_MMAP_THRESHOLD_MAX)
        a->apply = fmt("Set GLIBC_TUNABLES=glibc.malloc.mmap_threshold=%llu (an explicit "
                       "threshold also stops glibc's dynamic one), or reuse the buffers "
                       "(a pool allocated once).",
                       (unsigned long long)thr);
    else
        a->apply = fmt("Reuse the buffers: allocate them once (a pool) instead of every step; "
                       "blocks over 32 MiB exceed glibc's largest mmap threshold.");
    /* mlmem-train's block layout allocates everything once */
    if (cl->is_train && cl->per_tensor)
        a->flags = fmt("--layout block");
    finish(b, a);
}

/* Growth of the live bytes over the steps: from the annotated per-step
 * peaks, or from the timeline's troughs (the minimum in each eighth of the
 * steps' span) when they rise from each eighth to the next. Timeline points
 * hold the maximum of their span, so a single dip or rise is not enough. */
#define LEAK_PARTS 8
static void advise_leak(builder_t *b)
{
    prof_result_t *r = b->r;
    if (r->steps.count < 4)
        return;
    uint64_t t0 = r->steps.first_step_ns, t1 = r->steps.last_step_ns;
    uint64_t growth = 0;
    if (r->steps.peak_count >= 4) {
        const uint64_t *p = r->steps.peak_bytes;
        size_t n = r->steps.peak_count, up = 0;
        for (size_t i = 2; i < n; i++)
            up += p[i] > p[i - 1];
        if (up * 4 >= (n - 2) * 3 && p[n - 1] > p[1])
            growth = (p[n - 1] - p[1]) * (n - 1) / (n - 2); /* step 0 warms up */
    } else if (t1 > t0 && r->timeline_count >= 4 * LEAK_PARTS) {
        uint64_t lo[LEAK_PARTS];
        for (int k = 0; k < LEAK_PARTS; k++)
            lo[k] = UINT64_MAX;
        for (size_t i = 0; i < r->timeline_count; i++) {
            const prof_timeline_point_t *pt = &r->timeline[i];
            if (pt->time_ns < t0 || pt->time_ns >= t1)
                continue;
            int k = (int)((pt->time_ns - t0) * LEAK_PARTS / (t1 - t0));
            if (pt->live_bytes < lo[k])
                lo[k] = pt->live_bytes;
        }
        int rising = 1;
        for (int k = 0; k < LEAK_PARTS; k++)
            if (lo[k] == UINT64_MAX || (k && lo[k] <= lo[k - 1]))
                rising = 0;
        if (rising) /* the parts' centres span 7/8 of the steps */
            growth = (lo[LEAK_PARTS - 1] - lo[0]) * LEAK_PARTS / (LEAK_PARTS - 1);
    }
    if (growth < 1024 * 1024 || growth * 100 < r->summary.peak_bytes)
        return;
    if (growth > r->summary.peak_bytes)
        growth = r->summary.peak_bytes;
    prof_recommendation_t *a = add(b, PROF_ADVICE_LEAK, PROF_GROUP_LEAK);
    if (!a)
        return;
    a->peak_delta = (int64_t)growth;
    a->plan_cost = 0;
    a->confidence = 0.6;
    a->title = fmt("Fix a leak: live bytes grow with every step");
    a->cost = fmt("none: a bug fix");
    a->reasoning = fmt("Live bytes grow by about %.2f MiB a step over %llu steps (%.1f MiB in "
                       "all); memory that should be freed each step is kept.",
                       growth / MIB / (double)(r->steps.count - 1),
                       (unsigned long long)r->steps.count, growth / MIB);
    a->apply = fmt("Find the sites whose live bytes at the end keep rising (the report's "
                   "leaked column) and free or reuse what they allocate each step.");
    finish(b, a);
}

static int by_saving(const void *x, const void *y)
{
    const prof_recommendation_t *a = x, *b = y;
    if (a->bytes_saved != b->bytes_saved)
        return a->bytes_saved < b->bytes_saved ? 1 : -1;
    return a->plan_cost < b->plan_cost ? -1 : a->plan_cost > b->plan_cost;
}

static void free_recs(prof_recommendation_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].title);
        free(v[i].cost);
        free(v[i].reasoning);
        free(v[i].apply);
        free(v[i].flags);
    }
    free(v);
}

int prof_advise(prof_result_t *r)
{
    free_recs(r->recommendations, r->recommendation_count);
    r->recommendations = NULL;
    r->recommendation_count = 0;
    if (r->category_count != MLMEM_CATEGORY_COUNT || !r->summary.peak_bytes)
        return 0;
    cmdline_t cl;
    parse_cmdline(r->process.command, &cl);
    builder_t b = {r, NULL, 0, 0, 0};
    advise_checkpointing(&b, &cl);
    advise_precision(&b, &cl);
    advise_batching(&b, &cl);
    advise_streaming(&b, &cl);
    advise_optimizer(&b, &cl);
    advise_compression(&b, &cl);
    advise_churn(&b, &cl);
    advise_leak(&b);
    advise_eval_batch(&b);
    if (b.oom) {
        free_recs(b.v, b.n);
        return -1;
    }
    /* Drop what saves nothing, churn aside (it saves time, not bytes). */
    size_t k = 0;
    for (size_t i = 0; i < b.n; i++) {
        if (b.v[i].bytes_saved == 0 && b.v[i].kind != PROF_ADVICE_CHURN) {
            free(b.v[i].title);
            free(b.v[i].cost);
            free(b.v[i].reasoning);
            free(b.v[i].apply);
            free(b.v[i].flags);
            continue;
        }
        b.v[k++] = b.v[i];
    }
    if (k)
        qsort(b.v, k, sizeof *b.v, by_saving);
    else {
        free(b.v);
        b.v = NULL;
    }
    r->recommendations = b.v;
    r->recommendation_count = k;
    return 0;
}

/* ---- plans ---------------------------------------------------------------- */

uint64_t prof_advice_combined_peak(const prof_result_t *r, const size_t *idx, size_t n)
{
    const prof_recommendation_t *ch[64];
    size_t m = 0;
    for (size_t i = 0; i < n && m < 64; i++)
        if (idx[i] < r->recommendation_count)
            ch[m++] = &r->recommendations[idx[i]];
    return apply_changes(r, ch, m);
}

/* Candidates for plans: at most 20 (subsets are enumerated). */
#define PLAN_MAX 20

static int plan_changes(const prof_result_t *r, uint64_t budget, prof_advice_plan_t *out);

/* Predicted peak with 'rows' rows per forward/backward instead of the run's
 * 'rows0': activations and the input batch buffer (784 floats a row) scale
 * with them, as in advise_batching. */
static uint64_t batch_peak(const prof_result_t *r, long rows0, long rows)
{
    double per_row = ((double)cat(r, MLMEM_CAT_ACTIVATIONS) +
                      (double)rows0 * TRAIN_INPUT_FLOATS * 4) / (double)rows0;
    double p = (double)r->summary.peak_bytes + per_row * (double)(rows - rows0);
    return p <= 0 ? 0 : (uint64_t)p;
}

/* The largest batch of an mlmem-train run that fits 'budget' alone: a
 * larger --batch when the measured peak fits, else the largest divisor of
 * the batch as --micro-batch (gradient accumulation keeps the batch). */
static int plan_largest_batch(const prof_result_t *r, uint64_t budget, prof_advice_plan_t *out)
{
    cmdline_t cl;
    parse_cmdline(r->process.command, &cl);
    if (!cl.is_train || cl.micro_batch < 1 || !cat(r, MLMEM_CAT_ACTIVATIONS))
        return 0;
    long rows0 = cl.micro_batch;
    if (r->summary.peak_bytes <= budget && rows0 == cl.batch) {
        long b = rows0;
        while (b < (1L << 24) && batch_peak(r, rows0, b + 1) <= budget)
            b++;
        out->largest_batch = b;
        out->largest_batch_peak = batch_peak(r, rows0, b);
        out->batch_statement = fmt("The largest batch that fits is %ld rows (predicted peak "
                                   "%.1f MiB): --batch %ld.", b,
                                   out->largest_batch_peak / MIB, b);
        return out->batch_statement ? 0 : -1;
    }
    for (long m = rows0; m >= 1; m--) {
        if (cl.batch % m != 0 || batch_peak(r, rows0, m) > budget)
            continue;
        out->largest_batch = m;
        out->largest_is_micro = 1;
        out->largest_batch_peak = batch_peak(r, rows0, m);
        out->batch_statement = fmt("Alone, the largest micro-batch that fits is %ld rows, "
                                   "accumulated %ld times per batch of %ld (predicted peak "
                                   "%.1f MiB): --micro-batch %ld.",
                                   m, cl.batch / m, cl.batch, out->largest_batch_peak / MIB, m);
        return out->batch_statement ? 0 : -1;
    }
    out->batch_statement = fmt("No micro-batch fits alone: even one row a pass predicts "
                               "%.1f MiB.", batch_peak(r, rows0, 1) / MIB);
    return out->batch_statement ? 0 : -1;
}

int prof_advice_plan(const prof_result_t *r, uint64_t budget, prof_advice_plan_t *out)
{
    int rc = plan_changes(r, budget, out);
    if (rc == 0)
        rc = plan_largest_batch(r, budget, out);
    return rc;
}

static int plan_changes(const prof_result_t *r, uint64_t budget, prof_advice_plan_t *out)
{
    memset(out, 0, sizeof *out);
    out->budget = budget;
    size_t cand[PLAN_MAX], nc = 0;
    for (size_t i = 0; i < r->recommendation_count && nc < PLAN_MAX; i++) {
        const prof_recommendation_t *a = &r->recommendations[i];
        if (!a->deployment_only && a->kind != PROF_ADVICE_CHURN && a->bytes_saved)
            cand[nc++] = i;
    }
    out->chosen = calloc(nc + 1, sizeof *out->chosen);
    if (!out->chosen)
        return -1;
    uint64_t peak = r->summary.peak_bytes;
    if (peak <= budget) {
        out->fits = 1;
        out->predicted_peak = peak;
        out->statement = fmt("The measured peak (%.1f MiB) already fits the budget (%.1f MiB); "
                             "nothing needs to change.", peak / MIB, budget / MIB);
        return out->statement ? 0 : -1;
    }
    /* Every subset that takes at most one change per group: the cheapest
     * (sum of plan_cost, then fewest changes, then lowest peak) that fits;
     * failing that, the lowest peak. */
    uint64_t best_cost = UINT64_MAX, best_peak = UINT64_MAX, low_peak = UINT64_MAX;
    uint32_t best_mask = 0, low_mask = 0;
    int best_n = 0;
    for (uint32_t mask = 1; mask < (1u << nc); mask++) {
        uint32_t groups = 0;
        int ok = 1, n = 0;
        uint64_t cost = 0;
        size_t idx[PLAN_MAX];
        for (size_t j = 0; j < nc; j++) {
            if (!(mask & (1u << j)))
                continue;
            const prof_recommendation_t *a = &r->recommendations[cand[j]];
            if (groups & (1u << a->group)) {
                ok = 0;
                break;
            }
            groups |= 1u << a->group;
            cost += a->plan_cost + 1;
            idx[n++] = cand[j];
        }
        if (!ok)
            continue;
        uint64_t p = prof_advice_combined_peak(r, idx, (size_t)n);
        if (p < low_peak) {
            low_peak = p;
            low_mask = mask;
        }
        if (p <= budget && (cost < best_cost || (cost == best_cost && (n < best_n ||
                                                  (n == best_n && p < best_peak))))) {
            best_cost = cost;
            best_peak = p;
            best_mask = mask;
            best_n = n;
        }
    }
    uint32_t mask = best_mask ? best_mask : low_mask;
    for (size_t j = 0; j < nc; j++)
        if (mask & (1u << j))
            out->chosen[out->chosen_count++] = cand[j];
    if (best_mask) {
        out->fits = 1;
        out->predicted_peak = best_peak;
        out->statement = fmt("%zu change%s bring%s the predicted peak from %.1f MiB to %.1f MiB, "
                             "within the budget of %.1f MiB.",
                             out->chosen_count, out->chosen_count == 1 ? "" : "s",
                             out->chosen_count == 1 ? "s" : "", peak / MIB, best_peak / MIB,
                             budget / MIB);
    } else {
        out->predicted_peak = nc ? low_peak : peak;
        out->shortfall = out->predicted_peak - budget;
        out->statement = fmt("No combination fits: with every applicable change the predicted "
                             "peak is %.1f MiB, %.1f MiB (%llu bytes) over the budget of %.1f MiB.",
                             out->predicted_peak / MIB, out->shortfall / MIB,
                             (unsigned long long)out->shortfall, budget / MIB);
    }
    return out->statement ? 0 : -1;
}

void prof_advice_plan_free(prof_advice_plan_t *p)
{
    if (!p)
        return;
    free(p->chosen);
    free(p->statement);
    free(p->batch_statement);
    memset(p, 0, sizeof *p);
}
