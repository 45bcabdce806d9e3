#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: install what is missing,
# build, and run every test with ctest (unit, end-to-end, trainer).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure --timeout 900 "$@"
