/*
 * launch.c - run a command under the shim; see launch.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mlmem/trace_format.h>

#include "launch.h"

extern char **environ;

#define MAX_CONNS 1024
#define READ_CHUNK (1u << 20)
/* The analyzer's nice value over its own start's: docs/benchmarks.md,
 * eleventh round, measured 0, 10 and 19. */
#define ANALYZER_NICE 10

typedef struct {
    int fd;
    uint32_t id;
} conn_t;

static volatile sig_atomic_t forward_signal;

static void on_signal(int sig)
{
    forward_signal = sig;
}

static uint64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

char *prof_launch_find_preload(void)
{
    const char *env = getenv("MLMEM_PRELOAD");
    if (env && *env)
        return access(env, R_OK) == 0 ? strdup(env) : NULL;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    const char *dir = dirname(exe);
    static const char *const rel[] = {"../lib/libmlmem_preload.so", "libmlmem_preload.so",
                                      "../lib/mlmem/libmlmem_preload.so"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, rel[i]);
        char *real = realpath(path, NULL);
        if (real && access(real, R_OK) == 0)
            return real;
        free(real);
    }
    return NULL;
}

static char *join_argv(char *const *argv)
{
    size_t len = 1;
    for (size_t i = 0; argv[i]; i++)
        len += strlen(argv[i]) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (size_t i = 0; argv[i]; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

/* The command's environment: ours, with the shim preloaded (ahead of any
 * LD_PRELOAD already set) and its options in place of any the environment
 * holds. 'vars' points into ours; env_free releases both. */
#define ENV_OURS 7
typedef struct {
    char **vars;
    char *ours[ENV_OURS];
    int n;
} spawn_env_t;

static void env_free(spawn_env_t *e)
{
    for (int i = 0; i < e->n; i++)
        free(e->ours[i]);
    free(e->vars);
}

/* Adds one NAME=value of ours. 0, or -1 when out of memory. */
__attribute__((format(printf, 2, 3))) static int env_put(spawn_env_t *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&e->ours[e->n], fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    e->n++;
    return 0;
}

/* Whether 'var' (NAME=value) names one of ours. */
static int env_is_ours(const spawn_env_t *e, const char *var)
{
    for (int j = 0; j < e->n; j++) {
        size_t name = (size_t)(strchr(e->ours[j], '=') - e->ours[j]) + 1;
        if (strncmp(var, e->ours[j], name) == 0)
            return 1;
    }
    return 0;
}

static int env_build(spawn_env_t *e, const prof_launch_options_t *o, const char *sock_path)
{
    memset(e, 0, sizeof *e);
    const char *old = getenv("LD_PRELOAD");
    int has_old = old && *old;
    /* The command names itself the root process when it starts (the shim,
     * init.c): it is spawned, so its pid is not known here. */
    if (env_put(e, "LD_PRELOAD=%s%s%s", o->preload, has_old ? ":" : "", has_old ? old : "") ||
        env_put(e, "MLMEM_SOCKET=%s", sock_path) ||
        env_put(e, "MLMEM_STACKS=%s", o->stack_mode == MLMEM_STACKS_ALL ? "all" : "sampled") ||
        env_put(e, "MLMEM_FOLLOW_FORK=%d", o->follow_fork ? 1 : 0) ||
        env_put(e, "MLMEM_ROOT_PID=0") ||
        (o->stack_threshold && env_put(e, "MLMEM_STACK_THRESHOLD=%llu",
                                       (unsigned long long)o->stack_threshold)) ||
        (o->sample_rate &&
         env_put(e, "MLMEM_SAMPLE_RATE=%llu", (unsigned long long)o->sample_rate))) {
        env_free(e);
        return -1;
    }
    size_t count = 0;
    while (environ[count])
        count++;
    e->vars = calloc(count + ENV_OURS + 1, sizeof *e->vars);
    if (!e->vars) {
        env_free(e);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < count; i++)
        if (!env_is_ours(e, environ[i]))
            e->vars[k++] = environ[i];
    for (int j = 0; j < e->n; j++)
        e->vars[k++] = e->ours[j];
    return 0;
}

/* Starts the command with posix_spawnp: no copy of this process's page
 * tables, and none of its pages left to copy on its next write, which
 * fork cost every run (2 to 3 ms; docs/benchmarks.md, ninth round). The
 * signals this process catches or ignores are the default again there.
 * Returns 0 or an errno value (exec's, when the command cannot run). */
static int spawn_target(const prof_launch_options_t *o, const char *sock_path, pid_t *pid)
{
    spawn_env_t env;
    if (env_build(&env, o, sock_path) != 0)
        return ENOMEM;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t actions;
    int rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        env_free(&env);
        return rc;
    }
    rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) {
        posix_spawnattr_destroy(&attr);
        env_free(&env);
        return rc;
    }
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGPIPE);
    rc = posix_spawnattr_setsigdefault(&attr, &defaults);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    if (rc == 0 && o->output_log) {
        /* The dashboard owns the terminal: the command writes to the log,
         * and reads end-of-file instead of the dashboard's keys. */
        rc = posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, o->output_log,
                                              O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
        if (rc == 0)
            rc = posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
        if (rc == 0)
            rc = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                                  O_RDONLY, 0);
    }
    if (rc == 0)
        rc = posix_spawnp(pid, o->argv[0], &actions, &attr, o->argv, env.vars);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    env_free(&env);
    return rc;
}

