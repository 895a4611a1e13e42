"""Metric speed and memory: pairs/s for each metric and for all five together.

    python -m benchmark.tools.speed_metrics [--n 1153] [--chunk 16] [--device cpu|cuda] [--dtype float32]
                                            [--compile auto|1|0] [--lineage SET] [--sets-only] [--profile K]

Scores ``n`` phantom pairs at 240x240 (64 distinct pairs generated, repeated to ``n``; fused =
0.6 x1 + 0.4 x2) with the ``upstream`` profile, ``chunk`` pairs at a time, so that peak memory does
not grow with ``n``. Prints pairs/s per metric, for all five together (sharing work), and the peak
memory (CUDA: ``max_memory_allocated``; CPU: growth of the process's peak RSS). On a CPU the
kernels are compiled as ``metrics.score`` would compile them for ``n`` pairs (``--compile``, i.e.
``FUSIONBENCH_COMPILE``); the one-off compilation happens in a warm-up and is reported apart. The
allocator is set up as ``bench`` sets it (:mod:`benchmark.allocator`; ``FUSIONBENCH_MALLOC=0``: not).
``--lineage SET`` (``vifb``, ``tang``, ``mefb``, ``cddfuse``; ``liu`` = the five) times that lineage's
metrics instead, each alone and all together; ``--sets-only`` times only all together. ``--profile K``
then profiles one chunk of the whole set and lists its ``K`` costliest operators (self time on the
device, with call counts). The images are on the device before the clock starts: this is the
scoring alone (``speed_lineages`` times a whole ``bench eval``, reading and start-up included).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
import torch


def pairs(n: int, device, dtype):
    from benchmark.data.phantom import make_split

    x1, x2, _ = make_split(7, "val", min(n, 64))
    reps = -(-n // len(x1))
    x1 = torch.from_numpy(np.tile(x1, (reps, 1, 1))[:n])[:, None].to(device, dtype)
    x2 = torch.from_numpy(np.tile(x2, (reps, 1, 1))[:n])[:, None].to(device, dtype)
    return 0.6 * x1 + 0.4 * x2, x1, x2


def profile_table(fn, device: torch.device, top: int) -> list[dict]:
    """Run ``fn`` once under :mod:`torch.profiler` and return the ``top`` operators by self time on
    ``device`` (its kernels' time on a GPU, CPU time on a CPU), with their call counts: where a set's
    time goes, e.g. a few slow kernels or many small launches."""
    from torch.profiler import ProfilerActivity, profile

    gpu = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with profile(activities=acts) as prof:
        fn()
    rows = []
    for e in prof.key_averages():
        rows.append(
            {
                "op": e.key,
                "count": e.count,
                "self_ms": (e.self_device_time_total if gpu else e.self_cpu_time_total) / 1e3,
                "cpu_self_ms": e.self_cpu_time_total / 1e3,
            }
        )
    rows.sort(key=lambda r: -r["self_ms"])
    # the launches and host-device waits behind those operators (CUDA runtime calls, on a GPU)
    calls = {r["op"]: r["count"] for r in rows if r["op"].startswith("cuda")}
    total = {"op": "(all aten operators)", "count": sum(r["count"] for r in rows if r["op"].startswith("aten::"))}
    total["self_ms"] = sum(r["self_ms"] for r in rows if r["op"].startswith("aten::"))
    total["cpu_self_ms"] = sum(r["cpu_self_ms"] for r in rows if r["op"].startswith("aten::"))
    runtime = [
        {"op": k, "count": c, "self_ms": 0.0, "cpu_self_ms": next(r["cpu_self_ms"] for r in rows if r["op"] == k)}
        for k, c in sorted(calls.items(), key=lambda kv: -kv[1])[:4]
    ]
    return [total, *rows[:top], *runtime]


def bench(
    n: int, chunk: int, device: str, dtype: str, metrics_list, sets_only: bool = False, profile_top: int = 0
) -> dict:
    from metrics import _compile, score
    from metrics.registry import TABLE_ORDER

    dev = torch.device(device)
    dt = getattr(torch, dtype)
    f, a, b = pairs(n, dev, dt)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    compiled = _compile.wanted(n, dev)
    t0 = time.perf_counter()
    with _compile.compiling(compiled):  # warm-up, and the compilation that the timed calls would do
        score(f[:chunk], a[:chunk], b[:chunk], metrics=metrics_list, chunk_size=chunk)
    sync()
    warmup_s = time.perf_counter() - t0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    out = {
        "n": n,
        "chunk": chunk,
        "device": device,
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU",
        "compiled": compiled and not _compile._BROKEN,
        "warmup_s": warmup_s,
        "pairs_per_s": {},
    }
    names = list(metrics_list or TABLE_ORDER)
    for m in ([] if sets_only else names) + ["all"]:
        t0 = time.perf_counter()
        score(f, a, b, metrics=names if m == "all" else [m], chunk_size=chunk)
        sync()
        dt_s = time.perf_counter() - t0
        out["pairs_per_s"][m] = n / dt_s
        if m == "all":
            out["all_seconds"] = dt_s
    if profile_top:  # one chunk of all the metrics together, after the timed calls
        out["profile"] = profile_table(
            lambda: (score(f[:chunk], a[:chunk], b[:chunk], metrics=names, chunk_size=chunk), sync()),
            dev,
            profile_top,
        )
    out["peak_mb"] = (
        torch.cuda.max_memory_allocated(dev) / 2**20
        if dev.type == "cuda"
        else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    )
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1153)
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--metrics", default=None, help="comma-separated subset (default: each of the five, then all)")
    p.add_argument("--lineage", default=None, help="time this lineage's metrics (liu: the Table 1 five)")
    p.add_argument("--sets-only", action="store_true", help="time only all the metrics together")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="K",
        help="also profile one chunk of the whole set: its K costliest operators",
    )
    p.add_argument(
        "--compile",
        choices=["auto", "1", "0"],
        default=None,
        help="compiled kernels on CPU (sets FUSIONBENCH_COMPILE; default: its value, else auto)",
    )
    a = p.parse_args(argv)
    if a.compile is not None:
        import os

        os.environ["FUSIONBENCH_COMPILE"] = a.compile
    from benchmark.allocator import keep_freed_memory

    keep_freed_memory()  # as ``bench`` does (FUSIONBENCH_MALLOC=0: glibc's defaults)
    names = a.metrics.split(",") if a.metrics else None
    if a.lineage and a.lineage != "liu":
        from metrics.registry import resolve_metrics

        names = resolve_metrics(names, lineages=a.lineage)
    r = bench(a.n, a.chunk, a.device, a.dtype, names, a.sets_only, a.profile)
    r["set"] = a.lineage or "liu"
    if a.json:
        print(json.dumps(r))
        return 0
    print(
        f"{r['n']} pairs 240x240, chunk {r['chunk']}, {r['device']} ({r['device_name']}, {r['threads']} threads), "
        f"{r['dtype']}, "
        f"{'compiled' if r['compiled'] else 'eager'} kernels (warm-up {r['warmup_s']:.1f} s)"
    )
    width = max(7, *(len(m) for m in r["pairs_per_s"]))
    for m, v in r["pairs_per_s"].items():
        print(f"  {m:<{width}} {v:10.1f} pairs/s")
    print(f"  all of {r['set']}: {r['all_seconds']:.2f} s for {r['n']} pairs; peak memory {r['peak_mb']:.0f} MB")
    if "profile" in r:
        where = "device" if a.device.startswith("cuda") else "CPU"
        print(f"  one chunk of {r['chunk']} profiled, operators by self {where} time:")
        for row in r["profile"]:
            cpu = f"(CPU {row['cpu_self_ms']:8.2f} ms)"
            print(f"    {row['self_ms']:9.2f} ms {row['count']:7d} calls {cpu}  {row['op'][:60]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
