#!/usr/bin/python3
"""Writes the fuzzers' seed corpora from real checkpoints saved by Python
torch (the files libFuzzer mutates). Usage, with Debian's Python:
    /usr/bin/python3 tests/fuzz/make_seeds.py OUT_DIR
OUT_DIR/zip, OUT_DIR/load: zip checkpoints (protocols 2-5) and legacy files;
OUT_DIR/legacy: legacy files; OUT_DIR/pickle: the data.pkl of each zip
checkpoint (fuzz_pickle wraps its input as data.pkl, with storage records
data/0 .. data/7 of 64 bytes, so the seeds use storage keys '0'..'7');
OUT_DIR/safetensors: the same state dicts as safetensors files (written by
hand: Debian has no `safetensors` package; the format is an 8-byte length,
a JSON header and the data), plus the committed malformed corpus's st_*
cases; plus the hand-made PyTorch 2.x fixtures (tests/fixtures/torch2x_*.pth) and
a safetensors file with the 2.x dtype names; OUT_DIR/sharded: index JSONs
over the shards fuzz_sharded writes
(tsdf_write_shards in fuzz_common.h: net.safetensors, net.pth,
fc.safetensors, bn.pth, bad.safetensors, empty.pth).
"""
import collections
import io
import json
import os
import shutil
import struct
import sys
import zipfile

import torch


class Net(torch.nn.Module):
    """The model fuzz_load loads into (tests/fuzz/fuzz_common.h)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.act = torch.nn.ReLU()
        self.bn = torch.nn.BatchNorm2d(3)


def state_dicts():
    torch.manual_seed(0)
    net = Net()
    yield "net", net.state_dict()
    wide = Net()
    wide.fc = torch.nn.Linear(4, 5)  # a size mismatch for auto-pop
    yield "net_mismatch", wide.state_dict()
    sd = net.state_dict()
    del sd["bn.num_batches_tracked"]
    yield "net_old_bn", sd
    yield "nested", {"epoch": 7, "state_dict": net.state_dict(),
                     "opt": [1.5, None, True, "adam", b"\x00\x01"]}
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    d = collections.OrderedDict()
    d["view"] = base[1:, 1:3]
    d["t"] = base.t()
    d["i64"] = torch.arange(3)
    d["f16"] = torch.ones(2, dtype=torch.float16)
    d["bool"] = torch.tensor([True, False])
    d["scalar"] = torch.tensor(2.5)
    d["p"] = torch.nn.Parameter(torch.zeros(2))
    yield "kitchen", d


def small_storages(sd):
    """The same keys and shapes, every tensor a float32 view of its own
    storage of exactly 16 floats (64 bytes), at most 8 tensors: the pickle
    then names storages '0'..'7' of 64 bytes, as fuzz_pickle's records."""
    out = collections.OrderedDict()
    for k, v in sd.items():
        if not torch.is_tensor(v) or len(out) == 8:
            continue
        extent = 1 + sum((n - 1) * st for n, st in zip(v.shape, v.stride()))
        if v.numel() == 0 or extent > 16:
            out[k] = torch.zeros(16)[:1]
        else:
            out[k] = torch.arange(16.0).as_strided(v.shape, v.stride())
    return out


ST_DTYPES = {
    torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
    torch.bfloat16: "BF16", torch.int8: "I8", torch.int16: "I16",
    torch.int32: "I32", torch.int64: "I64", torch.uint8: "U8",
    torch.bool: "BOOL",
}


