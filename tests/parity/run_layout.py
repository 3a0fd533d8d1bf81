#!/usr/bin/python3
"""Parity for models built from a layout file, and for `_extra_state`.

For each model: scripts/tsd_layout.py (run as a command with this Python)
writes its layout; `tsd load --model-spec LAYOUT.json` loads checkpoints
made from the model into the C-owned model built from it, and Python's own
load_state_dict on a fresh instance is the oracle (oracle.py): exit status,
every --json field (missing/unexpected keys, size mismatches, error_msgs,
the message byte for byte), the plain-text output, and on success every
loaded tensor of `-o OUT.pth` bit for bit against the Python model after
its load, the key order and the `_metadata` versions.

The extra-state cases load into layout_models.ExtraNet (modules whose class
overrides set_extra_state, a non-persistent buffer, a None parameter, an
InstanceNorm without running stats); with --torchscript they also load into
torch.jit.script(ExtraNet) through LibTorch, whose scripted set_extra_state
must receive the value (checked in the saved archive).

usage: run_layout.py --tsd PATH --work DIR [--torchscript] [--cases SUB,...]
One PASS/FAIL line per case, last line `N passed, M failed`; exit 0 only if
all pass. A case that cannot run is a failure, never a skip.
"""

import argparse
import collections
import copy
import json
import os
import shutil
import subprocess
import sys
import traceback
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import layout_models  # noqa: E402
import oracle  # noqa: E402

OD = collections.OrderedDict
FIELDS = ["ok", "class_name", "missing_keys", "unexpected_keys",
          "size_mismatches", "popped_keys", "error_msgs", "message"]

# (name, factory, kwargs of the model, kwargs of a 1000-class model or None)
MODELS = [
    ("resnet18", "torchvision.models:resnet18", {"num_classes": 10},
     {"num_classes": 1000}),
    ("mobilenet_v2", "torchvision.models:mobilenet_v2", {"num_classes": 10},
     {"num_classes": 1000}),
    ("densenet121", "torchvision.models:densenet121", {"num_classes": 10},
     {"num_classes": 1000}),
    ("efficientnet_b0", "torchvision.models:efficientnet_b0",
     {"num_classes": 10}, {"num_classes": 1000}),
    ("convnext_tiny", "torchvision.models:convnext_tiny", {"num_classes": 10},
     {"num_classes": 1000}),
    ("squeezenet1_0", "torchvision.models:squeezenet1_0", {"num_classes": 10},
     {"num_classes": 1000}),
    ("shufflenet_v2_x0_5", "torchvision.models:shufflenet_v2_x0_5",
     {"num_classes": 10}, {"num_classes": 1000}),
    ("regnet_y_400mf", "torchvision.models:regnet_y_400mf",
     {"num_classes": 10}, {"num_classes": 1000}),
    ("small_vit", "layout_models:small_vit", {"num_classes": 10},
     {"num_classes": 1000}),
    ("resnet18_frozen_bn", "layout_models:resnet18_frozen_bn",
     {"num_classes": 10}, {"num_classes": 1000}),
    ("extra_net", "layout_models:extra_net", {}, None),
]


def factory(spec):
    mod, attr = spec.split(":")
    obj = __import__(mod, fromlist=[attr])
    return getattr(obj, attr)


def make(spec, kwargs):
    torch.manual_seed(0)
    return factory(spec)(**kwargs)


def perturbed(sd, seed=1):
    """The model's state dict with other values (so a load shows)."""
    g = torch.Generator().manual_seed(seed)
    out = OD()
    for k, v in sd.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            v = v + torch.randn(v.shape, generator=g, dtype=v.dtype)
        out[k] = v
    out._metadata = copy.deepcopy(getattr(sd, "_metadata", None))
    return out


def with_meta(items, meta):
    out = OD(items)
    out._metadata = copy.deepcopy(meta)
    return out


# ---- checkpoints: (name, builder(model, big_model) -> obj, strict, auto_pop)


def ck_same(m, big):
    return perturbed(m.state_dict())


