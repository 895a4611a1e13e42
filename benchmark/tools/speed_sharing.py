"""Time ``bench eval`` of several fused folders with and without sharing the sources' work.

    python -m benchmark.tools.speed_sharing [--n 192] [--folders 4] [--sets mefb,tang,vifb,cddfuse]
                                            [--pairs 2] [--out FILE.md]

Writes ``n`` triples of 240x240 8-bit PNGs (:func:`benchmark.tools.speed_lineages.write_triples`'
phantom pairs) and ``folders`` fused versions of each (the mean, the maximum, 0.7 A + 0.3 B, the
minimum, 0.3 A + 0.7 B, then further weights), then for each metric set runs one ``bench eval
--lineage SET --fused <every folder>`` with ``FUSIONBENCH_SHARE_SOURCES=0`` (each folder's batch
scored on its own, as before sharing existed) and one with ``=1`` (the default: what the lineages
take of the sources alone computed once per batch for every folder), alternating, ``pairs`` times,
each from a fresh process with empty compile caches (:func:`benchmark.tools.speed_lineages.run_eval`).
Checks that the two give the same ``scores.csv`` byte for byte, and prints a Markdown table of the
wall times and peak resident memory (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmark.tools import print_table
from benchmark.tools.speed_lineages import run_eval

FUSIONS = ("mean", "max", "w73", "min", "w37")


def write_folders(folder: str, n: int, folders: int) -> list[str]:
    """``n`` triples under ``folder`` (x1/, x2/) and ``folders`` fused folders; returns their names."""
    from PIL import Image

    from benchmark.data.phantom import make_split

    x1, x2, _ = make_split(7, "val", min(n, 64))
    names = [FUSIONS[k] if k < len(FUSIONS) else f"w{k}" for k in range(folders)]

    def fused(name: str) -> np.ndarray:
        if name == "max":
            return np.maximum(x1, x2)
        if name == "min":
            return np.minimum(x1, x2)
        w = {"mean": 0.5, "w73": 0.7, "w37": 0.3}.get(name) or 1 / (1 + int(name[1:]))
        return w * x1 + (1 - w) * x2

    roles = {"x1": x1, "x2": x2, **{m: fused(m) for m in names}}
    for role, arr in roles.items():
        os.makedirs(os.path.join(folder, role), exist_ok=True)
        img = np.round(arr * 255).astype(np.uint8)
        for i in range(n):
            Image.fromarray(img[i % len(img)]).save(os.path.join(folder, role, f"{i:05d}.png"))
    return names


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=192)
    p.add_argument("--folders", type=int, default=4)
    p.add_argument("--sets", default="mefb,tang,vifb,cddfuse")
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--out")
    args = p.parse_args(argv)
    if args.n < 1 or args.folders < 2 or args.pairs < 1:
        p.error("--n and --pairs must be at least 1, --folders at least 2")
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        names = write_folders(tmp, args.n, args.folders)
        for s in sets:
            got: dict = {"0": [], "1": []}
            for k in range(args.pairs):
                written = []
                for share in ("0", "1"):
                    written.append(os.path.join(tmp, f"scores_{share}.csv"))
                    env = {"FUSIONBENCH_SHARE_SOURCES": share}
                    wall, rss = run_eval(tmp, s, f"sharing {share}", fused=names, env=env, keep=written[-1])
                    got[share].append((wall, rss))
                    print(f"{s}, sharing {share}, pair {k + 1}: {wall:.1f} s, peak RSS {rss:.0f} MiB", flush=True)
                if len({Path(w).read_bytes() for w in written}) != 1:
                    raise RuntimeError(f"{s}: the scores with and without sharing differ")
            rows.append((s, got))
    torch = __import__("torch")

    def cell(runs, i, fmt):
        return ", ".join(fmt.format(r[i]) for r in runs)

    lines = [
        f"`bench eval` of {args.n} triples (240x240, 8-bit PNG) against {args.folders} fused folders "
        f"({', '.join(names)}), fresh process and empty caches each, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}; FUSIONBENCH_SHARE_SOURCES=0 and =1 alternating, {args.pairs} pair(s); "
        "scores.csv the same byte for byte in every pair.",
        "",
        "| lineage | wall, not shared (s) | wall, shared (s) | saved (medians) "
        "| peak RSS, not shared -> shared (MiB) |",
        "|---|---|---|---:|---|",
    ]
    for s, got in rows:
        med = {k: float(np.median([w for w, _ in v])) for k, v in got.items()}
        rss = f"{max(r for _, r in got['0']):.0f} -> {max(r for _, r in got['1']):.0f}"
        saved = round(100 * (1 - med["1"] / med["0"])) + 0  # + 0: no "-0"
        lines.append(f"| {s} | {cell(got['0'], 0, '{:.1f}')} | {cell(got['1'], 0, '{:.1f}')} | {saved}% | {rss} |")
    print_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
