"""Whole-process cost of the tsd command in two builds, side by side (issue
12: LibTorch on demand). For each command: the median wall time and the
median peak RSS (GNU time's %M) over N runs, the two
builds' runs interleaved so that the machine's load falls on both alike.

usage: startup.py --tsd-a BUILD_C/tsd --tsd-b BUILD/tsd [--runs 21] [--mib 330]

Commands: `tsd --help`; `tsd load --model-spec F --class-name M F`, the
C-owned job, on a generated safetensors file F of about MIB MiB (float32
tensors shaped like a ViT-B/16's 330 MiB, scaled; written once into a temp
folder; warm page cache). No Python torch needed."""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time


def make_safetensors(path, mib):
    """Float32 tensors of a transformer's shapes, ~mib MiB in all."""
    shapes, total = [], 0
    i = 0
    while total < mib * 2**20:
        for name, shape in ((f"blocks.{i}.attn.qkv.weight", [2304, 768]),
                            (f"blocks.{i}.attn.qkv.bias", [2304]),
                            (f"blocks.{i}.mlp.fc1.weight", [3072, 768]),
                            (f"blocks.{i}.mlp.fc1.bias", [3072]),
                            (f"blocks.{i}.norm.weight", [768])):
            n = 1
            for d in shape:
                n *= d
            shapes.append((name, shape, n * 4))
            total += n * 4
        i += 1
    header, off = {}, 0
    for name, shape, nbytes in shapes:
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + nbytes]}
        off += nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        chunk = bytes(range(256)) * 4096
        left = off
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
    return off


def run(argv, tmp):
    """Wall time (s) and peak RSS (MiB) of one run. The RSS is GNU time's %M:
    the kernel counts the memory a child had before its exec too, and GNU
    time's own fork is ~2 MiB, where this Python's would be ~14."""
    out = os.path.join(tmp, "rss")
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out] + argv,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{' '.join(argv)}: exit {r.returncode}")
    with open(out) as f:
        return wall, int(f.read().split()[-1]) / 1024.0  # KiB -> MiB


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsd-a", required=True, help="the pure-C build's tsd")
    ap.add_argument("--tsd-b", required=True, help="the LibTorch build's tsd")
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--mib", type=float, default=330)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ck = os.path.join(tmp, "vit_like.safetensors")
        nbytes = make_safetensors(ck, a.mib)
        cases = [("tsd --help", ["--help"]),
                 (f"tsd load --model-spec ({nbytes / 2**20:.0f} MiB)",
                  ["load", "--model-spec", ck, "--class-name", "M", ck])]
        print(f"{a.runs} runs each, interleaved; medians. a = {a.tsd_a}, b = {a.tsd_b}")
        print(f"| command | a wall ms | b wall ms | b/a | a peak RSS MiB | b peak RSS MiB | b/a |")
        print(f"|---|---|---|---|---|---|---|")
        for label, args in cases:
            for exe in (a.tsd_a, a.tsd_b):  # warm-up: page cache, loader cache
                run([exe] + args, tmp)
            res = {a.tsd_a: [], a.tsd_b: []}
            for _ in range(a.runs):
                for exe in (a.tsd_a, a.tsd_b):
                    res[exe].append(run([exe] + args, tmp))
            wa = statistics.median(w for w, _ in res[a.tsd_a]) * 1e3
            wb = statistics.median(w for w, _ in res[a.tsd_b]) * 1e3
            ra = statistics.median(r for _, r in res[a.tsd_a])
            rb = statistics.median(r for _, r in res[a.tsd_b])
            print(f"| {label} | {wa:.1f} | {wb:.1f} | {wb / wa:.2f} | {ra:.1f} | {rb:.1f} | {rb / ra:.2f} |")


if __name__ == "__main__":
    main()
