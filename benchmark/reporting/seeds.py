"""Leaderboards over training seeds: several runs of one config that differ only in ``--seed``.

A run's own leaderboard says whether two fusers differ on *these images* with *these weights*
(bootstrap intervals and paired tests over images). Whether the difference survives training the
fusers again with another seed is a second question, which only more runs answer. Here each run
contributes its mean over images per model and metric; the table gives, per model, the mean of
those means over the seeds +- their standard deviation (the spread a rerun with another seed
gives: its training draws, and on the phantom its images too, as ``--seed`` draws them, unless
``phantom_seed`` holds them fixed), with the
best mean in bold, and marks with ≈ the models not significantly different from the best: a
paired t-test over the seeds (within a seed every model is scored on the same images, so the
pairing takes out what the seed changed in the images, which the standard deviation includes),
Holm-corrected across models. A t-test, not a rank test, because with three seeds no two-sided
Wilcoxon p falls under 0.25. The CSV also has each seed's mean (``<metric>_seed<N>``) and the
adjusted p-values (``<metric>_p``, ``_same``).
"""

from __future__ import annotations

import contextlib
import os
import shutil

import numpy as np
import pandas as pd

from benchmark.atomic import folder_config, folder_lock, write_json, write_text
from benchmark.reporting.figures import seed_lines
from benchmark.reporting.report import DECOMPOSITION_COLUMNS, ONE_TABLE_COLUMNS, TUMOUR, _remove_tables
from benchmark.reporting.stats import paired_pvalues
from benchmark.reporting.tables import (
    STYLES,
    higher_is_better,
    metric_columns,
    order_models,
    ranked,
    read_scores,
    render,
    table_csv,
)
from metrics.registry import ALL_LINEAGES, lineage_columns, source_of

# config fields that may differ between the runs of one seed table: the seed itself, and where
# and under which name each run was written, or whether it was trained again
PER_RUN_FIELDS = ("seed", "run_name", "out", "retrain")
NOTE = (
    " Mean over {n} seeds ({seeds}) of each run's mean over images ± standard deviation over the seeds: the "
    "spread a rerun with another --seed gives ({what}); bold: best "
    "mean. Each run's own leaderboard ({runs}) has the intervals and paired tests over images."
)
# every table a folder over seeds may hold (the writer's stems; the refresh removes them all at once)
TABLE_STEMS = [
    *(f"leaderboard{r}{x}" for r in ("", "_tumour") for x in ("", *(f"_{y}" for y in ALL_LINEAGES))),
    "decomposition_leaderboard",
    "decomposition_leaderboard_tumour",
]
SPREAD = {
    "phantom": "its training draws; on the phantom, its images too",
    "fixed": "its training draws; the phantom's images are phantom_seed {image_seed}'s in every run",
}


def _run(run_dir: str) -> tuple[dict, pd.DataFrame]:
    config = folder_config(run_dir)
    path = os.path.join(run_dir, "scores.csv")
    if not isinstance(config.get("config"), dict) or not os.path.isfile(path):
        raise ValueError(f"{run_dir}: not a finished bench run folder (expected its config.json and scores.csv)")
    return config, read_scores(path)


def check_same_setting(first: dict, other: dict, per_run, first_dir: str, other_dir: str, why: str) -> None:
    """One error line where ``other`` (the settings of ``other_dir``) differs from ``first`` in a field
    outside ``per_run``: a table over seeds compares one setting, its seeds alone differing."""
    differ = sorted(k for k in set(first) | set(other) if k not in per_run and first.get(k) != other.get(k))
    if differ:
        k = differ[0]
        more = f" (and {len(differ) - 1} more)" if len(differ) > 1 else ""
        raise ValueError(
            f"{other_dir} differs from {first_dir} in more than its seed: {k} = {other.get(k)!r} there, "
            f"{first.get(k)!r} here{more}; {why}"
        )


