/* Built with -static: LD_PRELOAD cannot reach it. mlmem must say so. */
#include <stdlib.h>

int main(void)
{
    void *volatile p = malloc(1000);
    free(p);
    return 4;
}
