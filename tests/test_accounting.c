/*
 * test_accounting.c - the exact heap accounting stage (profiler/accounting.h):
 * peak and what was live at it, realloc, mappings, unmatched frees,
 * temporaries, lifetimes, threads, the timeline, leaks, RSS; and a
 * randomized comparison against a brute-force model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "profiler/accounting.h"
#include "profiler/heap_table.h"
#include "profiler/prof_result.h"
#include "acct_stream.h"

/* ---- helpers ------------------------------------------------------------- */

static void t_realloc(tst_t *s, uint32_t tid, uint32_t stack, uint64_t old, uint64_t addr,
                      uint64_t size)
{
    tst_ev(s, (prof_event_t){.type = MLMEM_EV_REALLOC, .tid = tid, .stack_id = stack,
                             .old_addr = old, .addr = addr, .size = size,
                             .fn = MLMEM_FN_REALLOC});
}

static void t_mmap(tst_t *s, uint32_t tid, uint32_t stack, uint64_t addr, uint64_t size)
{
    tst_ev(s, (prof_event_t){.type = MLMEM_EV_MMAP, .tid = tid, .stack_id = stack,
                             .addr = addr, .size = size});
}

static void t_mmap_file(tst_t *s, uint32_t tid, uint32_t stack, uint64_t addr, uint64_t size)
{
    tst_ev(s, (prof_event_t){.type = MLMEM_EV_MMAP_FILE, .tid = tid, .stack_id = stack,
                             .addr = addr, .size = size, .arg = 3});
}

static void t_munmap(tst_t *s, uint32_t tid, uint64_t addr, uint64_t size)
{
    tst_ev(s, (prof_event_t){.type = MLMEM_EV_MUNMAP, .tid = tid, .addr = addr, .size = size});
}

static void t_mremap(tst_t *s, uint32_t tid, uint32_t stack, uint64_t old, uint64_t old_size,
                     uint64_t addr, uint64_t size)
{
    tst_ev(s, (prof_event_t){.type = MLMEM_EV_MREMAP, .tid = tid, .stack_id = stack,
                             .old_addr = old, .old_size = old_size, .addr = addr,
                             .size = size});
}

static void t_rss(tst_t *s, uint64_t rss)
{
    tst_ev(s, (prof_event_t){.type = MLMEM_EV_RSS, .size = rss});
}

static void t_result(tst_t *s, prof_result_t *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(prof_acct_result(s->a, r), 0);
}

static void t_done(tst_t *s, prof_result_t *r)
{
    prof_result_free(r);
    prof_acct_free(s->a);
}

static const prof_site_t *site_of(const prof_result_t *r, uint32_t stack)
{
    for (size_t i = 0; i < r->site_count; i++)
        if (r->sites[i].stack_id == stack)
            return &r->sites[i];
    return NULL;
}

static const prof_thread_t *thread_of(const prof_result_t *r, uint32_t tid)
{
    for (size_t i = 0; i < r->thread_count; i++)
        if (r->threads[i].tid == tid)
            return &r->threads[i];
    return NULL;
}

static uint64_t timeline_max(const prof_result_t *r)
{
    uint64_t m = 0;
    for (size_t i = 0; i < r->timeline_count; i++)
        if (r->timeline[i].live_bytes > m)
            m = r->timeline[i].live_bytes;
    return m;
}

/* ---- behaviours ---------------------------------------------------------- */

static void test_accounting_simple_peak_exact(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_alloc(&s, 1, 1, 0x1000, 100);
    t_alloc(&s, 1, 1, 0x2000, 200); /* seq 2, t 20: live 300 */
    t_free(&s, 1, 0x1000);
    t_alloc(&s, 1, 1, 0x3000, 150); /* live 350: the peak, seq 4 */
    t_free(&s, 1, 0x2000);
    t_free(&s, 1, 0x3000);
    assert_int_equal(prof_acct_peak_bytes(s.a), 350);
    assert_int_equal(prof_acct_live_bytes(s.a), 0);
    t_result(&s, &r);
    assert_int_equal(r.summary.peak_bytes, 350);
    assert_int_equal(r.summary.peak_seq, 4);
    assert_int_equal(r.summary.peak_time_ns, 40);
    assert_int_equal(r.summary.peak_heap_bytes, 350);
    assert_int_equal(r.summary.peak_mmap_bytes, 0);
    assert_int_equal(r.summary.total_allocations, 3);
    assert_int_equal(r.summary.total_frees, 3);
    assert_int_equal(r.summary.total_bytes, 450);
    assert_int_equal(r.summary.events, 6);
    assert_int_equal(r.summary.duration_ns, 60);
    assert_int_equal(r.summary.leaked_bytes, 0);
    assert_int_equal(r.site_count, 1);
    assert_int_equal(r.sites[0].live_bytes_at_peak, 350);
    assert_int_equal(r.sites[0].live_allocations_at_peak, 2);
    assert_int_equal(r.sites[0].peak_live_bytes, 350);
    assert_int_equal(r.sites[0].largest_allocation, 200);
    t_done(&s, &r);
}

/* Sites changed after the peak must report their values at the peak, sites
 * untouched since must report their (unchanged) live values, and a site born
 * after the peak must report zero. */
static void test_accounting_peak_per_site_epoch(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_alloc(&s, 1, 1, 0x1000, 1000);
    t_alloc(&s, 1, 2, 0x2000, 500);
    t_alloc(&s, 1, 3, 0x3000, 300);
    t_alloc(&s, 1, 1, 0x4000, 200); /* peak 2000: s1 1200/2, s2 500, s3 300 */
    t_free(&s, 1, 0x1000);          /* s1 changes after the peak          */
    t_alloc(&s, 1, 2, 0x5000, 400); /* s2 changes after the peak (live 1400) */
    t_alloc(&s, 1, 4, 0x6000, 100); /* s4 born after the peak             */
    t_free(&s, 1, 0x4000);
    t_result(&s, &r);
    assert_int_equal(r.summary.peak_bytes, 2000);
    assert_int_equal(r.summary.peak_seq, 4);
    const prof_site_t *s1 = site_of(&r, 1), *s2 = site_of(&r, 2), *s3 = site_of(&r, 3),
                      *s4 = site_of(&r, 4);
    assert_non_null(s1);
    assert_non_null(s4);
    assert_int_equal(s1->live_bytes_at_peak, 1200);
    assert_int_equal(s1->live_allocations_at_peak, 2);
    assert_int_equal(s1->live_bytes, 0);
    assert_int_equal(s2->live_bytes_at_peak, 500);
    assert_int_equal(s2->live_allocations_at_peak, 1);
    assert_int_equal(s2->live_bytes, 900);
    assert_int_equal(s2->peak_live_bytes, 900);
    assert_int_equal(s3->live_bytes_at_peak, 300);
    assert_int_equal(s3->live_allocations_at_peak, 1);
    assert_int_equal(s4->live_bytes_at_peak, 0);
    assert_int_equal(s4->live_allocations_at_peak, 0);
    /* Sorted by bytes at peak. */
    assert_int_equal(r.sites[0].stack_id, 1);
    assert_int_equal(r.sites[1].stack_id, 2);
    assert_int_equal(r.sites[2].stack_id, 3);
    assert_int_equal(r.sites[3].stack_id, 4);
    prof_result_free(&r);

    /* A second, higher peak moves every site's at-peak figures. */
    t_alloc(&s, 1, 3, 0x7000, 5000); /* live 900+300+100+5000 = 6300 */
    t_result(&s, &r);
    assert_int_equal(r.summary.peak_bytes, 6300);
    assert_int_equal(site_of(&r, 1)->live_bytes_at_peak, 0);
    assert_int_equal(site_of(&r, 2)->live_bytes_at_peak, 900);
    assert_int_equal(site_of(&r, 3)->live_bytes_at_peak, 5300);
    assert_int_equal(site_of(&r, 3)->live_allocations_at_peak, 2);
    assert_int_equal(site_of(&r, 4)->live_bytes_at_peak, 100);
    assert_int_equal(r.sites[0].stack_id, 3);
    t_done(&s, &r);
}

static void test_accounting_realloc_no_false_peak(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_realloc(&s, 1, 1, 0, 0x1000, 100);      /* plain allocation           */
    t_realloc(&s, 1, 1, 0x1000, 0x2000, 1000); /* moves: live 1000, not 1100 */
    t_realloc(&s, 1, 2, 0x2000, 0x2000, 600);  /* in place, smaller         */
    t_realloc(&s, 1, 2, 0x9000, 0x3000, 10);   /* old not live: unmatched   */
    t_result(&s, &r);
    assert_int_equal(r.summary.peak_bytes, 1000);
    assert_int_equal(r.summary.peak_seq, 2);
    assert_int_equal(r.summary.live_bytes, 610);
    assert_int_equal(r.summary.total_allocations, 4);
    assert_int_equal(r.summary.total_frees, 2);
    assert_int_equal(r.summary.unmatched_frees, 1);
    assert_int_equal(r.summary.total_bytes, 1710);
    assert_int_equal(site_of(&r, 1)->allocations, 2);
    assert_int_equal(site_of(&r, 1)->frees, 2);
    assert_int_equal(site_of(&r, 1)->live_bytes, 0);
    assert_int_equal(site_of(&r, 2)->allocations, 2);
    assert_int_equal(site_of(&r, 2)->live_allocations, 2);
    assert_int_equal(thread_of(&r, 1)->frees, 2);
    t_done(&s, &r);
}

