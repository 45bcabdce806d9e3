/*
 * mlmem-train: the reference trainer. An MLP on Fashion-MNIST in C with
 * OpenBLAS, in which every memory change mlmem recommends is a flag:
 * gradient checkpointing, bf16/fp16 storage with loss scaling, micro-batches
 * with gradient accumulation, streamed data, pruning, int8 quantization,
 * distillation and the optimizer's state. It knows exactly what it holds
 * (--memory-report) and can mark its steps for the profiler (--annotate).
 *
 * Read top to bottom: configuration and CLI, data source, evaluation, the
 * training loop, compression, the memory report, main.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <jansson.h>
#include <mlmem/annotate.h>

#include "checkpoint.h"
#include "compress.h"
#include "data.h"
#include "memory.h"
#include "model.h"
#include "optim.h"
#include "precision.h"

// ----------------------------------------------------------------------------
// dying: only main dies, through this, naming where and why

#define die(...) die_at(__FILE__, __LINE__, __VA_ARGS__)

static void __attribute__((noreturn, format(printf, 3, 4)))
die_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "mlmem-train: error (%s:%d): ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ----------------------------------------------------------------------------
// configuration

typedef struct {
    /* model */
    int depth, width;
    train_act_t act;
    /* training */
    int epochs, batch, micro_batch;
    train_optim_config_t opt;
    int cosine;
    uint64_t seed;
    int threads;
    /* memory options */
    int ckpt_segment;            /* 0 none, -1 sqrt(depth), k every k layers */
    train_dtype_t act_dtype, weight_dtype, grad_dtype;
    float loss_scale;            /* initial scale; fp16 only */
    int loss_scale_dynamic;
    train_layout_t layout;
    int stream;
    int prefetch;
    /* data */
    const char *data_dir;
    int limit_train, limit_test;
    /* compression */
    float prune;
    int finetune_epochs;
    int quantize_int8;
    const char *teacher;
    float distill_alpha, distill_temp;
    /* io */
    const char *save, *load, *memory_report;
    int annotate;
    int log_every;
} train_args_t;

static void args_defaults(train_args_t *a)
{
    memset(a, 0, sizeof(*a));
    a->depth = 2;
    a->width = 512;
    a->act = TRAIN_ACT_RELU;
    a->epochs = 5;
    a->batch = 128;
    a->micro_batch = 0;
    a->opt.kind = TRAIN_OPT_ADAMW;
    a->opt.lr = -1.0f;
    a->opt.momentum = 0.9f;
    a->opt.beta1 = 0.9f;
    a->opt.beta2 = 0.999f;
    a->opt.eps = 1e-8f;
    a->opt.weight_decay = 0.0f;
    a->opt.state_dtype = TRAIN_F32;
    a->cosine = 1;
    a->seed = 1337;
    a->threads = 0;
    a->act_dtype = a->weight_dtype = a->grad_dtype = TRAIN_F32;
    a->loss_scale = 65536.0f;
    a->loss_scale_dynamic = 1;
    a->layout = TRAIN_LAYOUT_BLOCK;
    a->prefetch = 1024;
    a->data_dir = "/usr/share/datasets/fashion-mnist";
    a->finetune_epochs = 1;
    a->distill_alpha = 0.7f;
    a->distill_temp = 4.0f;
    a->log_every = 100;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: mlmem-train [options]\n"
"Trains an MLP on Fashion-MNIST; every memory optimization mlmem recommends is a flag.\n"
"\n"
"model:\n"
"  --depth N              hidden layers (default 2)\n"
"  --width N              units per hidden layer (default 512)\n"
"  --act relu|gelu        activation (default relu)\n"
"training:\n"
"  --epochs N             epochs (default 5; 0 with --load: evaluate only)\n"
"  --batch N              effective batch per optimizer step (default 128)\n"
"  --micro-batch N        rows per forward/backward; batch must be a multiple;\n"
"                         gradients accumulate over batch/N micro-batches (default = batch)\n"
"  --optimizer sgd|momentum|adamw   (default adamw)\n"
"  --lr F                 learning rate (default 1e-3 adamw, 0.05 momentum, 0.1 sgd)\n"
"  --momentum F           momentum coefficient (default 0.9)\n"
"  --beta1 F --beta2 F --eps F      AdamW coefficients (0.9, 0.999, 1e-8)\n"
"  --weight-decay F       decoupled weight decay (default 0)\n"
"  --lr-schedule cosine|constant    (default cosine, to zero at the last step)\n"
"  --seed N               seed for init, shuffling and streaming (default 1337)\n"
"  --threads N            OpenBLAS threads (default: OpenBLAS's own choice)\n"
"memory:\n"
"  --checkpointing none|sqrt|K      gradient checkpointing: none, sqrt(depth)-layer\n"
"                         segments, or a checkpoint every K hidden layers; dropped\n"
"                         activations are recomputed in backward (bit-identical)\n"
"  --precision fp32|bf16|fp16       shorthand for --act-dtype\n"
"  --act-dtype D          storage of activations (fp32, bf16, fp16)\n"
"  --weight-dtype D       working copy of the weights (fp32 masters are kept)\n"
"  --grad-dtype D         storage of the gradients\n"
"  --opt-dtype fp32|bf16  storage of the optimizer state\n"
"  --loss-scale dynamic|F fp16 loss scaling: dynamic (default, starts at 65536,\n"
"                         halves and skips the step on overflow, doubles after\n"
"                         2000 good steps) or a fixed scale\n"
"  --loss-scale-init F    initial dynamic scale (default 65536)\n"
"  --layout block|per-tensor        one allocation per kind, allocated once (llm.c),\n"
"                         or one per tensor with activations and temporaries\n"
"                         allocated and freed every step (default block)\n"
"  --data resident|stream           whole dataset in memory, or streamed from the gz\n"
"                         files through a bounded shuffle buffer (default resident)\n"
"  --prefetch N           samples held by the stream buffer (default 1024)\n"
"data:\n"
"  --data-dir DIR         directory of the *-idx?-ubyte.gz files\n"
"                         (default /usr/share/datasets/fashion-mnist)\n"
"  --limit-train N        use the first N training samples\n"
"  --limit-test N         evaluate on the first N test samples\n"
"compression:\n"
"  --prune S              after training, prune a fraction S of every weight matrix\n"
"                         by magnitude, fine-tune with the mask, store CSR\n"
"  --finetune-epochs N    fine-tuning epochs after pruning (default 1)\n"
"  --quantize int8        evaluate an int8 (per-row scale) copy of the weights\n"
"  --teacher FILE         distill from this checkpoint (any architecture)\n"
"  --distill-alpha F      weight of the distillation term (default 0.7)\n"
"  --distill-temp F       softmax temperature (default 4)\n"
"input/output:\n"
"  --save FILE            save a checkpoint after training\n"
"  --load FILE            start from a checkpoint (its architecture wins)\n"
"  --memory-report FILE   JSON ground truth: bytes per category at the peak and at\n"
"                         the end, configuration, step times, losses, accuracies\n"
"  --annotate             mark steps, phases and categories for the mlmem profiler\n"
"  --log-every N          print the loss every N steps (default 100; 0: never)\n"
"  --help                 this text\n");
}

