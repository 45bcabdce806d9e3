#!/usr/bin/env bash
# The shim's threads under Valgrind's helgrind: the checking build of the
# shim (libmlmem_preload_helgrind.so, its release/acquire pairs annotated)
# runs real multi-threaded programs under mlmem; helgrind must report no
# race (--error-exitcode), and the report must still hold every allocation.
#   e2e_threads: 8 threads freeing each other's blocks (8000 + main's)
#   e2e_handoff: 4 threads passing the sequence counter ~40 times
# Usage: shim_helgrind.sh BUILD_DIR
set -euo pipefail
build="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
export MLMEM_PRELOAD="$build/lib/libmlmem_preload_helgrind.so"
# Helgrind runs one thread at a time, 50-100x slower: a thread waiting for
# ring room can wait longer than the default 500 ms while the other threads
# hold Valgrind's lock, and would then drop events. The policy is about
# time; give it time in proportion.
export MLMEM_BLOCK_MS=10000

check() {
    local prog="$1" want="$2"
    if ! "$build/bin/mlmem" run -q --no-trace --json "$dir/$prog.json" -- \
        valgrind --tool=helgrind --soname-synonyms=somalloc=nouserintercepts \
        --suppressions="$(dirname "$0")/shim_helgrind.supp" \
        --error-exitcode=99 "$build/bin/e2e/$prog" >"$dir/$prog.log" 2>&1; then
        echo "shim_helgrind: $prog: helgrind reported races (or the run failed):" >&2
        grep -E 'Possible data race|   at |  by |conflicts|ERROR SUMMARY' "$dir/$prog.log" | head -60 >&2
        exit 1
    fi
    local got
    got="$(grep -o '"total_allocations": *[0-9]*' "$dir/$prog.json" | head -1 | grep -o '[0-9]*$')"
    if [ "$got" -lt "$want" ]; then
        echo "shim_helgrind: $prog: $got allocations recorded, expected at least $want" >&2
        exit 1
    fi
    echo "shim_helgrind: $prog: no races, $got allocations recorded"
}

check e2e_threads 8000
check e2e_handoff $((4 * (6 * 6001 + 20000)))
