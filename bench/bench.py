"""The load benchmark's driver (bench/run.sh runs it with /usr/bin/python3).

    bench.py BENCH_TSD CACHE_DIR RESULTS_MD [--quick]

For every case of bench/models.py, in one run and with a warm page cache
(every file of the case read once first), each measured in its own process:
  (a)  bench_tsd pread:  the checkpoint's bytes into a preallocated buffer
  (a2) bench_tsd pread2: the same with two threads (what two cores can do)
  (b)  bench_tsd c:      tsd into C-owned buffers of the model's dtype
  (c)  bench_tsd ts:     tsd into a TorchScript module (LibTorch builds only)
  (d)  py_load.py:       torch.load + load_state_dict into the eager model
Medians of the repetitions; peak memory is the largest per-repetition rise
over the baseline (see bench_tsd.c and py_load.py). Prints the table and
writes it, with the machine and the targets of issue 4, to RESULTS_MD."""
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import models  # noqa: E402

PY = "/usr/bin/python3"
MIB = 1 << 20


def run_json(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, cwd="/tmp")
    if p.returncode != 0:
        msg = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])
        return {"error": msg[-1][:300], "stderr": p.stderr[-4000:]}
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no JSON from %s" % cmd[0], "stderr": p.stdout[-2000:]}


def warm(paths):
    for path in paths:
        with open(path, "rb") as f:
            while f.read(64 << 20):
                pass


def med(v):
    return statistics.median(v) if v else None


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 2**20)
    torch_v = subprocess.run(
        [PY, "-c", "import torch, torchvision; print(torch.__version__, "
         "torchvision.__version__, torch.get_num_threads())"],
        capture_output=True, text=True, cwd="/tmp").stdout.split()
    return dict(nproc=os.cpu_count(), cpu=cpu, mem=mem,
                kernel=platform.release(),
                torch=torch_v[0] if torch_v else "?",
                torchvision=torch_v[1] if len(torch_v) > 1 else "?",
                torch_threads=torch_v[2] if len(torch_v) > 2 else "?")


def merge(into, x):
    """Appends the repetitions of one process's JSON to another's."""
    if not into or "error" in into or "skipped" in into:
        return x if not into else into
    if "error" in x:
        return x
    for k, v in x.items():
        if isinstance(v, list) and isinstance(into.get(k), list):
            into[k] = into[k] + v
    return into


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def measure(case, bench, cache, quick, rounds):
    """Runs a, a2, (a_written), b, c, d `rounds` times in turn, each run with
    the case's repetitions, so a burst of load from another process on this
    shared machine is spread over all columns instead of hitting one."""
    p = lambda name: os.path.join(cache, name)  # noqa: E731
    reps = 1 if quick else case["reps"]
    rounds = 1 if quick else rounds
    ckpt, spec, ts = p(case["ckpt"]), p(case["spec"]), p(case["ts"])
    files = [ckpt, spec, ts] + ([p(case["written_ref"])]
                                if case.get("written_ref") else [])
    warm(dict.fromkeys(files))
    r = dict(case=case, reps=reps * rounds, rounds=rounds,
             bytes=os.path.getsize(ckpt),
             loadavg=[loadavg()])
    cmds = dict(a=[bench, "pread", str(reps), ckpt],
                a2=[bench, "pread2", str(reps), ckpt])
    if case.get("written_ref"):
        cmds["a_written"] = [bench, "pread", str(reps),
                             p(case["written_ref"])]
    cmds["b"] = [bench, "c", str(reps), spec, ckpt]
    cmds["c"] = [bench, "ts", str(reps), ts, ckpt]
    cmds["d"] = [PY, os.path.join(HERE, "py_load.py"), case["kind"], ckpt,
                 str(reps)]
    t = time.time()
    for _ in range(rounds):
        for k, cmd in cmds.items():
            r[k] = merge(r.get(k), run_json(cmd))
        r["loadavg"].append(loadavg())
    r["wall"] = time.time() - t
    return r


def stat(res, key, field):
    x = res.get(key) or {}
    if "error" in x or "skipped" in x or field not in x:
        return None
    return med(x[field])


def peak(res, key):
    x = res.get(key) or {}
    v = [e for e in x.get("extra_kib", []) if e >= 0]
    return max(v) / 1024 if v else None


def fmt_t(v):
    if v is None:
        return "n/a"
    return "%.3f" % v


def fmt_r(v):
    return "n/a" if v is None else "%.2f" % v


def ratio(x, y):
    return x / y if x is not None and y else None


