"""A per-image NumPy/SciPy float64 implementation of the CDDFuse metric set, written from the
definitions in :mod:`metrics.lineage.cddfuse`: the baseline the batched PyTorch lineage is timed
against (``benchmark.tools.speed_lineages``) and checked against (``tests/test_lineages.py``).

One triple at a time, as the per-image evaluators of the field run (CDDFuse's own ``Evaluator``
takes about 0.8 s per 240x240 triple on the project's 2-core CPU, lineage.json). Images are 2-D
float64 arrays in 0..255. Not the original (which works in float32 and needs scikit-learn): SSIM
here is scikit-image's, in float64, so it differs from the original's float32 in the 5th decimal on
near-constant images.
"""

from __future__ import annotations

import math

import numpy as np
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
