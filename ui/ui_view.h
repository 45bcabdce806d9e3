/*
 * ui_view.h - drawing the dashboard with ncurses from a ui_model_t, and the
 * terminal's setup and restoration.
 *
 * ui_view_begin() takes the terminal (it needs stdin and stdout to be
 * terminals); from then on the terminal is restored on every exit path:
 * ui_view_end(), exit() (an atexit handler), and the fatal signals SIGSEGV,
 * SIGBUS, SIGFPE, SIGILL and SIGABRT (restore, then die of the same
 * signal). SIGINT and SIGTERM only set a flag (ui_view_interrupted()) so the
 * driver can quit cleanly; a live run replaces those handlers while the
 * command runs (launch.h forwards them to the command) and puts them back
 * after. ui_view_end() puts back the handlers that were there before.
 *
 * Drawing: an 80x24 layout at least, reflowed to the window's size; block
 * characters when the locale is UTF-8 and the library is ncursesw, ASCII
 * otherwise (or with MLMEM_ASCII=1); colours when the terminal has them and
 * NO_COLOR is not set, attributes (bold, reverse) otherwise.
 *
 * The terminal state is process-wide by nature, so this module keeps it in
 * one file-local struct. Not thread-safe.
 */
#ifndef UI_VIEW_H
#define UI_VIEW_H

#include <stddef.h>

#include <curses.h>

#include "ui_model.h"

typedef struct {
    int unicode;             /* block characters and arrows              */
    int color;               /* colour pairs                             */
    const char *log_path;    /* the command's output, for the log view   */
    const char *title;       /* "live" or "replay"                       */
} ui_view_opts_t;

/* Takes the terminal. Returns 0, or -1 with a message in 'err' (not a
 * terminal, unknown TERM). 'o' is copied; its strings are borrowed. */
int ui_view_begin(const ui_view_opts_t *o, char *err, size_t errlen);

/* Restores the terminal. No operation when it is not taken. */
void ui_view_end(void);

/* Draws 'm' on the screen (resizing the model to the window first). */
void ui_view_draw(ui_model_t *m);

/* Draws 'm' into window 'w' of rows x cols with options 'o', without
 * touching the terminal (the unit test draws into a pad). Sets the model's
 * list rows. */
void ui_view_render(WINDOW *w, const ui_view_opts_t *o, ui_model_t *m);

/* Waits up to 'timeout_ms' for a key; returns it, or ERR. */
int ui_view_getkey(int timeout_ms);

/* 1 once SIGINT or SIGTERM arrived while our handlers were installed. */
int ui_view_interrupted(void);

#endif /* UI_VIEW_H */
