/* fork and fork+exec. The parent leaks 1000 bytes; its forked child leaks
 * 2000 from the same call site (the same stack as the parent's block) and
 * exits with 7; a second child execs argv[1] (e2e_peak, peak 3,000,000,
 * exit 3). The parent exits 0 if the children's codes are right. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void *volatile fork_sink; /* the blocks escape: no call is optimized away */

static __attribute__((noinline)) void leak(size_t n)
{
    char *p = malloc(n);
    memset(p, (int)(n >> 8), n);
    fork_sink = p;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    pid_t c1 = -1;
    for (int round = 0; round < 2; round++) {
        leak(round == 0 ? 1000 : 2000);
        if (round == 1)
            exit(7); /* the forked child */
        c1 = fork();
        if (c1 != 0)
            break; /* the parent, or no child */
    }
    int st;
    if (c1 < 0 || waitpid(c1, &st, 0) != c1 || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
        return 1;

    pid_t c2 = fork();
    if (c2 == 0) {
        execl(argv[1], argv[1], (char *)NULL);
        _exit(127);
    }
    if (c2 < 0 || waitpid(c2, &st, 0) != c2 || !WIFEXITED(st) || WEXITSTATUS(st) != 3)
        return 1;
    return 0;
}
