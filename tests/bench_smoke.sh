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
# ab.py: the loop runs, and its interval is the order statistics that hold
# the median with 95% (for 31 rounds the 10th and 22nd smallest: binomial
# tables); too few rounds give none.
python3 "$here/bench/ab.py" 6 true true >"$out"
grep -qF '95% [1.000, 1.000]' "$out" \
    || { cat "$out"; echo "bench_smoke: ab.py printed no interval" >&2; exit 1; }
python3 - "$here/bench/ab.py" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ab", sys.argv[1])
ab = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ab)
got = (ab.median_interval(list(range(1, 32))), ab.median_interval([5, 1, 4, 2, 3]),
       ab.median_interval(list(range(1, 12))))
assert got == ((10, 22), None, (2, 10)), f"bench_smoke: ab.py's intervals {got}"
PY
echo "bench_smoke: overhead.sh, throughput.sh and ab.py ran"
