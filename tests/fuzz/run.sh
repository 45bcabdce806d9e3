#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (ASan + UBSan) and runs each on
# its seed corpus (tests/fuzz/corpus/<name>) plus what it finds (kept in a
# scratch copy, not in the repository).
#   tests/fuzz/run.sh BUILD_DIR [RUNS]      a fixed number of inputs, fixed
#                                           seed: the same run every time (CI)
#   tests/fuzz/run.sh BUILD_DIR 0 SECONDS   fuzz for SECONDS, random seed
#   ... [NAME...]                           only these harnesses (default:
#                                           stream trace rules report idx)
# Exits non-zero if a harness crashes, leaks, hangs or trips a sanitizer;
# keep a crashing input in the corpus as a regression seed once fixed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
out="${1:?usage: run.sh BUILD_DIR [RUNS] [SECONDS] [NAME...]}/fuzz"
runs="${2:-3000}"
secs="${3:-0}"
shift $(($# < 3 ? $# : 3))
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(stream trace rules report idx)
if [ "$runs" -gt 0 ]; then
    budget=(-runs="$runs" -seed=1)
else
    budget=(-max_total_time="$secs")
fi
mkdir -p "$out"

if ! command -v clang >/dev/null; then
    echo "fuzz: clang is not installed (scripts/install-deps.sh installs it)" >&2
    exit 1
fi

# Every analyzer source but the command and the launcher.
profiler=()
for f in "$src"/profiler/*.c; do
    case "$(basename "$f")" in mlmem.c|launch.c) ;; *) profiler+=("$f") ;; esac
done
sanitize=(-fno-sanitize-recover=undefined -g -O1
          -I"$src" -I"$src/include" -I"$src/profiler" -I"$src/reports" -I"$src/trainer")

# The readers' sources, compiled once into an archive per part (several
# harnesses share the analyzer's), instrumented for the fuzzer but without
# its main.
archive() {
    local lib="$out/lib$1.a" objs=() f
    shift
    mkdir -p "$out/obj"
    for f in "$@"; do
        objs+=("$out/obj/$(basename "$(dirname "$f")")_$(basename "$f" .c).o")
        clang -c -fsanitize=fuzzer-no-link,address,undefined "${sanitize[@]}" "$f" -o "${objs[-1]}"
    done
    rm -f "$lib"
    ar rcs "$lib" "${objs[@]}"
}
built=" "
need() { # need PART: builds the archive of PART on first use
    case "$built" in *" $1 "*) return ;; esac
    case "$1" in
    profiler) archive profiler "${profiler[@]}" ;;
    reports) archive reports "$src"/reports/*.c ;;
    # Of the trainer, the reader and its accountant only (the rest needs
    # _Float16, which clang 14 lacks on x86).
    trainer) archive trainer "$src/trainer/memory.c" "$src/trainer/data.c" ;;
    esac
    built="$built$1 "
}

for name in "${names[@]}"; do
    case "$name" in
    stream|trace|rules)
        need profiler
        parts=("$out/libprofiler.a")
        libs=($(pkg-config --libs libdw libzstd) -lstdc++) ;;
    report)
        need profiler
        need reports
        parts=("$out/libreports.a" "$out/libprofiler.a")
        libs=($(pkg-config --libs libdw libzstd jansson) -lstdc++) ;;
    idx)
        need trainer
        parts=("$out/libtrainer.a")
        libs=($(pkg-config --libs zlib) -lm) ;;
    *)
        echo "fuzz: no harness named $name" >&2
        exit 2 ;;
    esac
    clang -fsanitize=fuzzer,address,undefined "${sanitize[@]}" "$here/fuzz_$name.c" "${parts[@]}" \
        "${libs[@]}" -o "$out/fuzz_$name"
    work="$out/corpus_$name"
    rm -rf "$work"
    mkdir -p "$work"
    cp "$here/corpus/$name/"* "$work/" 2>/dev/null || true
    echo "fuzz: $name (${budget[*]}) on $(ls "$work" | wc -l) seeds" >&2
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        "$out/fuzz_$name" "${budget[@]}" -rss_limit_mb=2048 -timeout=10 \
        -max_len=65536 -print_final_stats=1 "$work" 2>"$out/fuzz_$name.log" || {
        tail -50 "$out/fuzz_$name.log" >&2
        exit 1
    }
    grep -E "stat::number_of_executed_units|cov:" "$out/fuzz_$name.log" | tail -2 >&2
done
echo "fuzz: no crashes"
