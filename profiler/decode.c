/*
 * decode.c - the stream decoder (see decode.h and docs/trace-format.md).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

#define MAX_RECORD (64u << 20)   /* no valid record comes near this        */
#define MAX_DEPTH 1024u
#define MAX_STRING (1u << 20)

struct prof_decoder {
    prof_decoder_sink_t sink;
    uint8_t *buf;            /* bytes not yet decoded                      */
    size_t len, cap;
    uint64_t offset;         /* stream offset of buf[0]                    */
    uint64_t events;
    int header_done;
    unsigned version;        /* of this stream, from its header            */
    int failed;
    char error[256];
    uint64_t *frames;        /* the last STACK record's frames             */
    uint32_t frames_depth;   /* and how many                               */
    uint64_t class_addr[MLMEM_ADDR_CLASSES]; /* per EVENTS record (v2)     */
};

prof_decoder_t *prof_decoder_new(const prof_decoder_sink_t *sink)
{
    prof_decoder_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->sink = *sink;
    d->frames = malloc(MAX_DEPTH * sizeof *d->frames);
    if (!d->frames) {
        free(d);
        return NULL;
    }
    return d;
}

void prof_decoder_free(prof_decoder_t *d)
{
    if (!d)
        return;
    free(d->buf);
    free(d->frames);
    free(d);
}

static int fail(prof_decoder_t *d, uint64_t at, const char *fmt, ...)
{
    if (!d->failed) {
        int n = snprintf(d->error, sizeof d->error, "offset %llu: ", (unsigned long long)at);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->error + n, sizeof d->error - (size_t)n, fmt, ap);
        va_end(ap);
        d->failed = 1;
    }
    return -1;
}

/* A cursor over one record's payload; every read is bounds-checked. */
typedef struct {
    const uint8_t *p, *end;
    int bad;
} cursor_t;

static __attribute__((noinline)) uint64_t get_u_slow(cursor_t *c)
{
    uint64_t v = 0;
    if (c->bad || mlmem_varint_get(&c->p, c->end, &v) != 0)
        c->bad = 1;
    return c->bad ? 0 : v;
}

/* Most varints of an event are one byte. After an error the cursor may go
 * on reading (inside the payload only); the caller checks 'bad' once per
 * event, so what it read then is never used. */
static inline uint64_t get_u(cursor_t *c)
{
    const uint8_t *p = c->p;
    if (__builtin_expect(c->end - p >= MLMEM_VARINT_MAX, 1)) {
        uint64_t v = 0;
        for (unsigned shift = 0; shift < 64; shift += 7) {
            uint8_t b = *p++;
            v |= (uint64_t)(b & 0x7f) << shift;
            if (b < 0x80) {
                c->p = p;
                return v;
            }
        }
    }
    return get_u_slow(c); /* near the end, or longer than 10 bytes */
}

static inline int64_t get_s(cursor_t *c)
{
    return mlmem_unzigzag(get_u(c));
}

static inline uint8_t get_byte(cursor_t *c)
{
    if (c->bad || c->p >= c->end) {
        c->bad = 1;
        return 0;
    }
    return *c->p++;
}

/* Returns a pointer to a length-prefixed byte string, or NULL. */
static const uint8_t *get_bytes(cursor_t *c, size_t *len)
{
    uint64_t n = get_u(c);
    if (c->bad || n > MAX_STRING || n > (uint64_t)(c->end - c->p)) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *s = c->p;
    c->p += n;
    *len = (size_t)n;
    return s;
}

/* Copies a byte string into a NUL-terminated heap string. */
static char *dup_bytes(const uint8_t *s, size_t len)
{
    char *r = malloc(len + 1);
    if (r) {
        memcpy(r, s, len);
        r[len] = '\0';
    }
    return r;
}

static int decode_hello(prof_decoder_t *d, cursor_t *c, uint64_t at)
{
    prof_hello_t h;
    memset(&h, 0, sizeof h);
    h.pid = (uint32_t)get_u(c);
    h.ppid = (uint32_t)get_u(c);
    h.start_realtime_ns = get_u(c);
    h.stack_mode = (uint32_t)get_u(c);
    h.stack_threshold = get_u(c);
    h.sample_rate = get_u(c);
    h.page_size = get_u(c);
    size_t exe_len = 0, cmd_len = 0;
    const uint8_t *exe = get_bytes(c, &exe_len);
    const uint8_t *cmd = get_bytes(c, &cmd_len);
    if (c->bad)
        return fail(d, at, "HELLO record is truncated or malformed");
    char *exe_s = dup_bytes(exe, exe_len);
    char *cmd_s = dup_bytes(cmd, cmd_len);
    if (!exe_s || !cmd_s) {
        free(exe_s);
        free(cmd_s);
        return fail(d, at, "out of memory");
    }
    h.exe = exe_s;
    h.cmdline = cmd_s;
    h.cmdline_len = cmd_len;
    if (d->sink.hello)
        d->sink.hello(d->sink.ctx, &h);
    free(exe_s);
    free(cmd_s);
    return 0;
}

