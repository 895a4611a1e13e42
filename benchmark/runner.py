"""``bench run``: train what is trainable, fuse the validation split, score it, write the tables.

Layout of ``results/<run-name>/``: ``config.json`` (everything needed to rerun: config, seed,
package versions, device), ``scores.csv`` (one row per image and model, one column per metric),
``leaderboard.{csv,tex,md}``, ``figures/samples.png``, ``run.json`` (timings, failures) and one
folder per model with its checkpoints and per-model scores. A rerun with the same command reuses
finished models and checkpoints (``--retrain`` forces training again), so a killed run resumes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import platform
import re
import sys
import time
import traceback

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from baselines.loss import LossConfig
from benchmark import distributed as D
from baselines.registry import get_fuser, resolve_models
from benchmark.atomic import check_writable, write_json, write_text
from benchmark.config import RunConfig, for_model
from benchmark.data import load_data
from benchmark.figures import sample_grid
from benchmark.tables import order_models, write_leaderboards
from benchmark.trainer import TrainConfig, load_checkpoint, train
from metrics import score as score_metrics
from metrics.registry import resolve_metrics


class FuserOutputError(RuntimeError):
    pass


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    return dev


def package_versions() -> dict:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for p in ("fusionbench", "torch", "numpy", "scipy", "pandas", "h5py", "nibabel", "matplotlib", "diffusers", "FrEIA", "nilearn", "segmentation-models-pytorch"):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def device_info(dev: torch.device) -> dict:
    info = {"device": str(dev), "platform": platform.platform(), "cpu_threads": torch.get_num_threads()}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def model_kwargs(entry, cfg: RunConfig) -> dict:
    """The factory's keyword arguments that the run config sets (matched by parameter name)."""
    offered = {"width": cfg.width, "k": cfg.fusioninn_k, "alpha": cfg.fusioninn_alpha, "latent_prior": cfg.fusioninn_prior, "mmd": cfg.fusioninn_mmd, "steps": cfg.ddfm_steps, "prior_path": cfg.ddfm_prior, "prior_epochs": cfg.ddfm_prior_epochs, "prior_channels": cfg.ddfm_prior_channels, "seed": cfg.seed}
    offered.update(cfg.extra.get(entry.name, {}))
    try:
        params = inspect.signature(entry.factory).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return {k: v for k, v in offered.items() if k in cfg.extra.get(entry.name, {})}
    return {k: v for k, v in offered.items() if k in params}


def check_output(name: str, source: str, fused, x1: torch.Tensor) -> torch.Tensor:
    """Validate a fuser's output: a finite float (B, 1, H, W) tensor in [0, 1] like x1."""
    who = f"model {name!r} ({source})"
    if not isinstance(fused, torch.Tensor):
        raise FuserOutputError(f"{who} returned {type(fused).__name__}; expected a torch.Tensor of shape {tuple(x1.shape)}")
    if tuple(fused.shape) != tuple(x1.shape):
        raise FuserOutputError(f"{who} returned shape {tuple(fused.shape)}; expected {tuple(x1.shape)} like its inputs")
    if not fused.is_floating_point():
        raise FuserOutputError(f"{who} returned dtype {fused.dtype}; expected a float tensor in [0, 1]")
    fused = fused.float()
    if not bool(torch.isfinite(fused).all()):
        raise FuserOutputError(f"{who} returned NaN or Inf values")
    lo, hi = float(fused.min()), float(fused.max())
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise FuserOutputError(f"{who} returned values in [{lo:.4g}, {hi:.4g}]; expected [0, 1]")
    return fused.clamp(0, 1)


def train_config(cfg: RunConfig, batch: int) -> TrainConfig:
    """The trainer's settings from a run config, at batch size ``batch``."""
    return TrainConfig(
        epochs=cfg.epochs, batch_size=batch, lr=cfg.lr, plateau_factor=cfg.plateau_factor, plateau_patience=cfg.plateau_patience,
        seed=cfg.seed, amp=cfg.amp, loss=LossConfig(cfg.loss_lambda, cfg.loss_w), reference_quirks=cfg.reference_quirks,
        num_workers=cfg.num_workers, crop=cfg.crop, flip=cfg.flip, crops_per_pair=cfg.crops_per_pair, schedule=cfg.schedule, warmup=cfg.warmup,
    )


