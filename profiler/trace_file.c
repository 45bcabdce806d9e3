/*
 * trace_file.c - writing and replaying trace files; see trace_file.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include <mlmem/trace_format.h>

#include "trace_file.h"

#define MAX_TRACE_RECORD ((64u << 20) + 64)
#define FLUSH_INTERVAL_NS 250000000ull

struct prof_trace_writer {
    int fd;
    ZSTD_CCtx *cctx;
    uint8_t *out;
    size_t out_cap;
    uint64_t records;
    uint64_t stream_bytes;
    uint64_t last_flush_ns;
    int dirty;               /* records written since the last flush      */
    int failed;
    char error[320];
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int wfail(prof_trace_writer_t *w, const char *fmt, ...)
{
    if (!w->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->error, sizeof w->error, fmt, ap);
        va_end(ap);
        w->failed = 1;
    }
    return -1;
}

static int write_all(prof_trace_writer_t *w, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return wfail(w, "cannot write the trace: %s", k < 0 ? strerror(errno) : "short write");
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Compresses 'len' bytes with the given zstd directive, in the frame that
 * follows the header's, whose context is made on first use: its level-3
 * tables took 3 ms to set up, which a run paid before its command started
 * (docs/benchmarks.md, ninth round). */
static int compress(prof_trace_writer_t *w, const void *data, size_t len, ZSTD_EndDirective mode)
{
    if (w->failed)
        return -1;
    if (!w->cctx) {
        if (len == 0 && mode != ZSTD_e_end)
            return 0; /* nothing written yet: nothing to flush */
        w->cctx = ZSTD_createCCtx();
        if (!w->cctx)
            return wfail(w, "out of memory");
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, 3);
        /* A content checksum: a flipped byte can otherwise decompress to
         * other well-formed records and give wrong figures without an error. */
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    }
    ZSTD_inBuffer in = {data, len, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->out, w->out_cap, 0};
        size_t left = ZSTD_compressStream2(w->cctx, &out, &in, mode);
        if (ZSTD_isError(left))
            return wfail(w, "zstd: %s", ZSTD_getErrorName(left));
        if (out.pos && write_all(w, w->out, out.pos) != 0)
            return -1;
        if (mode == ZSTD_e_continue ? in.pos == in.size : left == 0)
            return 0;
    }
}

prof_trace_writer_t *prof_trace_writer_open(const char *path, char *err, size_t errlen)
{
    prof_trace_writer_t *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        snprintf(err, errlen, "cannot create trace file %s: %s", path, strerror(errno));
        free(w);
        return NULL;
    }
    w->out_cap = ZSTD_CStreamOutSize();
    w->out = malloc(w->out_cap);
    if (!w->out) {
        snprintf(err, errlen, "out of memory");
        prof_trace_writer_abort(w);
        return NULL;
    }
    uint8_t head[MLMEM_TRACE_HEADER_LEN];
    memcpy(head, MLMEM_TRACE_MAGIC, MLMEM_TRACE_MAGIC_LEN);
    head[8] = MLMEM_TRACE_VERSION & 0xff;
    head[9] = MLMEM_TRACE_VERSION >> 8;
    /* The header is a zstd frame of its own (a context sized for 10 bytes
     * is quick to make), written at once: a device or file system with no
     * room (/dev/full, a full disk) fails here, before the command starts,
     * not minutes in. */
    size_t n = ZSTD_compress(w->out, w->out_cap, head, sizeof head, 3);
    if (ZSTD_isError(n))
        wfail(w, "zstd: %s", ZSTD_getErrorName(n));
    if (w->failed || write_all(w, w->out, n) != 0) {
        snprintf(err, errlen, "%s: %s", path, w->error);
        prof_trace_writer_abort(w);
        return NULL;
    }
    w->last_flush_ns = mono_ns();
    return w;
}

int prof_trace_writer_tick(prof_trace_writer_t *w)
{
    uint64_t now = mono_ns();
    if (!w->dirty || now - w->last_flush_ns <= FLUSH_INTERVAL_NS)
        return w->failed ? -1 : 0;
    w->last_flush_ns = now;
    w->dirty = 0;
    return compress(w, NULL, 0, ZSTD_e_flush);
}

