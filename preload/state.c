/*
 * state.c - the shim's one mutable global and its thread-locals. Everything
 * the shim remembers lives here, so a reader can see the whole of it at once
 * and the fork handler can reset it knowingly.
 */
#include "shim.h"

/* Zero-initialized, so that its 2 MB lie in .bss: a non-zero initializer
 * would put all of it in .data, a file-backed mapping every process that
 * loads the shim reads and copies on first write. The descriptors that
 * mean "none" as -1 are set by shim_init before anything uses them.
 * (glibc's PTHREAD_MUTEX_INITIALIZER is all zeros.) */
shim_state_t g_shim = {
    .modules_lock = PTHREAD_MUTEX_INITIALIZER,
};

SHIM_TLS int shim_guard;
SHIM_TLS shim_ring_t *shim_ring;
