/*
 * test_symbols.c - the libdw symbolizer (profiler/symbols.c) against this
 * very process: functions of the test binary (built -O0 -g), a C++ function
 * from test_symbols_cxx.cpp, libc's malloc, and module maps made up to pin
 * the seq-generation and unreadable-file cases. Modules are found with
 * dl_iterate_phdr exactly as the shim finds them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "profiler/frame_cache.h"
#include "profiler/symbols.h"

uint64_t symtest_widget_grow_address(void);

/* ---------------------------------------------------------------------- */
/* Functions to resolve. Their lines are recorded with __LINE__.           */

static const int symtest_marker_line = __LINE__ + 1;
__attribute__((noinline)) int symtest_marker(int x) { return x * 3 + 1; }

/* Returns its own return address: a point just after a call instruction. */
__attribute__((noinline)) static uint64_t symtest_return_address(void)
{
    return (uint64_t)(uintptr_t)__builtin_return_address(0);
}

static int symtest_inline_leaf_line;
static inline __attribute__((always_inline)) uint64_t symtest_inline_leaf(void)
{
    symtest_inline_leaf_line = __LINE__; return symtest_return_address();
}

static int symtest_inline_call_line;
__attribute__((noinline)) uint64_t symtest_inline_outer(void)
{
    symtest_inline_call_line = __LINE__; return symtest_inline_leaf();
}

/* A call that never returns is the last instruction of its function, so its
 * return address points past the end: only address - 1 is inside. */
static jmp_buf symtest_jump;
static uint64_t symtest_tail_ra;
static int symtest_tail_call_line;

__attribute__((noinline, noreturn)) static void symtest_escape(void)
{
    symtest_tail_ra = (uint64_t)(uintptr_t)__builtin_return_address(0);
    longjmp(symtest_jump, 1);
}

__attribute__((noinline)) void symtest_tail_caller(void)
{
    symtest_tail_call_line = __LINE__; symtest_escape();
}

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

typedef struct {
    uint64_t address;      /* in */
    int found;
    char path[4096];
    uint64_t bias;
    uint64_t start;
    uint64_t end;
} symtest_module_t;

/* dl_iterate_phdr callback: the module whose PT_LOAD segments cover
 * want->address, with its bias and the span of all its PT_LOAD segments. */
static int symtest_phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    symtest_module_t *want = arg;
    uint64_t lo = UINT64_MAX, hi = 0;
    int covers = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uint64_t a = info->dlpi_addr + ph->p_vaddr;
        uint64_t b = a + ph->p_memsz;
        if (a < lo)
            lo = a;
        if (b > hi)
            hi = b;
        if (want->address >= a && want->address < b)
            covers = 1;
    }
    if (!covers)
        return 0;
    want->found = 1;
    snprintf(want->path, sizeof(want->path), "%s",
             info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe");
    want->bias = info->dlpi_addr;
    want->start = lo;
    want->end = hi;
    return 1;
}

static symtest_module_t symtest_find_module(uint64_t address)
{
    symtest_module_t m;
    memset(&m, 0, sizeof(m));
    m.address = address;
    dl_iterate_phdr(symtest_phdr_cb, &m);
    assert_true(m.found);
    return m;
}

/* A symbolizer that knows the module covering 'address', as id 1 from seq 0. */
static prof_symbols_t *symtest_new_for(uint64_t address, symtest_module_t *out)
{
    symtest_module_t m = symtest_find_module(address);
    prof_symbols_t *s = prof_symbols_new();
    assert_non_null(s);
    assert_int_equal(prof_symbols_add_module(s, 1, m.path, m.bias, m.start, m.end, 0), 0);
    if (out)
        *out = m;
    return s;
}

static void symtest_free_frames(prof_frame_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i].function);
        free(f[i].file);
        free(f[i].module);
    }
}

static int symtest_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ---------------------------------------------------------------------- */
/* Tests                                                                   */

static void test_symbols_function_file_line(void **state)
{
    uint64_t addr = (uint64_t)(uintptr_t)&symtest_marker;
    symtest_module_t m;
    prof_symbols_t *s = symtest_new_for(addr, &m);
    prof_frame_t f[4];
    size_t n = prof_symbols_resolve(s, addr, 1, 0, f, 4);
    assert_int_equal(n, 1);
    assert_int_equal(f[0].address, addr);
    assert_non_null(f[0].function);
    assert_string_equal(f[0].function, "symtest_marker");
    assert_non_null(f[0].file);
    assert_true(symtest_ends_with(f[0].file, "test_symbols.c"));
    assert_int_equal(f[0].line, symtest_marker_line);
    assert_int_equal(f[0].inlined, 0);
    assert_string_equal(f[0].module, m.path);
    assert_int_equal(f[0].module_offset, addr - m.bias);
    symtest_free_frames(f, n);

    /* The second lookup comes from the cache and must be the same copy. */
    n = prof_symbols_resolve(s, addr, 1, 0, f, 4);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].function, "symtest_marker");
    assert_int_equal(f[0].line, symtest_marker_line);
    symtest_free_frames(f, n);
    prof_symbols_free(s);
    assert_int_equal(symtest_marker(1), 4);
}

static void test_symbols_strings_outlive_symbolizer(void **state)
{
    uint64_t addr = (uint64_t)(uintptr_t)&symtest_marker;
    prof_symbols_t *s = symtest_new_for(addr, NULL);
    prof_frame_t f[1];
    size_t n = prof_symbols_resolve(s, addr, 0, 0, f, 1);
    prof_symbols_free(s);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].function, "symtest_marker");
    symtest_free_frames(f, n);
}

