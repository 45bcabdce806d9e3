/*
 * e2e_fold.c - what the shim folds (preload/fold.c), with every figure
 * known. Usage: e2e_fold MODE
 *
 *   temps    TEMPS blocks of 16 + (i % 64) * 32 bytes, each freed right
 *            after it is made, in RUNS runs separated by a kept block of
 *            KEEP bytes (freed at the end): every temporary is folded.
 *   handback ROUNDS times, the main thread makes a 200-byte block and hands
 *            it to a worker that frees it, with no other event of the
 *            main thread in between (it waits on a condition variable):
 *            the block is still held, unsent, when the worker's free is
 *            sent, so its ALLOC arrives late (ALLOC_LATE). Then the main
 *            thread makes and frees a 48-byte temporary.
 *   blocked  a worker makes and frees TEMPS temporaries of 72 bytes, makes
 *            a 333-byte block it keeps, and blocks for good; the main
 *            thread exits meanwhile. The worker's held block and folded
 *            counts are sent by the shim's writer at the final drain.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define TEMPS 3000
#define RUNS 5
#define KEEP 2000
#define ROUNDS 500

static void *volatile sink;

static void temps(void)
{
    void *kept[RUNS];
    for (int r = 0; r < RUNS; r++) {
        for (int i = 0; i < TEMPS; i++) {
            char *p = malloc(16 + (size_t)(i % 64) * 32);
            p[0] = 1;
            sink = p;
            free(p);
        }
        kept[r] = malloc(KEEP);
        sink = kept[r];
    }
    for (int r = 0; r < RUNS; r++)
        free(kept[r]);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static void *handed; /* the block in transit; NULL when the worker freed it */
static int done;

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!handed && !done)
            pthread_cond_wait(&changed, &lock);
        if (!handed)
            break;
        free(handed);
        handed = NULL;
        pthread_cond_broadcast(&changed);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int handback(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        return 1;
    for (int i = 0; i < ROUNDS; i++) {
        void *p = malloc(200);
        memset(p, 1, 200);
        pthread_mutex_lock(&lock);
        handed = p;
        pthread_cond_broadcast(&changed);
        while (handed)
            pthread_cond_wait(&changed, &lock);
        pthread_mutex_unlock(&lock);
        char *q = malloc(48);
        q[0] = 1;
        sink = q;
        free(q);
    }
    pthread_mutex_lock(&lock);
    done = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    return pthread_join(t, NULL) != 0;
}

static int worker_ready;

static void *blocked_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < TEMPS; i++) {
        char *p = malloc(72);
        p[0] = 1;
        sink = p;
        free(p);
    }
    sink = malloc(333);
    pthread_mutex_lock(&lock);
    worker_ready = 1;
    pthread_cond_broadcast(&changed);
    for (;;) /* blocked until the process exits */
        pthread_cond_wait(&changed, &lock);
    return NULL;
}

static int blocked(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, blocked_worker, NULL) != 0)
        return 1;
    pthread_mutex_lock(&lock);
    while (!worker_ready)
        pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
    exit(0); /* the worker still waits, holding its last block */
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "temps") == 0) {
        temps();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "handback") == 0)
        return handback();
    if (argc > 1 && strcmp(argv[1], "blocked") == 0)
        return blocked();
    return 2;
}
