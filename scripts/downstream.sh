#!/usr/bin/env bash
# scripts/downstream.sh [BUILD_DIR | CMAKE_ARGS...]
#
# Installs tsd into a temporary prefix with `cmake --install`, checks the
# install tree and the symbols exported by libtsd.so (and libtsd_torch.so),
# then builds the downstream C project of tests/downstream/ against it four
# ways -- CMake package and pkg-config, each against libtsd.so and libtsd.a --
# and runs each build on tests/fixtures/small.pth. With LibTorch, app_torch.c
# (a TorchScript model through libtsd_torch) is built the same four ways and
# run on tests/fixtures/shim_tiny.pt. Exits non-zero on any failure; the last
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
grep -q '^TSD_WITH_TORCH:BOOL=ON' "$build/CMakeCache.txt" && targets+=(tsd_torch tsd_torch_static)
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
want_headers=1; [[ $with_torch == ON ]] && want_headers=2
[[ $headers -eq $want_headers ]] ||
  fail "include/ holds $headers files, expected tsd.h$([[ $with_torch == ON ]] && echo ' and tsd_torch.hpp') alone"
libs=(libtsd.a libtsd.so pkgconfig/tsd.pc)
[[ $with_torch == ON ]] && libs+=(libtsd_torch.a libtsd_torch.so pkgconfig/tsd-torch.pc)
for f in "${libs[@]}" cmake/tsd/tsdConfig.cmake \
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
declared() { perl -0777 -ne 'print "$1\n" while /TSD_API[^;(]*?\b(tsd_\w+)\s*\(/g' "$@" | sort -u; }
# The TorchScript functions of tsd.h are libtsd_torch's, in every build.
torch_fns='^(tsd_has_torch|tsd_model_open_torchscript|tsd_checkpoint_open_torchscript)$'
declared "$prefix/include/tsd.h" | grep -vE "$torch_fns" >"$work/declared"
# tsd__torch_host_get: the one private entry libtsd_torch reaches the C core
# by (c_api/src/host/torch_host.h).
bad=$(grep -v '^tsd_[a-z0-9]' "$work/exported" | grep -vx 'tsd__torch_host_get' || true)
internal=$(grep '^tsd__' "$work/exported" | grep -vx 'tsd__torch_host_get' || true)
[[ -z $bad ]] || fail "libtsd.so exports symbols outside tsd_*: $(echo $bad | head -c 400)"
[[ -z $internal ]] || fail "libtsd.so exports internal tsd__ symbols: $(echo $internal | head -c 400)"
extra=$(comm -23 "$work/exported" "$work/declared" | grep -v '^tsd__' | grep '^tsd_' || true)
missing=$(comm -13 "$work/exported" "$work/declared" || true)
[[ -z $extra ]] || fail "exported but not declared TSD_API in tsd.h: $(echo $extra)"
[[ -z $missing ]] || fail "declared TSD_API in tsd.h but not in libtsd.so: $(echo $missing)"
nexported=$(wc -l <"$work/exported")
echo "  $nexported symbols, all tsd_*: $(wc -l <"$work/declared") declared TSD_API, and tsd__torch_host_get"
# Only the NEEDED entries: an address such as "0xc10" elsewhere in the
# dynamic section is not a dependency. libtsd never links LibTorch.
if readelf -d "$so" | grep NEEDED | grep -qiE 'torch|c10'; then
  fail "libtsd.so needs LibTorch"
fi
if [[ $with_torch == ON ]]; then
  note "symbols exported by libtsd_torch.so"
  tso=$(readlink -f "$libdir/libtsd_torch.so")
  nm -D --defined-only "$tso" | awk '{print $NF}' | sed 's/@.*//' | sort -u >"$work/exported_torch"
  { declared "$prefix/include/tsd.h" | grep -E "$torch_fns"
    declared "$prefix/include/tsd_torch.hpp"; } | sort -u >"$work/declared_torch"
  if ! diff <(cat "$work/exported_torch") "$work/declared_torch" >"$work/torch_syms.diff"; then
    fail "libtsd_torch.so exports other than its TSD_API functions:"; cat "$work/torch_syms.diff"
  fi
  echo "  $(wc -l <"$work/exported_torch") symbols: $(echo $(cat "$work/exported_torch"))"
  readelf -d "$tso" | grep NEEDED | grep -q 'libtsd\.so' || fail "libtsd_torch.so does not need libtsd.so"
fi

# --- 4. the downstream project, four ways ---------------------------------------
fixture=$here/tests/fixtures/small.pth
# The keys torch.save wrote, in order, from the fixture's oracle file.
cut -f1 "$here/tests/fixtures/small.expect" >"$work/keys.expect"
expected_count=$(wc -l <"$work/keys.expect")

# check_torch NAME BINARY static|shared: app_torch links libtsd_torch the
# right way, runs on a TorchScript model, prints what it holds.
check_torch() {
  local name=$1 bin=$2 kind=$3 out
  if [[ ! -x $bin ]]; then fail "$name" "no binary"; return; fi
  local needs_torch=0
  readelf -d "$bin" | grep -q 'NEEDED.*\[libtsd_torch\.so' && needs_torch=1
  if [[ $kind == shared && $needs_torch -eq 0 ]] || [[ $kind == static && $needs_torch -eq 1 ]]; then
    fail "$name"; echo "  $name: links libtsd_torch the wrong way ($kind expected)"; return
  fi
  local want="$here/tests/fixtures/shim_tiny.pt: 14 tensors, class Tiny (torch yes)"
  if ! out=$(env -u LD_LIBRARY_PATH "$bin" "$here/tests/fixtures/shim_tiny.pt" 2>&1) || [[ $out != "$want" ]]; then
    fail "$name"; printf '  %s: wrong output or exit:\n%s\n  expected: %s\n' "$name" "$out" "$want"; return
  fi
  echo "  $name: ${out#$here/}"
  passed+=("$name")
}

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
    [[ $with_torch == ON ]] && check_torch "cmake-torch-$kind" "$b/app_torch" $kind
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
    [[ $with_torch == ON ]] || continue
    if make -s -C "$here/tests/downstream" TORCH=1 STATIC=$static OUT="$b-torch" >"$b-torch.log" 2>&1; then
      check_torch "pkg-config-torch-$kind" "$b-torch" $kind
    else
      fail "pkg-config-torch-$kind"; cat "$b-torch.log"
    fi
  done
fi

# --- 5. summary -------------------------------------------------------------------
torch_note="pure C"; [[ $with_torch == ON ]] && torch_note="with LibTorch"
if [[ $fails -eq 0 ]]; then
  echo "downstream: OK ($torch_note): ${#passed[@]}/$([[ $with_torch == ON ]] && echo 8 || echo 4) builds ran (${passed[*]}); libtsd.so ($soname) exports $nexported symbols, all tsd_*"
  exit 0
fi
echo "downstream: FAILED ($torch_note): $fails failure(s): ${failed[*]}; passed: ${passed[*]:-none}"
exit 1
