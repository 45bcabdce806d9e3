/*
 * debug_cache.c - the inflated debug file cache behind debug_cache.h.
 *
 * An entry is written with libelf: the source's headers and sections copied
 * in order into a new file, each compressed section inflated first
 * (elf_compress(scn, 0, 0)). libelf lays the new file out itself; section
 * indices, names, links, the build ID note and the program headers are the
 * source's, so libdw reads the copy as it would the original.
 */
#define _GNU_SOURCE
#include "debug_cache.h"

#include <dirent.h>
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A temporary file older than this was left by a run that died. */
#define DC_STALE_TEMP_SECONDS 3600

char *prof_debug_cache_dir(void)
{
    const char *own = getenv("MLMEM_CACHE_DIR");
    if (own != NULL)
        return own[0] != '\0' ? strdup(own) : NULL;
    char *dir = NULL;
    int n = -1;
    /* The XDG spec says a relative XDG_CACHE_HOME is invalid and ignored. */
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (xdg != NULL && xdg[0] == '/')
        n = asprintf(&dir, "%s/mlmem", xdg);
    else if (home != NULL && home[0] == '/')
        n = asprintf(&dir, "%s/.cache/mlmem", home);
    return n < 0 ? NULL : dir;
}

int prof_debug_cache_make_dirs(const char *dir)
{
    char *path = strdup(dir);
    if (path == NULL)
        return -1;
    int rc = 0;
    for (char *p = path + 1; rc == 0; p++) {
        bool end = *p == '\0';
        if (*p != '/' && !end)
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            rc = -1;
        if (end)
            break;
        *p = '/';
    }
    free(path);
    return rc;
}

/* Whether 'elf' carries the GNU build ID 'id[0..len)'. */
static bool dc_elf_has_build_id(Elf *elf, const unsigned char *id, size_t len)
{
    const void *got;
    ssize_t n = elf != NULL && elf_kind(elf) == ELF_K_ELF ? dwelf_elf_gnu_build_id(elf, &got) : -1;
    return n == (ssize_t)len && memcmp(got, id, len) == 0;
}

static bool dc_fd_has_build_id(int fd, const unsigned char *id, size_t len)
{
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    bool ok = dc_elf_has_build_id(elf, id, len);
    elf_end(elf);
    return ok;
}

/* What the compressed sections of 'elf' inflate to, in bytes. */
static uint64_t dc_inflated_size(Elf *elf)
{
    uint64_t sum = 0;
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn)) != NULL;) {
        GElf_Shdr sh;
        GElf_Chdr ch;
        if (gelf_getshdr(scn, &sh) != NULL && (sh.sh_flags & SHF_COMPRESSED) != 0 &&
            gelf_getchdr(scn, &ch) != NULL)
            sum += ch.ch_size;
    }
    return sum;
}

/* Writes 'src' to 'out' with every compressed section inflated. Inflates
 * the sections of 'src' in memory (not on disk). */
static bool dc_write_inflated(Elf *src, int out)
{
    Elf *dst = elf_begin(out, ELF_C_WRITE, NULL);
    if (dst == NULL)
        return false;
    bool ok = false;
    GElf_Ehdr ehdr;
    size_t phnum;
    if (gelf_getehdr(src, &ehdr) == NULL || elf_getphdrnum(src, &phnum) != 0 ||
        ehdr.e_shstrndx >= SHN_LORESERVE ||    /* extended numbering: not seen in debug files */
        gelf_newehdr(dst, gelf_getclass(src)) == NULL)
        goto done;
    if (phnum > 0 && gelf_newphdr(dst, phnum) == NULL)
        goto done;
    for (size_t i = 0; i < phnum; i++) {
        GElf_Phdr phdr;
        if (gelf_getphdr(src, (int)i, &phdr) == NULL || gelf_update_phdr(dst, (int)i, &phdr) == 0)
            goto done;
    }
    /* elf_newscn makes section 0 with the first call, so the copies keep
     * their indices, which sh_link, sh_info and e_shstrndx refer to. */
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(src, scn)) != NULL;) {
        GElf_Shdr shdr;
        if (gelf_getshdr(scn, &shdr) == NULL)
            goto done;
        if ((shdr.sh_flags & SHF_COMPRESSED) != 0 &&
            (elf_compress(scn, 0, 0) < 0 || gelf_getshdr(scn, &shdr) == NULL))
            goto done;
        Elf_Scn *copy = elf_newscn(dst);
        if (copy == NULL || gelf_update_shdr(copy, &shdr) == 0)
            goto done;
        for (Elf_Data *in = NULL; (in = elf_getdata(scn, in)) != NULL;) {
            Elf_Data *data = elf_newdata(copy);
            if (data == NULL)
                goto done;
            data->d_buf = in->d_buf;
            data->d_type = in->d_type;
            data->d_size = in->d_size;
            data->d_off = in->d_off;
            data->d_align = in->d_align;
            data->d_version = in->d_version;
        }
    }
    /* e_phoff and e_shoff are recomputed: libelf lays the file out. */
    ok = gelf_update_ehdr(dst, &ehdr) != 0 && elf_update(dst, ELF_C_WRITE) >= 0;
