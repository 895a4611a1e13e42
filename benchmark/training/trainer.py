"""The one training loop for every trainable fuser (nanoGPT-style: readable in one screen).

Adam (lr 3e-4) with ReduceLROnPlateau (factor 0.95, patience 8) on the mean validation loss
(docs/reference.md §2), batch size from the registry entry, epochs from the profile. A model contributes only
its loss: ``model.loss(x1, x2, loss_cfg)`` if it defines one, else the shared fusion loss on
``model(x1, x2)``. A checkpoint is written every epoch (``last.pt``: model, optimiser, scheduler,
epoch, best loss, history) and the best model by validation loss is kept (``best.pt``: its state
dict); ``resume`` continues from ``last.pt``. Randomness is reseeded from (seed, epoch) at every
epoch, so a resumed run ends with the same weights as an uninterrupted one. Checkpoints are read
with ``torch.load(weights_only=True)``: a results folder cannot run code on the reader's machine.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from baselines.loading import checkpoint_problem
from baselines.loss import LossConfig, fusion_loss
from benchmark import distributed as D
from benchmark.atomic import atomic_path, write_json
from benchmark.provenance import written_at
from benchmark.training.patches import random_patches


@dataclass
class TrainConfig:
    epochs: int = 400
    batch_size: int = 64
    lr: float = 3e-4
    plateau_factor: float = 0.95
    plateau_patience: int = 8
    seed: int = 0
    amp: bool = False
    loss: LossConfig = field(default_factory=LossConfig)
    reference_quirks: bool = False
    num_workers: int = 0
    crop: int | None = None  # random crop side for training (None: whole slices); validation stays whole
    flip: bool = False  # random left-right / up-down flips of each training pair (both sources alike)
    crops_per_pair: int = 1  # training samples drawn from each pair per epoch (each a fresh crop)
    schedule: str = "plateau"  # "plateau": ReduceLROnPlateau per epoch (the reference); "cosine": per step
    warmup: int = 0  # linear warm-up steps (cosine schedule)
    channels_last: bool = True  # NHWC activations: about 2x faster convolutions on CPU here and on CUDA


SCHEDULES = ("plateau", "cosine")


def model_loss(model, x1, x2, loss_cfg: LossConfig) -> torch.Tensor:
    """The model's own training loss, or the shared fusion loss on its output."""
    if hasattr(model, "loss"):
        return model.loss(x1, x2, loss_cfg)
    return fusion_loss(model(x1, x2), x1, x2, loss_cfg)


def model_terms(model, x1, x2, loss_cfg: LossConfig) -> dict:
    """``{"total": loss, ...}``: a model with several loss terms (FusionINN) reports each one."""
    if hasattr(model, "loss_terms"):
        return model.loss_terms(x1, x2, loss_cfg)
    return {"total": model_loss(model, x1, x2, loss_cfg)}


class _LossModule(torch.nn.Module):
    """The model's training loss as a forward pass, so that DistributedDataParallel sees it."""

    def __init__(self, model, loss_cfg):
        super().__init__()
        self.model, self.loss_cfg = model, loss_cfg

    def forward(self, x1, x2):
        return model_loss(self.model, x1, x2, self.loss_cfg)