/* The shared resolve gives the same frames as the copying one, with the
 * symbolizer's own strings: the same pointers each time, until it is
 * freed. */
static void test_symbols_shared_strings_match_copies(void **state)
{
    (void)state;
    uint64_t addr = (uint64_t)(uintptr_t)&symtest_marker;
    symtest_module_t m;
    prof_symbols_t *s = symtest_new_for(addr, &m);
    prof_frame_t copied[4], shared[4], again[4];
    size_t n = prof_symbols_resolve(s, addr, 1, 0, copied, 4);
    assert_int_equal(prof_symbols_resolve_shared(s, addr, 1, 0, shared, 4), n);
    assert_int_equal(prof_symbols_resolve_shared(s, addr, 1, 0, again, 4), n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(shared[i].address, copied[i].address);
        assert_string_equal(shared[i].function, copied[i].function);
        assert_string_equal(shared[i].file, copied[i].file);
        assert_int_equal(shared[i].line, copied[i].line);
        assert_string_equal(shared[i].module, m.path);
        assert_int_equal(shared[i].module_offset, copied[i].module_offset);
        assert_ptr_not_equal(shared[i].function, copied[i].function);
        assert_ptr_equal(again[i].function, shared[i].function);
        assert_ptr_equal(again[i].module, shared[i].module);
    }
    symtest_free_frames(copied, n);
    prof_symbols_free(s);
}

static void test_symbols_cxx_demangled(void **state)
{
    uint64_t addr = symtest_widget_grow_address();
    prof_symbols_t *s = symtest_new_for(addr, NULL);
    prof_frame_t f[4];
    size_t n = prof_symbols_resolve(s, addr, 0, 0, f, 4);
    assert_int_equal(n, 1);
    assert_non_null(f[0].function);
    assert_string_equal(f[0].function, "mlmem_test::Widget::grow(int)");
    assert_non_null(f[0].file);
    assert_true(symtest_ends_with(f[0].file, "test_symbols_cxx.cpp"));
    symtest_free_frames(f, n);
    prof_symbols_free(s);
}

/* libc's own malloc, even when a sanitizer or a preload interposes it. */
static uint64_t symtest_libc_malloc(void)
{
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(libc);
    void *fn = dlsym(libc, "malloc");
    dlclose(libc);
    assert_non_null(fn);
    return (uint64_t)(uintptr_t)fn;
}

static void test_symbols_libc_malloc(void **state)
{
    uint64_t addr = symtest_libc_malloc();
    symtest_module_t m;
    prof_symbols_t *s = symtest_new_for(addr, &m);
    prof_frame_t f[4];
    size_t n = prof_symbols_resolve(s, addr, 0, 0, f, 4);
    assert_true(n >= 1);
    size_t last = n - 1;
    assert_non_null(f[last].function);
    assert_non_null(strstr(f[last].function, "malloc"));
    assert_non_null(f[last].module);
    assert_non_null(strstr(f[last].module, "libc.so.6"));
    assert_int_equal(f[last].module_offset, addr - m.bias);
    symtest_free_frames(f, n);
    prof_symbols_free(s);
}

static void test_symbols_outside_every_module(void **state)
{
    prof_symbols_t *s = prof_symbols_new();
    assert_non_null(s);
    assert_int_equal(prof_symbols_add_module(s, 1, "/proc/self/exe", 0x400000,
                                             0x400000, 0x500000, 0), 0);
    prof_frame_t f[2];
    size_t n = prof_symbols_resolve(s, 0x1234, 5, 0, f, 2);
    assert_int_equal(n, 1);
    assert_int_equal(f[0].address, 0x1234);
    assert_null(f[0].module);
    assert_null(f[0].function);
    assert_null(f[0].file);
    assert_int_equal(f[0].line, 0);
    assert_int_equal(f[0].module_offset, 0);

    /* The end of a range is exclusive. */
    n = prof_symbols_resolve(s, 0x500000, 5, 0, f, 2);
    assert_int_equal(n, 1);
    assert_null(f[0].module);

    /* No room: nothing written, and no frame claimed. */
    assert_int_equal(prof_symbols_resolve(s, 0x1234, 5, 0, f, 0), 0);
    prof_symbols_free(s);
}

static void test_symbols_seq_generations(void **state)
{
    uint64_t addr = (uint64_t)(uintptr_t)&symtest_marker;
    symtest_module_t m = symtest_find_module(addr);
    prof_symbols_t *s = prof_symbols_new();
    assert_non_null(s);
    /* Generation 1: the real file, seq [10, 100). Generation 2: another file
     * mapped at the same place from seq 100 on. */
    assert_int_equal(prof_symbols_add_module(s, 7, m.path, m.bias, m.start, m.end, 10), 0);
    prof_symbols_unload_module(s, 7, 100);
    assert_int_equal(prof_symbols_add_module(s, 8, "/nonexistent/libgone.so", m.bias,
                                             m.start, m.end, 100), 0);
    prof_symbols_unload_module(s, 99, 120);   /* unknown id: ignored */

    prof_frame_t f[2];
    size_t n = prof_symbols_resolve(s, addr, 150, 0, f, 2);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].module, "/nonexistent/libgone.so");
    assert_null(f[0].function);
    assert_int_equal(f[0].module_offset, addr - m.bias);
    symtest_free_frames(f, n);

    n = prof_symbols_resolve(s, addr, 50, 0, f, 2);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].module, m.path);
    assert_string_equal(f[0].function, "symtest_marker");
    symtest_free_frames(f, n);

    /* The boundaries: load_seq is included, unload_seq is not. */
    n = prof_symbols_resolve(s, addr, 99, 0, f, 2);
    assert_string_equal(f[0].module, m.path);
    symtest_free_frames(f, n);
    n = prof_symbols_resolve(s, addr, 100, 0, f, 2);
    assert_string_equal(f[0].module, "/nonexistent/libgone.so");
    symtest_free_frames(f, n);

    /* Before the first load, nothing covered the address. */
    n = prof_symbols_resolve(s, addr, 5, 0, f, 2);
    assert_int_equal(n, 1);
    assert_null(f[0].module);
    assert_int_equal(f[0].address, addr);
    prof_symbols_free(s);
}

