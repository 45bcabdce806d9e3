/*
 * prof_event.h - one decoded event of a profiled process, as the analyzer's
 * stages pass it along: decoder -> reorder -> accounting (and later
 * attribution). Events reach the accounting stage in 'seq' order, which is
 * the order they happened in the process (a global counter in the shim, taken
 * after an allocation succeeded and before a free).
 *
 * Field use by type (MLMEM_EV_* from mlmem/trace_format.h):
 *   ALLOC       addr, size, stack_id, fn
 *   FREE        addr
 *   REALLOC     addr (new block), size, stack_id, old_addr (0: was malloc), fn
 *   MMAP        addr, size, stack_id, arg (prot | flags << 32)
 *   MMAP_FILE   addr, size, stack_id, arg (fd)
 *   MUNMAP      addr, size
 *   MREMAP      addr (new), size (new), stack_id, old_addr, old_size
 *   RSS         size (resident set size in bytes)
 *   STEP        arg (step number)
 *   PHASE       arg (mlmem_phase_t)
 *   REGION_BEGIN arg (mlmem_category_t); REGION_END -
 *   TAG         addr, arg (mlmem_category_t)
 *   FORK        arg (child pid)
 *   FILE_READ   addr (buffer), size (bytes read), arg (fd)
 *   TEMPORARIES arg (count), size (their bytes), old_size (the largest),
 *               addr (the most bytes the thread held at once meanwhile,
 *               these and blocks it still held, sent next: at least
 *               old_size), old_addr (how many were nested: freed after the
 *               thread made or freed another block): blocks each freed by
 *               the thread before its next event, folded by the shim;
 *               stands for 2 * count events
 *   ALLOC_LATE  addr, size, fn, arg (the seq counter when it was made):
 *               an ALLOC sent after other threads' events
 */
#ifndef PROF_EVENT_H
#define PROF_EVENT_H

#include <stdint.h>

#include <mlmem/trace_format.h>

typedef struct {
    uint64_t seq;      /* dense per process: 1, 2, 3, ...                 */
    uint64_t time_ns;  /* nanoseconds since the process's stream started  */
    uint64_t addr;
    uint64_t size;
    uint64_t old_addr;
    uint64_t old_size;
    uint64_t arg;
    uint32_t tid;      /* kernel thread id                                */
    uint32_t stack_id; /* MLMEM_STACK_NONE or an id defined by a STACK rec */
    uint8_t type;      /* MLMEM_EV_*                                      */
    uint8_t fn;        /* MLMEM_FN_* for ALLOC and REALLOC                */
    uint8_t freed_next; /* ALLOC only: also stands for the FREE of this
                         * block by the same thread at seq + 1, same time
                         * (the writer folds such pairs; every stage
                         * treats it as both events)                     */
    uint8_t not_latest; /* ALLOC, ALLOC_LATE: the thread freed a block
                         * since it made this one (MLMEM_FN_NOT_LATEST)  */
} prof_event_t;

#endif /* PROF_EVENT_H */
