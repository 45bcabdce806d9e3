/*
 * test_train_cli: the real mlmem-train binary on small subsets: the memory
 * report is consistent and exact for both layouts, checkpoints round-trip
 * through --save/--load and feed --teacher, bad input fails with a message
 * naming the file, and --help documents every flag.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FMNIST "/usr/share/datasets/fashion-mnist"

typedef struct {
    char bin[512];
    char dir[64];
    char out[8192];
} fixture_t;

static int setup(void **state)
{
    static fixture_t f;
    const char *build = getenv("MLMEM_BUILD_DIR");
    snprintf(f.bin, sizeof(f.bin), "%s/bin/mlmem-train", build ? build : ".");
    snprintf(f.dir, sizeof(f.dir), "/tmp/test_train_cli.XXXXXX");
    if (!mkdtemp(f.dir))
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs the trainer with 'args' and extra environment 'env'; returns its exit
 * status, output in f->out. */
static int run_env(fixture_t *f, const char *env, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s OPENBLAS_NUM_THREADS=2 %s %s 2>&1", env, f->bin, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(f->out, 1, sizeof(f->out) - 1, p);
    f->out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run(fixture_t *f, const char *args)
{
    return run_env(f, "", args);
}

static json_t *load_report(const char *path)
{
    json_error_t e;
    json_t *r = json_load_file(path, 0, &e);
    if (!r)
        fail_msg("%s: %s", path, e.text);
    return r;
}

static json_int_t cat(json_t *section, const char *name)
{
    return json_integer_value(json_object_get(json_object_get(section, "bytes"), name));
}

#define SMALL "--limit-train 512 --limit-test 256 --epochs 1 --batch 64 --width 48 --log-every 0"

static void check_layout(fixture_t *f, const char *layout)
{
    if (access(FMNIST "/train-images-idx3-ubyte.gz", R_OK) != 0)
        skip();
    char args[1024], rep[128];
    snprintf(rep, sizeof(rep), "%s/%s.json", f->dir, layout);
    snprintf(args, sizeof(args), SMALL " --layout %s --memory-report %s", layout, rep);
    if (run(f, args) != 0)
        fail_msg("mlmem-train failed: %s", f->out);
    json_t *r = load_report(rep);
    json_t *peak = json_object_get(r, "peak");
    const char *cats[] = {"weights", "gradients", "optimizer_state", "activations",
                          "data", "temporaries", "other"};
    json_int_t sum = 0;
    for (int c = 0; c < 7; c++)
        sum += cat(peak, cats[c]);
    assert_int_equal(sum, json_integer_value(json_object_get(peak, "total_bytes")));
    /* 784-48-48-10: parameters, gradients and AdamW's two buffers */
    json_int_t n = 784 * 48 + 48 + 48 * 48 + 48 + 48 * 10 + 10;
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "model"), "parameters")), n);
    if (!strcmp(layout, "per-tensor")) {
        assert_int_equal(cat(peak, "weights"), 4 * n);
        assert_int_equal(cat(peak, "gradients"), 4 * n);
        assert_int_equal(cat(peak, "optimizer_state"), 8 * n);
        /* the peak is inside a step, with the activations of one batch:
         * z and x of 2 hidden layers plus logits and probs, fp32 */
        assert_string_not_equal(json_string_value(json_object_get(peak, "phase")), "setup");
        assert_int_equal(cat(peak, "activations"), 4 * 64 * 48 * 4 + 2 * 64 * 10 * 4);
    } else {
        assert_true(cat(peak, "weights") >= 4 * n && cat(peak, "weights") < 4 * n + 6 * 64);
        assert_int_equal(cat(peak, "optimizer_state"), 8 * n);
    }
    /* resident data: 512 + 256 images and labels, the shuffle order, one batch */
    assert_int_equal(cat(peak, "data"), 768 * 785 + 512 * 4 + 64 * 784 * 4 + 64);
    json_t *steps = json_object_get(r, "steps");
    assert_int_equal(json_integer_value(json_object_get(steps, "count")), 8);
    assert_int_equal(json_array_size(json_object_get(steps, "loss")), 8);
    json_t *alloc = json_object_get(r, "allocations");
    assert_int_equal(json_integer_value(json_object_get(alloc, "bytes_left_after_teardown")), 0);
    assert_false(json_is_true(json_object_get(alloc, "accounting_error")));
    double acc = json_real_value(json_object_get(json_object_get(r, "final"), "test_accuracy"));
    assert_true(acc > 0.3 && acc <= 1.0);
    json_decref(r);
}

