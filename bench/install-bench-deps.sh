#!/usr/bin/env bash
# Installs the Debian packages the benchmark suite (bench/suite.sh) needs
# beyond mlmem's own: the peers it compares against (heaptrack, Valgrind),
# PyTorch for the Python workload, /usr/bin/time for the measurements and jq
# to read the JSON reports. Only what is missing is installed (through
# scripts/install-deps.sh); safe to run again. Needs root (or sudo).
set -euo pipefail
exec "$(dirname "$0")/../scripts/install-deps.sh" --tests time jq heaptrack valgrind