static const char *need(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        die("%s needs a value (see --help)", argv[*i]);
    return argv[++*i];
}

static long parse_int(const char *flag, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        die("%s: '%s' is not an integer in %ld..%ld", flag, s, lo, hi);
    return v;
}

static float parse_float(const char *flag, const char *s)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || *end || !isfinite(v))
        die("%s: '%s' is not a number", flag, s);
    return v;
}

static train_dtype_t parse_dtype(const char *flag, const char *s)
{
    int d = train_dtype_parse(s);
    if (d < 0)
        die("%s: unknown dtype '%s' (fp32, bf16, fp16)", flag, s);
    return (train_dtype_t)d;
}

static void parse_args(train_args_t *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(f, "--depth")) {
            a->depth = (int)parse_int(f, need(argc, argv, &i), 0, TRAIN_MAX_DEPTH);
        } else if (!strcmp(f, "--width")) {
            a->width = (int)parse_int(f, need(argc, argv, &i), 1, 65535);
        } else if (!strcmp(f, "--act")) {
            const char *v = need(argc, argv, &i);
            if (!strcmp(v, "relu")) a->act = TRAIN_ACT_RELU;
            else if (!strcmp(v, "gelu")) a->act = TRAIN_ACT_GELU;
            else die("--act: unknown activation '%s' (relu, gelu)", v);
        } else if (!strcmp(f, "--epochs")) {
            a->epochs = (int)parse_int(f, need(argc, argv, &i), 0, 100000);
        } else if (!strcmp(f, "--batch")) {
            a->batch = (int)parse_int(f, need(argc, argv, &i), 1, 1 << 20);
        } else if (!strcmp(f, "--micro-batch")) {
            a->micro_batch = (int)parse_int(f, need(argc, argv, &i), 1, 1 << 20);
        } else if (!strcmp(f, "--optimizer")) {
            const char *v = need(argc, argv, &i);
            int k = train_opt_parse(v);
            if (k < 0)
                die("--optimizer: unknown optimizer '%s' (sgd, momentum, adamw)", v);
            a->opt.kind = (train_opt_kind_t)k;
        } else if (!strcmp(f, "--lr")) {
            a->opt.lr = parse_float(f, need(argc, argv, &i));
        } else if (!strcmp(f, "--momentum")) {
            a->opt.momentum = parse_float(f, need(argc, argv, &i));
        } else if (!strcmp(f, "--beta1")) {
            a->opt.beta1 = parse_float(f, need(argc, argv, &i));
        } else if (!strcmp(f, "--beta2")) {
            a->opt.beta2 = parse_float(f, need(argc, argv, &i));
        } else if (!strcmp(f, "--eps")) {
            a->opt.eps = parse_float(f, need(argc, argv, &i));
        } else if (!strcmp(f, "--weight-decay")) {
            a->opt.weight_decay = parse_float(f, need(argc, argv, &i));
        } else if (!strcmp(f, "--lr-schedule")) {
            const char *v = need(argc, argv, &i);
            if (!strcmp(v, "cosine")) a->cosine = 1;
            else if (!strcmp(v, "constant")) a->cosine = 0;
            else die("--lr-schedule: unknown schedule '%s' (cosine, constant)", v);
        } else if (!strcmp(f, "--seed")) {
            a->seed = (uint64_t)parse_int(f, need(argc, argv, &i), 0, 0x7fffffffffffffffL);
        } else if (!strcmp(f, "--threads")) {
            a->threads = (int)parse_int(f, need(argc, argv, &i), 1, 1024);
        } else if (!strcmp(f, "--checkpointing")) {
            const char *v = need(argc, argv, &i);
            if (!strcmp(v, "none")) a->ckpt_segment = 0;
            else if (!strcmp(v, "sqrt")) a->ckpt_segment = -1;
            else a->ckpt_segment = (int)parse_int(f, v, 1, TRAIN_MAX_DEPTH);
        } else if (!strcmp(f, "--precision") || !strcmp(f, "--act-dtype")) {
            a->act_dtype = parse_dtype(f, need(argc, argv, &i));
        } else if (!strcmp(f, "--weight-dtype")) {
            a->weight_dtype = parse_dtype(f, need(argc, argv, &i));
        } else if (!strcmp(f, "--grad-dtype")) {
            a->grad_dtype = parse_dtype(f, need(argc, argv, &i));
        } else if (!strcmp(f, "--opt-dtype")) {
            a->opt.state_dtype = parse_dtype(f, need(argc, argv, &i));
            if (a->opt.state_dtype == TRAIN_F16)
                die("--opt-dtype: fp16 optimizer state is not supported (fp32, bf16)");
        } else if (!strcmp(f, "--loss-scale")) {
            const char *v = need(argc, argv, &i);
            if (!strcmp(v, "dynamic")) {
                a->loss_scale_dynamic = 1;
            } else {
                a->loss_scale_dynamic = 0;
                a->loss_scale = parse_float(f, v);
            }
        } else if (!strcmp(f, "--loss-scale-init")) {
            a->loss_scale = parse_float(f, need(argc, argv, &i));
        } else if (!strcmp(f, "--layout")) {
            const char *v = need(argc, argv, &i);
            if (!strcmp(v, "block")) a->layout = TRAIN_LAYOUT_BLOCK;
            else if (!strcmp(v, "per-tensor")) a->layout = TRAIN_LAYOUT_PER_TENSOR;
            else die("--layout: unknown layout '%s' (block, per-tensor)", v);
        } else if (!strcmp(f, "--data")) {
            const char *v = need(argc, argv, &i);
            if (!strcmp(v, "resident")) a->stream = 0;
            else if (!strcmp(v, "stream")) a->stream = 1;
            else die("--data: unknown mode '%s' (resident, stream)", v);
        } else if (!strcmp(f, "--prefetch")) {
            a->prefetch = (int)parse_int(f, need(argc, argv, &i), 1, 1 << 24);
        } else if (!strcmp(f, "--data-dir")) {
            a->data_dir = need(argc, argv, &i);
        } else if (!strcmp(f, "--limit-train")) {
            a->limit_train = (int)parse_int(f, need(argc, argv, &i), 1, 1 << 30);
        } else if (!strcmp(f, "--limit-test")) {
            a->limit_test = (int)parse_int(f, need(argc, argv, &i), 1, 1 << 30);
        } else if (!strcmp(f, "--prune")) {
            a->prune = parse_float(f, need(argc, argv, &i));
            if (a->prune <= 0.0f || a->prune >= 1.0f)
                die("--prune: sparsity must be in (0, 1), got %g", a->prune);
        } else if (!strcmp(f, "--finetune-epochs")) {
            a->finetune_epochs = (int)parse_int(f, need(argc, argv, &i), 0, 100000);
        } else if (!strcmp(f, "--quantize")) {
            const char *v = need(argc, argv, &i);
            if (strcmp(v, "int8"))
                die("--quantize: only int8 is supported, got '%s'", v);
            a->quantize_int8 = 1;
        } else if (!strcmp(f, "--teacher")) {
            a->teacher = need(argc, argv, &i);
        } else if (!strcmp(f, "--distill-alpha")) {
            a->distill_alpha = parse_float(f, need(argc, argv, &i));
        } else if (!strcmp(f, "--distill-temp")) {
            a->distill_temp = parse_float(f, need(argc, argv, &i));
        } else if (!strcmp(f, "--save")) {
            a->save = need(argc, argv, &i);
        } else if (!strcmp(f, "--load")) {
            a->load = need(argc, argv, &i);
        } else if (!strcmp(f, "--memory-report")) {
            a->memory_report = need(argc, argv, &i);
        } else if (!strcmp(f, "--annotate")) {
            a->annotate = 1;
        } else if (!strcmp(f, "--log-every")) {
            a->log_every = (int)parse_int(f, need(argc, argv, &i), 0, 1 << 30);
        } else {
            die("unknown option '%s' (see --help)", f);
        }
    }
    if (a->micro_batch == 0)
        a->micro_batch = a->batch;
    if (a->batch % a->micro_batch != 0)
        die("--batch %d is not a multiple of --micro-batch %d", a->batch, a->micro_batch);
    if (a->opt.lr < 0.0f)
        a->opt.lr = a->opt.kind == TRAIN_OPT_ADAMW ? 1e-3f
                  : a->opt.kind == TRAIN_OPT_MOMENTUM ? 0.05f : 0.1f;
    if (a->distill_alpha < 0.0f || a->distill_alpha > 1.0f || a->distill_temp <= 0.0f)
        die("--distill-alpha must be in [0, 1] and --distill-temp positive");
}

