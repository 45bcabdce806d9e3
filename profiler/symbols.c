/*
 * symbols.c - the libdw symbolizer behind symbols.h.
 *
 * Every module the shim reported gets its own offline Dwfl, opened the first
 * time an address inside it is resolved. One Dwfl per module (rather than
 * one for the whole process) is what lets two load generations occupy the
 * same address range: each generation is resolved against its own file.
 *
 * Results are cached per (lookup address, opened file) in an open-addressing
 * hash table; the cache owns its strings, and resolve() hands out copies.
 *
 * Opening a module is most of what symbolizing a short run costs: libdw
 * inflates every compressed .debug section of the file (libc6-dbg's: 10 MB,
 * 60 ms; debug_cache.c keeps inflated copies between runs, which
 * sym_find_debuginfo() hands libdw instead), reads which CU covers which
 * addresses, and the symbol table is sorted (libtorch's: 100,000+
 * functions). prof_symbols_prefetch() hands modules to one helper thread as
 * soon as the analysis sees stacks in them, so they open while the program
 * still runs (or the rest of a trace is decoded). The helper touches only
 * its job (a copy of the path and bias in, an opened file out); the
 * symbolizer adopts the job when it first resolves an address in that
 * module, running it itself if the helper has not started it yet. Each
 * Dwfl is used by one thread at a time, handed over under the helper's
 * lock. The one state of libelf both threads touch is elf_version()'s flag,
 * which every dwfl_begin() sets to the same 1 (helgrind reports it: elfutils
 * 0.188 has no lock there).
 */
#define _GNU_SOURCE
#include "symbols.h"

#include "debug_cache.h"
#include "frame_cache.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* libstdc++'s __cxa_demangle (the Itanium C++ ABI), loaded at the first C++
 * name: linking libstdc++ cost every mlmem start 1.1 ms (its load and
 * static initialization), most of what a C program's short run pays before
 * it starts (docs/benchmarks.md, ninth round). NULL when it cannot be
 * loaded: names are then kept as they are. */
typedef char *(*sym_demangle_fn)(const char *mangled, char *out, size_t *len, int *status);
static sym_demangle_fn sym_cxa_demangle;
static pthread_once_t sym_cxa_once = PTHREAD_ONCE_INIT;

static void sym_load_demangler(void)
{
    void *lib = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
    if (lib != NULL)
        sym_cxa_demangle = (sym_demangle_fn)dlsym(lib, "__cxa_demangle");
}

/* ------------------------------------------------------------------------ */
/* Types                                                                     */

typedef enum {
    SYM_OPEN_NOT_TRIED = 0,
    SYM_OPEN_PENDING,  /* handed to the helper thread: see 'job'          */
    SYM_OPEN_OK,
    SYM_OPEN_FAILED,   /* not a regular file, unreadable, not ELF: never retried */
} sym_open_t;

/* One function symbol of a module, at its run-time address. */
typedef struct {
    uint64_t addr;
    uint64_t size;         /* 0: unknown (assembly labels)                  */
    const char *name;      /* owned by libelf, lives as long as the Dwfl   */
    uint32_t rank;         /* 0 global, 1 weak, 2 local: the first wins    */
} sym_entry_t;

typedef enum { SYM_DWARF_UNKNOWN = 0, SYM_DWARF_FOUND, SYM_DWARF_NONE } sym_dwarf_t;

/* An ELF file opened with libdw at one load bias. */
typedef struct {
    Dwfl *dwfl;
    Dwfl_Module *mod;
    sym_entry_t *syms;     /* function symbols sorted by address           */
    size_t sym_count;
    bool syms_built;
    prof_frame_cache_t *kept; /* its frames from earlier runs (frame_cache.h) */
    bool kept_tried;
    sym_dwarf_t dwarf;     /* whether libdw found debug information for it */
} sym_file_t;

typedef enum { SYM_JOB_QUEUED, SYM_JOB_RUNNING, SYM_JOB_DONE } sym_job_state_t;

/* One module for the helper thread to open. */
typedef struct sym_job {
    struct sym_job *next;  /* in the queue, while QUEUED                   */
    sym_job_state_t state; /* under the helper's lock                      */
    char *path;
    uint64_t bias;
    const char *debug_cache; /* the symbolizer's, which outlives the job */
    sym_file_t file;       /* the outcome, once DONE                       */
    bool ok;
} sym_job_t;

typedef struct {
    uint32_t id;
    char *path;
    uint64_t bias;
    uint64_t start;
    uint64_t end;          /* exclusive */
    uint64_t load_seq;
    uint64_t unload_seq;   /* UINT64_MAX while loaded */
    sym_open_t state;
    size_t owner;          /* slot whose file this one uses (itself, or an
                              earlier slot with the same path and bias) */
    sym_file_t file;       /* owned only when owner is this slot */
    sym_job_t *job;        /* while PENDING */
} sym_module_t;

/* The thread that opens modules ahead of time, started by the first
 * prefetch. */
typedef struct {
    bool started;
    bool stopping;         /* under 'lock' */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a job queued or done, or stop asked */
    sym_job_t *head, *tail;
    size_t opened;         /* jobs the helper ran, under 'lock' */
} sym_helper_t;

