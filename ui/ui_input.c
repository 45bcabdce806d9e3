/*
 * ui_input.c - the key map. Keys follow what memray's live mode and less(1)
 * users expect: q quits, arrows and j/k move, space pauses.
 */
#include "ui_input.h"

#include <curses.h>

#define CTRL(c) ((c) & 0x1f)

ui_action_t ui_input_action(int key, int replay)
{
    switch (key) {
    case 'q': case 'Q': return UI_ACT_QUIT;
    case '?': case 'h': case KEY_F(1): return UI_ACT_HELP;
    case 27: case KEY_BACKSPACE: case 127: return UI_ACT_BACK;
    case '1': return UI_ACT_SORT_LIVE;
    case '2': return UI_ACT_SORT_PEAK;
    case '3': return UI_ACT_SORT_COUNT;
    case 's': return UI_ACT_SORT_NEXT;
    case KEY_UP: case 'k': return UI_ACT_UP;
    case KEY_DOWN: case 'j': return UI_ACT_DOWN;
    case KEY_PPAGE: return UI_ACT_PAGE_UP;
    case KEY_NPAGE: return UI_ACT_PAGE_DOWN;
    case KEY_HOME: case 'g': return UI_ACT_HOME;
    case KEY_END: case 'G': return UI_ACT_END;
    case '\n': case '\r': case KEY_ENTER: return UI_ACT_SELECT;
    case '\t': return UI_ACT_FOCUS_NEXT;
    case 't': return UI_ACT_THREAD_NEXT;
    case 'T': return UI_ACT_THREAD_PREV;
    case ' ': case 'p': return UI_ACT_PAUSE;
    case 'o': return replay ? UI_ACT_NONE : UI_ACT_LOG;
    case KEY_RIGHT: case '.': return replay ? UI_ACT_STEP_FWD : UI_ACT_NONE;
    case KEY_LEFT: case ',': return replay ? UI_ACT_STEP_BACK : UI_ACT_NONE;
    case 'P': return replay ? UI_ACT_JUMP_PEAK : UI_ACT_NONE;
    case '[': return replay ? UI_ACT_JUMP_START : UI_ACT_NONE;
    case ']': return replay ? UI_ACT_JUMP_END : UI_ACT_NONE;
    case '+': case '=': return replay ? UI_ACT_FASTER : UI_ACT_NONE;
    case '-': case '_': return replay ? UI_ACT_SLOWER : UI_ACT_NONE;
    case 'w': return UI_ACT_WINDOW;
    case '>': return UI_ACT_PROC_NEXT;
    case '<': return UI_ACT_PROC_PREV;
    case CTRL('l'): return UI_ACT_REDRAW;
    case KEY_RESIZE: return UI_ACT_RESIZE;
    default: return UI_ACT_NONE;
    }
}

static const ui_key_help_t keys[] = {
    {"q", "quit (live: stops the command first; q again sends SIGTERM)", 3},
    {"? h F1", "this help (any of them again, or Esc, closes it)", 3},
    {"1 2 3", "sort sites by live bytes / peak contribution / allocations", 3},
    {"s", "next sort order", 3},
    {"Up Down j k", "move the selection", 3},
    {"PgUp PgDn g G", "page, first, last", 3},
    {"Enter", "the selected site's whole stack (Enter or Esc closes)", 3},
    {"Tab", "move the selection between sites and threads", 3},
    {"t T", "sites of one thread: next / previous (by tid; then all threads)", 3},
    {"< >", "the run's processes (forks, execs): previous / next, by pid", 1},
    {"Enter (threads)", "sites of the selected thread (again: all threads)", 3},
    {"space p", "pause: freeze the figures (live)", 1},
    {"space p", "play / pause the replay", 2},
    {"Right . / Left ,", "step one frame forward / back", 2},
    {"P", "jump to the frame that reaches the peak", 2},
    {"[ ]", "jump to the start / the end", 2},
    {"+ -", "replay faster / slower (0.1x .. 100x)", 2},
    {"o", "the command's output (it goes to a log file, not the screen)", 1},
    {"w", "timeline: whole run / last 10 s / 60 s / 10 min (scrolls)", 3},
    {"Ctrl-L", "redraw the screen", 3},
    {"Ctrl-C", "stop the command (live); quit once it has ended", 3},
    {NULL, NULL, 0},
};

const ui_key_help_t *ui_input_help(void)
{
    return keys;
}
