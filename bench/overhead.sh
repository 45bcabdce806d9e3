#!/usr/bin/env bash
# bench/overhead.sh - the profiler's cost on one workload, side by side and
# alternating in one run: uninstrumented (plain), mlmem (default: `mlmem run
# -q --no-trace`), mlmem --stacks=all, mlmem record (capture only, to a
# trace file), heaptrack, and Valgrind massif (with --massif). Prints one
# markdown table of medians and ratios to the uninstrumented run, then notes.
#
#   bench/overhead.sh [options] BUILD_DIR -- CMD [ARGS...]
#   bench/overhead.sh -n 5 build -- build/bench/alloc_storm 200 1
#
#   -n RUNS            runs of each tool (default 5)
#   --massif           also Valgrind massif
#   --tools LIST       comma-separated subset of plain,mlmem,mlmem-all,
#                      mlmem-record,heaptrack,massif (plain is always run)
#   --timeout S        kill a run after S seconds; that tool is then shown as
#                      timed out and not run again (default: no limit)
#   --read-runs N      timed reads of each trace (default: min(RUNS, 3))
#   --max-rss MIB      kill a run when one of its processes has more than MIB
#                      resident; shown like a timeout (default: 8192, or half
#                      the machine's memory if less; 0: no cap)
#   --target-exe PAT   shell pattern matching the executable whose peak RSS
#                      is "target RSS" (default: CMD's own, resolved)
#   --title TEXT       heading printed above the table (default: the command)
#
# Columns: wall s; cpu s = user+sys of the whole process tree (mlmem's
# analyzer and writer thread, heaptrack_interpret included); target RSS =
# peak RSS (VmHWM, sampled every 20 ms) of the process running the workload's
# executable, the profiler's part in it included; tree RSS = the largest
# peak RSS of any one process of the run (/usr/bin/time's %M; for mlmem run, the
# analyzer's when it is larger than the program's). Trace columns, from the
# last run: mlmem-record's trace size over its report's summary.events, and
# heaptrack's .zst/.gz over its allocations + frees; read s, M events/s and
# read RSS: `mlmem report TRACE` and `heaptrack_print TRACE` reading them.
#
# The machine may be shared and noisy: runs alternate between the tools so
# that a slow spell hits all of them, and only medians are quoted.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0" >&2; exit 2; }
die() { echo "overhead: $*" >&2; exit 1; }

runs=5
massif=0
timeout_s=0
max_rss_mib=$(awk '/^MemTotal/ {m = int($2 / 2048); print (m < 8192) ? m : 8192}' /proc/meminfo)
read_runs=""
tools_opt=""
target_exe=""
title=""
build=""
while [ $# -gt 0 ]; do
    case "$1" in
    -n) runs="${2:?}"; shift 2 ;;
    --massif) massif=1; shift ;;
    --tools) tools_opt="${2:?}"; shift 2 ;;
    --timeout) timeout_s="${2:?}"; shift 2 ;;
    --max-rss) max_rss_mib="${2:?}"; shift 2 ;;
    --read-runs) read_runs="${2:?}"; shift 2 ;;
    --target-exe) target_exe="${2:?}"; shift 2 ;;
    --title) title="${2:?}"; shift 2 ;;
    -h | --help) usage ;;
    --) shift; break ;;
    -*) echo "overhead: unknown option $1" >&2; usage ;;
    *) [ -z "$build" ] || usage; build="$1"; shift ;;
    esac
