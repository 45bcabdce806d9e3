/*
 * shim.h - internals of libmlmem_preload.so, the LD_PRELOAD shim.
 *
 * The shim records raw facts about every allocation of the process it is
 * loaded into and streams them to the analyzer; it never symbolizes or
 * formats, and aggregates one thing only: blocks a thread frees right after
 * making them, counted instead of sent (fold.c). How it is laid out:
 *
 *   hooks_alloc.c  malloc family forwarders    hooks_os.c  mmap family, dlopen,
 *   record.c       the hot path: event -> ring              fork, exit
 *   ring.c         per-thread rings + registry  stacks.c    unwind + dedup table
 *   writer.c       background thread: drains rings, encodes, sends, samples RSS
 *   modules.c      module map (dl_iterate_phdr)  config.c   environment, once
 *   bootstrap.c    real functions + static pool  log.c      write(2) logging
 *   annotate.c     the entry points of mlmem/annotate.h
 *   hooks_io.c     reads from regular files (data evidence)
 *   unwind.c       libunwind's memory validation, without descriptors
 *   state.c        the one mutable global, g_shim
 *   seq.c          the global order: unlocked while one thread records
 *   fold.c         temporaries counted in the thread instead of sent
 *
 * Rules every file keeps (see docs/architecture.md, "The shim"):
 * - No allocation through the hooked functions and no stdio: memory comes
 *   from mmap (shim_os_mmap, a raw syscall) or static storage; messages are
 *   formatted on the stack and written with write(2).
 * - A thread-local guard sends calls made from inside a hook (the real
 *   allocator's own calls, libunwind, dlsym) straight to the real functions.
 * - Every hot-path step is signal-safe: a signal handler that allocates in
 *   the middle of a hook records its event correctly (rings tolerate nesting).
 * - Events are ordered by a global sequence number, taken after an
 *   allocation succeeded and before a block is released, so the analyzer's
 *   order never shows a block freed before it was allocated.
 */
#ifndef SHIM_H
#define SHIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <mlmem/trace_format.h>

#define SHIM_LIKELY(x) __builtin_expect(!!(x), 1)
#define SHIM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SHIM_EXPORT __attribute__((visibility("default")))
#define SHIM_TLS __thread __attribute__((tls_model("initial-exec")))

/* Happens-before edges for helgrind, which models pthread primitives but
 * not C11 atomics: compiled only into the checking build of the shim
 * (libmlmem_preload_helgrind.so, tests/shim_helgrind.cmake), no-ops in the
 * real one. Each marks one release/acquire pair the shim relies on. */
#ifdef SHIM_HELGRIND
#include <valgrind/helgrind.h>
#define SHIM_HAPPENS_BEFORE(p) ANNOTATE_HAPPENS_BEFORE(p)
#define SHIM_HAPPENS_AFTER(p) ANNOTATE_HAPPENS_AFTER(p)
/* A field read by another thread only as a statistic or under a
 * generation check (counters, a name copied and validated after). */
#define SHIM_BENIGN_RACE(p, why) ANNOTATE_BENIGN_RACE_SIZED((p), sizeof(*(p)), why)
#define SHIM_BENIGN_RACE_SIZED(p, size, why) ANNOTATE_BENIGN_RACE_SIZED((p), (size), why)
#else
#define SHIM_HAPPENS_BEFORE(p) ((void)0)
#define SHIM_HAPPENS_AFTER(p) ((void)0)
#define SHIM_BENIGN_RACE(p, why) ((void)0)
#define SHIM_BENIGN_RACE_SIZED(p, size, why) ((void)0)
#endif

/* ---- events in a ring --------------------------------------------------- */

/* One slot of a per-thread ring: half a cache line. The common events
 * (a malloc without a stack, a free) take one slot; an event with more
 * fields (a stack, an old address, an argument, a size of 2^48 or more)
 * sets SHIM_EVI_EXT and continues in the next slot, a shim_event_ext_t.
 * Half the cache lines per event cross from the program's core to the
 * writer's, and four stores fill a slot (docs/benchmarks.md, issue 6).
 * 'time' is in TSC ticks (or ns where there is no TSC); the writer converts.
 * The ring's thread is the events' thread: no tid per slot. */
