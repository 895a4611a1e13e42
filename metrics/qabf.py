"""Q_XY: Xydeas & Petrovic's gradient-preservation index Q^{AB/F}, as ``metricXydeas.m`` (Z. Liu, 2003).

Xydeas & Petrovic, "Objective image fusion performance measure", Electronics Letters 36(4), 2000.
Per pixel: Sobel gradient strength g and orientation alpha of each image (eq. 1-2); relative
strength G = min/max (eq. 3) and orientation A = | |alpha_S - alpha_F| - pi/2 | * 2/pi (Liu's form);
preservation Q = Gamma_g / (1 + exp(k_g (G - sigma_g))) * Gamma_a / (1 + exp(k_a (A - sigma_a)))
(eq. 4-6); weights w = g^L (eq. 8). Liu's toolbox averages the per-pixel ratio
(Q_AF w_A + Q_BF w_B) / (w_A + w_B); the 2000 paper takes the ratio of sums (eq. 7).

The toolbox's zero substitutions are kept exactly (they decide flat regions): gx == 0 -> 1e-5
before the arctangent; zero strengths -> 1e-5, in the order the toolbox does them, so F's
substitution happens during the x1 pass. On flat images every pixel has g = 1e-5 and G = 1, and
the score is finite (0.9867 * orientation term with Liu's constants; see reference README).
"""

from __future__ import annotations

import math

import torch

from metrics import _native
from metrics._workspace import Workspace, batch_invariant
from metrics.filters import correlate, toolbox_centre

_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
_SOBEL_Y = ((-1.0, -2.0, -1.0), (0.0, 0.0, 0.0), (1.0, 2.0, 1.0))
SOBEL_X = torch.tensor(_SOBEL_X, dtype=torch.float64)
SOBEL_Y = torch.tensor(_SOBEL_Y, dtype=torch.float64)

# (Gamma_g, k_g, sigma_g, Gamma_a, k_a, sigma_a, reduction)
CONSTANTS = {
    "liu": (1.0, -10.0, 0.5, 1.0, -20.0, 0.75, "mean_of_ratio"),  # metricXydeas.m
    "petrovic2000": (0.9994, -15.0, 0.5, 0.9879, -22.0, 0.8, "ratio_of_sums"),  # Xydeas & Petrovic 2000
}


def sobel(img: torch.Tensor, mode: str):
    """Sobel responses (gx, gy) of 0..255 images (B, 1, H, W) in a profile's filtering mode."""
    if mode == "toolbox":
        # imfilter(sobel, image, 'conv') = conv2(sobel, image, 'same'): the true convolution at the
        # 3x3 block of pixels floor(H/2)-1 .. floor(H/2)+1 (reference README).
        rows, cols = toolbox_centre(img.shape[-2], img.shape[-1], 3)
        gx, gy = (correlate(img, k, "conv_same")[..., rows, cols] for k in (SOBEL_X, SOBEL_Y))
        return gx, gy
    return correlate(img, SOBEL_X, mode), correlate(img, SOBEL_Y, mode)


def _strength_angle(gx: torch.Tensor, gy: torch.Tensor):
    g = torch.sqrt(gx * gx + gy * gy)
    return g, torch.atan(gy / _nonzero(gx))


def _nonzero(x: torch.Tensor) -> torch.Tensor:
    """The toolbox's ``x + (x == 0) * 1e-5``: exactly 1e-5 where x is 0, x elsewhere, in one pass."""
    return torch.where(x == 0, 1e-5, x)


def _relative(gs: torch.Tensor, gf: torch.Tensor):
    """Toolbox order: bimap from the raw strengths, then substitute zeros in the source, then in F."""
    bimap = gs > gf
    gs = _nonzero(gs)
    buffer1 = gf / gs
    gf = _nonzero(gf)
    buffer2 = gs / gf
    return torch.where(bimap, buffer1, buffer2), gs, gf


def q_xy_from_gradients(grads_a, grads_b, grads_f, constants: str = "liu") -> torch.Tensor:
    """Q^{AB/F} per image from Sobel responses ``(gx, gy)`` of x1 (A), x2 (B) and F."""
    if constants not in CONSTANTS:
        raise ValueError(f"unknown Q_XY constants {constants!r}; known: {', '.join(CONSTANTS)}")
    grads = [*grads_a, *grads_b, *grads_f]
    if _native.cpu_ready(*grads) and len({g.dtype for g in grads}) == 1:
        # the ~45 elementwise steps a pixel in one pass (qabf_kernel.cpp): 4.3 -> 0.5 ms a triple of 240x240
        num, den = _native.xydeas(grads, CONSTANTS[constants][:6])
    else:  # eager elsewhere (a GPU, autograd)
        num, den = _q_xy_maps(*grads, constants)
    if CONSTANTS[constants][-1] == "mean_of_ratio":
        return (num / den).flatten(1).mean(dim=1)
    return num.flatten(1).sum(dim=1) / den.flatten(1).sum(dim=1)


def _q_xy_maps(ax, ay, bx, by, fx, fy, constants: str):
    """Per pixel Q_AF w_A + Q_BF w_B and w_A + w_B."""
    gam_g, k_g, s_g, gam_a, k_a, s_a, _ = CONSTANTS[constants]
    g_f, a_f = _strength_angle(fx, fy)
    g_a, a_a = _strength_angle(ax, ay)
    g_b, a_b = _strength_angle(bx, by)
    G_af, g_a, g_f = _relative(g_a, g_f)
    G_bf, g_b, g_f = _relative(g_b, g_f)
    A_af = torch.abs(torch.abs(a_a - a_f) - math.pi / 2) * 2 / math.pi
    A_bf = torch.abs(torch.abs(a_b - a_f) - math.pi / 2) * 2 / math.pi
    q_af = gam_g / (1 + torch.exp(k_g * (G_af - s_g))) * (gam_a / (1 + torch.exp(k_a * (A_af - s_a))))
    q_bf = gam_g / (1 + torch.exp(k_g * (G_bf - s_g))) * (gam_a / (1 + torch.exp(k_a * (A_bf - s_a))))
    w_a, w_b = g_a, g_b  # L = 1
    return q_af * w_a + q_bf * w_b, w_a + w_b


@batch_invariant
def q_xy(
    fused: torch.Tensor,
    x1: torch.Tensor,
    x2: torch.Tensor,
    profile: str = "upstream",
    quantize: bool | None = None,
    constants: str = "liu",
    work: Workspace | None = None,
) -> torch.Tensor:
    """Q_XY per image, ``Tensor[B]`` (higher is better). Images float (B, 1, H, W) in [0, 1].

    ``constants``: ``liu`` (toolbox, default) or ``petrovic2000`` (the paper's constants and ratio of sums).
    """
    work = Workspace.of(work, fused, x1, x2, profile, quantize)
    a, b, f = work.toolbox_images()
    ga, gb, gf = work.cached("sobel", lambda: tuple(sobel(x, work.profile.sobel) for x in (a, b, f)))
    return q_xy_from_gradients(ga, gb, gf, constants)
