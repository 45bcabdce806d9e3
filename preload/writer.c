/*
 * writer.c - the shim's one background thread. It drains every thread's
 * ring, encodes the events compactly (varints, deltas; docs/trace-format.md),
 * sends stack and module definitions before their first use, samples the
 * resident set size, and writes batches to the analyzer's socket. All of
 * the encoding happens here, off the program's threads.
 *
 * The thread runs with every signal blocked and with the hook guard set, so
 * nothing it does is recorded as the program's. If the analyzer goes away
 * (EPIPE, ECONNRESET) the shim detaches: recording stops, the program runs
 * on at full speed, and what was lost is counted and reported on stderr at
 * exit. If the analyzer only stalls, sends block (100 ms at a time) and the
 * rings fill; producers then wait briefly and drop (record.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "record.h"

#define W (g_shim.w)

/* ---- time ---------------------------------------------------------------- */

static void calibrate(void)
{
#if defined(__x86_64__)
    uint64_t t = shim_ticks(), n = shim_now();
    if (n > W.base_ns + 1000000 && t > W.base_ticks)
        W.ns_per_tick = (double)(n - W.base_ns) / (double)(t - W.base_ticks);
#endif
}

/* Converts an event's ticks to nanoseconds since this stream started. */
static int64_t ticks_to_stream_ns(uint64_t ticks)
{
#if defined(__x86_64__)
    double ns = (double)(int64_t)(ticks - W.base_ticks) * W.ns_per_tick + (double)W.base_ns;
    return (int64_t)ns - (int64_t)W.stream_ns0;
#else
    return (int64_t)ticks - (int64_t)W.stream_ns0;
#endif
}

/* ---- sending ------------------------------------------------------------- */

/* Stops sending. 'still_ours' is 0 when the descriptor number no longer
 * holds our socket (the program closed it and may have reused the number):
 * then it must not be closed either. */
static void detach(const char *why, int err, int still_ours)
{
    if (atomic_exchange(&g_shim.connected, 0)) {
        atomic_store(&g_shim.mode, SHIM_DETACHED);
        shim_log("analyzer connection lost (%s: errno %d); the program continues unprofiled",
                 why, err);
        if (still_ours)
            close(g_shim.sock);
        g_shim.sock = -1;
    }
    W.out_len = 0;
}

/* The shim's descriptors (the socket, /proc/self/statm) live at high
 * numbers, out of the way of the program's own, and are known by their
 * device and inode: a program may close every descriptor it does not know
 * (daemons, some process launchers) and reuse the numbers. */

/* Moves 'fd' to a number >= 700 (where it can) and notes what it names.
 * Returns the descriptor, or -1 (closed) if it cannot be examined. */
static int keep_high(int fd, uint64_t *ino, uint64_t *dev)
{
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 700);
    if (high >= 0) {
        close(fd);
        fd = high;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    *ino = st.st_ino;
    *dev = st.st_dev;
    return fd;
}

/* Whether 'fd' still names what keep_high noted. */
static int still_ours(int fd, uint64_t ino, uint64_t dev)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_ino == ino && st.st_dev == dev;
}

/* Before writing: trace bytes must never go into one of the program's
 * files or connections. */
static int socket_still_ours(void)
{
    return still_ours(g_shim.sock, W.sock_ino, W.sock_dev);
}

static void flush_out(void)
{
    if (W.out_len && atomic_load(&g_shim.connected) && !socket_still_ours()) {
        detach("the program closed the analyzer's socket", EBADF, 0);
        return;
    }
    const uint8_t *p = W.out;
    size_t n = W.out_len;
    uint64_t give_up = 0;
    while (n && atomic_load(&g_shim.connected)) {
        ssize_t k = send(g_shim.sock, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            atomic_fetch_add_explicit(&g_shim.bytes_sent, (uint64_t)k, memory_order_relaxed);
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* The analyzer is slow or stopped. Keep trying, unless the
             * process is exiting and the exit timeout ran out. */
            if (atomic_load(&g_shim.writer_stop)) {
                uint64_t now = shim_now();
                if (!give_up)
                    give_up = now + (uint64_t)g_shim.config.exit_timeout_ms * 1000000ull;
                else if (now > give_up) {
                    detach("analyzer not reading at exit", errno, 1);
                    return;
                }
            }
            continue;
        }
        detach("send", k < 0 ? errno : 0, 1);
        return;
    }
    W.out_len = 0;
}

/* Makes room for 'need' bytes in the output buffer. */
static uint8_t *out_reserve(size_t need)
{
    if (W.out_len + need > SHIM_OUT_CAP)
        flush_out();
    return W.out + W.out_len;
}

