/*
 * test_trace_file.c - the trace file (profiler/trace_file.h): a written
 * trace replays into a session exactly as the live bytes did; truncated,
 * corrupt, foreign, empty and missing files give errors that name the file
 * and never crash; --partial analyzes what is there; the trailer is checked.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "profiler/session.h"
#include "profiler/trace_file.h"
#include "tests/stream_builder.h"

/* ---- helpers -------------------------------------------------------------- */

static char g_dir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/mlmem_tf_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in_dir(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", g_dir, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    uint8_t *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* One process's stream: HELLO, 'n' allocations of which every other one is
 * freed, split across two threads (so batches interleave), END. */
static void build_process(sb_t *b, uint32_t pid, uint32_t ppid, const char *name, uint32_t n,
                          uint64_t base, int with_end, int32_t code)
{
    sb_init(b);
    sb_header(b);
    sb_hello_simple(b, pid, ppid, name);
    const uint64_t frames[] = {0x401000 + pid, 0x402000, 0x7f0000001234ull};
    sb_stack(b, 1, 1, frames, 3);
    uint64_t seq = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t tid = pid + (i / 50) % 2;
        seq++;
        sb_alloc(b, tid, seq, seq * 100, base + i * 4096, 100 + i * 7 % 5000, i % 3 ? 1 : 0);
        if (i % 2) {
            seq++;
            sb_free_ev(b, tid, seq, seq * 100, base + (i - 1) * 4096);
        }
    }
    if (with_end)
        sb_end(b, MLMEM_END_EXIT, 1, code, seq, 0, 0);
    else
        sb_batch_end(b);
}

typedef struct {
    sb_t sb[3];
    size_t count;
} streams_t;

/* The run: pid 100 (root) forks 101, then 100 execs (a second stream with
 * pid 100). */
static void build_run(streams_t *st, uint32_t n)
{
    st->count = 3;
    build_process(&st->sb[0], 100, 1, "launcher", n / 4, 0x10000000, 1, 0);
    build_process(&st->sb[1], 101, 100, "worker", n, 0x20000000, 1, 3);
    build_process(&st->sb[2], 100, 1, "trainer", n, 0x30000000, 1, 0);
}

static void free_run(streams_t *st)
{
    for (size_t i = 0; i < st->count; i++)
        sb_free(&st->sb[i]);
}

static prof_run_info_t run_info(void)
{
    prof_run_info_t ri = {
        .root_pid = 100,
        .end = PROF_END_SIGNALED,
        .exit_code = 0,
        .signal = 9,
        .end_realtime_ns = 1700000009000000000ull,
        .command = strdup("launcher arg"),
    };
    return ri;
}

/* The calls a live run makes, in one fixed order: opens, data in 'chunk'-
 * byte pieces round-robin over the streams, closes, run info. 'w' (if not
 * NULL) records the same calls into a trace; 's' (if not NULL) gets them. */
static void play(const streams_t *st, size_t chunk, prof_trace_writer_t *w, prof_session_t *s,
                 int with_run_info)
{
    size_t pos[3] = {0}, len[3];
    const uint8_t *data[3];
    for (uint32_t i = 0; i < st->count; i++) {
        data[i] = st->sb[i].out.data;
        len[i] = st->sb[i].out.len;
        if (w)
            assert_int_equal(prof_trace_write_stream(w, MLMEM_TREC_STREAM_OPEN, i + 1, NULL, 0),
                             0);
        if (s)
            assert_int_equal(prof_session_open(s, i + 1), 0);
    }
    for (int more = 1; more;) {
        more = 0;
        for (uint32_t i = 0; i < st->count; i++) {
            size_t n = len[i] - pos[i] < chunk ? len[i] - pos[i] : chunk;
            if (!n)
                continue;
            more = 1;
            if (w)
                assert_int_equal(prof_trace_write_stream(w, MLMEM_TREC_STREAM_DATA, i + 1,
                                                         data[i] + pos[i], n),
                                 0);
            if (s)
                assert_int_equal(prof_session_data(s, i + 1, data[i] + pos[i], n), 0);
            pos[i] += n;
        }
    }
    for (uint32_t i = 0; i < st->count; i++) {
        if (w)
            assert_int_equal(prof_trace_write_stream(w, MLMEM_TREC_STREAM_CLOSE, i + 1, NULL, 0),
                             0);
        if (s)
            assert_int_equal(prof_session_close(s, i + 1), 0);
    }
    if (with_run_info) {
        if (w) {
            prof_run_info_t ri = run_info();
            assert_int_equal(prof_trace_write_run_info(w, &ri), 0);
            free(ri.command);
        }
        if (s) {
            prof_run_info_t ri = run_info();
            prof_session_set_run_info(s, &ri); /* takes the command */
        }
    }
}