def seed_tables(run_dirs: list[str]) -> tuple[dict, list[int], dict]:
    """``{"slice": table, "tumour": table}`` over the runs (each table indexed by model, with
    ``<metric>``, ``<metric>_std``, ``<metric>_seed<N>``, ``n`` seeds and, where a model lacks a
    finite mean in some seed, ``<metric>_n``; ``<metric>_p`` and ``_same`` of :func:`_seed_tests`),
    the seeds, and the first run's ``config.json`` (its caption and ``config``)."""
    if len(run_dirs) < 2:
        raise ValueError(f"a seed table needs at least two runs; got {len(run_dirs)}")
    runs = [_run(d) for d in run_dirs]
    first = runs[0][0]["config"]
    seeds = [int(c["config"].get("seed", 0)) for c, _ in runs]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"the runs {', '.join(run_dirs)} share seeds ({seeds}); expected one run per seed")
    for d, (config, _) in zip(run_dirs[1:], runs[1:]):
        why = "a seed table compares runs of one config"
        check_same_setting(first, config["config"], PER_RUN_FIELDS, run_dirs[0], d, why)
    tables = {}
    for region in ("slice", "tumour"):
        table = over_seeds(seeds, [scores for _, scores in runs], region, metric_columns)
        if table is not None:
            tables[region] = table
    decomposed = [_decomposition(d) for d in run_dirs]  # FusionINN's: SSIM and PSNR of each decomposed source
    if all(d is not None for d in decomposed):
        for region, key in (("slice", "decomposition"), ("tumour", "decomposition_tumour")):
            table = over_seeds(seeds, decomposed, region, lambda part: DECOMPOSITION_COLUMNS)
            if table is not None:
                tables[key] = table
    return tables, seeds, runs[0][0]


def _decomposition(run_dir: str) -> pd.DataFrame | None:
    path = os.path.join(run_dir, "decomposition.csv")
    return read_scores(path) if os.path.isfile(path) else None


def over_seeds(seeds: list[int], frames: list[pd.DataFrame], region: str, columns) -> pd.DataFrame | None:
    """One table over the seeds from each run's rows of ``region`` (``columns(part)``: the metrics);
    None where some run lacks the region (no labels): it is left out, not shown over fewer seeds."""
    means = []
    for seed, scores in zip(seeds, frames):
        part = scores[scores.region == region] if "region" in scores else scores
        if part.empty:
            return None
        cols = columns(part)
        finite = part[cols].astype(float).where(np.isfinite(part[cols].astype(float)))
        means.append(finite.groupby(part["model"], sort=False).mean().assign(seed=seed))
    every = pd.concat(means)
    cols = [c for c in every.columns if c != "seed"]
    g = every.groupby(level=0, sort=False)[cols]
    table = g.mean()
    std, count = g.std(ddof=1), g.count()
    for c in cols:
        table[f"{c}_std"] = std[c]
    table["n"] = len(seeds)
    for c in cols:  # a model without a finite mean in some seed (it failed there): over how many it is
        if (count[c] < len(seeds)).any():
            table[f"{c}_n"] = count[c]
    for seed in seeds:
        mine = every[every.seed == seed]
        for c in cols:
            table[f"{c}_seed{seed}"] = mine[c].reindex(table.index)
    table = pd.concat([table, _seed_tests(every, table, cols)], axis=1)
    return table.loc[order_models(table.index)]


def _seed_tests(every: pd.DataFrame, table: pd.DataFrame, cols: list[str], alpha: float = 0.05) -> pd.DataFrame:
    """``<metric>_p`` and ``<metric>_same`` of each ranked metric: against the model with the best
    mean over the seeds, a paired t-test over the seeds (each seed's runs scored the same images,
    so the pair removes what the seed changed in the images), Holm-corrected across models;
    ``_same`` where p >= ``alpha`` (and for the best)."""
    out = {}
    wide_all = every.rename_axis("model").reset_index()
    for c in cols:
        if not ranked(c):
            continue
        if not table[c].notna().any():  # no model has a value (an original that errors on every image): no marks
            out[f"{c}_p"], out[f"{c}_same"] = pd.Series(np.nan, index=table.index), pd.Series(False, index=table.index)
            continue
        best = table[c].idxmax() if higher_is_better(c) else table[c].idxmin()
        wide = wide_all.pivot_table(index="seed", columns="model", values=c, aggfunc="first", dropna=False)
        p = paired_pvalues(wide.reindex(columns=table.index), best, test="t")
        out[f"{c}_p"] = pd.Series({m: np.nan if m == best else p.get(m, np.nan) for m in table.index})
        out[f"{c}_same"] = pd.Series({m: bool(m == best or p.get(m, 0.0) >= alpha) for m in table.index})
    return pd.DataFrame(out, index=table.index)


