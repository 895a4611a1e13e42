"""The shared fusion loss of every trainable fuser (docs/reference.md §2).

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


def pair_loss(
    a: torch.Tensor, x1: torch.Tensor, b: torch.Tensor, x2: torch.Tensor, cfg: LossConfig = LossConfig()
) -> torch.Tensor:
    """lambda [w (1 - SSIM(a, x1)) + (1 - w)(1 - SSIM(b, x2))] + (1 - lambda)[w MSE(a, x1) + (1 - w) MSE(b, x2)].

    The fusion loss is ``pair_loss(F, x1, F, x2)``; FusionINN's decomposition loss is
    ``pair_loss(x1_hat, x1, x2_hat, x2)``. Images float (B, 1, H, W); a scalar (mean over the batch).
    """
    a, b, x1, x2 = a.float(), b.float(), x1.float(), x2.float()  # never computed in bf16 (see metrics.ssim.ssim)
    s1, s2 = ssim(a, x1).mean(), ssim(b, x2).mean()
    m1, m2 = torch.mean((a - x1) ** 2), torch.mean((b - x2) ** 2)
    return cfg.lam * (cfg.w * (1 - s1) + (1 - cfg.w) * (1 - s2)) + (1 - cfg.lam) * (cfg.w * m1 + (1 - cfg.w) * m2)


def fusion_loss(
    fused: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, cfg: LossConfig = LossConfig()
) -> torch.Tensor:
    """Scalar fusion loss (mean over the batch). All images float (B, 1, H, W); x1 = T1-Gd, x2 = FLAIR."""
    return pair_loss(fused, x1, fused, x2, cfg)