def analyse(res):
    """Adds medians, ratios, bounds to each case's result."""
    for r in res:
        m = r["m"] = {}
        m["a"] = stat(r, "a", "times")
        m["a2"] = stat(r, "a2", "times")
        m["a_written"] = stat(r, "a_written", "times")
        m["b"] = stat(r, "b", "times_open_load")
        m["b_load"] = stat(r, "b", "times_load")
        m["c"] = stat(r, "c", "times_open_load")
        m["c_load"] = stat(r, "c", "times_load")
        m["d"] = stat(r, "d", "times")
        m["b/a"] = ratio(m["b"], m["a"])
        m["b_load/a"] = ratio(m["b_load"], m["a"])
        m["c/d"] = ratio(m["c"], m["d"])
        m["c_load/d"] = ratio(m["c_load"], m["d"])
        m["b/d"] = ratio(m["b"], m["d"])
        m["b/a_written"] = ratio(m["b"], m["a_written"])
        for k in "bcd":
            m["peak_" + k] = peak(r, k)
        m["bound"] = 64 + 0.02 * r["bytes"] / MIB


def targets(res):
    """[(target, case, measured, ok or None when not measured)]"""
    out = []
    by = {r["case"]["name"]: r["m"] for r in res}
    for name in ("vit_b_16 f32", "vit_l_16 f32"):
        if name in by:
            v = by[name]["b/a"]
            out.append(("b/a <= 1.5", name, fmt_r(v),
                        None if v is None else v <= 1.5))
    for r in res:
        v = r["m"]["c/d"]
        why = (r.get("c") or {}).get("skipped")
        out.append(("c/d <= 0.25", r["case"]["name"], why or fmt_r(v),
                    None if v is None else v <= 0.25))
    if "50k small f32" in by:
        v = by["50k small f32"]["b/d"]
        out.append(("b/d <= 0.25", "50k small f32", fmt_r(v),
                    None if v is None else v <= 0.25))
    if "vit_b_16 bf16->f32" in by:
        v = by["vit_b_16 bf16->f32"]["b/a_written"]
        out.append(("b <= 2 x a(f32 bytes written)", "vit_b_16 bf16->f32",
                    fmt_r(v) + " x", None if v is None else v <= 2.0))
    for r in res:
        for k in "bc":
            v, bound = r["m"]["peak_" + k], r["m"]["bound"]
            why = (r.get(k) or {}).get("skipped") or "n/a"
            out.append(("peak extra (%s) <= 64 MiB + 2%%" % k,
                        r["case"]["name"],
                        why if v is None else "%.1f MiB (bound %.1f)"
                        % (v, bound),
                        None if v is None else v <= bound))
    return out