def write_seed_tables(run_dirs: list[str], out_dir: str, style: str | None = None) -> dict:
    """Write ``leaderboard.{csv,md,tex}`` (and ``leaderboard_tumour.*``) over the seeds of
    ``run_dirs`` into ``out_dir``, ``figures/seeds.png`` (and ``seeds_tumour.png``: each seed's
    means as one line across the models); where every run decomposed (FusionINN),
    ``decomposition_leaderboard.*`` (and ``_tumour``) and their figures; and a ``config.json``
    naming the runs (``bench table OUT_DIR`` reads them again). Returns the tables."""
    tables, seeds, first = seed_tables(run_dirs)
    caption, config = str(first.get("caption", "")), first["config"]
    style = style or config.get("table_style", "stats")  # as the runs' own tables, unless told
    if style not in STYLES:
        raise ValueError(f"unknown table style {style!r}; expected 'stats' or 'paper'")
    style = "seeds" if style == "stats" else "paper"  # paper: the plain layout, no tie marks
    image_seed = config.get("phantom_seed")
    what = SPREAD["phantom" if image_seed is None else "fixed"].format(image_seed=image_seed)
    runs = [os.path.relpath(d, out_dir) for d in run_dirs]
    note = NOTE.format(n=len(seeds), seeds=", ".join(map(str, seeds)), runs=", ".join(runs), what=what)
    caption = caption.split(" Mean [95%")[0].rstrip() + note  # the run's own statistics note is not this table's
    for region, table in ((r, tables[r]) for r in ("slice", "tumour") if r in tables):
        stem = "leaderboard" if region == "slice" else f"leaderboard_{region}"
        cols = [c for c in table.columns if f"{c}_std" in table.columns]
        cap = caption if region == "slice" else caption.replace("Fusion metrics", f"Fusion metrics {TUMOUR}")
        if any(f"{c}_n" in table.columns for c in cols):
            cap += " (n=k): over the k seeds whose run has a finite mean for that model (failed or NaN in others)."
        _write(out_dir, stem, table, cols, cap, style)
        groups = lineage_columns(cols)  # as a run's tables: past eight columns of several lineages, one each too
        groups = groups if len(groups) > 1 and "" not in groups and len(cols) > ONE_TABLE_COLUMNS else {}
        for lineage, mine in groups.items():
            own = {c: c.split(":", 1)[-1] for c in mine}
            owner = {x: max((c for c in cols if x == c or x.startswith(f"{c}_")), key=len, default=None) for x in table}
            sub = table[[x for x in table if owner[x] in own or x == "n"]]
            sub = sub.rename(columns={x: own[owner[x]] + x[len(owner[x]) :] for x in sub if x != "n"})
            said = f" The {lineage} lineage's metrics, each as its original computes it ({source_of(lineage)})."
            _write(out_dir, f"{stem}_{lineage}", sub, list(own.values()), cap + said, style)
        _remove_tables(out_dir, [f"{stem}_{x}" for x in ALL_LINEAGES if x not in groups])  # of an earlier call
        figure = os.path.join(out_dir, "figures", "seeds.png" if region == "slice" else f"seeds_{region}.png")
        seed_lines(figure, table, cols, seeds, lower=[c for c in cols if not higher_is_better(c)])
    if "tumour" not in tables:  # of an earlier call, when every run had tumour rows
        _remove_tables(out_dir, ["leaderboard_tumour", *(f"leaderboard_tumour_{x}" for x in ALL_LINEAGES)])
        _remove_figure(out_dir, "seeds_tumour.png")
    for key in ("decomposition", "decomposition_tumour"):  # FusionINN's, where every run decomposed
        stem, figure = key.replace("decomposition", "decomposition_leaderboard"), f"seeds_{key}.png"
        if key not in tables:  # of an earlier call
            _remove_tables(out_dir, [stem])
            _remove_figure(out_dir, figure)
            continue
        where = "" if key == "decomposition" else f" {TUMOUR}"
        cap = (
            f"Decomposition{where}: SSIM and PSNR of each decomposed source against the true one (mean over images "
            f"and {config.get('decomposition_draws', '?')} latent draws). {caption.lstrip()}"
        )
        _write(out_dir, stem, tables[key], DECOMPOSITION_COLUMNS, cap, style)
        seed_lines(os.path.join(out_dir, "figures", figure), tables[key], DECOMPOSITION_COLUMNS, seeds)
    write_json(os.path.join(out_dir, "config.json"), {"seeds": seeds, "runs": runs, "caption": caption})
    return tables