done
[ -n "$build" ] && [ $# -gt 0 ] || usage
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "-n wants a positive number, not '$runs'"
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout wants seconds, not '$timeout_s'"
[[ "$max_rss_mib" =~ ^[0-9]+$ ]] || die "--max-rss wants MiB, not '$max_rss_mib'"
[ -n "$read_runs" ] || read_runs=$((runs < 3 ? runs : 3))
mlmem="$build/bin/mlmem"
[ -x "$mlmem" ] || die "$mlmem not built (cmake -S . -B $build && cmake --build $build)"
command -v "$1" >/dev/null || die "workload not found: $1"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/mlmem-overhead.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# --- the tools --------------------------------------------------------------
all_tools=(plain mlmem mlmem-all mlmem-record heaptrack massif)
tools=(plain)
if [ -n "$tools_opt" ]; then
    IFS=, read -r -a want <<<"$tools_opt"
    for t in "${want[@]}"; do
        [[ " ${all_tools[*]} " == *" $t "* ]] || die "unknown tool '$t' (${all_tools[*]})"
        [ "$t" = plain ] || tools+=("$t")
    done
else
    tools+=(mlmem mlmem-all mlmem-record heaptrack)
    [ "$massif" = 1 ] && tools+=(massif)
fi
notes=()
have=()
for t in "${tools[@]}"; do
    case "$t" in
    heaptrack) command -v heaptrack >/dev/null && command -v heaptrack_print >/dev/null \
        || { notes+=("heaptrack: not installed, skipped (bash bench/install-bench-deps.sh)"); continue; } ;;
    massif) command -v valgrind >/dev/null \
        || { notes+=("massif: valgrind not installed, skipped (bash bench/install-bench-deps.sh)"); continue; } ;;
    esac
    have+=("$t")
done
tools=("${have[@]}")

# --- the target's peak RSS ----------------------------------------------------
# rsswatch PATTERN OUT CAP_KB -- CMD...: runs CMD and writes to OUT the largest
# VmHWM (KiB) of the processes of its tree whose executable matches PATTERN,
# read every 20 ms (-1 if none matched). If any process of the tree has more
# than CAP_KB resident (0: no cap), it kills the tree and adds a line "killed"
# to OUT. It is a child subreaper, so processes orphaned inside the tree stay
# in it. It sits outside the run timer: its own polling is not in the
# measured CPU time. Exits with CMD's status.
cat >"$tmp/rsswatch.c" <<'EOF'
#define _GNU_SOURCE
#include <dirent.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXP 4096
static pid_t tree[MAXP];
static char is_target[MAXP];
static int ntree;

static int in_tree(pid_t p)
{
    for (int i = 0; i < ntree; i++)
        if (tree[i] == p)
            return i;
    return -1;
}

static int exe_matches(pid_t p, const char *pat)
{
    char path[64], exe[4096];
    snprintf(path, sizeof path, "/proc/%d/exe", (int)p);
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    if (n <= 0)
        return 0;
    exe[n] = 0;
    return fnmatch(pat, exe, 0) == 0;
}

/* VmHWM and VmRSS of p in KiB (-1: gone, or no memory: a zombie). */
static void mem_kb(pid_t p, long *hwm, long *rss)
{
    char path[64], line[256];
    *hwm = *rss = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)p);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            *hwm = atol(line + 6);
        else if (strncmp(line, "VmRSS:", 6) == 0) {
            *rss = atol(line + 6);
            break;
        }
    fclose(f);
}

/* Adds the processes whose parent is in the tree; rechecks the executables
 * (a forked child execs the target after it was first seen). */
