/*
 * unwind.c - libunwind's memory validation, done without descriptors.
 *
 * libunwind 1.6 (x86_64, Ginit.c) checks that an address is readable before
 * it reads it by writing one byte from there into a pipe of its own
 * (write_validate: read(pipe[0]) to drain, then syscall(SYS_write,
 * pipe[1], addr, 1); a read that fails with anything but EAGAIN makes it
 * close both numbers and open a new pipe). Debian's build validates every
 * read of dwarf_step (CONSERVATIVE_CHECKS) and of any frame where DWARF
 * fails, so it does so each time a thread unwinds a frame it has not
 * cached yet (a new call site, every new thread's first stack, code
 * without CFI) on a page not among its last four validated. A program
 * that takes over the pipe's numbers, as daemons do when they close or
 * dup2 over everything they did not open, then has libunwind block in
 * read on its socket, write our memory into its files, or close them.
 *
 * The shim makes libunwind's pipe disappear: while the shim unwinds
 * (shim_guard is SHIM_GUARD_UNWIND) and the caller is libunwind,
 *   - pipe2 hands it no descriptors ({-1, -1}), so it holds none of the
 *     program's numbers;
 *   - its 1-byte read returns EAGAIN (an empty pipe), so it never reopens;
 *   - its 1-byte SYS_write is answered by process_vm_readv of that byte
 *     from our own process: the same test (the kernel copies the byte or
 *     fails with EFAULT) with no descriptor at all.
 * Interposing these is cheaper and surer than watching every way the
 * program can take a number (close, dup2, dup3, close_range, closefrom,
 * raw syscalls, exec'd helpers): nothing the program does with its
 * descriptors can reach libunwind, and the allocation path is unchanged
 * (the tests are on the read/pipe2/syscall calls only). One validation
 * still costs two system calls (getpid, process_vm_readv).
 *
 * process_vm_readv can be refused (seccomp); the start-up probe then leaves
 * libunwind its own pipe, as before (docs/shim.md). A program that uses
 * libunwind itself keeps libunwind's behaviour for its own unwinding.
 *
 * Fork: libunwind's locks are not reset in a fork child. A fork while
 * another thread was inside libunwind (the writer's warm-up at every
 * start, a stack the CFI walk gave up on) left the child a lock nobody
 * would release, and its first unwind hung: a shell forking a subshell
 * at once, its writer and its main thread both waiting on that lock
 * (the CFI check's run of python3 through pyenv's shell scripts, about
 * one run in a hundred; tests/e2e/e2e_fork_unwind.c makes it in a few
 * dozen tries). So the shim unwinds through libunwind only under
 * unwind_lock, which fork's prepare handler takes too (init.c): no thread
 * is inside libunwind when a process forks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "shim.h"

static pthread_mutex_t unwind_lock = PTHREAD_MUTEX_INITIALIZER;

/* Signals are blocked while the lock is held, as libunwind blocks them
 * while it holds its own: a handler that allocated meanwhile and unwound
 * would wait on its own thread. */
int shim_unwind_backtrace(void **frames, int max)
{
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pthread_mutex_lock(&unwind_lock);
    int n = unw_backtrace(frames, max);
    pthread_mutex_unlock(&unwind_lock);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return n;
}

void shim_unwind_fork_prepare(void)
{
    pthread_mutex_lock(&unwind_lock);
}

/* In the parent and in the child alike: the forking thread took it. */
void shim_unwind_fork_done(void)
{
    pthread_mutex_unlock(&unwind_lock);
}

#if defined(__x86_64__)

/* glibc's syscall(), which this file replaces: the same six registers,
 * and -1 with errno for the kernel's -4095..-1. A raw instruction rather
 * than the next definition, since the shim makes system calls before it
 * has looked any function up. */
static long raw_syscall(long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    if ((unsigned long)ret > -4096ul) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
}

/* Reads one byte at 'addr' of this process through the kernel: 0 if it is
 * readable, -1 (errno EFAULT) if not. */
static int readable_byte(uintptr_t addr)
{
    char byte;
    struct iovec local = {&byte, 1}, remote = {(void *)addr, 1};
    long pid = raw_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0); /* right after any fork */
    long n = raw_syscall(SYS_process_vm_readv, pid, (long)&local, 1, (long)&remote, 1, 0);
    return n == 1 ? 0 : -1;
}

/* Non-zero when libunwind, called by the shim's own unwinding, called
 * the hook that sees 'caller'. */
static inline int from_our_unwind(const void *caller)
{
    uintptr_t c = (uintptr_t)caller;
    return shim_guard == SHIM_GUARD_UNWIND && g_shim.unwind_validate &&
           c >= g_shim.unwind_start && c < g_shim.unwind_end;
}

SHIM_EXPORT long syscall(long n, ...)
{
    va_list ap;
    va_start(ap, n);
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
    long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
    va_end(ap);
    /* libunwind passes the count as an int: compare its low half. */
    if (SHIM_UNLIKELY(n == SYS_write && (int)a3 == 1) &&
        from_our_unwind(__builtin_return_address(0))) {
        if (readable_byte((uintptr_t)a2) != 0) {
            errno = EFAULT;
            return -1;
        }
        return 1;
    }
    return raw_syscall(n, a1, a2, a3, a4, a5, a6);
}

SHIM_EXPORT int pipe2(int fds[2], int flags)
{
    if (SHIM_UNLIKELY(from_our_unwind(__builtin_return_address(0)))) {
        fds[0] = fds[1] = -1;
        return 0;
    }
    if (SHIM_UNLIKELY(!g_shim.real.pipe2)) {
        shim_resolve_real();
        if (!g_shim.real.pipe2) /* inside the bootstrap itself */
            return (int)raw_syscall(SYS_pipe2, (long)fds, flags, 0, 0, 0, 0);
    }
    return g_shim.real.pipe2(fds, flags);
}

int shim_unwind_read(const void *caller)
{
    /* Whatever the number names now, it is not libunwind's to read. */
    if (!from_our_unwind(caller))
        return 0;
    errno = EAGAIN;
    return 1;
}

/* libunwind's first unwind initializes it (its pipe, its caches): about
 * 1 ms. */
static void warm_up(void)
{
    void *frames[4];
    int saved = shim_guard;
    shim_guard = SHIM_GUARD_UNWIND;
    shim_unwind_backtrace(frames, 4);
    shim_guard = saved;
}

void shim_unwind_init(void)
{
    char probe = 1;
    g_shim.unwind_validate = readable_byte((uintptr_t)&probe) == 0;
    if (!g_shim.unwind_validate) {
        if (g_shim.config.debug)
            shim_log("process_vm_readv is refused (errno %d): libunwind keeps its own pipe "
                     "to validate memory", errno);
        /* It opens that pipe on its first unwind: now, before the program
         * can own any number. */
        warm_up();
    }
}

void shim_unwind_warm_up(void)
{
    /* With validation ours, libunwind opens nothing, and its start-up can
     * leave the program's: the writer thread calls this while the program
     * runs (it cost 1 ms before main). A program thread that unwinds
     * first initializes it itself, under libunwind's own lock. */
    if (g_shim.unwind_validate)
        warm_up();
}

#else /* !__x86_64__: libunwind validates differently there; left as it is */

int shim_unwind_read(const void *caller)
{
    (void)caller;
    return 0;
}

void shim_unwind_init(void)
{
}

void shim_unwind_warm_up(void)
{
}

#endif
