#!/usr/bin/env bash
# Installs the Debian packages mlmem needs to build, test and run its demo.
# Only what is missing is installed; safe to run again. Needs root (or sudo).
# Waits up to 10 minutes for another apt-get or dpkg to finish.
#
#   scripts/install-deps.sh [--tests] [EXTRA_PACKAGE...]
#
# --tests adds what only the test suite needs: PyTorch (python3-torch, about
# 830 MB with its dependencies) for the attribution test on a real PyTorch
# training script. Extra packages are installed too (bench/install-bench-deps.sh).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libunwind-dev libdw-dev libelf-dev libjansson-dev libncurses-dev libcmocka-dev
  libzstd-dev zlib1g-dev libopenblas-dev
  libc6-dbg                                 # file:line for libc's frames in reports
  dataset-fashion-mnist
  tmux
  clang libclang-rt-14-dev
  libjemalloc-dev libgoogle-perftools-dev   # programs with their own allocator (tests)
  valgrind                                  # the shim under helgrind (tests)
  time                                      # /usr/bin/time, for bench/ (smoke-tested)
)
for arg in "$@"; do
  case "$arg" in
  --tests) packages+=(python3-torch python3-numpy) ;;
  -*) echo "install-deps: unknown option $arg" >&2; exit 2 ;;
  *) packages+=("$arg") ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install-deps: installing ${missing[*]}" >&2
apt=($sudo apt-get -o DPkg::Lock::Timeout=600)
"${apt[@]}" update -qq
DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
