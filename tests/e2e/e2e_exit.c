/* Ways to end: "_exit" (leaks 1111, _exit(5)), "abort" (leaks 2222,
 * abort()), "exit-threads" (exit(0) while 2 threads still allocate),
 * "slow" (allocates 1 MiB every 100 ms for 800 ms: a trace with several
 * flush points), "wait" (leaks 4096 bytes, then waits for a signal). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *churn(void *arg)
{
    (void)arg;
    for (;;) {
        void *p = malloc(48);
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (strcmp(argv[1], "_exit") == 0) {
        char *p = malloc(1111);
        p[0] = 1;
        _exit(5);
    }
    if (strcmp(argv[1], "abort") == 0) {
        char *p = malloc(2222);
        p[0] = 1;
        abort();
    }
    if (strcmp(argv[1], "wait") == 0) {
        char *p = malloc(4096);
        p[0] = 1;
        for (;;)
            pause();
    }
    if (strcmp(argv[1], "slow") == 0) {
        for (int i = 0; i < 8; i++) {
            char *p = malloc(1 << 20);
            memset(p, i, 1 << 20);
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        return 0;
    }
    if (strcmp(argv[1], "exit-threads") == 0) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, churn, NULL);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        exit(0);
    }
    return 2;
}