/* An ALLOC's or REALLOC's address (version 2 on): a delta against the last
 * block of its size class in the batch, or against the running address
 * 'addr' for class 0 and a class with none yet. Returns the address. */
static uint64_t get_class_addr(cursor_t *c, uint64_t *class_addr, uint64_t size, uint64_t addr)
{
    unsigned cls = mlmem_addr_class(size);
    uint64_t base = cls && class_addr[cls] ? class_addr[cls] : addr;
    addr = base + (uint64_t)get_s(c);
    class_addr[cls] = addr;
    return addr;
}

/* An allocation's fn byte; from version 6 it may carry
 * MLMEM_FN_NOT_LATEST, which becomes 'not_latest'. */
static void get_fn(cursor_t *c, unsigned version, prof_event_t *e)
{
    unsigned fn = get_byte(c);
    if (version >= 6 && (fn & MLMEM_FN_NOT_LATEST)) {
        e->not_latest = 1;
        fn &= ~(unsigned)MLMEM_FN_NOT_LATEST;
    }
    e->fn = (uint8_t)fn;
}

/* Event 'i' has a type that only a version 4 stream may hold. */
static int fail_newer_type(prof_decoder_t *d, uint64_t at, uint64_t i, unsigned type)
{
    return fail(d, at, "event %llu of an EVENTS record has type %u, new in version 4 of the "
                "stream (this one is version %u)",
                (unsigned long long)i, type, d->version);
}