/* Writes the whole run as a trace at 'path'. */
static void write_run(const char *path, const streams_t *st, size_t chunk)
{
    char err[512] = "";
    prof_trace_writer_t *w = prof_trace_writer_open(path, err, sizeof err);
    if (!w)
        fail_msg("writer_open: %s", err);
    play(st, chunk, w, NULL, 1);
    assert_null(prof_trace_writer_error(w));
    if (prof_trace_writer_close(w, err, sizeof err) != 0)
        fail_msg("writer_close: %s", err);
}

static void assert_results_equal(prof_session_t *a, prof_session_t *b, int32_t pid)
{
    prof_result_t ra, rb;
    assert_int_equal(prof_session_result(a, pid, 0, 0, &ra), 0);
    assert_int_equal(prof_session_result(b, pid, 0, 0, &rb), 0);
    assert_true(ra.summary.events > 0);
    assert_memory_equal(&ra.summary, &rb.summary, sizeof ra.summary);
    assert_int_equal(ra.process.pid, rb.process.pid);
    assert_int_equal(ra.process.ppid, rb.process.ppid);
    assert_int_equal(ra.process.end, rb.process.end);
    assert_int_equal(ra.process.exit_code, rb.process.exit_code);
    assert_int_equal(ra.process.signal, rb.process.signal);
    assert_string_equal(ra.process.command, rb.process.command);
    assert_int_equal(ra.site_count, rb.site_count);
    for (size_t i = 0; i < ra.site_count; i++) {
        assert_int_equal(ra.sites[i].stack_id, rb.sites[i].stack_id);
        assert_int_equal(ra.sites[i].bytes_allocated, rb.sites[i].bytes_allocated);
        assert_int_equal(ra.sites[i].frame_count, rb.sites[i].frame_count);
    }
    assert_int_equal(ra.child_count, rb.child_count);
    for (size_t i = 0; i < ra.child_count; i++) {
        assert_int_equal(ra.children[i].pid, rb.children[i].pid);
        assert_int_equal(ra.children[i].peak_bytes, rb.children[i].peak_bytes);
        assert_int_equal(ra.children[i].total_allocations, rb.children[i].total_allocations);
        assert_int_equal(ra.children[i].leaked_bytes, rb.children[i].leaked_bytes);
        assert_int_equal(ra.children[i].end, rb.children[i].end);
        assert_int_equal(ra.children[i].exit_code, rb.children[i].exit_code);
        assert_string_equal(ra.children[i].command, rb.children[i].command);
    }
    prof_result_free(&ra);
    prof_result_free(&rb);
}

/* Checks that err names 'path' and contains one of the needles. */
static void assert_error_about(const char *err, const char *path, const char *n1,
                               const char *n2)
{
    if (!strstr(err, path) || !(strstr(err, n1) || (n2 && strstr(err, n2))))
        fail_msg("error \"%s\" lacks the path or \"%s\"/\"%s\"", err, n1, n2 ? n2 : "");
}

/* A trace's decompressed content, written compressed as one zstd frame. */
static void write_plain_trace(const char *path, const uint8_t *plain, size_t len)
{
    size_t cap = ZSTD_compressBound(len);
    uint8_t *z = malloc(cap);
    assert_non_null(z);
    size_t n = ZSTD_compress(z, cap, plain, len, 3);
    assert_false(ZSTD_isError(n));
    write_file(path, z, n);
    free(z);
}

/* Appends a trace record whose payload is a varint id then 'data'. */
static void trec_stream(sb_t *t, uint8_t tag, uint32_t id, const uint8_t *data, size_t len)
{
    uint8_t *p = malloc(MLMEM_VARINT_MAX + len + 1);
    assert_non_null(p);
    size_t n = mlmem_varint_put(p, id);
    if (len)
        memcpy(p + n, data, len);
    sb_record(t, tag, p, n + len);
    free(p);
}

static void trec_trailer(sb_t *t, uint64_t records, uint64_t bytes)
{
    uint8_t p[2 * MLMEM_VARINT_MAX];
    size_t n = mlmem_varint_put(p, records);
    n += mlmem_varint_put(p + n, bytes);
    sb_record(t, MLMEM_TREC_TRAILER, p, n);
}

