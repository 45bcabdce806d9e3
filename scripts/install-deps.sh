#!/usr/bin/env bash
# Installs the Debian packages mlmem needs to build, test and run its demo.
# Only what is missing is installed; safe to run again. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libunwind-dev libdw-dev libelf-dev libjansson-dev libncurses-dev libcmocka-dev
  libzstd-dev zlib1g-dev libopenblas-dev
  dataset-fashion-mnist
  tmux
  clang libclang-rt-14-dev
  libjemalloc-dev libgoogle-perftools-dev   # programs with their own allocator (tests)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