static void test_accounting_munmap_partial_splits_mapping(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_mmap(&s, 1, 5, 0x100000, 0x10000);    /* 16 pages */
    t_munmap(&s, 1, 0x104000, 0x4000);      /* the middle: two pieces */
    t_result(&s, &r);
    assert_int_equal(r.summary.live_bytes, 0xc000);
    assert_int_equal(r.summary.total_frees, 0);
    assert_int_equal(r.summary.leaked_allocations, 1);
    assert_int_equal(site_of(&r, 5)->live_allocations, 1);
    assert_int_equal(site_of(&r, 5)->is_mmap, 1);
    prof_result_free(&r);
    t_munmap(&s, 1, 0x100000, 0x1000);      /* trims the head piece */
    t_munmap(&s, 1, 0x10c000, 0x4000);      /* trims the tail piece's end */
    t_result(&s, &r);
    assert_int_equal(r.summary.live_bytes, 0x7000);
    assert_int_equal(r.summary.total_frees, 0);
    assert_int_equal(r.summary.unmatched_frees, 0);
    prof_result_free(&r);
    t_munmap(&s, 1, 0x101000, 0xb000);      /* both pieces and the hole: freed */
    t_munmap(&s, 1, 0x101000, 0xb000);      /* again: nothing there */
    t_result(&s, &r);
    assert_int_equal(r.summary.live_bytes, 0);
    assert_int_equal(r.summary.total_frees, 1);
    assert_int_equal(r.summary.unmatched_frees, 1);
    assert_int_equal(r.summary.peak_bytes, 0x10000);
    assert_int_equal(r.summary.peak_mmap_bytes, 0x10000);
    assert_int_equal(site_of(&r, 5)->frees, 1);
    assert_int_equal(site_of(&r, 5)->live_allocations, 0);
    assert_int_equal(site_of(&r, 5)->lifetime_max_ns, 40); /* t 10 -> 50 */
    t_done(&s, &r);
}

static void test_accounting_munmap_spans_two_mappings(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_mmap(&s, 1, 1, 0x100000, 0x2000);
    t_mmap(&s, 2, 2, 0x103000, 0x2000); /* a hole of one page between */
    t_mmap(&s, 1, 3, 0x200000, 0x1000);
    t_munmap(&s, 3, 0x101000, 0x3000);  /* tail of one, head of the next */
    t_result(&s, &r);
    assert_int_equal(r.summary.live_bytes, 0x3000);
    assert_int_equal(site_of(&r, 1)->live_bytes, 0x1000);
    assert_int_equal(site_of(&r, 2)->live_bytes, 0x1000);
    assert_int_equal(thread_of(&r, 2)->live_bytes, 0x1000);
    prof_result_free(&r);
    t_munmap(&s, 3, 0x0, 0x300000); /* everything */
    t_result(&s, &r);
    assert_int_equal(r.summary.live_bytes, 0);
    assert_int_equal(r.summary.total_frees, 3);
    assert_int_equal(thread_of(&r, 3)->frees, 3);
    assert_int_equal(thread_of(&r, 1)->frees, 0);
    assert_int_equal(r.summary.leaked_allocations, 0);
    t_done(&s, &r);
}

static void test_accounting_mremap_moves_in_one_step(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_mmap(&s, 1, 1, 0x100000, 0x4000);
    t_mremap(&s, 1, 2, 0x100000, 0x4000, 0x800000, 0x6000); /* live 0x6000 */
    t_result(&s, &r);
    assert_int_equal(r.summary.peak_bytes, 0x6000); /* not 0xa000 */
    assert_int_equal(r.summary.live_bytes, 0x6000);
    assert_int_equal(r.summary.peak_mmap_bytes, 0x6000);
    assert_int_equal(site_of(&r, 1)->live_bytes, 0);
    assert_int_equal(site_of(&r, 1)->frees, 1);
    assert_int_equal(site_of(&r, 2)->live_bytes, 0x6000);
    prof_result_free(&r);
    t_munmap(&s, 1, 0x100000, 0x4000); /* the old place is gone */
    t_mremap(&s, 1, 2, 0x800000, 0x6000, 0x800000, 0x2000); /* shrink */
    t_mremap(&s, 1, 2, 0x900000, 0x1000, 0xa00000, 0x1000); /* not mapped */
    t_result(&s, &r);
    assert_int_equal(r.summary.unmatched_frees, 2);
    assert_int_equal(r.summary.live_bytes, 0x3000);
    assert_int_equal(r.summary.peak_bytes, 0x6000);
    assert_int_equal(r.summary.leaked_allocations, 2);
    t_done(&s, &r);
}

static void test_accounting_file_mappings_apart(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_mmap_file(&s, 1, 1, 0x100000, 0x8000);
    t_alloc(&s, 1, 2, 0x10, 100);
    t_munmap(&s, 1, 0x100000, 0x2000);
    t_result(&s, &r);
    assert_int_equal(r.summary.peak_bytes, 100);
    assert_int_equal(r.summary.live_bytes, 100);
    assert_int_equal(r.summary.file_mapped_bytes, 0x6000);
    assert_int_equal(r.summary.peak_file_mapped_bytes, 0x8000);
    assert_int_equal(r.summary.total_allocations, 1);
    assert_int_equal(r.summary.unmatched_frees, 0);
    assert_null(site_of(&r, 1));
    prof_result_free(&r);
    t_mremap(&s, 1, 1, 0x102000, 0x6000, 0x400000, 0x7000); /* stays a file map */
    t_result(&s, &r);
    assert_int_equal(r.summary.live_bytes, 100);
    assert_int_equal(r.summary.file_mapped_bytes, 0x7000);
    assert_int_equal(r.summary.peak_file_mapped_bytes, 0x8000);
    t_done(&s, &r);
}

static void test_accounting_unmatched_free(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_free(&s, 1, 0xdead0);
    t_alloc(&s, 1, 1, 0x1000, 10);
    t_free(&s, 1, 0x1000);
    t_free(&s, 1, 0x1000);
    t_result(&s, &r);
    assert_int_equal(r.summary.unmatched_frees, 2);
    assert_int_equal(r.summary.total_frees, 1);
    assert_int_equal(r.summary.live_bytes, 0);
    assert_int_equal(r.summary.events, 4);
    t_done(&s, &r);
}

static void test_accounting_alloc_at_live_address_retires(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_alloc(&s, 1, 1, 0x1000, 100);
    t_alloc(&s, 2, 2, 0x1000, 40); /* the free of the first was lost */
    t_result(&s, &r);
    assert_int_equal(r.summary.live_bytes, 40);
    assert_int_equal(r.summary.peak_bytes, 100);
    assert_int_equal(r.summary.leaked_allocations, 1);
    assert_int_equal(site_of(&r, 1)->live_bytes, 0);
    assert_int_equal(site_of(&r, 1)->frees, 1);
    assert_int_equal(site_of(&r, 1)->temporary_allocations, 0);
    assert_int_equal(site_of(&r, 2)->live_bytes, 40);
    assert_int_equal(thread_of(&r, 1)->live_bytes, 0);
    assert_int_equal(thread_of(&r, 2)->live_bytes, 40);
    prof_result_free(&r);
    t_free(&s, 2, 0x1000);
    t_result(&s, &r);
    assert_int_equal(r.summary.live_bytes, 0);
    assert_int_equal(r.summary.unmatched_frees, 0);
    t_done(&s, &r);
}

static void test_accounting_temporaries(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    /* Temporary: freed right after, another thread's events in between. */
    t_alloc(&s, 1, 1, 0x1000, 10);
    t_alloc(&s, 2, 9, 0x9000, 10);
    t_free(&s, 2, 0x9000); /* thread 2's own temporary too */
    t_free(&s, 1, 0x1000);
    /* Not temporary: thread 1 allocated something else in between. */
    t_alloc(&s, 1, 2, 0x2000, 10);
    t_alloc(&s, 1, 3, 0x3000, 10);
    t_free(&s, 1, 0x2000);
    /* Not temporary: freed by another thread. */
    t_alloc(&s, 1, 4, 0x4000, 10);
    t_free(&s, 2, 0x4000);
    /* Temporary through realloc-away. */
    t_alloc(&s, 1, 5, 0x5000, 10);
    t_realloc(&s, 1, 6, 0x5000, 0x6000, 20);
    /* Not temporary: a free of something else intervened. */
    t_alloc(&s, 1, 7, 0x7000, 10);
    t_free(&s, 1, 0x3000);
    t_free(&s, 1, 0x7000);
    /* Not temporary: thread 1's last event was the allocation of 0x8000,
     * but that block went (thread 2) and thread 2 owns the one there now. */
    t_alloc(&s, 1, 8, 0x8000, 10);
    t_free(&s, 2, 0x8000);
    t_alloc(&s, 2, 10, 0x8000, 10);
    t_free(&s, 1, 0x8000);
    t_result(&s, &r);
    assert_int_equal(site_of(&r, 8)->temporary_allocations, 0);
    assert_int_equal(site_of(&r, 10)->temporary_allocations, 0);
    assert_int_equal(site_of(&r, 1)->temporary_allocations, 1);
    assert_int_equal(site_of(&r, 9)->temporary_allocations, 1);
    assert_int_equal(site_of(&r, 2)->temporary_allocations, 0);
    assert_int_equal(site_of(&r, 3)->temporary_allocations, 0);
    assert_int_equal(site_of(&r, 4)->temporary_allocations, 0);
    assert_int_equal(site_of(&r, 5)->temporary_allocations, 1);
    assert_int_equal(site_of(&r, 7)->temporary_allocations, 0);
    assert_int_equal(r.summary.temporary_allocations, 3);
    t_done(&s, &r);
}

