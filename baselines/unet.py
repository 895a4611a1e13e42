"""UNet (Ronneberger, Fischer & Brox, MICCAI 2015), the classic net of docs/reference.md §4.

    [x1, x2] -> DC(64) -> DC(128) -> DC(256) -> DC(512) -> DC(1024)      (max-pool between)
                  |         |          |          |          |
              up: transposed 2x2 conv, concatenate the skip, DC(512) -> DC(256) -> DC(128) -> DC(64) -> 1x1 conv -> 1

DC = (conv3x3-BN-ReLU) x 2. 31,042,945 parameters at full width (the reference count); the head is
linear as in the reference (trained on the raw output, clamped to [0, 1] when fusing).
``width`` scales every channel count (the ``quick`` profile uses 1/4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.blocks import RawOutputLoss, crop_to, double_conv, pad_to_multiple, widths
from baselines.registry import register_fuser


class UNet(RawOutputLoss, nn.Module):
    def __init__(self, width: float = 1.0, loss_on: str = "raw"):
        super().__init__()
        c = widths([64, 128, 256, 512, 1024], width)
        self.down = nn.ModuleList([double_conv(2 if i == 0 else c[i - 1], c[i]) for i in range(5)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(c[i], c[i - 1], 2, stride=2) for i in range(4, 0, -1)])
        self.dec = nn.ModuleList([double_conv(2 * c[i - 1], c[i - 1]) for i in range(4, 0, -1)])
        self.head = nn.Conv2d(c[0], 1, 1)
        if loss_on not in ("raw", "clamped"):
            raise ValueError(f"unet loss_on must be 'raw' (the reference) or 'clamped'; got {loss_on!r}")
        self.loss_on = loss_on

    def raw(self, x1, x2):
        """Linear output (B, 1, H, W) from x1 = T1-Gd and x2 = FLAIR (float, [0, 1])."""
        x, size = pad_to_multiple(torch.cat([x1, x2], 1), 16)
        skips = []
        for i, d in enumerate(self.down):
            x = d(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips[:-1])):
            x = dec(torch.cat([skip, up(x)], 1))
        return crop_to(self.head(x), size)


@register_fuser(
    "unet",
    kind="discriminative",
    trainable=True,
    reference="Ronneberger et al., MICCAI 2015",
    batch_size=64,
    display="UNet",
    order=13,
    config={"width": "width"},
    params=31_042_945,
)
def unet(width: float = 1.0, loss_on: str = "raw"):
    """UNet: the classic encoder-decoder with skip connections."""
    return UNet(width, loss_on)
