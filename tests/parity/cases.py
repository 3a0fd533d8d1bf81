"""The parity cases: each builds an eager PyTorch model and a checkpoint, and
says how `tsd load` is to be run. Python's own `load_state_dict` on that
model is the oracle (see oracle.py); run_parity.py compares tsd with it.

Every builder is deterministic (torch.manual_seed), because the files it
writes are cached in --work under a hash of this file and oracle.py: a rerun
rebuilds the model in memory and must get the same tensors as the cached spec.

A case's fields:
  model        key into MODELS: () -> nn.Module, the model before the load
  ckpt         (model) -> the object torch.save writes as the checkpoint
  save         keyword arguments of torch.save (format, pickle protocol)
  strict       load_state_dict(strict=...)  (tsd: --non-strict when False)
  auto_pop     tsd --auto-pop; the oracle pops the same keys by hand first
  select       tsd --select KEY...; the oracle indexes the loaded object
  modules      tsd --module PREFIX=TYPE declarations (spec path only needs
               them when the spec cannot tell a module's type)
  non_persistent  buffers the eager model registers with persistent=False;
               the spec carries them and tsd gets --non-persistent NAME (for
               TorchScript too, which forgets the flag: issue 3)
  all_persistent  the oracle first makes every buffer persistent (what a
               TorchScript module reports when nobody restores the flag)
  none_params  parameters registered as None (tsd --none-param; eager
               target only, a TorchScript module has no such notion, and the
               key is unexpected either way)
  ckpt_file    share one checkpoint file between cases (the ViT files are
               ~346 MB each)
  torchscript  also run the case against torch.jit.script(model)
"""

import collections
import copy

import torch
import torch.nn as nn
import torchvision

OD = collections.OrderedDict


# ---- models ------------------------------------------------------------------


class Net(nn.Module):
    """Conv + BatchNorm + parameterless ReLU + Linear: the small workhorse."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        x = self.relu(self.bn(self.conv(x)))
        return self.fc(x.mean((2, 3)))


class ScaleNet(nn.Module):
    """0-dim and 1-element buffers for the legacy 0-dim rule."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.register_buffer("scale", torch.tensor(2.0))
        self.register_buffer("shift", torch.tensor([0.5]))

    def forward(self, x):
        return self.fc(x) * self.scale + self.shift


class NPNet(nn.Module):
    """A non-persistent buffer between two persistent tensors."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.register_buffer("cache", torch.randn(3), persistent=False)
        self.register_buffer("stat", torch.randn(3))

    def forward(self, x):
        return self.fc(x) + self.cache + self.stat


class ZeroNet(nn.Module):
    """Zero-size tensors (a Linear with no inputs) next to normal ones."""

    def __init__(self):
        super().__init__()
        self.empty = nn.Linear(0, 3)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x)


class InstNet(nn.Module):
    """InstanceNorm without running stats: no tensors at all, so the spec
    cannot tell its type; the case declares it (--module inorm=...)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.inorm = nn.InstanceNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.inorm(self.conv(x)).mean((2, 3)))


class NoTrackNet(nn.Module):
    """BatchNorm with track_running_stats=False (running stats are None)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4, track_running_stats=False)

    def forward(self, x):
        return self.bn(self.fc(x))


DTYPES = (("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16),
          ("f64", torch.float64), ("i8", torch.int8), ("i16", torch.int16),
          ("i32", torch.int32), ("i64", torch.int64), ("u8", torch.uint8),
          ("b", torch.bool))


class DtypeNet(nn.Module):
    """One buffer of every dtype tsd supports: copy_'s conversions."""

    def __init__(self):
        super().__init__()
        for name, dt in DTYPES:
            self.register_buffer("b_" + name, torch.arange(8).to(dt))

    def forward(self, x):
        return x + self.b_f32


def _seeded(fn, seed):
    torch.manual_seed(seed)
    return fn()


def make_net():
    m = _seeded(Net, 0)
    g = torch.Generator().manual_seed(100)
    with torch.no_grad():
        m.bn.running_mean.copy_(torch.randn(4, generator=g))
        m.bn.running_var.copy_(torch.rand(4, generator=g) + 0.5)
        # Non-zero, so "filled with 0" by the BatchNorm rule is visible.
        m.bn.num_batches_tracked.fill_(5)
    return m


