/* calloc and reallocarray whose size overflows return NULL and record
 * nothing; one good calloc of 100 bytes is the only allocation. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>

/* volatile: the compiler must not see (and warn about) the sizes. */
static volatile size_t huge = SIZE_MAX / 2;

int main(void)
{
    if (calloc(huge, 4) != NULL)
        return 1;
    if (reallocarray(NULL, huge, 4) != NULL)
        return 1;
    if (malloc(huge * 2 - 4096) != NULL)
        return 1;
    char *p = calloc(10, 10);
    if (!p || p[99] != 0)
        return 1;
    free(p);
    return 0;
}
