"""``bench ablate``: FusionINN's Table 2 sweeps (alpha, lambda, k, latent prior).

One FusionINN is trained per value through the runner's stages (so finished values are reused on
rerun); the table reports, as the paper's Table 2 does, the mean SSIM of the fused image against
each source and of each decomposed source against the true one (docs/reference.md §3), taken
from the results the runner returns: nothing is fused twice or read back from disk. As the
leaderboards do, the table says whether a difference is real (``--style stats``, the default):
each mean's bootstrap CI over the validation slices, and a paired Wilcoxon test of every value
against its column's best over the same slices, Holm-corrected. ``ablation_<param>.json`` records
the sweep, so ``bench table`` writes its tables again (another style) from the values' folders.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil

import pandas as pd

from baselines.loading import model_folder
from benchmark.atomic import check_writable, folder_lock, write_json, write_text
from benchmark.config import RunConfig, check_config
from benchmark.data import load_data, size_notes
from benchmark.reporting.stats import add_statistics, image_key
from benchmark.reporting.tables import STYLES, leaderboard, read_scores, render, table_csv
from benchmark.running.runner import finished_here, pick_device, run_model

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
        results = {}
        for v in vals:
            c = dataclasses.replace(cfg, **{field: v}, **_TABLE2_METRICS)
            vdir = os.path.join(root, f"{param}-{v}")
            os.makedirs(vdir, exist_ok=True)
            _reuse_twin(root, param, v, c, info, vdir, log)
            res = run_model("fusioninn", c, train_ds, val_ds, vdir, dev, info, progress, log)
            results[str(v)] = (res.scores, res.decomposition)
        record = {
            "param": param,
            "values": list(results),
            "caption": _caption(cfg, param, len(val_ds)),
            "style": cfg.table_style,
            "n_boot": cfg.n_boot,
            "seed": cfg.seed,
        }
        stem = os.path.join(root, f"ablation_{param}")
        table = write_ablation_tables(stem, record, results)
        write_json(f"{stem}.json", record)  # how bench table writes these tables again
        table.index = vals
        table.attrs["files"] = stem  # STEM.csv, .md, .tex: bench ablate prints the Markdown and says where
        return table


def _caption(cfg: RunConfig, param: str, n: int) -> str:
    shrinks = cfg.shrinks(["fusioninn"])  # as a run's caption says it: Table 2 is read beside the paper's
    held = ", ".join(
        f"{p} {getattr(cfg, f):g}" if t is not str else f"{p} {getattr(cfg, f)}"
        for p, (f, t) in PARAMS.items()
        if p != param
    )  # the row alone says one value
    return (
        f"FusionINN ablation over {param}, the others held at {held} (Table 2 layout; data {cfg.data}, "
        f"profile {cfg.profile}, {n} validation pair{'s' * (n != 1)})."
        + (f" Not the paper setting: {'; '.join(shrinks)}." if shrinks else "")
    )


def _reuse_twin(root: str, param: str, v, cfg: RunConfig, info: dict, vdir: str, log) -> None:
    """The held setting is one FusionINN in every sweep (alpha 0.5 of the alpha sweep is k 3 of the
    k sweep): where another sweep of this folder has trained it, for exactly this configuration and
    data, its results are copied here instead of training it again (``--paper``: 12 trainings, not 15)."""
    target = model_folder(vdir, "fusioninn")
    if os.path.exists(os.path.join(target, "model.json")):  # this value's own work, done or resumable
        return
    for p, (f, _) in PARAMS.items():
        twin = model_folder(os.path.join(root, f"{p}-{getattr(cfg, f)}"), "fusioninn")
        if p == param or not finished_here("fusioninn", cfg, info, twin):
            continue
        log(f"[fusionbench] {param} {v} is the FusionINN that {p} {getattr(cfg, f)} trained: copying {twin}")
        tmp = f"{target}.copying"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(twin, tmp)
        shutil.rmtree(target, ignore_errors=True)  # at most an empty folder: no model.json, no work
        os.replace(tmp, target)
        return


def _per_image(scores: pd.DataFrame, decomposition: pd.DataFrame) -> pd.DataFrame:
    """One row per validation slice: Table 2's four SSIMs (the whole slice's, not the tumour box's)."""
    s = scores[scores.region == "slice"].set_index(image_key(scores))[["Q_SSIM_x1", "Q_SSIM_x2"]]
    d = decomposition[decomposition.region == "slice"].set_index(image_key(decomposition))[["SSIM_x1", "SSIM_x2"]]
    both = s.join(d, how="outer")
    both.columns = COLUMNS
    return both.rename_axis("index").reset_index()


