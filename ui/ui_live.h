/*
 * ui_live.h - the dashboard of `mlmem run --tui`: shows a session that
 * prof_launch_run() is filling, on its on_tick callback.
 *
 * Use: ui_live_begin() before prof_launch_run() (the command's output must
 * go to 'log_path' through the launch options' output_log), ui_live_tick()
 * from on_tick, ui_live_message() instead of printing while the screen is
 * taken, ui_live_end_run() when the run returns, ui_live_wait() to let the
 * user look at the final figures, ui_live_close() to give the terminal back.
 *
 * Quitting while the command runs stops it through launch.c's signal
 * forwarding: the first q raises SIGINT in mlmem (forwarded to the
 * command), the second SIGTERM, the third sends SIGKILL to the command.
 * Ctrl-C reaches the command the same way (and from the terminal).
 */
#ifndef UI_LIVE_H
#define UI_LIVE_H

#include <stddef.h>

#include "profiler/session.h"

typedef struct ui_live ui_live_t;

/* Takes the terminal. 'command' is shown in the header. Returns NULL with a
 * message in 'err' (no terminal, out of memory). */
ui_live_t *ui_live_begin(prof_session_t *s, const char *command, const char *log_path,
                         char *err, size_t errlen);

/* Takes a snapshot (unless paused), handles pending keys and redraws. For
 * prof_launch_options_t.on_tick (pass the ui_live_t as part of ctx). */
void ui_live_tick(ui_live_t *l);

/* Shows a one-line message (warnings that would otherwise go to stderr). */
void ui_live_message(ui_live_t *l, const char *msg);

/* The run is over: shows the final figures and how the command ended. */
void ui_live_end_run(ui_live_t *l, const prof_run_info_t *info);

/* Waits for the user to quit (q, Ctrl-C), redrawing on resize. Returns at
 * once if the user already asked to quit while the command ran. */
void ui_live_wait(ui_live_t *l);

/* 1 if the user asked to quit. */
int ui_live_quit_requested(const ui_live_t *l);

/* Restores the terminal and frees 'l'. No operation if NULL. */
void ui_live_close(ui_live_t *l);

#endif /* UI_LIVE_H */
