#!/usr/bin/python3
"""Writes the malformed-input corpus checked by tests/unit/test_malformed_portable.cc
(in-process, every OS) and test_malformed.cc (under RLIMIT_AS, POSIX).

Run with Debian's Python (it has torch), from any directory:
    /usr/bin/python3 tests/malformed/make_corpus.py
The outputs (cases/*.bin and manifest.tsv) are committed, so the unit test
needs no Python. The generator is deterministic (fixed seeds).

Every case starts from a real checkpoint of the same small model, the one the
test loads into (class Net: fc = Linear(4, 3), act = ReLU, bn = BatchNorm2d(3)),
written by torch.save (zip, protocols 2/4/5, legacy), or from a hand-written
equivalent (`ok_hand_*`, accepted as valid) with exactly one defect. Pickles
are written by hand where torch cannot produce the defect.

manifest.tsv: one line per case, tab-separated:
    name  expect  substring
`expect` says where and how the case must fail:
    ok              opens, every tensor reads, strict load succeeds
    open:STATUS     tsd_checkpoint_open(_memory) fails with STATUS
    load:STATUS     opens; the strict tsd_load returns STATUS
    any             a random bit flip: any outcome but a crash; a failure
                    must be a malformed-input status with a message and must
                    leave the model unchanged
`substring` (may be empty) must occur in the error message.
"""
import collections
import io
import json
import os
import pickle
import random
import struct
import sys
import zipfile
import zlib

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "cases")

cases = []  # (name, bytes, expect, substring)


def case(name, data, expect, sub=""):
    assert "\t" not in sub and "\n" not in sub
    assert all(c[0] != name for c in cases), name
    cases.append((name, bytes(data), expect, sub))


# ---- the model ------------------------------------------------------------


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.act = torch.nn.ReLU()
        self.bn = torch.nn.BatchNorm2d(3)


torch.manual_seed(0)
NET = Net()
with torch.no_grad():
    NET.bn.running_mean.uniform_()
    NET.bn.running_var.uniform_(0.5, 2.0)
    NET.bn.num_batches_tracked.fill_(7)
SD = NET.state_dict()


def torch_save(obj, **kw):
    b = io.BytesIO()
    torch.save(obj, b, **kw)
    return b.getvalue()


ZIP = {p: torch_save(SD, pickle_protocol=p) for p in (2, 4, 5)}

# The legacy format names storages by their memory address (str(_cdata)), so
# saving again gives other bytes (and other truncation and flip points).
# Reuse the committed reference so regenerating keeps every case
# byte-identical; a fresh checkout without cases saves a new one.
_LEGACY_REF = os.path.join(OUT, "ok_legacy.bin")
if os.path.exists(_LEGACY_REF):
    with open(_LEGACY_REF, "rb") as _f:
        LEGACY = _f.read()
else:
    LEGACY = torch_save(SD, _use_new_zipfile_serialization=False)

# ---- a hand-written zip writer (stored records, like torch.save) ----------


def zip_build(records, method=None, flags=0, local_off=None, extra_cd=b"",
              eocd=None, align=64):
    """records: list of (name, data). method/flags: {name: value}.
    local_off: {name: offset or callable(offsets) -> offset} for the central
    directory. eocd: dict overriding EOCD fields (n, size, off, disk)."""
    method = method or {}
    local_off = local_off or {}
    out = bytearray()
    offs = {}
    metas = []
    for name, data in records:
        nb = name.encode()
        m = method.get(name, 0)
        raw = data
        if m == 8:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            data = c.compress(raw) + c.flush()
        crc = zlib.crc32(raw) & 0xFFFFFFFF
        hdr_end = len(out) + 30 + len(nb)
        pad = (-(hdr_end + 4)) % align if align else 0
        extra = struct.pack("<HH", 0xCAFE, pad) + b"Z" * pad if align else b""
        offs[name] = len(out)
        fl = flags.get(name, 0) if isinstance(flags, dict) else 0
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, fl, m, 0, 0x21,
                           crc, len(data), len(raw), len(nb), len(extra))
        out += nb + extra + data
        metas.append((nb, m, fl, crc, len(data), len(raw)))
    cd_off = len(out)
    for (nb, m, fl, crc, csz, usz), (name, _) in zip(metas, records):
        lo = local_off.get(name, offs[name])
        if callable(lo):
            lo = lo(offs)
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, fl, m, 0,
                           0x21, crc, csz, usz, len(nb), 0, 0, 0, 0, 0, lo)
        out += nb
    out += extra_cd
    cd_size = len(out) - cd_off
    e = {"n": len(records), "size": cd_size, "off": cd_off, "disk": 0}
    e.update(eocd or {})
    out += struct.pack("<IHHHHIIH", 0x06054B50, e["disk"], 0, e["n"], e["n"],
                       e["size"], e["off"], 0)
    return bytes(out)


def zip_records(data):
    """The (name, bytes) records of a zip written by torch.save."""
    z = zipfile.ZipFile(io.BytesIO(data))
    return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def zip_layout(data):
    z = zipfile.ZipFile(io.BytesIO(data))
    return {i.filename: i for i in z.infolist()}


def find_eocd(data):
    return data.rindex(b"PK\x05\x06")


# ---- a hand-written pickle writer ------------------------------------------

PROTO2 = b"\x80\x02"
MARK, STOP, TUPLE, EMPTY_TUPLE = b"(", b".", b"t", b")"
EMPTY_DICT, EMPTY_LIST, SETITEMS, SETITEM = b"}", b"]", b"u", b"s"
APPEND, REDUCE, BINPERSID, NEWFALSE, NONE = b"a", b"R", b"Q", b"\x89", b"N"


def G(mod, name):
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def S(s):
    b = s.encode() if isinstance(s, str) else s
    return b"X" + struct.pack("<I", len(b)) + b