def save_checkpoint(path: str, obj) -> None:
    if not D.is_main():  # in a multi-process run rank 0 alone writes
        return
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str, device="cpu"):
    """A checkpoint written by :func:`save_checkpoint` (``weights_only``: it cannot run code); a
    damaged or foreign file is one ValueError naming it."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: damaged or not a fusionbench checkpoint ({checkpoint_problem(e)})") from None


def _autocast(device: torch.device, amp: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def _loader(ds, batch_size, shuffle, generator, drop_last, num_workers):
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last, num_workers=num_workers
    )


def evaluate_loss(model, ds, cfg: TrainConfig, device) -> tuple[float, float, dict]:
    """(mean validation loss over images, loss of the last mini-batch, per-term means and the
    model's ``validation_scores`` means, e.g. FusionINN's decomposition SSIM)."""
    model.eval()
    torch.manual_seed(cfg.seed + 104729)  # stochastic losses (FusionINN's z') see the same draws every epoch
    total, n, last = 0.0, 0, float("nan")
    sums: dict[str, float] = {}
    with torch.no_grad():
        for batch in _loader(D.shard(ds), cfg.batch_size, False, None, cfg.reference_quirks, cfg.num_workers):
            x1, x2 = _to(batch["x1"], device, cfg), _to(batch["x2"], device, cfg)
            with _autocast(device, cfg.amp):
                terms = {k: float(v) for k, v in model_terms(model, x1, x2, cfg.loss).items()}
                if hasattr(model, "validation_scores"):
                    terms.update({k: float(v) for k, v in model.validation_scores(x1, x2).items()})
            loss = terms["total"]
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v * x1.shape[0]
            total += loss * x1.shape[0]
            n += x1.shape[0]
            last = loss
    keys = sorted(sums)
    reduced = D.all_reduce_sum([total, float(n)] + [sums[k] for k in keys])
    total, n = reduced[0], reduced[1]
    extra = {k: v / max(n, 1) for k, v in zip(keys, reduced[2:]) if k != "total"}
    return total / max(n, 1), last, extra


def _to(x: torch.Tensor, device, cfg: TrainConfig) -> torch.Tensor:
    x = x.to(device)
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x


class _Repeat(torch.utils.data.Dataset):
    """Each pair ``k`` times per epoch (each time a fresh random crop)."""

    def __init__(self, ds, k: int):
        self.ds, self.k = ds, k

    def __len__(self):
        return len(self.ds) * self.k

    def __getitem__(self, i):
        return self.ds[i % len(self.ds)]


def _scheduler(opt, cfg: TrainConfig, steps_per_epoch: int):
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; expected one of {', '.join(SCHEDULES)}")
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
    total = max(1, cfg.epochs * steps_per_epoch)

    def factor(step: int) -> float:  # linear warm-up, then cosine decay to 5% of the peak
        warm = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else 1.0
        return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _clock(seconds: float) -> str:
    """A duration for the progress bar: 45s, 12m05s, 29h14m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def summary(name: str, history: list[dict]) -> str:
    """One line on what a finished training did, for the terminal and a batch job's log (the
    progress bars leave nothing there): its epochs, steps and time, and the whole-slice validation
    loss after the first and the last epoch and at the best one, whose weights are kept.
    ``train.json`` holds every epoch."""
    if not history:
        return f"[fusionbench] {name}: no epoch to train (epochs 0); it keeps its initial weights"
    first, last = history[0], history[-1]
    best = min(history, key=lambda r: r["val_loss"])
    n = len(history)
    line = (
        f"[fusionbench] {name}: trained {n} epoch{'s' * (n != 1)}, {last['step']:,} steps, "
        f"{_clock(sum(r['seconds'] for r in history))}; validation loss "
    )
    if n > 1:
        line += f"{first['val_loss']:.4f} after epoch 1, {last['val_loss']:.4f} after epoch {n}"
        return line + (
            " (best, kept)" if best is last else f"; best {best['val_loss']:.4f} after epoch {best['epoch']} (kept)"
        )
    return line + f"{last['val_loss']:.4f}"


