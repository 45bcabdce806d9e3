/*
 * trainer/memory.h - the trainer's ground-truth memory accounting.
 *
 * Every allocation the trainer makes goes through train_mem_alloc() with a
 * category; the accountant forwards to malloc() with exactly the requested
 * size, so a heap profiler that intercepts malloc sees the same bytes that
 * the trainer reports. It keeps the live bytes per category, the overall
 * peak (with the category split, step and phase at that instant) and the
 * per-category high-water marks.
 *
 * The table of live blocks is a fixed array inside train_mem_t: the
 * accountant itself never allocates. Not thread-safe: one accountant per
 * thread (the trainer is single-threaded; OpenBLAS threads do not allocate
 * through it).
 *
 * With annotate set, each allocation is wrapped in an mlmem category region
 * and tagged (include/mlmem/annotate.h); without it, no annotation call is
 * made.
 */
#ifndef TRAIN_MEMORY_H
#define TRAIN_MEMORY_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TRAIN_CAT_WEIGHTS = 0,
    TRAIN_CAT_GRADIENTS,
    TRAIN_CAT_OPTIMIZER_STATE,
    TRAIN_CAT_ACTIVATIONS,
    TRAIN_CAT_DATA,
    TRAIN_CAT_TEMPORARIES,
    TRAIN_CAT_OTHER,              /* the trainer's own logs (step times, losses) */
    TRAIN_CAT_COUNT
} train_cat_t;

/* Capacity of the live-block table; the trainer holds a few hundred. */
#define TRAIN_MEM_SLOTS 16384

typedef struct {
    void *ptr;      /* NULL: empty slot */
    size_t size;
    int cat;
} train_mem_slot_t;

typedef struct {
    size_t cur[TRAIN_CAT_COUNT];          /* live bytes now */
    size_t cur_total;
    size_t max[TRAIN_CAT_COUNT];          /* each category's own high-water */
    size_t peak_total;                    /* overall peak of cur_total */
    size_t peak[TRAIN_CAT_COUNT];         /* split of the overall peak */
    long peak_step;                       /* step and phase at the peak */
    int peak_phase;
    long step;                            /* set by the trainer */
    int phase;                            /* mlmem_phase_t value */
    uint64_t n_allocs, n_frees;
    size_t live_blocks;
    int annotate;
    int overflow;                         /* table full: accounting broken */
    train_mem_slot_t slots[TRAIN_MEM_SLOTS];
} train_mem_t;

/* Initializes 'mem' (zeroed counters). 'annotate' enables mlmem calls. */
void train_mem_init(train_mem_t *mem, int annotate);

/* malloc(size) accounted under 'cat'. Returns NULL when malloc fails, when
 * size is 0 or when the table is full (mem->overflow is then set). */
void *train_mem_alloc(train_mem_t *mem, train_cat_t cat, size_t size);

/* free() of a block from train_mem_alloc. NULL is ignored; a pointer the
 * accountant does not know is freed but counted nowhere (a bug: it sets
 * mem->overflow so tests notice). */
void train_mem_free(train_mem_t *mem, void *ptr);

/* Records the current step/phase so the peak can say where it happened. */
void train_mem_set_step(train_mem_t *mem, long step);
void train_mem_set_phase(train_mem_t *mem, int phase);

/* Name of a category as used in the JSON report ("weights", ...). */
const char *train_cat_name(train_cat_t cat);

#endif /* TRAIN_MEMORY_H */
