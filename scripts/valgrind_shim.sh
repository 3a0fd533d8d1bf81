#!/usr/bin/env bash
# The LibTorch shim under valgrind (invalid reads/writes, leaks) on the
# corrupt-TorchScript-archive corpus (tests/malformed/torchscript): every
# case opened as a model and as a checkpoint, and the valid ones read and
# loaded, in one process (LibTorch's start-up under valgrind costs most of a
# minute, so not one process per case); then test_ts_state_portable
# (TorchScript archives read without running them: the state reader and
# inflate.c).
#   scripts/valgrind_shim.sh [BUILD_DIR]      (default build/, a LibTorch build)
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bdir=${1:-$here/build}
t=$bdir/tests/test_shim
if [ ! -x "$t" ]; then echo "valgrind_shim: FAILED: no $t (needs the LibTorch build)"; exit 2; fi
if ! command -v valgrind >/dev/null; then echo "valgrind_shim: FAILED: valgrind not installed"; exit 2; fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
valgrind -q --suppressions="$here/scripts/valgrind_torch.supp" --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --error-exitcode=9 \
  "$t" --gtest_filter='Shim.CorruptArchive*' >"$log" 2>&1 &&
  valgrind -q --suppressions="$here/scripts/valgrind_torch.supp" --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --error-exitcode=9 \
  "$bdir/tests/test_ts_state_portable" >>"$log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
  grep -E '==[0-9]+==|FAILED|Failure' "$log" | head -40
  echo "valgrind_shim: FAILED (exit $rc$([ $rc -eq 9 ] && echo ', valgrind error'))"
  exit 1
fi
echo "valgrind_shim: OK ($(grep -c '^\[       OK \]' "$log") tests, no valgrind error, no leak)"
