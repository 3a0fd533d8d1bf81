#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the benchmarks need.
# Idempotent: skips apt when all are present. Needs root (or sudo).
set -euo pipefail
PKGS=(build-essential cmake pkg-config zlib1g-dev googletest libgtest-dev
      libtorch-dev python3-torch python3-torchvision
      valgrind clang libclang-rt-14-dev doxygen
      # the cross builds (scripts/cross.sh, CMakePresets.json) and their
      # emulators; googletest's source is built for each target
      mingw-w64 wine64 qemu-user
      gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross
      gcc-s390x-linux-gnu g++-s390x-linux-gnu libc6-dev-s390x-cross)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
