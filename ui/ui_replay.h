/*
 * ui_replay.h - the dashboard of `mlmem tui TRACE`: replays a recorded run
 * with the live screens plus play/pause, step, jump to the peak and speed.
 *
 * The trace is read twice before the screen opens: once to learn its
 * length and which event reached the peak, once taking snapshots
 * ("frames") at evenly spaced points of its stream bytes (at most
 * UI_REPLAY_MAX_FRAMES, the last one the whole run) and one right after
 * the peak's event (what P shows), without symbols; the stacks are
 * symbolized once, at the end, and looked up by stack id.
 */
#ifndef UI_REPLAY_H
#define UI_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "profiler/accounting.h"
#include "profiler/prof_result.h"

#define UI_REPLAY_MAX_FRAMES 400
#define UI_REPLAY_MAX_SITES 200

/* The frames of a replay, as ui_replay_load() builds them. */
typedef struct {
    prof_result_t *frames;    /* in stream order; sites without frames    */
    size_t count;
    prof_result_t symbols;    /* the whole run, every site symbolized     */
    /* Per frame, what each thread holds per site (prof_acct_thread_sites
     * at the frame's point, sorted by tid; at most UI_REPLAY_MAX_SITES
     * sites per thread, the largest): the thread filter's figures. NULL
     * when the process is not the session's main one (--pid of another). */
    prof_thread_site_t **thread_sites;
    size_t *thread_site_counts;
    int complete;             /* the trace had its trailer                */
} ui_replay_frames_t;

/* Reads the trace at 'path' into frames for process 'pid' (0: the main
 * one). With 'allow_partial', a trace cut short is shown as far as it goes.
 * Returns 0, or -1 with a message in 'err'. */
int ui_replay_load(const char *path, int32_t pid, int allow_partial, ui_replay_frames_t *out,
                   char *err, size_t errlen);

/* Releases the frames. No operation if NULL. */
void ui_replay_frames_free(ui_replay_frames_t *f);

/* Loads the trace and runs the dashboard until the user quits. Returns 0,
 * or -1 with a message in 'err' (the terminal is restored either way). */
int ui_replay_main(const char *path, int32_t pid, int allow_partial, char *err, size_t errlen);

#endif /* UI_REPLAY_H */
