"""Per-image NumPy/SciPy float64 implementations of three metric sets: the CDDFuse set
(:func:`cddfuse_metrics`, written from the definitions in :mod:`metrics.lineage.cddfuse`), VIFB's 13
(:func:`vifb_metrics`, from :mod:`metrics.lineage.vifb`) and the Table 1 five in Liu's toolbox's
``upstream`` profile (:func:`liu_metrics`, from the definitions in :mod:`metrics.ssim`,
:mod:`metrics.fmi`, :mod:`metrics.ncie`, :mod:`metrics.qabf`, :mod:`metrics.piella`). They are
the baselines the batched PyTorch sets are timed against (``benchmark.tools.speed_lineages``), and
they are checked against the originals' values (``tests/test_numpy_reference.py``).

One triple at a time, as the per-image evaluators of the field run (CDDFuse's own ``Evaluator``
takes about 0.8 s per 240x240 triple on the project's 2-core CPU, lineage.json). Images are 2-D
float64 arrays in 0..255. The CDDFuse set is not the original (which works in float32 and needs
scikit-learn): SSIM here is scikit-image's, in float64, so it differs from the original's float32 in
the 5th decimal on near-constant images.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate, correlate1d
from scipy.signal import convolve2d


def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _mi_nats(x: np.ndarray, y: np.ndarray) -> float:
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


def _gauss(n: int) -> np.ndarray:
    r = np.arange(n) - (n - 1) / 2
    h = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (n / 5.0) ** 2))
    return h / h.sum()


def _vifp(ref: np.ndarray, dist: np.ndarray) -> float:
    eps, nsq, num, den = 1e-10, 2.0, 0.0, 0.0
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        w = _gauss(n)
        if scale > 1:
            ref = convolve2d(ref, w, mode="valid")[::2, ::2]
            dist = convolve2d(dist, w, mode="valid")[::2, ::2]
        mu1, mu2 = convolve2d(ref, w, mode="valid"), convolve2d(dist, w, mode="valid")
        s1 = np.maximum(convolve2d(ref * ref, w, mode="valid") - mu1 * mu1, 0)
        s2 = np.maximum(convolve2d(dist * dist, w, mode="valid") - mu2 * mu2, 0)
        s12 = convolve2d(ref * dist, w, mode="valid") - mu1 * mu2
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        low = s1 < eps
        g[low], sv[low], s1[low] = 0, s2[low], 0
        low = s2 < eps
        g[low], sv[low] = 0, 0
        neg = g < 0
        sv[neg], g[neg] = s2[neg], 0
        sv[sv <= eps] = eps
        num += np.log10(1 + g * g * s1 / (sv + nsq)).sum()
        den += np.log10(1 + s1 / nsq).sum()
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
    joint = np.bincount((x.astype(np.int64) * 256 + y.astype(np.int64)).ravel(), minlength=65536).reshape(256, 256)
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
    """Normalised Fast-FMI of min-max normalised windows, rows of (N, 9): source ``s``, fused ``t``."""
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


def _q_fmi(a: np.ndarray, b: np.ndarray, f: np.ndarray, chunk: int = 8192) -> float:
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


def vifb_metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """VIFB's 13 metrics of one triple (F, A = x1 = imgVI, B = x2 = imgIR), 2-D float64 arrays in
    0..255 (8-bit values; a non-integer image makes ``Cross_entropy`` NaN, where the original errors)."""
    m, n = f.shape
    integer = all(np.array_equal(x, np.round(x)) for x in (a, b, f))
    pf = _hist256(f) / f.size

    def ce(s):
        ps = _hist256(s) / s.size
        both = (ps > 0) & (pf > 0)
        return float((ps[both] * np.log2(ps[both] / pf[both])).sum())

    mes = (math.sqrt(((a - f) ** 2).sum()) / (m * n) + math.sqrt(((b - f) ** 2).sum()) / (m * n)) / 2
    gy, gx = np.gradient(f)
    sob = np.array([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]])  # fspecial('sobel')
    ex, ey = correlate(f, sob, mode="nearest"), correlate(f, sob.T, mode="nearest")
    g = _gauss_1d(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    fm = _minmax_255(f)
    na, nb, nf = (_normalize1_liu(x) for x in (a, b, f))
    with np.errstate(divide="ignore", invalid="ignore"):
        qcb, qcv = _chen_blum(na, nb, nf), _chen_varshney(na, nb, nf)
    return {
        "Cross_entropy": (ce(a) + ce(b)) / 2 if integer else math.nan,
        "Entropy": _entropy_bits(_hist256(np.floor(f))),
        "Mutinf": _mi_nats(_minmax_255(a), fm) + _mi_nats(_minmax_255(b), fm),
        "Psnr": 20 * math.log10(255.0 / math.sqrt(mes)),
        "Avg_gradient": float(np.sqrt((gx * gx + gy * gy) / 2).sum() / ((m - 1) * (n - 1))),
        "Edge_intensity": float(np.sqrt(ex * ex + ey * ey).mean()),
        "Qabf": _qabf(a, b, f),
        "Variance": float(f.std()),
        "Spatial_frequency": math.sqrt(
            ((f[:, 1:] - f[:, :-1]) ** 2).sum() / (m * n) + ((f[1:] - f[:-1]) ** 2).sum() / (m * n)
        ),
        "Rmse": mes,
        "Ssim": float(_ssim_map(_ssim_stats(a, f, g), c1, c2).mean() + _ssim_map(_ssim_stats(b, f, g), c1, c2).mean()),
        "Qcb": qcb if math.isfinite(qcb) else math.nan,
        "Qcv": qcv if math.isfinite(qcv) else math.nan,
    }