static void trace_header(sb_t *t, unsigned version)
{
    uint8_t h[MLMEM_TRACE_HEADER_LEN];
    memcpy(h, MLMEM_TRACE_MAGIC, MLMEM_TRACE_MAGIC_LEN);
    h[8] = (uint8_t)version;
    h[9] = (uint8_t)(version >> 8);
    sb_raw(t, h, sizeof h);
}

/* ---- tests --------------------------------------------------------------- */

static void test_trace_file_replay_matches_live(void **state)
{
    (void)state;
    streams_t st;
    build_run(&st, 2000);
    char path[128];
    path_in_dir(path, sizeof path, "run.trace");
    write_run(path, &st, 333);

    prof_session_t *live = prof_session_new();
    play(&st, 333, NULL, live, 1);

    prof_session_t *rep = prof_session_new();
    prof_trace_stats_t stats;
    char err[512] = "";
    if (prof_trace_replay(path, rep, 0, &stats, err, sizeof err) != 0)
        fail_msg("replay: %s", err);
    assert_int_equal(prof_session_stream_count(rep), 3);
    assert_int_equal(stats.complete, 1);
    size_t total = 0, records = 3 + 3 + 1; /* opens, closes, run info */
    for (size_t i = 0; i < st.count; i++) {
        total += st.sb[i].out.len;
        records += (st.sb[i].out.len + 332) / 333;
    }
    assert_int_equal(stats.stream_bytes, total);
    assert_int_equal(stats.records, records + 1); /* and the trailer */
    struct stat sst;
    assert_int_equal(stat(path, &sst), 0);
    assert_int_equal(stats.compressed_bytes, (uint64_t)sst.st_size);
    assert_int_equal(sst.st_mode & 0777, 0600);

    assert_results_equal(live, rep, 0);
    assert_results_equal(live, rep, 101);
    /* The main process is the exec'd image of the root; run info applied. */
    prof_result_t r;
    assert_int_equal(prof_session_result(rep, 0, 0, 0, &r), 0);
    assert_int_equal(r.process.pid, 100);
    assert_string_equal(r.process.command, "trainer arg");
    assert_int_equal(r.process.end, PROF_END_SIGNALED);
    assert_int_equal(r.process.signal, 9);
    assert_int_equal(r.child_count, 2);
    prof_result_free(&r);

    prof_session_free(live);
    prof_session_free(rep);
    free_run(&st);
}

