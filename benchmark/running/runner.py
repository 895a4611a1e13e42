"""``bench run`` in stages that hand objects to each other, not files.

    run(cfg)                                   -> RunResult (scores, leaderboards, path)
      for each model:
        prepare(name, ...)                     -> Prepared: built, loaded (--from) or trained
        evaluate_model(prepared, val_ds, ...)  -> ModelResult: slice and tumour score rows, samples,
                                                  FusionINN's decomposition rows
        persist_model(prepared, result)        -> the model's folder (written once, atomically)
      report(run_dir, cfg, results, ...)       -> leaderboards, figures (benchmark.reporting)

Layout of ``results/<run-name>/``: ``config.json`` (everything needed to rerun: config, seed,
package versions, device), ``scores.csv`` (one row per image, region and model, one column per
metric), ``leaderboard.{csv,tex,md}``, ``figures/`` (samples, training curves, distributions),
``run.json`` (timings, failures) and one folder per model (checkpoints, ``train.json``, per-model
scores). A rerun of the same command reuses finished models and checkpoints (``--retrain`` trains
again) and says what it reuses, so a killed run resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from baselines.ddfm.prior import DiffusionPrior, check_channels, load_prior
from baselines.loading import find_trained, load_weights, missing_plugin, model_folder
from baselines.loss import LossConfig
from baselines.registry import get_fuser, resolve_models
from benchmark import distributed as D
from benchmark.atomic import (
    atomic_path,
    check_writable,
    first_missing,
    folder_config,
    folder_kind,
    folder_lock,
    remove_temporaries,
    write_json,
    write_text,
)
from benchmark.config import RunConfig, check_config, for_model, parse_per_model
from benchmark.data import load_data, size_notes
from benchmark.data.regions import crop, region_groups, tumour_boxes
from benchmark.distributed import pick_device
from benchmark.provenance import (
    PROJECT,
    device_info,
    file_sha256,
    files_sha,
    folder_sha,
    metrics_code,
    package_versions,
    py_files,
    written_at,
)
from benchmark.reporting import report
from benchmark.reporting.report import read_history
from benchmark.reporting.seeds import refresh_tables_over_seeds
from benchmark.reporting.tables import cut_short, read_scores
from benchmark.running.decomposition import decomposition_rows
from benchmark.training.trainer import TrainConfig, summary, train
from metrics import score as score_metrics
from metrics._checks import check_images
from metrics.profiles import get_profile
from metrics.registry import resolve_metrics
from metrics.scoring import is_nan, min_image_size

metric_log = logging.getLogger("fusionbench.metrics")


class FuserOutputError(RuntimeError):
    pass


@dataclass
class Prepared:
    """A fuser ready to fuse: the module and what the run records about it."""

    name: str
    model: object
    folder: str
    info: dict
    history: list | None = None  # the learning curve of a trained fuser


@dataclass
class ModelResult:
    """What evaluating one fuser on the validation split gives."""

    info: dict
    scores: pd.DataFrame  # one row per image and region (slice, tumour), one column per metric
    decomposition: pd.DataFrame | None = None  # FusionINN: per-image decomposition SSIM / PSNR
    samples: np.ndarray | None = None  # (n_show, H, W) fused images for the figure
    decomposed: np.ndarray | None = None  # (n_show, 2, H, W) decomposed sources
    history: list | None = None  # the learning curve (train.json)


@dataclass
class RunResult:
    """What ``run`` returns: the run folder and its tables as DataFrames."""

    path: str
    scores: pd.DataFrame
    leaderboard: pd.DataFrame | None
    # every leaderboard written, by key: "slice" (= leaderboard), "tumour", "decomposition",
    # "decomposition_tumour", and with metrics of several lineages past eight columns "slice:<lineage>"
    # and "tumour:<lineage>" (= leaderboard_<lineage>.*, leaderboard_tumour_<lineage>.*)
    leaderboards: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)
    seconds: float = 0.0


def model_kwargs(entry, cfg: RunConfig) -> dict:
    """The factory's keyword arguments: the config fields its registry entry declares, plus any
    ``extra`` given for this model by name."""
    out = {kw: getattr(cfg, fld) for kw, fld in entry.config.items()}
    for model, kw in cfg.extra.items():  # its name in any case, as --models and per_model take it
        if model.lower() == entry.name.lower():
            out.update(kw)
    return out


def train_config(cfg: RunConfig, batch: int) -> TrainConfig:
    """The trainer's settings from a run config, at batch size ``batch``."""
    return TrainConfig(
        epochs=cfg.epochs,
        batch_size=batch,
        lr=cfg.lr,
        plateau_factor=cfg.plateau_factor,
        plateau_patience=cfg.plateau_patience,
        seed=cfg.seed,
        amp=cfg.amp,
        loss=LossConfig(cfg.loss_lambda, cfg.loss_w),
        reference_quirks=cfg.reference_quirks,
        num_workers=cfg.num_workers,
        crop=cfg.crop,
        flip=cfg.flip,
        crops_per_pair=cfg.crops_per_pair,
        schedule=cfg.schedule,
        warmup=cfg.warmup,
    )