def train(
    model: torch.nn.Module,
    train_ds,
    val_ds,
    cfg: TrainConfig,
    ckpt_dir: str,
    device="cpu",
    resume: bool = True,
    progress: bool = True,
    name: str = "model",
    stop_after_epochs: int | None = None,
    log=print,
) -> dict:
    """Train ``model`` in place; returns the history. Best weights are loaded into ``model`` at the end.
    ``log`` takes the line that says where a resumed training picks up.

    With ``cfg.crop`` every training pair gives a random ``crop`` x ``crop`` patch (the same one for
    both sources, flipped alike with ``cfg.flip``), ``cfg.crops_per_pair`` times per epoch; the
    validation loss is always on whole slices. The history has one record per epoch: optimiser
    steps so far, train and validation loss, and every loss term and validation score the model
    reports (FusionINN: fusion, latent and decomposition terms, decomposition SSIM).
    """
    device = torch.device(device)
    os.makedirs(ckpt_dir, exist_ok=True)
    last_path, best_path = os.path.join(ckpt_dir, "last.pt"), os.path.join(ckpt_dir, "best.pt")
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.crop is not None and cfg.crop < 16:
        raise ValueError(
            f"{name}: crop {cfg.crop} is too small; the shared loss's SSIM needs at least 11x11 and the UNets 16x16"
        )
    epoch_ds = _Repeat(train_ds, cfg.crops_per_pair) if cfg.crops_per_pair > 1 else train_ds
    net = None
    if D.active():
        # Lazy initialisations (FusionINN's ActNorm) must see the same batch on every rank, and
        # BatchNorm is synchronised where it can be (SyncBatchNorm needs CUDA).
        first = [train_ds[i] for i in range(min(len(train_ds), cfg.batch_size))]
        x1, x2 = torch.stack([b["x1"] for b in first]).to(device), torch.stack([b["x2"] for b in first]).to(device)
        if cfg.crop is not None:
            x1, x2 = random_patches(x1, x2, cfg.crop, False, torch.Generator().manual_seed(cfg.seed))
        with torch.no_grad():
            model_loss(model, _to(x1, device, cfg), _to(x2, device, cfg), cfg.loss)
        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = torch.nn.parallel.DistributedDataParallel(
            _LossModule(model, cfg.loss), device_ids=[device.index] if device.type == "cuda" else None
        )
    per_rank = max(1, cfg.batch_size // D.world()) if D.active() else cfg.batch_size
    n_local = math.ceil(len(epoch_ds) / D.world()) if D.active() else len(epoch_ds)
    steps_per_epoch = n_local // per_rank if cfg.reference_quirks else math.ceil(n_local / per_rank)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = _scheduler(opt, cfg, steps_per_epoch)
    state = {"epoch": 0, "best": math.inf, "history": []}
    D.barrier()
    if resume and os.path.exists(last_path):
        try:
            ck = load_checkpoint(last_path, device)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            state = {"epoch": int(ck["epoch"]), "best": float(ck["best"]), "history": list(ck["history"])}
            log(
                f"[fusionbench] resuming {name} from {last_path} (written {written_at(last_path)}): "
                f"{state['epoch']} of {cfg.epochs} epoch{'s' * (cfg.epochs != 1)} done"
            )
        except (ValueError, KeyError, RuntimeError) as e:  # a damaged checkpoint: say so, start again
            log(f"[fusionbench] {name}: cannot resume from {last_path} ({e}); training from the start")
            for f in (last_path, best_path):
                if os.path.exists(f):
                    os.remove(f)
    if len(train_ds) < cfg.batch_size and cfg.reference_quirks:
        raise ValueError(
            f"{name}: {len(train_ds)} training pairs is fewer than one batch of {cfg.batch_size} with drop_last"
        )
    end = cfg.epochs if stop_after_epochs is None else min(cfg.epochs, state["epoch"] + stop_after_epochs)
    steps = state["history"][-1].get("step", 0) if state["history"] else 0
    t_start, steps_here = time.perf_counter(), 0  # for the time left to the end of training
    for epoch in range(state["epoch"], end):
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
        crops = torch.Generator().manual_seed(cfg.seed * 104_723 + epoch * 31 + D.rank())
        if D.active():
            sampler = torch.utils.data.DistributedSampler(
                epoch_ds,
                D.world(),
                D.rank(),
                shuffle=not cfg.reference_quirks,
                seed=cfg.seed,
                drop_last=cfg.reference_quirks,
            )
            sampler.set_epoch(epoch)
            loader = torch.utils.data.DataLoader(
                epoch_ds,
                batch_size=per_rank,
                sampler=sampler,
                drop_last=cfg.reference_quirks,
                num_workers=cfg.num_workers,
            )
        else:
            loader = _loader(
                epoch_ds,
                cfg.batch_size,
                not cfg.reference_quirks,
                gen if not cfg.reference_quirks else None,
                cfg.reference_quirks,
                cfg.num_workers,
            )
        model.train()
        t0, seen, run_loss, term_sums = time.perf_counter(), 0, 0.0, {}
        bar = tqdm(loader, desc=f"{name} epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
        for i, batch in enumerate(bar):
            x1, x2 = batch["x1"], batch["x2"]
            if cfg.crop is not None:
                x1, x2 = random_patches(x1, x2, cfg.crop, cfg.flip, crops)
            x1, x2 = _to(x1, device, cfg), _to(x2, device, cfg)
            with _autocast(device, cfg.amp):
                if net is not None:
                    terms = {"total": net(x1, x2)}
                else:
                    terms = model_terms(model, x1, x2, cfg.loss)
            loss = terms["total"]
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{name}: training loss became {float(loss.detach())} at epoch {epoch + 1}, step {i + 1}; lower "
                    f"its learning rate ({cfg.lr:g}; e.g. --set per_model={name}.lr=...) or check "
                    "the data"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if cfg.schedule == "cosine":
                sched.step()
            steps += 1
            seen += x1.shape[0]
            for k, v in terms.items():
                term_sums[k] = term_sums.get(k, 0.0) + float(v.detach()) * x1.shape[0]
            steps_here += 1
            now = time.perf_counter()
            left = (now - t_start) / steps_here * ((len(bar) - i - 1) + (end - epoch - 1) * len(bar))
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", img_s=f"{seen / (now - t0):.1f}", left=_clock(left))
        run_loss = term_sums.get("total", 0.0)
        val_mean, val_last, val_extra = evaluate_loss(model, val_ds, cfg, device)
        if cfg.schedule == "plateau":
            sched.step(val_last if cfg.reference_quirks else val_mean)
        rec = {
            "epoch": epoch + 1,
            "step": steps,
            "train_loss": run_loss / max(seen, 1),
            "val_loss": val_mean,
            "lr": opt.param_groups[0]["lr"],
            "seconds": time.perf_counter() - t0,
            "images_per_s": seen / max(time.perf_counter() - t0, 1e-9),
        }
        rec.update({f"train_{k}": v / max(seen, 1) for k, v in term_sums.items() if k != "total"})
        rec.update({f"val_{k}": v for k, v in val_extra.items()})
        state["history"].append(rec)
        if val_mean < state["best"]:
            state["best"] = val_mean
            save_checkpoint(best_path, model.state_dict())
        save_checkpoint(
            last_path,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "epoch": epoch + 1,
                "best": state["best"],
                "history": state["history"],
            },
        )
        D.barrier()
    if os.path.exists(best_path) and (stop_after_epochs is None or end == cfg.epochs):
        model.load_state_dict(load_checkpoint(best_path, device))
    if cfg.channels_last:
        model.to(memory_format=torch.contiguous_format)
    if end == cfg.epochs and D.is_main():
        write_json(
            os.path.join(ckpt_dir, "train.json"),
            {
                "config": {**asdict(cfg), "loss": asdict(cfg.loss)},
                "best_val_loss": state["best"],
                "history": state["history"],
            },
        )
    return state
