"""Batched PyTorch fusion metrics equal to Zheng Liu's MATLAB toolbox (see ``metrics.profiles``).

Every metric is a pure function ``(fused, x1, x2) -> Tensor[B]`` on float (B, 1, H, W) images in
[0, 1] (x1 = T1-Gd, x2 = FLAIR), on any device, in float32 or float64. :func:`score` computes any
subset at once, sharing work; :func:`get_metric` and :func:`list_metrics` hand out the callables.
Scoring several fused images against the same sources, :func:`sharing_sources` computes what the
lineage metrics take of the sources alone once for all of them.
"""

from metrics._lineage_images import sharing_sources
from metrics.fmi import q_fmi
from metrics.ncie import q_ncie
from metrics.piella import q_p
from metrics.profiles import PROFILES
from metrics.qabf import q_xy
from metrics.registry import METRICS, TABLE_ORDER, get_metric, list_metrics, resolve_metrics
from metrics.scoring import score
from metrics.ssim import q_ssim, q_ssim_x1, q_ssim_x2, ssim

__all__ = [
    "METRICS",
    "PROFILES",
    "TABLE_ORDER",
    "get_metric",
    "list_metrics",
    "q_fmi",
    "q_ncie",
    "q_p",
    "q_ssim",
    "q_ssim_x1",
    "q_ssim_x2",
    "q_xy",
    "resolve_metrics",
    "score",
    "sharing_sources",
    "ssim",
]