typedef struct {
    uint64_t seq;
    uint64_t time;
    uint64_t addr;
    uint64_t info;     /* size (low 48 bits) | type << 48 | fn << 56 | EXT */
} shim_event_t;

/* The second slot of an event with SHIM_EVI_EXT. */
typedef struct {
    uint64_t size;     /* the whole size (info holds only its low 48 bits) */
    uint64_t old_addr;
    uint64_t arg;      /* old_size for MREMAP; see prof_event.h for the rest */
    uint32_t stack_id;
    uint32_t pad;
} shim_event_ext_t;

typedef union {
    shim_event_t ev;
    shim_event_ext_t ext;
} shim_slot_t;

_Static_assert(sizeof(shim_slot_t) == 32, "two slots per cache line");

#define SHIM_EVI_SIZE_BITS 48
#define SHIM_EVI_SIZE_MASK ((UINT64_C(1) << SHIM_EVI_SIZE_BITS) - 1)
#define SHIM_EVI_EXT (UINT64_C(1) << 63)
#define SHIM_EVI(type, fn, size)                                                \
    (((uint64_t)(size) & SHIM_EVI_SIZE_MASK) | ((uint64_t)(uint8_t)(type) << 48) | \
     ((uint64_t)((fn) & 0x7f) << 56))
#define SHIM_EVI_TYPE(info) ((unsigned)((info) >> 48) & 0xffu)
#define SHIM_EVI_FN(info) ((unsigned)((info) >> 56) & 0x7fu)

#define SHIM_RING_SLOTS 8192u /* per thread; 256 KiB */

/* fold.c: a small block the thread made and holds instead of sending, three
 * words so that the writer can copy them with plain atomic loads. */
typedef struct {
    uintptr_t addr;
    uint64_t after;                 /* the seq counter when it was made    */
    uint64_t size_fn;               /* size | fn << 56                     */
} shim_held_t;

/* Blocks a thread holds at most: enough for the calls a program nests
 * between two events of note (docs/benchmarks.md, fourteenth round). */
#define SHIM_FOLD_HELD 32
#define SHIM_HELD_SIZE(h) ((h)->size_fn & ((UINT64_C(1) << 56) - 1))
#define SHIM_HELD_FN(h) ((unsigned)((h)->size_fn >> 56))

/* cfi.c: a thread's last CFI walk, the frames from the SHIM_CFI_MEMO_FROM-th
 * outward, each with the stack pointer it was found at and its rule. The
 * next walk takes the rule of a frame it shares with it (the same return
 * address at the same stack pointer: the outer frames, unchanged between
 * two allocations of one loop) from here, read in order, instead of from
 * the rule table shared by all threads, read at random: on CPython's deep
 * stacks those table loads missed the cache one after the other, and were
 * four fifths of the walk (docs/benchmarks.md, twelfth round). Two
 * buffers: the last walk's is read while this one's is written. */
#define SHIM_CFI_MEMO_FROM 8
/* A walk keeps at most MLMEM_STACK_MAX_DEPTH frames but steps through the
 * shim's own on the way (main_wrapper): a few more. */
#define SHIM_CFI_MEMO_FRAMES (MLMEM_STACK_MAX_DEPTH + 4 - SHIM_CFI_MEMO_FROM)
typedef struct {
    uintptr_t sp, ra;
    uint64_t rule;
} shim_cfi_frame_t;
typedef struct {
    uint8_t busy;        /* a walk is using it: a signal handler's does not */
    uint8_t last;        /* which buffer holds the last walk               */
    uint32_t generation; /* of the rule table when it was written          */
    uint32_t count[2];
    uint64_t reused;     /* frames whose rule came from here (tests)       */
    shim_cfi_frame_t frames[2][SHIM_CFI_MEMO_FRAMES];
} shim_cfi_memo_t;

typedef enum {
    SHIM_RING_FREE = 0,    /* in the pool, no owner                         */
    SHIM_RING_ACTIVE = 1,  /* owned by a live thread                        */
    SHIM_RING_EXITED = 2,  /* owner exiting; freed by the writer once gone */
} shim_ring_state_t;

/* A single-producer ring owned by one thread, drained by the writer.
 * 'reserve' counts slots handed out (signal-nesting safe), 'head' slots
 * published, 'tail' slots consumed by the writer. */
