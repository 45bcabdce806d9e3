/*
 * e2e_harness.h - running the real mlmem command on real programs from a
 * cmocka test, and reading what it wrote.
 *
 * Paths come from MLMEM_BUILD_DIR (set by ctest): the mlmem binary is
 * $MLMEM_BUILD_DIR/bin/mlmem, test programs are in $MLMEM_BUILD_DIR/bin/e2e.
 * Each test gets a fresh private directory for its outputs, removed when
 * the test program exits.
 */
#ifndef E2E_HARNESS_H
#define E2E_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int status;        /* mlmem's exit status (or 128 + signal)           */
    char *out;         /* its stdout, NUL-terminated                      */
    char *err;         /* its stderr                                      */
    long max_rss_kb;   /* the peak RSS of that process itself (not children) */
} e2e_result_t;

/* A fresh directory for one test's files (removed at exit); the path
 * stays valid until then. */
const char *e2e_tmpdir(void);

/* $MLMEM_BUILD_DIR/bin/e2e/NAME (static buffer, one at a time per slot). */
const char *e2e_prog(const char *name);
const char *e2e_mlmem(void);

/* Runs argv (argv[0] a path) with stdout/stderr captured, in a process
 * group of its own. One still running after 'limit_ms' (e2e_exec: 120 s)
 * has hung: what each of its threads waits on is printed, the group is
 * killed and the test fails. */
e2e_result_t e2e_exec(const char *const *argv);
e2e_result_t e2e_exec_within(const char *const *argv, int limit_ms);
void e2e_result_free(e2e_result_t *r);

/* Loads a JSON file; fails the test if it cannot. */
json_t *e2e_load_json(const char *path);

/* Runs `mlmem run -q --no-trace --json DIR/report.json OPTS -- CMD`, fails
 * the test unless it exits with 'expect_status', and returns the parsed
 * report. 'opts' (may be NULL) and 'cmd' are NULL-terminated. */
#define E2E_MAX_ARGS 40
json_t *e2e_profile(const char *const *opts, const char *const *cmd, int expect_status);

/* root[a][b] as a string, or NULL. */
const char *e2e_str_at(json_t *root, const char *a, const char *b);

/* Integer at a dotted path like "summary.peak_bytes"; fails if missing. */
long long e2e_int(json_t *root, const char *path);

/* The first site whose frames contain a function containing 'fn'. */
json_t *e2e_site_with_function(json_t *report, const char *fn);

/* Joins dir and name into a static buffer slot (0..3). */
const char *e2e_path(int slot, const char *dir, const char *name);

#endif /* E2E_HARNESS_H */
