/*
 * decode.h - incremental decoder of one process's event stream (the bytes a
 * shim sends; format in docs/trace-format.md). Feed it bytes in chunks of
 * any size: records split across chunks are buffered, so decoding never
 * depends on where the chunks were cut (a live run and the replay of its
 * trace see the same records).
 *
 * The decoder validates everything it reads (the stream may come from a
 * corrupted or hostile trace file): on the first error it stops, and
 * prof_decoder_error() names the byte offset within the stream and what is
 * wrong. Records with unknown tags are skipped (forward compatibility);
 * unknown event types are errors (they cannot be skipped: no length).
 *
 * Decoded items go to the sink's callbacks, in stream order. Events come out
 * in the order they were sent, which is not yet seq order (see reorder.h).
 */
#ifndef PROF_DECODE_H
#define PROF_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "prof_event.h"

typedef struct {
    uint32_t pid, ppid;
    uint64_t start_realtime_ns;
    uint32_t stack_mode;
    uint64_t stack_threshold;
    uint64_t sample_rate;
    uint64_t page_size;
    const char *exe;          /* NUL-terminated, valid during the callback */
    const char *cmdline;      /* argv, each NUL-terminated, back to back   */
    size_t cmdline_len;
} prof_hello_t;

typedef struct {
    uint32_t id;
    uint64_t bias, start, end, load_seq;
    const char *path;         /* valid during the callback                 */
} prof_module_t;

typedef struct {
    uint32_t reason;          /* MLMEM_END_*                               */
    uint32_t code_known;
    int32_t code;
    uint64_t last_seq;
    uint64_t dropped;
    uint64_t stacks_lost;     /* allocations that got no stack; 0 from
                                 shims that did not send it               */
} prof_end_info_t;

typedef struct {
    void (*hello)(void *ctx, const prof_hello_t *h);
    void (*event)(void *ctx, const prof_event_t *e);
    void (*stack)(void *ctx, uint32_t id, uint64_t seq, const uint64_t *frames, uint32_t depth);
    void (*module)(void *ctx, const prof_module_t *m);
    void (*unload)(void *ctx, uint32_t id, uint64_t seq);
    void (*dropped)(void *ctx, uint64_t total);
    void (*thread)(void *ctx, uint32_t tid, const char *name); /* name valid during the call */
    void (*end)(void *ctx, const prof_end_info_t *e);
    void *ctx;
} prof_decoder_sink_t;

typedef struct prof_decoder prof_decoder_t;

/* Returns a decoder sending to 'sink' (copied), or NULL if out of memory. */
prof_decoder_t *prof_decoder_new(const prof_decoder_sink_t *sink);

/* Releases 'd'. No operation if NULL. */
void prof_decoder_free(prof_decoder_t *d);

/* Decodes what 'data' completes. Returns 0, or -1 on a malformed stream or
 * out of memory (then every later call returns -1 too). */
int prof_decoder_feed(prof_decoder_t *d, const uint8_t *data, size_t len);

/* Says whether the stream ended cleanly: returns 0 if no bytes are left
 * over (an empty stream is clean), -1 (with an error) if it stopped inside
 * a record or header. */
int prof_decoder_finish(prof_decoder_t *d);

/* The first error, e.g. "offset 1234: event type 99 is unknown", or NULL. */
const char *prof_decoder_error(const prof_decoder_t *d);

/* Bytes consumed so far; events decoded so far. */
uint64_t prof_decoder_offset(const prof_decoder_t *d);
uint64_t prof_decoder_events(const prof_decoder_t *d);

#endif /* PROF_DECODE_H */
