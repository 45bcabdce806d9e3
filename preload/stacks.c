/*
 * stacks.c - capturing call stacks (the CFI walk of cfi.c, or libunwind)
 * and deduplicating them in a lock-free table, so each distinct stack
 * crosses the wire once.
 *
 * Table: open addressing over 32-bit slots holding (12 bits of hash tag
 * << 20 | id); 0 is empty. A tag that matches is checked against the
 * stack's frames, so the short tag costs a compare in 4096, not a mistake.
 * Frames live in an append-only arena, and a stack keeps there
 * only the frames it does not share with its base: the stack its thread
 * captured before it, whose outermost frames are its outermost ones (a
 * Python program's consecutive stacks differ in a few inner frames; of
 * 'import torch's 30 M frames, 2.2 M are new). Its own frames are kept as
 * the stream sends frames: their count (a byte), then shim_frames_put()'s
 * varints, about 4 bytes a frame instead of 8. index[id] packs where they
 * are, its depth, its base and how many bases a rebuild walks (at most
 * MAX_HOPS: past that a stack is stored whole). An insert writes frames
 * and index first and then publishes the slot with a CAS, so whoever finds
 * an id finds its frames, and a base is always published before the stacks
 * that name it. Two threads inserting the same new stack at once may both
 * burn an id; only the one that wins the slot is ever used. When the table
 * or arena is full, the stack is reported as MLMEM_STACK_NONE and counted.
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
#define ARENA_BYTES (256u << 20) /* of address space, touched as used */
#define MAX_PROBES 64
#define SLOT_ID_BITS 20 /* a slot: tag (12 bits) << 20 | id */
#define SLOT_ID_MASK ((1u << SLOT_ID_BITS) - 1)
#define MAX_HOPS SHIM_STACK_MAX_HOPS

/* index[id]: byte offset 32 bits (ARENA_BYTES), depth 7 (at most
 * MLMEM_STACK_MAX_DEPTH, 64), hops 5, base 20 (MAX_IDS); 0: undefined (a
 * stack has a depth). */
#define IX_PACK(off, depth, hops, base)                                                 \
    ((uint64_t)(off) << 32 | (uint64_t)(depth) << 25 | (uint64_t)(hops) << 20 |         \
     (uint64_t)(base))
#define IX_OFF(ix) ((ix) >> 32)
#define IX_DEPTH(ix) ((uint32_t)((ix) >> 25) & 0x7fu)
#define IX_HOPS(ix) ((uint32_t)((ix) >> 20) & 0x1fu)
#define IX_BASE(ix) ((uint32_t)(ix) & 0xfffffu)
_Static_assert(MAX_IDS <= (1u << 20) && MAX_IDS <= (1u << SLOT_ID_BITS) &&
                   MLMEM_STACK_MAX_DEPTH < 128 && MAX_HOPS < 32,
               "index or slot fields too narrow");
/* The largest own frames: their count and a varint each. */
#define BLOB_MAX (1 + MLMEM_STACK_MAX_DEPTH * MLMEM_VARINT_MAX)

