#!/usr/bin/env bash
# bench/overhead.sh - the profiler's cost on one workload, side by side and
# alternating in one run: uninstrumented, mlmem (default), mlmem
# --stacks=all, heaptrack, and Valgrind massif (with --massif). Prints a
# markdown table of medians and ratios to the uninstrumented run: wall time,
# CPU time (user+sys of the whole process tree), peak RSS.
#
#   bench/overhead.sh [-n RUNS] [--massif] BUILD_DIR -- CMD [ARGS...]
#   bench/overhead.sh -n 5 build -- build/bench/alloc_storm 200 1
#
# The machine is shared and noisy: runs alternate between the tools so that
# a slow spell hits all of them, and only medians are quoted.
set -euo pipefail

runs=5
massif=0
while [ $# -gt 0 ]; do
    case "$1" in
    -n) runs="$2"; shift 2 ;;
    --massif) massif=1; shift ;;
    --) shift; break ;;
    *) build="$1"; shift ;;
    esac
done
[ -n "${build:-}" ] && [ $# -gt 0 ] || { sed -n 2,13p "$0" >&2; exit 2; }
mlmem="$build/bin/mlmem"
[ -x "$mlmem" ] || { echo "overhead: $mlmem not built" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

tools=(plain mlmem mlmem-all)
command -v heaptrack >/dev/null && tools+=(heaptrack)
[ "$massif" = 1 ] && command -v valgrind >/dev/null && tools+=(massif)

# run TOOL CMD...: runs the workload once under TOOL and appends
# "wall cpu rss_kb" to $tmp/TOOL.times. /usr/bin/time measures the whole
# process tree (for mlmem: the analyzer and the program).
run() {
    local tool="$1" out="$tmp/$1.times"
    local t=(/usr/bin/time -f "%e %U %S %M" -o "$tmp/one")
    shift
    : > "$tmp/one"
    case "$tool" in
    plain) "${t[@]}" "$@" >/dev/null 2>&1 ;;
    mlmem) "${t[@]}" "$mlmem" run -q --no-trace -- "$@" >/dev/null 2>&1 ;;
    mlmem-all) "${t[@]}" "$mlmem" run -q --no-trace --stacks=all -- "$@" >/dev/null 2>&1 ;;
    heaptrack) "${t[@]}" heaptrack -o "$tmp/ht" "$@" >/dev/null 2>&1; rm -f "$tmp"/ht* ;;
    massif) "${t[@]}" valgrind --tool=massif --massif-out-file="$tmp/ms" "$@" >/dev/null 2>&1 ;;
    esac
    awk '{print $1, $2 + $3, $4}' "$tmp/one" >> "$out"
}

for ((i = 0; i < runs; i++)); do
    for tool in "${tools[@]}"; do
        run "$tool" "$@"
    done
done

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { awk -v c="$2" '{print $c}' "$tmp/$1.times" | median; }

base_wall=$(col plain 1)
base_cpu=$(col plain 2)
echo "workload: $*  ($runs runs each, medians; $(nproc) cores; $(date -u +%Y-%m-%d))"
echo
echo "| tool | wall s | x plain | cpu s | x plain | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
for tool in "${tools[@]}"; do
    w=$(col "$tool" 1); c=$(col "$tool" 2); r=$(col "$tool" 3)
    awk -v t="$tool" -v w="$w" -v c="$c" -v r="$r" -v bw="$base_wall" -v bc="$base_cpu" \
        'BEGIN {printf "| %s | %.3f | %.2f | %.3f | %.2f | %.1f |\n", t, w, w / bw, c, c / bc, r / 1024}'
done
