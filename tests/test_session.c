/*
 * test_session.c - the multi-process session (profiler/session.h): which
 * stream is the main process, exec detection, the children list, the run's
 * outcome applied to the root, and the errors of stream bookkeeping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "profiler/session.h"
#include "tests/stream_builder.h"

/* ---- helpers -------------------------------------------------------------- */

#define NO_END 0u

/* A process that makes 'n' allocations of 'size' bytes and frees none, then
 * ends with 'reason' (NO_END: the stream is cut off). */
static void build(sb_t *b, uint32_t pid, uint32_t ppid, const char *name, uint32_t n,
                  uint64_t size, uint32_t reason, uint32_t code_known, int32_t code)
{
    sb_init(b);
    sb_header(b);
    sb_hello_simple(b, pid, ppid, name);
    for (uint32_t i = 0; i < n; i++)
        sb_alloc(b, pid, i + 1, 10 * (i + 1), 0x100000 + 0x1000 * i, size, 0);
    if (reason != NO_END)
        sb_end(b, reason, code_known, code, n, 0, 0);
    else
        sb_batch_end(b);
}

/* Opens stream 'id', feeds all of 'b', closes it unless 'keep_open'. */
static void feed(prof_session_t *s, uint32_t id, sb_t *b, int keep_open)
{
    size_t len;
    const uint8_t *data = sb_data(b, &len);
    assert_int_equal(prof_session_open(s, id), 0);
    assert_int_equal(prof_session_data(s, id, data, len), 0);
    if (!keep_open)
        assert_int_equal(prof_session_close(s, id), 0);
}

static void set_run(prof_session_t *s, int32_t root, prof_end_t end, int32_t code, int32_t sig)
{
    prof_run_info_t ri = {
        .root_pid = root,
        .end = end,
        .exit_code = code,
        .signal = sig,
        .end_realtime_ns = 1700000001000000000ull,
        .command = strdup("launcher arg"),
    };
    prof_session_set_run_info(s, &ri);
}

/* The usual run: 100 (root, 2 allocations) forks 101 (3 allocations, exits
 * with 3), then 100 execs (the new image: 4 allocations). */
static prof_session_t *usual_run(void)
{
    prof_session_t *s = prof_session_new();
    assert_non_null(s);
    sb_t a, b, c;
    build(&a, 100, 1, "launcher", 2, 10, MLMEM_END_EXIT, 1, 0);
    build(&b, 101, 100, "worker", 3, 10, MLMEM_END_EXIT, 1, 3);
    build(&c, 100, 1, "trainer", 4, 10, MLMEM_END_EXIT, 1, 0);
    feed(s, 1, &a, 0);
    feed(s, 2, &b, 0);
    feed(s, 3, &c, 0);
    sb_free(&a);
    sb_free(&b);
    sb_free(&c);
    assert_int_equal(prof_session_stream_count(s), 3);
    return s;
}

/* ---- tests --------------------------------------------------------------- */

static void test_session_main_is_last_root_stream(void **state)
{
    (void)state;
    prof_session_t *s = usual_run();
    set_run(s, 100, PROF_END_EXITED, 0, 0);
    prof_analysis_t *m = prof_session_main(s);
    assert_non_null(m);
    assert_int_equal(prof_analysis_pid(m), 100);
    assert_int_equal(prof_analysis_events(m), 4); /* the exec'd image */
    assert_int_equal(prof_analysis_peak_bytes(m), 40);

    prof_result_t r;
    assert_int_equal(prof_session_result(s, 0, 0, 0, &r), 0);
    assert_int_equal(r.process.pid, 100);
    assert_string_equal(r.process.command, "trainer arg");
    assert_int_equal(r.summary.total_allocations, 4);
    prof_result_free(&r);

    /* Asking for pid 100 gives the same (the last image of that pid). */
    assert_int_equal(prof_session_result(s, 100, 0, 0, &r), 0);
    assert_string_equal(r.process.command, "trainer arg");
    prof_result_free(&r);

    /* The root can be a later stream than a child's. */
    prof_session_free(s);
    s = prof_session_new();
    sb_t a, b;
    build(&a, 201, 200, "child", 1, 10, MLMEM_END_EXIT, 1, 0);
    build(&b, 200, 1, "root", 5, 10, MLMEM_END_EXIT, 1, 0);
    feed(s, 1, &a, 0);
    feed(s, 2, &b, 0);
    set_run(s, 200, PROF_END_EXITED, 0, 0);
    assert_int_equal(prof_analysis_pid(prof_session_main(s)), 200);
    sb_free(&a);
    sb_free(&b);
    prof_session_free(s);
}

