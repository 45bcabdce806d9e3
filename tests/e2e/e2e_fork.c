/* fork and fork+exec. The parent leaks 1000 bytes; its forked child leaks
 * 2000 and exits with 7; a second child execs argv[1] (e2e_peak, peak
 * 3,000,000, exit 3). The parent exits 0 if the children's codes are right. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    char *mine = malloc(1000);
    memset(mine, 1, 1000);

    pid_t c1 = fork();
    if (c1 == 0) {
        char *theirs = malloc(2000);
        memset(theirs, 2, 2000);
        exit(7);
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