static void test_accounting_lifetimes(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_alloc(&s, 1, 1, 0x1000, 8); /* t 10 */
    t_alloc(&s, 1, 1, 0x2000, 8); /* t 20 */
    t_alloc(&s, 1, 1, 0x3000, 8); /* t 30, never freed */
    s.t = 1000;
    t_free(&s, 1, 0x2000);        /* t 1010: 990 */
    s.t = 5000;
    t_free(&s, 1, 0x1000);        /* t 5010: 5000 */
    t_alloc(&s, 1, 2, 0x4000, 8); /* never freed: lifetimes stay 0 */
    t_result(&s, &r);
    const prof_site_t *p = site_of(&r, 1);
    assert_int_equal(p->lifetime_min_ns, 990);
    assert_int_equal(p->lifetime_max_ns, 5000);
    assert_int_equal(p->lifetime_sum_ns, 5990);
    assert_int_equal(p->frees, 2);
    assert_int_equal(site_of(&r, 2)->lifetime_min_ns, 0);
    assert_int_equal(site_of(&r, 2)->lifetime_max_ns, 0);
    t_done(&s, &r);
}

static void test_accounting_thread_ownership(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    prof_acct_thread_name(s.a, 7, "loader-with-a-long-name");
    t_alloc(&s, 7, 1, 0x1000, 1000);
    t_alloc(&s, 7, 1, 0x2000, 1000);
    t_alloc(&s, 8, 2, 0x3000, 500); /* peak 2500: t7 2000, t8 500 */
    t_free(&s, 8, 0x1000);          /* t8 frees t7's block        */
    t_alloc(&s, 8, 2, 0x4000, 100);
    t_result(&s, &r);
    const prof_thread_t *t7 = thread_of(&r, 7), *t8 = thread_of(&r, 8);
    assert_non_null(t7);
    assert_non_null(t8);
    assert_string_equal(t7->name, "loader-with-a-l");
    assert_int_equal(t7->live_bytes, 1000);
    assert_int_equal(t7->frees, 0);
    assert_int_equal(t7->peak_live_bytes, 2000);
    assert_int_equal(t7->live_bytes_at_peak, 2000);
    assert_int_equal(t8->live_bytes, 600);
    assert_int_equal(t8->frees, 1);
    assert_int_equal(t8->live_bytes_at_peak, 500);
    assert_int_equal(t8->peak_live_bytes, 600);
    assert_int_equal(r.threads[0].tid, 7); /* by bytes allocated */
    assert_int_equal(r.threads[1].tid, 8);
    t_done(&s, &r);
}

static void test_accounting_timeline_bounded_with_exact_peak(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 64);
    uint64_t x = 88172645463325252ull;
    uint64_t live[256] = {0};
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int k = (int)(x % 256);
        if (live[k]) {
            t_free(&s, 1, 0x1000 + (uint64_t)k * 16);
            live[k] = 0;
        } else {
            live[k] = 1 + (x >> 40) % 10000;
            t_alloc(&s, 1, 1, 0x1000 + (uint64_t)k * 16, live[k]);
        }
        if (i % 1000 == 0)
            t_rss(&s, (uint64_t)i * 100);
        if (i % 50000 == 49999) {
            t_result(&s, &r);
            assert_true(r.timeline_count <= 64);
            assert_true(r.timeline_count >= 16);
            assert_int_equal(timeline_max(&r), r.summary.peak_bytes);
            for (size_t j = 1; j < r.timeline_count; j++)
                assert_true(r.timeline[j].time_ns > r.timeline[j - 1].time_ns);
            int found = 0;
            for (size_t j = 0; j < r.timeline_count; j++)
                if (r.timeline[j].live_bytes == r.summary.peak_bytes) {
                    found = 1;
                    assert_int_equal(r.timeline[j].time_ns, r.summary.peak_time_ns);
                    assert_int_equal(r.timeline[j].heap_bytes, r.summary.peak_heap_bytes);
                }
            assert_true(found);
            assert_true(r.timeline[r.timeline_count - 1].rss_bytes > 0);
            prof_result_free(&r);
        }
    }
    t_result(&s, &r);
    /* Buckets are at most s.t / 32 wide: the first and last cover both ends. */
    assert_true(r.timeline[0].time_ns < s.t / 32);
    assert_true(r.timeline[r.timeline_count - 1].time_ns >= s.t - s.t / 32);
    t_done(&s, &r);
}

static void test_accounting_leaks_at_end(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_alloc(&s, 1, 1, 0x1000, 64);
    t_alloc(&s, 1, 1, 0x2000, 64);
    t_alloc(&s, 1, 2, 0x3000, 32);
    t_mmap(&s, 1, 3, 0x100000, 0x1000);
    t_free(&s, 1, 0x2000);
    t_result(&s, &r);
    assert_int_equal(r.summary.leaked_bytes, 64 + 32 + 0x1000);
    assert_int_equal(r.summary.leaked_allocations, 3);
    assert_int_equal(r.summary.live_bytes, 64 + 32 + 0x1000);
    assert_int_equal(site_of(&r, 1)->live_bytes, 64);
    assert_int_equal(site_of(&r, 1)->live_allocations, 1);
    assert_int_equal(site_of(&r, 2)->live_allocations, 1);
    assert_int_equal(site_of(&r, 3)->live_allocations, 1);
    t_done(&s, &r);
}

static void test_accounting_rss_and_annotations(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_rss(&s, 1000);
    t_rss(&s, 5000); /* t 20 */
    t_rss(&s, 3000);
    tst_ev(&s, (prof_event_t){.type = MLMEM_EV_STEP, .arg = 1});
    tst_ev(&s, (prof_event_t){.type = MLMEM_EV_STEP, .arg = 2});
    tst_ev(&s, (prof_event_t){.type = MLMEM_EV_FILE_READ, .size = 4096, .arg = 3});
    tst_ev(&s, (prof_event_t){.type = MLMEM_EV_PHASE, .arg = 1});
    prof_acct_set_dropped(s.a, 7);
    prof_acct_set_dropped(s.a, 9);
    prof_acct_add_lost(s.a, 2);
    prof_acct_add_lost(s.a, 3);
    t_result(&s, &r);
    assert_int_equal(r.summary.peak_rss_bytes, 5000);
    assert_int_equal(r.summary.peak_rss_time_ns, 20);
    assert_int_equal(r.summary.rss_samples, 3);
    assert_int_equal(r.summary.steps_annotated, 2);
    assert_int_equal(r.summary.file_read_bytes, 4096);
    assert_int_equal(r.summary.events, 7);
    assert_int_equal(r.summary.dropped_events, 9);
    assert_int_equal(r.summary.lost_events, 5);
    assert_int_equal(r.site_count, 0);
    assert_int_equal(r.timeline[r.timeline_count - 1].rss_bytes, 3000);
    t_done(&s, &r);
}

/* ---- randomized comparison with a brute-force model ---------------------- */

#define REF_SLOTS 2048          /* heap addresses 0x100000 + 32 k          */
#define REF_PAGES 256           /* mapping arena at 0x40000000, 4 KiB pages */
#define REF_PAGE 4096ull
#define REF_ARENA 0x40000000ull
#define REF_STACKS 8
#define REF_TIDS 4
#define REF_ORIGINS 200000
#define REF_UNMAPPED (-1)
#define REF_FILE (-2)

/* The model keeps every heap block in a slot array and every page of the
 * arena with the mapping call that owns it, and recomputes all figures by
 * scanning after each event. */
