"""DeepFuse (Prabhakar, Srikar & Babu, ICCV 2017) as the FusionINN authors ran it (docs/reference.md §4).

    x1 --C1(5x5, 1->16)-BN-LReLU--C2(7x7, 16->32)-BN-LReLU--+
                      (tied weights)                       (+)--C3(7x7, 32->32)-BN-ReLU--C4(5x5, 32->16)-BN-ReLU--
                                                                --C5(5x5, 16->1)-BN--tanh
    x2 --C1(5x5, 1->16)-BN-LReLU--C2(7x7, 16->32)-BN-LReLU--+

Feature extraction is shared between the two sources and their features are added (the paper's
fusion layer). 89,155 trainable parameters. As in the reference, the network is trained on the raw
tanh output (which may be negative); fused images are clamped to [0, 1].
"""

from __future__ import annotations

from torch import nn

from baselines.blocks import RawOutputLoss
from baselines.registry import register_fuser


class DeepFuse(RawOutputLoss, nn.Module):
    def __init__(self):
        super().__init__()
        self.extract = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2),
            nn.BatchNorm2d(16),
            nn.LeakyReLU(0.01),
            nn.Conv2d(16, 32, 7, padding=3),
            nn.BatchNorm2d(32),
            nn.LeakyReLU(0.01),
        )
        self.reconstruct = nn.Sequential(
            nn.Conv2d(32, 32, 7, padding=3),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 16, 5, padding=2),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 1, 5, padding=2),
            nn.BatchNorm2d(1),
            nn.Tanh(),
        )

    def raw(self, x1, x2):
        """Unclamped tanh output (B, 1, H, W) from x1 = T1-Gd and x2 = FLAIR (float, [0, 1])."""
        return self.reconstruct(self.extract(x1) + self.extract(x2))


@register_fuser(
    "deepfuse",
    kind="discriminative",
    trainable=True,
    reference="Prabhakar et al., ICCV 2017",
    batch_size=64,
    display="DeepFuse",
    order=10,
    params=89_155,
)
def deepfuse():
    """DeepFuse: tied two-branch CNN with additive feature fusion."""
    return DeepFuse()