def check_output(name: str, source: str, fused, x1: torch.Tensor) -> torch.Tensor:
    """Validate a fuser's output: a finite float (B, 1, H, W) tensor in [0, 1] like x1 (1e-4 slack, then clamped)."""
    who = f"model {name!r} ({source})"
    if not isinstance(fused, torch.Tensor):
        raise FuserOutputError(
            f"{who} returned {type(fused).__name__}; expected a torch.Tensor of shape {tuple(x1.shape)}"
        )
    if tuple(fused.shape) != tuple(x1.shape):
        raise FuserOutputError(f"{who} returned shape {tuple(fused.shape)}; expected {tuple(x1.shape)} like its inputs")
    try:
        check_images(f"{who} output", fused, tol=1e-4)
    except ValueError as e:
        raise FuserOutputError(str(e)) from None
    return fused.float().clamp(0, 1)


def _fingerprint(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _safe(name: str) -> str:
    return os.path.basename(model_folder("", name))


def default_run_name(cfg: RunConfig) -> str:
    first = cfg.data if os.path.isfile(cfg.data) else cfg.data.split(",")[0]  # a file may be named "a,b.h5"
    data = "phantom" if cfg.data == "phantom" else _safe(os.path.splitext(os.path.basename(first))[0])
    if cfg.from_run:  # never the folder of a training run: its checkpoints must not be touched
        return f"{data}-from-{_safe(os.path.basename(os.path.normpath(cfg.from_run)))}"
    return f"{cfg.profile}-{data}"


def caption_for(cfg: RunConfig, n_val: int, dev: torch.device, models=None) -> str:
    data = cfg.data + (f" (images of phantom_seed {cfg.phantom_seed})" if cfg.phantom_seed is not None else "")
    text = (
        f"Fusion metrics (mean over {n_val} validation pair{'s' * (n_val != 1)}, data {data}, "
        f"metric profile {cfg.metric_profile}, profile {cfg.profile}, {dev.type})."
    )
    if cfg.from_run:
        text += f" Fusers trained in {cfg.from_run} (not in this run)"
        try:
            with open(os.path.join(cfg.from_run, "config.json")) as fh:
                src = json.load(fh)
            text += f": profile {src['config']['profile']}, data {src['config']['data']}"
            if src.get("shrinks"):
                text += "; not the paper setting: " + "; ".join(src["shrinks"])
        except (OSError, KeyError, json.JSONDecodeError):
            pass
        return text + "."
    shr = cfg.shrinks(models)
    if shr:
        text += " Not the paper setting: " + "; ".join(shr) + "."
    return text


def _batch_size(entry, cfg: RunConfig) -> int:
    batch = cfg.batch_size or entry.batch_size
    return min(batch, cfg.max_batch) if cfg.max_batch else batch


def code_version(name: str) -> dict:
    """What a result depends on besides its config: the fusionbench version, a hash of the fuser's
    source (its module or package, the shared loss and blocks, the trainer) and of the metrics'
    source; a plugin is named by its distribution and version. Changed code retrains or rescores."""
    from importlib import metadata

    try:
        version = metadata.version("fusionbench")
    except metadata.PackageNotFoundError:
        version = "unknown"
    entry = get_fuser(name)
    out = {"fusionbench": version, "metrics": metrics_code()}
    if entry.source.startswith("plugin"):
        out["fuser"] = entry.source
        dist = entry.source.split(" ", 1)[-1]
        try:
            out["fuser"] += " " + metadata.version(dist)
        except (metadata.PackageNotFoundError, ValueError):
            pass
        return out
    mod = sys.modules.get(getattr(entry.factory, "__module__", ""), None)
    src = getattr(mod, "__file__", None)
    # a fuser in a package of its own (ddfm/, fusioninn/) depends on the whole package
    files = (
        [src]
        if src and os.path.dirname(src) == os.path.join(PROJECT, "baselines")
        else py_files(os.path.dirname(src or ""))
    )
    shared = ["baselines/loss.py", "baselines/blocks.py"] + [
        f"benchmark/training/{f}" for f in ("trainer.py", "patches.py")
    ]
    out["fuser"] = files_sha(files + [os.path.join(PROJECT, f) for f in shared])
    return out


# What a model's training depends on, each part fingerprinted apart in model.json, so that a rerun
# that trains again can say why ("unet: its code changed since ..."); the key -> how a log names it.
_TRAINING_PARTS = {
    "code": "its code (or fusionbench's version)",
    "kwargs": "its settings",
    "train": "the training settings",
    "prior": "DDFM's prior settings",
    "data": "the data",
}


def _fingerprints_of(name: str, cfg: RunConfig, kwargs: dict, data_info: dict, source) -> tuple[str, str, dict]:
    """(everything a model's results depend on, what its training alone depends on, that one's
    parts): a change in the second trains again; a change in the first only (the metrics, their
    settings or code, the decomposition draws) scores the trained weights again."""
    entry = get_fuser(name)
    trained = (
        {"from": os.path.abspath(cfg.from_run), "weights": file_sha256(source.weights) if source.weights else None}
        if source is not None
        else dataclasses.asdict(train_config(cfg, _batch_size(entry, cfg)))
    )
    prior = (
        {"epochs": cfg.ddfm_prior_epochs, "channels": cfg.ddfm_prior_channels}
        if "prior_path" in kwargs and not kwargs["prior_path"]
        else None
    )
    if kwargs.get("prior_path") and os.path.isdir(kwargs["prior_path"]):  # --ddfm-prior: its weights, not its name
        prior = {"files": folder_sha(kwargs["prior_path"])}
    code = code_version(name)
    training = {"name": name, "kwargs": kwargs, "train": trained, "prior": prior, "data": data_info}
    whole = {
        **training,
        "metrics": [cfg.metric_profile, cfg.metrics, cfg.quantize] + ([cfg.lineage] if cfg.lineage else []),
        "code": code,
        "draws": cfg.decomposition_draws,
    }
    if cfg.save_fused:  # the images are written while scoring: asking for them scores again, without training
        whole["save_fused"] = True
    training["code"] = {k: v for k, v in code.items() if k != "metrics"}
    parts = {k: _fingerprint(training[k]) for k in _TRAINING_PARTS}
    return _fingerprint(whole), _fingerprint(training), parts


def train_ddfm_prior(
    cfg: RunConfig, train_ds, val_ds, folder: str, dev, progress: bool = True, log=print
) -> DiffusionPrior:
    """Train DDFM's diffusion prior with the one trainer (or reuse it), saved as a diffusers folder."""
    pdir = os.path.join(folder, "prior")
    unet_dir = os.path.join(pdir, "unet")
    if os.path.exists(os.path.join(unet_dir, "config.json")) and os.path.exists(os.path.join(pdir, "train.json")):
        trained = written_at(os.path.join(pdir, "train.json"))
        log(f"[fusionbench] reusing the DDFM prior in {unet_dir} (trained {trained})")
        return load_prior(unet_dir).to(dev)
    torch.manual_seed(cfg.seed)
    prior = DiffusionPrior(channels=check_channels(cfg.ddfm_prior_channels))
    tcfg = dataclasses.replace(
        train_config(cfg, min(16, cfg.max_batch or 16)),
        epochs=cfg.ddfm_prior_epochs,
        lr=1e-3 if cfg.profile != "paper" else 3e-4,
        schedule="plateau",
        warmup=0,
    )
    state = train(prior, train_ds, val_ds, tcfg, pdir, dev, progress=progress, name="ddfm prior", log=log)
    log(summary("ddfm prior", state["history"]))
    if D.is_main():  # rank 0 alone writes in a multi-process run
        prior.unet.save_pretrained(unet_dir)
    D.barrier()
    return prior.to(dev)


def prepare(
    name: str,
    cfg: RunConfig,
    train_ds,
    val_ds,
    folder: str,
    dev: torch.device,
    fingerprint: str,
    progress: bool = True,
    log=print,
) -> Prepared:
    """Build fuser ``name`` and make it ready to fuse: load its weights (``--from``), reuse its
    finished checkpoint, or train it with the one trainer (DDFM: train its prior)."""
    entry = get_fuser(name)
    source = find_trained(cfg.from_run, name) if cfg.from_run else None
    kwargs = source.kwargs if source is not None else model_kwargs(entry, cfg)
    torch.manual_seed(cfg.seed)
    model = entry.build(**kwargs)
    info = {"name": name, "source": entry.source, "kind": entry.kind, "kwargs": kwargs, "fingerprint": fingerprint}
    t0, history = time.perf_counter(), None
    if isinstance(model, torch.nn.Module):
        info["params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        model.to(dev)
    if getattr(model, "prior", False) is None:  # DDFM without a given prior: train one here
        model.prior = train_ddfm_prior(cfg, train_ds, val_ds, folder, dev, progress, log)
    if source is not None and source.weights is not None:
        log(f"[fusionbench] {name}: weights from {source.weights} (not trained in this run)")
        load_weights(model, source.weights, dev)
        info["from"], info["weights_sha256"] = source.weights, file_sha256(source.weights)
    elif entry.trainable:
        best, last = os.path.join(folder, "best.pt"), os.path.join(folder, "last.pt")
        batch = _batch_size(entry, cfg)
        reused = False
        if os.path.exists(os.path.join(folder, "train.json")) and os.path.exists(best):
            try:
                load_weights(model, best, dev)
                reused, history = True, read_history(folder)
                log(
                    f"[fusionbench] reusing the trained weights of {name} ({best}, trained {written_at(best)}); "
                    "--retrain to train again"
                )
            except ValueError as e:
                log(f"[fusionbench] {e}; training {name} again")
                for f in (best, last, os.path.join(folder, "train.json")):
                    if os.path.exists(f):
                        os.remove(f)
        if not reused:
            history = train(
                model,
                train_ds,
                val_ds,
                train_config(cfg, batch),
                folder,
                dev,
                resume=True,
                progress=progress,
                name=name,
                log=log,
            )["history"]
            log(summary(name, history))
        info.update(train_seconds=time.perf_counter() - t0, batch_size=batch, epochs=cfg.epochs)
    if isinstance(model, torch.nn.Module):
        model.eval()
    return Prepared(name, model, folder, info, history)


def evaluate_model(prep: Prepared, val_ds, cfg: RunConfig, dev: torch.device, progress: bool = True) -> ModelResult:
    """Fuse the validation split with a prepared fuser and score every image, over the whole slice
    and (with labels) inside the tumour box; FusionINN is also decomposed. Rows of every rank of a
    distributed run are gathered on rank 0."""
    entry, model, name = get_fuser(prep.name), prep.model, prep.name
    metric_names = resolve_metrics(cfg.metrics, cfg.lineage or None)

    nans: dict = {}  # (column, region, reason) -> validation indices: logged once per model below

    def scored(f, a, b, ids, region):
        got: list = []
        quiet, metric_log.disabled = metric_log.disabled, True  # metrics.score's own lines name batch positions
        try:
            s = score_metrics(
                f,
                a,
                b,
                metrics=metric_names,
                profile=cfg.metric_profile,
                quantize=cfg.quantize,
                workload=len(val_ds),
                notes=got,
            )
        finally:
            metric_log.disabled = quiet
        for col, pos, reason in got:
            nans.setdefault((col, region, reason), {}).update(dict.fromkeys(ids[j] for j in pos))
        return s

    rows, drows, samples, dsamples = [], [], [], []
    t_fuse, n_img = 0.0, 0
    loader = torch.utils.data.DataLoader(
        D.shard(val_ds), batch_size=cfg.score_batch, shuffle=False, num_workers=cfg.num_workers
    )
    with torch.no_grad():
        for b in tqdm(loader, desc=f"{name}: fuse+score", disable=not progress, leave=False):
            x1, x2 = b["x1"].to(dev), b["x2"].to(dev)
            idx = [int(i) for i in b["index"]]
            t1 = time.perf_counter()
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=cfg.amp and dev.type == "cuda"):
                out = model(x1, x2)
            fused = check_output(name, entry.source, out, x1)
            if cfg.save_fused:
                save_pngs(os.path.join(prep.folder, "fused"), idx, fused[:, 0])
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t_fuse += time.perf_counter() - t1
            n_img += x1.shape[0]
            s = scored(fused, x1, x2, idx, "slice")
            rows += [
                {"model": name, "index": i, "region": "slice", **{k: float(v[j]) for k, v in s.items()}}
                for j, i in enumerate(idx)
            ]
            boxes = tumour_boxes(b["labels"].to(dev)) if "labels" in b else None
            if boxes is not None:
                for pos in region_groups(boxes).values():
                    inside = (crop(fused, boxes, pos), crop(x1, boxes, pos), crop(x2, boxes, pos))
                    st = scored(*inside, [idx[j] for j in pos], "tumour")
                    rows += [
                        {"model": name, "index": idx[j], "region": "tumour", **{k: float(v[n]) for k, v in st.items()}}
                        for n, j in enumerate(pos)
                    ]
            show = [j for j, i in enumerate(idx) if i < cfg.n_show]
            samples += [(idx[j], fused[j, 0].cpu().numpy()) for j in show]
            if hasattr(model, "decompose"):
                drows += decomposition_rows(model, fused, x1, x2, idx, cfg, boxes, name)
                if show:
                    h1, h2 = model.decompose(fused[show], generator=torch.Generator(device=dev).manual_seed(cfg.seed))
                    dsamples += [
                        (idx[j], np.stack([h1[n, 0].float().cpu().numpy(), h2[n, 0].float().cpu().numpy()]))
                        for n, j in enumerate(show)
                    ]
    for (col, region, reason), ids in nans.items():
        metric_log.warning(
            "%s: %s %s for %d image(s) %s (%s): %s",
            name,
            col,
            is_nan(reason),
            len(ids),
            sorted(ids)[:10],
            region,
            reason,
        )
    info = {**prep.info, "fuse_seconds_per_image": t_fuse / max(n_img, 1)}
    rows, drows = D.gather_rows(rows), D.gather_rows(drows)
    samples = [v for _, v in sorted(D.gather_rows(samples), key=lambda t: t[0])]
    dsamples = [v for _, v in sorted(D.gather_rows(dsamples), key=lambda t: t[0])]
    scores = (
        pd.DataFrame(rows).sort_values(["region", "index"], kind="stable").reset_index(drop=True)
        if rows
        else pd.DataFrame()
    )
    dec = pd.DataFrame(drows).sort_values(["region", "index"], kind="stable").reset_index(drop=True) if drows else None
    return ModelResult(
        info,
        scores,
        dec,
        np.stack(samples).astype(np.float32) if samples else None,
        np.stack(dsamples).astype(np.float32) if dsamples else None,
        prep.history,
    )


def _save_npy(path: str, arr: np.ndarray) -> None:
    with atomic_path(path, ".npy") as tmp:
        np.save(tmp, arr)


_CHECKED = ("best.pt", "scores.csv", "decomposition.csv", "prior/unet/diffusion_pytorch_model.safetensors")


def damaged_files(folder: str, info: dict) -> list[str]:
    """Files of a finished model whose content no longer matches its checksum in ``model.json`` (a
    file that is gone is not damage: what needs it is redone, e.g. scoring with the kept weights)."""
    bad = []
    for f, sha in (info.get("checksums") or {}).items():
        p = os.path.join(folder, f)
        if os.path.exists(p) and file_sha256(p) != sha:
            bad.append(p)
    for f in ("scores.csv", "decomposition.csv"):  # a run written before checksums: a table cut short is damage too
        p = os.path.join(folder, f)
        if p not in bad and os.path.exists(p) and cut_short(p):
            bad.append(p)
    return bad


def persist_model(folder: str, result: ModelResult) -> None:
    """Write a model's results into its folder (atomically), ``model.json`` last, marked done."""
    csv = dict(index=False, float_format="%.10g")
    write_text(os.path.join(folder, "scores.csv"), result.scores.to_csv(**csv))
    if result.decomposition is not None:
        write_text(os.path.join(folder, "decomposition.csv"), result.decomposition.to_csv(**csv))
    if result.samples is not None:
        _save_npy(os.path.join(folder, "samples.npy"), result.samples)
    if result.decomposed is not None:
        _save_npy(os.path.join(folder, "decomposed.npy"), result.decomposed)
    # checksums of what a rerun would reuse, verified before it does (a damaged file retrains)
    result.info["checksums"] = {
        f: file_sha256(os.path.join(folder, f)) for f in _CHECKED if os.path.exists(os.path.join(folder, f))
    }
    write_json(os.path.join(folder, "model.json"), result.info)


def load_model_result(folder: str, info: dict) -> ModelResult:
    """A finished model's results from its folder (a rerun reusing a previous run's work)."""

    def opt_csv(f):
        p = os.path.join(folder, f)
        return read_scores(p) if os.path.exists(p) else None

    def opt_npy(f):
        p = os.path.join(folder, f)
        return np.load(p) if os.path.exists(p) else None

    history = read_history(folder)
    return ModelResult(
        info,
        read_scores(os.path.join(folder, "scores.csv")),
        opt_csv("decomposition.csv"),
        opt_npy("samples.npy"),
        opt_npy("decomposed.npy"),
        history,
    )


def _trains(entry, kwargs: dict) -> bool:
    return entry.trainable or ("prior_path" in kwargs and not kwargs["prior_path"])  # DDFM trains its prior


def finished_here(name: str, cfg: RunConfig, data_info: dict, folder: str) -> bool:
    """Whether ``folder`` holds ``name``'s finished, undamaged results for exactly this configuration
    and data: what :func:`run_model` would reuse there (``bench ablate`` finds its held setting's twin)."""
    cfg = for_model(cfg, name)
    try:
        with open(os.path.join(folder, "model.json")) as fh:
            prev = json.load(fh)
    except (OSError, json.JSONDecodeError):
        return False
    if not isinstance(prev, dict) or prev.get("status") != "done" or cfg.from_run:
        return False
    fp = _fingerprints_of(name, cfg, model_kwargs(get_fuser(name), cfg), data_info, None)[0]
    return (
        prev.get("fingerprint") == fp
        and os.path.exists(os.path.join(folder, "scores.csv"))
        and not damaged_files(folder, prev)
    )


def run_model(
    name: str,
    cfg: RunConfig,
    train_ds,
    val_ds,
    run_dir: str,
    dev: torch.device,
    data_info: dict,
    progress: bool = True,
    log=print,
) -> ModelResult | None:
    """One model through the stages (reusing a finished one); None on the non-zero ranks."""
    cfg = for_model(cfg, name)
    entry = get_fuser(name)
    folder = model_folder(run_dir, name)
    os.makedirs(folder, exist_ok=True)
    source = find_trained(cfg.from_run, name) if cfg.from_run else None
    kwargs = source.kwargs if source is not None else model_kwargs(entry, cfg)
    fp, train_fp, parts = _fingerprints_of(name, cfg, kwargs, data_info, source)
    summary = os.path.join(folder, "model.json")
    prev = None
    if os.path.exists(summary):
        try:
            with open(summary) as fh:
                prev = json.load(fh)
        except (OSError, json.JSONDecodeError):
            log(f"[fusionbench] {summary} is damaged; {name} is trained and scored again")
    damaged = damaged_files(folder, prev) if prev and prev.get("status") == "done" else []
    if damaged and not cfg.retrain:
        log(
            f"[fusionbench] {name}: {', '.join(damaged)} changed since the run that wrote it (checksum, or cut short); "
            "training and scoring again"
        )
        cfg = dataclasses.replace(cfg, retrain=True)
    elif not cfg.retrain and prev and prev.get("train_fingerprint") not in (None, train_fp):
        before = prev.get("train_parts") or {}  # a model.json older than the parts: no part named
        changed = [say for k, say in _TRAINING_PARTS.items() if k in before and before[k] != parts[k]]
        what = " and ".join(changed) if changed else "its code, settings or data"
        again = "training" if source is None and _trains(entry, kwargs) else "scoring"
        log(f"[fusionbench] {name}: {what} changed since {folder} was written; {again} it again")
    if (
        not cfg.retrain
        and prev
        and prev.get("fingerprint") == fp
        and prev.get("status") == "done"
        and os.path.exists(os.path.join(folder, "scores.csv"))
    ):
        log(
            f"[fusionbench] reusing {name} from {folder}, finished {prev.get('finished') or written_at(summary)}; "
            "--retrain to train and score it again"
        )
        return load_model_result(folder, prev)
    rescore = (
        not cfg.retrain
        and prev is not None
        and prev.get("fingerprint") != fp
        and prev.get("train_fingerprint") == train_fp
    )
    if rescore:
        kept = "reusing its training, scoring again" if _trains(entry, kwargs) else "scoring again"
        log(
            f"[fusionbench] {name}: the metrics (their settings or code) or the decomposition draws changed "
            f"since {folder} was scored, or --save-fused was given or left out; {kept}"
        )
    if D.is_main() and (
        cfg.retrain
        or (prev is not None and prev.get("fingerprint") != fp)
        or (os.path.exists(summary) and prev is None)
    ):
        stale = ("scores.csv", "decomposition.csv") + (() if rescore else ("last.pt", "best.pt", "train.json"))
        for f in stale:
            if os.path.exists(os.path.join(folder, f)):
                os.remove(os.path.join(folder, f))
        if not rescore:  # DDFM's prior is its training: trained again with it
            shutil.rmtree(os.path.join(folder, "prior"), ignore_errors=True)
    D.barrier()
    if D.is_main():
        write_json(
            summary,
            {"name": name, "fingerprint": fp, "train_fingerprint": train_fp, "train_parts": parts, "status": "running"},
        )
    t0 = time.perf_counter()
    prep = prepare(name, cfg, train_ds, val_ds, folder, dev, fp, progress, log)
    prep.info.update(train_fingerprint=train_fp, train_parts=parts)
    if D.is_main():  # fused images of earlier weights or settings never stay beside these scores
        shutil.rmtree(os.path.join(folder, "fused"), ignore_errors=True)
    D.barrier()
    result = evaluate_model(prep, val_ds, cfg, dev, progress)
    if not D.is_main():
        D.barrier()
        return None
    result.info.update(
        status="done",
        finished=time.strftime("%Y-%m-%d %H:%M:%S"),
        seconds=time.perf_counter() - t0,
        processes=D.world(),
    )
    persist_model(folder, result)
    D.barrier()
    return result


def run(cfg: RunConfig, progress: bool = True, log=print) -> RunResult:
    """Run the benchmark described by ``cfg``; returns a :class:`RunResult`. A plugin that fails is
    reported and the others still run; a built-in that fails raises."""
    if os.environ.get("RANK", "0") != "0":  # one copy of each line: rank 0 (torchrun's RANK) speaks for the run
        log = _quiet  # (errors still raise on every rank)
    try:
        names = resolve_models(cfg.models)
    except ValueError:
        if cfg.from_run and isinstance(cfg.models, str):  # a fuser of that run whose plugin is not installed here
            for name in cfg.models.split(","):
                said = missing_plugin(cfg.from_run, name.strip())
                if said is not None:
                    raise ValueError(said) from None
        raise
    if not names:
        raise ValueError("no models selected; use --models all or a comma-separated list (bench list shows them)")
    check_config(cfg)  # a RunConfig made in Python, not by make_config, is checked as bench run checks it
    resolve_metrics(cfg.metrics, cfg.lineage or None)
    get_profile(cfg.metric_profile)
    for model in [*parse_per_model(cfg.per_model), *cfg.extra]:
        get_fuser(model)  # an unknown model name in per_model or extra is an error, not silently ignored
    if cfg.from_run:
        if not os.path.isfile(os.path.join(cfg.from_run, "config.json")):
            raise ValueError(
                f"--from {cfg.from_run}: not a run folder (no config.json); expected a folder written by bench "
                "run, e.g. results/cpu-phantom"
            )
        for name in names:
            find_trained(cfg.from_run, name)  # every model checked before any work
        _note_unused_training(cfg, names, log)
    dev = D.init_from_env(cfg.device) or pick_device(cfg.device)
    if cfg.amp and dev.type != "cuda":
        log(f"[fusionbench] note: --amp (bf16 autocast) applies on CUDA only; this run on {dev.type} is in float32")
    if cfg.profile == "paper" and cfg.epochs >= 100 and dev.type == "cpu" and not cfg.from_run and cfg.trains(names):
        log(  # a new user's first try of the paper's setting should not find out from a bar after a minute
            f"[fusionbench] note: profile paper trains {cfg.epochs} epochs on whole slices: on a CPU, hours to days "
            "per fuser (each bar's left= estimates it after its first step); --profile quick trains every fuser "
            "in minutes, and --from results/cpu-phantom loads CPU-trained weights"
        )
    run_dir = os.path.join(cfg.out, cfg.run_name or default_run_name(cfg))
    if cfg.from_run and os.path.abspath(run_dir) == os.path.abspath(cfg.from_run):
        raise ValueError(
            f"--from {cfg.from_run}: the new run would write into the run it loads from; give another --run-name"
        )
    created = first_missing(run_dir)
    if D.is_main():
        check_writable(run_dir)
    hint = "wait for that run to finish, or give this one another --run-name or --out"
    try:
        with folder_lock(run_dir, hint) if D.is_main() else contextlib.nullcontext() as held:
            if D.is_main():
                _refuse_other_folder(run_dir)  # under the lock: a run just started holds its folder, config or not
                _remove_run_outputs(run_dir)  # a failed rerun must not leave the last run's tables looking current
                if held:
                    remove_temporaries(run_dir, lambda said: log(f"[fusionbench] {said}"))
            # No rank writes in the folder before rank 0 has checked and cleared it: with --seeds --nproc 2 the
            # other rank, done with one seed's run first, had made its model folders in the next seed's folder
            # while rank 0 still wrote the last run's tables, and rank 0 then refused that folder (once in this
            # stop's three fresh-clone CI runs; it passed in nine tries alone).
            D.barrier()
            return _run_in(run_dir, cfg, names, dev, progress, log)
    except BaseException:
        if created and D.is_main() and not _holds_finished_work(run_dir):
            shutil.rmtree(created, ignore_errors=True)  # nothing partial: no folder this run made is left behind
        raise
    finally:  # (RANK: after the run the process group is gone, and every rank would take itself for the main one)
        if os.environ.get("RANK", "0") == "0":
            refresh_tables_over_seeds(run_dir, log)  # tables over seeds that list this run never show its old scores


def _quiet(*args, **kwargs) -> None:
    pass


# What only training reads: with --from the weights were trained elsewhere, so these do not apply.
_TRAINING_ONLY = (
    "n_train",
    "epochs",
    "width",
    "lr",
    "plateau_factor",
    "plateau_patience",
    "loss_lambda",
    "loss_w",
    "reference_quirks",
    "crop",
    "flip",
    "crops_per_pair",
    "schedule",
    "warmup",
    "fusioninn_k",
    "fusioninn_alpha",
    "fusioninn_mmd",
    "ddfm_prior_epochs",
    "ddfm_prior_channels",
    "phantom_train",
)


def _note_unused_training(cfg: RunConfig, names: list, log) -> None:
    """Say which training settings of this command differ from those the loaded weights were
    trained with (``--from RUN --width 0.5`` loaded RUN's nets without a word)."""
    there = folder_config(cfg.from_run).get("config", {})
    try:
        theirs = parse_per_model(there.get("per_model", ""))
    except (ValueError, AttributeError):
        return
    differ = [  # a field an older run did not record is not compared
        f"{k} {getattr(cfg, k)!r} (there {there[k]!r})"
        for k in _TRAINING_ONLY
        if k in there and getattr(cfg, k) != there[k]
    ]
    mine = parse_per_model(cfg.per_model)
    for name in names:  # per-model settings of the models loaded here only
        a, b = _settings_of(mine, name), _settings_of(theirs, name)
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                differ.append(f"{name}.{k} {_shown(a, k)} (there {_shown(b, k)})")
    if differ:
        log(
            f"[fusionbench] --from {cfg.from_run}: its weights were trained there, so these training settings "
            f"do not apply here: {', '.join(differ)}"
        )


def _shown(settings: dict, key: str) -> str:
    return repr(settings[key]) if key in settings else "unset"


def _settings_of(per_model: dict, name: str) -> dict:
    return {k: v for model, kv in per_model.items() if model.lower() == name.lower() for k, v in kv.items()}


def _refuse_other_folder(run_dir: str) -> None:
    """A run writes, and first clears, its tables, ``figures/`` and ``sources/`` in its folder, and
    each model's checkpoints in a folder named after it: only in a new folder or its own (one whose
    ``config.json`` a run wrote), never among other files (a ``bench eval`` folder, a paper's)."""
    if folder_kind(run_dir) not in ("new", "run"):
        raise ValueError(
            f"{run_dir} holds files and is not a bench run folder (no config.json of a run); give a new or "
            "empty folder with --out or --run-name"
        )


_RUN_OUTPUTS = ("scores.csv", "run.json", "decomposition.csv")


def _remove_run_outputs(run_dir: str) -> None:
    for f in os.listdir(run_dir):
        p = os.path.join(run_dir, f)
        if f in _RUN_OUTPUTS or (f.startswith(("leaderboard", "decomposition_leaderboard")) and os.path.isfile(p)):
            os.remove(p)
    for sub in ("figures", "sources"):  # sources: --save-fused writes them again
        if os.path.isdir(os.path.join(run_dir, sub)):
            shutil.rmtree(os.path.join(run_dir, sub))


def _holds_finished_work(run_dir: str) -> bool:
    """Whether a run folder holds anything worth keeping (a checkpoint or a finished model)."""
    for d, _, fs in os.walk(run_dir):
        if any(f.endswith(".pt") for f in fs):
            return True
        if "model.json" in fs:
            try:
                with open(os.path.join(d, "model.json")) as fh:
                    if json.load(fh).get("status") == "done":
                        return True
            except (OSError, json.JSONDecodeError):
                pass
    return False


def _finished_elsewhere(run_dir: str, names: list) -> list[str]:
    """Models finished in ``run_dir`` by an earlier command that this one left out of --models."""
    mine = {os.path.basename(model_folder(run_dir, n)) for n in names}
    out = []
    for d in sorted(os.listdir(run_dir)):
        if d in mine:
            continue
        try:
            with open(os.path.join(run_dir, d, "model.json")) as fh:
                info = json.load(fh)
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and info.get("status") == "done":
            out.append(str(info.get("name") or d))
    return out


def save_pngs(folder: str, indices, images: torch.Tensor) -> None:
    """Images (B, H, W) in [0, 1] as 8-bit PNGs ``folder/<index>.png`` (five digits), rounded as the
    toolbox profiles quantise before scoring, so ``bench eval`` on them scores what the run scored."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    pixels = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    for i, img in zip(indices, pixels, strict=True):
        with atomic_path(os.path.join(folder, f"{int(i):05d}.png"), ".png") as tmp:
            Image.fromarray(img).save(tmp, format="PNG")


def save_sources(folder: str, val_ds) -> None:
    """The validation split's x1 (T1-Gd), x2 (FLAIR) and labels as ``folder/{x1,x2,labels}/<index>.png``."""
    from PIL import Image

    for n in range(len(val_ds)):
        item = val_ds[n]
        i = int(item["index"])  # the index the scores carry
        save_pngs(os.path.join(folder, "x1"), [i], item["x1"])
        save_pngs(os.path.join(folder, "x2"), [i], item["x2"])
        if "labels" in item:
            os.makedirs(os.path.join(folder, "labels"), exist_ok=True)
            with atomic_path(os.path.join(folder, "labels", f"{i:05d}.png"), ".png") as tmp:
                Image.fromarray(item["labels"].numpy().astype("uint8")).save(tmp, format="PNG")


def _run_in(run_dir: str, cfg: RunConfig, names: list, dev, progress: bool, log) -> RunResult:
    train_ds, val_ds, data_info = load_data(
        cfg.data, cfg.image_seed(), cfg.n_train, cfg.n_val, cfg.phantom_train, cfg.phantom_val
    )
    if len(val_ds) == 0:
        raise ValueError(f"data {cfg.data!r} has an empty validation split; nothing to score")
    n_train = cfg.n_train if not cfg.from_run and cfg.trains(names) else None  # else it is moot
    for line in size_notes(cfg.data, n_train, cfg.n_val, train_ds, val_ds):
        log(f"[fusionbench] note: {line}")
    h, w = val_ds[0]["x1"].shape[-2:]  # before any training: small images failed at scoring, after it
    need = min_image_size(resolve_metrics(cfg.metrics, cfg.lineage), cfg.metric_profile)
    if min(h, w) < need:
        raise ValueError(f"data {cfg.data!r}: images are {h}x{w}; the metrics need at least {need}x{need} pixels")
    torch.manual_seed(cfg.seed)
    caption = caption_for(cfg, len(val_ds), dev, names)
    if D.is_main():
        write_json(
            os.path.join(run_dir, "config.json"),
            {
                "command": " ".join(sys.argv),
                "config": dataclasses.asdict(cfg),
                "models": names,
                "seed": cfg.seed,
                "data": data_info,
                "versions": package_versions(),
                "device": {**device_info(dev), "processes": D.world()},
                "shrinks": cfg.shrinks(names),
                "caption": caption,  # bench table rebuilds the leaderboards with it
            },
        )  # first of the run's files: it marks the folder as a run's
    if cfg.save_fused and D.is_main():  # the sources the fused images are scored against, for bench eval
        save_sources(os.path.join(run_dir, "sources"), val_ds)
    t0 = time.perf_counter()
    results, failures = {}, {}
    for name in names:
        log(f"[fusionbench] {name}")
        try:
            res = run_model(name, cfg, train_ds, val_ds, run_dir, dev, data_info, progress, log)
            if res is not None:
                results[name] = res
        except (FuserOutputError, RuntimeError, ValueError, ImportError, FloatingPointError, TypeError) as e:
            if get_fuser(name).source == "built-in" and not isinstance(e, FuserOutputError):
                raise
            failures[name] = str(e)
            log(f"[fusionbench] FAILED {name}: {e}")
            if os.environ.get("FUSIONBENCH_DEBUG"):
                traceback.print_exc()
    if not D.is_main():
        D.shutdown()
        return RunResult(run_dir, pd.DataFrame(), None, failures=failures)
    tables = report(run_dir, cfg, results, val_ds, caption)
    left_out = _finished_elsewhere(run_dir, names)
    if left_out:
        log(
            f"[fusionbench] note: {run_dir} also holds finished {', '.join(left_out)} from an earlier command; "
            "the tables list only this command's --models (name them too to list them; a model finished with "
            "the same settings is reused, not trained again)"
        )
    seconds = time.perf_counter() - t0
    write_json(
        os.path.join(run_dir, "run.json"),
        {"seconds": seconds, "models": {k: v.info for k, v in results.items()}, "failures": failures},
    )
    D.shutdown()
    if failures:
        log(
            f"[fusionbench] {len(failures)} model(s) failed: {', '.join(failures)}; see "
            f"{os.path.join(run_dir, 'run.json')}"
        )
    return RunResult(run_dir, tables.pop("scores"), tables.get("slice"), tables, failures, seconds)
