"""CDDFuse's 12 metrics (Zhao et al., CVPR 2023; Zhaozixiang1228/MMIF-CDDFuse @ fd8da1f3,
``utils/Evaluator.py``, copied into some 30 fusion repositories).

Called as its ``test_MIF.py`` calls them, ``Evaluator.X(F, ir = B, vi = A)`` on what
``image_read_cv2(.., 'GRAY')`` returns (0..255 values). Quirks kept: ``EN`` rounds F (half to
even) into uint8 bins; ``AG`` is the plain mean of sqrt((gx^2 + gy^2) / 2); ``MI`` treats every
distinct value as its own label (sklearn ``mutual_info_score``, nats; a float F keeps its values);
``MSE`` on the 0..255 scale and ``PSNR`` with peak max(F); ``VIFF`` is the sum over sources of
Sheikh-Bovik's multiscale pixel VIF (NaN -> 1); ``SSIM`` the sum of two skimage 0.19 SSIMs with
its defaults on float input (7x7 uniform window, sample covariance, data_range 2, so the
stabilising constants all but vanish). The original computes in float32; here in the inputs'
dtype (float64 agrees with it to its float32 rounding, about 1e-7 relative).
"""

from __future__ import annotations

import torch

from metrics import _native
from metrics._lineage_images import LineageImages
from metrics.lineage import kernels as K
from metrics.lineage._spec import Spec


def en(li: LineageImages, name: str) -> torch.Tensor:
    return K.entropy(K.hist(torch.round(li.f).clamp(0, 255))) / K.LOG2


def sd(li: LineageImages, name: str) -> torch.Tensor:
    return K.std_pop(li.f)


def sf(li: LineageImages, name: str) -> torch.Tensor:
    rf, cf, nr, nc = K.sum_sq_diffs(li.f)
    return torch.sqrt(rf / nr + cf / nc)


def ag(li: LineageImages, name: str) -> torch.Tensor:
    gx, gy = K.gradient(li.f)
    return K.sqrt((gx * gx + gy * gy) / 2).mean(dim=(1, 2, 3))


def mi(li: LineageImages, name: str) -> torch.Tensor:
    """8-bit images: the 256 x 256 joint histograms, in the inputs' dtype (exact counts). Otherwise
    every distinct value is a label, and the tables' entropies are taken in float64 (their scatter-adds
    of tens of thousands of p log p terms drift by 1.7e-3 in float32 on case c19), returned in the
    inputs' dtype."""
    if bool(li.f_integer.all()) and li.ab_integer:
        lab = [x.clamp(0, 255) for x in (li.a, li.b, li.f)]
        return K.mutual_information(lab[2], lab[0]) + K.mutual_information(lab[2], lab[1])
    d = li.as_double()
    return (K.label_mutual_information(d.f, d.a) + K.label_mutual_information(d.f, d.b)).to(li.f.dtype)


def _mse(li: LineageImages) -> torch.Tensor:
    return (((li.a - li.f) ** 2).mean(dim=(1, 2, 3)) + ((li.b - li.f) ** 2).mean(dim=(1, 2, 3))) / 2


def mse(li: LineageImages, name: str) -> torch.Tensor:
    return _mse(li)


def psnr(li: LineageImages, name: str) -> torch.Tensor:
    peak = li.f.flatten(1).amax(dim=1)
    return 10 * torch.log10(peak**2 / _mse(li))


def cc(li: LineageImages, name: str) -> torch.Tensor:
    v = (K.pearson(li.a, li.f) + K.pearson(li.b, li.f)) / 2
    return li.nan_if_nonfinite(name, v, "the correlation divides 0 by 0 on a constant image")


def scd(li: LineageImages, name: str) -> torch.Tensor:
    v = K.pearson(li.a, li.f - li.b) + K.pearson(li.b, li.f - li.a)
    return li.nan_if_nonfinite(name, v, "F minus a source is constant (e.g. F equals it): 0/0 in the correlation")


def viff(li: LineageImages, name: str) -> torch.Tensor:
    v_a, v_b = K.vifp_pair_once(li)
    return v_a + v_b


def qabf(li: LineageImages, name: str) -> torch.Tensor:
    return K.qabf_once(li)


def _uniform7(x: torch.Tensor, dim: int) -> torch.Tensor:
    """scipy ``uniform_filter1d(x, 7, axis)`` (mode 'reflect': edge repeated) of float32 ``x``: the
    window sum as a difference of running sums in float64, divided by 7, stored as float32. On the
    0..255 integer images (and their products) every running sum is exact, so this is scipy's value
    bit for bit (checked against scipy 1.17; a 7-tap product sum of x / 7 differs in the last bit of
    ~1% of the pixels, which the near-constant case c05 amplified to 1.4e-6)."""
    n = x.shape[dim]
    xd = x.double()
    p = torch.cat([xd.narrow(dim, 0, 3).flip(dim), xd, xd.narrow(dim, n - 3, 3).flip(dim)], dim)
    c = torch.cat([torch.zeros_like(p.narrow(dim, 0, 1)), p.cumsum(dim)], dim)
    return ((c.narrow(dim, 7, n) - c.narrow(dim, 0, n)) / 7).float()


