"""Tang's evaluation code (Linfeng-Tang/Evaluation-for-Image-Fusion @ 0e87153b,
``Evaluation/analysis_Reference.m`` and what it calls; used by SeAFusion, PSFusion and others).

Called as its ``Evaluation_for_Single_Image.m`` calls ``analysis_Reference(F, ir = B, vi = A)``.
Quirks kept: ``EN`` is MATLAB ``entropy`` of F (a non-integer F goes through ``im2uint8`` and
saturates); ``MI`` is in bits, from Qu's ``Hab.m``, whose ``x + 1`` on uint8 saturates, merging
grey levels 254 and 255 in the joint histogram; ``MSE`` and ``PSNR`` use [0, 1]-scaled images but
peak 255 (+48.13 dB over the usual); ``SF`` divides by the number of differences; ``SSIM`` is the
*mean* of two MATLAB ``ssim`` calls on doubles in 0..255, where the default DynamicRange is 1 (so
its constants all but vanish); ``VIF`` is the sum over sources of Sheikh-Bovik's ``vifp_mscale``.
All but EN and MI see ``im2double(x) * 255``: for an 8-bit image its values, for a float F
(which ``im2double`` leaves unscaled) F * 255, as the original does.
"""

from __future__ import annotations

import math

import torch

from metrics import _native
from metrics._lineage_images import LineageImages
from metrics.lineage import kernels as K
from metrics.lineage import wavelet as W
from metrics.lineage._spec import Spec


def _float_f(li: LineageImages) -> torch.Tensor:
    """``im2double(F) * 255``: F for an 8-bit F, F * 255 for a float one."""

    def make():
        if li.f.device.type == "cpu" and bool(li.f_integer.all()):  # 8-bit F as it is: no copy
            return li.f
        return torch.where(li.f_integer.view(-1, 1, 1, 1), li.f, li.f * 255)

    return li.cached("tang_f", make)


def _entropy_matlab(x: torch.Tensor, integer: torch.Tensor) -> torch.Tensor:
    """MATLAB ``entropy``: 256-bin histogram of the uint8 image (a double one through ``im2uint8``)."""
    u8 = torch.where(integer.view(-1, 1, 1, 1), x, K.round_half_away(x.clamp(0, 1) * 255))
    return K.entropy(K.hist(u8.clamp(0, 255))) / K.LOG2


def en(li: LineageImages, name: str) -> torch.Tensor:
    return _entropy_matlab(li.f, li.f_integer)


def mi(li: LineageImages, name: str) -> torch.Tensor:
    """MI(B, F) + MI(A, F) in bits; entropies from ``entropy``, joint from ``Hab`` (254/255 merged)."""
    ok = li.f_integer & li.ab_integer
    f = torch.where(ok.view(-1, 1, 1, 1), li.f, torch.zeros_like(li.f)).clamp(0, 255)
    a, b = ((x if li.ab_integer else torch.zeros_like(x)).clamp(0, 255) for x in (li.a, li.b))
    ent = [K.entropy(K.hist(x)) for x in (a, b, f)]

    def joint(s):
        return K.entropy(K.joint_hist(s.clamp(max=254), f.clamp(max=254)), dims=(1, 2))

    v = (ent[0] + ent[2] - joint(a) + ent[1] + ent[2] - joint(b)) / K.LOG2
    reason = "the original indexes a 256x256 histogram with the pixel values and errors on a non-integer image"
    return li.nan_where(name, v, ~ok, reason)


def _mse01(li: LineageImages) -> torch.Tensor:
    f = torch.where(li.f_integer.view(-1, 1, 1, 1), li.f / 255, li.f)
    a, b = li.a / 255, li.b / 255
    m, n = f.shape[-2:]
    return 0.5 * ((f - a) ** 2).sum(dim=(1, 2, 3)) / (m * n) + 0.5 * ((f - b) ** 2).sum(dim=(1, 2, 3)) / (m * n)


def mse(li: LineageImages, name: str) -> torch.Tensor:
    return _mse01(li)


def psnr(li: LineageImages, name: str) -> torch.Tensor:
    return 20 * torch.log10(255 / torch.sqrt(_mse01(li)))


