#!/usr/bin/env bash
# bench/throughput.sh - the analyzer's reading speed: `mlmem report` on an
# `mlmem record` trace next to `heaptrack_print` on heaptrack's trace of the
# same program, at two sizes of the allocation storm, so that the fixed cost
# of a read (start-up, symbols, the report) can be told from the per-event
# cost. Prints a markdown table: events per second of each whole read, and
# the marginal rate (extra events / extra seconds from the small trace to the
# large one), which is what issue 6's 20 M events/s target is about.
#
#   bench/throughput.sh [-n RUNS] [--steps SMALL,LARGE] [--threads T] BUILD_DIR
#   bench/throughput.sh -n 5 build
#
#   -n RUNS          timed reads of each trace, alternating (default 5)
#   --steps S,L      alloc_storm steps of the small and the large trace
#                    (default 40,400: about 1.6 M and 16 M events)
#   --threads T      alloc_storm threads (default 1)
#
# Times are wall clock (/usr/bin/time %e), medians; each read writes its text
# report to a file. Events: mlmem = the report's summary.events; heaptrack =
# allocations + frees (heaptrack_print's "calls to allocation functions",
# twice, less the recording's "leaked allocations").
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0" >&2; exit 2; }
die() { echo "throughput: $*" >&2; exit 1; }

runs=5
steps="40,400"
threads=1
build=""
while [ $# -gt 0 ]; do
    case "$1" in
    -n) runs="${2:?}"; shift 2 ;;
    --steps) steps="${2:?}"; shift 2 ;;
    --threads) threads="${2:?}"; shift 2 ;;
    -h | --help) usage ;;
    -*) echo "throughput: unknown option $1" >&2; usage ;;
    *) [ -z "$build" ] || usage; build="$1"; shift ;;
    esac
done
[ -n "$build" ] || usage
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "-n wants a positive number, not '$runs'"
[[ "$steps" =~ ^[1-9][0-9]*,[1-9][0-9]*$ ]] || die "--steps wants SMALL,LARGE, not '$steps'"
[[ "$threads" =~ ^[1-9][0-9]?$ ]] || die "--threads wants 1..64, not '$threads'"
small="${steps%,*}"
large="${steps#*,}"
[ "$small" -lt "$large" ] || die "--steps: SMALL must be less than LARGE"
mlmem="$build/bin/mlmem"
storm="$build/bench/alloc_storm"
[ -x "$mlmem" ] && [ -x "$storm" ] || die "$mlmem or $storm not built (cmake --build $build)"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (bash bench/install-bench-deps.sh)"
heaptrack=1
command -v heaptrack >/dev/null && command -v heaptrack_print >/dev/null || heaptrack=0

tmp="$(mktemp -d "${TMPDIR:-/tmp}/mlmem-throughput.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

json_events() {
    jq -r '.summary.events' "$1" 2>/dev/null \
        || /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["events"])' "$1"
}

