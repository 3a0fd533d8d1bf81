#!/usr/bin/python3
"""Parity for TorchScript archives read without running them: `tsd inspect`,
`tsd convert` and `tsd diff` of a scripted torchvision model (no LibTorch
involved on tsd's side: this runs in the pure-C build too) against Python's
torch.jit.load(p): state_dict() (keys in order, dtypes, shapes, every value
bit for bit), named_parameters() / named_buffers() (the roles), and a strict
load_state_dict of the eager model's state dict ("<All keys matched
successfully>").

usage: run_ts_state.py --tsd PATH --work DIR [--cases SUBSTR[,...]]
One PASS/FAIL line per case, last line `N passed, M failed`; exit 0 only if
all pass. A case that cannot run is a failure, never a skip.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import traceback

import torch
import torchvision

MODELS = ["resnet18", "mobilenet_v3_small", "efficientnet_b0"]
DTYPES = {torch.float32: "float32", torch.float64: "float64",
          torch.int64: "int64", torch.float16: "float16"}


def tsd(args, cmd):
    t0 = time.time()
    r = subprocess.run([args.tsd] + cmd, capture_output=True, text=True)
    return r, time.time() - t0


def bits(t):
    return t.contiguous().reshape(-1).view(torch.uint8)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def run_case(args, name):
    torch.manual_seed(0)
    eager = getattr(torchvision.models, name)(weights=None).eval()
    path = os.path.join(args.work, name + ".pt")
    torch.jit.save(torch.jit.script(eager), path)
    ref = torch.jit.load(path)
    sd = ref.state_dict()
    params = set(k for k, _ in ref.named_parameters())
    buffers = set(k for k, _ in ref.named_buffers())
    check(set(sd) == params | buffers, "Python: state_dict = params + buffers")

    r, secs = tsd(args, ["inspect", "--json", path])
    check(r.returncode == 0, "inspect: exit %d: %s" % (r.returncode, r.stderr))
    entries = json.loads(r.stdout)["entries"]
    check([e["key"] for e in entries] == list(sd), "inspect: keys / order")
    for e in entries:
        t = sd[e["key"]]
        check(e["dtype"] == DTYPES[t.dtype], "inspect: dtype of " + e["key"])
        check(e["shape"] == list(t.shape), "inspect: shape of " + e["key"])
        check(e["parameter"] == (e["key"] in params),
              "inspect: role of " + e["key"])

    out = os.path.join(args.work, name + ".pth")
    r, _ = tsd(args, ["convert", path, out])
    check(r.returncode == 0, "convert: exit %d: %s" % (r.returncode, r.stderr))
    got = torch.load(out)
    check(list(got) == list(sd), "convert: keys / order")
    for k, v in sd.items():
        check(got[k].dtype == v.dtype and got[k].shape == v.shape and
              torch.equal(bits(got[k]), bits(v)), "convert: value of " + k)

    ckpt = os.path.join(args.work, name + "_eager.pth")
    torch.save(eager.state_dict(), ckpt)
    check(str(ref.load_state_dict(torch.load(ckpt))) ==
          "<All keys matched successfully>", "Python: strict load")
    r, _ = tsd(args, ["diff", "--json", path, ckpt])
    check(r.returncode == 0, "diff: exit %d: %s %s" % (r.returncode, r.stdout,
                                                        r.stderr))
    d = json.loads(r.stdout)
    check(d["ok"] and d["message"] == "<All keys matched successfully>",
          "diff: " + d["message"])
    check(d["matched_keys"] == list(sd), "diff: matched keys / order")
    return "%d tensors (%d parameters), inspect %.2f s" % (
        len(sd), len(params), secs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsd", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cases", default="")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    want = [c for c in args.cases.split(",") if c]
    passed = failed = 0
    for name in MODELS:
        if want and not any(w in name for w in want):
            continue
        try:
            note = run_case(args, name)
            print("PASS %s: %s" % (name, note))
            passed += 1
        except Exception:
            print("FAIL %s:\n%s" % (name, traceback.format_exc()))
            failed += 1
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(0 if failed == 0 and passed > 0 else 1)


if __name__ == "__main__":
    main()
