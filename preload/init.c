/*
 * init.c - start, fork and end of the shim's life in a process.
 *
 * Start (constructor, before the program's own): read the configuration,
 * find the real functions, map the stack table, take the module map,
 * connect to the analyzer and start the writer. Anything that fails leaves
 * the shim detached: the program runs unprofiled, never worse.
 * Fork: the child gets a stream of its own (or none, when following forks
 * is off). End: the destructor, which runs after the program's own
 * destructors, drains everything and sends the END record.
 */
#define _GNU_SOURCE
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "record.h"

static void base_clocks(void)
{
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    g_shim.start_realtime_ns = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
    g_shim.w.base_ticks = shim_ticks();
    g_shim.w.base_ns = shim_now();
    g_shim.w.stream_ns0 = g_shim.w.base_ns;
#if defined(__x86_64__)
    g_shim.w.ns_per_tick = 0.0; /* calibrated by the writer before use */
#else
    g_shim.w.ns_per_tick = 1.0;
#endif
}

/* PREFETCHW (CPUID 0x80000001 ECX bit 8): every AMD64 CPU, Intel since
 * Broadwell. Older CPUs may not decode it, so the ring's prefetch asks. */
static void detect_cpu(void)
{
#if defined(__x86_64__)
    unsigned a, b, c, d;
    g_shim.prefetchw = __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & bit_PRFCHW);
#endif
}

/* The locks a child must not inherit held (neither is taken while the
 * other is held). */
static void fork_prepare(void)
{
    shim_unwind_fork_prepare();
    pthread_mutex_lock(&g_shim.modules_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&g_shim.modules_lock);
    shim_unwind_fork_done();
}

static void fork_child(void)
{
    pthread_mutex_unlock(&g_shim.modules_lock);
    shim_unwind_fork_done();
    if (atomic_load(&g_shim.mode) != SHIM_ACTIVE)
        return;
    atomic_store(&g_shim.mode, SHIM_DETACHED);
    g_shim.pid = getpid();
    shim_rings_reset_after_fork();
    shim_stacks_reset_after_fork();
    shim_writer_after_fork_child();
    if (!g_shim.config.follow_fork)
        return;
    atomic_store(&g_shim.seq, 0);
    shim_seq_after_fork_child();
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    g_shim.start_realtime_ns = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
    if (shim_writer_start() == 0)
        atomic_store(&g_shim.mode, SHIM_ACTIVE);
}

__attribute__((constructor(101))) static void shim_init(void)
{
    g_shim.sock = -1;
    g_shim.w.rss_fd = -1;
    shim_resolve_real();
    shim_config_load(&g_shim.config);
    g_shim.pid = getpid();
    if (!g_shim.config.socket_path[0]) {
        if (g_shim.config.debug)
            shim_log("MLMEM_SOCKET is not set (or the process is setuid); not recording");
        atomic_store(&g_shim.mode, SHIM_DETACHED);
        return;
    }
    if (!g_shim.config.follow_fork && g_shim.config.root_pid &&
        g_shim.config.root_pid != g_shim.pid) {
        atomic_store(&g_shim.mode, SHIM_DETACHED);
        return;
    }
    if (!g_shim.config.follow_fork && !g_shim.config.root_pid) {
        /* The command, started by mlmem before its pid was known: it names
         * itself, so that an image it execs keeps recording and the
         * programs its children exec do not. */
        char pid[24];
        shim_format(pid, sizeof pid, "%d", (int)g_shim.pid);
        setenv("MLMEM_ROOT_PID", pid, 1);
        g_shim.config.root_pid = g_shim.pid;
    }
    base_clocks();
    detect_cpu();
    shim_os_region_init(); /* before anything of ours is mapped */
    shim_rings_init();
    shim_seq_init();
    shim_modules_init();
    shim_unwind_init(); /* before the stack table touches libunwind */
    if (shim_stacks_init() != 0) {
        shim_log("cannot map the stack table; running unprofiled");
        atomic_store(&g_shim.mode, SHIM_DETACHED);
        return;
    }
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    if (shim_writer_start() != 0) {
        atomic_store(&g_shim.mode, SHIM_DETACHED);
        return;
    }
    atomic_store(&g_shim.mode, SHIM_ACTIVE);
}

__attribute__((destructor(101))) static void shim_fini(void)
{
    if (atomic_load(&g_shim.mode) != SHIM_ACTIVE)
        return;
    shim_writer_finish(MLMEM_END_EXIT, 0, 0);
}
