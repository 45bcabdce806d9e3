/*
 * test_decode.c - the stream decoder (profiler/decode.h): every record and
 * event type decoded field by field, independence from chunking, and the
 * errors it must report (with their offsets) on malformed input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "profiler/decode.h"
#include "tests/stream_builder.h"

/* ---- a recording sink ----------------------------------------------------- */

#define REC_MAX_EVENTS 64

/* Everything the callbacks saw: a text log of every call with every field
 * (to compare whole sequences) plus the structured items the checks read. */
typedef struct {
    char *log;
    size_t len, cap;
    size_t calls;

    prof_event_t ev[REC_MAX_EVENTS];
    size_t nev;

    int nhello;
    prof_hello_t hello;
    char exe[256];
    char cmdline[256];

    int nstack;
    uint32_t stack_id;
    uint64_t stack_seq;
    uint64_t frames[MLMEM_STACK_MAX_DEPTH];
    uint32_t depth;

    int nmodule;
    prof_module_t module;
    char module_path[256];

    int nunload;
    uint32_t unload_id;
    uint64_t unload_seq;

    int ndropped;
    uint64_t dropped;

    int nend;
    prof_end_info_t end;
} rec_t;

static void logf_(rec_t *r, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof line);
    if (r->len + (size_t)n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4096;
        while (cap < r->len + (size_t)n + 1)
            cap *= 2;
        r->log = realloc(r->log, cap);
        assert_non_null(r->log);
        r->cap = cap;
    }
    memcpy(r->log + r->len, line, (size_t)n + 1);
    r->len += (size_t)n;
    r->calls++;
}

static void on_hello(void *ctx, const prof_hello_t *h)
{
    rec_t *r = ctx;
    r->nhello++;
    r->hello = *h;
    snprintf(r->exe, sizeof r->exe, "%s", h->exe);
    assert_true(h->cmdline_len < sizeof r->cmdline);
    memcpy(r->cmdline, h->cmdline, h->cmdline_len);
    r->hello.exe = r->exe;
    r->hello.cmdline = r->cmdline;
    logf_(r, "hello %u %u %llu %u %llu %llu %llu %s %zu\n", h->pid, h->ppid,
          (unsigned long long)h->start_realtime_ns, h->stack_mode,
          (unsigned long long)h->stack_threshold, (unsigned long long)h->sample_rate,
          (unsigned long long)h->page_size, h->exe, h->cmdline_len);
}

static void on_event(void *ctx, const prof_event_t *e)
{
    rec_t *r = ctx;
    if (r->nev < REC_MAX_EVENTS)
        r->ev[r->nev] = *e;
    r->nev++;
    logf_(r, "event t%u s%llu @%llu ty%u a%llx z%llu oa%llx oz%llu arg%llx st%u fn%u\n", e->tid,
          (unsigned long long)e->seq, (unsigned long long)e->time_ns, e->type,
          (unsigned long long)e->addr, (unsigned long long)e->size,
          (unsigned long long)e->old_addr, (unsigned long long)e->old_size,
          (unsigned long long)e->arg, e->stack_id, e->fn);
}

static void on_stack(void *ctx, uint32_t id, uint64_t seq, const uint64_t *frames, uint32_t depth)
{
    rec_t *r = ctx;
    r->nstack++;
    r->stack_id = id;
    r->stack_seq = seq;
    r->depth = depth;
    for (uint32_t i = 0; i < depth && i < MLMEM_STACK_MAX_DEPTH; i++)
        r->frames[i] = frames[i];
    logf_(r, "stack %u %llu %u", id, (unsigned long long)seq, depth);
    for (uint32_t i = 0; i < depth; i++)
        logf_(r, " %llx", (unsigned long long)frames[i]);
    logf_(r, "\n");
}

static void on_module(void *ctx, const prof_module_t *m)
{
    rec_t *r = ctx;
    r->nmodule++;
    r->module = *m;
    snprintf(r->module_path, sizeof r->module_path, "%s", m->path);
    r->module.path = r->module_path;
    logf_(r, "module %u %llx %llx %llx %llu %s\n", m->id, (unsigned long long)m->bias,
          (unsigned long long)m->start, (unsigned long long)m->end,
          (unsigned long long)m->load_seq, m->path);
}

static void on_unload(void *ctx, uint32_t id, uint64_t seq)
{
    rec_t *r = ctx;
    r->nunload++;
    r->unload_id = id;
    r->unload_seq = seq;
    logf_(r, "unload %u %llu\n", id, (unsigned long long)seq);
}

static void on_dropped(void *ctx, uint64_t total)
{
    rec_t *r = ctx;
    r->ndropped++;
    r->dropped = total;
    logf_(r, "dropped %llu\n", (unsigned long long)total);
}

static void on_end(void *ctx, const prof_end_info_t *e)
{
    rec_t *r = ctx;
    r->nend++;
    r->end = *e;
    logf_(r, "end %u %u %d %llu %llu\n", e->reason, e->code_known, e->code,
          (unsigned long long)e->last_seq, (unsigned long long)e->dropped);
}

static prof_decoder_t *new_decoder(rec_t *r)
{
    memset(r, 0, sizeof *r);
    prof_decoder_sink_t sink = {.hello = on_hello, .event = on_event, .stack = on_stack,
                                .module = on_module, .unload = on_unload,
                                .dropped = on_dropped, .end = on_end, .ctx = r};
    prof_decoder_t *d = prof_decoder_new(&sink);
    assert_non_null(d);
    return d;
}

static void rec_free(rec_t *r)
{
    free(r->log);
    r->log = NULL;
}

/* Decodes all of 'b' into 'r', which must succeed; free 'r' with rec_free. */
static void decode_whole(sb_t *b, rec_t *r)
{
    size_t len;
    const uint8_t *data = sb_data(b, &len);
    prof_decoder_t *d = new_decoder(r);
    assert_int_equal(prof_decoder_feed(d, data, len), 0);
    assert_int_equal(prof_decoder_finish(d), 0);
    prof_decoder_free(d);
}

static const char *rec_log(const rec_t *r)
{
    return r->log ? r->log : "";
}

/* ---- the reference stream ------------------------------------------------- */

static const uint64_t k_frames[] = {0x7f0000401000ull, 0x401234ull, 0x7f0000400ff0ull,
                                    0xffffffffffff0000ull};

/* Every event type once, with values that need long varints and negative
 * deltas (addresses, seq and time going down within a batch). Two threads,
 * so two batches. */
static const prof_event_t k_events[] = {
    {.type = MLMEM_EV_ALLOC, .tid = 7, .seq = 1, .time_ns = 100, .addr = 0x555500001000ull,
     .size = 24, .stack_id = 1, .fn = MLMEM_FN_CALLOC},
    {.type = MLMEM_EV_FREE, .tid = 7, .seq = 2, .time_ns = 90, .addr = 0x555500000010ull},
    {.type = MLMEM_EV_REALLOC, .tid = 7, .seq = 3, .time_ns = 150, .addr = 0x7f1234560000ull,
     .size = 1ull << 40, .stack_id = 1, .old_addr = 0x555500001000ull,
     .fn = MLMEM_FN_REALLOC},
    {.type = MLMEM_EV_REALLOC, .tid = 7, .seq = 4, .time_ns = 151, .addr = 0x1000,
     .size = 5, .stack_id = 0, .old_addr = 0, .fn = MLMEM_FN_REALLOCARRAY},
    {.type = MLMEM_EV_MMAP, .tid = 7, .seq = 5, .time_ns = 200, .addr = 0x7f0000000000ull,
     .size = 1ull << 21, .stack_id = 1, .arg = 3ull | (0x22ull << 32)},
    {.type = MLMEM_EV_MMAP_FILE, .tid = 7, .seq = 6, .time_ns = 201, .addr = 0x7e0000000000ull,
     .size = 8192, .stack_id = 0, .arg = 17},
    {.type = MLMEM_EV_MUNMAP, .tid = 7, .seq = 7, .time_ns = 202, .addr = 0x7f0000001000ull,
     .size = 4096},
    {.type = MLMEM_EV_MREMAP, .tid = 7, .seq = 8, .time_ns = 203, .addr = 0x7d0000000000ull,
     .size = 1ull << 22, .stack_id = 1, .old_addr = 0x7f0000000000ull,
     .old_size = 1ull << 21},
    {.type = MLMEM_EV_RSS, .tid = 9, .seq = 10, .time_ns = 300, .size = 123456789},
    {.type = MLMEM_EV_STEP, .tid = 9, .seq = 9, .time_ns = 299, .arg = UINT64_MAX},
    {.type = MLMEM_EV_PHASE, .tid = 9, .seq = 11, .time_ns = 301, .arg = 2},
    {.type = MLMEM_EV_REGION_BEGIN, .tid = 9, .seq = 12, .time_ns = 302, .arg = 5},
    {.type = MLMEM_EV_REGION_END, .tid = 9, .seq = 13, .time_ns = 303},
    {.type = MLMEM_EV_TAG, .tid = 9, .seq = 14, .time_ns = 304, .addr = 0x1234, .arg = 4},
    {.type = MLMEM_EV_FORK, .tid = 9, .seq = 15, .time_ns = 305, .arg = 4242},
    {.type = MLMEM_EV_FILE_READ, .tid = 9, .seq = 16, .time_ns = 306, .addr = 0x9000,
     .size = 65536, .arg = 3},
    {.type = MLMEM_EV_NOP, .tid = 9, .seq = 17, .time_ns = 1ull << 40},
};
#define N_EVENTS (sizeof k_events / sizeof k_events[0])