/* A cache slot: 'count' frames from 'first' in the frame pool. */
typedef struct {
    uint64_t address;
    uint32_t module;       /* slot index in modules[] + 1; 0 = empty slot */
    uint32_t count;
    size_t first;
} sym_cache_slot_t;

struct prof_symbols {
    sym_module_t *modules;
    size_t module_count;
    size_t module_cap;

    /* Index for finding a module by address (a large program maps hundreds:
     * a scan of them all was 80% of symbolizing a cached address): module
     * indices sorted by start, and the highest end among each prefix of that
     * order, so a search stops at the first prefix ending before the
     * address. Rebuilt when modules were added since. */
    size_t *by_start;
    uint64_t *max_end;
    size_t indexed;        /* module_count when the index was built */

    sym_cache_slot_t *slots;
    size_t slot_cap;       /* power of two, or 0 */
    size_t slot_used;

    prof_frame_t *pool;    /* frames owned by the cache */
    size_t pool_count;
    size_t pool_cap;

    char *debug_cache;     /* debug_cache.h's directory, or NULL: no cache */

    sym_helper_t helper;
    uint64_t seen_start;   /* the last module a prefetch found: its range */
    uint64_t seen_end;
};

/* Whether libdw's search by .gnu_debuglink name could find anything in its
 * default path (":.debug:/usr/lib/debug": the file's own directory, its
 * .debug subdirectory, and that directory under /usr/lib/debug), by the
 * name the link gives or, without one, the file's name and ".debug". Only
 * whether a file is there: libdw checks what it opens. A link with a
 * directory in it is left to libdw (true). */
static bool sym_debuglink_candidate(const char *file_name, const char *debuglink_file)
{
    if (file_name == NULL || file_name[0] != '/')
        return true;
    const char *base = strrchr(file_name, '/') + 1;
    int dir_len = (int)(base - file_name - 1);
    char name[4096], path[4096];
    if (debuglink_file == NULL)
        snprintf(name, sizeof name, "%s.debug", base);
    else if (strchr(debuglink_file, '/') == NULL)
        snprintf(name, sizeof name, "%s", debuglink_file);
    else
        return true;
    static const char *const formats[] = {"%.*s/%s", "%.*s/.debug/%s", "/usr/lib/debug%.*s/%s"};
    struct stat st;
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        int n = snprintf(path, sizeof path, formats[i], dir_len, file_name, name);
        if (n < 0 || (size_t)n >= sizeof path)
            return true;
        if (strcmp(path, file_name) != 0 && stat(path, &st) == 0)
            return true;
    }
    return false;
}

/* Takes the separate debug file from the debug cache (debug_cache.h) when
 * it holds one for the module's build ID or can make one (a compressed
 * file under /usr/lib/debug/.build-id), and otherwise finds it the
 * standard way (.gnu_debuglink, /usr/lib/debug/.build-id, and debuginfod
 * when the user set DEBUGINFOD_URLS). The cache comes first because the
 * standard way hands libdw the file it opened to check, which libdw would
 * then inflate whatever descriptor this returned. '*userdata' is the cache
 * directory sym_file_open() gave the module, or NULL.
 *
 * Without DEBUGINFOD_URLS, a module with no file where the standard way
 * looks is not handed to it: libdw 0.188 loads libdebuginfod (and libcurl,
 * gnutls, krb5: 25 libraries) the first time its search finds nothing,
 * whether or not a server is set, and the first PyTorch library without
 * debug information cost the report 7 to 13 ms that way (eleventh round). */
static int sym_find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
                              Dwarf_Addr base, const char *file_name,
                              const char *debuglink_file, GElf_Word debuglink_crc,
                              char **debuginfo_file_name)
{
    const unsigned char *id;
    GElf_Addr id_vaddr;
    int id_len = dwfl_module_build_id(mod, &id, &id_vaddr);
    if (*userdata != NULL && id_len > 0) {
        char *cached_path;
        int fd = prof_debug_cache_open(*userdata, PROF_DEBUG_ROOT, id, (size_t)id_len,
                                       &cached_path);
        if (fd >= 0) {
            *debuginfo_file_name = cached_path;
            return fd;
        }
    }
    const char *servers = getenv("DEBUGINFOD_URLS");
    if ((servers == NULL || servers[0] == '\0') && id_len > 0) {
        int fd = dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name,
                                              debuglink_file, debuglink_crc,
                                              debuginfo_file_name);
        if (fd >= 0 || !sym_debuglink_candidate(file_name, debuglink_file))
            return fd;
    }
    return dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name,
                                        debuglink_file, debuglink_crc, debuginfo_file_name);
}

/* Offline callbacks: the file is given to dwfl_report_elf directly, so
 * find_elf is only a formality. */
static const Dwfl_Callbacks sym_callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = sym_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = NULL,    /* the default search path */
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

/* strdup that accepts NULL (and returns NULL for it). */
static char *sym_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Frees the strings of 'f', not 'f' itself. */
static void sym_frame_clear(prof_frame_t *f)
{
    free(f->function);
    free(f->file);
    free(f->module);
    memset(f, 0, sizeof(*f));
}

/* Returns a malloc'd human name for 'name': demangled when it is an Itanium
 * C++ symbol (_Z...), a copy otherwise. NULL in, NULL out; a name that fails
 * to demangle is kept as is. */
