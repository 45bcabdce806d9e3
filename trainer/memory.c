/*
 * trainer/memory.c - accounting allocator (see memory.h).
 */
#include "memory.h"

#include <stdlib.h>
#include <string.h>

#include <mlmem/annotate.h>

static const char *cat_names[TRAIN_CAT_COUNT] = {
    "weights", "gradients", "optimizer_state", "activations", "data", "temporaries", "other",
};

static const mlmem_category_t cat_mlmem[TRAIN_CAT_COUNT] = {
    MLMEM_CAT_WEIGHTS, MLMEM_CAT_GRADIENTS, MLMEM_CAT_OPTIMIZER_STATE,
    MLMEM_CAT_ACTIVATIONS, MLMEM_CAT_DATA, MLMEM_CAT_TEMPORARIES, MLMEM_CAT_OTHER,
};

const char *train_cat_name(train_cat_t cat)
{
    return (cat >= 0 && cat < TRAIN_CAT_COUNT) ? cat_names[cat] : "other";
}

void train_mem_init(train_mem_t *mem, int annotate)
{
    memset(mem, 0, sizeof(*mem));
    mem->annotate = annotate;
    mem->peak_step = -1;
    mem->step = -1;
}

static size_t slot_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)(x & (TRAIN_MEM_SLOTS - 1));
}

void *train_mem_alloc(train_mem_t *mem, train_cat_t cat, size_t size)
{
    if (size == 0 || cat < 0 || cat >= TRAIN_CAT_COUNT)
        return NULL;
    /* Keep the table under 3/4 full so probes stay short. */
    if (mem->live_blocks >= TRAIN_MEM_SLOTS * 3 / 4) {
        mem->overflow = 1;
        return NULL;
    }
    if (mem->annotate)
        mlmem_region_begin(cat_mlmem[cat]);
    void *p = malloc(size);
    if (mem->annotate) {
        mlmem_region_end();
        mlmem_tag(p, cat_mlmem[cat]);
    }
    if (!p)
        return NULL;

    size_t i = slot_hash(p);
    while (mem->slots[i].ptr != NULL)
        i = (i + 1) & (TRAIN_MEM_SLOTS - 1);
    mem->slots[i].ptr = p;
    mem->slots[i].size = size;
    mem->slots[i].cat = cat;
    mem->live_blocks++;
    mem->n_allocs++;

    mem->cur[cat] += size;
    mem->cur_total += size;
    if (mem->cur[cat] > mem->max[cat])
        mem->max[cat] = mem->cur[cat];
    if (mem->cur_total > mem->peak_total) {
        mem->peak_total = mem->cur_total;
        memcpy(mem->peak, mem->cur, sizeof(mem->peak));
        mem->peak_step = mem->step;
        mem->peak_phase = mem->phase;
    }
    return p;
}

/* Linear probing with backward-shift deletion: no tombstones, so probes stay
 * short however many blocks come and go. */
void train_mem_free(train_mem_t *mem, void *ptr)
{
    if (!ptr)
        return;
    const size_t mask = TRAIN_MEM_SLOTS - 1;
    size_t i = slot_hash(ptr);
    while (mem->slots[i].ptr != NULL && mem->slots[i].ptr != ptr)
        i = (i + 1) & mask;
    if (mem->slots[i].ptr == NULL) {
        mem->overflow = 1;
        free(ptr);
        return;
    }
    int cat = mem->slots[i].cat;
    mem->cur[cat] -= mem->slots[i].size;
    mem->cur_total -= mem->slots[i].size;
    mem->live_blocks--;
    mem->n_frees++;
    free(ptr);

    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (mem->slots[j].ptr == NULL)
            break;
        size_t k = slot_hash(mem->slots[j].ptr);
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        mem->slots[i] = mem->slots[j];
        i = j;
    }
    mem->slots[i].ptr = NULL;
}

void train_mem_set_step(train_mem_t *mem, long step)
{
    mem->step = step;
}

void train_mem_set_phase(train_mem_t *mem, int phase)
{
    mem->phase = phase;
}
