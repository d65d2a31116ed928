#!/usr/bin/env bash
# Installs the Debian packages ckpt builds and tests with, if any are missing.
# Safe to run repeatedly; uses sudo when not root. Usage: install-deps.sh [--browser]
set -euo pipefail

packages=(
  pkg-config          # finds libhdf5 and OpenBLAS for SwiftPM
  libhdf5-dev         # HDF5 reader/writer (Sources/CHDF5)
  hdf5-tools          # h5dump, used by the HDF5 interop tests
  zlib1g-dev          # deflate for .ckz and .npz
  libdeflate-dev      # fast whole-buffer deflate for .ckz
  libopenblas-dev     # matrix products in the reference forward pass
  zstd                # a peer in the compression benchmark
  libonig-dev         # Oniguruma, the regex engine of the tokenizers (Sources/COniguruma)
)

# --browser: also Debian's chromium, which renders the verify HTML report in a screenshot test
# (Tests/CLITests/HTMLReportTests.swift; skipped without it). CI passes it: installing it took
# 192 s here (apt-get update and ~60 packages on a busy 2-core machine); `make demo` does not need it.
if [ "${1:-}" = "--browser" ]; then
  packages+=(chromium)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A Python that can make virtual environments, for the interop tests.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3 python3-venv python3-pip)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
