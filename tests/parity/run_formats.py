#!/usr/bin/python3
"""Parity for the checkpoint formats: safetensors and sharded checkpoints
loaded by `tsd load`, and `tsd convert`, against Python torch.

A torchvision resnet18 state dict is written
  - as one safetensors file (keys sorted, as Python's safetensors writer
    does; __metadata__ {"format": "pt"}),
  - as 2 torch.save shards + `pytorch_model.bin.index.json` (plain-dict
    shards and a sorted weight_map, as transformers' shard_checkpoint
    writes them),
  - as 2 safetensors shards + `model.safetensors.index.json`,
by hand (there is no safetensors package here: the format is 8 bytes of
header length, a JSON header, C-order data). Each is loaded with
    tsd load --model-spec SPEC --class-name ResNet CKPT --json -o OUT
and compared with Python's load_state_dict given the same tensors (read
back from the files by Python itself) in the same order: exit status, ok,
missing/unexpected keys, size mismatches, popped keys, error_msgs, message
(byte for byte), and every value of OUT (torch.load) against the model
Python loaded (key order, dtype, shape, bits).

`tsd convert` cases: .pth -> .safetensors (header parsed with json, bytes
compared with what torch holds), .safetensors -> .pth and index -> .pth
(torch.load, values), .pth -> .pth (order and _metadata kept).

usage: run_formats.py --tsd PATH --work DIR [--cases SUBSTR[,...]]
One PASS/FAIL line per case, last line `N passed, M failed`; exit 0 only if
all pass. A case that cannot run is a failure, never a skip.
"""

import argparse
import collections
import json
import os
import struct
import subprocess
import sys
import traceback
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torchvision  # noqa: E402

import oracle  # noqa: E402  (PyTorch's own load_state_dict, error_msgs captured)

OD = collections.OrderedDict
FIELDS = ("ok", "class_name", "missing_keys", "unexpected_keys", "size_mismatches",
          "popped_keys", "error_msgs", "message")
ST_DTYPES = {
    torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
    torch.bfloat16: "BF16", torch.int8: "I8", torch.int16: "I16",
    torch.int32: "I32", torch.int64: "I64", torch.uint8: "U8",
    torch.bool: "BOOL",
}
ST_TORCH = {v: k for k, v in ST_DTYPES.items()}
TIMEOUT = 600


# ---- safetensors by hand ------------------------------------------------------------


