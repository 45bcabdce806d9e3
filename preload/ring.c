/*
 * ring.c - the registry of per-thread rings. A thread gets a ring on its
 * first event; when it exits (pthread key destructor) the ring is marked
 * EXITED, and once the thread is really gone the writer drains it and
 * returns it to the pool for the next new thread. Rings are never unmapped while the process runs, so the writer can
 * read any registered ring without locks.
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/prctl.h>
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "record.h"

/* The thread is exiting (its pthread key destructors run). It may still
 * allocate and free after this (later destructors, glibc's own thread
 * cleanup), so it keeps its ring; the writer frees the ring once the
 * kernel says the thread is gone (see drain_ring in writer.c). */
/* Copies the calling thread's name into its ring (prctl: one syscall, and
 * it works even when /proc is not mounted or the thread is about to go). */
static void ring_take_name(shim_ring_t *r)
{
    char name[16] = "";
    if (prctl(PR_GET_NAME, name, 0, 0, 0) != 0)
        return;
    memcpy(r->name, name, sizeof name);
    SHIM_HAPPENS_BEFORE(&r->name_gen);
    atomic_fetch_add_explicit(&r->name_gen, 1, memory_order_release);
}

static void ring_thread_exit(void *p)
{
    shim_ring_t *r = p;
    /* What it held and folded goes out now; whatever the thread's last
     * destructors allocate is sent as it happens. */
    shim_fold_stop(r);
    ring_take_name(r); /* threads often name themselves after they start */
    SHIM_HAPPENS_BEFORE(&r->state);
    atomic_store_explicit(&r->state, SHIM_RING_EXITED, memory_order_release);
    shim_writer_wake();
}

/* For helgrind: the ring's atomics are the synchronization itself. */
static void ring_annotate(shim_ring_t *r)
{
    SHIM_BENIGN_RACE(&r->head, "atomic: published slots");
    SHIM_BENIGN_RACE(&r->tail, "atomic: consumed slots");
    SHIM_BENIGN_RACE(&r->tail_futex, "atomic: futex word of a drain");
    SHIM_BENIGN_RACE(&r->space_waiting, "atomic: the owner sleeps for room");
    SHIM_BENIGN_RACE(&r->state, "atomic: ring ownership");
    SHIM_BENIGN_RACE(&r->name_gen, "atomic: name generation");
    SHIM_BENIGN_RACE(&r->seq_busy, "atomic: seq.c handshake");
    SHIM_BENIGN_RACE(&r->dropped, "drop count, read by the writer for reports");
    SHIM_BENIGN_RACE(&r->name, "copied by the writer, validated by name_gen");
    SHIM_BENIGN_RACE(&r->name_sent_gen, "the writer's own; its creator only mapped it");
    SHIM_BENIGN_RACE_SIZED(&r->defs_read,
                           (size_t)((char *)(r->wdef_frames + MLMEM_STACK_MAX_DEPTH) -
                                    (char *)&r->defs_read),
                           "the writer's own; its creator only mapped it");
    /* The fold state, from its 'fold_busy' to the held blocks (fold.c):
     * read twice by the writer's final drain. */
    SHIM_BENIGN_RACE_SIZED(&r->fold_busy,
                           (size_t)((char *)(r->held_older + SHIM_FOLD_HELD - 1) -
                                    (char *)&r->fold_busy),
                           "the fold state, read twice by the writer's final drain");
    (void)r;
}

static void ring_claimed(shim_ring_t *r)
{
    SHIM_HAPPENS_AFTER(&r->state); /* the writer freed it, or it is new */
    r->tid = (uint32_t)syscall(SYS_gettid);
    r->depth = 0;
    r->dropping = 0;
    r->sample_countdown = 0;
    r->rng = ((uint64_t)r->tid << 32) ^ shim_ticks() ^ 0x9E3779B97F4A7C15ull;
    if (!r->rng)
        r->rng = 1;
    r->last_stack_id = 0;
    r->last_depth = 0;
    r->def_depth = 0; /* the writer forgot the last owner's when it freed the ring */
    r->capturing = 0;
    r->walk_memo.busy = 0; /* its rules hold for any thread (cfi.c) */
    r->clock_reuse = 0;
    r->seq_run = 0;
    r->seq_last = 0;
    shim_fold_reset(r);
    /* name_sent_gen stays the writer's: name_gen only grows, so the new
     * owner's name differs from whatever generation was sent last. */
    ring_take_name(r);
}

static shim_ring_t *ring_attach(void);

