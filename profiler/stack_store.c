/*
 * stack_store.c - stacks stored as their innermost frames plus the outer
 * frames of the stack defined before them (stack_store.h).
 */
#include "stack_store.h"

#include <stdlib.h>
#include <string.h>

void prof_stack_store_init(prof_stack_store_t *s)
{
    memset(s, 0, sizeof *s);
}

void prof_stack_store_destroy(prof_stack_store_t *s)
{
    free(s->refs);
    free(s->arena);
    free(s->last_frames);
    memset(s, 0, sizeof *s);
}

static int grow_refs(prof_stack_store_t *s, uint32_t id)
{
    if (id < s->ref_cap)
        return 0;
    size_t cap = s->ref_cap ? s->ref_cap : 1024;
    while (cap <= id)
        cap *= 2;
    prof_stack_ref_t *n = realloc(s->refs, cap * sizeof *n);
    if (!n)
        return -1;
    memset(n + s->ref_cap, 0, (cap - s->ref_cap) * sizeof *n); /* depth 0: undefined */
    s->refs = n;
    s->ref_cap = cap;
    return 0;
}

static int grow_arena(prof_stack_store_t *s, size_t more)
{
    if (s->arena_len + more <= s->arena_cap)
        return 0;
    size_t cap = s->arena_cap ? s->arena_cap : 65536;
    while (cap < s->arena_len + more)
        cap *= 2;
    uint64_t *n = realloc(s->arena, cap * sizeof *n);
    if (!n)
        return -1;
    s->arena = n;
    s->arena_cap = cap;
    return 0;
}

int prof_stack_store_put(prof_stack_store_t *s, uint32_t id, uint64_t seq,
                         const uint64_t *frames, uint32_t depth)
{
    if (depth == 0 || depth > STACK_STORE_MAX_DEPTH)
        return 0;
    if (grow_refs(s, id) < 0)
        return -1;
    if (s->refs[id].depth)
        return 0; /* defined before: the first definition stays */
    if (!s->last_frames && !(s->last_frames = malloc(STACK_STORE_MAX_DEPTH * sizeof(uint64_t))))
        return -1;

    /* Outer frames in common with the stack defined last, which becomes
     * the base unless its chain is already as long as allowed. */
    uint32_t shared = 0;
    const prof_stack_ref_t *last = s->last_depth ? &s->refs[s->last] : NULL;
    if (last && last->hops < STACK_STORE_MAX_HOPS)
        while (shared < depth && shared < s->last_depth &&
               frames[depth - 1 - shared] == s->last_frames[s->last_depth - 1 - shared])
            shared++;
    uint32_t own = depth - shared;
    if (grow_arena(s, own) < 0)
        return -1;
    memcpy(s->arena + s->arena_len, frames, own * sizeof *frames);
    s->refs[id] = (prof_stack_ref_t){.offset = s->arena_len,
                                     .seq = seq,
                                     .depth = depth,
                                     .own = own,
                                     .base = shared ? s->last : 0,
                                     .hops = shared ? last->hops + 1 : 0};
    s->arena_len += own;
    s->frames_defined += depth;
    s->frames_kept += own;

    memcpy(s->last_frames, frames, depth * sizeof *frames);
    s->last_depth = depth;
    s->last = id;
    return 0;
}

uint32_t prof_stack_store_get(const prof_stack_store_t *s, uint32_t id, uint64_t *out,
                              uint32_t cap, uint64_t *seq)
{
    if (id >= s->ref_cap || !s->refs[id].depth)
        return 0;
    const prof_stack_ref_t *x = &s->refs[id];
    uint32_t depth = x->depth, want = depth < cap ? depth : cap, n = 0, pos = 0;
    if (seq)
        *seq = x->seq;
    /* put() makes every walk end within 'hops' bases; the bound and the
     * checks only keep a broken store from looping or reading astray. */
    for (uint32_t hop = 0; hop <= s->refs[id].hops; hop++) {
        while (pos < x->own && n < want)
            out[n++] = s->arena[x->offset + pos++];
        if (n == want)
            return depth;
        /* Position 'pos' of x is among its last depth - own frames, which
         * are the last ones of its base: the same distance from the end. */
        const prof_stack_ref_t *b = &s->refs[x->base];
        if (x->depth - pos > b->depth)
            break;
        pos = b->depth - (x->depth - pos);
        x = b;
    }
    return 0;
}
