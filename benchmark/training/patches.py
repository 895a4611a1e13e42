"""Random training patches: the same crop and flips for both sources of a pair.

Fully convolutional fusers are trained on patches in the field (DeepFuse on 64x64, CDDFuse on
128x128): many more optimiser steps per second on a CPU than whole 240x240 slices, and the nets
see every position. Validation, fusing and scoring always use whole slices.
"""

from __future__ import annotations

import torch


def random_patches(
    x1: torch.Tensor, x2: torch.Tensor, size: int, flip: bool = False, generator: torch.Generator | None = None
):
    """One random ``size`` x ``size`` patch per pair, the same window (and flips) for x1 and x2.

    x1, x2: float (B, 1, H, W) in [0, 1] (x1 = T1-Gd, x2 = FLAIR). With ``flip``, each pair is
    flipped left-right and up-down with probability 1/2 each. Draws come from ``generator``
    (CPU), so a seeded epoch gives the same patches. Returns two (B, 1, size, size) tensors.
    """
    if x1.shape != x2.shape:
        raise ValueError(f"x2 has shape {tuple(x2.shape)}; expected {tuple(x1.shape)} like x1")
    b, _, h, w = x1.shape
    if size > h or size > w:
        raise ValueError(
            f"crop {size} is larger than the images ({h}x{w}); use a crop of at most {min(h, w)} or crop=None"
        )
    top = torch.randint(0, h - size + 1, (b,), generator=generator)
    left = torch.randint(0, w - size + 1, (b,), generator=generator)
    ar = torch.arange(size)
    rows, cols = top[:, None] + ar, left[:, None] + ar
    if flip:
        fv, fh = torch.rand(b, generator=generator) < 0.5, torch.rand(b, generator=generator) < 0.5
        rows = torch.where(fv[:, None], rows.flip(1), rows)
        cols = torch.where(fh[:, None], cols.flip(1), cols)
    rows, cols = rows.to(x1.device), cols.to(x1.device)
    bi = torch.arange(b, device=x1.device)[:, None, None]
    # Advanced indexing gathers every patch at once: (B, size, size) per source.
    p1 = x1[:, 0][bi, rows[:, :, None], cols[:, None, :]]
    p2 = x2[:, 0][bi, rows[:, :, None], cols[:, None, :]]
    return p1[:, None].contiguous(), p2[:, None].contiguous()
