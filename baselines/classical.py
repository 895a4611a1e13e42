"""Sanity anchors shown on every leaderboard: ``mean`` and ``max`` (pixel-wise rules) and
``copy-x1`` / ``copy-x2`` (the fused image is one source: what a method that fuses nothing scores
under each metric; Q_SSIM alone cannot tell copying from fusing, the per-source columns can)."""

from __future__ import annotations

import torch

from baselines.registry import register_fuser


class MeanFuser(torch.nn.Module):
    """Pixel-wise mean (x1 + x2) / 2 of float (B, 1, H, W) images in [0, 1]."""

    def forward(self, x1, x2):
        return (x1 + x2) / 2


class MaxFuser(torch.nn.Module):
    """Pixel-wise maximum of float (B, 1, H, W) images in [0, 1]."""

    def forward(self, x1, x2):
        return torch.maximum(x1, x2)


@register_fuser(
    "mean",
    kind="classical",
    trainable=False,
    reference="pixel-wise average (sanity anchor)",
    display="Mean",
    order=0,
    params=0,
)
def mean_fuser():
    """Pixel-wise mean of the two sources."""
    return MeanFuser()


@register_fuser(
    "max",
    kind="classical",
    trainable=False,
    reference="pixel-wise maximum (sanity anchor)",
    display="Max",
    order=1,
    params=0,
)
def max_fuser():
    """Pixel-wise maximum of the two sources."""
    return MaxFuser()


class CopyFuser(torch.nn.Module):
    """Returns one source unchanged: ``source=1`` (T1-Gd) or ``source=2`` (FLAIR); (B, 1, H, W) in [0, 1]."""

    def __init__(self, source: int):
        super().__init__()
        if source not in (1, 2):
            raise ValueError(f"source must be 1 (T1-Gd) or 2 (FLAIR); got {source!r}")
        self.source = source

    def forward(self, x1, x2):
        return (x1 if self.source == 1 else x2).clone()


@register_fuser(
    "copy-x1",
    kind="classical",
    trainable=False,
    reference="the T1-Gd source itself (anchor: no fusion)",
    display="Copy T1-Gd",
    order=2,
    params=0,
)
def copy_x1():
    """Copies T1-Gd: what fusing nothing scores."""
    return CopyFuser(1)


@register_fuser(
    "copy-x2",
    kind="classical",
    trainable=False,
    reference="the FLAIR source itself (anchor: no fusion)",
    display="Copy FLAIR",
    order=3,
    params=0,
)
def copy_x2():
    """Copies FLAIR: what fusing nothing scores."""
    return CopyFuser(2)
