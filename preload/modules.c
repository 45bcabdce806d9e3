/*
 * modules.c - the map of loaded ELF objects, for symbolizing raw addresses
 * in the analyzer. Taken with dl_iterate_phdr at start and again after every
 * dlopen and dlclose; each module remembers the seq window in which it was
 * loaded, so addresses resolve against the object that was there when the
 * stack was captured. Append-only; the writer sends new entries and unloads.
 */
#define _GNU_SOURCE
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

typedef struct {
    int after_close;
    uint64_t seq;
} refresh_ctx_t;

static uint32_t store_path(const char *path)
{
    size_t len = strlen(path) + 1;
    if (g_shim.modules_paths_used + len > SHIM_MODULE_PATH_ARENA)
        return 0; /* offset 0 holds "" */
    uint32_t off = g_shim.modules_paths_used;
    memcpy(g_shim.modules_paths + off, path, len);
    g_shim.modules_paths_used += (uint32_t)len;
    return off;
}

/* The addresses [*lo, *hi) an object's PT_LOAD segments cover; *hi is 0
 * for an object without any. */
static void object_span(const struct dl_phdr_info *info, uint64_t *lo, uint64_t *hi)
{
    *lo = UINT64_MAX;
    *hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uint64_t s = info->dlpi_addr + ph->p_vaddr;
        if (s < *lo)
            *lo = s;
        if (s + ph->p_memsz > *hi)
            *hi = s + ph->p_memsz;
    }
}

static int on_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    refresh_ctx_t *ctx = arg;
    uint64_t lo, hi;
    object_span(info, &lo, &hi);
    if (hi == 0)
        return 0;
    const char *path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : g_shim.exe_path;

    uint32_t n = atomic_load(&g_shim.module_count);
    for (uint32_t i = 0; i < n; i++) {
        shim_module_t *m = &g_shim.modules[i];
        if (!m->unload_seq && m->bias == info->dlpi_addr && m->start == lo &&
            strcmp(g_shim.modules_paths + m->path_offset, path) == 0) {
            m->seen = 1;
            return 0;
        }
    }
    if (n >= SHIM_MAX_MODULES)
        return 0;
    shim_module_t *m = &g_shim.modules[n];
    m->bias = info->dlpi_addr;
    m->start = lo;
    m->end = hi;
    m->load_seq = ctx->seq;
    m->unload_seq = 0;
    m->path_offset = store_path(path);
    m->seen = 1;
    atomic_store(&g_shim.module_count, n + 1);
    return 0;
}

void shim_modules_refresh(int after_close)
{
    int saved = shim_guard;
    shim_guard = SHIM_GUARD_PASS;
    pthread_mutex_lock(&g_shim.modules_lock);
    refresh_ctx_t ctx = {after_close, atomic_load(&g_shim.seq)};
    uint32_t n = atomic_load(&g_shim.module_count);
    for (uint32_t i = 0; i < n; i++)
        g_shim.modules[i].seen = 0;
    dl_iterate_phdr(on_object, &ctx);
    if (after_close) {
        for (uint32_t i = 0; i < n; i++) {
            shim_module_t *m = &g_shim.modules[i];
            if (!m->seen && !m->unload_seq)
                m->unload_seq = ctx.seq ? ctx.seq : 1;
        }
    }
    atomic_fetch_add(&g_shim.modules_generation, 1);
    pthread_mutex_unlock(&g_shim.modules_lock);
    shim_guard = saved;
}

typedef struct {
    uintptr_t probe;
    uintptr_t *start, *end;
} range_query_t;

/* Finds the address range of the object containing q->probe. */
static int find_range(struct dl_phdr_info *info, size_t size, void *arg)
{
    range_query_t *q = arg;
    uint64_t lo, hi;
    object_span(info, &lo, &hi);
    if (q->probe < lo || q->probe >= hi)
        return 0;
    *q->start = (uintptr_t)lo;
    *q->end = (uintptr_t)hi;
    return 1;
}

/* Finds the shim's own range (its frames are dropped from stacks) and
 * libunwind's (its calls to mmap/munmap are the shim's, not the program's),
 * and takes the first snapshot. */
void shim_modules_init(void)
{
    ssize_t n = readlink("/proc/self/exe", g_shim.exe_path, sizeof g_shim.exe_path - 1);
    g_shim.exe_path[n > 0 ? n : 0] = '\0';
    g_shim.modules_paths[0] = '\0';
    g_shim.modules_paths_used = 1;
    range_query_t self = {(uintptr_t)&shim_modules_init, &g_shim.self_start, &g_shim.self_end};
    dl_iterate_phdr(find_range, &self);
    range_query_t unwind = {(uintptr_t)&unw_backtrace, &g_shim.unwind_start, &g_shim.unwind_end};
    dl_iterate_phdr(find_range, &unwind);
    shim_modules_refresh(0);
}
