#!/usr/bin/env bash
# Bounded libFuzzer run of every reader entry point (tests/fuzz/).
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 30)
# Builds the fuzz targets in build-fuzz/ with clang (the whole library
# instrumented, ASan + UBSan), writes seed corpora from real checkpoints with
# Python torch (tests/fuzz/make_seeds.py; the committed malformed corpus is a
# seed too), runs each target for the given time and prints its executions.
# A crash, leak, timeout or OOM file is copied to tests/malformed/regressions/
# (test_malformed_portable and test_malformed then check it; fuzz_sharded's to regressions_sharded/,
# which test_sharded replays). Exits non-zero on any finding.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
secs=${1:-30}
bdir=$here/build-fuzz
targets="zip pickle legacy load safetensors sharded write layout"

if ! command -v clang >/dev/null; then
  echo "fuzz: FAILED: clang is needed for libFuzzer"; exit 2
fi
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
mkdir -p "$bdir"
if ! { CC=clang CXX=clang++ cmake -S "$here" -B "$bdir" -DTSD_WITH_TORCH=OFF \
      -DTSD_BUILD_FUZZERS=ON -DTSD_BUILD_CLI=ON -DTSD_BUILD_SAMPLES=OFF \
      -DTSD_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      "-DCMAKE_C_FLAGS=$san" "-DCMAKE_CXX_FLAGS=$san" >"$bdir/build.log" 2>&1 &&
    cmake --build "$bdir" -j2 $(for t in $targets; do echo --target fuzz_$t; done) \
      >>"$bdir/build.log" 2>&1; }; then
  tail -30 "$bdir/build.log"; echo "fuzz: FAILED: build (see $bdir/build.log)"; exit 2
fi

seeds=$bdir/seeds
if [ ! -d "$seeds/zip" ] || [ ! -d "$seeds/sharded" ] || [ ! -d "$seeds/layout" ]; then
  (cd / && /usr/bin/python3 "$here/tests/fuzz/make_seeds.py" "$seeds") ||
    { echo "fuzz: FAILED: seed corpora (needs /usr/bin/python3 with torch)"; exit 2; }
fi
mkdir -p tests/malformed/regressions
status=0
summary=""
for t in $targets; do
  corpus=$bdir/corpus/$t art=$bdir/artifacts/$t/
  mkdir -p "$corpus" "$art"
  extra=("$seeds/$t")
  # TorchScript archives too: read as state dicts (torchscript_state.c),
  # their deflated code files through inflate.c
  case $t in zip|load) extra+=("$here/tests/malformed/cases"
                              "$here/tests/malformed/torchscript/cases") ;; esac
  # fuzz_write reads every format: the other targets' seeds
  [ "$t" = write ] && extra=("$seeds/load" "$seeds/safetensors")
  log=$bdir/fuzz_$t.log
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$bdir/tests/fuzz/fuzz_$t" "$corpus" "${extra[@]}" -max_total_time="$secs" \
      -rss_limit_mb=2048 -timeout=10 -max_len=1048576 -print_final_stats=1 \
      -artifact_prefix="$art" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  found=0
  # fuzz_sharded's inputs are index JSONs over its own shards:
  # test_sharded replays them from regressions_sharded/.
  dest=tests/malformed/regressions
  [ "$t" = sharded ] && dest=tests/malformed/regressions_sharded
  [ "$t" = layout ] && dest=tests/malformed/regressions_layout
  for f in "$art"*; do
    [ -e "$f" ] || continue
    found=$((found + 1))
    mkdir -p "$dest"
    out="$dest/fuzz_${t}-$(basename "$f")"
    cp "$f" "$out"
    # Store the bytes the target actually opened: fuzz_legacy forces byte 0
    # to 0x80, fuzz_safetensors byte 8 to '{'.
    size=$(stat -c %s "$out")
    if [ "$t" = legacy ] && [ "$size" -ge 1 ]; then
      printf '\x80' | dd of="$out" bs=1 seek=0 conv=notrunc status=none
    elif [ "$t" = safetensors ] && [ "$size" -ge 9 ]; then
      printf '{' | dd of="$out" bs=1 seek=8 conv=notrunc status=none
    fi
  done
  if [ $rc -ne 0 ] || [ $found -ne 0 ]; then
    status=1
    echo "fuzz_$t: FINDING (exit $rc, $found artifact(s) copied to tests/malformed/regressions/); log: $log"
    grep -m1 -A12 -E 'ERROR: |runtime error|deadly signal' "$log" || tail -20 "$log"
  fi
  echo "fuzz_$t: ${execs:-0} executions in ${secs}s, $found crash(es)"
  summary="$summary fuzz_$t=${execs:-0}"
