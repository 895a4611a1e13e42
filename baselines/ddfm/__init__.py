"""DDFM (Zhao et al., ICCV 2023): a diffusion prior (model), a DDIM sampler (loop) and the EM
fusion step (pure function), registered as the generative fuser ``ddfm``.

Sources are min-max normalised [0, 1] images like for every other fuser (the reference divides the
raw HDF5 values by 255 instead; SPEC §5), zero-padded to the prior's size and mapped to [-1, 1];
the result is cropped back and mapped to [0, 1]. x1 = T1-Gd plays the EM step's I and x2 = FLAIR
its V. A 3-channel (RGB) prior sees the grey sources replicated and returns the mean of its channels.
"""
from __future__ import annotations

import dataclasses
import json
import os

import torch
from torch import nn

from baselines.ddfm.em_fusion import EMState, em_step
from baselines.ddfm.prior import DiffusionPrior, from_model_space, load_prior, to_model_space
from baselines.ddfm.sampler import ddfm_sample
from baselines.registry import register_fuser


class DDFM(nn.Module):
    def __init__(self, steps: int = 100, prior_path: str | None = None, prior_epochs: int = 20, prior_channels: str = "32,64,64", seed: int = 3407):
        super().__init__()
        self.steps, self.prior_path, self.prior_epochs, self.seed = steps, prior_path, prior_epochs, seed  # reference: 3407 for every image
        self.prior_channels = tuple(int(c) for c in str(prior_channels).split(","))
        self.prior: DiffusionPrior | None = load_prior(prior_path) if prior_path else None

    def fit_prior(self, train_ds, val_ds, cfg, mdir: str, device, progress: bool = True) -> None:
        """Train (or reuse) the prior in ``mdir/prior`` with the shared trainer, unless one was given."""
        if self.prior is not None:
            self.prior.to(device)
            return
        from baselines.loss import LossConfig
        from benchmark.trainer import TrainConfig, load_checkpoint, train

        pdir = os.path.join(mdir, "prior")
        folder = os.path.join(pdir, "unet")
        torch.manual_seed(cfg.seed)
        prior = DiffusionPrior(channels=self.prior_channels)
        if os.path.exists(os.path.join(folder, "config.json")) and os.path.exists(os.path.join(pdir, "train.json")):
            self.prior = load_prior(folder).to(device)
            return
        batch = min(16, cfg.max_batch or 16)
        tcfg = TrainConfig(self.prior_epochs, batch, 1e-3 if cfg.profile != "paper" else 3e-4, cfg.plateau_factor, cfg.plateau_patience, cfg.seed, cfg.amp, LossConfig(), False, cfg.num_workers,
                           crop=cfg.crop, flip=cfg.flip, crops_per_pair=cfg.crops_per_pair)
        train(prior, train_ds, val_ds, tcfg, pdir, device, resume=True, progress=progress, name="ddfm prior")
        from benchmark import distributed as D

        if D.is_main():  # rank 0 alone writes in a multi-process run
            prior.unet.save_pretrained(folder)
        D.barrier()
        self.prior = prior.to(device)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Fused (B, 1, H, W) in [0, 1] from x1 = T1-Gd and x2 = FLAIR (float, [0, 1])."""
        if self.prior is None:
            raise RuntimeError("DDFM has no diffusion prior: train one (bench run does) or pass --ddfm-prior PATH; it never falls back to random weights")
        h, w = x1.shape[-2:]
        i, v = to_model_space(x1.float(), self.prior.size), to_model_space(x2.float(), self.prior.size)
        c = self.prior.unet.config.in_channels
        if c == 3:
            i, v = i.expand(-1, 3, -1, -1), v.expand(-1, 3, -1, -1)
        self.prior.eval()
        out = ddfm_sample(self.prior, i, v, self.steps, self.seed)
        return from_model_space(out.mean(1, keepdim=True), h, w)


@register_fuser("ddfm", kind="generative", trainable=False, reference="Zhao et al., ICCV 2023", batch_size=16)
def ddfm(steps: int = 100, prior_path: str | None = None, prior_epochs: int = 20, prior_channels: str = "32,64,64"):
    """DDFM: diffusion sampling with an EM fusion step (prior trained here or loaded locally)."""
    return DDFM(steps, prior_path, prior_epochs, prior_channels)
