/*
 * trainer/data.c - gzip reader, IDX parsing and validation, streaming buffer.
 */
#include "data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GZ_IN_BYTES (64 * 1024)
#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u
#define IDX_MAX_COUNT 10000000
/* Deflate expands at most 1032:1 (zlib's FAQ), which bounds the data a
 * compressed file can hold. */
#define GZ_MAX_RATIO 1032

// ----------------------------------------------------------------------------
// random numbers

uint64_t train_rand_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

float train_rand_uniform(uint64_t *state)
{
    return (float)(train_rand_u64(state) >> 40) * (1.0f / 16777216.0f);
}

// ----------------------------------------------------------------------------
// gzip reader: zlib inflate over read(2), zlib's memory through the accountant

static voidpf gz_zalloc(voidpf opaque, uInt items, uInt size)
{
    train_gz_t *gz = opaque;
    return train_mem_alloc(gz->mem, TRAIN_CAT_DATA, (size_t)items * size);
}

static void gz_zfree(voidpf opaque, voidpf p)
{
    train_gz_t *gz = opaque;
    train_mem_free(gz->mem, p);
}

int train_gz_open(train_gz_t *gz, train_mem_t *mem, const char *path, char *err)
{
    memset(gz, 0, sizeof(*gz));
    gz->fd = -1;
    gz->mem = mem;
    snprintf(gz->path, sizeof(gz->path), "%s", path);
    gz->fd = open(path, O_RDONLY);
    if (gz->fd < 0) {
        snprintf(err, TRAIN_ERR_LEN, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    gz->in_cap = GZ_IN_BYTES;
    gz->in = train_mem_alloc(mem, TRAIN_CAT_DATA, gz->in_cap);
    if (!gz->in) {
        snprintf(err, TRAIN_ERR_LEN, "%s: out of memory for the read buffer", path);
        close(gz->fd);
        gz->fd = -1;
        return -1;
    }
    gz->zs.zalloc = gz_zalloc;
    gz->zs.zfree = gz_zfree;
    gz->zs.opaque = gz;
    /* 32 + MAX_WBITS: accept a gzip or a zlib wrapper. */
    if (inflateInit2(&gz->zs, 32 + MAX_WBITS) != Z_OK) {
        snprintf(err, TRAIN_ERR_LEN, "%s: zlib inflateInit2 failed", path);
        train_mem_free(mem, gz->in);
        close(gz->fd);
        gz->fd = -1;
        return -1;
    }
    gz->open = 1;
    return 0;
}

long train_gz_read(train_gz_t *gz, void *dst, size_t n, char *err)
{
    gz->zs.next_out = dst;
    gz->zs.avail_out = (uInt)n;
    while (gz->zs.avail_out > 0 && !gz->at_end) {
        if (gz->zs.avail_in == 0) {
            ssize_t got = read(gz->fd, gz->in, gz->in_cap);
            if (got < 0) {
                snprintf(err, TRAIN_ERR_LEN, "%s: read error: %s", gz->path, strerror(errno));
                return -1;
            }
            if (got == 0) {
                snprintf(err, TRAIN_ERR_LEN,
                         "%s: truncated gzip stream (file ends before the compressed data does)",
                         gz->path);
                return -1;
            }
            gz->zs.next_in = gz->in;
            gz->zs.avail_in = (uInt)got;
        }
        int rc = inflate(&gz->zs, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            gz->at_end = 1;
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            snprintf(err, TRAIN_ERR_LEN, "%s: corrupt gzip data (zlib: %s)", gz->path,
                     gz->zs.msg ? gz->zs.msg : "error");
            return -1;
        }
    }
    return (long)(n - gz->zs.avail_out);
}

/* Back to the first byte of the file, keeping buffers and zlib state. */
static int gz_rewind(train_gz_t *gz, char *err)
{
    if (lseek(gz->fd, 0, SEEK_SET) < 0 || inflateReset(&gz->zs) != Z_OK) {
        snprintf(err, TRAIN_ERR_LEN, "%s: cannot rewind: %s", gz->path, strerror(errno));
        return -1;
    }
    gz->zs.avail_in = 0;
    gz->at_end = 0;
    return 0;
}

void train_gz_close(train_gz_t *gz)
{
    if (!gz->open)
        return;
    inflateEnd(&gz->zs);
    train_mem_free(gz->mem, gz->in);
    close(gz->fd);
    gz->open = 0;
    gz->fd = -1;
    gz->in = NULL;
}

// ----------------------------------------------------------------------------
// IDX headers

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

int train_idx_header(train_gz_t *gz, int kind, int *count, int *rows, int *cols, char *err)
{
    uint8_t h[16];
    size_t hbytes = kind == 3 ? 16 : 8;
    long got = train_gz_read(gz, h, hbytes, err);
    if (got < 0)
        return -1;
    if ((size_t)got < hbytes) {
        snprintf(err, TRAIN_ERR_LEN, "%s: truncated IDX header (%ld of %zu bytes)",
                 gz->path, got, hbytes);
        return -1;
    }
    uint32_t magic = be32(h);
    uint32_t want = kind == 3 ? IDX_IMAGES_MAGIC : IDX_LABELS_MAGIC;
    if (magic != want) {
        snprintf(err, TRAIN_ERR_LEN,
                 "%s: wrong IDX magic 0x%08x (expected 0x%08x for an IDX %s file)",
                 gz->path, magic, want, kind == 3 ? "image" : "label");
        return -1;
    }
    uint32_t n = be32(h + 4);
    if (n == 0 || n > IDX_MAX_COUNT) {
        snprintf(err, TRAIN_ERR_LEN, "%s: implausible item count %u", gz->path, n);
        return -1;
    }
    *count = (int)n;
    if (kind == 3) {
        uint32_t r = be32(h + 8), c = be32(h + 12);
        if (r == 0 || c == 0 || r > 4096 || c > 4096) {
            snprintf(err, TRAIN_ERR_LEN, "%s: implausible image size %ux%u", gz->path, r, c);
            return -1;
        }
        *rows = (int)r;
        *cols = (int)c;
    }
    /* A header that claims more than the file can hold is refused here,
     * before the caller allocates what it claims. */
    uint64_t item = kind == 3 ? (uint64_t)*rows * (uint64_t)*cols : 1;
    uint64_t need = hbytes + (uint64_t)n * item;
    struct stat st;
    if (fstat(gz->fd, &st) == 0 && S_ISREG(st.st_mode) &&
        need > (uint64_t)st.st_size * GZ_MAX_RATIO) {
        snprintf(err, TRAIN_ERR_LEN,
                 "%s: header says %u items (%llu bytes), more than a %lld-byte gzip file "
                 "can hold: the file is truncated or corrupt",
                 gz->path, n, (unsigned long long)need, (long long)st.st_size);
        return -1;
    }
    return 0;
}

/* Opens both files and validates their headers against each other. */
static int open_pair(train_gz_t *img, train_gz_t *lbl, train_mem_t *mem, const char *img_path,
                     const char *lbl_path, int *n, int *rows, int *cols, char *err)
{
    int ni = 0, nl = 0, dummy;
    if (train_gz_open(img, mem, img_path, err) < 0)
        return -1;
    if (train_idx_header(img, 3, &ni, rows, cols, err) < 0)
        goto fail_img;
    if (train_gz_open(lbl, mem, lbl_path, err) < 0)
        goto fail_img;
    if (train_idx_header(lbl, 1, &nl, &dummy, &dummy, err) < 0)
        goto fail_lbl;
    if (ni != nl) {
        snprintf(err, TRAIN_ERR_LEN, "%s has %d images but %s has %d labels", img_path, ni,
                 lbl_path, nl);
        goto fail_lbl;
    }
    *n = ni;
    return 0;
fail_lbl:
    train_gz_close(lbl);
fail_img:
    train_gz_close(img);
    return -1;
}

static int check_labels(const char *path, const uint8_t *labels, int n, int first, char *err)
{
    for (int i = 0; i < n; i++) {
        if (labels[i] > 9) {
            snprintf(err, TRAIN_ERR_LEN, "%s: label %d of item %d is outside 0..9", path,
                     labels[i], first + i);
            return -1;
        }
    }
    return 0;
}

static int read_exact(train_gz_t *gz, void *dst, size_t bytes, const char *what, int expected,
                      size_t per_item, char *err)
{
    long got = train_gz_read(gz, dst, bytes, err);
    if (got < 0)
        return -1;
    if ((size_t)got < bytes) {
        snprintf(err, TRAIN_ERR_LEN,
                 "%s: truncated: header says %d %s but the data ends after %zu", gz->path,
                 expected, what, (size_t)got / per_item);
        return -1;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// resident dataset

int train_dataset_load(train_dataset_t *ds, train_mem_t *mem, const char *img_path,
                       const char *lbl_path, int limit, char *err)
{
    train_gz_t img, lbl;
    int n, rows, cols;
    memset(ds, 0, sizeof(*ds));
    if (open_pair(&img, &lbl, mem, img_path, lbl_path, &n, &rows, &cols, err) < 0)
        return -1;
    int keep = (limit > 0 && limit < n) ? limit : n;
    size_t dim = (size_t)rows * cols;
    ds->images = train_mem_alloc(mem, TRAIN_CAT_DATA, (size_t)keep * dim);
    ds->labels = train_mem_alloc(mem, TRAIN_CAT_DATA, (size_t)keep);
    if (!ds->images || !ds->labels) {
        snprintf(err, TRAIN_ERR_LEN, "%s: out of memory for %d images", img_path, keep);
        goto fail;
    }
    /* With a limit only 'keep' items are read, but the full counts were
     * validated; without one, the whole file must be there. */
    if (read_exact(&img, ds->images, (size_t)keep * dim, "images", n, dim, err) < 0)
        goto fail;
    if (read_exact(&lbl, ds->labels, (size_t)keep, "labels", n, 1, err) < 0)
        goto fail;
    if (check_labels(lbl_path, ds->labels, keep, 0, err) < 0)
        goto fail;
    if (keep == n) {
        uint8_t extra;
        long more = train_gz_read(&img, &extra, 1, err);
        if (more != 0) {
            if (more > 0)
                snprintf(err, TRAIN_ERR_LEN, "%s: trailing data after %d images", img_path, n);
            goto fail;
        }
    }
    train_gz_close(&img);
    train_gz_close(&lbl);
    ds->n = keep;
    ds->rows = rows;
    ds->cols = cols;
    return 0;
fail:
    train_gz_close(&img);
    train_gz_close(&lbl);
    train_mem_free(mem, ds->images);
    train_mem_free(mem, ds->labels);
    memset(ds, 0, sizeof(*ds));
    return -1;
}

void train_dataset_free(train_dataset_t *ds, train_mem_t *mem)
{
    train_mem_free(mem, ds->images);
    train_mem_free(mem, ds->labels);
    memset(ds, 0, sizeof(*ds));
}

// ----------------------------------------------------------------------------
// streamed dataset with a bounded buffer

/* Reads the next record of the current pass into slot 'slot', starting a new
 * pass (rewinding both files) when the pass is complete. */
static int stream_fill_slot(train_stream_t *s, int slot, char *err)
{
    size_t dim = (size_t)s->rows * s->cols;
    if (s->read_pos == s->n) {
        int dummy, c;
        if (gz_rewind(&s->img, err) < 0 || gz_rewind(&s->lbl, err) < 0)
            return -1;
        if (train_idx_header(&s->img, 3, &c, &dummy, &dummy, err) < 0 ||
            train_idx_header(&s->lbl, 1, &c, &dummy, &dummy, err) < 0)
            return -1;
        s->read_pos = 0;
    }
    if (read_exact(&s->img, s->buf_img + (size_t)slot * dim, dim, "images", s->n_file, dim,
                   err) < 0)
        return -1;
    if (read_exact(&s->lbl, s->buf_lbl + slot, 1, "labels", s->n_file, 1, err) < 0)
        return -1;
    if (check_labels(s->lbl_path, s->buf_lbl + slot, 1, s->read_pos, err) < 0)
        return -1;
    s->read_pos++;
    return 0;
}

int train_stream_open(train_stream_t *s, train_mem_t *mem, const char *img_path,
                      const char *lbl_path, int limit, int capacity, int shuffle,
                      uint64_t seed, char *err)
{
    memset(s, 0, sizeof(*s));
    s->mem = mem;
    snprintf(s->img_path, sizeof(s->img_path), "%s", img_path);
    snprintf(s->lbl_path, sizeof(s->lbl_path), "%s", lbl_path);
    if (open_pair(&s->img, &s->lbl, mem, img_path, lbl_path, &s->n_file, &s->rows, &s->cols,
                  err) < 0)
        return -1;
    s->n = (limit > 0 && limit < s->n_file) ? limit : s->n_file;
    s->capacity = capacity < 1 ? 1 : (capacity > s->n ? s->n : capacity);
    s->shuffle = shuffle;
    s->rng = seed ^ 0x5bd1e995ULL;
    size_t dim = (size_t)s->rows * s->cols;
    s->buf_img = train_mem_alloc(mem, TRAIN_CAT_DATA, (size_t)s->capacity * dim);
    s->buf_lbl = train_mem_alloc(mem, TRAIN_CAT_DATA, (size_t)s->capacity);
    if (!s->buf_img || !s->buf_lbl) {
        snprintf(err, TRAIN_ERR_LEN, "%s: out of memory for a %d-sample stream buffer",
                 img_path, s->capacity);
        train_stream_close(s);
        return -1;
    }
    for (int i = 0; i < s->capacity; i++) {
        if (stream_fill_slot(s, i, err) < 0) {
            train_stream_close(s);
            return -1;
        }
    }
    s->fill = s->capacity;
    return 0;
}

int train_stream_next(train_stream_t *s, uint8_t *img, uint8_t *label, char *err)
{
    size_t dim = (size_t)s->rows * s->cols;
    int slot;
    if (s->shuffle) {
        slot = (int)(train_rand_u64(&s->rng) % (uint64_t)s->capacity);
    } else {
        slot = s->next_slot;
        s->next_slot = (s->next_slot + 1) % s->capacity;
    }
    memcpy(img, s->buf_img + (size_t)slot * dim, dim);
    *label = s->buf_lbl[slot];
    return stream_fill_slot(s, slot, err);
}

void train_stream_close(train_stream_t *s)
{
    train_gz_close(&s->img);
    train_gz_close(&s->lbl);
    train_mem_free(s->mem, s->buf_img);
    train_mem_free(s->mem, s->buf_lbl);
    s->buf_img = NULL;
    s->buf_lbl = NULL;
}

// ----------------------------------------------------------------------------
// normalization

void train_normalize(float *dst, const uint8_t *src, size_t n)
{
    /* Fashion-MNIST training-set pixel mean and standard deviation. */
    const float mean = 0.2860f, inv_std = 1.0f / 0.3530f;
    for (size_t i = 0; i < n; i++)
        dst[i] = ((float)src[i] * (1.0f / 255.0f) - mean) * inv_std;
}
