/*
 * e2e_sockpath.c - tells the test where the analyzer's socket is, then
 * waits for the test to say it is done. Writes $MLMEM_SOCKET to the file
 * argv[1], then waits (up to 20 s) until the file argv[2] exists.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    const char *sock = getenv("MLMEM_SOCKET");
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return 1;
    fputs(sock ? sock : "", f);
    fclose(f);
    rename(tmp, argv[1]); /* appears whole */
    for (int i = 0; i < 2000 && access(argv[2], F_OK) != 0; i++)
        usleep(10000);
    return 0;
}
