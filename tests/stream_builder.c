/*
 * stream_builder.c - see stream_builder.h. Each function mirrors one of
 * preload/writer.c's: send_hello, batch_add/batch_end, ensure_stack_sent,
 * send_modules, send_dropped, send_end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mlmem/trace_format.h>

#include "stream_builder.h"

static void buf_reserve(sb_buf_t *b, size_t more)
{
    if (b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *nb = realloc(b->data, cap);
    if (!nb) {
        fprintf(stderr, "stream_builder: out of memory\n");
        abort();
    }
    b->data = nb;
    b->cap = cap;
}

static void buf_put(sb_buf_t *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_byte(sb_buf_t *b, uint8_t v)
{
    buf_put(b, &v, 1);
}

static void buf_u(sb_buf_t *b, uint64_t v)
{
    uint8_t tmp[MLMEM_VARINT_MAX];
    buf_put(b, tmp, mlmem_varint_put(tmp, v));
}

static void buf_s(sb_buf_t *b, int64_t v)
{
    buf_u(b, mlmem_zigzag(v));
}

static void buf_bytes(sb_buf_t *b, const void *p, size_t n)
{
    buf_u(b, n);
    buf_put(b, p, n);
}

void sb_init(sb_t *b)
{
    memset(b, 0, sizeof *b);
}

void sb_free(sb_t *b)
{
    free(b->out.data);
    free(b->batch.data);
    memset(b, 0, sizeof *b);
}

void sb_raw(sb_t *b, const void *data, size_t len)
{
    buf_put(&b->out, data, len);
}

void sb_header_version(sb_t *b, unsigned version)
{
    uint8_t h[MLMEM_STREAM_HEADER_LEN];
    memcpy(h, MLMEM_STREAM_MAGIC, MLMEM_STREAM_MAGIC_LEN);
    h[8] = (uint8_t)(version & 0xff);
    h[9] = (uint8_t)(version >> 8);
    buf_put(&b->out, h, sizeof h);
    b->version = version;
    b->last_depth = 0;
}

void sb_header(sb_t *b)
{
    sb_header_version(b, MLMEM_STREAM_VERSION);
}

void sb_record(sb_t *b, uint8_t tag, const uint8_t *payload, size_t len)
{
    buf_byte(&b->out, tag);
    buf_u(&b->out, len);
    buf_put(&b->out, payload, len);
}

/* Appends a record whose payload was built in 'p', then frees 'p'. */
static void put_payload(sb_t *b, uint8_t tag, sb_buf_t *p)
{
    sb_record(b, tag, p->data, p->len);
    free(p->data);
}

void sb_hello(sb_t *b, const sb_hello_t *h)
{
    sb_buf_t p = {0};
    buf_u(&p, h->pid);
    buf_u(&p, h->ppid);
    buf_u(&p, h->start_realtime_ns);
    buf_u(&p, h->stack_mode);
    buf_u(&p, h->stack_threshold);
    buf_u(&p, h->sample_rate);
    buf_u(&p, h->page_size);
    buf_bytes(&p, h->exe, strlen(h->exe));
    buf_bytes(&p, h->cmdline, h->cmdline_len);
    put_payload(b, MLMEM_REC_HELLO, &p);
}

void sb_hello_simple(sb_t *b, uint32_t pid, uint32_t ppid, const char *name)
{
    char exe[256], cmd[256];
    snprintf(exe, sizeof exe, "/bin/%s", name);
    int n = snprintf(cmd, sizeof cmd, "%s%carg%c", name, '\0', '\0');
    sb_hello_t h = {
        .pid = pid,
        .ppid = ppid,
        .start_realtime_ns = 1700000000000000000ull,
        .stack_mode = MLMEM_STACKS_SAMPLED,
        .stack_threshold = 4096,
        .sample_rate = 65536,
        .page_size = 4096,
        .exe = exe,
        .cmdline = cmd,
        .cmdline_len = (size_t)n,
    };
    sb_hello(b, &h);
}

void sb_batch_end(sb_t *b)
{
    if (!b->batch_open)
        return;
    b->batch_open = 0;
    if (!b->count)
        return;
    sb_buf_t head = {0};
    buf_u(&head, b->tid);
    buf_u(&head, b->count);
    buf_byte(&b->out, MLMEM_REC_EVENTS);
    buf_u(&b->out, head.len + b->batch.len);
    buf_put(&b->out, head.data, head.len);
    buf_put(&b->out, b->batch.data, b->batch.len);
    free(head.data);
    b->batch.len = 0;
    b->count = 0;
    b->seq = b->addr = 0;
    b->time = 0;
    memset(b->class_addr, 0, sizeof b->class_addr);
}

