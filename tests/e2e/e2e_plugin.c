/* A library loaded with dlopen by e2e_dlopen. */
#include <stdlib.h>
#include <string.h>

void *e2e_plugin_alloc(size_t n)
{
    void *p = malloc(n);
    if (p)
        memset(p, 7, n);
    return p;
}
