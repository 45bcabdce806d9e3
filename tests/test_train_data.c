/*
 * test_train_data: gzipped IDX parsing and validation on small files the test
 * writes itself (good, wrong magic, truncated, mismatched counts, bad label,
 * corrupt gzip, trailing data, missing file), the real Fashion-MNIST files,
 * and the bounded streaming buffer.
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
#include <zlib.h>

#include "trainer/data.h"
#include "trainer/memory.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

typedef struct {
    char dir[64];
    char img[128], lbl[128];
    train_mem_t mem;
    char err[TRAIN_ERR_LEN];
} fixture_t;

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Writes 'len' bytes gzip-compressed to path. */
static void write_gz(const char *path, const uint8_t *buf, size_t len)
{
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(gzwrite(f, buf, (unsigned)len), (int)len);
    assert_int_equal(gzclose(f), Z_OK);
}

/* An IDX image file of 'n_header' images claimed, 'n_data' present (4x3
 * pixels, pixel = image index * 10 + position). */
static void write_images(const char *path, uint32_t magic, int n_header, int n_data, int extra)
{
    uint8_t buf[16 + 64 * 12 + 8];
    be32(buf, magic);
    be32(buf + 4, (uint32_t)n_header);
    be32(buf + 8, 4);
    be32(buf + 12, 3);
    for (int i = 0; i < n_data * 12; i++)
        buf[16 + i] = (uint8_t)((i / 12) * 10 + i % 12);
    write_gz(path, buf, 16 + (size_t)n_data * 12 + (size_t)extra);
}

static void write_labels(const char *path, uint32_t magic, int n_header, int n_data, int bad_at)
{
    uint8_t buf[8 + 64];
    be32(buf, magic);
    be32(buf + 4, (uint32_t)n_header);
    for (int i = 0; i < n_data; i++)
        buf[8 + i] = (uint8_t)(i == bad_at ? 10 : i % 10);
    write_gz(path, buf, 8 + (size_t)n_data);
}

static int setup(void **state)
{
    static fixture_t f;
    memset(&f, 0, sizeof(f));
    snprintf(f.dir, sizeof(f.dir), "/tmp/test_train_data.XXXXXX");
    if (!mkdtemp(f.dir))
        return -1;
    snprintf(f.img, sizeof(f.img), "%s/images.gz", f.dir);
    snprintf(f.lbl, sizeof(f.lbl), "%s/labels.gz", f.dir);
    train_mem_init(&f.mem, 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    unlink(f->img);
    unlink(f->lbl);
    rmdir(f->dir);
    return 0;
}

/* Loading must fail with a message naming 'path' and containing 'what',
 * and leave nothing allocated. */
static void expect_error(fixture_t *f, const char *path, const char *what)
{
    train_dataset_t ds;
    assert_int_equal(train_dataset_load(&ds, &f->mem, f->img, f->lbl, 0, f->err), -1);
    if (!strstr(f->err, path) || !strstr(f->err, what))
        fail_msg("error '%s' should name %s and say '%s'", f->err, path, what);
    assert_int_equal(f->mem.cur_total, 0);
    assert_null(ds.images);
}

static void test_train_data_good_file(void **state)
{
    fixture_t *f = *state;
    write_images(f->img, 0x803, 5, 5, 0);
    write_labels(f->lbl, 0x801, 5, 5, -1);
    train_dataset_t ds;
    assert_int_equal(train_dataset_load(&ds, &f->mem, f->img, f->lbl, 0, f->err), 0);
    assert_int_equal(ds.n, 5);
    assert_int_equal(ds.rows, 4);
    assert_int_equal(ds.cols, 3);
    for (int i = 0; i < 5 * 12; i++)
        assert_int_equal(ds.images[i], (i / 12) * 10 + i % 12);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ds.labels[i], i);
    /* exactly the images and labels are held once the files are closed */
    assert_int_equal(f->mem.cur[TRAIN_CAT_DATA], 5 * 12 + 5);
    train_dataset_free(&ds, &f->mem);
    assert_int_equal(f->mem.cur_total, 0);
    /* a limit keeps the first samples */
    assert_int_equal(train_dataset_load(&ds, &f->mem, f->img, f->lbl, 2, f->err), 0);
    assert_int_equal(ds.n, 2);
    assert_int_equal(f->mem.cur[TRAIN_CAT_DATA], 2 * 12 + 2);
    train_dataset_free(&ds, &f->mem);
}

