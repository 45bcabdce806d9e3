#!/usr/bin/env bash
# The benchmark scripts still run, on tiny inputs (numbers are not checked:
# they come from real runs, docs/benchmarks.md). Usage: bench_smoke.sh BUILD_DIR
set -euo pipefail
build="$1"
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

bash "$here/bench/overhead.sh" -n 1 --tools mlmem,mlmem-record "$build" -- \
    "$build/bench/alloc_storm" 4 1 >"$out"
for row in '| plain |' '| mlmem |' '| mlmem-record |'; do
    grep -qF "$row" "$out" || { cat "$out"; echo "bench_smoke: overhead.sh printed no '$row' row" >&2; exit 1; }
done

bash "$here/bench/throughput.sh" -n 1 --steps 2,4 "$build" >"$out"
grep -qF '| mlmem report |' "$out" \
    || { cat "$out"; echo "bench_smoke: throughput.sh printed no mlmem row" >&2; exit 1; }
echo "bench_smoke: overhead.sh and throughput.sh ran"
