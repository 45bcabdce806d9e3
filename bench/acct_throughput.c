/*
 * acct_throughput.c - how many events per second prof_acct_apply() takes on
 * a malloc/free-heavy stream.
 *
 * Usage: acct_throughput [EVENTS [LIVE]]
 *   EVENTS  events to apply (default 100000000)
 *   LIVE    size of the address pool; about half of it is live at any time
 *           (default 200000)
 *
 * The stream is generated up front as a chunk of about 2M events that frees
 * everything it allocated by its end, then replayed with times shifted, so
 * the timing covers apply() only. The mix: 8 threads, 2000 stacks, 45%
 * malloc, 45% free, 5% realloc, a quarter of the mallocs freed straight away
 * (temporaries), sizes mostly small with a few large.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "profiler/accounting.h"

static uint64_t bench_rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t bench_addr(uint64_t slot)
{
    return 0x7f0000000000ull + slot * 48;
}

/* Fills 'ev' with up to 'cap' events over a pool of 'pool' slots and returns
 * how many: a steady churn, then frees of all that is left. */
static size_t bench_chunk(prof_event_t *ev, size_t cap, uint64_t pool)
{
    uint8_t *live = calloc(pool, 1);
    uint64_t *liveset = malloc(pool * sizeof(*liveset));
    size_t *where = malloc(pool * sizeof(*where));
    if (!live || !liveset || !where) {
        fprintf(stderr, "acct_throughput: out of memory\n");
        exit(1);
    }
    size_t nlive = 0, n = 0;
    uint64_t x = 0x2545F4914F6CDD1Dull, t = 0;
    while (n + 2 < cap - nlive) {
        uint64_t r = bench_rnd(&x);
        uint32_t tid = 1000 + (uint32_t)(r % 8);
        uint32_t stack = 1 + (uint32_t)((r >> 3) % 2000);
        uint64_t op = (r >> 16) % 100;
        uint64_t size = (r >> 40) % 64 == 0 ? 4096 + (r >> 24) % 1000000 : 8 + (r >> 24) % 512;
        t += 1 + (r >> 60);
        if (op < 50 && nlive > 0 && (op < 45 || nlive > pool / 2)) {
            /* free a random live block, or realloc it */
            size_t i = (size_t)(bench_rnd(&x) % nlive);
            uint64_t slot = liveset[i];
            if (op < 5) {
                ev[n++] = (prof_event_t){.type = MLMEM_EV_REALLOC, .tid = tid, .stack_id = stack,
                                         .old_addr = bench_addr(slot), .addr = bench_addr(slot),
                                         .size = size, .time_ns = t};
                continue;
            }
            ev[n++] = (prof_event_t){.type = MLMEM_EV_FREE, .tid = tid,
                                     .addr = bench_addr(slot), .time_ns = t};
            live[slot] = 0;
            liveset[i] = liveset[--nlive];
            where[liveset[i]] = i;
        } else if (nlive < pool * 3 / 4) {
            uint64_t slot;
            do
                slot = bench_rnd(&x) % pool;
            while (live[slot]);
            ev[n++] = (prof_event_t){.type = MLMEM_EV_ALLOC, .tid = tid, .stack_id = stack,
                                     .addr = bench_addr(slot), .size = size, .time_ns = t};
            if (op % 4 == 0) { /* a temporary */
                ev[n++] = (prof_event_t){.type = MLMEM_EV_FREE, .tid = tid,
                                         .addr = bench_addr(slot), .time_ns = t + 1};
                continue;
            }
            live[slot] = 1;
            where[slot] = nlive;
            liveset[nlive++] = slot;
        }
    }
    while (nlive > 0)
        ev[n++] = (prof_event_t){.type = MLMEM_EV_FREE, .tid = 1000,
                                 .addr = bench_addr(liveset[--nlive]), .time_ns = ++t};
    free(live);
    free(liveset);
    free(where);
    return n;
}

int main(int argc, char **argv)
{
    uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000000ull;
    uint64_t pool = argc > 2 ? strtoull(argv[2], NULL, 10) : 200000ull;
    size_t cap = 2000000 + (size_t)pool;
    prof_event_t *ev = malloc(cap * sizeof(*ev));
    prof_acct_t *a = prof_acct_new(NULL);
    if (!ev || !a) {
        fprintf(stderr, "acct_throughput: out of memory\n");
        return 1;
    }
    size_t n = bench_chunk(ev, cap, pool);
    uint64_t span = ev[n - 1].time_ns + 1, seq = 0, done = 0;

    double t0 = bench_now();
    while (done < total) {
        for (size_t i = 0; i < n && done < total; i++, done++) {
            ev[i].seq = ++seq;
            if (prof_acct_apply(a, &ev[i]) < 0) {
                fprintf(stderr, "acct_throughput: apply failed\n");
                return 1;
            }
        }
        for (size_t i = 0; i < n; i++)
            ev[i].time_ns += span;
    }
    double dt = bench_now() - t0;

    prof_result_t r = {0};
    if (prof_acct_result(a, &r) < 0) {
        fprintf(stderr, "acct_throughput: result failed\n");
        return 1;
    }
    printf("events %llu in %.3f s: %.1f M events/s (chunk %zu, pool %llu)\n",
           (unsigned long long)done, dt, (double)done / dt / 1e6, n, (unsigned long long)pool);
    printf("peak %llu bytes, %zu sites, %zu threads, %llu temporaries, %llu unmatched\n",
           (unsigned long long)r.summary.peak_bytes, r.site_count, r.thread_count,
           (unsigned long long)r.summary.temporary_allocations,
           (unsigned long long)r.summary.unmatched_frees);
    prof_result_free(&r);
    prof_acct_free(a);
    free(ev);
    return 0;
}
