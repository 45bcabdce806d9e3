/*
 * test_stack_store.c - the analyzer's stack store (profiler/stack_store.h):
 * stacks that share outer frames with the one defined before them come
 * back whole, the chain of bases stays bounded, a first definition stays,
 * and hostile or missing ids are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "profiler/stack_store.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void assert_stack_is(const prof_stack_store_t *s, uint32_t id, const uint64_t *want,
                            uint32_t depth)
{
    uint64_t got[STACK_STORE_MAX_DEPTH];
    assert_int_equal(prof_stack_store_get(s, id, got, STACK_STORE_MAX_DEPTH, NULL), depth);
    assert_memory_equal(got, want, depth * sizeof *want);
}

/* Python-like stacks: each new one keeps the outer frames of the one
 * before but its last few (now and then a random part of them) under new
 * inner frames. Every stack comes back exactly, and the store keeps far
 * fewer frames than it was given. */
static void test_stack_store_round_trip_shared_outer_frames(void **state)
{
    (void)state;
    enum { N = 3000 };
    uint64_t (*ref)[STACK_STORE_MAX_DEPTH] = calloc(N + 1, sizeof *ref);
    uint32_t *depth = calloc(N + 1, sizeof *depth);
    assert_non_null(ref);
    assert_non_null(depth);
    prof_stack_store_t s;
    prof_stack_store_init(&s);
    for (uint32_t id = 1; id <= N; id++) {
        uint32_t prev = depth[id - 1];
        uint32_t drop = (uint32_t)(next_random() % 4);
        uint32_t keep = prev > drop ? prev - drop : 0;
        if (id % 50 == 0) /* now and then another part of the program */
            keep = prev ? (uint32_t)(next_random() % (prev + 1)) : 0;
        uint32_t fresh = 1 + (uint32_t)(next_random() % 6);
        if (id % 500 == 0) /* and a very deep one */
            fresh = 900;
        if (keep + fresh > 120 && fresh < 120)
            keep = 120 - fresh;
        if (keep + fresh > STACK_STORE_MAX_DEPTH)
            keep = STACK_STORE_MAX_DEPTH - fresh;
        depth[id] = keep + fresh;
        for (uint32_t i = 0; i < fresh; i++)
            ref[id][i] = 0x400000 + (next_random() & 0xffffff);
        /* the outer 'keep' frames: the previous stack's last ones */
        memcpy(&ref[id][fresh], &ref[id - 1][prev - keep], keep * sizeof(uint64_t));
        assert_int_equal(prof_stack_store_put(&s, id, 1000 + id, ref[id], depth[id]), 0);
    }
    for (uint32_t id = 1; id <= N; id++) {
        assert_stack_is(&s, id, ref[id], depth[id]);
        uint64_t seq = 0, one;
        assert_int_equal(prof_stack_store_get(&s, id, &one, 1, &seq), depth[id]);
        assert_int_equal(seq, 1000 + id);
        assert_int_equal(one, ref[id][0]);
    }
    assert_true(s.frames_kept * 4 < s.frames_defined);
    prof_stack_store_destroy(&s);
    free(ref);
    free(depth);
}

/* Stacks that differ from the one before in their innermost frame only:
 * each names the one before as its base until the chain is
 * STACK_STORE_MAX_HOPS long, then one is kept whole and a new chain starts. */
static void test_stack_store_chain_of_bases_is_bounded(void **state)
{
    (void)state;
    prof_stack_store_t s;
    prof_stack_store_init(&s);
    uint64_t f[40];
    for (uint32_t i = 0; i < 40; i++)
        f[i] = 0x1000 + i;
    for (uint32_t id = 1; id <= 100; id++) {
        f[0] = 0x9000 + id;
        assert_int_equal(prof_stack_store_put(&s, id, id, f, 40), 0);
        const prof_stack_ref_t *r = &s.refs[id];
        uint32_t hops = (id - 1) % (STACK_STORE_MAX_HOPS + 1);
        assert_int_equal(r->hops, hops);
        assert_int_equal(r->own, hops ? 1 : 40);
        assert_stack_is(&s, id, f, 40);
    }
    /* an early one still comes back after everything defined since */
    f[0] = 0x9000 + 7;
    assert_stack_is(&s, 7, f, 40);
    prof_stack_store_destroy(&s);
}

/* A second definition of an id changes nothing, not even the base the
 * next stack is compared with. */
static void test_stack_store_first_definition_stays(void **state)
{
    (void)state;
    prof_stack_store_t s;
    prof_stack_store_init(&s);
    uint64_t a[3] = {1, 2, 3}, b[3] = {7, 8, 9}, c[3] = {4, 2, 3};
    assert_int_equal(prof_stack_store_put(&s, 5, 1, a, 3), 0);
    assert_int_equal(prof_stack_store_put(&s, 5, 2, b, 3), 0);
    assert_stack_is(&s, 5, a, 3);
    assert_int_equal(prof_stack_store_put(&s, 6, 3, c, 3), 0);
    assert_int_equal(s.refs[6].own, 1); /* shares {2, 3} with stack 5 */
    assert_stack_is(&s, 6, c, 3);
    prof_stack_store_destroy(&s);
}

/* Undefined ids, ids past the table, empty and too deep stacks. */
static void test_stack_store_refuses_what_it_cannot_keep(void **state)
{
    (void)state;
    prof_stack_store_t s;
    prof_stack_store_init(&s);
    uint64_t out[4], f[STACK_STORE_MAX_DEPTH + 1] = {0};
    assert_int_equal(prof_stack_store_get(&s, 1, out, 4, NULL), 0);
    assert_int_equal(prof_stack_store_put(&s, 2, 1, f, 0), 0);
    assert_int_equal(prof_stack_store_get(&s, 2, out, 4, NULL), 0);
    assert_int_equal(prof_stack_store_put(&s, 3, 1, f, STACK_STORE_MAX_DEPTH + 1), 0);
    assert_int_equal(prof_stack_store_get(&s, 3, out, 4, NULL), 0);
    assert_int_equal(prof_stack_store_put(&s, 4, 1, f, STACK_STORE_MAX_DEPTH), 0);
    assert_int_equal(prof_stack_store_get(&s, 4, out, 4, NULL), STACK_STORE_MAX_DEPTH);
    assert_int_equal(prof_stack_store_get(&s, 1u << 30, out, 4, NULL), 0);
    prof_stack_store_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack_store_round_trip_shared_outer_frames),
        cmocka_unit_test(test_stack_store_chain_of_bases_is_bounded),
        cmocka_unit_test(test_stack_store_first_definition_stays),
        cmocka_unit_test(test_stack_store_refuses_what_it_cannot_keep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
