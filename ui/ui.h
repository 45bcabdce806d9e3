/*
 * ui.h - the live dashboard component (ui/): its entry points for the mlmem
 * command. `mlmem run --tui` drives ui_live.h around prof_launch_run();
 * `mlmem tui TRACE` calls ui_replay_main(). The pieces: ui_model.h (pure
 * state, unit-tested), ui_view.h (ncurses drawing and terminal
 * restoration), ui_input.h (keys). Screens and keys: docs/tui.md.
 */
#ifndef UI_H
#define UI_H

#include "ui_live.h"
#include "ui_replay.h"

#endif /* UI_H */
