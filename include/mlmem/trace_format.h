/*
 * mlmem/trace_format.h - the versioned binary formats the shim and the
 * analyzer meet through. docs/trace-format.md is the prose version; keep both
 * in step, and bump the version on any incompatible change.
 *
 * Two layers:
 *
 * 1. The *stream*: what one profiled process (one exec image) sends over its
 *    socket. It opens with an 8-byte magic and a 2-byte little-endian
 *    version, then a sequence of records. Each record is
 *        u8 tag, varint payload_length, payload[payload_length]
 *    so a reader can skip tags it does not know. Integers inside payloads are
 *    LEB128 varints; signed deltas are zigzag-encoded first.
 *
 * 2. The *trace file*: what the analyzer writes (zstd-compressed as a whole):
 *    an 8-byte magic, a 2-byte version, then records of the same
 *    tag/length/payload shape that wrap the raw bytes of every stream
 *    (STREAM_DATA), so replaying a trace feeds the analyzer exactly what it
 *    saw live. A TRAILER record marks a complete trace.
 *
 * All of this header is static inline or constants: both the shim (which
 * must not call into other libraries on its hot path) and the analyzer use it.
 */
#ifndef MLMEM_TRACE_FORMAT_H
#define MLMEM_TRACE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* ---- stream (shim -> analyzer) ---------------------------------------- */

#define MLMEM_STREAM_MAGIC "MLMEMSTR"
#define MLMEM_STREAM_MAGIC_LEN 8
/* 4: TEMPORARIES and ALLOC_LATE events; 5: with stacks; 6: nested temporaries */
#define MLMEM_STREAM_VERSION 6
#define MLMEM_STREAM_VERSION_MIN 1 /* the oldest a reader still reads */
#define MLMEM_STREAM_HEADER_LEN 10 /* magic + u16 version */

/* Record tags of the stream. Payload layouts are in docs/trace-format.md. */
enum {
    MLMEM_REC_HELLO = 1,    /* process identity and shim options          */
    MLMEM_REC_EVENTS = 2,   /* a batch of events of one thread            */
    MLMEM_REC_STACK = 3,    /* a stack id and its raw return addresses    */
    MLMEM_REC_MODULE = 4,   /* a loaded module: id, base, size, path      */
    MLMEM_REC_UNLOAD = 5,   /* a module went away (dlclose)               */
    MLMEM_REC_THREAD = 6,   /* a thread's name                            */
    MLMEM_REC_DROPPED = 7,  /* cumulative count of events the shim dropped */
    MLMEM_REC_END = 8,      /* clean end of the stream: how it ended      */
};

/* Event types inside an EVENTS record. Values travel: never renumber. */
enum {
    MLMEM_EV_ALLOC = 1,      /* addr, size, stack, fn                       */
    MLMEM_EV_FREE = 2,       /* addr                                        */
    MLMEM_EV_REALLOC = 3,    /* addr (new), size, stack, old_addr           */
    MLMEM_EV_MMAP = 4,       /* anonymous mapping: addr, size, stack, prot  */
    MLMEM_EV_MMAP_FILE = 5,  /* file-backed mapping: addr, size, stack, fd  */
    MLMEM_EV_MUNMAP = 6,     /* addr, size                                  */
    MLMEM_EV_MREMAP = 7,     /* addr (new), size (new), stack, old_addr, old_size */
    MLMEM_EV_RSS = 8,        /* size = resident set size in bytes           */
    MLMEM_EV_STEP = 9,       /* arg = step number (annotation)              */
    MLMEM_EV_PHASE = 10,     /* arg = mlmem_phase_t                         */
    MLMEM_EV_REGION_BEGIN = 11, /* arg = mlmem_category_t                   */
    MLMEM_EV_REGION_END = 12,
    MLMEM_EV_TAG = 13,       /* addr, arg = mlmem_category_t                */
    MLMEM_EV_FORK = 14,      /* arg = child pid                             */
    MLMEM_EV_FILE_READ = 15, /* addr = buffer, size = bytes read, arg = fd  */
    MLMEM_EV_NOP = 16,       /* a seq was taken for an operation that failed */
    MLMEM_EV_TEMPORARIES = 17, /* count blocks, each freed by its thread
                                * before its next event: count, bytes,
                                * largest, (version 5) their stack, and
                                * (version 6) the most held at once and how
                                * many were nested                          */
    MLMEM_EV_ALLOC_LATE = 18,  /* an ALLOC sent after other threads' events:
                                * ALLOC's fields, and the seq counter when the
                                * block was made (docs/trace-format.md)      */
    MLMEM_EV_TYPE_MAX = 18,
};

/* Flags in the high bits of an event's type byte. They only make the
 * common events shorter to write and read; see docs/trace-format.md. */
