"""Tang's FMI_w: MATLAB's ``dwt2(x, 'dmey')`` and the Fast-FMI it feeds, each against an
independent per-row / per-window float64 form of the original's algorithm (the oracle could not
run FMI_w: Octave has no ``dwt2``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from metrics.fmi import fmi_from_images
from metrics.lineage import lineage_values
from metrics.lineage import wavelet as W


def _meyer_filter(n: int) -> float:
    """Tap n (centre 0) of the exact Meyer scaling filter, H(w) = sqrt(2) Phi(2w) on [-pi, pi], with
    Daubechies' nu(x) = x^4 (35 - 84x + 70x^2 - 20x^3)."""

    def nu(x):
        x = min(max(x, 0.0), 1.0)
        return x**4 * (35 - 84 * x + 70 * x * x - 20 * x**3)

    def response(w):
        a = abs(2 * w)
        if a <= 2 * math.pi / 3:
            return math.sqrt(2) * math.cos(w * n)
        return math.sqrt(2) * math.cos(math.pi / 2 * nu(3 * a / (2 * math.pi) - 1)) * math.cos(w * n)

    third = math.pi / 3
    return (quad(response, 0, third, limit=200)[0] + quad(response, third, 2 * third, limit=200)[0]) / math.pi


def test_dmey_taps_are_the_discrete_meyer_filter():
    lo_d, hi_d = W.dmey()
    lo = np.array(lo_d)
    assert len(lo) == 102 and lo[0] == 0.0  # 101 symmetric taps, padded to even length in front
    np.testing.assert_array_equal(lo[1:], lo[1:][::-1])
    assert abs(lo.sum() - math.sqrt(2)) < 1e-12 and abs((lo * lo).sum() - 1) < 2e-6
    assert max(abs(np.dot(lo[:-s], lo[s:])) for s in range(2, 100, 2)) < 1e-6  # orthogonal to its shifts
    exact = np.array([_meyer_filter(n) for n in range(-50, 51)])
    assert np.abs(lo[1:] - exact).max() < 1e-6  # not a mistyped tap: the Meyer filter to 6 digits
    hi = np.array(hi_d)
    assert abs(hi.sum()) < 3e-6 and abs(np.dot(lo, hi)) < 1e-12  # an FIR approximation: H(0) = 2e-6


def _dwt_rows(x: np.ndarray, taps) -> np.ndarray:
    """MATLAB ``dwt`` of each row: 'sym' extension by L - 1, ``conv .. 'valid'``, outputs 2:2:end."""
    k = len(taps)
    ext = np.pad(x, [(0, 0), (k - 1, k - 1)], mode="symmetric")  # NumPy mirrors again past the edge
    return np.stack([np.convolve(r, taps, "valid")[1::2] for r in ext])


def _dwt2_mosaic(x: np.ndarray) -> np.ndarray:
    lo, hi = W.dmey()
    zl, zh = _dwt_rows(x, lo), _dwt_rows(x, hi)
    ca, ch = _dwt_rows(zl.T, lo).T, _dwt_rows(zl.T, hi).T
    cv, cd = _dwt_rows(zh.T, lo).T, _dwt_rows(zh.T, hi).T
    return np.block([[ca, ch], [cv, cd]])


@pytest.mark.parametrize("shape", [(240, 240), (64, 80), (23, 31), (5, 7)])
def test_dwt2_mosaic_is_matlabs_algorithm(shape):
    """Sizes below the filter's 102 taps mirror again and again, as MATLAB's ``wextend``."""
    rng = np.random.default_rng(sum(shape))
    xs = rng.integers(0, 256, (3, *shape)).astype(np.float64)
    got = W.dwt2_mosaic(torch.tensor(xs)[:, None])
    mh, mw = (shape[0] + 101) // 2, (shape[1] + 101) // 2
    assert got.shape == (3, 1, 2 * mh, 2 * mw)
    for i, x in enumerate(xs):
        np.testing.assert_allclose(got[i, 0].numpy(), _dwt2_mosaic(x), rtol=0, atol=1e-10)
    got32 = W.dwt2_mosaic(torch.tensor(xs, dtype=torch.float32)[:, None])
    np.testing.assert_allclose(got32.double().numpy(), got.numpy(), rtol=0, atol=2e-3)