/* Writes tag, length and a prefix; 'body' follows uncopied. */
static int put_record(prof_trace_writer_t *w, uint8_t tag, const uint8_t *prefix, size_t plen,
                      const uint8_t *body, size_t blen)
{
    uint8_t head[1 + MLMEM_VARINT_MAX];
    size_t n = 0;
    head[n++] = tag;
    n += mlmem_varint_put(head + n, plen + blen);
    if (compress(w, head, n, ZSTD_e_continue) != 0 ||
        compress(w, prefix, plen, ZSTD_e_continue) != 0 ||
        (blen && compress(w, body, blen, ZSTD_e_continue) != 0))
        return -1;
    w->records++;
    w->dirty = 1;
    return prof_trace_writer_tick(w);
}

int prof_trace_write_stream(prof_trace_writer_t *w, uint8_t tag, uint32_t stream_id,
                            const uint8_t *data, size_t len)
{
    uint8_t id[MLMEM_VARINT_MAX];
    size_t n = mlmem_varint_put(id, stream_id);
    if (tag == MLMEM_TREC_STREAM_DATA)
        w->stream_bytes += len;
    return put_record(w, tag, id, n, data, len);
}

int prof_trace_write_run_info(prof_trace_writer_t *w, const prof_run_info_t *info)
{
    const char *cmd = info->command ? info->command : "";
    size_t clen = strlen(cmd);
    uint8_t head[6 * MLMEM_VARINT_MAX];
    size_t n = 0;
    n += mlmem_varint_put(head + n, (uint64_t)info->root_pid);
    n += mlmem_varint_put(head + n, (uint64_t)info->end);
    n += mlmem_varint_put(head + n, mlmem_zigzag(info->exit_code));
    n += mlmem_varint_put(head + n, (uint64_t)info->signal);
    n += mlmem_varint_put(head + n, info->end_realtime_ns);
    n += mlmem_varint_put(head + n, clen);
    return put_record(w, MLMEM_TREC_RUN_INFO, head, n, (const uint8_t *)cmd, clen);
}

const char *prof_trace_writer_error(const prof_trace_writer_t *w)
{
    return w->failed ? w->error : NULL;
}

void prof_trace_writer_abort(prof_trace_writer_t *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    ZSTD_freeCCtx(w->cctx);
    free(w->out);
    free(w);
}

int prof_trace_writer_close(prof_trace_writer_t *w, char *err, size_t errlen)
{
    uint8_t body[2 * MLMEM_VARINT_MAX];
    size_t n = mlmem_varint_put(body, w->records);
    n += mlmem_varint_put(body + n, w->stream_bytes);
    int rc = 0;
    if (put_record(w, MLMEM_TREC_TRAILER, body, n, NULL, 0) != 0 ||
        compress(w, NULL, 0, ZSTD_e_end) != 0)
        rc = -1;
    if (rc == 0 && close(w->fd) != 0)
        rc = wfail(w, "cannot close the trace: %s", strerror(errno));
    else if (rc != 0)
        close(w->fd);
    w->fd = -1;
    if (rc != 0)
        snprintf(err, errlen, "%s", w->error);
    prof_trace_writer_abort(w);
    return rc;
}

/* ---- replay ---------------------------------------------------------------- */

typedef struct {
    const char *path;
    prof_session_t *session;
    uint8_t *buf;          /* decompressed bytes not yet parsed           */
    size_t len, cap;
    uint64_t offset;       /* decompressed offset of buf[0]               */
    int header_done;
    int trailer_seen;
    int allow_partial;     /* a malformed stream stops only that stream    */
    uint64_t records;
    uint64_t stream_bytes;
    char *err;
    size_t errlen;
    size_t piece;          /* progress: feed DATA in pieces of this size  */
    void (*progress)(void *ctx, uint64_t stream_bytes);
    void *progress_ctx;
} replay_t;