typedef struct {
    uint8_t live[REF_SLOTS];
    uint64_t size[REF_SLOTS], born[REF_SLOTS];
    uint32_t site[REF_SLOTS], thr[REF_SLOTS];
    int32_t page[REF_PAGES];    /* origin, or REF_UNMAPPED, or REF_FILE */
    uint32_t osite[REF_ORIGINS], othr[REF_ORIGINS];
    uint64_t oborn[REF_ORIGINS];
    uint8_t olive[REF_ORIGINS];
    uint32_t norigins;
    uint64_t last_alloc[REF_TIDS];
    uint8_t still[REF_ORIGINS]; /* scratch for ref_unmap */

    uint64_t allocs[REF_STACKS], frees[REF_STACKS], bytes[REF_STACKS], temps[REF_STACKS],
        lt_sum[REF_STACKS], site_peak[REF_STACKS];
    uint64_t t_allocs[REF_TIDS], t_frees[REF_TIDS], t_peak[REF_TIDS];
    uint64_t total_allocs, total_frees, unmatched, temporaries;

    uint64_t peak, peak_seq, peak_heap, peak_mmap;
    uint64_t at_peak_bytes[REF_STACKS], at_peak_allocs[REF_STACKS], t_at_peak[REF_TIDS];

    uint64_t live_bytes[REF_STACKS], live_allocs[REF_STACKS], t_live[REF_TIDS];
    uint64_t heap, mmap, file;
} ref_t;

static void ref_heap_free(ref_t *m, int k, uint32_t freer, uint64_t now, int temporary)
{
    m->live[k] = 0;
    m->frees[m->site[k]]++;
    m->lt_sum[m->site[k]] += now - m->born[k];
    m->t_frees[freer]++;
    m->total_frees++;
    if (temporary) {
        m->temps[m->site[k]]++;
        m->temporaries++;
    }
}

static void ref_heap_alloc(ref_t *m, int k, uint64_t size, uint32_t st, uint32_t th,
                           uint64_t now)
{
    if (m->live[k])
        ref_heap_free(m, k, m->thr[k], now, 0);
    m->live[k] = 1;
    m->size[k] = size;
    m->born[k] = now;
    m->site[k] = st;
    m->thr[k] = th;
    m->allocs[st]++;
    m->bytes[st] += size;
    m->t_allocs[th]++;
    m->total_allocs++;
    m->last_alloc[th] = 0x100000 + 32ull * (uint64_t)k;
}

/* Drops the pages [p, p + n) and frees the mapping calls left with none.
 * Returns the number of pages that were mapped; *file says whether all of
 * them were file-backed. */
static int ref_unmap(ref_t *m, int p, int n, uint32_t freer, uint64_t now, int *file)
{
    int had = 0, anon = 0;
    for (int i = p; i < p + n && i < REF_PAGES; i++)
        if (m->page[i] != REF_UNMAPPED) {
            had++;
            anon += m->page[i] >= 0;
            m->page[i] = REF_UNMAPPED;
        }
    *file = had > 0 && anon == 0;
    uint8_t *still = m->still;
    memset(still, 0, m->norigins);
    for (int i = 0; i < REF_PAGES; i++)
        if (m->page[i] >= 0)
            still[m->page[i]] = 1;
    for (uint32_t o = 0; o < m->norigins; o++)
        if (m->olive[o] && !still[o]) {
            m->olive[o] = 0;
            m->frees[m->osite[o]]++;
            m->lt_sum[m->osite[o]] += now - m->oborn[o];
            m->t_frees[freer]++;
            m->total_frees++;
        }
    return had;
}

static void ref_map(ref_t *m, int p, int n, uint32_t st, uint32_t th, uint64_t now)
{
    uint32_t o = m->norigins++;
    assert_true(o < REF_ORIGINS);
    m->osite[o] = st;
    m->othr[o] = th;
    m->oborn[o] = now;
    m->olive[o] = 1;
    for (int i = p; i < p + n; i++)
        m->page[i] = (int32_t)o;
    m->allocs[st]++;
    m->bytes[st] += (uint64_t)n * REF_PAGE;
    m->t_allocs[th]++;
    m->total_allocs++;
}

/* Recomputes every live figure by scanning, then the peaks. */
static void ref_scan(ref_t *m, uint64_t seq)
{
    memset(m->live_bytes, 0, sizeof(m->live_bytes));
    memset(m->live_allocs, 0, sizeof(m->live_allocs));
    memset(m->t_live, 0, sizeof(m->t_live));
    m->heap = m->mmap = m->file = 0;
    for (int k = 0; k < REF_SLOTS; k++)
        if (m->live[k]) {
            m->live_bytes[m->site[k]] += m->size[k];
            m->live_allocs[m->site[k]]++;
            m->t_live[m->thr[k]] += m->size[k];
            m->heap += m->size[k];
        }
    for (int i = 0; i < REF_PAGES; i++)
        if (m->page[i] == REF_FILE)
            m->file += REF_PAGE;
    for (int i = 0; i < REF_PAGES; i++)
        if (m->page[i] >= 0) {
            int32_t o = m->page[i];
            m->live_bytes[m->osite[o]] += REF_PAGE;
            m->t_live[m->othr[o]] += REF_PAGE;
            m->mmap += REF_PAGE;
        }
    for (uint32_t o = 0; o < m->norigins; o++)
        if (m->olive[o])
            m->live_allocs[m->osite[o]]++;
    for (int st = 0; st < REF_STACKS; st++)
        if (m->live_bytes[st] > m->site_peak[st])
            m->site_peak[st] = m->live_bytes[st];
    for (int th = 0; th < REF_TIDS; th++)
        if (m->t_live[th] > m->t_peak[th])
            m->t_peak[th] = m->t_live[th];
    if (m->heap + m->mmap > m->peak) {
        m->peak = m->heap + m->mmap;
        m->peak_seq = seq;
        m->peak_heap = m->heap;
        m->peak_mmap = m->mmap;
        memcpy(m->at_peak_bytes, m->live_bytes, sizeof(m->live_bytes));
        memcpy(m->at_peak_allocs, m->live_allocs, sizeof(m->live_allocs));
        memcpy(m->t_at_peak, m->t_live, sizeof(m->t_live));
    }
}

