/*
 * fuzz_idx.c - libFuzzer harness: arbitrary bytes as the trainer's pair of
 * IDX files (trainer/data.h), loaded whole or streamed. Beyond not crashing:
 * a failure names one of the two files, and every block the reader took
 * from the accountant is back when the dataset or stream is closed.
 *
 * Input layout: byte 0 picks the mode (bit 0: files passed raw, not
 * compressed here, to fuzz the zlib layer too; bit 1: streamed instead of
 * resident; bits 2-4: a sample limit, 0 for none); bytes 1-2 the length of
 * the label file (little-endian); then the label file, then the image file.
 * Mutations of compressed bytes rarely get past inflate, so without bit 0
 * each file is zlib-compressed before the read. Each file goes to a memfd,
 * read through /proc/self/fd/N.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"

/* Too big for the stack: 400 KB of slots, and a sample of the largest
 * image size the reader accepts. */
static train_mem_t fuzz_mem;
static uint8_t fuzz_pixels[4096 * 4096];

/* A memfd holding 'len' bytes of 'p', compressed unless 'raw'; its path in
 * 'path'. Returns the descriptor, or -1. */
static int fuzz_file(const uint8_t *p, size_t len, int raw, char *path, size_t pathlen)
{
    int fd = memfd_create("idx", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    const void *bytes = p;
    uLongf n = len;
    Bytef *packed = NULL;
    if (!raw) {
        n = compressBound(len);
        packed = malloc(n);
        if (!packed || compress2(packed, &n, p, len, 1) != Z_OK) {
            free(packed);
            close(fd);
            return -1;
        }
        bytes = packed;
    }
    ssize_t w = write(fd, bytes, n);
    free(packed);
    if (w != (ssize_t)n) {
        close(fd);
        return -1;
    }
    snprintf(path, pathlen, "/proc/self/fd/%d", fd);
    return fd;
}

static int fuzz_names(const char *err, const char *path)
{
    size_t k = strlen(path);
    return strncmp(err, path, k) == 0 && (err[k] == ':' || err[k] == ' ');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int raw = data[0] & 1, streamed = data[0] & 2, limit = (data[0] >> 2) & 7;
    size_t nl = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (nl > size)
        nl = size;
    char img[64], lbl[64];
    int fl = fuzz_file(data, nl, raw, lbl, sizeof lbl);
    int fi = fl < 0 ? -1 : fuzz_file(data + nl, size - nl, raw, img, sizeof img);
    if (fi < 0) {
        if (fl >= 0)
            close(fl);
        return 0;
    }

    train_mem_init(&fuzz_mem, 0);
    char err[TRAIN_ERR_LEN] = "";
    int rc;
    if (streamed) {
        train_stream_t s;
        rc = train_stream_open(&s, &fuzz_mem, img, lbl, limit, 4, 1, 7, err);
        if (rc == 0) {
            /* Past the end of a small file: the stream rewinds. */
            uint8_t label;
            size_t steps = (size_t)s.n_file * 2 + 2;
            for (size_t i = 0; rc == 0 && i < steps && i < 64; i++) {
                if (train_stream_next(&s, fuzz_pixels, &label, err) != 0)
                    rc = -1;
                else if (label > 9)
                    abort();
            }
            train_stream_close(&s);
        }
    } else {
        train_dataset_t ds;
        rc = train_dataset_load(&ds, &fuzz_mem, img, lbl, limit, err);
        if (rc == 0) {
            for (int i = 0; i < ds.n; i++)
                if (ds.labels[i] > 9)
                    abort();
            train_dataset_free(&ds, &fuzz_mem);
        }
    }
    if (rc != 0 && !fuzz_names(err, img) && !fuzz_names(err, lbl)) {
        fprintf(stderr, "fuzz_idx: error names neither file: '%s'\n", err);
        abort();
    }
    if (fuzz_mem.cur_total || fuzz_mem.live_blocks || fuzz_mem.overflow) {
        fprintf(stderr, "fuzz_idx: %zu bytes in %zu blocks still live\n", fuzz_mem.cur_total,
                fuzz_mem.live_blocks);
        abort();
    }
    close(fi);
    close(fl);
    return 0;
}
