/*
 * test_reorder.c - the seq reorder stage (profiler/reorder.h): passthrough,
 * interleaved batches, duplicates, gaps at flush, the window cap, growth,
 * and a randomized comparison against a sorted reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "profiler/reorder.h"

/* ---- helpers -------------------------------------------------------------- */

/* What came out: the seqs and tids in emit order. */
typedef struct {
    uint64_t *seq;
    uint32_t *tid;
    uint64_t *addr;
    size_t n, cap;
} out_t;

static void on_emit(void *ctx, const prof_event_t *e)
{
    out_t *o = ctx;
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 1024;
        o->seq = realloc(o->seq, o->cap * sizeof *o->seq);
        o->tid = realloc(o->tid, o->cap * sizeof *o->tid);
        o->addr = realloc(o->addr, o->cap * sizeof *o->addr);
        assert_true(o->seq && o->tid && o->addr);
    }
    o->seq[o->n] = e->seq;
    o->tid[o->n] = e->tid;
    o->addr[o->n] = e->addr;
    o->n++;
}

static void out_free(out_t *o)
{
    free(o->seq);
    free(o->tid);
    free(o->addr);
    memset(o, 0, sizeof *o);
}

/* Pushes an event whose addr encodes its seq, so payloads can be checked. */
static void push(prof_reorder_t *r, uint64_t seq, uint32_t tid)
{
    prof_event_t e = {.seq = seq, .tid = tid, .type = MLMEM_EV_ALLOC, .addr = seq * 16,
                      .size = 8};
    assert_int_equal(prof_reorder_push(r, &e), 0);
}

/* The output is strictly increasing and each event kept its payload. */
static void check_sorted(const out_t *o)
{
    for (size_t i = 0; i < o->n; i++) {
        assert_int_equal(o->addr[i], o->seq[i] * 16);
        if (i)
            assert_true(o->seq[i] > o->seq[i - 1]);
    }
}

/* ---- tests --------------------------------------------------------------- */

static void test_reorder_in_order_passthrough(void **state)
{
    (void)state;
    out_t o = {0};
    prof_reorder_t r;
    assert_int_equal(prof_reorder_init(&r, 0, on_emit, &o), 0);
    for (uint64_t s = 1; s <= 100; s++) {
        push(&r, s, 1);
        /* released at once: nothing is held back */
        assert_int_equal(o.n, s);
        assert_int_equal(o.seq[s - 1], s);
        assert_int_equal(r.held, 0);
    }
    prof_reorder_flush(&r);
    assert_int_equal(o.n, 100);
    assert_int_equal(r.lost, 0);
    assert_int_equal(r.duplicates, 0);
    check_sorted(&o);
    prof_reorder_destroy(&r);
    out_free(&o);
}

/* Two threads' batches arrive out of order: thread B's batch (seqs 2, 4,
 * 6..) before thread A's (1, 3, 5..), and so on. */
static void test_reorder_interleaved_threads_sorted(void **state)
{
    (void)state;
    out_t o = {0};
    prof_reorder_t r;
    assert_int_equal(prof_reorder_init(&r, 0, on_emit, &o), 0);
    for (uint64_t base = 0; base < 1000; base += 100) {
        for (uint64_t s = base + 2; s <= base + 100; s += 2)
            push(&r, s, 2);
        assert_int_equal(o.n, base); /* all held: seq base+1 is missing */
        for (uint64_t s = base + 1; s <= base + 100; s += 2)
            push(&r, s, 1);
        assert_int_equal(o.n, base + 100);
    }
    prof_reorder_flush(&r);
    assert_int_equal(o.n, 1000);
    for (size_t i = 0; i < o.n; i++) {
        assert_int_equal(o.seq[i], i + 1);
        assert_int_equal(o.tid[i], (i + 1) % 2 ? 1 : 2);
    }
    check_sorted(&o);
    assert_int_equal(r.lost, 0);
    prof_reorder_destroy(&r);
    out_free(&o);
}

static void test_reorder_duplicates_counted(void **state)
{
    (void)state;
    out_t o = {0};
    prof_reorder_t r;
    assert_int_equal(prof_reorder_init(&r, 0, on_emit, &o), 0);
    push(&r, 1, 1);
    push(&r, 1, 1);  /* already released */
    push(&r, 3, 1);
    push(&r, 3, 2);  /* still held */
    push(&r, 2, 1);
    push(&r, 2, 1);  /* released by the push before */
    assert_int_equal(r.duplicates, 3);
    prof_reorder_flush(&r);
    assert_int_equal(o.n, 3);
    assert_int_equal(o.tid[2], 1); /* the first copy of seq 3 won */
    check_sorted(&o);
    assert_int_equal(r.lost, 0);
    prof_reorder_destroy(&r);
    out_free(&o);
}

