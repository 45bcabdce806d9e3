/*
 * test_debug_cache.c - the inflated debug file cache (profiler/debug_cache.c)
 * on a real compressed debug file: libc's, from libc6-dbg (which
 * scripts/install-deps.sh installs), found by the build ID of the libc this
 * test runs on. Each test gets its own cache directory, and where it needs
 * other sources, its own debug root laid out as /usr/lib/debug is.
 */
#define _GNU_SOURCE
#include <elfutils/libdwelf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <link.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "profiler/debug_cache.h"

/* ---------------------------------------------------------------------- */
/* Fixture                                                                 */

typedef struct {
    char tmp[64];            /* everything the test writes is under it */
    char dir[128];           /* the cache directory: tmp/cache          */
    char root[128];          /* a debug root of the test's: tmp/root    */
    unsigned char id[64];    /* libc's build ID                         */
    size_t id_len;
    char hex[129];
    char libc_debug[512];    /* libc's debug file under /usr/lib/debug  */
    char entry[512];         /* where its cache entry goes              */
} dctest_t;

static int dctest_libc_path(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    if (strstr(info->dlpi_name, "/libc.so.6") == NULL)
        return 0;
    snprintf(arg, 512, "%s", info->dlpi_name);
    return 1;
}

/* Libc's build ID, read from the file this process mapped. */
static void dctest_libc_build_id(dctest_t *t)
{
    char path[512] = "";
    dl_iterate_phdr(dctest_libc_path, path);
    assert_true(path[0] != '\0');
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    elf_version(EV_CURRENT);
    Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
    const void *id;
    ssize_t n = dwelf_elf_gnu_build_id(elf, &id);
    assert_true(n > 0 && (size_t)n <= sizeof t->id);
    memcpy(t->id, id, (size_t)n);
    t->id_len = (size_t)n;
    for (size_t i = 0; i < t->id_len; i++)
        snprintf(t->hex + 2 * i, 3, "%02x", t->id[i]);
    elf_end(elf);
    close(fd);
}

static int dctest_setup(void **state)
{
    dctest_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -1;
    snprintf(t->tmp, sizeof t->tmp, "/tmp/mlmem-dctest.XXXXXX");
    if (mkdtemp(t->tmp) == NULL)
        return -1;
    snprintf(t->dir, sizeof t->dir, "%s/cache", t->tmp);
    snprintf(t->root, sizeof t->root, "%s/root", t->tmp);
    dctest_libc_build_id(t);
    snprintf(t->libc_debug, sizeof t->libc_debug, "%s/.build-id/%.2s/%s.debug",
             PROF_DEBUG_ROOT, t->hex, t->hex + 2);
    snprintf(t->entry, sizeof t->entry, "%s/%s.debug", t->dir, t->hex);
    *state = t;
    return 0;
}

static int dctest_teardown(void **state)
{
    dctest_t *t = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->tmp);
    int rc = system(cmd);
    free(t);
    return rc == 0 ? 0 : -1;
}

/* The libc6-dbg file must be there: without it these tests prove nothing. */
static void dctest_need_libc_debug(const dctest_t *t)
{
    if (access(t->libc_debug, R_OK) != 0)
        fail_msg("%s is missing: install libc6-dbg (scripts/install-deps.sh does)",
                 t->libc_debug);
}

static void dctest_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void dctest_copy_file(const char *from, const char *to)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\" && cp '%s' '%s'", to, from, to);
    assert_int_equal(system(cmd), 0);
}

/* Puts 'file' in the test's debug root as the debug file of build ID 'hex'. */
static void dctest_root_holds(const dctest_t *t, const char *hex, const char *file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/.build-id/%.2s/%s.debug", t->root, hex, hex + 2);
    dctest_copy_file(file, path);
}

static int dctest_open(const dctest_t *t, const char *root, char **path)
{
    *path = NULL;
    return prof_debug_cache_open(t->dir, root, t->id, t->id_len, path);
}

/* Opens libc's entry through the cache, sources under 'root': a
 * descriptor of t->entry. */
static int dctest_open_entry(const dctest_t *t, const char *root)
{
    char *path;
    int fd = dctest_open(t, root, &path);
    assert_true(fd >= 0);
    assert_string_equal(path, t->entry);
    free(path);
    return fd;
}

/* Makes libc's cache entry from its libc6-dbg file. */
static void dctest_make_entry(const dctest_t *t)
{
    dctest_need_libc_debug(t);
    close(dctest_open_entry(t, PROF_DEBUG_ROOT));
}

/* ---------------------------------------------------------------------- */
/* Tests                                                                   */

