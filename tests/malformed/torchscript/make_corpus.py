#!/usr/bin/python3
"""Writes the corrupt-TorchScript-archive corpus checked by tests/unit/test_shim.cc
(Shim.CorruptArchiveCorpus*) and run under valgrind by scripts/valgrind_cli.sh.

Run with Debian's Python (it has torch), from any directory:
    /usr/bin/python3 tests/malformed/torchscript/make_corpus.py
The outputs (cases/*.pt and manifest.tsv) are committed, so the tests need
no Python. Deterministic.

Every case is a valid archive (torch.jit.save) with exactly one defect in a
tensor's geometry or storage, made by editing the archive with zipfile:
data.pkl / constants.pkl are re-assembled opcode by opcode
(pickletools.genops) with one integer operand replaced — pickles have no
absolute offsets, so an operand may change length — or a storage record is
truncated or removed. Two base archives:
  net     scripted `Net` (fc = Linear(3, 2), bn = BatchNorm1d(2), a buffer
          `view` that is a view at storage offset 1 of a 4-element storage);
          tensor #1 of data.pkl is fc.weight ([2, 3], strides [3, 1]).
  traced  a traced module whose forward multiplies by a tensor constant:
          constants.pkl holds one tensor ([2], a 2-element storage).

manifest.tsv: one line per case, tab-separated:
    name  expect  substring
`expect` is `ok` (opens as a model and as a checkpoint, reads and loads)
or a tsd status name that both tsd_model_open_torchscript and
tsd_checkpoint_open_torchscript must return, with `substring` in the
message. TSD_ERR_TORCH: LibTorch's own unpickler refused the file (its
c10::Error, caught at the shim's border).
"""
import io
import os
import pickletools
import struct
import sys
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "cases")


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)
        self.bn = torch.nn.BatchNorm1d(2)
        self.register_buffer("view", torch.arange(4.0)[1:3])

    def forward(self, x):
        return self.bn(self.fc(x)) + self.view


class Traced(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x) * torch.tensor([1.0, 2.0])


EXPECT = {
    'numel_beyond_record': ('TSD_ERR_FORMAT',
        'tensor on storage "data/1": the storage is declared with 4194304 bytes, its record holds 24'),
    'numel_times_itemsize_overflows': ('TSD_ERR_FORMAT',
        "data.pkl: offset 320 (BINPERSID): storage '1': its size overflows"),
    'numel_smaller_than_tensor': ('TSD_ERR_FORMAT',
        "tensor needs element 5 of storage '1', which has only 1 element(s)"),
    'offset_beyond_storage': ('TSD_ERR_FORMAT',
        "tensor needs element 1099511627781 of storage '1', which has only 6"),
    'offset_one_past': ('TSD_ERR_FORMAT',
        "tensor needs element 6 of storage '1', which has only 6 element(s)"),
    'offset_negative': ('TSD_ERR_FORMAT',
        "tensor storage offset is not a non-negative int (storage '1')"),
    'size_beyond_storage': ('TSD_ERR_FORMAT',
        "tensor needs element 2999 of storage '1'"),
    'size_negative': ('TSD_ERR_FORMAT',
        'tensor size[0] is negative (-5)'),
    'stride_beyond_storage': ('TSD_ERR_FORMAT',
        "tensor needs element 1099511627778 of storage '1'"),
    'stride_overflows': ('TSD_ERR_FORMAT',
        "tensor needs element 4611686018427387906 of storage '1'"),
    'stride_negative': ('TSD_ERR_FORMAT',
        'tensor stride[0] is negative (-3)'),
    'stride_inner_beyond': ('TSD_ERR_FORMAT',
        "tensor needs element 13 of storage '1', which has only 6"),
    'sizes_longer_than_strides': ('TSD_ERR_FORMAT',
        "tensor has 3 sizes but 2 strides (storage '1')"),
    'view_offset_beyond': ('TSD_ERR_FORMAT',
        "tensor needs element 4 of storage '0', which has only 4"),
    'record_truncated': ('TSD_ERR_FORMAT',
        'tensor on storage "data/1": the storage is declared with 24 bytes, its record holds 4'),
    'record_empty': ('TSD_ERR_FORMAT',
        'tensor on storage "data/1": the storage is declared with 24 bytes, its record holds 0'),
    'record_missing': ('TSD_ERR_TORCH',
        'failed locating file data/1'),
    'pickle_string_length_3gb': ('TSD_ERR_FORMAT',
        'data.pkl: offset 23 (opcode BINUNICODE, 0x58): string length 3087007766 exceeds'),
    'constants_string_length_3gb': ('TSD_ERR_FORMAT',
        'constants.pkl: offset 39 (opcode BINUNICODE, 0x58): string length 3087007766 exceeds'),
    'constant_numel_beyond_record': ('TSD_ERR_FORMAT',
        'tensor on storage "constants/0": the storage is declared with 4000 bytes, its record holds 8'),
    'constant_offset_beyond': ('TSD_ERR_FORMAT',
        "constants.pkl: offset 140 (opcode REDUCE, 0x52): tensor needs element 8 of storage '0'"),
    'constant_record_truncated': ('TSD_ERR_FORMAT',
        'tensor on storage "constants/0": the storage is declared with 8 bytes, its record holds 2'),
}


