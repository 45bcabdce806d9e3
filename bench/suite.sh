#!/usr/bin/env bash
# bench/suite.sh - the benchmark suite of issue 6: every workload under every
# tool, alternating, through bench/overhead.sh; prints a markdown header
# (date, machine, commit, tool versions, the exact command) and one table per
# workload. Run from anywhere; needs the build and bench/install-bench-deps.sh.
#
#   bench/suite.sh [options] [BUILD_DIR]          (BUILD_DIR default: build)
#
#   --quick          tiny inputs, 1 run each: a smoke check (under a minute)
#   -n RUNS          runs of each tool per workload (default 5; torch 3;
#                    --quick 1)
#   --only LIST      comma-separated subset of storm1,storm2,trainer,torch,
#                    throughput
#   --massif-all     also massif on the trainer and the PyTorch script
#                    (slow: minutes per run); by default massif runs on the
#                    allocation storm only
#   --timeout S      kill a run after S seconds (default: storms 300 s,
#                    trainer 120 s, torch 200 s; --quick 60 s)
#   --max-rss MIB    kill a run when one of its processes holds more than MIB
#                    resident (default: 8192 or half the memory)
#   -o FILE          also write the output to FILE
#
# Workloads (full size; --quick in brackets):
#   storm1   build/bench/alloc_storm 400 1                 [20 1]
#   storm2   build/bench/alloc_storm 400 2                 [20 2]
#   trainer  build/bin/mlmem-train --epochs 1 --threads 1 --log-every 0
#              --limit-test 2000                           [--limit-train 2048 --limit-test 256]
#   torch    /usr/bin/python3 bench/torch_train.py --log-every 0
#              (300 steps)                                  [--steps 20 --test-limit 256]
#              (--quick leaves out mlmem --stacks=all here: it takes minutes)
#   throughput  bench/throughput.sh: mlmem report and heaptrack_print on
#              storm traces of 40 and 400 steps, whole and marginal rate
#                                                          [5 and 20 steps]
#
# The full run takes about 10-15 minutes on 2 cores. Numbers are only as
# quiet as the machine: rerun on an idle one before quoting them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0" >&2; exit 2; }
die() { echo "suite: $*" >&2; exit 1; }

quick=0
runs=""
only="storm1,storm2,trainer,torch,throughput"
massif_all=0
timeout_s=""
outfile=""
max_rss=""
build=""
cmdline="bench/suite.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1; shift ;;
    -n) runs="${2:?}"; shift 2 ;;
    --only) only="${2:?}"; shift 2 ;;
    --massif-all) massif_all=1; shift ;;
    --timeout) timeout_s="${2:?}"; shift 2 ;;
    -o) outfile="${2:?}"; shift 2 ;;
    --max-rss) max_rss="${2:?}"; shift 2 ;;
    -h | --help) usage ;;
    -*) echo "suite: unknown option $1" >&2; usage ;;
    *) [ -z "$build" ] || usage; build="$1"; shift ;;
    esac
