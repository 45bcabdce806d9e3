/* A program for the setuid test. It loads the library argv[1] (the shim)
 * with dlopen, which works in a setuid process where LD_PRELOAD of a path
 * is ignored by the loader, so the shim's own check of AT_SECURE is what
 * keeps it off. Then it allocates 654321 bytes and keeps them. Exit code:
 * 42 when the process is secure (AT_SECURE: it runs setuid), 41 when not,
 * 1 on error. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

int main(int argc, char **argv)
{
    if (argc > 1 && !dlopen(argv[1], RTLD_NOW))
        return 1;
    char *p = malloc(654321);
    if (!p)
        return 1;
    memset(p, 1, 654321);
    return getauxval(AT_SECURE) ? 42 : 41;
}