/* Stacks are symbolized ahead for the process whose result is wanted: the
 * main one (the first stream, and what it execs, not its children), or the
 * pid asked for; for none unless asked. */
static void test_session_prefetch_symbols_of_wanted_process(void **state)
{
    (void)state;
    sb_t a, b, c;
    build(&a, 100, 1, "launcher", 2, 10, MLMEM_END_EXIT, 1, 0);
    build(&b, 101, 100, "worker", 3, 10, MLMEM_END_EXIT, 1, 3);
    build(&c, 100, 1, "trainer", 4, 10, MLMEM_END_EXIT, 1, 0);
    const int32_t wants[] = {-1, 0, 101}; /* -1: not asked */
    for (size_t w = 0; w < 3; w++) {
        int32_t want = wants[w];
        prof_session_t *s = prof_session_new();
        assert_non_null(s);
        if (want >= 0)
            prof_session_prefetch_symbols(s, want);
        feed(s, 1, &a, 0);
        int first = prof_analysis_prefetching(prof_session_process(s, 100));
        feed(s, 2, &b, 0);
        feed(s, 3, &c, 0);
        int child = prof_analysis_prefetching(prof_session_process(s, 101));
        int execd = prof_analysis_prefetching(prof_session_process(s, 100));
        assert_int_equal(first, want == 0);
        assert_int_equal(execd, want == 0);
        assert_int_equal(child, want == 101);
        prof_session_free(s);
    }
    sb_free(&a);
    sb_free(&b);
    sb_free(&c);
}

typedef struct {
    prof_session_t *s;
    int calls;
    uint64_t live, peak, result_live;
} mark_seen_t;

static void on_mark(void *ctx)
{
    mark_seen_t *m = ctx;
    m->calls++;
    prof_analysis_t *a = prof_session_process(m->s, 101);
    m->live = prof_analysis_live_bytes(a);
    prof_result_t r; /* a result may be taken there */
    assert_int_equal(prof_session_result(m->s, 101, 0, 0, &r), 0);
    m->peak = r.summary.peak_bytes;
    m->result_live = r.summary.live_bytes;
    prof_result_free(&r);
}

/* The event that reached a process's peak, found in one replay, marks the
 * same moment in the next (streams are numbered as they open): the hook
 * runs once, right after that event, with the figures of then, and may
 * take a result; the frees after the peak come later. */
static void test_session_mark_at_peak(void **state)
{
    (void)state;
    sb_t a, b;
    build(&a, 100, 1, "launcher", 6, 10, MLMEM_END_EXIT, 1, 0); /* it has a seq 4 too */
    sb_init(&b);
    sb_header(&b);
    sb_hello_simple(&b, 101, 100, "worker");
    for (uint32_t i = 0; i < 4; i++)
        sb_alloc(&b, 101, i + 1, 10 * (i + 1), 0x1000 * (i + 1), 100, 0);
    for (uint32_t i = 0; i < 4; i++)
        sb_free_ev(&b, 101, 5 + i, 100 + i, 0x1000 * (i + 1));
    sb_alloc(&b, 101, 9, 200, 0x9000, 50, 0);
    sb_end(&b, MLMEM_END_EXIT, 1, 0, 9, 0, 0);

    prof_session_t *s = prof_session_new();
    assert_non_null(s);
    feed(s, 1, &a, 0);
    feed(s, 2, &b, 0);
    size_t index = prof_session_process_index(s, 101);
    assert_int_equal(index, 1);
    assert_int_equal(prof_session_process_index(s, 555), SIZE_MAX);
    uint64_t seq = prof_analysis_peak_seq(prof_session_process(s, 101));
    assert_int_equal(seq, 4);
    prof_session_free(s);

    s = prof_session_new();
    assert_non_null(s);
    mark_seen_t m = {.s = s};
    prof_session_set_mark(s, index, seq, on_mark, &m);
    feed(s, 1, &a, 0);
    assert_int_equal(m.calls, 0); /* not the launcher's seq 4 */
    feed(s, 2, &b, 0);
    assert_int_equal(m.calls, 1);
    assert_int_equal(m.live, 400);
    assert_int_equal(m.peak, 400);
    assert_int_equal(m.result_live, 400);
    assert_int_equal(prof_analysis_live_bytes(prof_session_process(s, 101)), 50);
    prof_session_free(s);
    sb_free(&a);
    sb_free(&b);
}

