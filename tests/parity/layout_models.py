"""Models of the layout and extra-state parity runs (run_layout.py) that
torchvision does not provide, importable by scripts/tsd_layout.py as
`layout_models:NAME` (the runner puts this folder on PYTHONPATH).

Every factory is deterministic (seeded)."""

from typing import Dict

import torch
import torch.nn as nn
import torchvision


class Scale(nn.Module):
    """A module whose class overrides get/set_extra_state, exported to
    TorchScript (a Dict[str, float] state)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.scale = 1.0

    def forward(self, x):
        return self.fc(x) * self.scale

    @torch.jit.export
    def get_extra_state(self) -> Dict[str, float]:
        return {"scale": self.scale}

    @torch.jit.export
    def set_extra_state(self, state: Dict[str, float]):
        self.scale = state["scale"]


class Amax(nn.Module):
    """Transformer Engine style: the extra state is a tensor."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(2, 2))
        self.amax = torch.zeros(4)

    def forward(self, x):
        return x @ self.weight + self.amax[0]

    @torch.jit.export
    def get_extra_state(self) -> torch.Tensor:
        return self.amax

    @torch.jit.export
    def set_extra_state(self, state: torch.Tensor):
        self.amax = state


class ExtraNet(nn.Module):
    """`e` and `t` have extra state; `out` and the root have none. A
    non-persistent buffer, a None parameter and an InstanceNorm without
    running stats exercise the other layout roles."""

    def __init__(self):
        super().__init__()
        self.e = Scale()
        self.t = Amax()
        self.out = nn.Linear(3, 1)
        self.norm = nn.InstanceNorm1d(3)
        self.register_buffer("cache", torch.randn(3), persistent=False)
        self.register_parameter("unused", None)

    def forward(self, x):
        return self.out(self.norm(self.e(x).unsqueeze(0)).squeeze(0)) + \
            self.t(x[:, :2]).sum()


def extra_net():
    torch.manual_seed(0)
    return ExtraNet()


def resnet18_frozen_bn(num_classes=1000):
    torch.manual_seed(0)
    return torchvision.models.resnet18(
        num_classes=num_classes,
        norm_layer=torchvision.ops.misc.FrozenBatchNorm2d)


def small_vit(num_classes=1000):
    torch.manual_seed(0)
    return torchvision.models.vision_transformer.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
        mlp_dim=32, num_classes=num_classes)