static const char k_cmdline[] = "python\0train.py\0--epochs=3\0";

/* Builds the reference stream: header, HELLO, MODULE, STACK, both batches,
 * UNLOAD, DROPPED, END. Offsets of the END record go to *end_at. */
static void build_full(sb_t *b, size_t *end_at)
{
    sb_init(b);
    sb_header(b);
    sb_hello_t h = {
        .pid = 4321,
        .ppid = 1,
        .start_realtime_ns = 1700000000123456789ull,
        .stack_mode = MLMEM_STACKS_ALL,
        .stack_threshold = 8192,
        .sample_rate = 1u << 20,
        .page_size = 16384,
        .exe = "/usr/bin/python3.11",
        .cmdline = k_cmdline,
        .cmdline_len = sizeof k_cmdline - 1,
    };
    sb_hello(b, &h);
    sb_module(b, 0, 0x7f0000400000ull, 0x7f0000400000ull, 0x7f0000500000ull, 0,
              "/usr/lib/libc.so.6");
    for (size_t i = 0; i < N_EVENTS; i++) {
        if (i == 0)
            sb_stack(b, 1, 1, k_frames, 4); /* written before the batch it is in */
        sb_event(b, &k_events[i]);
    }
    sb_batch_end(b);
    sb_unload(b, 0, 18);
    sb_dropped(b, 3);
    *end_at = b->out.len;
    sb_end(b, MLMEM_END_EXIT, 1, -2, 17, 5, 4);
}

static void check_event(const prof_event_t *got, const prof_event_t *want)
{
    assert_int_equal(got->type, want->type);
    assert_int_equal(got->tid, want->tid);
    assert_int_equal(got->seq, want->seq);
    assert_int_equal(got->time_ns, want->time_ns);
    assert_int_equal(got->addr, want->addr);
    assert_int_equal(got->size, want->size);
    assert_int_equal(got->old_addr, want->old_addr);
    assert_int_equal(got->old_size, want->old_size);
    assert_int_equal(got->arg, want->arg);
    assert_int_equal(got->stack_id, want->stack_id);
    assert_int_equal(got->fn, want->fn);
    assert_int_equal(got->not_latest, want->not_latest);
}

/* ---- full decode -------------------------------------------------------------- */

static void test_decode_full_stream_every_field(void **state)
{
    (void)state;
    sb_t b;
    size_t end_at, len;
    build_full(&b, &end_at);
    const uint8_t *data = sb_data(&b, &len);

    rec_t r;
    prof_decoder_t *d = new_decoder(&r);
    assert_int_equal(prof_decoder_feed(d, data, len), 0);
    assert_int_equal(prof_decoder_finish(d), 0);
    assert_null(prof_decoder_error(d));
    assert_int_equal(prof_decoder_offset(d), len);
    assert_int_equal(prof_decoder_events(d), N_EVENTS);

    assert_int_equal(r.nhello, 1);
    assert_int_equal(r.hello.pid, 4321);
    assert_int_equal(r.hello.ppid, 1);
    assert_int_equal(r.hello.start_realtime_ns, 1700000000123456789ull);
    assert_int_equal(r.hello.stack_mode, MLMEM_STACKS_ALL);
    assert_int_equal(r.hello.stack_threshold, 8192);
    assert_int_equal(r.hello.sample_rate, 1u << 20);
    assert_int_equal(r.hello.page_size, 16384);
    assert_string_equal(r.exe, "/usr/bin/python3.11");
    assert_int_equal(r.hello.cmdline_len, sizeof k_cmdline - 1);
    assert_memory_equal(r.cmdline, k_cmdline, sizeof k_cmdline - 1);

    assert_int_equal(r.nmodule, 1);
    assert_int_equal(r.module.id, 0);
    assert_int_equal(r.module.bias, 0x7f0000400000ull);
    assert_int_equal(r.module.start, 0x7f0000400000ull);
    assert_int_equal(r.module.end, 0x7f0000500000ull);
    assert_int_equal(r.module.load_seq, 0);
    assert_string_equal(r.module_path, "/usr/lib/libc.so.6");

    assert_int_equal(r.nstack, 1);
    assert_int_equal(r.stack_id, 1);
    assert_int_equal(r.stack_seq, 1);
    assert_int_equal(r.depth, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(r.frames[i], k_frames[i]);

    assert_int_equal(r.nev, N_EVENTS);
    for (size_t i = 0; i < N_EVENTS; i++)
        check_event(&r.ev[i], &k_events[i]);

    assert_int_equal(r.nunload, 1);
    assert_int_equal(r.unload_id, 0);
    assert_int_equal(r.unload_seq, 18);
    assert_int_equal(r.ndropped, 1);
    assert_int_equal(r.dropped, 3);
    assert_int_equal(r.nend, 1);
    assert_int_equal(r.end.reason, MLMEM_END_EXIT);
    assert_int_equal(r.end.code_known, 1);
    assert_int_equal(r.end.code, -2);
    assert_int_equal(r.end.last_seq, 17);
    assert_int_equal(r.end.dropped, 5);
    assert_int_equal(r.end.stacks_lost, 4);

    /* Stream order: hello, module, stack (before the events that use it),
     * the events, unload, dropped, end. */
    const char *log = rec_log(&r);
    const char *ph = strstr(log, "hello "), *pm = strstr(log, "module "),
               *ps = strstr(log, "stack "), *pe = strstr(log, "event "),
               *pu = strstr(log, "unload "), *pd = strstr(log, "dropped "),
               *pn = strstr(log, "end ");
    assert_true(ph && pm && ps && pe && pu && pd && pn);
    assert_true(ph < pm && pm < ps && ps < pe && pe < pu && pu < pd && pd < pn);

    prof_decoder_free(d);
    rec_free(&r);
    sb_free(&b);
}

/* Time is int64 ns since the stream start; a negative one reads as 0. */
static void test_decode_negative_time_reads_as_zero(void **state)
{
    (void)state;
    sb_t b;
    sb_init(&b);
    sb_header(&b);
    prof_event_t e = {.type = MLMEM_EV_RSS, .tid = 1, .seq = 1, .size = 4096};
    sb_event_t(&b, &e, -5000);
    e.seq = 2;
    sb_event_t(&b, &e, 70);
    size_t len;
    const uint8_t *data = sb_data(&b, &len);
    rec_t r;
    prof_decoder_t *d = new_decoder(&r);
    assert_int_equal(prof_decoder_feed(d, data, len), 0);
    assert_int_equal(r.nev, 2);
    assert_int_equal(r.ev[0].time_ns, 0);
    assert_int_equal(r.ev[1].time_ns, 70);
    prof_decoder_free(d);
    rec_free(&r);
    sb_free(&b);
}

/* ---- chunking ----------------------------------------------------------------- */

/* Decodes 'data' in the chunks given by 'cuts' (ascending offsets) and
 * returns the log (caller frees). */
static char *decode_chunked(const uint8_t *data, size_t len, const size_t *cuts, size_t ncuts)
{
    rec_t r;
    prof_decoder_t *d = new_decoder(&r);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        assert_true(to >= at && to <= len);
        assert_int_equal(prof_decoder_feed(d, data + at, to - at), 0);
        at = to;
    }
    assert_int_equal(prof_decoder_finish(d), 0);
    assert_int_equal(prof_decoder_offset(d), len);
    prof_decoder_free(d);
    char *log = r.log;
    assert_non_null(log);
    return log;
}

