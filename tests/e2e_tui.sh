#!/bin/bash
# e2e_tui.sh BUILD_DIR - the dashboard end to end: the real mlmem binary in
# tmux (a private server), keys sent, the pane captured and its text checked.
#
#   replay  mlmem tui TRACE of e2e_peak: the peak figure after P (jump to the
#           peak), the site order after each sort key, a site's stack on
#           Enter, the help on ?, a resize to 120x40 and back, q quits and
#           the terminal is sane again (icanon, echo; alternate screen off).
#   threads mlmem tui TRACE of e2e_threads (8 named workers, --stacks=all):
#           at the peak, Enter on a worker that still holds bytes in the
#           threads pane shows its sites: the pane's title names it (tid,
#           name), its site (worker at e2e_threads.c:23) is listed with the
#           pane's live figure, the stack view says what it holds (exact:
#           blocks x its block size); at the end it holds nothing; T goes
#           to the previous tid.
#   live    mlmem run --tui of e2e_peak and e2e_threads: final figures stay
#           until q; trace and JSON written; the summary printed after; t
#           goes through the 9 threads by tid (the main one first, then the
#           workers, whose blocks were all freed) and back to all threads;
#           Enter on the threads pane's first (worker7) shows its sites;
#           > and < go through the processes of e2e_fork's run (its forked
#           child's exit code and leak, the exec'd e2e_peak's peak) and
#           back to the main one.
#   train   mlmem run --tui of mlmem-train --annotate: the composition names
#           the categories (weights), the header and the timeline show the
#           annotated step count the JSON report has, the phases seen, and
#           the advice line the report's first recommendation.
#   signals Ctrl-C stops a running command (sleep) and leaves a sane
#           terminal; q while it runs stops it and quits; a target killed
#           by SIGKILL shows as such; SIGTERM to mlmem quits cleanly and
#           a crash of mlmem itself (SIGSEGV) still restores the terminal.
set -u
BUILD=${1:-${MLMEM_BUILD_DIR:?give the build directory}}
BUILD=$(cd "$BUILD" && pwd)
MLMEM=$BUILD/bin/mlmem
E2E=$BUILD/bin/e2e
SOCK=mlmem-test-$$       # private server; a fresh one for each case (SOCK-N)
NCASE=0
WORK=$(mktemp -d)
export TMUX_TMPDIR=$WORK   # the servers' sockets go with the work directory
unset TMUX
FAILS=0