def sf(li: LineageImages, name: str) -> torch.Tensor:
    rf, cf, nr, nc = K.sum_sq_diffs(_float_f(li))
    return torch.sqrt(rf / nr + cf / nc)


def sd(li: LineageImages, name: str) -> torch.Tensor:
    return K.std_pop(_float_f(li))


def vif(li: LineageImages, name: str) -> torch.Tensor:
    if bool(li.f_integer.all()):  # F as it is: CDDFuse's VIFF maps, shared when both are scored
        v_a, v_b = K.vifp_pair_once(li)
    else:
        v_b, v_a = K.vifp_mscale_pair(li.b, li.a, _float_f(li), cache=li.source_memo("vif(b, a)"))
    return v_b + v_a


def ag(li: LineageImages, name: str) -> torch.Tensor:
    f = _float_f(li)
    gx, gy = K.gradient(f)
    r, c = f.shape[-2:]
    return K.sqrt((gx * gx + gy * gy) / 2).sum(dim=(1, 2, 3)) / ((r - 1) * (c - 1))


def cc(li: LineageImages, name: str) -> torch.Tensor:
    f = _float_f(li)
    v = (K.pearson(li.b, f) + K.pearson(li.a, f)) / 2
    return li.nan_if_nonfinite(name, v, "the correlation divides 0 by 0 on a constant image")


def scd(li: LineageImages, name: str) -> torch.Tensor:
    f = _float_f(li)
    v = K.pearson(f - li.a, li.b) + K.pearson(f - li.b, li.a)
    return li.nan_if_nonfinite(name, v, "F minus a source is constant (e.g. F equals it): 0/0 in the correlation")


def qabf(li: LineageImages, name: str) -> torch.Tensor:
    if bool(li.f_integer.all()):  # F as it is: the other lineages' Qabf, shared when they are scored
        return K.qabf_once(li)
    return K.qabf(li.b, li.a, _float_f(li), cache=li.source_memo("qabf(b, a)"))


def nabf(li: LineageImages, name: str) -> torch.Tensor:
    """Shreyamsha Kumar's modified fusion-artefact measure N^AB/F (``analysis_nabf.m``): Sobel/8
    on a mirror-extended image, Petrovic's constants (Td 2, L 1.5, kg 19, ka 22, Nrg 0.9999,
    Nra 0.9995), artefacts where the "fused" edge is stronger than both "sources'". Lower is better.
    On a CPU, where the hand-written kernels build, in one pass a pixel (:func:`metrics._native.qabf`,
    ``metrics/qabf_kernel.cpp``), the same arithmetic."""
    if _native.cpu_ready(li.a, li.b) and _float_f(li).dtype == li.a.dtype:
        # Tang's roles (below): B as the "fused" image, A and F as the "sources".
        return _native.qabf(li.b, li.a, _float_f(li), name="nabf")
    vt = K.kernel([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], li.a) / 8
    ht = K.kernel([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]], li.a) / 8

    def edges(x):
        gv, gh = K.filt(x, vt, "reflect"), K.filt(x, ht, "reflect")
        both0 = (gv == 0) & (gh == 0)
        return torch.sqrt(gh * gh + gv * gv), torch.where(both0, torch.zeros_like(gv), torch.atan(gv / gh))

    # Tang's ``analysis_Reference`` passes (ir, vi, fused) to ``analysis_nabf(f, I1, I2)``: the
    # "fused" role goes to B (FLAIR / infrared) and F is scored as the second source. Kept: it is
    # what the original returns.
    (g_f, t_f), (g_a, t_a), (g_b, t_b) = edges(li.b), edges(li.a), edges(_float_f(li))

    def q(g_s, t_s):
        zero = (g_s == 0) | (g_f == 0)
        rel = torch.where(zero, torch.zeros_like(g_s), torch.where(g_s > g_f, g_f / g_s, g_s / g_f))
        ang = torch.abs(torch.abs(t_s - t_f) - math.pi / 2) * 2 / math.pi
        qg = 0.9999 / (1 + torch.exp(-19 * (rel - 0.5)))
        qa = 0.9995 / (1 + torch.exp(-22 * (ang - 0.5)))
        return torch.sqrt(qg * qa)

    def weight(g):
        return torch.where(g >= 2, g**1.5, torch.full_like(g, 0.001))

    w_a, w_b = weight(g_a), weight(g_b)
    na = ((g_f > g_a) & (g_f > g_b)).to(g_f.dtype)
    num = (na * ((1 - q(g_a, t_a)) * w_a + (1 - q(g_b, t_b)) * w_b)).sum(dim=(1, 2, 3))
    return num / (w_a + w_b).sum(dim=(1, 2, 3))


