"""Q_SSIM: Wang et al. 2004 SSIM with a Gaussian window, as in ``ssim_index.m`` (Z. Wang, 2003).

Window ``fspecial('gaussian', 11, 1.5)``, K = (0.01, 0.03), score = plain mean of the SSIM map
(Wang et al. 2004, eq. 13 with C3 = C2/2). Q_SSIM(F; x1, x2) = (SSIM(F, x1) + SSIM(F, x2)) / 2
(docs/reference.md §6). Map modes: ``valid`` (Liu's ``filter2(.., 'valid')``; also ``pytorch_msssim.ssim``),
``same`` (zero padded, the corrected authors' copy) and ``toolbox`` (the 11x11 block of valid
statistics at the image centre that the shipped authors' copy computes; reference README).
"""

from __future__ import annotations

import torch

from metrics import _native
from metrics._workspace import Workspace, batch_invariant
from metrics.filters import gaussian_1d, gaussian_filter, separable_of_products, toolbox_centre

K1, K2 = 0.01, 0.03  # Wang et al. 2004, sec. III-C


def ssim_stats(a: torch.Tensor, b: torch.Tensor, mode: str = "valid"):
    """Local Gaussian moments ``(mu_a, mu_b, var_a, var_b, cov_ab)`` of (B, 1, H, W) images.

    The five moments are filtered in one grouped convolution (torchmetrics' layout; the training
    losses, differentiable). Scoring filters them with banded matrices instead
    (:func:`filtered_moments`, through :func:`stats_of`). ``var`` and ``cov`` are ``E[x^2] - mu^2``
    as in ``ssim_index.m`` (not clamped: the toolbox does not).
    """
    if mode == "toolbox":
        rows, cols = toolbox_centre(a.shape[-2], a.shape[-1], 21)
        a, b = a[..., rows, cols], b[..., rows, cols]
        mode = "valid"
    g = gaussian_1d(11, 1.5, dtype=a.dtype, device=a.device)
    m = gaussian_filter(torch.cat([a, b, a * a, b * b, a * b], dim=1), g, mode)
    return _moments_to_stats(*m.split(1, dim=1))


def _moments_to_stats(mu_a, mu_b, e_aa, e_bb, e_ab):
    return mu_a, mu_b, e_aa - mu_a * mu_a, e_bb - mu_b * mu_b, e_ab - mu_a * mu_b


