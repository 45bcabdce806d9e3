/* A training loop with a known shape and no annotations, for the phases
 * attribution infers from detected steps. 40 steps of 15 ms each:
 *   forward    0-6 ms  one 64 KiB activation per layer (6), 1 ms each;
 *   backward   6-12 ms per layer in reverse: a 64 KiB gradient buffer,
 *                      1 ms, then it and the layer's activation are freed;
 *   optimizer 12-15 ms no allocations.
 * Live bytes peak at 6 ms (6 activations + the last layer's gradient
 * buffer: 40% of the step) and are back half-way (3 of 7 blocks) by 9 ms
 * (60%). Time is
 * kept by spinning on the clock so a loaded machine stretches nothing. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LAYERS 6
#define BYTES (64 << 10) /* under the mmap threshold: cheap */

static void spin_ms(double ms)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6 < ms);
}

int main(void)
{
    char *act[LAYERS];
    for (int step = 0; step < 40; step++) {
        for (int l = 0; l < LAYERS; l++) {
            act[l] = malloc(BYTES);
            memset(act[l], l, BYTES);
            spin_ms(1);
        }
        for (int l = LAYERS - 1; l >= 0; l--) {
            char *grad = malloc(BYTES);
            memset(grad, l, BYTES);
            spin_ms(1);
            free(grad);
            free(act[l]);
        }
        spin_ms(3);
    }
    return 0;
}
