/*
 * test_shim.c - unit tests of the shim's pieces that can run outside a
 * profiled process: the stack-buffer formatter, the configuration parser,
 * the bootstrap pool, the lock-free stack table, the CFI walk, the shim's own
 * memory region, the event clock and the folding of temporaries. (The hooks
 * themselves are tested end to end, in test_e2e_capture.c.)
 *
 * The shim's sources are compiled into this test without its hooks, so the
 * test's own malloc is the real one.
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "preload/record.h"
#include "preload/shim.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>

/* ---- shim_format --------------------------------------------------------- */

static void test_shim_format_conversions(void **state)
{
    char buf[128];
    size_t n = shim_format(buf, sizeof buf, "%s=%d %u %lu %llu %zu %x %p %%", "k", -42, 7u,
                           123456789ul, 18446744073709551615ull, (size_t)99, 0xbeefu,
                           (void *)0x1000);
    assert_string_equal(buf, "k=-42 7 123456789 18446744073709551615 99 beef 0x1000 %");
    assert_int_equal(n, strlen(buf));
}

static void test_shim_format_truncates_within_buffer(void **state)
{
    char buf[8];
    memset(buf, 'X', sizeof buf);
    size_t n = shim_format(buf, sizeof buf, "abcdefghijkl %d", 12345);
    assert_int_equal(n, 7);
    assert_string_equal(buf, "abcdefg");
}

static void test_shim_format_null_string_and_unknown_conversion(void **state)
{
    char buf[64];
    const char *volatile none = NULL;
    shim_format(buf, sizeof buf, "[%s]", none);
    assert_string_equal(buf, "[(null)]");
    /* An unknown conversion stops the output instead of misreading args.
     * (A variable format: the compiler would reject the literal.) */
    const char *fmt = "a%qb %d";
    shim_format(buf, sizeof buf, fmt, 5);
    assert_string_equal(buf, "a");
}

/* ---- configuration -------------------------------------------------------- */

