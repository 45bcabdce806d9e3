/*
 * trainer/checkpoint.c - checkpoint save/load (see checkpoint.h).
 */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static long read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long)got;
}

static uint64_t params_for(int n_in, int n_out, int depth, int width)
{
    uint64_t n = 0, prev = (uint64_t)n_in;
    for (int l = 0; l < depth; l++) {
        n += prev * (uint64_t)width + (uint64_t)width;
        prev = (uint64_t)width;
    }
    return n + prev * (uint64_t)n_out + (uint64_t)n_out;
}

int train_checkpoint_save(const train_model_t *m, uint64_t steps, const char *path, char *err)
{
    uint8_t h[TRAIN_CKPT_HEADER_BYTES];
    memset(h, 0, sizeof(h));
    memcpy(h, TRAIN_CKPT_MAGIC, 8);
    put32(h + 8, TRAIN_CKPT_VERSION);
    put32(h + 12, TRAIN_CKPT_HEADER_BYTES);
    put32(h + 16, (uint32_t)m->cfg.n_in);
    put32(h + 20, (uint32_t)m->cfg.n_out);
    put32(h + 24, (uint32_t)m->cfg.depth);
    put32(h + 28, (uint32_t)m->cfg.width);
    put32(h + 32, (uint32_t)m->cfg.act);
    put64(h + 40, m->n_params);
    put64(h + 48, steps);

    /* Write to a temporary name and rename, so a crash never leaves a
     * half-written checkpoint under the real name. */
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        snprintf(err, TRAIN_ERR_LEN, "%.400s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, h, sizeof(h));
    if (write_all(fd, h, sizeof(h)) < 0)
        goto fail;
    for (int t = 0; t < m->n_tensors; t++) {
        size_t bytes = m->tsize[t] * sizeof(float);
        crc = crc32(crc, (const Bytef *)m->param[t], (uInt)bytes);
        if (write_all(fd, m->param[t], bytes) < 0)
            goto fail;
    }
    uint8_t tail[4];
    put32(tail, (uint32_t)crc);
    if (write_all(fd, tail, 4) < 0 || fsync(fd) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    if (rename(tmp, path) < 0) {
        snprintf(err, TRAIN_ERR_LEN, "%.200s: cannot rename from %.200s: %s", path, tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
fail:
    snprintf(err, TRAIN_ERR_LEN, "%.400s: write failed: %s", tmp, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

/* Validates everything but the payload checksum; leaves fd after the header. */
static int read_header(int fd, const char *path, train_ckpt_info_t *info, uint32_t *crc_out,
                       char *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, TRAIN_ERR_LEN, "%s: cannot stat: %s", path, strerror(errno));
        return -1;
    }
    uint8_t h[TRAIN_CKPT_HEADER_BYTES];
    long got = read_all(fd, h, sizeof(h));
    if (got < (long)sizeof(h)) {
        snprintf(err, TRAIN_ERR_LEN, "%s: truncated: %ld bytes, shorter than the %d-byte header",
                 path, got < 0 ? 0 : got, TRAIN_CKPT_HEADER_BYTES);
        return -1;
    }
    if (memcmp(h, TRAIN_CKPT_MAGIC, 8) != 0) {
        snprintf(err, TRAIN_ERR_LEN, "%s: bad magic: not an mlmem-train checkpoint", path);
        return -1;
    }
    info->version = get32(h + 8);
    if (info->version != TRAIN_CKPT_VERSION) {
        snprintf(err, TRAIN_ERR_LEN, "%s: unsupported checkpoint version %u (this build reads %d)",
                 path, info->version, TRAIN_CKPT_VERSION);
        return -1;
    }
    if (get32(h + 12) != TRAIN_CKPT_HEADER_BYTES) {
        snprintf(err, TRAIN_ERR_LEN, "%s: bad header size %u", path, get32(h + 12));
        return -1;
    }
    uint32_t n_in = get32(h + 16), n_out = get32(h + 20), depth = get32(h + 24);
    uint32_t width = get32(h + 28), act = get32(h + 32);
    if (n_in < 1 || n_in > 1u << 20 || n_out < 1 || n_out > 256 || depth > TRAIN_MAX_DEPTH ||
        (depth > 0 && (width < 1 || width > 1u << 16)) || act > TRAIN_ACT_GELU) {
        snprintf(err, TRAIN_ERR_LEN,
                 "%s: implausible architecture (n_in %u, n_out %u, depth %u, width %u, act %u)",
                 path, n_in, n_out, depth, width, act);
        return -1;
    }
    info->n_in = (int)n_in;
    info->n_out = (int)n_out;
    info->depth = (int)depth;
    info->width = (int)width;
    info->act = (train_act_t)act;
    info->n_params = get64(h + 40);
    info->steps = get64(h + 48);
    if (info->n_params != params_for(info->n_in, info->n_out, info->depth, info->width)) {
        snprintf(err, TRAIN_ERR_LEN, "%s: header says %llu parameters, architecture has %llu",
                 path, (unsigned long long)info->n_params,
                 (unsigned long long)params_for(info->n_in, info->n_out, info->depth, info->width));
        return -1;
    }
    uint64_t want = TRAIN_CKPT_HEADER_BYTES + 4 * info->n_params + 4;
    if ((uint64_t)st.st_size != want) {
        snprintf(err, TRAIN_ERR_LEN, "%s: %s: %llu bytes, expected %llu", path,
                 (uint64_t)st.st_size < want ? "truncated" : "trailing data",
                 (unsigned long long)st.st_size, (unsigned long long)want);
        return -1;
    }
    *crc_out = (uint32_t)crc32(crc32(0L, Z_NULL, 0), h, sizeof(h));
    return 0;
}

static int check_crc(int fd, const char *path, uint32_t crc, char *err)
{
    uint8_t tail[4];
    if (read_all(fd, tail, 4) != 4) {
        snprintf(err, TRAIN_ERR_LEN, "%s: truncated: checksum missing", path);
        return -1;
    }
    if (get32(tail) != crc) {
        snprintf(err, TRAIN_ERR_LEN,
                 "%s: checksum mismatch (stored 0x%08x, computed 0x%08x): the file is corrupted",
                 path, get32(tail), crc);
        return -1;
    }
    return 0;
}

int train_checkpoint_peek(const char *path, train_ckpt_info_t *info, char *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, TRAIN_ERR_LEN, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    uint32_t crc;
    int rc = read_header(fd, path, info, &crc, err);
    uint8_t buf[16384];
    uint64_t left = 4 * info->n_params;
    while (rc == 0 && left > 0) {
        size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);
        if (read_all(fd, buf, n) != (long)n) {
            snprintf(err, TRAIN_ERR_LEN, "%s: read error", path);
            rc = -1;
            break;
        }
        crc = (uint32_t)crc32(crc, buf, (uInt)n);
        left -= n;
    }
    if (rc == 0)
        rc = check_crc(fd, path, crc, err);
    close(fd);
    return rc;
}

int train_checkpoint_load(train_model_t *m, const char *path, train_ckpt_info_t *info,
                          char *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, TRAIN_ERR_LEN, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    uint32_t crc;
    int rc = read_header(fd, path, info, &crc, err);
    if (rc == 0 && (info->n_in != m->cfg.n_in || info->n_out != m->cfg.n_out ||
                    info->depth != m->cfg.depth || info->width != m->cfg.width ||
                    info->act != m->cfg.act)) {
        snprintf(err, TRAIN_ERR_LEN,
                 "%s: architecture mismatch: checkpoint is depth %d width %d act %d, "
                 "model is depth %d width %d act %d",
                 path, info->depth, info->width, info->act, m->cfg.depth, m->cfg.width,
                 m->cfg.act);
        rc = -1;
    }
    for (int t = 0; rc == 0 && t < m->n_tensors; t++) {
        size_t bytes = m->tsize[t] * sizeof(float);
        if (read_all(fd, m->param[t], bytes) != (long)bytes) {
            snprintf(err, TRAIN_ERR_LEN, "%s: read error", path);
            rc = -1;
            break;
        }
        crc = (uint32_t)crc32(crc, (const Bytef *)m->param[t], (uInt)bytes);
    }
    if (rc == 0)
        rc = check_crc(fd, path, crc, err);
    close(fd);
    if (rc == 0)
        train_model_sync_lp(m);
    return rc;
}