def _ssim_matlab_maps(li: LineageImages, f: torch.Tensor) -> list:
    """MATLAB ``ssim(f, r)`` for r = B, A on doubles with its defaults: 11x11 Gaussian (sigma 1.5),
    replicate padding, 'same' map, DynamicRange 1 (C1 = 1e-4, C2 = 9e-4); the mean of each map.
    B's and A's own moments are computed once per pair of sources (:func:`K.moments_beside`)."""
    pairs = [(0, 0), (1, 1), (2, 2), (0, 2), (1, 2)]
    g = K.gaussian_1d(11, 1.5, f)
    mu, e = K.moments_beside(li, "ssim matlab", lambda: [li.b, li.a], f, pairs, g, "replicate")
    return [K.ssim_mean(mu[2], mu[k], e[(2, 2)], e[(k, k)], e[(k, 2)], 0.01**2, 0.03**2) for k in range(2)]


def ssim(li: LineageImages, name: str) -> torch.Tensor:
    s_b, s_a = _ssim_matlab_maps(li, _float_f(li))
    return 0.5 * s_b + 0.5 * s_a


def _mef_ssim(seq: list, f: torch.Tensor, k: float = 0.03, cache=None) -> torch.Tensor:
    """Ma, Zeng & Wang's MEF-SSIM (``mef_ssim.m``) of F against the source sequence, batched.

    Per 11x11 patch the original builds a desired patch from the sources' mean-removed patches,
    weighted by structural consistency R (tan(pi/2 R), capped at 10) and signal strength, scaled to
    the strongest source's contrast, and compares it with F's patch by the SSIM structure term
    under an 11x11 Gaussian (C = (0.03 * 255)^2). The desired patch is an affine combination of the
    source patches, so every statistic the original takes of it expands into local moments of the
    sources and F (box sums and Gaussian means of x_k, x_k x_l, x_k F): no loop over patches.
    ``cache(key, make)``: where the sources' own part is kept (:func:`_desired`)."""
    n = len(seq)
    coef, b, scale, m_r, e_rr, packed = (cache or K.no_cache)("desired", lambda: _desired(seq))
    g = K.gaussian_1d(11, 1.5, f)
    c = (k * 255) ** 2
    if packed is not None and _native.cpu_ready(f) and f.dtype == torch.float64:
        # One pass a pixel (metrics/mef_kernel.cpp), as the steps below.
        fm = K.moment_maps([*seq, f], [(i, n) for i in range(n)] + [(n, n)], g, means=[n])
        return _native.mef_score(packed, fm, c)
    g_mu, g_e = K.local_moments([*seq, f], [(i, n) for i in range(n)] + [(n, n)], g, means=[n])
    e_rf = sum(coef[i] * g_e[(i, n)] for i in range(n)) - b * g_mu[n]
    var_r = scale * scale * (e_rr - m_r * m_r)
    var_f = g_e[(n, n)] - g_mu[n] * g_mu[n]
    cov = scale * (e_rf - m_r * g_mu[n])
    return ((2 * cov + c) / (var_r + var_f + c)).mean(dim=(1, 2, 3))


