"""The shared fusion loss of every trainable fuser (SPEC §2).

L = lambda [w (1 - SSIM(F, x1)) + (1 - w)(1 - SSIM(F, x2))] + (1 - lambda)[w MSE(F, x1) + (1 - w) MSE(F, x2)]
with the Gaussian SSIM of ``pytorch_msssim.ssim`` (11x11, sigma 1.5, K 0.01/0.03, valid filtering,
data range 1, mean over the map), lambda = 0.8 and w = 0.5 as in the reference code (the paper
writes plain sums, i.e. w = 1 without the 1 - w).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from metrics.ssim import ssim


@dataclass(frozen=True)
class LossConfig:
    lam: float = 0.8
    w: float = 0.5


def fusion_loss(fused: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, cfg: LossConfig = LossConfig()) -> torch.Tensor:
    """Scalar fusion loss (mean over the batch). All images float (B, 1, H, W); x1 = T1-Gd, x2 = FLAIR."""
    fused, x1, x2 = fused.float(), x1.float(), x2.float()  # the loss is never computed in bf16 (see metrics.ssim.ssim)
    s1, s2 = ssim(fused, x1).mean(), ssim(fused, x2).mean()
    m1, m2 = torch.mean((fused - x1) ** 2), torch.mean((fused - x2) ** 2)
    return cfg.lam * (cfg.w * (1 - s1) + (1 - cfg.w) * (1 - s2)) + (1 - cfg.lam) * (cfg.w * m1 + (1 - cfg.w) * m2)
