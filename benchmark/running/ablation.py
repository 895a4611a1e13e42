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

import contextlib
import dataclasses
import glob
import json
import os
import shutil

import pandas as pd

from baselines.loading import model_folder
from benchmark.atomic import check_writable, folder_kind, folder_lock, write_json, write_text
from benchmark.config import RunConfig, check_config
from benchmark.data import load_data, size_notes
from benchmark.reporting.seeds import PER_RUN_FIELDS
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


def ablate(
    cfg: RunConfig, param: str, values: str, progress: bool = True, log=print, refresh: bool = True
) -> pd.DataFrame:
    """Train one FusionINN per value of ``param`` and return the Table 2 rows (index: the values).
    ``refresh``: rewrite the tables over seeds (:func:`ablate_seeds`) that list this folder's sweep."""
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
    root = os.path.join(cfg.out, _root_name(cfg))
    _refuse_other_folder(root)
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
            "image_seed": cfg.phantom_seed,
            # every setting, so that a table over seeds never mixes sweeps that differ in more than their seed
            "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in PER_RUN_FIELDS},
        }
        stem = os.path.join(root, f"ablation_{param}")
        table = write_ablation_tables(stem, record, results)
        write_json(f"{stem}.json", record)  # how bench table writes these tables again
    if refresh:
        _refresh_over_seeds(root, param, log)
    table.index = vals
    table.attrs["files"] = stem  # STEM.csv, .md, .tex: bench ablate prints the Markdown and says where
    return table


def _refuse_other_folder(root: str) -> None:
    """bench ablate writes its tables and a folder per value only into a new folder or its own: never
    among a run's files (its leaderboards would then disagree with the folder), an eval's or anyone's."""
    if folder_kind(root) not in ("new", "ablation"):
        raise ValueError(
            f"{root} holds files and is not a bench ablate folder (no ablation_<param>.json, no "
            "<param>-<value>/fusioninn/); give a new or empty folder with --out or --run-name"
        )


def _root_name(cfg: RunConfig) -> str:
    return cfg.run_name or f"ablate-{cfg.profile}-{'phantom' if cfg.data == 'phantom' else 'data'}"