def _desired(seq: list):
    """The sources' part of :func:`_mef_ssim`, which no F changes: the desired patch's coefficients
    ``a_k`` and offset ``b`` (desired = sum_k a_k x_k - b), its contrast scale, its Gaussian mean
    and mean square, and (from the hand-written kernel, else None) all of them as one tensor.

    On a CPU, for two float64 sources, the ~50 steps a pixel run in one pass
    (:func:`metrics._native.mef_desired`, ``metrics/mef_kernel.cpp``), the same arithmetic in the
    same order."""
    eps = torch.finfo(torch.float64).eps
    n = len(seq)
    ones = torch.ones(11, dtype=seq[0].dtype, device=seq[0].device)
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    if n == 2 and seq[0].dtype == torch.float64 and _native.cpu_ready(*seq):
        # box sums and Gaussian means of the same five maps (each product made twice, in cache)
        box, gauss = (K.moment_maps(seq, pairs, w) for w in (ones, K.gaussian_1d(11, 1.5, seq[0])))
        packed = _native.mef_desired(box, gauss)
        a0, a1, b, scale, m_r, e_rr = packed.split(1, dim=1)
        return [a0, a1], b, scale, m_r, e_rr, packed
    u_mu, u_e = K.local_moments(seq, pairs, ones)  # box sums over the patch
    mu = [m / 121 for m in u_mu]
    ed = [torch.sqrt((121 * (u_e[(i, i)] / 121 - mu[i] * mu[i])).clamp(min=0)) + 0.001 for i in range(n)]
    s_sum = sum(u_mu)
    s_sq = sum(u_e[(i, j)] * (1 if i == j else 2) for i, j in pairs)
    num = torch.sqrt((s_sq - s_sum * s_sum / 121).clamp(min=0))
    den = sum(torch.sqrt((u_e[(i, i)] - 2 * mu[i] * u_mu[i] + 121 * mu[i] * mu[i]).clamp(min=0)) for i in range(n))
    r = (num + eps) / (den + eps)
    r = torch.where(r > 1, torch.full_like(r, 1 - eps), r)
    r = torch.where(r < 0, torch.full_like(r, eps), r)
    p = torch.tan(math.pi / 2 * r).clamp(max=10)
    w = [(e / 11) ** p + eps for e in ed]
    total = sum(w)
    a = [w[i] / total / ed[i] for i in range(n)]  # desired patch = sum_k a_k x_k - b
    b = sum(a[i] * mu[i] for i in range(n))
    max_ed = torch.stack(ed).amax(dim=0)
    norm2 = sum(a[i] * a[j] * u_e[(i, j)] * (1 if i == j else 2) for i, j in pairs)
    norm2 = norm2 - 2 * b * sum(a[i] * u_mu[i] for i in range(n)) + 121 * b * b
    scale = torch.where(norm2 > 0, max_ed / torch.sqrt(norm2.clamp(min=1e-300)), torch.ones_like(norm2))
    g_mu, g_e = K.local_moments(seq, pairs, K.gaussian_1d(11, 1.5, seq[0]))
    m_r = sum(a[i] * g_mu[i] for i in range(n)) - b
    e_rr = sum(a[i] * a[j] * g_e[(i, j)] * (1 if i == j else 2) for i, j in pairs)
    e_rr = e_rr - 2 * b * sum(a[i] * g_mu[i] for i in range(n)) + b * b
    return a, b, scale, m_r, e_rr, None


def _halve(x: torch.Tensor) -> torch.Tensor:
    """``imfilter(x, ones(2)/4, 'symmetric', 'same')`` then every other pixel from the first: each kept
    pixel the mean of its 2x2 block, summed in the filter's order, the last row (column) of an odd side
    repeated. Only the kept pixels are computed (a quarter of the filter's outputs); on a CPU in one pass
    (:func:`metrics._native.halve`, the same bits)."""
    if x.numel() and _native.cpu_ready(x):
        return _native.halve(x)
    if x.shape[-2] % 2:
        x = torch.cat([x, x[..., -1:, :]], dim=-2)
    if x.shape[-1] % 2:
        x = torch.cat([x, x[..., -1:]], dim=-1)
    return (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2]) / 4


def ms_ssim(li: LineageImages, name: str) -> torch.Tensor:
    """``analysis_ms_ssim(cat(3, ir, vi), F)``."""
    return mef_ms_ssim([li.b, li.a], _float_f(li), cache=li.source_memo("mef_ms_ssim(b, a)"))