# record SIZE STEPS: the two traces of the storm at that size, and their
# event counts in $tmp/SIZE.{mlmem,heaptrack}.events.
record() {
    local size="$1" n="$2"
    # MLMEM_FOLD=0: the shim sends every event instead of folding the
    # storm's temporaries into counts (preload/fold.c), so that the reader
    # is timed on one record per allocation and free, as heaptrack_print is.
    MLMEM_FOLD=0 "$mlmem" record -o "$tmp/$size.zst" -- "$storm" "$n" "$threads" >"$tmp/log" 2>&1 \
        || { cat "$tmp/log" >&2; die "mlmem record failed"; }
    "$mlmem" report "$tmp/$size.zst" --json "$tmp/$size.json" >/dev/null 2>"$tmp/log" \
        || { cat "$tmp/log" >&2; die "mlmem report --json failed"; }
    json_events "$tmp/$size.json" >"$tmp/$size.mlmem.events"
    if [ "$heaptrack" = 1 ]; then
        heaptrack -o "$tmp/ht-$size" "$storm" "$n" "$threads" >"$tmp/ht-$size.log" 2>&1 \
            || { cat "$tmp/ht-$size.log" >&2; die "heaptrack failed"; }
        local f
        f="$(ls "$tmp/ht-$size".zst "$tmp/ht-$size".gz 2>/dev/null | head -1 || true)"
        [ -n "$f" ] || die "heaptrack wrote no trace"
        mv "$f" "$tmp/$size.ht${f##*"ht-$size"}"
        heaptrack_print "$tmp/$size".ht.* >"$tmp/hp" 2>/dev/null || die "heaptrack_print failed"
        local allocs leaked
        allocs=$(sed -n 's/^calls to allocation functions: \([0-9]*\).*/\1/p' "$tmp/hp" | head -1)
        leaked=$(awk -F: '/^[[:space:]]*leaked allocations:/ {gsub(/[[:space:]]/, "", $2); print $2; exit}' "$tmp/ht-$size.log")
        [ -n "$allocs" ] || die "no allocation count in heaptrack_print's output"
        echo $((2 * allocs - ${leaked:-0})) >"$tmp/$size.heaptrack.events"
    fi
}
record small "$small"
record large "$large"

# timed READER SIZE: one read; appends "wall rss_kb" to $tmp/READER.SIZE.
timed() {
    local reader="$1" size="$2" cmd
    case "$reader" in
    mlmem) cmd=("$mlmem" report "$tmp/$size.zst") ;;
    heaptrack) cmd=(heaptrack_print "$tmp/$size".ht.*) ;;
    esac
    /usr/bin/time -f "%e %M" -o "$tmp/one" "${cmd[@]}" >"$tmp/out" 2>&1 \
        || { tail -20 "$tmp/out" >&2; die "${cmd[*]} failed"; }
    tail -1 "$tmp/one" >>"$tmp/$reader.$size"
}
readers=(mlmem)
[ "$heaptrack" = 1 ] && readers+=(heaptrack)
for ((i = 0; i < runs; i++)); do
    for r in "${readers[@]}"; do
        timed "$r" small
        timed "$r" large
    done
done

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { awk -v c="$2" '{print $c}' "$1" | median; }

echo "analyzer throughput: alloc_storm $small and $large steps, $threads thread(s)  ($runs reads each, medians; $(nproc) cores; $(date -u +%Y-%m-%d))"
echo
echo "| reader | events small | read s | events large | read s | M events/s (large) | marginal M events/s | trace B/event (large) | read RSS MiB (small, large) |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in "${readers[@]}"; do
    es=$(cat "$tmp/small.$r.events"); el=$(cat "$tmp/large.$r.events")
    ws=$(col "$tmp/$r.small" 1); wl=$(col "$tmp/$r.large" 1)
    ms=$(col "$tmp/$r.small" 2); ml=$(col "$tmp/$r.large" 2)
    case "$r" in
    mlmem) name="mlmem report"; bytes=$(stat -c %s "$tmp/large.zst") ;;
    heaptrack) name="heaptrack_print"; bytes=$(stat -c %s "$tmp"/large.ht.*) ;;
    esac
    awk -v n="$name" -v es="$es" -v el="$el" -v ws="$ws" -v wl="$wl" -v ms="$ms" -v ml="$ml" -v b="$bytes" 'BEGIN {
        rate = (wl > 0) ? sprintf("%.1f", el / wl / 1e6) : "-"
        marg = (wl > ws) ? sprintf("%.1f", (el - es) / (wl - ws) / 1e6) : "-"
        printf "| %s | %d | %.2f | %d | %.2f | %s | %s | %.2f | %.1f, %.1f |\n",
            n, es, ws, el, wl, rate, marg, b / el, ms / 1024, ml / 1024
    }'
done
echo
echo "marginal = (events large - events small) / (read s large - read s small): the per-event speed"
echo "without the fixed cost of a read (start-up, symbols, the report). /usr/bin/time has 10 ms steps."
[ "$heaptrack" = 1 ] || echo "heaptrack: not installed, left out (bash bench/install-bench-deps.sh)"
