"""Python torch as the oracle: builds a case's files (spec, checkpoint,
TorchScript model) and computes what `tsd load --json` must print and which
values the loaded model must hold, by running PyTorch's own load_state_dict.

Nothing here re-implements PyTorch's rules: the message, the key lists and
error_msgs are what torch 1.13 itself produced; auto-pop is the documented
manual recipe (pop the shape-mismatched keys, then load)."""

import ast
import collections
import contextlib
import copy
import re

import torch

OD = collections.OrderedDict

_SIZE_MISMATCH = re.compile(
    r"^size mismatch for (.*): copying a param with shape torch\.Size\((\[.*\])\) from "
    r"checkpoint, the shape in current model is torch\.Size\((\[.*\])\)\.$", re.S)


@contextlib.contextmanager
def all_buffers_persistent(model):
    """Within the block every buffer is persistent (what TorchScript reports:
    it forgets persistent=False)."""
    saved = [(m, set(m._non_persistent_buffers_set)) for m in model.modules()]
    try:
        for m, _ in saved:
            m._non_persistent_buffers_set.clear()
        yield model
    finally:
        for m, s in saved:
            m._non_persistent_buffers_set.clear()
            m._non_persistent_buffers_set.update(s)


def make_all_persistent(model):
    for m in model.modules():
        m._non_persistent_buffers_set.clear()


def full_state_dict(model):
    """state_dict() with non-persistent buffers at their natural place."""
    with all_buffers_persistent(model):
        return model.state_dict()


def spec_state(model, case):
    """The --model-spec file: the model's tensors with their initial values.
    Non-persistent buffers are in it (tsd learns of them from
    --non-persistent), so the spec is the full state when the case has any."""
    if case.non_persistent or case.all_persistent:
        return full_state_dict(model)
    return model.state_dict()


def script(model):
    try:
        return torch.jit.script(model)
    except Exception:  # noqa: BLE001 -- scripting unsupported: trace instead
        return torch.jit.trace(model, torch.randn(1, 3, 224, 224))


def _select(obj, keys):
    for k in keys:
        obj = obj[k]
    return obj


def _shape(t):
    return [int(s) for s in t.shape]


def _autopop_keys(model_sd, ckpt):
    """tsd's auto-pop, in the model's state_dict order: the order in which
    PyTorch would have reported these keys' size mismatches."""
    popped = []
    for k, m in model_sd.items():
        if k not in ckpt or not isinstance(ckpt[k], torch.Tensor):
            continue
        v = ckpt[k]
        if m.dim() == 0 and v.dim() == 1:  # the legacy 0-dim rule
            continue
        if tuple(v.shape) != tuple(m.shape):
            popped.append({"key": k, "checkpoint_shape": _shape(v), "model_shape": _shape(m)})
    return popped


def _capture_error_msgs(model):
    """Wraps each module's _load_from_state_dict to get hold of the error_msgs
    list load_state_dict passes around (it is one list, and load_state_dict
    inserts the strict-mode entries into it before raising)."""
    box = {}
    for m in model.modules():
        orig = m._load_from_state_dict

        def wrapped(*args, _orig=orig):
            box["errors"] = args[6]
            return _orig(*args)
        m.__dict__["_load_from_state_dict"] = wrapped
    return box


def _uncapture(model):
    for m in model.modules():
        m.__dict__.pop("_load_from_state_dict", None)


def run(model, ckpt_obj, case):
    """Loads ckpt_obj into model (modified in place) as PyTorch does; returns
    the expected report (tsd's --json fields)."""
    if case.all_persistent:
        make_all_persistent(model)
    sd = _select(ckpt_obj, case.select)
    popped = []
    if case.auto_pop:
        popped = _autopop_keys(model.state_dict(), sd)
        drop = {p["key"] for p in popped}
        meta = getattr(sd, "_metadata", None)
        sd = OD((k, v) for k, v in sd.items() if k not in drop)
        if meta is not None:
            sd._metadata = meta

    r = load_report(model, sd, case.strict)
    return OD([
        ("ok", r["ok"]),
        ("class_name", r["class_name"]),
        ("missing_keys", r["missing_keys"]),
        ("unexpected_keys", r["unexpected_keys"]),
        ("size_mismatches", r["size_mismatches"]),
        ("popped_keys", [p["key"] for p in popped]),
        ("popped", popped),
        ("error_msgs", r["error_msgs"]),
        ("message", r["message"]),
    ])


def load_report(model, sd, strict):
    """PyTorch's load_state_dict of `sd` into `model` (modified in place):
    what tsd's --json report must hold, without auto-pop (run() adds it)."""
    lists = {}

    def post_hook(module, incompatible):
        lists["missing"] = list(incompatible.missing_keys)
        lists["unexpected"] = list(incompatible.unexpected_keys)

    handle = model.register_load_state_dict_post_hook(post_hook)
    box = _capture_error_msgs(model)
    try:
        result = model.load_state_dict(sd, strict=strict)
        ok, message = True, str(result)
    except RuntimeError as e:
        ok, message = False, str(e)
    finally:
        handle.remove()
        _uncapture(model)
    errors = list(box.get("errors", []))
    mismatches = []
    for e in errors:
        m = _SIZE_MISMATCH.match(e)
        if m:
            mismatches.append({"key": m.group(1),
                               "checkpoint_shape": ast.literal_eval(m.group(2)),
                               "model_shape": ast.literal_eval(m.group(3))})
    # Self-check of the capture: PyTorch's text is built from these lists.
    if not ok:
        want = "Error(s) in loading state_dict for %s:\n\t%s" % (
            type(model).__name__, "\n\t".join(errors))
        if want != message:
            raise AssertionError("oracle capture of error_msgs disagrees with the message")
    elif errors:
        raise AssertionError("oracle: load succeeded with error_msgs")
    return OD([
        ("ok", ok),
        ("class_name", type(model).__name__),
        ("missing_keys", lists.get("missing", [])),
        ("unexpected_keys", lists.get("unexpected", [])),
        ("size_mismatches", mismatches),
        ("error_msgs", errors),
        ("message", message),
    ])


def clone_model(model):
    return copy.deepcopy(model)
