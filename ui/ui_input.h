/*
 * ui_input.h - keys to model actions. The one place that knows which key
 * does what; the help screen lists the same table (ui_input_help).
 */
#ifndef UI_INPUT_H
#define UI_INPUT_H

#include "ui_model.h"

/* The action for an ncurses key code (wgetch's value); UI_ACT_NONE for a
 * key with no meaning. 'replay' selects the replay keys' meanings. */
ui_action_t ui_input_action(int key, int replay);

/* One line of the key table: which keys, what they do, and whether the
 * line is for live runs (1), replays (2) or both (3). */
typedef struct {
    const char *keys;
    const char *what;
    int modes;
} ui_key_help_t;

/* The key table, ended by an entry with keys == NULL. */
const ui_key_help_t *ui_input_help(void);

#endif /* UI_INPUT_H */