static void scan(const char *pat)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d))) {
        char path[300], buf[1024];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        pid_t p = atoi(e->d_name);
        int i = in_tree(p);
        if (i < 0) {
            snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
            FILE *f = fopen(path, "r");
            if (!f)
                continue;
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = 0;
            char *r = strrchr(buf, ')');
            int ppid;
            if (!r || sscanf(r + 1, " %*c %d", &ppid) != 1 || in_tree(ppid) < 0 || ntree == MAXP)
                continue;
            i = ntree++;
            tree[i] = p;
        }
        if (!is_target[i] && exe_matches(p, pat))
            is_target[i] = 1;
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    if (argc < 6 || strcmp(argv[4], "--") != 0) {
        fprintf(stderr, "usage: rsswatch PATTERN OUT CAP_KB -- CMD...\n");
        return 2;
    }
    const char *pat = argv[1], *out = argv[2];
    long cap = atol(argv[3]);
    int killed = 0;
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    tree[ntree++] = getpid();
    pid_t child = fork();
    if (child < 0)
        return 126;
    if (child == 0) {
        execvp(argv[5], argv + 5);
        perror(argv[5]);
        _exit(127);
    }
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    long best = -1;
    int status = 0;
    for (unsigned tick = 0;; tick++) {
        pid_t r;
        int st, done = 0;
        while ((r = waitpid(-1, &st, WNOHANG)) > 0)
            if (r == child) {
                status = st;
                done = 1;
            }
        if (done)
            break;
        if (tick < 10 || tick % 25 == 0)
            scan(pat);
        for (int i = 1; i < ntree; i++) {
            long hwm, rss;
            if (!is_target[i] && !cap)
                continue;
            mem_kb(tree[i], &hwm, &rss);
            if (is_target[i] && hwm > best)
                best = hwm;
            if (cap && rss > cap && !killed) {
                killed = 1;
                fprintf(stderr, "rsswatch: pid %d has %ld MiB resident, over the cap of %ld MiB: "
                        "killing the run\n", (int)tree[i], rss / 1024, cap / 1024);
                for (int k = ntree - 1; k >= 1; k--)
                    kill(tree[k], SIGKILL);
            }
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    FILE *f = fopen(out, "w");
    if (f) {
        fprintf(f, "%ld\n%s", best, killed ? "killed\n" : "");
        fclose(f);
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}
EOF
# runtimer OUT -- CMD...: runs CMD and writes to OUT, as /usr/bin/time -f "%e
# %U %S %M" would, its wall time, user and system CPU time (of CMD and what
# it waited for) and largest resident set, but to the microsecond: time's
# 10 ms steps were 6% of a 0.16 s run. Exits with CMD's status.
cat >"$tmp/runtimer.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double secs(struct timeval t) { return (double)t.tv_sec + t.tv_usec / 1e6; }

int main(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: runtimer OUT -- CMD...\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t child = fork();
    if (child < 0)
        return 126;
    if (child == 0) {
        execvp(argv[3], argv + 3);
        perror(argv[3]);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    while (wait4(child, &status, 0, &ru) < 0)
        ;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    FILE *f = fopen(argv[1], "w");
    if (f) {
        fprintf(f, "%.6f %.6f %.6f %ld\n",
                (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
                secs(ru.ru_utime), secs(ru.ru_stime), ru.ru_maxrss);
        fclose(f);
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}
EOF
cc -O2 -o "$tmp/runtimer" "$tmp/runtimer.c" 2>"$tmp/cc.log" ||
    die "cannot build the run timer: $(head -1 "$tmp/cc.log")"

rsswatch=""
if cc -O2 -o "$tmp/rsswatch" "$tmp/rsswatch.c" 2>"$tmp/cc.log"; then
    rsswatch="$tmp/rsswatch"
else
    notes+=("target RSS: could not build the RSS watcher ($(head -1 "$tmp/cc.log")); shown as -")
fi

# The executable whose RSS is the target's: CMD resolved (through a #!
# line: its interpreter); under massif the target runs inside Valgrind's tool.
if [ -z "$target_exe" ]; then
    target_exe="$(readlink -f "$(command -v "$1")")"
    if [ "$(head -c 2 "$target_exe")" = "#!" ]; then
        interp="$(head -1 "$target_exe" | sed 's/^#! *//; s/ .*//')"
        [ "$interp" = /usr/bin/env ] && interp="$(command -v "$(head -1 "$target_exe" | awk '{print $2}')")"
        target_exe="$(readlink -f "$interp")"
    fi
fi

# --- one run --------------------------------------------------------------------
# run TOOL CMD...: runs the workload once under TOOL and appends
# "wall cpu tree_rss_kb target_rss_kb" to $tmp/TOOL.times; marks the tool
# timed out in $tmp/TOOL.timeout. The run timer measures the whole process
# tree (for mlmem: the analyzer and the program).
run() {
    local tool="$1" pat="$target_exe" rc=0
    shift
    local cmd=()
    case "$tool" in
    plain) cmd=("$@") ;;
    mlmem) cmd=("$mlmem" run -q --no-trace -- "$@") ;;
    mlmem-all) cmd=("$mlmem" run -q --no-trace --stacks=all -- "$@") ;;
    mlmem-record) rm -f "$tmp/cur.zst"; cmd=("$mlmem" record -o "$tmp/cur.zst" -- "$@") ;;
    heaptrack) rm -f "$tmp"/cur-ht.*; cmd=(heaptrack -o "$tmp/cur-ht" "$@") ;;
    massif) rm -f "$tmp/ms"; pat="*/massif-*-linux"
        cmd=(valgrind --tool=massif --massif-out-file="$tmp/ms" "$@") ;;
    esac
    cmd=("$tmp/runtimer" "$tmp/one" -- "${cmd[@]}")
    [ "$timeout_s" -gt 0 ] && cmd=(timeout -k 10 "$timeout_s" "${cmd[@]}")
    [ -n "$rsswatch" ] && cmd=("$rsswatch" "$pat" "$tmp/rss" $((max_rss_mib * 1024)) -- "${cmd[@]}")
    : >"$tmp/one"
    echo -1 >"$tmp/rss"
    "${cmd[@]}" >"$tmp/log" 2>&1 </dev/null || rc=$?
    if grep -qx killed "$tmp/rss"; then
        echo "over $max_rss_mib MiB resident (killed)" >"$tmp/$tool.timeout"
        return 0
    fi
    if { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && [ "$timeout_s" -gt 0 ]; then
        echo "over $timeout_s s (timed out)" >"$tmp/$tool.timeout"
        return 0
    fi
    if [ "$rc" != 0 ]; then
        echo "overhead: the workload failed under $tool (exit $rc): ${cmd[*]}" >&2
        tail -20 "$tmp/log" >&2
        exit 1
    fi
    # Only a finished run's trace is measured (a killed one is cut short).
    case "$tool" in
    mlmem-record) mv "$tmp/cur.zst" "$tmp/rec.zst" ;;
    heaptrack)
        rm -f "$tmp"/ht.zst "$tmp"/ht.gz
        for f in "$tmp"/cur-ht.zst "$tmp"/cur-ht.gz; do
            [ -e "$f" ] && mv "$f" "$tmp/ht.${f##*.}"
        done
        cp "$tmp/log" "$tmp/heaptrack.log" ;;
    esac
    tail -1 "$tmp/one" | awk -v r="$(head -1 "$tmp/rss")" '{print $1, $2 + $3, $4, r}' >>"$tmp/$tool.times"
}

