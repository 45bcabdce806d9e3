/* realloc chains. Live bytes: 100, 1000 (the peak), 10, 60, 260, 60, 0.
 * Allocations 5 (malloc, 2 reallocs of a block, realloc(NULL),
 * reallocarray(NULL)); frees 5 (2 by realloc, realloc(p, 0), 2 free). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(100);
    memset(p, 1, 100);
    p = realloc(p, 1000);
    p = realloc(p, 10);
    char *q = realloc(NULL, 50);
    char *r = reallocarray(NULL, 10, 20);
    if (!p || !q || !r)
        return 1;
    r = realloc(r, 0); /* glibc frees the block and returns NULL */
    free(r);
    free(p);
    free(q);
    return 0;
}