done:
    elf_end(dst);
    return ok;
}

/* Creates the entry 'path' in 'dir' from the debug file 'source' when that
 * file has the build ID and compressed sections worth inflating. Returns a
 * read-only descriptor of the entry, or -1. */
static int dc_create(const char *dir, const char *path, const char *source,
                     const unsigned char *id, size_t len)
{
    int fd = open(source, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    Elf *src = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    int entry = -1;
    char *tmp = NULL;
    uint64_t inflated = dc_elf_has_build_id(src, id, len) ? dc_inflated_size(src) : 0;
    if (inflated < PROF_DEBUG_CACHE_MIN_INFLATED || inflated > PROF_DEBUG_CACHE_MAX_BYTES / 2 ||
        prof_debug_cache_make_dirs(dir) != 0 || asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
        tmp = NULL;
        goto done;
    }
    int out = mkostemp(tmp, O_CLOEXEC);
    if (out < 0)
        goto done;
    bool written = dc_write_inflated(src, out);
    close(out);
    if (written && rename(tmp, path) == 0)
        entry = open(path, O_RDONLY | O_CLOEXEC);
    else
        unlink(tmp);
done:
    free(tmp);
    elf_end(src);
    close(fd);
    return entry;
}

int prof_debug_cache_open(const char *dir, const char *debug_root,
                          const unsigned char *build_id, size_t len, char **cached_path)
{
    if (dir == NULL || len < 2 || len > 64)
        return -1;
    elf_version(EV_CURRENT);
    char hex[2 * 64 + 1];
    for (size_t i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", build_id[i]);
    char *path;
    if (asprintf(&path, "%s/%s.debug", dir, hex) < 0)
        return -1;

    int entry = open(path, O_RDONLY | O_CLOEXEC);
    if (entry >= 0 && dc_fd_has_build_id(entry, build_id, len)) {
        futimens(entry, NULL);    /* used now: last to be trimmed */
        *cached_path = path;
        return entry;
    }
    if (entry >= 0) {             /* torn, or not what its name says */
        close(entry);
        unlink(path);
    }
    char *source;
    if (asprintf(&source, "%s/.build-id/%.2s/%s.debug", debug_root, hex, hex + 2) < 0) {
        free(path);
        return -1;
    }
    entry = dc_create(dir, path, source, build_id, len);
    free(source);
    if (entry < 0) {
        free(path);
        return -1;
    }
    prof_debug_cache_trim(dir, PROF_DEBUG_CACHE_MAX_BYTES);
    *cached_path = path;
    return entry;
}

/* ---- trimming ---- */

typedef struct {
    char *name;
    uint64_t bytes;
    struct timespec used;
} dc_entry_t;

static int dc_cmp_used(const void *a, const void *b)
{
    const struct timespec *x = &((const dc_entry_t *)a)->used;
    const struct timespec *y = &((const dc_entry_t *)b)->used;
    if (x->tv_sec != y->tv_sec)
        return x->tv_sec < y->tv_sec ? -1 : 1;
    return (x->tv_nsec > y->tv_nsec) - (x->tv_nsec < y->tv_nsec);
}

static bool dc_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

size_t prof_debug_cache_trim(const char *dir, uint64_t max_bytes)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    dc_entry_t *entries = NULL;
    size_t count = 0, cap = 0, removed = 0;
    uint64_t total = 0;
    time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        struct stat st;
        /* The kept frames (frame_cache.h) live and go with the debug files. */
        bool temp = strstr(e->d_name, ".debug.tmp.") != NULL ||
                    strstr(e->d_name, ".frames.tmp.") != NULL;
        if ((!temp && !dc_ends_with(e->d_name, ".debug") && !dc_ends_with(e->d_name, ".frames")) ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (temp) {
            if (st.st_mtime < now - DC_STALE_TEMP_SECONDS && unlinkat(dirfd(d), e->d_name, 0) == 0)
                removed++;
            continue;
        }
        if (count == cap) {
            size_t grown = cap ? 2 * cap : 16;
            dc_entry_t *more = realloc(entries, grown * sizeof(*entries));
            if (more == NULL)
                break;
            entries = more;
            cap = grown;
        }
        char *name = strdup(e->d_name);
        if (name == NULL)
            break;
        entries[count++] = (dc_entry_t){name, (uint64_t)st.st_size, st.st_mtim};
        total += (uint64_t)st.st_size;
    }
    if (count > 1)
        qsort(entries, count, sizeof(*entries), dc_cmp_used);
    for (size_t i = 0; i < count && total > max_bytes; i++) {
        if (unlinkat(dirfd(d), entries[i].name, 0) == 0) {
            total -= entries[i].bytes;
            removed++;
        }
    }
    for (size_t i = 0; i < count; i++)
        free(entries[i].name);
    free(entries);
    closedir(d);
    return removed;
}
