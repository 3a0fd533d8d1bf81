#!/usr/bin/python3
"""PyTorch parity for tsd's key remapping, automatic state-dict selection,
`tsd diff` and `tsd pop`.

Each case builds a model and a checkpoint with Debian's Python torch, runs
the Python recipe a user would write (consume_prefix_in_state_dict_if_present,
a dict comprehension for renames, ckpt['model'], sd.pop(key)) followed by
PyTorch's own load_state_dict, and runs the tsd command that is meant to do
the same. Compared: exit status; the --json fields ok, class_name,
missing_keys, unexpected_keys, size_mismatches, error_msgs, message (byte for
byte); the "selected" field; and on success every value of `-o OUT` against
the model Python loaded (keys in order, dtype, shape, bits, _metadata).

usage: run_remap.py --tsd PATH --work DIR [--cases SUBSTR[,SUBSTR...]]
One PASS/FAIL line per case, then `N passed, M failed`; exit 0 only if every
case passed. A case that cannot run is a failure, never a skip.
"""

import argparse
import collections
import copy
import json
import os
import subprocess
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present  # noqa: E402

import oracle  # noqa: E402  (PyTorch's own load_state_dict, error_msgs captured)

OD = collections.OrderedDict
TIMEOUT = 300
FIELDS = ("ok", "class_name", "missing_keys", "unexpected_keys", "size_mismatches",
          "error_msgs", "message")


# ---- models ------------------------------------------------------------------------


class Net(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.Conv2d(4, 6, 3))
        self.fc = nn.Linear(6, classes)


class Wrapper(nn.Module):
    """A model whose keys all live under `backbone.`."""

    def __init__(self):
        super().__init__()
        self.backbone = Net()


def seeded(fn, seed):
    torch.manual_seed(seed)
    return fn()


def randomized(model, seed):
    """A copy of model with different values (so a load visibly changes it)."""
    m = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in list(m.parameters()) + list(m.buffers()):
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g))
            else:
                t.fill_(seed)
    return m


def with_meta(d, meta):
    d = OD(d)
    if meta is not None:
        d._metadata = meta
    return d


# ---- the oracle ----------------------------------------------------------------------


def pytorch_load(model, sd, strict):
    """PyTorch's load_state_dict on `model` (in place): the --json fields
    (oracle.py's capture, shared with the other parity scripts)."""
    report = oracle.load_report(model, sd, strict)
    return OD((k, report[k]) for k in FIELDS)


# ---- comparing -------------------------------------------------------------------------


def clip(s, limit=300):
    r = repr(s)
    return r if len(r) <= limit else r[:limit] + "...(%d chars)" % len(r)


def first_diff(path, got, want):
    if isinstance(got, dict) and isinstance(want, dict):
        for k in want:
            if k not in got:
                return "%s: tsd has no field %r" % (path, k)
            d = first_diff("%s.%s" % (path, k), got[k], want[k])
            if d:
                return d
        return None
    if isinstance(got, list) and isinstance(want, list):
        for i in range(min(len(got), len(want))):
            d = first_diff("%s[%d]" % (path, i), got[i], want[i])
            if d:
                return d
        if len(got) != len(want):
            return "%s: tsd has %d items, torch %d: tsd=%s torch=%s" % (
                path, len(got), len(want), clip(got), clip(want))
        return None
    if got != want:
        return "%s: tsd=%s torch=%s" % (path, clip(got), clip(want))
    return None