tm() { tmux -L "$SOCK-$NCASE" "$@"; }
cleanup() {
    for ((i = 0; i <= NCASE; i++)); do tmux -L "$SOCK-$i" kill-server 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

for f in "$MLMEM" "$E2E/e2e_peak" "$E2E/e2e_threads" "$E2E/e2e_sigkill"; do
    [ -x "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done

fail() { echo "FAIL: $*"; echo "---- screen ----"; tm capture-pane -p -t t 2>/dev/null; echo "----------------"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }
screen() { tm capture-pane -p -t t; }
history() { tm capture-pane -p -S - -t t; }

# wait_for TEXT [SECONDS]: until the pane shows TEXT (fixed string).
wait_for() {
    local deadline=$((SECONDS + ${2:-10}))
    while [ $SECONDS -lt $deadline ]; do
        tm has-session -t t 2>/dev/null || { echo "FAIL: the tmux session is gone"; exit 1; }
        screen | grep -qF -- "$1" && return 0
        sleep 0.1
    done
    return 1
}
# wait_gone TEXT [SECONDS]: until the pane no longer shows TEXT.
wait_gone() {
    local deadline=$((SECONDS + ${2:-10}))
    while [ $SECONDS -lt $deadline ]; do
        screen | grep -qF -- "$1" || return 0
        sleep 0.1
    done
    return 1
}
expect() { if wait_for "$1" "${2:-10}"; then ok "shows '$1'"; else fail "expected '$1' on the screen"; fi; }
# expect_re REGEX [SECONDS]: until a line of the pane matches REGEX (grep -E).
expect_re() {
    local deadline=$((SECONDS + ${2:-10}))
    while [ $SECONDS -lt $deadline ]; do
        if screen | grep -qE -- "$1"; then ok "shows /$1/"; return 0; fi
        sleep 0.1
    done
    fail "expected /$1/ on the screen"
}
keys() { tm send-keys -t t "$@"; }
# fmt_bytes N: as the dashboard shows bytes below 1 MiB ("512 B", "15.63 KiB").
fmt_bytes() {
    local b=$1 w f
    if [ "$b" -lt 1024 ]; then echo "$b B"; return; fi
    w=$((b / 1024)); f=$(((b % 1024 * 100 + 512) / 1024))
    [ $f -ge 100 ] && { w=$((w + 1)); f=$((f - 100)); }
    printf '%d.%02d KiB\n' $w $f
}
# sites_title: the sites pane's title (all threads or one).
sites_title() { screen | grep -E -m1 'thread [0-9]+ [^:]*: [0-9]+ sites|sites: [0-9]+\+? by' || true; }
# line_of TEXT: the pane line number of the first line with TEXT (0 if none).
line_of() { screen | grep -nF -- "$1" | head -1 | cut -d: -f1 | grep . || echo 0; }
# order A B: A is shown above B.
order() {
    local a b
    a=$(line_of "$1"); b=$(line_of "$2")
    if [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ "$a" -lt "$b" ]; then
        ok "'$1' above '$2'"
    else
        fail "expected '$1' (line $a) above '$2' (line $b)"
    fi
}
# start COMMAND: a fresh 80x24 session running COMMAND, then a check of the
# terminal's modes once it ends.
start() {
    tm kill-server 2>/dev/null
    NCASE=$((NCASE + 1))
    tm -f /dev/null new-session -d -s t -x 80 -y 24 \
        "cd $WORK; $1; echo MLMEM-EXIT=\$?; printf 'STTY:'; stty -a | tr ' ;' '\n\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\n' ' '; echo ':STTY-END'; sleep 600"
    tm set-option -g status off >/dev/null
}
# ended CODE: the command exited with CODE and the terminal is sane again.
ended() {
    expect "MLMEM-EXIT=$1" 15
    # The modes are read once their line's end shows: as soon as "STTY:"
    # showed, stty's output could still be on its way (a busy machine).
    if wait_for ":STTY-END" 5 && screen | grep -q "STTY:icanon echo :STTY-END"; then
        ok "terminal restored (icanon echo)"
    else
        fail "terminal modes not restored (the pane: '$(screen | grep -F STTY: | head -1)')"
    fi
    if [ "$(tm display-message -p -t t '#{alternate_on}')" = "0" ]; then
        ok "alternate screen left"
    else
        fail "still on the alternate screen"
    fi
}

export TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8

# ---- replay ---------------------------------------------------------------
"$MLMEM" run -q -o "$WORK/peak.zst" -- "$E2E/e2e_peak" >/dev/null 2>&1
[ -s "$WORK/peak.zst" ] || { echo "FAIL: could not record $WORK/peak.zst"; exit 1; }

echo "== replay"
start "$MLMEM tui $WORK/peak.zst"
expect "mlmem replay"
expect "frame 1/"
keys P
expect "peak heap 2.86 MiB"
expect "2.86 MiB at"
keys 2
expect "sites sorted by peak contribution"
order "e2e_peak.c:10" "e2e_peak.c:9"
keys 1
expect "sites sorted by live bytes"
keys ']'
expect "live heap 12.06 KiB"
order "e2e_peak.c:18" "e2e_peak.c:10"
keys 3
expect "sites sorted by allocations"
# All have one allocation: bytes allocated decide (2 MB, 1 MB, 500 KB, 12 KB).
order "e2e_peak.c:10" "e2e_peak.c:9"
order "e2e_peak.c:9" "e2e_peak.c:14"
order "e2e_peak.c:14" "e2e_peak.c:18"
keys Enter
expect "#0  main at"
expect "libc_start"
expect "category"      # "none (no attribution yet)" or the attributed one
keys Escape
if wait_gone "#0  main at" 5; then ok "stack view closes"; else fail "the stack view did not close"; fi
expect "timeline"
keys '?'
expect "help: keys"
expect "jump to the frame that reaches the peak"
keys '?'
if wait_gone "help: keys" 5; then ok "help closes"; else fail "help did not close"; fi
tm resize-window -t t -x 120 -y 40
expect "w window  Tab threads" 5   # the whole key line fits at 120 columns
rows=$(screen | wc -l)
[ "$rows" -eq 40 ] && ok "40 rows after resize" || fail "pane has $rows rows, expected 40"
last=$(screen | sed -n 40p)
case "$last" in *"q quit"*) ok "keys on the last row after resize" ;;
                *) fail "row 40 is '$last', expected the key line" ;; esac
