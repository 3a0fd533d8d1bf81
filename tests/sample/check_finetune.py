"""Runs the pure-C samples (samples/finetune_head.c, samples/engine_threads.c)
on torchvision models' checkpoints and checks them against Python torch (the
oracle): the texts the fine-tune sample prints are the ones PyTorch raises
and returns for the same loads, its saved .pth holds the checkpoint's
weights and a zero head, and every engine worker loads every byte.

usage: check_finetune.py --finetune BUILD/finetune_head
                         --engine BUILD/engine_threads --work DIR
Exit 0 only if every check passed; prints `N passed, M failed` last."""
import argparse
import os
import subprocess
import sys

import torch
import torchvision

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    if ok:
        passed += 1
    else:
        failed += 1


def shape(t):
    return "[" + ", ".join(str(d) for d in t.shape) + "]"


def python_texts(model, ckpt, head):
    """What Python shows for strict=False, then strict=False after popping
    the shape-mismatched keys (auto-pop's definition)."""
    sd = dict(ckpt)
    out = "== load_state_dict(strict=False)\n"
    try:
        out += str(model.load_state_dict(sd, strict=False)) + "\n"
    except RuntimeError as e:
        out += "RuntimeError: " + str(e) + "\n"
    out += "== load_state_dict(strict=False) with auto-pop\n"
    msd = model.state_dict()
    popped = [k for k in msd if k in sd and sd[k].shape != msd[k].shape]
    for k in popped:
        sd.pop(k)
    out += str(model.load_state_dict(sd, strict=False)) + "\n"
    for k in popped:
        out += f"popped {k}: checkpoint {shape(ckpt[k])}, model {shape(msd[k])}\n"
    return out


def case(a, name, make, head, classes, wrap=None):
    torch.manual_seed(0)
    src = make(num_classes=1000).eval()
    sd = src.state_dict()
    path = os.path.join(a.work, f"{name}_1000.pth")
    torch.save(wrap(sd) if wrap else sd, path)
    out = os.path.join(a.work, f"{name}_{classes}.pth")
    if os.path.exists(out):
        os.remove(out)
    cls = type(src).__name__
    r = subprocess.run([a.finetune, path, cls, head, str(classes), out],
                       capture_output=True, text=True)
    check(f"{name}: finetune_head exits 0", r.returncode == 0,
          f"exit {r.returncode}, stderr: {r.stderr}")
    want = python_texts(make(num_classes=classes), sd, head) + f"saved {out}\n"
    check(f"{name}: texts are PyTorch's", r.stdout == want,
          f"\n--- got ---\n{r.stdout}\n--- want ---\n{want}")
    if os.path.exists(out):
        saved = torch.load(out)
        ok = list(saved.keys()) == list(sd.keys())
        detail = "keys differ"
        for k, v in sd.items():
            if not ok:
                break
            if k.startswith(head + "."):
                ok = saved[k].shape[0] == classes and not saved[k].any()
                detail = f"{k} is not a zero head of {classes} rows"
            else:
                ok = saved[k].dtype == v.dtype and torch.equal(saved[k], v)
                detail = f"{k} differs"
        check(f"{name}: saved model = checkpoint + zero head", ok, detail)
        # and Python can load it into the 10-class model, strict
        m = make(num_classes=classes)
        check(f"{name}: saved model loads strictly in Python",
              str(m.load_state_dict(saved)) == "<All keys matched successfully>")
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--finetune", required=True)
    ap.add_argument("--engine", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    m = torchvision.models
    r18 = case(a, "resnet18", m.resnet18, "fc", 10)
    case(a, "mobilenet_v3_small", m.mobilenet_v3_small, "classifier.3", 7,
         wrap=lambda sd: {"epoch": 7, "state_dict": sd, "arch": "mnv3"})

    # a head the checkpoint does not have: a clear error, exit 2
    r = subprocess.run([a.finetune, r18, "ResNet", "head", "10"],
                       capture_output=True, text=True)
    check("unknown head: exit 2 and a message",
          r.returncode == 2 and "has no 'head.weight'" in r.stderr,
          f"exit {r.returncode}, stderr {r.stderr!r}")

    # the engine sample: 4 threads, own allocator, threads=1 loads
    sd = torch.load(r18)
    nbytes = sum(v.numel() * v.element_size() for v in sd.values())
    r = subprocess.run([a.engine, r18, "4"], capture_output=True, text=True)
    check("engine_threads exits 0", r.returncode == 0,
          f"exit {r.returncode}\n{r.stdout}{r.stderr}")
    lines = r.stdout.splitlines()
    for i in range(4):
        head = f"worker {i}: ok: {len(sd)} tensors, {nbytes} bytes loaded"
        check(f"engine worker {i} loaded every byte",
              any(l.startswith(head) for l in lines) and
              f"worker {i}: <All keys matched successfully>" in lines,
              r.stdout)

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
