/* Allocates 4 blocks of 1 MiB, waits for the shim to send them, then is
 * killed by SIGKILL: the report must still hold the 4 MiB and say how the
 * program ended. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(void)
{
    for (int i = 0; i < 4; i++) {
        char *p = malloc(1 << 20);
        memset(p, i, 1 << 20);
    }
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    raise(SIGKILL);
    return 0;
}
