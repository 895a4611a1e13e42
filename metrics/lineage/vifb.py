"""VIFB's 13 metrics (Zhang, Ye & Xiao, CVPR-W 2020; xingchenzhang/VIFB @ 22b2ea9d, ``metrics/``).

Called as VIFB's ``compute_metrics.m`` calls them, ``metrics<Name>(imgVI = A, imgIR = B, F)`` on
8-bit images. Quirks kept: ``Psnr`` and ``Rmse`` take "mse" = sqrt(sum of squared errors) / (M N);
``Spatial_frequency`` divides by M N; ``Avg_gradient`` by (M - 1)(N - 1); ``Ssim`` is the *sum*
SSIM(A, F) + SSIM(B, F) (range up to 2); ``Mutinf`` min-max stretches each image and rounds it
(``int16``) before a 256-bin joint histogram, natural log; ``Cross_entropy`` and ``Entropy`` index
256-bin histograms with the pixel values (a non-integer F makes ``Cross_entropy`` error: NaN here).
"""

from __future__ import annotations

import functools
import math

import torch

from metrics import _native
from metrics._lineage_images import LineageImages
from metrics.lineage import kernels as K
from metrics.lineage._spec import Spec
from metrics.ssim import K1, K2

NON_INTEGER = "the original indexes a 256-bin histogram with the pixel values and errors on a non-integer image"


def _hist_p(x: torch.Tensor) -> torch.Tensor:
    h = K.hist(x.clamp(0, 255))
    return h / h.sum(dim=1, keepdim=True)


def cross_entropy(li: LineageImages, name: str) -> torch.Tensor:
    """Mean over sources of sum_k P_S(k) log2(P_S(k) / P_F(k)) over grey levels where both are non-zero."""
    ok = li.f_integer & li.ab_integer
    f = torch.where(ok.view(-1, 1, 1, 1), li.f, torch.zeros_like(li.f))
    pf = _hist_p(f)

    def ce(s):
        ps = _hist_p(s)
        both = (ps > 0) & (pf > 0)
        safe = torch.where(both, ps / torch.where(both, pf, torch.ones_like(pf)), torch.ones_like(ps))
        return (ps * torch.log2(safe)).sum(dim=1)

    a, b = (x if li.ab_integer else torch.zeros_like(x) for x in (li.a, li.b))
    return li.nan_where(name, (ce(a) + ce(b)) / 2, ~ok, NON_INTEGER)


def entropy_floor(li: LineageImages, name: str) -> torch.Tensor:
    """Entropy (bits) of F's 256-bin histogram, bins floor(F)."""
    h = K.hist(torch.floor(li.f).clamp(0, 255))
    return K.entropy(h) / K.LOG2


def mutinf(li: LineageImages, name: str) -> torch.Tensor:
    """I(A; F) + I(B; F) in nats after VIFB's per-image min-max stretch to 0..255 (int16 rounding)."""
    f = K.minmax_255(li.f)
    return K.mutual_information(K.minmax_255(li.a), f) + K.mutual_information(K.minmax_255(li.b), f)


def _root_sse(x, y):
    m, n = x.shape[-2:]
    return torch.sqrt(((x - y) ** 2).sum(dim=(1, 2, 3))) / (m * n)


def psnr(li: LineageImages, name: str) -> torch.Tensor:
    mes = (_root_sse(li.a, li.f) + _root_sse(li.b, li.f)) / 2
    return 20 * torch.log10(255.0 / torch.sqrt(mes))


def rmse(li: LineageImages, name: str) -> torch.Tensor:
    return (_root_sse(li.a, li.f) + _root_sse(li.b, li.f)) / 2


def avg_gradient(li: LineageImages, name: str) -> torch.Tensor:
    gx, gy = K.gradient(li.f)
    r, c = li.f.shape[-2:]
    return K.sqrt((gx * gx + gy * gy) / 2).sum(dim=(1, 2, 3)) / ((r - 1) * (c - 1))


