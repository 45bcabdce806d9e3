/* Forks at once, while the shim's writer thread makes the process's first
 * unwind through libunwind (its initialization, a millisecond under
 * libunwind's own lock), then executes itself again for the next try: run
 * it with MLMEM_UNWIND=libunwind, so the child's allocation unwinds
 * through libunwind too. A child that inherited that lock held hung on
 * its first unwind (preload/unwind.c, "Fork"). Each child allocates and
 * exits 0; one still running after 10 s is killed.
 * Usage: e2e_fork_unwind TRIES; exits 0 when every child ended well, else
 * 1 with a line on stderr. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void *volatile fork_sink; /* the block escapes: the call is not optimized away */

/* 0: exited 0; -1: ended otherwise; -2: hung (killed). */
static int wait_child(pid_t pid)
{
    for (int ms = 0; ms < 10000; ms++) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
        if (r < 0)
            return -1;
        struct timespec one_ms = {0, 1000000};
        nanosleep(&one_ms, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -2;
}

/* A child that allocates (so unwinds) and exits, as a shell's subshell
 * runs a command; 'depth' more generations of it fork at once first. */
static int fork_at_once(int depth)
{
    pid_t pid = fork();
    if (pid == 0) {
        int r = depth > 0 ? fork_at_once(depth - 1) : 0;
        fork_sink = malloc(32);
        free(fork_sink);
        _exit(r == 0 ? 0 : 1);
    }
    return pid < 0 ? -1 : wait_child(pid);
}

int main(int argc, char **argv)
{
    int tries = argc > 1 ? atoi(argv[1]) : 0;
    if (tries <= 0)
        return 2;
    int r = fork_at_once(3);
    if (r != 0) {
        fprintf(stderr, "e2e_fork_unwind: the child of try %d %s\n", tries,
                r == -2 ? "hung" : "failed");
        return 1;
    }
    if (tries == 1)
        return 0;
    char next[16];
    snprintf(next, sizeof next, "%d", tries - 1);
    execl(argv[0], argv[0], next, (char *)NULL);
    return 1;
}