def mef_ms_ssim(seq: list, f: torch.Tensor, cache=None) -> torch.Tensor:
    """Ma et al.'s ``mef_ms_ssim.m`` (Tang's ``analysis_ms_ssim``): MEF-SSIM at 3 scales (2x2 mean
    and decimation between them), combined as prod Q_l^w_l with w = [0.0448, 0.2856, 0.3001] / sum.
    ``cache(key, make)``: where what the sources alone give is kept (e.g. a :class:`LineageImages`'
    :meth:`~LineageImages.source_cached`, to compute it once for every F scored against them)."""
    w = torch.tensor([0.0448, 0.2856, 0.3001], dtype=torch.float64)
    w = (w / w.sum()).tolist()
    out = torch.ones(f.shape[0], dtype=torch.complex128, device=f.device)
    cache = cache or K.no_cache
    for level in range(3):
        if level:
            seq = cache(("halved", level), lambda s=seq: [_halve(x) for x in s])
            f = _halve(f)
        scaled = lambda key, make, level=level: cache((level, key), make)
        out = out * _mef_ssim(seq, f, cache=scaled).to(torch.complex128) ** w[level]
    # A negative scale score raised to a fractional weight is complex in MATLAB; the real part of
    # the product is what the original reports (c12, F = 255 - A: -0.297).
    return out.real.to(f.dtype)


def _dct_matrix(n: int, like: torch.Tensor) -> torch.Tensor:
    """The orthonormal DCT-II matrix: MATLAB ``dct2(X) = D_rows X D_cols'``."""
    k = torch.arange(n, dtype=torch.float64, device=like.device).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64, device=like.device).view(1, -1)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] = d[0] / math.sqrt(2.0)
    return d.to(like.dtype)


def fmi_dct(li: LineageImages, name: str) -> torch.Tensor:
    """Haghighat's Fast-FMI (``analysis_fmi(ir, vi, F, 'dct')``, 3x3 windows) on the images' 2-D
    DCTs: the same windowed FMI as Liu's Q_FMI (:func:`metrics.fmi.fmi_from_images`, the toolbox
    and Tang share Haghighat's code), fed DCT coefficients. The oracle ran it on one case only
    (c13, about 530 s in Octave), which it equals."""
    from metrics.fmi import fmi_from_images

    f = _float_f(li)
    b, a = (li.source_cached(("dct2", k), lambda x=x: _dct2(x)) for k, x in (("b", li.b), ("a", li.a)))
    return fmi_from_images(b, a, _dct2(f), 3)