/* Appends a record header + payload. */
static void put_record(uint8_t tag, const uint8_t *payload, size_t len)
{
    uint8_t *p = out_reserve(1 + MLMEM_VARINT_MAX + len);
    size_t n = 0;
    p[n++] = tag;
    n += mlmem_varint_put(p + n, len);
    memcpy(p + n, payload, len);
    W.out_len += n + len;
}

static size_t put_bytes(uint8_t *p, const void *data, size_t len)
{
    size_t n = mlmem_varint_put(p, len);
    memcpy(p + n, data, len);
    return n + len;
}

/* ---- definitions --------------------------------------------------------- */

static void send_hello(void)
{
    uint8_t buf[4096 + sizeof W.cmdline + 64];
    size_t n = 0;
    n += mlmem_varint_put(buf + n, (uint64_t)getpid());
    n += mlmem_varint_put(buf + n, (uint64_t)getppid());
    n += mlmem_varint_put(buf + n, g_shim.start_realtime_ns);
    n += mlmem_varint_put(buf + n, (uint64_t)g_shim.config.stack_mode);
    n += mlmem_varint_put(buf + n, g_shim.config.stack_threshold);
    n += mlmem_varint_put(buf + n, g_shim.config.sample_rate);
    n += mlmem_varint_put(buf + n, (uint64_t)sysconf(_SC_PAGESIZE));
    n += put_bytes(buf + n, g_shim.exe_path, strlen(g_shim.exe_path));

    size_t len = 0;
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t k;
        while (len < sizeof W.cmdline &&
               (k = read(fd, W.cmdline + len, sizeof W.cmdline - len)) > 0)
            len += (size_t)k;
        close(fd);
    }
    n += put_bytes(buf + n, W.cmdline, len);

    uint8_t *p = out_reserve(MLMEM_STREAM_HEADER_LEN);
    memcpy(p, MLMEM_STREAM_MAGIC, MLMEM_STREAM_MAGIC_LEN);
    p[8] = MLMEM_STREAM_VERSION & 0xff;
    p[9] = MLMEM_STREAM_VERSION >> 8;
    W.out_len += MLMEM_STREAM_HEADER_LEN;
    put_record(MLMEM_REC_HELLO, buf, n);
}

static void send_modules(void)
{
    uint32_t gen = atomic_load(&g_shim.modules_generation);
    if (gen == W.modules_generation_seen)
        return;
    pthread_mutex_lock(&g_shim.modules_lock);
    W.modules_generation_seen = gen;
    uint32_t count = atomic_load(&g_shim.module_count);
    uint8_t buf[4096 + 64];
    for (uint32_t i = 0; i < count; i++) {
        const shim_module_t *m = &g_shim.modules[i];
        if (i >= W.modules_sent) {
            const char *path = g_shim.modules_paths + m->path_offset;
            size_t plen = strnlen(path, 4096);
            size_t n = 0;
            n += mlmem_varint_put(buf + n, i);
            n += mlmem_varint_put(buf + n, m->bias);
            n += mlmem_varint_put(buf + n, m->start);
            n += mlmem_varint_put(buf + n, m->end);
            n += mlmem_varint_put(buf + n, m->load_seq);
            n += put_bytes(buf + n, path, plen);
            put_record(MLMEM_REC_MODULE, buf, n);
        }
        if (m->unload_seq && !W.unload_sent[i]) {
            size_t n = 0;
            n += mlmem_varint_put(buf + n, i);
            n += mlmem_varint_put(buf + n, m->unload_seq);
            put_record(MLMEM_REC_UNLOAD, buf, n);
            W.unload_sent[i] = 1;
        }
    }
    W.modules_sent = count;
    pthread_mutex_unlock(&g_shim.modules_lock);
}

/* Sends a stack a thread defined in its ring (stacks.c). The outer frames
 * it has in common with the stack sent before it go as a count:
 * consecutive new stacks differ in a few inner frames (of 'import torch's
 * 30 M frames, 2.2 M are new). */
static void send_stack(const shim_stack_def_t *d)
{
    uint32_t shared = shim_stack_shared(d->frames, d->depth, W.last_stack, W.last_stack_depth);
    uint8_t buf[MLMEM_STACK_MAX_DEPTH * MLMEM_VARINT_MAX + 4 * MLMEM_VARINT_MAX];
    size_t n = 0;
    n += mlmem_varint_put(buf + n, d->id);
    n += mlmem_varint_put(buf + n, d->seq);
    n += mlmem_varint_put(buf + n, d->depth);
    n += mlmem_varint_put(buf + n, shared);
    n += shim_frames_put(buf + n, d->frames, d->depth - shared);
    put_record(MLMEM_REC_STACK, buf, n);
    memcpy(W.last_stack, d->frames, d->depth * sizeof *d->frames);
    W.last_stack_depth = d->depth;
}

