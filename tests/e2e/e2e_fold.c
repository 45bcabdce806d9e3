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
 *   nested   NESTS times: A (100 + (i % 8) * 8 bytes), B (300) freed at
 *            once, D (200), C (48) freed at once, A freed (nested: the
 *            thread made and freed others since), D realloc'd to 250 and
 *            freed; then a recursion DEPTH deep holding a block of 16 +
 *            depth bytes at each level, more than the shim holds. Folded,
 *            the figures must be those of every event sent.
 *   handnested ROUNDS times, the main thread makes a 200-byte block A,
 *            hands it to a worker, makes a 64-byte block B, and waits; the
 *            worker frees A, makes a 200-byte block R (the allocator hands
 *            it A's address) and hands it back; the main thread frees B,
 *            then R: an address it still holds as A, which it must not
 *            fold (another thread took numbers since A was made).
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
#define NESTS 2000
#define DEPTH 40

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

static void hold_deeper(int depth)
{
    char *p = malloc(16 + (size_t)depth);
    p[0] = 1;
    sink = p;
    if (depth + 1 < DEPTH)
        hold_deeper(depth + 1);
    free(p);
}

static void nested(void)
{
    for (int i = 0; i < NESTS; i++) {
        char *a = malloc(100 + (size_t)(i % 8) * 8);
        a[0] = 1;
        char *b = malloc(300);
        b[0] = 1;
        sink = b;
        free(b);
        char *d = malloc(200);
        d[0] = 1;
        char *c = malloc(48);
        c[0] = 1;
        sink = c;
        free(c);
        sink = a;
        free(a);
        d = realloc(d, 250);
        sink = d;
        free(d);
    }
    hold_deeper(0);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static void *handed; /* the block in transit; NULL when the worker freed it */
static int done;

static void *handed_back; /* handnested: the worker's block for the main thread */

/* Frees each block handed to it; with 'arg' non-NULL (handnested) then
 * makes a 200-byte block and hands it back. */
static void *worker(void *arg)
{
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!handed && !done)
            pthread_cond_wait(&changed, &lock);
        if (!handed)
            break;
        free(handed);
        handed = NULL;
        if (arg) {
            handed_back = malloc(200); /* the allocator's cache: A's address */
            memset(handed_back, 2, 200);
        }
        pthread_cond_broadcast(&changed);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* Tells the worker to stop, and waits for it. Returns 0 if it ended. */
static int stop_worker(pthread_t t)
{
    pthread_mutex_lock(&lock);
    done = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    return pthread_join(t, NULL) != 0;
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
    return stop_worker(t);
}

static int handnested(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, worker, &handed_back) != 0)
        return 1;
    for (int i = 0; i < ROUNDS; i++) {
        void *a = malloc(200);
        memset(a, 1, 200);
        pthread_mutex_lock(&lock);
        handed = a;
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&lock);
        char *b = malloc(64);
        b[0] = 1;
        sink = b;
        pthread_mutex_lock(&lock);
        while (!handed_back)
            pthread_cond_wait(&changed, &lock);
        void *r = handed_back;
        handed_back = NULL;
        pthread_mutex_unlock(&lock);
        free(b);
        free(r);
    }
    return stop_worker(t);
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
    if (argc > 1 && strcmp(argv[1], "nested") == 0) {
        nested();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "handback") == 0)
        return handback();
    if (argc > 1 && strcmp(argv[1], "handnested") == 0)
        return handnested();
    if (argc > 1 && strcmp(argv[1], "blocked") == 0)
        return blocked();
    return 2;
}
