#!/usr/bin/env bash
# The unit tests under sanitizers (pure-C build, no LibTorch):
#   build-asan/  -fsanitize=address,undefined, all of `ctest -L unit`
#   build-tsan/  -fsanitize=thread, test_threads, test_parallel_portable
#                (the split conversions), test_parallel and
#                test_views_portable (the device load's reading thread)
#   scripts/sanitize.sh [asan|tsan|all]     (default all)
# Uses clang if installed, else gcc. Exits non-zero on any finding and prints
# one summary line.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
what=${1:-all}
if command -v clang >/dev/null && command -v clang++ >/dev/null; then
  cc=clang cxx=clang++
else
  cc=gcc cxx=g++
fi
common=(-DTSD_WITH_TORCH=OFF -DTSD_BUILD_TESTS=ON -DTSD_BUILD_CLI=ON
        -DTSD_BUILD_SAMPLES=OFF -DTSD_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug)
status=0
summary=""

build() { # dir flags targets...
  local dir=$1 flags=$2
  shift 2
  mkdir -p "$dir"
  CC=$cc CXX=$cxx cmake -S "$here" -B "$dir" "${common[@]}" \
    "-DCMAKE_C_FLAGS=$flags" "-DCMAKE_CXX_FLAGS=$flags" \
    "-DCMAKE_EXE_LINKER_FLAGS=$flags" >"$dir/build.log" 2>&1 &&
    cmake --build "$dir" -j2 "$@" >>"$dir/build.log" 2>&1
}

if [ "$what" = all ] || [ "$what" = asan ]; then
  flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g"
  if build build-asan "$flags"; then
    log=build-asan/ctest.log
    (cd build-asan &&
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
      UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      ctest --no-tests=error -L unit -j2 --timeout 600 --output-on-failure) >"$log" 2>&1
    rc=$?
    line=$(grep -E 'tests passed' "$log" | tail -1)
    if [ $rc -ne 0 ]; then
      status=1
      grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY:|Failed|\*\*\*' "$log" | head -40
      echo "asan+ubsan: FAILED ($line; log: $here/$log)"
    else
      echo "asan+ubsan: OK ($line)"
    fi
    summary="$summary asan+ubsan:$([ $rc -eq 0 ] && echo ok || echo FAILED)"
  else
    status=1; tail -20 build-asan/build.log
    echo "asan+ubsan: FAILED to build (build-asan/build.log)"
    summary="$summary asan:BUILD-FAILED"
  fi
fi

if [ "$what" = all ] || [ "$what" = tsan ]; then
  flags="-fsanitize=thread -fno-omit-frame-pointer -O1 -g"
  if build build-tsan "$flags" --target test_threads --target test_parallel \
    --target test_parallel_portable --target test_views_portable; then
    tfail=0 passed=""
    for t in test_threads test_parallel_portable test_parallel test_views_portable; do
      log=build-tsan/$t.log
      TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        build-tsan/tests/$t >"$log" 2>&1
      rc=$?
      if [ $rc -ne 0 ] || grep -q 'WARNING: ThreadSanitizer' "$log"; then
        tfail=1
        grep -A20 -m2 'WARNING: ThreadSanitizer' "$log" | head -60
        grep -E '^\[  FAILED' "$log" | head
        echo "tsan: $t FAILED (log: $here/$log)"
      else
        passed="$passed $t: $(grep -E '^\[  PASSED' "$log")"
      fi
    done
    if [ $tfail -ne 0 ]; then
      status=1
      summary="$summary tsan:FAILED"
    else
      echo "tsan: OK ($passed)"
      summary="$summary tsan:ok"
    fi
  else
    status=1; tail -20 build-tsan/build.log
    echo "tsan: FAILED to build (build-tsan/build.log)"
    summary="$summary tsan:BUILD-FAILED"
  fi
fi

if [ $status -eq 0 ]; then echo "sanitize: OK ($summary )"; else echo "sanitize: FAILED ($summary )"; fi
exit $status