def _remove_figure(out_dir: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(out_dir, "figures", name))


def _write(out_dir: str, stem: str, table: pd.DataFrame, cols: list[str], caption: str, style: str) -> None:
    """``<stem>.{csv,md,tex}``; the CSV names its counts of seeds as such (``n_seeds``,
    ``<metric>_n_seeds``), not ``n`` as a run's table counts images."""
    csv = table.rename(columns=lambda c: "n_seeds" if c == "n" else c[:-2] + "_n_seeds" if c.endswith("_n") else c)
    write_text(os.path.join(out_dir, f"{stem}.csv"), table_csv(csv, cols))
    for fmt in ("md", "tex"):
        text = render(table, cols, fmt, caption, with_std=True, style=style)
        write_text(os.path.join(out_dir, f"{stem}.{fmt}"), text)


_DEFERRED = [0]  # inside deferred(): the caller writes the tables over seeds itself


@contextlib.contextmanager
def deferred():
    """Inside, a finished run leaves the tables over seeds that list it alone (``run_seeds`` writes
    its own after its last run, from all of them)."""
    _DEFERRED[0] += 1
    try:
        yield
    finally:
        _DEFERRED[0] -= 1


def refresh_tables_over_seeds(run_dir: str, log=print) -> None:
    """After ``run_dir`` was run again on its own (``bench run --seed 1 --run-name <run>-seed1``), the
    tables over seeds beside it that list it showed its earlier scores. They are written again from
    their runs; where they cannot be (the runs now differ in more than their seed, or this one failed
    and has no scores), they are removed, with a line saying why, so that no table over seeds is stale.
    Never raises: the run itself is done (or its own error is the one to show)."""
    if _DEFERRED[0]:
        return
    parent, mine = os.path.dirname(os.path.abspath(run_dir)), os.path.abspath(run_dir)
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return
    for name in names:
        folder = os.path.join(parent, name)
        runs = seed_runs(folder) if os.path.isdir(folder) else None
        if not runs or mine not in {os.path.abspath(r) for r in runs}:
            continue
        try:
            with folder_lock(folder, "it rewrites them itself"):
                try:
                    write_seed_tables(runs, folder)
                except ValueError as e:
                    _remove_tables(folder, TABLE_STEMS)
                    shutil.rmtree(os.path.join(folder, "figures"), ignore_errors=True)
                    log(
                        f"[fusionbench] note: removed the tables over seeds in {folder}, which list {run_dir}: {e}; "
                        f"bench table {folder} writes them again once its runs differ in their seed alone"
                    )
                    continue
            log(f"[fusionbench] rewrote the tables over seeds in {folder}, which list {run_dir}")
        except Exception as e:  # another bench holds the folder, it cannot be written, or a bug: said, not raised
            log(
                f"[fusionbench] note: the tables over seeds in {folder} list {run_dir} and were not rewritten "
                f"({type(e).__name__}: {e}); bench table {folder} writes them again"
            )


def seed_runs(folder: str) -> list[str] | None:
    """The run folders of a seed table's folder (its ``config.json``), or None if it is not one."""
    config = folder_config(folder)
    runs = config.get("runs") if "seeds" in config else None
    if not isinstance(runs, list) or not all(isinstance(r, str) for r in runs):
        return None
    return [os.path.normpath(os.path.join(folder, r)) for r in runs]