done
build="${build:-build}"
[ -z "$runs" ] || [[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "-n wants a positive number, not '$runs'"
[ -z "$timeout_s" ] || [[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || die "--timeout wants seconds, not '$timeout_s'"
# timeout_for DEFAULT: the limit of one run of a workload.
timeout_for() { if [ -n "$timeout_s" ]; then echo "$timeout_s"; elif [ "$quick" = 1 ]; then echo 60; else echo "$1"; fi; }
for w in ${only//,/ }; do
    case "$w" in
    storm1 | storm2 | trainer | torch | throughput) ;;
    *) die "unknown workload '$w' (storm1,storm2,trainer,torch,throughput)" ;;
    esac
done
wants() { [[ ",$only," == *",$1,"* ]]; }

for f in bin/mlmem bench/alloc_storm bin/mlmem-train; do
    [ -x "$build/$f" ] || die "$build/$f not built: cmake -S . -B $build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build $build"
done
[ -x /usr/bin/time ] || die "/usr/bin/time missing: bash bench/install-bench-deps.sh"
command -v jq >/dev/null || command -v /usr/bin/python3 >/dev/null || die "needs jq or python3 to read the JSON report"

if [ -n "$outfile" ]; then
    # Everything below goes to the terminal and to FILE.
    exec > >(tee "$outfile")
    tee_pid=$!
fi
# finish STATUS: lets tee write the last lines, then exits.
finish() {
    if [ -n "${tee_pid:-}" ]; then
        exec >&-
        wait "$tee_pid" 2>/dev/null || true
    fi
    exit "$1"
}

python=/usr/bin/python3
torch_ok=0
torch_version="not installed"
if [ -x "$python" ] && v="$("$python" -c 'import torch, numpy; print(torch.__version__)' 2>/dev/null)"; then
    torch_ok=1
    torch_version="$v"
fi
fmnist=/usr/share/datasets/fashion-mnist
[ -s "$fmnist/train-images-idx3-ubyte.gz" ] || die "no Fashion-MNIST in $fmnist: bash scripts/install-deps.sh"

# --- header --------------------------------------------------------------------------
cpu="$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
mem="$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo 2>/dev/null || true)"
commit="$(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ "$commit" != unknown ] && ! git -C "$here/.." diff --quiet HEAD -- 2>/dev/null; then
    commit="$commit (with uncommitted changes)"
fi
vers() { "$@" 2>&1 | head -1 || true; }
echo "# mlmem benchmark suite ($([ "$quick" = 1 ] && echo "quick: tiny inputs, smoke check only" || echo full))"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) cores, ${cpu:-unknown CPU}, $mem, $(uname -sr); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- mlmem: commit $commit, build $build"
echo "- peers: $(command -v heaptrack >/dev/null && vers heaptrack --version || echo 'heaptrack not installed'), $(command -v valgrind >/dev/null && vers valgrind --version || echo 'valgrind not installed'); torch $torch_version"
echo "- command: \`$cmdline\`"
echo

# --- workloads -------------------------------------------------------------------------
if [ "$quick" = 1 ]; then
    storm_steps=20
    trainer_args=(--epochs 1 --threads 1 --log-every 0 --limit-train 2048 --limit-test 256)
    torch_args=(--log-every 0 --steps 20 --test-limit 256)
    fast_runs=1
    torch_runs=1
else
    storm_steps=400
    trainer_args=(--epochs 1 --threads 1 --log-every 0 --limit-test 2000)
    torch_args=(--log-every 0)
    fast_runs=5
    torch_runs=3
fi
[ -n "$runs" ] && fast_runs="$runs" && torch_runs="$runs"

# workload NAME TITLE RUNS TIMEOUT [OVERHEAD OPTIONS] -- CMD...
workload() {
    local name="$1" title="$2" n="$3" limit="$4"
    shift 4
    local opts=()
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    opts+=(-n "$n" --timeout "$limit" --title "## $title: \`$*\`")
    [ -n "$max_rss" ] && opts+=(--max-rss "$max_rss")
    echo "suite: $name ..." >&2
    local t0=$SECONDS
    if ! bash "$here/overhead.sh" "${opts[@]}" "$build" -- "$@"; then
        echo "## $title: FAILED (the error is on stderr)"
        failed+=("$name")
    fi
    echo
    echo "suite: $name took $((SECONDS - t0)) s" >&2
}

failed=()
other_massif=()
torch_tools=()
if [ "$massif_all" = 1 ]; then
    other_massif=(--massif)
    [ "$quick" = 0 ] || torch_tools=(--tools "mlmem,mlmem-record,heaptrack,massif")
else
    [ "$quick" = 0 ] || torch_tools=(--tools "mlmem,mlmem-record,heaptrack")
fi
wants storm1 && workload storm1 "Allocation storm, 1 thread" "$fast_runs" "$(timeout_for 300)" --massif \
    -- "$build/bench/alloc_storm" "$storm_steps" 1
wants storm2 && workload storm2 "Allocation storm, 2 threads" "$fast_runs" "$(timeout_for 300)" --massif \
    -- "$build/bench/alloc_storm" "$storm_steps" 2
wants trainer && workload trainer "Reference trainer (mlmem-train)" "$fast_runs" "$(timeout_for 120)" \
    "${other_massif[@]+"${other_massif[@]}"}" -- "$build/bin/mlmem-train" "${trainer_args[@]}"
if wants torch; then
    if [ "$torch_ok" = 1 ]; then
        workload torch "PyTorch CPU training (bench/torch_train.py)" "$torch_runs" "$(timeout_for 200)" \
            "${other_massif[@]+"${other_massif[@]}"}" "${torch_tools[@]+"${torch_tools[@]}"}" \
            -- "$python" "$here/torch_train.py" "${torch_args[@]}"
        if [ "$quick" = 1 ]; then
            echo "(--quick leaves out mlmem-all on the PyTorch script: it takes minutes.)"
            echo
        fi
    else
        echo "## PyTorch CPU training: skipped (no torch for $python: bash bench/install-bench-deps.sh)"
        echo
    fi
fi
if wants throughput; then
    echo "suite: throughput ..." >&2
    t0=$SECONDS
    echo "## Analyzer throughput"
    echo
    if [ "$quick" = 1 ]; then tp=(-n 1 --steps "5,20"); else tp=(-n "$fast_runs" --steps "40,400"); fi
    if ! bash "$here/throughput.sh" "${tp[@]}" "$build"; then
        echo "FAILED (the error is on stderr)"
        failed+=(throughput)
    fi
    echo
    echo "suite: throughput took $((SECONDS - t0)) s" >&2
fi
echo "Ratios are to the uninstrumented run (plain). mlmem = \`mlmem run -q --no-trace\`; mlmem-all = the"
echo "same with \`--stacks=all\`; mlmem-record = \`mlmem record -o TRACE\` (capture only, no live analysis);"
echo "heaptrack = \`heaptrack -o TRACE\`; massif = \`valgrind --tool=massif\`, on the allocation storm only"
if [ "$massif_all" = 1 ]; then echo "and, with --massif-all, on the other workloads too."; else echo "(--massif-all for the others)."; fi
[ "$quick" = 0 ] || echo "Quick mode: the runs are too short for /usr/bin/time's 10 ms resolution; do not quote these."
if [ ${#failed[@]} -gt 0 ]; then
    echo "suite: failed: ${failed[*]}" >&2
    finish 1
fi
finish 0
