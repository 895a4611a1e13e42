"""An example fusionbench plugin: pixel weights from local contrast (no training).

fused = (c1 x1 + c2 x2) / (c1 + c2), with c the local standard deviation in a 7x7 box plus a
small floor, so the source with more local structure dominates. Images are float (B, 1, H, W) in
[0, 1]; x1 = T1-Gd, x2 = FLAIR.
"""

import torch
import torch.nn.functional as F


class ContrastWeightedAverage(torch.nn.Module):
    def __init__(self, window: int = 7, floor: float = 1e-3):
        super().__init__()
        self.window, self.floor = window, floor

    def _contrast(self, x):
        pad = self.window // 2
        mu = F.avg_pool2d(F.pad(x, (pad,) * 4, mode="replicate"), self.window, stride=1)
        mu2 = F.avg_pool2d(F.pad(x * x, (pad,) * 4, mode="replicate"), self.window, stride=1)
        return torch.sqrt((mu2 - mu * mu).clamp(min=0)) + self.floor

    def forward(self, x1, x2):
        c1, c2 = self._contrast(x1), self._contrast(x2)
        return ((c1 * x1 + c2 * x2) / (c1 + c2)).clamp(0, 1)


def make_fuser(window: int = 7):
    """Factory named by the entry point."""
    return ContrastWeightedAverage(window)


# Optional metadata read by fusionbench's registry.
make_fuser.fusionbench = {
    "kind": "classical",
    "trainable": False,
    "reference": "fusionbench example plugin",
    "batch_size": 16,
}