def make_seq():
    return _seeded(lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), 0)


def make_linear_nobias():
    return _seeded(lambda: nn.Linear(4, 3, bias=False), 0)


MODELS = {
    "net": make_net,
    "seq": make_seq,
    "scale": lambda: _seeded(ScaleNet, 0),
    "np": lambda: _seeded(NPNet, 0),
    "zero": lambda: _seeded(ZeroNet, 0),
    "linear_nobias": make_linear_nobias,
    "inst": lambda: _seeded(InstNet, 0),
    "notrack": lambda: _seeded(NoTrackNet, 0),
    "dtypes": lambda: _seeded(DtypeNet, 0),
    "vit10": lambda: _seeded(lambda: torchvision.models.vit_b_16(num_classes=10), 0),
    "resnet18": lambda: _seeded(torchvision.models.resnet18, 0),
    "mobilenet_v3_small": lambda: _seeded(torchvision.models.mobilenet_v3_small, 0),
}


# ---- checkpoint helpers -------------------------------------------------------


def metadata_of(sd):
    return getattr(sd, "_metadata", None)


def with_metadata(d, meta):
    d = OD(d)
    if meta is not None:
        d._metadata = copy.deepcopy(meta)
    return d


def random_like(model, seed, dtype=None):
    """model.state_dict() with fresh random values (and its _metadata): what
    another training run of the same architecture would have saved."""
    sd = model.state_dict()
    g = torch.Generator().manual_seed(seed)
    out = OD()
    for k, v in sd.items():
        if v.is_floating_point():
            t = torch.randn(v.shape, generator=g, dtype=torch.float32)
            out[k] = t.to(dtype if dtype is not None else v.dtype)
        else:
            out[k] = torch.full_like(v, 11)
    return with_metadata(out, metadata_of(sd))


def edit(d, drop=(), add=(), replace=()):
    """A copy of state dict d (keeps _metadata) without `drop`, with
    `replace` values swapped in place and `add` (key, value) pairs appended."""
    meta = metadata_of(d)
    out = OD()
    rep = dict(replace)
    for k, v in d.items():
        if k in drop:
            continue
        out[k] = rep.get(k, v)
    for k, v in add:
        out[k] = v
    return with_metadata(out, meta)


def set_version(d, prefix, version):
    d = with_metadata(d, metadata_of(d))
    if version is None:
        d._metadata[prefix].pop("version", None)
    else:
        d._metadata[prefix]["version"] = version
    return d


def noncontiguous(model, dtype=None):
    """Transposed and sliced views: each tensor is a strided view of a larger
    storage (offsets, strides), as torch.save keeps them."""
    sd = random_like(model, 7, dtype)
    out = OD()
    for k, v in sd.items():
        if v.dim() == 2:
            # a transposed view of the transpose: same shape, strides swapped
            out[k] = v.t().contiguous().t()
        elif v.dim() == 1:
            # every other element of a twice-as-long tensor, from offset 1
            big = torch.zeros(2 * v.numel() + 1, dtype=v.dtype)
            big[1::2] = v
            out[k] = big[1::2]
        elif v.dim() == 4:
            out[k] = v.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
        else:
            out[k] = v
    return with_metadata(out, metadata_of(sd))


def shared_storage(model):
    """fc.weight and fc.bias are views into one flat storage; the conv bias
    is the same tensor object as another key (tied weights)."""
    sd = random_like(model, 8)
    flat = torch.randn(5 * 4 + 5, generator=torch.Generator().manual_seed(9))
    repl = {
        "fc.weight": flat[:20].view(5, 4),
        "fc.bias": flat[20:],
        "bn.bias": sd["conv.bias"],
    }
    return edit(sd, replace=repl.items())


def dataparallel(model):
    dp = nn.DataParallel(copy.deepcopy(model), device_ids=[])
    sd = dp.state_dict()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for v in sd.values():
            if v.is_floating_point():
                v.copy_(torch.randn(v.shape, generator=g))
    return sd


def mixed(model):
    """Missing (conv.bias), unexpected at several levels in an order that is
    not traversal order, and a size mismatch (fc.weight)."""
    sd = random_like(model, 4)
    return edit(
        sd,
        drop=("conv.bias",),
        replace=[("fc.weight", torch.randn(7, 4))],
        add=[("fc.extra", torch.zeros(1)), ("conv.foo", torch.ones(2)),
             ("zzz", torch.ones(1)), ("bn.foo.bar", torch.ones(1))])