def _dct2(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``dct2`` of each image of ``x`` (..., H, W), in its dtype. On a CPU scipy's FFT-based
    ``dctn`` (type II, orthonormal; what the NumPy reference takes): 0.20 against 0.67 ms a 240x240
    float32 image for the two matrix products, 0.33 against 1.27 in float64 (one thread), within
    2.8e-7 of the largest coefficient in float32 and 7e-15 in float64. Elsewhere (and under autograd)
    the products ``D x D'``, which a GPU runs fast."""
    if x.device.type == "cpu" and not x.requires_grad:
        from scipy import fft as sfft

        threads = torch.get_num_threads()
        return torch.from_numpy(sfft.dctn(x.contiguous().numpy(), type=2, norm="ortho", axes=(-2, -1), workers=threads))
    h, w = x.shape[-2:]
    return _dct_matrix(h, x) @ x @ _dct_matrix(w, x).T


def fmi_pixel(li: LineageImages, name: str) -> torch.Tensor:
    """``analysis_fmi(ir, vi, F)`` with no feature argument: Haghighat's Fast-FMI (3x3 windows) on
    MATLAB's default Sobel edge maps (:func:`K.edge_sobel`), despite the key's name: Tang's
    ``analysis_fmi.m`` (Linfeng-Tang/SeAFusion @ d3ae78e4, ``Evaluation/``; the same function MEFB
    ships) sets ``feature = 'edge'`` when none is given. Not checked against the original: the
    oracle could not run it (about 530 s per image in Octave)."""
    from metrics.fmi import fmi_from_images

    b, a = (li.source_cached(("edge_sobel", k), lambda x=x: K.edge_sobel(x)) for k, x in (("b", li.b), ("a", li.a)))
    return fmi_from_images(b, a, K.edge_sobel(_float_f(li)), 3)


def fmi_w(li: LineageImages, name: str) -> torch.Tensor:
    """``analysis_fmi(ir, vi, F, 'wavelet')``: Haghighat's Fast-FMI (3x3 windows) on each image's
    ``rerange([cA, cH; cV, cD])``, the single-level ``dwt2(x, 'dmey')`` subbands side by side, min-max
    scaled to [0, 1] (:mod:`metrics.lineage.wavelet`; Tang's ``analysis_fmi.m`` as SeAFusion ships it).
    Not checked against the original: Octave has no ``dwt2`` and the oracle could not run it, and
    MATLAB's ``dmey`` taps come from a third-party copy (:data:`metrics.lineage.wavelet.DMEY_HALF`)."""
    from metrics.fmi import fmi_from_images

    def feature(x):
        return W.rerange(W.dwt2_mosaic(x))

    b, a = (li.source_cached(("dwt2_mosaic", k), lambda x=x: feature(x)) for k, x in (("b", li.b), ("a", li.a)))
    return fmi_from_images(b, a, feature(_float_f(li)), 3, score_f32=True)


# Keys of the original not implemented here (docs/lineages.md says why).
NOT_IMPLEMENTED = ()
SPECS = (
    Spec("EN", en, True, "Roberts et al., J. Appl. Remote Sens. 2008", "entropy of F (bits)"),
    Spec("MI", mi, True, "Qu, Zhang & Yan, Electron. Lett. 2002", "MI(A,F) + MI(B,F), bits"),
    Spec("PSNR", psnr, True, "Jagalingam & Hegde, Aquatic Procedia 2015", "PSNR, [0,1] MSE, peak 255"),
    Spec("MSE", mse, False, "Jagalingam & Hegde, Aquatic Procedia 2015", "mean squared error, [0,1] scale"),
    Spec("SF", sf, True, "Eskicioglu & Fisher, IEEE TCOM 1995", "spatial frequency"),
    Spec("SD", sd, True, "Rao, Meas. Sci. Technol. 1997", "standard deviation of F"),
    Spec(
        "VIF",
        vif,
        True,
        "Sheikh & Bovik, IEEE TIP 2006",
        "multiscale pixel VIF, summed over sources",
        min_size=K.VIF_MIN_SIZE,
        f64=True,
    ),
    Spec("AG", ag, True, "Cui et al., Opt. Commun. 2015", "average gradient"),
    Spec("CC", cc, True, "Deshmukh & Bhosale, IJIP 2010", "mean correlation coefficient"),
    Spec("SCD", scd, True, "Aslantas & Bendes, AEU 2015", "sum of the correlations of differences"),
    Spec("Qabf", qabf, True, "Xydeas & Petrovic, Electron. Lett. 2000", "gradient preservation Q^AB/F"),
    Spec("Nabf", nabf, False, "Shreyamsha Kumar, SIViP 2013", "fusion artefacts N^AB/F (modified)"),
    Spec(
        "SSIM", ssim, True, "Wang et al., IEEE TIP 2004", "mean of MATLAB ssim(F,B), ssim(F,A)", min_size=11, f64=True
    ),
    Spec(
        "FMI_pixel",
        fmi_pixel,
        True,
        "Haghighat & Razian, AICT 2014",
        "Fast-FMI of Sobel edge maps (default feature)",
        checked=False,
        compiled=True,
        native=True,
    ),
    Spec(
        "FMI_dct",
        fmi_dct,
        True,
        "Haghighat & Razian, AICT 2014",
        "Fast-FMI of DCT features",
        compiled=True,
        native=True,
    ),
    Spec(
        "FMI_w",
        fmi_w,
        True,
        "Haghighat & Razian, AICT 2014",
        "Fast-FMI of Discrete Meyer wavelet features",
        checked=False,
        f64=True,
        compiled=True,
        native=True,
    ),
    Spec("MS_SSIM", ms_ssim, True, "Ma, Zeng & Wang, IEEE TIP 2015", "multi-scale MEF-SSIM", min_size=44, f64=True),
)