static int make_socket(char *dir, size_t dirlen, char *path, size_t pathlen, char *err,
                       size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, dirlen, "%s/mlmem-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) { /* mkdtemp makes it 0700: private to this user */
        snprintf(err, errlen, "cannot create a private directory in %s: %s",
                 tmp && *tmp ? tmp : "/tmp", strerror(errno));
        return -1;
    }
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if ((size_t)snprintf(path, pathlen, "%s/events.sock", dir) >= sizeof a.sun_path) {
        snprintf(err, errlen, "socket path %s/events.sock is too long (set TMPDIR shorter)", dir);
        rmdir(dir);
        return -1;
    }
    strcpy(a.sun_path, path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 128) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
        if (s >= 0)
            close(s);
        rmdir(dir);
        return -1;
    }
    return s;
}

/* Accepts pending connections from processes of our own user. */
/* The parent of process 'pid' from /proc/PID/stat; -1 if it can not be
 * read (the process is gone). The command name may hold spaces and ')',
 * so the fields are read after the last ')'. */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    int ppid;
    if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
        return -1;
    return (pid_t)ppid;
}

/* Whether the connecting process belongs to the run: the command or one
 * of its descendants. mlmem is a child subreaper, so a descendant whose
 * parent exited has mlmem as its parent; nothing else of mlmem's is
 * running. A process already gone can not be checked and is accepted (it
 * was of the same user, which the socket's directory already requires).
 * An ancestor gone by the time the walk reads it exited after the walk
 * read its child: the walk starts again from the peer, which is gone too
 * by then or has been handed to mlmem. (It used to refuse the stream: a
 * peer read alive, then ended and reaped by its parent, which ended as
 * well before the walk read it, lost its whole stream without a word, as
 * forks at once under load do now and then;
 * test_e2e_capture_fork_while_unwinding_no_hang.) */
static int in_run(pid_t peer, pid_t root)
{
    pid_t self = getpid(), at = peer;
    for (int depth = 0, walks = 0; depth < 1024; depth++) {
        if (at == root || at == self)
            return 1;
        if (at <= 1)
            return 0;
        pid_t up = parent_of(at);
        if (up < 0 && depth == 0)
            return 1;
        if (up < 0) {
            if (++walks == 16)
                return 0;
            at = peer;
            depth = -1;
            continue;
        }
        at = up;
    }
    return 0;
}

static int accept_all(int lfd, conn_t *conns, size_t *nconn, uint32_t *next_id,
                      const prof_launch_options_t *o, pid_t root)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
        struct ucred cred;
        socklen_t cl = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 || cred.uid != getuid() ||
            !in_run(cred.pid, root) || *nconn >= MAX_CONNS) {
            close(fd);
            continue;
        }
        conns[*nconn].fd = fd;
        conns[*nconn].id = (*next_id)++;
        if (o->on_open(o->ctx, conns[*nconn].id) != 0) {
            close(fd);
            return -1;
        }
        (*nconn)++;
    }
}

/* How far mlmem lowers its own priority once the command runs: by
 * MLMEM_ANALYZER_NICE (0 to 19), default 10. 0, or -1 with 'err' set when
 * the variable is not such a number. */
static int analyzer_nice(int *out, char *err, size_t errlen)
{
    *out = ANALYZER_NICE;
    const char *v = getenv("MLMEM_ANALYZER_NICE");
    if (v == NULL || v[0] == '\0')
        return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < 0 || n > 19) {
        snprintf(err, errlen, "MLMEM_ANALYZER_NICE='%s' is not a number from 0 to 19", v);
        return -1;
    }
    *out = (int)n;
    return 0;
}

/* The analyzer (or recorder) yields the processor to the program it
 * profiles: it reads streams that the shim buffers (a ring per thread, the
 * socket's 4 MiB), so it can fall behind for a while and catch up when a
 * core is free, where at the program's priority it took its share from the
 * program's own threads (a PyTorch step's worker threads wait for each
 * other, so one of them preempted holds them all). A nice value is a
 * thread's in Linux: the symbol helper, started later, inherits it; the
 * command, started before, keeps the one it was given. */
static void yield_to_program(int nice_by)
{
    if (nice_by == 0)
        return;
    errno = 0;
    int now = getpriority(PRIO_PROCESS, 0);
    if (errno == 0)
        setpriority(PRIO_PROCESS, 0, now + nice_by); /* best effort */
}