def edge_intensity(li: LineageImages, name: str) -> torch.Tensor:
    """Mean Sobel magnitude, ``imfilter(F, fspecial('sobel'), 'replicate')`` and its transpose."""
    w = K.kernel(K.SOBEL_H1, li.f)
    gx = K.filt(li.f, w, "replicate")
    gy = K.filt(li.f, w.t(), "replicate")
    return K.sqrt(gx * gx + gy * gy).mean(dim=(1, 2, 3))


def qabf(li: LineageImages, name: str) -> torch.Tensor:
    return K.qabf_once(li)


def variance(li: LineageImages, name: str) -> torch.Tensor:
    """VIFB's "Variance" is the standard deviation sqrt(mean((F - mean F)^2))."""
    return K.std_pop(li.f)


def spatial_frequency(li: LineageImages, name: str) -> torch.Tensor:
    rf, cf, _, _ = K.sum_sq_diffs(li.f)
    m, n = li.f.shape[-2:]
    return torch.sqrt(rf / (m * n) + cf / (m * n))


def wang_ssim_sum(li: LineageImages, name: str) -> torch.Tensor:
    """SSIM(A, F) + SSIM(B, F): 11x11 Gaussian (sigma 1.5), 'valid' maps, L = 255; F's moments
    filtered once for both."""
    pairs = [(0, 0), (1, 1), (2, 2), (0, 2), (1, 2)]
    mu, e = K.moments_beside(li, "ssim 11", lambda: [li.a, li.b], li.f, pairs, K.gaussian_1d(11, 1.5, li.f))
    c1, c2 = (K1 * 255.0) ** 2, (K2 * 255.0) ** 2
    return sum(K.ssim_mean(mu[k], mu[2], e[(k, k)], e[(2, 2)], e[(k, 2)], c1, c2) for k in range(2))


def _gaussian31(sigma: float, like: torch.Tensor) -> torch.Tensor:
    """1-D factor of ``gaussian2d``'s unnormalised 31x31 window exp(-(x^2+y^2)/2s^2) / (2 pi s^2)."""
    return _gaussian31_of(sigma, like.dtype, like.device)


