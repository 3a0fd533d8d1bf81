"""(d) PyTorch's own load, timed in one process:

    /usr/bin/python3 py_load.py KIND CHECKPOINT REPS

builds the eager float32 model KIND (bench/models.py; not timed), then
REPS times: reset the peak-RSS counter, time
`sd = torch.load(path, map_location='cpu'); model.load_state_dict(sd)`,
read the peak, drop `sd`. Prints one JSON object like bench_tsd's.

Peak memory: VmHWM from /proc/self/status, reset to the current RSS by
writing "5" to /proc/self/clear_refs; the extra of a repetition is the rise of
VmHWM over the RSS at the reset (baseline: after the model is built)."""
import ctypes
import gc
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402


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
        return True
    except OSError:
        return False


def trim():
    gc.collect()
    try:  # give freed heap back to the kernel, so each baseline is honest
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def main():
    kind, path, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.manual_seed(1)
    model = models.build(kind).eval()
    trim()
    baseline = status_kib("VmRSS")
    times, extra, can_reset = [], [], True
    for r in range(reps):
        ok = reset_hwm()
        can_reset &= ok
        start_rss = status_kib("VmRSS") if ok or r == 0 else None
        t0 = time.perf_counter()
        sd = torch.load(path, map_location="cpu")
        result = model.load_state_dict(sd)
        t1 = time.perf_counter()
        extra.append(max(0, status_kib("VmHWM") - start_rss)
                     if start_rss is not None else -1)
        times.append(t1 - t0)
        if result.missing_keys or result.unexpected_keys:
            sys.exit(f"py_load: keys do not match: {result}")
        del sd, result
        trim()
    print(json.dumps(dict(mode="py", tensors=len(model.state_dict()),
                          baseline_kib=baseline, hwm_reset=can_reset,
                          torch_threads=torch.get_num_threads(),
                          times=times, extra_kib=extra)))


if __name__ == "__main__":
    main()
