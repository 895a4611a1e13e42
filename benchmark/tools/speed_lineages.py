"""End-to-end speed of ``bench eval`` per metric set, against a per-image NumPy reference.

    python -m benchmark.tools.speed_lineages [--n 1153] [--sets liu,cddfuse,vifb,tang,mefb]
                                             [--ref-n 16] [--repeats 1] [--device cpu|cuda] [--out FILE.md]

Writes ``n`` triples of 240x240 8-bit PNGs (64 distinct phantom pairs repeated; fused = the mean),
then for each metric set runs ``bench eval`` (``--lineage SET``; ``liu`` = the Table 1 five) in a
fresh process with fresh compile caches (``TORCHINDUCTOR_CACHE_DIR``, ``XDG_CACHE_HOME`` in a new
temporary folder), timing the whole command (reading the images, any compilation, scoring,
leaderboards) with ``/usr/bin/time`` for wall time and peak resident memory (of the largest process:
with ``bench eval``'s worker processes, each holds about as much). Peak memory is also
measured at ``n // 8`` triples (compiling as for ``n``), to show it does not grow with ``n``. Side
by side, in the same run, the per-image NumPy float64 implementation of the same set
(:mod:`benchmark.tools.numpy_reference`, one per set; a set of several lineages, ``all``, has none) is timed
on ``ref_n`` triples, reading included, and extrapolated to ``n`` (``--ref-n 0``: not timed).
Beside it, the floor: the same command scoring one metric that costs next to nothing (CDDFuse's ``SD``),
what no set goes below (the process start, reading the PNGs, the workers, the leaderboards); a set's
speed-up over NumPy is at most its NumPy time over the floor (timed where the NumPy column is; the fastest
of its runs). ``--repeats N``: N rounds of every timing, the sets in turn within each round, so that the
machine's drift falls on all of them alike; each cell is then the median, the wall time with its range.
``--device cuda`` scores on the GPU (``bench eval --device cuda``). Where ``/usr/bin/time`` is absent
(the GPU machine's image), a small Python parent times the command and reads its peak RSS from
``getrusage`` instead, with the same meaning. Prints a Markdown table (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmark.tools import print_table

FLOOR = "SD"  # the floor's one metric (of the cddfuse lineage)


def write_triples(folder: str, n: int) -> None:
    from PIL import Image

    from benchmark.data.phantom import make_split

    x1, x2, _ = make_split(7, "val", min(n, 64))
    for role in ("x1", "x2", "fused"):
        os.makedirs(os.path.join(folder, role), exist_ok=True)
    imgs = [np.round(x * 255).astype(np.uint8) for x in (x1, x2, (x1 + x2) / 2)]
    for i in range(n):
        for role, arr in zip(("x1", "x2", "fused"), imgs):
            Image.fromarray(arr[i % len(arr)]).save(os.path.join(folder, role, f"{i:05d}.png"))


# What /usr/bin/time -f "%e %M" prints, for machines without it: wall seconds and the peak RSS (KiB)
# of the largest waited-for process below this one (getrusage's RUSAGE_CHILDREN, as time's wait4).
_TIME = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter(); rc = subprocess.call(sys.argv[1:])\n"
    "w = time.perf_counter() - t\n"
    "print(f'{w:.2f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr); sys.exit(rc)"
)


def timer() -> list[str]:
    """The command prefix that reports "wall-seconds peak-RSS-KiB" as stderr's last line."""
    if os.path.exists("/usr/bin/time"):
        return ["/usr/bin/time", "-f", "%e %M"]
    return [sys.executable, "-c", _TIME]


