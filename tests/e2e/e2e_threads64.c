/* 64 threads allocating and freeing at the same time. Thread i (named
 * "t<i>") allocates 1000 blocks of (i + 1) * 8 bytes, freeing each block
 * it allocated 4 iterations earlier, with all 64 started together (a
 * barrier); it leaks its last 4 blocks. Exact figures per thread: 1000
 * allocations, 996 frees, 8000 * (i + 1) bytes, 32 * (i + 1) leaked. At
 * most 2000 events per thread, so a thread's ring (8192 slots) never
 * fills: nothing may be dropped. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 64
#define BLOCKS 1000
#define KEEP 4

static pthread_barrier_t barrier;

static void *worker(void *arg)
{
    long i = (long)arg;
    char name[16];
    snprintf(name, sizeof name, "t%ld", i);
    pthread_setname_np(pthread_self(), name);
    void *ring[KEEP] = {0};
    pthread_barrier_wait(&barrier);
    for (int k = 0; k < BLOCKS; k++) {
        void *p = malloc((size_t)(i + 1) * 8);
        if (!p)
            abort();
        memset(p, (int)i, (size_t)(i + 1) * 8);
        free(ring[k % KEEP]); /* free(NULL) the first KEEP times */
        ring[k % KEEP] = p;
    }
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