def compare_state(got, want, what):
    """Keys in order, dtype, shape, bit-exact values, and _metadata."""
    if list(got.keys()) != list(want.keys()):
        return first_diff("%s keys" % what, list(got.keys()), list(want.keys()))
    for k, w in want.items():
        g = got[k]
        if not isinstance(g, torch.Tensor):
            return "%s[%r] is a %s" % (what, k, type(g).__name__)
        if g.dtype != w.dtype or tuple(g.shape) != tuple(w.shape):
            return "%s[%r]: tsd %s %s, torch %s %s" % (what, k, g.dtype, list(g.shape),
                                                       w.dtype, list(w.shape))
        g, w = g.detach().contiguous(), w.detach().contiguous()
        if g.is_floating_point():
            if not torch.equal(g.view(torch.uint8), w.view(torch.uint8)):
                return "%s[%r]: values differ" % (what, k)
        elif not torch.equal(g, w):
            return "%s[%r]: values differ" % (what, k)
    gm, wm = getattr(got, "_metadata", None), getattr(want, "_metadata", None)
    gm = None if gm is None else [(k, dict(v)) for k, v in gm.items()]
    wm = None if wm is None else [(k, dict(v)) for k, v in wm.items()]
    return first_diff("%s _metadata" % what, gm, wm)