typedef struct shim_ring {
    _Atomic uint64_t head;          /* producer publishes (release)       */
    uint64_t reserve;               /* producer only                      */
    uint64_t tail_cache;            /* producer's view of tail            */
    uint32_t depth;                 /* nesting of in-progress events      */
    uint32_t dropping;              /* dropped since the ring was full    */
    uint64_t dropped;               /* events this ring's owner dropped   */
    uint32_t tid;
    _Atomic int state;              /* shim_ring_state_t                  */
    char name[16];                  /* owner: its name at attach and exit */
    _Atomic uint32_t name_gen;      /* owner: bumped after each update    */
    uint32_t name_sent_gen;         /* writer: the generation it sent     */

    /* Sampling state of the owner thread (stays with the ring). */
    int64_t sample_countdown;       /* bytes until the next sampled one   */
    uint64_t rng;

    /* Temporaries folded in the thread (fold.c): the small blocks it made
     * and has not sent yet, the newest in 'held' and the ones before it in
     * 'held_older' (oldest first), and the blocks it freed while they were
     * held, all of one stack (none, or the same with --stacks=all),
     * counted since its last event. The owner changes them with
     * 'fold_busy' set (a signal handler that finds it set leaves them
     * alone; the writer reads them twice at the final drain). */
    uint8_t fold_busy;
    uint8_t fold_ok;                /* owner: may fold (off while exiting) */
    uint8_t fold_from_next;         /* owner: may fold once its first
                                       allocation is sent                  */
    uint8_t fold_fresh;             /* 'held' was the thread's last malloc
                                       or free                             */
    uint32_t fold_stack;            /* the held and folded blocks' stack id
                                       (none while there are none)         */
    shim_held_t held;               /* the newest; addr 0: none held       */
    uint64_t folded_count;
    uint64_t folded_bytes;
    uint64_t folded_largest;
    uint64_t folded_nested;         /* of them, freed after the thread made
                                       or freed another block              */
    uint64_t fold_most;             /* the most held at once when a block
                                       was made beside older ones          */
    uint64_t held_older_bytes;
    uint32_t held_older_n;
    shim_held_t held_older[SHIM_FOLD_HELD - 1];

    /* Ordering and clock (seq.c, record.h). 'seq_busy' is non-zero while
     * the owner takes a sequence number; another thread reads it when the
     * process stops being single-threaded. */
    _Atomic uint32_t seq_busy;
    uint32_t seq_run;               /* numbers in a row, taken shared     */
    uint64_t seq_last;              /* the last number it took            */
    uint32_t clock_epoch;           /* writer pass of the last clock read */
    uint32_t clock_reuse;           /* events left that may reuse it      */
    uint64_t clock_ticks;           /* the last clock read                */

    /* The last stack this thread captured, to skip the table lookup when
     * the same call site allocates again. */
    uint32_t last_stack_id;
    uint32_t last_depth;
    uintptr_t last_frames[MLMEM_STACK_MAX_DEPTH];
    /* The last stack this thread defined in the ring (stacks.c): the next
     * definition sends only the inner frames that differ from it. */
    uint32_t def_depth;
    uint8_t capturing;              /* a capture is in progress (signals)  */
    uintptr_t def_frames[MLMEM_STACK_MAX_DEPTH];
    shim_cfi_memo_t walk_memo;      /* the owner's last CFI walk (cfi.c)  */

    char pad1[64];
    _Atomic uint64_t tail;          /* writer only (release)              */
    _Atomic uint32_t tail_futex;    /* writer: bumped after a drain        */
    _Atomic uint32_t space_waiting; /* owner: asleep until the writer drains */
    /* The writer's own (writer.c): how far it has read stack definitions
     * (ahead of 'tail'), where this pass's events end, whether the owner
     * is gone, and the last definition's frames, which the next one's
     * shared outer frames are taken from. */
    uint64_t defs_read;
    uint64_t drain_limit;
    uint32_t drain_gone;
    uint32_t wdef_depth;
    uintptr_t wdef_frames[MLMEM_STACK_MAX_DEPTH];
    char pad2[64];
    shim_slot_t slots[SHIM_RING_SLOTS];
} shim_ring_t;