tm resize-window -t t -x 80 -y 24
if wait_gone "w window" 5; then ok "reflowed back to 80x24"; else fail "did not reflow to 80 columns"; fi
last=$(screen | sed -n 24p)
case "$last" in *"q quit"*) ok "keys on row 24" ;; *) fail "row 24 is '$last'" ;; esac
keys q
ended 0

# ---- replay, one thread's sites -----------------------------------------------
"$MLMEM" record -q --stacks=all -o "$WORK/threads.zst" -- "$E2E/e2e_threads" >/dev/null 2>&1
[ -s "$WORK/threads.zst" ] || { echo "FAIL: could not record $WORK/threads.zst"; exit 1; }

echo "== replay: the sites of one thread"
start "$MLMEM tui $WORK/threads.zst"
tm resize-window -t t -x 100 -y 70      # tall enough to list the 9 threads
expect "mlmem replay"
keys P
expect "worker at e2e_threads.c:23"       # all threads' blocks: one site
expect "threads: 9 (tid, name)"
# The threads pane at the peak: the first worker that still holds bytes
# (the others' may be freed already; each worker frees another's blocks).
# P shows the frame taken right after the event that reached the peak, so
# workers hold bytes there even though the run frees everything within
# 10 ms of it.
pane=$(screen | sed -n '/threads: 9 (tid, name)/,$p' | sed -n 2,10p)
k=$(echo "$pane" | awk '$1 != "0" && $NF ~ /^worker[0-7]$/ { print NR - 1; exit }')
if [ -z "$k" ]; then
    fail "no worker holds bytes at the peak"
else
    line=$(echo "$pane" | sed -n "$((k + 1))p")
    name=$(echo "$line" | awk '{ print $NF }')
    tid=$(echo "$line" | awk '{ print $(NF - 1) }')
    live=$(echo "$line" | awk '{ print $1 " " $2 }')
    keys Tab g
    for ((i = 0; i < k; i++)); do keys Down; done
    keys Enter                            # Enter on a thread: its sites
    expect "thread $tid $name: 1 sites"
    # Its one site holds all it has: the pane's live figure.
    expect_re "^ +$live +[0-9.]+ [KM]i?B +[0-9]+ .*worker at e2e_threads.c:23"
    expect ">$tid $name"                  # marked in the threads pane
    expect "sites of thread $tid $name only"
    keys Enter
    expect "thread $tid $name holds $live here: "
    expect "#0  worker at"
    # Exact: worker K's blocks are (K + 1) * 16 bytes each.
    n=$(screen | grep -oE "holds .* here: [0-9]+ blocks" | grep -oE "[0-9]+ blocks" | cut -d' ' -f1)
    K=${name#worker}
    if [ -n "$n" ] && [ "$(fmt_bytes $((n * (K + 1) * 16)))" = "$live" ]; then
        ok "$n blocks of $(((K + 1) * 16)) bytes make $live"
    else
        fail "$name holds '$live' in '$n' blocks of $(((K + 1) * 16)) bytes"
    fi
    keys Escape
    keys ']'                              # the end: every block was freed
    expect "this thread holds no live allocations"
    expect "thread $tid $name: 0 sites"
    keys T                                # the previous tid
    if [ "$K" -gt 0 ]; then expect_re "thread [0-9]+ worker$((K - 1)): 0 sites"
    else expect_re "thread [0-9]+ e2e_threads: [0-9]+ sites"; fi
fi
keys q
ended 0

# ---- live -----------------------------------------------------------------
echo "== live: e2e_peak"
start "$MLMEM run --tui -o $WORK/live.zst --json $WORK/live.json --log $WORK/peak.log -- $E2E/e2e_peak"
expect "mlmem live"
expect "exited with code 3" 15
expect "peak heap 2.86 MiB"
expect "the command has ended"
keys 2
order "e2e_peak.c:10" "e2e_peak.c:9"
keys o
expect "command output: $WORK/peak.log"
keys Escape
keys q
ended 3
# The usual summary follows the dashboard.
if history | grep -qF "Peak heap        2.86 MiB"; then ok "summary printed after"; else fail "no summary after the dashboard"; fi
[ -s "$WORK/live.json" ] && ok "JSON written" || fail "no JSON report"
[ -s "$WORK/live.zst" ] && ok "trace written" || fail "no trace"
[ -e "$WORK/peak.log" ] && ok "output log written" || fail "no output log"

echo "== live: e2e_threads"
start "$MLMEM run --tui -q --no-trace -- $E2E/e2e_threads"
expect "exited with code 0" 15
expect "threads: 9"
# t from all threads: each thread once, by tid (the main thread first, it
# holds what it still has; the workers' blocks were all freed), then all.
seen=""
prev=$(sites_title)
for i in $(seq 1 12); do
    keys t
    cur=$prev
    deadline=$((SECONDS + 5))
    while [ $SECONDS -lt $deadline ] && [ "$cur" = "$prev" ]; do sleep 0.1; cur=$(sites_title); done
    prev=$cur
    case "$cur" in *"sites: "*) break ;; esac
    seen="$seen $(echo "$cur" | grep -oE 'thread [0-9]+ [^:]*' | cut -d' ' -f2-)"
    [ $i -eq 1 ] && { case "$cur" in *" e2e_threads: "*) ok "t: the main thread first" ;;
                                     *) fail "first t shows '$cur'" ;; esac; }
    [ $i -eq 2 ] && expect "this thread holds no live allocations"
