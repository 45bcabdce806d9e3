/* vfork and posix_spawn children, with and without exec. The parent leaks
 * 1000 bytes, then starts, one after the other:
 *   1. vfork + exec of argv[1] (e2e_peak: peak 3,000,000, exit 3)
 *   2. vfork + _exit(5) without exec
 *   3. posix_spawn of argv[1]
 *   4. posix_spawn of a program that does not exist (the child exits 127)
 *   5. posix_spawnp of "true" with a file action, through the PATH
 * and allocates and frees 2000 bytes between them. The parent exits 0 if
 * every child ended as expected, else the number of the first that did
 * not (it then also leaks 7777 bytes more). */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int ended(pid_t pid, int code)
{
    int st;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == code;
}

static void churn(void)
{
    char *p = malloc(2000);
    memset(p, 3, 2000);
    free(p);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    char *mine = malloc(1000);
    memset(mine, 1, 1000);
    int bad = 0;

    pid_t c = vfork();
    if (c == 0) {
        execl(argv[1], argv[1], (char *)NULL);
        _exit(127);
    }
    if (!ended(c, 3) && !bad)
        bad = 1;
    churn();

    c = vfork();
    if (c == 0)
        _exit(5);
    if (!ended(c, 5) && !bad)
        bad = 2;
    churn();

    char *args[] = {argv[1], NULL};
    if ((posix_spawn(&c, argv[1], NULL, NULL, args, environ) != 0 || !ended(c, 3)) && !bad)
        bad = 3;
    churn();

    char *missing[] = {"/nonexistent/e2e-program", NULL};
    int rc = posix_spawn(&c, missing[0], NULL, NULL, missing, environ);
    /* glibc reports the failed exec as the error of posix_spawn itself. */
    if (rc == 0 && !ended(c, 127) && !bad)
        bad = 4;
    churn();

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1 /* O_WRONLY */, 0);
    char *t[] = {"true", NULL};
    if ((posix_spawnp(&c, "true", &fa, NULL, t, environ) != 0 || !ended(c, 0)) && !bad)
        bad = 5;
    posix_spawn_file_actions_destroy(&fa);
    churn();

    if (bad) {
        char *more = malloc(7777);
        memset(more, 4, 7777);
    }
    return bad;
}