static void test_train_data_wrong_magic(void **state)
{
    fixture_t *f = *state;
    write_images(f->img, 0x801, 5, 5, 0);       /* a label magic on images */
    write_labels(f->lbl, 0x801, 5, 5, -1);
    expect_error(f, f->img, "wrong IDX magic");
    write_images(f->img, 0x803, 5, 5, 0);
    write_labels(f->lbl, 0x803, 5, 5, -1);
    expect_error(f, f->lbl, "wrong IDX magic");
}

static void test_train_data_truncated(void **state)
{
    fixture_t *f = *state;
    write_images(f->img, 0x803, 5, 3, 0);
    write_labels(f->lbl, 0x801, 5, 5, -1);
    expect_error(f, f->img, "truncated");
    write_images(f->img, 0x803, 5, 5, 0);
    write_labels(f->lbl, 0x801, 5, 4, -1);
    expect_error(f, f->lbl, "truncated");
    /* a header cut short */
    uint8_t hdr[6] = {0, 0, 8, 3, 0, 0};
    write_gz(f->img, hdr, sizeof(hdr));
    expect_error(f, f->img, "truncated IDX header");
}

static void test_train_data_truncated_gzip(void **state)
{
    fixture_t *f = *state;
    write_images(f->img, 0x803, 5, 5, 0);
    write_labels(f->lbl, 0x801, 5, 5, -1);
    FILE *fp = fopen(f->img, "rb");
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    assert_true(n > 30);
    fp = fopen(f->img, "wb");
    fwrite(buf, 1, n - 12, fp);           /* lose the tail of the stream */
    fclose(fp);
    expect_error(f, f->img, "truncated gzip");
}

static void test_train_data_corrupt_gzip(void **state)
{
    fixture_t *f = *state;
    write_images(f->img, 0x803, 5, 5, 0);
    write_labels(f->lbl, 0x801, 5, 5, -1);
    FILE *fp = fopen(f->img, "r+b");
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof(buf), fp);
    buf[n - 6] ^= 0xff;                   /* inside the CRC-32 trailer */
    rewind(fp);
    fwrite(buf, 1, n, fp);
    fclose(fp);
    expect_error(f, f->img, "corrupt gzip");
}

static void test_train_data_mismatched_counts(void **state)
{
    fixture_t *f = *state;
    write_images(f->img, 0x803, 5, 5, 0);
    write_labels(f->lbl, 0x801, 4, 4, -1);
    expect_error(f, f->img, "has 5 images but");
    expect_error(f, f->lbl, "has 4 labels");
}

static void test_train_data_bad_label_trailing_missing(void **state)
{
    fixture_t *f = *state;
    write_images(f->img, 0x803, 5, 5, 0);
    write_labels(f->lbl, 0x801, 5, 5, 3);
    expect_error(f, f->lbl, "outside 0..9");
    write_images(f->img, 0x803, 5, 5, 7);
    write_labels(f->lbl, 0x801, 5, 5, -1);
    expect_error(f, f->img, "trailing data");
    unlink(f->img);
    expect_error(f, f->img, "cannot open");
}

/* A header claiming more than the compressed file can hold is refused
 * before anything of that size is allocated, resident or streamed (found by
 * tests/fuzz/fuzz_idx.c: a 100-byte file had the reader allocate 7 GB). */
static void test_train_data_count_beyond_file(void **state)
{
    fixture_t *f = *state;
    write_images(f->img, 0x803, 9000000, 2, 0);
    write_labels(f->lbl, 0x801, 9000000, 2, -1);
    expect_error(f, f->img, "header says 9000000 items (108000016 bytes), more than");
    assert_int_equal(f->mem.max[TRAIN_CAT_DATA] < 1024 * 1024, 1);
    write_images(f->img, 0x803, 2, 2, 0);
    expect_error(f, f->lbl, "header says 9000000 items (9000008 bytes), more than");
    write_images(f->img, 0x803, 9000000, 2, 0);
    train_stream_t s;
    assert_int_equal(train_stream_open(&s, &f->mem, f->img, f->lbl, 0, 4, 0, 1, f->err), -1);
    assert_non_null(strstr(f->err, "more than"));
    assert_int_equal(f->mem.cur_total, 0);
}