/* ---- the one global --------------------------------------------------- */

typedef enum {
    SHIM_OFF = 0,       /* not initialized yet: pass through             */
    SHIM_ACTIVE = 1,    /* recording                                      */
    SHIM_DETACHED = 2,  /* not recording (no analyzer, gone, or finished) */
} shim_mode_t;

typedef struct {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    void *(*mmap)(void *, size_t, int, int, int, off_t);
    void *(*mmap64)(void *, size_t, int, int, int, off_t);
    int (*munmap)(void *, size_t);
    void *(*mremap)(void *, size_t, size_t, int, ...);
    void *(*dlopen)(const char *, int);
    int (*dlclose)(void *);
    pid_t (*fork)(void);
    void (*exit)(int) __attribute__((noreturn));
    void (*underscore_exit)(int) __attribute__((noreturn));
    void (*abort)(void) __attribute__((noreturn));
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*pread)(int, void *, size_t, off_t);
    ssize_t (*pread64)(int, void *, size_t, off_t);
    size_t (*fread)(void *, size_t, size_t, FILE *);
    int (*pipe2)(int[2], int);
} shim_real_t;

typedef struct {
    char socket_path[108];
    int stack_mode;              /* MLMEM_STACKS_*                        */
    uint64_t stack_threshold;    /* bytes; >= always gets a stack         */
    uint64_t sample_rate;        /* mean bytes between sampled small ones */
    int follow_fork;
    int root_pid;                /* with follow_fork 0: record only this  */
    uint32_t block_ms;           /* max wait for ring space, then drop    */
    uint32_t rss_interval_ms;
    uint32_t exit_timeout_ms;    /* max wait for the final flush at exit  */
    int fold_temporaries;        /* fold.c: 0 sends every event           */
    int unwind_mode;             /* SHIM_UNWIND_*                         */
    int debug;
} shim_config_t;

/* How stacks are walked (MLMEM_UNWIND; cfi.c). */
#define SHIM_UNWIND_CFI 0       /* cached CFI rules, libunwind where they give up */
#define SHIM_UNWIND_LIBUNWIND 1 /* libunwind for every stack                */
#define SHIM_UNWIND_CHECK 2     /* both, and log where they differ          */

#define SHIM_MAX_RINGS 4096
#define SHIM_MAX_MODULES 2048
#define SHIM_MODULE_PATH_ARENA (512 * 1024)

typedef struct {
    uint64_t bias;
    uint64_t start;
    uint64_t end;
    uint64_t load_seq;
    uint64_t unload_seq;     /* 0 while loaded                              */
    uint32_t path_offset;    /* into modules_paths                          */
    uint32_t seen;           /* scratch for a refresh                       */
} shim_module_t;

/* The writer thread's working state (writer.c). Only the writer touches
 * it, except the fork handler, which resets it in the child. */
#define SHIM_OUT_CAP (1u << 20)
#define SHIM_SCRATCH_CAP (256u * 1024)
#define SHIM_BATCH_EVENTS 2048u

typedef struct {
    uint8_t out[SHIM_OUT_CAP];        /* records waiting to be sent         */
    size_t out_len;
    uint8_t scratch[SHIM_SCRATCH_CAP];/* one EVENTS payload being built     */
    uintptr_t last_stack[MLMEM_STACK_MAX_DEPTH]; /* the stack sent last    */
    uint32_t last_stack_depth;
    uint32_t modules_sent;
    uint32_t modules_generation_seen;
    uint8_t unload_sent[SHIM_MAX_MODULES];
    uint64_t dropped_sent;
    uint64_t base_ticks, base_ns;     /* calibration pair, whole process    */
    double ns_per_tick;
    uint64_t stream_ns0;              /* time zero of this stream           */
    uint64_t next_rss_ns;
    uint32_t tid;
    uint64_t sock_ino, sock_dev;      /* identity of the analyzer's socket  */
    int rss_fd;                       /* /proc/self/statm, kept open at a
                                         high number; -1: RSS not sampled  */
    uint64_t rss_ino, rss_dev;        /* its identity                       */
    char cmdline[16384];
} shim_writer_state_t;

