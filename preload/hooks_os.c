/*
 * hooks_os.c - the memory the program gets from the kernel directly (mmap,
 * munmap, mremap), and the process events the shim must follow: dlopen and
 * dlclose (the module map), fork (the child gets a stream of its own),
 * exit and _exit (the final flush, and the exit code).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "record.h"

static uint64_t page_round(uint64_t n)
{
    uint64_t page = 4096;
    return (n + page - 1) & ~(page - 1);
}

static void *mmap_common(void *(*real)(void *, size_t, int, int, int, off_t), const void *caller,
                         void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    /* libunwind's memory (its caches, while it unwinds for us) is the
     * shim's: it goes in the shim's region (bootstrap.c), where no munmap
     * of the program's can take it away. */
    if (SHIM_UNLIKELY(shim_called_by_libunwind(caller)) && !addr && fd < 0 && !off &&
        flags == (MAP_PRIVATE | MAP_ANONYMOUS) && prot == (PROT_READ | PROT_WRITE) && len) {
        void *p = shim_os_mmap(len);
        if (!p)
            errno = ENOMEM;
        return p ? p : MAP_FAILED;
    }
    if (!shim_recording_os(caller))
        return real(addr, len, prot, flags, fd, off);
    void *p;
    int saved = shim_guard;
    shim_guard = SHIM_GUARD_PASS;
    p = real(addr, len, prot, flags, fd, off);
    shim_guard = saved;
    if (p != MAP_FAILED) {
        int anon = (flags & MAP_ANONYMOUS) || fd < 0;
        uint64_t arg = anon ? ((uint64_t)(uint32_t)prot | ((uint64_t)(uint32_t)flags << 32))
                            : (uint64_t)(uint32_t)fd;
        shim_record_simple(anon ? MLMEM_EV_MMAP : MLMEM_EV_MMAP_FILE, (uintptr_t)p,
                           page_round(len), arg, 1);
    }
    return p;
}

SHIM_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (SHIM_UNLIKELY(!g_shim.real.mmap))
        shim_resolve_real();
    return mmap_common(g_shim.real.mmap, __builtin_return_address(0), addr, len, prot, flags, fd, off);
}

SHIM_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (SHIM_UNLIKELY(!g_shim.real.mmap64))
        shim_resolve_real();
    return mmap_common(g_shim.real.mmap64, __builtin_return_address(0), addr, len, prot, flags, fd, off);
}

SHIM_EXPORT int munmap(void *addr, size_t len)
{
    if (SHIM_UNLIKELY(!g_shim.real.munmap))
        shim_resolve_real();
    if (SHIM_UNLIKELY(shim_os_owns(addr, len) && len)) { /* libunwind freeing its memory */
        shim_os_munmap(addr, len);
        return 0;
    }
    if (!shim_recording_os(__builtin_return_address(0)))
        return g_shim.real.munmap(addr, len);
    shim_ring_t *r = shim_ring_get();
    shim_event_t *e = r ? shim_event_reserve(r, 2) : NULL;
    if (e) {
        shim_event_stamp(r, e, 1); /* before the range can be mapped again */
    }
    int saved = shim_guard;
    shim_guard = SHIM_GUARD_PASS;
    int rc = g_shim.real.munmap(addr, len);
    shim_guard = saved;
    if (e) {
        uint64_t size = page_round(len);
        e->addr = (uintptr_t)addr;
        e->info = SHIM_EVI(rc == 0 ? MLMEM_EV_MUNMAP : MLMEM_EV_NOP, 0, size) | SHIM_EVI_EXT;
        shim_event_ext_t *x = shim_event_ext(r, e);
        x->size = size;
        x->old_addr = 0;
        x->arg = 0;
        x->stack_id = 0;
        shim_event_commit(r);
    }
    return rc;
}

SHIM_EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    if (SHIM_UNLIKELY(!g_shim.real.mremap))
        shim_resolve_real();
    void *want = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        want = va_arg(ap, void *);
        va_end(ap);
    }
    if (!shim_recording_os(__builtin_return_address(0)))
        return g_shim.real.mremap(old, old_len, new_len, flags, want);
    shim_ring_t *r = shim_ring_get();
    /* The stack before the event (stacks.c); a failed mremap leaves it unused. */
    uint32_t stack = r ? shim_stack_for(r, new_len, 1) : MLMEM_STACK_NONE;
    shim_event_t *e = r ? shim_event_reserve(r, 2) : NULL;
    if (e) {
        shim_event_stamp(r, e, 1);
    }
    int saved = shim_guard;
    shim_guard = SHIM_GUARD_PASS;
    void *p = g_shim.real.mremap(old, old_len, new_len, flags, want);
    shim_guard = saved;
    if (e) {
        shim_event_ext_t *x = shim_event_ext(r, e);
        if (p != MAP_FAILED) {
            uint64_t size = page_round(new_len);
            e->addr = (uintptr_t)p;
            e->info = SHIM_EVI(MLMEM_EV_MREMAP, 0, size) | SHIM_EVI_EXT;
            x->size = size;
            x->old_addr = (uintptr_t)old;
            x->arg = page_round(old_len);
            x->stack_id = stack;
        } else {
            e->addr = 0;
            e->info = SHIM_EVI(MLMEM_EV_NOP, 0, 0) | SHIM_EVI_EXT;
            x->size = 0;
            x->old_addr = 0;
            x->arg = 0;
            x->stack_id = 0;
        }
        shim_event_commit(r);
    }
    return p;
}