def unexpected_order(model):
    sd = random_like(model, 4)
    return edit(sd, add=[("fc.foo", torch.ones(1)), ("conv.foo", torch.ones(1)),
                         ("zzz", torch.ones(1)), ("fcx.weight", torch.ones(1)),
                         ("f", torch.ones(1)), ("aaa", torch.ones(1))])


def reversed_mismatches(model):
    """Checkpoint order is the reverse of the model's, with two size
    mismatches: errors follow the model's order, popped the checkpoint's."""
    sd = random_like(model, 14)
    sd = edit(sd, replace=[("conv.weight", torch.ones(2, 3, 3, 3)),
                           ("fc.weight", torch.ones(6, 4))])
    return with_metadata(reversed(list(sd.items())), metadata_of(sd))


def nontensor(value):
    def make(model):
        return edit(random_like(model, 5), replace=[("fc.bias", value)])
    return make


def all_nontensors(model):
    sd = random_like(model, 5)
    return edit(sd, replace=[("conv.weight", 3), ("conv.bias", 2.5), ("bn.weight", "w"),
                             ("bn.running_mean", None), ("fc.bias", [1.0, 2.0])])


def scale_ckpt(scale, shift):
    def make(model):
        sd = random_like(model, 6)
        return edit(sd, replace=[("scale", scale), ("shift", shift)])
    return make


def bn_without_nbt(version):
    """Net's checkpoint without bn.num_batches_tracked; version: the value of
    _metadata['bn']['version'] (None: key absent), or 'no-metadata'."""
    def make(model):
        sd = edit(random_like(model, 10), drop=("bn.num_batches_tracked",))
        if version == "no-metadata":
            return OD(sd)  # OrderedDict(...) does not copy _metadata
        return set_version(sd, "bn", version)
    return make


def vit1000(model):
    del model
    torch.manual_seed(1)
    return torchvision.models.vit_b_16(num_classes=1000).state_dict()


def parameters_ckpt(model):
    """nn.Parameter values (torch.save writes _rebuild_parameter)."""
    sd = random_like(model, 12)
    out = OD()
    for k, v in sd.items():
        out[k] = nn.Parameter(v, requires_grad=v.is_floating_point())
    return with_metadata(out, metadata_of(sd))


def cast_ckpt(dtype):
    def make(model):
        sd = random_like(model, 13)
        out = OD()
        for k, v in sd.items():
            if v.is_floating_point():
                if dtype.is_floating_point:
                    out[k] = v.to(dtype)
                else:
                    out[k] = (v * 10).to(dtype)
            else:
                out[k] = v
        return with_metadata(out, metadata_of(sd))
    return make


def instance_stats(with_metadata_version):
    def make(model):
        sd = edit(random_like(model, 1), add=[("inorm.running_mean", torch.zeros(4)),
                                              ("inorm.running_var", torch.ones(4))])
        if with_metadata_version:
            return sd
        return OD(sd)
    return make


def notrack_ckpt(model):
    """A checkpoint of the same net with running stats tracked."""
    torch.manual_seed(2)
    other = nn.Sequential()
    other.fc = nn.Linear(4, 4)
    other.bn = nn.BatchNorm1d(4)
    return other.state_dict()


# Values chosen for the conversions' edges: truncation toward zero, float16
# overflow to inf and subnormals, bfloat16 and float16 round-to-nearest-even,
# bool from non-zero (including -0.0 -> False).
_FLOATS = [-3.7, -0.5, -0.0, 0.5, 1.5, 2.5, 100.9, 126.99]
_F16_EDGE = [65519.0, 65520.0, 1e5, -1e5, 1e-7, 6e-8, 1.00048828125, 1.0009765625]
_BF16_EDGE = [1.00390625, 1.01171875, 3.4e38, -3.4e38, 1e-40, 1.0 + 2 ** -9, 1e30, -1e-30]
_U8 = [0.0, 0.5, 1.5, 2.5, 127.9, 128.5, 200.0, 254.9]