static void test_trace_file_truncated_is_cut_short(void **state)
{
    (void)state;
    streams_t st;
    build_run(&st, 200);
    char path[128], cut_path[128];
    path_in_dir(path, sizeof path, "full.trace");
    path_in_dir(cut_path, sizeof cut_path, "cut.trace");
    write_run(path, &st, 100);
    size_t len;
    uint8_t *data = read_file(path, &len);
    assert_true(len > 100);

    for (size_t cut = 0; cut < len; cut++) {
        write_file(cut_path, data, cut);
        prof_session_t *s = prof_session_new();
        prof_trace_stats_t stats;
        char err[512] = "";
        assert_int_equal(prof_trace_replay(cut_path, s, 0, &stats, err, sizeof err), -1);
        if (cut == 0)
            assert_error_about(err, cut_path, "empty", NULL);
        else
            assert_error_about(err, cut_path, "cut short", "corrupt data");
        assert_int_equal(stats.complete, 0);
        prof_session_free(s);

        /* --partial never crashes either, and says nothing of a trailer. */
        s = prof_session_new();
        int rc = prof_trace_replay(cut_path, s, 1, &stats, err, sizeof err);
        assert_true(cut == 0 ? rc == -1 : rc == 0 || strstr(err, cut_path));
        prof_session_free(s);
    }
    free(data);
    free_run(&st);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A writer killed after a flush: the trace decodes up to the flush. */
static void test_trace_file_partial_analyzes_what_is_there(void **state)
{
    (void)state;
    sb_t b;
    build_process(&b, 300, 1, "killed", 500, 0x40000000, 0, 0);
    char path[128], err[512] = "";
    path_in_dir(path, sizeof path, "partial.trace");
    prof_trace_writer_t *w = prof_trace_writer_open(path, err, sizeof err);
    assert_non_null(w);
    assert_int_equal(prof_trace_write_stream(w, MLMEM_TREC_STREAM_OPEN, 1, NULL, 0), 0);
    assert_int_equal(
        prof_trace_write_stream(w, MLMEM_TREC_STREAM_DATA, 1, b.out.data, b.out.len), 0);
    /* The writer flushes after the first record written once its flush
     * interval (at most a second) has passed. */
    sleep_ms(1100);
    assert_int_equal(prof_trace_write_stream(w, MLMEM_TREC_STREAM_OPEN, 2, NULL, 0), 0);
    prof_trace_writer_abort(w);

    prof_session_t *s = prof_session_new();
    prof_trace_stats_t stats;
    assert_int_equal(prof_trace_replay(path, s, 0, &stats, err, sizeof err), -1);
    assert_error_about(err, path, "cut short", NULL);
    prof_session_free(s);

    s = prof_session_new();
    if (prof_trace_replay(path, s, 1, &stats, err, sizeof err) != 0)
        fail_msg("partial replay: %s", err);
    assert_int_equal(stats.complete, 0);
    assert_int_equal(stats.records, 3);
    assert_int_equal(stats.stream_bytes, b.out.len);
    assert_int_equal(prof_session_stream_count(s), 2);

    prof_session_t *live = prof_session_new();
    assert_int_equal(prof_session_open(live, 1), 0);
    assert_int_equal(prof_session_data(live, 1, b.out.data, b.out.len), 0);
    assert_int_equal(prof_session_close(live, 1), 0);
    assert_results_equal(live, s, 300);
    prof_result_t r;
    assert_int_equal(prof_session_result(s, 0, 0, 0, &r), 0);
    assert_int_equal(r.process.pid, 300);
    assert_int_equal(r.summary.total_allocations, 500);
    assert_int_equal(r.process.end, PROF_END_UNKNOWN); /* no END, closed */
    prof_result_free(&r);
    prof_session_free(live);
    prof_session_free(s);
    sb_free(&b);
}

/* Fills 'out' with the figures of the main process and of pid 101. */
static void figures(prof_session_t *s, prof_summary_t out[2])
{
    prof_result_t r;
    memset(out, 0, 2 * sizeof *out);
    if (prof_session_result(s, 0, 0, 0, &r) == 0) {
        out[0] = r.summary;
        prof_result_free(&r);
    }
    if (prof_session_result(s, 101, 0, 0, &r) == 0) {
        out[1] = r.summary;
        prof_result_free(&r);
    }
}

/* A flipped byte anywhere in the file: an error that names the file and an
 * offset, never a crash, and never different figures without an error (the
 * zstd frame carries a content checksum). */
static void test_trace_file_flipped_byte_clear_error(void **state)
{
    (void)state;
    streams_t st;
    build_run(&st, 1000);
    char path[128], bad[128], err[512] = "";
    path_in_dir(path, sizeof path, "good.trace");
    path_in_dir(bad, sizeof bad, "flipped.trace");
    write_run(path, &st, 4096);
    prof_session_t *ref = prof_session_new();
    assert_int_equal(prof_trace_replay(path, ref, 0, NULL, err, sizeof err), 0);
    prof_summary_t want[2];
    figures(ref, want);
    prof_session_free(ref);

    size_t len;
    uint8_t *data = read_file(path, &len);
    size_t undetected = 0, wrong = 0, tried = 0;
    for (size_t at = 0; at < len; at += 1 + at / 64) {
        data[at] ^= 0x5a;
        write_file(bad, data, len);
        data[at] ^= 0x5a;
        prof_session_t *s = prof_session_new();
        int rc = prof_trace_replay(bad, s, 0, NULL, err, sizeof err);
        if (rc != 0) {
            assert_error_about(err, bad, "offset", NULL);
        } else {
            undetected++;
            prof_summary_t got[2];
            figures(s, got);
            wrong += memcmp(got, want, sizeof want) != 0;
        }
        tried++;
        prof_session_free(s);
    }
    print_message("flipped bytes: %zu tried, %zu undetected, %zu of them with wrong figures\n",
                  tried, undetected, wrong);
    assert_true(undetected < tried / 2); /* zstd's block structure catches most */

    assert_int_equal(wrong, 0);
    free(data);
    free_run(&st);
}

static void test_trace_file_not_a_trace(void **state)
{
    (void)state;
    char path[128], err[512] = "";
    /* Not zstd at all. */
    path_in_dir(path, sizeof path, "text.txt");
    const char text[] = "hello, this is not a trace file at all\n";
    write_file(path, text, sizeof text - 1);
    prof_session_t *s = prof_session_new();
    assert_int_equal(prof_trace_replay(path, s, 1, NULL, err, sizeof err), -1);
    assert_error_about(err, path, "corrupt data", NULL);
    prof_session_free(s);

    /* zstd, but the wrong magic (an event stream, say). */
    path_in_dir(path, sizeof path, "stream.zst");
    sb_t t;
    sb_init(&t);
    sb_header(&t);
    sb_hello_simple(&t, 1, 0, "x");
    write_plain_trace(path, t.out.data, t.out.len);
    s = prof_session_new();
    assert_int_equal(prof_trace_replay(path, s, 1, NULL, err, sizeof err), -1);
    assert_error_about(err, path, "not an mlmem trace (bad magic)", NULL);
    assert_int_equal(prof_session_stream_count(s), 0);
    prof_session_free(s);
    sb_free(&t);

    /* A later version. */
    path_in_dir(path, sizeof path, "v2.trace");
    sb_init(&t);
    trace_header(&t, 2);
    trec_trailer(&t, 0, 0);
    write_plain_trace(path, t.out.data, t.out.len);
    s = prof_session_new();
    assert_int_equal(prof_trace_replay(path, s, 1, NULL, err, sizeof err), -1);
    assert_error_about(err, path, "offset 8: trace version 2 is not supported", NULL);
    prof_session_free(s);
    sb_free(&t);
}

static void test_trace_file_empty_file(void **state)
{
    (void)state;
    char path[128], err[512] = "";
    path_in_dir(path, sizeof path, "empty.trace");
    write_file(path, NULL, 0);
    prof_session_t *s = prof_session_new();
    assert_int_equal(prof_trace_replay(path, s, 1, NULL, err, sizeof err), -1);
    assert_error_about(err, path, "the file is empty", NULL);
    prof_session_free(s);
}

static void test_trace_file_missing_file_names_path(void **state)
{
    (void)state;
    char path[128], err[512] = "";
    path_in_dir(path, sizeof path, "does-not-exist.trace");
    prof_session_t *s = prof_session_new();
    prof_trace_stats_t stats;
    memset(&stats, 0xff, sizeof stats);
    assert_int_equal(prof_trace_replay(path, s, 1, &stats, err, sizeof err), -1);
    assert_error_about(err, path, "cannot open trace", NULL);
    assert_non_null(strstr(err, "No such file"));
    prof_session_free(s);
}

static void test_trace_file_trailer_checked(void **state)
{
    (void)state;
    sb_t b;
    build_process(&b, 7, 1, "p", 20, 0x1000, 1, 0);
    char path[128], err[512] = "";
    path_in_dir(path, sizeof path, "hand.trace");

    /* A hand-made trace with the right trailer replays: the format is what
     * docs/trace-format.md says. The trailer counts the records before it
     * and the raw stream bytes (not the id prefixes). */
    for (int variant = 0; variant < 5; variant++) {
        sb_t t;
        sb_init(&t);
        trace_header(&t, 1);
        trec_stream(&t, MLMEM_TREC_STREAM_OPEN, 1, NULL, 0);
        trec_stream(&t, MLMEM_TREC_STREAM_DATA, 1, b.out.data, 10);
        trec_stream(&t, MLMEM_TREC_STREAM_DATA, 1, b.out.data + 10, b.out.len - 10);
        sb_record(&t, 77, (const uint8_t *)"future", 6); /* unknown: skipped, counted */
        trec_stream(&t, MLMEM_TREC_STREAM_CLOSE, 1, NULL, 0);
        const char *want = NULL;
        switch (variant) {
        case 0:
            trec_trailer(&t, 5, b.out.len);
            break;
        case 1:
            trec_trailer(&t, 4, b.out.len);
            want = "trailer does not match the contents (4 records";
            break;
        case 2:
            trec_trailer(&t, 5, b.out.len + 1);
            want = "trailer does not match";
            break;
        case 3:
            trec_trailer(&t, 5, b.out.len);
            trec_stream(&t, MLMEM_TREC_STREAM_OPEN, 2, NULL, 0);
            want = "data after the trailer";
            break;
        case 4:
            sb_record(&t, MLMEM_TREC_TRAILER, (const uint8_t *)"\x80", 1);
            want = "trailer is malformed";
            break;
        }
        write_plain_trace(path, t.out.data, t.out.len);
        prof_session_t *s = prof_session_new();
        prof_trace_stats_t stats;
        int rc = prof_trace_replay(path, s, 0, &stats, err, sizeof err);
        if (!want) {
            if (rc != 0)
                fail_msg("variant %d: %s", variant, err);
            assert_int_equal(stats.complete, 1);
            prof_result_t r;
            assert_int_equal(prof_session_result(s, 7, 0, 0, &r), 0);
            assert_int_equal(r.summary.total_allocations, 20);
            prof_result_free(&r);
        } else {
            assert_int_equal(rc, -1);
            assert_error_about(err, path, want, NULL);
        }
        prof_session_free(s);
        sb_free(&t);
    }
    sb_free(&b);
}

/* Lengths in the file cannot make the reader allocate without bound. */
static void test_trace_file_record_length_over_limit(void **state)
{
    (void)state;
    char path[128], err[512] = "";
    path_in_dir(path, sizeof path, "huge.trace");
    sb_t t;
    sb_init(&t);
    trace_header(&t, 1);
    uint8_t rec[1 + MLMEM_VARINT_MAX];
    rec[0] = MLMEM_TREC_STREAM_DATA;
    size_t n = 1 + mlmem_varint_put(rec + 1, 1ull << 40);
    sb_raw(&t, rec, n);
    write_plain_trace(path, t.out.data, t.out.len);
    prof_session_t *s = prof_session_new();
    assert_int_equal(prof_trace_replay(path, s, 1, NULL, err, sizeof err), -1);
    assert_error_about(err, path, "offset 10: record length 1099511627776 exceeds the limit",
                       NULL);
    prof_session_free(s);
    sb_free(&t);

    /* A malformed stream inside a good trace: the session's error, with the
     * trace offset of the record. With allow_partial, as in a live run, only
     * that stream stops and the session keeps the error. */
    sb_init(&t);
    trace_header(&t, 1);
    trec_stream(&t, MLMEM_TREC_STREAM_OPEN, 1, NULL, 0);
    size_t at = t.out.len;
    trec_stream(&t, MLMEM_TREC_STREAM_DATA, 1, (const uint8_t *)"MLMEMXXX\1\0", 10);
    write_plain_trace(path, t.out.data, t.out.len);
    s = prof_session_new();
    assert_int_equal(prof_trace_replay(path, s, 0, NULL, err, sizeof err), -1);
    char want[64];
    snprintf(want, sizeof want, "offset %zu: stream 1", at);
    assert_error_about(err, path, want, NULL);
    assert_non_null(strstr(err, "bad magic"));
    prof_session_free(s);
    s = prof_session_new();
    assert_int_equal(prof_trace_replay(path, s, 1, NULL, err, sizeof err), 0);
    assert_non_null(prof_session_error(s));
    assert_non_null(strstr(prof_session_error(s), "bad magic"));
    prof_session_free(s);
    sb_free(&t);
}

static void test_trace_file_writer_open_unwritable(void **state)
{
    (void)state;
    char path[160], err[512] = "";
    path_in_dir(path, sizeof path, "no/such/dir/x.trace");
    prof_trace_writer_t *w = prof_trace_writer_open(path, err, sizeof err);
    assert_null(w);
    assert_error_about(err, path, "cannot create trace file", NULL);
}

static void test_trace_file_writer_refuses_symlink(void **state)
{
    (void)state;
    char target[128], link[128], err[512] = "";
    path_in_dir(target, sizeof target, "victim");
    path_in_dir(link, sizeof link, "link.trace");
    write_file(target, "keep", 4);
    assert_int_equal(symlink(target, link), 0);
    prof_trace_writer_t *w = prof_trace_writer_open(link, err, sizeof err);
    assert_null(w);
    assert_error_about(err, link, "cannot create trace file", NULL);
    size_t len;
    uint8_t *data = read_file(target, &len);
    assert_int_equal(len, 4); /* not truncated through the link */
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_file_replay_matches_live),
        cmocka_unit_test(test_trace_file_truncated_is_cut_short),
        cmocka_unit_test(test_trace_file_partial_analyzes_what_is_there),
        cmocka_unit_test(test_trace_file_flipped_byte_clear_error),
        cmocka_unit_test(test_trace_file_not_a_trace),
        cmocka_unit_test(test_trace_file_empty_file),
        cmocka_unit_test(test_trace_file_missing_file_names_path),
        cmocka_unit_test(test_trace_file_trailer_checked),
        cmocka_unit_test(test_trace_file_record_length_over_limit),
        cmocka_unit_test(test_trace_file_writer_open_unwritable),
        cmocka_unit_test(test_trace_file_writer_refuses_symlink),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
