"""The benchmark's models and cases, shared by gen.py (which writes the
checkpoints) and py_load.py (which builds the eager model PyTorch loads into).

Run with Debian's Python torch (/usr/bin/python3)."""
import torch
import torch.nn as nn
import torchvision

SMALL_COUNT = 50000
SMALL_SHAPE = (4, 8)  # 32 floats, 128 bytes: a "few dozen floats" each


class Many(nn.Module):
    """50,000 small parameters in one flat ParameterList (keys params.0 ...
    params.49999). Flat on purpose: it is PyTorch's best case. In 1.13 every
    module of the eager model scans every key of the state dict for unexpected
    keys, so the same 50,000 tensors spread over 1,000 modules make
    load_state_dict ~40x slower (10 s measured here) and would flatter tsd."""

    def __init__(self, n=SMALL_COUNT):
        super().__init__()
        self.params = nn.ParameterList(
            [nn.Parameter(torch.randn(*SMALL_SHAPE)) for _ in range(n)])

    def forward(self, x):
        return x


def build(kind):
    """The eager float32 model of a case."""
    if kind == "vit_b_16":
        return torchvision.models.vit_b_16()
    if kind == "vit_l_16":
        return torchvision.models.vit_l_16()
    if kind == "small50k":
        return Many()
    raise ValueError(kind)


# name: checkpoint, spec (the C-owned model's names/dtypes/shapes: the eager
# model's state_dict saved), TorchScript model, eager model kind, repetitions,
# reference file for (a) of the bytes written (bf16 -> f32 target).
CASES = [
    dict(name="vit_b_16 f32", ckpt="vit_b_16.pth", spec="vit_b_16.pth",
         ts="vit_b_16.pt", kind="vit_b_16", reps=5),
    dict(name="vit_l_16 f32", ckpt="vit_l_16.pth", spec="vit_l_16.pth",
         ts="vit_l_16.pt", kind="vit_l_16", reps=3),
    dict(name="50k small f32", ckpt="small50k.pth", spec="small50k.pth",
         ts="small50k.pt", kind="small50k", reps=5),
    dict(name="vit_b_16 bf16->f32", ckpt="vit_b_16_bf16.pth",
         spec="vit_b_16.pth", ts="vit_b_16.pt", kind="vit_b_16", reps=5,
         written_ref="vit_b_16.pth"),
]