/* ---- events -------------------------------------------------------------- */

typedef struct {
    uint8_t *p;        /* next byte in scratch                               */
    uint32_t count;
    uint32_t tid;
    uint64_t seq, addr;
    uint64_t class_addr[MLMEM_ADDR_CLASSES]; /* last block of each size class */
    int64_t time;
    uint64_t ticks;    /* the ticks 'time' was converted from                */
} batch_t;

static void batch_begin(batch_t *b, uint32_t tid)
{
    memset(b, 0, sizeof *b);
    b->p = W.scratch;
    b->tid = tid;
}

static void batch_end(batch_t *b)
{
    if (!b->count)
        return;
    uint8_t head[2 * MLMEM_VARINT_MAX];
    size_t hn = mlmem_varint_put(head, b->tid);
    hn += mlmem_varint_put(head + hn, b->count);
    size_t body = (size_t)(b->p - W.scratch);
    uint8_t *p = out_reserve(1 + MLMEM_VARINT_MAX + hn + body);
    size_t n = 0;
    p[n++] = MLMEM_REC_EVENTS;
    n += mlmem_varint_put(p + n, hn + body);
    memcpy(p + n, head, hn);
    memcpy(p + n + hn, W.scratch, body);
    W.out_len += n + hn + body;
    b->count = 0;
    b->p = W.scratch;
    b->seq = b->addr = 0;
    memset(b->class_addr, 0, sizeof b->class_addr);
    b->time = 0;
    b->ticks = 0;
}

#define PUT_U(v) (p += mlmem_varint_put(p, (v)))
#define PUT_ADDR(a)                                                \
    do {                                                           \
        PUT_U(mlmem_zigzag((int64_t)((a) - addr)));                \
        addr = (a);                                                \
    } while (0)
/* An ALLOC's or REALLOC's address 'a' of a block of 'sz' bytes, against the
 * last block of its size class (trace_format.h): an allocator hands back
 * the block just freed. */
#define PUT_CLASS_ADDR(sz, a)                                                       \
    do {                                                                            \
        unsigned cls_ = mlmem_addr_class(sz);                                       \
        uint64_t base_ = cls_ && b->class_addr[cls_] ? b->class_addr[cls_] : addr; \
        PUT_U(mlmem_zigzag((int64_t)((a) - base_)));                                \
        addr = (a);                                                                 \
        b->class_addr[cls_] = (a);                                                  \
    } while (0)

/* Appends one event: 'e' and, for an event with SHIM_EVI_EXT, its second
 * slot 'x' (NULL otherwise). 'freed_next' (ALLOC only): the event that
 * follows it in the order frees it at the same time, and is not written
 * (the reader makes it from this one). Most events take the next number
 * and the thread's last clock read, so their seq and time deltas are flags.
 * The output position and running address live in locals: byte stores
 * through 'p' may alias anything, so fields of 'b' would be reloaded and
 * stored again around every byte. */