enum {
    MLMEM_EVF_TYPE_MASK = 0x1f,
    MLMEM_EVF_FREED_NEXT = 0x20, /* ALLOC only: the next number frees it   */
    MLMEM_EVF_SAME_TIME = 0x40,  /* no time delta: same time as before     */
    MLMEM_EVF_SEQ_NEXT = 0x80,   /* no seq delta: the previous seq + 1     */
};

/* Which allocation function made an ALLOC / REALLOC (the event's fn byte). */
enum {
    MLMEM_FN_MALLOC = 0,
    MLMEM_FN_CALLOC = 1,
    MLMEM_FN_REALLOC = 2,
    MLMEM_FN_REALLOCARRAY = 3,
    MLMEM_FN_POSIX_MEMALIGN = 4,
    MLMEM_FN_ALIGNED_ALLOC = 5,
    MLMEM_FN_MEMALIGN = 6,
    MLMEM_FN_VALLOC = 7,
    MLMEM_FN_PVALLOC = 8,
    MLMEM_FN_COUNT = 9,
};

/* A flag in the fn byte of ALLOC and ALLOC_LATE (version 6): the thread
 * freed a block after it made this one (folded temporaries nested inside
 * it), so this is not the thread's latest allocation: a free of it next is
 * not a temporary's (docs/trace-format.md). */
#define MLMEM_FN_NOT_LATEST 0x40

/* Stack ids. Id 0 means "no stack was captured" (a small allocation that was
 * not sampled); ids from 1 are defined by STACK records before first use. */
#define MLMEM_STACK_NONE 0u
#define MLMEM_STACK_MAX_DEPTH 64

/* Stack capture modes announced in HELLO. */
enum {
    MLMEM_STACKS_SAMPLED = 0, /* >= threshold always, smaller ones sampled */
    MLMEM_STACKS_ALL = 1,     /* every allocation                          */
};

/* How a stream ended (END record). A stream without END was cut off. */
enum {
    MLMEM_END_EXIT = 1,      /* exit() or return from main; code known if via exit() */
    MLMEM_END_UNDERSCORE_EXIT = 2, /* _exit / _Exit                          */
    MLMEM_END_EXEC = 3,      /* the image was replaced by execve            */
    MLMEM_END_DETACHED = 4,  /* the shim stopped sending (e.g. follow off)  */
    MLMEM_END_ABORT = 5,     /* abort() was called                          */
};

/* Size classes of ALLOC and REALLOC addresses (stream version 2): a block
 * of 1..1024 bytes is in class (size + 15) / 16, anything else in class 0.
 * Its address is written as a delta from the last address of its class in
 * the same EVENTS record (from the running address when class 0 or none
 * yet): an allocator hands back the block of that size just freed, so
 * the delta is mostly 0. */
#define MLMEM_ADDR_CLASSES 65
#define MLMEM_ADDR_CLASS_MAX_SIZE 1024

static inline unsigned mlmem_addr_class(uint64_t size)
{
    return size - 1 < MLMEM_ADDR_CLASS_MAX_SIZE ? (unsigned)((size + 15) >> 4) : 0;
}

/* ---- trace file (analyzer -> disk) ------------------------------------ */

#define MLMEM_TRACE_MAGIC "MLMEMTRC"
#define MLMEM_TRACE_MAGIC_LEN 8
#define MLMEM_TRACE_VERSION 1
#define MLMEM_TRACE_HEADER_LEN 10

enum {
    MLMEM_TREC_STREAM_OPEN = 1,  /* varint stream id                     */
    MLMEM_TREC_STREAM_DATA = 2,  /* varint stream id, raw stream bytes    */
    MLMEM_TREC_STREAM_CLOSE = 3, /* varint stream id                      */
    MLMEM_TREC_RUN_INFO = 4,     /* how the root process ended, argv      */
    MLMEM_TREC_TRAILER = 5,      /* varint record count, varint data bytes */
};

/* ---- varints ----------------------------------------------------------- */

#define MLMEM_VARINT_MAX 10

/* Writes 'v' as LEB128 at 'p' (at most 10 bytes); returns the bytes written. */
static inline size_t mlmem_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Reads a LEB128 varint from [*p, end). Returns 0 and advances *p on success;
 * -1 if the input ends inside the varint or it is longer than 10 bytes. */
static inline int mlmem_varint_get(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    const uint8_t *q = *p;
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (q >= end)
            return -1;
        uint8_t b = *q++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *p = q;
            *out = v;
            return 0;
        }
    }
    return -1;
}

static inline uint64_t mlmem_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t mlmem_unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

#endif /* MLMEM_TRACE_FORMAT_H */
