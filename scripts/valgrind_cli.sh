#!/usr/bin/env bash
# The tsd command under valgrind (leaks, invalid reads/writes) on a few real
# cases: inspect, load strict, non-strict, auto-pop, malformed inputs.
#   scripts/valgrind_cli.sh [BUILD_DIR]       (default build/; needs BUILD_DIR/tsd)
# Checkpoints come from the committed malformed corpus (tests/malformed/).
# Exits non-zero on any valgrind finding or unexpected exit status and prints
# one summary line.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bdir=${1:-$here/build}
tsd=$bdir/tsd
[ -x "$tsd" ] || tsd=$bdir/cli/tsd
if [ ! -x "$tsd" ]; then echo "valgrind_cli: FAILED: no tsd binary in $bdir"; exit 2; fi
if ! command -v valgrind >/dev/null; then echo "valgrind_cli: FAILED: valgrind not installed"; exit 2; fi
c=$here/tests/malformed/cases
net="--model-spec $c/ok_zip_p2.bin --class-name Net --module act=ReLU --module bn=BatchNorm2d"
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
n=0 bad=0

run() { # expected-exit name args...
  local want=$1 name=$2
  shift 2
  n=$((n + 1))
  valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=9 \
    "$tsd" "$@" <"${STDIN:-/dev/null}" >"$log/$n.out" 2>"$log/$n.err"
  local rc=$?
  if [ $rc -ne "$want" ]; then
    bad=$((bad + 1))
    echo "valgrind_cli: $name: exit $rc, expected $want$([ $rc -eq 9 ] && echo ' (valgrind error)'): tsd $*"
    grep -E '==[0-9]+==' "$log/$n.err" | head -30
    tail -5 "$log/$n.out"
  fi
}

run 0 inspect inspect "$c/ok_zip_p2.bin"
run 0 inspect-json inspect --json "$c/ok_legacy.bin"
run 0 load-strict load $net "$c/ok_zip_p5.bin"
run 0 load-strict-legacy load $net "$c/ok_legacy.bin"
run 1 load-strict-mismatch load $net "$c/valid_head_mismatch.bin"
run 1 load-non-strict-mismatch load $net --non-strict "$c/valid_head_mismatch.bin"
run 0 load-auto-pop load $net --non-strict --auto-pop --json "$c/valid_head_mismatch.bin"
run 1 load-auto-pop-strict load $net --auto-pop "$c/valid_head_mismatch.bin"
run 0 load-non-strict-missing load $net --non-strict "$c/key_lone_surrogate.bin"
run 0 load-write load $net -o "$log/out.pth" "$c/ok_hand_zip.bin"
# the writers streaming from a checkpoint: .pth (CRCs patched in), stdout
# (CRCs by a first pass), safetensors, pop; a refused output
run 0 convert-pth convert "$c/ok_zip_p2.bin" "$log/conv.pth"
run 0 convert-stdout convert "$c/ok_legacy.bin" -
run 0 convert-safetensors convert "$c/ok_zip_p5.bin" "$log/conv.safetensors"
run 0 pop-write pop "$c/ok_zip_p2.bin" fc.bias -o "$log/popped.pth"
run 2 convert-to-dir convert "$c/ok_zip_p2.bin" "$log"
run 0 malformed-placeholder-root inspect "$c/refused_posix_system.bin"
run 2 malformed-placeholder-load load $net "$c/refused_posix_system.bin"
run 2 malformed-truncated load $net "$c/trunc_zip_p2_01021.bin"
run 2 malformed-deep inspect "$c/nest_list_50k.bin"
run 2 malformed-overflow load $net "$c/tensor_numel_overflows_64_bits.bin"
run 2 malformed-duplicate load $net "$c/key_duplicate.bin"
# the command's conventions: stdin, remapped writes, JSON errors, hints
STDIN=$c/ok_zip_p2.bin run 0 inspect-stdin inspect -
STDIN=$c/ok_zip_p2.bin run 0 load-spec-stdin load --model-spec - --class-name Net "$c/ok_zip_p5.bin"
run 0 convert-remap convert "$c/ok_zip_p2.bin" "$log/remap.pth" --add-prefix net. --json
run 0 pop-remap pop "$c/ok_zip_p2.bin" fc.bias -o "$log/remap2.pth" --rename fc.=head.
run 2 json-error inspect --json "$c/trunc_zip_p2_01021.bin"
run 2 usage-did-you-mean load --jsn
run 2 pop-did-you-mean pop "$c/ok_zip_p2.bin" fc.bais -o "$log/never.pth"
run 1 diff-hints diff $net "$c/valid_head_mismatch.bin"
run 2 directory inspect "$c"

if [ $bad -eq 0 ]; then
  echo "valgrind_cli: OK ($n runs, no valgrind error, no leak)"
else
  echo "valgrind_cli: FAILED ($bad of $n runs)"
fi
[ $bad -eq 0 ]