def test_dwt2_of_a_constant_image():
    """Every output of a constant image is c times the filters' gains (the 'sym' extension of a
    constant is constant): cA = 2c, the details c sqrt(2) H(0) and c H(0)^2, with H(0) = 2e-6."""
    m = W.dwt2_mosaic(torch.full((1, 1, 30, 40), 7.0, dtype=torch.float64))[0, 0]
    mh, mw = (30 + 101) // 2, (40 + 101) // 2
    lo, hi = (math.fsum(t) for t in W.dmey())
    for block, gain in (((0, 0), lo * lo), ((0, 1), hi * lo), ((1, 0), lo * hi), ((1, 1), hi * hi)):
        part = m[block[0] * mh : (block[0] + 1) * mh, block[1] * mw : (block[1] + 1) * mw]
        torch.testing.assert_close(part, torch.full((mh, mw), 7.0 * gain, dtype=torch.float64), rtol=0, atol=1e-12)


def _nfmi(s: np.ndarray, t: np.ndarray) -> float:
    """``analysis_fmi.m``'s score of one pair of normalised windows, statement by statement: pdfs
    in column-major order, sequential sums as MATLAB's loops, the Nelsen copula mixture."""
    sp = s.flatten("F") / s.sum()
    tp = t.flatten("F") / t.sum()
    sc, tc = np.cumsum(sp), np.cumsum(tp)
    l = len(sp)
    st = sp - sum(sp.tolist()) / l
    tt = tp - sum(tp.tolist()) / l
    num = sum((st * tt).tolist())
    c = 0.0 if num == 0 else num / math.sqrt(sum((st * st).tolist()) * sum((tt * tt).tolist()))
    i = np.arange(1, l + 1)
    sd_s = math.sqrt(sum((i * i * sp).tolist()) - sum((i * sp).tolist()) ** 2)
    sd_t = math.sqrt(sum((i * i * tp).tolist()) - sum((i * tp).tolist()) ** 2)
    T, S = tc[:, None], sc[None, :]
    if c >= 0:
        bound = 0.5 * (T + S - np.abs(T - S))
        phi = 0.0 if (c == 0 or sd_s == 0 or sd_t == 0) else c / ((bound - T * S).sum() / (sd_t * sd_s))
    else:
        bound = 0.5 * (T + S - 1 + np.abs(T + S - 1))
        phi = 0.0 if (sd_s == 0 or sd_t == 0) else c / ((bound - T * S).sum() / (sd_t * sd_s))
    cell = np.diff(np.diff(np.pad(bound, ((1, 0), (1, 0))), axis=0), axis=1)
    jp = phi * cell + (1 - phi) * tp[:, None] * sp[None, :]
    nz = jp[jp != 0]
    je = float(-(nz * np.log2(np.abs(nz))).sum())
    hs = float(-(sp[sp > 0] * np.log2(sp[sp > 0])).sum())
    ht = float(-(tp[tp > 0] * np.log2(tp[tp > 0])).sum())
    mi = hs + ht - je
    return 0.0 if mi == 0 else 2 * mi / (hs + ht)


def _norm(x: np.ndarray) -> np.ndarray:
    return np.ones_like(x) if x.max() == x.min() else (x - x.min()) / (x.max() - x.min())


def _fmi_loop(a: np.ndarray, b: np.ndarray, f: np.ndarray, w: int = 3) -> float:
    """``analysis_fmi``'s window loop, with its quirk: the x2 pass sees F's window as the x1 pass
    left it (normalised, unless the x1 window equalled it)."""
    vals = []
    for p in range(a.shape[0] - w + 1):
        for q in range(a.shape[1] - w + 1):
            sa, sb, sf = (x[p : p + w, q : q + w] for x in (a, b, f))
            if np.array_equal(sa, sf):
                fa = 1.0
            else:
                sf = _norm(sf)
                fa = _nfmi(_norm(sa), sf)
            fb = 1.0 if np.array_equal(sb, sf) else _nfmi(_norm(sb), _norm(sf))
            vals.append((fa + fb) / 2)
    return float(np.mean(vals))


