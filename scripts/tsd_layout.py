#!/usr/bin/env python3
"""tsd_layout.py — write the layout of a PyTorch nn.Module for tsd.

A layout file (JSON, format in docs/layout.md) describes a model tensor by
tensor as Module.state_dict and Module.load_state_dict see it: every module
in pre-order with its class name, its `_metadata` version and whether its
class overrides set_extra_state; every tensor with its role (parameter,
buffer, non-persistent buffer, parameter registered as None), dtype and
shape. tsd_model_from_layout (C) builds a C-owned model from it, with your
memory; `tsd load --model-spec LAYOUT.json` loads into it. No values are
written: a layout is the model's shape, not its weights.

Run it with your own Python and torch (any 1.x or 2.x). As a library:

    import tsd_layout
    tsd_layout.write(model, "model.layout.json")

As a command, with a callable that returns the model (imported from your
own code, called with keyword arguments given as JSON):

    python3 scripts/tsd_layout.py torchvision.models:resnet50 resnet50.json
    python3 scripts/tsd_layout.py mypkg.net:Net net.json --kwargs '{"classes": 10}'

What a layout cannot carry (warned about on stderr, the layout still
written): a class that overrides _load_from_state_dict or load_state_dict
with rules of its own (tsd knows nn.Module's, _NormBase's, _InstanceNorm's
and torchvision's FrozenBatchNorm2d's), load_state_dict pre/post hooks, and
a norm-layer subclass under a class name tsd does not know (its
num_batches_tracked rule is found by class name).
"""

import argparse
import importlib
import json
import sys

FORMAT = "tsd.layout"
FORMAT_VERSION = 1

# The class names whose load rules tsd reproduces (c_api/src/load/engine.c).
_KNOWN_NORMS = {
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm",
    "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
    "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d",
}


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def _overrides(cls, name, base):
    return getattr(cls, name, None) is not getattr(base, name, None)


def layout(model, class_name=None):
    """The layout of `model` as a dict (what write() dumps)."""
    import torch.nn as nn

    warnings = []
    try:
        from torch.nn.modules.batchnorm import _NormBase
    except ImportError:  # very old torch
        _NormBase = None
    own_rules = set()
    if _NormBase is not None:
        own_rules.add(_NormBase._load_from_state_dict)
    try:
        from torch.nn.modules.instancenorm import _InstanceNorm
        own_rules.add(_InstanceNorm._load_from_state_dict)
    except ImportError:
        pass

    # `_metadata` exactly as state_dict writes it (versions per prefix)
    metadata = getattr(model.state_dict(), "_metadata", {}) or {}
    modules, tensors = [], []

    def visit(mod, prefix):
        name = prefix[:-1]
        cls = type(mod)
        meta = metadata.get(name, {})
        version = meta.get("version", getattr(mod, "_version", None))
        entry = {"name": name, "type": cls.__name__,
                 "version": version if isinstance(version, int) else None}
        if _overrides(cls, "set_extra_state", nn.Module):
            entry["extra_state"] = True
        modules.append(entry)

        rules = cls._load_from_state_dict
        if (rules is not nn.Module._load_from_state_dict
                and rules not in own_rules
                and cls.__name__ != "FrozenBatchNorm2d"):
            warnings.append("%s (%s) overrides _load_from_state_dict: tsd "
                            "applies nn.Module's rules" % (name or "<root>",
                                                           cls.__name__))
        if (_NormBase is not None and isinstance(mod, _NormBase)
                and cls.__name__ not in _KNOWN_NORMS):
            warnings.append("%s (%s) is a norm layer under a class name tsd "
                            "does not know: its num_batches_tracked rule "
                            "will not apply" % (name or "<root>",
                                                cls.__name__))
        for hooks in ("_load_state_dict_pre_hooks",
                      "_load_state_dict_post_hooks"):
            if getattr(mod, hooks, None):
                warnings.append("%s has %s: tsd does not run them"
                                % (name or "<root>", hooks))

        for pname, p in mod._parameters.items():
            if p is None:
                tensors.append({"name": prefix + pname,
                                "role": "parameter_none"})
                continue
            if type(p).__name__.startswith("Uninitialized"):
                raise ValueError("%s%s is uninitialized (a lazy module): run "
                                 "one forward pass first" % (prefix, pname))
            tensors.append({"name": prefix + pname, "role": "parameter",
                            "dtype": _dtype_name(p.dtype),
                            "shape": list(p.shape)})
        non_persistent = getattr(mod, "_non_persistent_buffers_set", set())
        for bname, b in mod._buffers.items():
            if b is None:
                continue  # not in state_dict; its key is unexpected
            if type(b).__name__.startswith("Uninitialized"):
                raise ValueError("%s%s is uninitialized (a lazy module): run "
                                 "one forward pass first" % (prefix, bname))
            role = ("buffer_non_persistent" if bname in non_persistent
                    else "buffer")
            tensors.append({"name": prefix + bname, "role": role,
                            "dtype": _dtype_name(b.dtype),
                            "shape": list(b.shape)})
        for cname, child in mod._modules.items():
            if child is not None:
                visit(child, prefix + cname + ".")

    visit(model, "")
    import torch
    out = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class_name": class_name or type(model).__name__,
        "torch_version": torch.__version__,
        "modules": modules,
        "tensors": tensors,
    }
    return out, warnings


def dumps(data):
    """The layout as text: one module or tensor per line."""
    lines = ["{"]
    for k, v in data.items():
        if isinstance(v, list):
            items = [" " * 2 + json.dumps(x) for x in v]
            body = ("[\n" + ",\n".join(items) + "\n ]") if items else "[]"
            lines.append(" %s: %s," % (json.dumps(k), body))
        else:
            lines.append(" %s: %s," % (json.dumps(k), json.dumps(v)))
    lines[-1] = lines[-1][:-1]
    return "\n".join(lines) + "\n}\n"


def write(model, path, class_name=None, quiet=False):
    """Writes the layout of `model` to `path` (JSON). Returns the warnings
    (also printed to stderr unless quiet)."""
    data, warnings = layout(model, class_name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps(data))
    if not quiet:
        for w in warnings:
            print("tsd_layout.py: warning: " + w, file=sys.stderr)
    return warnings


def _load_callable(spec):
    if ":" not in spec:
        raise SystemExit("tsd_layout.py: give MODULE:CALLABLE, e.g. "
                         "torchvision.models:resnet50")
    mod_name, attr = spec.split(":", 1)
    obj = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Write the tsd layout (docs/layout.md) of an nn.Module "
                    "returned by MODULE:CALLABLE.")
    ap.add_argument("factory", help="MODULE:CALLABLE returning the model")
    ap.add_argument("out", help="the layout file to write (.json)")
    ap.add_argument("--kwargs", default="{}",
                    help="keyword arguments of the callable, as JSON")
    ap.add_argument("--class-name", help="the class name tsd prints "
                    "(default: the model's)")
    ap.add_argument("--quiet", action="store_true", help="no warnings")
    a = ap.parse_args(argv)
    model = _load_callable(a.factory)(**json.loads(a.kwargs))
    write(model, a.out, a.class_name, a.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
