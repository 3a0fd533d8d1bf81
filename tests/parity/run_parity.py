#!/usr/bin/python3
"""PyTorch parity suite for `tsd load`.

For every case in cases.py: write the model spec, the checkpoint and a
TorchScript model with Debian's Python torch (cached in --work under a hash of
the generator code), run Python's load_state_dict (the oracle, oracle.py),
run `tsd load ... --json -o OUT`, and compare field by field: exit status,
ok, class_name, missing_keys, unexpected_keys, size_mismatches, popped_keys,
popped, error_msgs, message (byte for byte); on success every value of OUT
(torch.load / torch.jit.load) against the model Python loaded (same keys in
the same order, dtype, shape, torch.equal, and _metadata); on failure, that
OUT was not written.

Targets: eager (`tsd load --model-spec SPEC --class-name NAME CKPT`) and
torchscript (`tsd load MODEL.pt CKPT`). One line per case and target, then
`N passed, M failed`. Exit 0 only if nothing failed; a case that cannot run
is a failure with its reason, never a skip.

usage: run_parity.py --tsd PATH --work DIR [--targets eager,torchscript]
                     [--cases SUBSTR[,SUBSTR...]] [--verbose]
"""

import argparse
import collections
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torchvision  # noqa: E402

import cases as cases_mod  # noqa: E402
import oracle  # noqa: E402

TSD_TIMEOUT = 600
FIELDS = ("ok", "class_name", "missing_keys", "unexpected_keys", "size_mismatches",
          "popped_keys", "popped", "error_msgs", "message")


def generator_hash():
    h = hashlib.sha256()
    for name in ("cases.py", "oracle.py", "run_parity.py"):
        with open(os.path.join(HERE, name), "rb") as f:
            h.update(f.read())
    h.update(torch.__version__.encode())
    h.update(torchvision.__version__.encode())
    return h.hexdigest()[:16]


# ---- showing differences ---------------------------------------------------------


def _clip(s, limit=240):
    r = repr(s)
    return r if len(r) <= limit else r[:limit] + "...(%d chars)" % len(r)


def first_diff(path, got, want):
    """The first difference between tsd's value and PyTorch's, as one line
    showing both sides, or None."""
    if isinstance(want, str) and isinstance(got, str):
        if got == want:
            return None
        i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
                 min(len(got), len(want)))
        lo = max(0, i - 40)
        return "%s differs at char %d: tsd=%s torch=%s" % (
            path, i, _clip(got[lo:i + 80]), _clip(want[lo:i + 80]))
    if isinstance(want, list) and isinstance(got, list):
        for k in range(min(len(got), len(want))):
            d = first_diff("%s[%d]" % (path, k), got[k], want[k])
            if d:
                return d
        if len(got) != len(want):
            k = min(len(got), len(want))
            return "%s has %d items, torch has %d: first extra %s=%s" % (
                path, len(got), len(want),
                "tsd" if len(got) > len(want) else "torch",
                _clip(got[k] if len(got) > len(want) else want[k]))
        return None
    if isinstance(want, dict) and isinstance(got, dict):
        for k in want:
            if k not in got:
                return "%s: tsd lacks field %r (torch=%s)" % (path, k, _clip(want[k]))
            d = first_diff("%s.%s" % (path, k), got[k], want[k])
            if d:
                return d
        return None
    if type(got) is not type(want) or got != want:
        return "%s: tsd=%s torch=%s" % (path, _clip(got), _clip(want))
    return None


_BITS = {torch.float16: torch.int16, torch.bfloat16: torch.int16,
         torch.float32: torch.int32, torch.float64: torch.int64}
_MASK = {torch.int16: 0xFFFF, torch.int32: 0xFFFFFFFF, torch.int64: 0xFFFFFFFFFFFFFFFF}


