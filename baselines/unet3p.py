"""UNet3+ (Huang et al., ICASSP 2020) without deep supervision, as in docs/reference.md §4.

UNet encoder (64 ... 1024, DC blocks). Each decoder level d fuses five full-scale branches of
64 channels: shallower encoder maps max-pooled down, the same-level encoder map, deeper decoder
maps (and the bottleneck) bilinearly upsampled, each conv3x3-BN-ReLU to 64 channels; the 320
channels are fused by conv3x3-BN-ReLU. The output is a 3x3 conv and sigmoid.
26,971,201 parameters at full width; ``width`` scales every channel count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.blocks import conv_bn_relu, crop_to, double_conv, pad_to_multiple, widths
from baselines.registry import register_fuser


class UNet3P(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        c = widths([64, 128, 256, 512, 1024], width)
        (cat,) = widths([64], width)
        self.enc = nn.ModuleList([double_conv(2 if i == 0 else c[i - 1], c[i]) for i in range(5)])
        # decoder level d (3, 2, 1, 0): inputs from encoder levels 0..d and decoder/bottleneck levels d+1..4
        self.branches = nn.ModuleDict()
        self.fuse = nn.ModuleDict()
        for d in range(3, -1, -1):
            for s in range(5):
                cin = c[s] if (s <= d or s == 4) else 5 * cat
                self.branches[f"{d}_{s}"] = conv_bn_relu(cin, cat)
            self.fuse[str(d)] = conv_bn_relu(5 * cat, 5 * cat)
        self.head = nn.Conv2d(5 * cat, 1, 3, padding=1)

    @staticmethod
    def _up_branch(branch, x, scale, limit: int = 2**30):
        """conv-BN-ReLU of a bilinearly upsampled map. At the paper's batch 64 the bottleneck upsampled
        16x is 64 x 1024 x 240 x 240 > 2^31 elements, which CUDA's upsampling kernels reject; the
        convolution is linear in its input channels, so it is summed over channel groups instead
        (the same result up to float summation order, and far less memory)."""
        conv, bn, act = branch
        b, c, h, w = x.shape
        per_channel = b * h * w * scale * scale
        if per_channel * c <= limit:
            return branch(F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=True))
        g = max(1, limit // per_channel)
        y = None
        for s in range(0, c, g):
            up = F.interpolate(x[:, s : s + g], scale_factor=scale, mode="bilinear", align_corners=True)
            part = F.conv2d(up, conv.weight[:, s : s + g], None, padding=conv.padding)
            y = part if y is None else y + part
        return act(bn(y + conv.bias.view(1, -1, 1, 1)))

    def forward(self, x1, x2):
        """Fused (B, 1, H, W) in [0, 1] from x1 = T1-Gd and x2 = FLAIR (float, [0, 1])."""
        x, size = pad_to_multiple(torch.cat([x1, x2], 1), 16)
        e = []
        for i, blk in enumerate(self.enc):
            x = blk(x if i == 0 else F.max_pool2d(x, 2))
            e.append(x)
        dec = {4: e[4]}
        for d in range(3, -1, -1):
            parts = []
            for s in range(5):
                src = e[s] if s <= d else dec[s]
                if s < d:
                    src = F.max_pool2d(src, 2 ** (d - s))
                elif s > d:
                    parts.append(self._up_branch(self.branches[f"{d}_{s}"], src, 2 ** (s - d)))
                    continue
                parts.append(self.branches[f"{d}_{s}"](src))
            dec[d] = self.fuse[str(d)](torch.cat(parts, 1))
        return crop_to(torch.sigmoid(self.head(dec[0])), size)


@register_fuser(
    "unet3+",
    kind="discriminative",
    trainable=True,
    reference="Huang et al., ICASSP 2020",
    batch_size=64,
    display="UNet3+",
    order=15,
    config={"width": "width"},
    params=26_971_201,
)
def unet3p(width: float = 1.0):
    """UNet3+: full-scale skip connections."""
    return UNet3P(width)
