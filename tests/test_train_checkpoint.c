/*
 * test_train_checkpoint: save/load round trip, and rejection of corrupted
 * checkpoints with a message that names the file and the problem.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer/checkpoint.h"
#include "trainer/data.h"
#include "trainer/memory.h"
#include "trainer/model.h"

typedef struct {
    char path[64];
    train_mem_t mem;
    train_model_t m;
    char err[TRAIN_ERR_LEN];
} fixture_t;

static train_model_config_t config(int depth, int width)
{
    train_model_config_t c = {.n_in = 784, .n_out = 10, .depth = depth, .width = width,
                              .act = TRAIN_ACT_RELU, .micro_batch = 4,
                              .act_dtype = TRAIN_F32, .weight_dtype = TRAIN_F32,
                              .grad_dtype = TRAIN_F32, .layout = TRAIN_LAYOUT_BLOCK,
                              .with_grads = 0};
    return c;
}

static int setup(void **state)
{
    static fixture_t f;
    memset(&f, 0, sizeof(f));
    snprintf(f.path, sizeof(f.path), "/tmp/test_train_ckpt.%d", (int)getpid());
    train_mem_init(&f.mem, 0);
    train_model_config_t c = config(2, 32);
    if (train_model_init(&f.m, &c, &f.mem, 123) < 0)
        return -1;
    if (train_checkpoint_save(&f.m, 77, f.path, f.err) < 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    train_model_free(&f->m);
    unlink(f->path);
    return 0;
}

static long file_size(const char *path)
{
    FILE *fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fclose(fp);
    return n;
}

/* Overwrites one byte of the file, or truncates it to 'len' when len >= 0. */
static void damage(const char *path, long offset, uint8_t xor_mask, long len)
{
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    if (len >= 0) {
        fclose(fp);
        assert_int_equal(truncate(path, len), 0);
        return;
    }
    fseek(fp, offset, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, offset, SEEK_SET);
    fputc(c ^ xor_mask, fp);
    fclose(fp);
}

static void expect_reject(fixture_t *f, const char *what)
{
    train_ckpt_info_t info;
    assert_int_equal(train_checkpoint_peek(f->path, &info, f->err), -1);
    if (!strstr(f->err, f->path) || !strstr(f->err, what))
        fail_msg("error '%s' should name %s and say '%s'", f->err, f->path, what);
    train_model_t other;
    train_model_config_t c = config(2, 32);
    assert_int_equal(train_model_init(&other, &c, &f->mem, 5), 0);
    assert_int_equal(train_checkpoint_load(&other, f->path, &info, f->err), -1);
    assert_non_null(strstr(f->err, what));
    train_model_free(&other);
}

static void test_train_checkpoint_round_trip(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(file_size(f->path), 64 + 4 * (long)f->m.n_params + 4);
    train_ckpt_info_t info;
    assert_int_equal(train_checkpoint_peek(f->path, &info, f->err), 0);
    assert_int_equal(info.version, TRAIN_CKPT_VERSION);
    assert_int_equal(info.depth, 2);
    assert_int_equal(info.width, 32);
    assert_int_equal(info.steps, 77);
    assert_int_equal(info.n_params, f->m.n_params);
    train_model_t other;
    train_model_config_t c = config(2, 32);
    assert_int_equal(train_model_init(&other, &c, &f->mem, 999), 0);   /* other weights */
    assert_memory_not_equal(other.param[0], f->m.param[0], f->m.tsize[0] * 4);
    assert_int_equal(train_checkpoint_load(&other, f->path, &info, f->err), 0);
    for (int t = 0; t < f->m.n_tensors; t++)
        assert_memory_equal(other.param[t], f->m.param[t], f->m.tsize[t] * sizeof(float));
    train_model_free(&other);
}

static void test_train_checkpoint_rejects_bad_magic(void **state)
{
    fixture_t *f = *state;
    damage(f->path, 0, 0x20, -1);
    expect_reject(f, "bad magic");
}

static void test_train_checkpoint_rejects_other_version(void **state)
{
    fixture_t *f = *state;
    damage(f->path, 8, 0x02, -1);
    expect_reject(f, "unsupported checkpoint version 3");
}

static void test_train_checkpoint_rejects_truncated(void **state)
{
    fixture_t *f = *state;
    damage(f->path, 0, 0, file_size(f->path) - 100);
    expect_reject(f, "truncated");
    damage(f->path, 0, 0, 20);
    expect_reject(f, "truncated");
}

static void test_train_checkpoint_rejects_flipped_weight(void **state)
{
    fixture_t *f = *state;
    damage(f->path, 64 + 4 * 1000 + 2, 0x01, -1);    /* one bit of one weight */
    expect_reject(f, "checksum mismatch");
}

static void test_train_checkpoint_rejects_inconsistent_header(void **state)
{
    fixture_t *f = *state;
    damage(f->path, 40, 0x01, -1);                   /* n_params off by one */
    expect_reject(f, "parameters");
}

static void test_train_checkpoint_rejects_architecture_mismatch(void **state)
{
    fixture_t *f = *state;
    train_model_t other;
    train_model_config_t c = config(2, 48);
    assert_int_equal(train_model_init(&other, &c, &f->mem, 1), 0);
    train_ckpt_info_t info;
    assert_int_equal(train_checkpoint_load(&other, f->path, &info, f->err), -1);
    assert_non_null(strstr(f->err, "architecture mismatch"));
    train_model_free(&other);
}

static void test_train_checkpoint_missing_file(void **state)
{
    fixture_t *f = *state;
    unlink(f->path);
    expect_reject(f, "cannot open");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_train_checkpoint_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_checkpoint_rejects_bad_magic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_checkpoint_rejects_other_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_checkpoint_rejects_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_checkpoint_rejects_flipped_weight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_checkpoint_rejects_inconsistent_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_checkpoint_rejects_architecture_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_checkpoint_missing_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