static void test_train_data_stream_bounded(void **state)
{
    fixture_t *f = *state;
    write_images(f->img, 0x803, 7, 7, 0);
    write_labels(f->lbl, 0x801, 7, 7, -1);
    train_stream_t s;
    uint8_t img[12], lbl;
    /* sequential: file order, wrapping around at the end */
    assert_int_equal(train_stream_open(&s, &f->mem, f->img, f->lbl, 0, 3, 0, 0, f->err), 0);
    for (int i = 0; i < 17; i++) {
        assert_int_equal(train_stream_next(&s, img, &lbl, f->err), 0);
        assert_int_equal(lbl, (i % 7) % 10);
        assert_int_equal(img[5], (i % 7) * 10 + 5);
    }
    /* bounded: 3 samples of 12 pixels + 3 labels, plus per-file read
     * buffers and zlib state, independent of the file size */
    size_t held = f->mem.cur[TRAIN_CAT_DATA];
    assert_true(held >= 3 * 12 + 3 && held < 3 * 12 + 3 + 2 * (64 * 1024 + 64 * 1024));
    train_stream_close(&s);
    assert_int_equal(f->mem.cur_total, 0);
    /* shuffled: every draw is an intact record, and all records come out */
    assert_int_equal(train_stream_open(&s, &f->mem, f->img, f->lbl, 0, 4, 1, 9, f->err), 0);
    int seen[7] = {0};
    for (int i = 0; i < 70; i++) {
        assert_int_equal(train_stream_next(&s, img, &lbl, f->err), 0);
        assert_true(lbl < 7);
        assert_int_equal(img[0], lbl * 10);
        seen[lbl]++;
    }
    for (int i = 0; i < 7; i++)
        assert_true(seen[i] > 0);
    train_stream_close(&s);
    assert_int_equal(f->mem.cur_total, 0);
}

static void test_train_data_real_fashion_mnist(void **state)
{
    fixture_t *f = *state;
    if (access(FMNIST "/t10k-images-idx3-ubyte.gz", R_OK) != 0)
        skip();
    const char *sets[2][2] = {
        {FMNIST "/train-images-idx3-ubyte.gz", FMNIST "/train-labels-idx1-ubyte.gz"},
        {FMNIST "/t10k-images-idx3-ubyte.gz", FMNIST "/t10k-labels-idx1-ubyte.gz"}};
    const int sizes[2] = {60000, 10000};
    for (int k = 0; k < 2; k++) {
        train_dataset_t ds;
        assert_int_equal(train_dataset_load(&ds, &f->mem, sets[k][0], sets[k][1], 0, f->err), 0);
        assert_int_equal(ds.n, sizes[k]);
        assert_int_equal(ds.rows, 28);
        assert_int_equal(ds.cols, 28);
        int hist[10] = {0};
        for (int i = 0; i < ds.n; i++)
            hist[ds.labels[i]]++;
        for (int c = 0; c < 10; c++)
            assert_int_equal(hist[c], sizes[k] / 10);     /* balanced classes */
        double mean = 0.0;
        for (size_t i = 0; i < (size_t)ds.n * 784; i++)
            mean += ds.images[i];
        mean /= (double)ds.n * 784 * 255.0;
        assert_true(mean > 0.27 && mean < 0.30);          /* published 0.286 */
        assert_int_equal(f->mem.cur[TRAIN_CAT_DATA], (size_t)ds.n * 785);
        train_dataset_free(&ds, &f->mem);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_train_data_good_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_data_wrong_magic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_data_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_data_truncated_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_data_corrupt_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_data_mismatched_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_data_bad_label_trailing_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_data_stream_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_data_count_beyond_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_data_real_fashion_mnist, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