def saved(module):
    buf = io.BytesIO()
    torch.jit.save(module, buf)
    return buf.getvalue()


def base_archives():
    torch.manual_seed(0)
    net = torch.jit.script(Net().eval())
    traced = torch.jit.trace(Traced().eval(), torch.ones(1, 2))
    return {"net": saved(net), "traced": saved(traced)}


def records(archive):
    z = zipfile.ZipFile(io.BytesIO(archive))
    return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def rezip(recs):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in recs:
            z.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def int_op(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if -(2**31) <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    # LibTorch's unpickler reads LONG1 only with 8 bytes
    return b"\x8a\x08" + v.to_bytes(8, "little", signed=True)


def tensor_fields(pkl):
    """For each BINPERSID (a storage's first use), the opcode indices of the
    storage's declared numel and of the tensor's offset, sizes, strides."""
    ops = list(pickletools.genops(pkl))
    out = []
    for i, (op, _, _) in enumerate(ops):
        if op.name != "BINPERSID":
            continue
        assert ops[i - 1][0].name == "TUPLE"
        numel = i - 2
        j = i + 1
        if ops[j][0].name.endswith("PUT"):
            j += 1
        offset = j
        assert ops[j + 1][0].name == "MARK"
        sizes, k = [], j + 2
        while ops[k][0].name != "TUPLE":
            sizes.append(k)
            k += 1
        assert ops[k + 1][0].name == "MARK"
        strides, k = [], k + 2
        while ops[k][0].name != "TUPLE":
            strides.append(k)
            k += 1
        m = i - 1
        while ops[m][0].name != "MARK":
            m -= 1
        items = [o for o in ops[m + 1:i - 1] if not o[0].name.endswith("PUT")]
        out.append({"numel": numel, "offset": offset, "sizes": sizes,
                    "strides": strides, "key": items[2][1]})
    return ops, out


def reassemble(pkl, ops, repl):
    """pkl with op index -> bytes replacements."""
    out = bytearray()
    for i, (op, arg, pos) in enumerate(ops):
        end = ops[i + 1][2] if i + 1 < len(ops) else len(pkl)
        out += repl.get(i, pkl[pos:end])
    return bytes(out)


def edit(archive, pickle_name, tensor, field, value, dim=0):
    recs = records(archive)
    name = next(n for n, _ in recs if n.endswith("/" + pickle_name))
    pkl = dict(recs)[name]
    ops, fields = tensor_fields(pkl)
    f = fields[tensor][field]
    idx = f[dim] if isinstance(f, list) else f
    new = reassemble(pkl, ops, {idx: int_op(value)})
    return rezip([(n, new if n == name else d) for n, d in recs])


def add_dim(archive, tensor, which, value):
    """Appends an element to the sizes or strides tuple of a tensor."""
    recs = records(archive)
    name = next(n for n, _ in recs if n.endswith("/data.pkl"))
    pkl = dict(recs)[name]
    ops, fields = tensor_fields(pkl)
    last = fields[tensor][which][-1]
    end = ops[last + 1][2]
    new = reassemble(pkl, ops, {last: pkl[ops[last][2]:end] + int_op(value)})
    return rezip([(n, new if n == name else d) for n, d in recs])


def huge_string(archive, pickle_name):
    """The first BINUNICODE's length made 3 GB (the bytes stay): LibTorch's
    unpickler would allocate it before noticing the pickle is shorter."""
    recs = records(archive)
    name = next(n for n, _ in recs if n.endswith("/" + pickle_name))
    pkl = dict(recs)[name]
    ops = list(pickletools.genops(pkl))
    i = next(i for i, o in enumerate(ops) if o[0].name == "BINUNICODE")
    arg = ops[i][1].encode()
    new = reassemble(pkl, ops, {i: b"X" + struct.pack("<I", 3087007766) + arg})
    return rezip([(n, new if n == name else d) for n, d in recs])


def record_edit(archive, pickle_name, tensor, fn):
    recs = records(archive)
    name = next(n for n, _ in recs if n.endswith("/" + pickle_name))
    _, fields = tensor_fields(dict(recs)[name])
    key = fields[tensor]["key"]
    sub = pickle_name.split(".")[0]
    rec = next(n for n, _ in recs if n.endswith("/%s/%s" % (sub, key)))
    out = []
    for n, d in recs:
        if n == rec:
            d = fn(d)
            if d is None:
                continue
        out.append((n, d))
    return rezip(out)


def main():
    base = base_archives()
    net, traced = base["net"], base["traced"]
    cases = []

    def case(name, data, expect, sub=""):
        cases.append((name, data, expect, sub))

    # Which layer refuses what: tsd's restricted unpickler (lengths, and
    # every tensor against the size its storage declares) first; then the
    # shim's prescan with LibTorch's unpickler (each storage against the
    # record that holds it); LibTorch's own errors (TSD_ERR_TORCH) last.
    W = 1  # fc.weight: tensor 1 of data.pkl, [2, 3] strides [3, 1], 6 floats
    made = {
        "ok_net": net,
        "ok_net_rezipped": rezip(records(net)),
        "ok_traced": traced,
        "numel_beyond_record": edit(net, "data.pkl", W, "numel", 1 << 20),
        "numel_times_itemsize_overflows":
            edit(net, "data.pkl", W, "numel", 1 << 62),
        "numel_smaller_than_tensor": edit(net, "data.pkl", W, "numel", 1),
        "offset_beyond_storage": edit(net, "data.pkl", W, "offset", 1 << 40),
        "offset_one_past": edit(net, "data.pkl", W, "offset", 1),
        "offset_negative": edit(net, "data.pkl", W, "offset", -1),
        "size_beyond_storage": edit(net, "data.pkl", W, "sizes", 1000),
        "size_negative": edit(net, "data.pkl", W, "sizes", -5),
        "stride_beyond_storage": edit(net, "data.pkl", W, "strides", 1 << 40),
        "stride_overflows": edit(net, "data.pkl", W, "strides", 1 << 62),
        # (LibTorch 1.13 itself would quietly keep strides (3, 1) here)
        "stride_negative": edit(net, "data.pkl", W, "strides", -3),
        "stride_inner_beyond": edit(net, "data.pkl", W, "strides", 5, dim=1),
        "sizes_longer_than_strides": add_dim(net, W, "sizes", 4),
        "view_offset_beyond": edit(net, "data.pkl", 0, "offset", 3),
        "record_truncated": record_edit(net, "data.pkl", W, lambda d: d[:4]),
        "record_empty": record_edit(net, "data.pkl", W, lambda d: b""),
        "record_missing": record_edit(net, "data.pkl", W, lambda d: None),
        # found by fuzz_torchscript: 3 GB and a minute in LibTorch's unpickler
        "pickle_string_length_3gb": huge_string(net, "data.pkl"),
        "constants_string_length_3gb": huge_string(traced, "constants.pkl"),
        # the traced module's tensor constant
        "constant_numel_beyond_record":
            edit(traced, "constants.pkl", 0, "numel", 1000),
        "constant_offset_beyond":
            edit(traced, "constants.pkl", 0, "offset", 7),
        "constant_record_truncated":
            record_edit(traced, "constants.pkl", 0, lambda d: d[:2]),
    }
    for name, data in made.items():
        expect, sub = EXPECT.get(name, ("ok", ""))
        case(name, data, expect, sub)

    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    with open(os.path.join(HERE, "manifest.tsv"), "w") as m:
        m.write("# name\texpect\tmessage substring (see make_corpus.py)\n")
        for name, data, expect, sub in cases:
            with open(os.path.join(OUT, name + ".pt"), "wb") as f:
                f.write(data)
            m.write("%s\t%s\t%s\n" % (name, expect, sub))
    print("wrote %d cases to %s" % (len(cases), OUT))


if __name__ == "__main__":
    main()
