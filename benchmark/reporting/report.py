"""The reporting stage of a run: from the models' results (DataFrames, arrays) to the run folder's
tables and figures, written once. Returns the tables as DataFrames."""

from __future__ import annotations

import io
import json
import os
import re

import numpy as np
import pandas as pd

from baselines.loading import model_folder
from baselines.registry import table_order
from benchmark.atomic import write_text
from benchmark.reporting.figures import decomposition_grid, distributions, sample_grid, training_curves
from benchmark.reporting.tables import (
    leaderboard,
    metric_columns,
    read_scores,
    render,
    write_leaderboards,
    write_scores,
)
from metrics.registry import ALL_LINEAGES, lineage_columns, source_of

DECOMPOSITION_COLUMNS = ["SSIM_x1", "SSIM_x2", "PSNR_x1", "PSNR_x2"]  # decomposed source vs true, per source
ONE_TABLE_COLUMNS = 8  # up to this many metric columns of several lineages stay one table (Table 1's seven, and one)
TUMOUR = "inside the tumour box (labels 1, 2, 4 dilated by 5 px; square box, side >= 48 px)"


def write_score_tables(
    run_dir: str,
    scores: pd.DataFrame,
    caption: str,
    style: str = "stats",
    n_boot: int = 2000,
    seed: int = 0,
    with_std: bool = False,
) -> dict:
    """``scores.csv``'s leaderboards: whole slices (``leaderboard.*``) and, where there are tumour
    rows, ``leaderboard_tumour.*``; where the metrics come from more than one lineage and are more
    than :data:`ONE_TABLE_COLUMNS`, also one table per lineage beside each
    (``leaderboard_<lineage>.*``, ``leaderboard_tumour_<lineage>.*``: that lineage's columns under
    its original's own names, the same numbers). Returns
    ``{"slice": table, "tumour": table, "slice:<lineage>": table, ...}``."""
    out = {}
    regions = [("slice", "leaderboard", caption)]
    if "region" in scores and (scores.region == "tumour").any():
        regions.append(("tumour", "leaderboard_tumour", caption.replace("Fusion metrics", f"Fusion metrics {TUMOUR}")))
    else:  # no tumour rows now: a tumour table of earlier scores (bench eval --labels, then without) must go
        _remove_tables(run_dir, ["leaderboard_tumour", *(f"leaderboard_tumour_{x}" for x in ALL_LINEAGES)])
    cols = metric_columns(scores)
    groups = lineage_columns(cols)
    groups = groups if len(groups) > 1 and "" not in groups and len(cols) > ONE_TABLE_COLUMNS else {}
    for region, stem, cap in regions:
        part = scores[scores.region == region] if "region" in scores else scores
        kw = dict(with_std=with_std, style=style, n_boot=n_boot, seed=seed)
        out[region] = write_leaderboards(run_dir, part, cap, stem=stem, **kw)
        for lineage, mine in groups.items():  # the same statistics: each column's are its own (seeded per column)
            own = {c: c.split(":", 1)[-1] for c in mine}
            sub = part.drop(columns=[c for c in cols if c not in own]).rename(columns=own)
            said = f" The {lineage} lineage's metrics, each as its original computes it ({source_of(lineage)})."
            out[f"{region}:{lineage}"] = write_leaderboards(
                run_dir, sub, cap + said, stem=f"{stem}_{lineage}", columns=list(own.values()), **kw
            )
        _remove_tables(run_dir, [f"{stem}_{x}" for x in ALL_LINEAGES if x not in groups])  # of an earlier call
    return out


def _remove_tables(run_dir: str, stems) -> None:
    for stem in stems:
        for ext in ("csv", "md", "tex"):
            stale = os.path.join(run_dir, f"{stem}.{ext}")
            if os.path.isfile(stale):
                os.remove(stale)


def leaderboard_text(run_dir: str) -> str:
    """What ``bench run``, ``eval`` and ``table`` print: ``leaderboard.md``; or, where the folder
    holds one table per lineage, its caption once and then each lineage's table under its name
    (one table of 69 columns is not read on a terminal)."""
    with open(os.path.join(run_dir, "leaderboard.md")) as fh:
        whole = fh.read()
    own = [x for x in ALL_LINEAGES if os.path.isfile(os.path.join(run_dir, f"leaderboard_{x}.md"))]
    if not own:
        return whole
    lower = re.compile(r" Lower is better for ([^.]*)\.")
    parts = [lower.sub("", whole.split("\n\n| ", 1)[0])]  # said per lineage below, in its own names
    for lineage in own:
        with open(os.path.join(run_dir, f"leaderboard_{lineage}.md")) as fh:
            caption, table = fh.read().split("\n\n| ", 1)
        low = lower.search(caption)
        head = f"{lineage}: {source_of(lineage)} ({'lower is better for ' + low.group(1) + '; ' if low else ''}"
        parts.append(f"{head}leaderboard_{lineage}.md)\n\n| {table}".rstrip("\n"))
    return "\n\n".join(parts) + "\n"


