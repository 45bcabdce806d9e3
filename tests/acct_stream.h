/*
 * acct_stream.h - building an event stream for the accounting engine in a
 * test: each event gets the next seq and a time 10 ns after the previous
 * one, and is applied at once. Shared by test_accounting.c and
 * test_attribution.c.
 */
#ifndef TEST_ACCT_STREAM_H
#define TEST_ACCT_STREAM_H

#include "profiler/accounting.h"

typedef struct {
    prof_acct_t *a;
    uint64_t seq;
    uint64_t t;
} tst_t;

/* 'timeline_points' 0 means the engine's default. */
static inline void tst_init(tst_t *s, size_t timeline_points)
{
    prof_acct_options_t opt = {timeline_points};
    s->a = prof_acct_new(&opt);
    assert_non_null(s->a);
    s->seq = 0;
    s->t = 0;
}

static inline void tst_ev(tst_t *s, prof_event_t ev)
{
    ev.seq = ++s->seq;
    s->t += 10;
    ev.time_ns = s->t;
    assert_int_equal(prof_acct_apply(s->a, &ev), 0);
}

static inline void t_alloc(tst_t *s, uint32_t tid, uint32_t stack, uint64_t addr, uint64_t size)
{
    tst_ev(s, (prof_event_t){.type = MLMEM_EV_ALLOC, .tid = tid, .stack_id = stack,
                             .addr = addr, .size = size});
}

static inline void t_free(tst_t *s, uint32_t tid, uint64_t addr)
{
    tst_ev(s, (prof_event_t){.type = MLMEM_EV_FREE, .tid = tid, .addr = addr});
}

#endif /* TEST_ACCT_STREAM_H */
