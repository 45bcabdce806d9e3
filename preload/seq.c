/*
 * seq.c - the global sequence number, without a locked instruction while
 * one thread does all the recording (a biased counter).
 *
 * Every event carries a dense number from one counter (the analyzer puts
 * the threads' batches back in that order). A locked xadd per event is
 * expensive beyond its own cycles: it drains the store buffer, which holds
 * the event's slot stores still waiting for their cache lines (the writer
 * thread reads those lines on the other core). Measured on the storm it
 * made the free hook three times slower. Most training processes allocate
 * from one thread for long stretches (the others wait, or compute), so:
 *
 * - 'seq_owner' names the ring whose thread may take numbers with an
 *   unlocked xadd (one instruction: atomic against its own signal
 *   handlers, which is all that is needed while no other thread takes
 *   any). SHIM_SEQ_SHARED: everyone uses a locked xadd.
 * - A thread that needs a number while another thread owns the counter
 *   takes it back to shared (a "demotion"); a thread that took the last
 *   SHIM_SEQ_PROMOTE_RUN numbers in a row, in shared mode, becomes the
 *   owner (a "promotion"). Both go through SHIM_SEQ_MOVING, during which
 *   everyone else waits, so an unlocked and a locked xadd never race.
 *
 * A transition is an asymmetric Dekker handshake. A thread announces a
 * number being taken in its ring's 'seq_busy' (a plain store, compiler
 * fence only) before it reads 'seq_owner'; the thread moving the owner
 * stores SHIM_SEQ_MOVING and then runs membarrier(PRIVATE_EXPEDITED), which
 * puts a full memory barrier in every running thread of the process.
 * After it, every other thread either sees MOVING or has its 'seq_busy'
 * visible, and the mover waits for that to clear. The fast path pays
 * nothing for the handshake; the mover pays one system call. Without
 * membarrier (old kernels, seccomp) the counter stays shared.
 */
#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <sched.h>
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "record.h"

/* How long a mover waits for a thread to leave its increment (a few
 * instructions; only preemption makes it longer), and how long a thread
 * waits for a move to end. Past it, the wait is abandoned: at worst two
 * events share a number, which the analyzer counts as a duplicate. */
#define SEQ_WAIT_NS 200000000ull

static int membarrier_cmd(int cmd)
{
    return (int)syscall(SYS_membarrier, cmd, 0, 0);
}

/* Whether this process may ever have an owner: expedited barriers work. */
static void seq_reset(void)
{
    int ok = membarrier_cmd(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
    atomic_store(&g_shim.seq_bias_ok, ok);
    atomic_store(&g_shim.seq_owner, SHIM_SEQ_SHARED);
}

void shim_seq_init(void)
{
    seq_reset();
}

/* In a fork child only the forking thread exists; registration belongs to
 * the address space, so the child registers again. */
void shim_seq_after_fork_child(void)
{
    seq_reset();
}

/* Makes every running thread of the process execute a full barrier. */
static void barrier_everywhere(void)
{
    if (membarrier_cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
        return;
    (void)membarrier_cmd(MEMBARRIER_CMD_GLOBAL); /* slower, same guarantee */
}

static void wait_not_busy(shim_ring_t *c, uint64_t deadline)
{
    while (atomic_load_explicit(&c->seq_busy, memory_order_acquire) != 0 &&
           shim_now() < deadline)
        sched_yield();
}

/* Moves the counter from 'from' (the value seen) to 'to': MOVING first,
 * a barrier everywhere, the wait for threads in the middle of taking a
 * number, then 'to'. Returns 0 if another thread moved it first. */
static int seq_move(uintptr_t from, uintptr_t to, shim_ring_t *self)
{
    uintptr_t expect = from;
    if (!atomic_compare_exchange_strong(&g_shim.seq_owner, &expect, SHIM_SEQ_MOVING))
        return 0;
    barrier_everywhere();
    uint64_t deadline = shim_now() + SEQ_WAIT_NS;
    if (from != SHIM_SEQ_SHARED) {
        wait_not_busy((shim_ring_t *)from, deadline); /* only the owner was unlocked */
    } else {
        uint32_t n = atomic_load(&g_shim.ring_count);
        for (uint32_t i = 0; i < n; i++) {
            shim_ring_t *c = atomic_load(&g_shim.rings[i]);
            if (c && c != self)
                wait_not_busy(c, deadline);
        }
    }
    atomic_store_explicit(&g_shim.seq_owner, to, memory_order_release);
    return 1;
}

/* Called with this thread's 'seq_busy' at 0 when 'owner' is neither
 * shared nor this ring: waits out a move, or takes the counter back from
 * its owner. Returns when the caller should try again. */
void shim_seq_settle(shim_ring_t *r, uintptr_t owner)
{
    int saved_errno = errno; /* membarrier may fail: the program's errno stays */
    uint64_t deadline = shim_now() + SEQ_WAIT_NS;
    for (;;) {
        if (owner == SHIM_SEQ_SHARED || owner == (uintptr_t)r)
            break;
        if (owner == SHIM_SEQ_MOVING) {
            if (shim_now() >= deadline)
                break;
            sched_yield();
        } else if (seq_move(owner, SHIM_SEQ_SHARED, r)) {
            r->seq_run = 0;
            break;
        }
        owner = atomic_load_explicit(&g_shim.seq_owner, memory_order_acquire);
    }
    errno = saved_errno;
}

/* This thread took SHIM_SEQ_PROMOTE_RUN numbers in a row while shared:
 * it becomes the owner. Called with its 'seq_busy' at 0. */
void shim_seq_promote(shim_ring_t *r)
{
    r->seq_run = 0;
    int saved_errno = errno;
    if (atomic_load_explicit(&g_shim.seq_bias_ok, memory_order_relaxed))
        (void)seq_move(SHIM_SEQ_SHARED, (uintptr_t)r, r);
    errno = saved_errno;
}
