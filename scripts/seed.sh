#!/usr/bin/env bash
# The main job: the seed scenario end to end on a fresh Debian machine.
# Installs the packages, builds tsd, writes with Debian's Python torch an
# ImageNet-1k vit_b_16 checkpoint (random weights: nothing is downloaded) and
# a 10-class vit_b_16 TorchScript model, then runs samples/seed_finetune.c.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/deps.sh
bash scripts/build.sh build
mkdir -p out/seed
/usr/bin/python3 scripts/make_seed_files.py out/seed
./build/seed_finetune out/seed/vit_b_16_10classes.pt out/seed/vit_b_16_imagenet1k.pth \
  out/seed/vit_b_16_10classes_finetune_ready.pt