def ssim_map(
    a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, mode: str = "valid", stats=None
) -> torch.Tensor:
    """SSIM map of (B, 1, H, W) images (Wang et al. 2004, eq. 13); ``stats`` reuses :func:`ssim_stats`."""
    mu_a, mu_b, var_a, var_b, cov = stats if stats is not None else ssim_stats(a, b, mode)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_ab = mu_a * mu_b
    return ((2 * mu_ab + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, mode: str = "valid") -> torch.Tensor:
    """Mean SSIM per image, ``Tensor[B]``; differentiable. Defaults equal ``pytorch_msssim.ssim``.

    a, b: float (B, 1, H, W); with ``data_range=1`` images are expected in [0, 1]. Always computed
    in float32 or float64 with autocast off: in bf16, E[x^2] - mu^2 cancels catastrophically and
    the SSIM (and a loss built on it) becomes noise.
    """
    dt = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    with torch.autocast(device_type=a.device.type, enabled=False):
        return ssim_map(a.to(dt), b.to(dt), data_range, mode).flatten(1).mean(dim=1)


@batch_invariant
def q_ssim(
    fused: torch.Tensor,
    x1: torch.Tensor,
    x2: torch.Tensor,
    profile: str = "upstream",
    quantize: bool | None = None,
    map_mode: str | None = None,
    work: Workspace | None = None,
) -> torch.Tensor:
    """Q_SSIM = (SSIM(F, x1) + SSIM(F, x2)) / 2 per image, ``Tensor[B]`` (higher is better, max 1).

    Images: float (B, 1, H, W) in [0, 1]; x1 = T1-Gd, x2 = FLAIR. ``profile`` picks the map mode
    and whether inputs are first quantised to 8 bits (``quantize`` overrides); ``map_mode``
    (``valid``/``same``/``toolbox``) overrides the map, e.g. ``toolbox`` gives the shipped
    ``ssim_index.m``'s 11x11 value. On flat images SSIM is finite (C1, C2 > 0): 1 where F equals
    the source, the luminance/contrast ratio otherwise. ``work``: the batch's shared
    :class:`~metrics._workspace.Workspace` (from :func:`metrics.score`); inputs are then not re-checked.
    """
    m1, m2 = ssim_per_source(fused, x1, x2, profile, quantize, map_mode, work)
    return (m1 + m2) / 2


@batch_invariant
def q_ssim_x1(
    fused: torch.Tensor,
    x1: torch.Tensor,
    x2: torch.Tensor,
    profile: str = "upstream",
    quantize: bool | None = None,
    work: Workspace | None = None,
) -> torch.Tensor:
    """SSIM(F, x1) per image, the T1-Gd half of Q_SSIM (a diagnostic: a copy of x1 scores 1)."""
    return ssim_per_source(fused, x1, x2, profile, quantize, None, work)[0]


@batch_invariant
def q_ssim_x2(
    fused: torch.Tensor,
    x1: torch.Tensor,
    x2: torch.Tensor,
    profile: str = "upstream",
    quantize: bool | None = None,
    work: Workspace | None = None,
) -> torch.Tensor:
    """SSIM(F, x2) per image, the FLAIR half of Q_SSIM (a diagnostic: a copy of x2 scores 1)."""
    return ssim_per_source(fused, x1, x2, profile, quantize, None, work)[1]


def stats_of(work: Workspace, which: str, mode: str, images) -> tuple:
    """The :func:`ssim_stats` of the pair ``which`` (``FA``, ``FB`` or ``AB``) of ``images`` (A, B, F),
    once per batch. The three pairs share six of their fifteen filtered maps (mu_F, E[F^2], ...):
    each distinct map is filtered once, nine in all for Q_SSIM and Q_P together."""
    x, y = which[0], which[1]

    def make():
        m = filtered_moments(work, mode, images, (x, y, x + x, y + y, x + y))
        return _moments_to_stats(*m)

    return work.cached(("stats", which, mode, id(images[0])), make)


def ssim_map_of(work: Workspace, which: str, mode: str, images, data_range: float = 255.0) -> torch.Tensor:
    """The SSIM map of the pair ``which`` (``FA``, ``FB``) of ``images`` (A, B, F), once per batch (Q_SSIM's
    and Q_P's): on a CPU from the pair's filtered moments in one pass (:func:`metrics._native.liu_ssim`:
    :func:`ssim_map` of :func:`stats_of`'s statistics bit for bit, 11 eager steps on the whole maps
    otherwise), else those eager steps."""
    x, y = which[0], which[1]

    def make():
        m = filtered_moments(work, mode, images, (x, y, x + x, y + y, x + y))
        if _native.cpu_ready(*m):
            return _native.liu_ssim(*m, (K1 * data_range) ** 2, (K2 * data_range) ** 2)
        return ssim_map(None, None, data_range, stats=stats_of(work, which, mode, images))

    return work.cached(("ssim map", which, mode, id(images[0]), data_range), make)


def filtered_moments(work: Workspace, mode: str, images, names) -> list:
    """Gaussian-filtered maps named ``A``, ``B``, ``F`` (an image) or ``AB``, ``FF``, ... (a product)
    of the batch's ``images`` (A, B, F), each filtered once per batch; those not yet filtered go
    through :func:`metrics.filters.separable_of_products` together (:func:`metrics.filters.separable_matmul`
    of the maps, 10x faster than the grouped convolution on a CPU, eager, nothing to compile, equal to
    float rounding; where the hand-written kernels build, their filter makes each product itself)."""
    done = work.cached(("moments", mode, id(images[0])), dict)
    todo = [n for n in dict.fromkeys(names) if n not in done]
    if todo:
        img = dict(zip("ABF", images))
        if mode == "toolbox":
            rows, cols = toolbox_centre(img["A"].shape[-2], img["A"].shape[-1], 21)
            img = {k: v[..., rows, cols] for k, v in img.items()}
        factors = [(img[n], None) if len(n) == 1 else (img[n[0]], img[n[1]]) for n in todo]
        g = gaussian_1d(11, 1.5, dtype=img["A"].dtype, device=img["A"].device)
        out = separable_of_products(factors, g, "valid" if mode == "toolbox" else mode)
        done.update(zip(todo, out.split(1, dim=1)))
    return [done[n] for n in names]


def ssim_per_source(
    fused,
    x1,
    x2,
    profile: str = "upstream",
    quantize: bool | None = None,
    map_mode: str | None = None,
    work: Workspace | None = None,
):
    """(mean SSIM(F, x1), mean SSIM(F, x2)) per image in a profile: the two halves of Q_SSIM."""
    work = Workspace.of(work, fused, x1, x2, profile, quantize, 21 if map_mode == "toolbox" else 11)
    mode = map_mode or work.profile.ssim_map

    def make():
        imgs = work.toolbox_images() if map_mode == "toolbox" else work.ssim_images()
        return tuple(ssim_map_of(work, pair, mode, imgs).flatten(1).mean(dim=1) for pair in ("FA", "FB"))

    return work.cached(("ssim_sources", mode, map_mode == "toolbox"), make)