def report(run_dir: str, cfg, results: dict, val_ds, caption: str) -> dict:
    """Write ``scores.csv``, the leaderboards, the decomposition tables and the figures of a run
    from ``results`` (model name -> ModelResult). Returns ``{"scores", "slice", "tumour",
    "decomposition", ...}`` DataFrames."""
    names = table_order(list(results))
    if not names:
        return {"scores": pd.DataFrame()}
    scores = pd.concat([results[n].scores for n in names], ignore_index=True)
    written = write_scores(os.path.join(run_dir, "scores.csv"), scores)
    tables = {"scores": scores, **write_score_tables(run_dir, written, caption, cfg.table_style, cfg.n_boot, cfg.seed)}
    slices = written[written.region == "slice"]
    distributions(os.path.join(run_dir, "figures", "distributions.png"), slices, metric_columns(slices), names)
    histories = {n: results[n].history for n in names if results[n].history}
    if histories:
        training_curves(os.path.join(run_dir, "figures", "training.png"), histories)
    decs = [results[n].decomposition for n in names if results[n].decomposition is not None]
    if decs:
        tables.update(write_decomposition_tables(run_dir, pd.concat(decs, ignore_index=True), caption))
    samples = {n: results[n].samples for n in names if results[n].samples is not None}
    n = min([len(v) for v in samples.values()] + [cfg.n_show, len(val_ds)])
    if n > 0:
        items = [val_ds[i] for i in range(n)]
        x1 = np.stack([it["x1"][0].numpy() for it in items])
        x2 = np.stack([it["x2"][0].numpy() for it in items])
        sample_grid(
            os.path.join(run_dir, "figures", "samples.png"),
            x1,
            x2,
            {k: v[:n] for k, v in samples.items()},
            caption if len(caption) < 120 else "",
        )
        for name in names:
            dec = results[name].decomposed
            if dec is not None and name in samples:
                slug = os.path.basename(model_folder("", name))
                decomposition_grid(
                    os.path.join(run_dir, "figures", f"decomposition_{slug}.png"),
                    x1,
                    x2,
                    samples[name][:n],
                    dec[:n, 0],
                    dec[:n, 1],
                )
    return tables


def write_decomposition_tables(run_dir: str, rows: pd.DataFrame, caption: str) -> dict:
    """FusionINN's ``decomposition.csv`` (rows of :mod:`benchmark.running.decomposition`) and a
    leaderboard per region; returns ``{"decomposition": table, ...}``."""
    out = {}
    text = rows.to_csv(index=False, float_format="%.10g")
    write_text(os.path.join(run_dir, "decomposition.csv"), text)
    rows = read_scores(io.StringIO(text))  # tabled as written, so bench table rebuilds them to the byte
    regions = rows["region"].unique() if "region" in rows else ["slice"]
    for region in regions:
        part = rows[rows["region"] == region] if "region" in rows else rows
        stem = "decomposition_leaderboard" + ("" if region == "slice" else f"_{region}")
        table = leaderboard(part, DECOMPOSITION_COLUMNS + ["SSIM_x1_spread", "SSIM_x2_spread"])
        out[stem.replace("_leaderboard", "")] = table
        write_text(os.path.join(run_dir, f"{stem}.csv"), table.rename_axis("model").to_csv(float_format="%.6f"))
        where = "" if region == "slice" else " inside the tumour box (labels 1, 2, 4 dilated by 5 px)"
        draws = int(part["draws"].iloc[0])
        cap = (
            f"Decomposition{where}: SSIM and PSNR of each decomposed source against the true one "
            f"(mean over images and {draws} latent draws). {caption}"
        )
        write_text(os.path.join(run_dir, f"{stem}.md"), render(table, DECOMPOSITION_COLUMNS, "md", cap))
        write_text(os.path.join(run_dir, f"{stem}.tex"), render(table, DECOMPOSITION_COLUMNS, "tex", cap))
    return out


def redraw_figures(run_dir: str, scores: pd.DataFrame) -> list[str]:
    """Draw again the figures of a run folder that come from its saved files: the score
    distributions (``scores.csv``, whole slices) and the training curves (each model's
    ``train.json``), as ``bench table`` rebuilds the leaderboards. Only figures the folder already
    holds are drawn (a ``bench eval`` folder has none); the sample grids need the source images, which
    a run does not keep, so they stay as the run drew them. Returns the paths written."""
    figures = os.path.join(run_dir, "figures")
    names = table_order(list(dict.fromkeys(scores.model.astype(str))))
    done = []
    path = os.path.join(figures, "distributions.png")
    if os.path.isfile(path):
        slices = scores[scores.region == "slice"] if "region" in scores else scores
        distributions(path, slices, metric_columns(slices), names)
        done.append(path)
    path = os.path.join(figures, "training.png")
    histories = {}
    for n in names:
        try:
            histories[n] = read_history(model_folder(run_dir, n))
        except (OSError, ValueError, KeyError, TypeError):  # a damaged train.json: no curve, not an error
            histories[n] = None
    histories = {n: h for n, h in histories.items() if isinstance(h, list) and h}
    if os.path.isfile(path) and histories:
        training_curves(path, histories)
        done.append(path)
    return done


def read_history(folder: str) -> list | None:
    """The learning curve a model's training wrote (``folder/train.json``), or None if there is none."""
    path = os.path.join(folder, "train.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)["history"]