static char *sym_demangle(const char *name)
{
    if (name == NULL)
        return NULL;
    if (name[0] == '_' && name[1] == 'Z' && pthread_once(&sym_cxa_once, sym_load_demangler) == 0 &&
        sym_cxa_demangle != NULL) {
        int status = 0;
        char *d = sym_cxa_demangle(name, NULL, NULL, &status);
        if (d != NULL && status == 0)
            return d;
        free(d);
    }
    return strdup(name);
}

/* 64-bit mix for the cache hash (from splitmix64). */
static uint64_t sym_hash(uint64_t address, uint32_t module)
{
    uint64_t x = address ^ ((uint64_t)module << 47) ^ module;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* ------------------------------------------------------------------------ */
/* Lifetime and module map                                                   */

prof_symbols_t *prof_symbols_new(void)
{
    prof_symbols_t *s = calloc(1, sizeof(prof_symbols_t));
    if (s != NULL)
        s->debug_cache = prof_debug_cache_dir();
    return s;
}

/* A NULL path is stored as "" so the frame still names "some module"; an
 * empty range (start >= end) never matches an address. */
int prof_symbols_add_module(prof_symbols_t *s, uint32_t id, const char *path,
                            uint64_t bias, uint64_t start, uint64_t end,
                            uint64_t load_seq)
{
    if (s->module_count == s->module_cap) {
        size_t cap = s->module_cap ? s->module_cap * 2 : 16;
        sym_module_t *m = realloc(s->modules, cap * sizeof(*m));
        if (m == NULL)
            return -1;
        s->modules = m;
        s->module_cap = cap;
    }
    char *copy = strdup(path ? path : "");
    if (copy == NULL)
        return -1;
    sym_module_t *m = &s->modules[s->module_count++];
    memset(m, 0, sizeof(*m));
    m->id = id;
    m->path = copy;
    m->bias = bias;
    m->start = start;
    m->end = end;
    m->load_seq = load_seq;
    m->unload_seq = UINT64_MAX;
    m->owner = s->module_count - 1;
    return 0;
}

/* If an id was registered twice, the most recent generation still loaded is
 * the one unloaded. */
void prof_symbols_unload_module(prof_symbols_t *s, uint32_t id, uint64_t unload_seq)
{
    for (size_t i = s->module_count; i-- > 0;) {
        sym_module_t *m = &s->modules[i];
        if (m->id == id && m->unload_seq == UINT64_MAX) {
            m->unload_seq = unload_seq;
            return;
        }
    }
}

static int sym_cmp_start(const void *a, const void *b, void *ctx)
{
    const sym_module_t *modules = ctx;
    uint64_t x = modules[*(const size_t *)a].start;
    uint64_t y = modules[*(const size_t *)b].start;
    if (x != y)
        return x < y ? -1 : 1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

/* Builds the address index over every module; false when out of memory. */
static bool sym_index_modules(prof_symbols_t *s)
{
    size_t n = s->module_count;
    size_t *order = realloc(s->by_start, (n ? n : 1) * sizeof *order);
    if (order)
        s->by_start = order;
    uint64_t *ends = realloc(s->max_end, (n ? n : 1) * sizeof *ends);
    if (ends)
        s->max_end = ends;
    if (!order || !ends)
        return false;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, n, sizeof *order, sym_cmp_start, s->modules);
    for (size_t i = 0; i < n; i++) {
        uint64_t end = s->modules[order[i]].end;
        ends[i] = i && ends[i - 1] > end ? ends[i - 1] : end;
    }
    s->indexed = n;
    return true;
}

/* Whether module 'i' covers 'address' at 'seq', and beats 'best' (-1:
 * none yet): the later load wins, then the later slot. */
static bool sym_module_better(const prof_symbols_t *s, size_t i, long best, uint64_t address,
                              uint64_t seq)
{
    const sym_module_t *m = &s->modules[i];
    if (address < m->start || address >= m->end || seq < m->load_seq || seq >= m->unload_seq)
        return false;
    if (best < 0)
        return true;
    const sym_module_t *b = &s->modules[best];
    return m->load_seq > b->load_seq || (m->load_seq == b->load_seq && i > (size_t)best);
}

/* Returns the index of the module covering 'address' at 'seq', or -1. Should
 * two generations both match (a map the shim got wrong), the later load wins. */
static long sym_find_module(prof_symbols_t *s, uint64_t address, uint64_t seq)
{
    long best = -1;
    if (s->indexed != s->module_count && !sym_index_modules(s)) {
        for (size_t i = 0; i < s->module_count; i++) /* no memory for the index */
            if (sym_module_better(s, i, best, address, seq))
                best = (long)i;
        return best;
    }
    /* The modules starting at or below the address, from the highest start
     * down, until no earlier one reaches the address. */
    size_t lo = 0, hi = s->module_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->modules[s->by_start[mid]].start <= address)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t j = lo; j-- > 0 && s->max_end[j] > address;)
        if (sym_module_better(s, s->by_start[j], best, address, seq))
            best = (long)s->by_start[j];
    return best;
}