def run_tsd(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "", "timed out"
    except OSError as e:
        return None, "", "cannot run: %s" % e
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ---- case kinds ------------------------------------------------------------------------


class Ctx:
    def __init__(self, tsd, work):
        self.tsd, self.work = tsd, work

    def path(self, case, name):
        return os.path.join(self.work, "%s-%s" % (case, name))


def load_case(name, make_model, make_ckpt, python_sd, flags, strict=True,
              selected=None):
    """tsd load --model-spec SPEC CKPT FLAGS --json -o OUT against
    model.load_state_dict(python_sd(ckpt_obj))."""
    def run(ctx):
        model = make_model()
        ckpt_obj = make_ckpt(model)
        spec, ckpt = ctx.path(name, "spec.pth"), ctx.path(name, "ckpt.pth")
        out = ctx.path(name, "out.pth")
        torch.save(model.state_dict(), spec)
        torch.save(ckpt_obj, ckpt)
        if os.path.exists(out):
            os.remove(out)
        py_model = copy.deepcopy(model)
        want = pytorch_load(py_model, python_sd(copy.deepcopy(ckpt_obj)), strict)
        cmd = [ctx.tsd, "load", "--model-spec", spec, "--class-name", want["class_name"],
               ckpt] + flags + (["--non-strict"] if not strict else []) + ["--json", "-o", out]
        rc, stdout, stderr = run_tsd(cmd)
        if rc is None or rc not in (0, 1):
            return "tsd exit %s: %s" % (rc, clip(stderr.strip()))
        try:
            got = json.loads(stdout)
        except ValueError:
            return "stdout is not JSON: %s" % clip(stdout)
        d = first_diff("json", {k: got.get(k) for k in FIELDS}, want)
        if d:
            return d
        if rc != (0 if want["ok"] else 1):
            return "exit status %d, torch ok=%s" % (rc, want["ok"])
        if got.get("selected") != selected:
            return "json.selected: tsd=%r expected %r" % (got.get("selected"), selected)
        keys = list(got.keys())
        if keys[-1] != "selected":  # a new field goes after the existing ones
            return "json field order: %s" % keys
        if want["ok"]:
            if not os.path.exists(out):
                return "-o OUT not written"
            d = compare_state(torch.load(out), py_model.state_dict(), "OUT")
            if d:
                return d
        elif os.path.exists(out):
            return "load failed but OUT was written"
        # Without --json: PyTorch's text, byte for byte.
        rc2, text, err2 = run_tsd(cmd[:-3])
        if text != want["message"] + "\n":
            return first_diff("text", text, want["message"] + "\n") or "text differs"
        return None
    return name, run


def diff_case(name, make_model, make_ckpt, python_sd, flags):
    """tsd diff --json: what a strict load would do, nothing loaded."""
    def run(ctx):
        model = make_model()
        ckpt_obj = make_ckpt(model)
        spec, ckpt = ctx.path(name, "spec.pth"), ctx.path(name, "ckpt.pth")
        torch.save(model.state_dict(), spec)
        torch.save(ckpt_obj, ckpt)
        want = pytorch_load(copy.deepcopy(model), python_sd(copy.deepcopy(ckpt_obj)), True)
        rc, stdout, stderr = run_tsd([ctx.tsd, "diff", "--model-spec", spec, "--class-name",
                                      type(model).__name__, ckpt] + flags + ["--json"])
        if rc not in (0, 1):
            return "tsd diff exit %s: %s" % (rc, clip(stderr.strip()))
        got = json.loads(stdout)
        for f in ("ok", "missing_keys", "unexpected_keys", "size_mismatches", "error_msgs",
                  "message"):
            d = first_diff("json." + f, got.get(f), want[f])
            if d:
                return d
        if rc != (0 if want["ok"] else 1):
            return "exit status %d, torch ok=%s" % (rc, want["ok"])
        sd = python_sd(copy.deepcopy(ckpt_obj))
        mismatched = {m["key"] for m in want["size_mismatches"]}
        matched = [k for k in model.state_dict() if k in sd and k not in mismatched]
        d = first_diff("json.matched_keys", got.get("matched_keys"), matched)
        if d:
            return d
        # nothing written: the spec file is untouched by construction; the
        # table form must exit alike
        rc2, _, _ = run_tsd([ctx.tsd, "diff", "--model-spec", spec, "--class-name",
                             type(model).__name__, ckpt] + flags)
        return None if rc2 == rc else "table form exit %s vs json %s" % (rc2, rc)
    return name, run


def pop_case(name, make_sd, keys, flags=()):
    """tsd pop CKPT KEY... -o OUT against sd.pop(key) + torch.save."""
    def run(ctx):
        ckpt_obj = make_sd()
        ckpt, out = ctx.path(name, "ckpt.pth"), ctx.path(name, "out.pth")
        torch.save(ckpt_obj, ckpt)
        if os.path.exists(out):
            os.remove(out)
        rc, stdout, stderr = run_tsd([ctx.tsd, "pop", ckpt] + list(keys) + ["-o", out] +
                                     list(flags))
        if rc != 0:
            return "tsd pop exit %s: %s" % (rc, clip(stderr.strip()))
        want = copy.deepcopy(ckpt_obj)
        if "--select" in flags:
            want = want[flags[flags.index("--select") + 1]]
        for k in keys:
            want.pop(k)
        return compare_state(torch.load(out), want, "OUT")
    return name, run


def error_case(name, make_ckpt, spec_model, args, want_rc, want_in_stderr):
    def run(ctx):
        model = spec_model()
        spec, ckpt = ctx.path(name, "spec.pth"), ctx.path(name, "ckpt.pth")
        torch.save(model.state_dict(), spec)
        torch.save(make_ckpt(model), ckpt)
        cmd = [ctx.tsd] + [a.replace("SPEC", spec).replace("CKPT", ckpt) for a in args]
        rc, stdout, stderr = run_tsd(cmd)
        if rc != want_rc:
            return "exit %s, expected %d: %s" % (rc, want_rc, clip(stderr.strip()))
        if want_in_stderr not in stderr:
            return "stderr lacks %r: %s" % (want_in_stderr, clip(stderr))
        return None
    return name, run


# ---- checkpoints -------------------------------------------------------------------------


def net():
    return seeded(Net, 1)


def dataparallel(model):
    return nn.DataParallel(randomized(model, 7)).state_dict()


def compiled(model):
    """torch.compile's OptimizedModule keeps the model as `_orig_mod` (torch 2.x);
    its state_dict is the model's with that prefix and the metadata renamed."""
    sd = randomized(model, 8).state_dict()
    out = OD(("_orig_mod." + k, v) for k, v in sd.items())
    out._metadata = OD([("", {"version": 1})] +
                       [("_orig_mod" + ("." + k if k else ""), v)
                        for k, v in sd._metadata.items()])
    return out


def compiled_ddp(model):
    sd = nn.DataParallel(randomized(model, 9)).state_dict()
    out = OD(("_orig_mod." + k, v) for k, v in sd.items())
    out._metadata = OD([("", {"version": 1})] +
                       [("_orig_mod" + ("." + k if k else ""), v)
                        for k, v in sd._metadata.items()])
    return out


def dp_extra(model):
    """DataParallel checkpoint with unexpected keys in several modules (their
    order after consume_prefix is sorted) and one key missing."""
    sd = dataparallel(model)
    meta = sd._metadata
    sd = OD(sd)
    del sd["module.features.3.bias"]
    sd["module.fc.zeta"] = torch.ones(2)
    sd["module.extra.w"] = torch.ones(1)
    sd["module.fc.alpha"] = torch.ones(3)
    sd["module.features.9.weight"] = torch.ones(1)
    sd["keep.me"] = torch.ones(1)
    sd._metadata = meta
    return sd


def dp_mismatch(model):
    sd = dataparallel(model)
    meta = sd._metadata
    sd = OD(sd)
    sd["module.fc.weight"] = torch.ones(1000, 6)
    sd["module.fc.bias"] = torch.ones(1000)
    sd._metadata = meta
    return sd


def dp_old_bn(model):
    """A DataParallel checkpoint without num_batches_tracked but whose
    _metadata says version 2: torch 1.13's consume_prefix leaves _metadata
    alone, so the BatchNorm finds no version and the rule fills in 0."""
    sd = dataparallel(model)
    meta = sd._metadata
    sd = OD((k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    sd._metadata = meta
    return sd


def strip(prefixes):
    def f(sd):
        for p in prefixes:
            consume_prefix_in_state_dict_if_present(sd, p)
        return sd
    return f


def training(key, extra=None):
    def make(model):
        d = {"epoch": 7, "optimizer": {"lr": 0.1, "state": {}}, key: randomized(model, 11)
             .state_dict()}
        d.update(extra(model) if extra else {})
        return d
    return make


def ema_and_raw(model):
    return {"epoch": 3, "model_ema": randomized(model, 12).state_dict(),
            "state_dict": randomized(model, 13).state_dict(), "arch": "net"}


def renamed_ckpt(model):
    """An older layout: `body.` for features, `head.` for fc."""
    sd = randomized(model, 14).state_dict()
    out = OD()
    for k, v in sd.items():
        out[k.replace("features.", "body.", 1).replace("fc.", "head.", 1)] = v
    meta = OD()
    for k, v in sd._metadata.items():
        meta[k.replace("features", "body", 1).replace("fc", "head", 1)] = v
    out._metadata = meta
    return out


def rename_py(rules):
    def f(sd):
        meta = getattr(sd, "_metadata", None)
        out = OD()
        for k, v in sd.items():
            for old, new in rules:
                if k.startswith(old):
                    k = new + k[len(old):]
                    break
            out[k] = v
        if meta is not None:
            m2 = OD()
            for k, v in meta.items():
                form = k + "." if k else ""
                for old, new in rules:
                    if form.startswith(old):
                        form = new + form[len(old):]
                        break
                m2[form[:-1] if form.endswith(".") else form] = v
            out._metadata = m2
        return out
    return f


def backbone_only(model):
    return randomized(model.backbone, 15).state_dict()


def add_py(prefix):
    def f(sd):
        meta = sd._metadata
        out = OD((prefix + k, v) for k, v in sd.items())
        out._metadata = OD(((prefix + k if k else prefix[:-1]), v) for k, v in meta.items())
        return out
    return f


def collide(model):
    sd = OD(dataparallel(model))
    sd["fc.weight"] = sd["module.fc.weight"].clone()
    return sd


def plain_sd():
    m = seeded(Net, 3)
    return m.state_dict()


def pick(key):
    return lambda d: d[key]


CASES = [
    load_case("dataparallel_strip_module", net, dataparallel, strip(["module."]),
              ["--strip-prefix", "module."]),
    load_case("dataparallel_unexpected_order_nonstrict", net, dp_extra, strip(["module."]),
              ["--strip-prefix", "module."], strict=False),
    load_case("dataparallel_unexpected_order_strict", net, dp_extra, strip(["module."]),
              ["--strip-prefix", "module."]),
    load_case("dataparallel_size_mismatch_names_stripped_key", net, dp_mismatch,
              strip(["module."]), ["--strip-prefix", "module."]),
    load_case("dataparallel_bn_metadata_left_alone_1_13", net, dp_old_bn, strip(["module."]),
              ["--strip-prefix", "module."]),
    load_case("dataparallel_without_strip_fails", net, dataparallel, lambda sd: sd, []),
    load_case("orig_mod_strip", net, compiled, strip(["_orig_mod."]),
              ["--strip-prefix", "_orig_mod."]),
    load_case("orig_mod_then_module_strip", net, compiled_ddp, strip(["_orig_mod.", "module."]),
              ["--strip-prefix", "_orig_mod.", "--strip-prefix", "module."]),
    load_case("auto_select_model", net, training("model"), pick("model"), [],
              selected="model"),
    load_case("auto_select_state_dict_before_ema", net, ema_and_raw, pick("state_dict"), [],
              selected="state_dict"),
    load_case("select_auto_flag_model_state_dict", net, training("model_state_dict"),
              pick("model_state_dict"), ["--select", "auto"], selected="model_state_dict"),
    load_case("explicit_select_model_ema", net, ema_and_raw, pick("model_ema"),
              ["--select", "model_ema"], selected="model_ema"),
    load_case("auto_select_then_strip", net,
              lambda m: {"epoch": 1, "model": dataparallel(m)},
              lambda d: strip(["module."])(d["model"]), ["--strip-prefix", "module."],
              selected="model"),
    load_case("rename_prefixes", net, renamed_ckpt,
              rename_py([("body.", "features."), ("head.", "fc.")]),
              ["--rename", "body.=features.", "--rename", "head.=fc."]),
    load_case("rename_first_rule_wins", net, renamed_ckpt,
              rename_py([("body.", "features."), ("body.0.", "nothing."), ("head.", "fc.")]),
              ["--rename", "body.=features.", "--rename", "body.0.=nothing.",
               "--rename", "head.=fc."]),
    load_case("add_prefix_backbone", lambda: seeded(Wrapper, 2), backbone_only,
              add_py("backbone."), ["--add-prefix", "backbone."]),
    diff_case("diff_dataparallel_mismatch", net, dp_mismatch, strip(["module."]),
              ["--strip-prefix", "module."]),
    diff_case("diff_unexpected_and_missing", net, dp_extra, strip(["module."]),
              ["--strip-prefix", "module."]),
    diff_case("diff_clean", net, lambda m: randomized(m, 5).state_dict(), lambda sd: sd, []),
    pop_case("pop_head", plain_sd, ["fc.weight", "fc.bias"]),
    pop_case("pop_bn_buffer", plain_sd, ["features.1.running_var"]),
    pop_case("pop_selected", lambda: {"epoch": 1, "model": plain_sd()}, ["fc.bias"],
             ["--select", "model"]),
    error_case("collision_is_an_error", collide, net,
               ["load", "--model-spec", "SPEC", "--class-name", "Net", "CKPT",
                "--strip-prefix", "module."], 2, "same name 'fc.weight'"),
    error_case("pop_refuses_non_tensor_entries",
               lambda m: OD(list(m.state_dict().items()) + [("step", 5)]), net,
               ["pop", "CKPT", "fc.bias", "-o", "CKPT.out"], 2,
               "entry 'step' is a <class 'int'>: the .pth writer writes tensors only"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tsd", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cases", default="")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    ctx = Ctx(os.path.abspath(args.tsd), args.work)
    wanted = [s for s in args.cases.split(",") if s]
    passed = failed = 0
    for name, run in CASES:
        if wanted and not any(w in name for w in wanted):
            continue
        try:
            why = run(ctx)
        except Exception as e:  # noqa: BLE001 -- a case that cannot run fails
            why = "case error: %s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
        if why:
            failed += 1
            print("FAIL %s: %s" % (name, why))
        else:
            passed += 1
            print("PASS %s" % name)
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