static int decode_events(prof_decoder_t *d, cursor_t *c, uint64_t at)
{
    uint32_t tid = (uint32_t)get_u(c);
    uint64_t count = get_u(c);
    if (c->bad)
        return fail(d, at, "EVENTS record header is malformed");
    if (count > (uint64_t)(c->end - c->p))
        return fail(d, at, "EVENTS record claims %llu events in %zu bytes",
                    (unsigned long long)count, (size_t)(c->end - c->p));
    uint64_t seq = 0, addr = 0;
    int64_t time = 0;
    uint64_t *class_addr = d->class_addr;
    int by_class = d->version >= 2;
    if (by_class)
        memset(class_addr, 0, sizeof d->class_addr);
    for (uint64_t i = 0; i < count; i++) {
        prof_event_t e;
        memset(&e, 0, sizeof e);
        e.tid = tid;
        uint8_t flags = get_byte(c);
        e.type = flags & MLMEM_EVF_TYPE_MASK;
        /* Wrapping arithmetic: a hostile delta must not be undefined. */
        seq += (flags & MLMEM_EVF_SEQ_NEXT) ? 1 : (uint64_t)get_s(c);
        if (!(flags & MLMEM_EVF_SAME_TIME))
            time = (int64_t)((uint64_t)time + (uint64_t)get_s(c));
        if ((flags & MLMEM_EVF_FREED_NEXT) && e.type != MLMEM_EV_ALLOC && !c->bad)
            return fail(d, at, "event %llu of an EVENTS record: only an ALLOC can be freed next",
                        (unsigned long long)i);
        e.seq = seq;
        e.time_ns = time < 0 ? 0 : (uint64_t)time;
        switch (e.type) {
        case MLMEM_EV_ALLOC:
        case MLMEM_EV_REALLOC:
            if (by_class) {
                /* Version 2: size first, the address against the last
                 * block of its size class (trace_format.h). */
                e.size = get_u(c);
                addr = get_class_addr(c, class_addr, e.size, addr);
            } else {
                addr += (uint64_t)get_s(c);
                e.size = get_u(c);
            }
            e.addr = addr;
            e.stack_id = (uint32_t)get_u(c);
            if (e.type == MLMEM_EV_REALLOC)
                e.old_addr = e.addr + (uint64_t)get_s(c);
            get_fn(c, d->version, &e);
            break;
        case MLMEM_EV_MMAP:
        case MLMEM_EV_MMAP_FILE:
            addr += (uint64_t)get_s(c);
            e.addr = addr;
            e.size = get_u(c);
            e.stack_id = (uint32_t)get_u(c);
            e.arg = get_u(c);
            break;
        case MLMEM_EV_MREMAP:
            addr += (uint64_t)get_s(c);
            e.addr = addr;
            e.size = get_u(c);
            e.stack_id = (uint32_t)get_u(c);
            e.old_addr = e.addr + (uint64_t)get_s(c);
            e.old_size = get_u(c);
            break;
        case MLMEM_EV_FREE:
            addr += (uint64_t)get_s(c);
            e.addr = addr;
            break;
        case MLMEM_EV_MUNMAP:
        case MLMEM_EV_FILE_READ:
            addr += (uint64_t)get_s(c);
            e.addr = addr;
            e.size = get_u(c);
            if (e.type == MLMEM_EV_FILE_READ)
                e.arg = get_u(c);
            break;
        case MLMEM_EV_TAG:
            addr += (uint64_t)get_s(c);
            e.addr = addr;
            e.arg = get_u(c);
            break;
        case MLMEM_EV_RSS:
            e.size = get_u(c);
            break;
        case MLMEM_EV_STEP:
        case MLMEM_EV_PHASE:
        case MLMEM_EV_REGION_BEGIN:
        case MLMEM_EV_FORK:
            e.arg = get_u(c);
            break;
        case MLMEM_EV_ALLOC_LATE: {
            /* Version 4: ALLOC's fields (the stack from version 5), then
             * how far back the seq counter stood when the block was made. */
            if (d->version < 4 && !c->bad)
                return fail_newer_type(d, at, i, e.type);
            e.size = get_u(c);
            addr = get_class_addr(c, class_addr, e.size, addr);
            e.addr = addr;
            if (d->version >= 5)
                e.stack_id = (uint32_t)get_u(c);
            get_fn(c, d->version, &e);
            uint64_t back = get_u(c);
            if (!c->bad && (back == 0 || back > seq))
                return fail(d, at,
                            "event %llu of an EVENTS record: ALLOC_LATE goes back %llu from "
                            "sequence number %llu",
                            (unsigned long long)i, (unsigned long long)back,
                            (unsigned long long)seq);
            e.arg = seq - back;
            break;
        }
        case MLMEM_EV_TEMPORARIES: {
            if (d->version < 4 && !c->bad)
                return fail_newer_type(d, at, i, e.type);
            e.arg = get_u(c);      /* count   */
            e.size = get_u(c);     /* bytes   */
            e.old_size = get_u(c); /* largest */
            if (d->version >= 5)
                e.stack_id = (uint32_t)get_u(c);
            uint64_t all;
            if (!c->bad && (e.arg == 0 || e.old_size > e.size ||
                            (!__builtin_mul_overflow(e.arg, e.old_size, &all) && all < e.size)))
                return fail(d, at,
                            "event %llu of an EVENTS record: TEMPORARIES of %llu blocks, "
                            "%llu bytes, the largest %llu, cannot be",
                            (unsigned long long)i, (unsigned long long)e.arg,
                            (unsigned long long)e.size, (unsigned long long)e.old_size);
            /* Version 6: the most held at once, as what was held beside the
             * largest, and how many were nested (before: none, so the
             * largest alone). */
            uint64_t beside = d->version >= 6 ? get_u(c) : 0;
            e.old_addr = d->version >= 6 ? get_u(c) : 0;
            if (!c->bad && (__builtin_add_overflow(e.old_size, beside, &e.addr) ||
                            e.old_addr > e.arg))
                return fail(d, at,
                            "event %llu of an EVENTS record: TEMPORARIES of %llu blocks, "
                            "%llu of them nested, %llu bytes held beside the largest, cannot be",
                            (unsigned long long)i, (unsigned long long)e.arg,
                            (unsigned long long)e.old_addr, (unsigned long long)beside);
            break;
        }
        case MLMEM_EV_REGION_END:
        case MLMEM_EV_NOP:
            break;
        default:
            if (!c->bad)
                return fail(d, at, "event %llu of an EVENTS record has unknown type %u",
                            (unsigned long long)i, e.type);
        }
        if (c->bad)
            return fail(d, at, "EVENTS record is truncated inside event %llu",
                        (unsigned long long)i);
        /* Only RSS samples stand outside the order (the shim's writer
         * takes them, not a program thread): they carry number 0. */
        if (e.seq == 0 && e.type != MLMEM_EV_RSS)
            return fail(d, at, "event %llu has sequence number 0", (unsigned long long)i);
        if (flags & MLMEM_EVF_FREED_NEXT) {
            /* The FREE folded into this ALLOC takes the next number. */
            if (++seq == 0)
                return fail(d, at, "event %llu has sequence number 0", (unsigned long long)i);
            e.freed_next = 1;
            d->events++;
        }
        /* Folded temporaries stand for two events each. */
        d->events += e.type == MLMEM_EV_TEMPORARIES ? 2 * e.arg : 1;
        if (d->sink.event)
            d->sink.event(d->sink.ctx, &e);
    }
    return 0;
}

