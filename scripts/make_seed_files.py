"""Writes the seed scenario's inputs with Debian's Python torch/torchvision:
an ImageNet-1k vit_b_16 checkpoint (random weights, seeded: nothing can be
downloaded here) and a 10-class vit_b_16 TorchScript model. Cached."""
import os
import sys

import torch
import torchvision

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
ckpt = os.path.join(out, "vit_b_16_imagenet1k.pth")
model = os.path.join(out, "vit_b_16_10classes.pt")
if not os.path.exists(ckpt):
    torch.manual_seed(0)
    torch.save(torchvision.models.vit_b_16(num_classes=1000).state_dict(), ckpt + ".tmp")
    os.replace(ckpt + ".tmp", ckpt)
if not os.path.exists(model):
    torch.manual_seed(1)
    torch.jit.save(torch.jit.script(torchvision.models.vit_b_16(num_classes=10)), model + ".tmp")
    os.replace(model + ".tmp", model)
print(f"seed files: {ckpt} ({os.path.getsize(ckpt) >> 20} MiB), {model}")
