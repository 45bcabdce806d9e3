/*
 * hooks_io.c - reads from regular files: read, pread, pread64 and fread.
 * A buffer filled from a file is data (a dataset, a checkpoint) whatever
 * its allocation site says; the analyzer uses these events as evidence
 * (docs/attribution.md). Only reads of at least SHIM_FILE_READ_MIN bytes
 * from regular files are recorded: small reads (configuration, /proc)
 * are not what a training process keeps, and the fstat that tells a file
 * from a socket or a pipe costs less than such a read.
 *
 * glibc's fread reads through an internal call that no hook sees, so
 * fread is hooked itself; zlib's gzread and Python's file objects call
 * read through the PLT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "record.h"

#define SHIM_FILE_READ_MIN 4096

/* glibc's exported alias of fread, never interposed. */
extern size_t _IO_fread(void *buf, size_t size, size_t n, FILE *f);

static void record_file_read(int fd, const void *buf, ssize_t n)
{
    if (n < SHIM_FILE_READ_MIN || fd < 0 || !shim_recording_os(NULL))
        return;
    struct stat st;
    int saved = shim_guard, saved_errno = errno; /* the program's, untouched */
    shim_guard = SHIM_GUARD_PASS;
    int rc = fstat(fd, &st);
    shim_guard = saved;
    errno = saved_errno;
    if (rc == 0 && S_ISREG(st.st_mode))
        shim_record_simple(MLMEM_EV_FILE_READ, (uintptr_t)buf, (uint64_t)n, (uint64_t)fd, 0);
}

SHIM_EXPORT ssize_t read(int fd, void *buf, size_t count)
{
    /* libunwind draining its validation pipe (unwind.c). */
    if (SHIM_UNLIKELY(count == 1) && shim_unwind_read(__builtin_return_address(0)))
        return -1;
    if (SHIM_UNLIKELY(!g_shim.real.read)) {
        shim_resolve_real();
        if (!g_shim.real.read) /* inside the bootstrap itself */
            return syscall(SYS_read, fd, buf, count);
    }
    ssize_t n = g_shim.real.read(fd, buf, count);
    record_file_read(fd, buf, n);
    return n;
}

/* pread and pread64 (one function on 64-bit, two symbols): '*real' is the
 * resolved one of the two. */
typedef ssize_t (*pread_fn_t)(int, void *, size_t, off_t);

static ssize_t pread_hooked(pread_fn_t *real, int fd, void *buf, size_t count, off_t offset)
{
    if (SHIM_UNLIKELY(!*real)) {
        shim_resolve_real();
        if (!*real) /* inside the bootstrap itself */
            return syscall(SYS_pread64, fd, buf, count, offset);
    }
    ssize_t n = (*real)(fd, buf, count, offset);
    record_file_read(fd, buf, n);
    return n;
}

SHIM_EXPORT ssize_t pread(int fd, void *buf, size_t count, off_t offset)
{
    return pread_hooked(&g_shim.real.pread, fd, buf, count, offset);
}

SHIM_EXPORT ssize_t pread64(int fd, void *buf, size_t count, off_t offset)
{
    return pread_hooked(&g_shim.real.pread64, fd, buf, count, offset);
}

SHIM_EXPORT size_t fread(void *buf, size_t size, size_t n, FILE *f)
{
    if (SHIM_UNLIKELY(!g_shim.real.fread)) {
        shim_resolve_real();
        if (!g_shim.real.fread) /* inside the bootstrap: glibc's own alias */
            return _IO_fread(buf, size, n, f);
    }
    size_t got = g_shim.real.fread(buf, size, n, f);
    if (got && size && got <= SIZE_MAX / size)
        record_file_read(fileno(f), buf, (ssize_t)(got * size));
    return got;
}
