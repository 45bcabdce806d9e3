/*
 * alloc_storm.c - an allocation-bound program shaped like a training loop.
 * Each step: SMALL short-lived small allocations (8..256 bytes, like a
 * framework's temporaries, each touched once), and LAYERS activation-like
 * buffers of 64 KiB..1 MiB allocated in forward order and freed in reverse.
 *
 *   alloc_storm [steps] [threads] [small-per-step]
 *
 * Prints a checksum so the work cannot be optimized away.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAYERS 16

/* Every block escapes through here, so the compiler cannot elide a
 * malloc/free pair. */
void *volatile storm_sink;

typedef struct {
    int steps;
    int small;
    uint64_t sum;
} job_t;

static void *storm(void *arg)
{
    job_t *j = arg;
    uint64_t x = 88172645463325252ull ^ (uintptr_t)j, sum = 0;
    for (int s = 0; s < j->steps; s++) {
        void *layers[LAYERS];
        for (int l = 0; l < LAYERS; l++) {
            size_t n = (size_t)(64 * 1024) << (l % 5);
            layers[l] = malloc(n);
            storm_sink = layers[l];
            memset(layers[l], l, 4096);
        }
        for (int i = 0; i < j->small; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t n = 8 + (x & 248);
            unsigned char *p = malloc(n);
            storm_sink = p;
            p[0] = (unsigned char)i;
            sum += p[0];
            free(p);
        }
        for (int l = LAYERS - 1; l >= 0; l--)
            free(layers[l]);
    }
    j->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 200;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    int small = argc > 3 ? atoi(argv[3]) : 20000;
    if (threads < 1 || threads > 64)
        return 2;
    pthread_t t[64];
    job_t jobs[64];
    for (int i = 0; i < threads; i++) {
        jobs[i] = (job_t){steps, small, 0};
        pthread_create(&t[i], NULL, storm, &jobs[i]);
    }
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        sum += jobs[i].sum;
    }
    printf("checksum %llu\n", (unsigned long long)sum);
    return 0;
}