for ((i = 0; i < runs; i++)); do
    for tool in "${tools[@]}"; do
        [ -e "$tmp/$tool.timeout" ] || run "$tool" "$@"
    done
done

# --- the traces of the last run ---------------------------------------------
# timed_read NAME CMD...: one read of a trace; appends "wall rss_kb" to
# $tmp/NAME.read, output in $tmp/NAME.out.
timed_read() {
    local name="$1" rc=0
    shift
    "$tmp/runtimer" "$tmp/one" -- "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
    if [ "$rc" != 0 ]; then
        echo "overhead: reading the trace failed (exit $rc): $*" >&2
        tail -20 "$tmp/$name.err" >&2
        exit 1
    fi
    awk '{print $1, $4}' "$tmp/one" >>"$tmp/$name.read"
}
fsize() { stat -c %s "$1"; }

readers=()
if [ -s "$tmp/rec.zst" ]; then
    "$mlmem" report "$tmp/rec.zst" --json "$tmp/rec.json" >/dev/null 2>"$tmp/rec.err" \
        || { cat "$tmp/rec.err" >&2; die "mlmem report $tmp/rec.zst --json failed"; }
    rec_events=$(jq -r '.summary.events' "$tmp/rec.json" 2>/dev/null \
        || /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["events"])' "$tmp/rec.json")
    rec_children=$(jq -r '.children | length' "$tmp/rec.json" 2>/dev/null || echo 0)
    [ "$rec_children" = 0 ] || notes+=("mlmem-record: the trace also holds $rec_children child process(es); events counts the command's only")
    echo "$(fsize "$tmp/rec.zst") $rec_events" >"$tmp/mlmem-record.trace"
    # The events are not only allocations and frees (RSS samples, threads,
    # maps), and a realloc is one event: give the trace's size per allocation
    # or free too, heaptrack's unit.
    if rec_af=$(jq -r '.summary | "\(.total_allocations) \(.total_frees) \(.rss_samples)"' "$tmp/rec.json" 2>/dev/null); then
        read -r rec_a rec_f rec_r <<<"$rec_af"
        notes+=("mlmem-record: its $rec_events events hold $rec_a allocations and $rec_f frees (a realloc is one event counted in both) and $rec_r RSS samples; $(awk -v b="$(fsize "$tmp/rec.zst")" -v n="$((rec_a + rec_f))" 'BEGIN {printf (n > 0) ? "%.4f" : "-", b / n}') B per allocation or free (the shim folds a block freed right after it was made into a count: docs/shim.md)")
    fi
    readers+=(mlmem-record)