static void batch_add(batch_t *b, const shim_event_t *e, const shim_event_ext_t *x,
                      int freed_next)
{
    if (b->count == SHIM_BATCH_EVENTS)
        batch_end(b);
    uint64_t info = e->info;
    unsigned ev_type = SHIM_EVI_TYPE(info);
    uint64_t size = x ? x->size : info & SHIM_EVI_SIZE_MASK;
    uint32_t stack_id = x ? x->stack_id : MLMEM_STACK_NONE;
    uint64_t seq = e->seq, ticks = e->time, ev_addr = e->addr;
    uint8_t *type = b->p;
    uint8_t *p = type + 1;
    uint64_t addr = b->addr;
    uint8_t flags = freed_next ? MLMEM_EVF_FREED_NEXT : 0;
    if (seq == b->seq + 1)
        flags |= MLMEM_EVF_SEQ_NEXT;
    else
        PUT_U(mlmem_zigzag((int64_t)(seq - b->seq)));
    b->seq = freed_next ? seq + 1 : seq;
    if (ticks != b->ticks || !b->count) {
        int64_t t = ticks_to_stream_ns(ticks);
        if (t != b->time)
            PUT_U(mlmem_zigzag(t - b->time));
        else
            flags |= MLMEM_EVF_SAME_TIME;
        b->ticks = ticks;
        b->time = t;
    } else {
        flags |= MLMEM_EVF_SAME_TIME;
    }
    *type = (uint8_t)(ev_type | flags);

    switch (ev_type) {
    case MLMEM_EV_FREE:
        PUT_ADDR(ev_addr);
        break;
    case MLMEM_EV_ALLOC:
    case MLMEM_EV_REALLOC: {
        /* Size first: it names the class whose last block the address is
         * written against (an allocator hands back the block just freed). */
        PUT_U(size);
        PUT_CLASS_ADDR(size, ev_addr);
        PUT_U(stack_id);
        if (ev_type == MLMEM_EV_REALLOC)
            PUT_U(mlmem_zigzag((int64_t)((x ? x->old_addr : 0) - ev_addr)));
        *p++ = (uint8_t)SHIM_EVI_FN(info);
        break;
    }
    case MLMEM_EV_ALLOC_LATE: {
        /* As ALLOC, then how far back the counter stood when the block
         * was made. */
        PUT_U(size);
        PUT_CLASS_ADDR(size, ev_addr);
        PUT_U(stack_id);
        *p++ = (uint8_t)SHIM_EVI_FN(info);
        PUT_U(seq - (x ? x->arg : 0));
        break;
    }
    case MLMEM_EV_TEMPORARIES: {
        /* fold.c's slots: the most held at once in the address, the
         * nested ones in the first slot's size bits. */
        uint64_t largest = x ? x->old_addr : 0;
        PUT_U(x ? x->arg : 0); /* count   */
        PUT_U(size);           /* bytes   */
        PUT_U(largest);
        PUT_U(stack_id);
        PUT_U(ev_addr - largest); /* held beside the largest at most */
        PUT_U(info & SHIM_EVI_SIZE_MASK);
        break;
    }
    case MLMEM_EV_MMAP:
    case MLMEM_EV_MMAP_FILE:
        PUT_ADDR(ev_addr);
        PUT_U(size);
        PUT_U(stack_id);
        PUT_U(x ? x->arg : 0);
        break;
    case MLMEM_EV_MREMAP:
        PUT_ADDR(ev_addr);
        PUT_U(size);
        PUT_U(stack_id);
        PUT_U(mlmem_zigzag((int64_t)((x ? x->old_addr : 0) - ev_addr)));
        PUT_U(x ? x->arg : 0);
        break;
    case MLMEM_EV_MUNMAP:
    case MLMEM_EV_FILE_READ:
        PUT_ADDR(ev_addr);
        PUT_U(size);
        if (ev_type == MLMEM_EV_FILE_READ)
            PUT_U(x ? x->arg : 0);
        break;
    case MLMEM_EV_TAG:
        PUT_ADDR(ev_addr);
        PUT_U(x ? x->arg : 0);
        break;
    case MLMEM_EV_RSS:
        PUT_U(size);
        break;
    case MLMEM_EV_STEP:
    case MLMEM_EV_PHASE:
    case MLMEM_EV_REGION_BEGIN:
    case MLMEM_EV_FORK:
        PUT_U(x ? x->arg : 0);
        break;
    default: /* REGION_END, NOP: nothing more */
        break;
    }
    b->p = p;
    b->addr = addr;
    b->count++;
}

#undef PUT_CLASS_ADDR
#undef PUT_ADDR
#undef PUT_U

/* Sends the thread's name as a THREAD record when the owner has taken a
 * new one (at its first event and when it exits, see ring.c). A copy torn
 * by a concurrent update is not sent; the next pass sends the new name. */
static void send_thread_name(shim_ring_t *r)
{
    uint32_t gen = atomic_load_explicit(&r->name_gen, memory_order_acquire);
    if (gen == r->name_sent_gen)
        return;
    SHIM_HAPPENS_AFTER(&r->name_gen);
    char name[16];
    memcpy(name, r->name, sizeof name);
    if (atomic_load_explicit(&r->name_gen, memory_order_acquire) != gen)
        return;
    name[15] = '\0';
    uint8_t buf[MLMEM_VARINT_MAX + 24];
    size_t len = mlmem_varint_put(buf, r->tid);
    len += put_bytes(buf + len, name, strlen(name));
    put_record(MLMEM_REC_THREAD, buf, len);
    r->name_sent_gen = gen;
}

/* Reads the stack definitions 'r' has published past those read before,
 * ahead of its events (drain_all says why), and sends them, or with
 * 'discard' only follows them. A malformed one (a bug) is counted as a
 * lost stack, and said once. */