@functools.lru_cache(maxsize=16)
def _gaussian31_of(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    r = torch.arange(-15, 16, dtype=dtype, device=device)
    return torch.exp(-(r**2) / (2 * sigma * sigma)) / math.sqrt(2 * math.pi * sigma * sigma)


@functools.lru_cache(maxsize=16)
def _csf(kind: str, hang: int, lie: int, dtype: torch.dtype, device: torch.device):
    """(the centred response, its :func:`K.csf_half`, the response uncentred) of Q_CB's ("cb": the DoG,
    frequencies scaled by size / 30) or Q_CV's ("cv": Mannos-Sakrison, size / 8) contrast-sensitivity filter for hang x
    lie images, made once a size, type and device (each took 0.3 ms a call of four 240x240 triples
    here, ~0.15 ms a triple of Q_CB's and Q_CV's 4.4). Nothing writes into them."""
    like = torch.empty(0, dtype=dtype, device=device)
    scale = 30 if kind == "cb" else 8
    u = K.freqspace(lie, like) * (lie / scale)
    v = K.freqspace(hang, like) * (hang / scale)
    r = torch.sqrt(u.view(1, -1) ** 2 + v.view(-1, 1) ** 2)
    if kind == "cb":
        response = torch.exp(-((r / 15.3870) ** 2)) - 0.7622 * torch.exp(-((r / 1.3456) ** 2))
    else:
        response = 2.6 * (0.0192 + 0.144 * r) * torch.exp(-((0.144 * r) ** 1.1))
    return response, K.csf_half(response), torch.fft.ifftshift(response, dim=(-2, -1)).contiguous()


def chen_blum(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, cache=None) -> torch.Tensor:
    """Q_CB per image, always computed in float64 (float32 changes it in the first decimal: the
    contrast ratio is ill-conditioned where an image is flat) and returned in the inputs' dtype.
    ``cache(key, make)``: where what A and B alone give is kept (e.g. a :class:`LineageImages`'
    :meth:`~LineageImages.source_memo`, to compute it once for every F scored against them)."""
    return _chen_blum(a.double(), b.double(), f.double(), cache or K.no_cache).to(a.dtype)


def _cb_in_kernel(*images: torch.Tensor) -> bool:
    """Whether Q_CB's per-pixel steps after its filters run in the hand-written kernel (``moment_kernel.cpp``)."""
    return _native.cpu_ready(*images)


def _chen_blum(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, cache) -> torch.Tensor:
    """Chen & Blum's Q_CB as ``metricChenBlum.m`` (the images already through ``normalize1``):
    a DoG contrast-sensitivity filter in the frequency domain (f0 15.3870, f1 1.3456, a 0.7622,
    frequencies scaled by size / 30), local contrast from 31x31 Gaussians (sigma 2 and 4) as
    G2-normalised band-pass, masking C^3 / (C^2 + 1e-4), saliency-weighted preservation."""
    sd, sd_half, sd_uncentred = _csf("cb", *a.shape[-2:], a.dtype, a.device)
    g1, g2 = _gaussian31(2.0, a), _gaussian31(4.0, a)

    def contrast(x):
        # The images' CSF-filtered versions in one real FFT (the DoG response is even: the
        # original's complex result is this real image plus its FFT's rounding noise,
        # :func:`K.csf_filter`), then through both 31x31 Gaussians ('same', spatial). Where an image
        # is flat far from any edge both Gaussian responses are rounding noise and so is their
        # ratio: the documented hazards.
        y = K.csf_filter(x, sd, sd_half, sd_uncentred)
        num, den = K.separable(y, g1, "same"), K.separable(y, g2, "same")
        if native:  # the steps below in one pass (moment_kernel.cpp)
            return _native.cb_contrast(num, den)
        c = torch.abs(num - den) / torch.abs(den)  # |(G1 y) / (G2 y) - 1| = |G1 y - G2 y| / |G2 y|
        return c**3 / (c**2 + 0.0001)

    def sources():  # A's and B's masked contrasts and their saliency weights
        c = contrast(torch.cat([a, b], dim=1))
        c1, c2 = c[:, 0:1], c[:, 1:2]
        if native:  # the weights are taken in the kernel's pass with F's contrast
            return c1, c2, None, None
        den = c1 * c1 + c2 * c2
        return c1, c2, (c1 * c1) / den, (c2 * c2) / den

    native = _cb_in_kernel(a, b, f)
    c1, c2, w1, w2 = cache(("contrast", native), sources)
    cf = contrast(f)
    if native:  # the preservation, its weights and their mean in one pass (moment_kernel.cpp)
        return _native.cb_score(c1, c2, cf)
    q1 = torch.where(c1 < cf, c1 / cf, cf / c1)
    q2 = torch.where(c2 < cf, c2 / cf, cf / c2)
    return (w1 * q1 + w2 * q2).mean(dim=(1, 2, 3))


def chen_varshney(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, cache=None) -> torch.Tensor:
    """Chen & Varshney's Q_CV as ``metricChen.m`` (images already through ``normalize1``): Sobel
    strength^5 summed over 16x16 blocks as saliency, Mannos-Sakrison CSF-filtered differences
    (frequencies scaled by size / 8), mean square per block; lower is better. ``cache``: as
    :func:`chen_blum`'s (the sources' saliencies)."""
    hang, lie = a.shape[-2:]
    f1 = K.kernel([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], a)
    f2 = K.kernel([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]], a)

    def saliency(x):
        gx, gy = K.filt(x, f1, "same"), K.filt(x, f2, "same")
        # The strength's fifth power as s * s * t (s = t * t): within a few units in the last place of
        # ``t ** 5`` (the original's ``.^5``), which PyTorch takes through ``pow`` at 1.5 ns an element
        # here (0.3 ms of a triple's 1.3 for Q_CV)
        t = K.sqrt(gx * gx + gy * gy)
        s = t * t
        return K.block_sums(s * s * t, 16)

    theta, theta_half, theta_uncentred = _csf("cv", hang, lie, a.dtype, a.device)
    # A - F and B - F filtered in one call (the hand-written FFT takes them as one complex image); the
    # original squares its complex result: the real image's square, to rounding
    d = K.csf_filter(torch.cat([a - f, b - f], dim=1), theta, theta_half, theta_uncentred)
    d = d * d
    dist1, dist2 = (K.block_sums(d[:, k : k + 1], 16) / 256.0 for k in range(2))

    r1, r2, total = (cache or K.no_cache)("saliency", lambda: _with_sum(saliency(a), saliency(b)))
    return (r1 * dist1 + r2 * dist2).sum(dim=(1, 2)) / total