typedef struct {
    _Atomic int mode;                 /* shim_mode_t                        */
    _Atomic int initializing;
    int prefetchw;                    /* the CPU has PREFETCHW (record.h)   */
    shim_real_t real;
    shim_config_t config;

    _Atomic uint64_t seq;             /* last sequence number handed out    */
    _Atomic uintptr_t seq_owner;      /* seq.c: SHIM_SEQ_* or the owner ring */
    _Atomic int seq_bias_ok;          /* membarrier works: owners allowed   */
    _Atomic uint32_t clock_epoch;     /* bumped by every writer pass        */
    uint64_t tsc0;                    /* clock pair taken at start          */
    uint64_t ns0;
    uint64_t start_realtime_ns;
    pid_t pid;

    /* Rings, indexed by registration; never shrinks. */
    shim_ring_t *_Atomic rings[SHIM_MAX_RINGS];
    _Atomic uint32_t ring_count;
    pthread_key_t ring_key;
    _Atomic uint64_t orphan_dropped;  /* events of threads that got no ring */

    /* Stack table (stacks.c). */
    _Atomic uint64_t *stack_slots;    /* hash tag | id (stacks.c)           */
    _Atomic uint32_t stack_next_id;
    _Atomic uint64_t stack_overflows; /* allocations that got no stack id   */
    uintptr_t self_start, self_end;   /* the shim's own text, skipped       */
    uintptr_t unwind_start, unwind_end; /* libunwind: its mappings are ours */
    int unwind_validate;              /* unwind.c: its validation is ours   */

    /* Module map (modules.c), guarded by modules_lock. */
    pthread_mutex_t modules_lock;
    shim_module_t modules[SHIM_MAX_MODULES];
    _Atomic uint32_t module_count;
    _Atomic uint32_t modules_generation; /* bumped on every change          */
    char modules_paths[SHIM_MODULE_PATH_ARENA];
    uint32_t modules_paths_used;
    char exe_path[4096];

    /* Writer (writer.c). */
    int sock;
    pthread_t writer;
    int writer_running;
    _Atomic uint32_t writer_wake;     /* futex word                         */
    _Atomic uint64_t bytes_sent;      /* to the analyzer: its progress, which
                                         a thread waiting for ring room
                                         watches (record.c)                 */
    _Atomic int writer_sleeping;
    _Atomic int writer_stop;          /* ask for a final flush and exit     */
    _Atomic int writer_done;
    _Atomic int end_reason;           /* MLMEM_END_* for the END record     */
    _Atomic int end_code;
    _Atomic int end_code_known;       /* exit() or _exit() told us the code */
    _Atomic int connected;
    shim_writer_state_t w;
} shim_state_t;

extern shim_state_t g_shim;

/* ---- thread-local state ------------------------------------------------- */

/* Guard values. GUARD_PASS: calls are the allocator's or our own internals;
 * pass them through unrecorded. GUARD_UNWIND: we are inside libunwind; a
 * signal handler's allocation is recorded, without a stack. */
enum { SHIM_GUARD_NONE = 0, SHIM_GUARD_PASS = 1, SHIM_GUARD_UNWIND = 2 };

extern SHIM_TLS int shim_guard;
extern SHIM_TLS shim_ring_t *shim_ring;     /* NULL: none yet              */

/* ---- functions --------------------------------------------------------- */

/* bootstrap.c */
void shim_resolve_real(void);
void *shim_pool_alloc(size_t size, size_t align);
/* The pool itself, for the inline ownership test every free makes. */
#define SHIM_POOL_SIZE (256 * 1024)
extern unsigned char shim_pool[SHIM_POOL_SIZE];
static inline int shim_pool_owns(const void *p)
{
    const unsigned char *c = p;
    return c >= shim_pool && c < shim_pool + SHIM_POOL_SIZE;
}
size_t shim_pool_size(const void *p);
/* The shim's own memory: reserved once at start, then mapped and unmapped
 * in page-rounded pieces (bootstrap.c). shim_os_owns: within the region. */
void shim_os_region_init(void);
void *shim_os_mmap(size_t size);
void shim_os_munmap(void *p, size_t size);
int shim_os_owns(const void *p, size_t size);

/* config.c */
void shim_config_load(shim_config_t *c);