/* The entry is libc's debug file with every section inflated: the same
 * sections, in the same order, with the same names, types and bytes. */
static void test_debug_cache_inflates_libc_debug_file(void **state)
{
    dctest_t *t = *state;
    dctest_need_libc_debug(t);
    int fd = dctest_open_entry(t, PROF_DEBUG_ROOT);

    int ofd = open(t->libc_debug, O_RDONLY);
    assert_true(ofd >= 0);
    Elf *orig = elf_begin(ofd, ELF_C_READ, NULL);
    Elf *copy = elf_begin(fd, ELF_C_READ, NULL);
    assert_non_null(orig);
    assert_non_null(copy);
    size_t on, cn, ostr, cstr;
    assert_int_equal(elf_getshdrnum(orig, &on), 0);
    assert_int_equal(elf_getshdrnum(copy, &cn), 0);
    assert_int_equal(on, cn);
    assert_int_equal(elf_getshdrstrndx(orig, &ostr), 0);
    assert_int_equal(elf_getshdrstrndx(copy, &cstr), 0);
    assert_int_equal(ostr, cstr);
    int compressed = 0;
    for (size_t i = 1; i < on; i++) {
        Elf_Scn *os = elf_getscn(orig, i), *cs = elf_getscn(copy, i);
        GElf_Shdr oh, ch;
        assert_non_null(gelf_getshdr(os, &oh));
        if (oh.sh_flags & SHF_COMPRESSED) {
            compressed++;
            assert_true(elf_compress(os, 0, 0) >= 0);
            assert_non_null(gelf_getshdr(os, &oh));
        }
        assert_non_null(gelf_getshdr(cs, &ch));
        assert_int_equal(ch.sh_flags & SHF_COMPRESSED, 0);
        assert_string_equal(elf_strptr(copy, cstr, ch.sh_name), elf_strptr(orig, ostr, oh.sh_name));
        assert_int_equal(ch.sh_type, oh.sh_type);
        assert_int_equal(ch.sh_size, oh.sh_size);
        assert_int_equal(ch.sh_link, oh.sh_link);
        assert_int_equal(ch.sh_addr, oh.sh_addr);
        if (oh.sh_type == SHT_NOBITS)
            continue;
        Elf_Data *od = elf_rawdata(os, NULL), *cd = elf_rawdata(cs, NULL);
        if (oh.sh_size == 0)
            continue;
        assert_non_null(od);
        assert_non_null(cd);
        assert_int_equal(cd->d_size, od->d_size);
        assert_memory_equal(cd->d_buf, od->d_buf, od->d_size);
    }
    assert_true(compressed > 0); /* or the test proved nothing */
    const void *id;
    assert_int_equal(dwelf_elf_gnu_build_id(copy, &id), (ssize_t)t->id_len);
    assert_memory_equal(id, t->id, t->id_len);
    elf_end(orig);
    elf_end(copy);
    close(ofd);
    close(fd);

    struct stat st;
    assert_int_equal(stat(t->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

/* A second open uses the entry as it is, and marks it used now. */
static void test_debug_cache_reuses_entry(void **state)
{
    dctest_t *t = *state;
    dctest_make_entry(t);
    struct stat before, after;
    struct timespec long_ago[2] = {{946684800, 0}, {946684800, 0}};
    assert_int_equal(utimensat(AT_FDCWD, t->entry, long_ago, 0), 0);
    assert_int_equal(stat(t->entry, &before), 0);

    /* From a root without the source: only the entry can serve it. */
    int fd = dctest_open_entry(t, t->root);
    assert_int_equal(stat(t->entry, &after), 0);
    assert_int_equal(after.st_ino, before.st_ino);
    assert_true(after.st_mtime > time(NULL) - 600);
    close(fd);
}

/* An entry cut short (a crash after the rename, before the data reached
 * the disk) is not used: it is made again. */
static void test_debug_cache_replaces_torn_entry(void **state)
{
    dctest_t *t = *state;
    dctest_make_entry(t);
    struct stat good, now;
    assert_int_equal(stat(t->entry, &good), 0);
    assert_int_equal(truncate(t->entry, 100), 0);

    int fd = dctest_open_entry(t, PROF_DEBUG_ROOT);
    assert_int_equal(fstat(fd, &now), 0);
    assert_int_equal(now.st_size, good.st_size);
    close(fd);

    /* Torn, and no source to make it again from: nothing is served. */
    char *path;
    assert_int_equal(truncate(t->entry, 100), 0);
    assert_int_equal(dctest_open(t, t->root, &path), -1);
    assert_null(path);
    assert_int_equal(access(t->entry, F_OK), -1);
}

/* An entry whose build ID is not its name's is not used. */
static void test_debug_cache_rejects_entry_of_other_build_id(void **state)
{
    dctest_t *t = *state;
    dctest_make_entry(t);
    char *path;
    unsigned char other[20];
    memset(other, 0xab, sizeof other);
    char other_entry[256];
    snprintf(other_entry, sizeof other_entry, "%s/%s.debug", t->dir,
             "abababababababababababababababababababab");
    assert_int_equal(rename(t->entry, other_entry), 0);

    assert_int_equal(prof_debug_cache_open(t->dir, t->root, other, sizeof other, &path), -1);
    assert_int_equal(access(other_entry, F_OK), -1);
}

/* No source file, a source that is not compressed, a source whose build
 * ID is another's: nothing is cached, and no directory is made. */
static void test_debug_cache_only_caches_compressed_sources_of_the_id(void **state)
{
    dctest_t *t = *state;
    dctest_need_libc_debug(t);
    char *path;
    assert_int_equal(dctest_open(t, t->root, &path), -1);
    assert_int_equal(access(t->dir, F_OK), -1);

    /* The inflated copy, as a source, is not worth caching again. */
    char inflated[256];
    snprintf(inflated, sizeof inflated, "%s/inflated.debug", t->tmp);
    char *saved_dir = strdup(t->dir);
    snprintf(t->dir, sizeof t->dir, "%s/other-cache", t->tmp);
    int fd = dctest_open(t, PROF_DEBUG_ROOT, &path);
    assert_true(fd >= 0);
    close(fd);
    dctest_copy_file(path, inflated);
    free(path);
    snprintf(t->dir, sizeof t->dir, "%s", saved_dir);
    free(saved_dir);
    dctest_root_holds(t, t->hex, inflated);
    assert_int_equal(dctest_open(t, t->root, &path), -1);
    assert_int_equal(access(t->dir, F_OK), -1);

    /* libc's compressed file filed under another build ID. */
    unsigned char other[20];
    memset(other, 0xcd, sizeof other);
    dctest_root_holds(t, "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd", t->libc_debug);
    assert_int_equal(prof_debug_cache_open(t->dir, t->root, other, sizeof other, &path), -1);
    assert_int_equal(access(t->dir, F_OK), -1);

    /* Not an ELF file at all. */
    char junk[256];
    snprintf(junk, sizeof junk, "%s/junk", t->tmp);
    dctest_write_file(junk, "not an ELF file", 15);
    dctest_root_holds(t, t->hex, junk);
    assert_int_equal(dctest_open(t, t->root, &path), -1);
    assert_int_equal(access(t->dir, F_OK), -1);
}

/* Runs that start together make the same entry at once: each writes its
 * own temporary file and renames it, so every one gets a whole entry and
 * no temporary file is left behind. */
static void test_debug_cache_concurrent_runs_make_one_entry(void **state)
{
    dctest_t *t = *state;
    dctest_need_libc_debug(t);
    enum { RUNS = 4 };
    pid_t pids[RUNS];
    for (int i = 0; i < RUNS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            char *path;
            int fd = dctest_open(t, PROF_DEBUG_ROOT, &path);
            Elf *elf = fd >= 0 ? elf_begin(fd, ELF_C_READ, NULL) : NULL;
            const void *id;
            int ok = elf != NULL && dwelf_elf_gnu_build_id(elf, &id) == (ssize_t)t->id_len &&
                     memcmp(id, t->id, t->id_len) == 0;
            _exit(ok ? 0 : 1);
        }
    }
    for (int i = 0; i < RUNS; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test \"$(ls -A '%s')\" = '%s.debug'", t->dir, t->hex);
    assert_int_equal(system(cmd), 0);
}

/* A directory that cannot be made: no entry, no crash, and the caller
 * falls back to the file itself. */
static void test_debug_cache_unwritable_dir(void **state)
{
    dctest_t *t = *state;
    dctest_need_libc_debug(t);
    char *path = NULL;
    assert_int_equal(prof_debug_cache_open("/proc/mlmem-no-such-dir/cache", PROF_DEBUG_ROOT,
                                           t->id, t->id_len, &path),
                     -1);
    assert_null(path);
    assert_int_equal(prof_debug_cache_open(NULL, PROF_DEBUG_ROOT, t->id, t->id_len, &path), -1);
}

static void dctest_env(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

static void test_debug_cache_dir_from_environment(void **state)
{
    (void)state;
    char *saved[3];
    const char *names[3] = {"MLMEM_CACHE_DIR", "XDG_CACHE_HOME", "HOME"};
    for (int i = 0; i < 3; i++)
        saved[i] = getenv(names[i]) ? strdup(getenv(names[i])) : NULL;

    dctest_env("MLMEM_CACHE_DIR", "/x/own");
    dctest_env("XDG_CACHE_HOME", "/x/xdg");
    char *d = prof_debug_cache_dir();
    assert_string_equal(d, "/x/own");
    free(d);
    dctest_env("MLMEM_CACHE_DIR", "");
    assert_null(prof_debug_cache_dir());
    dctest_env("MLMEM_CACHE_DIR", NULL);
    d = prof_debug_cache_dir();
    assert_string_equal(d, "/x/xdg/mlmem");
    free(d);
    dctest_env("XDG_CACHE_HOME", "relative/is/ignored");
    dctest_env("HOME", "/x/home");
    d = prof_debug_cache_dir();
    assert_string_equal(d, "/x/home/.cache/mlmem");
    free(d);
    dctest_env("XDG_CACHE_HOME", NULL);
    dctest_env("HOME", NULL);
    assert_null(prof_debug_cache_dir());

    for (int i = 0; i < 3; i++) {
        dctest_env(names[i], saved[i]);
        free(saved[i]);
    }
}

static void dctest_make(const char *dir, const char *name, size_t bytes, time_t mtime)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *data = calloc(1, bytes + 1);
    assert_non_null(data);
    dctest_write_file(path, data, bytes);
    free(data);
    struct timespec times[2] = {{mtime, 0}, {mtime, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

static int dctest_exists(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* Entries go least recently used first, down to the limit; temporary
 * files go after an hour; nothing else in the directory is touched. */
static void test_debug_cache_trim_least_recently_used(void **state)
{
    dctest_t *t = *state;
    assert_int_equal(mkdir(t->dir, 0700), 0);
    time_t now = time(NULL);
    dctest_make(t->dir, "aa.debug", 1000, now - 300);
    dctest_make(t->dir, "bb.debug", 1000, now - 100);
    dctest_make(t->dir, "cc.debug", 1000, now - 200);
    dctest_make(t->dir, "dd.debug.tmp.XXXX12", 10, now - 7200);
    dctest_make(t->dir, "ee.debug.tmp.XXXX34", 10, now - 60);
    dctest_make(t->dir, "notes.txt", 5000, now - 9000);

    assert_int_equal(prof_debug_cache_trim(t->dir, 3000), 1); /* only the stale temp */
    assert_false(dctest_exists(t->dir, "dd.debug.tmp.XXXX12"));
    assert_true(dctest_exists(t->dir, "ee.debug.tmp.XXXX34"));

    assert_int_equal(prof_debug_cache_trim(t->dir, 2500), 1);
    assert_false(dctest_exists(t->dir, "aa.debug"));
    assert_true(dctest_exists(t->dir, "cc.debug"));

    assert_int_equal(prof_debug_cache_trim(t->dir, 0), 2);
    assert_false(dctest_exists(t->dir, "bb.debug"));
    assert_false(dctest_exists(t->dir, "cc.debug"));
    assert_true(dctest_exists(t->dir, "ee.debug.tmp.XXXX34"));
    assert_true(dctest_exists(t->dir, "notes.txt"));

    assert_int_equal(prof_debug_cache_trim("/nonexistent/mlmem-cache", 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_debug_cache_inflates_libc_debug_file, dctest_setup,
                                        dctest_teardown),
        cmocka_unit_test_setup_teardown(test_debug_cache_reuses_entry, dctest_setup,
                                        dctest_teardown),
        cmocka_unit_test_setup_teardown(test_debug_cache_replaces_torn_entry, dctest_setup,
                                        dctest_teardown),
        cmocka_unit_test_setup_teardown(test_debug_cache_rejects_entry_of_other_build_id,
                                        dctest_setup, dctest_teardown),
        cmocka_unit_test_setup_teardown(test_debug_cache_only_caches_compressed_sources_of_the_id,
                                        dctest_setup, dctest_teardown),
        cmocka_unit_test_setup_teardown(test_debug_cache_concurrent_runs_make_one_entry,
                                        dctest_setup, dctest_teardown),
        cmocka_unit_test_setup_teardown(test_debug_cache_unwritable_dir, dctest_setup,
                                        dctest_teardown),
        cmocka_unit_test(test_debug_cache_dir_from_environment),
        cmocka_unit_test_setup_teardown(test_debug_cache_trim_least_recently_used, dctest_setup,
                                        dctest_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
