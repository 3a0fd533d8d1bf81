"""Writes the issue-15 benchmark's checkpoints into a cache directory
(argument 1), skipping every file already there (bench/gen.py shares the
.pth files and their names):

  vit_b_16.pth          torchvision vit_b_16 state_dict, float32 (~330 MiB)
  vit_l_16.pth          torchvision vit_l_16 state_dict, float32 (~1.2 GB)
  vit_l_16.safetensors  the same tensors as a safetensors file, written here
                        by hand (the `safetensors` package is not installed):
                        8-byte length, JSON header padded to 8 bytes, C-order
                        data in state_dict order (all float32: aligned)

Weights are random (seeded): nothing is downloaded."""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
from gen import save  # noqa: E402

NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
         torch.int64: "I64"}


def write_safetensors(sd, path):
    if os.path.exists(path):
        return
    hdr, off = {}, 0
    for k, v in sd.items():
        n = v.numel() * v.element_size()
        hdr[k] = {"dtype": NAMES[v.dtype], "shape": list(v.shape),
                  "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for v in sd.values():
            f.write(v.contiguous().numpy().tobytes())
    os.replace(tmp, path)
    print(f"  wrote {path} ({os.path.getsize(path) / 2**20:.0f} MiB)",
          flush=True)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for kind in ("vit_b_16", "vit_l_16"):
        p = os.path.join(out, kind + ".pth")
        if not os.path.exists(p):
            torch.manual_seed(0)
            save(models.build(kind).eval().state_dict(), p)
    st = os.path.join(out, "vit_l_16.safetensors")
    if not os.path.exists(st):
        sd = torch.load(os.path.join(out, "vit_l_16.pth"), map_location="cpu")
        write_safetensors(sd, st)


if __name__ == "__main__":
    main()