static void test_train_cli_report_block(void **state)
{
    check_layout(*state, "block");
}

static void test_train_cli_report_per_tensor(void **state)
{
    check_layout(*state, "per-tensor");
}

static void test_train_cli_save_load_teacher(void **state)
{
    fixture_t *f = *state;
    if (access(FMNIST "/train-images-idx3-ubyte.gz", R_OK) != 0)
        skip();
    char args[1024];
    snprintf(args, sizeof(args), SMALL " --save %s/t.ckpt", f->dir);
    assert_int_equal(run(f, args), 0);
    const char *line = strstr(f->out, "final test accuracy");
    assert_non_null(line);
    char trained[64];
    sscanf(line, "final test accuracy %63s", trained);
    /* evaluation only from the checkpoint gives the same accuracy */
    snprintf(args, sizeof(args), SMALL " --epochs 0 --width 7 --load %s/t.ckpt", f->dir);
    assert_int_equal(run(f, args), 0);
    line = strstr(f->out, "final test accuracy");
    assert_non_null(line);
    char loaded[64];
    sscanf(line, "final test accuracy %63s", loaded);
    assert_string_equal(trained, loaded);
    /* a half-width student distilled from it */
    snprintf(args, sizeof(args), SMALL " --width 24 --teacher %s/t.ckpt", f->dir);
    if (run(f, args) != 0)
        fail_msg("distillation failed: %s", f->out);
    assert_non_null(strstr(f->out, "teacher"));
    /* a corrupted checkpoint is refused, naming the file */
    snprintf(args, sizeof(args), "printf 'XXXX' | dd of=%s/t.ckpt bs=1 seek=100 conv=notrunc 2>/dev/null",
             f->dir);
    assert_int_equal(system(args), 0);
    snprintf(args, sizeof(args), SMALL " --load %s/t.ckpt", f->dir);
    assert_int_equal(run(f, args), 1);
    assert_non_null(strstr(f->out, "checksum mismatch"));
    assert_non_null(strstr(f->out, "t.ckpt"));
}

static void test_train_cli_bad_data_names_file(void **state)
{
    fixture_t *f = *state;
    char cmd[1024];
    /* a train image file that is not gzip at all, real labels */
    snprintf(cmd, sizeof(cmd),
             "printf 'not gzip' > %s/train-images-idx3-ubyte.gz && "
             "ln -sf " FMNIST "/train-labels-idx1-ubyte.gz %s/ 2>/dev/null; true",
             f->dir, f->dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "--data-dir %s --epochs 1", f->dir);
    assert_int_equal(run(f, cmd), 1);
    assert_non_null(strstr(f->out, "train-images-idx3-ubyte.gz"));
    assert_non_null(strstr(f->out, "mlmem-train: error"));
}

/* The same seed gives the same run, loss for loss; another seed does not. */
static void test_train_cli_deterministic_seed(void **state)
{
    fixture_t *f = *state;
    if (access(FMNIST "/train-images-idx3-ubyte.gz", R_OK) != 0)
        skip();
    json_t *r[3];
    const int seeds[3] = {5, 5, 6};
    for (int k = 0; k < 3; k++) {
        char args[1024], rep[128];
        snprintf(rep, sizeof(rep), "%s/seed%d.json", f->dir, k);
        snprintf(args, sizeof(args), SMALL " --layout per-tensor --seed %d --memory-report %s",
                 seeds[k], rep);
        assert_int_equal(run(f, args), 0);
        r[k] = load_report(rep);
    }
    json_t *l0 = json_object_get(json_object_get(r[0], "steps"), "loss");
    json_t *l1 = json_object_get(json_object_get(r[1], "steps"), "loss");
    json_t *l2 = json_object_get(json_object_get(r[2], "steps"), "loss");
    assert_int_equal(json_array_size(l0), 8);
    assert_true(json_equal(l0, l1));
    assert_false(json_equal(l0, l2));
    assert_true(json_equal(json_object_get(r[0], "peak"), json_object_get(r[1], "peak")));
    for (int k = 0; k < 3; k++)
        json_decref(r[k]);
}

