/*
 * stacks.c - capturing call stacks (the CFI walk of cfi.c, or libunwind)
 * and deduplicating them in a lock-free table, so each distinct stack
 * crosses the wire once.
 *
 * Table: open addressing over 64-bit slots, each the high 44 bits of the
 * stack's 64-bit hash with its id (20 bits) below; 0 is empty. The low bits
 * of the hash pick where the probe starts, so a slot that matches has
 * matched the whole hash: a stack is known by its hash, not its frames.
 * Two different stacks that share a hash (about once in 2^58 lookups of a
 * table this size) would share an id; keeping every stack's frames to rule
 * that out cost 'import torch' 20 MB under --stacks=all (docs/benchmarks.md).
 *
 * The frames go to the writer through the ring of the thread that adds the
 * stack: a definition (SHIM_EV_STACK_DEF, shim.h) with the inner frames
 * that differ from the thread's previous definition, about 4 bytes a frame
 * (a Python program's consecutive stacks differ in a few inner frames; of
 * 'import torch's 30 M frames, 2.2 M are new). The definition is published
 * in the ring before the id is published in the table (a CAS), so a thread
 * that finds the id publishes its event after the definition, and the
 * writer, which reads definitions in every ring past the events it sends
 * (writer.c, drain_all), sends the frames first. Two threads adding the
 * same new stack at once both define it; the one that loses the slot uses
 * the winner's id, and its own definition goes out unused. A stack is
 * defined only when no event is in progress on the thread (an event's
 * slots would hold the definition back until the event is published), so
 * hooks take a stack before they reserve their event. When the table or
 * the ring is full, the stack is reported as MLMEM_STACK_NONE and counted.
 */
#define _GNU_SOURCE
#define UNW_LOCAL_ONLY
#include <errno.h>
#include <libunwind.h>
#include <string.h>
#include <sys/mman.h>

#include "record.h"

#define TABLE_BITS 20
#define TABLE_SLOTS (1u << TABLE_BITS)
#define TABLE_BYTES (TABLE_SLOTS * sizeof(uint64_t))
#define MAX_IDS TABLE_SLOTS
#define MAX_PROBES 64
#define SLOT_ID_BITS 20 /* a slot: hash's high 44 bits | id */
#define SLOT_ID_MASK ((UINT64_C(1) << SLOT_ID_BITS) - 1)
_Static_assert(MAX_IDS <= (1u << SLOT_ID_BITS), "slot id field too narrow");
/* The largest definition's frames: a varint each. */
#define DEF_BYTES_MAX (MLMEM_STACK_MAX_DEPTH * MLMEM_VARINT_MAX)
#define DEF_SLOTS_MAX (1 + (DEF_BYTES_MAX + sizeof(shim_slot_t) - 1) / sizeof(shim_slot_t))

/* The table's pages are touched at random, so a program with many stacks
 * touches all of them; one with few, a page per stack. Under --stacks=all
 * huge pages take the TLB misses out of the lookups of a program with many
 * (4% of 'import torch's time with the earlier table), and cost a program
 * with few stacks the table's whole 8 MiB; sampled mode, with few stacks by
 * design, keeps small pages. */
static int table_map(void)
{
    g_shim.stack_slots = shim_os_mmap(TABLE_BYTES);
    if (!g_shim.stack_slots)
        return -1;
    if (g_shim.config.stack_mode == MLMEM_STACKS_ALL)
        madvise(g_shim.stack_slots, TABLE_BYTES, MADV_HUGEPAGE);
    /* For helgrind: the table's atomics are its synchronization. */
    SHIM_BENIGN_RACE_SIZED(g_shim.stack_slots, TABLE_BYTES, "atomic slots");
    return 0;
}

int shim_stacks_init(void)
{
    if (table_map() != 0)
        return -1;
    atomic_store(&g_shim.stack_next_id, 1);
    SHIM_BENIGN_RACE(&g_shim.stack_next_id, "atomic id counter");
    SHIM_BENIGN_RACE(&g_shim.stack_overflows, "atomic counter");
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    shim_cfi_init();
    return 0;
}

/* In the child of fork: the parent's stacks were defined in the parent's
 * stream, so the child's starts with an empty table. Fresh zero pages are
 * mapped over the old ones (no copy of the parent's). */
