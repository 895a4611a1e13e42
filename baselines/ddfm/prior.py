"""DDFM's diffusion prior (a model): a small unconditional diffusers ``UNet2DModel``.

The ImageNet prior of the reference cannot be downloaded here. ``DiffusionPrior`` wraps a
``UNet2DModel`` trained with ``DDPMScheduler`` (linear betas 1e-4..0.02, 1000 steps, epsilon
prediction) on the training split's source slices, both modalities as separate samples, zero
padded to ``size`` and mapped to [-1, 1]. It is trained by the shared trainer (its ``loss`` is the
denoising loss), so it gets checkpoints, resume, progress and device handling for free, and is
saved as a diffusers folder. ``load_prior(path)`` reads any local diffusers ``UNet2DModel``
folder; nothing is ever downloaded (``local_files_only``).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from baselines.blocks import pad_to_multiple


def to_model_space(x: torch.Tensor, size: int) -> torch.Tensor:
    """[0, 1] (B, 1, H, W) -> zero-padded to size x size (centred), then mapped to [-1, 1] (padding -> -1)."""
    h, w = x.shape[-2:]
    if h > size or w > size:
        raise ValueError(f"images are {h}x{w}; the DDFM prior works on {size}x{size} (use a larger prior)")
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top)) * 2 - 1


def from_model_space(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    size = x.shape[-1]
    top, left = (x.shape[-2] - h) // 2, (size - w) // 2
    return ((x[..., top : top + h, left : left + w] + 1) / 2).clamp(0, 1)


class DiffusionPrior(nn.Module):
    def __init__(self, size: int = 256, channels=(32, 64, 64), unet=None):
        super().__init__()
        from diffusers import DDPMScheduler, UNet2DModel

        self.size = size
        self.unet = unet or UNet2DModel(
            sample_size=size,
            in_channels=1,
            out_channels=1,
            layers_per_block=1,
            block_out_channels=tuple(channels),
            down_block_types=("DownBlock2D",) * len(channels),
            up_block_types=("UpBlock2D",) * len(channels),
            norm_num_groups=min(8, min(channels)),
        )
        self.noise = DDPMScheduler(
            num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", prediction_type="epsilon"
        )

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, t).sample

    def loss(self, x1, x2, cfg=None) -> torch.Tensor:
        """Denoising loss on both modalities (the trainer's hook). Whole slices are padded to the
        prior's size as at sampling time; patches (at most half that size, from a trainer with
        ``crop``) are only mapped to [-1, 1]: the UNet is convolutional, and patches make the prior
        about 16x cheaper to train on a CPU."""
        x = torch.cat([x1, x2], 0)
        if max(x.shape[-2:]) <= self.size // 2:  # a patch: padded (zero, -1 once mapped, as a slice's border) to what
            x0 = pad_to_multiple(x, 2 ** (len(self.unet.config.block_out_channels) - 1))[0] * 2 - 1  # the UNet halves
        else:
            x0 = to_model_space(x, self.size)
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (x0.shape[0],), device=x0.device)
        x_t = self.noise.add_noise(x0, noise, t)
        return F.mse_loss(self(x_t, t), noise)


def check_prior_folder(path: str) -> None:
    """Fail loudly unless ``path`` looks like a local diffusers ``UNet2DModel`` folder."""
    if not os.path.isdir(path) or not os.path.exists(os.path.join(path, "config.json")):
        raise FileNotFoundError(
            f"--ddfm-prior {path}: not a diffusers UNet2DModel folder (expected config.json and weights); DDFM "
            "will not fall back to random weights"
        )


def check_channels(text: str) -> tuple[int, ...]:
    """``ddfm_prior_channels`` ("32,64,64") as the prior UNet's block widths: whole numbers >= 1,
    each a multiple of its GroupNorm's group count (``min(8, smallest)``)."""
    try:
        channels = tuple(int(c) for c in str(text).split(","))
    except ValueError:
        channels = ()
    groups = min(8, min(channels)) if channels and min(channels) >= 1 else 0
    if not groups or any(c % groups for c in channels):
        raise ValueError(
            f"config field ddfm_prior_channels = {text!r}: expected comma-separated whole numbers >= 1, each a "
            "multiple of min(8, the smallest) (the prior UNet's GroupNorm groups), e.g. 32,64,64"
        )
    return channels


def load_prior(path: str) -> DiffusionPrior:
    """A local diffusers ``UNet2DModel`` folder (config.json + weights) as a prior; fails loudly."""
    from diffusers import UNet2DModel

    check_prior_folder(path)
    # low_cpu_mem_usage=False: what diffusers does anyway without accelerate, minus its advice to install it
    unet = UNet2DModel.from_pretrained(path, local_files_only=True, low_cpu_mem_usage=False)
    if unet.config.in_channels not in (1, 3) or unet.config.out_channels != unet.config.in_channels:
        raise ValueError(
            f"--ddfm-prior {path}: in/out channels {unet.config.in_channels}/{unet.config.out_channels}; "
            "expected 1 (grey) or 3 (RGB)"
        )
    size = unet.config.sample_size if isinstance(unet.config.sample_size, int) else unet.config.sample_size[0]
    return DiffusionPrior(size=size, unet=unet)
