/*
 * prof_result.c - releasing a prof_result_t (prof_result.h).
 */
#include "prof_result.h"

#include <stdlib.h>
#include <string.h>

/* Frees the strings of 'n' frames and the array itself. */
static void result_free_frames(prof_frame_t *frames, uint32_t n)
{
    if (!frames)
        return;
    for (uint32_t i = 0; i < n; i++) {
        free(frames[i].function);
        free(frames[i].file);
        free(frames[i].module);
    }
    free(frames);
}

/* Every string and array is owned by 'r' except prof_site_t.category, which
 * points at a static name. Safe on a zeroed or partly filled result. */
void prof_result_free(prof_result_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->sites && i < r->site_count; i++) {
        result_free_frames(r->sites[i].frames, r->sites[i].frame_count);
        free(r->sites[i].category_evidence);
    }
    free(r->sites);
    free(r->threads);
    free(r->timeline);
    for (size_t i = 0; i < MLMEM_CATEGORY_COUNT; i++)
        free(r->categories[i].evidence);
    free(r->steps.peak_bytes);
    for (size_t i = 0; r->children && i < r->child_count; i++)
        free(r->children[i].command);
    free(r->children);
    for (size_t i = 0; r->recommendations && i < r->recommendation_count; i++) {
        prof_recommendation_t *a = &r->recommendations[i];
        free(a->title);
        free(a->cost);
        free(a->reasoning);
        free(a->apply);
        free(a->flags);
    }
    free(r->recommendations);
    free(r->process.exe);
    free(r->process.command);
    memset(r, 0, sizeof(*r));
}