/* log.c: format with a tiny printf subset (%s %d %u %lu %llu %x %zu %p). */
void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
size_t shim_format(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ring.c */
void shim_rings_init(void);
shim_ring_t *shim_ring_attach(void);
void shim_rings_reset_after_fork(void);
uint64_t shim_dropped_total(void);

/* fold.c: temporaries folded in the thread (the inline half is in record.h). */
typedef struct {
    uint64_t count, nested, bytes, largest; /* folded temporaries        */
    uint64_t most;                  /* held at once (with the held blocks) */
    uint32_t stack;                 /* theirs and the held blocks'        */
    unsigned held_n;                /* blocks held, oldest first          */
    int fresh;                      /* the newest was the last malloc/free */
    shim_held_t held[SHIM_FOLD_HELD];
} shim_fold_state_t;
/* Fill 'e' (its seq taken) and its second slot 'x' as the event that sends
 * f's folded temporaries, or f's i-th held block. */
void shim_fold_temporaries_event(shim_event_t *e, shim_event_ext_t *x,
                                 const shim_fold_state_t *f);
void shim_fold_held_event(shim_event_t *e, shim_event_ext_t *x, const shim_fold_state_t *f,
                          unsigned i);
/* Sends what 'r' holds and has folded (owner only; see fold.c). */
void shim_fold_flush(shim_ring_t *r);
/* Forgets it (a new owner, a fork child). The thread folds from its
 * second allocation on: the first is sent, so the thread shows up at once. */
void shim_fold_reset(shim_ring_t *r);
/* Folds no more, and sends what 'r' holds and has folded while the shim
 * records (the thread or the process is exiting). */
void shim_fold_stop(shim_ring_t *r);
/* The writer's copy of another thread's fold state at the final drain;
 * returns 0 if the owner kept changing it (then it is counted as dropped). */
int shim_fold_peek(shim_ring_t *r, shim_fold_state_t *out);

/* record.c: the hot path (the inline half is in record.h). */
uint64_t shim_now(void);
void shim_record_alloc(int fn, void *p, size_t size);
void shim_record_simple(int type, uint64_t addr, uint64_t size, uint64_t arg, int want_stack);
uint32_t shim_stack_for(shim_ring_t *r, uint64_t size, int force);

/* seq.c: the global order, a biased counter (see there). */
#define SHIM_SEQ_SHARED ((uintptr_t)0)  /* everyone takes numbers locked   */
#define SHIM_SEQ_MOVING ((uintptr_t)1)  /* changing hands: wait            */
#define SHIM_SEQ_PROMOTE_RUN 4096u     /* numbers in a row to become owner */
void shim_seq_init(void);
void shim_seq_after_fork_child(void);
void shim_seq_settle(shim_ring_t *r, uintptr_t owner);
void shim_seq_promote(shim_ring_t *r);

/* stacks.c. The table keeps a 64-bit hash per stack, not its frames: the
 * thread that adds a stack writes its frames into its own ring as a
 * definition (SHIM_EV_STACK_DEF) before it publishes the id, and the writer
 * sends them from there, ahead of any event that names the id. */
int shim_stacks_init(void);
void shim_stacks_reset_after_fork(void);
uint32_t shim_stack_capture(shim_ring_t *r);
/* Returns the id of this exact frame sequence (1 to MLMEM_STACK_MAX_DEPTH
 * frames), adding it (and its definition to 'r') if new; MLMEM_STACK_NONE
 * when the table is full or the definition finds no room. Thread-safe,
 * lock-free; 'r' is the calling thread's ring, with no event in progress. */
uint32_t shim_stack_intern(shim_ring_t *r, const uintptr_t *frames, uint32_t depth);

/* A stack definition in a ring: one slot whose info has type
 * SHIM_EV_STACK_DEF and the count of slots after it (its frames, varints as
 * shim_frames_put writes them), seq the id, time the seq counter the stack
 * was taken at (for the modules of its frames), addr its depth, the outer
 * frames it shares with the ring's definition before it, and the frames'
 * bytes. Only the writer reads it; it is not an event of the stream. */
#define SHIM_EV_STACK_DEF 0xffu
#define SHIM_DEF_ADDR(depth, shared, len)                                         \
    ((uint64_t)(depth) | (uint64_t)(shared) << 8 | (uint64_t)(len) << 16)
typedef struct {
    uint32_t id;
    uint32_t depth;
    uint64_t seq;
    uintptr_t frames[MLMEM_STACK_MAX_DEPTH];
} shim_stack_def_t;
/* The writer: reads the definition at 'pos' of 'r' (whose first slot says
 * SHIM_EV_STACK_DEF) into 'out', with the outer frames it shares from the
 * ring's previous definition (r->wdef_*), which it then replaces. 0, or -1
 * for a malformed one. */
int shim_stack_def_read(shim_ring_t *r, uint64_t pos, shim_stack_def_t *out);
/* How many slots the event or definition at 'pos' of 'r' takes. */
static inline uint64_t shim_ring_entry_slots(const shim_ring_t *r, uint64_t pos)
{
    uint64_t info = r->slots[pos & (SHIM_RING_SLOTS - 1)].ev.info;
    if (SHIM_EVI_TYPE(info) == SHIM_EV_STACK_DEF)
        return 1 + (info & SHIM_EVI_SIZE_MASK);
    return info & SHIM_EVI_EXT ? 2 : 1;
}

/* cfi.c: walking frames with cached .eh_frame rules. shim_cfi_walk walks
 * from a frame whose return address is 'ip' and whose caller's stack
 * pointer and frame pointer are 'sp' and 'bp', writing at most 'max'
 * return addresses to 'out' as unw_backtrace would, less those in the
 * shim's own text: their count, or -1 when a frame is not simple enough
 * (then libunwind must walk). 'memo' (may be NULL) is the calling thread's
 * last walk, read and replaced; a walk that interrupts another on the same
 * thread (a signal handler's) leaves it alone. */
void shim_cfi_init(void);
void shim_cfi_forget(void); /* after dlclose: rules may name unmapped code */
int shim_cfi_walk(uintptr_t ip, uintptr_t sp, uintptr_t bp, uintptr_t *out, int max,
                  shim_cfi_memo_t *memo);
void shim_cfi_check(const uintptr_t *fast, int fast_n, const uintptr_t *slow, int slow_n);
void shim_cfi_report(void);

/* Writes frames 'f'[0, n) to 'out' as the stream sends them, each the
 * varint of its zigzagged difference from the one before (from 0 for the
 * first), and returns the bytes written (at most n * MLMEM_VARINT_MAX).
 * The stack table keeps a stack's own frames the same way. */
static inline size_t shim_frames_put(uint8_t *out, const uintptr_t *f, uint32_t n)
{
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++)
        len += mlmem_varint_put(out + len, mlmem_zigzag((int64_t)(f[i] - (i ? f[i - 1] : 0))));
    return len;
}

