"""The reporting stage of a run: from the models' results (DataFrames, arrays) to the run folder's
tables and figures, written once. Returns the tables as DataFrames."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from baselines.loading import model_folder
from baselines.registry import table_order
from benchmark.reporting.figures import decomposition_grid, distributions, sample_grid, training_curves
from benchmark.reporting.tables import metric_columns, write_leaderboards, write_scores

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
    rows, ``leaderboard_tumour.*``. Returns ``{"slice": table, "tumour": table}``."""
    out = {}
    slices = scores[scores.region == "slice"] if "region" in scores else scores
    out["slice"] = write_leaderboards(
        run_dir, slices, caption, with_std=with_std, style=style, n_boot=n_boot, seed=seed
    )
    if "region" in scores and (scores.region == "tumour").any():
        out["tumour"] = write_leaderboards(
            run_dir,
            scores[scores.region == "tumour"],
            caption.replace("Fusion metrics", f"Fusion metrics {TUMOUR}"),
            with_std=with_std,
            stem="leaderboard_tumour",
            style=style,
            n_boot=n_boot,
            seed=seed,
        )
    return out


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
        from benchmark.running.decomposition import write_decomposition_tables

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