static int sym_cmp_entry(const void *x, const void *y)
{
    const sym_entry_t *a = x, *b = y;
    if (a->addr != b->addr)
        return a->addr < b->addr ? -1 : 1;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

/* The module's function symbols sorted by address, built on first use.
 * dwfl_module_addrinfo searches the whole symbol table for every address
 * (elfutils 0.188): with libtorch's 100,000+ symbols, symbolizing a PyTorch
 * run's stacks took minutes; a binary search takes microseconds. */
static void sym_build_index(sym_file_t *f)
{
    f->syms_built = true;
    int n = dwfl_module_getsymtab(f->mod);
    if (n <= 0)
        return;
    f->syms = malloc((size_t)n * sizeof(*f->syms));
    if (f->syms == NULL)
        return;
    for (int i = 1; i < n; i++) {
        GElf_Sym sym;
        GElf_Addr addr;
        GElf_Word shndx;
        const char *name = dwfl_module_getsym_info(f->mod, i, &sym, &addr, &shndx, NULL, NULL);
        int type = GELF_ST_TYPE(sym.st_info);
        if (name == NULL || name[0] == '\0' || shndx == SHN_UNDEF || addr == 0 ||
            (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE))
            continue;
        int bind = GELF_ST_BIND(sym.st_info);
        f->syms[f->sym_count++] = (sym_entry_t){
            addr, sym.st_size, name, bind == STB_GLOBAL ? 0u : bind == STB_WEAK ? 1u : 2u};
    }
    qsort(f->syms, f->sym_count, sizeof(*f->syms), sym_cmp_entry);
}

/* Opens 'path' at load 'bias' into 'f', its separate debug file through
 * the cache in 'debug_cache' (NULL: none). Paths that are not regular files
 * ("linux-vdso.so.1", "[vdso]", deleted files) fail without touching libdw.
 * Touches nothing shared, so the helper thread runs it too. */
static bool sym_file_open(const char *path, uint64_t bias, const char *debug_cache,
                          sym_file_t *f)
{
    memset(f, 0, sizeof *f);
    struct stat st;
    if (path[0] == '\0' || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    Dwfl *dwfl = dwfl_begin(&sym_callbacks);
    if (dwfl == NULL)
        return false;
    dwfl_report_begin(dwfl);
    /* add_p_vaddr: 'bias' is dlpi_addr, the difference between run-time
     * addresses and the file's p_vaddr (ignored for ET_EXEC). */
    Dwfl_Module *mod = dwfl_report_elf(dwfl, path, path, -1, bias, true);
    if (mod == NULL || dwfl_report_end(dwfl, NULL, NULL) != 0) {
        dwfl_end(dwfl);
        return false;
    }
    void **userdata;
    dwfl_module_info(mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL);
    *userdata = (void *)debug_cache;    /* for sym_find_debuginfo() */
    f->dwfl = dwfl;
    f->mod = mod;
    return true;
}

static void sym_file_close(sym_file_t *f)
{
    if (f->dwfl != NULL)
        dwfl_end(f->dwfl);
    prof_frame_cache_free(f->kept);
    free(f->syms);
    memset(f, 0, sizeof *f);
}

/* The frames kept from earlier runs for 'f''s build in 'debug_cache'
 * (NULL: no cache directory, no build ID, or no memory), read on first use. */
static prof_frame_cache_t *sym_file_kept(sym_file_t *f, const char *debug_cache)
{
    if (!f->kept_tried) {
        f->kept_tried = true;
        const unsigned char *id;
        GElf_Addr id_vaddr;
        int len = debug_cache ? dwfl_module_build_id(f->mod, &id, &id_vaddr) : 0;
        if (len > 0)
            f->kept = prof_frame_cache_open(debug_cache, id, (size_t)len);
    }
    return f->kept;
}

/* Whether libdw finds debug information for 'f' (in the file, a separate
 * debug file or the debug cache), asked once. */
static bool sym_file_has_dwarf(sym_file_t *f)
{
    if (f->dwarf == SYM_DWARF_UNKNOWN) {
        Dwarf_Addr bias;
        f->dwarf = dwfl_module_getdwarf(f->mod, &bias) ? SYM_DWARF_FOUND : SYM_DWARF_NONE;
    }
    return f->dwarf == SYM_DWARF_FOUND;
}

/* ---- the helper thread ---- */

/* Opens the job's file and does the slow part of a first lookup ahead:
 * finding and inflating the debug info, reading its address ranges (which
 * CU covers an address: libc6-dbg's 2,000 take 7 ms), sorting the symbol
 * table. libdw keeps all of it with the Dwfl. A build whose frames an
 * earlier run kept is only opened: a rerun's addresses are mostly among
 * them, and libdw's work waits for the first one that is not (it took 20 ms
 * of the other core on every run of the storm). Unless some of those frames
 * came from the symbol table alone and the module still has no debug
 * information: then the addresses they miss (the sampled mode's stacks
 * differ from run to run) need the sorted symbol table, and it is sorted
 * here rather than after the program has ended (PyTorch's libraries: 16 ms
 * of the report's time; docs/benchmarks.md, eleventh round). */
static void sym_job_run(sym_job_t *job)
{
    job->ok = sym_file_open(job->path, job->bias, job->debug_cache, &job->file);
    if (!job->ok)
        return;
    prof_frame_cache_t *kept = sym_file_kept(&job->file, job->debug_cache);
    if (kept && prof_frame_cache_count(kept) > 0) {
        if (prof_frame_cache_count_without(kept, PROF_FRAME_CACHE_DEBUG_INFO) > 0 &&
            !sym_file_has_dwarf(&job->file))
            sym_build_index(&job->file);
        return;
    }
    Dwarf_Addr bias;
    Dwarf *dwarf = dwfl_module_getdwarf(job->file.mod, &bias);
    Dwarf_Aranges *aranges;
    size_t count;
    if (dwarf != NULL)
        dwarf_getaranges(dwarf, &aranges, &count);
    sym_build_index(&job->file);
}

static void *sym_helper_main(void *arg)
{
    sym_helper_t *h = arg;
    /* Not SCHED_IDLE, though its work is ahead of need: a resolve may have
     * to wait for it, and an unprivileged process cannot raise a thread
     * back from SCHED_IDLE (RLIMIT_NICE), so on a busy machine the
     * analyzer would wait on a starved thread. */
    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        sym_job_t *job = h->head;
        if (job == NULL) {
            pthread_cond_wait(&h->changed, &h->lock);
            continue;
        }
        h->head = job->next;
        if (h->head == NULL)
            h->tail = NULL;
        job->state = SYM_JOB_RUNNING;
        pthread_mutex_unlock(&h->lock);
        sym_job_run(job);
        pthread_mutex_lock(&h->lock);
        job->state = SYM_JOB_DONE;
        h->opened++;
        pthread_cond_broadcast(&h->changed);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* Starts the helper once; false if it cannot run. It takes no signals: the
 * analyzer's own handlers (launch.c) expect them on the main thread. */
static bool sym_helper_start(sym_helper_t *h)
{
    if (h->started)
        return true;
    if (pthread_mutex_init(&h->lock, NULL) != 0)
        return false;
    if (pthread_cond_init(&h->changed, NULL) != 0) {
        pthread_mutex_destroy(&h->lock);
        return false;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&h->thread, NULL, sym_helper_main, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&h->changed);
        pthread_mutex_destroy(&h->lock);
        return false;
    }
    h->started = true;
    return true;
}

/* Stops the helper after the job it is running; queued jobs stay queued. */
static void sym_helper_stop(sym_helper_t *h)
{
    if (!h->started)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->changed);
    pthread_mutex_destroy(&h->lock);
    h->started = false;
}

/* Queues slot 'i' for the helper; false when that cannot be done (the slot
 * then opens when first resolved, as without a helper). */
static bool sym_module_queue(prof_symbols_t *s, size_t i)
{
    sym_module_t *m = &s->modules[i];
    sym_job_t *job = calloc(1, sizeof *job);
    if (job == NULL || (job->path = strdup(m->path)) == NULL || !sym_helper_start(&s->helper)) {
        if (job)
            free(job->path);
        free(job);
        return false;
    }
    job->bias = m->bias;
    job->debug_cache = s->debug_cache;
    job->state = SYM_JOB_QUEUED;
    m->job = job;
    m->state = SYM_OPEN_PENDING;
    sym_helper_t *h = &s->helper;
    pthread_mutex_lock(&h->lock);
    if (h->tail)
        h->tail->next = job;
    else
        h->head = job;
    h->tail = job;
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->lock);
    return true;
}