/* Once the live heap outgrows the caches (20,000 blocks: a 1 MiB table),
 * the analysis applies events a few behind the one it reads, to load their
 * slots ahead: none may be left behind when a feed returns, so the figures
 * of a stream still open count every event fed so far. */
static void test_session_figures_count_every_event_fed(void **state)
{
    (void)state;
    prof_session_t *s = prof_session_new();
    assert_non_null(s);
    sb_t a;
    build(&a, 300, 1, "open", 20000, 64, NO_END, 0, 0);
    feed(s, 1, &a, 1);
    const prof_analysis_t *p = prof_session_process(s, 300);
    assert_int_equal(prof_analysis_events(p), 20000);
    assert_int_equal(prof_analysis_live_bytes(p), 20000 * 64);
    assert_int_equal(prof_analysis_peak_bytes(p), 20000 * 64);
    prof_session_free(s);
    sb_free(&a);
}

static void test_session_main_without_root_is_first(void **state)
{
    (void)state;
    prof_session_t *s = prof_session_new();
    sb_t a, b;
    build(&a, 201, 200, "child", 1, 10, MLMEM_END_EXIT, 1, 0);
    build(&b, 200, 1, "root", 5, 10, MLMEM_END_EXIT, 1, 0);
    feed(s, 1, &a, 0);
    feed(s, 2, &b, 0);
    /* No run info: the first stream. */
    assert_int_equal(prof_analysis_pid(prof_session_main(s)), 201);
    prof_result_t r;
    assert_int_equal(prof_session_result(s, 0, 0, 0, &r), 0);
    assert_int_equal(r.process.pid, 201);
    prof_result_free(&r);
    /* Run info whose root has no stream: still the first. */
    set_run(s, 999, PROF_END_EXITED, 0, 0);
    assert_int_equal(prof_analysis_pid(prof_session_main(s)), 201);
    sb_free(&a);
    sb_free(&b);
    prof_session_free(s);
}

/* A stream that never said HELLO (its process exec'd or died at once) is
 * neither the main process nor a child. */
static void test_session_stream_without_hello_ignored(void **state)
{
    (void)state;
    prof_session_t *s = prof_session_new();
    sb_t a, b;
    sb_init(&a);
    sb_header(&a); /* header only */
    build(&b, 300, 1, "real", 2, 10, MLMEM_END_EXIT, 1, 0);
    feed(s, 1, &a, 0);
    assert_int_equal(prof_session_open(s, 2), 0); /* no bytes at all */
    assert_int_equal(prof_session_close(s, 2), 0);
    feed(s, 3, &b, 0);
    assert_int_equal(prof_session_stream_count(s), 3);
    assert_int_equal(prof_analysis_pid(prof_session_main(s)), 300);
    prof_result_t r;
    assert_int_equal(prof_session_result(s, 0, 0, 0, &r), 0);
    assert_int_equal(r.process.pid, 300);
    assert_int_equal(r.child_count, 0);
    prof_result_free(&r);
    sb_free(&a);
    sb_free(&b);
    prof_session_free(s);
}

