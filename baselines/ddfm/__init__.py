"""DDFM (Zhao et al., ICCV 2023): a diffusion prior (model), a DDIM sampler (loop) and the EM
fusion step (pure function), registered as the generative fuser ``ddfm``.

Sources are min-max normalised [0, 1] images like for every other fuser (the reference divides the
raw HDF5 values by 255 instead; docs/reference.md §5), zero-padded to the prior's size and mapped to [-1, 1];
the result is cropped back and mapped to [0, 1]. x1 = T1-Gd plays the EM step's I and x2 = FLAIR
its V. A 3-channel (RGB) prior sees the grey sources replicated and returns the mean of its channels.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.ddfm.em_fusion import EMState, em_step
from baselines.ddfm.prior import DiffusionPrior, from_model_space, load_prior, to_model_space
from baselines.ddfm.sampler import ddfm_sample
from baselines.registry import register_fuser

__all__ = ["DDFM", "DiffusionPrior", "EMState", "em_step", "load_prior"]  # the model, its prior and the pure EM step


class DDFM(nn.Module):
    """DDFM with a diffusion prior: a :class:`DiffusionPrior`, or ``prior_path``, a local diffusers
    ``UNet2DModel`` folder. Without either it has no prior (``prior is None``): the benchmark trains
    one with its trainer and sets :attr:`prior`; DDFM never falls back to random weights."""

    def __init__(
        self, steps: int = 100, prior: DiffusionPrior | None = None, prior_path: str | None = None, seed: int = 3407
    ):
        super().__init__()
        self.steps, self.prior_path, self.seed = steps, prior_path, seed  # reference: seed 3407 for every image
        self.prior: DiffusionPrior | None = (
            prior if prior is not None else (load_prior(prior_path) if prior_path else None)
        )

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Fused (B, 1, H, W) in [0, 1] from x1 = T1-Gd and x2 = FLAIR (float, [0, 1])."""
        if self.prior is None:
            raise RuntimeError(
                "DDFM has no diffusion prior: train one (bench run does) or pass --ddfm-prior PATH; it never "
                "falls back to random weights"
            )
        h, w = x1.shape[-2:]
        i, v = to_model_space(x1.float(), self.prior.size), to_model_space(x2.float(), self.prior.size)
        c = self.prior.unet.config.in_channels
        if c == 3:
            i, v = i.expand(-1, 3, -1, -1), v.expand(-1, 3, -1, -1)
        self.prior.eval()
        out = ddfm_sample(self.prior, i, v, self.steps, self.seed)
        return from_model_space(out.mean(1, keepdim=True), h, w)


@register_fuser(
    "ddfm",
    kind="generative",
    trainable=False,
    reference="Zhao et al., ICCV 2023",
    batch_size=16,
    display="DDFM",
    order=16,
    config={"steps": "ddfm_steps", "prior_path": "ddfm_prior"},
    params=0,
)
def ddfm(steps: int = 100, prior_path: str | None = None):
    """DDFM: diffusion sampling with an EM fusion step (prior trained here or loaded locally)."""
    return DDFM(steps, prior_path=prior_path)