done
case "$prev" in *"sites: "*) ok "t came round to all threads" ;; *) fail "t did not come round to all threads: '$prev'" ;; esac
tids=$(echo $seen | tr ' ' '\n' | grep -E '^[0-9]+$')
[ "$(echo "$tids" | wc -l)" -eq 9 ] && ok "t went through the 9 threads" || fail "t went through: $seen"
[ "$(echo "$tids" | sort -n)" = "$tids" ] && ok "by tid" || fail "not by tid: $seen"
for k in 0 1 2 3 4 5 6 7; do
    case "$seen" in *" worker$k"*) ;; *) fail "t skipped worker$k: $seen" ;; esac
done
keys Tab g Enter                          # Enter on the threads pane's first
expect_re "thread [0-9]+ worker7: 0 sites"
expect_re ">[0-9]+ worker7"
keys q
ended 0

echo "== live: the command's output goes to the log, not the screen; its stdin is not the terminal"
cat > "$WORK/talk.sh" <<EOS
a=OUT; echo "HELLO-\$a-LINE"; b=ERR; echo "HELLO-\$b-LINE" >&2
if read -r line; then echo "STDIN-GOT-[\$line]"; else echo "STDIN-EOF"; fi
exec $E2E/e2e_peak
EOS
start "$MLMEM run --tui -q --no-trace --log $WORK/out.log -- sh $WORK/talk.sh"
expect "exited with code 3" 15
if screen | grep -q "HELLO-"; then fail "the command's output is on the screen"; else ok "no command output on the screen"; fi
keys o
expect "HELLO-OUT-LINE"
expect "HELLO-ERR-LINE"
keys q
ended 3
grep -q HELLO-OUT-LINE "$WORK/out.log" && ok "output in the log" || fail "HELLO-OUT-LINE not in the log"
grep -q STDIN-EOF "$WORK/out.log" && ok "the command read end-of-file, not the dashboard's keys" ||
    fail "the command's stdin was not /dev/null"

echo "== live: the run's other processes (< >): a fork and an exec'd child"
start "$MLMEM run --tui -q --no-trace -- $E2E/e2e_fork $E2E/e2e_peak"
expect "exited with code 0" 15
keys ">"
expect_re "process 2/3 pid [0-9]+  exited with code 7"
expect "live heap 1.95 KiB"
keys ">"
expect_re "process 3/3 pid [0-9]+  exited with code 3"
expect "peak heap 2.86 MiB"
expect "e2e_peak"
keys "<" "<"
expect_re "pid [0-9]+  exited with code 0"
expect "live heap 1000 B"
keys q
ended 0

echo "== live: the output log is never written through a planted link"
echo KEEP-ME > "$WORK/victim"
ln -sf "$WORK/victim" "$WORK/planted.log"
start "$MLMEM run --tui -q --no-trace --log $WORK/planted.log -- true"
expect "MLMEM-EXIT=1"
# -J joins the message's lines that wrapped at 80 columns.
tm capture-pane -p -J -t t | grep -q "cannot write the command's output log .*planted.log: it is a symbolic link" &&
    ok "says the log is a symbolic link" || fail "no message about the planted link"