static void test_reorder_gaps_at_flush_counted_as_lost(void **state)
{
    (void)state;
    out_t o = {0};
    prof_reorder_t r;
    assert_int_equal(prof_reorder_init(&r, 0, on_emit, &o), 0);
    /* 1 2 _ 4 5 _ _ 8 ; 9 never comes (not knowable) */
    push(&r, 8, 1);
    push(&r, 4, 1);
    push(&r, 1, 1);
    push(&r, 5, 1);
    push(&r, 2, 1);
    assert_int_equal(o.n, 2);
    prof_reorder_flush(&r);
    assert_int_equal(o.n, 5);
    const uint64_t want[] = {1, 2, 4, 5, 8};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(o.seq[i], want[i]);
    assert_int_equal(r.lost, 3);
    assert_int_equal(r.held, 0);
    /* A gap before the first event counts too. */
    prof_reorder_t r2;
    out_t o2 = {0};
    assert_int_equal(prof_reorder_init(&r2, 0, on_emit, &o2), 0);
    push(&r2, 10, 1);
    prof_reorder_flush(&r2);
    assert_int_equal(o2.n, 1);
    assert_int_equal(r2.lost, 9);
    prof_reorder_destroy(&r2);
    out_free(&o2);
    prof_reorder_destroy(&r);
    out_free(&o);
}

static void test_reorder_window_cap_gives_up_oldest_gap(void **state)
{
    (void)state;
    out_t o = {0};
    prof_reorder_t r;
    assert_int_equal(prof_reorder_init(&r, 16, on_emit, &o), 0);
    /* seq 1 never comes; 2..16 are held (15 events, window 16 not reached) */
    for (uint64_t s = 2; s <= 16; s++)
        push(&r, s, 1);
    assert_int_equal(o.n, 0);
    assert_int_equal(r.held, 15);
    /* 17 would need a 17-event window: the gap at 1 is given up */
    push(&r, 17, 1);
    assert_int_equal(r.lost, 1);
    assert_int_equal(o.n, 16);
    assert_int_equal(o.seq[0], 2);
    assert_int_equal(r.held, 0);

    /* A jump far ahead with an older gap held: 19 held, 18 missing, 100
     * arrives: 18 is lost, 19 released, then 20..99 given up as well. */
    push(&r, 19, 1);
    push(&r, 100, 1);
    assert_int_equal(o.n, 18);
    assert_int_equal(o.seq[16], 19);
    assert_int_equal(o.seq[17], 100);
    assert_int_equal(r.lost, 1 + 1 + 80);
    assert_true(r.cap <= 4096); /* no growth for a hostile jump */
    prof_reorder_flush(&r);
    check_sorted(&o);
    prof_reorder_destroy(&r);
    out_free(&o);
}

static void test_reorder_growth_keeps_order(void **state)
{
    (void)state;
    out_t o = {0};
    prof_reorder_t r;
    assert_int_equal(prof_reorder_init(&r, 0, on_emit, &o), 0);
    const uint64_t n = 20000;
    /* Everything but seq 1 first, in descending order (worst case), so the
     * ring must grow well past 4096 while holding events. */
    for (uint64_t s = n; s >= 2; s--)
        push(&r, s, (uint32_t)(s % 3));
    assert_int_equal(o.n, 0);
    assert_true(r.cap >= n);
    assert_int_equal(r.held, n - 1);
    push(&r, 1, 0);
    assert_int_equal(o.n, n);
    for (size_t i = 0; i < o.n; i++)
        assert_int_equal(o.seq[i], i + 1);
    check_sorted(&o);
    assert_int_equal(r.lost, 0);
    assert_int_equal(r.duplicates, 0);
    prof_reorder_destroy(&r);
    out_free(&o);
}