static int decode_stack(prof_decoder_t *d, cursor_t *c, uint64_t at)
{
    uint32_t id = (uint32_t)get_u(c);
    uint64_t seq = get_u(c);
    uint64_t depth = get_u(c);
    uint64_t shared = d->version >= 3 ? get_u(c) : 0;
    if (c->bad || depth > MAX_DEPTH || id == 0)
        return fail(d, at, "STACK record is malformed (id %u, depth %llu)", id,
                    (unsigned long long)depth);
    if (shared > depth || shared > d->frames_depth)
        return fail(d, at,
                    "STACK record %u shares %llu outer frames, but it has %llu and the stack "
                    "before it %u",
                    id, (unsigned long long)shared, (unsigned long long)depth,
                    d->frames_depth);
    /* Version 3: the last 'shared' frames are the previous stack's last
     * ones; they move into place before the new inner frames are read. */
    uint64_t own = depth - shared;
    memmove(d->frames + own, d->frames + d->frames_depth - shared, shared * sizeof *d->frames);
    d->frames_depth = (uint32_t)depth;
    uint64_t prev = 0;
    for (uint64_t i = 0; i < own; i++) {
        prev += (uint64_t)get_s(c);
        d->frames[i] = prev;
    }
    if (c->bad) {
        d->frames_depth = 0;
        return fail(d, at, "STACK record %u is truncated", id);
    }
    if (d->sink.stack)
        d->sink.stack(d->sink.ctx, id, seq, d->frames, (uint32_t)depth);
    return 0;
}

static int decode_module(prof_decoder_t *d, cursor_t *c, uint64_t at)
{
    prof_module_t m;
    m.id = (uint32_t)get_u(c);
    m.bias = get_u(c);
    m.start = get_u(c);
    m.end = get_u(c);
    m.load_seq = get_u(c);
    size_t len = 0;
    const uint8_t *path = get_bytes(c, &len);
    if (c->bad || m.end < m.start)
        return fail(d, at, "MODULE record is malformed");
    char *p = dup_bytes(path, len);
    if (!p)
        return fail(d, at, "out of memory");
    m.path = p;
    if (d->sink.module)
        d->sink.module(d->sink.ctx, &m);
    free(p);
    return 0;
}

static int decode_record(prof_decoder_t *d, uint8_t tag, cursor_t *c, uint64_t at)
{
    switch (tag) {
    case MLMEM_REC_HELLO:
        return decode_hello(d, c, at);
    case MLMEM_REC_EVENTS:
        return decode_events(d, c, at);
    case MLMEM_REC_STACK:
        return decode_stack(d, c, at);
    case MLMEM_REC_MODULE:
        return decode_module(d, c, at);
    case MLMEM_REC_UNLOAD: {
        uint32_t id = (uint32_t)get_u(c);
        uint64_t seq = get_u(c);
        if (c->bad)
            return fail(d, at, "UNLOAD record is malformed");
        if (d->sink.unload)
            d->sink.unload(d->sink.ctx, id, seq);
        return 0;
    }
    case MLMEM_REC_THREAD: {
        uint32_t tid = (uint32_t)get_u(c);
        size_t len = 0;
        const uint8_t *name = get_bytes(c, &len);
        if (c->bad || len > 64)
            return fail(d, at, "THREAD record is malformed");
        char buf[65];
        memcpy(buf, name, len);
        buf[len] = '\0';
        if (d->sink.thread)
            d->sink.thread(d->sink.ctx, tid, buf);
        return 0;
    }
    case MLMEM_REC_DROPPED: {
        uint64_t n = get_u(c);
        if (c->bad)
            return fail(d, at, "DROPPED record is malformed");
        if (d->sink.dropped)
            d->sink.dropped(d->sink.ctx, n);
        return 0;
    }
    case MLMEM_REC_END: {
        prof_end_info_t e;
        e.reason = (uint32_t)get_u(c);
        e.code_known = (uint32_t)get_u(c);
        e.code = (int32_t)get_s(c);
        e.last_seq = get_u(c);
        e.dropped = get_u(c);
        e.stacks_lost = c->p < c->end ? get_u(c) : 0; /* appended in 0.1.0 */
        if (c->bad)
            return fail(d, at, "END record is malformed");
        if (d->sink.end)
            d->sink.end(d->sink.ctx, &e);
        return 0;
    }
    default:
        return 0; /* unknown record: skip, its length is known */
    }
}