static void put_addr(sb_t *b, uint64_t addr)
{
    buf_s(&b->batch, (int64_t)(addr - b->addr));
    b->addr = addr;
}

/* An ALLOC's, REALLOC's or ALLOC_LATE's address (version 2 on): against
 * the last address of its size class in the batch, or the running address
 * for class 0 and a class with none yet; both move to it. */
static void put_class_addr(sb_t *b, uint64_t size, uint64_t addr)
{
    unsigned cls = mlmem_addr_class(size);
    uint64_t base = cls && b->class_addr[cls] ? b->class_addr[cls] : b->addr;
    buf_s(&b->batch, (int64_t)(addr - base));
    b->addr = addr;
    b->class_addr[cls] = addr;
}

/* An allocation's fn byte, with MLMEM_FN_NOT_LATEST for 'not_latest'
 * (version 6). */
static void put_fn(sb_t *b, const prof_event_t *e)
{
    buf_byte(&b->batch, (uint8_t)(e->fn | (e->not_latest ? MLMEM_FN_NOT_LATEST : 0)));
}

void sb_event_t(sb_t *b, const prof_event_t *e, int64_t t)
{
    if (b->batch_open && (e->tid != b->tid || b->count == SB_BATCH_EVENTS))
        sb_batch_end(b);
    if (!b->batch_open) {
        b->batch_open = 1;
        b->tid = e->tid;
        b->count = 0;
        b->seq = b->addr = 0;
        b->time = 0;
        memset(b->class_addr, 0, sizeof b->class_addr);
        b->batch.len = 0;
    }
    sb_buf_t *p = &b->batch;
    buf_byte(p, e->type);
    buf_s(p, (int64_t)(e->seq - b->seq));
    b->seq = e->seq;
    buf_s(p, t - b->time);
    b->time = t;

    switch (e->type) {
    case MLMEM_EV_ALLOC:
    case MLMEM_EV_REALLOC:
        /* Version 2: size, then the address against its size class. */
        buf_u(p, e->size);
        put_class_addr(b, e->size, e->addr);
        buf_u(p, e->stack_id);
        if (e->type == MLMEM_EV_REALLOC)
            buf_s(p, (int64_t)(e->old_addr - e->addr));
        put_fn(b, e);
        break;
    case MLMEM_EV_ALLOC_LATE:
        /* Version 4: ALLOC's size and address (same class state), the
         * stack from version 5, fn, then how far back from its seq the
         * counter stood when the block was made. */
        buf_u(p, e->size);
        put_class_addr(b, e->size, e->addr);
        if (b->version >= 5)
            buf_u(p, e->stack_id);
        put_fn(b, e);
        buf_u(p, e->seq - e->arg);
        break;
    case MLMEM_EV_TEMPORARIES:
        /* Version 4: count, bytes, largest; version 5: their stack;
         * version 6: the most held at once (addr) less the largest
         * (wrapping: a test may ask for what cannot be), the nested ones
         * (old_addr). */
        buf_u(p, e->arg);
        buf_u(p, e->size);
        buf_u(p, e->old_size);
        if (b->version >= 5)
            buf_u(p, e->stack_id);
        if (b->version >= 6) {
            buf_u(p, e->addr - e->old_size);
            buf_u(p, e->old_addr);
        }
        break;
    case MLMEM_EV_MMAP:
    case MLMEM_EV_MMAP_FILE:
        put_addr(b, e->addr);
        buf_u(p, e->size);
        buf_u(p, e->stack_id);
        buf_u(p, e->arg);
        break;
    case MLMEM_EV_MREMAP:
        put_addr(b, e->addr);
        buf_u(p, e->size);
        buf_u(p, e->stack_id);
        buf_s(p, (int64_t)(e->old_addr - e->addr));
        buf_u(p, e->old_size); /* the shim carries it in its event's 'arg' */
        break;
    case MLMEM_EV_FREE:
        put_addr(b, e->addr);
        break;
    case MLMEM_EV_MUNMAP:
    case MLMEM_EV_FILE_READ:
        put_addr(b, e->addr);
        buf_u(p, e->size);
        if (e->type == MLMEM_EV_FILE_READ)
            buf_u(p, e->arg);
        break;
    case MLMEM_EV_TAG:
        put_addr(b, e->addr);
        buf_u(p, e->arg);
        break;
    case MLMEM_EV_RSS:
        buf_u(p, e->size);
        break;
    case MLMEM_EV_STEP:
    case MLMEM_EV_PHASE:
    case MLMEM_EV_REGION_BEGIN:
    case MLMEM_EV_FORK:
        buf_u(p, e->arg);
        break;
    default: /* REGION_END, NOP (and unknown types): nothing more */
        break;
    }
    b->count++;
}

