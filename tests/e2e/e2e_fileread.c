/*
 * e2e_fileread.c - fills buffers from a regular file (argv[1], at least
 * 300000 bytes) with fread, read and pread, and one from a pipe. The shim
 * records the file reads (FILE_READ) and not the pipe's:
 *   a 200000-byte malloc'd block: fread 200000 bytes
 *   a 65536-byte malloc'd block: read 65536 bytes, then pread 65536 again
 *   a 32768-byte anonymous mapping: read 32768 bytes
 *   a 50000-byte malloc'd block: 50000 bytes from a pipe (not a file)
 * Blocks stay live to the end.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    FILE *f = fopen(argv[1], "rb");
    if (!f)
        return 1;
    char *a = malloc(200000);
    if (fread(a, 1, 200000, f) != 200000)
        return 1;
    fclose(f);

    int fd = open(argv[1], O_RDONLY);
    char *b = malloc(65536);
    if (read(fd, b, 65536) != 65536 || pread(fd, b, 65536, 4096) != 65536)
        return 1;
    char *m = mmap(NULL, 32768, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || read(fd, m, 32768) != 32768)
        return 1;
    close(fd);

    int p[2];
    if (pipe(p) != 0)
        return 1;
    pid_t child = fork();
    if (child == 0) {
        static char chunk[50000];
        memset(chunk, 7, sizeof chunk);
        (void)!write(p[1], chunk, sizeof chunk);
        _exit(0);
    }
    close(p[1]);
    char *c = malloc(50000);
    size_t got = 0;
    while (got < 50000) {
        ssize_t n = read(p[0], c + got, 50000 - got);
        if (n <= 0)
            return 1;
        got += (size_t)n;
    }
    waitpid(child, NULL, 0);
    printf("%d %d %d %d\n", a[0], b[0], m[0], c[0]);
    return 0;
}