def dtype_ckpt(source):
    """Values for every buffer of DtypeNet, all stored as `source`."""
    def make(model):
        out = OD()
        for name, dt in DTYPES:
            if dt == torch.uint8:
                vals = _U8
            elif dt == torch.float16:
                vals = _F16_EDGE
            elif dt == torch.bfloat16:
                vals = _BF16_EDGE
            else:
                vals = _FLOATS
            t = torch.tensor(vals, dtype=torch.float64)
            if source != torch.bool and not source.is_floating_point:
                # float -> int is only defined in range: clamp first
                info = torch.iinfo(source)
                t = t.trunc().clamp(max(info.min, -2 ** 62), min(info.max, 2 ** 62))
            out["b_" + name] = t.to(source)
        return with_metadata(out, metadata_of(model.state_dict()))
    return make


# ---- the table ------------------------------------------------------------------

DEFAULTS = dict(save={}, strict=True, auto_pop=False, select=(), modules=(),
                non_persistent=(), all_persistent=False, none_params=(),
                ckpt_file=None, torchscript=True, doc="")


class Case:
    def __init__(self, name, model, ckpt, **kw):
        unknown = set(kw) - set(DEFAULTS)
        if unknown:
            raise TypeError("unknown case fields: %s" % sorted(unknown))
        self.name = name
        self.model = model
        self.ckpt = ckpt
        for k, v in DEFAULTS.items():
            setattr(self, k, kw.get(k, v))


def _both(name, model, ckpt, **kw):
    """The case strict and non-strict."""
    return [Case(name + "_strict", model, ckpt, strict=True, **kw),
            Case(name + "_nonstrict", model, ckpt, strict=False, **kw)]


