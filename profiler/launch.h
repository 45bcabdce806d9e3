/*
 * launch.h - starting a command under the shim and receiving its streams.
 *
 * prof_launch_run() makes a private directory (0700) with a Unix socket,
 * starts the command with LD_PRELOAD and the shim's MLMEM_* settings in its
 * environment, accepts a connection from every process of the run that
 * loads the shim (the command, its forks and execs; only processes of the
 * same user are accepted), and hands each connection's bytes to the
 * callbacks as they arrive. It returns when the command has exited and
 * every stream has ended (or, for children that outlive the command, after
 * 'grace_ms' without data), filling 'info' with how the command ended.
 *
 * SIGINT and SIGTERM sent to mlmem are passed on to the command, so
 * Ctrl-C stops the program and still produces a report.
 */
#ifndef PROF_LAUNCH_H
#define PROF_LAUNCH_H

#include <stddef.h>
#include <stdint.h>

#include "session.h"

typedef struct {
    char *const *argv;            /* the command; argv[0] is looked up in PATH */
    const char *preload;          /* path of libmlmem_preload.so               */
    int stack_mode;               /* MLMEM_STACKS_*                            */
    uint64_t stack_threshold;     /* 0: the shim's default                     */
    uint64_t sample_rate;         /* 0: the shim's default                     */
    int follow_fork;
    uint32_t grace_ms;            /* wait for children after the command ends  */
    const char *output_log;       /* if set, the command's stdout+stderr go here,
                                     and its stdin is /dev/null (the dashboard's) */

    /* Called for each stream; a non-zero return stops the run (the command
     * is killed and -1 returned). */
    int (*on_open)(void *ctx, uint32_t id);
    int (*on_data)(void *ctx, uint32_t id, const uint8_t *data, size_t len);
    int (*on_close)(void *ctx, uint32_t id);
    /* Called about every 100 ms while the run goes on; may be NULL. */
    void (*on_tick)(void *ctx);
    void *ctx;
} prof_launch_options_t;

/* Runs the command. Returns 0 (with 'info' filled; info->command is a
 * malloc'd copy of the command line) or -1 with a message in 'err'. */
int prof_launch_run(const prof_launch_options_t *o, prof_run_info_t *info, char *err,
                    size_t errlen);

/* Finds libmlmem_preload.so: $MLMEM_PRELOAD, else next to the mlmem
 * executable (../lib, ., ../lib/mlmem). Returns a malloc'd path or NULL. */
char *prof_launch_find_preload(void);

#endif /* PROF_LAUNCH_H */