def test_fmi_equals_the_window_loop_including_the_x2_quirk():
    """Random windows, flat ones, negative correlations, and windows where x2 equals F's normalised
    window (scored 1 only because the x1 pass normalised F first)."""
    rng = np.random.default_rng(3)
    pattern = rng.integers(0, 2, (14, 16)).astype(np.float64)
    pattern[:5, :6] = 1.0  # flat windows: F's normalises to ones, as x2's ones
    f = 10 + 5 * pattern
    a = rng.integers(0, 256, (14, 16)).astype(np.float64)
    a[8:, 10:] = f[8:, 10:]  # x1 equal to F: F stays raw, the x2 pass compares it unnormalised
    b = pattern.copy()
    b[10:, :4] = 255 - b[10:, :4]  # x2 unlike F there
    cases = [(a, b, f), (a, rng.random((14, 16)), rng.random((14, 16)) * 255), (a, 255 - a, a[::-1].copy())]
    for x1, x2, ff in cases:
        want = _fmi_loop(x1, x2, ff)
        got = float(fmi_from_images(*(torch.tensor(x)[None, None] for x in (x1, x2, ff)), 3))
        assert got == pytest.approx(want, abs=1e-12)
    # the quirk is really exercised: scored without it, the first case differs
    x1, x2, ff = cases[0]
    assert _fmi_loop(x1, x2, ff) != pytest.approx(_fmi_loop(x1, x2 + 1e-3, ff), abs=1e-3)


def test_fmi_w_equals_the_per_row_dwt_and_window_loop():
    """``tang:FMI_w`` end to end on a small triple (its features are 108x110: 11,660 windows a pass)
    against the per-row DWT and the window loop, float64 and float32 (both score in float64 with the
    pdf passes in float32: within 2.2e-7 of all-float64 on the shared cases)."""
    rng = np.random.default_rng(5)
    a, b = (rng.integers(0, 256, (8, 10)).astype(np.float64) for _ in range(2))
    f = np.round((a + b) / 2)
    feats = [_norm(_dwt2_mosaic(x)) for x in (b, a, f)]  # Tang calls analysis_fmi(ir = B, vi = A, F)
    want = _fmi_loop(*feats)
    for dtype in (torch.float64, torch.float32):
        x = [torch.tensor(v, dtype=dtype)[None, None] for v in (f, a, b)]
        got = float(lineage_values(*x, "tang", {"FMI_w"})[0]["FMI_w"][0])
        assert got == pytest.approx(want, abs=1e-6), dtype


def test_compiled_fmi_w_equals_eager(monkeypatch, torch_kernels):
    """``bench eval`` runs FMI_w's window kernel (:func:`metrics.fmi._fmi_at_f32`) compiled."""
    from metrics import _compile
    from metrics import fmi as fmi_module

    monkeypatch.setattr(_compile, "_BROKEN", [])
    calls = []
    real_call = _compile.call
    monkeypatch.setattr(_compile, "call", lambda fn, *a, **kw: calls.append(fn) or real_call(fn, *a, **kw))
    rng = np.random.default_rng(7)
    a, b = (torch.tensor(rng.integers(0, 256, (2, 1, 24, 30)).astype(np.float64)) for _ in range(2))
    f = torch.round((a + 2 * b) / 3)
    eager = lineage_values(f, a, b, "tang", {"FMI_w"})[0]["FMI_w"]
    with _compile.compiling(True):
        compiled = lineage_values(f, a, b, "tang", {"FMI_w"})[0]["FMI_w"]
    torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-6)
    assert fmi_module._fmi_at_f32 in calls and fmi_module._fmi_at_f32 in _compile._COMPILED and not _compile._BROKEN


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rerange_scales_each_image_to_the_unit_range(dtype):
    """analysis_fmi's rerange: each image (x - min) / (max - min), exactly those steps; a constant image
    (zero span), and one holding a NaN, become ones; images do not see each other's range."""
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(4, 1, 9, 11, generator=g, dtype=dtype) * 300 - 20).clone()
    x[1] = 5.0
    x[2, 0, 3, 3] = float("nan")
    y = W.rerange(x)
    for i in (0, 3):
        lo, hi = x[i].min(), x[i].max()
        assert torch.equal(y[i], (x[i] - lo) / (hi - lo)) and float(y[i].min()) == 0 and float(y[i].max()) == 1
    assert torch.equal(y[1], torch.ones_like(y[1])) and torch.equal(y[2], torch.ones_like(y[2]))
    assert torch.equal(W.rerange(x[:1]), y[:1])  # every image constant-free: the shortcut's path