def _with_sum(r1: torch.Tensor, r2: torch.Tensor):
    return r1, r2, (r1 + r2).sum(dim=(1, 2))


CONSTANT = "the original divides 0 by 0 on a constant image"


def _normalized_sources(li: LineageImages):
    """``normalize1`` of A and B, once per pair of sources."""
    return li.source_cached("normalize1(a, b)", lambda: (K.normalize1(li.a), K.normalize1(li.b)))


def _normalized_f(li: LineageImages):
    """``normalize1`` of F, once per batch (Q_CB's, Q_CV's, and MEFB's information measures')."""
    return li.cached("normalize1(f)", lambda: K.normalize1(li.f))


def qcb(li: LineageImages, name: str) -> torch.Tensor:
    """VIFB's copy converts with ``double()``: ``normalize1`` of the 0..255 values."""
    v = chen_blum(*_normalized_sources(li), _normalized_f(li), cache=li.source_memo("chen_blum"))
    return li.nan_if_nonfinite(name, v, CONSTANT)


def qcv(li: LineageImages, name: str) -> torch.Tensor:
    v = chen_varshney(*_normalized_sources(li), _normalized_f(li), cache=li.source_memo("chen_varshney"))
    return li.nan_if_nonfinite(name, v, CONSTANT)


REF_CE = "Bulanon, Burks & Alchanatis, Biosyst. Eng. 2009"
SPECS = (
    Spec("Cross_entropy", cross_entropy, False, REF_CE, "mean cross-entropy of each source's histogram to F's"),
    Spec("Entropy", entropy_floor, True, "Aardt, J. Appl. Remote Sens. 2008", "entropy of F (bits)"),
    Spec("Mutinf", mutinf, True, "Qu, Zhang & Yan, Electron. Lett. 2002", "MI(A,F) + MI(B,F), nats"),
    Spec("Psnr", psnr, True, "Jagalingam & Hegde, Aquatic Procedia 2015", "PSNR, peak 255, VIFB's mse"),
    Spec("Avg_gradient", avg_gradient, True, "Cui et al., Opt. Commun. 2015", "average gradient of F"),
    Spec("Edge_intensity", edge_intensity, True, "Rajalingam & Priya, IJESI 2018", "mean Sobel magnitude of F"),
    Spec("Qabf", qabf, True, "Xydeas & Petrovic, Electron. Lett. 2000", "gradient preservation Q^AB/F"),
    Spec("Variance", variance, True, "Rao, Meas. Sci. Technol. 1997", "standard deviation of F"),
    Spec("Spatial_frequency", spatial_frequency, True, "Eskicioglu & Fisher, IEEE TCOM 1995", "spatial frequency"),
    Spec("Rmse", rmse, False, "Jagalingam & Hegde, Aquatic Procedia 2015", "VIFB's root error per pixel"),
    Spec("Ssim", wang_ssim_sum, True, "Wang et al., IEEE TIP 2004", "SSIM(A,F) + SSIM(B,F)", min_size=11),
    Spec("Qcb", qcb, True, "Chen & Blum, Image Vis. Comput. 2009", "human-perception contrast preservation"),
    Spec("Qcv", qcv, False, "Chen & Varshney, Inf. Fusion 2007", "regional CSF-weighted distortion"),
)