static void test_decode_any_split_point_same_callbacks(void **state)
{
    (void)state;
    sb_t b;
    size_t end_at, len;
    build_full(&b, &end_at);
    const uint8_t *data = sb_data(&b, &len);
    char *ref = decode_chunked(data, len, NULL, 0);

    for (size_t cut = 0; cut <= len; cut++) {
        char *got = decode_chunked(data, len, &cut, 1);
        assert_string_equal(got, ref);
        free(got);
    }
    prof_decoder_free(NULL); /* documented no-op */
    free(ref);
    sb_free(&b);
}

static void test_decode_one_byte_chunks_same_callbacks(void **state)
{
    (void)state;
    sb_t b;
    size_t end_at, len;
    build_full(&b, &end_at);
    const uint8_t *data = sb_data(&b, &len);
    char *ref = decode_chunked(data, len, NULL, 0);

    size_t *cuts = malloc(len * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    char *got = decode_chunked(data, len, cuts, len - 1);
    assert_string_equal(got, ref);
    free(got);
    free(cuts);
    free(ref);
    sb_free(&b);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_decode_random_chunks_same_callbacks(void **state)
{
    (void)state;
    sb_t b;
    size_t end_at, len;
    build_full(&b, &end_at);
    /* A longer tail: many batches of one thread, and empty feeds. */
    for (uint64_t s = 18; s < 2000; s++)
        sb_alloc(&b, 11, s, s * 3, 0x10000 + s * 64, s % 977, 0);
    const uint8_t *data = sb_data(&b, &len);
    char *ref = decode_chunked(data, len, NULL, 0);

    uint64_t seed = 0x9e3779b97f4a7c15ull;
    size_t cuts[64];
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + rng_next(&seed) % 63;
        for (size_t i = 0; i < n; i++)
            cuts[i] = (size_t)(rng_next(&seed) % (len + 1));
        /* sort (insertion): equal cuts make empty feeds, which is fine */
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                size_t t = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = t;
            }
        char *got = decode_chunked(data, len, cuts, n);
        assert_string_equal(got, ref);
        free(got);
    }
    free(ref);
    sb_free(&b);
}

/* ---- errors ------------------------------------------------------------------- */

/* Feeds 'data' whole and expects an error mentioning 'needle' and "offset
 * <at>:"; returns nothing. Also checks no callback after the error point is
 * invented: the caller checks counts. */
static void expect_error(const uint8_t *data, size_t len, uint64_t at, const char *needle,
                         rec_t *r_out)
{
    rec_t r;
    prof_decoder_t *d = new_decoder(&r);
    assert_int_equal(prof_decoder_feed(d, data, len), -1);
    const char *err = prof_decoder_error(d);
    assert_non_null(err);
    char want[64];
    snprintf(want, sizeof want, "offset %llu: ", (unsigned long long)at);
    if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, needle))
        fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", err, want, needle);
    assert_int_equal(prof_decoder_finish(d), -1);
    assert_string_equal(prof_decoder_error(d), err);
    prof_decoder_free(d);
    if (r_out)
        *r_out = r;
    else
        rec_free(&r);
}

/* Decodes a stream of the given version: a HELLO, then one EVENTS record
 * with 'payload'; the events land in *r (rec_free() it). Returns the
 * decoder's event count (a folded FREE counts). */
static uint64_t decode_one_events_record(unsigned version, const uint8_t *payload, size_t n,
                                         rec_t *r)
{
    sb_t b;
    sb_init(&b);
    sb_header_version(&b, version);
    sb_hello_simple(&b, 1, 0, "x");
    sb_record(&b, MLMEM_REC_EVENTS, payload, n);
    size_t len;
    const uint8_t *data = sb_data(&b, &len);
    prof_decoder_t *d = new_decoder(r);
    assert_int_equal(prof_decoder_feed(d, data, len), 0);
    assert_int_equal(prof_decoder_finish(d), 0);
    uint64_t events = prof_decoder_events(d);
    prof_decoder_free(d);
    sb_free(&b);
    return events;
}

/* The flags in the type byte, written byte by byte as docs/trace-format.md
 * describes them: SEQ_NEXT and SAME_TIME drop the deltas, FREED_NEXT makes
 * an ALLOC stand for itself and the FREE that follows it. A version 1
 * stream (ALLOC: address before size, always from the running address):
 * the reader still reads it. */
static void test_decode_compact_flags(void **state)
{
    (void)state;
    const uint8_t payload[] = {
        7, 4, /* tid 7, 4 encoded events */
        /* seq +5, time +50, addr +0x2000, size 16, no stack, malloc */
        MLMEM_EV_ALLOC, 10, 100, 0x80, 0x80, 0x01, 16, 0, 0,
        /* seq 6, same time, addr +0x40, size 32: and freed as seq 7 */
        MLMEM_EV_ALLOC | MLMEM_EVF_SEQ_NEXT | MLMEM_EVF_SAME_TIME | MLMEM_EVF_FREED_NEXT,
        0x80, 0x01, 32, 0, 0,
        /* seq 8 (next after the folded free), time +2, addr +0x40 */
        MLMEM_EV_FREE | MLMEM_EVF_SEQ_NEXT, 4, 0x80, 0x01,
        /* seq +2, same time, addr +0x40 */
        MLMEM_EV_FREE | MLMEM_EVF_SAME_TIME, 4, 0x80, 0x01,
    };
    rec_t r;
    assert_int_equal(decode_one_events_record(1, payload, sizeof payload, &r), 5);
    assert_int_equal(r.nev, 4); /* the folded FREE counts above, not here */
    const struct {
        uint8_t type, freed_next;
        uint64_t seq, time, addr, size;
    } want[] = {
        {MLMEM_EV_ALLOC, 0, 5, 50, 0x2000, 16},
        {MLMEM_EV_ALLOC, 1, 6, 50, 0x2040, 32}, /* and its FREE as 7 */
        {MLMEM_EV_FREE, 0, 8, 52, 0x2080, 0},
        {MLMEM_EV_FREE, 0, 10, 52, 0x20c0, 0},
    };
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(r.ev[i].freed_next, want[i].freed_next);
        assert_int_equal(r.ev[i].type, want[i].type);
        assert_int_equal(r.ev[i].tid, 7);
        assert_int_equal(r.ev[i].seq, want[i].seq);
        assert_int_equal(r.ev[i].time_ns, want[i].time);
        assert_int_equal(r.ev[i].addr, want[i].addr);
        assert_int_equal(r.ev[i].size, want[i].size);
    }
    rec_free(&r);

    /* FREED_NEXT on anything but an ALLOC is an error, with its offset. */
    sb_t z;
    sb_init(&z);
    sb_header(&z);
    sb_hello_simple(&z, 1, 0, "x");
    size_t at = z.out.len;
    const uint8_t bad[] = {7, 1, MLMEM_EV_FREE | MLMEM_EVF_FREED_NEXT, 2, 2, 2};
    sb_record(&z, MLMEM_REC_EVENTS, bad, sizeof bad);
    size_t len;
    const uint8_t *data = sb_data(&z, &len);
    expect_error(data, len, at, "only an ALLOC can be freed next", NULL);
    sb_free(&z);
}

/* Version 2: an ALLOC's size comes first and its address is a delta from
 * the last ALLOC of the same size class in the record (class 0, sizes 0
 * and over 1024, and a class not seen yet use the running address). */