/* How many outermost frames 'a'[0, an) and 'b'[0, bn) have in common: what
 * the stack table stores once and the writer sends once. */
static inline uint32_t shim_stack_shared(const uintptr_t *a, uint32_t an, const uintptr_t *b,
                                         uint32_t bn)
{
    uint32_t k = 0;
    while (k < an && k < bn && a[an - 1 - k] == b[bn - 1 - k])
        k++;
    return k;
}

/* unwind.c: call shim_unwind_init once, after shim_modules_init (it needs
 * libunwind's address range) and before anything else calls libunwind.
 * shim_unwind_read is the read hook's question for a 1-byte read called
 * from 'caller': non-zero (errno set) when it is libunwind validating
 * memory for the shim, and must return -1 without reading. */
void shim_unwind_init(void);
void shim_unwind_warm_up(void); /* the writer thread, at its start */
int shim_unwind_read(const void *caller);
/* unw_backtrace, as every unwind of the shim's through libunwind must be
 * made: under the lock that fork's handlers take (shim_unwind_fork_prepare
 * before fork, shim_unwind_fork_done after it in parent and child). */
int shim_unwind_backtrace(void **frames, int max);
void shim_unwind_fork_prepare(void);
void shim_unwind_fork_done(void);

/* modules.c */
void shim_modules_init(void);
void shim_modules_refresh(int after_close);

/* writer.c */
int shim_writer_start(void);
void shim_writer_wake(void);
void shim_writer_finish(int reason, int code_known, int code);
void shim_writer_stop_thread(void);
void shim_writer_after_fork_child(void);

#endif /* SHIM_H */
