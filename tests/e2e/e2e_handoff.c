/*
 * e2e_handoff.c - threads that take turns allocating, then all at once, so
 * the shim's sequence counter changes hands many times (seq.c: a thread
 * that takes 4096 numbers in a row becomes its owner; any other thread
 * takes it back). Every figure is known: thread i makes TURNS turns of
 * PAIRS malloc/free pairs of 24 bytes plus one kept block of KEEP(i) bytes,
 * then CONCURRENT pairs of 40 bytes while the others do the same, then
 * frees its kept blocks. A number lost or given twice shows up as a lost
 * event, an unmatched free or a wrong per-thread count.
 */
#include <pthread.h>
#include <stdlib.h>

#define THREADS 4
#define TURNS 6
#define PAIRS 6000
#define CONCURRENT 20000
#define KEEP(i) (1000u + 100u * (unsigned)(i))

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static int turn;            /* whose turn it is: turn % THREADS */
static pthread_barrier_t all_done_turns;
static __thread void *volatile sink; /* per thread: the program itself races on nothing */

static void *worker(void *arg)
{
    int id = (int)(long)arg;
    void *kept[TURNS];
    for (int t = 0; t < TURNS; t++) {
        pthread_mutex_lock(&lock);
        while (turn % THREADS != id)
            pthread_cond_wait(&turn_changed, &lock);
        pthread_mutex_unlock(&lock);
        for (int i = 0; i < PAIRS; i++) {
            void *p = malloc(24);
            sink = p;
            free(p);
        }
        kept[t] = malloc(KEEP(id));
        sink = kept[t];
        pthread_mutex_lock(&lock);
        turn++;
        pthread_cond_broadcast(&turn_changed);
        pthread_mutex_unlock(&lock);
    }
    pthread_barrier_wait(&all_done_turns);
    for (int i = 0; i < CONCURRENT; i++) {
        void *p = malloc(40);
        sink = p;
        free(p);
    }
    for (int t = 0; t < TURNS; t++)
        free(kept[t]);
    return NULL;
}

int main(void)
{
    pthread_t th[THREADS];
    pthread_barrier_init(&all_done_turns, NULL, THREADS);
    for (long i = 0; i < THREADS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)i) != 0)
            return 1;
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    return 0;
}