done
# The LibTorch shim's archive path: its own build (LibTorch, the shim
# instrumented too), inputs are data.pkl of a TorchScript archive, seeded
# with those of the corrupt-archive corpus. TSD_FUZZ_TORCH=0 skips it.
if [ "${TSD_FUZZ_TORCH:-1}" != 0 ]; then
  tbdir=$here/build-fuzz-torch t=torchscript
  if ! { CC=clang CXX=clang++ cmake -S "$here" -B "$tbdir" -DTSD_WITH_TORCH=ON \
        -DTSD_BUILD_FUZZERS=ON -DTSD_BUILD_CLI=ON -DTSD_BUILD_SAMPLES=OFF \
        -DTSD_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        "-DCMAKE_C_FLAGS=$san" "-DCMAKE_CXX_FLAGS=$san" >"$tbdir.log" 2>&1 &&
      cmake --build "$tbdir" -j2 --target fuzz_$t >>"$tbdir.log" 2>&1; }; then
    tail -30 "$tbdir.log"; echo "fuzz_$t: FAILED: build (see $tbdir.log)"; status=1
  else
    corpus=$tbdir/corpus art=$tbdir/artifacts/ seeds=$tbdir/seeds
    mkdir -p "$corpus" "$art" "$seeds"
    /usr/bin/python3 - "$here/tests/malformed/torchscript/cases" "$seeds" <<'PY' ||
import os, sys, zipfile
src, dst = sys.argv[1:]
for f in sorted(os.listdir(src)):
    z = zipfile.ZipFile(os.path.join(src, f))
    for n in z.namelist():
        if n.endswith("/data.pkl"):
            open(os.path.join(dst, f + ".pkl"), "wb").write(z.read(n))
PY
      { echo "fuzz_$t: FAILED: seeds"; status=1; }
    log=$tbdir/fuzz_$t.log
    # LibTorch (not instrumented) keeps process-lifetime allocations of its
    # own: leak checking covers tsd's code in the other targets.
    ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      "$tbdir/tests/fuzz/fuzz_$t" "$corpus" "$seeds" -max_total_time="$secs" \
        -rss_limit_mb=4096 -timeout=30 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$art" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    found=$(find "$art" -type f | wc -l)
    if [ $rc -ne 0 ] || [ "$found" -ne 0 ]; then
      status=1
      # Inputs are data.pkl files: kept for a look, not replayed by a test.
      mkdir -p tests/malformed/torchscript/regressions
      cp "$art"* tests/malformed/torchscript/regressions/ 2>/dev/null
      echo "fuzz_$t: FINDING (exit $rc, $found artifact(s) copied to tests/malformed/torchscript/regressions/); log: $log"
      grep -m1 -A12 -E 'ERROR: |runtime error|deadly signal' "$log" || tail -20 "$log"
    fi
    echo "fuzz_$t: ${execs:-0} executions in ${secs}s, $found crash(es)"
    summary="$summary fuzz_$t=${execs:-0}"
  fi
fi

if [ $status -eq 0 ]; then
  echo "fuzz: OK, no crash ($summary executions)"
else
  echo "fuzz: FAILED ($summary executions)"
fi
exit $status