def _fingerprint(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


def default_run_name(cfg: RunConfig) -> str:
    data = "phantom" if cfg.data == "phantom" else safe_name(os.path.splitext(os.path.basename(cfg.data.split(",")[0]))[0])
    if cfg.from_run:  # never the folder of a training run: its checkpoints must not be touched
        return f"{data}-from-{safe_name(os.path.basename(os.path.normpath(cfg.from_run)))}"
    return f"{cfg.profile}-{data}"


def caption_for(cfg: RunConfig, n_val: int, dev: torch.device, models=None) -> str:
    text = f"Fusion metrics (mean over {n_val} validation pairs, data {cfg.data}, metric profile {cfg.metric_profile}, profile {cfg.profile}, {dev.type})."
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


def _fuse_batch(model, x1, x2, amp, dev):
    with torch.no_grad(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp and dev.type == "cuda"):
        return model(x1, x2)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def trained_source(from_dir: str, name: str) -> dict:
    """What ``--from RUN_DIR`` takes of model ``name`` in a finished run: the factory's keyword
    arguments it was built with (architecture, e.g. width), its weights (``best.pt``) and, for
    DDFM, its prior folder. A model that is not there, unfinished or without weights is an error."""
    entry = get_fuser(name)
    mdir = os.path.join(from_dir, safe_name(name))
    info_path = os.path.join(mdir, "model.json")
    hint = "train it there first, or leave it out of --models"
    if not os.path.exists(info_path):
        raise ValueError(f"--from {from_dir}: model {name!r} is not in that run (no {info_path}); {hint}")
    with open(info_path) as fh:
        try:
            info = json.load(fh)
        except json.JSONDecodeError as e:
            raise ValueError(f"--from {from_dir}: {info_path} is not readable JSON ({e}); {hint}") from None
    if info.get("status") != "done":
        raise ValueError(f"--from {from_dir}: model {name!r} did not finish in that run (status {info.get('status')!r} in {info_path}); {hint}")
    out = {"kwargs": dict(info.get("kwargs", {})), "weights": None}
    if entry.trainable:
        best = os.path.join(mdir, "best.pt")
        if not os.path.exists(best):
            raise ValueError(f"--from {from_dir}: model {name!r} has no trained weights (no {best}); {hint}")
        out["weights"] = best
        out["sha256"] = file_sha256(best)
    if "prior_path" in out["kwargs"]:
        prior = out["kwargs"]["prior_path"] or os.path.join(mdir, "prior", "unet")
        if not os.path.exists(os.path.join(prior, "config.json")):
            raise ValueError(f"--from {from_dir}: model {name!r} has no diffusion prior (no {prior}/config.json); {hint}")
        out["kwargs"]["prior_path"] = prior
    return out


def _when(path: str) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(path)))


