/*
 * trainer/data.h - Fashion-MNIST from gzipped IDX files, resident or streamed.
 *
 * IDX (http://yann.lecun.com/exdb/mnist/): big-endian header, magic 0x00000803
 * for images (count, rows, cols, then count*rows*cols bytes) and 0x00000801
 * for labels (count, then count bytes). Files are read with zlib's inflate
 * (gzip or zlib wrapper) from a file descriptor; every buffer, zlib's own
 * state included, is allocated through the accountant as TRAIN_CAT_DATA.
 *
 * Return values: 0 on success, -1 on error with a message naming the file and
 * what is wrong written to 'err' (callers own the buffer). Structures are
 * left closed (safe to close again) after an error.
 *
 * Resident: train_dataset_load() reads images (uint8) and labels whole.
 * Streamed: train_stream_open() keeps only a bounded buffer of 'capacity'
 * samples; train_stream_next() draws a sample from the buffer (uniformly at
 * random when shuffling, in file order otherwise) and refills its slot from
 * the files, rewinding them at the end, so the stream never ends.
 */
#ifndef TRAIN_DATA_H
#define TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "memory.h"

#define TRAIN_ERR_LEN 512

typedef struct {
    int fd;
    int open;
    z_stream zs;
    uint8_t *in;                 /* compressed input buffer */
    size_t in_cap;
    int at_end;                  /* inflate saw the end of the stream */
    train_mem_t *mem;
    char path[256];
} train_gz_t;

typedef struct {
    int n, rows, cols;
    uint8_t *images;             /* n * rows * cols */
    uint8_t *labels;             /* n */
} train_dataset_t;

typedef struct {
    train_gz_t img, lbl;
    char img_path[256], lbl_path[256];
    int n_file;                  /* samples in the files */
    int n;                       /* samples per pass (<= n_file with a limit) */
    int read_pos;                /* next record of the file pass */
    int rows, cols;
    int capacity, fill;
    int shuffle;
    int next_slot;               /* sequential mode: oldest slot */
    uint64_t rng;
    uint8_t *buf_img;            /* capacity * rows * cols */
    uint8_t *buf_lbl;            /* capacity */
    train_mem_t *mem;
} train_stream_t;

/* gzip reader over a file descriptor. read returns bytes read (short only at
 * the end of the stream) or -1 on a read or inflate error. */
int train_gz_open(train_gz_t *gz, train_mem_t *mem, const char *path, char *err);
long train_gz_read(train_gz_t *gz, void *dst, size_t n, char *err);
void train_gz_close(train_gz_t *gz);

/* Reads and validates an IDX header: 'kind' 3 for images, 1 for labels.
 * Fills count (and rows/cols for images). */
int train_idx_header(train_gz_t *gz, int kind, int *count, int *rows, int *cols, char *err);

/* Loads an image file and a label file (at most 'limit' samples when
 * limit > 0). Checks magics, sizes, truncation, matching counts, labels in
 * 0..9. */
int train_dataset_load(train_dataset_t *ds, train_mem_t *mem, const char *img_path,
                       const char *lbl_path, int limit, char *err);
void train_dataset_free(train_dataset_t *ds, train_mem_t *mem);

int train_stream_open(train_stream_t *s, train_mem_t *mem, const char *img_path,
                      const char *lbl_path, int limit, int capacity, int shuffle,
                      uint64_t seed, char *err);
/* Copies one sample's pixels (rows*cols bytes) and label. */
int train_stream_next(train_stream_t *s, uint8_t *img, uint8_t *label, char *err);
void train_stream_close(train_stream_t *s);

/* Converts n images of 'dim' uint8 pixels to floats in the trainer's input
 * normalization (x/255 - mean)/std. */
void train_normalize(float *dst, const uint8_t *src, size_t n);

/* splitmix64-based generator shared by the trainer. */
uint64_t train_rand_u64(uint64_t *state);
float train_rand_uniform(uint64_t *state);   /* [0, 1) */

#endif /* TRAIN_DATA_H */
