/*
 * huge_pages.c - the analyzer's heap in transparent huge pages.
 *
 * With hundreds of thousands of sites (`import torch` under --stacks=all
 * makes 600,000) the analyzer's tables reach 700 MB, and faulting them in
 * 4 KiB at a time took a third of `mlmem report`'s time (perf: the page
 * fault path and clear_page; docs/benchmarks.md, sixth round). glibc (2.35
 * on) asks for transparent huge pages on its heap and its large blocks when
 * the tunable glibc.malloc.hugetlb is 1, and reads tunables once, at
 * start-up, from GLIBC_TUNABLES. So mlmem (where its analysis may be large:
 * mlmem.c says where) executes itself again, once, with
 * the tunable added, and then puts the variable back as it found it: the
 * program that `mlmem run` launches gets the environment it would have got,
 * since its allocator is what mlmem measures. Nothing changes where the
 * user set glibc.malloc.hugetlb already, where MLMEM_HUGE_PAGES=0, or where
 * executing itself again fails (mlmem goes on as it is).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "huge_pages.h"

#define TUNABLE "glibc.malloc.hugetlb=1"
/* Set in the second execution: "unset", or "set:" and GLIBC_TUNABLES as
 * it was before the first one. */
#define WAS_VAR "MLMEM_GLIBC_TUNABLES_WAS"

static void restore_tunables(const char *was)
{
    if (strncmp(was, "set:", 4) == 0)
        setenv("GLIBC_TUNABLES", was + 4, 1);
    else
        unsetenv("GLIBC_TUNABLES");
    unsetenv(WAS_VAR);
}

void prof_huge_pages_exec(char **argv)
{
    const char *was = getenv(WAS_VAR);
    if (was) { /* the second execution: tuned; the environment as it was */
        char *copy = strdup(was);
        if (copy) {
            restore_tunables(copy);
            free(copy);
        }
        return;
    }
    const char *knob = getenv("MLMEM_HUGE_PAGES");
    if (knob && strcmp(knob, "0") == 0)
        return;
    const char *old = getenv("GLIBC_TUNABLES");
    if (old && strstr(old, "glibc.malloc.hugetlb"))
        return; /* the user's choice */

    size_t n = (old ? strlen(old) : 0) + sizeof TUNABLE + 8;
    char *tunables = malloc(n), *saved = malloc(n);
    if (!tunables || !saved) {
        free(tunables);
        free(saved);
        return;
    }
    if (old && *old)
        snprintf(tunables, n, "%s:%s", old, TUNABLE);
    else
        snprintf(tunables, n, "%s", TUNABLE);
    if (old)
        snprintf(saved, n, "set:%s", old);
    else
        snprintf(saved, n, "unset");
    /* The binary by its own path, not /proc/self/exe: the name the process
     * goes by (comm: ps, pgrep, top) comes from the path executed. */
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0 && setenv(WAS_VAR, saved, 1) == 0 &&
        setenv("GLIBC_TUNABLES", tunables, 1) == 0) {
        self[len] = '\0';
        execv(self, argv);
    }
    /* Not executed: go on untuned, with the environment as it was. */
    restore_tunables(saved);
    free(tunables);
    free(saved);
}
