"""Building blocks shared by the baselines: padding to a multiple, conv-BN-ReLU, widths."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_to_multiple(x: torch.Tensor, multiple: int):
    """Zero-pad (B, C, H, W) on the bottom/right to a multiple of ``multiple``; returns (x, (H, W)).

    240 = 15 x 2^4, so four 2x downsamplings divide it; a user's 256x256 or 217x181 image is padded
    and the output cropped back with :func:`crop_to`, so any size works.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, (h, w)


def crop_to(x: torch.Tensor, size) -> torch.Tensor:
    return x[..., : size[0], : size[1]]


def widths(base, width: float) -> list[int]:
    """Channel widths scaled by ``width`` (at least 1 channel each)."""
    return [max(1, int(round(c * width))) for c in base]


def conv_bn_relu(cin: int, cout: int, k: int = 3, bias: bool = True) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def double_conv(cin: int, cout: int, bias: bool = True) -> nn.Sequential:
    """(conv3x3-BN-ReLU) x 2, the classic UNet block."""
    return nn.Sequential(conv_bn_relu(cin, cout, 3, bias), conv_bn_relu(cout, cout, 3, bias))


class RawOutputLoss:
    """Mixin for fusers trained on an unclamped output (DeepFuse's tanh, UNet's linear head, docs/reference.md §4):
    ``raw(x1, x2)`` goes into the loss; ``forward`` clamps to [0, 1] for fusing and scoring.

    ``loss_on = "clamped"`` (an option; the reference trains on the raw output) puts the clamped
    output, the image that is fused and scored, into the loss instead: UNet's linear head trained
    on raw values keeps leaving good states under the SSIM loss on a CPU budget (its learning curves
    in results/README.md), while the clamped form trains smoothly."""

    loss_on = "raw"

    def loss(self, x1, x2, cfg):
        from baselines.loss import fusion_loss

        out = self.raw(x1, x2)
        return fusion_loss(out.clamp(0, 1) if self.loss_on == "clamped" else out, x1, x2, cfg)

    def forward(self, x1, x2):
        return self.raw(x1, x2).clamp(0, 1)