def write_ablation_tables(stem: str, record: dict, results: dict) -> pd.DataFrame:
    """``STEM.{csv,md,tex}`` from each value's per-image results (``{value: (scores, decomposition)}``,
    the rows in that order): the mean of each column, and with ``record["style"] == "stats"`` its
    bootstrap CI over the slices and a paired Wilcoxon test of every value against the column's best
    over the same slices (Holm-corrected), ≈ where not shown to differ: the leaderboards' statistics."""
    style = record.get("style", "stats")
    if style not in STYLES:
        raise ValueError(f"unknown table style {style!r}; expected one of {', '.join(STYLES)}")
    long = pd.concat([_per_image(s, d).assign(model=v) for v, (s, d) in results.items()], ignore_index=True)
    table = leaderboard(long, COLUMNS).loc[list(results)]
    if style == "stats":
        table = add_statistics(table, long, COLUMNS, lambda c: True, record.get("n_boot", 2000), record.get("seed", 0))
    param, caption = record["param"], record["caption"]
    write_text(f"{stem}.csv", table_csv(table, COLUMNS, param))
    for fmt in ("md", "tex"):
        write_text(f"{stem}.{fmt}", render(table, COLUMNS, fmt, caption, style=style, index_label=param, rows="value"))
    return table


_NEEDS = (("index", "region", "Q_SSIM_x1", "Q_SSIM_x2"), ("index", "region", "SSIM_x1", "SSIM_x2"))


def _read_results(path: str, needs) -> pd.DataFrame:
    """A value's ``scores.csv`` or ``decomposition.csv``, with the columns Table 2 reads, or one error line."""
    try:
        table = read_scores(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable table ({type(e).__name__}: {e})") from None
    missing = [c for c in needs if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: no {', '.join(missing)} column{'s' * (len(missing) > 1)}; expected the file bench ablate wrote "
            f"({', '.join(needs)}, ...)"
        )
    return table


def rebuild_ablation_tables(root: str, style: str | None = None) -> list[str]:
    """``bench table`` on an ablation folder: every sweep's tables again from its values' results
    (``ablation_<param>.json`` says which, with the caption and table style; ``style`` overrides it).
    Every record and result is read before the first table is written: one bad file writes nothing.
    Returns the stems written."""
    if style is not None and style not in STYLES:
        raise ValueError(f"unknown table style {style!r}; expected one of {', '.join(STYLES)}")
    sweeps = []
    for rec_path in sorted(glob.glob(os.path.join(glob.escape(root), "ablation_*.json"))):
        try:
            with open(rec_path, encoding="utf-8") as fh:
                record = json.load(fh)
            param, values = record["param"], list(record["values"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{rec_path}: not bench ablate's record of a sweep ({type(e).__name__}: {e})") from None
        results = {}
        for v in values:
            folder = model_folder(os.path.join(root, f"{param}-{v}"), "fusioninn")
            files = [os.path.join(folder, f) for f in ("scores.csv", "decomposition.csv")]
            missing = [f for f in files if not os.path.exists(f)]
            if missing:
                raise FileNotFoundError(
                    f"{missing[0]} not found: {param} {v} of {rec_path} has no finished results; bench ablate "
                    "with the same options trains what is missing"
                )
            results[str(v)] = tuple(_read_results(f, cols) for f, cols in zip(files, _NEEDS))
        sweeps.append((rec_path[: -len(".json")], {**record, "style": style or record.get("style", "stats")}, results))
    for stem, record, results in sweeps:
        write_ablation_tables(stem, record, results)
    return [stem for stem, _, _ in sweeps]