static void test_session_exec_detected(void **state)
{
    (void)state;
    prof_session_t *s = usual_run();
    /* Without run info the main is the first stream: pid 100's first
     * image, which the later pid-100 stream shows was replaced by exec
     * although its END said exit. */
    prof_result_t r;
    assert_int_equal(prof_session_result(s, 0, 0, 0, &r), 0);
    assert_int_equal(r.process.pid, 100);
    assert_string_equal(r.process.command, "launcher arg");
    assert_int_equal(r.process.end, PROF_END_EXEC);
    prof_result_free(&r);

    /* From the exec'd image's side: its predecessor is a child ended by
     * exec, and the image itself ended by exit. */
    assert_int_equal(prof_session_result(s, 100, 0, 0, &r), 0);
    assert_string_equal(r.process.command, "trainer arg");
    assert_int_equal(r.process.end, PROF_END_EXITED);
    assert_int_equal(r.child_count, 2);
    assert_int_equal(r.children[0].pid, 100);
    assert_int_equal(r.children[0].end, PROF_END_EXEC);
    assert_int_equal(r.children[1].pid, 101);
    assert_int_equal(r.children[1].end, PROF_END_EXITED);
    prof_result_free(&r);
    prof_session_free(s);
}

static void test_session_children_listed(void **state)
{
    (void)state;
    prof_session_t *s = usual_run();
    set_run(s, 100, PROF_END_EXITED, 0, 0);
    prof_result_t r;
    assert_int_equal(prof_session_result(s, 0, 0, 0, &r), 0);
    assert_int_equal(r.child_count, 2);
    /* in stream order, the main one left out */
    const prof_child_t *c0 = &r.children[0], *c1 = &r.children[1];
    assert_int_equal(c0->pid, 100);
    assert_int_equal(c0->ppid, 1);
    assert_string_equal(c0->command, "launcher arg");
    assert_int_equal(c0->total_allocations, 2);
    assert_int_equal(c0->peak_bytes, 20);
    assert_int_equal(c0->leaked_bytes, 20);
    assert_int_equal(c0->end, PROF_END_EXEC);
    assert_int_equal(c1->pid, 101);
    assert_int_equal(c1->ppid, 100);
    assert_string_equal(c1->command, "worker arg");
    assert_int_equal(c1->total_allocations, 3);
    assert_int_equal(c1->peak_bytes, 30);
    assert_int_equal(c1->leaked_bytes, 30);
    assert_int_equal(c1->end, PROF_END_EXITED);
    assert_int_equal(c1->exit_code, 3);
    prof_result_free(&r);

    /* The child's own result lists both images of 100. */
    assert_int_equal(prof_session_result(s, 101, 0, 0, &r), 0);
    assert_int_equal(r.process.pid, 101);
    assert_int_equal(r.process.exit_code, 3);
    assert_int_equal(r.child_count, 2);
    assert_int_equal(r.children[0].total_allocations, 2);
    assert_int_equal(r.children[1].total_allocations, 4);
    prof_result_free(&r);

    /* One process: no children. */
    prof_session_t *one = prof_session_new();
    sb_t a;
    build(&a, 5, 1, "solo", 1, 10, MLMEM_END_EXIT, 1, 0);
    feed(one, 1, &a, 0);
    assert_int_equal(prof_session_result(one, 0, 0, 0, &r), 0);
    assert_int_equal(r.child_count, 0);
    assert_null(r.children);
    prof_result_free(&r);
    sb_free(&a);
    prof_session_free(one);
    prof_session_free(s);
}

