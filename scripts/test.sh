#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: install what is missing,
# build, and run every test with ctest (unit, end-to-end, dashboard, trainer,
# accuracy, a short fuzzing run); then the analyzer's, the reports' and the
# dashboard's unit tests again under AddressSanitizer and UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh --tests
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
(cd build && ctest --output-on-failure --timeout 900 "$@")

# Sanitizers: the shim is never instrumented (it is preloaded into programs
# without the runtime), so the tests that run programs under it, the
# trainer's, the fuzzing run (its own sanitizers), helgrind's and the benchmark
# scripts' smoke run stay in the run above.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMLMEM_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
cd build-asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure --timeout 900 -E 'e2e|train|accuracy|fuzz|helgrind|bench'
