"""Per-image NumPy/SciPy float64 implementations of the five metric sets: the CDDFuse set
(:func:`cddfuse_metrics`, written from the definitions in :mod:`metrics.lineage.cddfuse`), VIFB's 13
(:func:`vifb_metrics`, from :mod:`metrics.lineage.vifb`), Tang's 17 (:func:`tang_metrics`, from
:mod:`metrics.lineage.tang`), MEFB's 20 (:func:`mefb_metrics`, from :mod:`metrics.lineage.mefb` and
:mod:`metrics.lineage.phase`) and the Table 1 five in Liu's toolbox's ``upstream`` profile
(:func:`liu_metrics`, from the definitions in :mod:`metrics.ssim`, :mod:`metrics.fmi`,
:mod:`metrics.ncie`, :mod:`metrics.qabf`, :mod:`metrics.piella`). They are the baselines the batched
PyTorch sets are timed against (``benchmark.tools.speed_lineages``), and they are checked against the
originals' values, and against fusionbench's where an original could not run
(``tests/test_numpy_reference.py``).

One triple at a time, as the per-image evaluators of the field run (CDDFuse's own ``Evaluator``
takes about 0.8 s per 240x240 triple on the project's 2-core CPU, lineage.json), vectorised over
pixels and windows as NumPy allows; what depends on the image size alone (MEFB's phase-congruency
filter bank, the ``dmey`` analysis matrices) is built once per size. Images are 2-D float64 arrays
in 0..255. The CDDFuse set is not the original (which works in float32 and needs scikit-learn):
SSIM here is scikit-image's, in float64, so it differs from the original's float32 in the 5th
decimal on near-constant images. Each set is written as NumPy is best used, not as its original
runs (CDDFuse's filters VIF in 2-D and takes MI's labels by sorting: 271 ms a triple here that way,
58 with separable filters, 26 with 8-bit histograms too; the Fast-FMI windows in steps that fit the
cache, :data:`FMI_CHUNK`; docs/speed.md).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.ndimage import correlate, correlate1d
from scipy.signal import convolve2d


def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _is_integer(x: np.ndarray) -> bool:
    return bool(np.array_equal(x, np.round(x)))


def _joint256(s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """256x256 joint counts of two images of integers 0..255 (rows: ``s``)."""
    return np.bincount((s.astype(np.int64) * 256 + t.astype(np.int64)).ravel(), minlength=65536).reshape(256, 256)


def _mi_nats(x: np.ndarray, y: np.ndarray) -> float:
    """I(x; y) in nats with every distinct value its own label (sklearn ``mutual_info_score``, as
    CDDFuse calls it): for 8-bit images (integers 0..255) from a 256x256 joint histogram, otherwise
    from the sorted distinct values (``np.unique``, 5x slower)."""
    if all(v.min() >= 0 and v.max() <= 255 and _is_integer(v) for v in (x, y)):
        joint = _joint256(x, y).astype(np.float64)
        px, py = joint.sum(axis=1) / x.size, joint.sum(axis=0) / y.size
        joint = joint[joint > 0] / x.size
    else:
        _, lx = np.unique(x, return_inverse=True)
        _, ly = np.unique(y, return_inverse=True)
        joint = np.bincount(lx.ravel() * (ly.max() + 1) + ly.ravel()).astype(np.float64)
        joint = joint[joint > 0] / x.size
        px = np.bincount(lx.ravel()) / x.size
        py = np.bincount(ly.ravel()) / y.size
    h = lambda p: float(-(p[p > 0] * np.log(p[p > 0])).sum())  # noqa: E731
    return h(px) + h(py) - h(joint)


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    dx, dy = x - x.mean(), y - y.mean()
    return float((dx * dy).sum() / math.sqrt((dx * dx).sum() * (dy * dy).sum()))


def _vif_maps(ref: np.ndarray, dist: np.ndarray, nsq: float):
    """Per scale of Sheikh & Bovik's ``vifp_mscale.m``: (information with distortion, without, gain g)
    maps of ``ref`` against ``dist``, the original's corrections in its order. The Gaussian windows
    filter as two 1-D passes (:func:`_moments_valid`): 20x faster than the 2-D ``convolve2d`` that
    CDDFuse's original calls (with which the speed tables' NumPy CDDFuse set took 271 against 58 ms a
    triple, docs/speed.md)."""
    eps = 1e-10
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        w = _gauss_1d(n, n / 5.0)
        if scale > 1:
            ref, dist = (x[::2, ::2] for x in _moments_valid([ref, dist], w))
        mu1, mu2, e11, e22, e12 = _moments_valid([ref, dist, ref * ref, dist * dist, ref * dist], w)
        s1 = np.maximum(e11 - mu1 * mu1, 0)
        s2 = np.maximum(e22 - mu2 * mu2, 0)
        s12 = e12 - mu1 * mu2
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        low = s1 < eps
        g[low], sv[low], s1[low] = 0, s2[low], 0
        low = s2 < eps
        g[low], sv[low] = 0, 0
        neg = g < 0
        sv[neg], g[neg] = s2[neg], 0
        sv[sv <= eps] = eps
        yield np.log10(1 + g * g * s1 / (sv + nsq)), np.log10(1 + s1 / nsq), g


def _vifp(ref: np.ndarray, dist: np.ndarray) -> float:
    """``vifp_mscale(ref, dist)``: sigma_nsq = 2, the ratio of the maps' sums; NaN -> 1 (CDDFuse)."""
    num = den = 0.0
    for n_map, d_map, _ in _vif_maps(ref, dist, 2.0):
        num, den = num + n_map.sum(), den + d_map.sum()
    v = num / den
    return 1.0 if np.isnan(v) else float(v)


_H1 = np.array([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]])
_H3 = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])


def _edges(x: np.ndarray):
    gx, gy = convolve2d(x, _H3, mode="same"), convolve2d(x, _H1, mode="same")
    g = np.sqrt(gx * gx + gy * gy)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(gx == 0, math.pi / 2, np.arctan(gy / gx))
    return g, a