static int uses_fp16(const train_args_t *a)
{
    return a->act_dtype == TRAIN_F16 || a->grad_dtype == TRAIN_F16 || a->weight_dtype == TRAIN_F16;
}

static int ckpt_segment_len(const train_args_t *a)
{
    if (a->ckpt_segment >= 0)
        return a->ckpt_segment;
    int k = (int)ceil(sqrt((double)a->depth));
    return k < 1 ? 1 : k;
}

// ----------------------------------------------------------------------------
// the run: everything the trainer holds, behind one context pointer

#define MAX_EPOCH_LOG 4096

typedef struct {
    int epoch;
    int finetune;
    float train_loss, test_accuracy, test_loss;
    double seconds;
} epoch_log_t;

typedef struct {
    train_args_t *args;
    train_mem_t *mem;
    char err[TRAIN_ERR_LEN];
    char paths[4][512];              /* train images, labels, test images, labels */

    train_model_t model;
    int have_model;
    train_optim_t opt;
    train_model_t teacher;
    int have_teacher;
    train_scaler_t scaler;
    uint8_t *masks[TRAIN_MAX_TENSORS];

    /* data */
    train_dataset_t train_ds, test_ds;
    train_stream_t train_st, test_st;
    int n_train, n_test;
    uint32_t *perm;
    int perm_pos;
    float *x;                        /* (micro_batch, 784) */
    uint8_t *y;                      /* (micro_batch) */
    uint8_t *stage;                  /* streamed pixels before normalization */

    /* logs */
    long step;
    long cap_steps;
    float *step_ms, *step_loss;
    epoch_log_t *epochs;
    int n_epochs_logged;
    double train_seconds;

    /* results */
    float final_acc, final_loss;
    float teacher_acc;
    float acc_after_prune, acc_after_finetune, sparse_acc;
    size_t pruned, zeros_after_finetune, dense_weight_bytes, sparse_bytes;
    float int8_acc;
    size_t int8_bytes;
    float fp32_acc;                  /* dense accuracy right before compression */
    size_t end_bytes[TRAIN_CAT_COUNT], end_total;
    size_t teardown_left;
} train_run_t;

static void set_phase(train_run_t *r, mlmem_phase_t p)
{
    train_mem_set_phase(r->mem, p);
    if (r->args->annotate)
        mlmem_phase(p);
}

// ----------------------------------------------------------------------------
// data source: resident arrays with a shuffled order, or streams