static void test_decode_addr_by_size_class(void **state)
{
    (void)state;
    const uint8_t next = MLMEM_EVF_SEQ_NEXT | MLMEM_EVF_SAME_TIME;
    const uint8_t payload[] = {
        7, 6, /* tid 7, 6 events */
        /* seq 1, time 0: 24 bytes (class 2, new) at running 0 + 0x1000 */
        MLMEM_EV_ALLOC | MLMEM_EVF_SEQ_NEXT, 0, 24, 0x80, 0x40, 0, 0,
        /* 40 bytes (class 3, new) at running 0x1000 + 0x100 */
        MLMEM_EV_ALLOC | next, 40, 0x80, 0x04, 0, 0,
        /* 20 bytes (class 2): 0x1000 again, a delta of 0 from its class */
        MLMEM_EV_ALLOC | next, 20, 0, 0, 0,
        /* 2000 bytes (class 0): running 0x1000 + 0x20 */
        MLMEM_EV_ALLOC | next, 0xd0, 0x0f, 0x40, 0, 0,
        /* a FREE: running 0x1020 - 0x10 */
        MLMEM_EV_FREE | next, 0x1f,
        /* 48 bytes (class 3): 0x1100 + 0x10 */
        MLMEM_EV_ALLOC | next, 48, 0x20, 0, 0,
    };
    rec_t r;
    decode_one_events_record(MLMEM_STREAM_VERSION, payload, sizeof payload, &r);
    assert_int_equal(r.nev, 6);
    const uint64_t addr[] = {0x1000, 0x1100, 0x1000, 0x1020, 0x1010, 0x1110};
    const uint64_t size[] = {24, 40, 20, 2000, 0, 48};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(r.ev[i].seq, i + 1);
        assert_int_equal(r.ev[i].addr, addr[i]);
        assert_int_equal(r.ev[i].size, size[i]);
    }
    rec_free(&r);

    /* The stream builder writes the same layout as the shim's writer: a
     * round trip through it (two records, so the classes start over). */
    sb_t w;
    sb_init(&w);
    sb_header(&w);
    sb_hello_simple(&w, 1, 0, "x");
    for (uint64_t s = 1; s <= 60; s++) {
        uint64_t sz = s % 7 ? 8 + (s * 37) % 200 : 5000;
        sb_alloc(&w, 3, s, s, 0x400000 + ((sz + 15) / 16) * 0x1000 + (s % 3) * 16, sz, 0);
        if (s == 30)
            sb_batch_end(&w);
    }
    decode_whole(&w, &r);
    assert_int_equal(r.nev, 60);
    for (uint64_t s = 1; s <= 60; s++) {
        uint64_t sz = s % 7 ? 8 + (s * 37) % 200 : 5000;
        assert_int_equal(r.ev[s - 1].size, sz);
        assert_int_equal(r.ev[s - 1].addr, 0x400000 + ((sz + 15) / 16) * 0x1000 + (s % 3) * 16);
    }
    rec_free(&r);
    sb_free(&w);
}

/* A TEMPORARIES event (count, bytes, largest; their stack from version 5;
 * from version 6 the most held at once and how many were nested) and an
 * ALLOC_LATE (ALLOC's fields, the stack from version 5, and how far back
 * the seq counter stood when the block was made) decode into the
 * prof_event_t fields of prof_event.h; the decoder counts TEMPORARIES as
 * the 2 * count events it stands for. A version 4 stream has no stacks in
 * them ('stack' 0); version 5 carries 'stack' (and a long one); before
 * version 6 the most held at once is the largest, none nested. From
 * version 6 an ALLOC or ALLOC_LATE may say it is not its thread's latest
 * allocation (a flag in its fn byte). */
static void decode_temporaries_and_alloc_late(unsigned version, uint32_t stack)
{
    int v6 = version >= 6;
    prof_event_t ev[] = {
        {.type = MLMEM_EV_ALLOC, .tid = 7, .seq = 1, .time_ns = 100, .addr = 0x555500001000ull,
         .size = 24, .stack_id = 0, .fn = MLMEM_FN_MALLOC, .not_latest = (uint8_t)v6},
        {.type = MLMEM_EV_TEMPORARIES, .tid = 7, .seq = 2, .time_ns = 110, .arg = 5,
         .size = 300, .old_size = 100, .stack_id = stack, .addr = v6 ? 124 : 100,
         .old_addr = v6 ? 2 : 0},
        /* made when the counter stood at 4: sent as 'back' 5 */
        {.type = MLMEM_EV_ALLOC_LATE, .tid = 7, .seq = 9, .time_ns = 120,
         .addr = 0x555500001020ull, .size = 24, .fn = MLMEM_FN_CALLOC, .arg = 4,
         .stack_id = stack ? stack + 1 : 0, .not_latest = (uint8_t)v6},
        /* long varints: a count past 2^32, bytes past 2^40 */
        {.type = MLMEM_EV_TEMPORARIES, .tid = 7, .seq = 10, .time_ns = 130,
         .arg = 5000000000ull, .size = 3ull << 40, .old_size = 1024,
         .stack_id = stack ? 1000000 : 0, .addr = v6 ? 1ull << 36 : 1024,
         .old_addr = v6 ? 4000000000ull : 0},
        {.type = MLMEM_EV_ALLOC_LATE, .tid = 7, .seq = 1ull << 40, .time_ns = 140,
         .addr = 0x7f0000000000ull, .size = 1ull << 30, .fn = MLMEM_FN_MALLOC, .arg = 1,
         .stack_id = stack},
    };
    const size_t n = sizeof ev / sizeof ev[0];
    sb_t b;
    sb_init(&b);
    sb_header_version(&b, version);
    sb_hello_simple(&b, 1, 0, "x");
    for (size_t i = 0; i < n; i++)
        sb_event(&b, &ev[i]);
    size_t len;
    const uint8_t *data = sb_data(&b, &len);
    rec_t r;
    prof_decoder_t *d = new_decoder(&r);
    assert_int_equal(prof_decoder_feed(d, data, len), 0);
    assert_int_equal(prof_decoder_finish(d), 0);
    assert_null(prof_decoder_error(d));
    assert_int_equal(r.nev, n);
    for (size_t i = 0; i < n; i++) {
        check_event(&r.ev[i], &ev[i]);
        assert_int_equal(r.ev[i].freed_next, 0);
    }
    /* ALLOC 1, TEMPORARIES 2 * 5, ALLOC_LATE 1, TEMPORARIES 2 * 5e9, ALLOC_LATE 1 */
    assert_int_equal(prof_decoder_events(d), 1 + 10 + 1 + 10000000000ull + 1);
    prof_decoder_free(d);
    rec_free(&r);
    sb_free(&b);
}

static void test_decode_v4_temporaries_and_alloc_late(void **state)
{
    (void)state;
    decode_temporaries_and_alloc_late(4, 0);
}

static void test_decode_v5_temporaries_and_alloc_late_with_stacks(void **state)
{
    (void)state;
    decode_temporaries_and_alloc_late(5, 3);
}

static void test_decode_v6_nested_temporaries_and_not_latest(void **state)
{
    (void)state;
    decode_temporaries_and_alloc_late(6, 3);
}

/* An ALLOC_LATE's address is a delta against the last block of its size
 * class, in the same state as ALLOC's: written after an ALLOC of its
 * class it is a delta from that ALLOC's address, not the running one, and
 * the next ALLOC of the class goes from it; in class 0 it goes from the
 * running address, and moves it. Written byte by byte. */