def safetensors_bytes(sd, metadata=None, order=None):
    """A safetensors file of the tensors of `sd` (non-tensors dropped), header
    in `order` (default: the dict's), data packed in the same order."""
    items = [(k, v) for k, v in sd.items() if torch.is_tensor(v)]
    if order:
        items = order(items, key=lambda kv: kv[0])
    header = collections.OrderedDict()
    if metadata is not None:
        header["__metadata__"] = metadata
    data = b""
    for k, v in items:
        v = v.detach().contiguous()
        dtype = ST_DTYPES[v.dtype]
        if v.dtype == torch.bfloat16:
            v = v.view(torch.int16)
        b = v.numpy().tobytes()
        header[k] = {"dtype": dtype, "shape": list(v.shape),
                     "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


NET_KEYS = ["fc.weight", "fc.bias", "bn.weight", "bn.bias", "bn.running_mean",
            "bn.running_var", "bn.num_batches_tracked"]


def sharded_indexes():
    """(name, index dict) over the shards of tsdf_write_shards."""
    def index(wm, metadata=None):
        d = collections.OrderedDict()
        if metadata is not None:
            d["metadata"] = metadata
        d["weight_map"] = collections.OrderedDict(wm)
        return d
    fc = [k for k in NET_KEYS if k.startswith("fc.")]
    bn = [k for k in NET_KEYS if k.startswith("bn.")]
    yield "whole_st", index([(k, "net.safetensors") for k in NET_KEYS],
                            {"total_size": 164})
    yield "whole_pth", index([(k, "net.pth") for k in NET_KEYS])
    yield "halves", index([(k, "fc.safetensors") for k in fc] +
                          [(k, "bn.pth") for k in bn],
                          {"total_size": 164, "format": "pt"})
    yield "halves_sorted", index(sorted([(k, "fc.safetensors") for k in fc] +
                                        [(k, "bn.pth") for k in bn]))
    yield "mixed", index([(k, "net.pth" if i % 2 else "net.safetensors")
                          for i, k in enumerate(NET_KEYS)],
                         {"a": None, "b": True, "c": 1.5, "d": [1], "e": {}})
    yield "partial", index([(k, "fc.safetensors") for k in fc])
    yield "empty", index([])
    yield "key_not_in_shard", index([(k, "fc.safetensors") for k in NET_KEYS])
    yield "bad_shard", index([("fc.weight", "bad.safetensors")])
    yield "empty_shard", index([("fc.weight", "empty.pth")])
    yield "missing_shard", index([("fc.weight", "absent.pth")])
    yield "path_shard", index([("fc.weight", "../net.pth")])
    yield "index_as_shard", index([("fc.weight", "in.index.json")])


Pair = collections.namedtuple("Pair", "a b")


def objects(proto):
    """Training dicts full of objects; with tensors only where the protocol
    can hold them (torch 1.13 cannot load protocol 0 persistent ids)."""
    import argparse
    import numpy as np
    extras = collections.OrderedDict([
        ("args", argparse.Namespace(lr=0.1, arch="x")), ("pair", Pair(1, "b")),
        ("np_f", np.float32(1.5)), ("np_i", np.int64(-3)),
        ("arr", np.arange(6, dtype=np.float32).reshape(2, 3)),
        ("arr_f", np.asfortranarray(np.ones((2, 2)))),
        ("big", -2 ** 70), ("text", "x\u00e9\U0001F600"), ("lr", 0.25)])
    yield "objects", extras
    if proto == 0:
        return
    sd = small_storages(dict(state_dicts())["net"])
    yield "objects_sd", collections.OrderedDict(
        list(extras.items()) + [("state_dict", sd),
                                ("best", torch.tensor([0.5] * 16))])
    torch.manual_seed(0)
    yield "whole_model", {"model": Net(), "optimizer": None, "epoch": -1}


def main():
    out = sys.argv[1]
    for sub in ("safetensors", "sharded"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    n = 0
    for name, sd in state_dicts():
        for variant, kw in (("", {}),
                            ("_sorted_meta", {"metadata": {"format": "pt"},
                                              "order": sorted})):
            with open(os.path.join(out, "safetensors", "%s%s.safetensors" %
                                   (name, variant)), "wb") as f:
                f.write(safetensors_bytes(sd, **kw))
            n += 1
    cases = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                         "malformed", "cases")
    for f in sorted(os.listdir(cases)):
        if f.startswith(("st_", "ok_st_")):
            shutil.copy(os.path.join(cases, f),
                        os.path.join(out, "safetensors", f))
            n += 1
    for name, idx in sharded_indexes():
        with open(os.path.join(out, "sharded", name + ".index.json"),
                  "w") as f:
            json.dump(idx, f, indent=2)
        n += 1
    # layout files (fuzz_layout), as scripts/tsd_layout.py writes them
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "..", "..", "scripts"))
    import tsd_layout
    import torchvision
    os.makedirs(os.path.join(out, "layout"), exist_ok=True)
    for name in ("resnet18", "mobilenet_v3_small", "squeezenet1_0"):
        data, _ = tsd_layout.layout(getattr(torchvision.models, name)())
        with open(os.path.join(out, "layout", name + ".json"), "w") as f:
            f.write(tsd_layout.dumps(data))
        n += 1
    for sub in ("zip", "load", "legacy", "pickle"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    for name, sd in state_dicts():
        for proto in (2, 3, 4, 5):
            b = io.BytesIO()
            torch.save(sd, b, pickle_protocol=proto)
            data = b.getvalue()
            for sub in ("zip", "load"):
                with open(os.path.join(out, sub, "%s_p%d.pth" % (name, proto)),
                          "wb") as f:
                    f.write(data)
            b = io.BytesIO()
            torch.save(small_storages(sd), b, pickle_protocol=proto)
            z = zipfile.ZipFile(io.BytesIO(b.getvalue()))
            pkl = [i for i in z.namelist() if i.endswith("data.pkl")][0]
            with open(os.path.join(out, "pickle", "%s_p%d.pkl" % (name, proto)),
                      "wb") as f:
                f.write(z.read(pkl))
            n += 1
        b = io.BytesIO()
        torch.save(sd, b, _use_new_zipfile_serialization=False)
        for sub in ("zip", "load", "legacy"):
            with open(os.path.join(out, sub, "%s_legacy.pth" % name),
                      "wb") as f:
                f.write(b.getvalue())
        n += 1
    # Python objects (placeholders, numpy, a whole pickled model) and the
    # text opcodes of protocols 0-1 (issue 10).
    for proto in (0, 1, 2, 4, 5):
        for name, obj in objects(proto):
            b = io.BytesIO()
            torch.save(obj, b, pickle_protocol=proto)
            for sub in ("zip", "load"):
                with open(os.path.join(out, sub, "%s_p%d.pth" % (name, proto)),
                          "wb") as f:
                    f.write(b.getvalue())
            z = zipfile.ZipFile(io.BytesIO(b.getvalue()))
            pkl = [i for i in z.namelist() if i.endswith("data.pkl")][0]
            with open(os.path.join(out, "pickle", "%s_p%d.pkl" % (name, proto)),
                      "wb") as f:
                f.write(z.read(pkl))
            if proto < 2:
                b = io.BytesIO()
                torch.save(obj, b, pickle_protocol=proto,
                           _use_new_zipfile_serialization=False)
                for sub in ("load", "legacy"):
                    with open(os.path.join(out, sub, "%s_p%d_legacy.pth" %
                                           (name, proto)), "wb") as f:
                        f.write(b.getvalue())
            n += 1
    # PyTorch 2.x forms torch 1.13 cannot write (_rebuild_tensor_v3 over
    # untyped storages, dtype/device values, big-endian files): the
    # hand-made fixtures of tests/fixtures/make_torch2x_fixtures.py
    fixtures = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                            "fixtures")
    for f in sorted(os.listdir(fixtures)):
        if f.startswith("torch2x_") and f.endswith(".pth"):
            for sub in ("zip", "load"):
                shutil.copy(os.path.join(fixtures, f), os.path.join(out, sub, f))
            z = zipfile.ZipFile(os.path.join(fixtures, f))
            pkl = [i for i in z.namelist() if i.endswith("data.pkl")][0]
            with open(os.path.join(out, "pickle", f[:-4] + ".pkl"), "wb") as g:
                g.write(z.read(pkl))
            n += 1
    # safetensors with the 2.x dtype names
    hdr = {}
    data = b""
    for i, dt in enumerate(("F8_E4M3", "F8_E5M2", "F8_E8M0", "U16", "U32",
                            "U64", "C64")):
        size = {"U16": 2, "U32": 4, "U64": 8, "C64": 8}.get(dt, 1) * 2
        hdr["t%d" % i] = {"dtype": dt, "shape": [2],
                          "data_offsets": [len(data), len(data) + size]}
        data += bytes(range(i, i + size))
    h = json.dumps(hdr).encode()
    h += b" " * (-(8 + len(h)) % 8)
    with open(os.path.join(out, "safetensors", "dtypes_2x.safetensors"),
              "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    n += 1
    print("%d seed checkpoints in %s" % (n, out))


if __name__ == "__main__":
    main()