def run_model(name: str, cfg: RunConfig, train_ds, val_ds, run_dir: str, dev: torch.device, data_info: dict, progress: bool = True, log=print) -> dict:
    """Train (if needed), fuse and score one model; writes ``<run>/<model>/scores.csv``. Returns a summary."""
    entry = get_fuser(name)
    cfg = for_model(cfg, name)
    mdir = os.path.join(run_dir, safe_name(name))
    os.makedirs(mdir, exist_ok=True)
    kwargs = model_kwargs(entry, cfg)
    source = trained_source(cfg.from_run, name) if cfg.from_run else None
    if source is not None:
        kwargs = source["kwargs"]
    batch = cfg.batch_size or entry.batch_size
    if cfg.max_batch:
        batch = min(batch, cfg.max_batch)
    tcfg = train_config(cfg, batch)
    trained = {"from": os.path.abspath(cfg.from_run), "weights": source.get("sha256")} if source is not None else dataclasses.asdict(tcfg)
    fp = _fingerprint({"name": name, "kwargs": kwargs, "train": trained, "data": data_info, "metrics": [cfg.metric_profile, cfg.metrics, cfg.quantize], "draws": cfg.decomposition_draws})
    summary_path = os.path.join(mdir, "model.json")
    if not cfg.retrain and os.path.exists(summary_path) and os.path.exists(os.path.join(mdir, "scores.csv")):
        with open(summary_path) as fh:
            prev = json.load(fh)
        if prev.get("fingerprint") == fp and prev.get("status") == "done":
            log(f"[fusionbench] reusing {name} from {mdir}, finished {prev.get('finished') or _when(summary_path)}; --retrain to train and score it again")
            return prev
    if D.is_main() and (cfg.retrain or (os.path.exists(summary_path) and json.load(open(summary_path)).get("fingerprint") != fp)):
        for f in ("last.pt", "best.pt", "train.json", "scores.csv", "decomposition.csv"):
            if os.path.exists(os.path.join(mdir, f)):
                os.remove(os.path.join(mdir, f))
    D.barrier()
    if D.is_main():
        write_json(summary_path, {"name": name, "fingerprint": fp, "status": "running"})

    torch.manual_seed(cfg.seed)
    model = entry.build(**kwargs)
    info = {"name": name, "source": entry.source, "kind": entry.kind, "kwargs": kwargs, "fingerprint": fp}
    t0 = time.perf_counter()
    if isinstance(model, torch.nn.Module):
        info["params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        model.to(dev)
    if hasattr(model, "fit_prior"):
        model.fit_prior(train_ds, val_ds, cfg, mdir, dev, progress)
    if source is not None and source["weights"] is not None:
        log(f"[fusionbench] {name}: weights from {source['weights']} (not trained in this run)")
        model.load_state_dict(load_checkpoint(source["weights"], dev))
        info["from"] = source["weights"]
        info["weights_sha256"] = source["sha256"]
    elif entry.trainable:
        done = os.path.exists(os.path.join(mdir, "train.json")) and os.path.exists(os.path.join(mdir, "best.pt"))
        if done:
            log(f"[fusionbench] reusing the trained weights of {name} ({os.path.join(mdir, 'best.pt')}, trained {_when(os.path.join(mdir, 'best.pt'))}); --retrain to train again")
            model.load_state_dict(load_checkpoint(os.path.join(mdir, "best.pt"), dev))
        else:
            if os.path.exists(os.path.join(mdir, "last.pt")):
                log(f"[fusionbench] resuming {name} from {os.path.join(mdir, 'last.pt')} (written {_when(os.path.join(mdir, 'last.pt'))})")
            train(model, train_ds, val_ds, tcfg, mdir, dev, resume=True, progress=progress, name=name)
        info["train_seconds"] = time.perf_counter() - t0
        info["batch_size"] = batch
        info["epochs"] = cfg.epochs
    if isinstance(model, torch.nn.Module):
        model.eval()

    names = resolve_metrics(cfg.metrics)
    rows, samples, drows, dsamples = [], [], [], []
    loader = torch.utils.data.DataLoader(D.shard(val_ds), batch_size=cfg.score_batch, shuffle=False, num_workers=cfg.num_workers)
    t_fuse, n_img = 0.0, 0
    for b in tqdm(loader, desc=f"{name}: fuse+score", disable=not progress, leave=False):
        x1, x2 = b["x1"].to(dev), b["x2"].to(dev)
        t1 = time.perf_counter()
        fused = check_output(name, entry.source, _fuse_batch(model, x1, x2, cfg.amp, dev), x1)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t_fuse += time.perf_counter() - t1
        n_img += x1.shape[0]
        s = score_metrics(fused, x1, x2, metrics=names, profile=cfg.metric_profile, quantize=cfg.quantize, workload=len(val_ds))
        idx = [int(i) for i in b["index"]]
        for j, i in enumerate(idx):
            rows.append({"model": name, "index": i, "region": "slice", **{k: float(v[j]) for k, v in s.items()}})
        if "labels" in b:
            from benchmark.regions import crop, region_groups, tumour_boxes

            boxes = tumour_boxes(b["labels"].to(dev))
            for side, pos in region_groups(boxes).items():
                st = score_metrics(crop(fused, boxes, pos), crop(x1, boxes, pos), crop(x2, boxes, pos), metrics=names, profile=cfg.metric_profile, quantize=cfg.quantize, workload=len(val_ds))
                for k_, j in enumerate(pos):
                    rows.append({"model": name, "index": idx[j], "region": "tumour", **{k: float(v[k_]) for k, v in st.items()}})
        samples.extend((i, fused[j, 0].cpu().numpy()) for j, i in enumerate(idx) if i < cfg.n_show)
        if hasattr(model, "decompose"):
            from benchmark.decomposition import decomposition_rows

            torch.set_grad_enabled(False)

            boxes = None
            if "labels" in b:
                from benchmark.regions import tumour_boxes

                boxes = tumour_boxes(b["labels"].to(dev))
            drows.extend(decomposition_rows(model, fused, x1, x2, idx, cfg, boxes, name))
            show = [j for j, i in enumerate(idx) if i < cfg.n_show]
            if show:
                g = torch.Generator(device=dev).manual_seed(cfg.seed)
                h1, h2 = model.decompose(fused[show], generator=g)
                dsamples.extend((idx[j], np.stack([h1[k, 0].float().cpu().numpy(), h2[k, 0].float().cpu().numpy()])) for k, j in enumerate(show))
            torch.set_grad_enabled(True)
    info["fuse_seconds_per_image"] = t_fuse / max(n_img, 1)
    rows, drows = D.gather_rows(rows), D.gather_rows(drows)
    samples = [v for _, v in sorted(D.gather_rows(samples), key=lambda t: t[0])]
    dsamples = [v for _, v in sorted(D.gather_rows(dsamples), key=lambda t: t[0])]
    if not D.is_main():
        D.barrier()
        return info
    scores = pd.DataFrame(rows).sort_values(["region", "index"], kind="stable")
    write_text(os.path.join(mdir, "scores.csv"), scores.to_csv(index=False, float_format="%.10g"))
    if drows:
        write_text(os.path.join(mdir, "decomposition.csv"), pd.DataFrame(drows).sort_values(["region", "index"], kind="stable").to_csv(index=False, float_format="%.10g"))
    if samples:
        np.save(os.path.join(mdir, "samples.npy"), np.stack(samples).astype(np.float32))
    if dsamples:
        np.save(os.path.join(mdir, "decomposed.npy"), np.stack(dsamples).astype(np.float32))
    info["status"] = "done"
    info["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    info["seconds"] = time.perf_counter() - t0
    info["processes"] = D.world()
    write_json(summary_path, info)
    D.barrier()
    return info


def run(cfg: RunConfig, progress: bool = True, log=print) -> str:
    """Run the benchmark described by ``cfg``; returns the run folder. Failed models are reported, not fatal."""
    names = resolve_models(cfg.models)
    if not names:
        raise ValueError("no models selected; use --models all or a comma-separated list (bench list shows them)")
    if cfg.from_run:
        if not os.path.isfile(os.path.join(cfg.from_run, "config.json")):
            raise ValueError(f"--from {cfg.from_run}: not a run folder (no config.json); expected a folder written by bench run, e.g. results/cpu-phantom")
        for name in names:
            trained_source(cfg.from_run, name)  # every model checked before any work
    resolve_metrics(cfg.metrics)
    from benchmark.config import parse_per_model

    for model in parse_per_model(cfg.per_model):
        get_fuser(model)  # an unknown model name in per_model is an error, not silently ignored
    from metrics.profiles import get_profile

    get_profile(cfg.metric_profile)
    dev = D.init_from_env(cfg.device) or pick_device(cfg.device)
    run_dir = os.path.join(cfg.out, cfg.run_name or default_run_name(cfg))
    if cfg.from_run and os.path.abspath(run_dir) == os.path.abspath(cfg.from_run):
        raise ValueError(f"--from {cfg.from_run}: the new run would write into the run it loads from; give another --run-name")
    if D.is_main():
        check_writable(run_dir)
    train_ds, val_ds, data_info = load_data(cfg.data, cfg.seed, cfg.n_train, cfg.n_val, cfg.phantom_train, cfg.phantom_val)
    if len(val_ds) == 0:
        raise ValueError(f"data {cfg.data!r} has an empty validation split; nothing to score")
    torch.manual_seed(cfg.seed)
    if D.is_main():
        write_json(os.path.join(run_dir, "config.json"), {"command": " ".join(sys.argv), "config": dataclasses.asdict(cfg), "models": names, "seed": cfg.seed, "data": data_info, "versions": package_versions(), "device": {**device_info(dev), "processes": D.world()}, "shrinks": cfg.shrinks(names)})
    t0 = time.perf_counter()
    results, failures = {}, {}
    for name in names:
        log(f"[fusionbench] {name}")
        try:
            results[name] = run_model(name, cfg, train_ds, val_ds, run_dir, dev, data_info, progress, log)
        except (FuserOutputError, RuntimeError, ValueError, ImportError, FloatingPointError, TypeError) as e:
            entry = get_fuser(name)
            if entry.source == "built-in" and not isinstance(e, FuserOutputError):
                raise
            failures[name] = str(e)
            log(f"[fusionbench] FAILED {name}: {e}")
            if os.environ.get("FUSIONBENCH_DEBUG"):
                traceback.print_exc()
    if not D.is_main():
        D.shutdown()
        return run_dir
    finish(run_dir, cfg, [n for n in names if n in results], val_ds, dev)
    write_json(os.path.join(run_dir, "run.json"), {"seconds": time.perf_counter() - t0, "models": results, "failures": failures})
    D.shutdown()
    if failures:
        log(f"[fusionbench] {len(failures)} model(s) failed: {', '.join(failures)}; see {os.path.join(run_dir, 'run.json')}")
    return run_dir


def finish(run_dir: str, cfg: RunConfig, names, val_ds, dev) -> None:
    """Combine per-model scores into scores.csv, leaderboards and the sample figure."""
    frames, dframes, samples = [], [], {}
    for name in order_models(names):
        mdir = os.path.join(run_dir, safe_name(name))
        frames.append(pd.read_csv(os.path.join(mdir, "scores.csv")))
        if os.path.exists(os.path.join(mdir, "decomposition.csv")):
            dframes.append(pd.read_csv(os.path.join(mdir, "decomposition.csv")))
        if os.path.exists(os.path.join(mdir, "samples.npy")):
            samples[name] = np.load(os.path.join(mdir, "samples.npy"))
    if not frames:
        return
    scores = pd.concat(frames, ignore_index=True)
    write_text(os.path.join(run_dir, "scores.csv"), scores.to_csv(index=False, float_format="%.10g"))
    caption = caption_for(cfg, len(val_ds), dev, names)
    slice_scores = scores[scores.region == "slice"] if "region" in scores else scores
    write_leaderboards(run_dir, slice_scores, caption, style=cfg.table_style, n_boot=cfg.n_boot, seed=cfg.seed)
    if "region" in scores and (scores.region == "tumour").any():
        write_leaderboards(run_dir, scores[scores.region == "tumour"], caption.replace("Fusion metrics", "Fusion metrics inside the tumour box (labels 1, 2, 4 dilated by 5 px; square box, side >= 48 px)"), stem="leaderboard_tumour", style=cfg.table_style, n_boot=cfg.n_boot, seed=cfg.seed)
    from benchmark.figures import distributions
    from benchmark.tables import metric_columns

    distributions(os.path.join(run_dir, "figures", "distributions.png"), slice_scores, metric_columns(slice_scores), order_models(names))
    histories = {}
    for name in order_models(names):
        tpath = os.path.join(run_dir, safe_name(name), "train.json")
        if os.path.exists(tpath):
            with open(tpath) as fh:
                histories[name] = json.load(fh)["history"]
    if histories:
        from benchmark.figures import training_curves

        training_curves(os.path.join(run_dir, "figures", "training.png"), histories)
    if dframes:
        from benchmark.decomposition import write_decomposition_tables

        write_decomposition_tables(run_dir, pd.concat(dframes, ignore_index=True), caption)
    n = min([len(v) for v in samples.values()] + [cfg.n_show, len(val_ds)])
    if n > 0:
        items = [val_ds[i] for i in range(n)]
        x1 = np.stack([it["x1"][0].numpy() for it in items])
        x2 = np.stack([it["x2"][0].numpy() for it in items])
        sample_grid(os.path.join(run_dir, "figures", "samples.png"), x1, x2, {k: v[:n] for k, v in samples.items()}, caption if len(caption) < 120 else "")
        for name in names:
            dpath = os.path.join(run_dir, safe_name(name), "decomposed.npy")
            if os.path.exists(dpath) and name in samples:
                from benchmark.figures import decomposition_grid

                dec = np.load(dpath)[:n]
                decomposition_grid(os.path.join(run_dir, "figures", f"decomposition_{safe_name(name)}.png"), x1, x2, samples[name][:n], dec[:, 0], dec[:, 1])
