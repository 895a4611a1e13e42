"""Q_P: Piella & Heijmans' fusion quality index, variant 1, as ``metricPeilla.m`` with sw = 1.

Piella & Heijmans, "A new quality metric for image fusion", ICIP 2003, eq. 6, with Liu's toolbox
choices: the local quality is the Gaussian-window SSIM map (not the 8x8 UIQI), and the saliency
weight is lambda = s_A^2 / (s_A^2 + s_B^2) from the sources' local variances. Where
s_A^2 + s_B^2 == 0 exactly (flat in both sources, e.g. a zero background), 0.5 is added to both,
so lambda = 0.5 there, as in the toolbox.
"""

from __future__ import annotations

import torch

from metrics import _native
from metrics._workspace import Workspace, batch_invariant
from metrics.ssim import filtered_moments, ssim_map, ssim_map_of, stats_of


def q_p_from_stats(stats_ab, stats_fa, stats_fb, data_range: float = 255.0) -> torch.Tensor:
    """Q_P per image from the SSIM statistics of (x1, x2), (F, x1) and (F, x2) on one map."""
    m1 = ssim_map(None, None, data_range, stats=stats_fa)
    m2 = ssim_map(None, None, data_range, stats=stats_fb)
    return _q_p_map(stats_ab, m1, m2).flatten(1).mean(dim=1)


def _q_p_map(stats_ab, m1: torch.Tensor, m2: torch.Tensor) -> torch.Tensor:
    s1, s2 = stats_ab[2], stats_ab[3]
    test = (s1 + s2 == 0).to(s1.dtype) * 0.5
    s1, s2 = s1 + test, s2 + test
    lam = s1 / (s1 + s2)
    return lam * m1 + (1 - lam) * m2


@batch_invariant
def q_p(
    fused: torch.Tensor,
    x1: torch.Tensor,
    x2: torch.Tensor,
    profile: str = "upstream",
    quantize: bool | None = None,
    work: Workspace | None = None,
) -> torch.Tensor:
    """Q_P per image, ``Tensor[B]`` (higher is better, max 1). Images float (B, 1, H, W) in [0, 1]."""
    work = Workspace.of(work, fused, x1, x2, profile, quantize, 21)
    mode, imgs = work.profile.piella_map, work.toolbox_images()
    m1, m2 = ssim_map_of(work, "FA", mode, imgs), ssim_map_of(work, "FB", mode, imgs)  # Q_SSIM's too
    sources = filtered_moments(work, mode, imgs, ("A", "B", "AA", "BB"))
    if _native.cpu_ready(m1, m2, *sources):  # the steps after the moments in one pass (moment_kernel.cpp)
        return _native.liu_piella(*sources, m1, m2).flatten(1).mean(dim=1)
    return _q_p_map(stats_of(work, "AB", mode, imgs), m1, m2).flatten(1).mean(dim=1)
