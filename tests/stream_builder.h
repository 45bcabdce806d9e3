/*
 * stream_builder.h - builds the bytes of one process's event stream the way
 * the shim's writer (preload/writer.c) encodes them, so tests can make
 * streams without running the shim. Format: docs/trace-format.md.
 *
 * The bytes accumulate in a growable buffer. Events go into an open EVENTS
 * batch, delta-encoded from zero exactly like batch_add(): the batch is
 * written out by sb_batch_end(), or when an event of another thread arrives,
 * or when it reaches 2048 events (SHIM_BATCH_EVENTS). Other records are
 * appended at once, so, as in the writer, a STACK written while a batch is
 * open lands before that batch's EVENTS record.
 *
 * Out of memory aborts the test program (these are test helpers).
 */
#ifndef MLMEM_TESTS_STREAM_BUILDER_H
#define MLMEM_TESTS_STREAM_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#include "profiler/prof_event.h"

#define SB_BATCH_EVENTS 2048u

typedef struct {
    uint8_t *data;
    size_t len, cap;
} sb_buf_t;

typedef struct {
    sb_buf_t out;      /* the stream so far (without the open batch)        */
    sb_buf_t batch;    /* encoded events of the open batch                  */
    int batch_open;
    uint32_t tid;
    uint32_t count;
    uint64_t seq, addr;
    uint64_t class_addr[MLMEM_ADDR_CLASSES]; /* as the writer: per batch */
    int64_t time;
    unsigned version;  /* of the header written; STACK shares from 3 on     */
    uint64_t last_stack[MLMEM_STACK_MAX_DEPTH]; /* as the writer: the last */
    uint32_t last_depth;                         /* STACK's frames          */
} sb_t;

/* Fields of a HELLO record; 'cmdline' holds 'cmdline_len' bytes (argv,
 * each NUL-terminated, as /proc/self/cmdline gives it). */
typedef struct {
    uint32_t pid, ppid;
    uint64_t start_realtime_ns;
    uint32_t stack_mode;
    uint64_t stack_threshold;
    uint64_t sample_rate;
    uint64_t page_size;
    const char *exe;
    const char *cmdline;
    size_t cmdline_len;
} sb_hello_t;

void sb_init(sb_t *b);
void sb_free(sb_t *b);

/* Appends raw bytes (for corrupt streams). */
void sb_raw(sb_t *b, const void *data, size_t len);
/* Appends the 10-byte stream header with the given version. */
void sb_header_version(sb_t *b, unsigned version);
/* Appends the header with MLMEM_STREAM_VERSION. */
void sb_header(sb_t *b);
/* Appends a record: u8 tag, varint length, payload. */
void sb_record(sb_t *b, uint8_t tag, const uint8_t *payload, size_t len);

void sb_hello(sb_t *b, const sb_hello_t *h);
/* HELLO with defaults: exe "/bin/<name>", cmdline "<name>\0arg\0". */
void sb_hello_simple(sb_t *b, uint32_t pid, uint32_t ppid, const char *name);

/* Adds event 'e' (its tid, seq, time_ns and the fields its type uses) to the
 * open batch, starting one if needed. MREMAP's old_size goes where the
 * writer puts the shim event's 'arg'. time_ns is taken as signed (the
 * writer's times are int64 nanoseconds since the stream started).
 * Version 4 events are written as prof_event.h describes them decoded:
 * TEMPORARIES from arg (count), size (bytes), old_size (largest);
 * ALLOC_LATE from addr, size, fn and arg (the seq counter when the block
 * was made: 'seq - arg' is written, wrapping, so any value can be sent).
 * Nothing checks the header's version: they can go into an older stream. */
void sb_event(sb_t *b, const prof_event_t *e);
/* Same, with the time given as a signed value (may be negative). */
void sb_event_t(sb_t *b, const prof_event_t *e, int64_t time_ns);
/* Writes the open batch as an EVENTS record; no operation if empty. */
void sb_batch_end(sb_t *b);

/* STACK: frames are delta-encoded (zigzag) from 0. From version 3 on, as
 * the writer does, the outer frames in common with the previous STACK are
 * sent as a count. */
void sb_stack(sb_t *b, uint32_t id, uint64_t seq, const uint64_t *frames, uint32_t depth);
void sb_module(sb_t *b, uint32_t id, uint64_t bias, uint64_t start, uint64_t end,
               uint64_t load_seq, const char *path);
void sb_unload(sb_t *b, uint32_t id, uint64_t seq);
void sb_dropped(sb_t *b, uint64_t total);
/* END; closes the open batch first, as send_end() follows the last drain.
 * 'stacks_lost' SB_ABSENT leaves that field out, as shims before it did. */
#define SB_ABSENT UINT64_MAX
void sb_end(sb_t *b, uint32_t reason, uint32_t code_known, int32_t code, uint64_t last_seq,
            uint64_t dropped, uint64_t stacks_lost);

/* Convenience events (one per line in a test). */
void sb_alloc(sb_t *b, uint32_t tid, uint64_t seq, uint64_t t, uint64_t addr, uint64_t size,
              uint32_t stack);
void sb_free_ev(sb_t *b, uint32_t tid, uint64_t seq, uint64_t t, uint64_t addr);
/* Version 4 (sb_header() writes it): 'count' blocks of 'bytes' in all, the
 * largest 'largest'; and an ALLOC_LATE (malloc) made when the seq counter
 * stood at 'after' (sent as the distance 'seq - after'). */
void sb_temporaries(sb_t *b, uint32_t tid, uint64_t seq, uint64_t t, uint64_t count,
                    uint64_t bytes, uint64_t largest);
void sb_alloc_late(sb_t *b, uint32_t tid, uint64_t seq, uint64_t t, uint64_t addr,
                   uint64_t size, uint64_t after);

/* The bytes so far; the open batch is written out first. */
const uint8_t *sb_data(sb_t *b, size_t *len);

#endif /* MLMEM_TESTS_STREAM_BUILDER_H */
