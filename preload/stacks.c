/*
 * stacks.c - capturing call stacks with libunwind and deduplicating them in
 * a lock-free table, so each distinct stack crosses the wire once.
 *
 * Table: open addressing over 64-bit slots holding (hash tag << 32 | id);
 * 0 is empty. Frames live in an append-only arena; index[id] holds
 * (offset << 8 | depth). An insert writes frames and index first and then
 * publishes the slot with a CAS, so whoever finds an id finds its frames.
 * Two threads inserting the same new stack at once may both burn an id;
 * only the one that wins the slot is ever used. When the table or arena is
 * full, the stack is reported as MLMEM_STACK_NONE and counted.
 */
#define _GNU_SOURCE
#define UNW_LOCAL_ONLY
#include <errno.h>
#include <libunwind.h>
#include <string.h>
#include <sys/mman.h>

#include "shim.h"

#define TABLE_BITS 20
#define TABLE_SLOTS (1u << TABLE_BITS)
#define MAX_IDS TABLE_SLOTS
#define ARENA_WORDS (32u << 20) /* 256 MiB of address space, touched as used */
#define MAX_PROBES 64

int shim_stacks_init(void)
{
    g_shim.stack_slots = shim_os_mmap(TABLE_SLOTS * sizeof(uint64_t));
    g_shim.stack_index = shim_os_mmap(MAX_IDS * sizeof(uint64_t));
    g_shim.stack_arena = shim_os_mmap(ARENA_WORDS * sizeof(uintptr_t));
    if (!g_shim.stack_slots || !g_shim.stack_index || !g_shim.stack_arena)
        return -1;
    if (g_shim.config.stack_mode == MLMEM_STACKS_ALL) {
        /* Every stack is kept: 'import torch' alone writes 600,000 of them
         * (260 MiB of frames), and faulting that in 4 KiB at a time cost
         * 0.4 s of its 2.4 s under --stacks=all (docs/benchmarks.md). The
         * index and arena fill from the start, so huge pages waste at most
         * 2 MiB each. The hash slots are touched at random: two thirds of
         * an insert's time was the load of its slot, and huge pages there
         * took 4% off that import; a program with few stacks pays up to
         * 8 MiB for them (sampled mode, with few stacks by design, keeps
         * small pages everywhere). */
        madvise(g_shim.stack_arena, ARENA_WORDS * sizeof(uintptr_t), MADV_HUGEPAGE);
        madvise(g_shim.stack_index, MAX_IDS * sizeof(uint64_t), MADV_HUGEPAGE);
        madvise(g_shim.stack_slots, TABLE_SLOTS * sizeof(uint64_t), MADV_HUGEPAGE);
    }
    atomic_store(&g_shim.stack_next_id, 1);
    /* For helgrind: the table's atomics are its synchronization. */
    SHIM_BENIGN_RACE_SIZED(g_shim.stack_slots, TABLE_SLOTS * sizeof(uint64_t), "atomic slots");
    SHIM_BENIGN_RACE_SIZED(g_shim.stack_index, MAX_IDS * sizeof(uint64_t), "atomic index");
    SHIM_BENIGN_RACE(&g_shim.stack_arena_top, "atomic bump allocator");
    SHIM_BENIGN_RACE(&g_shim.stack_next_id, "atomic id counter");
    SHIM_BENIGN_RACE(&g_shim.stack_overflows, "atomic counter");
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    return 0;
}

static uint64_t hash_frames(const uintptr_t *f, uint32_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (uint32_t i = 0; i < n; i++) {
        h ^= f[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return h ? h : 1;
}

int shim_stack_get(uint32_t id, const uintptr_t **frames, uint32_t *depth)
{
    if (id == 0 || id >= MAX_IDS)
        return -1;
    uint64_t ix = atomic_load_explicit(&g_shim.stack_index[id], memory_order_acquire);
    if (!ix)
        return -1;
    SHIM_HAPPENS_AFTER(&g_shim.stack_index[id]);
    *frames = g_shim.stack_arena + (ix >> 8);
    *depth = (uint32_t)(ix & 0xff);
    return 0;
}

uint32_t shim_stack_intern(const uintptr_t *f, uint32_t n)
{
    uint64_t h = hash_frames(f, n);
    uint32_t tag = (uint32_t)(h >> 32);
    uint32_t i = (uint32_t)h & (TABLE_SLOTS - 1);
    uint32_t mine = 0;

    for (int probe = 0; probe < MAX_PROBES; probe++, i = (i + 1) & (TABLE_SLOTS - 1)) {
        uint64_t v = atomic_load_explicit(&g_shim.stack_slots[i], memory_order_acquire);
        if (v == 0) {
            if (!mine) {
                uint64_t off = atomic_fetch_add(&g_shim.stack_arena_top, n);
                uint32_t id = atomic_fetch_add(&g_shim.stack_next_id, 1);
                if (off + n > ARENA_WORDS || id >= MAX_IDS)
                    break;
                memcpy(g_shim.stack_arena + off, f, n * sizeof *f);
                SHIM_HAPPENS_BEFORE(&g_shim.stack_index[id]);
                atomic_store_explicit(&g_shim.stack_index[id], (off << 8) | n,
                                      memory_order_release);
                mine = id;
            }
            uint64_t want = ((uint64_t)tag << 32) | mine;
            if (atomic_compare_exchange_strong(&g_shim.stack_slots[i], &v, want))
                return mine;
            /* Lost the slot: 'v' now holds the winner; compare with it. */
        }
        if ((uint32_t)(v >> 32) == tag) {
            uint32_t id = (uint32_t)v;
            const uintptr_t *frames;
            uint32_t depth;
            if (shim_stack_get(id, &frames, &depth) == 0 && depth == n &&
                memcmp(frames, f, n * sizeof *f) == 0)
                return id;
        }
    }
    atomic_fetch_add_explicit(&g_shim.stack_overflows, 1, memory_order_relaxed);
    return MLMEM_STACK_NONE;
}

/* noinline: the frames of the shim are skipped by address range, and this
 * keeps the capture itself a frame of ours. */
__attribute__((noinline)) uint32_t shim_stack_capture(shim_ring_t *r)
{
    void *raw[MLMEM_STACK_MAX_DEPTH + 8];
    int saved = shim_guard, saved_errno = errno;
    shim_guard = SHIM_GUARD_UNWIND;
    int n = unw_backtrace(raw, MLMEM_STACK_MAX_DEPTH + 8);
    shim_guard = saved;
    errno = saved_errno; /* validation leaves EAGAIN there (unwind.c) */

    int skip = 0;
    while (skip < n && (uintptr_t)raw[skip] >= g_shim.self_start &&
           (uintptr_t)raw[skip] < g_shim.self_end)
        skip++;
    uint32_t depth = (uint32_t)(n - skip);
    if (depth > MLMEM_STACK_MAX_DEPTH)
        depth = MLMEM_STACK_MAX_DEPTH;
    if (depth == 0)
        return MLMEM_STACK_NONE;
    const uintptr_t *frames = (const uintptr_t *)(raw + skip);

    if (r->last_stack_id && depth == r->last_depth &&
        memcmp(frames, r->last_frames, depth * sizeof *frames) == 0)
        return r->last_stack_id;
    uint32_t id = shim_stack_intern(frames, depth);
    if (id) {
        memcpy(r->last_frames, frames, depth * sizeof *frames);
        r->last_depth = depth;
        r->last_stack_id = id;
    }
    return id;
}
