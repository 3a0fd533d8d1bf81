#!/usr/bin/python3
"""Parity for checkpoints full of Python objects (issue 10 items 1-3, 7):
what `tsd inspect --json` lists and what `tsd load` does, against Python's
torch.load and load_state_dict.

The zoo is written by this script with Debian's torch 1.13 and numpy:
  - training dicts holding argparse.Namespace, a namedtuple, numpy scalars
    and arrays, and stand-ins for Lightning's AttributeDict and class-keyed
    callbacks, omegaconf's DictConfig/ListConfig (with `_parent` back
    references) and mmengine's HistoryBuffer, defined in local packages of
    the real module names (so the pickles name the real globals), and a
    tensor subclass; pickle protocols 2, 4 and 5;
  - whole pickled models and the YOLO-style {'model': <module in half>};
  - pytorch/examples' ImageNet checkpoint (a tensor among the top-level
    extras);
  - the legacy format with pickle protocols 0 and 1.
Each file's top-level entries (or those of the dict a case selects) must
match Python's view: key order; tensor dtype and shape; numpy arrays as
tensors of their dtype and shape; numpy and Python scalars by value; dict,
list, tuple by length; any other object as kind "object" with its class
(module.qualname). Loads compare tsd's --json report with PyTorch's own
(oracle.py): ok, key lists, error_msgs, message byte for byte, and the
values written with -o bit for bit.

usage: run_objects.py --tsd PATH --work DIR [--cases SUBSTR[,...]]
One PASS/FAIL line per case, last line `N passed, M failed`; exit 0 only if
all pass. A case that cannot run is a failure, never a skip.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import traceback
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import oracle  # noqa: E402

OD = collections.OrderedDict
FIELDS = ("ok", "class_name", "missing_keys", "unexpected_keys",
          "size_mismatches", "error_msgs", "message")
TIMEOUT = 600
P = collections.namedtuple("P", "a b")

# Stand-ins for third-party classes, in packages of the real names.
FAKES = {
    "omegaconf/__init__.py":
        "from .dictconfig import DictConfig\nfrom .listconfig import ListConfig\n",
    "omegaconf/dictconfig.py": '''
class DictConfig:
    def __init__(self, content, parent=None):
        from .listconfig import ListConfig
        self.__dict__["_parent"] = parent
        self.__dict__["_metadata"] = {"ref_type": object, "flags": {}}
        self.__dict__["_content"] = {
            k: DictConfig(v, self) if isinstance(v, dict) else
            ListConfig(v, self) if isinstance(v, list) else v
            for k, v in content.items()}
    def __getstate__(self):
        return dict(self.__dict__)
    def __setstate__(self, d):
        self.__dict__.update(d)
''',
    "omegaconf/listconfig.py": '''
class ListConfig:
    def __init__(self, content, parent=None):
        self._parent = parent
        self._content = list(content)
''',
    "lightning_fabric/__init__.py": "",
    "lightning_fabric/utilities/__init__.py": "",
    "lightning_fabric/utilities/data.py": '''
class AttributeDict(dict):
    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k)
    def __setattr__(self, k, v):
        self[k] = v
''',
    "pytorch_lightning/__init__.py": "",
    "pytorch_lightning/callbacks/__init__.py":
        "from .model_checkpoint import ModelCheckpoint\n",
    "pytorch_lightning/callbacks/model_checkpoint.py": '''
class ModelCheckpoint:
    pass
''',
    "mmengine/__init__.py": "",
    "mmengine/logging/__init__.py": "",
    "mmengine/logging/history_buffer.py": '''
import numpy as np
class HistoryBuffer:
    def __init__(self, log_history=(), count_history=(), max_length=1000000):
        self.max_length = max_length
        self._set_default_statistics()
        self._log_history = np.array(log_history)
        self._count_history = np.array(count_history)
    def _set_default_statistics(self):
        self._statistics_methods = {"mean": None}
''',
    "mylib/__init__.py": "",
    "mylib/tensors.py": '''
import torch
class MyTensor(torch.Tensor):
    pass
''',
}


def write_fakes(work):
    root = os.path.join(work, "fakes")
    for rel, text in FAKES.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    sys.path.insert(0, root)


def linear(seed, dtype=torch.float32):
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 3).to(dtype)


def subclass(cls):
    t = torch.arange(3.0).as_subclass(cls)
    t.note = "kept in the state"  # (1.13 cannot load one with no __dict__)
    return t


def objects_zoo():
    from omegaconf import DictConfig, ListConfig
    from lightning_fabric.utilities.data import AttributeDict
    from pytorch_lightning.callbacks import ModelCheckpoint
    from mmengine.logging.history_buffer import HistoryBuffer
    from mylib.tensors import MyTensor
    return OD([
        ("epoch", 3),
        ("state_dict", linear(1).state_dict()),
        ("args", argparse.Namespace(lr=0.1, arch="resnet18", layers=[1, 2])),
        ("pair", P(1, "b")),
        ("cfg", DictConfig({"model": {"dim": 3, "names": ["a", "b"]},
                            "lr": 1e-3})),
        ("list_cfg", ListConfig([1, 2, 3])),
        ("hparams", AttributeDict(lr=0.5, batch=32)),
        ("callbacks", {ModelCheckpoint: {"best_model_score": torch.tensor(0.5)}}),
        ("history", HistoryBuffer([1.0, 2.0], [1, 1])),
        ("subclass", subclass(MyTensor)),
        ("np_f64", np.float64(1.5)), ("np_f32", np.float32(-2.25)),
        ("np_f16", np.float16(0.5)), ("np_i64", np.int64(-7)),
        ("np_i32", np.int32(7)), ("np_i8", np.int8(-3)),
        ("np_u8", np.uint8(200)), ("np_u64", np.uint64(5)),
        ("np_bool", np.bool_(True)),
        ("arr", np.arange(12, dtype=np.float32).reshape(3, 4)),
        ("arr_f", np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3))),
        ("arr_be", np.arange(4, dtype=">i4")),
        ("arr_be_f8", np.array([1.5, -2.0], dtype=">f8")),
        ("arr_0d", np.array(3.5)),
        ("arr_empty", np.zeros((0, 3), dtype=np.float16)),
        ("arr_bool", np.array([True, False])),
        ("arr_obj", np.array([1, "a"], dtype=object)),
        ("arr_c64", np.arange(3, dtype=np.complex64)),
        ("arr_c128", np.array([1 + 2j, -3.5j], dtype=np.complex128)),
        ("arr_c64_be", np.array([1 + 2j, 3 - 4j], dtype=">c8")),
        ("arr_u16", np.array([0, 65535], dtype=np.uint16)),
        ("arr_u32", np.array([[1], [2**32 - 1]], dtype=np.uint32)),
        ("arr_u64_be", np.array([2**64 - 1, 7], dtype=">u8")),
        ("np_c64", np.complex64(1 + 2j)), ("np_c128", np.complex128(-1j)),
        ("np_u64_big", np.uint64(2**64 - 1)), ("np_u16", np.uint16(65535)),
        ("blob", b"\x00\xff"), ("none", None), ("tup", (1, "a")),
        ("nested", {"a": [1, {"b": 2}]}),
    ])


def kind_of(v):
    """What tsd inspect must say about v: (kind, extra)."""
    if type(v) in (torch.Tensor, torch.nn.Parameter):
        return "tensor", (str(v.dtype).replace("torch.", ""), list(v.shape))
    if isinstance(v, np.ndarray) and v.dtype.kind in "biufc":
        return "tensor", (v.dtype.name if v.dtype.name != "bool" else "bool",
                          list(v.shape))
    if isinstance(v, (bool, np.bool_)):
        return "bool", bool(v)
    if isinstance(v, (int, np.integer)) and -2**63 <= int(v) < 2**63:
        return "int", int(v)
    if type(v) is int:
        return "int", v  # beyond 64 bits too: inspect shows the exact value
    if isinstance(v, (float, np.floating)):
        return "float", float(v)
    if type(v) is str:
        return "str", v
    if type(v) in (dict, OD):
        return "dict", len(v)
    if type(v) is list:
        return "list", len(v)
    if type(v) is tuple:
        return "tuple", len(v)
    if type(v) in (bytes, type(None)):
        return {bytes: "bytes", type(None): "None"}[type(v)], None
    t = type(v)
    return "object", t.__module__ + "." + t.__qualname__


def tsd_kind_of(e):
    k = e["kind"]
    if k == "tensor":
        return k, (e["dtype"], e["shape"])
    if k in ("bool", "int", "float", "str"):
        return k, e["value"]
    if k in ("dict", "list", "tuple"):
        return k, e["length"]
    if k == "object":
        return k, e["class"]
    return k, None


def run(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "", "timed out"
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def inspect_case(args, path, select=()):
    want = torch.load(path)
    for k in select:
        want = want[k]
    cmd = [args.tsd, "inspect", "--json", path]
    for k in select:
        cmd += ["--select", k]
    rc, out, err = run(cmd)
    if rc != 0:
        return "tsd inspect exit %s: %s" % (rc, err.strip()[:300])
    got = json.loads(out)["entries"]
    if [e["key"] for e in got] != list(want.keys()):
        return "keys: tsd %s, torch %s" % ([e["key"] for e in got], list(want))
    for e in got:
        g, w = tsd_kind_of(e), kind_of(want[e["key"]])
        if g != w:
            return "%r: tsd %s, torch %s" % (e["key"], g, w)
    return None


BITS = {torch.float16: torch.int16, torch.bfloat16: torch.int16,
        torch.float32: torch.int32, torch.float64: torch.int64}


def same_tensors(got, want):
    if list(got.keys()) != list(want.keys()):
        return "keys %s vs %s" % (list(got.keys()), list(want.keys()))
    for k, w in want.items():
        g = got[k]
        if g.dtype != w.dtype or g.shape != w.shape:
            return "%s: %s%s vs %s%s" % (k, g.dtype, list(g.shape), w.dtype,
                                        list(w.shape))
        g, w = g.detach().contiguous(), w.detach().contiguous()
        if g.dtype in BITS:
            g, w = g.view(BITS[g.dtype]), w.view(BITS[w.dtype])
        if not torch.equal(g, w):
            return "%s: values differ" % k
    return None


def load_case(args, path, model, sd, flags=(), strict=True):
    """tsd load --model-spec (model's initial values) CKPT vs load_state_dict
    of sd into a copy of model."""
    work = args.work
    spec = os.path.join(work, "spec.pth")
    out = os.path.join(work, "out.pth")
    torch.save(model.state_dict(), spec)
    if os.path.exists(out):
        os.remove(out)
    py = oracle.clone_model(model)
    case = types.SimpleNamespace(all_persistent=False, select=[], strict=strict,
                                 auto_pop=False)
    want = oracle.run(py, sd, case)
    cmd = [args.tsd, "load", "--model-spec", spec, "--class-name",
           type(model).__name__, path, "--json", "-o", out] + list(flags)
    if not strict:
        cmd.append("--non-strict")
    rc, stdout, stderr = run(cmd)
    if rc not in (0, 1):
        return "tsd exit %s: %s" % (rc, stderr.strip()[:400])
    got = json.loads(stdout)
    for k in FIELDS:
        if got.get(k) != want[k]:
            return "%s: tsd=%s torch=%s" % (k, json.dumps(got.get(k))[:300],
                                            json.dumps(want[k])[:300])
    if not want["ok"]:
        return "OUT written after a failed load" if os.path.exists(out) else None
    return same_tensors(torch.load(out), py.state_dict())


def _a_hook(module, state_dict, prefix, local_metadata):
    return state_dict


def tsd_state_dict(args, path, select):
    """The tensors tsd reads from path (after --select), through convert."""
    out = os.path.join(args.work, "converted.pth")
    cmd = [args.tsd, "convert", path, out]
    for k in select:
        cmd += ["--select", k]
    rc, _, err = run(cmd)
    if rc != 0:
        raise AssertionError("tsd convert exit %s: %s" % (rc, err[:300]))
    return torch.load(out)


def same_state_dict(got, want):
    """Keys, values and _metadata (module versions) in order."""
    gm, wm = getattr(got, "_metadata", None), getattr(want, "_metadata", None)
    if gm is None or list(gm.items()) != list(wm.items()):
        return "_metadata: tsd %s, torch %s" % (
            None if gm is None else list(gm.items())[:5], list(wm.items())[:5])
    return same_tensors(got, want)


def both_fail(args, path, text):
    try:
        torch.load(path)
        return "torch.load reads it"
    except AssertionError:
        pass
    rc, out, err = run([args.tsd, "inspect", path])
    if rc != 2 or text not in err:
        return "tsd inspect exit %s: %s" % (rc, err.strip()[:300])
    return None


def expect_fail(args, path, model, text):
    spec = os.path.join(args.work, "spec.pth")
    torch.save(model.state_dict(), spec)
    rc, out, err = run([args.tsd, "load", "--model-spec", spec, "--class-name",
                        type(model).__name__, path])
    if rc == 0 or text not in err:
        return "exit %s, want %r in: %s" % (rc, text, err.strip()[:400])
    return None


def cases(args):
    w = args.work
    f = lambda name: os.path.join(w, name)  # noqa: E731
    zoo = objects_zoo()
    for proto in (2, 4, 5):
        torch.save(zoo, f("zoo_p%d.pt" % proto), pickle_protocol=proto)
        yield "inspect_zoo_p%d" % proto, lambda p=proto: inspect_case(
            args, f("zoo_p%d.pt" % p))
        yield "load_zoo_p%d_auto_selects" % proto, lambda p=proto: load_case(
            args, f("zoo_p%d.pt" % p), linear(0), zoo["state_dict"])
    # Whole pickled models: Module.state_dict is the oracle, byte for byte.
    import torchvision
    torch.manual_seed(0)
    models = [("resnet18", torchvision.models.resnet18()),
              ("vit_b_32", torchvision.models.vit_b_32())]
    for name, m in models:
        m.eval()
        torch.save(m, f("%s_whole.pt" % name))
        yield "whole_%s" % name, lambda n=name, m=m: load_case(
            args, f("%s_whole.pt" % n), m, m.state_dict())
        yield "whole_%s_convert_keeps_metadata" % name, lambda n=name, m=m: (
            same_state_dict(tsd_state_dict(args, f("%s_whole.pt" % n), []),
                            m.state_dict()))
        for proto in (1, 2):
            torch.save(m, f("%s_whole_legacy_p%d.pt" % (name, proto)),
                       _use_new_zipfile_serialization=False,
                       pickle_protocol=proto)
            yield "whole_%s_legacy_p%d" % (name, proto), \
                lambda n=name, m=m, p=proto: load_case(
                    args, f("%s_whole_legacy_p%d.pt" % (n, p)), m,
                    m.state_dict())
        half = oracle.clone_model(m).half()
        torch.save({"model": half, "optimizer": None, "epoch": -1},
                   f("%s_yolo.pt" % name))
        yield "yolo_style_%s_half" % name, lambda n=name, h=half: load_case(
            args, f("%s_yolo.pt" % n), h, h.state_dict())
        yield "yolo_style_%s_half_inspect" % name, lambda n=name, h=half: (
            same_tensors(tsd_state_dict(args, f("%s_yolo.pt" % n), ["model"]),
                         h.state_dict()))
    # A buffer that is not persistent, a parameter registered as None.
    m = torch.nn.BatchNorm1d(3)
    m.register_buffer("scratch", torch.ones(2), persistent=False)
    m.register_parameter("unused", None)
    m.eval()
    torch.save(m, f("bn_whole.pt"))
    yield "whole_nonpersistent_and_none", lambda: load_case(
        args, f("bn_whole.pt"), m, m.state_dict())
    # A state-dict hook PyTorch would run: refused, naming the module.
    hooked = torch.nn.Sequential(torch.nn.Linear(2, 2))
    hooked[0]._register_state_dict_hook(_a_hook)
    torch.save(hooked, f("hooked.pt"))
    yield "whole_with_state_dict_hook_refused", lambda: expect_fail(
        args, f("hooked.pt"), hooked,
        "module '0' (torch.nn.modules.linear.Linear) has 1 state-dict hook")
    # Shared submodules nested 40 deep: 2^40 paths in PyTorch's state_dict;
    # tsd stops at one entry per byte of the file, at once.
    expo = torch.nn.Linear(1, 1)
    for _ in range(40):
        n = torch.nn.Module()
        n.a = expo
        n.b = expo
        expo = n
    torch.save(expo, f("expo.pt"))
    yield "whole_exponential_submodules_bounded", lambda: expect_fail(
        args, f("expo.pt"), torch.nn.Linear(1, 1),
        "entries (one per byte of the file")
    # pytorch/examples ImageNet: a tensor beside 'state_dict'.
    r = torchvision.models.resnet18()
    imagenet = {"epoch": 90, "arch": "resnet18", "state_dict": r.state_dict(),
                "best_acc1": torch.tensor(69.76),
                "optimizer": torch.optim.SGD(r.parameters(), 0.1).state_dict()}
    torch.save(imagenet, f("imagenet.pth.tar"))
    yield "imagenet_examples_auto_select", lambda: load_case(
        args, f("imagenet.pth.tar"), r, r.state_dict())
    # Pickle protocols 0 and 1 (text opcodes), legacy and zip formats. torch
    # 1.13 cannot load protocol 0 with tensors (its persistent ids become
    # str): neither can tsd.
    lin = linear(2)
    p01 = OD([("epoch", 3), ("lr", 0.5), ("neg", -128), ("big", -2 ** 70),
              ("name", "x\u00e9\u4e2d\U0001F600\\u"), ("t", True),
              ("none", None), ("l", [1, (2, 3.25)]), ("d", {"a": 1}),
              ("args", argparse.Namespace(a=1)), ("pair", P(1, "b")),
              ("cfg", objects_zoo()["cfg"]), ("np_f", np.float32(1.5)),
              ("arr", np.arange(4, dtype=np.int16))])
    torch.save(p01, f("legacy_p0.pt"), _use_new_zipfile_serialization=False,
               pickle_protocol=0)
    yield "legacy_p0_inspect", lambda: inspect_case(args, f("legacy_p0.pt"))
    p01_sd = OD(p01)
    p01_sd["state_dict"] = lin.state_dict()
    for proto in (1,):
        for fmt, legacy in (("legacy", True), ("zip", False)):
            name = "%s_p%d" % (fmt, proto)
            torch.save(p01_sd, f(name + ".pt"), pickle_protocol=proto,
                       _use_new_zipfile_serialization=not legacy)
            yield name + "_inspect", lambda n=name: inspect_case(
                args, f(n + ".pt"))
            yield name + "_load", lambda n=name: load_case(
                args, f(n + ".pt"), linear(0), lin.state_dict())
    for fmt, legacy in (("legacy", True), ("zip", False)):
        name = "%s_p0_tensors" % fmt
        torch.save(lin.state_dict(), f(name + ".pt"), pickle_protocol=0,
                   _use_new_zipfile_serialization=not legacy)
        yield name + "_refused_like_torch", lambda n=name: both_fail(
            args, f(n + ".pt"), "persistent id is not")
    # Placeholders and numpy arrays where a tensor is needed.
    from mmengine.logging.history_buffer import HistoryBuffer
    bad = OD([("weight", argparse.Namespace(a=1)),
              ("bias", np.zeros(3, dtype=np.float32))])
    torch.save(bad, f("objects_as_tensors.pt"))
    yield "load_objects_as_tensors", lambda: load_case(
        args, f("objects_as_tensors.pt"), linear(0), bad)
    bad2 = OD([("weight", HistoryBuffer()), ("bias", torch.zeros(3)),
               ("extra", np.float64(2.0))])
    torch.save(bad2, f("objects_as_tensors2.pt"))
    yield "load_objects_as_tensors_non_strict", lambda: load_case(
        args, f("objects_as_tensors2.pt"), linear(0), bad2, strict=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsd", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cases", default="")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    write_fakes(args.work)
    want = [c for c in args.cases.split(",") if c]
    passed = failed = 0
    gen = cases(args)
    while True:
        try:
            name, fn = next(gen)
        except StopIteration:
            break
        except Exception:  # the zoo itself could not be made
            print("FAIL generating the zoo\n" + traceback.format_exc())
            failed += 1
            break
        if want and not any(s in name for s in want):
            continue
        try:
            why = fn()
        except Exception:
            why = traceback.format_exc()
        if why:
            failed += 1
            print("FAIL %s: %s" % (name, why))
        else:
            passed += 1
            print("PASS %s" % name)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
