"""Lineages: the metric sets of the field's evaluation code, each equal to its own original.

The same name means different numbers in different code (PSNR, SSIM, MI, VIF, AG, SF ...), so
every metric here belongs to a lineage and computes exactly what that lineage's original returns,
quirks included (see each module's docstring and ``docs/lineages.md``):

- ``vifb``: VIFB's 13 MATLAB metrics (xingchenzhang/VIFB @ 22b2ea9d);
- ``tang``: Tang's ``analysis_Reference.m`` (Linfeng-Tang/Evaluation-for-Image-Fusion @ 0e87153b);
- ``mefb``: MEFB's metrics (xingchenzhang/MEFB @ 9e185bf8);
- ``cddfuse``: CDDFuse's ``utils/Evaluator.py`` (Zhaozixiang1228/MMIF-CDDFuse @ fd8da1f3).

Zheng Liu's toolbox, the lineage of the five Table 1 metrics, is ``liu`` (:mod:`metrics.registry`).
:func:`lineage_values` scores images already in 0..255 units, as the originals receive them.
"""

from __future__ import annotations

import torch

from metrics._lineage_images import LineageImages
from metrics.lineage import cddfuse, mefb, tang, vifb
from metrics.lineage._spec import Spec

SOURCES = {
    "vifb": "xingchenzhang/VIFB @ 22b2ea9d, metrics/metrics*.m",
    "tang": "Linfeng-Tang/Evaluation-for-Image-Fusion @ 0e87153b, Evaluation/analysis_Reference.m",
    "mefb": "xingchenzhang/MEFB @ 9e185bf8, metrics/metrics*.m",
    "cddfuse": "Zhaozixiang1228/MMIF-CDDFuse @ fd8da1f3, utils/Evaluator.py",
}
SPECS: dict[str, tuple[Spec, ...]] = {
    "vifb": vifb.SPECS,
    "tang": tang.SPECS,
    "mefb": mefb.SPECS,
    "cddfuse": cddfuse.SPECS,
}
LINEAGES = tuple(SPECS)
NOT_IMPLEMENTED = {"tang": tang.NOT_IMPLEMENTED, "mefb": mefb.NOT_IMPLEMENTED}

# Values of lineage.json an exact port cannot reproduce, each with its reason (docs/lineages.md):
# where the original's value is decided by its own rounding, a different (equally exact) order of
# floating-point operations gives a different number.
FLAT = "ill-conditioned on flat regions: the value is a ratio of the original's rounding noise"
FFT_ROUNDING = (
    "ill-conditioned on flat regions, where the value is a ratio of FFT rounding noise: it moves with"
    " the FFT's code path (the original ran FFTW; torch's CPU FFT rounds differently on different CPUs)"
)
HAZARDS = {
    ("vifb", "Qcb", "c07_brain_avg"): FFT_ROUNDING,
    ("vifb", "Qcb", "r01_pat0005_mean"): FFT_ROUNDING,
    ("vifb", "Qcb", "r02_gli00001_max"): FFT_ROUNDING,
    ("mefb", "Qcb", "c07_brain_avg"): FFT_ROUNDING,
    ("mefb", "Qcb", "r01_pat0005_mean"): FFT_ROUNDING,
    ("mefb", "Qcb", "r02_gli00001_max"): FFT_ROUNDING,
    ("mefb", "Qc", "c10_zero_var_regions"): FLAT,
    ("mefb", "Qc", "c16_const_F"): FLAT,
    ("mefb", "Qy", "c10_zero_var_regions"): FLAT,
}


def lineage_values(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor, lineage: str, keys=None):
    """Every metric of ``lineage`` (or ``keys`` of it) on images in 0..255 units, (B, 1, H, W),
    float32 or float64 (A = x1, B = x2, as the originals' first and second source). A non-integer
    fused image is treated as the originals treat a float image. Returns ``({key: Tensor[B]},
    notes)``, notes being ``(key, sample indices, reason)`` for every NaN an original would give."""
    if lineage not in SPECS:
        raise ValueError(f"unknown lineage {lineage!r}; known: {', '.join(LINEAGES)}")
    li = LineageImages(a, b, fused)
    out = {s.key: s(li, s.key) for s in SPECS[lineage] if keys is None or s.key in keys}
    return out, li.notes


__all__ = [
    "FFT_ROUNDING",
    "FLAT",
    "HAZARDS",
    "LINEAGES",
    "NOT_IMPLEMENTED",
    "SOURCES",
    "SPECS",
    "LineageImages",
    "Spec",
    "lineage_values",
]