def I(i):
    if -(2 ** 31) <= i < 2 ** 31:
        return b"J" + struct.pack("<i", i)
    n = (i.bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + i.to_bytes(n, "little", signed=True)


def T(*items):
    return MARK + b"".join(items) + TUPLE


STORAGE = {torch.float32: "FloatStorage", torch.int64: "LongStorage"}


def tensor(skey, numel, size, stride, offset=0, stype="FloatStorage",
           fn=("torch._utils", "_rebuild_tensor_v2"), nargs=None):
    pid = T(S("storage"), G("torch", stype), S(skey), S("cpu"), I(numel))
    args = [pid + BINPERSID, I(offset), T(*map(I, size)), T(*map(I, stride)),
            NEWFALSE, G("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE]
    if nargs is not None:
        args = args[:nargs]
    return G(*fn) + T(*args) + REDUCE


def state_dict(items, proto=PROTO2):
    """items: list of (key bytes-or-str, value pickle bytes)."""
    body = b"".join((k if isinstance(k, bytes) and k[:1] in b"XCBK\x8c" else
                     S(k)) + v for k, v in items)
    return (proto + G("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE +
            MARK + body + SETITEMS + STOP)


def sd_items(**override):
    """The model's entries as (key, pickle, storage key, bytes)."""
    out = []
    for i, (k, t) in enumerate(SD.items()):
        t = t.contiguous()
        stype = STORAGE[t.dtype]
        stride = list(t.stride())
        p = tensor(str(i), t.numel(), list(t.shape), stride, stype=stype)
        out.append([k, p, str(i), t.numpy().tobytes()])
    for k, v in override.items():
        for e in out:
            if e[0] == k.replace("__", "."):
                e[1] = v
    return out


def hand_zip(items=None, pkl=None, extra_records=(), drop=(), **zipkw):
    items = items if items is not None else sd_items()
    if pkl is None:
        pkl = state_dict([(k, p) for k, p, _, _ in items])
    recs = [("archive/data.pkl", pkl)]
    recs += [("archive/data/" + sk, b) for _, _, sk, b in items
             if sk not in drop]
    recs += list(extra_records)
    recs.append(("archive/version", b"3\n"))
    return zip_build(recs, **zipkw)


def in_zip(pkl):
    """A bare pickle as the data.pkl of an otherwise valid archive."""
    return hand_zip(pkl=pkl)


# ---- legacy ----------------------------------------------------------------


def legacy_split(data):
    """(prefix pickles, object pickle, keys pickle, storages bytes, keys)."""
    f = io.BytesIO(data)
    for _ in range(3):
        pickle.load(f)
    a = f.tell()

    class U(pickle.Unpickler):
        def persistent_load(self, pid):
            return pid

        def find_class(self, mod, name):
            if (mod, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            return lambda *args: None
    U(f).load()
    b = f.tell()
    keys = pickle.load(f)
    c = f.tell()
    return data[:a], data[a:b], data[b:c], data[c:], keys


def legacy_hand(obj_pickle):
    pre, _, keys_p, storages, _ = legacy_split(LEGACY)
    return pre + obj_pickle + keys_p + storages


# ---- the cases ---------------------------------------------------------------


def build():
    rnd = random.Random(1234)

    # Valid references: the harness must accept these.
    for p, data in ZIP.items():
        case("ok_zip_p%d" % p, data, "ok")
    case("ok_legacy", LEGACY, "ok")
    # protocol 1 (text and binary opcodes mixed) in a zip
    case("ok_zip_p1", torch_save(SD, pickle_protocol=1), "ok")
    case("ok_hand_zip", hand_zip(), "ok")
    # A real checkpoint with a new head: a size mismatch even non-strict
    # (PyTorch raises), loadable with auto-pop. Used by valgrind_cli.sh too.
    wide = Net()
    wide.fc = torch.nn.Linear(4, 5)
    case("valid_head_mismatch", torch_save(wide.state_dict()),
         "load:TSD_ERR_LOAD", "size mismatch for fc.weight")
    case("ok_hand_zip_p4", hand_zip(pkl=state_dict(
        [(k, p) for k, p, _, _ in sd_items()], proto=b"\x80\x04")), "ok")

    # Truncation at many points.
    for p, data in ZIP.items():
        n = len(data)
        pts = sorted(set([0, 1, 2, 4, 21, 22, 23, n // 2, n - 23, n - 22,
                          n - 21, n - 1] +
                         [n * k // 24 for k in range(1, 24)]))
        if p != 2:
            pts = pts[::3]
        for t in pts:
            case("trunc_zip_p%d_%05d" % (p, t), data[:t], "open:TSD_ERR_FORMAT")
    n = len(LEGACY)
    pre, obj, keys_p, storages, _ = legacy_split(LEGACY)
    marks = [len(pre) + len(obj) // 2, len(pre) + len(obj),
             len(pre) + len(obj) + len(keys_p), len(pre) + len(obj) +
             len(keys_p) + 4, n - 1]
    for t in sorted(set([1, 2, 10, 11, 12, 20] + marks +
                        [n * k // 16 for k in range(1, 16)])):
        case("trunc_legacy_%05d" % t, LEGACY[:t], "open:TSD_ERR_FORMAT")

    # Bit flips in the headers (zip structures) and in the pickle.
    data = ZIP[2]
    lay = zip_layout(data)
    pkl_info = lay["archive/data.pkl"]
    hdr_ranges = [(i.header_offset, i.header_offset + 30) for i in lay.values()]
    eocd = find_eocd(data)
    cd = struct.unpack_from("<I", data, eocd + 16)[0]
    hdr_ranges += [(cd, eocd + 22)]
    pkl_start = pkl_info.header_offset + 30 + len(pkl_info.filename) + \
        len(pkl_info.extra)
    pkl_range = (pkl_start, pkl_start + pkl_info.file_size)
    for i in range(40):
        lo, hi = hdr_ranges[rnd.randrange(len(hdr_ranges))]
        off = rnd.randrange(lo, hi)
        b = bytearray(data)
        b[off] ^= 1 << rnd.randrange(8)
        case("flip_zip_header_%02d_at%05d" % (i, off), b, "any")
    for i in range(60):
        off = rnd.randrange(*pkl_range)
        b = bytearray(data)
        b[off] ^= 1 << rnd.randrange(8)
        case("flip_zip_pickle_%02d_at%05d" % (i, off), b, "any")
    for i in range(30):
        off = rnd.randrange(len(pre) + len(obj) + len(keys_p))
        b = bytearray(LEGACY)
        b[off] ^= 1 << rnd.randrange(8)
        case("flip_legacy_%02d_at%05d" % (i, off), b, "any")

    # The central directory and record offsets.
    def patch(data, off, fmt, val):
        b = bytearray(data)
        struct.pack_into(fmt, b, off, val)
        return bytes(b)

    base = hand_zip()
    e = find_eocd(base)
    cd_off = struct.unpack_from("<I", base, e + 16)[0]
    case("cd_eocd_bad_signature", patch(base, e, "<I", 0x06054B51),
         "open:TSD_ERR_FORMAT", "End of Central Directory")
    case("cd_offset_past_eof", patch(base, e + 16, "<I", len(base) + 4096),
         "open:TSD_ERR_FORMAT", "central directory")
    case("cd_size_huge", patch(base, e + 12, "<I", 0xFFFFFF00),
         "open:TSD_ERR_FORMAT", "central directory")
    b = patch(base, e + 8, "<H", 0xFFF0)
    case("cd_entry_count_huge", patch(b, e + 10, "<H", 0xFFF0),
         "open:TSD_ERR_FORMAT", "entries")
    case("cd_entry_bad_signature", patch(base, cd_off, "<I", 0x02014B51),
         "open:TSD_ERR_FORMAT", "central directory entry")
    case("cd_name_length_huge", patch(base, cd_off + 28, "<H", 0xFFFF),
         "open:TSD_ERR_FORMAT", "")
    case("cd_extra_length_huge", patch(base, cd_off + 30, "<H", 0xFFFF),
         "open:TSD_ERR_FORMAT", "")
    case("cd_multi_disk", patch(base, e + 4, "<H", 1),
         "open:TSD_ERR_UNSUPPORTED", "disk")
    case("cd_needs_zip64_without_locator",
         patch(patch(base, e + 8, "<H", 0xFFFF), e + 10, "<H", 0xFFFF),
         "open:TSD_ERR_FORMAT", "ZIP64")
    # a ZIP64 locator whose end-record offset is outside the file
    loc = struct.pack("<IIQI", 0x07064B50, 0, 2 ** 62, 1)
    case("zip64_locator_out_of_file", base[:e] + loc + base[e:],
         "open:TSD_ERR_FORMAT", "ZIP64")
    case("zip64_locator_bad_record",
         base[:e] + struct.pack("<IIQI", 0x07064B50, 0, 0, 1) + base[e:],
         "open:TSD_ERR_FORMAT", "ZIP64")

    items = sd_items()
    case("record_offset_out_of_file",
         hand_zip(local_off={"archive/data/0": 0x7FFFFF00}),
         "open:TSD_ERR_FORMAT", "archive/data/0")
    case("record_offset_into_central_directory",
         hand_zip(local_off={"archive/data/1": lambda o: o["archive/version"]
                             + 40}),
         "open:TSD_ERR_FORMAT", "archive/data/1")
    case("record_data_pkl_offset_out_of_file",
         hand_zip(local_off={"archive/data.pkl": 0x7FFFFF00}),
         "open:TSD_ERR_FORMAT", "data.pkl")
    # data/2 (fc... no: bn.weight, 3 floats) and data/3 (bn.bias, 3 floats)
    # have the same size; the central directory points both at one record.
    case("records_overlap",
         hand_zip(local_off={"archive/data/3": lambda o: o["archive/data/2"]}),
         "open:TSD_ERR_FORMAT", "archive/data/3")
    case("record_local_header_bad_signature",
         hand_zip(local_off={"archive/data/0": lambda o: o["archive/data/0"]
                             + 1}),
         "open:TSD_ERR_FORMAT", "local header")
    case("record_compressed_data_pkl",
         hand_zip(method={"archive/data.pkl": 8}),
         "open:TSD_ERR_UNSUPPORTED", "compressed")
    case("record_compressed_tensor", hand_zip(method={"archive/data/0": 8}),
         "open:TSD_ERR_UNSUPPORTED", "compressed")
    bomb = [list(x) for x in items]
    bomb[0][3] = bytes(4 << 20)  # 4 MiB of zeros deflate to ~4 KiB
    bomb[0][1] = tensor("0", 1 << 20, [3, 4], [4, 1])
    case("record_compressed_bomb", hand_zip(items=bomb,
                                            method={"archive/data/0": 8}),
         "open:TSD_ERR_UNSUPPORTED", "compressed")
    case("record_encrypted", hand_zip(flags={"archive/data.pkl": 1}),
         "open:TSD_ERR_UNSUPPORTED", "encrypted")

    # Local headers against the record bounds (issue 11 item 4): a local
    # header's own name and extra lengths place the data; it must end before
    # the next record (or the central directory) begins. Python's zipfile
    # refuses these ("Overlapped entries", "File name in directory ... and
    # header ... differ").
    def local_patch(data, name, field, fn):
        """Applies fn to a local header's u16 at +field (26 name, 28 extra)."""
        lo = zip_layout(data)[name].header_offset
        old = struct.unpack_from("<H", data, lo + field)[0]
        return patch(data, lo + field, "<H", fn(old))

    def data_start(data, name):
        lo = zip_layout(data)[name].header_offset
        nl, el = struct.unpack_from("<HH", data, lo + 26)
        return lo + 30 + nl + el

    # bn.weight (data/2) and bn.bias (data/3) are both 3 floats: an extra
    # field that moves data/2's start onto data/3's bytes would make
    # bn.weight read bn.bias's values.
    shift = data_start(base, "archive/data/3") - data_start(base,
                                                            "archive/data/2")
    case("local_extra_aliases_next_record",
         local_patch(base, "archive/data/2", 28, lambda x: x + shift),
         "open:TSD_ERR_FORMAT", "runs into the next record")
    case("local_extra_overlaps_next_header",
         local_patch(base, "archive/data/0", 28, lambda x: x + 40),
         "open:TSD_ERR_FORMAT", "'archive/data/0' (data at")
    case("local_extra_max_length",
         local_patch(base, "archive/data/1", 28, lambda x: 0xFFFF),
         "open:TSD_ERR_FORMAT", "runs into")
    case("local_extra_overlaps_next_record_from_data_pkl",
         local_patch(base, "archive/data.pkl", 28, lambda x: x + 64),
         "open:TSD_ERR_FORMAT", "'archive/data.pkl' (data at")
    # the last record before the central directory
    last = zip_build([("archive/version", b"3\n"),
                      ("archive/data.pkl", state_dict(
                          [(k, q) for k, q, _, _ in items]))]
                     + [("archive/data/" + sk, b) for _, _, sk, b in items])
    case("ok_hand_zip_version_first", last, "ok")
    case("local_extra_overlaps_central_directory",
         local_patch(last, "archive/data/6", 28, lambda x: x + 8),
         "open:TSD_ERR_FORMAT", "runs into the central directory")
    case("local_name_length_longer_than_directory",
         local_patch(base, "archive/data/4", 26, lambda x: x + 1),
         "open:TSD_ERR_FORMAT", "names another record")
    case("local_name_length_shorter_than_directory",
         local_patch(base, "archive/data/4", 26, lambda x: x - 1),
         "open:TSD_ERR_FORMAT", "names another record")
    lo4 = zip_layout(base)["archive/data/4"].header_offset
    b = bytearray(base)
    b[lo4 + 30 + len("archive/data/")] = ord("5")  # names data/5 locally
    case("local_name_differs_from_directory", bytes(b),
         "open:TSD_ERR_FORMAT", "names another record")
    case("local_header_past_end_of_file",
         hand_zip(local_off={"archive/data/5": lambda o: 0xFFFFFFF0}),
         "open:TSD_ERR_FORMAT", "archive/data/5")
    case("local_header_straddles_central_directory",
         hand_zip(local_off={"archive/data/5": lambda o: o["archive/version"]
                             + 20}),
         "open:TSD_ERR_FORMAT", "archive/data/5")
    case("zip_no_data_pkl", zip_build([("archive/version", b"3\n")]),
         "open:TSD_ERR_FORMAT", "data.pkl")
    case("zip_two_data_pkl", hand_zip(extra_records=[
        ("other/data.pkl", state_dict([]))]), "open:TSD_ERR_FORMAT",
        "data.pkl")
    case("zip_duplicate_record", hand_zip(extra_records=[
        ("archive/data/0", items[0][3])]), "open:TSD_ERR_FORMAT",
        "duplicate")
    case("zip_missing_storage_record", hand_zip(drop=("1",)),
         "open:TSD_ERR_FORMAT", "archive/data/1")
    # 2.1+ byteorder record: "big" is read (byte-swapped, as torch.load
    # does), anything but "little"/"big" is refused
    case("zip_big_endian", hand_zip(extra_records=[
        ("archive/byteorder", b"big")]), "ok", "")
    case("zip_byteorder_unknown", hand_zip(extra_records=[
        ("archive/byteorder", b"middle")]), "open:TSD_ERR_FORMAT",
        "unknown byte order")
    case("zip_byteorder_long", hand_zip(extra_records=[
        ("archive/byteorder", b"little-endian")]), "open:TSD_ERR_FORMAT",
        "byteorder record holds 13 bytes")

    # Tensor metadata: sizes, strides, offsets against the storage.
    def with_fc_weight(p, storage_bytes=None, numel_note=None):
        it = [list(x) for x in sd_items()]
        it[0][1] = p
        if storage_bytes is not None:
            it[0][3] = storage_bytes
        return hand_zip(items=it)

    case("tensor_numel_overflows_64_bits",
         with_fc_weight(tensor("0", 12, [2 ** 32, 2 ** 32, 4], [0, 0, 1])),
         "open:TSD_ERR_FORMAT", "overflow")
    case("tensor_extent_overflows_64_bits",
         with_fc_weight(tensor("0", 12, [3, 4], [2 ** 62, 2 ** 62])),
         "open:TSD_ERR_FORMAT", "overflow")
    case("tensor_shape_stride_itemsize_overflow",
         with_fc_weight(tensor("0", 2 ** 62, [2 ** 62], [1])),
         "open:TSD_ERR_FORMAT", "storage '0'")
    case("tensor_storage_numel_overflows_bytes",
         with_fc_weight(tensor("0", 2 ** 63 - 1, [3, 4], [4, 1])),
         "open:TSD_ERR_FORMAT", "storage '0'")
    case("tensor_storage_smaller_than_view",
         with_fc_weight(tensor("0", 12, [3, 4], [4, 1], offset=1)),
         "open:TSD_ERR_FORMAT", "storage '0'")
    case("tensor_view_strides_past_storage",
         with_fc_weight(tensor("0", 12, [3, 4], [5, 1])),
         "open:TSD_ERR_FORMAT", "storage '0'")
    case("tensor_storage_offset_past_storage",
         with_fc_weight(tensor("0", 12, [1], [1], offset=12)),
         "open:TSD_ERR_FORMAT", "storage '0'")
    case("tensor_negative_dimension",
         with_fc_weight(tensor("0", 12, [-3, 4], [4, 1])),
         "open:TSD_ERR_FORMAT", "negative")
    case("tensor_negative_stride",
         with_fc_weight(tensor("0", 12, [3, 4], [-4, 1])),
         "open:TSD_ERR_FORMAT", "negative")
    case("tensor_negative_storage_offset",
         with_fc_weight(tensor("0", 12, [3, 4], [4, 1], offset=-1)),
         "open:TSD_ERR_FORMAT", "offset")
    case("tensor_negative_storage_numel",
         with_fc_weight(tensor("0", -12, [3, 4], [4, 1])),
         "open:TSD_ERR_FORMAT", "storage '0'")
    case("tensor_declared_numel_larger_than_record",
         with_fc_weight(tensor("0", 1 << 40, [3, 4], [4, 1])),
         "open:TSD_ERR_FORMAT", "storage '0'")
    case("tensor_record_smaller_than_declared",
         with_fc_weight(tensor("0", 12, [3, 4], [4, 1]), bytes(20)),
         "open:TSD_ERR_FORMAT", "storage '0'")
    case("tensor_too_many_dimensions",
         with_fc_weight(tensor("0", 12, [1] * 65, [1] * 65)),
         "open:TSD_ERR_UNSUPPORTED", "dimensions")
    case("tensor_sizes_strides_lengths_differ",
         with_fc_weight(tensor("0", 12, [3, 4], [4])),
         "open:TSD_ERR_FORMAT", "strides")
    case("tensor_size_not_a_tuple",
         with_fc_weight(G("torch._utils", "_rebuild_tensor_v2") + T(
             T(S("storage"), G("torch", "FloatStorage"), S("0"), S("cpu"),
               I(12)) + BINPERSID, I(0), I(12), T(I(1)), NEWFALSE,
             G("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE) + REDUCE),
         "open:TSD_ERR_FORMAT", "size")
    case("tensor_rebuild_wrong_arity",
         with_fc_weight(tensor("0", 12, [3, 4], [4, 1], nargs=3)),
         "open:TSD_ERR_FORMAT", "argument")
    case("tensor_storage_is_not_a_storage",
         with_fc_weight(G("torch._utils", "_rebuild_tensor_v2") + T(
             S("storage"), I(0), T(I(3), I(4)), T(I(4), I(1)), NEWFALSE,
             G("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE) + REDUCE),
         "open:TSD_ERR_FORMAT", "storage")
    case("persistent_id_not_a_tuple",
         with_fc_weight(S("storage") + BINPERSID), "open:TSD_ERR_FORMAT",
         "persistent id")
    case("persistent_id_unknown_storage_type",
         with_fc_weight(tensor("0", 12, [3, 4], [4, 1],
                               stype="QUInt4x2Storage")),
         "open:TSD_ERR_FORMAT", "not a storage type")

    # Memo and stack misuse.
    P = PROTO2
    case("memo_unknown_index", in_zip(P + b"h\x05" + STOP),
         "open:TSD_ERR_FORMAT", "unknown memo index")
    case("memo_unknown_long_index", in_zip(P + b"j\xff\xff\xff\xff" + STOP),
         "open:TSD_ERR_FORMAT", "unknown memo index")
    case("memo_put_get_self_append",
         in_zip(P + EMPTY_LIST + b"q\x00h\x00" + APPEND + STOP),
         "open:TSD_ERR_FORMAT", "itself")
    case("stack_underflow_setitems_without_mark",
         in_zip(P + EMPTY_DICT + SETITEMS + STOP), "open:TSD_ERR_FORMAT", "")
    case("stack_underflow_setitem", in_zip(P + EMPTY_DICT + S("k") +
                                           SETITEM + STOP),
         "open:TSD_ERR_FORMAT", "underflow")
    case("stack_underflow_reduce", in_zip(P + REDUCE + STOP),
         "open:TSD_ERR_FORMAT", "underflow")
    case("stack_underflow_tuple3", in_zip(P + I(1) + b"\x87" + STOP),
         "open:TSD_ERR_FORMAT", "underflow")
    case("stack_underflow_append_across_mark",
         in_zip(P + EMPTY_LIST + MARK + APPEND + STOP),
         "open:TSD_ERR_FORMAT", "underflow")
    case("stack_underflow_pop", in_zip(P + b"0" + STOP),
         "open:TSD_ERR_FORMAT", "underflow")
    case("pop_mark_without_mark", in_zip(P + b"1" + STOP),
         "open:TSD_ERR_FORMAT", "MARK")
    case("stop_on_empty_stack", in_zip(P + STOP), "open:TSD_ERR_FORMAT", "STOP")
    case("stop_with_two_values", in_zip(P + NONE + NONE + STOP),
         "open:TSD_ERR_FORMAT", "STOP")
    case("stop_with_open_mark", in_zip(P + MARK + NONE + STOP),
         "open:TSD_ERR_FORMAT", "MARK")
    case("pickle_without_stop", in_zip(P + EMPTY_DICT),
         "open:TSD_ERR_FORMAT", "without STOP")
    case("pickle_empty", in_zip(b""), "open:TSD_ERR_FORMAT", "")
    case("opcode_unknown", in_zip(P + b"\xff" + STOP),
         "open:TSD_ERR_UNSUPPORTED", "opcode")
    case("protocol_6", in_zip(b"\x80\x06" + EMPTY_DICT + STOP),
         "open:TSD_ERR_UNSUPPORTED", "protocol")
    case("setitem_on_a_list", in_zip(P + EMPTY_LIST + S("k") + NONE +
                                      SETITEM + STOP),
         "open:TSD_ERR_FORMAT", "SETITEM")
    case("append_to_a_dict", in_zip(P + EMPTY_DICT + NONE + APPEND + STOP),
         "open:TSD_ERR_FORMAT", "APPEND")
    case("reduce_on_a_str", in_zip(P + S("os") + EMPTY_TUPLE + REDUCE + STOP),
         "open:TSD_ERR_FORMAT", "REDUCE")
    case("dict_key_unhashable", in_zip(P + EMPTY_DICT + EMPTY_LIST + NONE +
                                       SETITEM + STOP),
         "open:TSD_ERR_FORMAT", "unhashable")
    case("modify_frozen_list",
         in_zip(P + EMPTY_LIST + b"q\x00" + EMPTY_LIST + b"h\x00" + APPEND +
                b"0h\x00" + NONE + APPEND + STOP),
         "open:TSD_ERR_FORMAT", "already inside")
    case("frame_length_past_end", in_zip(b"\x80\x04\x95" +
                                         struct.pack("<Q", 2 ** 62) +
                                         EMPTY_DICT + STOP),
         "open:TSD_ERR_FORMAT", "")

    # Nesting deep enough to exhaust a recursive parser (the default
    # max_depth is 1000; test_malformed_portable.cc also builds 1,000,000 levels in
    # memory). 50,000 levels keep the corpus small.
    N = 50000
    case("nest_list_50k", in_zip(P + EMPTY_LIST * (N + 1) + APPEND * N +
                                  STOP), "open:TSD_ERR_LIMIT", "max_depth")
    case("nest_mark_tuple_50k", in_zip(P + MARK * N + TUPLE * N + STOP),
         "open:TSD_ERR_LIMIT", "max_depth")
    case("nest_tuple1_50k", in_zip(P + NONE + b"\x85" * N + STOP),
         "open:TSD_ERR_LIMIT", "max_depth")
    case("nest_dict_20k", in_zip(P + (EMPTY_DICT + b"\x8c\x01k") * 20000 +
                                 EMPTY_DICT + SETITEM * 20000 + STOP),
         "open:TSD_ERR_LIMIT", "max_depth")
    case("nest_mark_50k_unclosed", in_zip(P + MARK * N + NONE + STOP),
         "open:TSD_ERR_FORMAT", "MARK")

    # Lengths far beyond the file.
    case("str_binunicode_len_4g", in_zip(P + b"X\xff\xff\xff\xff" + b"abc" +
                                         STOP), "open:TSD_ERR_FORMAT", "")
    case("str_binunicode8_len_2e63",
         in_zip(P + b"\x8d" + struct.pack("<Q", 2 ** 63) + b"abc" + STOP),
         "open:TSD_ERR_FORMAT", "")
    case("str_short_binunicode_past_end", in_zip(P + b"\x8c\xff" + b"ab"),
         "open:TSD_ERR_FORMAT", "")
    case("bytes_binbytes8_len_huge",
         in_zip(P + b"\x8e" + struct.pack("<Q", 2 ** 64 - 1) + STOP),
         "open:TSD_ERR_FORMAT", "")
    case("bytes_binbytes_len_4g", in_zip(P + b"B\xff\xff\xff\xff" + STOP),
         "open:TSD_ERR_FORMAT", "")
    case("str_binstring_negative_len", in_zip(P + b"T\xff\xff\xff\xff" + STOP),
         "open:TSD_ERR_FORMAT", "")
    case("long4_len_huge", in_zip(P + b"\x8b\xff\xff\xff\x7f" + STOP),
         "open:TSD_ERR_FORMAT", "")
    case("long4_negative_len", in_zip(P + b"\x8b\xff\xff\xff\xff" + STOP),
         "open:TSD_ERR_FORMAT", "")
    case("key_len_past_end_in_state_dict", in_zip(
        state_dict([])[:-2] + b"X\x00\x00\x00\x10fc"), "open:TSD_ERR_FORMAT",
        "")

    # Globals outside the allow-list: the classic payload GLOBAL + args +
    # REDUCE, as the top-level object and as a value inside a valid state
    # dict. Never called: each becomes an inert placeholder object, so the
    # file opens and the load fails naming the class, as PyTorch's
    # load_state_dict does for any value that is not a tensor (or dict).
    refused = [("os", "system"), ("posix", "system"), ("nt", "system"),
               ("builtins", "eval"), ("builtins", "exec"),
               ("__builtin__", "eval"), ("builtins", "getattr"),
               ("builtins", "__import__"), ("subprocess", "Popen"),
               ("subprocess", "check_output"), ("torch", "load"),
               ("torch", "save"), ("torch.serialization", "load"),
               ("pickle", "loads"), ("shutil", "rmtree"),
               ("webbrowser", "open"), ("functools", "partial"),
               ("numpy.core.multiarray", "_reconstruct"),
               ("torch._utils", "_rebuild_device_tensor_from_numpy"),
               ("torch.storage", "_load_from_bytes"),
               ("collections", "OrderedDict.__init__")]
    for mod, name in refused:
        tag = (mod + "_" + name).replace(".", "_").lstrip("_")
        payload = G(mod, name) + T(S("echo pwned")) + REDUCE
        case("refused_%s" % tag, in_zip(P + payload + STOP),
             "load:TSD_ERR_TYPE",
             "Expected state_dict to be dict-like, got <class '%s.%s'>." %
             (mod, name))
    # inside a state dict, protocol 4 STACK_GLOBAL spelling
    sg = S("posix") + S("system") + b"\x93" + T(S("id")) + REDUCE
    it = [list(x) for x in sd_items()]
    it[1][1] = sg
    case("refused_posix_system_stack_global_in_state_dict", hand_zip(items=it),
         "load:TSD_ERR_LOAD", "received <class 'posix.system'>")
    case("refused_legacy_os_system",
         legacy_split(LEGACY)[0] + P + G("os", "system") +
         T(S("echo pwned")) + REDUCE + STOP + P + b"]" + STOP,
         "load:TSD_ERR_TYPE",
         "got <class 'os.system'>")
    # INST (protocols 0-1) calls its class like REDUCE: a placeholder too
    case("refused_inst_os_system",
         in_zip(P + MARK + S("id") + b"ios\nsystem\n" + STOP),
         "load:TSD_ERR_TYPE", "got <class 'os.system'>")
    case("refused_build_setstate_on_ordered_dict",
         in_zip(P + G("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE +
                G("os", "system") + b"b" + STOP),
         "open:TSD_ERR_FORMAT", "OrderedDict state is a global")
    # What still refuses: NEWOBJ of an allow-listed global that tsd does not
    # construct that way, and _rebuild_from_type_v2 of another function.
    case("refused_newobj_codecs_encode",
         in_zip(P + G("_codecs", "encode") + EMPTY_TUPLE + b"\x81" + STOP),
         "open:TSD_ERR_REFUSED", "NEWOBJ is allowed only")

    # Keys: duplicates, not UTF-8, not str.
    it = sd_items()
    dup = [(k, p) for k, p, _, _ in it] + [(it[0][0], it[0][1])]
    case("key_duplicate", hand_zip(pkl=state_dict(dup)),
         "load:TSD_ERR_FORMAT", "twice")
    bad = [(k, p) for k, p, _, _ in it]
    bad[0] = (b"X\x0a\x00\x00\x00fc.weight\xff\xfe", bad[0][1])
    case("key_invalid_utf8", hand_zip(pkl=state_dict(bad)),
         "open:TSD_ERR_FORMAT", "UTF-8")
    bad[0] = (b"\x8c\x04fc\xc0\xaf", it[0][1])  # overlong '/'
    case("key_invalid_utf8_overlong", hand_zip(pkl=state_dict(bad)),
         "open:TSD_ERR_FORMAT", "UTF-8")
    # A lone surrogate: Python's pickle decodes BINUNICODE with
    # 'surrogatepass', so torch.load accepts it; the key just matches nothing.
    bad[0] = (b"X\x05\x00\x00\x00\xed\xa0\x80fc", it[0][1])
    case("key_lone_surrogate", hand_zip(pkl=state_dict(bad)),
         "load:TSD_ERR_LOAD", "Missing key(s) in state_dict: \"fc.weight\"")
    bad[0] = (b"C\x09fc.weight", it[0][1])
    case("key_is_bytes", hand_zip(pkl=state_dict(bad)),
         "load:TSD_ERR_FORMAT", "not a str")
    bad[0] = (b"K\x07", it[0][1])
    case("key_is_int", hand_zip(pkl=state_dict(bad)),
         "load:TSD_ERR_FORMAT", "not a str")
    case("root_is_a_list", in_zip(P + EMPTY_LIST + STOP),
         "load:TSD_ERR_TYPE", "dict-like")

    # Legacy container.
    pre, obj, keys_p, storages, keys = legacy_split(LEGACY)
    b = bytearray(LEGACY)
    b[5] ^= 0x10  # inside the magic number's LONG bytes
    case("legacy_bad_magic", b, "open:TSD_ERR_FORMAT", "magic")
    m = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    case("legacy_bad_protocol_version",
         m + pickle.dumps(1000, protocol=2) + LEGACY[len(m) + len(
             pickle.dumps(1001, protocol=2)):], "open:TSD_ERR_UNSUPPORTED",
         "")
    st = bytearray(storages)
    struct.pack_into("<q", st, 0, 1 << 40)
    case("legacy_storage_numel_huge", pre + obj + keys_p + st,
         "open:TSD_ERR_FORMAT", "")
    struct.pack_into("<q", st, 0, -1)
    case("legacy_storage_numel_negative", pre + obj + keys_p + st,
         "open:TSD_ERR_FORMAT", "")
    case("legacy_keys_list_missing_key",
         pre + obj + pickle.dumps(keys[:-1], protocol=2) + storages,
         "open:TSD_ERR_FORMAT", "")
    case("legacy_keys_not_a_list", pre + obj + pickle.dumps(7, protocol=2) +
         storages, "open:TSD_ERR_FORMAT", "")
    case("legacy_no_storages", pre + obj + keys_p, "open:TSD_ERR_FORMAT", "")


# ---- safetensors ------------------------------------------------------------
# Cases named st_* (and ok_st_*): safetensors files of the same Net. A .bin
# file is recognised as safetensors by content (a '{' after the 8-byte header
# length), so every case keeps that '{'; a header that is not an object
# cannot be reached that way (tests/unit/test_safetensors.cc opens those by
# their .safetensors name).

ST_DTYPES = {
    torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
    torch.bfloat16: "BF16", torch.int8: "I8", torch.int16: "I16",
    torch.int32: "I32", torch.int64: "I64", torch.uint8: "U8",
    torch.bool: "BOOL",
}
ST_TORCH = {v: k for k, v in ST_DTYPES.items()}


def st_blob(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def st_parts(items, metadata=None):
    """items: (name, tensor) in header order. Returns (header dict, data):
    data packed in the same order, as the format's reference writer does for
    one dtype."""
    header = collections.OrderedDict()
    if metadata is not None:
        header["__metadata__"] = metadata
    data, pos = b"", 0
    for name, t in items:
        b = st_blob(t)
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [pos, pos + len(b)]}
        data += b
        pos += len(b)
    return header, data


def st_text(header):
    """The header as the reference writer spells it, padded with spaces so
    the data starts at a multiple of 8."""
    text = json.dumps(header, separators=(",", ":")).encode()
    return text + b" " * ((8 - (8 + len(text)) % 8) % 8)


def st_file(header, data, hlen=None):
    """header: a dict (dumped as JSON) or the raw header bytes."""
    text = header if isinstance(header, (bytes, bytearray)) else st_text(header)
    return struct.pack("<Q", len(text) if hlen is None else hlen) + text + data


def st_read(data):
    """A reference reader for the valid cases: the state dict torch sees."""
    n = struct.unpack_from("<Q", data)[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    sd = collections.OrderedDict()
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        dt = ST_TORCH[v["dtype"]]
        raw = bytearray(data[base + b:base + e])
        t = torch.frombuffer(raw, dtype=dt) if raw else torch.zeros(0, dtype=dt)
        sd[k] = t.reshape(v["shape"]).clone()
    return sd


def st_edit(items, fn, metadata=None):
    """A valid file of `items` whose header dict fn(header) edits in place;
    data unchanged."""
    h, d = st_parts(items, metadata)
    fn(h)
    return st_file(h, d)


def build_safetensors():
    rnd = random.Random(4321)
    items = list(SD.items())
    h, d = st_parts(items)
    good = st_file(h, d)
    hlen = len(st_text(h))

    # Valid references.
    case("ok_st_net", good, "ok")
    case("ok_st_sorted_with_metadata",
         st_file(*st_parts(sorted(items), {"format": "pt"})), "ok")
    # dtype conversion on load (copy_), and other dtypes than the model's
    conv = [(k, v.double() if v.is_floating_point() else v) for k, v in items]
    case("ok_st_float64_converted", st_file(*st_parts(conv)), "ok")
    conv = [(k, v.half() if v.is_floating_point() else v) for k, v in items]
    case("ok_st_float16_converted", st_file(*st_parts(conv)), "ok")
    # the data laid out in another order than the header's
    rev = collections.OrderedDict()
    pos, data = 0, b""
    for k, t in reversed(items):
        b = st_blob(t)
        rev[k] = (pos, pos + len(b))
        data += b
        pos += len(b)
    hr = collections.OrderedDict(
        (k, {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
             "data_offsets": list(rev[k])}) for k, t in items)
    case("ok_st_data_order_differs", st_file(hr, data), "ok")
    # a header padded with tabs/newlines: JSON whitespace
    text = json.dumps(h, separators=(",", ":")).encode() + b"\n\t  \r"
    case("ok_st_header_whitespace_padding", st_file(text, d), "ok")
    case("st_load_empty_header",
         st_file(b"{}", b""), "load:TSD_ERR_LOAD",
         "Missing key(s) in state_dict: \"fc.weight\"")
    wide = [(k, torch.zeros(5, 4) if k == "fc.weight" else v)
            for k, v in items]
    case("st_load_size_mismatch", st_file(*st_parts(wide)),
         "load:TSD_ERR_LOAD",
         "size mismatch for fc.weight: copying a param with shape "
         "torch.Size([5, 4]) from checkpoint")
    case("st_load_unexpected_key",
         st_file(*st_parts(items + [("fc.extra", torch.ones(2))])),
         "load:TSD_ERR_LOAD", "Unexpected key(s) in state_dict: \"fc.extra\"")

    # The header length.
    case("st_header_len_beyond_file", st_file(st_text(h), d,
                                               hlen=8 + hlen + len(d)),
         "open:TSD_ERR_FORMAT", "runs past the end of the file")
    case("st_header_len_one_past_file", st_file(st_text(h), d,
                                                 hlen=hlen + len(d) + 1),
         "open:TSD_ERR_FORMAT", "runs past the end of the file")
    case("st_header_len_zero", st_file(b"", b"{}" + d, hlen=0),
         "open:TSD_ERR_FORMAT", "header length is 0")
    case("st_header_len_over_format_limit",
         st_file(st_text(h), d, hlen=100000001), "open:TSD_ERR_FORMAT",
         "larger than the format's limit")
    case("st_header_len_2_63", st_file(st_text(h), d, hlen=1 << 63),
         "open:TSD_ERR_FORMAT", "larger than the format's limit")
    case("st_header_len_2_64_minus_1",
         st_file(st_text(h), d, hlen=(1 << 64) - 1), "open:TSD_ERR_FORMAT",
         "larger than the format's limit")
    # one byte short: a padding space becomes data no tensor covers
    case("st_header_len_short_by_one", st_file(st_text(h), d, hlen=hlen - 1),
         "open:TSD_ERR_FORMAT", "but the tensors cover only")
    # short enough to cut the JSON's closing '}'
    tlen = len(json.dumps(h, separators=(",", ":")))
    case("st_header_len_cuts_the_json", st_file(st_text(h), d, hlen=tlen - 1),
         "open:TSD_ERR_FORMAT", "bad JSON at byte %d: expected ',' or '}'"
         % (tlen - 1))

    # Truncation at many points (from 9 bytes: below, the '{' is gone and
    # the file is no longer safetensors).
    for cut in sorted({9, 10, 16, 8 + hlen // 2, 8 + hlen - 1, 8 + hlen,
                       8 + hlen + 1, 8 + hlen + len(d) // 2,
                       len(good) - 1}):
        want = ("runs past the end of the file" if cut < 8 + hlen else
                "not a range inside the data section")
        case("st_truncated_at_%d" % cut, good[:cut], "open:TSD_ERR_FORMAT",
             want)

    # Not JSON, truncated JSON, trailing text.
    case("st_header_not_json", st_file(b"{not json}      ", d),
         "open:TSD_ERR_FORMAT",
         "bad JSON at byte 1: expected a string (an object member name)")
    t = json.dumps(h, separators=(",", ":")).encode()
    case("st_header_truncated_json", st_file(t[:len(t) // 2], d),
         "open:TSD_ERR_FORMAT", "bad JSON")
    case("st_header_unterminated_string", st_file(b'{"fc.weight', d),
         "open:TSD_ERR_FORMAT", "unterminated string")
    case("st_header_nul_padding", st_file(t + b"\0" * 8, d),
         "open:TSD_ERR_FORMAT", "text after the value")
    case("st_header_two_objects", st_file(t + b"{}", d),
         "open:TSD_ERR_FORMAT", "text after the value")
    case("st_header_trailing_comma", st_file(t[:-1] + b",}", d),
         "open:TSD_ERR_FORMAT", "expected a string (an object member name)")
    case("st_header_single_quotes", st_file(b"{'a': 1}", d),
         "open:TSD_ERR_FORMAT", "bad JSON at byte 1")
    case("st_header_bad_literal", st_file(t.replace(b"[3,4]", b"[3,nul]"), d),
         "open:TSD_ERR_FORMAT", "bad literal")
    case("st_header_leading_zero", st_file(t.replace(b"[3,4]", b"[03,4]"), d),
         "open:TSD_ERR_FORMAT", "leading zero")

    # Names: duplicates, bad UTF-8, escapes that cannot be C strings.
    k0 = b'"fc.weight":'
    entry = t[t.index(k0):t.index(b"}", t.index(k0)) + 1]
    case("st_duplicate_key", st_file(t[:-1] + b"," + entry + b"}", d),
         "open:TSD_ERR_FORMAT", "duplicate name \"fc.weight\"")
    # the same name spelled once with an escape: still a duplicate
    case("st_duplicate_key_escaped",
         st_file(t[:-1] + b"," + entry.replace(b"fc.weight", b"fc\\u002eweight")
                 + b"}", d),
         "open:TSD_ERR_FORMAT", "duplicate name \"fc.weight\"")
    for nm, bad, sub in (
            ("invalid_utf8", b"fc.\xffweight", "invalid UTF-8"),
            ("overlong_utf8", b"fc\xc0\xaeweight", "invalid UTF-8"),
            ("surrogate_utf8", b"fc.\xed\xa0\x80", "invalid UTF-8"),
            ("lone_surrogate_escape", b"fc.\\ud800", "lone high surrogate"),
            ("lone_low_surrogate_escape", b"fc.\\udc00", "lone low surrogate"),
            ("nul_escape", b"fc.\\u0000", "\\u0000 in a string"),
            ("control_char", b"fc.\nweight", "control character"),
            ("bad_escape", b"fc.\\x41", "bad escape")):
        case("st_key_" + nm, st_file(t.replace(b"fc.weight", bad, 1), d),
             "open:TSD_ERR_FORMAT", sub)
    # a valid non-ASCII name: opens, the key is simply unexpected
    case("st_key_non_ascii_unexpected",
         st_file(t.replace(b"fc.weight", "fc.wéight".encode(), 1), d),
         "load:TSD_ERR_LOAD", "Missing key(s) in state_dict: \"fc.weight\"")

    # dtype
    def set_(key, field, value):
        def fn(hd):
            hd[key][field] = value
        return fn
    case("st_dtype_unknown", st_edit(items, set_("fc.bias", "dtype", "Q7")),
         "open:TSD_ERR_UNSUPPORTED", "dtype \"Q7\", which tsd does not handle")
    # F4 (float4_e2m1fn_x2, two values a byte) is a real safetensors dtype
    # tsd does not handle; F8_E4M3 is handled, so its size is checked
    case("st_dtype_f4_unsupported",
         st_edit(items, set_("fc.bias", "dtype", "F4")),
         "open:TSD_ERR_UNSUPPORTED", "dtype \"F4\"")
    case("st_dtype_f8_wrong_size",
         st_edit(items, set_("fc.bias", "dtype", "F8_E4M3")),
         "open:TSD_ERR_FORMAT",
         "hold 12 bytes, but shape and dtype F8_E4M3 need 3")
    case("st_dtype_lowercase", st_edit(items, set_("fc.bias", "dtype", "f32")),
         "open:TSD_ERR_UNSUPPORTED", "dtype \"f32\"")
    case("st_dtype_not_string", st_edit(items, set_("fc.bias", "dtype", 32)),
         "open:TSD_ERR_FORMAT", "dtype is a number, not a string")
    case("st_dtype_wrong_size", st_edit(items, set_("fc.bias", "dtype", "F64")),
         "open:TSD_ERR_FORMAT", "hold 12 bytes, but shape and dtype F64 need 24")
    for fld in ("dtype", "shape", "data_offsets"):
        def drop(hd, fld=fld):
            del hd["fc.bias"][fld]
        case("st_missing_" + fld, st_edit(items, drop), "open:TSD_ERR_FORMAT",
             "tensor 'fc.bias' has no \"%s\"" % fld)
    case("st_tensor_not_object", st_edit(items, lambda hd: hd.__setitem__(
        "fc.bias", [0, 12])), "open:TSD_ERR_FORMAT",
         "described by an array, not an object")

    # shape
    case("st_shape_inconsistent", st_edit(items, set_("fc.weight", "shape",
                                                     [3, 3])),
         "open:TSD_ERR_FORMAT", "hold 48 bytes, but shape and dtype F32 need 36")
    case("st_shape_negative", st_edit(items, set_("fc.weight", "shape",
                                                 [-3, -4])),
         "open:TSD_ERR_FORMAT", "shape[0] is -3, not a non-negative integer")
    case("st_shape_float", st_edit(items, set_("fc.weight", "shape",
                                              [3.0, 4])),
         "open:TSD_ERR_FORMAT", "shape[0] is 3.0, not a non-negative integer")
    case("st_shape_over_2_64", st_edit(items, set_("fc.weight", "shape",
                                                  [3, (1 << 64) + 4])),
         "open:TSD_ERR_FORMAT",
         "shape[1] is 18446744073709551620, not a non-negative integer")
    case("st_shape_2_63", st_edit(items, set_("fc.weight", "shape",
                                             [1 << 63])),
         "open:TSD_ERR_FORMAT",
         "shape[0] is 9223372036854775808, not a non-negative integer")
    case("st_shape_string_dim", st_edit(items, set_("fc.weight", "shape",
                                                   ["3", 4])),
         "open:TSD_ERR_FORMAT", "shape[0] is a string")
    case("st_shape_not_array", st_edit(items, set_("fc.weight", "shape",
                                                  "3x4")),
         "open:TSD_ERR_FORMAT", "shape is a string, not an array")
    case("st_shape_product_overflow",
         st_edit(items, set_("fc.weight", "shape", [1 << 32, 1 << 32, 2])),
         "open:TSD_ERR_FORMAT", "byte count overflows 64 bits")
    case("st_shape_bytes_overflow",
         st_edit(items, set_("fc.weight", "shape", [1 << 62, 4])),
         "open:TSD_ERR_FORMAT", "byte count overflows 64 bits")
    case("st_shape_numel_over_int64",
         st_edit(items, set_("fc.weight", "shape", [1 << 62, 3])),
         "open:TSD_ERR_FORMAT", "byte count overflows 64 bits")
    case("st_shape_65_dims", st_edit(items, set_("fc.weight", "shape",
                                                [1] * 62 + [3, 4, 1])),
         "open:TSD_ERR_UNSUPPORTED", "has 65 dimensions")
    # numel 0 with a huge dimension: no bytes, opens, the shape mismatches
    case("st_shape_huge_but_empty",
         st_edit(items, lambda hd: hd.__setitem__("fc.huge", {
             "dtype": "F32", "shape": [0, (1 << 63) - 1],
             "data_offsets": [len(d), len(d)]})),
         "load:TSD_ERR_LOAD", "Unexpected key(s) in state_dict: \"fc.huge\"")

    # data_offsets
    n_w = 48  # fc.weight: [3, 4] float32, first in the data
    case("st_offsets_out_of_bounds",
         st_edit(items, set_("bn.num_batches_tracked", "data_offsets",
                             [len(d), len(d) + 8])),
         "open:TSD_ERR_FORMAT", "are not a range inside the data section")
    case("st_offsets_far_out_of_bounds",
         st_edit(items, set_("fc.weight", "data_offsets",
                             [(1 << 63) - 1 - n_w, (1 << 63) - 1])),
         "open:TSD_ERR_FORMAT", "are not a range inside the data section")
    case("st_offsets_reversed", st_edit(items, set_("fc.weight", "data_offsets",
                                                   [n_w, 0])),
         "open:TSD_ERR_FORMAT", "data_offsets [48, 0] are not a range")
    case("st_offsets_overlap", st_edit(items, set_("fc.bias", "data_offsets",
                                                  [n_w - 4, n_w + 8])),
         "open:TSD_ERR_FORMAT",
         "tensors 'fc.weight' and 'fc.bias' overlap")
    case("st_offsets_same_range", st_edit(items, set_(
        "bn.running_mean", "data_offsets",
        h["bn.bias"]["data_offsets"])), "open:TSD_ERR_FORMAT", "overlap")

    def gap(hd):
        for k in list(hd)[1:]:
            b, e = hd[k]["data_offsets"]
            hd[k]["data_offsets"] = [b + 4, e + 4]
    hg, _ = st_parts(items)
    gap(hg)
    case("st_offsets_gap", st_file(hg, d[:n_w] + b"\0" * 4 + d[n_w:]),
         "open:TSD_ERR_FORMAT",
         "data section has a gap: bytes [48, 52) belong to no tensor")
    hs, _ = st_parts(items)
    for k in hs:
        b, e = hs[k]["data_offsets"]
        hs[k]["data_offsets"] = [b + 4, e + 4]
    case("st_offsets_gap_at_start", st_file(hs, b"\0" * 4 + d),
         "open:TSD_ERR_FORMAT", "gap: bytes [0, 4)")
    for nm, val in (("negative", [-4, n_w - 4]), ("float", [0.0, 48.0]),
                    ("over_2_64", [0, (1 << 64) + n_w]),
                    ("three", [0, 24, n_w]), ("one", [n_w]),
                    ("strings", ["0", "48"]), ("object", {"begin": 0}),
                    ("null", None)):
        case("st_offsets_" + nm, st_edit(items, set_("fc.weight",
                                                    "data_offsets", val)),
             "open:TSD_ERR_FORMAT",
             "data_offsets is not [begin, end] of two non-negative integers")
    case("st_trailing_bytes", st_file(h, d + b"\0" * 8),
         "open:TSD_ERR_FORMAT",
         "data section has %d bytes but the tensors cover only [0, %d)"
         % (len(d) + 8, len(d)))

    # __metadata__
    case("st_metadata_not_object", st_file(*st_parts(items, "pt")),
         "open:TSD_ERR_FORMAT", "__metadata__ is a string, not an object")
    case("st_metadata_value_number", st_file(*st_parts(items, {"n": 1})),
         "open:TSD_ERR_FORMAT",
         "__metadata__[\"n\"] is a number; the format allows only strings")
    case("st_metadata_value_object",
         st_file(*st_parts(items, {"a": {"b": "c"}})), "open:TSD_ERR_FORMAT",
         "__metadata__[\"a\"] is an object")
    case("st_metadata_value_null", st_file(*st_parts(items, {"a": None})),
         "open:TSD_ERR_FORMAT", "__metadata__[\"a\"] is null")
    case("ok_st_metadata_null", st_file(*st_parts(items, None)), "ok")

    # Nesting: the header needs 3 levels; deeper is refused before descending
    # (a recursive parser would exhaust its stack on the 100,000 levels).
    case("st_deep_nesting_shape",
         st_edit(items, set_("fc.weight", "shape", [[3], 4])),
         "open:TSD_ERR_FORMAT", "nested deeper than the limit allows")
    deep = b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}"
    case("st_deep_nesting_100000", st_file(deep, b""), "open:TSD_ERR_FORMAT",
         "nested deeper than the limit allows")
    deep = b'{"__metadata__":' + b'{"a":' * 50000 + b'""' + b"}" * 50001
    case("st_deep_nesting_metadata", st_file(deep, b""),
         "open:TSD_ERR_FORMAT", "nested deeper than the limit allows")

    # Random bit flips in the header and in the length: any outcome but a
    # crash (a flipped '{' makes the file something else entirely).
    for i in range(24):
        b = bytearray(good)
        pos = rnd.randrange(0, 8 + hlen) if i < 20 else rnd.randrange(0, 8)
        b[pos] ^= 1 << rnd.randrange(8)
        case("st_bitflip_%02d_at_%d" % (i, pos), b, "any")


def main():
    build()
    build_safetensors()
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".bin"):
            os.remove(os.path.join(OUT, f))
    total = 0
    with open(os.path.join(HERE, "manifest.tsv"), "w") as m:
        m.write("# name\texpect\tmessage substring (see make_corpus.py)\n")
        for name, data, expect, sub in cases:
            with open(os.path.join(OUT, name + ".bin"), "wb") as f:
                f.write(data)
            total += len(data)
            m.write("%s\t%s\t%s\n" % (name, expect, sub))
    print("%d cases, %d bytes" % (len(cases), total))
    # The valid references must be valid for PyTorch itself.
    for name, data, expect, _ in cases:
        load = st_read if name.startswith(("st_", "ok_st_")) else (
            lambda b: torch.load(io.BytesIO(b)))
        if expect == "ok":
            sd = load(data)
            NET.load_state_dict(sd, strict=True)
        elif expect == "load:TSD_ERR_LOAD":
            sd = load(data)
            try:
                NET.load_state_dict(sd, strict=True)
                raise AssertionError(name + " loads in PyTorch")
            except RuntimeError:
                pass


if __name__ == "__main__":
    main()
