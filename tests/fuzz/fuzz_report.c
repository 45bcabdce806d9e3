/*
 * fuzz_report.c - libFuzzer harness: arbitrary bytes as a JSON report file
 * (report_json_read(), what `mlmem advise REPORT.json` reads), then what
 * advise does with it: the recommendations and a plan for a budget, plus
 * the text summary. Beyond not crashing or leaking: a failure names the
 * file ("PATH: ..."), has no control bytes (it goes to a terminal) and
 * leaves the result empty. Aborts when a promise is
 * broken.
 *
 * The input goes to a memfd, read through /proc/self/fd/N: nothing to
 * clean up, and unique per process.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "advice.h"
#include "report.h"

static FILE *fuzz_null;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_null && !(fuzz_null = fopen("/dev/null", "w")))
        return 0;
    int fd = memfd_create("report", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    prof_result_t r, empty;
    memset(&empty, 0, sizeof empty);
    char err[1024] = "";
    if (report_json_read(path, &r, err, sizeof err) != 0) {
        size_t k = strlen(path);
        int control = 0;
        for (const char *p = err; *p; p++)
            control |= (unsigned char)*p < 0x20 || *p == 0x7f;
        if (strncmp(err, path, k) != 0 || strncmp(err + k, ": ", 2) != 0 || !err[k + 2] ||
            control) {
            fprintf(stderr, "fuzz_report: error does not name the file, or is not printable: "
                            "'%s'\n", err);
            abort();
        }
        if (memcmp(&r, &empty, sizeof r) != 0) {
            fprintf(stderr, "fuzz_report: a failed read left data in the result\n");
            abort();
        }
        close(fd);
        return 0;
    }
    close(fd);
    if (prof_advise(&r) == 0) {
        prof_advice_plan_t plan;
        if (prof_advice_plan(&r, r.summary.peak_bytes - r.summary.peak_bytes / 4, &plan) == 0)
            prof_advice_plan_free(&plan);
    }
    report_text_write(&r, fuzz_null, NULL);
    prof_result_free(&r);
    return 0;
}