fi
ht_trace="$(ls "$tmp"/ht.zst "$tmp"/ht.gz 2>/dev/null | head -1 || true)"
if [ -n "$ht_trace" ] && [ -s "$ht_trace" ]; then
    readers+=(heaptrack)
fi
for ((i = 0; i < read_runs; i++)); do
    for r in "${readers[@]}"; do
        case "$r" in
        mlmem-record) timed_read "$r" "$mlmem" report "$tmp/rec.zst" ;;
        heaptrack) timed_read "$r" heaptrack_print "$ht_trace" ;;
        esac
    done
done
if [[ " ${readers[*]} " == *" heaptrack "* ]]; then
    # heaptrack_print's summary: "calls to allocation functions: N (R/s)";
    # the recording's own "heaptrack stats:" (its last run's log):
    # "leaked allocations: N". Frees = allocations - leaked.
    ht_allocs=$(sed -n 's/^calls to allocation functions: \([0-9]*\).*/\1/p' "$tmp/heaptrack.out" | head -1)
    ht_leaked=$(awk -F: '/^[[:space:]]*leaked allocations:/ {gsub(/[[:space:]]/, "", $2); print $2; exit}' "$tmp/heaptrack.log" || true)
    if [ -z "$ht_leaked" ]; then
        ht_leaked=0
        notes+=("heaptrack: no leaked-allocation count in its log; events = 2 x allocations")
    fi
    if [ -n "$ht_allocs" ]; then
        echo "$(fsize "$ht_trace") $((2 * ht_allocs - ht_leaked))" >"$tmp/heaptrack.trace"
    else
        notes+=("heaptrack: no allocation count in heaptrack_print's output")
    fi
fi

