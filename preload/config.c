/*
 * config.c - the shim's configuration, read once at start from environment
 * variables (documented in docs/shim.md). In a setuid or otherwise secure
 * process (AT_SECURE) the environment is not trusted: the shim stays off.
 * getenv() does not allocate, so this is safe before the hooks are ready.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "shim.h"

/* Parses a decimal number with an optional K/M/G suffix; 'def' on error. */
static uint64_t env_size(const char *name, uint64_t def)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++)
        v = v * 10 + (uint64_t)(*p - '0');
    if (p == s)
        return def;
    switch (*p) {
    case 'k': case 'K': v <<= 10; p++; break;
    case 'm': case 'M': v <<= 20; p++; break;
    case 'g': case 'G': v <<= 30; p++; break;
    }
    return *p == '\0' ? v : def;
}

void shim_config_load(shim_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->stack_mode = MLMEM_STACKS_SAMPLED;
    c->stack_threshold = 4096;
    c->sample_rate = 512 * 1024;
    c->follow_fork = 1;
    c->block_ms = 5000;
    c->rss_interval_ms = 10;
    c->exit_timeout_ms = 10000;
    c->fold_temporaries = 1;

    if (getauxval(AT_SECURE))
        return; /* no socket path: the shim stays detached */

    const char *sock = getenv("MLMEM_SOCKET");
    if (sock && strlen(sock) < sizeof c->socket_path)
        strcpy(c->socket_path, sock);
    const char *stacks = getenv("MLMEM_STACKS");
    if (stacks && strcmp(stacks, "all") == 0)
        c->stack_mode = MLMEM_STACKS_ALL;
    c->stack_threshold = env_size("MLMEM_STACK_THRESHOLD", c->stack_threshold);
    c->sample_rate = env_size("MLMEM_SAMPLE_RATE", c->sample_rate);
    if (c->sample_rate == 0)
        c->sample_rate = 1;
    c->follow_fork = (int)env_size("MLMEM_FOLLOW_FORK", 1);
    c->root_pid = (int)env_size("MLMEM_ROOT_PID", 0);
    c->block_ms = (uint32_t)env_size("MLMEM_BLOCK_MS", c->block_ms);
    c->rss_interval_ms = (uint32_t)env_size("MLMEM_RSS_INTERVAL_MS", c->rss_interval_ms);
    if (c->rss_interval_ms == 0)
        c->rss_interval_ms = 1;
    c->exit_timeout_ms = (uint32_t)env_size("MLMEM_EXIT_TIMEOUT_MS", c->exit_timeout_ms);
    c->fold_temporaries = env_size("MLMEM_FOLD", 1) != 0;
    const char *unwind = getenv("MLMEM_UNWIND");
    if (unwind && strcmp(unwind, "libunwind") == 0)
        c->unwind_mode = SHIM_UNWIND_LIBUNWIND;
    else if (unwind && strcmp(unwind, "check") == 0)
        c->unwind_mode = SHIM_UNWIND_CHECK;
    c->debug = (int)env_size("MLMEM_DEBUG", 0);
}
