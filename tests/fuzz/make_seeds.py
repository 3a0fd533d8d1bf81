#!/usr/bin/python3
"""Writes the fuzzers' seed corpora from real checkpoints saved by Python
torch (the files libFuzzer mutates). Usage, with Debian's Python:
    /usr/bin/python3 tests/fuzz/make_seeds.py OUT_DIR
OUT_DIR/zip, OUT_DIR/load: zip checkpoints (protocols 2-5) and legacy files;
OUT_DIR/legacy: legacy files; OUT_DIR/pickle: the data.pkl of each zip
checkpoint (fuzz_pickle wraps its input as data.pkl, with storage records
data/0 .. data/7 of 64 bytes, so the seeds use storage keys '0'..'7').
"""
import collections
import io
import os
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


def main():
    out = sys.argv[1]
    for sub in ("zip", "load", "legacy", "pickle"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    n = 0
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
    print("%d seed checkpoints in %s" % (n, out))


if __name__ == "__main__":
    main()