def _qabf(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    (ga, ta), (gb, tb), (gf, tf) = _edges(a), _edges(b), _edges(f)

    def q(gs, ts):
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(gs > gf, gf / gs, np.where(gs == gf, gf, gs / gf))
        ang = 1 - np.abs(ts - tf) / (math.pi / 2)
        return 0.9994 / (1 + np.exp(-15 * (rel - 0.5))) * 0.9879 / (1 + np.exp(-22 * (ang - 0.8)))

    return float((q(ga, ta) * ga + q(gb, tb) * gb).sum() / (ga + gb).sum())


def cddfuse_metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """The 12 CDDFuse metrics of one triple (F, A = x1, B = x2), 2-D float64 arrays in 0..255."""
    from skimage.metrics import structural_similarity

    gx, gy = np.gradient(f, axis=1), np.gradient(f, axis=0)
    mse = ((a - f) ** 2).mean() / 2 + ((b - f) ** 2).mean() / 2
    ssim = lambda x, y: structural_similarity(x, y, data_range=2.0, win_size=7)  # noqa: E731
    return {
        "EN": _entropy_bits(np.bincount(np.round(f).astype(np.uint8).ravel(), minlength=256)),
        "SD": float(f.std()),
        "SF": float(np.sqrt(((f[:, 1:] - f[:, :-1]) ** 2).mean() + ((f[1:] - f[:-1]) ** 2).mean())),
        "AG": float(np.sqrt((gx * gx + gy * gy) / 2).mean()),
        "MI": _mi_nats(f, a) + _mi_nats(f, b),
        "MSE": float(mse),
        "CC": (_corr(a, f) + _corr(b, f)) / 2,
        "PSNR": float(10 * np.log10(f.max() ** 2 / mse)),
        "SCD": _corr(a, f - b) + _corr(b, f - a),
        "VIFF": _vifp(a, f) + _vifp(b, f),
        "Qabf": _qabf(a, b, f),
        "SSIM": float(ssim(f, a) + ssim(f, b)),
    }


# --- Liu's toolbox, profile upstream (the Table 1 five) -------------------------------------------


def _gauss_1d(n: int, sigma: float) -> np.ndarray:
    r = np.arange(n) - (n - 1) / 2
    g = np.exp(-(r * r) / (2 * sigma * sigma))
    return g / g.sum()


def _moments_valid(maps: list, g: np.ndarray) -> list:
    """``filter2(g g', x, 'valid')`` of each map: a separable pass per axis (the window is the outer
    product of ``g``), cropped to the pixels whose window lies inside the image."""
    k = len(g) // 2
    out = []
    for x in maps:
        y = correlate1d(correlate1d(x, g, axis=0, mode="constant"), g, axis=1, mode="constant")
        out.append(y[k:-k, k:-k])
    return out


def _ssim_stats(x: np.ndarray, y: np.ndarray, g: np.ndarray):
    mx, my, exx, eyy, exy = _moments_valid([x, y, x * x, y * y, x * y], g)
    return mx, my, exx - mx * mx, eyy - my * my, exy - mx * my


def _ssim_map(stats, c1: float, c2: float) -> np.ndarray:
    mx, my, vx, vy, cxy = stats
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def _round_away(x: np.ndarray) -> np.ndarray:
    """MATLAB ``round``: halves away from zero (``np.round`` rounds them to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _minmax_255(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(), x.max()
    return np.zeros_like(x) if hi == lo else _round_away((x - lo) / (hi - lo) * 255)


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    joint = _joint256(x, y)
    h = _entropy_bits
    return (h(joint.sum(axis=1)) + h(joint.sum(axis=0)) - h(joint.ravel())) / 8.0  # log base 256


def _ncie(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    a, b, f = _minmax_255(a), _minmax_255(b), _minmax_255(f)  # normalize1.m; constant -> zeros
    n_ab, n_af, n_bf = _ncc(a, b), _ncc(a, f), _ncc(b, f)
    r = np.array([[1.0, n_ab, n_af], [n_ab, 1.0, n_bf], [n_af, n_bf, 1.0]])
    ev = np.clip(np.linalg.eigvalsh(r), 0, None) / 3
    ev = ev[ev > 0]
    return float(1 + (ev * np.log2(ev)).sum() / 8.0)


_SOBEL_X = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
_SOBEL_Y = np.array([[-1.0, -2, -1], [0, 0, 0], [1, 2, 1]])


def _q_xy(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """``metricXydeas.m``: Sobel by ``filter2(.., 'same')`` (correlation, zero padding), the per-pixel
    ratio averaged, the toolbox's 1e-5 substitutions in its order."""

    def grad(x):
        gx = correlate(x, _SOBEL_X, mode="constant")
        gy = correlate(x, _SOBEL_Y, mode="constant")
        return np.sqrt(gx * gx + gy * gy), np.arctan(gy / np.where(gx == 0, 1e-5, gx))

    (ga, ta), (gb, tb), (gf, tf) = grad(a), grad(b), grad(f)

    def q(gs, ts, gf):  # relative strength from the raw strengths, zeros replaced in S, then in F
        bigger = gs > gf
        gs = np.where(gs == 0, 1e-5, gs)
        r1 = gf / gs
        gf = np.where(gf == 0, 1e-5, gf)
        rel = np.where(bigger, r1, gs / gf)
        ang = np.abs(np.abs(ts - tf) - math.pi / 2) * 2 / math.pi
        return 1 / (1 + np.exp(-10 * (rel - 0.5))) / (1 + np.exp(-20 * (ang - 0.75))), gs, gf

    q_a, ga, gf = q(ga, ta, gf)
    q_b, gb, gf = q(gb, tb, gf)
    return float(((q_a * ga + q_b * gb) / (ga + gb)).mean())


def _windows(x: np.ndarray) -> np.ndarray:
    """(N, 9) 3x3 windows of ``x``, row-major over their positions, each in MATLAB's column-major order."""
    v = np.lib.stride_tricks.sliding_window_view(x, (3, 3))  # (h, w, row, col)
    return v.transpose(0, 1, 3, 2).reshape(-1, 9)


def _minmax_rows(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    flat = hi == lo
    return np.where(flat, 1.0, (x - lo) / np.where(flat, 1.0, hi - lo))


def _nfmi_rows(s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Normalised Fast-FMI of min-max normalised windows, rows of (N, 9): source ``s``, fused ``t``.

    The cells' masses are the bound's 2-D difference, as the toolbox takes them, not fusionbench's
    interval overlaps (:func:`metrics.fmi._nfmi`): the tests compare the two where the originals could
    not run, so they are kept independent. The overlap form, with in-place steps, ran 5-10% faster
    here (docs/speed.md)."""
    sp, tp = s / s.sum(axis=1, keepdims=True), t / t.sum(axis=1, keepdims=True)
    sc, tc = np.cumsum(sp, axis=1), np.cumsum(tp, axis=1)
    sd, td = sp - sp.mean(axis=1, keepdims=True), tp - tp.mean(axis=1, keepdims=True)
    num = (sd * td).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(num == 0, 0.0, num / np.sqrt((sd * sd).sum(axis=1) * (td * td).sum(axis=1)))
    c = np.where((s == 1).all(axis=1) & (t == 1).all(axis=1), 1.0, c)  # two flat windows: c = 1 (MATLAB residue)
    i = np.arange(1, 10, dtype=np.float64)
    std_s = np.sqrt(np.clip(sp @ (i * i) - (sp @ i) ** 2, 0, None))
    std_t = np.sqrt(np.clip(tp @ (i * i) - (tp @ i) ** 2, 0, None))
    pos = (c >= 0)[:, None, None]
    T, S = tc[:, :, None], sc[:, None, :]  # (N, fused i, source j)
    bound = np.where(pos, np.minimum(T, S), np.clip(T + S - 1, 0, None))
    # the bound copula's mass in cell (i, j): its 2-D difference
    cell = bound - np.concatenate([np.zeros_like(bound[:, :1, :]), bound[:, :-1, :]], axis=1)
    cell = cell - np.concatenate([np.zeros_like(cell[:, :, :1]), cell[:, :, :-1]], axis=2)
    cov = bound.sum(axis=(1, 2)) - tc.sum(axis=1) * sc.sum(axis=1)
    sd0 = (std_s == 0) | (std_t == 0)
    corr = cov / np.where(sd0, 1.0, std_s * std_t)
    phi = np.where(sd0 | (c == 0), 0.0, c / np.where(corr == 0, 1.0, corr))
    jp = phi[:, None, None] * cell + (1 - phi)[:, None, None] * tp[:, :, None] * sp[:, None, :]
    aj = np.abs(jp)
    je = -(jp * np.log2(np.where(aj > 0, aj, 1.0))).sum(axis=(1, 2))  # MATLAB's real(): -p log2|p|
    ent = lambda p: -(p * np.log2(np.where(p > 0, p, 1.0))).sum(axis=1)  # noqa: E731
    hs, ht = ent(sp), ent(tp)
    mi, den = hs + ht - je, hs + ht
    return np.where((mi == 0) | (den == 0), 0.0, 2 * mi / np.where(den == 0, 1.0, den))


FMI_CHUNK = 1024  # windows a step: each (N, 9, 9) float64 array is then 0.66 MB and stays in the cache.
# Measured on one phantom triple (FMI on raw pixels / on FMI_w's wavelet mosaics, ms, two runs each):
# 8,192 windows 96-100 / 594-656, 2,048 56-67 / 410-449, 1,024 57-68 / 403-414, 256 67-74 / -
# (docs/speed.md, "The NumPy sets' Fast-FMI in cache-sized steps").


def _q_fmi(a: np.ndarray, b: np.ndarray, f: np.ndarray, chunk: int = FMI_CHUNK) -> float:
    """``fmi.m`` with raw-pixel features and 3x3 windows: windows where the source equals F score 1;
    after the x1 pass F's window is its normalised version, which the x2 pass compares x2 with (the
    toolbox's quirk)."""
    wa, wb, wf = _windows(a), _windows(b), _windows(f)
    eq_a = (wa == wf).all(axis=1)
    wf2 = np.where(eq_a[:, None], wf, _minmax_rows(wf))
    eq_b = (wb == wf2).all(axis=1)
    out = np.ones((2, len(wf)))
    for k, (ws, eq, wt) in enumerate(((wa, eq_a, wf), (wb, eq_b, wf2))):
        idx = np.flatnonzero(~eq)
        for s in range(0, len(idx), chunk):
            j = idx[s : s + chunk]
            out[k, j] = _nfmi_rows(_minmax_rows(ws[j]), _minmax_rows(wt[j]))
    return float(out.mean(axis=0).mean())


def liu_metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """The Table 1 five of one triple (F, A = x1, B = x2) in Liu's toolbox's ``upstream`` profile,
    2-D float64 arrays of 8-bit values (0..255)."""
    g = _gauss_1d(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    st_fa, st_fb, st_ab = _ssim_stats(f, a, g), _ssim_stats(f, b, g), _ssim_stats(a, b, g)
    m_fa, m_fb = _ssim_map(st_fa, c1, c2), _ssim_map(st_fb, c1, c2)
    va, vb = st_ab[2], st_ab[3]
    flat = (va + vb == 0) * 0.5  # flat in both sources: lambda = 0.5 (metricPeilla.m)
    lam = (va + flat) / (va + vb + 2 * flat)
    return {
        "Q_SSIM": float((m_fa.mean() + m_fb.mean()) / 2),
        "Q_FMI": _q_fmi(a, b, f),
        "Q_NCIE": _ncie(a, b, f),
        "Q_XY": _q_xy(a, b, f),
        "Q_P": float((lam * m_fa + (1 - lam) * m_fb).mean()),
    }


# --- VIFB's 13 metrics --------------------------------------------------------------------------


def _hist256(x: np.ndarray) -> np.ndarray:
    return np.bincount(np.clip(x, 0, 255).astype(np.int64).ravel(), minlength=256).astype(np.float64)


def _normalize1_liu(x: np.ndarray) -> np.ndarray:
    """``normalize1.m``: min-max to 0..255, rounded; an all-zero image stays zeros, a constant
    non-zero one divides 0 by 0 (NaN)."""
    lo, hi = x.min(), x.max()
    if lo == 0 and hi == 0:
        return x
    with np.errstate(divide="ignore", invalid="ignore"):
        return _round_away((x - lo) / (hi - lo) * 255)


def _freq_radius(h: int, w: int, scale: float) -> np.ndarray:
    """sqrt(u^2 + v^2) on MATLAB's ``freqspace`` grid, frequencies times size / ``scale``."""
    u = (np.arange(w) - w // 2) * (2.0 / w) * (w / scale)
    v = (np.arange(h) - h // 2) * (2.0 / h) * (h / scale)
    return np.sqrt(u[None, :] ** 2 + v[:, None] ** 2)


def _csf(x: np.ndarray, response: np.ndarray) -> np.ndarray:
    """``ifft2(ifftshift(fftshift(fft2(x)) .* S))``: complex."""
    return np.fft.ifft2(np.fft.fft2(x) * np.fft.ifftshift(response))


def _filter_same(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``filter2(g g', x, 'same')`` (zero padding) of a real or complex image."""
    if np.iscomplexobj(x):
        return _filter_same(x.real, g) + 1j * _filter_same(x.imag, g)
    return correlate1d(correlate1d(x, g, axis=0, mode="constant"), g, axis=1, mode="constant")


def _chen_blum(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    h, w = a.shape
    r = _freq_radius(h, w, 30)
    sd = np.exp(-((r / 15.3870) ** 2)) - 0.7622 * np.exp(-((r / 1.3456) ** 2))
    t = np.arange(-15, 16, dtype=np.float64)
    g1, g2 = (np.exp(-(t * t) / (2 * s * s)) / math.sqrt(2 * math.pi * s * s) for s in (2.0, 4.0))

    def contrast(x):
        y = _csf(x, sd)
        c = np.abs(_filter_same(y, g1) / _filter_same(y, g2) - 1)
        return c**3 / (c**2 + 0.0001)

    c1, c2, cf = contrast(a), contrast(b), contrast(f)
    q1 = np.where(c1 < cf, c1 / cf, cf / c1)
    q2 = np.where(c2 < cf, c2 / cf, cf / c2)
    den = c1 * c1 + c2 * c2
    return float((c1 * c1 / den * q1 + c2 * c2 / den * q2).mean())


def _block_sums(x: np.ndarray, size: int) -> np.ndarray:
    h, w = x.shape
    x = np.pad(x, ((0, -h % size), (0, -w % size)))
    return x.reshape(x.shape[0] // size, size, x.shape[1] // size, size).sum(axis=(1, 3))


def _chen_varshney(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    h, w = a.shape
    r = _freq_radius(h, w, 8)
    theta = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))

    def saliency(x):
        gx = correlate(x, _SOBEL_X, mode="constant")
        gy = correlate(x, _SOBEL_Y, mode="constant")
        return _block_sums(np.sqrt(gx * gx + gy * gy) ** 5, 16)

    def dist(x):
        d = _csf(x - f, theta)
        return _block_sums(d * d, 16) / 256.0  # the complex square, as the original

    r1, r2 = saliency(a), saliency(b)
    return float(((r1 * dist(a) + r2 * dist(b)).sum() / (r1 + r2).sum()).real)


def _vifb_cross_entropy(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """VIFB's (and MEFB's) ``Cross_entropy``: NaN on a non-integer image, where the original errors."""
    if not all(_is_integer(x) for x in (a, b, f)):
        return math.nan
    pf = _hist256(f) / f.size

    def ce(s):
        ps = _hist256(s) / s.size
        both = (ps > 0) & (pf > 0)
        return float((ps[both] * np.log2(ps[both] / pf[both])).sum())

    return (ce(a) + ce(b)) / 2


def _vifb_rmse(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    m, n = f.shape
    return (math.sqrt(((a - f) ** 2).sum()) / (m * n) + math.sqrt(((b - f) ** 2).sum()) / (m * n)) / 2


def _vifb_avg_gradient(f: np.ndarray) -> float:
    m, n = f.shape
    gy, gx = np.gradient(f)
    return float(np.sqrt((gx * gx + gy * gy) / 2).sum() / ((m - 1) * (n - 1)))


def _vifb_edge_intensity(f: np.ndarray) -> float:
    sob = np.array([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]])  # fspecial('sobel')
    ex, ey = correlate(f, sob, mode="nearest"), correlate(f, sob.T, mode="nearest")
    return float(np.sqrt(ex * ex + ey * ey).mean())


def _vifb_spatial_frequency(f: np.ndarray) -> float:
    m, n = f.shape
    return math.sqrt(((f[:, 1:] - f[:, :-1]) ** 2).sum() / (m * n) + ((f[1:] - f[:-1]) ** 2).sum() / (m * n))


def _finite_or_nan(v: float) -> float:
    return v if math.isfinite(v) else math.nan


def vifb_metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """VIFB's 13 metrics of one triple (F, A = x1 = imgVI, B = x2 = imgIR), 2-D float64 arrays in
    0..255 (8-bit values; a non-integer image makes ``Cross_entropy`` NaN, where the original errors)."""
    rmse = _vifb_rmse(f, a, b)
    g = _gauss_1d(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    fm = _minmax_255(f)
    na, nb, nf = (_normalize1_liu(x) for x in (a, b, f))
    with np.errstate(divide="ignore", invalid="ignore"):
        qcb, qcv = _chen_blum(na, nb, nf), _chen_varshney(na, nb, nf)
    return {
        "Cross_entropy": _vifb_cross_entropy(f, a, b),
        "Entropy": _entropy_bits(_hist256(np.floor(f))),
        "Mutinf": _mi_nats(_minmax_255(a), fm) + _mi_nats(_minmax_255(b), fm),
        "Psnr": 20 * math.log10(255.0 / math.sqrt(rmse)),
        "Avg_gradient": _vifb_avg_gradient(f),
        "Edge_intensity": _vifb_edge_intensity(f),
        "Qabf": _qabf(a, b, f),
        "Variance": float(f.std()),
        "Spatial_frequency": _vifb_spatial_frequency(f),
        "Rmse": rmse,
        "Ssim": float(_ssim_map(_ssim_stats(a, f, g), c1, c2).mean() + _ssim_map(_ssim_stats(b, f, g), c1, c2).mean()),
        "Qcb": _finite_or_nan(qcb),
        "Qcv": _finite_or_nan(qcv),
    }


# --- Tang's 17 metrics ---------------------------------------------------------------------------


def _entropy_matlab(x: np.ndarray) -> float:
    """MATLAB ``entropy``: the 256-bin histogram of the uint8 image (a double one through ``im2uint8``)."""
    u8 = x if _is_integer(x) else _round_away(np.clip(x, 0, 1) * 255)
    return _entropy_bits(_hist256(u8))


def _mi_hab_bits(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Tang's ``MI``: H(S) + H(F) - H(S, F) over both sources, bits, the joint histogram from ``Hab.m``
    (levels 254 and 255 merged); NaN on a non-integer image, where the original errors."""
    if not all(_is_integer(x) for x in (a, b, f)):
        return math.nan
    hf = _entropy_bits(_hist256(f))
    fj = np.minimum(f, 254)

    def part(s):
        return _entropy_bits(_hist256(s)) + hf - _entropy_bits(_joint256(np.minimum(s, 254), fj).ravel())

    return part(a) + part(b)


def _nabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """``analysis_nabf(F, A, B)`` as Tang's ``analysis_Reference`` calls it (B in the "fused" role, F
    scored as the second source: :func:`metrics.lineage.tang.nabf`)."""
    vt = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8
    ht = np.array([[-1.0, -2, -1], [0, 0, 0], [1, 2, 1]]) / 8

    def edges(x):
        gv, gh = correlate(x, vt, mode="mirror"), correlate(x, ht, mode="mirror")
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where((gv == 0) & (gh == 0), 0.0, np.arctan(gv / gh))
        return np.sqrt(gh * gh + gv * gv), t

    (g_f, t_f), (g_a, t_a), (g_b, t_b) = edges(b), edges(a), edges(f)

    def q(g_s, t_s):
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where((g_s == 0) | (g_f == 0), 0.0, np.where(g_s > g_f, g_f / g_s, g_s / g_f))
        ang = np.abs(np.abs(t_s - t_f) - math.pi / 2) * 2 / math.pi
        return np.sqrt(0.9999 / (1 + np.exp(-19 * (rel - 0.5))) * 0.9995 / (1 + np.exp(-22 * (ang - 0.5))))

    w_a, w_b = (np.where(g >= 2, g**1.5, 0.001) for g in (g_a, g_b))
    na = (g_f > g_a) & (g_f > g_b)
    return float((na * ((1 - q(g_a, t_a)) * w_a + (1 - q(g_b, t_b)) * w_b)).sum() / (w_a + w_b).sum())


def _ssim_matlab(x: np.ndarray, y: np.ndarray) -> float:
    """MATLAB ``ssim(x, y)`` on doubles: 11x11 Gaussian (sigma 1.5), replicate padding, 'same' map,
    DynamicRange 1 (C1 = 1e-4, C2 = 9e-4); the map's mean."""
    g = _gauss_1d(11, 1.5)

    def blur(z):
        return correlate1d(correlate1d(z, g, axis=0, mode="nearest"), g, axis=1, mode="nearest")

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = 1e-4, 9e-4
    return float((((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))).mean())


def _box_valid(x: np.ndarray, n: int) -> np.ndarray:
    """Sums over every whole n x n patch (``filter2(ones(n), x, 'valid')``)."""
    c = np.cumsum(np.cumsum(np.pad(x, ((1, 0), (1, 0))), axis=0), axis=1)
    return c[n:, n:] - c[:-n, n:] - c[n:, :-n] + c[:-n, :-n]


def _mef_ssim_scale(seq: list, f: np.ndarray) -> float:
    """``mef_ssim.m`` at one scale, one patch per 11x11 window, all windows at once: the desired
    patch from the sources' mean-removed patches (structural consistency R, tan(pi/2 R) capped at
    10, signal strength), scaled to the strongest source's contrast, against F's patch under an
    11x11 Gaussian, C = (0.03 * 255)^2. Per window the desired patch is sum_k a_k x_k - b, so its
    statistics are sums of the sources' and F's local moments."""
    eps = np.finfo(np.float64).eps
    n = len(seq)
    box = [_box_valid(x, 11) for x in seq]
    box2 = {(i, j): _box_valid(seq[i] * seq[j], 11) for i in range(n) for j in range(i, n)}
    mu = [s / 121 for s in box]
    ed = [np.sqrt(np.maximum(box2[(i, i)] - 121 * mu[i] * mu[i], 0)) + 0.001 for i in range(n)]
    s_sum = sum(box)
    s_sq = sum(v * (1 if i == j else 2) for (i, j), v in box2.items())
    num = np.sqrt(np.maximum(s_sq - s_sum * s_sum / 121, 0))
    den = sum(np.sqrt(np.maximum(box2[(i, i)] - 2 * mu[i] * box[i] + 121 * mu[i] * mu[i], 0)) for i in range(n))
    r = (num + eps) / (den + eps)
    r = np.where(r > 1, 1 - eps, np.where(r < 0, eps, r))
    p = np.minimum(np.tan(math.pi / 2 * r), 10)
    w = [(e / 11) ** p + eps for e in ed]
    total = sum(w)
    a = [w[i] / total / ed[i] for i in range(n)]
    b = sum(a[i] * mu[i] for i in range(n))
    norm2 = sum(a[i] * a[j] * v * (1 if i == j else 2) for (i, j), v in box2.items())
    norm2 = norm2 - 2 * b * sum(a[i] * box[i] for i in range(n)) + 121 * b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norm2 > 0, np.maximum.reduce(ed) / np.sqrt(np.maximum(norm2, 1e-300)), 1.0)
    g = _gauss_1d(11, 1.5)
    gm = _moments_valid([*seq, f, f * f, *[s * f for s in seq]], g)
    gs = {(i, j): _moments_valid([seq[i] * seq[j]], g)[0] for i in range(n) for j in range(i, n)}
    g_mu, g_f, g_ff, g_sf = gm[:n], gm[n], gm[n + 1], gm[n + 2 :]
    m_r = sum(a[i] * g_mu[i] for i in range(n)) - b
    e_rr = sum(a[i] * a[j] * v * (1 if i == j else 2) for (i, j), v in gs.items())
    e_rr = e_rr - 2 * b * sum(a[i] * g_mu[i] for i in range(n)) + b * b
    e_rf = sum(a[i] * g_sf[i] for i in range(n)) - b * g_f
    var_r = scale * scale * (e_rr - m_r * m_r)
    var_f = g_ff - g_f * g_f
    cov = scale * (e_rf - m_r * g_f)
    c = (0.03 * 255) ** 2
    return float(((2 * cov + c) / (var_r + var_f + c)).mean())


def _halve(x: np.ndarray) -> np.ndarray:
    """``imfilter(x, ones(2) / 4, 'symmetric')`` then every other pixel from the first."""
    x = np.pad(x, ((0, 1), (0, 1)), mode="edge")
    return ((x[:-1, :-1] + x[1:, :-1] + x[:-1, 1:] + x[1:, 1:]) / 4)[::2, ::2]


def _mef_ms_ssim(seq: list, f: np.ndarray) -> float:
    """``mef_ms_ssim.m``: three scales, prod Q_l^w_l with w = [0.0448, 0.2856, 0.3001] / sum; a
    negative scale score makes the product complex, and its real part is what the original gives."""
    w = np.array([0.0448, 0.2856, 0.3001])
    w = w / w.sum()
    out = complex(1.0)
    for level in range(3):
        if level:
            seq, f = [_halve(x) for x in seq], _halve(f)
        out *= complex(_mef_ssim_scale(seq, f)) ** w[level]
    return out.real


def _edge_sobel(x: np.ndarray) -> np.ndarray:
    """MATLAB ``edge(x)`` (Sobel, automatic threshold, thinning) as a 0/1 float64 image
    (:func:`metrics.lineage.kernels.edge_sobel` gives the rule)."""
    sob = np.array([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]]) / 8
    by, bx = correlate(x, sob, mode="nearest"), correlate(x, sob.T, mode="nearest")
    b = bx * bx + by * by
    ax, ay = np.abs(bx), np.abs(by)
    tol = 100 * np.finfo(np.float64).eps
    yes_c, yes_r = np.ones((b.shape[0], 1), bool), np.ones((1, b.shape[1]), bool)
    left = np.concatenate([yes_c, b[:, :-1] <= b[:, 1:]], axis=1)
    right = np.concatenate([b[:, :-1] > b[:, 1:], yes_c], axis=1)
    up = np.concatenate([yes_r, b[:-1] <= b[1:]], axis=0)
    down = np.concatenate([b[:-1] > b[1:], yes_r], axis=0)
    e = (b > 4 * b.mean()) & (((ax >= ay - tol) & left & right) | ((ay >= ax - tol) & up & down))
    return e.astype(np.float64)


@functools.lru_cache(maxsize=16)
def _dmey_analysis(n: int, taps: tuple) -> np.ndarray:
    """(n, M) matrix of MATLAB's one-level ``dwt`` of a row of n samples, ``'sym'`` extension
    (mirrored with the edge sample repeated, period 2n), ``conv .. 'valid'``, every second output
    from the second. Built column by column from unit impulses, with NumPy's own convolution, once
    per size."""
    k = len(taps)
    i = np.arange(-(k - 1), n + k - 1)
    j = np.remainder(i, 2 * n)
    src = np.where(j < n, j, 2 * n - 1 - j)
    m = (n + k - 1) // 2
    out = np.zeros((n, m))
    for p in range(n):
        y = np.convolve((src == p).astype(np.float64), np.asarray(taps), mode="valid")
        out[p] = y[1 : 2 * m : 2]
    return out


def _dwt2_mosaic_reranged(x: np.ndarray) -> np.ndarray:
    """Tang's ``FMI_w`` feature: ``rerange([cA, cH; cV, cD])`` of ``dwt2(x, 'dmey')``."""
    from metrics.lineage.wavelet import dmey

    lo, hi = dmey()
    (h, w) = x.shape
    rl, rh, cl, ch = _dmey_analysis(h, lo), _dmey_analysis(h, hi), _dmey_analysis(w, lo), _dmey_analysis(w, hi)
    ca, ch_, cv, cd = rl.T @ x @ cl, rh.T @ x @ cl, rl.T @ x @ ch, rh.T @ x @ ch
    m = np.block([[ca, ch_], [cv, cd]])
    lo_, hi_ = m.min(), m.max()
    return np.ones_like(m) if hi_ == lo_ else (m - lo_) / (hi_ - lo_)


def tang_metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Tang's 17 metrics of one triple (F, A = x1 = vi, B = x2 = ir), 2-D float64 arrays in 0..255,
    written from the definitions in :mod:`metrics.lineage.tang`. All but ``EN`` and ``MI`` see
    ``im2double(x) * 255``: F itself when it is 8-bit, F * 255 when not (as the original)."""
    from scipy.fft import dctn

    ff = f if _is_integer(f) else f * 255
    m, n = f.shape
    mse = 0.5 * ((ff / 255 - a / 255) ** 2).sum() / (m * n) + 0.5 * ((ff / 255 - b / 255) ** 2).sum() / (m * n)
    gx, gy = np.gradient(ff, axis=1), np.gradient(ff, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cc = _finite_or_nan((_corr(b, ff) + _corr(a, ff)) / 2)
        scd = _finite_or_nan(_corr(ff - a, b) + _corr(ff - b, a))
    dct = lambda x: dctn(x, type=2, norm="ortho")  # noqa: E731  (MATLAB dct2)
    return {
        "EN": _entropy_matlab(f),
        "MI": _mi_hab_bits(f, a, b),
        "PSNR": float(20 * np.log10(255 / np.sqrt(mse))),
        "MSE": float(mse),
        "SF": float(np.sqrt(((ff[:, 1:] - ff[:, :-1]) ** 2).mean() + ((ff[1:] - ff[:-1]) ** 2).mean())),
        "SD": float(ff.std()),
        "VIF": _vifp(b, ff) + _vifp(a, ff),
        "AG": float(np.sqrt((gx * gx + gy * gy) / 2).sum() / ((m - 1) * (n - 1))),
        "CC": cc,
        "SCD": scd,
        "Qabf": _qabf(b, a, ff),
        "Nabf": _nabf(ff, a, b),
        "SSIM": 0.5 * _ssim_matlab(ff, b) + 0.5 * _ssim_matlab(ff, a),
        "FMI_pixel": _q_fmi(_edge_sobel(b), _edge_sobel(a), _edge_sobel(ff)),
        "FMI_dct": _q_fmi(dct(b), dct(a), dct(ff)),
        "FMI_w": _q_fmi(*(_dwt2_mosaic_reranged(x) for x in (b, a, ff))),
        "MS_SSIM": _mef_ms_ssim([b, a], ff),
    }


# --- MEFB's 20 metrics ---------------------------------------------------------------------------


def _normalize1_or_none(x: np.ndarray):
    """``normalize1`` of a MEFB input, or None where it divides 0 by 0 (a constant non-zero image,
    on which the original then errors indexing a histogram)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        y = _normalize1_liu(x)
    return y if np.isfinite(y).all() else None


def _nmi_te(na: np.ndarray, nb: np.ndarray, nf: np.ndarray):
    """Hossny's NMI and Cvejic's Tsallis measure (q = 1.85, the toolbox's transposed marginals) of
    ``normalize1``d images."""
    q, nmi, te = 1.85, 0.0, 0.0
    for s in (na, nb):
        h = _joint256(s, nf).astype(np.float64)
        hs, hf, hsf = _entropy_bits(h.sum(axis=1)), _entropy_bits(h.sum(axis=0)), _entropy_bits(h.ravel())
        nmi += 2 * (hs + hf - hsf) / (hf + hs)
        p = h / h.sum()
        buff = p.sum(axis=0)[:, None] * p.sum(axis=1)[None, :]  # colmarg(i) * rowmarg(j)
        ok = buff != 0
        te += (1 - (p[ok] ** q / buff[ok] ** (q - 1)).sum()) / (1 - q)
    return nmi, te


def _yang_ssim_maps(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> dict:
    """The toolbox's ``ssim_yang`` (7x7 Gaussian, sigma 1.5, 'valid', C1 = C2 = 2e-16) of (A, B),
    (A, F), (B, F): {pair: (map, var of first, var of second, covariance)}."""
    x = [a, b, f]
    pairs = ((0, 1), (0, 2), (1, 2))
    m = _moments_valid(x + [v * v for v in x] + [x[i] * x[j] for i, j in pairs], _gauss_1d(7, 1.5))
    mu, var = m[:3], [m[3 + k] - m[k] * m[k] for k in range(3)]
    out, c = {}, 2e-16
    for (i, j), e_ij in zip(pairs, m[6:]):
        cov = e_ij - mu[i] * mu[j]
        s = ((2 * mu[i] * mu[j] + c) * (2 * cov + c)) / ((mu[i] ** 2 + mu[j] ** 2 + c) * (var[i] + var[j] + c))
        out[(i, j)] = (s, var[i], var[j], cov)
    return out


def _qc_qy(a: np.ndarray, b: np.ndarray, f: np.ndarray):
    with np.errstate(divide="ignore", invalid="ignore"):
        m = _yang_ssim_maps(a, b, f)
        s_ab, va, vb, _ = m[(0, 1)]
        (s_af, _, _, c_af), (s_bf, _, _, c_bf) = m[(0, 2)], m[(1, 2)]
        lam = va / (va + vb)
        qy = np.where(s_ab >= 0.75, lam * s_af + (1 - lam) * s_bf, np.fmax(s_af, s_bf))
        w = c_af / (c_af + c_bf)
        qc = np.where(w < 0, 0.0, np.where(w > 1, 1.0, w * s_af + (1 - w) * s_bf))
    return float(np.nanmean(qc)), float(np.nanmean(qy))


def _qw(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Piella & Heijmans' edge-dependent index (``metricPeilla`` case 3) on Prewitt edge images."""
    f1 = np.array([[1.0, 0, -1], [1, 0, -1], [1, 0, -1]])

    def edge(x):
        gx, gy = correlate(x, f1, mode="constant"), correlate(x, f1.T, mode="constant")
        return np.sqrt(gx * gx + gy * gy)

    ea, eb, ef = edge(a), edge(b), edge(f)
    g = _gauss_1d(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    st_fa, st_fb = _ssim_stats(ef, ea, g), _ssim_stats(ef, eb, g)
    va, vb = st_fa[3], st_fb[3]
    flat = (va + vb == 0) * 0.5
    va, vb = va + flat, vb + flat
    lam = va / (va + vb)
    cw = np.maximum(va, vb)
    cw = cw / cw.sum()
    return float((cw * (lam * _ssim_map(st_fa, c1, c2) + (1 - lam) * _ssim_map(st_fb, c1, c2))).sum())


def _han_viff(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Han et al.'s VIFF (``metricsVIF.m``): per scale the source with the smaller gain per pixel
    (ties: B), sum(VID + 1e-7) / sum(VIND + 1e-7), weighted [1, 0, 0.15, 1] / 2.15."""
    total = 0.0
    nsq = 0.005 * 255 * 255
    for w, (na_, da, ga), (nb_, db, gb) in zip((1.0, 0.0, 0.15, 1.0), _vif_maps(a, f, nsq), _vif_maps(b, f, nsq)):
        pick_a = ga < gb
        total += w / 2.15 * (np.where(pick_a, na_, nb_) + 1e-7).sum() / (np.where(pick_a, da, db) + 1e-7).sum()
    return float(total)


def _centred_range(n: int) -> np.ndarray:
    i = np.arange(n, dtype=np.float64)
    return (i - (n - 1) / 2) / (n - 1) if n % 2 else (i - n / 2) / n


@functools.lru_cache(maxsize=4)
def _pc_bank(rows: int, cols: int):
    """Liu's ``myphasecong3.m`` filter bank: log-Gabor (4 scales: wavelength 3, factor 2.1, sigma_on_f
    0.55) x angular spread (6 orientations, pi / 6 / 1.2) x Butterworth low-pass (0.45, order 15,
    ``fftshift``ed), and per orientation the noise energies of its smallest-scale filter. It depends
    on the image size only: built once per size, as a per-image evaluator would keep it."""
    x, y = np.meshgrid(_centred_range(cols), _centred_range(rows))
    radius = np.sqrt(x * x + y * y)
    radius[rows // 2, cols // 2] = 1.0
    theta = np.arctan2(-y, x)
    radius, theta = np.fft.ifftshift(radius), np.fft.ifftshift(theta)
    lx = (np.arange(1, cols + 1) - (cols // 2 + 1)) / cols
    ly = (np.arange(1, rows + 1) - (rows // 2 + 1)) / rows
    lp = np.fft.fftshift(1.0 / (1.0 + (np.sqrt(lx[None, :] ** 2 + ly[:, None] ** 2) / 0.45) ** 30))
    log_gabor = []
    for s in range(4):
        lg = np.exp(-(np.log(radius * 3.0 * 2.1**s) ** 2) / (2 * math.log(0.55) ** 2)) * lp
        lg[0, 0] = 0.0
        log_gabor.append(lg)
    bank = []
    for o in range(6):
        ang = o * math.pi / 6
        ds = np.sin(theta) * math.cos(ang) - np.cos(theta) * math.sin(ang)
        dc = np.cos(theta) * math.cos(ang) + np.sin(theta) * math.sin(ang)
        spread = np.exp(-(np.abs(np.arctan2(ds, dc)) ** 2) / (2 * (math.pi / 6 / 1.2) ** 2))
        filters = [lg * spread for lg in log_gabor]
        spatial = [np.fft.ifft2(fl).real * math.sqrt(rows * cols) for fl in filters]
        an2 = sum((sp**2).sum() for sp in spatial)
        aiaj = sum((spatial[i] * spatial[j]).sum() for i in range(3) for j in range(i + 1, 4))
        bank.append((filters, (filters[0] ** 2).sum(), an2, aiaj))
    return bank


def _phase_congruency(im: np.ndarray):
    """(phase congruency, maximum moment M, minimum moment m) of ``myphasecong3.m`` (as
    :func:`metrics.lineage.phase.phase_congruency`, which gives the constants and quirks)."""
    rows, cols = im.shape
    spectrum = np.fft.fft2(im)
    if (im == im[0, 0]).all():  # a constant image: only the DC term, exactly (FFTW's zeros)
        dc, spectrum = spectrum[0, 0], np.zeros_like(spectrum)
        spectrum[0, 0] = dc
    total_energy = total_an = covx2 = covy2 = covxy = 0.0
    for o, (filters, em_n, an2, aiaj) in enumerate(_pc_bank(rows, cols)):
        ang = o * math.pi / 6
        eo = [np.fft.ifft2(fl * spectrum) for fl in filters]
        an = [np.abs(r) for r in eo]
        sum_e, sum_o = sum(r.real for r in eo), sum(r.imag for r in eo)
        x_energy = np.sqrt(sum_e**2 + sum_o**2) + 1e-4
        me, mo = sum_e / x_energy, sum_o / x_energy
        energy = sum(r.real * me + r.imag * mo - np.abs(r.real * mo - r.imag * me) for r in eo)
        sum_an = sum(an)
        noise = -np.median(an[0] ** 2) / math.log(0.5) / em_n
        tau = math.sqrt((2 * noise * an2 + 4 * noise * aiaj) / 2)
        threshold = (tau * math.sqrt(math.pi / 2) + 2.0 * math.sqrt((2 - math.pi / 2) * tau * tau)) / 1.7
        energy = np.maximum(energy - threshold, 0)
        width = sum_an / (np.maximum.reduce(an) + 1e-4) / 4
        weighted = energy / (1 + np.exp((0.5 - width) * 10))
        total_an, total_energy = total_an + sum_an, total_energy + weighted
        with np.errstate(divide="ignore", invalid="ignore"):
            pc = weighted / sum_an
        covx, covy = pc * math.cos(ang), pc * math.sin(ang)
        covx2, covy2, covxy = covx2 + covx * covx, covy2 + covy * covy, covxy + covx * covy
    covx2, covy2, covxy = covx2 / 3, covy2 / 3, covxy / 6
    denom = np.sqrt(covxy * covxy + (covx2 - covy2) ** 2) + 1e-4
    return total_energy / (total_an + 1e-4), (covy2 + covx2 + denom) / 2, (covy2 + covx2 - denom) / 2


def _qp(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Zhao, Laganiere & Liu's ``metricZhao`` (MEFB's ``Qp``): per phase-congruency feature, the
    largest masked local correlation (11x11 Gaussian, 'same', C = 1e-4) of F's map with A's, B's
    and their maximum by phase congruency, averaged over the max mask; the product of the three."""
    with np.errstate(divide="ignore", invalid="ignore"):
        (pc1, *m1), (pc2, *m2), (pcf, *mf) = (_phase_congruency(x) for x in (a, b, f))
        first = (pc1 > pc2).astype(np.float64)
        pick = lambda x1, x2: first * x1 + (1 - first) * x2  # noqa: E731  (NaN survives, as in MATLAB)
        masks = (pc1 > 0.1, pc2 > 0.1, pick(pc1, pc2) > 0.1)
        g = _gauss_1d(11, 1.5)
        out = 1.0
        for s1, s2, sf in zip((pc1, *m1), (pc2, *m2), (pcf, *mf)):
            maps = (s1 * masks[0], s2 * masks[1], pick(s1, s2) * masks[2])
            mu_f, e_ff = (_filter_same(x, g) for x in (sf, sf * sf))
            best = None
            for mp, mask in zip(maps, masks):
                mu, e, e_f = (_filter_same(x, g) for x in (mp, mp * mp, mp * sf))
                r = (e_f - mu * mu_f + 1e-4) / (np.sqrt(np.abs((e - mu * mu) * (e_ff - mu_f * mu_f))) + 1e-4)
                r = np.where(mask, r, mu * 0)
                best = r if best is None else np.fmax(best, r)
            out *= best.sum() / masks[2].sum()
    return _finite_or_nan(float(out))


def mefb_metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """MEFB's 20 metrics of one triple (F, A = x1 = imgA, B = x2 = imgB), 2-D float64 arrays in 0..255,
    written from the definitions in :mod:`metrics.lineage.mefb` (ten are VIFB's code, as there)."""
    rmse = _vifb_rmse(f, a, b)
    normed = [_normalize1_or_none(x) for x in (a, b, f)]
    if any(x is None for x in normed):
        nmi = te = qncie = math.nan
    else:
        nmi, te = _nmi_te(*normed)
        qncie = _ncie(*normed)
    qc, qy = _qc_qy(a, b, f)
    scaled = [x / 255 for x in (a, b)] + [f / 255 if _is_integer(f) else f]  # im2double
    with np.errstate(divide="ignore", invalid="ignore"):
        qcb = _chen_blum(*(_normalize1_liu(x) for x in scaled))
        qcv = _chen_varshney(*(_normalize1_liu(x) for x in (a, b, f)))
    return {
        "Cross_entropy": _vifb_cross_entropy(f, a, b),
        "Entropy": _entropy_bits(_hist256(np.floor(f))),
        "NMI": nmi,
        "Psnr": 20 * math.log10(255.0 / math.sqrt(rmse)),
        "Qncie": qncie,
        "TE": te,
        "Avg_gradient": _vifb_avg_gradient(f),
        "Edge_intensity": _vifb_edge_intensity(f),
        "Qabf": _qabf(a, b, f),
        "Qp": _qp(a, b, f),
        "SD": float(f.std()),
        "Spatial_frequency": _vifb_spatial_frequency(f),
        "Qc": qc,
        "Qw": _qw(a, b, f),
        "Qy": qy,
        "MEF_SSIM": _mef_ms_ssim([a, b], f),
        "Qcb": _finite_or_nan(qcb),
        "Qcv": _finite_or_nan(qcv),
        "FMI": _q_fmi(_edge_sobel(a), _edge_sobel(b), _edge_sobel(f)),
        "VIF": _han_viff(a, b, f),
    }
