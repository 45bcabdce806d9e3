/* A steady allocator for the stalled-analyzer test. Usage:
 *   e2e_stall COUNTS MARKER MS
 * Allocates and frees 64-byte blocks (one malloc and one free per
 * iteration, nothing else allocates: no stdio; each block is freed in the
 * next iteration, after the next one is made, so that the shim sends both
 * events instead of folding the pair into a count) for MS milliseconds of wall
 * time, creating MARKER once the loop runs. At the end it writes to COUNTS
 * "iterations longest_gap_ns vmhwm_kib": the number of iterations, the
 * longest time one iteration took (how long the shim ever held the program
 * up) and the program's peak resident set. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* VmHWM in KiB from /proc/self/status, read without stdio. */
static long vmhwm_kib(void)
{
    static char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strstr(buf, "VmHWM:");
    return p ? strtol(p + 6, NULL, 10) : -1;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    uint64_t run_ns = (uint64_t)strtoul(argv[3], NULL, 10) * 1000000u;
    uint64_t start = now_ns(), last = start, longest = 0, iterations = 0;
    int marked = 0;
    void *prev = NULL;
    for (;;) {
        void *volatile p = malloc(64);
        if (!p)
            return 1;
        ((char *)p)[0] = 1;
        free(prev);
        prev = p;
        iterations++;
        uint64_t t = now_ns();
        if (t - last > longest)
            longest = t - last;
        last = t;
        if (!marked && t - start > 100000000u) {
            int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd >= 0)
                close(fd);
            marked = 1;
        }
        if (t - start >= run_ns)
            break;
    }
    free(prev);
    char out[128];
    int len = snprintf(out, sizeof out, "%llu %llu %ld\n", (unsigned long long)iterations,
                       (unsigned long long)longest, vmhwm_kib());
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, out, (size_t)len) != len)
        return 1;
    close(fd);
    return 0;
}