def _mean7_f32(x: torch.Tensor) -> torch.Tensor:
    """scipy ``uniform_filter(size=7)`` on float32, as skimage calls it: rows then columns, each
    pass stored as float32; cropped by 3 (skimage's ``pad``)."""
    return _uniform7(_uniform7(x, -2), -1)[..., 3:-3, 3:-3]


# skimage's sample-covariance factor and stabilising constants for data_range 2 (K1 = 0.01, K2 = 0.03)
NORM, C1, C2 = 49.0 / 48.0, (0.01 * 2.0) ** 2, (0.03 * 2.0) ** 2


def _skimage_ssim(x: torch.Tensor, y: torch.Tensor, x_means=None, y_means=None) -> torch.Tensor:
    """skimage 0.19 ``structural_similarity(x, y)`` on float32 images, operation for operation in
    float32 as there: 7x7 uniform window, sample covariance (49/48), data_range 2 (the float
    dtype's range), mean over the map cropped by 3 taken in float64. Float32 matters: with the
    constants all but gone, E[x^2] - mu^2 cancels and the original's rounding shows in the 5th
    decimal on near-constant images. ``x_means``, ``y_means``: local means of x and x^2 (y and y^2),
    if already known."""
    return _map_mean(_ssim_map(x, y, x_means, y_means), x.dtype)


def _ssim_map(x: torch.Tensor, y: torch.Tensor, x_means=None, y_means=None) -> torch.Tensor:
    """:func:`_skimage_ssim`'s float32 map, cropped by 3, before its mean."""
    x, y = x.float(), y.float()
    ux, uxx = x_means if x_means is not None else _f_means(x)
    uy, uyy = y_means if y_means is not None else _f_means(y)
    uxy = _mean7_f32(x * y)
    vx, vy, vxy = NORM * (uxx - ux * ux), NORM * (uyy - uy * uy), NORM * (uxy - ux * uy)
    a1, a2 = 2 * ux * uy + C1, 2 * vxy + C2
    b1, b2 = ux**2 + uy**2 + C1, vx + vy + C2
    return (a1 * a2) / (b1 * b2)


def _map_mean(s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return s.double().mean(dim=(1, 2, 3)).to(dtype)


def _f_means(x: torch.Tensor):
    x = x.float()
    return _mean7_f32(x), _mean7_f32(x * x)


def ssim(li: LineageImages, name: str) -> torch.Tensor:
    """SSIM(F, A) + SSIM(F, B). On a CPU the hand-written kernel (:func:`metrics._native.skimage_ssim`: both
    maps in one pass down each image, 0.8 against 7 ms a triple, the same maps bit for bit); elsewhere the
    eager steps, F's local means computed once, and A's and B's once per pair of sources."""
    if li.f.shape[0] and _native.cpu_ready(li.f, li.a, li.b):
        s_a, s_b = _native.skimage_ssim(*(x.float() for x in (li.f, li.a, li.b)), NORM, C1, C2)
        return _map_mean(s_a, li.f.dtype) + _map_mean(s_b, li.f.dtype)
    f_means = _f_means(li.f)
    a_means, b_means = li.source_cached("skimage means", lambda: (_f_means(li.a), _f_means(li.b)))
    return _skimage_ssim(li.f, li.a, f_means, a_means) + _skimage_ssim(li.f, li.b, f_means, b_means)


SPECS = (
    Spec("EN", en, True, "Roberts et al., J. Appl. Remote Sens. 2008", "entropy of F (bits)"),
    Spec("SD", sd, True, "Rao, Meas. Sci. Technol. 1997", "standard deviation of F"),
    Spec("SF", sf, True, "Eskicioglu & Fisher, IEEE TCOM 1995", "spatial frequency"),
    Spec("AG", ag, True, "Cui et al., Opt. Commun. 2015", "average gradient (plain mean)"),
    Spec("MI", mi, True, "Qu, Zhang & Yan, Electron. Lett. 2002", "MI(F,A) + MI(F,B), nats, value labels"),
    Spec("MSE", mse, False, "Jagalingam & Hegde, Aquatic Procedia 2015", "mean squared error, 0..255"),
    Spec("CC", cc, True, "Deshmukh & Bhosale, IJIP 2010", "mean correlation coefficient"),
    Spec("PSNR", psnr, True, "Jagalingam & Hegde, Aquatic Procedia 2015", "PSNR with peak max(F)"),
    Spec("SCD", scd, True, "Aslantas & Bendes, AEU 2015", "sum of the correlations of differences"),
    Spec(
        "VIFF",
        viff,
        True,
        "Sheikh & Bovik, IEEE TIP 2006",
        "multiscale pixel VIF, summed over sources",
        min_size=K.VIF_MIN_SIZE,
        f64=True,
    ),
    Spec("Qabf", qabf, True, "Xydeas & Petrovic, Electron. Lett. 2000", "gradient preservation Q^AB/F"),
    Spec("SSIM", ssim, True, "Wang et al., IEEE TIP 2004", "skimage SSIM(F,A) + SSIM(F,B)", min_size=7),
)