/* Takes pending slot 'i''s job back: runs it here if the helper has not
 * started it (rather than wait behind the jobs queued before it), or waits
 * for the helper to finish it. The slot ends OK or FAILED. After
 * sym_helper_stop(), a job still queued is dropped unrun (the symbolizer is
 * being freed). */
static void sym_module_adopt(prof_symbols_t *s, size_t i)
{
    sym_module_t *m = &s->modules[i];
    sym_job_t *job = m->job;
    sym_helper_t *h = &s->helper;
    bool run_here = false, dropped = false;
    if (h->started) {
        pthread_mutex_lock(&h->lock);
        if (job->state == SYM_JOB_QUEUED) {
            sym_job_t **at = &h->head, *prev = NULL;
            while (*at != job) {
                prev = *at;
                at = &(*at)->next;
            }
            *at = job->next;
            if (h->tail == job)
                h->tail = prev;
            job->state = SYM_JOB_RUNNING;
            run_here = true;
        }
        while (!run_here && job->state != SYM_JOB_DONE)
            pthread_cond_wait(&h->changed, &h->lock);
        pthread_mutex_unlock(&h->lock);
    } else {
        dropped = job->state == SYM_JOB_QUEUED;
    }
    if (run_here)
        sym_job_run(job);
    m->file = job->file;
    m->state = !dropped && job->ok ? SYM_OPEN_OK : SYM_OPEN_FAILED;
    m->job = NULL;
    free(job->path);
    free(job);
}

/* An earlier slot with the same path and bias that was opened, tried or
 * queued (the shim re-reporting its map after a dlopen), whose file slot
 * 'i' can share; SIZE_MAX if none. */
static size_t sym_same_file(const prof_symbols_t *s, size_t i)
{
    const sym_module_t *m = &s->modules[i];
    for (size_t j = 0; j < s->module_count; j++) {
        const sym_module_t *o = &s->modules[j];
        if (j != i && o->state != SYM_OPEN_NOT_TRIED && o->owner == j && o->bias == m->bias &&
            strcmp(o->path, m->path) == 0)
            return j;
    }
    return SIZE_MAX;
}

/* Opens module slot 'i' with libdw, once (or adopts what the helper
 * opened). A slot with the same path and bias as one already tried shares
 * that slot's file and outcome instead of opening the file again. */
