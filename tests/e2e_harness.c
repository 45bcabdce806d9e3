/* e2e_harness.c - see e2e_harness.h. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e_harness.h"

static const char *build_dir(void)
{
    const char *d = getenv("MLMEM_BUILD_DIR");
    if (!d) {
        fail_msg("MLMEM_BUILD_DIR is not set (run the test through ctest)");
    }
    return d;
}

#define MAX_TMPDIRS 256

static char tmpdirs[MAX_TMPDIRS][64];
static int tmpdir_count;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tmpdirs(void)
{
    for (int i = 0; i < tmpdir_count; i++)
        nftw(tmpdirs[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *e2e_tmpdir(void)
{
    if (tmpdir_count == MAX_TMPDIRS)
        fail_msg("too many temporary directories");
    if (tmpdir_count == 0)
        atexit(remove_tmpdirs);
    char *dir = tmpdirs[tmpdir_count];
    snprintf(dir, sizeof tmpdirs[0], "/tmp/mlmem-e2e-XXXXXX");
    if (!mkdtemp(dir))
        fail_msg("mkdtemp failed");
    tmpdir_count++;
    return dir;
}

const char *e2e_prog(const char *name)
{
    static char buf[4][4096];
    static int slot;
    slot = (slot + 1) % 4;
    snprintf(buf[slot], sizeof buf[slot], "%s/bin/e2e/%s", build_dir(), name);
    return buf[slot];
}

const char *e2e_mlmem(void)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/bin/mlmem", build_dir());
    return buf;
}

const char *e2e_path(int slot, const char *dir, const char *name)
{
    static char buf[4][4096];
    snprintf(buf[slot & 3], sizeof buf[0], "%s/%s", dir, name);
    return buf[slot & 3];
}

static char *slurp_fd(int fd)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        if (len + 1 >= cap)
            s = realloc(s, cap *= 2);
        ssize_t n = read(fd, s + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    s[len] = '\0';
    return s;
}

/* A command still running after this long has hung (the longest run of
 * these tests takes a few seconds): what each of its threads waits on is
 * printed and its processes are killed, so the test fails with that rather
 * than when ctest's timeout ends the whole binary and says nothing. */
#define E2E_DEADLINE_MS 120000

/* The process group of 'pid' (/proc/PID/stat's fifth field), or 0. */
static pid_t group_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close = strrchr(buf, ')'); /* the name may hold spaces */
    int ppid = 0, pgrp = 0;
    char state;
    if (!close || sscanf(close + 1, " %c %d %d", &state, &ppid, &pgrp) != 3)
        return 0;
    return (pid_t)pgrp;
}

static void print_proc_line(const char *what, const char *path)
{
    char buf[256] = "";
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    fprintf(stderr, " %s %s", what, buf);
}

/* Each thread of 'pid': its name, the kernel function it sleeps in and the
 * system call it is in. */
static void print_threads(pid_t pid)
{
    char path[64 + sizeof ((struct dirent *)0)->d_name];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        fprintf(stderr, "  pid %d tid %s", (int)pid, e->d_name);
        snprintf(path, sizeof path, "/proc/%d/task/%s/comm", (int)pid, e->d_name);
        print_proc_line("", path);
        snprintf(path, sizeof path, "/proc/%d/task/%s/wchan", (int)pid, e->d_name);
        print_proc_line("wchan", path);
        snprintf(path, sizeof path, "/proc/%d/task/%s/syscall", (int)pid, e->d_name);
        print_proc_line("syscall", path);
        fputc('\n', stderr);
    }
    if (d)
        closedir(d);
}

/* Waits for 'pid', the leader of the command's process group, as wait4
 * does, unless it runs past 'limit_ms': then prints every thread of the
 * group (orphans included), kills the group and fails the test. */
