#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR] [--quick] [--only=NAME] — the load benchmark of
# issue 4 in one command: builds bench_tsd in BUILD_DIR (default: build),
# writes the checkpoints once into $TSD_BENCH_CACHE (default: out/bench,
# ~3.3 GB, reused), measures (a) pread, (b) tsd into C buffers, (c) tsd into
# TorchScript, (d) PyTorch, and writes bench/results.md.
# Needs Debian's python3-torch and python3-torchvision (/usr/bin/python3).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=build
if [[ $# -gt 0 && $1 != --* ]]; then build=$1; shift; fi
[[ $build = /* ]] || build=$here/$build
cache=${TSD_BENCH_CACHE:-$here/out/bench}
py=/usr/bin/python3

if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
bench=$build/bench/bench_tsd
if ! cmake --build "$build" -j2 --target bench_tsd >/tmp/tsd_bench_build.log 2>&1; then
  tail -20 /tmp/tsd_bench_build.log >&2
  [[ -x $bench ]] || { echo "run.sh: cannot build $bench" >&2; exit 1; }
  echo "run.sh: WARNING: the build failed; measuring the previous $bench" >&2
fi

echo "bench: checkpoints in $cache (generated once)"
(cd /tmp && "$py" "$here/bench/gen.py" "$cache")
(cd /tmp && "$py" "$here/bench/bench.py" "$bench" "$cache" \
  "$here/bench/results.md" "$@")