static void test_symbols_rereported_module(void **state)
{
    /* The shim re-reports its whole map after a dlopen: the same file, same
     * bias, a new id. Both generations resolve, and the file is shared (a
     * double dwfl_end would show under valgrind/ASan). */
    uint64_t addr = (uint64_t)(uintptr_t)&symtest_marker;
    symtest_module_t m = symtest_find_module(addr);
    prof_symbols_t *s = prof_symbols_new();
    assert_non_null(s);
    assert_int_equal(prof_symbols_add_module(s, 1, m.path, m.bias, m.start, m.end, 0), 0);
    prof_frame_t f[2];
    size_t n = prof_symbols_resolve(s, addr, 5, 0, f, 2);
    assert_string_equal(f[0].function, "symtest_marker");
    symtest_free_frames(f, n);
    prof_symbols_unload_module(s, 1, 10);
    assert_int_equal(prof_symbols_add_module(s, 2, m.path, m.bias, m.start, m.end, 10), 0);
    for (uint64_t seq = 5; seq <= 15; seq += 10) {
        n = prof_symbols_resolve(s, addr, seq, 0, f, 2);
        assert_int_equal(n, 1);
        assert_string_equal(f[0].function, "symtest_marker");
        assert_int_equal(f[0].line, symtest_marker_line);
        assert_string_equal(f[0].module, m.path);
        symtest_free_frames(f, n);
    }
    prof_symbols_free(s);
}

static void test_symbols_unreadable_path(void **state)
{
    char text[] = "/tmp/mlmem-test-symbols-XXXXXX";
    int fd = mkstemp(text);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not an ELF file\n", 16), 16);
    close(fd);

    const char *paths[] = {"linux-vdso.so.1", "[vdso]", "/tmp", "", text,
                           "/nonexistent/lib.so"};
    prof_symbols_t *s = prof_symbols_new();
    assert_non_null(s);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        uint64_t base = 0x10000000 * (i + 1);
        assert_int_equal(prof_symbols_add_module(s, (uint32_t)i, paths[i], base,
                                                 base, base + 0x1000, 0), 0);
        for (int again = 0; again < 2; again++) {
            prof_frame_t f[3];
            size_t n = prof_symbols_resolve(s, base + 0x42, 1, 0, f, 3);
            assert_int_equal(n, 1);
            assert_int_equal(f[0].address, base + 0x42);
            assert_non_null(f[0].module);
            assert_string_equal(f[0].module, paths[i]);
            assert_int_equal(f[0].module_offset, 0x42);
            assert_null(f[0].function);
            assert_null(f[0].file);
            assert_int_equal(f[0].line, 0);
            symtest_free_frames(f, n);
        }
    }
    prof_symbols_free(s);
    unlink(text);
}

/* The module search (an index by start address) picks what a scan of every
 * module would: hundreds of modules, in no order, some inside others and
 * some overlapping, in generations, with lookups between additions (the
 * index is rebuilt as modules come). */
static void test_symbols_module_search_matches_a_scan(void **state)
{
    enum { N = 300 };
    struct { uint64_t start, end, load, unload; } mods[N];
    prof_symbols_t *s = prof_symbols_new();
    assert_non_null(s);
    uint64_t rng = 12345;
    size_t added = 0;
    for (size_t i = 0; i < N; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = rng >> 16;
        uint64_t start = 0x100000 + (r % 4096) * 0x1000;
        uint64_t len = (i % 10 == 0 ? 0x400000 : 0x1000 + (r >> 12) % 0x8000);
        mods[i].start = start;
        mods[i].end = start + len;
        mods[i].load = (r >> 20) % 50;
        mods[i].unload = i % 3 == 0 ? mods[i].load + 1 + (r >> 26) % 40 : UINT64_MAX;
        char path[64];
        snprintf(path, sizeof path, "/nonexistent/lib%zu.so", i);
        assert_int_equal(prof_symbols_add_module(s, (uint32_t)i, path, start, start,
                                                 mods[i].end, mods[i].load), 0);
        if (mods[i].unload != UINT64_MAX)
            prof_symbols_unload_module(s, (uint32_t)i, mods[i].unload);
        added = i + 1;
        if (i % 37 != 0 && i != N - 1)
            continue;
        for (int q = 0; q < 400; q++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t addr = 0xf0000 + (rng >> 20) % 0x1600000;
            uint64_t seq = (rng >> 8) % 100;
            long want = -1;
            for (size_t j = 0; j < added; j++) {
                if (addr < mods[j].start || addr >= mods[j].end || seq < mods[j].load ||
                    seq >= mods[j].unload)
                    continue;
                if (want < 0 || mods[j].load >= mods[want].load)
                    want = (long)j;
            }
            prof_frame_t f[2];
            size_t n = prof_symbols_resolve(s, addr, seq, 0, f, 2);
            assert_int_equal(n, 1);
            if (want < 0) {
                assert_null(f[0].module);
            } else {
                char path[64];
                snprintf(path, sizeof path, "/nonexistent/lib%ld.so", want);
                assert_non_null(f[0].module);
                assert_string_equal(f[0].module, path);
                assert_int_equal(f[0].module_offset, addr - mods[want].start);
            }
            symtest_free_frames(f, n);
        }
    }
    prof_symbols_free(s);
}