void shim_stacks_reset_after_fork(void)
{
    void *p = mmap(g_shim.stack_slots, TABLE_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED)
        memset(g_shim.stack_slots, 0, TABLE_BYTES);
    else if (g_shim.config.stack_mode == MLMEM_STACKS_ALL)
        madvise(g_shim.stack_slots, TABLE_BYTES, MADV_HUGEPAGE);
    atomic_store(&g_shim.stack_next_id, 1);
    atomic_store(&g_shim.stack_overflows, 0);
}

static uint64_t hash_frames(const uintptr_t *f, uint32_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (uint32_t i = 0; i < n; i++) {
        h ^= f[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

/* Copies 'len' bytes into the ring's slots from slot 'pos' on (they may
 * wrap), and back. */
static void ring_put_bytes(shim_ring_t *r, uint64_t pos, const uint8_t *b, size_t len)
{
    for (size_t done = 0; done < len; done += sizeof(shim_slot_t), pos++) {
        size_t n = len - done < sizeof(shim_slot_t) ? len - done : sizeof(shim_slot_t);
        memcpy(&r->slots[pos & (SHIM_RING_SLOTS - 1)], b + done, n);
    }
}

static void ring_get_bytes(const shim_ring_t *r, uint64_t pos, uint8_t *b, size_t len)
{
    for (size_t done = 0; done < len; done += sizeof(shim_slot_t), pos++) {
        size_t n = len - done < sizeof(shim_slot_t) ? len - done : sizeof(shim_slot_t);
        memcpy(b + done, &r->slots[pos & (SHIM_RING_SLOTS - 1)], n);
    }
}

/* Writes stack 'id's definition into r and publishes it: 0, or -1 when the
 * ring has no room (the thread's previous definition stays the base). */
static int define(shim_ring_t *r, uint32_t id, const uintptr_t *f, uint32_t n)
{
    uint32_t shared = shim_stack_shared(f, n, r->def_frames, r->def_depth);
    uint8_t bytes[DEF_BYTES_MAX];
    size_t len = shim_frames_put(bytes, f, n - shared);
    uint32_t extra = (uint32_t)((len + sizeof(shim_slot_t) - 1) / sizeof(shim_slot_t));
    shim_event_t *e = shim_slots_reserve(r, 1 + extra);
    if (!e) {
        r->dropped--; /* counted as a dropped event: it is a lost stack */
        return -1;
    }
    uint64_t pos = (uint64_t)((shim_slot_t *)e - r->slots);
    e->seq = id;
    e->time = atomic_load_explicit(&g_shim.seq, memory_order_relaxed) + 1;
    e->addr = SHIM_DEF_ADDR(n, shared, len);
    e->info = SHIM_EVI(SHIM_EV_STACK_DEF, 0, extra);
    ring_put_bytes(r, pos + 1, bytes, len);
    shim_event_commit(r);
    memcpy(r->def_frames, f, n * sizeof *f);
    r->def_depth = n;
    return 0;
}

int shim_stack_def_read(shim_ring_t *r, uint64_t pos, shim_stack_def_t *out)
{
    const shim_event_t *e = &r->slots[pos & (SHIM_RING_SLOTS - 1)].ev;
    uint32_t extra = (uint32_t)(e->info & SHIM_EVI_SIZE_MASK);
    uint32_t depth = (uint32_t)(e->addr & 0xff), shared = (uint32_t)(e->addr >> 8 & 0xff);
    size_t len = (size_t)(e->addr >> 16);
    if (SHIM_EVI_TYPE(e->info) != SHIM_EV_STACK_DEF || depth == 0 ||
        depth > MLMEM_STACK_MAX_DEPTH || shared > depth || shared > r->wdef_depth ||
        len > DEF_BYTES_MAX || extra != (len + sizeof(shim_slot_t) - 1) / sizeof(shim_slot_t))
        return -1;
    uint8_t bytes[DEF_BYTES_MAX];
    ring_get_bytes(r, pos + 1, bytes, len);
    const uint8_t *p = bytes;
    uint32_t own = depth - shared;
    uintptr_t frame = 0;
    for (uint32_t i = 0; i < own; i++) {
        uint64_t z;
        if (mlmem_varint_get(&p, bytes + len, &z) != 0)
            return -1;
        frame += (uintptr_t)mlmem_unzigzag(z);
        out->frames[i] = frame;
    }
    memcpy(out->frames + own, r->wdef_frames + r->wdef_depth - shared, shared * sizeof frame);
    out->id = (uint32_t)e->seq;
    out->seq = e->time;
    out->depth = depth;
    memcpy(r->wdef_frames, out->frames, depth * sizeof frame);
    r->wdef_depth = depth;
    return 0;
}

uint32_t shim_stack_intern(shim_ring_t *r, const uintptr_t *f, uint32_t n)
{
    if (n == 0 || n > MLMEM_STACK_MAX_DEPTH)
        return MLMEM_STACK_NONE;
    uint64_t h = hash_frames(f, n);
    uint64_t tag = h & ~SLOT_ID_MASK;
    uint32_t i = (uint32_t)h & (TABLE_SLOTS - 1);
    uint32_t mine = 0;

    for (int probe = 0; probe < MAX_PROBES; probe++, i = (i + 1) & (TABLE_SLOTS - 1)) {
        uint64_t v = atomic_load_explicit(&g_shim.stack_slots[i], memory_order_acquire);
        if (v == 0) {
            if (!mine) {
                /* New: an id, and its definition published before the id.
                 * Once the ids are used up the counter is left alone: each
                 * new stack taking one anyway would wrap it in an hour. */
                if (r->depth != 0 ||
                    atomic_load_explicit(&g_shim.stack_next_id, memory_order_relaxed) >= MAX_IDS)
                    break;
                mine = atomic_fetch_add(&g_shim.stack_next_id, 1);
                if (mine >= MAX_IDS || define(r, mine, f, n) != 0)
                    break;
            }
            SHIM_HAPPENS_BEFORE(&g_shim.stack_slots[i]);
            if (atomic_compare_exchange_strong(&g_shim.stack_slots[i], &v, tag | mine))
                return mine;
            /* Lost the slot: 'v' now holds the winner; compare with it. */
        }
        if ((v & ~SLOT_ID_MASK) == tag) {
            SHIM_HAPPENS_AFTER(&g_shim.stack_slots[i]);
            return (uint32_t)(v & SLOT_ID_MASK);
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
static int walk_cfi(shim_ring_t *r, uintptr_t *out, int max)
{
    const uintptr_t *fp = __builtin_frame_address(0);
    for (int hop = 0; hop < 32; hop++) {
        uintptr_t ra = fp[1], up = fp[0];
        if (ra < g_shim.self_start || ra >= g_shim.self_end)
            return shim_cfi_walk(ra, (uintptr_t)(fp + 2), up, out, max, &r->walk_memo);
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
    int n = shim_unwind_backtrace(raw, MLMEM_STACK_MAX_DEPTH + 8);
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
    int n = mode != SHIM_UNWIND_LIBUNWIND ? walk_cfi(r, frames, MLMEM_STACK_MAX_DEPTH) : -1;
    if (SHIM_UNLIKELY(n < 0)) {
        n = walk_libunwind(frames, MLMEM_STACK_MAX_DEPTH);
    } else if (SHIM_UNLIKELY(mode == SHIM_UNWIND_CHECK)) {
        uintptr_t slow[MLMEM_STACK_MAX_DEPTH];
        shim_cfi_check(frames, n, slow, walk_libunwind(slow, MLMEM_STACK_MAX_DEPTH));
    }
    if (n <= 0)
        return MLMEM_STACK_NONE;
    uint32_t depth = (uint32_t)n;

    /* The thread's last stack and last definition are changed below; a
     * signal handler that interrupts that and allocates gets no stack. */
    if (r->capturing) {
        atomic_fetch_add_explicit(&g_shim.stack_overflows, 1, memory_order_relaxed);
        return MLMEM_STACK_NONE;
    }
    r->capturing = 1;
    atomic_signal_fence(memory_order_seq_cst);
    uint32_t id = r->last_stack_id;
    if (!id || depth != r->last_depth || !same_frames(frames, r->last_frames, depth)) {
        id = shim_stack_intern(r, frames, depth);
        if (id) {
            memcpy(r->last_frames, frames, depth * sizeof *frames);
            r->last_depth = depth;
            r->last_stack_id = id;
        }
    }
    atomic_signal_fence(memory_order_seq_cst);
    r->capturing = 0;
    return id;
}
