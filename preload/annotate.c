/*
 * annotate.c - the entry points behind include/mlmem/annotate.h. Each one
 * appends a single event to the calling thread's ring; the analyzer gives
 * them meaning.
 */
#include <mlmem/annotate.h>

#include "record.h"

SHIM_EXPORT void mlmem_annotate_step(uint64_t step)
{
    if (shim_recording())
        shim_record_simple(MLMEM_EV_STEP, 0, 0, step, 0);
}

SHIM_EXPORT void mlmem_annotate_phase(int phase)
{
    if (shim_recording())
        shim_record_simple(MLMEM_EV_PHASE, 0, 0, (uint64_t)phase, 0);
}

SHIM_EXPORT void mlmem_annotate_region_begin(int category)
{
    if (shim_recording())
        shim_record_simple(MLMEM_EV_REGION_BEGIN, 0, 0, (uint64_t)category, 0);
}

SHIM_EXPORT void mlmem_annotate_region_end(void)
{
    if (shim_recording())
        shim_record_simple(MLMEM_EV_REGION_END, 0, 0, 0, 0);
}

SHIM_EXPORT void mlmem_annotate_tag(const void *ptr, int category)
{
    if (ptr && shim_recording())
        shim_record_simple(MLMEM_EV_TAG, (uintptr_t)ptr, 0, (uint64_t)category, 0);
}