def ck_float64(m, big):
    sd = perturbed(m.state_dict())
    return with_meta(((k, v.double() if v.is_floating_point() else v)
                      for k, v in sd.items()), sd._metadata)


def ck_missing_unexpected(m, big):
    sd = perturbed(m.state_dict())
    keys = list(sd)
    items = [(k, sd[k]) for k in keys[1:-1]]
    items.append(("bogus.weight", torch.ones(1)))
    items.append((keys[0] + ".extra", torch.ones(1)))
    return with_meta(items, sd._metadata)


def ck_old_norms(m, big):
    """A checkpoint from before num_batches_tracked (norm version 1)."""
    sd = perturbed(m.state_dict())
    meta = copy.deepcopy(sd._metadata)
    for k, v in meta.items():
        if v.get("version") == 2:
            v["version"] = 1
    return with_meta(((k, v) for k, v in sd.items()
                      if not k.endswith("num_batches_tracked")), meta)


def ck_head1000(m, big):
    return perturbed(big.state_dict())


CKPTS = [
    ("same", ck_same, True, False),
    ("float64", ck_float64, True, False),
    ("missing_unexpected_strict", ck_missing_unexpected, True, False),
    ("missing_unexpected", ck_missing_unexpected, False, False),
    ("old_norms", ck_old_norms, True, False),
    ("head1000", ck_head1000, True, False),
    ("head1000_autopop", ck_head1000, False, True),
]


# ---- extra state --------------------------------------------------------


def es_full(m, big):
    sd = perturbed(m.state_dict())
    sd["e._extra_state"] = {"scale": 2.5}
    sd["t._extra_state"] = torch.arange(4.0)
    return sd


def es_absent(m, big):
    sd = perturbed(m.state_dict())
    return with_meta(((k, v) for k, v in sd.items()
                      if k != "e._extra_state"), sd._metadata)


def es_unexpected(m, big):
    sd = perturbed(m.state_dict())
    items = list(sd.items())
    items.insert(0, ("_extra_state", 7))
    items.append(("out._extra_state", torch.ones(2)))
    items.append(("bogus", 1))
    return with_meta(items, sd._metadata)


EXTRA_CKPTS = [
    ("extra_present", es_full, True, False),
    ("extra_absent_strict", es_absent, True, False),
    ("extra_absent", es_absent, False, False),
    ("extra_unexpected_strict", es_unexpected, True, False),
    ("extra_unexpected", es_unexpected, False, False),
]


def case_of(strict, auto_pop):
    return types.SimpleNamespace(strict=strict, auto_pop=auto_pop, select=[],
                                 all_persistent=False, non_persistent=[])


def bits(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def tsd(args, cmd):
    return subprocess.run([args.tsd] + cmd, capture_output=True, text=True)


def export(args, name, spec, kwargs):
    path = os.path.join(args.work, "%s.layout.json" % name)
    env = dict(os.environ, PYTHONPATH=HERE)
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts",
                                                     "tsd_layout.py"),
                        spec, path, "--kwargs", json.dumps(kwargs)],
                       capture_output=True, text=True, env=env)
    check(r.returncode == 0, "tsd_layout.py: %s" % r.stderr)
    return path, r.stderr


def compare_report(expect, got, what):
    for f in FIELDS:
        check(got.get(f) == expect[f], "%s: %s: tsd %r, PyTorch %r"
              % (what, f, got.get(f), expect[f]))


