"""Runs samples/seed_finetune.c on the seed scenario and checks its output
and its saved model against Python torch (the oracle).

usage: check_seed.py --sample BUILD/seed_finetune --work DIR
Exit 0 only if every check passed; prints `N passed, M failed` last."""
import argparse
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

EXPECTED = """== load_state_dict(strict=False)
RuntimeError: Error(s) in loading state_dict for VisionTransformer:
\tsize mismatch for heads.head.weight: copying a param with shape torch.Size([1000, 768]) from checkpoint, the shape in current model is torch.Size([10, 768]).
\tsize mismatch for heads.head.bias: copying a param with shape torch.Size([1000]) from checkpoint, the shape in current model is torch.Size([10]).
== pop heads.head.weight, heads.head.bias; load_state_dict(strict=False)
_IncompatibleKeys(missing_keys=['heads.head.weight', 'heads.head.bias'], unexpected_keys=[])
== auto-pop, strict=False
_IncompatibleKeys(missing_keys=['heads.head.weight', 'heads.head.bias'], unexpected_keys=[])
popped heads.head.weight: checkpoint [1000, 768] model [10, 768]
popped heads.head.bias: checkpoint [1000] model [10]
saved {out}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_seed_files.py"), a.work],
                   check=True)
    model = os.path.join(a.work, "vit_b_16_10classes.pt")
    ckpt = os.path.join(a.work, "vit_b_16_imagenet1k.pth")
    out = os.path.join(a.work, "finetune_ready.pt")
    if os.path.exists(out):
        os.remove(out)
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
        if ok:
            passed += 1
        else:
            failed += 1

    r = subprocess.run([a.sample, model, ckpt, out], capture_output=True, text=True)
    check("sample exits 0", r.returncode == 0, f"exit {r.returncode}, stderr: {r.stderr}")
    want = EXPECTED.format(out=out)
    check("sample prints PyTorch's texts", r.stdout == want,
          f"\n--- got ---\n{r.stdout}\n--- want ---\n{want}")

    # Python's own answer for the same three steps, on the eager-equivalent
    # scripted model: the messages the sample printed must be these.
    sd = torch.load(ckpt, map_location="cpu")
    m = torch.jit.load(model)
    try:
        m.load_state_dict(sd, strict=False)
        check("python raises on strict=False", False, "no error")
    except RuntimeError as e:
        check("python raises the same size mismatch",
              "size mismatch for heads.head.weight" in str(e), str(e))

    if os.path.exists(out):
        saved = torch.jit.load(out).state_dict()
        orig = torch.jit.load(model).state_dict()
        bad = []
        for k, v in saved.items():
            ref = orig[k] if k.startswith("heads.head.") else sd[k]
            if v.dtype != ref.dtype or v.shape != ref.shape or not torch.equal(v, ref):
                bad.append(k)
        check("saved model holds the checkpoint's weights and its own head",
              not bad and len(saved) == len(orig), f"differs: {bad[:5]}")
    else:
        check("saved model exists", False, out)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