static int rfail(replay_t *r, uint64_t at, const char *fmt, ...)
{
    int n = snprintf(r->err, r->errlen, "%s: offset %llu: ", r->path, (unsigned long long)at);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < r->errlen)
        vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int replay_record(replay_t *r, uint8_t tag, const uint8_t *p, const uint8_t *end,
                         uint64_t at)
{
    if (r->trailer_seen)
        return rfail(r, at, "data after the trailer");
    uint64_t id = 0;
    switch (tag) {
    case MLMEM_TREC_STREAM_OPEN:
    case MLMEM_TREC_STREAM_DATA:
    case MLMEM_TREC_STREAM_CLOSE:
        if (mlmem_varint_get(&p, end, &id) != 0 || id > UINT32_MAX)
            return rfail(r, at, "stream record without a valid stream id");
        break;
    default:
        break;
    }
    r->records++;
    switch (tag) {
    case MLMEM_TREC_STREAM_OPEN:
        if (prof_session_open(r->session, (uint32_t)id) != 0)
            return rfail(r, at, "%s", prof_session_error(r->session));
        return 0;
    case MLMEM_TREC_STREAM_DATA: {
        /* With progress, the data goes in pieces: decoding does not depend
         * on chunking, and the caller sees the run at finer points. */
        size_t piece = r->progress ? r->piece : (size_t)(end - p);
        do {
            size_t n = (size_t)(end - p) < piece ? (size_t)(end - p) : piece;
            r->stream_bytes += n;
            if (prof_session_data(r->session, (uint32_t)id, p, n) != 0 && !r->allow_partial)
                return rfail(r, at, "%s", prof_session_error(r->session));
            p += n;
            if (r->progress)
                r->progress(r->progress_ctx, r->stream_bytes);
        } while (p < end);
        return 0;
    }
    case MLMEM_TREC_STREAM_CLOSE:
        if (prof_session_close(r->session, (uint32_t)id) != 0 && !r->allow_partial)
            return rfail(r, at, "%s", prof_session_error(r->session));
        return 0;
    case MLMEM_TREC_RUN_INFO: {
        uint64_t pid, endv, code, sig, rt, clen;
        if (mlmem_varint_get(&p, end, &pid) || mlmem_varint_get(&p, end, &endv) ||
            mlmem_varint_get(&p, end, &code) || mlmem_varint_get(&p, end, &sig) ||
            mlmem_varint_get(&p, end, &rt) || mlmem_varint_get(&p, end, &clen) ||
            clen != (uint64_t)(end - p) || endv > PROF_END_RUNNING)
            return rfail(r, at, "RUN_INFO record is malformed");
        prof_run_info_t info = {
            .root_pid = (int32_t)pid,
            .end = (prof_end_t)endv,
            .exit_code = (int32_t)mlmem_unzigzag(code),
            .signal = (int32_t)sig,
            .end_realtime_ns = rt,
            .command = strndup((const char *)p, (size_t)clen),
        };
        prof_session_set_run_info(r->session, &info);
        return 0;
    }
    case MLMEM_TREC_TRAILER: {
        uint64_t recs, bytes;
        if (mlmem_varint_get(&p, end, &recs) || mlmem_varint_get(&p, end, &bytes))
            return rfail(r, at, "trailer is malformed");
        /* The trailer counts the records before it. */
        if (recs != r->records - 1 || bytes != r->stream_bytes)
            return rfail(r, at,
                         "trailer does not match the contents (%llu records and %llu stream "
                         "bytes recorded, %llu and %llu found): the file is corrupt",
                         (unsigned long long)recs, (unsigned long long)bytes,
                         (unsigned long long)(r->records - 1),
                         (unsigned long long)r->stream_bytes);
        r->trailer_seen = 1;
        return 0;
    }
    default:
        return 0; /* unknown record: skip */
    }
}

/* Parses the complete records in r->buf. Returns 0 or -1. */
static int replay_parse(replay_t *r)
{
    size_t pos = 0;
    if (!r->header_done) {
        if (r->len < MLMEM_TRACE_HEADER_LEN)
            return 0;
        if (memcmp(r->buf, MLMEM_TRACE_MAGIC, MLMEM_TRACE_MAGIC_LEN) != 0)
            return rfail(r, 0, "not an mlmem trace (bad magic)");
        unsigned version = r->buf[8] | (unsigned)r->buf[9] << 8;
        if (version != MLMEM_TRACE_VERSION)
            return rfail(r, 8, "trace version %u is not supported (this mlmem reads %u)",
                         version, MLMEM_TRACE_VERSION);
        r->header_done = 1;
        pos = MLMEM_TRACE_HEADER_LEN;
    }
    while (pos < r->len) {
        const uint8_t *p = r->buf + pos + 1, *end = r->buf + r->len;
        uint64_t plen;
        if (mlmem_varint_get(&p, end, &plen) != 0) {
            if (end - (r->buf + pos + 1) >= MLMEM_VARINT_MAX)
                return rfail(r, r->offset + pos, "record length is not a valid varint");
            break;
        }
        if (plen > MAX_TRACE_RECORD)
            return rfail(r, r->offset + pos, "record length %llu exceeds the limit",
                         (unsigned long long)plen);
        if (plen > (uint64_t)(end - p))
            break;
        if (replay_record(r, r->buf[pos], p, p + plen, r->offset + pos) != 0)
            return -1;
        pos = (size_t)(p + plen - r->buf);
    }
    memmove(r->buf, r->buf + pos, r->len - pos);
    r->len -= pos;
    r->offset += pos;
    return 0;
}