static void test_symbols_return_address_adjustment(void **state)
{
    if (setjmp(symtest_jump) == 0)
        symtest_tail_caller();
    uint64_t ra = symtest_tail_ra;
    prof_symbols_t *s = symtest_new_for(ra - 1, NULL);
    prof_frame_t f[4];
    size_t n = prof_symbols_resolve(s, ra, 0, 1, f, 4);
    assert_int_equal(n, 1);
    assert_int_equal(f[0].address, ra - 1);
    assert_non_null(f[0].function);
    assert_string_equal(f[0].function, "symtest_tail_caller");
    assert_int_equal(f[0].line, symtest_tail_call_line);
    symtest_free_frames(f, n);

    /* The innermost frame is not a return address: used as is. */
    n = prof_symbols_resolve(s, ra, 0, 0, f, 4);
    assert_int_equal(n, 1);
    assert_int_equal(f[0].address, ra);
    symtest_free_frames(f, n);

    /* Address 0 does not wrap around. */
    n = prof_symbols_resolve(s, 0, 0, 1, f, 4);
    assert_int_equal(n, 1);
    assert_int_equal(f[0].address, 0);
    assert_null(f[0].module);
    prof_symbols_free(s);
}

static void test_symbols_inline_chain(void **state)
{
    uint64_t ra = symtest_inline_outer();
    prof_symbols_t *s = symtest_new_for(ra, NULL);
    prof_frame_t f[4];
    size_t n = prof_symbols_resolve(s, ra, 0, 1, f, 4);
    assert_int_equal(n, 2);
    assert_string_equal(f[0].function, "symtest_inline_leaf");
    assert_int_equal(f[0].inlined, 1);
    assert_int_equal(f[0].line, symtest_inline_leaf_line);
    assert_true(symtest_ends_with(f[0].file, "test_symbols.c"));
    assert_string_equal(f[1].function, "symtest_inline_outer");
    assert_int_equal(f[1].inlined, 0);
    assert_int_equal(f[1].line, symtest_inline_call_line);
    assert_true(symtest_ends_with(f[1].file, "test_symbols.c"));
    assert_int_equal(f[0].address, f[1].address);
    symtest_free_frames(f, n);

    /* Room for one: the innermost frame. */
    n = prof_symbols_resolve(s, ra, 0, 1, f, 1);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].function, "symtest_inline_leaf");
    symtest_free_frames(f, n);
    prof_symbols_free(s);
}

/* ---- opening ahead (prof_symbols_prefetch) ---- */

/* Waits until the helper thread has opened 'n' modules (10 s at most). */
static void symtest_wait_opened(prof_symbols_t *s, size_t n)
{
    for (int i = 0; i < 10000 && prof_symbols_opened_ahead(s) < n; i++)
        usleep(1000);
    assert_int_equal(prof_symbols_opened_ahead(s), n);
}