int prof_launch_run(const prof_launch_options_t *o, prof_run_info_t *info, char *err,
                    size_t errlen)
{
    memset(info, 0, sizeof *info);
    int nice_by;
    if (analyzer_nice(&nice_by, err, errlen) != 0)
        return -1;
    char dir[PATH_MAX], sock_path[PATH_MAX];
    int lfd = make_socket(dir, sizeof dir, sock_path, sizeof sock_path, err, errlen);
    if (lfd < 0)
        return -1;

    struct sigaction sa, old_int, old_term, old_pipe;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    signal(SIGPIPE, SIG_IGN);
    (void)old_pipe;

    fflush(NULL);
    /* Orphaned descendants of the command become our children, so that
     * the process tree stays checkable (in_run) and nothing is left a
     * zombie. */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    pid_t pid = -1;
    int spawn_errno = spawn_target(o, sock_path, &pid);
    if (spawn_errno != 0) {
        snprintf(err, errlen, "cannot run %s: %s", o->argv[0], strerror(spawn_errno));
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        close(lfd);
        unlink(sock_path);
        rmdir(dir);
        return -1;
    }

    info->root_pid = pid;
    info->command = join_argv(o->argv);
    yield_to_program(nice_by);
    /* The command's exit wakes the poll below: its stream's end of file
     * comes when its descriptors close, a moment before it can be reaped,
     * and a poll that only timed out cost up to its 20 ms after every run
     * (docs/benchmarks.md, ninth round). Without pidfd_open (Linux < 5.3)
     * the timeout notices the exit. */
    int exit_fd = -1;
#ifdef SYS_pidfd_open
    exit_fd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
    conn_t *conns = calloc(MAX_CONNS, sizeof *conns);
    uint8_t *buf = malloc(READ_CHUNK);
    struct pollfd *pfds = calloc(MAX_CONNS + 2, sizeof *pfds);
    size_t nconn = 0;
    uint32_t next_id = 0;
    int rc = 0, exited = 0, status = 0;
    uint64_t exited_at = 0, last_data = now_ns(CLOCK_MONOTONIC), last_tick = 0;
    if (!conns || !buf || !pfds) {
        snprintf(err, errlen, "out of memory");
        kill(pid, SIGKILL);
        rc = -1;
    }

    while (rc == 0) {
        if (forward_signal) {
            kill(pid, forward_signal);
            forward_signal = 0;
        }
        pfds[0].fd = lfd;
        pfds[0].events = POLLIN;
        for (size_t i = 0; i < nconn; i++) {
            pfds[i + 1].fd = conns[i].fd;
            pfds[i + 1].events = POLLIN;
            pfds[i + 1].revents = 0;
        }
        pfds[nconn + 1].fd = exited ? -1 : exit_fd; /* readable from the exit on */
        pfds[nconn + 1].events = POLLIN;
        int pr = poll(pfds, nconn + 2, 20);
        if (pr < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            rc = -1;
            break;
        }
        if (pr > 0 && (pfds[0].revents & POLLIN) &&
            accept_all(lfd, conns, &nconn, &next_id, o, pid) != 0) {
            snprintf(err, errlen, "stopped while accepting a stream");
            rc = -1;
            break;
        }
        for (size_t i = 0; pr > 0 && i < nconn; i++) {
            if (!(pfds[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(conns[i].fd, buf, READ_CHUNK);
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n > 0) {
                last_data = now_ns(CLOCK_MONOTONIC);
                if (o->on_data(o->ctx, conns[i].id, buf, (size_t)n) != 0) {
                    snprintf(err, errlen, "stopped by the analyzer");
                    rc = -1;
                    break;
                }
                continue;
            }
            /* EOF or error: the process ended or exec'd. */
            close(conns[i].fd);
            o->on_close(o->ctx, conns[i].id);
            conns[i] = conns[nconn - 1];
            pfds[i + 1] = pfds[nconn];
            nconn--;
            i--;
        }
        /* Reap: the command, and descendants orphaned to us (subreaper). */
        for (;;) {
            int st;
            pid_t w = waitpid(-1, &st, WNOHANG);
            if (w <= 0)
                break;
            if (w == pid && !exited) {
                status = st;
                exited = 1;
                exited_at = now_ns(CLOCK_MONOTONIC);
                info->end_realtime_ns = now_ns(CLOCK_REALTIME);
            }
        }
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        if (o->on_tick && now - last_tick > 100000000ull) {
            last_tick = now;
            o->on_tick(o->ctx);
        }
        if (exited) {
            /* A stream that connected just before the exit may still be in
             * the backlog: accept it before deciding we are done. */
            accept_all(lfd, conns, &nconn, &next_id, o, pid);
            if (nconn == 0)
                break;
            uint64_t quiet = now - (last_data > exited_at ? last_data : exited_at);
            if (quiet > (uint64_t)o->grace_ms * 1000000ull)
                break;
        }
    }
    if (rc != 0 && !exited) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        exited = 1;
    }
    for (size_t i = 0; i < nconn; i++) {
        close(conns[i].fd);
        o->on_close(o->ctx, conns[i].id);
    }
    if (exited) {
        if (WIFEXITED(status)) {
            info->end = PROF_END_EXITED;
            info->exit_code = WEXITSTATUS(status);
        } else if (WIFSIGNALED(status)) {
            info->end = PROF_END_SIGNALED;
            info->signal = WTERMSIG(status);
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (exit_fd >= 0)
        close(exit_fd);
    close(lfd);
    unlink(sock_path);
    rmdir(dir);
    free(conns);
    free(buf);
    free(pfds);
    return rc;
}