def run_eager(args, name, spec, kwargs, big_kwargs, ck_name, build, strict,
              auto_pop, layout):
    model = make(spec, kwargs)
    big = make(spec, big_kwargs) if big_kwargs else None
    obj = build(model, big)
    ckpt = os.path.join(args.work, "%s.%s.pth" % (name, ck_name))
    torch.save(obj, ckpt)
    expect = oracle.run(model, torch.load(ckpt), case_of(strict, auto_pop))
    cls = type(model).__name__
    opts = (["--non-strict"] if not strict else []) + \
        (["--auto-pop"] if auto_pop else [])
    out = os.path.join(args.work, "%s.%s.out.pth" % (name, ck_name))
    if os.path.exists(out):
        os.remove(out)
    r = tsd(args, ["load", "--model-spec", layout, "--class-name", cls, ckpt,
                   "--json", "-o", out] + opts)
    check(r.returncode in (0, 1), "exit %d: %s" % (r.returncode, r.stderr))
    check(r.returncode == (0 if expect["ok"] else 1),
          "exit %d, PyTorch ok=%s" % (r.returncode, expect["ok"]))
    compare_report(expect, json.loads(r.stdout), "--json")
    r2 = tsd(args, ["load", "--model-spec", layout, "--class-name", cls,
                    ckpt] + opts)
    check(r2.stdout == expect["message"] + "\n",
          "text: tsd %r, PyTorch %r" % (r2.stdout, expect["message"]))
    if not expect["ok"]:
        check(not os.path.exists(out), "-o written after a failed load")
        return expect["message"].splitlines()[0][:60]
    got = torch.load(out)
    want = model.state_dict()
    want.pop("e._extra_state", None)  # tsd cannot call get_extra_state
    want.pop("t._extra_state", None)
    check(list(got) == list(want), "-o: keys / order: %s" %
          [k for k in list(want) if k not in got][:5])
    check(dict(got._metadata) == dict(want._metadata), "-o: _metadata")
    loaded = [k for k in want
              if k in obj and k not in expect["popped_keys"]] + \
        [k for k in want if k.endswith("num_batches_tracked") and
         k not in obj]
    for k in loaded:
        check(got[k].dtype == want[k].dtype and got[k].shape == want[k].shape
              and torch.equal(bits(got[k]), bits(want[k])),
              "-o: value of " + k)
    return "%s; %d tensors compared bit for bit" % (expect["message"][:50],
                                                     len(loaded))


def run_torchscript(args, ck_name, build, strict):
    model = layout_models.extra_net()
    obj = build(model, None)
    ckpt = os.path.join(args.work, "ts.%s.pth" % ck_name)
    torch.save(obj, ckpt)
    scripted = os.path.join(args.work, "extra_net.pt")
    torch.jit.save(torch.jit.script(layout_models.extra_net()), scripted)
    expect = oracle.run(model, torch.load(ckpt), case_of(strict, False))
    out = os.path.join(args.work, "ts.%s.out.pt" % ck_name)
    if os.path.exists(out):
        os.remove(out)
    # TorchScript forgets persistent=False: say so, to get the eager answer
    r = tsd(args, ["load", scripted, ckpt, "--json", "-o", out,
                   "--non-persistent", "cache"] +
            ([] if strict else ["--non-strict"]))
    check(r.returncode in (0, 1), "exit %d: %s" % (r.returncode, r.stderr))
    check(r.returncode == (0 if expect["ok"] else 1),
          "exit %d, PyTorch ok=%s" % (r.returncode, expect["ok"]))
    compare_report(expect, json.loads(r.stdout), "--json")
    if not expect["ok"]:
        return expect["message"].splitlines()[0][:60]
    got = torch.jit.load(out)
    check(got.e.scale == model.e.scale,
          "set_extra_state: scale %r, PyTorch %r" % (got.e.scale,
                                                      model.e.scale))
    check(torch.equal(got.t.amax, model.t.amax),
          "set_extra_state: amax %r, PyTorch %r" % (got.t.amax,
                                                     model.t.amax))
    return "%s; e.scale=%r" % (expect["message"][:50], got.e.scale)


