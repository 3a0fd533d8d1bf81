#!/usr/bin/env bash
# bench/run_views.sh [BUILD_DIR] [--quick] — the issue-15 benchmark in one
# command: builds bench_views in BUILD_DIR (default: build), writes the
# checkpoints once into $TSD_BENCH_CACHE (default: out/bench, shared with
# bench/run.sh; ~2.6 GB), measures time-to-ready by mode, warm and cold,
# beside the read bounds and Python, and writes bench/results/views.md.
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
cmake --build "$build" -j2 --target bench_views >/tmp/tsd_bench_views.log 2>&1 ||
  { tail -20 /tmp/tsd_bench_views.log >&2; exit 1; }
echo "bench: checkpoints in $cache (generated once)"
(cd /tmp && "$py" "$here/bench/views_gen.py" "$cache")
mkdir -p "$here/bench/results"
(cd /tmp && "$py" "$here/bench/views.py" "$build/bench/bench_views" "$cache" \
  "$here/bench/results/views.md" "$@")