static void test_decode_alloc_late_shares_size_class_addr(void **state)
{
    (void)state;
    const uint8_t next = MLMEM_EVF_SEQ_NEXT | MLMEM_EVF_SAME_TIME;
    const uint8_t payload[] = {
        7, 6, /* tid 7, 6 events */
        /* seq 1, time 50: 24 bytes (class 2, new) at running 0 + 0x1000 */
        MLMEM_EV_ALLOC | MLMEM_EVF_SEQ_NEXT, 100, 24, 0x80, 0x40, 0, 0,
        /* a FREE moves the running address to 0x1000 + 0x8000 */
        MLMEM_EV_FREE | next, 0x80, 0x80, 0x04,
        /* ALLOC_LATE of 24 bytes (class 2): 0x1000 + 32, calloc, back 2 */
        MLMEM_EV_ALLOC_LATE | next, 24, 64, MLMEM_FN_CALLOC, 2,
        /* 20 bytes (class 2): a delta of 0 from the ALLOC_LATE's 0x1020 */
        MLMEM_EV_ALLOC | next, 20, 0, 0, 0,
        /* ALLOC_LATE of 2000 bytes (class 0): running 0x1020 + 0x10, back 1 */
        MLMEM_EV_ALLOC_LATE | next, 0xd0, 0x0f, 0x20, MLMEM_FN_MALLOC, 1,
        /* a FREE: running 0x1030 + 0 */
        MLMEM_EV_FREE | next, 0,
    };
    rec_t r;
    assert_int_equal(decode_one_events_record(4, payload, sizeof payload, &r), 6);
    assert_int_equal(r.nev, 6);
    const struct {
        uint8_t type, fn;
        uint64_t addr, size, arg;
    } want[] = {
        {MLMEM_EV_ALLOC, MLMEM_FN_MALLOC, 0x1000, 24, 0},
        {MLMEM_EV_FREE, 0, 0x9000, 0, 0},
        {MLMEM_EV_ALLOC_LATE, MLMEM_FN_CALLOC, 0x1020, 24, 1},
        {MLMEM_EV_ALLOC, MLMEM_FN_MALLOC, 0x1020, 20, 0},
        {MLMEM_EV_ALLOC_LATE, MLMEM_FN_MALLOC, 0x1030, 2000, 4},
        {MLMEM_EV_FREE, 0, 0x1030, 0, 0},
    };
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(r.ev[i].type, want[i].type);
        assert_int_equal(r.ev[i].seq, i + 1);
        assert_int_equal(r.ev[i].time_ns, 50);
        assert_int_equal(r.ev[i].addr, want[i].addr);
        assert_int_equal(r.ev[i].size, want[i].size);
        assert_int_equal(r.ev[i].fn, want[i].fn);
        assert_int_equal(r.ev[i].arg, want[i].arg);
        assert_int_equal(r.ev[i].stack_id, MLMEM_STACK_NONE);
    }
    rec_free(&r);

    /* The stream builder writes the same bytes for these events. */
    sb_t w;
    sb_init(&w);
    sb_header_version(&w, 4);
    sb_alloc(&w, 7, 1, 50, 0x1000, 24, 0);
    sb_free_ev(&w, 7, 2, 50, 0x9000);
    prof_event_t late = {.type = MLMEM_EV_ALLOC_LATE, .tid = 7, .seq = 3, .time_ns = 50,
                         .addr = 0x1020, .size = 24, .fn = MLMEM_FN_CALLOC, .arg = 1};
    sb_event(&w, &late);
    sb_alloc(&w, 7, 4, 50, 0x1020, 20, 0);
    sb_alloc_late(&w, 7, 5, 50, 0x1030, 2000, 4);
    sb_free_ev(&w, 7, 6, 50, 0x1030);
    rec_t r2;
    decode_whole(&w, &r2);
    assert_int_equal(r2.nev, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(r2.ev[i].type, want[i].type);
        assert_int_equal(r2.ev[i].addr, want[i].addr);
        assert_int_equal(r2.ev[i].arg, want[i].arg);
    }
    rec_free(&r2);
    sb_free(&w);
}

/* Decodes one stream of 'version' holding a HELLO, an ALLOC (event 0) and
 * 'bad' (event 1), and expects the error 'needle' at the EVENTS record,
 * with the ALLOC delivered and nothing after it. */
static void expect_event_error(unsigned version, const prof_event_t *bad, const char *needle)
{
    sb_t b;
    sb_init(&b);
    sb_header_version(&b, version);
    sb_hello_simple(&b, 1, 0, "x");
    size_t at = b.out.len;
    sb_alloc(&b, bad->tid, bad->seq - 1, bad->time_ns, 0x1000, 16, 0);
    sb_event(&b, bad);
    size_t len;
    const uint8_t *data = sb_data(&b, &len);
    rec_t r;
    expect_error(data, len, at, needle, &r);
    assert_int_equal(r.nev, 1);
    assert_int_equal(r.ev[0].type, MLMEM_EV_ALLOC);
    rec_free(&r);
    sb_free(&b);
}

/* Decodes the same stream and expects it to be accepted, 'ev' delivered. */
static void expect_event_ok(unsigned version, const prof_event_t *ev)
{
    sb_t b;
    sb_init(&b);
    sb_header_version(&b, version);
    sb_hello_simple(&b, 1, 0, "x");
    sb_alloc(&b, ev->tid, ev->seq - 1, ev->time_ns, 0x1000, 16, 0);
    sb_event(&b, ev);
    rec_t r;
    decode_whole(&b, &r);
    assert_int_equal(r.nev, 2);
    check_event(&r.ev[1], ev);
    rec_free(&r);
    sb_free(&b);
}

/* TEMPORARIES that cannot be: no blocks, the largest over all their
 * bytes, more bytes than count blocks of the largest; from version 6 more
 * nested than blocks, or the most held at once past 2^64. The limits
 * themselves are accepted. */
static void test_decode_temporaries_malformed(void **state)
{
    (void)state;
    prof_event_t e = {.type = MLMEM_EV_TEMPORARIES, .tid = 3, .seq = 5, .time_ns = 10};
    /* count 0 (bytes and largest 0: nothing else is wrong) */
    e.arg = 0, e.size = 0, e.old_size = 0;
    expect_event_error(4, &e,
                       "event 1 of an EVENTS record: TEMPORARIES of 0 blocks, 0 bytes, "
                       "the largest 0, cannot be");
    /* largest > bytes (2 * 20 >= 10) */
    e.arg = 2, e.size = 10, e.old_size = 20;
    expect_event_error(4, &e,
                       "event 1 of an EVENTS record: TEMPORARIES of 2 blocks, 10 bytes, "
                       "the largest 20, cannot be");
    /* bytes > count * largest (largest <= bytes) */
    e.arg = 2, e.size = 41, e.old_size = 20;
    expect_event_error(4, &e,
                       "event 1 of an EVENTS record: TEMPORARIES of 2 blocks, 41 bytes, "
                       "the largest 20, cannot be");

    /* Accepted (before version 6 the most held at once is the largest). */
    e.arg = 2, e.size = 40, e.old_size = 20, e.addr = 20; /* bytes == count * largest */
    expect_event_ok(4, &e);
    e.arg = 1, e.size = 7, e.old_size = 7, e.addr = 7;    /* one block: bytes == largest */
    expect_event_ok(4, &e);

    /* Version 6: more nested than blocks; the most held at once past 2^64
     * (the builder writes addr - largest, wrapping: UINT64_MAX - 4 here) */
    e.arg = 2, e.size = 40, e.old_size = 20, e.addr = 20, e.old_addr = 3;
    expect_event_error(6, &e,
                       "event 1 of an EVENTS record: TEMPORARIES of 2 blocks, 3 of them "
                       "nested, 0 bytes held beside the largest, cannot be");
    e.old_addr = 0, e.addr = 15;
    expect_event_error(6, &e,
                       "event 1 of an EVENTS record: TEMPORARIES of 2 blocks, 0 of them "
                       "nested, 18446744073709551611 bytes held beside the largest, cannot be");
    e.old_addr = 2, e.addr = 20; /* all nested, nothing beside */
    expect_event_ok(6, &e);
}

/* ALLOC_LATE going back 0 (made after its own number) or further back
 * than its seq (before the counter started) cannot be; back == seq (made
 * when the counter stood at 0) is accepted. */