/* Under a stand-in shim: --annotate marks every step and phase and announces
 * every allocation; without the flag, not one annotation call. */
static void test_train_cli_annotate_only_with_flag(void **state)
{
    fixture_t *f = *state;
    if (access(FMNIST "/train-images-idx3-ubyte.gz", R_OK) != 0)
        skip();
    const char *build = getenv("MLMEM_BUILD_DIR");
    char args[1024], env[600];
    /* verify_asan_link_order=0: a sanitized trainer accepts the preload */
    snprintf(env, sizeof(env),
             "ASAN_OPTIONS=verify_asan_link_order=0 LD_PRELOAD=%s/lib/test_train_fakeshim.so",
             build ? build : ".");
    snprintf(args, sizeof(args), SMALL " --layout per-tensor");
    assert_int_equal(run_env(f, env, args), 0);
    if (!strstr(f->out, "FAKESHIM steps=0 data=0 fwd=0 bwd=0 opt=0 eval=0 regions=0 ends=0 tags=0"))
        fail_msg("annotation calls without --annotate: %s", f->out);
    snprintf(args, sizeof(args), SMALL " --layout per-tensor --annotate");
    assert_int_equal(run_env(f, env, args), 0);
    long steps, data, fwd, bwd, opt, eval, regions, ends, tags;
    const char *line = strstr(f->out, "FAKESHIM");
    assert_non_null(line);
    assert_int_equal(sscanf(line, "FAKESHIM steps=%ld data=%ld fwd=%ld bwd=%ld opt=%ld eval=%ld "
                            "regions=%ld ends=%ld tags=%ld", &steps, &data, &fwd, &bwd, &opt,
                            &eval, &regions, &ends, &tags), 9);
    assert_int_equal(steps, 8);          /* 512 samples / batch 64 */
    assert_int_equal(data, 8);
    assert_int_equal(fwd, 8);
    assert_int_equal(bwd, 8);
    assert_int_equal(opt, 8);
    assert_true(eval >= 2);              /* after the epoch, and the final one */
    assert_true(regions > 8 * 4);        /* per-tensor: allocations every step */
    assert_int_equal(regions, ends);
    assert_int_equal(regions, tags);
}

static void test_train_cli_help_documents_flags(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(run(f, "--help"), 0);
    const char *flags[] = {"--depth", "--width", "--act", "--epochs", "--batch", "--micro-batch",
                           "--optimizer", "--lr", "--momentum", "--weight-decay", "--lr-schedule",
                           "--seed", "--threads", "--checkpointing", "--precision", "--act-dtype",
                           "--weight-dtype", "--grad-dtype", "--opt-dtype", "--loss-scale",
                           "--layout", "--data", "--prefetch", "--data-dir", "--limit-train",
                           "--limit-test", "--prune", "--finetune-epochs", "--quantize",
                           "--teacher", "--distill-alpha", "--distill-temp", "--save", "--load",
                           "--memory-report", "--annotate", "--log-every"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (!strstr(f->out, flags[i]))
            fail_msg("--help does not mention %s", flags[i]);
    assert_int_equal(run(f, "--no-such-flag"), 1);
    assert_non_null(strstr(f->out, "unknown option"));
    assert_int_equal(run(f, "--batch 100 --micro-batch 32"), 1);
    assert_non_null(strstr(f->out, "multiple"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_train_cli_report_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_cli_report_per_tensor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_cli_save_load_teacher, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_cli_bad_data_names_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_cli_deterministic_seed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_cli_annotate_only_with_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_cli_help_documents_flags, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