static void read_defs(shim_ring_t *r, int discard)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    SHIM_HAPPENS_AFTER(&r->head);
    uint64_t pos = r->defs_read;
    while (pos < head) {
        uint64_t info = r->slots[pos & (SHIM_RING_SLOTS - 1)].ev.info;
        if (SHIM_EVI_TYPE(info) == SHIM_EV_STACK_DEF) {
            shim_stack_def_t d;
            if (shim_stack_def_read(r, pos, &d) != 0) {
                static int said;
                if (!said++)
                    shim_log("a stack definition in the ring of thread %u is malformed",
                             (unsigned)r->tid);
                atomic_fetch_add_explicit(&g_shim.stack_overflows, 1, memory_order_relaxed);
                r->wdef_depth = 0;
            } else if (!discard) {
                send_stack(&d);
            }
        }
        pos += shim_ring_entry_slots(r, pos);
    }
    r->defs_read = pos;
}

/* Takes the events of one ring up to this pass's limit; returns how many
 * slots. With 'discard' they are counted as dropped instead of sent (the
 * analyzer is gone). Stack definitions among them were read already. */
static size_t drain_ring_events(shim_ring_t *r, int discard)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = r->drain_limit;
    size_t taken = (size_t)(head - tail);
    if (taken) {
        const uint32_t mask = SHIM_RING_SLOTS - 1;
        if (discard) {
            /* Counted as the program's events: folded temporaries as the
             * allocations and frees they stand for. */
            uint64_t events = 0;
            for (uint64_t i = tail; i < head; i += shim_ring_entry_slots(r, i)) {
                uint64_t info = r->slots[i & mask].ev.info;
                if (SHIM_EVI_TYPE(info) == SHIM_EV_STACK_DEF)
                    continue;
                if (SHIM_EVI_TYPE(info) == MLMEM_EV_TEMPORARIES && (info & SHIM_EVI_EXT))
                    events += 2 * r->slots[(i + 1) & mask].ext.arg;
                else
                    events++;
            }
            __atomic_fetch_add(&r->dropped, events, __ATOMIC_RELAXED);
        } else {
            batch_t b;
            /* The owner wrote its tid before it published its first event. */
            batch_begin(&b, r->tid);
            for (uint64_t i = tail; i < head; i++) {
                const shim_event_t *e = &r->slots[i & mask].ev;
                if (SHIM_EVI_TYPE(e->info) == SHIM_EV_STACK_DEF) {
                    i += e->info & SHIM_EVI_SIZE_MASK;
                    continue;
                }
                const shim_event_ext_t *x = NULL;
                if (e->info & SHIM_EVI_EXT)
                    x = &r->slots[++i & mask].ext;
                /* A block freed right after it was made (the commonest
                 * pattern there is: a temporary) travels as one event. */
                const shim_event_t *next = &r->slots[(i + 1) & mask].ev;
                int freed_next = i + 1 < head &&
                                 SHIM_EVI_TYPE(e->info) == MLMEM_EV_ALLOC &&
                                 SHIM_EVI_TYPE(next->info) == MLMEM_EV_FREE &&
                                 next->addr == e->addr && next->seq == e->seq + 1 &&
                                 next->time == e->time;
                batch_add(&b, e, x, freed_next);
                i += (uint64_t)freed_next + (uint64_t)(freed_next && (next->info & SHIM_EVI_EXT));
            }
            batch_end(&b);
        }
        SHIM_HAPPENS_BEFORE(&r->tail);
        atomic_store(&r->tail, head);
        atomic_fetch_add_explicit(&r->tail_futex, 1, memory_order_release);
        if (atomic_load(&r->space_waiting))
            syscall(SYS_futex, &r->tail_futex, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    return taken;
}

/* One pass over every ring, in three steps:
 * 1. Where each ring's events end this pass: its head now. An exiting
 *    thread's ring is recycled only once the kernel says the thread is
 *    gone (checked first): then its head is final, and this pass empties it.
 * 2. The stack definitions of every ring, up to its head read after all of
 *    step 1. An event below a limit of step 1 names a stack whose
 *    definition was published before that event (stacks.c), in whichever
 *    ring: so it is read here, and its STACK record goes out before the
 *    EVENTS record that names it.
 * 3. The events, up to the limits of step 1. */
static size_t drain_all(int discard)
{
    size_t total = 0;
    uint32_t n = atomic_load(&g_shim.ring_count);
    for (uint32_t i = 0; i < n; i++) {
        shim_ring_t *r = atomic_load(&g_shim.rings[i]);
        if (!r)
            continue;
        int state = atomic_load_explicit(&r->state, memory_order_acquire);
        SHIM_HAPPENS_AFTER(&r->state);
        r->drain_gone = state == SHIM_RING_EXITED &&
                        syscall(SYS_tgkill, g_shim.pid, r->tid, 0) != 0 && errno == ESRCH;
        r->drain_limit = atomic_load_explicit(&r->head, memory_order_acquire);
        SHIM_HAPPENS_AFTER(&r->head);
        if (!discard && state != SHIM_RING_FREE)
            send_thread_name(r);
    }
    for (uint32_t i = 0; i < n; i++) {
        shim_ring_t *r = atomic_load(&g_shim.rings[i]);
        if (r)
            read_defs(r, discard);
    }
    for (uint32_t i = 0; i < n; i++) {
        shim_ring_t *r = atomic_load(&g_shim.rings[i]);
        if (!r)
            continue;
        total += drain_ring_events(r, discard);
        if (r->drain_gone) {
            r->drain_gone = 0;
            r->wdef_depth = 0;
            SHIM_HAPPENS_BEFORE(&r->state);
            atomic_store_explicit(&r->state, SHIM_RING_FREE, memory_order_release);
        }
    }
    return total;
}

/* /proc/self/statm is opened once, when the writer starts (before the
 * program's main, or in a fork child before fork returns), at a high
 * number beside the socket, and read with pread. Opening it for each
 * sample put a descriptor of ours at the lowest free number every 10 ms: a
 * program that replaces numbers it did not open (a daemon's dup2 over
 * everything) could take that number between our open and close, so that
 * we read its socket (blocking) and closed it (test_e2e_reliability_
 * program_takes_libunwind_fds caught it under load). */
static void rss_open(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    W.rss_fd = fd < 0 ? -1 : keep_high(fd, &W.rss_ino, &W.rss_dev);
}

/* Reads the resident set size (no stdio). If the program has taken our
 * number since, RSS is no longer sampled (never reopened: that would put
 * a descriptor of ours at a low number again); pread on whatever the number
 * names now neither blocks nor consumes (a socket or pipe refuses it). */
static uint64_t read_rss(void)
{
    char buf[128];
    if (W.rss_fd < 0)
        return 0;
    if (!still_ours(W.rss_fd, W.rss_ino, W.rss_dev)) {
        W.rss_fd = -1;
        if (g_shim.config.debug)
            shim_log("the program took the descriptor of /proc/self/statm: RSS no longer sampled");
        return 0;
    }
    ssize_t n = pread(W.rss_fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = buf;
    while (*p && *p != ' ')
        p++;
    uint64_t pages = 0;
    for (p++; *p >= '0' && *p <= '9'; p++)
        pages = pages * 10 + (uint64_t)(*p - '0');
    return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void sample_rss(int force)
{
    uint64_t now = shim_now();
    if (!force && now < W.next_rss_ns)
        return;
    W.next_rss_ns = now + (uint64_t)g_shim.config.rss_interval_ms * 1000000ull;
    shim_event_t e;
    e.seq = 0; /* not in the order: see docs/trace-format.md, RSS */
    e.time = shim_ticks();
    e.addr = 0;
    e.info = SHIM_EVI(MLMEM_EV_RSS, 0, read_rss());
    batch_t b;
    batch_begin(&b, W.tid);
    batch_add(&b, &e, NULL, 0);
    batch_end(&b);
}

static void send_dropped(void)
{
    uint64_t d = shim_dropped_total();
    if (d == W.dropped_sent)
        return;
    uint8_t buf[MLMEM_VARINT_MAX];
    put_record(MLMEM_REC_DROPPED, buf, mlmem_varint_put(buf, d));
    W.dropped_sent = d;
}

/* The final drain: what threads still running hold and have folded, sent
 * for them (fold.c). The numbers come from the counter directly: the
 * program's threads are being stopped, and at worst one of them takes the
 * same number at this moment (the analyzer counts a duplicate). */
static void send_folds_left(void)
{
    uint32_t n = atomic_load(&g_shim.ring_count);
    for (uint32_t i = 0; i < n; i++) {
        shim_ring_t *r = atomic_load(&g_shim.rings[i]);
        if (!r || atomic_load(&r->state) == SHIM_RING_FREE)
            continue;
        shim_fold_state_t f;
        if (!shim_fold_peek(r, &f)) {
            __atomic_fetch_add(&r->dropped, 1, __ATOMIC_RELAXED);
            continue;
        }
        if (!f.count && !f.held_n)
            continue;
        batch_t b;
        batch_begin(&b, r->tid);
        shim_event_t e = {.time = shim_ticks()};
        shim_event_ext_t x;
        if (f.count) {
            e.seq = atomic_fetch_add(&g_shim.seq, 1) + 1;
            shim_fold_temporaries_event(&e, &x, &f);
            batch_add(&b, &e, &x, 0);
        }
        for (unsigned h = 0; h < f.held_n; h++) {
            e.seq = atomic_fetch_add(&g_shim.seq, 1) + 1;
            shim_fold_held_event(&e, &x, &f, h);
            batch_add(&b, &e, &x, 0);
        }
        batch_end(&b);
    }
}

static void send_end(void)
{
    uint8_t buf[6 * MLMEM_VARINT_MAX];
    size_t n = 0;
    n += mlmem_varint_put(buf + n, (uint64_t)atomic_load(&g_shim.end_reason));
    n += mlmem_varint_put(buf + n, (uint64_t)atomic_load(&g_shim.end_code_known));
    n += mlmem_varint_put(buf + n, mlmem_zigzag(atomic_load(&g_shim.end_code)));
    n += mlmem_varint_put(buf + n, atomic_load(&g_shim.seq));
    n += mlmem_varint_put(buf + n, shim_dropped_total());
    n += mlmem_varint_put(buf + n, atomic_load(&g_shim.stack_overflows));
    put_record(MLMEM_REC_END, buf, n);
}

/* ---- the thread ---------------------------------------------------------- */

static void wait_for_work(uint32_t ms)
{
    uint32_t seen = atomic_load(&g_shim.writer_wake);
    atomic_store(&g_shim.writer_sleeping, 1);
    if (!atomic_load(&g_shim.writer_stop)) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        syscall(SYS_futex, &g_shim.writer_wake, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
    }
    atomic_store(&g_shim.writer_sleeping, 0);
}

void shim_writer_wake(void)
{
    atomic_fetch_add_explicit(&g_shim.writer_wake, 1, memory_order_relaxed);
    if (atomic_load_explicit(&g_shim.writer_sleeping, memory_order_relaxed))
        syscall(SYS_futex, &g_shim.writer_wake, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *writer_main(void *arg)
{
    shim_guard = SHIM_GUARD_PASS;
    W.tid = (uint32_t)syscall(SYS_gettid);
    shim_unwind_warm_up();
    /* Let the clock calibration see at least a millisecond before the
     * first event is converted. */
    while (shim_now() < W.base_ns + 1100000)
        wait_for_work(1);
    calibrate();

    for (;;) {
        int stopping = atomic_load(&g_shim.writer_stop);
        int connected = atomic_load(&g_shim.connected);
        calibrate();
        atomic_fetch_add_explicit(&g_shim.clock_epoch, 1, memory_order_relaxed);
        if (connected)
            send_modules();
        size_t n = drain_all(!connected);
        if (connected) {
            sample_rss(stopping);
            send_dropped();
        }
        if (stopping) {
            n = drain_all(!atomic_load(&g_shim.connected));
            if (atomic_load(&g_shim.connected))
                send_folds_left();
            send_dropped();
            send_end();
            flush_out();
            /* Nothing follows END: the analyzer sees the stream's end now,
             * not when the process's teardown closes the socket, after its
             * memory is unmapped (a millisecond and more). */
            if (atomic_load(&g_shim.connected))
                shutdown(g_shim.sock, SHUT_WR);
            break;
        }
        flush_out();
        /* A busy pass goes straight on. Otherwise 5 ms, events or not: a
         * ring holds 5 ms of 1.6 M events a second, a thread whose ring
         * fills meanwhile wakes the writer itself (record.c), and waking
         * every millisecond for a few events put a context switch on a core
         * of a program that keeps both busy each time (the 2-thread storm:
         * 1,050 -> 280 a run; docs/benchmarks.md, tenth round). */
        if (!connected && n == 0)
            wait_for_work(50);
        else if (n < SHIM_RING_SLOTS / 8)
            wait_for_work(5);
    }
    atomic_store(&g_shim.writer_done, 1);
    return NULL;
}

static int connect_analyzer(void)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, g_shim.config.socket_path, sizeof a.sun_path - 1);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(s);
        errno = e;
        return -1;
    }
    struct timeval tv = {0, 100000};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int sz = 4 << 20;
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    s = keep_high(s, &W.sock_ino, &W.sock_dev);
    if (s < 0)
        return -1;
    g_shim.sock = s;
    atomic_store(&g_shim.connected, 1);
    return 0;
}

int shim_writer_start(void)
{
    SHIM_BENIGN_RACE(&g_shim.bytes_sent, "atomic: the analyzer's progress (record.c)");
    if (connect_analyzer() != 0) {
        shim_log("cannot connect to the analyzer at %s (errno %d); running unprofiled",
                 g_shim.config.socket_path, errno);
        return -1;
    }
    rss_open();
    /* HELLO goes out now, from this thread: a process that dies before the
     * writer first runs still says who it was. */
    send_hello();
    flush_out();
    sigset_t all, old;
    sigfillset(&all);
    int saved = shim_guard;
    shim_guard = SHIM_GUARD_PASS;
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&g_shim.writer, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    shim_guard = saved;
    if (rc != 0) {
        shim_log("cannot start the writer thread (error %d); running unprofiled", rc);
        close(g_shim.sock);
        g_shim.sock = -1;
        atomic_store(&g_shim.connected, 0);
        return -1;
    }
    g_shim.writer_running = 1;
    return 0;
}

/* Asks the writer for a final drain, the END record and a flush, and waits
 * for it (at most exit_timeout_ms). Afterwards nothing more is recorded.
 * Safe to call more than once; a no-op in a vfork child. */
void shim_writer_finish(int reason, int code_known, int code)
{
    if (getpid() != g_shim.pid || !g_shim.writer_running)
        return;
    static _Atomic int finishing;
    if (atomic_exchange(&finishing, 1))
        return;
    atomic_store(&g_shim.end_reason, reason);
    /* This thread's held block and folded temporaries go out with the
     * final drain, in its own ring (other threads': send_folds_left). */
    shim_ring_t *r = shim_ring;
    if (r)
        shim_fold_stop(r);
    if (code_known) {
        atomic_store(&g_shim.end_code, code);
        atomic_store(&g_shim.end_code_known, 1);
    }
    atomic_store(&g_shim.writer_stop, 1);
    shim_writer_wake();
    uint64_t deadline = shim_now() + (uint64_t)g_shim.config.exit_timeout_ms * 1000000ull +
                        200000000ull;
    while (!atomic_load(&g_shim.writer_done) && shim_now() < deadline) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&g_shim.mode, SHIM_DETACHED);
    shim_cfi_report();
    uint64_t dropped = shim_dropped_total();
    if (dropped)
        shim_log("%llu events could not be recorded (see dropped_events in the report)",
                 (unsigned long long)dropped);
    uint64_t lost_stacks = atomic_load(&g_shim.stack_overflows);
    if (lost_stacks)
        shim_log("%llu allocations got no stack (the stack table or a thread's ring was full, "
                 "or a signal handler allocated while its thread was taking one)",
                 (unsigned long long)lost_stacks);
    atomic_store(&finishing, 0);
}

/* Ends recording for good and waits until the writer thread is gone, so
 * that nothing of the shim runs in a thread of the program afterwards. */
void shim_writer_stop_thread(void)
{
    if (getpid() != g_shim.pid || !g_shim.writer_running)
        return;
    shim_writer_finish(MLMEM_END_DETACHED, 0, 0);
    if (atomic_load(&g_shim.writer_done)) {
        int saved = shim_guard;
        shim_guard = SHIM_GUARD_PASS;
        pthread_join(g_shim.writer, NULL);
        shim_guard = saved;
        g_shim.writer_running = 0;
    }
}

/* In the child of fork: a new stream of its own. Only this thread runs
 * here, so plain resets are safe. */
void shim_writer_after_fork_child(void)
{
    if (g_shim.sock >= 0)
        close(g_shim.sock);
    g_shim.sock = -1;
    if (W.rss_fd >= 0) /* the parent's /proc/self: opened again for the child */
        close(W.rss_fd);
    W.rss_fd = -1;
    atomic_store(&g_shim.connected, 0);
    g_shim.writer_running = 0;
    atomic_store(&g_shim.writer_stop, 0);
    atomic_store(&g_shim.writer_done, 0);
    atomic_store(&g_shim.writer_sleeping, 0);
    atomic_store(&g_shim.end_reason, 0);
    atomic_store(&g_shim.end_code, 0);
    atomic_store(&g_shim.end_code_known, 0);
    W.out_len = 0;
    W.last_stack_depth = 0;
    memset(W.unload_sent, 0, sizeof W.unload_sent);
    W.modules_sent = 0;
    W.modules_generation_seen = atomic_load(&g_shim.modules_generation) - 1;
    W.dropped_sent = 0;
    W.next_rss_ns = 0;
    W.stream_ns0 = shim_now();
}