static int symtest_same_string(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* 'a' and 'b' resolve each of 'addresses' (return addresses, at 'seq') to
 * the same frames, field by field. */
static void symtest_assert_resolve_alike(prof_symbols_t *a, prof_symbols_t *b,
                                         const uint64_t *addresses, size_t count, uint64_t seq)
{
    for (size_t i = 0; i < count; i++) {
        prof_frame_t fa[8], fb[8];
        size_t na = prof_symbols_resolve(a, addresses[i], seq, 1, fa, 8);
        size_t nb = prof_symbols_resolve(b, addresses[i], seq, 1, fb, 8);
        assert_int_equal(na, nb);
        for (size_t k = 0; k < na; k++) {
            assert_int_equal(fa[k].address, fb[k].address);
            assert_true(symtest_same_string(fa[k].function, fb[k].function));
            assert_true(symtest_same_string(fa[k].file, fb[k].file));
            assert_true(symtest_same_string(fa[k].module, fb[k].module));
            assert_int_equal(fa[k].line, fb[k].line);
            assert_int_equal(fa[k].inlined, fb[k].inlined);
            assert_int_equal(fa[k].module_offset, fb[k].module_offset);
        }
        symtest_free_frames(fa, na);
        symtest_free_frames(fb, nb);
    }
}

/* A symbolizer knowing the test binary (id 1) and libc (id 2) from seq 0. */
static prof_symbols_t *symtest_new_binary_and_libc(void)
{
    symtest_module_t bin = symtest_find_module((uint64_t)(uintptr_t)&symtest_marker);
    symtest_module_t libc = symtest_find_module(symtest_libc_malloc());
    prof_symbols_t *s = prof_symbols_new();
    assert_non_null(s);
    assert_int_equal(prof_symbols_add_module(s, 1, bin.path, bin.bias, bin.start, bin.end, 0), 0);
    assert_int_equal(prof_symbols_add_module(s, 2, libc.path, libc.bias, libc.start, libc.end, 0),
                     0);
    return s;
}

/* The modules a stack runs in, opened by the helper thread, resolve as
 * when resolve opens them itself: function, file:line, inline chains. A
 * stack in modules already queued queues nothing more. */
static void test_symbols_prefetched_modules_resolve_alike(void **state)
{
    uint64_t stack[] = {symtest_inline_outer(), (uint64_t)(uintptr_t)&symtest_marker + 1,
                        symtest_libc_malloc() + 1};
    size_t depth = sizeof stack / sizeof stack[0];
    prof_symbols_t *ahead = symtest_new_binary_and_libc();
    prof_symbols_t *lazy = symtest_new_binary_and_libc();
    prof_symbols_prefetch(ahead, stack, depth, 5);
    symtest_wait_opened(ahead, 2);
    prof_symbols_prefetch(ahead, stack, depth, 5);
    symtest_assert_resolve_alike(ahead, lazy, stack, depth, 5);
    prof_frame_t f[4];
    size_t n = prof_symbols_resolve(ahead, stack[0], 5, 1, f, 4);
    assert_int_equal(n, 2);
    assert_string_equal(f[0].function, "symtest_inline_leaf");
    assert_string_equal(f[1].function, "symtest_inline_outer");
    symtest_free_frames(f, n);
    usleep(50 * 1000);
    assert_int_equal(prof_symbols_opened_ahead(ahead), 2);
    prof_symbols_free(ahead);
    prof_symbols_free(lazy);
}

/* A fresh cache directory 'dir' (a mkdtemp template) as MLMEM_CACHE_DIR;
 * returns what that was before (malloc'd, or NULL: unset). */
static char *symtest_cache_dir_begin(char *dir)
{
    assert_non_null(mkdtemp(dir));
    char *saved = getenv("MLMEM_CACHE_DIR") ? strdup(getenv("MLMEM_CACHE_DIR")) : NULL;
    setenv("MLMEM_CACHE_DIR", dir, 1);
    return saved;
}

/* Puts MLMEM_CACHE_DIR back as it was and removes 'dir'. */
static void symtest_cache_dir_end(const char *dir, char *saved)
{
    if (saved)
        setenv("MLMEM_CACHE_DIR", saved, 1);
    else
        unsetenv("MLMEM_CACHE_DIR");
    free(saved);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* libc's frames resolve the same from libc6-dbg's compressed file and
 * from its inflated copy in the debug cache (debug_cache.h): made by the
 * first symbolizer, used by the second, not at all by one without a
 * cache. Each has file:line (libc6-dbg is installed by install-deps). */
static void test_symbols_debug_cache_resolves_alike(void **state)
{
    (void)state;
    char dir[] = "/tmp/mlmem-symtest-cache.XXXXXX";
    char *saved = symtest_cache_dir_begin(dir);
    uint64_t stack[] = {symtest_libc_malloc() + 1, (uint64_t)(uintptr_t)&free + 1};

    setenv("MLMEM_CACHE_DIR", "", 1);
    prof_symbols_t *uncached = symtest_new_binary_and_libc();
    setenv("MLMEM_CACHE_DIR", dir, 1);
    prof_symbols_t *making = symtest_new_binary_and_libc();
    symtest_assert_resolve_alike(uncached, making, stack, 2, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "test $(ls %s/*.debug | wc -l) = 1", dir);
    assert_int_equal(system(cmd), 0);
    prof_symbols_t *using = symtest_new_binary_and_libc();
    symtest_assert_resolve_alike(uncached, using, stack, 2, 0);

    prof_frame_t f[8];
    size_t n = prof_symbols_resolve(using, stack[0], 0, 1, f, 8);
    assert_true(n >= 1);
    assert_non_null(f[n - 1].file);
    assert_true(f[n - 1].line > 0);
    symtest_free_frames(f, n);
    prof_symbols_free(uncached);
    prof_symbols_free(making);
    prof_symbols_free(using);
    symtest_cache_dir_end(dir, saved);
}

/* The one '<build id>.frames' file in 'dir', opened as a frame cache. */
static prof_frame_cache_t *symtest_open_kept(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    uint8_t id[64];
    size_t len = 0;
    int files = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || strcmp(dot, ".frames") != 0)
            continue;
        files++;
        len = (size_t)(dot - e->d_name) / 2;
        assert_true(len > 0 && len <= sizeof id);
        for (size_t i = 0; i < len; i++)
            assert_int_equal(sscanf(e->d_name + 2 * i, "%2hhx", &id[i]), 1);
    }
    closedir(d);
    assert_int_equal(files, 1);
    prof_frame_cache_t *c = prof_frame_cache_open(dir, id, len);
    assert_non_null(c);
    return c;
}

/* Frames resolved with debug information are kept for the next run of the
 * same build (frame_cache.h): saved by the first symbolizer, read back by
 * the cache, and what the next symbolizer answers, as a planted entry
 * shows; a torn file is ignored (the frames are resolved again) and written
 * whole at the next save. */
