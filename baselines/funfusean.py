"""FunFuseAn (Kumar et al., 2020) as the FusionINN authors ran it (docs/reference.md §4).

    x1 (T1-Gd) --LF1: 9x9 1->16----------------------------------------------+
               --HF1: 3x3 1->16, 3x3 16->32, 3x3 32->64 --+                   |
                                                          +-- max(a,b)/(a+b+1e-8) --R: 5x5 64->32, 5x5 32->16 --+
    x2 (FLAIR) --HF2: 5x5 1->16, 5x5 16->32, 3x3 32->64 --+                   |                                  |
               --LF2: 7x7 1->16----------------------------------------------+-- (LF1 + LF2 + R) / 3 --5x5 16->1--sigm.

Every convolution but the last is followed by BatchNorm and LeakyReLU(0.2). 122,209 trainable
parameters. The high-frequency fusion max(a, b) / (a + b + 1e-8) can blow up where a + b is near
zero (LeakyReLU outputs may be negative), which saturates the sigmoid at initialisation; the
paper's form is the default, and ``guard=True`` uses |a| + |b| + 1e-8 in the denominator.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.registry import register_fuser


def _cbl(cin, cout, k):
    return [nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]


class FunFuseAn(nn.Module):
    def __init__(self, guard: bool = False):
        super().__init__()
        self.guard = guard
        self.lf1 = nn.Sequential(*_cbl(1, 16, 9))
        self.lf2 = nn.Sequential(*_cbl(1, 16, 7))
        self.hf1 = nn.Sequential(*_cbl(1, 16, 3), *_cbl(16, 32, 3), *_cbl(32, 64, 3))
        self.hf2 = nn.Sequential(*_cbl(1, 16, 5), *_cbl(16, 32, 5), *_cbl(32, 64, 3))
        self.recon = nn.Sequential(*_cbl(64, 32, 5), *_cbl(32, 16, 5))
        self.out = nn.Conv2d(16, 1, 5, padding=2)

    def forward(self, x1, x2):
        """Fused (B, 1, H, W) in [0, 1] from x1 = T1-Gd and x2 = FLAIR (float, [0, 1])."""
        a, b = self.hf1(x1), self.hf2(x2)
        den = (a.abs() + b.abs() if self.guard else a + b) + 1e-8
        hf = torch.maximum(a, b) / den
        fused = (self.lf1(x1) + self.lf2(x2) + self.recon(hf)) / 3
        return torch.sigmoid(self.out(fused))


@register_fuser(
    "funfusean",
    kind="discriminative",
    trainable=True,
    reference="Kumar et al., FunFuseAn, 2020",
    batch_size=8,
    display="FunFuseAn",
    order=11,
    params=122_209,
)
def funfusean(guard: bool = False):
    """FunFuseAn: separate low/high-frequency branches per modality."""
    return FunFuseAn(guard)