static void test_decode_alloc_late_malformed(void **state)
{
    (void)state;
    prof_event_t e = {.type = MLMEM_EV_ALLOC_LATE, .tid = 3, .seq = 5, .time_ns = 10,
                      .addr = 0x2000, .size = 48, .fn = MLMEM_FN_MALLOC};
    e.arg = 5; /* back 0 */
    expect_event_error(4, &e,
                       "event 1 of an EVENTS record: ALLOC_LATE goes back 0 from sequence "
                       "number 5");
    e.arg = UINT64_MAX; /* back 5 - UINT64_MAX = 6 (wrapping): > seq */
    expect_event_error(4, &e,
                       "event 1 of an EVENTS record: ALLOC_LATE goes back 6 from sequence "
                       "number 5");

    e.arg = 0; /* back 5 == seq */
    expect_event_ok(4, &e);
    e.arg = 4; /* back 1 */
    expect_event_ok(4, &e);
}

/* TEMPORARIES and ALLOC_LATE are new in version 4: in a version 3 stream
 * either is an error naming the type and the version, though its fields
 * are well-formed. */
static void test_decode_v4_events_rejected_before_v4(void **state)
{
    (void)state;
    prof_event_t t = {.type = MLMEM_EV_TEMPORARIES, .tid = 3, .seq = 5, .time_ns = 10,
                      .arg = 2, .size = 30, .old_size = 20, .addr = 20};
    prof_event_t l = {.type = MLMEM_EV_ALLOC_LATE, .tid = 3, .seq = 5, .time_ns = 10,
                      .addr = 0x2000, .size = 48, .fn = MLMEM_FN_MALLOC, .arg = 3};
    expect_event_error(3, &t,
                       "event 1 of an EVENTS record has type 17, new in version 4 of the "
                       "stream (this one is version 3)");
    expect_event_error(3, &l,
                       "event 1 of an EVENTS record has type 18, new in version 4 of the "
                       "stream (this one is version 3)");
    /* the same events in version 4 */
    expect_event_ok(4, &t);
    expect_event_ok(4, &l);
}

static void test_decode_bad_magic(void **state)
{
    (void)state;
    const uint8_t data[] = "MLMEMTRC\1\0";
    expect_error(data, 10, 0, "bad magic", NULL);
}

static void test_decode_wrong_version(void **state)
{
    (void)state;
    sb_t b;
    sb_init(&b);
    sb_header_version(&b, MLMEM_STREAM_VERSION + 1);
    sb_hello_simple(&b, 1, 0, "x");
    size_t len;
    const uint8_t *data = sb_data(&b, &len);
    rec_t r;
    char needle[64];
    snprintf(needle, sizeof needle, "version %d is not supported", MLMEM_STREAM_VERSION + 1);
    expect_error(data, len, 8, needle, &r);
    assert_int_equal(r.nhello, 0);
    rec_free(&r);
    sb_free(&b);

    sb_t z;
    sb_init(&z);
    sb_header_version(&z, 0);
    sb_hello_simple(&z, 1, 0, "x");
    data = sb_data(&z, &len);
    expect_error(data, len, 8, "version 0 is not supported", NULL);
    sb_free(&z);
}

static void test_decode_record_length_over_limit(void **state)
{
    (void)state;
    sb_t b;
    sb_init(&b);
    sb_header(&b);
    sb_hello_simple(&b, 1, 0, "x");
    size_t at = b.out.len;
    uint8_t rec[1 + MLMEM_VARINT_MAX];
    rec[0] = MLMEM_REC_EVENTS;
    size_t n = 1 + mlmem_varint_put(rec + 1, (64ull << 20) + 1);
    sb_raw(&b, rec, n);
    size_t len;
    const uint8_t *data = sb_data(&b, &len);
    rec_t r;
    expect_error(data, len, at, "exceeds the 67108864-byte limit", &r);
    assert_int_equal(r.nhello, 1); /* what came before was decoded */
    rec_free(&r);

    /* The limit itself is accepted as a length (the decoder waits for it). */
    sb_t ok;
    sb_init(&ok);
    sb_header(&ok);
    n = 1 + mlmem_varint_put(rec + 1, 64ull << 20);
    sb_raw(&ok, rec, n);
    data = sb_data(&ok, &len);
    prof_decoder_t *d = new_decoder(&r);
    assert_int_equal(prof_decoder_feed(d, data, len), 0);
    assert_int_equal(prof_decoder_finish(d), -1);
    prof_decoder_free(d);
    rec_free(&r);
    sb_free(&ok);
    sb_free(&b);
}

static void test_decode_length_not_a_varint(void **state)
{
    (void)state;
    sb_t b;
    sb_init(&b);
    sb_header(&b);
    uint8_t rec[12];
    rec[0] = MLMEM_REC_DROPPED;
    memset(rec + 1, 0xff, 11); /* 11 continuation bytes: never ends */
    sb_raw(&b, rec, sizeof rec);
    size_t len;
    const uint8_t *data = sb_data(&b, &len);
    expect_error(data, len, MLMEM_STREAM_HEADER_LEN, "not a valid varint", NULL);
    sb_free(&b);
}

static void test_decode_truncated_record_at_finish(void **state)
{
    (void)state;
    sb_t b;
    size_t end_at, len;
    build_full(&b, &end_at);
    const uint8_t *data = sb_data(&b, &len);

    /* Cut inside the END record: everything before it decodes, finish fails
     * and names the offset where the partial record starts. */
    rec_t r;
    prof_decoder_t *d = new_decoder(&r);
    assert_int_equal(prof_decoder_feed(d, data, len - 1), 0);
    assert_int_equal(r.nend, 0);
    assert_int_equal(r.nev, N_EVENTS);
    assert_int_equal(prof_decoder_finish(d), -1);
    const char *err = prof_decoder_error(d);
    assert_non_null(err);
    char want[64];
    snprintf(want, sizeof want, "offset %zu: ", end_at);
    assert_true(strncmp(err, want, strlen(want)) == 0);
    assert_non_null(strstr(err, "ends inside a record"));
    prof_decoder_free(d);
    rec_free(&r);

    /* Cut inside the header. */
    d = new_decoder(&r);
    assert_int_equal(prof_decoder_feed(d, data, 5), 0);
    assert_int_equal(prof_decoder_finish(d), -1);
    assert_true(strncmp(prof_decoder_error(d), "offset 0: ", 10) == 0);
    prof_decoder_free(d);
    rec_free(&r);

    /* Every cut short of the end: finish fails, or (at a record boundary)
     * succeeds with fewer callbacks. */
    for (size_t cut = 0; cut < len; cut++) {
        d = new_decoder(&r);
        assert_int_equal(prof_decoder_feed(d, data, cut), 0);
        int rc = prof_decoder_finish(d);
        if (rc == 0)
            assert_true(prof_decoder_offset(d) == cut &&
                        (cut == 0 || cut >= MLMEM_STREAM_HEADER_LEN));
        else
            assert_non_null(prof_decoder_error(d));
        assert_int_equal(r.nend, 0);
        prof_decoder_free(d);
        rec_free(&r);
    }
    sb_free(&b);
}

/* An empty stream is clean (decode.h): a process that ended or exec'd
 * before its shim sent anything. */
static void test_decode_empty_stream_is_clean(void **state)
{
    (void)state;
    rec_t r;
    prof_decoder_t *d = new_decoder(&r);
    assert_int_equal(prof_decoder_feed(d, NULL, 0), 0);
    assert_int_equal(prof_decoder_finish(d), 0);
    assert_null(prof_decoder_error(d));
    assert_int_equal(r.calls, 0);
    prof_decoder_free(d);
    rec_free(&r);

    /* A header alone is a valid (empty) stream. */
    sb_t b;
    sb_init(&b);
    sb_header(&b);
    decode_whole(&b, &r);
    assert_int_equal(r.calls, 0);
    rec_free(&r);
    sb_free(&b);
}

