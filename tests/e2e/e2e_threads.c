/* 8 threads; thread i allocates 1000 blocks of (i + 1) * 16 bytes, and
 * after a barrier frees the blocks of thread (i + 7) % 8: every block is
 * freed by another thread than the one that allocated it. Totals: 8000
 * allocations, 8000 frees, 576,000 bytes, nothing leaked. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 8
#define BLOCKS 1000

static void *blocks[THREADS][BLOCKS];
static pthread_barrier_t barrier;

static void *worker(void *arg)
{
    long i = (long)arg;
    char name[16];
    snprintf(name, sizeof name, "worker%ld", i);
    pthread_setname_np(pthread_self(), name);
    for (int k = 0; k < BLOCKS; k++) {
        blocks[i][k] = malloc((size_t)(i + 1) * 16);
        if (!blocks[i][k])
            abort();
    }
    pthread_barrier_wait(&barrier);
    long other = (i + THREADS - 1) % THREADS;
    for (int k = 0; k < BLOCKS; k++)
        free(blocks[other][k]);
    return NULL;
}

int main(void)
{
    pthread_t t[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS);
    for (long i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
            return 1;
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    return 0;
}