def _build_table():
    C = []
    # The seed scenario: an ImageNet-1k ViT checkpoint into a 10-class ViT.
    for strict in (True, False):
        for pop in (False, True):
            C.append(Case("vit_b_16_1000_to_10_%s%s" % ("strict" if strict else "nonstrict",
                                                       "_autopop" if pop else ""),
                          "vit10", vit1000, strict=strict, auto_pop=pop,
                          ckpt_file="vit_b_16_1000.pth"))
    C.append(Case("resnet18_straight", "resnet18", lambda m: random_like(m, 2)))
    C.append(Case("mobilenet_v3_small_straight", "mobilenet_v3_small",
                  lambda m: random_like(m, 2)))
    # bfloat16 -> float32 of tensors above the 1 MiB split threshold of
    # checkpoint.c (layer4's 512x512x3x3 convolutions: 4.5 MiB each), which
    # two threads convert.
    C.append(Case("resnet18_bfloat16_into_float_two_threads", "resnet18",
                  cast_ckpt(torch.bfloat16)))
    C.append(Case("mobilenet_v3_small_half_autopop_nonstrict", "mobilenet_v3_small",
                  lambda m: edit(cast_ckpt(torch.float16)(m),
                                 replace=[("classifier.3.weight", torch.zeros(10, 1024)),
                                          ("classifier.3.bias", torch.zeros(10))]),
                  strict=False, auto_pop=True))
    C.append(Case("net_straight", "net", lambda m: random_like(m, 1)))
    C += _both("dataparallel_prefix", "net", dataparallel)
    C.append(Case("half_into_float", "net", cast_ckpt(torch.float16)))
    C.append(Case("bfloat16_into_float", "net", cast_ckpt(torch.bfloat16)))
    C.append(Case("float64_into_float", "net", cast_ckpt(torch.float64)))
    C.append(Case("int32_into_float", "net", cast_ckpt(torch.int32)))
    C.append(Case("legacy_format", "net", lambda m: random_like(m, 1),
                  save=dict(_use_new_zipfile_serialization=False)))
    C.append(Case("legacy_format_views", "net", noncontiguous,
                  save=dict(_use_new_zipfile_serialization=False)))
    for proto in (2, 3, 4, 5):
        C.append(Case("pickle_protocol_%d" % proto, "net", lambda m: random_like(m, 1),
                      save=dict(pickle_protocol=proto)))
    C.append(Case("pickle_protocol_4_shared_storage", "net", shared_storage,
                  save=dict(pickle_protocol=4)))
    C.append(Case("parameters_in_checkpoint", "net", parameters_ckpt))
    C += _both("missing_unexpected_mismatch", "net", mixed)
    C += _both("missing_unexpected_mismatch_autopop", "net", mixed, auto_pop=True)
    C += _both("unexpected_traversal_order", "net", unexpected_order)
    C += _both("missing_only", "net", lambda m: edit(random_like(m, 1), drop=("fc.weight", "bn.bias")))
    C += _both("unexpected_under_relu", "seq",
               lambda m: edit(random_like(m, 1), add=[("1.weight", torch.ones(4, 4))]))
    C += _both("unexpected_under_leaf", "net",
               lambda m: edit(random_like(m, 1), add=[("fc.foo", torch.ones(1))]))
    C.append(Case("param_attribute_key_accepted_1_13", "net",
                  lambda m: edit(random_like(m, 1), add=[("fc.weight.foo", torch.ones(1))]),
                  doc="1.13: the first component after fc. is 'weight', a local name"))
    C += _both("key_equal_to_module_name", "net",
               lambda m: edit(random_like(m, 1), add=[("fc", torch.ones(1)), ("bn.", torch.ones(1))]),
               doc="'fc' is skipped at the root (a child's name) and never reaches fc; "
                   "'bn.' reaches bn with an empty local name")
    C += _both("extra_state_keys", "net",
               lambda m: edit(random_like(m, 1), add=[("zzz", torch.ones(1)),
                                                      ("_extra_state", torch.ones(1)),
                                                      ("fc._extra_state", torch.ones(1))]),
               doc="_extra_state is reported before the module's other unexpected keys")
    C.append(Case("noncontiguous_views", "net", noncontiguous))
    C.append(Case("shared_storage", "net", shared_storage))
    C.append(Case("noncontiguous_views_bfloat16", "net",
                  lambda m: noncontiguous(m, torch.bfloat16)))
    C.append(Case("noncontiguous_views_float64", "net",
                  lambda m: noncontiguous(m, torch.float64)))
    C.append(Case("archive_prefix_from_file_object", "net", lambda m: random_like(m, 1),
                  save=dict(fileobj=True),
                  doc="torch.save to a file object names the zip records archive/..."))
    C += _both("reversed_order_mismatches", "net", reversed_mismatches)
    C += _both("reversed_order_mismatches_autopop", "net", reversed_mismatches,
               auto_pop=True)
    C.append(Case("nested_select_state_dict", "net",
                  lambda m: {"epoch": 7, "state_dict": random_like(m, 1), "best_acc": 0.75,
                             "arch": "net"},
                  select=("state_dict",)))
    C.append(Case("nested_select_two_levels", "net",
                  lambda m: {"model": {"state_dict": random_like(m, 1), "step": 3}, "epoch": 1},
                  select=("model", "state_dict"), strict=False))
    for label, value in (("int", 3), ("float", 2.5), ("str", "bias"), ("none", None),
                         ("list", [1.0, 2.0]), ("bool", True), ("tuple", (1, 2)),
                         ("dict", {"a": 1})):
        C.append(Case("nontensor_%s" % label, "net", nontensor(value), strict=False))
    C += _both("nontensor_several", "net", all_nontensors)
    C.append(Case("nontensor_autopop", "net", nontensor(4), strict=False, auto_pop=True))
    C.append(Case("zero_dim_from_1", "scale", scale_ckpt(torch.tensor([5.0]), torch.tensor([1.5]))))
    C.append(Case("zero_dim_from_3", "scale",
                  scale_ckpt(torch.tensor([7.0, 8.0, 9.0]), torch.tensor([1.5]))))
    C.append(Case("zero_dim_from_3_autopop", "scale",
                  scale_ckpt(torch.tensor([7.0, 8.0, 9.0]), torch.tensor([1.5])), auto_pop=True))
    C.append(Case("zero_dim_from_0_dim", "scale", scale_ckpt(torch.tensor(4.0), torch.tensor([1.5]))))
    C.append(Case("zero_dim_from_strided_view", "scale",
                  scale_ckpt(torch.arange(10.0)[2::3], torch.arange(10.0)[7:8])))
    C.append(Case("zero_dim_from_offset_scalar", "scale",
                  scale_ckpt(torch.arange(5.0)[3], torch.arange(10.0)[7:8])))
    C += _both("zero_dim_from_2_dim", "scale", scale_ckpt(torch.ones(1, 1), torch.tensor([1.5])))
    C += _both("one_elem_from_0_dim", "scale", scale_ckpt(torch.tensor(4.0), torch.tensor(1.5)))
    C.append(Case("zero_dim_autopop_mismatch", "scale",
                  scale_ckpt(torch.ones(2, 2), torch.ones(3)), auto_pop=True, strict=False))
    C.append(Case("zero_size_tensors", "zero", lambda m: random_like(m, 1)))
    C += _both("empty_ordered_dict", "net", lambda m: OD())
    C += _both("empty_plain_dict", "net", lambda m: {})
    C += _both("bn_no_nbt_version_2", "net", bn_without_nbt(2))
    C += _both("bn_no_nbt_no_metadata", "net", bn_without_nbt("no-metadata"))
    C += _both("bn_no_nbt_version_1", "net", bn_without_nbt(1))
    C.append(Case("bn_no_nbt_version_absent", "net", bn_without_nbt(None)))
    C.append(Case("bn_nbt_1_dim", "net",
                  lambda m: edit(random_like(m, 1), replace=[("bn.num_batches_tracked",
                                                              torch.tensor([9]))])))
    C += _both("non_persistent_in_checkpoint", "np",
               lambda m: edit(random_like(m, 1), add=[("cache", torch.ones(3))]),
               non_persistent=("cache",))
    C.append(Case("non_persistent_absent", "np", lambda m: random_like(m, 1),
                  non_persistent=("cache",)))
    C += _both("torchscript_view_all_persistent", "np",
               lambda m: edit(random_like(m, 1), add=[("cache", torch.ones(3) * 4)]),
               all_persistent=True,
               doc="the model as TorchScript reports it: 'cache' is loaded, not unexpected")
    C += _both("none_param_bias_in_checkpoint", "linear_nobias",
               lambda m: edit(random_like(m, 1), add=[("bias", torch.ones(3))]),
               none_params=("bias",))
    C.append(Case("plain_dict_checkpoint", "net", lambda m: dict(random_like(m, 1))))
    C.append(Case("plain_dict_without_nbt", "net",
                  lambda m: {k: v for k, v in random_like(m, 1).items()
                             if k != "bn.num_batches_tracked"}))
    C += _both("extra_state_root_only", "seq",
               lambda m: edit(random_like(m, 1), add=[("_extra_state", torch.ones(1))]))
    C.append(Case("declared_relu_module", "seq",
                  lambda m: edit(random_like(m, 1), add=[("1.weight", torch.ones(1)),
                                                         ("zzz", torch.ones(1))]),
                  modules=("1=ReLU",),
                  doc="root reports zzz before the ReLU reports 1.weight"))
    C += _both("instance_norm_old_stats_no_metadata", "inst", instance_stats(False),
               modules=("inorm=InstanceNorm2d",),
               doc="_InstanceNorm, version None: running stats are an error and popped")
    C += _both("instance_norm_stats_with_metadata", "inst", instance_stats(True),
               modules=("inorm=InstanceNorm2d",))
    C += _both("batchnorm_not_tracking", "notrack", notrack_ckpt,
               modules=("bn=BatchNorm1d",))
    for label, dt in (("float32", torch.float32), ("float64", torch.float64),
                      ("float16", torch.float16), ("bfloat16", torch.bfloat16),
                      ("int64", torch.int64), ("int32", torch.int32), ("int16", torch.int16),
                      ("int8", torch.int8), ("uint8", torch.uint8), ("bool", torch.bool)):
        C.append(Case("every_dtype_from_%s" % label, "dtypes", dtype_ckpt(dt)))
    C.append(Case("nbt_from_float", "net",
                  lambda m: edit(random_like(m, 1), replace=[("bn.num_batches_tracked",
                                                              torch.tensor(-3.7))])))
    C += _both("key_repr_quoting", "seq",
               lambda m: edit(random_like(m, 1), add=[(k, torch.ones(1)) for k in (
                   "it's", 'say "hi"', "both '\"", "back\\slash", "tab\there",
                   "new\nline", "\u00fcn\u00efc\u00f6de", "del\x7f", "nbsp\u00a0x")]),
               doc="_IncompatibleKeys prints the lists with Python's repr")
    names = [c.name for c in C]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError("duplicate case names: %s" % sorted(dup))
    return C


CASES = _build_table()