static void test_decode_unknown_event_type(void **state)
{
    (void)state;
    sb_t b;
    sb_init(&b);
    sb_header(&b);
    sb_hello_simple(&b, 1, 0, "x");
    size_t at = b.out.len;
    sb_alloc(&b, 1, 1, 10, 0x1000, 8, 0);
    prof_event_t e = {.type = 31, .tid = 1, .seq = 2, .time_ns = 11};
    sb_event(&b, &e);
    size_t len;
    const uint8_t *data = sb_data(&b, &len);
    rec_t r;
    expect_error(data, len, at, "event 1 of an EVENTS record has unknown type 31", &r);
    assert_int_equal(r.nev, 1); /* the event before it was delivered */
    rec_free(&r);

    /* Type 0 is not an event either. */
    sb_t z;
    sb_init(&z);
    sb_header(&z);
    e.type = 0;
    e.seq = 1;
    sb_event(&z, &e);
    data = sb_data(&z, &len);
    expect_error(data, len, MLMEM_STREAM_HEADER_LEN, "unknown type 0", NULL);
    sb_free(&z);
    sb_free(&b);
}

static void test_decode_event_with_seq_zero(void **state)
{
    (void)state;
    sb_t b;
    sb_init(&b);
    sb_header(&b);
    sb_alloc(&b, 3, 0, 10, 0x1000, 8, 0);
    size_t len;
    const uint8_t *data = sb_data(&b, &len);
    rec_t r;
    expect_error(data, len, MLMEM_STREAM_HEADER_LEN, "sequence number 0", &r);
    assert_int_equal(r.nev, 0);
    rec_free(&r);
    sb_free(&b);
}

typedef struct {
    uint32_t tid;
    char name[80];
    int calls;
} thread_seen_t;

static void on_thread_name(void *ctx, uint32_t tid, const char *name)
{
    thread_seen_t *t = ctx;
    t->tid = tid;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->calls++;
}

/* THREAD records carry a thread's name; one over 64 bytes is malformed. */
static void test_decode_thread_names(void **state)
{
    (void)state;
    sb_t b;
    sb_init(&b);
    sb_header(&b);
    uint8_t payload[128];
    size_t n = mlmem_varint_put(payload, 4242);
    n += mlmem_varint_put(payload + n, 6);
    memcpy(payload + n, "loader", 6);
    sb_record(&b, MLMEM_REC_THREAD, payload, n + 6);
    size_t len;
    const uint8_t *data = sb_data(&b, &len);
    thread_seen_t seen = {0};
    prof_decoder_sink_t sink = {.thread = on_thread_name, .ctx = &seen};
    prof_decoder_t *d = prof_decoder_new(&sink);
    assert_int_equal(prof_decoder_feed(d, data, len), 0);
    assert_int_equal(prof_decoder_finish(d), 0);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.tid, 4242);
    assert_string_equal(seen.name, "loader");
    prof_decoder_free(d);
    sb_free(&b);

    sb_init(&b);
    sb_header(&b);
    n = mlmem_varint_put(payload, 1);
    n += mlmem_varint_put(payload + n, 70);
    memset(payload + n, 'x', 70);
    sb_record(&b, MLMEM_REC_THREAD, payload, n + 70);
    data = sb_data(&b, &len);
    d = prof_decoder_new(&sink);
    assert_int_equal(prof_decoder_feed(d, data, len), -1);
    assert_non_null(strstr(prof_decoder_error(d), "THREAD record is malformed"));
    prof_decoder_free(d);
    sb_free(&b);
}

static void test_decode_unknown_record_tags_skipped(void **state)
{
    (void)state;
    sb_t plain, extra;
    size_t end_at;
    build_full(&plain, &end_at);
    sb_init(&extra);
    sb_header(&extra);
    /* An unknown record first, then the reference records, then more. */
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0x00, 0x02, 0x99};
    sb_record(&extra, 200, junk, sizeof junk);
    sb_record(&extra, 201, junk, 3); /* another unknown tag */
    size_t plen;
    const uint8_t *pdata = sb_data(&plain, &plen);
    sb_raw(&extra, pdata + MLMEM_STREAM_HEADER_LEN, plen - MLMEM_STREAM_HEADER_LEN);
    sb_record(&extra, 9, NULL, 0);
    size_t elen;
    const uint8_t *edata = sb_data(&extra, &elen);

    char *ref = decode_chunked(pdata, plen, NULL, 0);
    char *got = decode_chunked(edata, elen, NULL, 0);
    assert_string_equal(got, ref);
    free(got);
    free(ref);
    sb_free(&plain);
    sb_free(&extra);
}

static void test_decode_events_count_over_bytes(void **state)
{
    (void)state;
    sb_t b;
    sb_init(&b);
    sb_header(&b);
    uint8_t p[16];
    size_t n = mlmem_varint_put(p, 5);      /* tid */
    n += mlmem_varint_put(p + n, 1000);     /* count */
    p[n++] = MLMEM_EV_NOP;
    p[n++] = 2; /* seq delta +1 */
    p[n++] = 0; /* time */
    sb_record(&b, MLMEM_REC_EVENTS, p, n);
    size_t len;
    const uint8_t *data = sb_data(&b, &len);
    rec_t r;
    expect_error(data, len, MLMEM_STREAM_HEADER_LEN, "claims 1000 events in 3 bytes", &r);
    assert_int_equal(r.nev, 0);
    rec_free(&r);

    /* Fewer bytes than the events need, though count <= bytes. */
    sb_t t;
    sb_init(&t);
    sb_header(&t);
    n = mlmem_varint_put(p, 5);
    n += mlmem_varint_put(p + n, 2);
    p[n++] = MLMEM_EV_NOP;
    p[n++] = 2;
    p[n++] = 0;
    p[n++] = MLMEM_EV_ALLOC;
    sb_record(&t, MLMEM_REC_EVENTS, p, n);
    data = sb_data(&t, &len);
    expect_error(data, len, MLMEM_STREAM_HEADER_LEN, "truncated inside event 1", &r);
    assert_int_equal(r.nev, 1);
    rec_free(&r);
    sb_free(&t);
    sb_free(&b);
}

/* Records whose payload does not hold what their tag needs. */
/* END grew a field (stacks_lost): a shim that did not send it reads as 0,
 * and a field appended after it by a later shim is skipped. */
