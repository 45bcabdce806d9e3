/*
 * mlmem/annotate.h - tell the profiler what a training program is doing.
 *
 * A program may mark training steps, phases (data, forward, backward,
 * optimizer, eval), category regions (every allocation made by this thread
 * inside the region belongs to the category) and tag single pointers with a
 * category. The profiler uses these as its strongest evidence when it
 * attributes memory; without them it falls back to rules and behaviour.
 *
 * Cost and safety:
 * - Header only. The entry points are weak symbols defined by the shim
 *   (libmlmem_preload.so). A program that uses this header builds and runs
 *   unchanged without the shim: each call is then a test of a null pointer.
 *   Under the shim each call appends one event to a per-thread buffer.
 * - Thread-safe. Regions nest per thread (up to 16 deep); a region_end
 *   without a matching begin is ignored by the analyzer and counted.
 * - No allocation, no locks, callable from signal handlers.
 *
 * Python programs can call the same entry points through ctypes:
 *   lib = ctypes.CDLL(None); lib.mlmem_annotate_step(ctypes.c_uint64(n))
 */
#ifndef MLMEM_ANNOTATE_H
#define MLMEM_ANNOTATE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Phases of a training step. Values travel in the trace: never renumber. */
typedef enum {
    MLMEM_PHASE_NONE = 0,
    MLMEM_PHASE_DATA = 1,
    MLMEM_PHASE_FORWARD = 2,
    MLMEM_PHASE_BACKWARD = 3,
    MLMEM_PHASE_OPTIMIZER = 4,
    MLMEM_PHASE_EVAL = 5,
} mlmem_phase_t;

/* Memory categories, named after PyTorch's memory profiler.
 * Values travel in the trace: never renumber. */
typedef enum {
    MLMEM_CAT_OTHER = 0,
    MLMEM_CAT_WEIGHTS = 1,
    MLMEM_CAT_GRADIENTS = 2,
    MLMEM_CAT_OPTIMIZER_STATE = 3,
    MLMEM_CAT_ACTIVATIONS = 4,
    MLMEM_CAT_DATA = 5,
    MLMEM_CAT_TEMPORARIES = 6,
} mlmem_category_t;

#define MLMEM_CATEGORY_COUNT 7

/* Entry points defined by the shim. Call the inline wrappers below instead:
 * they check that the shim is present. */
void mlmem_annotate_step(uint64_t step) __attribute__((weak));
void mlmem_annotate_phase(int phase) __attribute__((weak));
void mlmem_annotate_region_begin(int category) __attribute__((weak));
void mlmem_annotate_region_end(void) __attribute__((weak));
void mlmem_annotate_tag(const void *ptr, int category) __attribute__((weak));

/* Marks the start of training step 'step' (steps need not start at 0 or be
 * contiguous, but should increase). */
static inline void mlmem_step(uint64_t step)
{
    if (mlmem_annotate_step)
        mlmem_annotate_step(step);
}

/* Marks the start of a phase of the current step; it lasts until the next
 * phase or step mark. */
static inline void mlmem_phase(mlmem_phase_t phase)
{
    if (mlmem_annotate_phase)
        mlmem_annotate_phase((int)phase);
}

/* Every allocation this thread makes until the matching mlmem_region_end()
 * belongs to 'category'. */
static inline void mlmem_region_begin(mlmem_category_t category)
{
    if (mlmem_annotate_region_begin)
        mlmem_annotate_region_begin((int)category);
}

static inline void mlmem_region_end(void)
{
    if (mlmem_annotate_region_end)
        mlmem_annotate_region_end();
}

/* The live allocation that starts at 'ptr' belongs to 'category' (overrides
 * any region). No operation if 'ptr' is NULL or not a live allocation. */
static inline void mlmem_tag(const void *ptr, mlmem_category_t category)
{
    if (mlmem_annotate_tag && ptr)
        mlmem_annotate_tag(ptr, (int)category);
}

/* Returns 1 when the program runs under the mlmem shim. */
static inline int mlmem_active(void)
{
    return mlmem_annotate_step != 0;
}

#ifdef __cplusplus
}
#endif

#endif /* MLMEM_ANNOTATE_H */