def run_diff_state(args, ck_name, build):
    """`tsd diff MODEL.pt` reads the archive without LibTorch (every build):
    a class with a set_extra_state method is seen in its code file, so the
    strict report equals PyTorch's."""
    model = layout_models.extra_net()
    obj = build(model, None)
    ckpt = os.path.join(args.work, "diff.%s.pth" % ck_name)
    torch.save(obj, ckpt)
    scripted = os.path.join(args.work, "extra_net_diff.pt")
    torch.jit.save(torch.jit.script(layout_models.extra_net()), scripted)
    expect = oracle.run(model, torch.load(ckpt), case_of(True, False))
    r = tsd(args, ["diff", scripted, ckpt, "--json", "--non-persistent",
                   "cache"])
    check(r.returncode in (0, 1), "exit %d: %s" % (r.returncode, r.stderr))
    got = json.loads(r.stdout)
    for f in ["ok", "missing_keys", "unexpected_keys", "error_msgs",
              "message"]:
        check(got.get(f) == expect[f], "diff: %s: tsd %r, PyTorch %r"
              % (f, got.get(f), expect[f]))
    return expect["message"].splitlines()[-1][:60]


def run_unconvertible(args):
    """A value the scripted signature cannot take: a clear refusal (exit 2,
    the key named), the archive not written."""
    model = layout_models.extra_net()
    sd = perturbed(model.state_dict())
    sd["e._extra_state"] = "not a dict"
    ckpt = os.path.join(args.work, "ts.unconvertible.pth")
    torch.save(sd, ckpt)
    # each case makes what it uses (a passed case's files are removed)
    scripted = os.path.join(args.work, "extra_net_unconvertible.pt")
    torch.jit.save(torch.jit.script(layout_models.extra_net()), scripted)
    out = os.path.join(args.work, "ts.unconvertible.out.pt")
    if os.path.exists(out):
        os.remove(out)
    r = tsd(args, ["load", scripted, ckpt, "-o", out, "--non-persistent",
                   "cache"])
    check(r.returncode == 2, "exit %d: %s" % (r.returncode, r.stderr))
    check("e._extra_state" in r.stderr and "Dict[str, float]" in r.stderr,
          "message: " + r.stderr)
    check(not os.path.exists(out), "-o written after a failed load")
    return r.stderr.strip().splitlines()[-1][:100]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsd", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--torchscript", action="store_true")
    ap.add_argument("--cases", default="")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    want = [c for c in args.cases.split(",") if c]
    passed = failed = 0

    def report(label, fn):
        nonlocal passed, failed
        if want and not any(w in label for w in want):
            return
        before = set(os.listdir(args.work))
        try:
            note = fn()
            print("PASS %s: %s" % (label, note))
            passed += 1
            # A passed case's checkpoints (ConvNeXt: ~110 MB each) go at
            # once: all of them together took 3.4 GB of CI's disk.
            if not os.environ.get("TSD_KEEP_WORK"):
                for f in set(os.listdir(args.work)) - before:
                    f = os.path.join(args.work, f)
                    if os.path.isdir(f):
                        shutil.rmtree(f)
                    else:
                        os.remove(f)
        except Exception:  # noqa: BLE001 -- a failure, reported
            print("FAIL %s:\n%s" % (label, traceback.format_exc()))
            failed += 1

    for name, spec, kwargs, big_kwargs in MODELS:
        if want and not any(w in name for w in want):
            continue
        try:
            layout, warnings = export(args, name, spec, kwargs)
        except Exception:  # noqa: BLE001
            print("FAIL %s (export):\n%s" % (name, traceback.format_exc()))
            failed += 1
            continue
        cks = EXTRA_CKPTS if name == "extra_net" else CKPTS
        for ck_name, build, strict, auto_pop in cks:
            if big_kwargs is None and ck_name.startswith("head"):
                continue
            report("%s/%s" % (name, ck_name),
                   lambda: run_eager(args, name, spec, kwargs, big_kwargs,
                                     ck_name, build, strict, auto_pop,
                                     layout))
    for ck_name, build, strict, _ in EXTRA_CKPTS:
        if strict:
            report("ts_state_diff/" + ck_name,
                   lambda: run_diff_state(args, ck_name, build))
    if args.torchscript:
        for ck_name, build, strict, _ in EXTRA_CKPTS:
            report("torchscript/" + ck_name,
                   lambda: run_torchscript(args, ck_name, build, strict))
        report("torchscript/extra_unconvertible",
               lambda: run_unconvertible(args))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(0 if failed == 0 and passed > 0 else 1)


if __name__ == "__main__":
    main()
