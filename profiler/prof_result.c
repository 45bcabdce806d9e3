/*
 * prof_result.c - releasing a prof_result_t (prof_result.h).
 */
#include "prof_result.h"

#include <stdlib.h>
#include <string.h>

/* Frees a frame's own strings (not those of a site with frame_strings). */
static void frame_release(prof_frame_t *f)
{
    free(f->function);
    free(f->file);
    free(f->module);
    f->function = f->file = f->module = NULL;
}

void prof_site_drop_frames(prof_site_t *s)
{
    for (uint32_t i = 0; s->frames && !s->frame_strings && i < s->frame_count; i++)
        frame_release(&s->frames[i]);
    free(s->frame_strings);
    s->frame_strings = NULL;
    free(s->frames);
    s->frames = NULL;
    s->frame_count = 0;
}

void prof_site_release(prof_site_t *s)
{
    prof_site_drop_frames(s);
    free(s->category_evidence);
    s->category_evidence = NULL;
}

/* Every string and array is owned by 'r' except prof_site_t.category, which
 * points at a static name. Safe on a zeroed or partly filled result. */
void prof_result_free(prof_result_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->sites && i < r->site_count; i++)
        prof_site_release(&r->sites[i]);
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