static void test_symbols_kept_frames_used_and_saved(void **state)
{
    (void)state;
    char dir[] = "/tmp/mlmem-symtest-kept.XXXXXX";
    char *saved = symtest_cache_dir_begin(dir);
    uint64_t addr = (uint64_t)(uintptr_t)&symtest_marker;
    symtest_module_t m;

    prof_symbols_t *s = symtest_new_for(addr, &m);
    prof_frame_t f[4];
    size_t n = prof_symbols_resolve(s, addr, 1, 0, f, 4);
    assert_int_equal(n, 1);
    symtest_free_frames(f, n);
    prof_symbols_finish(s);
    prof_symbols_free(s);

    prof_frame_cache_t *c = symtest_open_kept(dir);
    const prof_frame_t *kept;
    uint32_t flags;
    assert_int_equal(prof_frame_cache_get(c, addr - m.bias, &kept, &flags), 1);
    assert_int_equal(flags, PROF_FRAME_CACHE_DEBUG_INFO);
    assert_string_equal(kept[0].function, "symtest_marker");
    assert_int_equal(kept[0].line, symtest_marker_line);
    assert_true(symtest_ends_with(kept[0].file, "test_symbols.c"));
    /* An offset nothing resolved yet, planted with other frames. */
    prof_frame_t planted[2] = {{.function = "planted_inline", .file = "kept.c", .line = 7,
                                .inlined = 1},
                               {.function = NULL, .file = "kept.c", .line = 9}};
    assert_int_equal(
        prof_frame_cache_put(c, addr + 1 - m.bias, planted, 2, PROF_FRAME_CACHE_DEBUG_INFO), 0);
    assert_int_equal(prof_frame_cache_save(c), 0);
    prof_frame_cache_free(c);

    s = symtest_new_for(addr, &m);
    n = prof_symbols_resolve(s, addr + 1, 1, 0, f, 4);
    assert_int_equal(n, 2);
    assert_string_equal(f[0].function, "planted_inline");
    assert_string_equal(f[0].file, "kept.c");
    assert_int_equal(f[0].line, 7);
    assert_int_equal(f[0].inlined, 1);
    assert_null(f[1].function);
    assert_int_equal(f[1].line, 9);
    assert_string_equal(f[1].module, m.path);
    assert_int_equal(f[1].module_offset, addr + 1 - m.bias);
    symtest_free_frames(f, n);
    prof_symbols_free(s);

    /* Torn: cut to half. Resolved as without it, then written whole. */
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "f=$(ls %s/*.frames) && truncate -s $(( $(stat -c %%s $f) / 2 )) $f", dir);
    assert_int_equal(system(cmd), 0);
    s = symtest_new_for(addr, &m);
    n = prof_symbols_resolve(s, addr + 1, 1, 0, f, 4);
    assert_true(n >= 1);
    assert_string_equal(f[n - 1].function, "symtest_marker");
    symtest_free_frames(f, n);
    prof_symbols_finish(s);
    prof_symbols_free(s);
    c = symtest_open_kept(dir);
    assert_int_equal(prof_frame_cache_count(c), 1);
    assert_int_equal(prof_frame_cache_get(c, addr + 1 - m.bias, &kept, NULL), 1);
    assert_string_equal(kept[0].function, "symtest_marker");
    prof_frame_cache_free(c);

    symtest_cache_dir_end(dir, saved);
}

/* A stripped copy of this test binary in 'dir' (its name in 'out'), and
 * when 'debug_dir' is not NULL its debug information there as
 * 'stripped.debug', named by the copy's .gnu_debuglink. */
static void symtest_stripped_copy(const char *dir, const char *debug_dir, char *out, size_t len)
{
    char exe[PATH_MAX], debug[PATH_MAX + 32], cmd[5 * PATH_MAX + 128];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    snprintf(out, len, "%s/stripped", dir);
    if (debug_dir == NULL) {
        snprintf(cmd, sizeof cmd, "objcopy --strip-debug '%s' '%s'", exe, out);
    } else {
        snprintf(debug, sizeof debug, "%s/stripped.debug", debug_dir);
        snprintf(cmd, sizeof cmd,
                 "mkdir -p '%s' && objcopy --only-keep-debug '%s' '%s' && "
                 "objcopy --strip-debug --add-gnu-debuglink='%s' '%s' '%s'",
                 debug_dir, exe, debug, debug, exe, out);
    }
    assert_int_equal(system(cmd), 0);
}

/* Resolves 'addr' with a new symbolizer that knows the module covering it
 * as the file 'path' (a copy of it), as id 1 from seq 0. */
static size_t symtest_resolve_as(const char *path, uint64_t addr, prof_frame_t *f, size_t max)
{
    symtest_module_t m = symtest_find_module(addr);
    prof_symbols_t *s = prof_symbols_new();
    assert_non_null(s);
    assert_int_equal(prof_symbols_add_module(s, 1, path, m.bias, m.start, m.end, 0), 0);
    size_t n = prof_symbols_resolve(s, addr, 1, 0, f, max);
    prof_symbols_free(s);
    return n;
}

/* symtest_marker's frame as 'path' resolves it (one frame, by that name),
 * into f[0]; the caller frees it. */
static void symtest_resolve_marker_as(const char *path, prof_frame_t *f)
{
    assert_int_equal(symtest_resolve_as(path, (uint64_t)(uintptr_t)&symtest_marker, f, 1), 1);
    assert_string_equal(f[0].function, "symtest_marker");
}

/* A copy of this program in 'dir' stripped of its debug information, its
 * path in 'stripped': the marker resolves there from the symbol table
 * alone, by name and without a file. */
static void symtest_stripped_without_file(const char *dir, char *stripped, size_t len)
{
    symtest_stripped_copy(dir, NULL, stripped, len);
    prof_frame_t f[4];
    symtest_resolve_marker_as(stripped, f);
    assert_null(f[0].file);
    symtest_free_frames(f, 1);
}

/* A module without debug information resolves from its symbol table alone:
 * those frames are kept too, and used while the build still has no debug
 * information; once it has (here: the same build, unstripped), the address
 * is resolved again and the frames with file and line replace them. Frames
 * without a file kept while it had debug information are used as they are. */
