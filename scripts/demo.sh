#!/usr/bin/env bash
# The main job on a fresh Debian machine: install what is missing, build,
# profile the reference trainer (one epoch of Fashion-MNIST) under mlmem and
# print the report. The trace and the JSON report are left in build/.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
./build/bin/mlmem run -o build/demo.zst --json build/demo-report.json -- \
    ./build/bin/mlmem-train --epochs 1 "$@"