static bool sym_module_open(prof_symbols_t *s, size_t i)
{
    sym_module_t *m = &s->modules[i];
    if (m->state == SYM_OPEN_PENDING)
        sym_module_adopt(s, i);
    if (m->state != SYM_OPEN_NOT_TRIED)
        return m->state == SYM_OPEN_OK;
    size_t j = sym_same_file(s, i);
    if (j != SIZE_MAX) {
        if (s->modules[j].state == SYM_OPEN_PENDING)
            sym_module_adopt(s, j);
        m->state = s->modules[j].state;
        m->owner = j;
        return m->state == SYM_OPEN_OK;
    }
    m->state = sym_file_open(m->path, m->bias, s->debug_cache, &m->file) ? SYM_OPEN_OK
                                                                          : SYM_OPEN_FAILED;
    return m->state == SYM_OPEN_OK;
}

size_t prof_symbols_opened_ahead(prof_symbols_t *s)
{
    sym_helper_t *h = &s->helper;
    if (!h->started)
        return 0;
    pthread_mutex_lock(&h->lock);
    size_t n = h->opened;
    pthread_mutex_unlock(&h->lock);
    return n;
}

/* Return addresses in a run of one module mostly: the module found last is
 * checked first, which spares the search for most frames. */
void prof_symbols_prefetch(prof_symbols_t *s, const uint64_t *addresses, size_t count,
                           uint64_t seq)
{
    for (size_t k = 0; k < count; k++) {
        uint64_t lookup = addresses[k] ? addresses[k] - 1 : 0;
        if (lookup >= s->seen_start && lookup < s->seen_end)
            continue;
        long mi = sym_find_module(s, lookup, seq);
        if (mi < 0)
            continue;
        sym_module_t *m = &s->modules[mi];
        s->seen_start = m->start;
        s->seen_end = m->end;
        if (m->state == SYM_OPEN_NOT_TRIED && sym_same_file(s, (size_t)mi) == SIZE_MAX)
            sym_module_queue(s, (size_t)mi);
    }
}

void prof_symbols_free(prof_symbols_t *s)
{
    if (s == NULL)
        return;
    prof_symbols_finish(s);
    for (size_t i = 0; i < s->module_count; i++) {
        if (s->modules[i].state == SYM_OPEN_PENDING)
            sym_module_adopt(s, i);
        if (s->modules[i].owner == i)
            sym_file_close(&s->modules[i].file);
        free(s->modules[i].path);
    }
    for (size_t i = 0; i < s->pool_count; i++)
        sym_frame_clear(&s->pool[i]);
    free(s->debug_cache);
    free(s->modules);
    free(s->by_start);
    free(s->max_end);
    free(s->slots);
    free(s->pool);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* Resolution                                                                */

/* A growable list of frames under construction. */
typedef struct {
    prof_frame_t *v;
    size_t n;
    size_t cap;
    bool oom;
} sym_frames_t;

/* Appends a frame taking ownership of 'function' and copying 'file'. On out
 * of memory the frame is dropped and the list marked. */
static void sym_frames_push(sym_frames_t *fs, char *function, const char *file,
                            uint32_t line, uint32_t inlined)
{
    if (fs->n == fs->cap) {
        size_t cap = fs->cap ? fs->cap * 2 : 4;
        prof_frame_t *v = realloc(fs->v, cap * sizeof(*v));
        if (v == NULL) {
            free(function);
            fs->oom = true;
            return;
        }
        fs->v = v;
        fs->cap = cap;
    }
    prof_frame_t *f = &fs->v[fs->n++];
    memset(f, 0, sizeof(*f));
    f->function = function;
    f->file = sym_strdup(file);
    f->line = line;
    f->inlined = inlined;
}

/* The demangled name of a subprogram or inlined-subroutine DIE: its linkage
 * name when it has one (qualified C++ names), else its plain name, following
 * abstract_origin/specification. NULL when it has neither. */
static char *sym_die_name(Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    const char *linkage = NULL;
    if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) != NULL ||
        dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr) != NULL)
        linkage = dwarf_formstring(&attr);
    if (linkage != NULL)
        return sym_demangle(linkage);
    return sym_strdup(dwarf_diename(die));
}

/* The call site of inlined-subroutine 'die': file (from the CU's file table)
 * and line, or NULL / 0 when the producer left them out. */
static const char *sym_call_site(Dwarf_Die *cudie, Dwarf_Die *die, uint32_t *line)
{
    Dwarf_Attribute attr;
    Dwarf_Word value;
    *line = 0;
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &attr), &value) == 0)
        *line = (uint32_t)value;
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &attr), &value) != 0)
        return NULL;
    Dwarf_Files *files;
    size_t nfiles;
    if (dwarf_getsrcfiles(cudie, &files, &nfiles) != 0 || value >= nfiles)
        return NULL;
    return dwarf_filesrc(files, value, NULL, NULL);
}

/* The name of the function symbol covering 'address': the last symbol at
 * or below it whose size covers it; a sizeless one only when no sized
 * symbol starts between it and the address. NULL if none. */