def _caption(cfg: RunConfig, param: str, n: int) -> str:
    shrinks = cfg.shrinks(["fusioninn"])  # as a run's caption says it: Table 2 is read beside the paper's
    held = ", ".join(
        f"{p} {getattr(cfg, f):g}" if t is not str else f"{p} {getattr(cfg, f)}"
        for p, (f, t) in PARAMS.items()
        if p != param
    )  # the row alone says one value
    data = cfg.data + (f" (images of phantom_seed {cfg.phantom_seed})" if cfg.phantom_seed is not None else "")
    return (
        f"FusionINN ablation over {param}, the others held at {held} (Table 2 layout; data {data}, "
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


def _read_record(rec_path: str) -> dict:
    try:
        with open(rec_path, encoding="utf-8") as fh:
            record = json.load(fh)
        record["values"] = [str(v) for v in record["values"]]
        record["param"] = str(record["param"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{rec_path}: not bench ablate's record of a sweep ({type(e).__name__}: {e})") from None
    return record


def _sweep_results(root: str, record: dict, rec_path: str) -> dict:
    """``{value: (scores, decomposition)}`` of a sweep's values, read from their folders under ``root``."""
    results = {}
    for v in record["values"]:
        folder = model_folder(os.path.join(root, f"{record['param']}-{v}"), "fusioninn")
        files = [os.path.join(folder, f) for f in ("scores.csv", "decomposition.csv")]
        missing = [f for f in files if not os.path.exists(f)]
        if missing:
            raise FileNotFoundError(
                f"{missing[0]} not found: {record['param']} {v} of {rec_path} has no finished results; bench ablate "
                "with the same options trains what is missing"
            )
        results[v] = tuple(_read_results(f, cols) for f, cols in zip(files, _NEEDS))
    return results


def rebuild_ablation_tables(root: str, style: str | None = None) -> list[str]:
    """``bench table`` on an ablation folder: every sweep's tables again from its values' results
    (``ablation_<param>.json`` says which, with the caption and table style; ``style`` overrides it),
    or, in a folder of tables over seeds (:func:`ablate_seeds`), from each seed's folder.
    Every record and result is read before the first table is written: one bad file writes nothing.
    Returns the stems written."""
    if style is not None and style not in STYLES:
        raise ValueError(f"unknown table style {style!r}; expected one of {', '.join(STYLES)}")
    writes = []
    for rec_path in sorted(glob.glob(os.path.join(glob.escape(root), "ablation_*.json"))):
        record = _read_record(rec_path)
        stem = rec_path[: -len(".json")]
        if "runs" in record:  # a table over seeds
            runs = [os.path.join(root, r) for r in record["runs"]]
            writes.append((stem, *_over_seeds_of(record["param"], runs, style or record.get("style"), root)))
            continue
        results = _sweep_results(root, record, rec_path)
        writes.append((stem, {**record, "style": style or record.get("style", "stats")}, results))
    for stem, record, results in writes:
        if "runs" in record:
            _write_over_seeds(stem, record, results, write_record=False)  # --style is this call's, not the record's
        else:
            write_ablation_tables(stem, record, results)
    return [w[0] for w in writes]


# what may differ between the sweeps of one table over seeds: the seed, and the images it drew
_PER_SEED = ("seed",)
SEEDS_NOTE = (
    " Mean over {n} seeds ({seeds}) of each value's mean over the slices ± standard deviation over the seeds: the "
    "spread a rerun with another --seed gives ({what}); bold: best mean. Each seed's own table ({runs}) has the "
    "intervals and paired tests over the slices."
)


def _over_seeds_of(param: str, roots: list[str], style: str | None, out_dir: str) -> tuple[dict, pd.DataFrame]:
    """The table over the seeds of ``param``'s sweep in each of ``roots`` (one folder per seed) and
    its record, for the folder ``out_dir`` (which names the seeds' folders from where it lies);
    nothing written. The sweeps must differ in their seed alone."""
    from benchmark.reporting.seeds import SPREAD, check_same_setting, over_seeds

    if len(roots) < 2:
        raise ValueError(f"a table over seeds needs at least two seeds' sweeps; got {len(roots)}")
    records, frames = [], []
    for root in roots:
        rec_path = os.path.join(root, f"ablation_{param}.json")
        if not os.path.isfile(rec_path):
            raise FileNotFoundError(f"{rec_path} not found: that seed's sweep of {param} is not finished")
        record = _read_record(rec_path)
        if records:
            why = "a table over seeds compares sweeps of one setting"
            check_same_setting(
                records[0].get("config") or {}, record.get("config") or {}, PER_RUN_FIELDS, roots[0], root, why
            )  # names the setting (epochs = 2 there, 6 here); the record's caption would only differ as a whole
            check_same_setting(records[0], record, (*_PER_SEED, "config"), roots[0], root, why)
        records.append(record)
        per_value = _sweep_results(root, record, rec_path)
        frames.append(
            pd.concat([_per_image(s, d).assign(model=v) for v, (s, d) in per_value.items()]).assign(region="slice")
        )
    seeds = [int(r.get("seed", 0)) for r in records]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"the sweeps {', '.join(roots)} share seeds ({seeds}); expected one sweep per seed")
    first = records[0]
    table = over_seeds(seeds, frames, "slice", lambda part: COLUMNS).loc[first["values"]]
    what = SPREAD["phantom" if first.get("image_seed") is None else "fixed"].format(image_seed=first.get("image_seed"))
    runs = [os.path.relpath(r, out_dir) for r in roots]
    record = {
        "param": param,
        "values": first["values"],
        "seeds": seeds,
        "runs": runs,
        "caption": first["caption"],
        "style": style or first.get("style", "stats"),
        "image_seed": first.get("image_seed"),
        "note": SEEDS_NOTE.format(
            n=len(seeds),
            seeds=", ".join(map(str, seeds)),
            what=what,
            runs=", ".join(runs),
        ),
    }
    return record, table


def _write_over_seeds(stem: str, record: dict, table: pd.DataFrame, write_record: bool = True) -> None:
    """``STEM.{csv,md,tex}`` of a table over seeds, and (``write_record``) its ``STEM.json``."""
    style = record["style"]
    if style not in STYLES:
        raise ValueError(f"unknown table style {style!r}; expected one of {', '.join(STYLES)}")
    shown = "seeds" if style == "stats" else "paper"  # paper: the plain layout, no tie marks
    csv = table.rename(columns=lambda c: "n_seeds" if c == "n" else c[:-2] + "_n_seeds" if c.endswith("_n") else c)
    caption = record["caption"] + record["note"]
    write_text(f"{stem}.csv", table_csv(csv, COLUMNS, record["param"]))
    for fmt in ("md", "tex"):
        text = render(
            table, COLUMNS, fmt, caption, with_std=True, style=shown, index_label=record["param"], rows="value"
        )
        write_text(f"{stem}.{fmt}", text)
    if write_record:
        write_json(f"{stem}.json", {k: v for k, v in record.items() if k != "note"})


def ablate_seeds(cfg: RunConfig, param: str, values: str, seeds, progress: bool = True, log=print) -> pd.DataFrame:
    """``bench ablate --seeds 0,1,2``: the sweep once per seed, each an ordinary ablation folder
    ``<name>-seed<N>`` (reused, resumed and tabled as any), then its table over the seeds in
    ``<name>-seeds/ablation_<param>.*``: mean ± sd over the seeds of each value's mean, and a paired
    t-test over the seeds against each column's best (≈), as ``bench run --seeds`` tables fusers.
    Returns that table (``attrs["files"]``: its stem)."""
    from benchmark.running.seeds import parse_seeds

    seeds = parse_seeds(seeds)
    base = _root_name(cfg)
    _refuse_other_folder(os.path.join(cfg.out, f"{base}-seeds"))  # before the first seed trains
    roots = []
    for i, seed in enumerate(seeds):
        log(f"[fusionbench] seed {seed} ({i + 1} of {len(seeds)})")
        c = dataclasses.replace(cfg, seed=seed, run_name=f"{base}-seed{seed}")
        ablate(c, param, values, progress, log, refresh=False)  # the table over these seeds is written below
        roots.append(os.path.join(cfg.out, c.run_name))
    out_dir = os.path.join(cfg.out, f"{base}-seeds")
    _refuse_other_folder(out_dir)
    check_writable(out_dir)
    with folder_lock(out_dir, "wait for that command to finish, or give this one another --run-name"):
        record, table = _over_seeds_of(param, roots, cfg.table_style, out_dir)
        stem = os.path.join(out_dir, f"ablation_{param}")
        _write_over_seeds(stem, record, table)
    table.index = [PARAMS[param][1](v) for v in table.index]  # the values as bench ablate's own table has them
    table.attrs["files"] = stem
    return table


def _refresh_over_seeds(root: str, param: str, log) -> None:
    """A seed's sweep made again alone (``bench ablate --seed 1 --run-name X-seed1``): the tables over
    seeds beside it that list it are written again, or removed where the sweeps now differ in more
    than their seed; never an error of the finished sweep."""
    here = os.path.abspath(root)
    parent = os.path.dirname(here)
    for rec_path in sorted(glob.glob(os.path.join(glob.escape(parent), "*", f"ablation_{param}.json"))):
        folder = os.path.dirname(rec_path)
        try:
            record = _read_record(rec_path)
            runs = [os.path.abspath(os.path.join(folder, r)) for r in record.get("runs", [])]
            if here not in runs:
                continue
            with folder_lock(folder, "busy"):
                try:
                    new, table = _over_seeds_of(param, runs, record.get("style"), folder)
                except ValueError as e:  # the sweeps differ now: a table over them would mix settings
                    for x in ("csv", "md", "tex", "json"):
                        with contextlib.suppress(FileNotFoundError):
                            os.remove(f"{rec_path[: -len('.json')]}.{x}")
                    log(f"[fusionbench] note: removed the table over seeds {rec_path[: -len('.json')]}.*: {e}")
                    continue
                _write_over_seeds(rec_path[: -len(".json")], new, table)
            log(f"[fusionbench] rewrote the table over seeds {rec_path[: -len('.json')]}.* (it lists {root})")
        except Exception as e:  # noqa: BLE001 - the sweep is done; its tables over seeds are a courtesy
            log(f"[fusionbench] note: the table over seeds in {folder} was not rewritten ({type(e).__name__}: {e})")