static void ref_compare(const ref_t *m, tst_t *s)
{
    prof_result_t r;
    t_result(s, &r);
    assert_int_equal(r.summary.peak_bytes, m->peak);
    assert_int_equal(r.summary.peak_seq, m->peak_seq);
    assert_int_equal(r.summary.peak_heap_bytes, m->peak_heap);
    assert_int_equal(r.summary.peak_mmap_bytes, m->peak_mmap);
    assert_int_equal(r.summary.live_bytes, m->heap + m->mmap);
    assert_int_equal(r.summary.file_mapped_bytes, m->file);
    assert_int_equal(r.summary.leaked_bytes, m->heap + m->mmap);
    assert_int_equal(r.summary.total_allocations, m->total_allocs);
    assert_int_equal(r.summary.total_frees, m->total_frees);
    assert_int_equal(r.summary.unmatched_frees, m->unmatched);
    assert_int_equal(r.summary.temporary_allocations, m->temporaries);
    assert_int_equal(timeline_max(&r), m->peak);
    uint64_t leaked_allocs = 0;
    for (uint32_t st = 0; st < REF_STACKS; st++) {
        leaked_allocs += m->live_allocs[st];
        const prof_site_t *p = site_of(&r, st);
        if (m->allocs[st] == 0) {
            assert_null(p);
            continue;
        }
        assert_non_null(p);
        assert_int_equal(p->live_bytes_at_peak, m->at_peak_bytes[st]);
        assert_int_equal(p->live_allocations_at_peak, m->at_peak_allocs[st]);
        assert_int_equal(p->live_bytes, m->live_bytes[st]);
        assert_int_equal(p->live_allocations, m->live_allocs[st]);
        assert_int_equal(p->allocations, m->allocs[st]);
        assert_int_equal(p->frees, m->frees[st]);
        assert_int_equal(p->bytes_allocated, m->bytes[st]);
        assert_int_equal(p->peak_live_bytes, m->site_peak[st]);
        assert_int_equal(p->temporary_allocations, m->temps[st]);
        assert_int_equal(p->lifetime_sum_ns, m->lt_sum[st]);
    }
    assert_int_equal(r.summary.leaked_allocations, leaked_allocs);
    for (size_t i = 1; i < r.site_count; i++)
        assert_true(r.sites[i - 1].live_bytes_at_peak >= r.sites[i].live_bytes_at_peak);
    for (uint32_t th = 0; th < REF_TIDS; th++) {
        const prof_thread_t *t = thread_of(&r, 100 + th);
        if (!t)
            continue;
        assert_int_equal(t->live_bytes_at_peak, m->t_at_peak[th]);
        assert_int_equal(t->live_bytes, m->t_live[th]);
        assert_int_equal(t->peak_live_bytes, m->t_peak[th]);
        assert_int_equal(t->allocations, m->t_allocs[th]);
        assert_int_equal(t->frees, m->t_frees[th]);
    }
    prof_result_free(&r);
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Picks a live slot if one is found in a few tries, else any slot. */
static int ref_pick_live(const ref_t *m, uint64_t *x)
{
    int k = 0;
    for (int tries = 0; tries < 8; tries++) {
        k = (int)(rnd(x) % REF_SLOTS);
        if (m->live[k])
            break;
    }
    return k;
}

static void test_accounting_random_matches_reference(void **state)
{
    ref_t *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    for (int i = 0; i < REF_PAGES; i++)
        m->page[i] = REF_UNMAPPED;
    int file;
    tst_t s;
    tst_init(&s, 128);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    const int n_events = 100000;
    for (int i = 0; i < n_events; i++) {
        uint64_t rv = rnd(&x);
        uint32_t th = (uint32_t)(rv % REF_TIDS);
        uint32_t st = (uint32_t)((rv >> 8) % REF_STACKS);
        uint32_t tid = 100 + th;
        uint64_t op = (rv >> 16) % 100;
        /* Drift: allocation-heavy phases then free-heavy ones, so the peak
         * moves and sites change after it. */
        int grow = (i / 7000) % 2 == 0;
        uint64_t now = s.t + 10;
        if (op < (grow ? 40u : 25u)) { /* ALLOC */
            int k = (rv >> 40) % 16 == 0 ? ref_pick_live(m, &x) : (int)(rnd(&x) % REF_SLOTS);
            uint64_t size = 1 + rnd(&x) % ((rv >> 50) % 8 == 0 ? 100000 : 2000);
            ref_heap_alloc(m, k, size, st, th, now);
            t_alloc(&s, tid, st, 0x100000 + 32ull * (uint64_t)k, size);
        } else if (op < 70) { /* FREE */
            int k = ref_pick_live(m, &x);
            uint64_t addr = 0x100000 + 32ull * (uint64_t)k;
            if (m->live[k])
                ref_heap_free(m, k, th, now, m->thr[k] == th && m->last_alloc[th] == addr);
            else
                m->unmatched++;
            m->last_alloc[th] = 0;
            t_free(&s, tid, addr);
        } else if (op < 85) { /* REALLOC */
            uint64_t old = 0;
            int ko = -1;
            uint64_t c = rnd(&x) % 10;
            if (c < 6) {
                ko = ref_pick_live(m, &x);
                old = 0x100000 + 32ull * (uint64_t)ko;
            } else if (c < 7) {
                old = 0x100000 + 32ull * REF_SLOTS + 32 * (rnd(&x) % 64); /* never live */
            }
            int kn = (ko >= 0 && rnd(&x) % 5 == 0) ? ko : (int)(rnd(&x) % REF_SLOTS);
            uint64_t size = 1 + rnd(&x) % 4000;
            if (ko >= 0 && m->live[ko])
                ref_heap_free(m, ko, th, now, m->thr[ko] == th && m->last_alloc[th] == old);
            else if (old != 0)
                m->unmatched++;
            ref_heap_alloc(m, kn, size, st, th, now);
            t_realloc(&s, tid, st, old, 0x100000 + 32ull * (uint64_t)kn, size);
        } else if (op < 91) { /* MMAP or MMAP_FILE, over whatever is there */
            int p = (int)(rnd(&x) % REF_PAGES);
            int n = 1 + (int)(rnd(&x) % 16);
            if (p + n > REF_PAGES)
                n = REF_PAGES - p;
            ref_unmap(m, p, n, th, now, &file);
            m->last_alloc[th] = 0;
            if (op < 89) {
                ref_map(m, p, n, st, th, now);
                t_mmap(&s, tid, st, REF_ARENA + (uint64_t)p * REF_PAGE, (uint64_t)n * REF_PAGE);
            } else {
                for (int j = p; j < p + n; j++)
                    m->page[j] = REF_FILE;
                t_mmap_file(&s, tid, st, REF_ARENA + (uint64_t)p * REF_PAGE,
                            (uint64_t)n * REF_PAGE);
            }
        } else if (op < 97) { /* MUNMAP: part of one, or several */
            int p = (int)(rnd(&x) % REF_PAGES);
            int n = 1 + (int)(rnd(&x) % 24);
            if (p + n > REF_PAGES)
                n = REF_PAGES - p;
            if (ref_unmap(m, p, n, th, now, &file) == 0)
                m->unmatched++;
            m->last_alloc[th] = 0;
            t_munmap(&s, tid, REF_ARENA + (uint64_t)p * REF_PAGE, (uint64_t)n * REF_PAGE);
        } else { /* MREMAP */
            int p = (int)(rnd(&x) % REF_PAGES), n = 1 + (int)(rnd(&x) % 8);
            int q = (int)(rnd(&x) % REF_PAGES), nq = 1 + (int)(rnd(&x) % 12);
            if (p + n > REF_PAGES)
                n = REF_PAGES - p;
            if (q + nq > REF_PAGES)
                nq = REF_PAGES - q;
            int old_file;
            if (ref_unmap(m, p, n, th, now, &old_file) == 0)
                m->unmatched++;
            ref_unmap(m, q, nq, th, now, &file);
            if (old_file) /* a remapped file mapping stays one */
                for (int j = q; j < q + nq; j++)
                    m->page[j] = REF_FILE;
            else
                ref_map(m, q, nq, st, th, now);
            m->last_alloc[th] = 0;
            t_mremap(&s, tid, st, REF_ARENA + (uint64_t)p * REF_PAGE, (uint64_t)n * REF_PAGE,
                     REF_ARENA + (uint64_t)q * REF_PAGE, (uint64_t)nq * REF_PAGE);
        }
        assert_int_equal(s.t, now);
        ref_scan(m, s.seq);
        if (i % 9973 == 0 || i == n_events - 1)
            ref_compare(m, &s);
    }
    assert_true(m->peak > 0);
    assert_true(m->unmatched > 0);
    assert_true(m->temporaries > 0);
    assert_true(m->file > 0);
    prof_acct_free(s.a);
    free(m);
}

/* Applies one random stream (allocations freed at once, longer-lived
 * ones, frees of lost blocks, addresses reused while live, annotation
 * regions) to 'a', with every immediate free folded into its ALLOC as the
 * writer does ('fold') or as two events. */
static void apply_fold_stream(prof_acct_t *a, int fold)
{
    uint64_t x = 0x2545F4914F6CDD1Dull, seq = 0, t = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t rv = rnd(&x);
        prof_event_t e = {.type = MLMEM_EV_ALLOC,
                          .tid = 100 + (uint32_t)(rv % 3),
                          .stack_id = (uint32_t)((rv >> 8) % 7),
                          .addr = 0x100000 + 32 * ((rv >> 16) % 64),
                          .size = 1 + (rv >> 32) % 5000};
        unsigned op = (unsigned)((rv >> 24) % 10);
        t += (rv >> 40) % 3 == 0 ? 0 : 10 + (rv >> 44) % 1000;
        e.time_ns = t;
        if (op == 9) { /* a region opens or closes around later events */
            e.type = (rv >> 50) % 2 ? MLMEM_EV_REGION_BEGIN : MLMEM_EV_REGION_END;
            e.arg = MLMEM_CAT_ACTIVATIONS;
            e.size = e.addr = 0;
        } else if (op >= 6) {
            e.type = MLMEM_EV_FREE;
            e.size = 0;
            e.stack_id = 0;
        } else if (op < 3) { /* freed by the next event */
            if (fold) {
                e.seq = ++seq;
                e.freed_next = 1;
                ++seq;
                assert_int_equal(prof_acct_apply(a, &e), 0);
            } else {
                e.seq = ++seq;
                assert_int_equal(prof_acct_apply(a, &e), 0);
                prof_event_t f = {.type = MLMEM_EV_FREE, .tid = e.tid, .addr = e.addr,
                                  .seq = ++seq, .time_ns = t};
                assert_int_equal(prof_acct_apply(a, &f), 0);
            }
            continue;
        }
        e.seq = ++seq;
        assert_int_equal(prof_acct_apply(a, &e), 0);
    }
}

static void test_accounting_freed_next_same_as_two_events(void **state)
{
    (void)state;
    prof_result_t r[2];
    memset(r, 0, sizeof r);
    for (int fold = 0; fold < 2; fold++) {
        prof_acct_options_t opt = {64};
        prof_acct_t *a = prof_acct_new(&opt);
        assert_non_null(a);
        apply_fold_stream(a, fold);
        assert_int_equal(prof_acct_result(a, &r[fold]), 0);
        prof_acct_free(a);
    }
    assert_true(r[0].summary.temporary_allocations > 1000);
    assert_true(r[0].summary.unmatched_frees > 0);
    assert_memory_equal(&r[0].summary, &r[1].summary, sizeof r[0].summary);
    assert_int_equal(r[0].site_count, r[1].site_count);
    for (size_t i = 0; i < r[0].site_count; i++) {
        const prof_site_t *p = &r[0].sites[i], *q = &r[1].sites[i];
        assert_int_equal(p->stack_id, q->stack_id);
        assert_memory_equal(&p->allocations, &q->allocations,
                            offsetof(prof_site_t, sampled) - offsetof(prof_site_t, allocations));
        assert_int_equal(p->unannotated_bytes_at_peak, q->unannotated_bytes_at_peak);
        assert_int_equal(p->unannotated_bytes, q->unannotated_bytes);
        assert_int_equal(p->first_alloc_ns, q->first_alloc_ns);
        assert_int_equal(p->last_alloc_ns, q->last_alloc_ns);
        assert_int_equal(p->first_free_ns, q->first_free_ns);
        assert_int_equal(p->annotated_category, q->annotated_category);
    }
    assert_int_equal(r[0].thread_count, r[1].thread_count);
    for (size_t i = 0; i < r[0].thread_count; i++)
        assert_memory_equal(&r[0].threads[i], &r[1].threads[i], sizeof r[0].threads[i]);
    assert_int_equal(r[0].timeline_count, r[1].timeline_count);
    assert_memory_equal(r[0].timeline, r[1].timeline,
                        r[0].timeline_count * sizeof r[0].timeline[0]);
    assert_memory_equal(r[0].annotated_at_peak, r[1].annotated_at_peak,
                        sizeof r[0].annotated_at_peak);
    prof_result_free(&r[0]);
    prof_result_free(&r[1]);
}

