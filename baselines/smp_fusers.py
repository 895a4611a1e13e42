"""segmentation-models-pytorch encoder-decoders as fusers, named ``smp-<arch>-<encoder>``.

Any architecture of smp (``unet``, ``unetplusplus``, ``fpn``, ``deeplabv3plus``, ...) with any of
its encoders, built with ``encoder_weights=None`` (nothing is downloaded), ``in_channels=2``
([x1, x2]), ``classes=1`` and a sigmoid. Inputs are padded to a multiple of 32 (smp's encoders
downsample five times) and the output is cropped back. smp needs torchvision, which has no CPU
build beside the CPU torch wheel; it is the optional extra ``fusionbench[smp]``.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.blocks import crop_to, pad_to_multiple

SMP_MISSING = (
    "segmentation-models-pytorch is not installed: the smp-* fusers need the optional extra "
    "(pip install 'fusionbench[smp]', which also needs torchvision)"
)


class SmpFuser(nn.Module):
    def __init__(self, arch: str, encoder: str):
        super().__init__()
        try:
            import segmentation_models_pytorch as smp
        except Exception as e:  # ImportError, or torchvision's operator errors beside a mismatched torch
            raise ImportError(f"{SMP_MISSING} ({type(e).__name__}: {e})") from None
        try:
            self.net = smp.create_model(
                arch, encoder_name=encoder, encoder_weights=None, in_channels=2, classes=1, activation=None
            )
        except (KeyError, ValueError) as e:
            raise ValueError(f"smp-{arch}-{encoder}: segmentation-models-pytorch cannot build this ({e})") from None

    def forward(self, x1, x2):
        """Fused (B, 1, H, W) in [0, 1] from x1 = T1-Gd and x2 = FLAIR (float, [0, 1])."""
        x, size = pad_to_multiple(torch.cat([x1, x2], 1), 32)
        return crop_to(torch.sigmoid(self.net(x)), size)


def smp_available() -> str | None:
    """None when segmentation-models-pytorch imports; otherwise why not (one line)."""
    try:
        import segmentation_models_pytorch  # noqa: F401
    except Exception as e:  # ImportError, or torchvision's operator errors beside a mismatched torch
        return f"{type(e).__name__}: {e}"
    return None
