/*
 * state.c - the shim's one mutable global and its thread-locals. Everything
 * the shim remembers lives here, so a reader can see the whole of it at once
 * and the fork handler can reset it knowingly.
 */
#include "shim.h"

shim_state_t g_shim = {
    .modules_lock = PTHREAD_MUTEX_INITIALIZER,
    .sock = -1,
    .w = {.rss_fd = -1},
};

SHIM_TLS int shim_guard;
SHIM_TLS shim_ring_t *shim_ring;