static void wait_within(pid_t pid, const char *const *argv, int limit_ms, int *st,
                        struct rusage *ru)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd >= 0) {
        struct pollfd p = {pidfd, POLLIN, 0};
        int ready;
        while ((ready = poll(&p, 1, limit_ms)) < 0 && errno == EINTR)
            ;
        close(pidfd);
        if (ready == 0) {
            fprintf(stderr, "e2e:");
            for (int i = 0; argv[i]; i++)
                fprintf(stderr, " %s", argv[i]);
            fprintf(stderr, "\n  still running after %d s; its processes:\n", limit_ms / 1000);
            DIR *d = opendir("/proc");
            struct dirent *e;
            while (d && (e = readdir(d))) {
                pid_t each = (pid_t)atoi(e->d_name);
                if (each > 0 && group_of(each) == pid)
                    print_threads(each);
            }
            if (d)
                closedir(d);
            kill(-pid, SIGKILL);
            wait4(pid, st, 0, ru);
            fail_msg("%s hung (what it waited on is above)", argv[0]);
        }
    }
    wait4(pid, st, 0, ru);
}

e2e_result_t e2e_exec(const char *const *argv)
{
    return e2e_exec_within(argv, E2E_DEADLINE_MS);
}

e2e_result_t e2e_exec_within(const char *const *argv, int limit_ms)
{
    e2e_result_t r = {0};
    char out_path[] = "/tmp/mlmem-e2e-out-XXXXXX";
    char err_path[] = "/tmp/mlmem-e2e-err-XXXXXX";
    int out = mkstemp(out_path), err = mkstemp(err_path);
    assert_true(out >= 0 && err >= 0);
    unlink(out_path);
    unlink(err_path);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0); /* a group of its own, to be killed whole if it hangs */
        dup2(out, 1);
        dup2(err, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    wait_within(pid, argv, limit_ms, &st, &ru);
    r.max_rss_kb = ru.ru_maxrss;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = slurp_fd(out);
    r.err = slurp_fd(err);
    close(out);
    close(err);
    return r;
}

void e2e_result_free(e2e_result_t *r)
{
    free(r->out);
    free(r->err);
}

json_t *e2e_load_json(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        fail_msg("cannot load %s: %s (line %d)", path, e.text, e.line);
    return j;
}

long long e2e_int(json_t *root, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *j = root;
    for (char *tok = strtok(buf, "."); tok; tok = strtok(NULL, ".")) {
        j = json_object_get(j, tok);
        if (!j)
            fail_msg("no field %s in the report", path);
    }
    if (!json_is_integer(j))
        fail_msg("field %s is not an integer", path);
    return json_integer_value(j);
}

json_t *e2e_site_with_function(json_t *report, const char *fn)
{
    size_t i, k;
    json_t *site, *frame;
    json_array_foreach(json_object_get(report, "sites"), i, site) {
        json_array_foreach(json_object_get(site, "frames"), k, frame) {
            const char *f = json_string_value(json_object_get(frame, "function"));
            if (f && strstr(f, fn))
                return site;
        }
    }
    return NULL;
}

json_t *e2e_profile(const char *const *opts, const char *const *cmd, int expect_status)
{
    const char *dir = e2e_tmpdir();
    const char *json = e2e_path(0, dir, "report.json");
    const char *argv[E2E_MAX_ARGS];
    int n = 0;
    argv[n++] = e2e_mlmem();
    argv[n++] = "run";
    argv[n++] = "-q";
    argv[n++] = "--no-trace";
    argv[n++] = "--json";
    argv[n++] = json;
    for (int i = 0; opts && opts[i] && n < E2E_MAX_ARGS - 2; i++)
        argv[n++] = opts[i];
    argv[n++] = "--";
    for (int i = 0; cmd[i] && n < E2E_MAX_ARGS - 1; i++)
        argv[n++] = cmd[i];
    argv[n] = NULL;
    e2e_result_t r = e2e_exec(argv);
    if (r.status != expect_status)
        fail_msg("mlmem run %s exited %d, expected %d; stderr:\n%s", cmd[0], r.status,
                 expect_status, r.err);
    e2e_result_free(&r);
    return e2e_load_json(json);
}

const char *e2e_str_at(json_t *root, const char *a, const char *b)
{
    return json_string_value(json_object_get(json_object_get(root, a), b));
}
