"""Half-UNet (Lu et al., Frontiers in Neuroinformatics 2022) as in docs/reference.md §4.

    [x1, x2] --E1(240)--pool--E2(120)--pool--E3(60)--pool--E4(30)--pool--E5(15)     (64 channels each)
                 |            |            |            |            |
                 +------------+--- full-scale fusion (upsample to 240) --+-- 1x1 conv -> 1 -- sigmoid

Each encoder block is conv3x3 -> BN -> ReLU -> conv3x3 at 64 channels (the reference's "ghost"
blocks, whose depthwise branch is computed and discarded). ``variant="paper"`` (default) fuses the
full-scale features by summation as the Half-UNet paper does (64 -> 1 head, 334,273 parameters);
``variant="reference"`` cascades upsample-and-concatenate like the FusionINN authors' code
(128 -> 192 -> 256 -> 320 channels, 320 -> 1 head) and keeps its ten inert depthwise 3x3
convolutions on 32 channels (3,200 parameters that never receive a gradient), giving exactly the
reference count of 337,729. Upsampling is bilinear with align_corners=True as in the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.blocks import crop_to, pad_to_multiple, widths
from baselines.registry import register_fuser


class _Block(nn.Module):
    def __init__(self, cin, c, inert: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        # The reference's ghost modules build a depthwise 3x3 conv on half the channels and discard its output.
        self.inert = (
            nn.ModuleList([nn.Conv2d(c // 2, c // 2, 3, padding=1, groups=c // 2) for _ in range(2)]) if inert else None
        )

    def forward(self, x):
        return self.conv2(F.relu(self.bn(self.conv1(x))))


class HalfUNet(nn.Module):
    def __init__(self, variant: str = "paper", width: float = 1.0):
        super().__init__()
        if variant not in ("paper", "reference"):
            raise ValueError(f"Half-UNet variant must be 'paper' or 'reference'; got {variant!r}")
        self.variant = variant
        (c,) = widths([64], width)
        self.blocks = nn.ModuleList([_Block(2 if i == 0 else c, c, variant == "reference") for i in range(5)])
        self.head = nn.Conv2d(c if variant == "paper" else 5 * c, 1, 1)

    def forward(self, x1, x2):
        """Fused (B, 1, H, W) in [0, 1] from x1 = T1-Gd and x2 = FLAIR (float, [0, 1])."""
        x, size = pad_to_multiple(torch.cat([x1, x2], 1), 16)
        feats = []
        for i, blk in enumerate(self.blocks):
            x = blk(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        full = feats[0].shape[-2:]
        up = lambda t, s: F.interpolate(t, size=s, mode="bilinear", align_corners=True)
        if self.variant == "paper":
            y = sum(up(f, full) if f.shape[-2:] != full else f for f in feats)
        else:
            y = feats[-1]
            for f in reversed(feats[:-1]):
                y = torch.cat([up(y, f.shape[-2:]), f], 1)
        return crop_to(torch.sigmoid(self.head(y)), size)


@register_fuser(
    "half-unet",
    kind="discriminative",
    trainable=True,
    reference="Lu et al., Front. Neuroinform. 2022",
    batch_size=64,
    display="Half-UNet",
    order=12,
    params=334_273,
)
def half_unet(variant: str = "paper"):
    """Half-UNet: one-path encoder, full-scale feature fusion (0.34M parameters: always full width)."""
    return HalfUNet(variant)
