"""UNet++ (Zhou et al., DLMIA 2018) without deep supervision, as in docs/reference.md §4.

Nested, dense skip pathways: node X(i, j) = DC(concat(X(i, 0..j-1), up(X(i+1, j-1)))), filters
64, 128, 256, 512, 1024, bilinear upsampling, output from X(0, 4) through a 1x1 conv and sigmoid.
DC = (conv3x3-BN-ReLU) x 2. 36,629,057 parameters at full width; ``width`` scales the filters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.blocks import crop_to, double_conv, pad_to_multiple, widths
from baselines.registry import register_fuser


class UNetPP(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        c = widths([64, 128, 256, 512, 1024], width)
        self.c = c
        nodes = {}
        for i in range(5):
            nodes[f"{i}_0"] = double_conv(2 if i == 0 else c[i - 1], c[i])
        for j in range(1, 5):
            for i in range(0, 5 - j):
                nodes[f"{i}_{j}"] = double_conv(c[i] * j + c[i + 1], c[i])
        self.nodes = nn.ModuleDict(nodes)
        self.head = nn.Conv2d(c[0], 1, 1)

    def forward(self, x1, x2):
        """Fused (B, 1, H, W) in [0, 1] from x1 = T1-Gd and x2 = FLAIR (float, [0, 1])."""
        x, size = pad_to_multiple(torch.cat([x1, x2], 1), 16)
        X = {}
        for i in range(5):
            X[(i, 0)] = self.nodes[f"{i}_0"](x if i == 0 else F.max_pool2d(X[(i - 1, 0)], 2))
        up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=True)
        for j in range(1, 5):
            for i in range(0, 5 - j):
                X[(i, j)] = self.nodes[f"{i}_{j}"](
                    torch.cat([X[(i, k)] for k in range(j)] + [up(X[(i + 1, j - 1)])], 1)
                )
        return crop_to(torch.sigmoid(self.head(X[(0, 4)])), size)


@register_fuser(
    "unet++",
    kind="discriminative",
    trainable=True,
    reference="Zhou et al., DLMIA 2018",
    batch_size=64,
    display="UNet++",
    order=14,
    config={"width": "width"},
    params=36_629_057,
)
def unet_pp(width: float = 1.0):
    """UNet++: nested dense skip pathways."""
    return UNetPP(width)