static void test_decode_end_fields_appended(void **state)
{
    (void)state;
    static const struct {
        uint8_t payload[8];
        size_t len;
        uint64_t stacks_lost;
    } cases[] = {
        {{1, 1, 0, 5, 2}, 5, 0},
        {{1, 1, 0, 5, 2, 7}, 6, 7},
        {{1, 1, 0, 5, 2, 7, 9}, 7, 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sb_t b;
        sb_init(&b);
        sb_header(&b);
        sb_record(&b, MLMEM_REC_END, cases[i].payload, cases[i].len);
        rec_t r;
        decode_whole(&b, &r);
        assert_int_equal(r.nend, 1);
        assert_int_equal(r.end.last_seq, 5);
        assert_int_equal(r.end.dropped, 2);
        assert_int_equal(r.end.stacks_lost, cases[i].stacks_lost);
        rec_free(&r);
        sb_free(&b);
    }
}

static void test_decode_malformed_records(void **state)
{
    (void)state;
    static const struct {
        uint8_t tag;
        uint8_t payload[8];
        size_t len;
        const char *needle;
    } cases[] = {
        {MLMEM_REC_HELLO, {1, 2, 3}, 3, "HELLO record is truncated"},
        {MLMEM_REC_EVENTS, {0x80}, 1, "EVENTS record header is malformed"},
        {MLMEM_REC_STACK, {0, 1, 0}, 3, "STACK record is malformed (id 0"},
        {MLMEM_REC_STACK, {1, 1, 0x81, 0x08}, 4, "depth 1025"},
        {MLMEM_REC_STACK, {1, 1, 2, 0, 4}, 5, "STACK record 1 is truncated"},
        /* version 3: outer frames shared with a stack that is not there */
        {MLMEM_REC_STACK, {1, 1, 2, 1, 4}, 5, "shares 1 outer frames, but it has 2 and the stack before it 0"},
        {MLMEM_REC_STACK, {1, 1, 2, 3}, 4, "shares 3 outer frames, but it has 2"},
        {MLMEM_REC_MODULE, {0, 0, 9, 8, 0, 0}, 6, "MODULE record is malformed"},
        {MLMEM_REC_MODULE, {0, 0, 1, 8, 0, 5, 'a'}, 7, "MODULE record is malformed"},
        {MLMEM_REC_UNLOAD, {1}, 1, "UNLOAD record is malformed"},
        {MLMEM_REC_DROPPED, {0}, 0, "DROPPED record is malformed"},
        {MLMEM_REC_END, {1, 1, 0, 5}, 4, "END record is malformed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sb_t b;
        sb_init(&b);
        sb_header(&b);
        sb_record(&b, cases[i].tag, cases[i].payload, cases[i].len);
        size_t len;
        const uint8_t *data = sb_data(&b, &len);
        rec_t r;
        expect_error(data, len, MLMEM_STREAM_HEADER_LEN, cases[i].needle, &r);
        assert_int_equal(r.calls, 0);
        rec_free(&r);
        sb_free(&b);
    }
}

static void test_decode_errors_are_sticky(void **state)
{
    (void)state;
    sb_t bad, good;
    size_t end_at, len, glen;
    sb_init(&bad);
    sb_header(&bad);
    sb_alloc(&bad, 3, 0, 10, 0x1000, 8, 0); /* seq 0 */
    const uint8_t *data = sb_data(&bad, &len);
    build_full(&good, &end_at);
    const uint8_t *gdata = sb_data(&good, &glen);

    rec_t r;
    prof_decoder_t *d = new_decoder(&r);
    /* Fed in two pieces so the error happens on the buffered path. */
    assert_int_equal(prof_decoder_feed(d, data, 3), 0);
    assert_int_equal(prof_decoder_feed(d, data + 3, len - 3), -1);
    char err[256];
    snprintf(err, sizeof err, "%s", prof_decoder_error(d));
    uint64_t off = prof_decoder_offset(d);
    size_t calls = r.calls;

    /* Valid records after the error change nothing. */
    assert_int_equal(prof_decoder_feed(d, gdata + MLMEM_STREAM_HEADER_LEN,
                                       glen - MLMEM_STREAM_HEADER_LEN), -1);
    assert_int_equal(prof_decoder_feed(d, NULL, 0), -1);
    assert_int_equal(prof_decoder_finish(d), -1);
    assert_int_equal(r.calls, calls);
    assert_int_equal(prof_decoder_offset(d), off);
    assert_string_equal(prof_decoder_error(d), err);
    assert_int_equal(prof_decoder_events(d), 0);
    prof_decoder_free(d);
    rec_free(&r);
    sb_free(&bad);
    sb_free(&good);
}

/* A STACK record as ensure_stack_sent() writes it: 64 frames of real-looking
 * addresses, up and down. */
static void test_decode_deep_stack_roundtrip(void **state)
{
    (void)state;
    uint64_t frames[MLMEM_STACK_MAX_DEPTH];
    uint64_t seed = 12345;
    for (int i = 0; i < MLMEM_STACK_MAX_DEPTH; i++)
        frames[i] = (i & 1) ? 0x400000 + rng_next(&seed) % 0x100000
                            : 0x7f0000000000ull + rng_next(&seed) % 0x10000000;
    sb_t b;
    sb_init(&b);
    sb_header(&b);
    sb_stack(&b, 0xffffff, 99, frames, MLMEM_STACK_MAX_DEPTH);
    size_t len;
    const uint8_t *data = sb_data(&b, &len);
    rec_t r;
    prof_decoder_t *d = new_decoder(&r);
    assert_int_equal(prof_decoder_feed(d, data, len), 0);
    assert_int_equal(r.nstack, 1);
    assert_int_equal(r.stack_id, 0xffffff);
    assert_int_equal(r.stack_seq, 99);
    assert_int_equal(r.depth, MLMEM_STACK_MAX_DEPTH);
    assert_memory_equal(r.frames, frames, sizeof frames);
    prof_decoder_free(d);
    rec_free(&r);
    sb_free(&b);
}

/* Version 3: consecutive stacks send only their inner frames and the count
 * of outer frames they share with the stack before; each comes out whole,
 * whether the one before was deeper, shallower or unrelated. A version 2
 * stream of the same stacks (no count, every frame) decodes the same. */
static void test_decode_stacks_share_outer_frames(void **state)
{
    (void)state;
    static const uint64_t outer[6] = {0x7f0000001000, 0x7f0000002000, 0x401000,
                                      0x402000,       0x403000,       0x404000};
    enum { N = 5 };
    uint64_t st[N][12];
    uint32_t depth[N] = {6, 8, 7, 3, 9};
    uint32_t want_shared[N] = {0, 6, 6, 0, 0};
    for (uint32_t k = 0; k < N; k++) {
        uint32_t inner = depth[k] - (k == 3 ? 0 : 6);
        for (uint32_t i = 0; i < inner; i++)
            st[k][i] = 0x500000 + 0x100 * k + i;
        if (k != 3)
            memcpy(&st[k][inner], outer, sizeof outer);
    }
    for (unsigned version = 2; version <= MLMEM_STREAM_VERSION; version++) {
        sb_t b;
        sb_init(&b);
        sb_header_version(&b, version);
        size_t cut[N + 1], len;
        sb_data(&b, &cut[0]);
        for (uint32_t k = 0; k < N; k++) {
            size_t before = cut[k];
            sb_stack(&b, k + 1, 10 + k, st[k], depth[k]);
            sb_data(&b, &cut[k + 1]);
            /* the shared frames are not in the record */
            size_t grew = cut[k + 1] - before;
            if (version >= 3 && want_shared[k])
                assert_true(grew < 3 + 8 * (depth[k] - want_shared[k]));
        }
        const uint8_t *data = sb_data(&b, &len);
        rec_t r;
        prof_decoder_t *d = new_decoder(&r);
        size_t at = 0;
        for (uint32_t k = 0; k < N; k++) {
            assert_int_equal(prof_decoder_feed(d, data + at, cut[k + 1] - at), 0);
            at = cut[k + 1];
            assert_int_equal(r.nstack, (int)k + 1);
            assert_int_equal(r.stack_id, k + 1);
            assert_int_equal(r.depth, depth[k]);
            assert_memory_equal(r.frames, st[k], depth[k] * sizeof(uint64_t));
        }
        assert_int_equal(prof_decoder_finish(d), 0);
        prof_decoder_free(d);
        rec_free(&r);
        sb_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_full_stream_every_field),
        cmocka_unit_test(test_decode_end_fields_appended),
        cmocka_unit_test(test_decode_negative_time_reads_as_zero),
        cmocka_unit_test(test_decode_any_split_point_same_callbacks),
        cmocka_unit_test(test_decode_one_byte_chunks_same_callbacks),
        cmocka_unit_test(test_decode_random_chunks_same_callbacks),
        cmocka_unit_test(test_decode_bad_magic),
        cmocka_unit_test(test_decode_wrong_version),
        cmocka_unit_test(test_decode_addr_by_size_class),
        cmocka_unit_test(test_decode_v4_temporaries_and_alloc_late),
        cmocka_unit_test(test_decode_v5_temporaries_and_alloc_late_with_stacks),
        cmocka_unit_test(test_decode_v6_nested_temporaries_and_not_latest),
        cmocka_unit_test(test_decode_alloc_late_shares_size_class_addr),
        cmocka_unit_test(test_decode_temporaries_malformed),
        cmocka_unit_test(test_decode_alloc_late_malformed),
        cmocka_unit_test(test_decode_v4_events_rejected_before_v4),
        cmocka_unit_test(test_decode_record_length_over_limit),
        cmocka_unit_test(test_decode_length_not_a_varint),
        cmocka_unit_test(test_decode_truncated_record_at_finish),
        cmocka_unit_test(test_decode_empty_stream_is_clean),
        cmocka_unit_test(test_decode_unknown_event_type),
        cmocka_unit_test(test_decode_compact_flags),
        cmocka_unit_test(test_decode_event_with_seq_zero),
        cmocka_unit_test(test_decode_unknown_record_tags_skipped),
        cmocka_unit_test(test_decode_thread_names),
        cmocka_unit_test(test_decode_events_count_over_bytes),
        cmocka_unit_test(test_decode_malformed_records),
        cmocka_unit_test(test_decode_errors_are_sticky),
        cmocka_unit_test(test_decode_deep_stack_roundtrip),
        cmocka_unit_test(test_decode_stacks_share_outer_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