static const char *sym_lookup(sym_file_t *m, uint64_t address)
{
    if (!m->syms_built)
        sym_build_index(m);
    size_t lo = 0, hi = m->sym_count;
    while (lo < hi) { /* first entry above 'address' */
        size_t mid = lo + (hi - lo) / 2;
        if (m->syms[mid].addr <= address)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    size_t at = lo - 1;
    while (at > 0 && m->syms[at - 1].addr == m->syms[at].addr)
        at--; /* the best-ranked of those at this address */
    const sym_entry_t *e = &m->syms[at];
    if (e->size == 0 || address < e->addr + e->size)
        return e->name;
    /* A symbol nested in a larger one (aliases of different sizes). */
    for (size_t k = at, tries = 0; k-- > 0 && tries < 16; tries++)
        if (m->syms[k].size && address < m->syms[k].addr + m->syms[k].size)
            return m->syms[k].name;
    return NULL;
}

/* Symbolizes 'address' in opened file 'm' into 'fs': the inline chain from
 * the DWARF scopes (innermost first), then the containing function, named
 * from the symbol table (or from DWARF when the symbol table has nothing). */
static void sym_symbolize(sym_file_t *m, uint64_t address, sym_frames_t *fs)
{
    Dwfl_Module *mod = m->mod;
    const char *file = NULL;
    int lineno = 0;
    Dwfl_Line *dl = dwfl_module_getsrc(mod, address);
    if (dl != NULL) {
        file = dwfl_lineinfo(dl, NULL, &lineno, NULL, NULL, NULL);
        if (lineno < 0)
            lineno = 0;
    }

    uint32_t line = (uint32_t)lineno;
    char *dwarf_function = NULL;
    Dwarf_Addr cubias = 0;
    Dwarf_Die *cudie = dwfl_module_addrdie(mod, address, &cubias);
    if (cudie != NULL) {
        Dwarf_Die *scopes = NULL;
        int n = dwarf_getscopes(cudie, address - cubias, &scopes);
        for (int i = 0; i < n; i++) {
            int tag = dwarf_tag(&scopes[i]);
            if (tag == DW_TAG_inlined_subroutine) {
                sym_frames_push(fs, sym_die_name(&scopes[i]), file, line, 1);
                file = sym_call_site(cudie, &scopes[i], &line);
            } else if (tag == DW_TAG_subprogram) {
                dwarf_function = sym_die_name(&scopes[i]);
                break;
            }
        }
        free(scopes);
    }

    const char *name = sym_lookup(m, address);
    char *function = NULL;
    if (name != NULL && name[0] != '\0') {
        function = sym_demangle(name);
        free(dwarf_function);
    } else {
        function = dwarf_function;
    }
    sym_frames_push(fs, function, file, line, 0);
}

/* Makes room for one more slot, growing (and rehashing) past 70% load.
 * Returns false when out of memory. */
static bool sym_cache_reserve(prof_symbols_t *s)
{
    if ((s->slot_used + 1) * 10 < s->slot_cap * 7)
        return true;
    size_t cap = s->slot_cap ? s->slot_cap * 2 : 1024;
    sym_cache_slot_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return false;
    for (size_t i = 0; i < s->slot_cap; i++) {
        sym_cache_slot_t *old = &s->slots[i];
        if (old->module == 0)
            continue;
        size_t j = sym_hash(old->address, old->module) & (cap - 1);
        while (slots[j].module != 0)
            j = (j + 1) & (cap - 1);
        slots[j] = *old;
    }
    free(s->slots);
    s->slots = slots;
    s->slot_cap = cap;
    return true;
}

/* Returns the cached slot for (address, module key), or NULL. */
static const sym_cache_slot_t *sym_cache_find(const prof_symbols_t *s,
                                              uint64_t address, uint32_t key)
{
    if (s->slot_cap == 0)
        return NULL;
    size_t j = sym_hash(address, key) & (s->slot_cap - 1);
    while (s->slots[j].module != 0) {
        if (s->slots[j].module == key && s->slots[j].address == address)
            return &s->slots[j];
        j = (j + 1) & (s->slot_cap - 1);
    }
    return NULL;
}

/* Moves the frames of 'fs' into the cache under (address, key). Returns the
 * slot, or NULL when out of memory (then 'fs' still owns its frames). */
static const sym_cache_slot_t *sym_cache_insert(prof_symbols_t *s, uint64_t address,
                                                uint32_t key, sym_frames_t *fs)
{
    if (s->pool_count + fs->n > s->pool_cap) {
        size_t cap = s->pool_cap ? s->pool_cap : 1024;
        while (cap < s->pool_count + fs->n)
            cap *= 2;
        prof_frame_t *pool = realloc(s->pool, cap * sizeof(*pool));
        if (pool == NULL)
            return NULL;
        s->pool = pool;
        s->pool_cap = cap;
    }
    if (!sym_cache_reserve(s))
        return NULL;
    size_t j = sym_hash(address, key) & (s->slot_cap - 1);
    while (s->slots[j].module != 0)
        j = (j + 1) & (s->slot_cap - 1);
    sym_cache_slot_t *slot = &s->slots[j];
    slot->address = address;
    slot->module = key;
    slot->count = (uint32_t)fs->n;
    slot->first = s->pool_count;
    memcpy(&s->pool[s->pool_count], fs->v, fs->n * sizeof(*fs->v));
    s->pool_count += fs->n;
    s->slot_used++;
    fs->n = 0;
    return slot;
}

/* Copies 'n' frames into 'out' (at most 'max'), filling in address, module
 * and offset. With 'copy', their strings are copies the caller owns (one
 * that fails to copy is left NULL: a frame with fewer names beats no
 * frame); without, the strings of 'src' and 'm' themselves. */
static size_t sym_copy_out(const prof_frame_t *src, size_t n, const sym_module_t *m,
                           uint64_t address, prof_frame_t *out, size_t max, bool copy)
{
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++) {
        out[i].address = address;
        out[i].function = copy ? sym_strdup(src[i].function) : src[i].function;
        out[i].file = copy ? sym_strdup(src[i].file) : src[i].file;
        out[i].line = src[i].line;
        out[i].inlined = src[i].inlined;
        out[i].module = copy ? sym_strdup(m->path) : m->path;
        out[i].module_offset = address - m->bias;
    }
    return n;
}

