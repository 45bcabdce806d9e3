/*
 * stack_store.h - the analyzer's copy of a process's stacks, by id.
 *
 * A run with --stacks=all defines hundreds of thousands of stacks ('import
 * torch': 600,000 of about 50 frames), and consecutive definitions share
 * most of their outer frames: of 29 M frames there, 2.2 M differed from
 * the stack defined just before. So a stack keeps only its innermost frames
 * and names the stack defined before it for the rest ("base"); a stack is
 * stored whole when its chain of bases would grow past STACK_STORE_MAX_HOPS,
 * which bounds the walk that rebuilds it. Only the reports' top sites are
 * ever rebuilt (analysis.c), so the store trades a little work there for
 * 7x less memory to write while the run goes on.
 */
#ifndef PROF_STACK_STORE_H
#define PROF_STACK_STORE_H

#include <stddef.h>
#include <stdint.h>

/* The deepest stack the store keeps (the decoder's limit). */
#define STACK_STORE_MAX_DEPTH 1024u
/* Bases walked at most to rebuild a stack. */
#define STACK_STORE_MAX_HOPS 16u

typedef struct {
    uint64_t offset; /* of its own (innermost) frames in the arena        */
    uint64_t seq;    /* first event that used the stack                   */
    uint32_t depth;  /* 0: not defined                                    */
    uint32_t own;    /* frames stored at 'offset'; the rest are the base's */
    uint32_t base;   /* its outer depth - own frames end that stack       */
    uint32_t hops;   /* bases to walk to rebuild it                        */
} prof_stack_ref_t;

typedef struct {
    prof_stack_ref_t *refs; /* indexed by id                              */
    size_t ref_cap;
    uint64_t *arena;
    size_t arena_len, arena_cap;
    uint32_t last;          /* the stack defined last: the next one's base */
    uint32_t last_depth;
    uint64_t *last_frames;  /* its frames, STACK_STORE_MAX_DEPTH of room   */
    uint64_t frames_defined, frames_kept; /* for the curious: the saving   */
} prof_stack_store_t;

void prof_stack_store_init(prof_stack_store_t *s);
void prof_stack_store_destroy(prof_stack_store_t *s);

/* Defines stack 'id' (ids below 'max_id' only; the caller bounds them).
 * An id already defined keeps its first definition: a shim defines each id
 * once per stream, and a base must never change under the stacks that
 * name it. Depth 0 or above STACK_STORE_MAX_DEPTH is ignored. Returns 0, or
 * -1 if out of memory (the stack is then not defined). */
int prof_stack_store_put(prof_stack_store_t *s, uint32_t id, uint64_t seq,
                         const uint64_t *frames, uint32_t depth);

/* Writes the innermost min(depth, cap) frames of stack 'id' to 'out' and
 * returns its depth, or 0 if it is not defined ('*seq' gets its seq when
 * 'seq' is not NULL). */
uint32_t prof_stack_store_get(const prof_stack_store_t *s, uint32_t id, uint64_t *out,
                              uint32_t cap, uint64_t *seq);

#endif /* PROF_STACK_STORE_H */
