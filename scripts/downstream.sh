#!/usr/bin/env bash
# scripts/downstream.sh [BUILD_DIR | CMAKE_ARGS...]
#
# Installs tsd into a temporary prefix with `cmake --install`, checks the
# install tree and the symbols exported by libtsd.so, then builds the
# downstream C project of tests/downstream/ against it four ways -- CMake
# package and pkg-config, each against libtsd.so and libtsd.a -- and runs each
# build on tests/fixtures/small.pth. Exits non-zero on any failure; the last
# line is a one-line summary.
#
#   BUILD_DIR    an already configured build tree of tsd (e.g. build/, build-c/):
#                its libraries are (re)built and installed from it;
#   CMAKE_ARGS   otherwise a fresh build in a temporary directory, configured
#                with these arguments (default: -DTSD_WITH_TORCH=OFF).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
jobs=${TSD_JOBS:-2}
work=$(mktemp -d "${TMPDIR:-/tmp}/tsd-downstream.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
fails=0
passed=()
failed=()

note() { printf '== %s\n' "$*"; }
fail() { printf "FAIL: %s\n" "$*"; fails=$((fails + 1)); failed+=("$1"); }

# --- 1. build and install -----------------------------------------------------
if [[ $# -ge 1 && -f "$1/CMakeCache.txt" ]]; then
  build=$(cd "$1" && pwd)
  note "installing from $build"
else
  build=$work/build
  cmake_args=("$@")
  [[ ${#cmake_args[@]} -eq 0 ]] && cmake_args=(-DTSD_WITH_TORCH=OFF)
  note "configuring a fresh build: ${cmake_args[*]}"
  if ! cmake -S "$here" -B "$build" -DTSD_BUILD_TESTS=OFF -DTSD_BUILD_SAMPLES=OFF \
       -DTSD_BUILD_BENCH=OFF "${cmake_args[@]}" >"$work/configure.log" 2>&1; then
    cat "$work/configure.log" >&2
    echo "downstream: FAILED (configure)"; exit 1
  fi
fi
targets=(tsd tsd_shared)
grep -q '^TSD_BUILD_CLI:BOOL=ON' "$build/CMakeCache.txt" && targets+=(tsd_cli)
if ! cmake --build "$build" -j"$jobs" --target "${targets[@]}" >"$work/build.log" 2>&1; then
  tail -40 "$work/build.log" >&2
  echo "downstream: FAILED (building the library)"; exit 1
fi
if ! cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1; then
  cat "$work/install.log" >&2
  echo "downstream: FAILED (cmake --install)"; exit 1
fi
with_torch=$(sed -n 's/^has_torch=//p' "$prefix"/lib*/pkgconfig/tsd.pc 2>/dev/null | head -1)

# --- 2. the install tree --------------------------------------------------------
note "install tree"
(cd "$prefix" && find . -type f -o -type l | sort | sed 's/^\.\//  /')
libdir=$(dirname "$(find "$prefix" -name tsd.pc -path '*/pkgconfig/*' | head -1)")
libdir=${libdir%/pkgconfig}
for f in include/tsd.h; do
  [[ -f $prefix/$f ]] || fail "missing $f"
done
headers=$(find "$prefix/include" -type f | wc -l)
[[ $headers -eq 1 ]] || fail "include/ holds $headers files, expected tsd.h alone"
for f in libtsd.a libtsd.so pkgconfig/tsd.pc cmake/tsd/tsdConfig.cmake \
         cmake/tsd/tsdConfigVersion.cmake cmake/tsd/tsdTargets.cmake; do
  [[ -e $libdir/$f ]] || fail "missing ${libdir#$prefix/}/$f"
done
so=$(readlink -f "$libdir/libtsd.so")
soname=$(readelf -d "$so" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [[ -z $soname || ! -e $libdir/$soname ]]; then
  fail "libtsd.so has no SONAME (or no $soname link)"
else
  echo "  SONAME $soname -> $(basename "$so")"
fi

# --- 3. the exported symbols: the TSD_API functions of tsd.h and nothing else ---
note "symbols exported by libtsd.so"
nm -D --defined-only "$so" | awk '{print $NF}' | sed 's/@.*//' | sort -u >"$work/exported"
# The function name is the identifier before the '(' (the return type may be a
# tsd_ type too, and a declaration may span lines).
perl -0777 -ne 'print "$1\n" while /TSD_API[^;(]*?\b(tsd_\w+)\s*\(/g' \
  "$prefix/include/tsd.h" | sort -u >"$work/declared"
bad=$(grep -v '^tsd_[a-z0-9]' "$work/exported" || true)
internal=$(grep '^tsd__' "$work/exported" || true)
[[ -z $bad ]] || fail "libtsd.so exports symbols outside tsd_*: $(echo $bad | head -c 400)"
[[ -z $internal ]] || fail "libtsd.so exports internal tsd__ symbols: $(echo $internal | head -c 400)"
extra=$(comm -23 "$work/exported" "$work/declared" | grep -v '^tsd__' | grep '^tsd_' || true)
missing=$(comm -13 "$work/exported" "$work/declared" || true)
[[ -z $extra ]] || fail "exported but not declared TSD_API in tsd.h: $(echo $extra)"
[[ -z $missing ]] || fail "declared TSD_API in tsd.h but not in libtsd.so: $(echo $missing)"
nexported=$(wc -l <"$work/exported")
echo "  $nexported symbols, all tsd_*, $(wc -l <"$work/declared") declared TSD_API"
# Only the NEEDED entries: an address such as "0xc10" elsewhere in the
# dynamic section is not a dependency.
if [[ $with_torch != ON ]] && readelf -d "$so" | grep NEEDED | grep -qiE 'torch|c10'; then
  fail "the pure-C libtsd.so needs LibTorch"
fi

# --- 4. the downstream project, four ways ---------------------------------------
fixture=$here/tests/fixtures/small.pth
# The keys torch.save wrote, in order, from the fixture's oracle file.
cut -f1 "$here/tests/fixtures/small.expect" >"$work/keys.expect"
expected_count=$(wc -l <"$work/keys.expect")

# check NAME BINARY static|shared: links the right library, runs, prints the keys.
check() {
  local name=$1 bin=$2 kind=$3
  if [[ ! -x $bin ]]; then fail "$name" "no binary"; return; fi
  local needs_tsd=0
  readelf -d "$bin" | grep -q 'NEEDED.*\[libtsd\.so' && needs_tsd=1
  if [[ $kind == shared && $needs_tsd -eq 0 ]]; then
    fail "$name"; echo "  $name: does not load libtsd.so" ; return
  fi
  if [[ $kind == static && $needs_tsd -eq 1 ]]; then
    fail "$name"; echo "  $name: loads libtsd.so instead of linking libtsd.a" ; return
  fi
  local out
  if ! out=$(env -u LD_LIBRARY_PATH "$bin" "$fixture" 2>&1); then
    fail "$name"; printf '  %s: run failed:\n%s\n' "$name" "$out" ; return
  fi
  local first count
  first=$(head -1 <<<"$out")
  count=$(sed -n 's/^.*: \([0-9]*\) entries.*/\1/p' <<<"$first")
  if [[ $count != "$expected_count" ]] || ! diff -q <(tail -n +2 <<<"$out") "$work/keys.expect" >/dev/null; then
    fail "$name"; printf '  %s: wrong output (expected %s entries):\n%s\n' "$name" "$expected_count" "$out"
    return
  fi
  echo "  $name: ${first#$here/}"
  passed+=("$name")
}

note "CMake package: find_package(tsd CONFIG) + tsd::tsd"
for kind in shared static; do
  b=$work/cmake-$kind
  use_static=OFF; [[ $kind == static ]] && use_static=ON
  if cmake -S "$here/tests/downstream" -B "$b" -DCMAKE_PREFIX_PATH="$prefix" \
       -Dtsd_USE_STATIC=$use_static >"$b.log" 2>&1 &&
     cmake --build "$b" -j"$jobs" >>"$b.log" 2>&1; then
    check "cmake-$kind" "$b/app" $kind
  else
    fail "cmake-$kind"; tail -30 "$b.log"
  fi
done

note "pkg-config: pkg-config --cflags --libs [--static] tsd"
export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
if ! pkg-config --exists tsd; then
  fail "pkg-config"; echo "  pkg-config does not find tsd.pc"
else
  echo "  --cflags --libs:          $(pkg-config --cflags --libs tsd)"
  echo "  --cflags --libs --static: $(pkg-config --cflags --libs --static tsd)"
  for kind in shared static; do
    b=$work/pc-$kind
    static=0; [[ $kind == static ]] && static=1
    if make -s -C "$here/tests/downstream" STATIC=$static OUT="$b" >"$b.log" 2>&1; then
      check "pkg-config-$kind" "$b" $kind
    else
      fail "pkg-config-$kind"; cat "$b.log"
    fi
  done
fi

# --- 5. summary -------------------------------------------------------------------
torch_note="pure C"; [[ $with_torch == ON ]] && torch_note="with LibTorch"
if [[ $fails -eq 0 ]]; then
  echo "downstream: OK ($torch_note): ${#passed[@]}/4 builds ran (${passed[*]}); libtsd.so ($soname) exports $nexported symbols, all tsd_*"
  exit 0
fi
echo "downstream: FAILED ($torch_note): $fails failure(s): ${failed[*]}; passed: ${passed[*]:-none}"
exit 1