/* Symbolizes 'lookup' in module slot 'owner' into 'fs': from the frames kept
 * by an earlier run when there are some, else with libdw, keeping what it
 * finds. A result without a file (the symbol table's name only: assembly,
 * or a module without debug information) resolved while the module had no
 * debug information is used only while it still has none: once a debug
 * package brings it, the address is resolved again, and the better frames
 * replace it. */
static void sym_symbolize_kept(prof_symbols_t *s, size_t owner, uint64_t lookup,
                               sym_frames_t *fs)
{
    sym_module_t *o = &s->modules[owner];
    prof_frame_cache_t *kept = sym_file_kept(&o->file, s->debug_cache);
    uint64_t offset = lookup - o->bias;
    const prof_frame_t *frames;
    uint32_t flags = 0;
    size_t n = kept ? prof_frame_cache_get(kept, offset, &frames, &flags) : 0;
    if (n && frames[n - 1].file == NULL && !(flags & PROF_FRAME_CACHE_DEBUG_INFO) &&
        sym_file_has_dwarf(&o->file))
        n = 0;
    if (n) {
        for (size_t i = 0; i < n; i++)
            sym_frames_push(fs, sym_strdup(frames[i].function), frames[i].file, frames[i].line,
                            frames[i].inlined);
        return;
    }
    sym_symbolize(&o->file, lookup, fs);
    if (kept && fs->n && !fs->oom)
        prof_frame_cache_put(kept, offset, fs->v, fs->n,
                             sym_file_has_dwarf(&o->file) ? PROF_FRAME_CACHE_DEBUG_INFO : 0);
}

void prof_symbols_finish(prof_symbols_t *s)
{
    sym_helper_stop(&s->helper);
    for (size_t i = 0; i < s->module_count; i++)
        if (s->modules[i].owner == i && s->modules[i].file.kept)
            prof_frame_cache_save(s->modules[i].file.kept);
}

/* The lookup address is address - 1 for return addresses (address 0 stays
 * 0), and that is the address reported in the frames. With no module
 * covering it, one frame holds only the address. If the module cannot be
 * read, one frame holds address, module and offset. 'copy': see
 * sym_copy_out(); without it, frames that could not be cached (out of
 * memory) lose their names, which would not outlive this call. */
static size_t sym_resolve(prof_symbols_t *s, uint64_t address, uint64_t seq,
                          int is_return_address, prof_frame_t *out, size_t max, bool copy)
{
    if (max == 0)
        return 0;
    uint64_t lookup = (is_return_address && address > 0) ? address - 1 : address;
    memset(&out[0], 0, sizeof(out[0]));
    out[0].address = lookup;

    long mi = sym_find_module(s, lookup, seq);
    if (mi < 0)
        return 1;
    bool opened = sym_module_open(s, (size_t)mi);
    sym_module_t *m = &s->modules[mi];
    /* Results depend only on the file and bias: slots sharing a Dwfl share
     * cache entries. */
    uint32_t key = (uint32_t)m->owner + 1;

    const sym_cache_slot_t *slot = sym_cache_find(s, lookup, key);
    if (slot != NULL)
        return sym_copy_out(&s->pool[slot->first], slot->count, m, lookup, out, max, copy);

    sym_frames_t fs = {0};
    if (opened)
        sym_symbolize_kept(s, m->owner, lookup, &fs);
    if (fs.n == 0)
        sym_frames_push(&fs, NULL, NULL, 0, 0);
    if (fs.n == 0) {    /* out of memory: module and offset only */
        free(fs.v);
        return sym_copy_out(out, 1, m, lookup, out, 1, copy);
    }

    size_t n;
    if (!fs.oom && (slot = sym_cache_insert(s, lookup, key, &fs)) != NULL) {
        n = sym_copy_out(&s->pool[slot->first], slot->count, m, lookup, out, max, copy);
    } else {
        n = sym_copy_out(fs.v, fs.n, m, lookup, out, max, copy);
        for (size_t i = 0; !copy && i < n; i++)
            out[i].function = out[i].file = NULL;
        for (size_t i = 0; i < fs.n; i++)
            sym_frame_clear(&fs.v[i]);
    }
    free(fs.v);
    return n;
}

size_t prof_symbols_resolve(prof_symbols_t *s, uint64_t address, uint64_t seq,
                            int is_return_address, prof_frame_t *out, size_t max)
{
    return sym_resolve(s, address, seq, is_return_address, out, max, true);
}

size_t prof_symbols_resolve_shared(prof_symbols_t *s, uint64_t address, uint64_t seq,
                                   int is_return_address, prof_frame_t *out, size_t max)
{
    return sym_resolve(s, address, seq, is_return_address, out, max, false);
}