/* ---- version 4 events: TEMPORARIES, ALLOC_LATE ----------------------------- */

/* An ALLOC of 'stack' that stands for its FREE too (freed_next): takes two
 * numbers, as the decoder gives them. */
static void t_alloc_freed(tst_t *s, uint32_t tid, uint32_t stack, uint64_t addr, uint64_t size)
{
    prof_event_t e = {.type = MLMEM_EV_ALLOC, .tid = tid, .stack_id = stack,
                      .addr = addr, .size = size, .freed_next = 1};
    e.seq = ++s->seq;
    ++s->seq;
    s->t += 10;
    e.time_ns = s->t;
    assert_int_equal(prof_acct_apply(s->a, &e), 0);
}

/* Version 6: 'most' bytes held at once, 'nested' of the blocks nested. */
static void t_temporaries_nested(tst_t *s, uint32_t tid, uint32_t stack, uint64_t count,
                                 uint64_t bytes, uint64_t largest, uint64_t most,
                                 uint64_t nested)
{
    tst_ev(s, (prof_event_t){.type = MLMEM_EV_TEMPORARIES, .tid = tid, .stack_id = stack,
                             .arg = count, .size = bytes, .old_size = largest, .addr = most,
                             .old_addr = nested});
}

static void t_temporaries(tst_t *s, uint32_t tid, uint32_t stack, uint64_t count,
                          uint64_t bytes, uint64_t largest)
{
    t_temporaries_nested(s, tid, stack, count, bytes, largest, largest, 0);
}

/* An ALLOC_LATE made when the seq counter stood at 'after'. */
static void t_alloc_late(tst_t *s, uint32_t tid, uint64_t addr, uint64_t size, uint64_t after)
{
    tst_ev(s, (prof_event_t){.type = MLMEM_EV_ALLOC_LATE, .tid = tid, .addr = addr,
                             .size = size, .fn = MLMEM_FN_MALLOC, .arg = after});
}

/* 'q' (folded events) has the figures of 'p' (every event sent): counts,
 * bytes, temporaries, events and the peak, in the summary, at the site of
 * 'stack' and for thread 'tid'. */
static void assert_same_counts(const prof_result_t *p_res, const prof_result_t *q_res,
                               uint32_t stack, uint32_t tid)
{
    const prof_summary_t *p = &p_res->summary, *q = &q_res->summary;
    assert_int_equal(q->total_allocations, p->total_allocations);
    assert_int_equal(q->total_frees, p->total_frees);
    assert_int_equal(q->total_bytes, p->total_bytes);
    assert_int_equal(q->temporary_allocations, p->temporary_allocations);
    assert_int_equal(q->peak_bytes, p->peak_bytes);
    assert_int_equal(q->peak_heap_bytes, p->peak_heap_bytes);
    assert_int_equal(q->events, p->events);

    const prof_site_t *sp = site_of(p_res, stack), *sq = site_of(q_res, stack);
    assert_non_null(sp);
    assert_non_null(sq);
    assert_int_equal(sq->allocations, sp->allocations);
    assert_int_equal(sq->bytes_allocated, sp->bytes_allocated);
    assert_int_equal(sq->largest_allocation, sp->largest_allocation);
    assert_int_equal(sq->frees, sp->frees);
    assert_int_equal(sq->temporary_allocations, sp->temporary_allocations);
    assert_int_equal(sq->peak_live_bytes, sp->peak_live_bytes);

    const prof_thread_t *tp = thread_of(p_res, tid), *tq = thread_of(q_res, tid);
    assert_non_null(tp);
    assert_non_null(tq);
    assert_int_equal(tq->allocations, tp->allocations);
    assert_int_equal(tq->frees, tp->frees);
    assert_int_equal(tq->bytes_allocated, tp->bytes_allocated);
    assert_int_equal(tq->peak_live_bytes, tp->peak_live_bytes);
}

/* One TEMPORARIES event of K blocks of 'stack' gives the same figures as
 * the K freed_next ALLOC pairs of that stack it folds: counts, bytes,
 * temporaries, events, and the peak (a kept block is live around them, so
 * the largest one raises it), in the summary, at the site of 'stack' and
 * for the thread. */
static void check_temporaries_same_as_freed_pairs(uint32_t stack)
{
    static const uint64_t sizes[] = {40, 300, 1500, 8, 72};
    const uint64_t k = sizeof sizes / sizeof sizes[0];
    uint64_t bytes = 0, largest = 0;
    for (uint64_t i = 0; i < k; i++) {
        bytes += sizes[i];
        if (sizes[i] > largest)
            largest = sizes[i];
    }
    tst_t s[2];
    prof_result_t r[2];
    for (int fold = 0; fold < 2; fold++) {
        tst_init(&s[fold], 0);
        t_alloc(&s[fold], 3, 1, 0x10000, 1000); /* kept */
        if (fold)
            t_temporaries(&s[fold], 3, stack, k, bytes, largest);
        else
            for (uint64_t i = 0; i < k; i++)
                t_alloc_freed(&s[fold], 3, stack, 0x20000 + 64 * i, sizes[i]);
        t_free(&s[fold], 3, 0x10000);
        t_result(&s[fold], &r[fold]);
    }
    /* The pairs' own figures, so the comparison is not of two zeroes. */
    assert_int_equal(r[0].summary.total_allocations, 1 + k);
    assert_int_equal(r[0].summary.temporary_allocations, k);
    assert_int_equal(r[0].summary.peak_bytes, 1000 + largest);
    assert_int_equal(r[0].summary.events, 2 + 2 * k);
    assert_int_equal(site_of(&r[0], stack)->allocations, k);
    assert_same_counts(&r[0], &r[1], stack, 3);
    t_done(&s[0], &r[0]);
    t_done(&s[1], &r[1]);
}

static void test_accounting_temporaries_event_same_as_freed_pairs(void **state)
{
    (void)state;
    check_temporaries_same_as_freed_pairs(MLMEM_STACK_NONE);
}

/* Version 5: with --stacks=all the folded blocks have their stack, and the
 * figures land at that site. */
static void test_accounting_temporaries_with_stack_same_as_freed_pairs(void **state)
{
    (void)state;
    check_temporaries_same_as_freed_pairs(7);
}

/* Version 6: a thread holds several small blocks and folds the frees of
 * any of them (preload/fold.c). The folded events give the figures of
 * sending each one: thread 3 keeps K (1000), then makes A (100) and B
 * (300), frees B (a temporary), makes D (200) and C (50), frees C (a
 * temporary) and A (nested: the thread made and freed others since), and
 * then reallocs D, which is no temporary's free (the thread freed A since
 * it made D). Folded, that is one TEMPORARIES of 3 blocks, 450 bytes, the
 * largest 300, the most held at once 400 (A and B), one nested, then D's
 * ALLOC_LATE marked not the thread's latest. The peak is K + A + B. */
static void test_accounting_nested_temporaries_same_as_events(void **state)
{
    (void)state;
    tst_t s[2];
    prof_result_t r[2];
    for (int fold = 0; fold < 2; fold++) {
        tst_t *t = &s[fold];
        tst_init(t, 0);
        t_alloc(t, 3, 1, 0x10000, 1000); /* K, kept */
        if (fold) {
            t_temporaries_nested(t, 3, MLMEM_STACK_NONE, 3, 450, 300, 400, 1);
            /* D, made when the counter stood at K's number */
            tst_ev(t, (prof_event_t){.type = MLMEM_EV_ALLOC_LATE, .tid = 3, .addr = 0x20300,
                                     .size = 200, .arg = 1, .not_latest = 1});
        } else {
            t_alloc(t, 3, MLMEM_STACK_NONE, 0x20100, 100); /* A */
            t_alloc(t, 3, MLMEM_STACK_NONE, 0x20200, 300); /* B */
            t_free(t, 3, 0x20200);
            t_alloc(t, 3, MLMEM_STACK_NONE, 0x20300, 200); /* D */
            t_alloc(t, 3, MLMEM_STACK_NONE, 0x20400, 50);  /* C */
            t_free(t, 3, 0x20400);
            t_free(t, 3, 0x20100);
        }
        t_realloc(t, 3, 2, 0x20300, 0x20500, 250);
        t_free(t, 3, 0x10000);
        t_free(t, 3, 0x20500);
        t_result(t, &r[fold]);
    }
    /* The unfolded run's own figures, so the comparison is not of zeroes. */
    assert_int_equal(r[0].summary.total_allocations, 1 + 4 + 1);
    assert_int_equal(r[0].summary.temporary_allocations, 2);
    assert_int_equal(r[0].summary.peak_bytes, 1000 + 100 + 300);
    assert_int_equal(r[0].summary.events, 1 + 7 + 3);
    assert_same_counts(&r[0], &r[1], MLMEM_STACK_NONE, 3);
    t_done(&s[0], &r[0]);
    t_done(&s[1], &r[1]);
}

