#!/usr/bin/env bash
# The whole test suite from a fresh Debian machine: installs the packages,
# builds tsd twice (with LibTorch, and pure C with -DTSD_WITH_TORCH=OFF) and
# runs every test of both builds, the PyTorch parity suite included.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/deps.sh
status=0

echo "== build with LibTorch (build/)"
bash scripts/build.sh build
echo "== tests with LibTorch"
(cd build && ctest --output-on-failure -j2 --timeout 3000) || status=1

echo "== pure-C build (build-c/, -DTSD_WITH_TORCH=OFF)"
bash scripts/build.sh build-c -DTSD_WITH_TORCH=OFF
if ldd build-c/tsd | grep -qi torch; then
  echo "pure-C build links LibTorch"; status=1
fi
echo "== tests of the pure-C build"
(cd build-c && ctest --output-on-failure -j2 --timeout 3000) || status=1

exit $status
