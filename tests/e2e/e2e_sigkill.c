/* Allocates 4 blocks of 1 MiB, waits for the shim to send them, then is
 * killed by SIGKILL (or, with the argument "segv", crashes on a write
 * through a null pointer): the report must still hold the 4 MiB and say
 * how the program ended. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    for (int i = 0; i < 4; i++) {
        char *p = malloc(1 << 20);
        memset(p, i, 1 << 20);
    }
    /* Long enough for the shim's writer (a pass every few ms) to send the
     * blocks even on a loaded machine. */
    struct timespec ts = {0, 600 * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (argc > 1 && strcmp(argv[1], "segv") == 0) {
        volatile int *nowhere = NULL;
        *nowhere = 1;
    }
    raise(SIGKILL);
    return 0;
}