/* An ALLOC_LATE made before an unmatched free of its address (the free's
 * seq is above the ALLOC_LATE's arg) claims that free: the block is
 * counted as allocated by the ALLOC_LATE's thread and freed by the free's
 * thread, the free is no longer unmatched, and nothing is left live. */
static void test_accounting_alloc_late_claims_earlier_free(void **state)
{
    (void)state;
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    s.seq = 4;
    t_free(&s, 1, 0xab000); /* seq 5: nothing live there */
    assert_int_equal(s.seq, 5);
    t_result(&s, &r);
    assert_int_equal(r.summary.unmatched_frees, 1);
    prof_result_free(&r);
    s.seq = 6;
    t_alloc_late(&s, 2, 0xab000, 100, 3); /* seq 7, made at 3 */
    assert_int_equal(s.seq, 7);
    t_result(&s, &r);
    assert_int_equal(r.summary.unmatched_frees, 0);
    assert_int_equal(r.summary.total_allocations, 1);
    assert_int_equal(r.summary.total_frees, 1);
    assert_int_equal(r.summary.total_bytes, 100);
    assert_int_equal(r.summary.live_bytes, 0);
    assert_int_equal(r.summary.leaked_bytes, 0);
    assert_int_equal(r.summary.leaked_allocations, 0);
    assert_int_equal(r.summary.peak_bytes, 0); /* never live */
    const prof_thread_t *t1 = thread_of(&r, 1), *t2 = thread_of(&r, 2);
    assert_non_null(t1);
    assert_non_null(t2);
    assert_int_equal(t2->allocations, 1);
    assert_int_equal(t2->bytes_allocated, 100);
    assert_int_equal(t2->frees, 0);
    assert_int_equal(t2->live_bytes, 0);
    assert_int_equal(t1->allocations, 0);
    assert_int_equal(t1->frees, 1);
    const prof_site_t *p = site_of(&r, MLMEM_STACK_NONE);
    assert_non_null(p);
    assert_int_equal(p->allocations, 1);
    assert_int_equal(p->frees, 1);
    assert_int_equal(p->live_allocations, 0);
    t_done(&s, &r);
}

/* Block i of the waiting frees below: scattered, as eight threads' arenas
 * are, 16-byte aligned. */
static uint64_t waiting_addr(uint64_t i)
{
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return 0x7f0000000000ull + ((x * 0xBF58476D1CE4E5B9ull) >> 24 & ~15ull);
}

/* Eight threads each hold 32 blocks that a ninth frees before any is sent
 * (preload/fold.c): 256 frees wait at once, and every late ALLOC claims
 * its own; an address freed twice meanwhile gives the first free after the
 * block was made to it. */
static void test_accounting_alloc_late_claims_many_waiting_frees(void **state)
{
    (void)state;
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    for (uint64_t i = 0; i < 256; i++)
        t_free(&s, 9, waiting_addr(i)); /* seq 1..256 */
    t_free(&s, 9, 0xab000);              /* seq 257 */
    t_free(&s, 9, 0xab000);              /* seq 258 */
    for (uint64_t i = 0; i < 256; i++)
        t_alloc_late(&s, 1 + (uint32_t)(i / 32), waiting_addr(i), 32, 0);
    t_alloc_late(&s, 1, 0xab000, 100, 257); /* made after the first free */
    t_result(&s, &r);
    assert_int_equal(r.summary.unmatched_frees, 1);
    assert_int_equal(r.summary.total_frees, 257);
    assert_int_equal(r.summary.live_bytes, 0);
    assert_int_equal(thread_of(&r, 9)->frees, 257);
    t_done(&s, &r);
}

/* An ALLOC_LATE whose arg is not below the free's seq was made at or
 * after that free: the free was of an earlier block, stays unmatched, and
 * the ALLOC_LATE's block is live. */
static void test_accounting_alloc_late_after_free_not_claimed(void **state)
{
    (void)state;
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    s.seq = 4;
    t_free(&s, 1, 0xab000); /* seq 5 */
    s.seq = 6;
    t_alloc_late(&s, 2, 0xab000, 100, 5); /* seq 7, made at 5 */
    t_result(&s, &r);
    assert_int_equal(r.summary.unmatched_frees, 1);
    assert_int_equal(r.summary.total_allocations, 1);
    assert_int_equal(r.summary.total_frees, 0);
    assert_int_equal(r.summary.live_bytes, 100);
    assert_int_equal(r.summary.leaked_bytes, 100);
    assert_int_equal(r.summary.leaked_allocations, 1);
    assert_int_equal(thread_of(&r, 2)->live_bytes, 100);
    assert_null(thread_of(&r, 1)); /* freed nothing, allocated nothing */
    t_done(&s, &r);
}

/* With no earlier free of its address (an unmatched free of another one
 * does not count), an ALLOC_LATE is an ALLOC: its block is live, and a
 * later FREE frees it as usual. */
static void test_accounting_alloc_late_without_free_is_alloc(void **state)
{
    (void)state;
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_free(&s, 1, 0xcd000);               /* seq 1: unmatched, another address */
    t_alloc_late(&s, 2, 0xab000, 100, 1); /* seq 2, made at 1 */
    t_result(&s, &r);
    assert_int_equal(r.summary.unmatched_frees, 1);
    assert_int_equal(r.summary.total_allocations, 1);
    assert_int_equal(r.summary.total_frees, 0);
    assert_int_equal(r.summary.live_bytes, 100);
    assert_int_equal(r.summary.leaked_allocations, 1);
    assert_int_equal(r.summary.peak_bytes, 100);
    assert_int_equal(site_of(&r, MLMEM_STACK_NONE)->live_allocations, 1);
    assert_int_equal(thread_of(&r, 2)->allocations, 1);
    assert_int_equal(thread_of(&r, 2)->live_bytes, 100);
    prof_result_free(&r);
    t_free(&s, 3, 0xab000); /* seq 3 */
    t_result(&s, &r);
    assert_int_equal(r.summary.unmatched_frees, 1);
    assert_int_equal(r.summary.total_frees, 1);
    assert_int_equal(r.summary.live_bytes, 0);
    assert_int_equal(r.summary.leaked_allocations, 0);
    assert_int_equal(thread_of(&r, 3)->frees, 1);
    assert_int_equal(thread_of(&r, 2)->live_bytes, 0);
    assert_int_equal(site_of(&r, MLMEM_STACK_NONE)->frees, 1);
    t_done(&s, &r);
}

static void test_accounting_result_free_zeroes(void **state)
{
    prof_result_t r;
    memset(&r, 0, sizeof(r));
    r.sites = calloc(1, sizeof(*r.sites));
    r.site_count = 1;
    r.sites[0].frames = calloc(2, sizeof(prof_frame_t));
    r.sites[0].frame_count = 2;
    r.sites[0].frames[0].function = strdup("main");
    r.sites[0].frames[1].module = strdup("/bin/true");
    r.sites[0].category = "weights";
    r.sites[0].category_evidence = strdup("tagged");
    r.process.command = strdup("true");
    r.children = calloc(1, sizeof(*r.children));
    r.child_count = 1;
    r.children[0].command = strdup("child");
    prof_result_free(&r);
    assert_null(r.sites);
    assert_int_equal(r.site_count, 0);
    assert_null(r.process.command);
    prof_result_free(&r); /* a zeroed result is fine */
    prof_result_free(NULL);
}

/* One thread's live figures per site, computed on demand from the live
 * heap blocks and mappings (the dashboard's thread filter): blocks freed
 * or moved by another thread leave their owner, a mapping cut in the
 * middle stays one allocation, file mappings are not counted, and the
 * entries add up to the per-thread and per-site figures of the result. */
