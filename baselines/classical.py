"""Pixel-wise sanity anchors shown on every leaderboard: ``mean`` and ``max``."""
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


@register_fuser("mean", kind="classical", trainable=False, reference="pixel-wise average (sanity anchor)")
def mean_fuser():
    """Pixel-wise mean of the two sources."""
    return MeanFuser()


@register_fuser("max", kind="classical", trainable=False, reference="pixel-wise maximum (sanity anchor)")
def max_fuser():
    """Pixel-wise maximum of the two sources."""
    return MaxFuser()
