"""``bench eval``: score fused images made by any software against their sources.

The same file stem in the x1, x2 and fused folders makes one triple. Several fused folders
(``--fused mine=DIR1 --fused theirs=DIR2``) are ranked against each other. Writes the same
``scores.csv`` (with a ``name`` column holding the file stem) and leaderboards as ``bench run``.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from benchmark.atomic import check_writable, first_missing, write_json, write_text
from benchmark.data.imageio import list_images, probe_image, read_image
from benchmark.reporting.tables import write_leaderboards
from metrics.colour import colour_score
from metrics.profiles import get_profile
from metrics.registry import METRICS, resolve_metrics


def parse_fused(specs) -> dict[str, str]:
    out = {}
    for s in specs:
        name, _, folder = s.partition("=") if "=" in s else (os.path.basename(os.path.normpath(s)), "", s)
        if name in out:
            raise ValueError(f"--fused: method name {name!r} given twice")
        out[name] = folder
    return out


def evaluate_folders(
    x1_dir: str,
    x2_dir: str,
    fused: dict[str, str],
    out: str,
    metric_profile: str = "upstream",
    metrics=None,
    quantize=None,
    batch: int = 16,
    device: str = "cpu",
    progress: bool = True,
    style: str = "stats",
    lineage=None,
) -> pd.DataFrame:
    """Score every fused folder against the source folders (same file stem = one triple); writes
    ``scores.csv``, ``config.json`` and the leaderboards under ``out``; returns the scores.
    ``lineage`` (e.g. ``"vifb"``) scores every metric of those lineages (:mod:`metrics.lineage`)."""
    names = resolve_metrics(metrics, lineage)
    need = max(METRICS[n].min_size for n in names)
    if "Q_P" in names and get_profile(metric_profile).piella_map == "toolbox":
        need = max(need, 21)  # the shipped toolbox's Piella maps are 21x21 blocks
    a, b = list_images(x1_dir), list_images(x2_dir)
    problems = []
    fl = {}
    for m, d in fused.items():
        fl[m] = list_images(d)
        missing = sorted(set(a) - set(fl[m]))
        extra = sorted(set(fl[m]) - set(a))
        if missing:
            problems.append(f"{d}: no fused image for {', '.join(missing[:10])}")
        if extra:
            problems.append(f"{d}: no source images for {', '.join(extra[:10])}")
    if set(a) != set(b):
        problems.append(
            f"x1 and x2 folders differ: only in {x1_dir}: {sorted(set(a) - set(b))[:10]}; only in {x2_dir}: "
            f"{sorted(set(b) - set(a))[:10]}"
        )
    if problems:
        raise ValueError("unmatched files:\n  " + "\n  ".join(problems))
    keys = sorted(a)
    imgs = {}  # sizes from the files' headers: the pixels are decoded once, batch by batch
    for k in keys:
        s1, s2 = probe_image(a[k]), probe_image(b[k])
        if s1 != s2:
            raise ValueError(f"{b[k]} is {s2[0]}x{s2[1]}; expected {s1[0]}x{s1[1]} like {a[k]}")
        if min(s1) < need:
            raise ValueError(f"{a[k]} is {s1[0]}x{s1[1]}; the metrics need at least {need}x{need} pixels")
        imgs[k] = s1
    created = first_missing(out)
    check_writable(out)
    try:
        return _score_folders(
            keys,
            imgs,
            a,
            b,
            fl,
            fused,
            out,
            names,
            metric_profile,
            quantize,
            batch,
            device,
            progress,
            style,
            x1_dir,
            x2_dir,
            lineage,
        )
    except BaseException:
        if created:  # nothing partial: no output folder of a failed eval is left behind
            shutil.rmtree(out, ignore_errors=True)
        raise


def _batch(arrs, device) -> torch.Tensor:
    """(B, C, H, W) from 2-D grey or (H, W, 3) RGB arrays."""
    x = torch.from_numpy(np.stack(arrs))
    return (x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()).to(device)


def _score_folders(
    keys,
    imgs,
    a,
    b,
    fl,
    fused,
    out,
    names,
    metric_profile,
    quantize,
    batch,
    device,
    progress,
    style,
    x1_dir,
    x2_dir,
    lineage,
):
    rows = []
    for m, files in fused.items():
        for s in tqdm(range(0, len(keys), batch), desc=f"eval {m}", disable=not progress, leave=False):
            chunk = keys[s : s + batch]
            by_shape = {}
            src = {k: (read_image(a[k], colour=True), read_image(b[k], colour=True)) for k in chunk}
            for k in chunk:
                f = read_image(fl[m][k], colour=True)
                if f.shape[:2] != imgs[k]:
                    raise ValueError(
                        f"{fl[m][k]} is {f.shape[0]}x{f.shape[1]}; expected {imgs[k][0]}x{imgs[k][1]} like {a[k]}"
                    )
                # one batch per size and channel layout (grey or RGB fused image and sources)
                by_shape.setdefault((f.shape, src[k][0].shape, src[k][1].shape), []).append((k, f))
            for group in by_shape.values():
                sc = colour_score(
                    _batch([f for _, f in group], device),
                    _batch([src[k][0] for k, _ in group], device),
                    _batch([src[k][1] for k, _ in group], device),
                    names,
                    profile=metric_profile,
                    quantize=quantize,
                    workload=len(keys) * len(fused),
                )
                for j, (k, _) in enumerate(group):
                    rows.append({"model": m, "name": k, **{n: float(v[j]) for n, v in sc.items()}})
    scores = pd.DataFrame(rows)
    write_text(os.path.join(out, "scores.csv"), scores.to_csv(index=False, float_format="%.10g"))
    write_json(
        os.path.join(out, "config.json"),
        {
            "command": "bench eval",
            "x1": x1_dir,
            "x2": x2_dir,
            "fused": fused,
            "metric_profile": metric_profile,
            "quantize": quantize,
            "metrics": names,
            "lineage": lineage,
        },
    )
    write_leaderboards(
        out,
        scores,
        f"Fusion metrics of user images ({len(keys)} triples, metric profile {metric_profile}"
        + (f", lineages {lineage}" if lineage else "")
        + ").",
        style=style,
    )
    return scores