def compare_values(got, want, what):
    """got/want: ordered {key: tensor}. Exact: key order, dtype, shape, values."""
    gk, wk = list(got.keys()), list(want.keys())
    if gk != wk:
        d = first_diff("%s keys" % what, gk, wk)
        return d or "%s keys differ" % what
    for k in wk:
        g, w = got[k], want[k]
        if not isinstance(g, torch.Tensor):
            return "%s[%r]: tsd wrote %s, torch has a tensor" % (what, k, type(g).__name__)
        if g.dtype != w.dtype:
            return "%s[%r] dtype: tsd=%s torch=%s" % (what, k, g.dtype, w.dtype)
        if tuple(g.shape) != tuple(w.shape):
            return "%s[%r] shape: tsd=%s torch=%s" % (what, k, list(g.shape), list(w.shape))
        g, w = g.detach().contiguous(), w.detach().contiguous()
        if g.is_floating_point():
            # bit for bit: -0.0 against 0.0 and NaN payloads count too
            bits = _BITS[g.dtype]
            gb, wb = g.view(bits), w.view(bits)
            if not torch.equal(gb, wb):
                diff = (gb != wb).nonzero()
                idx = tuple(int(i) for i in diff[0]) if diff.numel() else ()
                return "%s[%r] value at %s: tsd=%r (bits %#x) torch=%r (bits %#x) (%d differ)" % (
                    what, k, list(idx), g[idx].item(), gb[idx].item() & _MASK[bits],
                    w[idx].item(), wb[idx].item() & _MASK[bits], diff.shape[0])
        elif not torch.equal(g, w):
            diff = (g != w).nonzero()
            idx = tuple(int(i) for i in diff[0]) if diff.numel() else ()
            gv = g[idx].item() if g.dim() else g.item()
            wv = w[idx].item() if w.dim() else w.item()
            return "%s[%r] value at %s: tsd=%r torch=%r (%d elements differ)" % (
                what, k, list(idx), gv, wv, diff.shape[0])
    return None


# ---- files -------------------------------------------------------------------------


def atomic_save(obj, path, save=None, jit=False):
    tmp = path + ".tmp"
    save = dict(save or {})
    if jit:
        torch.jit.save(obj, tmp)
    elif save.pop("fileobj", False):
        with open(tmp, "wb") as f:  # records are then named archive/...
            torch.save(obj, f, **save)
    else:
        torch.save(obj, tmp, **save)
    os.replace(tmp, path)


class Work:
    """Generated files (cached) and the models the oracle needs (memoised)."""

    def __init__(self, root):
        self.root = root
        self.cache = os.path.join(root, "cache-" + generator_hash())
        os.makedirs(self.cache, exist_ok=True)
        for d in os.listdir(root):  # stale generations
            p = os.path.join(root, d)
            if d.startswith("cache-") and p != self.cache:
                shutil.rmtree(p, ignore_errors=True)
        self.out = os.path.join(root, "out")
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)
        self._models = {}

    def model(self, key):
        """A fresh copy of the model before any load."""
        if key not in self._models:
            self._models = {key: cases_mod.MODELS[key]()}  # keep one (ViT is big)
        return oracle.clone_model(self._models[key])

    def spec(self, case):
        full = bool(case.non_persistent or case.all_persistent)
        path = os.path.join(self.cache, "spec-%s%s.pth" % (case.model, "-full" if full else ""))
        if not os.path.exists(path):
            atomic_save(oracle.spec_state(self.model(case.model), case), path)
        return path

    def checkpoint(self, case):
        path = os.path.join(self.cache, "ckpt-%s" % (case.ckpt_file or case.name + ".pth"))
        if not os.path.exists(path):
            atomic_save(case.ckpt(self.model(case.model)), path, case.save)
        return path

    def torchscript(self, case):
        path = os.path.join(self.cache, "model-%s.pt" % case.model)
        keys = path + ".keys.json"
        if not (os.path.exists(path) and os.path.exists(keys)):
            sm = oracle.script(self.model(case.model))
            with open(keys + ".tmp", "w") as f:
                json.dump(list(sm.state_dict().keys()), f)
            atomic_save(sm, path, jit=True)
            os.replace(keys + ".tmp", keys)
        with open(keys) as f:
            return path, json.load(f)


# ---- running tsd ---------------------------------------------------------------------