static void data_open(train_run_t *r)
{
    train_args_t *a = r->args;
    const char *names[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    for (int i = 0; i < 4; i++)
        snprintf(r->paths[i], sizeof(r->paths[i]), "%s/%s", a->data_dir, names[i]);
    if (!a->stream) {
        if (train_dataset_load(&r->train_ds, r->mem, r->paths[0], r->paths[1], a->limit_train,
                               r->err) < 0)
            die("training data: %s", r->err);
        if (train_dataset_load(&r->test_ds, r->mem, r->paths[2], r->paths[3], a->limit_test,
                               r->err) < 0)
            die("test data: %s", r->err);
        r->n_train = r->train_ds.n;
        r->n_test = r->test_ds.n;
        if (r->train_ds.rows * r->train_ds.cols != 784 || r->test_ds.rows * r->test_ds.cols != 784)
            die("%s: images are not 28x28", r->paths[0]);
        r->perm = train_mem_alloc(r->mem, TRAIN_CAT_DATA, (size_t)r->n_train * sizeof(uint32_t));
        if (!r->perm)
            die("out of memory for the shuffle order");
    } else {
        if (train_stream_open(&r->train_st, r->mem, r->paths[0], r->paths[1], a->limit_train,
                              a->prefetch, 1, a->seed, r->err) < 0)
            die("training stream: %s", r->err);
        if (train_stream_open(&r->test_st, r->mem, r->paths[2], r->paths[3], a->limit_test,
                              a->micro_batch, 0, 0, r->err) < 0)
            die("test stream: %s", r->err);
        r->n_train = r->train_st.n;
        r->n_test = r->test_st.n;
        if (r->train_st.rows * r->train_st.cols != 784)
            die("%s: images are not 28x28", r->paths[0]);
    }
}

static void data_close(train_run_t *r)
{
    if (!r->args->stream) {
        train_dataset_free(&r->train_ds, r->mem);
        train_dataset_free(&r->test_ds, r->mem);
        train_mem_free(r->mem, r->perm);
        r->perm = NULL;
    } else {
        train_stream_close(&r->train_st);
        train_stream_close(&r->test_st);
    }
}

/* Fisher-Yates with a generator seeded by (seed, epoch): reproducible. */
static void data_shuffle(train_run_t *r, int epoch)
{
    if (r->args->stream)
        return;
    uint64_t rng = r->args->seed * 0x9e3779b97f4a7c15ULL + (uint64_t)epoch + 1;
    for (int i = 0; i < r->n_train; i++)
        r->perm[i] = (uint32_t)i;
    for (int i = r->n_train - 1; i > 0; i--) {
        int j = (int)(train_rand_u64(&rng) % (uint64_t)(i + 1));
        uint32_t t = r->perm[i];
        r->perm[i] = r->perm[j];
        r->perm[j] = t;
    }
    r->perm_pos = 0;
}

/* Batch buffers: allocated once (block layout) or per micro-batch
 * (per-tensor layout, like a data loader handing out fresh tensors). */
static void batch_acquire(train_run_t *r)
{
    if (r->x)
        return;
    size_t B = (size_t)r->args->micro_batch;
    r->x = train_mem_alloc(r->mem, TRAIN_CAT_DATA, B * 784 * sizeof(float));
    r->y = train_mem_alloc(r->mem, TRAIN_CAT_DATA, B);
    if (r->args->stream)
        r->stage = train_mem_alloc(r->mem, TRAIN_CAT_DATA, B * 784);
    if (!r->x || !r->y || (r->args->stream && !r->stage))
        die("out of memory for a batch of %zu", B);
}

static void batch_release(train_run_t *r, int force)
{
    if (r->args->layout == TRAIN_LAYOUT_BLOCK && !force)
        return;
    train_mem_free(r->mem, r->x);
    train_mem_free(r->mem, r->y);
    train_mem_free(r->mem, r->stage);
    r->x = NULL;
    r->y = NULL;
    r->stage = NULL;
}

static void stream_batch(train_run_t *r, train_stream_t *s, int B)
{
    for (int i = 0; i < B; i++)
        if (train_stream_next(s, r->stage + (size_t)i * 784, r->y + i, r->err) < 0)
            die("%s", r->err);
    train_normalize(r->x, r->stage, (size_t)B * 784);
}

static void train_batch(train_run_t *r, int B)
{
    batch_acquire(r);
    if (r->args->stream) {
        stream_batch(r, &r->train_st, B);
        return;
    }
    for (int i = 0; i < B; i++) {
        uint32_t idx = r->perm[r->perm_pos++];
        train_normalize(r->x + (size_t)i * 784, r->train_ds.images + (size_t)idx * 784, 784);
        r->y[i] = r->train_ds.labels[idx];
    }
}

static void test_batch(train_run_t *r, int start, int B)
{
    batch_acquire(r);
    if (r->args->stream) {
        stream_batch(r, &r->test_st, B);
        return;
    }
    train_normalize(r->x, r->test_ds.images + (size_t)start * 784, (size_t)B * 784);
    memcpy(r->y, r->test_ds.labels + start, (size_t)B);
}

// ----------------------------------------------------------------------------
// evaluation

typedef enum { EVAL_DENSE, EVAL_TEACHER, EVAL_SPARSE, EVAL_INT8 } eval_kind_t;

static void evaluate(train_run_t *r, eval_kind_t kind, void *compressed, float *acc, float *loss)
{
    set_phase(r, MLMEM_PHASE_EVAL);
    int Bmax = r->args->micro_batch, correct = 0;
    double loss_sum = 0.0;
    float *logits = NULL;
    if (kind == EVAL_SPARSE || kind == EVAL_INT8) {
        logits = train_mem_alloc(r->mem, TRAIN_CAT_ACTIVATIONS, (size_t)Bmax * 10 * sizeof(float));
        if (!logits)
            die("out of memory for evaluation logits");
    }
    for (int start = 0; start < r->n_test; start += Bmax) {
        int B = r->n_test - start < Bmax ? r->n_test - start : Bmax;
        test_batch(r, start, B);
        train_model_t *m = kind == EVAL_TEACHER ? &r->teacher : &r->model;
        if (kind == EVAL_DENSE || kind == EVAL_TEACHER) {
            if (train_model_forward(m, r->x, B) < 0)
                die("out of memory in the evaluation forward pass");
            logits = m->logits;
        } else if (kind == EVAL_SPARSE) {
            train_sparse_forward(compressed, r->x, B, logits);
        } else {
            train_qmodel_forward(compressed, r->x, B, logits);
        }
        loss_sum += (double)train_ce_loss(logits, r->y, B, 10) * B;
        for (int i = 0; i < B; i++) {
            const float *z = logits + (size_t)i * 10;
            int best = 0;
            for (int c = 1; c < 10; c++)
                best = z[c] > z[best] ? c : best;
            correct += best == r->y[i];
        }
        if (kind == EVAL_DENSE || kind == EVAL_TEACHER)
            train_model_release_acts(m);
        batch_release(r, 0);
    }
    if (kind == EVAL_SPARSE || kind == EVAL_INT8)
        train_mem_free(r->mem, logits);
    *acc = (float)correct / (float)r->n_test;
    *loss = (float)(loss_sum / r->n_test);
}

// ----------------------------------------------------------------------------
// training

/* One optimizer step: accumulate gradients over batch/micro_batch
 * micro-batches, then update (unless fp16 gradients overflowed). */
static float train_step(train_run_t *r, float lr)
{
    train_args_t *a = r->args;
    int accum = a->batch / a->micro_batch, B = a->micro_batch;
    int fp16 = uses_fp16(a);
    float scale = fp16 ? r->scaler.scale : 1.0f;
    double loss_sum = 0.0;

    train_model_zero_grad(&r->model);
    for (int k = 0; k < accum; k++) {
        set_phase(r, MLMEM_PHASE_DATA);
        train_batch(r, B);
        train_loss_t loss = {.labels = r->y, .scale = scale / (float)a->batch};
        set_phase(r, MLMEM_PHASE_FORWARD);
        if (r->have_teacher) {
            if (train_model_forward(&r->teacher, r->x, B) < 0)
                die("out of memory in the teacher's forward pass");
            loss.teacher_logits = r->teacher.logits;
            loss.alpha = a->distill_alpha;
            loss.temp = a->distill_temp;
        }
        if (train_model_forward(&r->model, r->x, B) < 0)
            die("out of memory in the forward pass (micro-batch %d)", B);
        loss_sum += train_loss_value(r->model.logits, &loss, B, 10);
        set_phase(r, MLMEM_PHASE_BACKWARD);
        if (train_model_backward(&r->model, r->x, B, &loss) < 0)
            die("out of memory in the backward pass");
        if (r->have_teacher)
            train_model_release_acts(&r->teacher);
        batch_release(r, 0);
    }
    set_phase(r, MLMEM_PHASE_OPTIMIZER);
    int apply = 1;
    if (fp16)
        apply = train_scaler_update(&r->scaler, !train_model_grads_finite(&r->model));
    if (apply)
        train_optim_step(&r->opt, &r->model, lr, 1.0f / scale, r->masks);
    return (float)(loss_sum / accum);
}

static void log_step(train_run_t *r, float ms, float loss)
{
    if (r->step < r->cap_steps) {
        r->step_ms[r->step] = ms;
        r->step_loss[r->step] = loss;
    }
}

/* 'epochs' epochs at base learning rate 'lr0' (cosine-decayed to zero over
 * them, or constant). */
static void train_epochs(train_run_t *r, int epochs, float lr0, int finetune)
{
    train_args_t *a = r->args;
    int steps_per_epoch = r->n_train / a->batch;
    if (steps_per_epoch < 1)
        die("%d training samples are fewer than one batch of %d", r->n_train, a->batch);
    long total = (long)steps_per_epoch * epochs, done = 0;
    for (int e = 0; e < epochs; e++) {
        double t_epoch = now_s(), loss_sum = 0.0;
        data_shuffle(r, r->n_epochs_logged);
        for (int s = 0; s < steps_per_epoch; s++, done++) {
            float lr = a->cosine ? lr0 * 0.5f * (1.0f + cosf((float)M_PI * (float)done / (float)total))
                                 : lr0;
            train_mem_set_step(r->mem, r->step);
            if (a->annotate)
                mlmem_step((uint64_t)r->step);
            double t0 = now_s();
            float loss = train_step(r, lr);
            float ms = (float)((now_s() - t0) * 1e3);
            log_step(r, ms, loss);
            loss_sum += loss;
            if (a->log_every && (r->step + 1) % a->log_every == 0)
                printf("step %5ld  loss %.4f  lr %.2e  %.2f ms\n", r->step + 1, loss, lr, ms);
            r->step++;
        }
        float acc, tloss;
        double train_s = now_s() - t_epoch;
        r->train_seconds += train_s;
        evaluate(r, EVAL_DENSE, NULL, &acc, &tloss);
        if (r->n_epochs_logged < MAX_EPOCH_LOG) {
            epoch_log_t *el = &r->epochs[r->n_epochs_logged];
            el->epoch = r->n_epochs_logged + 1;
            el->finetune = finetune;
            el->train_loss = (float)(loss_sum / steps_per_epoch);
            el->test_accuracy = acc;
            el->test_loss = tloss;
            el->seconds = train_s;
        }
        r->n_epochs_logged++;
        printf("%s epoch %d: train loss %.4f  test loss %.4f  test accuracy %.2f%%  (%.1f s)\n",
               finetune ? "fine-tune" : "train", e + 1, loss_sum / steps_per_epoch, tloss,
               100.0f * acc, train_s);
        fflush(stdout);
    }
}

// ----------------------------------------------------------------------------
// setup and teardown

static void model_setup(train_run_t *r)
{
    train_args_t *a = r->args;
    train_model_config_t mc = {
        .n_in = 784, .n_out = 10, .depth = a->depth, .width = a->width, .act = a->act,
        .micro_batch = a->micro_batch, .ckpt_segment = ckpt_segment_len(a),
        .act_dtype = a->act_dtype, .weight_dtype = a->weight_dtype, .grad_dtype = a->grad_dtype,
        .layout = a->layout, .with_grads = 1,
    };
    if (train_model_init(&r->model, &mc, r->mem, a->seed) < 0)
        die("cannot build the model (depth %d, width %d): out of memory", a->depth, a->width);
    r->have_model = 1;
    if (a->load) {
        train_ckpt_info_t info;
        if (train_checkpoint_load(&r->model, a->load, &info, r->err) < 0)
            die("--load: %s", r->err);
    }
    if (train_optim_init(&r->opt, &a->opt, &r->model, r->mem) < 0)
        die("out of memory for the optimizer state");
    train_scaler_init(&r->scaler, a->loss_scale, a->loss_scale_dynamic);
    if (a->teacher) {
        train_ckpt_info_t info;
        if (train_checkpoint_peek(a->teacher, &info, r->err) < 0)
            die("--teacher: %s", r->err);
        if (info.n_in != 784 || info.n_out != 10)
            die("--teacher: %s is not a Fashion-MNIST model (%d inputs, %d outputs)", a->teacher,
                info.n_in, info.n_out);
        train_model_config_t tc = mc;
        tc.depth = info.depth;
        tc.width = info.width;
        tc.act = info.act;
        tc.ckpt_segment = 0;
        tc.act_dtype = tc.weight_dtype = tc.grad_dtype = TRAIN_F32;
        tc.with_grads = 0;
        if (train_model_init(&r->teacher, &tc, r->mem, 0) < 0)
            die("cannot build the teacher model: out of memory");
        if (train_checkpoint_load(&r->teacher, a->teacher, &info, r->err) < 0)
            die("--teacher: %s", r->err);
        r->have_teacher = 1;
    }
}

static void model_teardown(train_run_t *r)
{
    train_prune_free_masks(&r->model, r->masks);
    if (r->have_teacher)
        train_model_free(&r->teacher);
    r->have_teacher = 0;
    train_optim_free(&r->opt);
    if (r->have_model)
        train_model_free(&r->model);
    r->have_model = 0;
}

// ----------------------------------------------------------------------------
// compression: prune + fine-tune + CSR, int8, then the dense model goes

static void compress_and_evaluate(train_run_t *r)
{
    train_args_t *a = r->args;
    train_sparse_model_t sparse;
    train_qmodel_t qm;
    int have_sparse = 0, have_q = 0;
    float loss;

    if (a->prune > 0.0f) {
        if (train_prune_masks(&r->model, a->prune, r->masks, &r->pruned) < 0)
            die("out of memory while pruning");
        evaluate(r, EVAL_DENSE, NULL, &r->acc_after_prune, &loss);
        printf("pruned %zu weights (%.1f%%): test accuracy %.2f%% before fine-tuning\n",
               r->pruned, 100.0f * a->prune, 100.0f * r->acc_after_prune);
        train_epochs(r, a->finetune_epochs, a->opt.lr * 0.1f, 1);
        evaluate(r, EVAL_DENSE, NULL, &r->acc_after_finetune, &r->final_loss);
        r->final_acc = r->acc_after_finetune;
        r->zeros_after_finetune = train_count_zero_weights(&r->model);
    }
    if (a->save) {
        if (train_checkpoint_save(&r->model, (uint64_t)r->step, a->save, r->err) < 0)
            die("--save: %s", r->err);
        printf("saved checkpoint %s\n", a->save);
    }
    if (a->prune <= 0.0f && !a->quantize_int8)
        return;

    r->dense_weight_bytes = train_model_weight_bytes(&r->model);
    if (a->prune > 0.0f) {
        if (train_sparse_from_model(&sparse, &r->model, r->mem, a->micro_batch) < 0)
            die("out of memory for the sparse model");
        have_sparse = 1;
        r->sparse_bytes = sparse.weight_bytes;
    }
    if (a->quantize_int8) {
        if (train_qmodel_from_model(&qm, &r->model, r->mem, a->micro_batch) < 0)
            die("out of memory for the int8 model");
        have_q = 1;
        r->int8_bytes = qm.weight_bytes;
    }
    /* Deployment: only the compressed models stay. */
    train_prune_free_masks(&r->model, r->masks);
    train_optim_free(&r->opt);
    train_model_free(&r->model);
    r->have_model = 0;
    if (have_sparse) {
        evaluate(r, EVAL_SPARSE, &sparse, &r->sparse_acc, &loss);
        printf("sparse (CSR) model: %zu bytes of weights (dense fp32: %zu), test accuracy %.2f%%\n",
               r->sparse_bytes, r->dense_weight_bytes, 100.0f * r->sparse_acc);
    }
    if (have_q) {
        evaluate(r, EVAL_INT8, &qm, &r->int8_acc, &loss);
        printf("int8 model: %zu bytes of weights (dense fp32: %zu), test accuracy %.2f%%\n",
               r->int8_bytes, r->dense_weight_bytes, 100.0f * r->int8_acc);
    }
    memcpy(r->end_bytes, r->mem->cur, sizeof(r->end_bytes));
    r->end_total = r->mem->cur_total;
    if (have_sparse)
        train_sparse_free(&sparse);
    if (have_q)
        train_qmodel_free(&qm);
}

// ----------------------------------------------------------------------------
// memory report (JSON)

static const char *phase_name(int p)
{
    switch (p) {
    case MLMEM_PHASE_DATA: return "data";
    case MLMEM_PHASE_FORWARD: return "forward";
    case MLMEM_PHASE_BACKWARD: return "backward";
    case MLMEM_PHASE_OPTIMIZER: return "optimizer";
    case MLMEM_PHASE_EVAL: return "eval";
    default: return "setup";
    }
}

static json_t *bytes_object(const size_t *bytes)
{
    json_t *o = json_object();
    for (int c = 0; c < TRAIN_CAT_COUNT; c++)
        json_object_set_new(o, train_cat_name((train_cat_t)c), json_integer((json_int_t)bytes[c]));
    return o;
}

static void sift_down(float *v, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            break;
        if (child + 1 < n && v[child] < v[child + 1])
            child++;
        if (!(v[root] < v[child]))
            break;
        float t = v[root];
        v[root] = v[child];
        v[child] = t;
        root = child;
    }
}