int prof_trace_replay(const char *path, prof_session_t *s, int allow_partial,
                      prof_trace_stats_t *stats, char *err, size_t errlen)
{
    return prof_trace_replay_progress(path, s, allow_partial, stats, err, errlen, 0, NULL, NULL);
}

int prof_trace_replay_progress(const char *path, prof_session_t *s, int allow_partial,
                               prof_trace_stats_t *stats, char *err, size_t errlen, size_t piece,
                               void (*progress)(void *ctx, uint64_t stream_bytes), void *ctx)
{
    replay_t r = {.path = path, .session = s, .err = err, .errlen = errlen,
                  .allow_partial = allow_partial,
                  .piece = piece ? piece : 4096, .progress = progress, .progress_ctx = ctx};
    if (stats)
        memset(stats, 0, sizeof *stats);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open trace %s: %s", path, strerror(errno));
        return -1;
    }
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    size_t in_cap = ZSTD_DStreamInSize(), chunk = ZSTD_DStreamOutSize();
    uint8_t *in = malloc(in_cap);
    r.cap = 4 * chunk;
    r.buf = malloc(r.cap);
    int rc = -1;
    uint64_t compressed = 0;
    size_t zret = 1;
    if (!dctx || !in || !r.buf) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (;;) {
        ssize_t n = read(fd, in, in_cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "cannot read trace %s: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        ZSTD_inBuffer zin = {in, (size_t)n, 0};
        while (zin.pos < zin.size) {
            if (r.cap - r.len < chunk) {
                /* A record is bounded, so the buffer is too. */
                size_t cap = r.cap * 2;
                if (cap > 2 * (size_t)MAX_TRACE_RECORD + 2 * chunk) {
                    rfail(&r, r.offset, "record too large");
                    goto done;
                }
                uint8_t *nb = realloc(r.buf, cap);
                if (!nb) {
                    snprintf(err, errlen, "out of memory");
                    goto done;
                }
                r.buf = nb;
                r.cap = cap;
            }
            ZSTD_outBuffer zout = {r.buf + r.len, r.cap - r.len, 0};
            zret = ZSTD_decompressStream(dctx, &zout, &zin);
            if (ZSTD_isError(zret)) {
                snprintf(err, errlen, "%s: compressed offset %llu: corrupt data (%s)", path,
                         (unsigned long long)(compressed + zin.pos), ZSTD_getErrorName(zret));
                goto done;
            }
            r.len += zout.pos;
            if (replay_parse(&r) != 0)
                goto done;
        }
        compressed += (uint64_t)n;
    }
    if (!r.header_done && r.len == 0 && compressed == 0) {
        snprintf(err, errlen, "%s: the file is empty", path);
        goto done;
    }
    if (!r.trailer_seen) {
        prof_session_close_all(s);
        if (!allow_partial) {
            rfail(&r, r.offset + r.len,
                  "the trace ends without its trailer: the recording was cut short "
                  "(mlmem report --partial analyzes what is there)");
            goto done;
        }
    } else if (r.len) {
        rfail(&r, r.offset, "unexpected data after the trailer");
        goto done;
    } else if (zret != 0) {
        /* The trailer is there but the zstd frame (and its checksum) is
         * not complete: not a complete trace. */
        r.trailer_seen = 0;
        snprintf(err, errlen, "%s: compressed offset %llu: the file was cut short "
                 "(the compressed frame does not end)", path, (unsigned long long)compressed);
        goto done;
    }
    rc = 0;
done:
    if (stats) {
        stats->complete = r.trailer_seen;
        stats->records = r.records;
        stats->stream_bytes = r.stream_bytes;
        stats->compressed_bytes = compressed;
    }
    close(fd);
    ZSTD_freeDCtx(dctx);
    free(in);
    free(r.buf);
    return rc;
}
