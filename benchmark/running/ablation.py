"""``bench ablate``: FusionINN's Table 2 sweeps (alpha, lambda, k, latent prior).

One FusionINN is trained per value through the runner's stages (so finished values are reused on
rerun); the table reports, as the paper's Table 2 does, the mean SSIM of the fused image against
each source and of each decomposed source against the true one (docs/reference.md §3), taken
from the results the runner returns: nothing is fused twice or read back from disk.
"""

from __future__ import annotations

import dataclasses
import os

import pandas as pd

from benchmark.atomic import check_writable, folder_lock, write_text
from benchmark.config import RunConfig, check_config
from benchmark.data import load_data, size_notes
from benchmark.reporting.tables import render
from benchmark.running.runner import pick_device, run_model

PARAMS = {
    "alpha": ("fusioninn_alpha", float),
    "lambda": ("loss_lambda", float),
    "k": ("fusioninn_k", int),
    "prior": ("fusioninn_prior", str),
}
PAPER_SWEEPS = {
    "alpha": "0.2,0.5,0.8,1.0",
    "lambda": "0.8,0.9,0.99,0.999",
    "k": "1,2,3,4",
    "prior": "zeros,normal,uniform",
}
COLUMNS = ["Fusion SSIM T1-Gd", "Fusion SSIM FLAIR", "Decomposition SSIM T1-Gd", "Decomposition SSIM FLAIR"]
# Table 2's fusion SSIM is the float, valid-window SSIM of each source: Q_SSIM's halves in the
# ``fusioninn`` metric profile (no 8-bit quantisation; docs/reference.md §6).
_TABLE2_METRICS = dict(metrics="Q_SSIM_x1,Q_SSIM_x2", metric_profile="fusioninn", quantize=None)


def ablate(cfg: RunConfig, param: str, values: str, progress: bool = True, log=print) -> pd.DataFrame:
    """Train one FusionINN per value of ``param`` and return the Table 2 rows (index: the values)."""
    if param not in PARAMS:
        raise ValueError(f"unknown ablation parameter {param!r}; expected one of {', '.join(PARAMS)}")
    field, typ = PARAMS[param]
    if cfg.from_run:  # every value would load the same weights: a table of identical rows
        raise ValueError(
            f"bench ablate trains one FusionINN per value; it does not load weights (--from {cfg.from_run})"
        )
    try:
        vals = [typ(v.strip()) for v in values.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--values {values!r}: cannot read every value as {typ.__name__} for {param}") from None
    if not vals:
        raise ValueError("--values: give at least one value")
    twice = sorted({str(v) for v in vals if vals.count(v) > 1})
    if twice:  # one row and one run folder per value: a repeat would be a second row of one index
        raise ValueError(f"--values {values!r}: {', '.join(twice)} given twice; each value is one row of the table")
    for v in vals:  # every value checked before the first is trained
        check_config(dataclasses.replace(cfg, **{field: v}), f"--values {v}: ")
    dev = pick_device(cfg.device)
    root = os.path.join(
        cfg.out, cfg.run_name or f"ablate-{cfg.profile}-{'phantom' if cfg.data == 'phantom' else 'data'}"
    )
    check_writable(root)
    with folder_lock(root, "wait for that ablation to finish, or give this one another --run-name or --out"):
        train_ds, val_ds, info = load_data(
            cfg.data, cfg.image_seed(), cfg.n_train, cfg.n_val, cfg.phantom_train, cfg.phantom_val
        )
        for line in size_notes(cfg.data, cfg.n_train, cfg.n_val, train_ds, val_ds):
            log(f"[fusionbench] note: {line}")
        rows = []
        for v in vals:
            c = dataclasses.replace(cfg, **{field: v}, **_TABLE2_METRICS)
            vdir = os.path.join(root, f"{param}-{v}")
            os.makedirs(vdir, exist_ok=True)
            res = run_model("fusioninn", c, train_ds, val_ds, vdir, dev, info, progress, log)
            s = res.scores[res.scores.region == "slice"]
            d = res.decomposition[res.decomposition.region == "slice"]
            rows.append(
                {
                    param: v,
                    COLUMNS[0]: s["Q_SSIM_x1"].mean(),
                    COLUMNS[1]: s["Q_SSIM_x2"].mean(),
                    COLUMNS[2]: d["SSIM_x1"].mean(),
                    COLUMNS[3]: d["SSIM_x2"].mean(),
                }
            )
        table = pd.DataFrame(rows).set_index(param)
        n = len(val_ds)
        shrinks = cfg.shrinks(["fusioninn"])  # as a run's caption says it: Table 2 is read beside the paper's
        held = ", ".join(
            f"{p} {getattr(cfg, f):g}" if t is not str else f"{p} {getattr(cfg, f)}"
            for p, (f, t) in PARAMS.items()
            if p != param
        )  # the row alone says one value
        caption = (
            f"FusionINN ablation over {param}, the others held at {held} (Table 2 layout; data {cfg.data}, "
            f"profile {cfg.profile}, {n} validation pair{'s' * (n != 1)})."
            + (f" Not the paper setting: {'; '.join(shrinks)}." if shrinks else "")
        )
        stem = os.path.join(root, f"ablation_{param}")
        write_text(f"{stem}.csv", table.to_csv(float_format="%.6f"))
        shown = table.rename(index=str)
        write_text(f"{stem}.md", render(shown, COLUMNS, "md", caption, index_label=param))
        write_text(f"{stem}.tex", render(shown, COLUMNS, "tex", caption, index_label=param))
        table.attrs["files"] = stem  # STEM.csv, .md, .tex: bench ablate prints the Markdown and says where
        return table