/* In-place heapsort: glibc's qsort may malloc outside the accountant. */
static void sort_floats(float *v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(v, i, n);
    for (size_t end = n; end-- > 1;) {
        float t = v[0];
        v[0] = v[end];
        v[end] = t;
        sift_down(v, 0, end);
    }
}

static json_t *config_json(const train_args_t *a, int n_train, int n_test)
{
    json_t *c = json_object();
    json_object_set_new(c, "depth", json_integer(a->depth));
    json_object_set_new(c, "width", json_integer(a->width));
    json_object_set_new(c, "act", json_string(a->act == TRAIN_ACT_GELU ? "gelu" : "relu"));
    json_object_set_new(c, "epochs", json_integer(a->epochs));
    json_object_set_new(c, "batch", json_integer(a->batch));
    json_object_set_new(c, "micro_batch", json_integer(a->micro_batch));
    json_object_set_new(c, "accumulation_steps", json_integer(a->batch / a->micro_batch));
    json_object_set_new(c, "optimizer", json_string(train_opt_name(a->opt.kind)));
    json_object_set_new(c, "lr", json_real(a->opt.lr));
    json_object_set_new(c, "lr_schedule", json_string(a->cosine ? "cosine" : "constant"));
    json_object_set_new(c, "weight_decay", json_real(a->opt.weight_decay));
    json_object_set_new(c, "seed", json_integer((json_int_t)a->seed));
    json_object_set_new(c, "checkpointing",
                        a->ckpt_segment == 0 ? json_string("none")
                        : a->ckpt_segment < 0 ? json_string("sqrt")
                                              : json_integer(a->ckpt_segment));
    json_object_set_new(c, "checkpoint_segment_layers", json_integer(ckpt_segment_len(a)));
    json_object_set_new(c, "act_dtype", json_string(train_dtype_name(a->act_dtype)));
    json_object_set_new(c, "weight_dtype", json_string(train_dtype_name(a->weight_dtype)));
    json_object_set_new(c, "grad_dtype", json_string(train_dtype_name(a->grad_dtype)));
    json_object_set_new(c, "opt_dtype", json_string(train_dtype_name(a->opt.state_dtype)));
    json_object_set_new(c, "layout", json_string(a->layout == TRAIN_LAYOUT_BLOCK ? "block" : "per-tensor"));
    json_object_set_new(c, "data", json_string(a->stream ? "stream" : "resident"));
    json_object_set_new(c, "prefetch", json_integer(a->prefetch));
    json_object_set_new(c, "train_samples", json_integer(n_train));
    json_object_set_new(c, "test_samples", json_integer(n_test));
    json_object_set_new(c, "prune", json_real(a->prune));
    json_object_set_new(c, "finetune_epochs", json_integer(a->finetune_epochs));
    json_object_set_new(c, "quantize", json_string(a->quantize_int8 ? "int8" : "none"));
    json_object_set_new(c, "teacher", a->teacher ? json_string(a->teacher) : json_null());
    json_object_set_new(c, "distill_alpha", json_real(a->distill_alpha));
    json_object_set_new(c, "distill_temp", json_real(a->distill_temp));
    json_object_set_new(c, "annotate", json_boolean(a->annotate));
    json_object_set_new(c, "threads", json_integer(a->threads));
    return c;
}

