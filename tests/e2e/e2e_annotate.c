/* Uses mlmem/annotate.h: 5 steps with phases, a weights region and a tag.
 * Runs unchanged without the shim (exit 0 either way; prints nothing). */
#include <stdlib.h>
#include <string.h>

#include <mlmem/annotate.h>

int main(void)
{
    mlmem_region_begin(MLMEM_CAT_WEIGHTS);
    float *w = malloc(4096 * sizeof *w);
    mlmem_region_end();
    memset(w, 0, 4096 * sizeof *w);
    for (int step = 0; step < 5; step++) {
        mlmem_step((uint64_t)step);
        mlmem_phase(MLMEM_PHASE_FORWARD);
        float *act = malloc(1024 * sizeof *act);
        mlmem_tag(act, MLMEM_CAT_ACTIVATIONS);
        memset(act, 0, 1024 * sizeof *act);
        mlmem_phase(MLMEM_PHASE_BACKWARD);
        free(act);
    }
    free(w);
    return 0;
}
