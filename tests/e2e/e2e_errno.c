/* errno across allocations: a successful malloc, calloc, realloc or free
 * leaves errno as the program set it (C and POSIX let a successful malloc
 * change it, but glibc's does not, and programs that check errno after a
 * call with an allocation in between rely on that). Usage:
 *   e2e_errno MARKER MS
 * Two threads allocate and free flat out for MS milliseconds, setting errno
 * to a value of their own before each call and checking it after; MARKER is
 * created once they run (the test then stops the analyzer for a while, so
 * that the shim's rings fill and its threads wait, the path that makes
 * system calls). Exits 1, naming the call, if errno changed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t run_ns;
static const char *marker;
static const char *volatile failed_call;
static volatile int failed_errno;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define CHECK(call, expect)                                                                   \
    do {                                                                                      \
        if (errno != (expect) && !failed_call) {                                              \
            failed_errno = errno;                                                             \
            failed_call = (call);                                                             \
        }                                                                                     \
    } while (0)

static void *loop(void *arg)
{
    int mine = (int)(intptr_t)arg;
    uint64_t start = now_ns();
    int marked = 0;
    while (now_ns() - start < run_ns && !failed_call) {
        for (int i = 0; i < 1000; i++) {
            errno = mine;
            void *volatile p = malloc(32 + (size_t)(i % 64));
            CHECK("malloc", mine);
            errno = mine + 1;
            void *volatile q = calloc(4, 16);
            CHECK("calloc", mine + 1);
            errno = mine + 2;
            p = realloc(p, 200);
            CHECK("realloc", mine + 2);
            if (!p || !q)
                exit(2);
            errno = mine + 3;
            free(p);
            CHECK("free", mine + 3);
            errno = mine + 4;
            free(q);
            CHECK("free", mine + 4);
        }
        if (!marked && mine == 1000 && now_ns() - start > 100000000u) {
            int fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd >= 0)
                close(fd);
            marked = 1;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    marker = argv[1];
    run_ns = (uint64_t)strtoul(argv[2], NULL, 10) * 1000000u;
    pthread_t t;
    if (pthread_create(&t, NULL, loop, (void *)(intptr_t)2000) != 0)
        return 2;
    loop((void *)(intptr_t)1000);
    pthread_join(t, NULL);
    if (failed_call) {
        char msg[128];
        int n = 0;
        const char *s = "e2e_errno: errno changed by a successful ";
        n += (int)strlen(s);
        memcpy(msg, s, (size_t)n);
        size_t k = strlen(failed_call);
        memcpy(msg + n, failed_call, k);
        n += (int)k;
        msg[n++] = '\n';
        (void)!write(2, msg, (size_t)n);
        return 1;
    }
    return 0;
}