def run_eval(
    folder: str,
    metric_set: str,
    n_label: str,
    compile_as: int | None = None,
    device: str = "cpu",
    fused: list[str] | None = None,
    env: dict | None = None,
    keep: str | None = None,
    metrics: str | None = None,
) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one ``bench eval`` in a fresh process with empty caches.
    ``compile_as``: compile (or not) as a workload of that many triples would, so that a small
    memory-check run uses the same kernels as the large one (the compiler itself takes memory).
    ``fused``: the fused folders under ``folder`` (default: ``fused``, named mean); ``env``: more
    environment variables; ``keep``: where to copy the eval's ``scores.csv``; ``metrics``: only these
    metrics of the set (``--metrics``)."""
    from metrics import _compile

    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, **(env or {}))
        env.update(TORCHINDUCTOR_CACHE_DIR=os.path.join(cache, "inductor"), XDG_CACHE_HOME=cache)
        if compile_as is not None:
            env["FUSIONBENCH_COMPILE"] = "1" if _compile.wanted(compile_as, device) else "0"
        cmd = [
            *timer(),
            sys.executable,
            "-m",
            "benchmark",
            "eval",
            "--x1",
            os.path.join(folder, "x1"),
            "--x2",
            os.path.join(folder, "x2"),
            "--fused",
            *([f"mean={os.path.join(folder, 'fused')}"] if fused is None else [os.path.join(folder, m) for m in fused]),
            "--out",
            os.path.join(cache, "out"),
            "--device",
            device,
        ]
        if metric_set != "liu":
            cmd += ["--lineage", metric_set]
        if metrics:
            cmd += ["--metrics", metrics]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"bench eval --lineage {metric_set} ({n_label}) failed:\n{p.stderr[-2000:]}")
        wall, rss_kb = p.stderr.strip().splitlines()[-1].split()
        if keep:
            shutil.copyfile(os.path.join(cache, "out", "scores.csv"), keep)
        return float(wall), float(rss_kb) / 1024


def numpy_references() -> dict:
    """{metric set: its per-image NumPy float64 implementation}."""
    from benchmark.tools import numpy_reference as ref

    return {s: getattr(ref, f"{s}_metrics") for s in ("liu", "cddfuse", "vifb", "tang", "mefb")}


def numpy_reference_seconds(folder: str, ref_n: int, metric_set: str = "cddfuse") -> float:
    """Seconds per triple of the per-image NumPy float64 implementation of ``metric_set`` (reading included)."""
    from PIL import Image

    fn = numpy_references()[metric_set]
    t0 = time.perf_counter()
    for i in range(ref_n):
        f, a, b = (
            np.asarray(Image.open(os.path.join(folder, r, f"{i:05d}.png")), dtype=np.float64)
            for r in ("fused", "x1", "x2")
        )
        fn(f, a, b)
    return (time.perf_counter() - t0) / ref_n


def numpy_columns(has_reference: bool, ref: float | None, n: int, wall: float, floor: float | None) -> str:
    """The table's last three cells of a set: NumPy's ms a triple and s for ``n``, the speed-up (NumPy's
    seconds over ``wall``) and its bound (over ``floor``)."""
    if not has_reference:
        return "no NumPy reference | - | -"
    if ref is None:
        return "not timed | - | -"
    bound = f"{ref * n / floor:.1f}x" if floor else "-"
    return f"{ref * 1000:.0f}, {ref * n:.0f} | {ref * n / wall:.1f}x | {bound}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1153)
    p.add_argument("--sets", default="liu,cddfuse,vifb,tang,mefb")
    p.add_argument("--ref-n", type=int, default=16)
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds of every timing, the sets in turn within each (the machine's drift then falls on all alike); "
        "the table gives each median and, from 2 on, the range",
    )
    p.add_argument("--device", default="cpu", help="cpu (default) | cuda | cuda:N")
    p.add_argument("--out")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats {args.repeats}: expected 1 or more")
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    walls: dict = {s: [] for s in sets}
    refs_runs: dict = {s: [] for s in sets if s in numpy_references()}
    floors, rss, rss_small = [], dict.fromkeys(sets, 0.0), {}
    with tempfile.TemporaryDirectory() as tmp:
        big, small = os.path.join(tmp, "big"), os.path.join(tmp, "small")
        write_triples(big, args.n)
        write_triples(small, max(1, args.n // 8))
        ref_n = min(args.ref_n, args.n)
        for r in range(args.repeats):
            if ref_n > 0:
                for s in refs_runs:
                    refs_runs[s].append(numpy_reference_seconds(big, ref_n, s))
            # What no metric set can go below: the same command scoring one metric that costs next to nothing
            # (CDDFuse's SD, 0.08 ms a triple): the process start, reading the PNGs, the worker, the leaderboards.
            # A set's speed-up over NumPy can be at most its NumPy time over this. The fastest of its runs (two
            # in the first round): a bound, which one slow run (4.3 s once, where four runs minutes later took
            # 2.28-2.29 s) would make too lax.
            if ref_n > 0 and refs_runs:
                for _ in range(2 if r == 0 else 1):
                    floors.append(run_eval(big, "cddfuse", f"n={args.n}, SD", device=args.device, metrics=FLOOR)[0])
            for s in sets:
                wall, peak = run_eval(big, s, f"n={args.n}", device=args.device)
                walls[s].append(wall)
                rss[s] = max(rss[s], peak)
                if s not in rss_small:
                    rss_small[s] = run_eval(small, s, f"n={args.n // 8}", compile_as=args.n, device=args.device)[1]
                round_of = f" (round {r + 1} of {args.repeats})" if args.repeats > 1 else ""
                print(
                    f"{s}: {wall:.1f} s, {args.n / wall:.1f} triples/s, peak RSS {rss_small[s]:.0f} -> {peak:.0f} "
                    f"MiB{round_of}",
                    flush=True,
                )
    floor = min(floors) if floors else None
    refs = {s: float(np.median(v)) for s, v in refs_runs.items() if v}
    rows = []
    for s in sets:
        wall = float(np.median(walls[s]))
        rows.append((s, wall, args.n / wall, rss_small[s], rss[s], refs.get(s), min(walls[s]), max(walls[s])))
    torch = __import__("torch")
    where = f"{os.cpu_count()} CPU cores"
    if torch.device(args.device).type == "cuda":
        where = f"--device {args.device} ({torch.cuda.get_device_name(torch.device(args.device))}), {where}"
    rounds = f"; the median of {args.repeats} rounds" if args.repeats > 1 else ""
    of_rounds = f", median of {args.repeats} rounds (fastest-slowest)" if args.repeats > 1 else ""
    lines = [
        f"`bench eval` of {args.n} triples (240x240, 8-bit PNG), fresh process and empty caches, {where}, "
        f"torch {torch.__version__}.",
        "",
        f"| metric set | wall (s){of_rounds} | triples/s | peak RSS at n/8 -> n (MiB, largest process) "
        f"| same set in NumPy, per image: ms a triple, s for {args.n} | speed-up | at most (NumPy / floor) |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for s, wall, rate, r0, r1, ref, fastest, slowest in rows:
        numpy_cols = numpy_columns(s in numpy_references(), ref, args.n, wall, floor)
        spread = f" ({fastest:.1f}-{slowest:.1f})" if args.repeats > 1 else ""
        lines.append(f"| {s} | {wall:.1f}{spread} | {rate:.1f} | {r0:.0f} -> {r1:.0f} | {numpy_cols} |")
    lines += [
        "",
        f"NumPy: benchmark.tools.numpy_reference, float64, one triple at a time, timed on {ref_n} triples in the same "
        f"run (reading the PNGs included) and extrapolated{rounds}."
        if ref_n
        else "NumPy: not timed (--ref-n 0).",
    ]
    if floor is not None:
        lines.append(
            f"Floor: {floor:.1f} s (the fastest of {len(floors)} runs), the same command scoring only `--lineage "
            f"cddfuse --metrics {FLOOR}` (0.08 ms a triple): the process start, reading the PNGs, the worker "
            "processes, the leaderboards. No set's speed-up over its NumPy implementation can exceed its NumPy time "
            "over the floor."
        )
    print_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