int shim_stacks_init(void)
{
    g_shim.stack_slots = shim_os_mmap(TABLE_SLOTS * sizeof(uint32_t));
    g_shim.stack_index = shim_os_mmap(MAX_IDS * sizeof(uint64_t));
    g_shim.stack_arena = shim_os_mmap(ARENA_BYTES);
    if (!g_shim.stack_slots || !g_shim.stack_index || !g_shim.stack_arena)
        return -1;
    if (g_shim.config.stack_mode == MLMEM_STACKS_ALL) {
        /* Every stack is kept: 'import torch' alone writes 600,000 of them
         * (30 M frames, 4 M of them kept), and faulting that in 4 KiB at a time cost
         * 0.4 s of its 2.4 s under --stacks=all (docs/benchmarks.md). The
         * index and arena fill from the start, so huge pages waste at most
         * 2 MiB each. The hash slots are touched at random: two thirds of
         * an insert's time was the load of its slot, and huge pages there
         * took 4% off that import; a program with few stacks pays up to
         * 4 MiB for them (sampled mode, with few stacks by design, keeps
         * small pages everywhere). */
        madvise(g_shim.stack_arena, ARENA_BYTES, MADV_HUGEPAGE);
        madvise(g_shim.stack_index, MAX_IDS * sizeof(uint64_t), MADV_HUGEPAGE);
        madvise(g_shim.stack_slots, TABLE_SLOTS * sizeof(uint32_t), MADV_HUGEPAGE);
    }
    atomic_store(&g_shim.stack_next_id, 1);
    /* For helgrind: the table's atomics are its synchronization. */
    SHIM_BENIGN_RACE_SIZED(g_shim.stack_slots, TABLE_SLOTS * sizeof(uint32_t), "atomic slots");
    SHIM_BENIGN_RACE_SIZED(g_shim.stack_index, MAX_IDS * sizeof(uint64_t), "atomic index");
    SHIM_BENIGN_RACE(&g_shim.stack_arena_top, "atomic bump allocator");
    SHIM_BENIGN_RACE(&g_shim.stack_next_id, "atomic id counter");
    SHIM_BENIGN_RACE(&g_shim.stack_overflows, "atomic counter");
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    shim_cfi_init();
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

static uint64_t stack_ix(uint32_t id)
{
    if (id == 0 || id >= MAX_IDS)
        return 0;
    uint64_t ix = atomic_load_explicit(&g_shim.stack_index[id], memory_order_acquire);
    SHIM_HAPPENS_AFTER(&g_shim.stack_index[id]);
    return ix;
}

int shim_stack_get_near(uint32_t id, uint32_t known, const uintptr_t *known_frames,
                        uint32_t known_depth, uintptr_t *out, uint32_t *depth)
{
    uint64_t ix = stack_ix(id);
    if (!ix)
        return -1;
    uint32_t n = IX_DEPTH(ix), got = 0, pos = 0;
    const uint8_t *end = g_shim.stack_arena + ARENA_BYTES;
    /* Its own frames from 'pos' on, then the rest from its base: the same
     * distance from the end there. insert() bounds the walk by MAX_HOPS;
     * the checks only keep a broken index from looping or reading astray. */
    for (uint32_t hop = 0; hop <= MAX_HOPS; hop++) {
        if (IX_OFF(ix) >= ARENA_BYTES)
            return -1;
        const uint8_t *p = g_shim.stack_arena + IX_OFF(ix);
        uint32_t own = *p++;
        uintptr_t frame = 0;
        for (uint32_t i = 0; i < own && got < n; i++) {
            uint64_t z;
            if (mlmem_varint_get(&p, end, &z) != 0)
                return -1;
            frame += (uintptr_t)mlmem_unzigzag(z);
            if (i >= pos)
                out[got++] = frame;
        }
        if (got == n) {
            *depth = n;
            return 0;
        }
        if (own > pos)
            pos = own;
        if (pos > IX_DEPTH(ix))
            return -1;
        uint32_t left = IX_DEPTH(ix) - pos, base = IX_BASE(ix);
        if (base != 0 && base == known && left <= known_depth && got + left == n) {
            /* The rest is the outer end of a stack the caller holds. */
            memcpy(out + got, known_frames + known_depth - left, left * sizeof *out);
            *depth = n;
            return 0;
        }
        ix = stack_ix(base);
        if (!ix || left > IX_DEPTH(ix))
            return -1;
        pos = IX_DEPTH(ix) - left;
    }
    return -1;
}

int shim_stack_get(uint32_t id, uintptr_t *out, uint32_t *depth)
{
    return shim_stack_get_near(id, 0, NULL, 0, out, depth);
}

/* Adds frames 'f' as a new stack: its id, or 0 when the arena or ids are
 * used up. 'base' (0: none) is a published stack whose frames are
 * 'bf'[0, bn). */
static uint32_t insert(const uintptr_t *f, uint32_t n, uint32_t base, const uintptr_t *bf,
                       uint32_t bn)
{
    uint32_t shared = 0, hops = 0;
    uint64_t bix = stack_ix(base);
    if (bix && IX_HOPS(bix) < MAX_HOPS) {
        shared = shim_stack_shared(f, n, bf, bn);
        hops = IX_HOPS(bix) + 1;
    }
    if (!shared)
        base = hops = 0;
    uint32_t own = n - shared;
    uint8_t blob[BLOB_MAX];
    size_t len = 0;
    blob[len++] = (uint8_t)own;
    len += shim_frames_put(blob + len, f, own);
    uint64_t off = atomic_fetch_add(&g_shim.stack_arena_top, len);
    uint32_t id = atomic_fetch_add(&g_shim.stack_next_id, 1);
    if (off + len > ARENA_BYTES || id >= MAX_IDS)
        return 0;
    memcpy(g_shim.stack_arena + off, blob, len);
    SHIM_HAPPENS_BEFORE(&g_shim.stack_index[id]);
    atomic_store_explicit(&g_shim.stack_index[id], IX_PACK(off, n, hops, base),
                          memory_order_release);
    return id;
}

uint32_t shim_stack_intern(const uintptr_t *f, uint32_t n, uint32_t base, const uintptr_t *bf,
                           uint32_t bn)
{
    if (n == 0 || n > MLMEM_STACK_MAX_DEPTH)
        return MLMEM_STACK_NONE;
    uint64_t h = hash_frames(f, n);
    uint32_t tag = (uint32_t)(h >> 52) << SLOT_ID_BITS;
    uint32_t i = (uint32_t)h & (TABLE_SLOTS - 1);
    uint32_t mine = 0;

    for (int probe = 0; probe < MAX_PROBES; probe++, i = (i + 1) & (TABLE_SLOTS - 1)) {
        uint32_t v = atomic_load_explicit(&g_shim.stack_slots[i], memory_order_acquire);
        if (v == 0) {
            if (!mine && !(mine = insert(f, n, base, bf, bn)))
                break;
            if (atomic_compare_exchange_strong(&g_shim.stack_slots[i], &v, tag | mine))
                return mine;
            /* Lost the slot: 'v' now holds the winner; compare with it. */
        }
        if ((v & ~SLOT_ID_MASK) == tag) {
            uint32_t id = v & SLOT_ID_MASK;
            uintptr_t frames[MLMEM_STACK_MAX_DEPTH];
            uint32_t depth;
            if (IX_DEPTH(stack_ix(id)) == n && shim_stack_get(id, frames, &depth) == 0 &&
                memcmp(frames, f, n * sizeof *f) == 0)
                return id;
        }
    }
    atomic_fetch_add_explicit(&g_shim.stack_overflows, 1, memory_order_relaxed);
    return MLMEM_STACK_NONE;
}

/* The program's frames by the cached CFI rules (cfi.c), from the
 * outermost of the shim's frames: the shim keeps frame pointers, so each
 * of its frames holds its caller's RBP and its return address; the first
 * return address outside the shim is the program's innermost frame, whose
 * stack pointer is just above it. -1 when the walk must be libunwind's. */
static int walk_cfi(uintptr_t *out, int max)
{
    const uintptr_t *fp = __builtin_frame_address(0);
    for (int hop = 0; hop < 32; hop++) {
        uintptr_t ra = fp[1], up = fp[0];
        if (ra < g_shim.self_start || ra >= g_shim.self_end)
            return shim_cfi_walk(ra, (uintptr_t)(fp + 2), up, out, max);
        if (up <= (uintptr_t)fp || up - (uintptr_t)fp > (1u << 20))
            return -1;
        fp = (const uintptr_t *)up;
    }
    return -1;
}

/* The same frames by libunwind's walk, the shim's own skipped by address
 * (the innermost, and main_wrapper under the program's main). */
static int walk_libunwind(uintptr_t *out, int max)
{
    void *raw[MLMEM_STACK_MAX_DEPTH + 8];
    int saved = shim_guard, saved_errno = errno;
    shim_guard = SHIM_GUARD_UNWIND;
    int n = unw_backtrace(raw, MLMEM_STACK_MAX_DEPTH + 8);
    shim_guard = saved;
    errno = saved_errno; /* validation leaves EAGAIN there (unwind.c) */

    int depth = 0;
    for (int i = 0; i < n && depth < max; i++) {
        uintptr_t ra = (uintptr_t)raw[i];
        if (ra < g_shim.self_start || ra >= g_shim.self_end)
            out[depth++] = ra;
    }
    return depth;
}

/* A loop, not memcmp: a call through the PLT for a few words cost more
 * than the compare (3.5% of the storm's samples under --stacks=all). */
static inline int same_frames(const uintptr_t *a, const uintptr_t *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* noinline: the frames of the shim are skipped by address range, and this
 * keeps the capture itself a frame of ours. */
__attribute__((noinline)) uint32_t shim_stack_capture(shim_ring_t *r)
{
    uintptr_t frames[MLMEM_STACK_MAX_DEPTH];
    int mode = g_shim.config.unwind_mode;
    int n = mode != SHIM_UNWIND_LIBUNWIND ? walk_cfi(frames, MLMEM_STACK_MAX_DEPTH) : -1;
    if (SHIM_UNLIKELY(n < 0)) {
        n = walk_libunwind(frames, MLMEM_STACK_MAX_DEPTH);
    } else if (SHIM_UNLIKELY(mode == SHIM_UNWIND_CHECK)) {
        uintptr_t slow[MLMEM_STACK_MAX_DEPTH];
        shim_cfi_check(frames, n, slow, walk_libunwind(slow, MLMEM_STACK_MAX_DEPTH));
    }
    if (n <= 0)
        return MLMEM_STACK_NONE;
    uint32_t depth = (uint32_t)n;

    if (r->last_stack_id && depth == r->last_depth && same_frames(frames, r->last_frames, depth))
        return r->last_stack_id;
    uint32_t id = shim_stack_intern(frames, depth, r->last_stack_id, r->last_frames,
                                    r->last_depth);
    if (id) {
        memcpy(r->last_frames, frames, depth * sizeof *frames);
        r->last_depth = depth;
        r->last_stack_id = id;
    }
    return id;
}