static void test_session_run_info_signaled_applies_to_root(void **state)
{
    (void)state;
    prof_session_t *s = usual_run();
    set_run(s, 100, PROF_END_SIGNALED, 0, 9);
    prof_result_t r;
    assert_int_equal(prof_session_result(s, 0, 0, 0, &r), 0);
    assert_int_equal(r.process.pid, 100);
    assert_int_equal(r.process.end, PROF_END_SIGNALED);
    assert_int_equal(r.process.signal, 9);
    assert_int_equal(r.process.end_realtime_ns, 1700000001000000000ull);
    /* not the exec'd image before it, not the child */
    assert_int_equal(r.children[0].end, PROF_END_EXEC);
    assert_int_equal(r.children[0].signal, 0);
    assert_int_equal(r.children[1].end, PROF_END_EXITED);
    assert_int_equal(r.children[1].signal, 0);
    prof_result_free(&r);

    /* A later run info replaces the first (and takes its command). */
    set_run(s, 100, PROF_END_EXITED, 7, 0);
    assert_int_equal(prof_session_result(s, 0, 0, 0, &r), 0);
    assert_int_equal(r.process.end, PROF_END_EXITED);
    assert_int_equal(r.process.exit_code, 7);
    prof_result_free(&r);

    /* PROF_END_UNKNOWN in run info leaves the stream's own END alone. */
    set_run(s, 100, PROF_END_UNKNOWN, 0, 0);
    assert_int_equal(prof_session_result(s, 0, 0, 0, &r), 0);
    assert_int_equal(r.process.end, PROF_END_EXITED);
    assert_int_equal(r.process.exit_code, 0);
    prof_result_free(&r);
    prof_session_free(s);
}

static void test_session_unknown_pid_is_minus_2(void **state)
{
    (void)state;
    prof_session_t *s = prof_session_new();
    prof_result_t r;
    assert_null(prof_session_main(s));
    assert_int_equal(prof_session_result(s, 0, 0, 0, &r), -2);
    prof_session_free(s);

    s = usual_run();
    assert_int_equal(prof_session_result(s, 555, 0, 0, &r), -2);
    assert_int_equal(prof_session_result(s, 101, 0, 0, &r), 0);
    prof_result_free(&r);
    prof_session_free(s);
}

static void test_session_end_states(void **state)
{
    (void)state;
    prof_session_t *s = prof_session_new();
    sb_t a, b, c, d;
    build(&a, 10, 1, "running", 1, 10, NO_END, 0, 0);
    build(&b, 11, 1, "nocode", 1, 10, MLMEM_END_UNDERSCORE_EXIT, 0, 0);
    build(&c, 12, 1, "aborted", 1, 10, MLMEM_END_ABORT, 0, 0);
    build(&d, 13, 1, "negative", 1, 10, MLMEM_END_EXIT, 1, -5);
    feed(s, 1, &a, 1); /* still open: live */
    feed(s, 2, &b, 0);
    feed(s, 3, &c, 0);
    feed(s, 4, &d, 0);
    prof_result_t r;
    assert_int_equal(prof_session_result(s, 10, 0, 0, &r), 0);
    assert_int_equal(r.process.end, PROF_END_RUNNING);
    prof_result_free(&r);
    assert_int_equal(prof_session_result(s, 11, 0, 0, &r), 0);
    assert_int_equal(r.process.end, PROF_END_EXITED);
    assert_int_equal(r.process.exit_code, -1); /* code not known */
    prof_result_free(&r);
    assert_int_equal(prof_session_result(s, 12, 0, 0, &r), 0);
    assert_int_equal(r.process.end, PROF_END_SIGNALED);
    assert_int_equal(r.process.signal, 6);
    prof_result_free(&r);
    assert_int_equal(prof_session_result(s, 13, 0, 0, &r), 0);
    assert_int_equal(r.process.exit_code, -5);
    assert_int_equal(r.process.end, PROF_END_EXITED);
    prof_result_free(&r);

    /* Closed without END: cut off. */
    prof_session_close_all(s);
    assert_int_equal(prof_session_result(s, 10, 0, 0, &r), 0);
    assert_int_equal(r.process.end, PROF_END_UNKNOWN);
    prof_result_free(&r);
    sb_free(&a);
    sb_free(&b);
    sb_free(&c);
    sb_free(&d);
    prof_session_free(s);
}