static void test_symbols_kept_symbol_table_frames_until_debug_info(void **state)
{
    (void)state;
    char dir[] = "/tmp/mlmem-symtest-nodebug.XXXXXX";
    char *saved = symtest_cache_dir_begin(dir);
    uint64_t addr = (uint64_t)(uintptr_t)&symtest_marker;
    symtest_module_t m = symtest_find_module(addr);
    char stripped[sizeof dir + 32];
    symtest_stripped_without_file(dir, stripped, sizeof stripped);

    prof_frame_t f[4];
    prof_frame_cache_t *c = symtest_open_kept(dir);
    const prof_frame_t *kept;
    uint32_t flags;
    assert_int_equal(prof_frame_cache_get(c, addr - m.bias, &kept, &flags), 1);
    assert_int_equal(flags, 0);
    assert_string_equal(kept[0].function, "symtest_marker");
    assert_null(kept[0].file);
    prof_frame_t planted = {.function = "planted_symbol"};
    assert_int_equal(prof_frame_cache_put(c, addr + 1 - m.bias, &planted, 1, 0), 0);
    assert_int_equal(prof_frame_cache_count_without(c, PROF_FRAME_CACHE_DEBUG_INFO), 2);
    assert_int_equal(prof_frame_cache_save(c), 0);
    prof_frame_cache_free(c);

    /* Still without debug information: the kept frames answer. */
    size_t n = symtest_resolve_as(stripped, addr + 1, f, 4);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].function, "planted_symbol");
    symtest_free_frames(f, n);

    /* With it: resolved again, file and line, and kept in their place. */
    prof_symbols_t *s = symtest_new_for(addr, &m);
    n = prof_symbols_resolve(s, addr, 1, 0, f, 4);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].function, "symtest_marker");
    assert_true(symtest_ends_with(f[0].file, "test_symbols.c"));
    assert_int_equal(f[0].line, symtest_marker_line);
    symtest_free_frames(f, n);
    prof_symbols_free(s);
    c = symtest_open_kept(dir);
    assert_int_equal(prof_frame_cache_get(c, addr - m.bias, &kept, &flags), 1);
    assert_int_equal(flags, PROF_FRAME_CACHE_DEBUG_INFO);
    assert_true(symtest_ends_with(kept[0].file, "test_symbols.c"));
    assert_int_equal(kept[0].line, symtest_marker_line);
    /* A name without a file found while the module had debug information
     * (assembly, say) is as good as it gets: used as it is. */
    planted.function = "planted_assembly";
    assert_int_equal(
        prof_frame_cache_put(c, addr + 2 - m.bias, &planted, 1, PROF_FRAME_CACHE_DEBUG_INFO), 0);
    assert_int_equal(prof_frame_cache_count(c), 3);
    assert_int_equal(prof_frame_cache_count_without(c, PROF_FRAME_CACHE_DEBUG_INFO), 1);
    assert_int_equal(prof_frame_cache_save(c), 0);
    prof_frame_cache_free(c);
    s = symtest_new_for(addr, &m);
    n = prof_symbols_resolve(s, addr + 2, 1, 0, f, 4);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].function, "planted_assembly");
    assert_null(f[0].file);
    symtest_free_frames(f, n);
    prof_symbols_free(s);

    symtest_cache_dir_end(dir, saved);
}

/* A separate debug file found by the .gnu_debuglink name in the module's
 * .debug directory (one of the places libdw looks by that name) gives file
 * and line, now that the symbolizer asks libdw's search only where a file
 * is there (sym_find_debuginfo()). */
static void test_symbols_debuglink_file_found(void **state)
{
    (void)state;
    char dir[] = "/tmp/mlmem-symtest-debuglink.XXXXXX";
    char *saved = symtest_cache_dir_begin(dir);
    char debug_dir[sizeof dir + 16], stripped[sizeof dir + 32];
    snprintf(debug_dir, sizeof debug_dir, "%s/.debug", dir);
    symtest_stripped_copy(dir, debug_dir, stripped, sizeof stripped);
    prof_frame_t f[1];
    symtest_resolve_marker_as(stripped, f);
    assert_non_null(f[0].file);
    assert_true(symtest_ends_with(f[0].file, "test_symbols.c"));
    assert_int_equal(f[0].line, symtest_marker_line);
    symtest_free_frames(f, 1);
    symtest_cache_dir_end(dir, saved);
}

/* Without DEBUGINFOD_URLS (main() unsets it), a module without debug
 * information anywhere resolves from its symbol table without libdw
 * loading libdebuginfod, which it does at its first search that finds
 * nothing (elfutils 0.188), whether or not a server is set: 25 libraries,
 * 7 to 13 ms of a report's time. */
static void test_symbols_no_debuginfod_without_servers(void **state)
{
    (void)state;
    char dir[] = "/tmp/mlmem-symtest-nodebuginfod.XXXXXX";
    char *saved = symtest_cache_dir_begin(dir);
    char stripped[sizeof dir + 32];
    symtest_stripped_without_file(dir, stripped, sizeof stripped);
    assert_null(dlopen("libdebuginfod.so.1", RTLD_LAZY | RTLD_NOLOAD));
    symtest_cache_dir_end(dir, saved);
}

/* Resolving at once after a prefetch takes the module from the helper
 * whether it has not started it, is opening it or is done: the same
 * frames every time. */
static void test_symbols_resolve_right_after_prefetch(void **state)
{
    uint64_t stack[] = {symtest_libc_malloc() + 1, (uint64_t)(uintptr_t)&symtest_marker + 1};
    prof_symbols_t *lazy = symtest_new_binary_and_libc();
    for (int round = 0; round < 20; round++) {
        prof_symbols_t *ahead = symtest_new_binary_and_libc();
        prof_symbols_prefetch(ahead, stack, 2, 5);
        symtest_assert_resolve_alike(ahead, lazy, stack, 2, 5);
        prof_symbols_free(ahead);
    }
    prof_symbols_free(lazy);
}