# --- the table --------------------------------------------------------------------
median() { sort -g | awk '{a[NR] = $1} END {if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { [ -s "$2" ] && awk -v c="$3" '{print $c}' "$2" | median; }
times_col() { col "$1" "$tmp/$1.times" "$2"; }

[ -s "$tmp/plain.times" ] || die "the uninstrumented run did not finish: $(cat "$tmp/plain.timeout")"
base_wall=$(times_col plain 1)
base_cpu=$(times_col plain 2)
base_rss=$(times_col plain 4)
echo "${title:-workload: $*}  ($runs runs each, medians; $(nproc) cores; $(date -u +%Y-%m-%d))"
echo
echo "| tool | wall s | x plain | x plain, rounds | cpu s | x plain | target RSS MiB | x plain | tree RSS MiB | trace MB | events | B/event | read s | M events/s | read RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for tool in "${tools[@]}"; do
    if [ ! -s "$tmp/$tool.times" ]; then
        echo "| $tool | $(cat "$tmp/$tool.timeout") | | | | | | | | | | | | | |"
        continue
    fi
    w=$(times_col "$tool" 1); c=$(times_col "$tool" 2); m=$(times_col "$tool" 3); r=$(times_col "$tool" 4)
    n_done=$(wc -l <"$tmp/$tool.times")
    label="$tool"
    [ "$n_done" -lt "$runs" ] && label="$tool ($n_done of $runs runs; then $(cat "$tmp/$tool.timeout"))"
    trace="- - "
    [ -s "$tmp/$tool.trace" ] && trace="$(cat "$tmp/$tool.trace")"
    rd_w=$(col x "$tmp/$tool.read" 1 || true); rd_m=$(col x "$tmp/$tool.read" 2 || true)
    # Each run against the plain run of its own round (the runs alternate):
    # the machine drifts between fast and slow spells, which the medians of
    # the columns before do not pair up.
    rounds=$(paste -d ' ' "$tmp/plain.times" "$tmp/$tool.times" |
        awk -v k="$(awk '{print NF; exit}' "$tmp/plain.times")" '$1 > 0 && NF > k {print $(k + 1) / $1}' |
        median)
    awk -v t="$label" -v w="$w" -v c="$c" -v m="$m" -v r="$r" -v bw="$base_wall" -v bc="$base_cpu" \
        -v br="$base_rss" -v trace="$trace" -v rw="${rd_w:-}" -v rm="${rd_m:-}" -v wr="${rounds:-}" 'BEGIN {
        split(trace, tr, " ")
        rss = (r >= 0) ? sprintf("%.1f", r / 1024) : "-"
        rx = (r >= 0 && br > 0) ? sprintf("%.2f", r / br) : "-"
        tmb = (tr[1] != "-") ? sprintf("%.2f", tr[1] / 1e6) : "-"
        ev = (tr[2] != "-" && tr[2] != "") ? tr[2] : "-"
        # Folded temporaries make the bytes per event tiny: more digits.
        bpe = (ev != "-" && ev > 0) ? sprintf(tr[1] / ev < 0.1 ? "%.4f" : "%.2f", tr[1] / ev) : "-"
        rs = (rw != "") ? sprintf("%.2f", rw) : "-"
        eps = (rw != "" && ev != "-" && rw > 0) ? sprintf("%.1f", ev / rw / 1e6) : "-"
        rr = (rm != "") ? sprintf("%.1f", rm / 1024) : "-"
        wx = (bw > 0) ? sprintf("%.2f", w / bw) : "-"
        cx = (bc > 0) ? sprintf("%.2f", c / bc) : "-"
        wrx = (wr != "") ? sprintf("%.2f", wr) : "-"
        printf "| %s | %.3f | %s | %s | %.3f | %s | %s | %s | %.1f | %s | %s | %s | %s | %s | %s |\n",
            t, w, wx, wrx, c, cx, rss, rx, m / 1024, tmb, ev, bpe, rs, eps, rr
    }'
done
echo
echo "x plain, rounds: the median over rounds of each run's wall time over the plain run of its round."
echo "Target RSS: peak RSS (VmHWM, sampled every 20 ms) of the process running \`$(basename "$target_exe")\`, the"
echo "profiler's part in it included (under massif: Valgrind's process). Tree RSS: the timer's (as /usr/bin/time's %M), the"
echo "largest peak RSS of any one process of the run (mlmem's analyzer, heaptrack_interpret)."
if [ ${#readers[@]} -gt 0 ]; then
    echo "Trace columns, from the last run: mlmem-record = \`mlmem record\` file over its report's summary.events,"
    echo "read by \`mlmem report TRACE\`; heaptrack = its $(basename "${ht_trace:-ht.zst}" | sed 's/^ht//') file over allocations + frees"
    echo "(heaptrack_print's \"calls to allocation functions\", twice, less the recording's \"leaked allocations\"),"
    echo "read by \`heaptrack_print TRACE\`. read s: wall time, median of $read_runs; read RSS: the reader's peak."
fi
for n in "${notes[@]+"${notes[@]}"}"; do
    echo "Note: $n"
done
