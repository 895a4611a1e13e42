"""The calibration table: for each lineage and metric, the largest difference to its original over
the shared oracle cases (tests/data/reference/lineage.json) and the time per image.

    python -m benchmark.tools.calibration [--out FILE.md]

Differences are |ours - original| / max(1, |original|) in float64 and float32, over every case
where the original returned a number, the documented hazards (:data:`metrics.lineage.HAZARDS`)
reported apart; NaN/error agreement counts as 0. Time: milliseconds per 240x240 triple on a batch
of 16 (2-core CPU, float32 inputs as ``bench eval`` reads them), each metric alone (shared
intermediates are computed again for each, so the sum exceeds a whole lineage's time), the median
of three runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

from benchmark.tools import print_table
from metrics.lineage import HAZARDS, LINEAGES, NOT_IMPLEMENTED, SPECS, LineageImages, lineage_values

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "reference")


def differences(lineage: str, dtype) -> dict[str, tuple[float, list[str]]]:
    oracle = json.load(open(os.path.join(DATA, "lineage.json")))["cases"]
    worst: dict[str, float] = {}
    hazards: dict[str, list[str]] = {}
    for case, per in oracle.items():
        z = np.load(os.path.join(DATA, f"{case}.npz"))
        f, a, b = (torch.tensor(z[k].astype(np.float64), dtype=dtype).view(1, 1, *z[k].shape) for k in "FAB")
        values, _ = lineage_values(f, a, b, lineage)
        for key, ref in per[lineage].items():
            if key not in values:
                continue
            v = float(values[key][0])
            if isinstance(ref, dict) or (isinstance(ref, str) and ref == "NaN"):
                d = 0.0 if math.isnan(v) else float("inf")
                if isinstance(ref, dict) and ref["error"].startswith("not run"):
                    continue
            else:
                r = float(ref)
                d = abs(v - r) / max(1.0, abs(r))
            if (lineage, key, case) in HAZARDS:
                hazards.setdefault(key, []).append(f"{case} ({d:.1e})")
                continue
            worst[key] = max(worst.get(key, 0.0), d)
    return {k: (worst.get(k, 0.0), hazards.get(k, [])) for k in worst | hazards}


def ms_per_image(lineage: str) -> dict[str, float]:
    from benchmark.data.phantom import make_split

    x1, x2, _ = make_split(3, "val", 16)
    x1, x2 = (torch.round(torch.from_numpy(x)[:, None] * 255) for x in (x1, x2))
    f = torch.round((x1 + x2) / 2)
    out = {}
    for s in SPECS[lineage]:
        runs = []
        for _ in range(3):  # the median of three: one run alone moved by up to 2.4x on this machine
            li = LineageImages(x1, x2, f)
            t0 = time.perf_counter()
            s(li, s.key)
            runs.append((time.perf_counter() - t0) / 16 * 1000)
        out[s.key] = sorted(runs)[1]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out")
    args = p.parse_args(argv)
    from benchmark.allocator import keep_freed_memory

    keep_freed_memory()  # time each metric as ``bench`` runs it (FUSIONBENCH_MALLOC=0: glibc's defaults)
    lines = [
        "| lineage | metric | largest difference, float64 | float32 | ms / image | documented hazards |",
        "|---|---|---:|---:|---:|---|",
    ]
    for lineage in LINEAGES:
        d64, d32, ms = differences(lineage, torch.float64), differences(lineage, torch.float32), ms_per_image(lineage)
        for s in SPECS[lineage]:
            w64, hz = d64.get(s.key, (0.0, []))
            w32, _ = d32.get(s.key, (0.0, []))
            if not s.checked:  # the original errors where this is defined: nothing to compare with
                lines.append(f"| {lineage} | {s.key} | not checked | not checked | {ms[s.key]:.1f} | - |")
                continue
            lines.append(f"| {lineage} | {s.key} | {w64:.1e} | {w32:.1e} | {ms[s.key]:.1f} | {', '.join(hz) or '-'} |")
        for key in NOT_IMPLEMENTED.get(lineage, ()):
            lines.append(f"| {lineage} | {key} | not implemented | | | |")
    print_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