SHIM_EXPORT void *dlopen(const char *file, int mode)
{
    if (SHIM_UNLIKELY(!g_shim.real.dlopen))
        shim_resolve_real();
    void *h = g_shim.real.dlopen(file, mode);
    if (h && atomic_load(&g_shim.mode) == SHIM_ACTIVE)
        shim_modules_refresh(0);
    return h;
}

SHIM_EXPORT int dlclose(void *handle)
{
    if (SHIM_UNLIKELY(!g_shim.real.dlclose))
        shim_resolve_real();
    int rc = g_shim.real.dlclose(handle);
    if (rc == 0)
        shim_cfi_forget();
    if (rc == 0 && atomic_load(&g_shim.mode) == SHIM_ACTIVE)
        shim_modules_refresh(1);
    return rc;
}

SHIM_EXPORT pid_t fork(void)
{
    if (SHIM_UNLIKELY(!g_shim.real.fork))
        shim_resolve_real();
    pid_t pid = g_shim.real.fork();
    if (pid > 0 && shim_recording())
        shim_record_simple(MLMEM_EV_FORK, 0, 0, (uint64_t)pid, 0);
    return pid;
}

SHIM_EXPORT void exit(int code)
{
    if (SHIM_UNLIKELY(!g_shim.real.exit))
        shim_resolve_real();
    if (getpid() == g_shim.pid) {
        atomic_store(&g_shim.end_code, code & 0xff); /* what the parent's wait sees */
        atomic_store(&g_shim.end_code_known, 1);
    }
    g_shim.real.exit(code); /* our destructor does the final flush */
}

static void __attribute__((noreturn)) underscore_exit(int code)
{
    if (SHIM_UNLIKELY(!g_shim.real.underscore_exit))
        shim_resolve_real();
    shim_writer_finish(MLMEM_END_UNDERSCORE_EXIT, 1, code & 0xff);
    g_shim.real.underscore_exit(code);
}

/* abort() kills the process with SIGABRT before any destructor runs: send
 * what the rings hold first. (assert() calls glibc's internal abort, which
 * cannot be interposed; the writer's last drain, a few ms old, is kept.) */
SHIM_EXPORT void abort(void)
{
    if (SHIM_UNLIKELY(!g_shim.real.abort))
        shim_resolve_real();
    shim_writer_finish(MLMEM_END_ABORT, 0, 0);
    g_shim.real.abort();
}

SHIM_EXPORT void _exit(int code)
{
    underscore_exit(code);
}

/* A program that returns from main ends through glibc's internal exit,
 * which no hook sees: main itself is wrapped, so the exit code of every
 * process of the run is known (the analyzer has the command's from
 * waitpid, but not its children's). */
typedef int (*main_fn_t)(int, char **, char **);
typedef int (*start_main_fn_t)(main_fn_t, int, char **, void (*)(void), void (*)(void),
                               void (*)(void), void *);
static main_fn_t program_main;

static int main_wrapper(int argc, char **argv, char **envp)
{
    int code = program_main(argc, argv, envp);
    if (getpid() == g_shim.pid) {
        atomic_store(&g_shim.end_code, code & 0xff);
        atomic_store(&g_shim.end_code_known, 1);
    }
    return code;
}

SHIM_EXPORT int __libc_start_main(main_fn_t main, int argc, char **argv, void (*init)(void),
                                  void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
    start_main_fn_t real;
    void *sym = dlsym(RTLD_NEXT, "__libc_start_main");
    memcpy(&real, &sym, sizeof sym);
    program_main = main;
    return real(main_wrapper, argc, argv, init, fini, rtld_fini, stack_end);
}

/* Capabilities belong to each thread, while glibc's set*id functions apply
 * their change to every thread and abort the process when one of them
 * fails. A program that raises its capabilities with capset (setpriv,
 * anything using libcap-ng) and then calls setresgid would be aborted by
 * our writer thread, which did not get the raise. So recording stops
 * here: the writer sends what it has and ends, and the program goes on
 * unprofiled. */
SHIM_EXPORT int capset(void *header, const void *data)
{
    if (atomic_load(&g_shim.mode) == SHIM_ACTIVE && getpid() == g_shim.pid) {
        shim_log("the program changes its capabilities (capset): recording stops here, "
                 "since the profiler's own thread can not follow");
        shim_writer_stop_thread();
    }
    return (int)syscall(SYS_capset, header, data);
}

SHIM_EXPORT void _Exit(int code)
{
    underscore_exit(code);
}