static void test_session_stream_errors(void **state)
{
    (void)state;
    prof_session_t *s = prof_session_new();
    assert_null(prof_session_error(s));
    assert_int_equal(prof_session_open(s, 1), 0);
    assert_int_equal(prof_session_open(s, 1), -1);
    assert_non_null(strstr(prof_session_error(s), "stream 1 was opened twice"));
    assert_int_equal(prof_session_data(s, 9, (const uint8_t *)"x", 1), -1);
    assert_non_null(strstr(prof_session_error(s), "stream 9, which is not open"));
    assert_int_equal(prof_session_close(s, 9), -1);
    assert_non_null(strstr(prof_session_error(s), "close of stream 9"));

    /* A malformed stream: error names stream, pid and offset; it stops,
     * another stream goes on. */
    sb_t a, good;
    build(&a, 42, 1, "bad", 2, 10, NO_END, 0, 0);
    size_t at = a.out.len;
    prof_event_t e = {.type = 99, .tid = 42, .seq = 3};
    sb_event(&a, &e);
    build(&good, 43, 1, "good", 2, 10, MLMEM_END_EXIT, 1, 0);
    size_t len;
    const uint8_t *data = sb_data(&a, &len);
    assert_int_equal(prof_session_open(s, 2), 0);
    assert_int_equal(prof_session_data(s, 2, data, len), -1);
    char want[96];
    snprintf(want, sizeof want, "stream 2 (pid 42): offset %zu: ", at);
    if (!strstr(prof_session_error(s), want))
        fail_msg("\"%s\" lacks \"%s\"", prof_session_error(s), want);
    assert_int_equal(prof_session_data(s, 2, data, 1), -1);
    assert_int_equal(prof_session_close(s, 2), -1);
    feed(s, 3, &good, 0);
    prof_result_t r;
    assert_int_equal(prof_session_result(s, 43, 0, 0, &r), 0);
    assert_int_equal(r.summary.total_allocations, 2);
    prof_result_free(&r);
    /* What came before the error stays analyzed. */
    assert_int_equal(prof_session_result(s, 42, 0, 0, &r), 0);
    assert_int_equal(r.summary.total_allocations, 2);
    prof_result_free(&r);

    /* A stream that ends inside a record. */
    data = sb_data(&good, &len);
    assert_int_equal(prof_session_open(s, 4), 0);
    assert_int_equal(prof_session_data(s, 4, data, len - 1), 0);
    assert_int_equal(prof_session_close(s, 4), -1);
    assert_non_null(strstr(prof_session_error(s), "ends inside a record"));
    /* Closing twice. */
    assert_int_equal(prof_session_close(s, 4), -1);
    sb_free(&a);
    sb_free(&good);
    prof_session_free(s);
}

/* The count of allocations the shim sent without their stack, from its END
 * record, reaches the process's summary. */
static void test_session_stacks_lost_reach_the_summary(void **state)
{
    (void)state;
    sb_t b;
    sb_init(&b);
    sb_header(&b);
    sb_hello_simple(&b, 100, 1, "trainer");
    sb_alloc(&b, 100, 1, 10, 0x1000, 100, 0);
    sb_alloc(&b, 100, 2, 20, 0x2000, 100, 0);
    sb_end(&b, MLMEM_END_EXIT, 1, 0, 2, 0, 6);
    prof_session_t *s = prof_session_new();
    assert_non_null(s);
    feed(s, 1, &b, 0);
    prof_result_t r;
    assert_int_equal(prof_session_result(s, 0, 0, 0, &r), 0);
    assert_int_equal(r.summary.stacks_lost, 6);
    assert_int_equal(r.summary.total_allocations, 2);
    prof_result_free(&r);
    prof_session_free(s);
    sb_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_prefetch_symbols_of_wanted_process),
        cmocka_unit_test(test_session_mark_at_peak),
        cmocka_unit_test(test_session_figures_count_every_event_fed),
        cmocka_unit_test(test_session_stacks_lost_reach_the_summary),
        cmocka_unit_test(test_session_main_is_last_root_stream),
        cmocka_unit_test(test_session_main_without_root_is_first),
        cmocka_unit_test(test_session_stream_without_hello_ignored),
        cmocka_unit_test(test_session_exec_detected),
        cmocka_unit_test(test_session_children_listed),
        cmocka_unit_test(test_session_run_info_signaled_applies_to_root),
        cmocka_unit_test(test_session_unknown_pid_is_minus_2),
        cmocka_unit_test(test_session_end_states),
        cmocka_unit_test(test_session_stream_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