/* A thread's first event: mmap, prctl and pthread calls, none of which may
 * leave the program's errno changed. */
shim_ring_t *shim_ring_attach(void)
{
    int saved_errno = errno;
    shim_ring_t *r = ring_attach();
    errno = saved_errno;
    return r;
}

static shim_ring_t *ring_attach(void)
{
    shim_ring_t *r = NULL;
    uint32_t n = atomic_load(&g_shim.ring_count);
    for (uint32_t i = 0; i < n && !r; i++) {
        shim_ring_t *c = atomic_load(&g_shim.rings[i]);
        int expect = SHIM_RING_FREE;
        if (c && atomic_compare_exchange_strong(&c->state, &expect, SHIM_RING_ACTIVE))
            r = c;
    }
    if (!r) {
        r = shim_os_mmap(sizeof(shim_ring_t));
        if (!r) {
            atomic_fetch_add_explicit(&g_shim.orphan_dropped, 1, memory_order_relaxed);
            return NULL;
        }
        uint32_t idx = atomic_fetch_add(&g_shim.ring_count, 1);
        if (idx >= SHIM_MAX_RINGS) {
            atomic_fetch_sub(&g_shim.ring_count, 1);
            shim_os_munmap(r, sizeof(shim_ring_t));
            atomic_fetch_add_explicit(&g_shim.orphan_dropped, 1, memory_order_relaxed);
            return NULL;
        }
        ring_annotate(r);
        atomic_store(&r->state, SHIM_RING_ACTIVE);
        ring_claimed(r);
        atomic_store(&g_shim.rings[idx], r);
    } else {
        ring_claimed(r);
    }
    shim_ring = r;
    int saved = shim_guard;
    shim_guard = SHIM_GUARD_PASS;
    pthread_setspecific(g_shim.ring_key, r);
    shim_guard = saved;
    return r;
}

/* In the child of fork only this thread exists: every other ring's owner is
 * gone, and every event still in a ring belongs to the parent's stream. */
void shim_rings_reset_after_fork(void)
{
    uint32_t n = atomic_load(&g_shim.ring_count);
    for (uint32_t i = 0; i < n; i++) {
        shim_ring_t *c = atomic_load(&g_shim.rings[i]);
        if (!c)
            continue;
        uint64_t pos = c->reserve;
        atomic_store(&c->head, pos);
        atomic_store(&c->tail, pos);
        c->tail_cache = pos;
        c->defs_read = pos;
        c->drain_limit = pos;
        c->drain_gone = 0;
        /* The child's table is empty (stacks.c): no stack is defined yet. */
        c->last_stack_id = 0;
        c->last_depth = 0;
        c->def_depth = 0;
        c->wdef_depth = 0;
        c->capturing = 0;
        c->dropped = 0;
        c->depth = 0;
        c->seq_busy = 0; /* a parent thread may have been taking a number */
        shim_fold_reset(c); /* a held block is the parent's to send */
        c->dropping = 0;
        atomic_store(&c->space_waiting, 0);
        c->name_sent_gen = 0; /* the child's stream has not seen any name */
        atomic_store(&c->state, c == shim_ring ? SHIM_RING_ACTIVE : SHIM_RING_FREE);
    }
    if (shim_ring)
        shim_ring->tid = (uint32_t)syscall(SYS_gettid);
    atomic_store(&g_shim.orphan_dropped, 0);
}

uint64_t shim_dropped_total(void)
{
    uint64_t total = atomic_load(&g_shim.orphan_dropped);
    uint32_t n = atomic_load(&g_shim.ring_count);
    for (uint32_t i = 0; i < n; i++) {
        shim_ring_t *c = atomic_load(&g_shim.rings[i]);
        if (c)
            total += __atomic_load_n(&c->dropped, __ATOMIC_RELAXED);
    }
    return total;
}

void shim_rings_init(void)
{
    pthread_key_create(&g_shim.ring_key, ring_thread_exit);
    /* For helgrind: the global atomics every thread reads or bumps. */
    SHIM_BENIGN_RACE(&g_shim.rings, "atomic: ring registry");
    SHIM_BENIGN_RACE(&g_shim.ring_count, "atomic: ring registry");
    SHIM_BENIGN_RACE(&g_shim.seq, "atomic: the global order (seq.c)");
    SHIM_BENIGN_RACE(&g_shim.seq_owner, "atomic: the counter's owner (seq.c)");
    SHIM_BENIGN_RACE(&g_shim.clock_epoch, "atomic: writer passes");
    SHIM_BENIGN_RACE(&g_shim.mode, "atomic: recording or not");
}
