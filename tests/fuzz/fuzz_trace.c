/*
 * fuzz_trace.c - libFuzzer harness: arbitrary bytes as a trace file, replayed
 * into a session (zstd, trace records, every stream's analysis) and turned
 * into a result. Must never crash, hang or allocate without bound.
 *
 * Mutations of compressed bytes rarely get past zstd, so the input is the
 * *decompressed* trace, compressed here before the replay; an input whose
 * first byte is 0xff is passed raw instead, to fuzz the zstd layer too.
 * The seeds (the .trc files in corpus/trace) are real traces, decompressed.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <unistd.h>
#include <zstd.h>

#include "session.h"
#include "trace_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("trace", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    const void *bytes = data;
    size_t len = size;
    void *packed = NULL;
    if (!(size && data[0] == 0xff)) {
        size_t cap = ZSTD_compressBound(size);
        packed = malloc(cap);
        len = packed ? ZSTD_compress(packed, cap, data, size, 1) : 0;
        if (!packed || ZSTD_isError(len)) {
            free(packed);
            close(fd);
            return 0;
        }
        bytes = packed;
    }
    ssize_t w = write(fd, bytes, len);
    free(packed);
    if (w != (ssize_t)len) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    prof_session_t *s = prof_session_new();
    char err[512];
    prof_trace_replay(path, s, 1, NULL, err, sizeof err);
    prof_result_t r;
    if (prof_session_result(s, 0, 0, 0, &r) == 0)
        prof_result_free(&r);
    prof_session_free(s);
    close(fd);
    return 0;
}
