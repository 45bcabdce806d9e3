/* A signal handler that allocates, interrupting a program that allocates.
 * The main loop does LOOPS malloc/free pairs of 32 bytes and LOOPS step
 * annotations; a 200 us timer's handler does a malloc/free pair of 64
 * bytes whenever it does not land inside malloc/free (glibc's malloc is not
 * reentrant). It can land inside the shim's recording of an annotation,
 * which is all shim code: that is the nesting under test. Writes
 * "LOOPS HANDLER_PAIRS" to argv[1]: the profiler must count exactly
 * LOOPS + HANDLER_PAIRS allocations and LOOPS steps. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <mlmem/annotate.h>

#define LOOPS 300000

static volatile sig_atomic_t in_alloc;
static volatile long handler_pairs;

static void on_alarm(int sig)
{
    (void)sig;
    if (in_alloc)
        return;
    void *p = malloc(64);
    free(p);
    handler_pairs++;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 200}, {0, 200}};
    setitimer(ITIMER_REAL, &it, NULL);

    for (long i = 0; i < LOOPS; i++) {
        in_alloc = 1;
        void *p = malloc(32);
        in_alloc = 0;
        ((volatile char *)p)[0] = 1;
        in_alloc = 1;
        free(p);
        in_alloc = 0;
        mlmem_step((uint64_t)i);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);

    /* Report through a raw fd: stdio would allocate. */
    char line[64];
    int n = snprintf(line, sizeof line, "%d %ld\n", LOOPS, handler_pairs);
    FILE *f = fopen(argv[1], "w");
    if (!f)
        return 1;
    fwrite(line, 1, (size_t)n, f);
    fclose(f);
    return 0;
}
