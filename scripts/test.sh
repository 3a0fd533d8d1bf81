#!/usr/bin/env bash
# The whole test suite from a fresh Debian machine: installs the packages,
# builds tsd twice (with LibTorch, and pure C with -DTSD_WITH_TORCH=OFF) and
# runs every test of both builds (unit, PyTorch parity, the seed sample), then
# the robustness runs: ASan+UBSan and TSan, a bounded fuzzing run of every
# target, valgrind on the CLI, and the installed-package downstream build;
# then the cross builds (Windows x64, Linux arm64 and s390x) under their
# emulators.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/deps.sh || exit 1
failed=()
passed=0
# Free disk space, in MiB, where the builds are: printed with every step, so
# a step that fails for want of disk says so (CI's run of 2026-12-01 failed
# its cross builds with "Cannot create directory": the disk was full).
free_mib() { df -Pm . | awk 'NR == 2 { print $4 }'; }
step() { # name command...
  local name=$1; shift
  echo "=== $name"
  local t0=$SECONDS
  if "$@"; then echo "=== $name: ok ($((SECONDS - t0)) s, $(free_mib) MiB free)"; passed=$((passed + 1))
  else echo "=== $name: FAILED ($((SECONDS - t0)) s, $(free_mib) MiB free)"; failed+=("$name"); fi
}
echo "=== disk: $(free_mib) MiB free in $here"

step "build with LibTorch (build/, warnings are errors)" bash scripts/build.sh build -DTSD_WERROR=ON
step "ctest, LibTorch build" bash -c 'cd build && ctest --no-tests=error --output-on-failure -j2 --timeout 3000'
step "pure-C build (build-c/, -DTSD_WITH_TORCH=OFF, warnings are errors)" bash scripts/build.sh build-c -DTSD_WITH_TORCH=OFF -DTSD_WERROR=ON
step "pure-C build links no LibTorch" bash -c '! ldd build-c/tsd | grep -qi torch'
step "ctest, pure-C build" bash -c 'cd build-c && ctest --no-tests=error --output-on-failure -j2 --timeout 3000'
step "sanitizers (ASan+UBSan unit tests, TSan threads)" bash scripts/sanitize.sh
step "fuzzing (${TSD_FUZZ_SECONDS:-20} s per target)" bash scripts/fuzz.sh "${TSD_FUZZ_SECONDS:-20}"
step "valgrind on the CLI" bash scripts/valgrind_cli.sh build-c
step "valgrind on the shim's corrupt TorchScript archives" bash scripts/valgrind_shim.sh build
step "downstream C project against the installed package (LibTorch build)" bash scripts/downstream.sh build
step "downstream C project against the installed package (pure C)" bash scripts/downstream.sh build-c

# The other platforms (CMakePresets.json): cross-built, their unit tests run
# under Wine / qemu-user, and the PyTorch parity suite through the emulated
# tsd (Python torch native). scripts/cross.sh; README "Platforms".
for p in ${TSD_CROSS_PRESETS:-windows-x64 linux-arm64 linux-s390x}; do
  step "cross build $p (build-$p/)" bash scripts/cross.sh "$p" build
  step "cross $p: unit tests under its emulator (ctest -L unit-emulated)" bash scripts/cross.sh "$p" unit
  step "cross $p: PyTorch parity through the emulated tsd" bash scripts/cross.sh "$p" parity
done
# the three presets' shared parity work directory (clean_run.py --keep)
[ -n "${TSD_KEEP_WORK:-}" ] || rm -rf build-cross-parity

[ ${#failed[@]} -eq 0 ] || echo "FAILED steps: ${failed[*]}"
echo "steps: $passed passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