/* Files the helper cannot open end as resolve's own failures would: the
 * module and offset, no function. */
static void test_symbols_prefetch_unreadable_paths(void **state)
{
    const char *paths[] = {"linux-vdso.so.1", "[vdso]", "/tmp", "", "/nonexistent/lib.so"};
    size_t count = sizeof paths / sizeof paths[0];
    prof_symbols_t *s = prof_symbols_new();
    assert_non_null(s);
    uint64_t stack[8];
    for (size_t i = 0; i < count; i++) {
        uint64_t base = 0x10000000 * (i + 1);
        assert_int_equal(prof_symbols_add_module(s, (uint32_t)i, paths[i], base, base,
                                                 base + 0x1000, 0), 0);
        stack[i] = base + 0x43;
    }
    prof_symbols_prefetch(s, stack, count, 1);
    symtest_wait_opened(s, count);
    for (size_t i = 0; i < count; i++) {
        prof_frame_t f[3];
        size_t n = prof_symbols_resolve(s, stack[i], 1, 1, f, 3);
        assert_int_equal(n, 1);
        assert_string_equal(f[0].module, paths[i]);
        assert_int_equal(f[0].module_offset, 0x42);
        assert_null(f[0].function);
        symtest_free_frames(f, n);
    }
    prof_symbols_free(s);
}

/* A module the shim re-reported (same file and bias, another id) is one
 * file: the helper opens it once (and libc once), and both generations
 * resolve. */
static void test_symbols_prefetch_rereported_module(void **state)
{
    uint64_t ra = (uint64_t)(uintptr_t)&symtest_marker + 1;
    symtest_module_t m = symtest_find_module(ra);
    prof_symbols_t *s = symtest_new_binary_and_libc(); /* ids 1 and 2 */
    prof_symbols_unload_module(s, 1, 10);
    assert_int_equal(prof_symbols_add_module(s, 3, m.path, m.bias, m.start, m.end, 10), 0);
    /* libc between the two: each stack looks the test binary up again. */
    uint64_t stack[] = {ra, symtest_libc_malloc() + 1};
    prof_symbols_prefetch(s, stack, 2, 5);
    prof_symbols_prefetch(s, stack, 2, 15);
    symtest_wait_opened(s, 2);
    for (uint64_t seq = 5; seq <= 15; seq += 10) {
        prof_frame_t f[2];
        size_t n = prof_symbols_resolve(s, ra, seq, 1, f, 2);
        assert_int_equal(n, 1);
        assert_string_equal(f[0].function, "symtest_marker");
        symtest_free_frames(f, n);
    }
    usleep(50 * 1000);
    assert_int_equal(prof_symbols_opened_ahead(s), 2);
    prof_symbols_free(s);
}

/* Freed with modules still queued or opening: the helper stops after the
 * one it is on, and nothing leaks (the sanitizer build checks). */
static void test_symbols_free_with_prefetch_pending(void **state)
{
    symtest_module_t libc = symtest_find_module(symtest_libc_malloc());
    prof_symbols_t *s = prof_symbols_new();
    assert_non_null(s);
    uint64_t stack[6];
    for (uint32_t i = 0; i < 6; i++) {
        /* The same file at six biases: six files to open. */
        uint64_t shift = (uint64_t)i << 40;
        assert_int_equal(prof_symbols_add_module(s, i, libc.path, libc.bias + shift,
                                                 libc.start + shift, libc.end + shift, 0), 0);
        stack[i] = libc.start + shift + 0x100;
    }
    prof_symbols_prefetch(s, stack, 6, 1);
    prof_symbols_free(s);
}

int main(void)
{
    /* No test asks a debuginfod server, whatever the environment says. */
    unsetenv("DEBUGINFOD_URLS");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_symbols_function_file_line),
        cmocka_unit_test(test_symbols_kept_frames_used_and_saved),
        cmocka_unit_test(test_symbols_kept_symbol_table_frames_until_debug_info),
        cmocka_unit_test(test_symbols_debuglink_file_found),
        cmocka_unit_test(test_symbols_no_debuginfod_without_servers),
        cmocka_unit_test(test_symbols_strings_outlive_symbolizer),
        cmocka_unit_test(test_symbols_shared_strings_match_copies),
        cmocka_unit_test(test_symbols_cxx_demangled),
        cmocka_unit_test(test_symbols_libc_malloc),
        cmocka_unit_test(test_symbols_outside_every_module),
        cmocka_unit_test(test_symbols_seq_generations),
        cmocka_unit_test(test_symbols_rereported_module),
        cmocka_unit_test(test_symbols_unreadable_path),
        cmocka_unit_test(test_symbols_module_search_matches_a_scan),
        cmocka_unit_test(test_symbols_return_address_adjustment),
        cmocka_unit_test(test_symbols_inline_chain),
        cmocka_unit_test(test_symbols_prefetched_modules_resolve_alike),
        cmocka_unit_test(test_symbols_resolve_right_after_prefetch),
        cmocka_unit_test(test_symbols_prefetch_unreadable_paths),
        cmocka_unit_test(test_symbols_prefetch_rereported_module),
        cmocka_unit_test(test_symbols_free_with_prefetch_pending),
        cmocka_unit_test(test_symbols_debug_cache_resolves_alike),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