/* Growth while the held range wraps around the ring. */
static void test_reorder_growth_with_wrapped_ring(void **state)
{
    (void)state;
    out_t o = {0};
    prof_reorder_t r;
    assert_int_equal(prof_reorder_init(&r, 0, on_emit, &o), 0);
    for (uint64_t s = 1; s <= 3000; s++)
        push(&r, s, 1);
    /* next = 3001; hold 3002..9000, crossing 4096 and 8192 */
    for (uint64_t s = 3002; s <= 9000; s++)
        push(&r, s, 1);
    assert_int_equal(o.n, 3000);
    push(&r, 3001, 1);
    assert_int_equal(o.n, 9000);
    for (size_t i = 0; i < o.n; i++)
        assert_int_equal(o.seq[i], i + 1);
    check_sorted(&o);
    prof_reorder_destroy(&r);
    out_free(&o);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Seqs 1..N shuffled within windows of random size, with some dropped and
 * some duplicated: the output must be the sorted set of distinct seqs that
 * were pushed, lost = N - distinct (minus the unknowable tail). */
/* An ALLOC with freed_next stands for two numbers: after it, next is two
 * on, in order or held; an event held at its second number is a duplicate. */
static void test_reorder_freed_next_spans_two(void **state)
{
    (void)state;
    out_t o = {0};
    prof_reorder_t r;
    assert_int_equal(prof_reorder_init(&r, 0, on_emit, &o), 0);
    prof_event_t fused = {.seq = 1, .tid = 1, .type = MLMEM_EV_ALLOC, .addr = 16, .size = 8,
                          .freed_next = 1};
    assert_int_equal(prof_reorder_push(&r, &fused), 0); /* covers 1 and 2 */
    push(&r, 4, 2);                                     /* held: 3 missing */
    push(&r, 6, 2);
    fused.seq = 3;
    fused.addr = 48;
    assert_int_equal(prof_reorder_push(&r, &fused), 0); /* covers 3, 4?: 4 held */
    assert_int_equal(o.n, 2);                          /* 1+2, then 3+(4 dup) */
    assert_int_equal(o.seq[0], 1);
    assert_int_equal(o.seq[1], 3);
    assert_int_equal(r.duplicates, 1);
    push(&r, 5, 1);                                     /* releases 5 and 6 */
    assert_int_equal(o.n, 4);
    assert_int_equal(o.seq[3], 6);
    assert_int_equal(r.held, 0);
    prof_reorder_flush(&r);
    assert_int_equal(r.lost, 0);
    prof_reorder_destroy(&r);
    out_free(&o);
}

/* Broken input (the fuzzer's): a pair at the last seq, whose second number
 * would wrap to 0, is counted as lost instead of sending the stage back to
 * seq 1 with the highest seq at the top, where the next growth walked from
 * one to the other. */
static void test_reorder_pair_at_last_seq_is_lost(void **state)
{
    (void)state;
    out_t o = {0};
    prof_reorder_t r;
    assert_int_equal(prof_reorder_init(&r, 0, on_emit, &o), 0);
    push(&r, 1, 1);
    prof_event_t fused = {.seq = UINT64_MAX, .tid = 1, .type = MLMEM_EV_ALLOC, .addr = 16,
                          .size = 8, .freed_next = 1};
    assert_int_equal(prof_reorder_push(&r, &fused), 0);
    assert_int_equal(r.lost, 1);
    assert_int_equal(r.next, 2);
    push(&r, 3, 2); /* held, then a growth far ahead: both stay quick */
    push(&r, 2 + 100000, 2);
    push(&r, 2, 1);
    assert_int_equal(o.n, 3);
    assert_int_equal(o.seq[2], 3);
    prof_reorder_flush(&r);
    assert_int_equal(o.n, 4);
    assert_int_equal(o.seq[3], 100002);
    prof_reorder_destroy(&r);
    out_free(&o);
}

static void test_reorder_random_shuffle_matches_sorted(void **state)
{
    (void)state;
    uint64_t seed = 0xdeadbeefcafef00dull;
    for (int round = 0; round < 20; round++) {
        const size_t n = 30000;
        uint64_t *seqs = malloc(2 * n * sizeof *seqs);
        uint8_t *present = calloc(n + 1, 1);
        assert_true(seqs && present);
        size_t m = 0;
        for (uint64_t s = 1; s <= n; s++) {
            uint64_t x = rng_next(&seed) % 100;
            if (x < 2 && s != n)
                continue; /* dropped (never the last: it bounds the range) */
            seqs[m++] = s;
            present[s] = 1;
            if (x == 2)
                seqs[m++] = s; /* duplicated */
        }
        size_t dups = 0;
        for (size_t i = 1; i < m; i++)
            dups += seqs[i] == seqs[i - 1];
        /* shuffle within windows of up to 5000 */
        size_t w0 = 0;
        while (w0 < m) {
            size_t w = 1 + rng_next(&seed) % 5000;
            if (w0 + w > m)
                w = m - w0;
            for (size_t i = w - 1; i > 0; i--) {
                size_t j = (size_t)(rng_next(&seed) % (i + 1));
                uint64_t t = seqs[w0 + i];
                seqs[w0 + i] = seqs[w0 + j];
                seqs[w0 + j] = t;
            }
            w0 += w;
        }
        out_t o = {0};
        prof_reorder_t r;
        assert_int_equal(prof_reorder_init(&r, 0, on_emit, &o), 0);
        for (size_t i = 0; i < m; i++)
            push(&r, seqs[i], 1);
        prof_reorder_flush(&r);

        size_t k = 0;
        for (uint64_t s = 1; s <= n; s++)
            if (present[s]) {
                assert_true(k < o.n);
                assert_int_equal(o.seq[k], s);
                k++;
            }
        assert_int_equal(o.n, k);
        assert_int_equal(r.lost, n - k);
        assert_int_equal(r.duplicates, dups);
        check_sorted(&o);
        prof_reorder_destroy(&r);
        out_free(&o);
        free(seqs);
        free(present);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reorder_in_order_passthrough),
        cmocka_unit_test(test_reorder_interleaved_threads_sorted),
        cmocka_unit_test(test_reorder_duplicates_counted),
        cmocka_unit_test(test_reorder_gaps_at_flush_counted_as_lost),
        cmocka_unit_test(test_reorder_window_cap_gives_up_oldest_gap),
        cmocka_unit_test(test_reorder_growth_keeps_order),
        cmocka_unit_test(test_reorder_growth_with_wrapped_ring),
        cmocka_unit_test(test_reorder_freed_next_spans_two),
        cmocka_unit_test(test_reorder_pair_at_last_seq_is_lost),
        cmocka_unit_test(test_reorder_random_shuffle_matches_sorted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
