/*
 * test_report_fixture.h - a hand-made analysis result for the report tests,
 * with known figures (see test_report_fixture.c), and its release.
 */
#ifndef TEST_REPORT_FIXTURE_H
#define TEST_REPORT_FIXTURE_H

#include "profiler/prof_result.h"

/* Returns a new result: process "python3 train.py --epochs 2" (pid 4242,
 * exited 0), peak 1.50 MiB at 2.5 s, three sites (train_forward 1 MiB at
 * peak; Loader::next 512 KiB at peak and 3 KiB leaked; the unsampled site
 * with 240 temporaries), two threads, three timeline points, one child.
 * Every string is malloc'd. Aborts the test on out of memory. */
prof_result_t *rtest_result_new(void);

/* Frees what rtest_result_new() built (and any strings a test swapped in,
 * which must be malloc'd too), with prof_result_free(). No operation if
 * NULL. */
void rtest_result_free(prof_result_t *r);

/* strdup that fails the test instead of returning NULL. */
char *rtest_strdup(const char *s);

#endif