def run_tsd(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=TSD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "", "timed out after %d s" % TSD_TIMEOUT
    except OSError as e:
        return None, "", "cannot run %s: %s" % (cmd[0], e)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def describe_exit(rc, err):
    if rc is None:
        return err
    if rc < 0:
        return "tsd killed by signal %d; stderr: %s" % (-rc, _clip(err.strip()))
    return "tsd exit %d; stderr: %s" % (rc, _clip(err.strip()))


def load_options(case, target):
    opts = []
    if not case.strict:
        opts.append("--non-strict")
    if case.auto_pop:
        opts.append("--auto-pop")
    for k in case.select:
        opts += ["--select", k]
    for m in case.modules:
        opts += ["--module", m]
    for n in case.non_persistent:
        opts += ["--non-persistent", n]
    if target == "eager":
        for n in case.none_params:
            opts += ["--none-param", n]
    return opts


def check_report(cmd, want, out_path):
    """Runs tsd --json; returns (difference or None, rc)."""
    if os.path.exists(out_path):
        os.remove(out_path)
    rc, stdout, stderr = run_tsd(cmd)
    if rc is None or rc < 0 or rc == 2:
        return describe_exit(rc, stderr), rc
    lines = stdout.strip().split("\n")
    try:
        got = json.loads(stdout)
    except ValueError:
        return "stdout is not one JSON object (%s); %s" % (
            _clip(stdout.strip()), describe_exit(rc, stderr)), rc
    if not isinstance(got, dict) or len(lines) != 1:
        return "stdout is not one JSON object on one line: %s" % _clip(stdout), rc
    want_rc = 0 if want["ok"] else 1
    if rc != want_rc:
        return "exit status: tsd=%d torch=%d (ok=%s); %s" % (
            rc, want_rc, want["ok"], first_diff("json", got, want) or "report agrees"), rc
    d = first_diff("json", {k: got.get(k) for k in FIELDS if k in got}, want)
    if d:
        return d, rc
    if want["ok"] and not os.path.exists(out_path):
        return "load succeeded but -o %s was not written" % out_path, rc
    if not want["ok"] and os.path.exists(out_path):
        return "load failed but -o %s was written anyway" % out_path, rc
    return None, rc


def message_escape(s):
    """tsd_escape's TSD_ESCAPE_MESSAGE: repr() of each character that repr
    escapes, a backslash kept as it is."""
    return "".join(c if c == "\\" else repr(c)[1:-1] for c in s)


def shown_message(want):
    """PyTorch's text as the tsd command prints it: the RuntimeError's own
    lines kept, every piece (class name, each error) escaped, so that a key
    holding a newline cannot forge a line; the _IncompatibleKeys repr is
    escaped by repr already. --json's "message" is PyTorch's text exactly."""
    if want["ok"]:
        return want["message"]
    return ("Error(s) in loading state_dict for %s:\n\t" %
            message_escape(want["class_name"]) +
            "\n\t".join(message_escape(m) for m in want["error_msgs"]))


def check_text(cmd, want):
    """Without --json: the message alone (PyTorch's text, escaped)."""
    rc, stdout, stderr = run_tsd(cmd)
    if rc is None or rc < 0 or rc == 2:
        return "without --json: " + describe_exit(rc, stderr)
    d = first_diff("text output", stdout, shown_message(want) + "\n")
    if d:
        return "without --json: " + d
    if rc != (0 if want["ok"] else 1):
        return "without --json: exit status %d" % rc
    return None


def run_eager(args, work, case, want, py_model):
    spec = work.spec(case)
    ckpt = work.checkpoint(case)
    out = os.path.join(work.out, "eager-%s.pth" % case.name)
    base = [args.tsd, "load", "--model-spec", spec, "--class-name", want["class_name"], ckpt]
    base += load_options(case, "eager")
    d, _ = check_report(base + ["--json", "-o", out], want, out)
    if d:
        return d
    if want["ok"]:
        try:
            got = torch.load(out)
        except Exception as e:  # noqa: BLE001 -- any failure is the finding
            return "torch.load(-o %s) failed: %s: %s" % (out, type(e).__name__, e)
        want_sd = py_model.state_dict()
        d = compare_values(got, want_sd, "OUT.pth")
        if d:
            return d
        gm, wm = getattr(got, "_metadata", None), getattr(want_sd, "_metadata", None)
        gm = None if gm is None else [(k, dict(v)) for k, v in gm.items()]
        wm = None if wm is None else [(k, dict(v)) for k, v in wm.items()]
        d = first_diff("OUT.pth _metadata", gm, wm)
        if d:
            return d
        os.remove(out)
    return check_text(base, want)


def run_torchscript(args, work, case, want, py_model):
    model_pt, ts_keys = work.torchscript(case)
    ckpt = work.checkpoint(case)
    out = os.path.join(work.out, "ts-%s.pt" % case.name)
    cmd = [args.tsd, "load", model_pt, ckpt] + load_options(case, "torchscript")
    d, _ = check_report(cmd + ["--json", "-o", out], want, out)
    if d:
        return d
    if want["ok"]:
        try:
            got = torch.jit.load(out).state_dict()
        except Exception as e:  # noqa: BLE001
            return "torch.jit.load(-o %s) failed: %s: %s" % (out, type(e).__name__, e)
        full = oracle.full_state_dict(py_model)
        if sorted(full) != sorted(ts_keys):
            return ("case error: TorchScript state_dict keys %s differ from the eager "
                    "model's tensors %s" % (_clip(ts_keys), _clip(list(full))))
        want_sd = collections.OrderedDict((k, full[k]) for k in ts_keys)
        d = compare_values(got, want_sd, "OUT.pt")
        if d:
            return d
        os.remove(out)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tsd", required=True, help="the tsd binary")
    ap.add_argument("--work", required=True, help="directory for generated files")
    ap.add_argument("--targets", default="eager,torchscript",
                    help="comma-separated: eager, torchscript (default both)")
    ap.add_argument("--cases", default="", help="comma-separated substrings of case names")
    ap.add_argument("--verbose", action="store_true", help="print expected reports of failures")
    args = ap.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    for t in targets:
        if t not in ("eager", "torchscript"):
            ap.error("unknown target %r" % t)
    args.tsd = os.path.abspath(args.tsd)
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(2)
    warnings.filterwarnings("ignore", message="Initializing zero-element tensors")

    selected = [c for c in cases_mod.CASES
                if not args.cases or any(s in c.name for s in args.cases.split(","))]
    if not selected:
        print("no case matches --cases %r" % args.cases)
        print("0 passed, 1 failed")
        return 1
    if not os.access(args.tsd, os.X_OK):
        print("FAIL setup: tsd binary %s is not executable" % args.tsd)
    work = Work(args.work)
    passed = failed = 0
    t0 = time.time()
    for case in selected:
        # One oracle run per case serves both targets (tsd gets --non-persistent
        # for TorchScript too, so the eager answer is the TorchScript one).
        want, py_model, setup_error = None, None, None
        try:
            py_model = work.model(case.model)
            ckpt_obj = torch.load(work.checkpoint(case))
            work.spec(case)
            want = oracle.run(py_model, ckpt_obj, case)
            del ckpt_obj
        except Exception as e:  # noqa: BLE001 -- a case that cannot run fails
            setup_error = "cannot set up the case: %s: %s" % (type(e).__name__, e)
            if args.verbose:
                traceback.print_exc()
        for target in targets:
            if target == "torchscript" and not case.torchscript:
                continue
            label = "%s/%s" % (target, case.name)
            t1 = time.time()
            if setup_error:
                d = setup_error
            else:
                try:
                    fn = run_eager if target == "eager" else run_torchscript
                    d = fn(args, work, case, want, py_model)
                except Exception as e:  # noqa: BLE001
                    d = "harness error: %s: %s" % (type(e).__name__, e)
                    if args.verbose:
                        traceback.print_exc()
            secs = time.time() - t1
            if d:
                failed += 1
                print("FAIL %s: %s" % (label, d), flush=True)
                if args.verbose and want is not None:
                    print("     expected: %s" % json.dumps(want), flush=True)
            else:
                passed += 1
                print("PASS %s (%.1f s)" % (label, secs), flush=True)
    if not os.access(args.tsd, os.X_OK):
        failed += 1
    print("(%.0f s)" % (time.time() - t0))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