[ "$(cat "$WORK/victim")" = KEEP-ME ] && ok "the link's target is untouched" ||
    fail "the link's target was written"

# ---- the reference trainer: categories, steps, advice ------------------------
# One run; the screen is kept at the end and compared with the JSON report
# written when the dashboard quits.
TRAIN=$BUILD/bin/mlmem-train
if [ -x "$TRAIN" ]; then
    echo "== live: mlmem-train --annotate"
    start "$MLMEM run --tui -q --no-trace --json $WORK/train.json --log $WORK/train.log -- $TRAIN --annotate --limit-train 2000 --limit-test 200 --epochs 1 --log-every 0 --threads 1"
    expect "exited with code 0" 60
    expect "composition now"
    expect "weights"
    expect "phase eval"   # the trainer evaluates at the end of its last step
    wait_gone "the command has ended" 10   # the end message ages (4 s): advice shows
    screen > "$WORK/train.screen"
    keys q
    ended 0
    J=$(tr -d '\n' < "$WORK/train.json")
    N=$(echo "$J" | grep -o '"steps": *{ *"source": *"annotations", *"count": *[0-9]*' | grep -o '[0-9]*$')
    T=$(echo "$J" | grep -o '"recommendations": *\[ *{[^}]*' | grep -o '"title": *"[^"]*"' | head -1 | sed 's/.*: *"//; s/"$//')
    if [ -n "$N" ] && [ "$N" -gt 0 ]; then
        # Steps are numbered from 0: the last is the report's count - 1.
        grep -qF "step $((N - 1))  phase" "$WORK/train.screen" && ok "header: step $((N - 1)) (the report's last)" || fail "header has no 'step $((N - 1))'"
        grep -qF "| $N annotated steps" "$WORK/train.screen" && ok "timeline: $N annotated steps" || fail "timeline title has no '$N annotated steps'"
        grep -qE "^ +0 +\|?.*\|" "$WORK/train.screen" && ok "step starts ticked on the axis" || fail "no step ticks on the timeline's axis"
    else
        fail "the trainer's report has no annotated steps ($WORK/train.json)"
    fi
    if [ -n "$T" ]; then
        grep -qF "1/" "$WORK/train.screen" && grep -qF -- "${T:0:30}" "$WORK/train.screen" \
            && ok "advice: '${T:0:30}'" || fail "advice line lacks the report's first recommendation '$T'"
    fi
    [ "$FAILS" -eq 0 ] || { echo "---- train screen ----"; cat "$WORK/train.screen"; }
else
    echo "skip: $TRAIN is not built"
fi

# ---- signals ----------------------------------------------------------------
echo "== Ctrl-C stops the command"
start "$MLMEM run --tui -q --no-trace -- sleep 30"
expect "running" 10
keys C-c
expect "killed by SIGINT" 10
keys q
ended 130

echo "== q while the command runs stops it and quits"
start "$MLMEM run --tui -q --no-trace -- sleep 30"
expect "running" 10
keys q
ended 130

echo "== a target killed by SIGKILL"
start "$MLMEM run --tui -q --no-trace -- $E2E/e2e_sigkill"
expect "killed by SIGKILL" 20
expect "4.00 MiB"
keys C-c          # Ctrl-C once the command has ended quits the dashboard
ended 137

# mlmem_pid: the mlmem process in the pane (the pane's shell's child).
mlmem_pid() {
    local pp c
    pp=$(tm display-message -p -t t '#{pane_pid}')
    for c in $(cat /proc/"$pp"/task/*/children 2>/dev/null); do
        [ "$(cat /proc/"$c"/comm 2>/dev/null)" = mlmem ] && { echo "$c"; return; }
    done
}

echo "== SIGTERM to the dashboard quits it cleanly"
start "$MLMEM tui $WORK/peak.zst"
expect "mlmem replay"
kill -TERM "$(mlmem_pid)"
ended 0

echo "== a crash of mlmem itself (SIGSEGV) still restores the terminal"
start "$MLMEM tui $WORK/peak.zst"
expect "mlmem replay"
kill -SEGV "$(mlmem_pid)"
ended 139

if [ "$FAILS" -ne 0 ]; then
    echo "e2e_tui: $FAILS check(s) failed"
    exit 1
fi
echo "e2e_tui: all checks passed"
