#!/usr/bin/env bash
# scripts/cross.sh PRESET [build|unit|parity|all] — the cross builds of
# CMakePresets.json (windows-x64, linux-arm64, linux-s390x), tested on this
# machine under their emulators (Wine, qemu-user):
#   build   cmake --preset PRESET -B build-PRESET && cmake --build build-PRESET
#   unit    ctest -L unit-emulated: the unit tests that can run under the emulator
#           (tests/emulated.cmake names the others and why)
#   parity  ctest -L emulated-parity: the PyTorch parity suite, Python torch
#           running natively and calling the cross-built tsd through its
#           emulator (build-PRESET/tsd-emu): by default every case of the
#           spec target (Parity.EagerModelSpec); TSD_CROSS_PARITY=all runs
#           every parity script
# Wine gets a prefix of its own (build-windows-x64/wine), set up on first use,
# so a fresh machine needs nothing but the packages (scripts/deps.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
preset=${1:?usage: cross.sh PRESET [build|unit|parity|all]}
phase=${2:-all}
dir=build-$preset
export WINEDEBUG=-all
if [ "$preset" = windows-x64 ]; then
  export WINEPREFIX=${TSD_WINEPREFIX:-$here/$dir/wine}
  export WINEDLLOVERRIDES="mscoree,mshtml="  # no Mono/Gecko install dialogs
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    mkdir -p "$WINEPREFIX"
    echo "cross: initialising the Wine prefix $WINEPREFIX"
    DISPLAY= /usr/lib/wine/wine64 wineboot --init >/dev/null 2>&1 || true
    /usr/lib/wine/wineserver -w || true
    [ -f "$WINEPREFIX/system.reg" ] || { echo "cross: wineboot failed" >&2; exit 1; }
  fi
fi
jobs=$(nproc)
run_build() {
  # one parity work directory for the three presets: Python generates the
  # models and checkpoints once (they are cached by content)
  cmake --preset "$preset" -B "$dir" -DTSD_PARITY_WORK_ROOT="$here/build-cross-parity" -DTSD_WERROR=ON >/dev/null
  cmake --build "$dir" -j"$jobs"
}
run_unit() {
  # --repeat until-pass:2: every test is its own emulated process, and under
  # load an emulator's process start itself can fail (Wine's cmd.exe
  # answering 9009 "not found" for tsd.exe, a test process that never
  # starts): a test must fail twice to count. Native runs never retry.
  ctest --test-dir "$dir" --no-tests=error -L '^unit-emulated$' -j"$jobs" --output-on-failure --timeout 900 \
    --repeat until-pass:2
}
run_parity() {
  # Default: the spec target's every case (run_parity.py --targets eager,
  # Parity.EagerModelSpec); TSD_CROSS_PARITY=all adds the formats, remap,
  # objects and ts_state scripts (each several minutes more under qemu).
  local only=(-R '^Parity\.EagerModelSpec$')
  [ "${TSD_CROSS_PARITY:-}" = all ] && only=()
  ctest --test-dir "$dir" --no-tests=error -L '^emulated-parity$' "${only[@]}" -j"$jobs" \
    --output-on-failure --timeout 3000
}
case $phase in
  build) run_build ;;
  unit) run_unit ;;
  parity) run_parity ;;
  all) run_build && run_unit && run_parity ;;
  *) echo "cross.sh: unknown phase $phase" >&2; exit 2 ;;
esac