static void test_accounting_thread_sites_on_demand(void **state)
{
    tst_t s;
    prof_result_t r;
    tst_init(&s, 0);
    t_alloc(&s, 7, 1, 0x1000, 1000);             /* t 10 */
    t_alloc(&s, 7, 1, 0x2000, 1000);             /* t 20: stays live */
    t_mmap(&s, 7, 3, 0x100000, 8192);            /* t 30 */
    t_mmap_file(&s, 7, 4, 0x200000, 4096);       /* not heap: left out */
    t_alloc(&s, 8, 2, 0x3000, 500);
    t_free(&s, 8, 0x1000);                       /* t7's block, freed by t8 */
    t_alloc(&s, 8, 1, 0x4000, 100);              /* t 70 */
    t_munmap(&s, 8, 0x100800, 0x800);            /* cut in the middle: two pieces */
    t_realloc(&s, 8, 5, 0x3000, 0x5000, 3000);   /* t 90: stack 2 -> stack 5 */
    t_alloc(&s, 9, 6, 0x6000, 10);
    t_free(&s, 9, 0x6000);                       /* t9 holds nothing */

    prof_thread_site_t *ts;
    size_t n;
    assert_int_equal(prof_acct_thread_sites(s.a, 7, &ts, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ts[0].tid, 7);
    assert_int_equal(ts[0].stack_id, 3);         /* largest first */
    assert_int_equal(ts[0].live_bytes, 8192 - 2048);
    assert_int_equal(ts[0].live_allocations, 1);
    assert_int_equal(ts[0].mmap_bytes, 8192 - 2048);
    assert_int_equal(ts[0].oldest_born_ns, 30);
    assert_int_equal(ts[1].stack_id, 1);
    assert_int_equal(ts[1].live_bytes, 1000);
    assert_int_equal(ts[1].live_allocations, 1);
    assert_int_equal(ts[1].mmap_bytes, 0);
    assert_int_equal(ts[1].oldest_born_ns, 20);
    free(ts);

    assert_int_equal(prof_acct_thread_sites(s.a, 8, &ts, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ts[0].stack_id, 5);
    assert_int_equal(ts[0].live_bytes, 3000);
    assert_int_equal(ts[0].oldest_born_ns, 90);
    assert_int_equal(ts[1].stack_id, 1);
    assert_int_equal(ts[1].live_bytes, 100);
    assert_int_equal(ts[1].oldest_born_ns, 70);
    free(ts);

    assert_int_equal(prof_acct_thread_sites(s.a, 9, &ts, &n), 0); /* known, holds nothing */
    assert_int_equal(n, 0);
    assert_null(ts);
    assert_int_equal(prof_acct_thread_sites(s.a, 12345, &ts, &n), 0); /* unknown tid */
    assert_int_equal(n, 0);
    assert_null(ts);

    /* Every thread at once: sorted by tid, and the entries add up. */
    assert_int_equal(prof_acct_thread_sites(s.a, PROF_ACCT_ALL_THREADS, &ts, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ts[0].tid, 7);
    assert_int_equal(ts[1].tid, 7);
    assert_int_equal(ts[2].tid, 8);
    assert_int_equal(ts[3].tid, 8);
    t_result(&s, &r);
    for (size_t i = 0; i < r.thread_count; i++) {
        uint64_t sum = 0;
        for (size_t k = 0; k < n; k++)
            if (ts[k].tid == r.threads[i].tid)
                sum += ts[k].live_bytes;
        assert_int_equal(sum, r.threads[i].live_bytes);
    }
    for (size_t i = 0; i < r.site_count; i++) {
        uint64_t bytes = 0, allocs = 0;
        for (size_t k = 0; k < n; k++)
            if (ts[k].stack_id == r.sites[i].stack_id) {
                bytes += ts[k].live_bytes;
                allocs += ts[k].live_allocations;
            }
        if (r.sites[i].stack_id == 4)
            continue; /* the file mapping: not heap */
        assert_int_equal(bytes, r.sites[i].live_bytes);
        assert_int_equal(allocs, r.sites[i].live_allocations);
    }
    free(ts);

    /* A larger random run: per thread and per site, the same as the result. */
    t_done(&s, &r);
    tst_init(&s, 0);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t addr = 0x10000 + (x % 4096) * 64;
        uint32_t tid = 1 + (uint32_t)((x >> 20) % 5), stack = 1 + (uint32_t)((x >> 30) % 40);
        if ((x >> 50) % 3)
            t_alloc(&s, tid, stack, addr, 1 + (x >> 40) % 1000); /* may retire a live one */
        else
            t_free(&s, tid, addr);
    }
    t_result(&s, &r);
    assert_int_equal(prof_acct_thread_sites(s.a, PROF_ACCT_ALL_THREADS, &ts, &n), 0);
    for (size_t i = 0; i < r.thread_count; i++) {
        prof_thread_site_t *one;
        size_t m;
        uint64_t sum = 0;
        assert_int_equal(prof_acct_thread_sites(s.a, r.threads[i].tid, &one, &m), 0);
        for (size_t k = 0; k < m; k++) {
            sum += one[k].live_bytes;
            if (k)
                assert_true(one[k - 1].live_bytes >= one[k].live_bytes);
        }
        assert_int_equal(sum, r.threads[i].live_bytes);
        free(one);
    }
    for (size_t i = 0; i < r.site_count; i++) {
        uint64_t bytes = 0, allocs = 0;
        for (size_t k = 0; k < n; k++)
            if (ts[k].stack_id == r.sites[i].stack_id) {
                bytes += ts[k].live_bytes;
                allocs += ts[k].live_allocations;
            }
        assert_int_equal(bytes, r.sites[i].live_bytes);
        assert_int_equal(allocs, r.sites[i].live_allocations);
    }
    free(ts);
    t_done(&s, &r);

    /* Many threads x many sites (past the dense table: hashed), the same. */
    tst_init(&s, 0);
    for (uint32_t i = 0; i < 1100; i++)
        t_alloc(&s, 1 + i % 1000, 1 + i, 0x100000 + (uint64_t)i * 64, 1 + i);
    assert_int_equal(prof_acct_thread_sites(s.a, PROF_ACCT_ALL_THREADS, &ts, &n), 0);
    assert_int_equal(n, 1100);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(ts[k].live_bytes, ts[k].stack_id);
        assert_int_equal(ts[k].tid, 1 + (ts[k].stack_id - 1) % 1000);
        if (k)
            assert_true(ts[k - 1].tid < ts[k].tid ||
                        (ts[k - 1].tid == ts[k].tid && ts[k - 1].live_bytes > ts[k].live_bytes));
    }
    free(ts);
    assert_int_equal(prof_acct_thread_sites(s.a, 5, &ts, &n), 0);
    assert_int_equal(n, 2); /* stacks 1005 and 5 */
    assert_int_equal(ts[0].stack_id, 1005);
    assert_int_equal(ts[1].stack_id, 5);
    free(ts);
    prof_acct_free(s.a);
}

/* The live-heap table past the size where its slots are mapped in huge
 * pages (heap_table.c): 300,000 blocks in (a 32 MiB table), each found with
 * its size, half removed, the rest still found, the removed ones not. */
static void test_accounting_heap_table_large(void **state)
{
    (void)state;
    enum { N = 300000 };
    prof_heap_table_t t;
    assert_int_equal(prof_heap_table_init(&t), 0);
    for (uint64_t k = 1; k <= N; k++) {
        assert_int_equal(prof_heap_table_reserve1(&t), 0);
        int existed;
        prof_heap_entry_t *e = prof_heap_table_insert(&t, k * 48, &existed);
        assert_false(existed);
        e->size = k;
    }
    assert_int_equal(t.count, N);
    assert_true((t.mask + 1) * sizeof(prof_heap_entry_t) >= (size_t)4 << 20);
    for (uint64_t k = 1; k <= N; k += 2)
        prof_heap_table_remove(&t, prof_heap_table_find(&t, k * 48));
    for (uint64_t k = 1; k <= N; k++) {
        prof_heap_entry_t *e = prof_heap_table_find(&t, k * 48);
        if (k % 2) {
            assert_null(e);
        } else {
            assert_non_null(e);
            assert_int_equal(e->size, k);
        }
    }
    prof_heap_table_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accounting_simple_peak_exact),
        cmocka_unit_test(test_accounting_heap_table_large),
        cmocka_unit_test(test_accounting_peak_per_site_epoch),
        cmocka_unit_test(test_accounting_realloc_no_false_peak),
        cmocka_unit_test(test_accounting_munmap_partial_splits_mapping),
        cmocka_unit_test(test_accounting_munmap_spans_two_mappings),
        cmocka_unit_test(test_accounting_mremap_moves_in_one_step),
        cmocka_unit_test(test_accounting_file_mappings_apart),
        cmocka_unit_test(test_accounting_unmatched_free),
        cmocka_unit_test(test_accounting_alloc_at_live_address_retires),
        cmocka_unit_test(test_accounting_temporaries),
        cmocka_unit_test(test_accounting_lifetimes),
        cmocka_unit_test(test_accounting_thread_ownership),
        cmocka_unit_test(test_accounting_timeline_bounded_with_exact_peak),
        cmocka_unit_test(test_accounting_leaks_at_end),
        cmocka_unit_test(test_accounting_rss_and_annotations),
        cmocka_unit_test(test_accounting_random_matches_reference),
        cmocka_unit_test(test_accounting_freed_next_same_as_two_events),
        cmocka_unit_test(test_accounting_temporaries_event_same_as_freed_pairs),
        cmocka_unit_test(test_accounting_temporaries_with_stack_same_as_freed_pairs),
        cmocka_unit_test(test_accounting_nested_temporaries_same_as_events),
        cmocka_unit_test(test_accounting_alloc_late_claims_earlier_free),
        cmocka_unit_test(test_accounting_alloc_late_claims_many_waiting_frees),
        cmocka_unit_test(test_accounting_alloc_late_after_free_not_claimed),
        cmocka_unit_test(test_accounting_alloc_late_without_free_is_alloc),
        cmocka_unit_test(test_accounting_result_free_zeroes),
        cmocka_unit_test(test_accounting_thread_sites_on_demand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
