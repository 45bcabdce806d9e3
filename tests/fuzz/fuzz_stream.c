/*
 * fuzz_stream.c - libFuzzer harness: arbitrary bytes as one process's event
 * stream, through the whole per-process analysis (decode, reorder,
 * accounting, result). Must never crash, hang or allocate without bound.
 * The first byte picks where the input is cut in two, so chunking is
 * exercised too.
 */
#include <stddef.h>
#include <stdint.h>

#include "analysis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    prof_analysis_t *a = prof_analysis_new();
    if (!a)
        return 0;
    size_t cut = size ? data[0] % (size + 1) : 0;
    if (prof_analysis_feed(a, data, cut) == 0)
        prof_analysis_feed(a, data + cut, size - cut);
    prof_analysis_finish(a);
    prof_result_t r;
    if (prof_analysis_result(a, 0, 0, &r) == 0)
        prof_result_free(&r);
    prof_analysis_free(a);
    return 0;
}