def table(res):
    head = ("| case | ckpt MiB | tensors | reps | a pread | a2 pread x2 "
            "| b open+load | b load | c open+load | c load | d torch "
            "| b/a | c/d | b/d | peak b MiB | peak c MiB | peak d MiB "
            "| bound MiB |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in res:
        m = r["m"]
        ntens = (r.get("b") or {}).get("tensors") or \
            (r.get("d") or {}).get("tensors") or "?"
        pk = lambda v: "n/a" if v is None else "%.1f" % v  # noqa: E731
        lines.append("| %s | %.0f | %s | %d | %s | %s | %s | %s | %s | %s | %s "
                     "| %s | %s | %s | %s | %s | %s | %.1f |" % (
                         r["case"]["name"], r["bytes"] / MIB, ntens, r["reps"],
                         fmt_t(m["a"]), fmt_t(m["a2"]), fmt_t(m["b"]),
                         fmt_t(m["b_load"]), fmt_t(m["c"]), fmt_t(m["c_load"]),
                         fmt_t(m["d"]), fmt_r(m["b/a"]), fmt_r(m["c/d"]),
                         fmt_r(m["b/d"]), pk(m["peak_b"]), pk(m["peak_c"]),
                         pk(m["peak_d"]), m["bound"]))
    return "\n".join(lines)


def firsts(res):
    """The first repetition of each process: what a program pays on its first
    load after start (allocator and page-fault state cold)."""
    lines = ["| case | b 1st | c 1st | d 1st | load average before -> after "
             "each round |", "|---|---|---|---|---|"]
    for r in res:
        cells = []
        for k, f in (("b", "times_open_load"), ("c", "times_open_load"),
                     ("d", "times")):
            x = r.get(k) or {}
            v = x.get(f) or []
            per = len(v) // r["rounds"] or 1
            cells.append(", ".join("%.3f" % t for t in v[::per]) or "n/a")
        lines.append("| %s | %s | %s | %s | %s |" % (
            r["case"]["name"], cells[0], cells[1], cells[2],
            " -> ".join("%.1f" % x for x in r.get("loadavg", []))))
    return "\n".join(lines)


def errors(res):
    out = []
    for r in res:
        for k in ("a", "a2", "a_written", "b", "c", "d"):
            x = r.get(k) or {}
            if "error" in x:
                out.append("- %s (%s): %s" % (r["case"]["name"], k,
                                              x["error"]))
            if "skipped" in x:
                out.append("- %s (%s): %s" % (r["case"]["name"], k,
                                              x["skipped"]))
    return out


def main():
    bench, cache, md = sys.argv[1:4]
    quick = "--quick" in sys.argv[4:]
    rounds = int(next((a.split("=", 1)[1] for a in sys.argv[4:]
                       if a.startswith("--rounds=")), "2"))
    only = [a.split("=", 1)[1] for a in sys.argv[4:] if a.startswith("--only=")]
    mach = machine()
    tsd_v = "?"
    res = []
    t0 = time.time()
    for case in models.CASES:
        if only and not any(o in case["name"] for o in only):
            continue
        print("bench: %s ..." % case["name"], flush=True)
        r = measure(case, bench, cache, quick, rounds)
        tsd_v = (r.get("b") or {}).get("tsd_version", tsd_v)
        res.append(r)
        print("bench:   %.0f s, load average %s" % (
            r["wall"], " -> ".join("%.1f" % x for x in r["loadavg"])),
            flush=True)
    analyse(res)
    tab = table(res)
    tg = targets(res)
    errs = errors(res)
    total = time.time() - t0

    desc = ("%d CPUs (%s), %s RAM, Linux %s; Python torch %s (torchvision %s, "
            "%s intra-op thread(s), its default here), tsd %s" % (
                mach["nproc"], mach["cpu"], mach["mem"], mach["kernel"],
                mach["torch"], mach["torchvision"], mach["torch_threads"],
                tsd_v))
    print()
    print(desc)
    print()
    print(tab)
    print()
    for t in tg:
        print("%-34s %-20s %-28s %s" % (
            t[0], t[1], t[2], {True: "met", False: "NOT met",
                               None: "not measured"}[t[3]]))
    for e in errs:
        print(e)

    with open(md, "w") as f:
        f.write("# Load benchmark results\n\n")
        f.write("Generated by `bash bench/run.sh` on %s (%.0f s of "
                "measurement%s).\n\n" % (
                    time.strftime("%Y-%m-%d %H:%M"), total,
                    ", --quick: 1 repetition" if quick else ""))
        f.write("**Machine:** %s.\n\n" % desc)
        f.write(
            "Times are medians in seconds, warm page cache, each column "
            "measured in its own process in the same run:\n\n"
            "- **a**: `pread` of the whole checkpoint file into a "
            "preallocated, pre-faulted buffer, one thread (the physical "
            "lower bound); **a2** the same with two threads.\n"
            "- **b**: tsd into C-owned buffers of the model's dtype "
            "(`bench_tsd c`): `tsd_checkpoint_open` + `tsd_load` (strict) + "
            "free (*open+load*), and `tsd_load` alone (*load*). The buffers "
            "are allocated and written before timing.\n"
            "- **c**: tsd into a TorchScript module (`bench_tsd ts`): the same "
            "two times, after `tsd_model_open_torchscript` (not timed).\n"
            "- **d**: Python `sd = torch.load(path, map_location='cpu'); "
            "model.load_state_dict(sd)` into the eager model, those two "
            "calls only.\n"
            "- Ratios use tsd's *open+load* time (the conservative one: "
            "`torch.load` also parses the file).\n"
            "- **peak**: the largest rise of VmHWM over the RSS before the "
            "repetition (VmHWM reset through `/proc/self/clear_refs`); the "
            "baseline is taken after the model is built. **bound**: 64 MiB + "
            "2% of the checkpoint.\n\n")
        f.write(tab + "\n\n")
        f.write("First repetition of each process (one per round), and the "
                "machine's 1-minute load average around the case (other "
                "work on this shared machine shows up here):\n\n")
        f.write(firsts(res) + "\n\n")
        f.write("## Targets of issue 4\n\n| target | case | measured | |\n"
                "|---|---|---|---|\n")
        for t in tg:
            f.write("| %s | %s | %s | %s |\n" % (
                t[0], t[1], t[2], {True: "met", False: "**NOT met**",
                                   None: "not measured"}[t[3]]))
        f.write("\n")
        m_bf = next((r["m"] for r in res
                     if r["case"]["name"] == "vit_b_16 bf16->f32"), None)
        if m_bf and m_bf["a_written"] is not None:
            f.write("The bf16 case's reference *a* is the pread of the "
                    "float32 vit_b_16 checkpoint (the bytes written): "
                    "%.3f s.\n\n" % m_bf["a_written"])
        if errs:
            f.write("## Not measured\n\n" + "\n".join(errs) + "\n\n")
        notes = os.path.join(HERE, "notes.md")
        if os.path.exists(notes):
            with open(notes) as n:
                f.write(n.read())
        f.write("\n<details><summary>raw measurements</summary>\n\n```json\n")
        f.write(json.dumps([{k: v for k, v in r.items() if k != "m"}
                            for r in res], indent=1))
        f.write("\n```\n</details>\n")
    print("\nwrote %s (%.0f s)" % (md, total))


if __name__ == "__main__":
    main()