def tensor_bytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_safetensors(path, sd, metadata=None):
    """Keys sorted, as the reference writer stores them."""
    header = OD()
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs, pos = [], 0
    for k in sorted(sd):
        b = tensor_bytes(sd[k])
        header[k] = {"dtype": ST_DTYPES[sd[k].dtype], "shape": list(sd[k].shape),
                     "data_offsets": [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    """(OrderedDict of tensors in header order, __metadata__, header). Checks
    the layout rules on the way, so a file tsd writes is checked too."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    if 8 + n > len(raw):
        raise ValueError("header length past the file")
    text = raw[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        raise ValueError("header does not start with '{'")
    header = json.loads(text, object_pairs_hook=OD)
    meta = header.pop("__metadata__", None)
    data = raw[8 + n:]
    spans = sorted(tuple(h["data_offsets"]) for h in header.values())
    pos = 0
    for b, e in spans:
        if b != pos:
            raise ValueError("data section not tiled at %d (next %d)" % (pos, b))
        pos = e
    if pos != len(data):
        raise ValueError("data section has %d bytes, tensors cover %d" % (len(data), pos))
    out = OD()
    for k, h in header.items():
        dt = ST_TORCH[h["dtype"]]
        b, e = h["data_offsets"]
        shape = h["shape"]
        if e == b:
            t = torch.empty(shape, dtype=dt)
        else:
            view = torch.int16 if dt == torch.bfloat16 else dt
            t = torch.frombuffer(bytearray(data[b:e]), dtype=view).reshape(shape)
            if view != dt:
                t = t.view(dt)
        numel = 1
        for s in shape:
            numel *= s
        if (e - b) != numel * t.element_size():
            raise ValueError("%s: byte count does not match the shape" % k)
        out[k] = t
    return out, meta, header


def write_index(path, weight_map, total):
    with open(path + ".tmp", "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f,
                  indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def shard(sd, n=2):
    """transformers' shard_checkpoint: plain dicts, in state_dict order."""
    keys = list(sd)
    per = (len(keys) + n - 1) // n
    return [{k: sd[k] for k in keys[i:i + per]} for i in range(0, len(keys), per)]


def write_pth_shards(work, stem, sd):
    weight_map, total = {}, 0
    for i, part in enumerate(shard(sd)):
        name = "%s-%05d-of-00002.bin" % (stem, i + 1)
        torch.save(part, os.path.join(work, name + ".tmp"))
        os.replace(os.path.join(work, name + ".tmp"), os.path.join(work, name))
        for k, t in part.items():
            weight_map[k] = name
            total += t.numel() * t.element_size()
    index = os.path.join(work, "%s.bin.index.json" % stem)
    write_index(index, weight_map, total)
    return index


def write_st_shards(work, stem, sd):
    weight_map, total = {}, 0
    for i, part in enumerate(shard(sd)):
        name = "%s-%05d-of-00002.safetensors" % (stem, i + 1)
        write_safetensors(os.path.join(work, name), part, {"format": "pt"})
        for k, t in part.items():
            weight_map[k] = name
            total += t.numel() * t.element_size()
    index = os.path.join(work, "%s.safetensors.index.json" % stem)
    write_index(index, weight_map, total)
    return index


def python_view(path):
    """The state dict Python gets from CKPT, read by Python alone: what
    safetensors' load_file / transformers' sharded loading hand to
    load_state_dict (load_file's dict is sorted by key: safe_open's keys()
    sorts them; a sharded one in weight_map's order)."""
    if path.endswith(".safetensors"):
        return OD(sorted(read_safetensors(path)[0].items()))
    if path.endswith(".json"):
        with open(path) as f:
            index = json.load(f, object_pairs_hook=OD)
        shards = {}
        out = OD()
        for k, name in index["weight_map"].items():
            if name not in shards:
                p = os.path.join(os.path.dirname(path), name)
                shards[name] = (read_safetensors(p)[0] if name.endswith(".safetensors")
                                else torch.load(p))
            out[k] = shards[name][k]
        return out
    return torch.load(path)


# ---- comparing ---------------------------------------------------------------------

_BITS = {torch.float16: torch.int16, torch.bfloat16: torch.int16,
         torch.float32: torch.int32, torch.float64: torch.int64}


def compare_values(got, want, what, same_order=True):
    gk, wk = list(got.keys()), list(want.keys())
    if (gk != wk) if same_order else (sorted(gk) != sorted(wk)):
        i = next((j for j in range(min(len(gk), len(wk))) if gk[j] != wk[j]), None)
        return "%s keys differ (%d vs %d; first at %s: tsd=%r torch=%r)" % (
            what, len(gk), len(wk), i, gk[i] if i is not None else None,
            wk[i] if i is not None else None)
    for k in wk:
        g, w = got[k], want[k]
        if not isinstance(g, torch.Tensor):
            return "%s[%r] is a %s" % (what, k, type(g).__name__)
        if g.dtype != w.dtype or tuple(g.shape) != tuple(w.shape):
            return "%s[%r]: tsd %s%s, torch %s%s" % (what, k, g.dtype, list(g.shape),
                                                    w.dtype, list(w.shape))
        g, w = g.detach().contiguous(), w.detach().contiguous()
        if g.dtype in _BITS:
            g, w = g.view(_BITS[g.dtype]), w.view(_BITS[w.dtype])
        if not torch.equal(g, w):
            return "%s[%r]: %d elements differ" % (what, k, int((g != w).sum()))
    return None


def first_diff(got, want):
    for k in want:
        if got.get(k) != want[k]:
            return "%s: tsd=%s torch=%s" % (k, json.dumps(got.get(k))[:300],
                                            json.dumps(want[k])[:300])
    return None


def run(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "", "timed out"
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ---- the cases ---------------------------------------------------------------------


def seeded_resnet(seed, num_classes=1000):
    torch.manual_seed(seed)
    m = torchvision.models.resnet18(num_classes=num_classes)
    with torch.no_grad():  # trained-looking BatchNorm statistics
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 1.5)
                mod.num_batches_tracked.fill_(seed)
    return m


class Files:
    def __init__(self, work):
        self.work = work
        os.makedirs(work, exist_ok=True)
        self.trained = seeded_resnet(1).state_dict()
        self.spec1000 = self._save("spec1000.pth", seeded_resnet(2).state_dict())
        self.spec10 = self._save("spec10.pth", seeded_resnet(3, 10).state_dict())
        self.pth = self._save("trained.pth", self.trained)
        extra = OD(self.trained)
        extra["aux.weight"] = torch.randn(3)
        self.extra = extra
        self.ckpts = {}
        for tag, sd in (("", self.trained), ("extra-", extra)):
            st = os.path.join(work, tag + "model.safetensors")
            write_safetensors(st, sd, {"format": "pt"})
            self.ckpts[tag + "safetensors"] = st
            self.ckpts[tag + "pth-shards"] = write_pth_shards(work, tag + "pytorch_model", sd)
            self.ckpts[tag + "st-shards"] = write_st_shards(work, tag + "model", sd)

    def _save(self, name, sd):
        p = os.path.join(self.work, name)
        torch.save(sd, p + ".tmp")
        os.replace(p + ".tmp", p)
        return p


def load_case(args, files, fmt, spec, num_classes, flags, strict, auto_pop):
    ckpt = files.ckpts[fmt]
    out = os.path.join(files.work, "out.pth")
    if os.path.exists(out):
        os.remove(out)
    model = torchvision.models.resnet18(num_classes=num_classes)
    model.load_state_dict(torch.load(spec))  # the spec's initial values
    case = types.SimpleNamespace(all_persistent=False, select=[], strict=strict,
                                 auto_pop=auto_pop)
    want = oracle.run(model, python_view(ckpt), case)
    rc, stdout, stderr = run([args.tsd, "load", "--model-spec", spec, "--class-name",
                              "ResNet", ckpt, "--json", "-o", out] + flags)
    if rc is None or rc not in (0, 1):
        return "tsd exit %s: %s" % (rc, stderr.strip()[:400])
    try:
        got = json.loads(stdout)
    except ValueError:
        return "stdout is not JSON: %r" % stdout[:300]
    if rc != (0 if want["ok"] else 1):
        return "exit %d, torch ok=%s; %s" % (rc, want["ok"], first_diff(got, want))
    d = first_diff(got, {k: want[k] for k in FIELDS})
    if d:
        return d
    if not want["ok"]:
        return "OUT written after a failed load" if os.path.exists(out) else None
    if not os.path.exists(out):
        return "OUT not written"
    return compare_values(torch.load(out), model.state_dict(), "OUT")


def convert_to_st(args, files, src, same_order):
    out = os.path.join(files.work, "converted.safetensors")
    rc, stdout, stderr = run([args.tsd, "convert", src, out])
    if rc != 0:
        return "tsd convert exit %s: %s" % (rc, stderr.strip()[:400])
    got, meta, header = read_safetensors(out)
    if meta != {"format": "pt"}:
        return "__metadata__ is %r" % (meta,)
    for k, h in header.items():
        size = torch.empty(0, dtype=ST_TORCH[h["dtype"]]).element_size()
        if h["data_offsets"][0] % size:
            return "%s is not aligned to its element size" % k
    return compare_values(got, files.trained, "converted", same_order)


def convert_to_pth(args, files, src, same_order, want_meta):
    out = os.path.join(files.work, "converted.pth")
    rc, stdout, stderr = run([args.tsd, "convert", src, out])
    if rc != 0:
        return "tsd convert exit %s: %s" % (rc, stderr.strip()[:400])
    got = torch.load(out)
    d = compare_values(got, files.trained, "converted", same_order)
    if d or not want_meta:
        return d
    gm, wm = getattr(got, "_metadata", None), getattr(files.trained, "_metadata", None)
    if gm != wm:
        return "_metadata differs: tsd=%r torch=%r" % (
            list(gm.items())[:3] if gm else gm, list(wm.items())[:3])
    return None


ODD_KEYS = ["", ".w", "a..b", "tail.", "fc", "fc.weight", "x.y", "z"]


def odd_keys_case(args, files, ext, pop):
    """A dict whose keys are no module paths ('' and the others a model with
    odd dots or a hand-made dict holds): `tsd convert` (and `tsd pop`) write
    every key whole, as torch.save / safetensors would, values unchanged."""
    torch.manual_seed(5)
    sd = OD((k, torch.randn(2, i + 1)) for i, k in enumerate(ODD_KEYS))
    src = os.path.join(files.work, "odd_keys.pth")
    torch.save(sd, src)
    out = os.path.join(files.work, "odd_keys_out" + ext)
    if os.path.exists(out):
        os.remove(out)
    cmd = ([args.tsd, "pop", src, "z", "-o", out] if pop
           else [args.tsd, "convert", src, out])
    rc, stdout, stderr = run(cmd)
    if rc != 0:
        return "%s exit %s: %s" % (cmd[1], rc, stderr.strip()[:400])
    want = OD((k, v) for k, v in sd.items() if not (pop and k == "z"))
    got = python_view(out)
    if ext == ".safetensors":
        want = OD(sorted(want.items()))
    return compare_values(got, want, "odd keys", ext == ".safetensors")


def cases(args, files):
    out = []
    for fmt in ("safetensors", "pth-shards", "st-shards"):
        out += [
            ("load %s strict" % fmt,
             lambda f=fmt: load_case(args, files, f, files.spec1000, 1000, [], True, False)),
            ("load %s 10-class head strict (size mismatch)" % fmt,
             lambda f=fmt: load_case(args, files, f, files.spec10, 10, [], True, False)),
            ("load %s 10-class head --non-strict --auto-pop" % fmt,
             lambda f=fmt: load_case(args, files, f, files.spec10, 10,
                                     ["--non-strict", "--auto-pop"], False, True)),
            ("load %s unexpected key strict" % fmt,
             lambda f=fmt: load_case(args, files, "extra-" + f, files.spec1000, 1000,
                                     [], True, False)),
            ("load %s unexpected key --non-strict" % fmt,
             lambda f=fmt: load_case(args, files, "extra-" + f, files.spec1000, 1000,
                                     ["--non-strict"], False, False)),
        ]
    out += [
        ("convert .pth -> .safetensors (json + frombuffer)",
         lambda: convert_to_st(args, files, files.pth, True)),
        ("convert pth shards index -> .safetensors",
         lambda: convert_to_st(args, files, files.ckpts["pth-shards"], False)),
        ("convert .safetensors -> .pth",
         lambda: convert_to_pth(args, files, files.ckpts["safetensors"], False, False)),
        ("convert safetensors shards index -> .pth",
         lambda: convert_to_pth(args, files, files.ckpts["st-shards"], False, False)),
        ("convert .pth -> .pth keeps order and _metadata",
         lambda: convert_to_pth(args, files, files.pth, True, True)),
        ("convert keys that are no module paths ('', '.w', 'a..b') -> .pth",
         lambda: odd_keys_case(args, files, ".pth", False)),
        ("convert keys that are no module paths -> .safetensors",
         lambda: odd_keys_case(args, files, ".safetensors", False)),
        ("pop from a dict whose keys are no module paths",
         lambda: odd_keys_case(args, files, ".pth", True)),
    ]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsd", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cases", default="")
    args = ap.parse_args()
    args.tsd = os.path.abspath(args.tsd)
    passed = failed = 0
    try:
        files = Files(os.path.abspath(args.work))
        todo = cases(args, files)
    except Exception:  # noqa: BLE001
        print("FAIL setup: %s" % traceback.format_exc().strip().splitlines()[-1])
        print("0 passed, 1 failed")
        return 1
    wanted = [s for s in args.cases.split(",") if s]
    for name, fn in todo:
        if wanted and not any(w in name for w in wanted):
            continue
        try:
            d = fn()
        except Exception:  # noqa: BLE001
            d = "exception: " + traceback.format_exc().strip().splitlines()[-1]
        if d:
            failed += 1
            print("FAIL %s: %s" % (name, d))
        else:
            passed += 1
            print("PASS %s" % name)
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