static void clear_env(void)
{
    const char *vars[] = {"MLMEM_SOCKET", "MLMEM_STACKS", "MLMEM_STACK_THRESHOLD",
                          "MLMEM_SAMPLE_RATE", "MLMEM_FOLLOW_FORK", "MLMEM_ROOT_PID",
                          "MLMEM_BLOCK_MS", "MLMEM_RSS_INTERVAL_MS", "MLMEM_EXIT_TIMEOUT_MS",
                          "MLMEM_FOLD", "MLMEM_UNWIND", "MLMEM_DEBUG"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static void test_shim_config_defaults(void **state)
{
    clear_env();
    shim_config_t c;
    shim_config_load(&c);
    assert_string_equal(c.socket_path, "");
    assert_int_equal(c.stack_mode, MLMEM_STACKS_SAMPLED);
    assert_int_equal(c.stack_threshold, 4096);
    assert_int_equal(c.sample_rate, 512 * 1024);
    assert_int_equal(c.follow_fork, 1);
    assert_int_equal(c.block_ms, 5000);
    assert_int_equal(c.rss_interval_ms, 10);
    assert_int_equal(c.fold_temporaries, 1);
    assert_int_equal(c.unwind_mode, SHIM_UNWIND_CFI);
}

static void test_shim_config_reads_environment(void **state)
{
    clear_env();
    setenv("MLMEM_SOCKET", "/tmp/x/events.sock", 1);
    setenv("MLMEM_STACKS", "all", 1);
    setenv("MLMEM_STACK_THRESHOLD", "64K", 1);
    setenv("MLMEM_SAMPLE_RATE", "2M", 1);
    setenv("MLMEM_FOLLOW_FORK", "0", 1);
    setenv("MLMEM_ROOT_PID", "1234", 1);
    setenv("MLMEM_BLOCK_MS", "7", 1);
    setenv("MLMEM_FOLD", "0", 1);
    setenv("MLMEM_UNWIND", "check", 1);
    shim_config_t c;
    shim_config_load(&c);
    assert_string_equal(c.socket_path, "/tmp/x/events.sock");
    assert_int_equal(c.stack_mode, MLMEM_STACKS_ALL);
    assert_int_equal(c.stack_threshold, 64 * 1024);
    assert_int_equal(c.sample_rate, 2 * 1024 * 1024);
    assert_int_equal(c.follow_fork, 0);
    assert_int_equal(c.root_pid, 1234);
    assert_int_equal(c.block_ms, 7);
    assert_int_equal(c.fold_temporaries, 0);
    assert_int_equal(c.unwind_mode, SHIM_UNWIND_CHECK);
    setenv("MLMEM_UNWIND", "libunwind", 1);
    shim_config_load(&c);
    assert_int_equal(c.unwind_mode, SHIM_UNWIND_LIBUNWIND);
    clear_env();
}

static void test_shim_config_bad_values_keep_defaults(void **state)
{
    clear_env();
    setenv("MLMEM_STACK_THRESHOLD", "lots", 1);
    setenv("MLMEM_SAMPLE_RATE", "12Q", 1);
    setenv("MLMEM_RSS_INTERVAL_MS", "0", 1);
    setenv("MLMEM_UNWIND", "fast please", 1);
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    setenv("MLMEM_SOCKET", longpath, 1); /* longer than sun_path */
    shim_config_t c;
    shim_config_load(&c);
    assert_int_equal(c.stack_threshold, 4096);
    assert_int_equal(c.sample_rate, 512 * 1024);
    assert_int_equal(c.rss_interval_ms, 1); /* 0 would spin the writer */
    assert_int_equal(c.unwind_mode, SHIM_UNWIND_CFI);
    assert_string_equal(c.socket_path, "");
    clear_env();
}

/* ---- bootstrap pool ------------------------------------------------------- */

static void test_shim_pool_alignment_size_and_ownership(void **state)
{
    void *a = shim_pool_alloc(10, 16);
    void *b = shim_pool_alloc(100, 4096);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal((uintptr_t)a % 16, 0);
    assert_int_equal((uintptr_t)b % 4096, 0);
    assert_int_equal(shim_pool_size(a), 10);
    assert_int_equal(shim_pool_size(b), 100);
    assert_true(shim_pool_owns(a) && shim_pool_owns(b));
    int local;
    assert_false(shim_pool_owns(&local));
    /* Zeroed, as calloc promises. */
    for (int i = 0; i < 100; i++)
        assert_int_equal(((unsigned char *)b)[i], 0);
    /* A request larger than the pool fails instead of overflowing it. */
    assert_null(shim_pool_alloc(1u << 30, 16));
}

/* ---- stack table ---------------------------------------------------------- */

static int stacks_setup(void **state)
{
    static int done;
    if (!done && shim_stacks_init() != 0)
        return -1;
    done = 1;
    return 0;
}

/* A ring of the test's own (the table is global, the rings are not), and
 * the stack definitions written to it, read as the writer reads them. */
static shim_ring_t *test_ring(void)
{
    shim_ring_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    return r;
}

typedef struct {
    uint32_t count;
    uint32_t slots[256];    /* each definition's slots */
    shim_stack_def_t defs[256];
} ring_defs_t;

static void read_ring_defs(shim_ring_t *r, ring_defs_t *out)
{
    out->count = 0;
    uint64_t head = atomic_load(&r->head);
    for (uint64_t pos = 0; pos < head; pos += shim_ring_entry_slots(r, pos)) {
        assert_int_equal(SHIM_EVI_TYPE(r->slots[pos].ev.info), SHIM_EV_STACK_DEF);
        assert_true(out->count < 256);
        assert_int_equal(shim_stack_def_read(r, pos, &out->defs[out->count]), 0);
        out->slots[out->count++] = (uint32_t)shim_ring_entry_slots(r, pos);
    }
}

static void test_shim_stacks_same_frames_same_id(void **state)
{
    uintptr_t a[] = {0x1000, 0x2000, 0x3000};
    uintptr_t b[] = {0x1000, 0x2000, 0x3000};
    shim_ring_t *r = test_ring();
    uint32_t ia = shim_stack_intern(r, a, 3), ib = shim_stack_intern(r, b, 3);
    assert_true(ia != MLMEM_STACK_NONE);
    assert_int_equal(ia, ib);
    /* Defined once, in the ring of the thread that added it. */
    ring_defs_t *d = calloc(1, sizeof *d);
    read_ring_defs(r, d);
    assert_int_equal(d->count, 1);
    assert_int_equal(d->defs[0].id, ia);
    assert_int_equal(d->defs[0].depth, 3);
    assert_memory_equal(d->defs[0].frames, a, sizeof a);
    /* Another thread finds it without defining it again. */
    shim_ring_t *other = test_ring();
    assert_int_equal(shim_stack_intern(other, a, 3), ia);
    assert_int_equal(atomic_load(&other->head), 0);
    free(d);
    free(other);
    free(r);
}

static void test_shim_stacks_different_frames_different_ids(void **state)
{
    uintptr_t a[] = {0x1100, 0x2000, 0x3000};
    uintptr_t b[] = {0x1100, 0x2000, 0x3001};
    uintptr_t c[] = {0x1100, 0x2000};
    shim_ring_t *r = test_ring();
    uint32_t ia = shim_stack_intern(r, a, 3), ib = shim_stack_intern(r, b, 3);
    uint32_t ic = shim_stack_intern(r, c, 2);
    assert_true(ia != ib && ib != ic && ia != ic);
    assert_true(ia && ib && ic);
    ring_defs_t *d = calloc(1, sizeof *d);
    read_ring_defs(r, d);
    assert_int_equal(d->count, 3);
    assert_memory_equal(d->defs[1].frames, b, sizeof b);
    assert_int_equal(d->defs[2].depth, 2);
    assert_memory_equal(d->defs[2].frames, c, sizeof c);
    /* No frames, or more than a stack keeps: no id. */
    assert_int_equal(shim_stack_intern(r, a, 0), MLMEM_STACK_NONE);
    assert_int_equal(shim_stack_intern(r, a, MLMEM_STACK_MAX_DEPTH + 1), MLMEM_STACK_NONE);
    free(d);
    free(r);
}

/* Each definition carries only the inner frames that differ from the
 * ring's previous one, and reads back whole. */
static void test_shim_stacks_definitions_share_outer_frames(void **state)
{
    enum { N = 40, DEPTH = 11 };
    uintptr_t f[N][DEPTH];
    uint32_t id[N];
    shim_ring_t *r = test_ring();
    for (int k = 0; k < N; k++) {
        f[k][0] = 0xdead0000 + (uintptr_t)k; /* the inner frame differs */
        for (int i = 1; i < DEPTH; i++)
            f[k][i] = 0xbeef0000 + (uintptr_t)i;
        id[k] = shim_stack_intern(r, f[k], DEPTH);
        assert_true(id[k] != MLMEM_STACK_NONE);
    }
    ring_defs_t *d = calloc(1, sizeof *d);
    read_ring_defs(r, d);
    assert_int_equal(d->count, N);
    for (int k = 0; k < N; k++) {
        assert_int_equal(d->defs[k].id, id[k]);
        assert_int_equal(d->defs[k].depth, DEPTH);
        assert_memory_equal(d->defs[k].frames, f[k], sizeof f[k]);
        /* Whole: the first frame (5 bytes), the jump to the outer frames (5)
         * and 9 deltas of 1 (a byte each), in one slot after the header;
         * sharing: the inner frame alone, in one slot too. The ring's
         * header says how many frames came from the previous one. */
        uint64_t addr = r->slots[k == 0 ? 0 : 2 * k].ev.addr;
        assert_int_equal(addr >> 16, k == 0 ? 5 + 5 + 9 : 5);
        assert_int_equal(addr >> 8 & 0xff, k == 0 ? 0 : DEPTH - 1);
        assert_int_equal(d->slots[k], 2);
    }
    free(d);
    free(r);
}

/* No stack is defined while an event of the thread is in progress (its
 * definition would wait for that event); a known one is still found. */
static void test_shim_stacks_not_defined_inside_an_event(void **state)
{
    uintptr_t known[] = {0x4100, 0x4200}, fresh[] = {0x4300, 0x4200};
    shim_ring_t *r = test_ring();
    uint32_t id = shim_stack_intern(r, known, 2);
    assert_true(id != MLMEM_STACK_NONE);
    uint64_t head = atomic_load(&r->head);
    r->depth = 1;
    assert_int_equal(shim_stack_intern(r, fresh, 2), MLMEM_STACK_NONE);
    assert_int_equal(shim_stack_intern(r, known, 2), id);
    assert_int_equal(atomic_load(&r->head), head);
    r->depth = 0;
    assert_true(shim_stack_intern(r, fresh, 2) != MLMEM_STACK_NONE);
    free(r);
}

/* With every id used, a new stack gets none (and is counted), the id
 * counter stays where it is (taking one each time would wrap it), and the
 * stacks already known keep theirs. */
static void test_shim_stacks_ids_used_up(void **state)
{
    uintptr_t known[] = {0x5100, 0x5200}, fresh[] = {0x5300, 0x5200};
    shim_ring_t *r = test_ring();
    uint32_t id = shim_stack_intern(r, known, 2);
    assert_true(id != MLMEM_STACK_NONE);
    uint32_t next = atomic_load(&g_shim.stack_next_id);
    uint64_t lost = atomic_load(&g_shim.stack_overflows);
    atomic_store(&g_shim.stack_next_id, 1u << 20);
    assert_int_equal(shim_stack_intern(r, fresh, 2), MLMEM_STACK_NONE);
    assert_int_equal(shim_stack_intern(r, fresh, 2), MLMEM_STACK_NONE);
    assert_int_equal(atomic_load(&g_shim.stack_next_id), 1u << 20);
    assert_int_equal(atomic_load(&g_shim.stack_overflows), lost + 2);
    assert_int_equal(shim_stack_intern(r, known, 2), id);
    atomic_store(&g_shim.stack_next_id, next);
    free(r);
}

typedef struct {
    int base;
    shim_ring_t *ring;
    uint32_t ids[200];
} intern_job_t;

static void *intern_many(void *arg)
{
    intern_job_t *j = arg;
    for (int i = 0; i < 200; i++) {
        /* Every thread interns the same 200 stacks, in its own order (all
         * share the outer two frames), each in its own ring. */
        int k = (i + j->base) % 200;
        uintptr_t f[4] = {0x7000 + (uintptr_t)k, 0x8000 + (uintptr_t)k, 0x9000, 0xa000};
        j->ids[k] = shim_stack_intern(j->ring, f, 4);
    }
    return NULL;
}

/* Threads that add the same stacks at once agree on their ids, and every
 * id they use is defined, with its frames, in one of their rings. */
static void test_shim_stacks_concurrent_interning_agrees(void **state)
{
    pthread_t t[4];
    intern_job_t jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].base = i * 37;
        jobs[i].ring = test_ring();
        pthread_create(&t[i], NULL, intern_many, &jobs[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ring_defs_t *d = calloc(4, sizeof *d);
    for (int i = 0; i < 4; i++)
        read_ring_defs(jobs[i].ring, &d[i]);
    for (int k = 0; k < 200; k++) {
        uint32_t id = jobs[0].ids[k];
        assert_true(id != MLMEM_STACK_NONE);
        for (int i = 1; i < 4; i++)
            assert_int_equal(jobs[i].ids[k], id);
        for (int k2 = 0; k2 < k; k2++)
            assert_true(jobs[0].ids[k2] != id);
        uintptr_t f[4] = {0x7000 + (uintptr_t)k, 0x8000 + (uintptr_t)k, 0x9000, 0xa000};
        int defined = 0;
        for (int i = 0; i < 4; i++)
            for (uint32_t n = 0; n < d[i].count; n++)
                if (d[i].defs[n].id == id) {
                    assert_int_equal(d[i].defs[n].depth, 4);
                    assert_memory_equal(d[i].defs[n].frames, f, sizeof f);
                    defined++;
                }
        assert_int_equal(defined, 1);
    }
    for (int i = 0; i < 4; i++)
        free(jobs[i].ring);
    free(d);
}

static __attribute__((noinline)) uint32_t capture_here(shim_ring_t *r)
{
    return shim_stack_capture(r);
}

static void test_shim_stacks_capture_reuses_same_call_site(void **state)
{
    shim_ring_t *r = test_ring();
    uint32_t ids[3];
    /* A volatile bound: an unrolled loop would be three call sites. */
    volatile int rounds = 3;
    for (int i = 0; i < rounds; i++)
        ids[i] = capture_here(r);
    assert_true(ids[0] != MLMEM_STACK_NONE);
    assert_int_equal(ids[0], ids[1]);
    assert_int_equal(ids[1], ids[2]);
    uint32_t other = shim_stack_capture(r); /* a different call site */
    assert_true(other != MLMEM_STACK_NONE && other != ids[0]);
    free(r);
}

/* ---- the CFI walk (cfi.c) ----------------------------------------------- */

typedef struct {
    shim_cfi_memo_t *memo; /* the CFI walk's last walk, or NULL */
    uintptr_t cfi[MLMEM_STACK_MAX_DEPTH];
    int cfi_n;
    uintptr_t unw[MLMEM_STACK_MAX_DEPTH];
    int unw_n;
} walks_t;

static volatile int walk_sink; /* work after each call: no tail calls */

/* Both walks of the stack of this function's caller. The CFI walk starts
 * at this frame's return address with the caller's stack and frame
 * pointers (hence a frame pointer here, as the shim keeps); libunwind's
 * first frame is this function's own, dropped. */
static __attribute__((noinline, optimize("no-omit-frame-pointer"))) void walk_both(walks_t *w)
{
    const uintptr_t *fp = __builtin_frame_address(0);
    w->cfi_n = shim_cfi_walk(fp[1], (uintptr_t)(fp + 2), fp[0], w->cfi, MLMEM_STACK_MAX_DEPTH,
                             w->memo);
    void *raw[MLMEM_STACK_MAX_DEPTH + 1];
    int n = unw_backtrace(raw, MLMEM_STACK_MAX_DEPTH + 1);
    w->unw_n = n - 1;
    for (int i = 1; i < n; i++)
        w->unw[i - 1] = (uintptr_t)raw[i];
    walk_sink++;
}

/* 'k' frames whose CFA is RSP plus a constant (this file omits frame
 * pointers), then the walk. */
static __attribute__((noinline)) void nest(walks_t *w, int k)
{
    if (k == 0)
        walk_both(w);
    else
        nest(w, k - 1);
    walk_sink++;
}

/* 'levels' frames whose CFA is RBP plus a constant (alloca needs a frame
 * pointer), each below the next: the walk must restore each one's RBP
 * from where the one it called saved it. */
static __attribute__((noinline)) void with_alloca(walks_t *w, size_t n, int levels)
{
    volatile char *buf = alloca(n);
    buf[0] = 1;
    buf[n - 1] = 2;
    if (levels > 1)
        with_alloca(w, n + 24, levels - 1);
    else
        nest(w, 3);
    walk_sink += buf[n - 1];
}

/* A frame of 300 KB: its CFA offset does not fit 16 bits. */
static __attribute__((noinline)) void with_big_frame(walks_t *w)
{
    volatile char big[300000];
    big[0] = 1;
    big[sizeof big - 1] = 2;
    nest(w, 2);
    walk_sink += big[0] + big[sizeof big - 1];
}

#if defined(__x86_64__)
/* A frame realigned the way GCC realigns a main that keeps 32-byte aligned
 * locals (through the DRAP register, r10): its CFA is the word at RBP - 8
 * and its caller's RBP the word at RBP, both given by DWARF expressions.
 * Written in assembly so that the layout is that one whatever the compiler
 * would choose; it calls realigned_inner(w), w in rdi. */
void realigned_call(walks_t *w);
__attribute__((noinline, used)) void realigned_inner(walks_t *w)
{
    nest(w, 2);
    walk_sink++;
}
__asm__(".text\n"
        ".p2align 4\n"
        ".type realigned_call, @function\n"
        "realigned_call:\n"
        ".cfi_startproc\n"
        "  lea 0x8(%rsp), %r10\n"
        ".cfi_def_cfa %r10, 0\n"
        "  and $-32, %rsp\n"
        "  pushq -0x8(%r10)\n"
        "  push %rbp\n"
        ".cfi_escape 0x10, 0x06, 0x02, 0x76, 0x00\n" /* RBP: DW_OP_breg6 0 */
        "  mov %rsp, %rbp\n"
        "  push %r10\n"
        ".cfi_escape 0x0f, 0x03, 0x76, 0x78, 0x06\n" /* CFA: DW_OP_breg6 -8; DW_OP_deref */
        "  sub $8, %rsp\n"
        "  call realigned_inner\n"
        "  add $8, %rsp\n"
        "  pop %r10\n"
        ".cfi_def_cfa %r10, 0\n"
        "  pop %rbp\n"
        "  lea -0x8(%r10), %rsp\n"
        ".cfi_def_cfa %rsp, 8\n"
        "  ret\n"
        ".cfi_endproc\n"
        ".size realigned_call, .-realigned_call\n");
#endif

static void assert_walks_agree(const walks_t *w)
{
    assert_true(w->cfi_n > 0); /* the CFI walk did not give up */
    assert_int_equal(w->cfi_n, w->unw_n);
    assert_memory_equal(w->cfi, w->unw, (size_t)w->cfi_n * sizeof w->cfi[0]);
}

static void walk_every_kind(walks_t *wp)
{
    walks_t w = *wp;
    nest(&w, 0);
    assert_walks_agree(&w);
    nest(&w, 7);
    assert_walks_agree(&w);
    with_alloca(&w, 1000, 3);
    assert_walks_agree(&w);
    with_alloca(&w, 50000, 2);
    assert_walks_agree(&w);
    with_big_frame(&w);
    assert_walks_agree(&w);
#if defined(__x86_64__)
    realigned_call(&w);
    assert_walks_agree(&w);
#endif
    /* Deeper than a stack keeps: both stop at the same depth. */
    nest(&w, MLMEM_STACK_MAX_DEPTH + 10);
    assert_walks_agree(&w);
    assert_int_equal(w.cfi_n, MLMEM_STACK_MAX_DEPTH);
}

/* What a thread's last walk gives the next one, frame by frame. The walks
 * are made from one call site, so that their outer frames are the same. */
static void test_shim_cfi_walk_reuses_last_walk(void **state)
{
#if !defined(__x86_64__)
    skip();
#endif
    static shim_cfi_memo_t memo, copy;
    memset(&memo, 0, sizeof memo);
    walks_t w = {.memo = &memo};
    static const int depth[] = {20, 20, 23, 20, 20, 20};
    uint64_t reused[6];
    uint32_t kept[6];
    for (int i = 0; i < 6; i++) {
        if (i == 3) { /* a walk during another on this thread (a signal handler's) */
            copy = memo;
            memo.busy = 1;
        }
        if (i == 4) { /* ... left the memo alone; now the rule table is emptied (dlclose) */
            memo.busy = 0;
            assert_memory_equal(&copy, &memo, sizeof memo);
            shim_cfi_forget();
        }
        uint64_t before = memo.reused;
        nest(&w, depth[i]);
        assert_walks_agree(&w);
        reused[i] = memo.reused - before;
        kept[i] = memo.count[memo.last];
    }
    assert_int_equal(reused[0], 0); /* no last walk yet */
    assert_true(kept[0] >= 20 - SHIM_CFI_MEMO_FROM);
    /* The same stack again: every frame it keeps came from the last. */
    assert_int_equal(kept[1], kept[0]);
    assert_int_equal(reused[1], kept[0]);
    /* Three frames deeper: its frames from the ninth on start three frames
     * lower than the last walk's; those three are looked up, the rest
     * reused. */
    assert_int_equal(kept[2], kept[0] + 3);
    assert_int_equal(reused[2], kept[0]);
    /* After the table was emptied the last walk's rules are not trusted;
     * the walk after that one's are. */
    assert_int_equal(reused[4], 0);
    assert_int_equal(reused[5], kept[0]);
}

/* Every kind of frame, walked without a last walk, then twice with one:
 * the second time each walk takes most of its rules from the one before,
 * whose frames of other sizes (alloca) lie at other stack pointers. */
static void test_shim_cfi_walk_matches_libunwind(void **state)
{
#if !defined(__x86_64__)
    skip(); /* libunwind walks every stack there */
#endif
    static shim_cfi_memo_t memo;
    walks_t w = {.memo = NULL};
    for (int pass = 0; pass < 3; pass++) {
        w.memo = pass ? &memo : NULL;
        walk_every_kind(&w);
    }
    assert_true(memo.reused > 0);
}

static walks_t handler_walks;

static void walk_in_handler(int sig)
{
    (void)sig;
    nest(&handler_walks, 2);
}

/* A signal frame (glibc's __restore_rt) is described by DWARF expressions:
 * the CFI walk gives up there rather than guess, and libunwind walks it. */
static void test_shim_cfi_walk_gives_up_at_signal_frame(void **state)
{
#if !defined(__x86_64__)
    skip();
#endif
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = walk_in_handler;
    sigaction(SIGUSR1, &sa, &old);
    handler_walks.cfi_n = 0;
    raise(SIGUSR1);
    sigaction(SIGUSR1, &old, NULL);
    assert_int_equal(handler_walks.cfi_n, -1);
    assert_true(handler_walks.unw_n > 4); /* libunwind got through, to main */
}

/* ---- the event clock ----------------------------------------------------- */

/* An event reads the clock when it is fresh (a large block, a mapping) and
 * so does the next one, which a program makes after computing with what it
 * allocated; the ones after reuse the thread's last reading, SHIM_CLOCK_REUSE
 * of them, then read it again. */
static void test_shim_clock_read_again_after_fresh_event(void **state)
{
    (void)state;
    shim_ring_t *r = test_ring();
    uint64_t big = shim_event_ticks(r, 1);
    while (shim_ticks() == big)
        ;
    uint64_t next = shim_event_ticks(r, 0);
    assert_true(next > big);
    for (unsigned i = 0; i < SHIM_CLOCK_REUSE; i++)
        assert_int_equal(shim_event_ticks(r, 0), next);
    while (shim_ticks() == next)
        ;
    assert_true(shim_event_ticks(r, 0) > next);
    free(r);
}

/* ---- folded temporaries (fold.c) ----------------------------------------- */

/* The events in 'r' from slot 'from' on: their first slots, in order, each
 * with its second slot in 'ext' (zeroed for one-slot events). Returns how
 * many (at most 'cap'). */
static unsigned ring_events(const shim_ring_t *r, uint64_t from, shim_event_t *ev,
                            shim_event_ext_t *ext, unsigned cap)
{
    unsigned n = 0;
    uint64_t head = atomic_load(&r->head);
    for (uint64_t i = from; i < head && n < cap; i++, n++) {
        ev[n] = r->slots[i & (SHIM_RING_SLOTS - 1)].ev;
        memset(&ext[n], 0, sizeof ext[n]);
        if (ev[n].info & SHIM_EVI_EXT)
            ext[n] = r->slots[++i & (SHIM_RING_SLOTS - 1)].ext;
    }
    return n;
}

/* How many blocks 'r' holds. */
static unsigned held_count(const shim_ring_t *r)
{
    return r->held.addr ? 1 + r->held_older_n : 0;
}

/* A ring that folds, as a thread's ring in a profiled process once the
 * thread's first allocation is sent (until then it does not). */
static shim_ring_t *fold_ring(void)
{
    shim_config_load(&g_shim.config);
    shim_ring_t *r = test_ring();
    shim_fold_reset(r);
    assert_int_equal(r->fold_ok, 0);
    assert_int_equal(r->fold_from_next, 1);
    r->fold_ok = 1;
    r->fold_from_next = 0;
    return r;
}

/* A thread that holds several small blocks folds the free of any of them:
 * A (100), B (300) freed, D (200), C (48) freed, A freed, and nothing is
 * sent; the thread's next event sends first one TEMPORARIES (3 blocks,
 * 448 bytes, the largest 300, the most held at once 400, one nested: A)
 * and then D, the block still held, marked not the thread's latest
 * allocation (the thread freed A after making it). */
static void test_shim_fold_nested_frees(void **state)
{
    (void)state;
    shim_ring_t *r = fold_ring();
    char a[1], b[1], c[1], d[1]; /* addresses only */
    assert_true(shim_fold_hold(r, MLMEM_FN_MALLOC, a, 100, MLMEM_STACK_NONE));
    assert_true(shim_fold_hold(r, MLMEM_FN_MALLOC, b, 300, MLMEM_STACK_NONE));
    assert_true(shim_fold_free(r, b));
    assert_true(shim_fold_hold(r, MLMEM_FN_CALLOC, d, 200, MLMEM_STACK_NONE));
    assert_true(shim_fold_hold(r, MLMEM_FN_MALLOC, c, 48, MLMEM_STACK_NONE));
    assert_true(shim_fold_free(r, c));
    assert_true(shim_fold_free(r, a));
    assert_int_equal(atomic_load(&r->head), 0); /* nothing sent */
    shim_fold_flush(r); /* what the thread's next event does first */

    shim_event_t ev[4];
    shim_event_ext_t x[4];
    assert_int_equal(ring_events(r, 0, ev, x, 4), 2);
    assert_int_equal(SHIM_EVI_TYPE(ev[0].info), MLMEM_EV_TEMPORARIES);
    assert_int_equal(x[0].arg, 3);          /* count   */
    assert_int_equal(x[0].size, 448);       /* bytes   */
    assert_int_equal(x[0].old_addr, 300);   /* largest */
    assert_int_equal(ev[0].addr, 400);      /* most at once: A and B */
    assert_int_equal(ev[0].info & SHIM_EVI_SIZE_MASK, 1); /* nested: A */
    /* D: its number came after the TEMPORARIES' */
    assert_int_equal(SHIM_EVI_TYPE(ev[1].info), MLMEM_EV_ALLOC_LATE);
    assert_int_equal(ev[1].addr, (uintptr_t)d);
    assert_int_equal(x[1].size, 200);
    assert_int_equal(SHIM_EVI_FN(ev[1].info), MLMEM_FN_CALLOC | MLMEM_FN_NOT_LATEST);
    assert_int_equal(held_count(r), 0);
    assert_int_equal(r->folded_count, 0);
    free(r);
}

/* A held block whose free comes after someone took a number is not folded
 * (another thread may have freed it and been handed its address back):
 * the free is the caller's to send. Nor is a free of what is not held. */
static void test_shim_fold_refused_after_a_number(void **state)
{
    (void)state;
    shim_ring_t *r = fold_ring();
    char a[1], b[1];
    assert_true(shim_fold_hold(r, MLMEM_FN_MALLOC, a, 64, MLMEM_STACK_NONE));
    assert_false(shim_fold_free(r, b));
    atomic_fetch_add(&g_shim.seq, 1); /* another thread's event */
    assert_false(shim_fold_free(r, a));
    assert_int_equal(held_count(r), 1);
    assert_int_equal(r->folded_count, 0);
    free(r);
}

/* A thread holds SHIM_FOLD_HELD blocks at most, and fewer bytes than the
 * stack threshold: the next one sends them (oldest first, each an ALLOC of
 * its own) and is held in their place. A block at an address already held
 * sends the first too. */
static void test_shim_fold_holds_at_most_its_room(void **state)
{
    (void)state;
    shim_ring_t *r = fold_ring();
    static char blocks[SHIM_FOLD_HELD + 1];
    for (unsigned i = 0; i <= SHIM_FOLD_HELD; i++)
        assert_true(shim_fold_hold(r, MLMEM_FN_MALLOC, &blocks[i], 16 + i, MLMEM_STACK_NONE));
    shim_event_t ev[SHIM_FOLD_HELD + 2];
    shim_event_ext_t x[SHIM_FOLD_HELD + 2];
    assert_int_equal(ring_events(r, 0, ev, x, SHIM_FOLD_HELD + 2), SHIM_FOLD_HELD);
    for (unsigned i = 0; i < SHIM_FOLD_HELD; i++) {
        assert_int_equal(ev[i].addr, (uintptr_t)&blocks[i]);
        assert_int_equal(x[i].size, 16 + i);
        assert_int_equal(SHIM_EVI_FN(ev[i].info), MLMEM_FN_MALLOC); /* the newest: latest */
    }
    assert_int_equal(held_count(r), 1);
    uint64_t sent = atomic_load(&r->head);
    assert_true(shim_fold_hold(r, MLMEM_FN_MALLOC, &blocks[SHIM_FOLD_HELD], 16,
                               MLMEM_STACK_NONE));
    assert_int_equal(ring_events(r, sent, ev, x, 2), 1);
    assert_int_equal(ev[0].addr, (uintptr_t)&blocks[SHIM_FOLD_HELD]);
    assert_int_equal(held_count(r), 1);
    /* Held together they stay below the stack threshold (4096): 16 + 2100
     * + 2100 is too much, and the first two go. */
    sent = atomic_load(&r->head);
    assert_true(shim_fold_hold(r, MLMEM_FN_MALLOC, &blocks[0], 2100, MLMEM_STACK_NONE));
    assert_int_equal(held_count(r), 2);
    assert_true(shim_fold_hold(r, MLMEM_FN_MALLOC, &blocks[1], 2100, MLMEM_STACK_NONE));
    assert_int_equal(ring_events(r, sent, ev, x, 3), 2);
    assert_int_equal(held_count(r), 1);
    free(r);
}

/* The shim's own memory comes from the region it reserved at start: a
 * piece made after the program cut a hole in a range of its own is not in
 * the hole, so the program's munmap of the whole range leaves it alone; a
 * piece given back stays reserved (nothing else can be mapped there). */
static void test_shim_own_memory_out_of_program_holes(void **state)
{
    (void)state;
    const size_t page = (size_t)getpagesize();
    struct rlimit as;
    if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY)
        skip(); /* the shim reserves no region then (bootstrap.c) */
    shim_os_region_init();
    char *range = mmap(NULL, 10 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
    assert_true(range != MAP_FAILED);
    assert_int_equal(munmap(range + 2 * page, 3 * page), 0);
    char *mine = shim_os_mmap(3 * page);
    assert_non_null(mine);
    assert_true(shim_os_owns(mine, 3 * page));
    assert_true(mine + 3 * page <= range || mine >= range + 10 * page);
    assert_int_equal(munmap(range, 10 * page), 0);
    memset(mine, 7, 3 * page); /* still mapped */

    shim_os_munmap(mine, 3 * page);
    void *again = mmap(mine, page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    assert_true(again == MAP_FAILED);
    assert_int_equal(errno, EEXIST);
    assert_false(shim_os_owns(range, page));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shim_format_conversions),
        cmocka_unit_test(test_shim_own_memory_out_of_program_holes),
        cmocka_unit_test(test_shim_clock_read_again_after_fresh_event),
        cmocka_unit_test(test_shim_fold_nested_frees),
        cmocka_unit_test(test_shim_fold_refused_after_a_number),
        cmocka_unit_test(test_shim_fold_holds_at_most_its_room),
        cmocka_unit_test(test_shim_format_truncates_within_buffer),
        cmocka_unit_test(test_shim_format_null_string_and_unknown_conversion),
        cmocka_unit_test(test_shim_config_defaults),
        cmocka_unit_test(test_shim_config_reads_environment),
        cmocka_unit_test(test_shim_config_bad_values_keep_defaults),
        cmocka_unit_test(test_shim_pool_alignment_size_and_ownership),
        cmocka_unit_test_setup(test_shim_stacks_same_frames_same_id, stacks_setup),
        cmocka_unit_test_setup(test_shim_stacks_different_frames_different_ids, stacks_setup),
        cmocka_unit_test_setup(test_shim_stacks_definitions_share_outer_frames, stacks_setup),
        cmocka_unit_test_setup(test_shim_stacks_not_defined_inside_an_event, stacks_setup),
        cmocka_unit_test_setup(test_shim_stacks_ids_used_up, stacks_setup),
        cmocka_unit_test_setup(test_shim_stacks_concurrent_interning_agrees, stacks_setup),
        cmocka_unit_test_setup(test_shim_stacks_capture_reuses_same_call_site, stacks_setup),
        cmocka_unit_test_setup(test_shim_cfi_walk_matches_libunwind, stacks_setup),
        cmocka_unit_test_setup(test_shim_cfi_walk_reuses_last_walk, stacks_setup),
        cmocka_unit_test_setup(test_shim_cfi_walk_gives_up_at_signal_frame, stacks_setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
