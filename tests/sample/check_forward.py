"""Runs samples/torch_forward.cpp (C++: a TorchScript model loaded through
tsd, then a forward pass) and checks its logits and texts against Python
torch (the oracle).

The scenario: a torchvision ResNet-18 with a new 10-class head, scripted
and saved by Python as it was before fine-tuning (random weights); the
fine-tuned weights (every parameter and every BatchNorm buffer changed) in
a training checkpoint {'epoch': 5, 'state_dict': ...}; an input batch in a
.pth file. The sample's logits, both ways it can load (tsd opens the model;
the program holds the module), must equal exactly what Python's own scripted
module gives after load_state_dict (one LibTorch, one graph), and match the
eager torchvision model's within float tolerance. A checkpoint with the
ImageNet head must fail as PyTorch's load_state_dict does, with its text.

usage: check_forward.py --sample BUILD/torch_forward --work DIR
Exit 0 only if every check passed; prints `N passed, M failed` last."""
import argparse
import os
import subprocess
import sys

import torch
import torchvision


def randomize(model, seed):
    """Every parameter and buffer a value a default init would not give."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("num_batches_tracked"):
                b.fill_(1234)
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    w = lambda name: os.path.join(a.work, name)
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
        if ok:
            passed += 1
        else:
            failed += 1

    torch.manual_seed(0)
    fresh = torchvision.models.resnet18(num_classes=10).eval()
    torch.jit.save(torch.jit.script(fresh), w("resnet18_10.pt"))
    tuned = randomize(torchvision.models.resnet18(num_classes=10), 1).eval()
    sd = tuned.state_dict()
    torch.save({"epoch": 5, "state_dict": sd}, w("finetuned.pth"))
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    torch.save({"input": x}, w("input.pth"))
    # The ImageNet head: PyTorch raises on its size mismatch.
    imagenet = randomize(torchvision.models.resnet18(num_classes=1000), 3)
    torch.save(imagenet.state_dict(), w("imagenet.pth"))

    with torch.no_grad():
        eager = tuned(x)
        scripted = torch.jit.load(w("resnet18_10.pt"))
        report = scripted.load_state_dict(sd)
        oracle = scripted(x)
        before = fresh(x)
    want_report = str(report)  # <All keys matched successfully>
    try:
        torchvision.models.resnet18(num_classes=10).load_state_dict(imagenet.state_dict())
        want_error = None
    except RuntimeError as e:
        want_error = str(e)
    check("the fine-tuned weights change the output (the test can fail)",
          not torch.allclose(before, oracle, atol=1e-3))

    for mode in ([], ["--held"]):
        tag = "held module" if mode else "tsd-opened model"
        out = w("logits%s.bin" % ("_held" if mode else ""))
        if os.path.exists(out):
            os.remove(out)
        r = subprocess.run([a.sample, w("resnet18_10.pt"), w("finetuned.pth"),
                            w("input.pth"), out] + mode, capture_output=True, text=True)
        check(f"{tag}: exit 0", r.returncode == 0,
              f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
        if r.returncode != 0:
            continue
        lines = r.stdout.splitlines()
        check(f"{tag}: the state dict is found under 'state_dict'",
              lines[0] == "state dict: checkpoint['state_dict']", lines[0])
        check(f"{tag}: prints load_state_dict's result", lines[1] == want_report,
              f"{lines[1]!r} != {want_report!r}")
        classes = [f"input {i}: class {int(c)}" for i, c in enumerate(oracle.argmax(1))]
        check(f"{tag}: prints each input's best class", lines[2:2 + len(classes)] == classes,
              f"{lines[2:]} != {classes}")
        with open(out, "rb") as f:
            got = torch.frombuffer(bytearray(f.read()), dtype=torch.float32)
        check(f"{tag}: logits have the output's shape", got.numel() == oracle.numel(),
              f"{got.numel()} values, expected {oracle.numel()}")
        if got.numel() != oracle.numel():
            continue
        got = got.reshape(oracle.shape)
        check(f"{tag}: logits equal Python's scripted module's, bit for bit",
              torch.equal(got, oracle),
              f"max abs diff {(got - oracle).abs().max().item():.3g}")
        check(f"{tag}: logits match the eager torchvision model's",
              torch.allclose(got, eager, rtol=1e-4, atol=1e-5),
              f"max abs diff {(got - eager).abs().max().item():.3g}")

    # The ImageNet checkpoint: strict load fails with PyTorch's text, exit 1.
    for mode in ([], ["--held"]):
        tag = "held module" if mode else "tsd-opened model"
        r = subprocess.run([a.sample, w("resnet18_10.pt"), w("imagenet.pth"),
                            w("input.pth")] + mode, capture_output=True, text=True)
        check(f"{tag}: a 1000-class checkpoint exits 1", r.returncode == 1,
              f"exit {r.returncode}, stderr: {r.stderr}")
        check(f"{tag}: ... with PyTorch's RuntimeError text",
              want_error is not None and r.stdout == "RuntimeError: " + want_error + "\n",
              f"\n--- got ---\n{r.stdout}\n--- want ---\nRuntimeError: {want_error}\n")

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