/* Decodes the complete records at the front of buf; returns bytes used. */
static size_t decode_buffer(prof_decoder_t *d, const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    if (!d->header_done) {
        if (len < MLMEM_STREAM_HEADER_LEN)
            return 0;
        if (memcmp(buf, MLMEM_STREAM_MAGIC, MLMEM_STREAM_MAGIC_LEN) != 0) {
            fail(d, d->offset, "not an mlmem event stream (bad magic)");
            return 0;
        }
        unsigned version = buf[8] | (unsigned)buf[9] << 8;
        if (version < MLMEM_STREAM_VERSION_MIN || version > MLMEM_STREAM_VERSION) {
            fail(d, d->offset + 8,
                 "stream version %u is not supported (this mlmem reads %u to %u)", version,
                 MLMEM_STREAM_VERSION_MIN, MLMEM_STREAM_VERSION);
            return 0;
        }
        d->version = version;
        d->header_done = 1;
        pos = MLMEM_STREAM_HEADER_LEN;
    }
    while (pos < len && !d->failed) {
        const uint8_t *p = buf + pos + 1, *end = buf + len;
        uint64_t plen;
        if (mlmem_varint_get(&p, end, &plen) != 0) {
            if (end - (buf + pos + 1) >= MLMEM_VARINT_MAX)
                fail(d, d->offset + pos, "record length is not a valid varint");
            break; /* incomplete: wait for more bytes */
        }
        if (plen > MAX_RECORD) {
            fail(d, d->offset + pos, "record length %llu exceeds the %u-byte limit",
                 (unsigned long long)plen, MAX_RECORD);
            break;
        }
        if (plen > (uint64_t)(end - p))
            break;
        cursor_t c = {p, p + plen, 0};
        if (decode_record(d, buf[pos], &c, d->offset + pos) != 0)
            break;
        pos = (size_t)(p + plen - buf);
    }
    return pos;
}

int prof_decoder_feed(prof_decoder_t *d, const uint8_t *data, size_t len)
{
    if (d->failed)
        return -1;
    if (d->len == 0) {
        /* Fast path: decode straight from the caller's bytes. */
        size_t used = decode_buffer(d, data, len);
        d->offset += used;
        data += used;
        len -= used;
        if (d->failed)
            return -1;
        if (len == 0)
            return 0;
    }
    if (d->len + len > d->cap) {
        size_t cap = d->cap ? d->cap : 65536;
        while (cap < d->len + len)
            cap *= 2;
        uint8_t *nb = realloc(d->buf, cap);
        if (!nb)
            return fail(d, d->offset, "out of memory buffering %zu bytes", d->len + len);
        d->buf = nb;
        d->cap = cap;
    }
    memcpy(d->buf + d->len, data, len);
    d->len += len;
    size_t used = decode_buffer(d, d->buf, d->len);
    memmove(d->buf, d->buf + used, d->len - used);
    d->len -= used;
    d->offset += used;
    return d->failed ? -1 : 0;
}

int prof_decoder_finish(prof_decoder_t *d)
{
    if (d->failed)
        return -1;
    /* An empty stream is legal: a process that connected and ended (or
     * exec'd) before its shim sent anything. */
    if (d->len)
        return fail(d, d->offset, "the stream ends inside a record (%zu bytes left over)", d->len);
    return 0;
}

const char *prof_decoder_error(const prof_decoder_t *d)
{
    return d->failed ? d->error : NULL;
}

uint64_t prof_decoder_offset(const prof_decoder_t *d)
{
    return d->offset;
}

uint64_t prof_decoder_events(const prof_decoder_t *d)
{
    return d->events;
}