static void write_report(train_run_t *r, size_t n_params, const int *dims, int n_layers)
{
    train_args_t *a = r->args;
    train_mem_t *mem = r->mem;
    json_t *root = json_object();
    json_object_set_new(root, "format", json_string("mlmem-train-memory-report"));
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "config", config_json(a, r->n_train, r->n_test));

    json_t *model = json_object(), *jd = json_array();
    for (int l = 0; l <= n_layers; l++)
        json_array_append_new(jd, json_integer(dims[l]));
    json_object_set_new(model, "parameters", json_integer((json_int_t)n_params));
    json_object_set_new(model, "dims", jd);
    json_object_set_new(root, "model", model);

    json_t *peak = json_object();
    json_object_set_new(peak, "total_bytes", json_integer((json_int_t)mem->peak_total));
    json_object_set_new(peak, "step", json_integer(mem->peak_step));
    json_object_set_new(peak, "phase", json_string(phase_name(mem->peak_phase)));
    json_object_set_new(peak, "bytes", bytes_object(mem->peak));
    json_object_set_new(root, "peak", peak);
    json_object_set_new(root, "max_per_category", bytes_object(mem->max));

    json_t *end = json_object();
    json_object_set_new(end, "total_bytes", json_integer((json_int_t)r->end_total));
    json_object_set_new(end, "bytes", bytes_object(r->end_bytes));
    json_object_set_new(root, "end", end);

    json_t *allocs = json_object();
    json_object_set_new(allocs, "mallocs", json_integer((json_int_t)mem->n_allocs));
    json_object_set_new(allocs, "frees", json_integer((json_int_t)mem->n_frees));
    json_object_set_new(allocs, "bytes_left_after_teardown", json_integer((json_int_t)r->teardown_left));
    json_object_set_new(allocs, "accounting_error", json_boolean(mem->overflow));
    json_object_set_new(root, "allocations", allocs);

    long n = r->step < r->cap_steps ? r->step : r->cap_steps;
    json_t *steps = json_object(), *times = json_array(), *losses = json_array();
    for (long i = 0; i < n; i++) {
        json_array_append_new(times, json_real(r->step_ms[i]));
        json_array_append_new(losses, json_real(r->step_loss[i]));
    }
    json_object_set_new(steps, "count", json_integer(r->step));
    json_object_set_new(steps, "skipped", json_integer(r->scaler.skipped));
    json_object_set_new(steps, "loss_scale_final",
                        json_real(uses_fp16(a) ? r->scaler.scale : 1.0));
    if (n > 0) {
        /* median over steps after the first (warm-up) */
        long from = n > 1 ? 1 : 0;
        sort_floats(r->step_ms + from, (size_t)(n - from));
        json_object_set_new(steps, "median_ms", json_real(r->step_ms[from + (n - from) / 2]));
    }
    json_object_set_new(steps, "time_ms", times);
    json_object_set_new(steps, "loss", losses);
    json_object_set_new(root, "steps", steps);

    json_t *epochs = json_array();
    for (int i = 0; i < r->n_epochs_logged && i < MAX_EPOCH_LOG; i++) {
        epoch_log_t *e = &r->epochs[i];
        json_t *o = json_object();
        json_object_set_new(o, "epoch", json_integer(e->epoch));
        json_object_set_new(o, "stage", json_string(e->finetune ? "finetune" : "train"));
        json_object_set_new(o, "train_loss", json_real(e->train_loss));
        json_object_set_new(o, "test_loss", json_real(e->test_loss));
        json_object_set_new(o, "test_accuracy", json_real(e->test_accuracy));
        json_object_set_new(o, "seconds", json_real(e->seconds));
        json_array_append_new(epochs, o);
    }
    json_object_set_new(root, "epochs", epochs);

    json_t *fin = json_object();
    json_object_set_new(fin, "test_accuracy", json_real(r->final_acc));
    json_object_set_new(fin, "test_loss", json_real(r->final_loss));
    json_object_set_new(fin, "train_seconds", json_real(r->train_seconds));
    json_object_set_new(root, "final", fin);

    json_t *comp = json_object();
    if (a->prune > 0.0f) {
        json_t *p = json_object();
        json_object_set_new(p, "sparsity", json_real(a->prune));
        json_object_set_new(p, "pruned_weights", json_integer((json_int_t)r->pruned));
        json_object_set_new(p, "zero_weights_after_finetune", json_integer((json_int_t)r->zeros_after_finetune));
        json_object_set_new(p, "accuracy_dense", json_real(r->fp32_acc));
        json_object_set_new(p, "accuracy_after_prune", json_real(r->acc_after_prune));
        json_object_set_new(p, "accuracy_after_finetune", json_real(r->acc_after_finetune));
        json_object_set_new(p, "accuracy_sparse_model", json_real(r->sparse_acc));
        json_object_set_new(p, "dense_weight_bytes", json_integer((json_int_t)r->dense_weight_bytes));
        json_object_set_new(p, "sparse_weight_bytes", json_integer((json_int_t)r->sparse_bytes));
        json_object_set_new(comp, "prune", p);
    }
    if (a->quantize_int8) {
        json_t *q = json_object();
        json_object_set_new(q, "accuracy_fp32", json_real(r->final_acc));
        json_object_set_new(q, "accuracy_int8", json_real(r->int8_acc));
        json_object_set_new(q, "dense_weight_bytes", json_integer((json_int_t)r->dense_weight_bytes));
        json_object_set_new(q, "int8_weight_bytes", json_integer((json_int_t)r->int8_bytes));
        json_object_set_new(comp, "int8", q);
    }
    if (a->teacher) {
        json_t *d = json_object();
        json_object_set_new(d, "teacher", json_string(a->teacher));
        json_object_set_new(d, "teacher_accuracy", json_real(r->teacher_acc));
        json_object_set_new(d, "student_accuracy", json_real(r->final_acc));
        json_object_set_new(comp, "distill", d);
    }
    json_object_set_new(root, "compression", comp);

    if (json_dump_file(root, a->memory_report, JSON_INDENT(1)) < 0)
        die("--memory-report: cannot write %s", a->memory_report);
    json_decref(root);
}