void sb_event(sb_t *b, const prof_event_t *e)
{
    sb_event_t(b, e, (int64_t)e->time_ns);
}

void sb_stack(sb_t *b, uint32_t id, uint64_t seq, const uint64_t *frames, uint32_t depth)
{
    uint32_t shared = 0;
    while (shared < depth && shared < b->last_depth &&
           frames[depth - 1 - shared] == b->last_stack[b->last_depth - 1 - shared])
        shared++;
    sb_buf_t p = {0};
    buf_u(&p, id);
    buf_u(&p, seq);
    buf_u(&p, depth);
    if (b->version >= 3)
        buf_u(&p, shared);
    else
        shared = 0;
    uint64_t prev = 0;
    for (uint32_t i = 0; i < depth - shared; i++) {
        buf_s(&p, (int64_t)(frames[i] - prev));
        prev = frames[i];
    }
    put_payload(b, MLMEM_REC_STACK, &p);
    /* deeper than the shim sends: kept out of the next one's sharing */
    b->last_depth = depth <= MLMEM_STACK_MAX_DEPTH ? depth : 0;
    memcpy(b->last_stack, frames, b->last_depth * sizeof *frames);
}

void sb_module(sb_t *b, uint32_t id, uint64_t bias, uint64_t start, uint64_t end,
               uint64_t load_seq, const char *path)
{
    sb_buf_t p = {0};
    buf_u(&p, id);
    buf_u(&p, bias);
    buf_u(&p, start);
    buf_u(&p, end);
    buf_u(&p, load_seq);
    buf_bytes(&p, path, strlen(path));
    put_payload(b, MLMEM_REC_MODULE, &p);
}

void sb_unload(sb_t *b, uint32_t id, uint64_t seq)
{
    sb_buf_t p = {0};
    buf_u(&p, id);
    buf_u(&p, seq);
    put_payload(b, MLMEM_REC_UNLOAD, &p);
}

void sb_dropped(sb_t *b, uint64_t total)
{
    sb_buf_t p = {0};
    buf_u(&p, total);
    put_payload(b, MLMEM_REC_DROPPED, &p);
}

void sb_end(sb_t *b, uint32_t reason, uint32_t code_known, int32_t code, uint64_t last_seq,
            uint64_t dropped, uint64_t stacks_lost)
{
    sb_batch_end(b);
    sb_buf_t p = {0};
    buf_u(&p, reason);
    buf_u(&p, code_known);
    buf_s(&p, code);
    buf_u(&p, last_seq);
    buf_u(&p, dropped);
    if (stacks_lost != SB_ABSENT)
        buf_u(&p, stacks_lost);
    put_payload(b, MLMEM_REC_END, &p);
}

void sb_alloc(sb_t *b, uint32_t tid, uint64_t seq, uint64_t t, uint64_t addr, uint64_t size,
              uint32_t stack)
{
    prof_event_t e = {.type = MLMEM_EV_ALLOC, .tid = tid, .seq = seq, .time_ns = t,
                      .addr = addr, .size = size, .stack_id = stack, .fn = MLMEM_FN_MALLOC};
    sb_event(b, &e);
}

void sb_free_ev(sb_t *b, uint32_t tid, uint64_t seq, uint64_t t, uint64_t addr)
{
    prof_event_t e = {.type = MLMEM_EV_FREE, .tid = tid, .seq = seq, .time_ns = t, .addr = addr};
    sb_event(b, &e);
}

void sb_temporaries(sb_t *b, uint32_t tid, uint64_t seq, uint64_t t, uint64_t count,
                    uint64_t bytes, uint64_t largest)
{
    prof_event_t e = {.type = MLMEM_EV_TEMPORARIES, .tid = tid, .seq = seq, .time_ns = t,
                      .arg = count, .size = bytes, .old_size = largest};
    sb_event(b, &e);
}

void sb_alloc_late(sb_t *b, uint32_t tid, uint64_t seq, uint64_t t, uint64_t addr,
                   uint64_t size, uint64_t after)
{
    prof_event_t e = {.type = MLMEM_EV_ALLOC_LATE, .tid = tid, .seq = seq, .time_ns = t,
                      .addr = addr, .size = size, .fn = MLMEM_FN_MALLOC, .arg = after};
    sb_event(b, &e);
}

const uint8_t *sb_data(sb_t *b, size_t *len)
{
    sb_batch_end(b);
    *len = b->out.len;
    return b->out.data;
}
