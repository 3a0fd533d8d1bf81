"""Writes the benchmark's checkpoints and TorchScript models into a cache
directory (argument 1), skipping every file already there.

  vit_b_16.pth       torchvision vit_b_16 state_dict, float32 (~330 MiB)
  vit_b_16.pt        the same model, torch.jit.script + torch.jit.save
  vit_l_16.pth/.pt   torchvision vit_l_16 (~1.2 GB)
  small50k.pth/.pt   50,000 parameters of 4x8 floats (bench/models.py: Many)
  vit_b_16_bf16.pth  vit_b_16.pth converted to bfloat16

The .pth files double as the model specs of the C-owned models: a spec is
the eager model's state_dict saved, which for these cases is the checkpoint
itself (the bf16 case uses the float32 vit_b_16.pth as its spec).
Weights are random (seeded): nothing can be downloaded here, and the load
speed does not depend on the values."""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402


def save(obj, path, jit=False):
    if os.path.exists(path):
        return
    t = time.time()
    # torch.save names the archive's records after the file's stem: write
    # under the final name in a scratch directory, then move it in place.
    tmpdir = os.path.join(os.path.dirname(path), ".tmp")
    os.makedirs(tmpdir, exist_ok=True)
    tmp = os.path.join(tmpdir, os.path.basename(path))
    if jit:
        torch.jit.save(torch.jit.script(obj), tmp)
    else:
        torch.save(obj, tmp)
    os.replace(tmp, path)
    print(f"  wrote {path} ({os.path.getsize(path) / 2**20:.0f} MiB, "
          f"{time.time() - t:.1f} s)", flush=True)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)  # noqa: E731
    for kind in ("vit_b_16", "vit_l_16", "small50k"):
        have_ckpt = os.path.exists(p(kind + ".pth"))
        have_ts = os.path.exists(p(kind + ".pt"))
        if have_ckpt and have_ts:
            continue
        torch.manual_seed(0)
        model = models.build(kind).eval()
        save(model.state_dict(), p(kind + ".pth"))
        save(model, p(kind + ".pt"), jit=True)
        del model
    if not os.path.exists(p("vit_b_16_bf16.pth")):
        sd = torch.load(p("vit_b_16.pth"), map_location="cpu")
        bf = type(sd)((k, v.to(torch.bfloat16)) for k, v in sd.items())
        bf._metadata = getattr(sd, "_metadata", None)
        save(bf, p("vit_b_16_bf16.pth"))


if __name__ == "__main__":
    main()