// ----------------------------------------------------------------------------
// main

int main(int argc, char **argv)
{
    train_args_t args;
    args_defaults(&args);
    parse_args(&args, argc, argv);
    if (args.threads > 0)
        openblas_set_num_threads(args.threads);

    if (args.load) {
        train_ckpt_info_t info;
        char err[TRAIN_ERR_LEN];
        if (train_checkpoint_peek(args.load, &info, err) < 0)
            die("--load: %s", err);
        if (info.n_in != 784 || info.n_out != 10)
            die("--load: %s is not a Fashion-MNIST model", args.load);
        args.depth = info.depth;
        args.width = info.width;
        args.act = info.act;
    }

    /* The accountant's table is large; it lives on main's stack frame. */
    train_mem_t mem;
    train_mem_init(&mem, args.annotate);
    train_run_t run;
    memset(&run, 0, sizeof(run));
    run.args = &args;
    run.mem = &mem;
    set_phase(&run, MLMEM_PHASE_NONE);

    data_open(&run);
    int steps_per_epoch = run.n_train / args.batch;
    run.cap_steps = (long)steps_per_epoch * (args.epochs + (args.prune > 0 ? args.finetune_epochs : 0));
    if (run.cap_steps > 0) {
        run.step_ms = train_mem_alloc(&mem, TRAIN_CAT_OTHER, (size_t)run.cap_steps * sizeof(float));
        run.step_loss = train_mem_alloc(&mem, TRAIN_CAT_OTHER, (size_t)run.cap_steps * sizeof(float));
        if (!run.step_ms || !run.step_loss)
            die("out of memory for the step log");
    }
    run.epochs = train_mem_alloc(&mem, TRAIN_CAT_OTHER, MAX_EPOCH_LOG * sizeof(epoch_log_t));
    if (!run.epochs)
        die("out of memory for the epoch log");
    model_setup(&run);
    if (args.layout == TRAIN_LAYOUT_BLOCK)
        batch_acquire(&run);

    size_t n_params = run.model.n_params;
    int dims[TRAIN_MAX_DEPTH + 2], n_layers = run.model.n_layers;
    memcpy(dims, run.model.dims, sizeof(dims));
    printf("mlmem-train: %d x %d %s MLP, %zu parameters, %d train / %d test samples, "
           "batch %d (micro %d), %s, layout %s, data %s\n",
           args.depth, args.width, args.act == TRAIN_ACT_GELU ? "gelu" : "relu", n_params,
           run.n_train, run.n_test, args.batch, args.micro_batch, train_opt_name(args.opt.kind),
           args.layout == TRAIN_LAYOUT_BLOCK ? "block" : "per-tensor",
           args.stream ? "stream" : "resident");
    if (run.have_teacher) {
        float loss;
        evaluate(&run, EVAL_TEACHER, NULL, &run.teacher_acc, &loss);
        printf("teacher %s: test accuracy %.2f%%\n", args.teacher, 100.0f * run.teacher_acc);
    }

    train_epochs(&run, args.epochs, args.opt.lr, 0);
    evaluate(&run, EVAL_DENSE, NULL, &run.final_acc, &run.final_loss);
    run.fp32_acc = run.final_acc;
    printf("final test accuracy %.2f%%  test loss %.4f\n", 100.0f * run.final_acc, run.final_loss);

    memcpy(run.end_bytes, mem.cur, sizeof(run.end_bytes));
    run.end_total = mem.cur_total;
    compress_and_evaluate(&run);

    batch_release(&run, 1);
    model_teardown(&run);
    data_close(&run);
    /* Only the logs are left; the report reads them, then they go too. */
    run.teardown_left = mem.cur_total - mem.cur[TRAIN_CAT_OTHER];
    if (args.memory_report)
        write_report(&run, n_params, dims, n_layers);
    train_mem_free(&mem, run.epochs);
    train_mem_free(&mem, run.step_ms);
    train_mem_free(&mem, run.step_loss);
    if (mem.cur_total != 0 || mem.overflow)
        die("memory accounting: %zu bytes still held after teardown%s", mem.cur_total,
            mem.overflow ? " (accounting table error)" : "");
    if (args.memory_report)
        printf("memory report: %s (peak %zu bytes in %s of step %ld)\n", args.memory_report,
               mem.peak_total, phase_name(mem.peak_phase), mem.peak_step);
    return 0;
}
