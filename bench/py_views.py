"""Python PyTorch's time-to-ready for the issue-15 benchmark, warm or cold:

    /usr/bin/python3 py_views.py KIND CHECKPOINT REPS [cold]

builds the eager float32 model KIND (bench/models.py; not timed), then REPS
times: (cold: drop the file from the page cache with
os.posix_fadvise(POSIX_FADV_DONTNEED)), reset the peak-RSS counter, time

  .pth:          sd = torch.load(path, map_location='cpu')
                 model.load_state_dict(sd)
  .safetensors:  what safetensors.torch.load_file does (the package is not
                 installed here): mmap the file, parse the JSON header, one
                 torch.frombuffer view per tensor, then
                 model.load_state_dict(sd), which copies

Prints one JSON object like bench_views."""
import ctypes
import gc
import json
import mmap
import os
import struct
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64}


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def trim():
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def evict(path):
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


def load_safetensors(path):
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    n = struct.unpack("<Q", m[:8])[0]
    hdr = json.loads(m[8:8 + n])
    hdr.pop("__metadata__", None)
    base = 8 + n
    sd = {}
    for k, v in hdr.items():
        a, b = v["data_offsets"]
        dt = DTYPES[v["dtype"]]
        size = torch.empty(0, dtype=dt).element_size()
        t = torch.frombuffer(m, dtype=dt, count=(b - a) // size,
                             offset=base + a)
        sd[k] = t.view(v["shape"])
    return sd, m


def main():
    kind, path, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cold = len(sys.argv) > 4 and sys.argv[4] == "cold"
    torch.manual_seed(1)
    model = models.build(kind).eval()
    trim()
    times, extra = [], []
    import warnings
    warnings.filterwarnings("ignore")  # frombuffer on a read-only map
    for _ in range(reps):
        if cold:
            evict(path)
        base = status_kib("VmRSS")
        reset_hwm()
        t0 = time.perf_counter()
        keep = None
        if path.endswith(".safetensors"):
            sd, keep = load_safetensors(path)
        else:
            sd = torch.load(path, map_location="cpu")
        result = model.load_state_dict(sd)
        t1 = time.perf_counter()
        extra.append(status_kib("VmHWM") - base)
        times.append(t1 - t0)
        if result.missing_keys or result.unexpected_keys:
            sys.exit(f"py_views: keys do not match: {result}")
        del sd, result
        if keep is not None:
            keep.close()
        trim()
    print(json.dumps(dict(mode="py", cold=cold, times=times, extra_kib=extra,
                          torch_threads=torch.get_num_threads())))


if __name__ == "__main__":
    main()
