"""MATLAB's single-level ``dwt2(x, 'dmey')`` (Wavelet Toolbox), batched: the feature of Tang's
``FMI_w`` (``analysis_fmi(.., 'wavelet')``).

MATLAB's ``dwt2`` with its default extension mode ``'sym'`` extends each row by L - 1 samples on
both sides, mirroring with the edge sample repeated (a signal shorter than the filter is mirrored
again and again), convolves with the decomposition filter (``conv2 .. 'valid'``, N + L - 1 outputs),
keeps every second output from the second (``first = 2``), then does the same down the columns: a
linear map per axis, applied here as one (N, M) matrix with the extension folded in. The low- and
high-pass matrices side by side give Tang's feature image ``[cA, cH; cV, cD]`` in two matrix
products. Checked against PyWavelets' ``dwt2(.., mode='symmetric')`` with the same filter bank
(within 7e-13 on 0..255 images of 240x240, 64x80, 23x31 and 5x7; ``tests/test_wavelet.py`` holds an
independent per-row NumPy form of the same algorithm).

Written here rather than taken from PyWavelets: a batched matrix form runs on any device in the
caller's dtype, and PyWavelets' own ``dmey`` is a different filter (below).
"""

from __future__ import annotations

import functools

import torch

from metrics import _native

# MATLAB's Discrete Meyer scaling filter ``dmey`` (the toolbox's FIR approximation of the Meyer
# wavelet: 101 symmetric taps, and a zero that pads it to even length), normalised as ``wfilters``
# returns it (sum sqrt(2)): the first 51 taps, up to and including the centre one. Values: the
# 102-tap "meyer" filter of rafat/wavelib (src/wavefilt.c, commit 2e2b624; the 102-coefficient
# filter PyWavelets issue #261 points to, where MATLAB is said to use 102 coefficients). PyWavelets'
# ``dmey`` is a different 62-tap approximation (PyWavelets PR #311: it agrees with MATLAB's to 4-5
# digits only). No copy of MATLAB's ``dmey.mat`` was at hand to compare: these taps sum to sqrt(2)
# within 4e-16, are orthogonal to their even shifts within 7e-7, and equal the exact Meyer filter
# (nu(x) = x^4 (35 - 84x + 70x^2 - 20x^3)) within 6.1e-7, as ``tests/test_wavelet.py`` checks.
DMEY_HALF = (
    -0.000001509740857, 0.000001278766757, 0.000000449585560, -0.000002096568870, 0.000001723223554,
    0.000000698082276, -0.000002879408033, 0.000002383148395, 0.000000982515602, -0.000004217789186,
    0.000003353501538, 0.000001674721859, -0.000006034501342, 0.000004837555802, 0.000002402288023,
    -0.000009556309846, 0.000007216527695, 0.000004849078300, -0.000014206928581, 0.000010503914271,
    0.000006187580298, -0.000024438005846, 0.000020106387691, 0.000014993523600, -0.000046428764284,
    0.000032341311914, 0.000037409665760, -0.000102779005085, 0.000024461956845, 0.000149713515389,
    -0.000075592870255, -0.000139913148217, -0.000093512893880, 0.000161189819725, 0.000859500213762,
    -0.000578185795273, -0.002702168733939, 0.002194775336459, 0.006045510596456, -0.006386728618548,
    -0.011044641900539, 0.015250913158586, 0.017403888210177, -0.032094063354505, -0.024321783959519,
    0.063667300884468, 0.030621243943425, -0.132696615358862, -0.035048287390595, 0.444095030766529,
    0.743751004903787,
)  # fmt: skip


def dmey() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """MATLAB ``wfilters('dmey', 'd')``: the decomposition low- and high-pass filters, from the
    reconstruction low-pass Lo_R = dmey as ``orthfilt`` builds them (Lo_D = wrev(Lo_R); Hi_R =
    qmf(Lo_R), the reversed filter with every second tap from the second negated; Hi_D = wrev(Hi_R))."""
    lo_r = DMEY_HALF + DMEY_HALF[-2::-1] + (0.0,)
    hi_r = tuple(v if k % 2 == 0 else -v for k, v in enumerate(lo_r[::-1]))
    return lo_r[::-1], hi_r[::-1]


@functools.lru_cache(maxsize=32)
def _extension(n: int, k: int) -> torch.Tensor:
    """For each of the n + 2 (k - 1) positions of a side of n samples extended as ``'sym'`` does, the
    sample it repeats (int64, CPU): mirrored with the edge repeated, again and again past the far edge."""
    j = torch.remainder(torch.arange(-(k - 1), n + k - 1), 2 * n)
    return torch.where(j < n, j, 2 * n - 1 - j)


@functools.lru_cache(maxsize=32)
def _analysis(n: int, taps: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n, M) matrix, M = floor((n + L - 1) / 2): ``x @ it`` is MATLAB's one-level ``dwt`` of each row
    of ``x`` with the decomposition filter ``taps`` under the ``'sym'`` extension. Built in float64:
    a source sample that several extended positions mirror gets the sum of their taps."""
    k = len(taps)
    m = (n + k - 1) // 2
    src = _extension(n, k)  # extended position -> source sample
    out = torch.zeros(n, m, dtype=torch.float64)
    t = 2 * torch.arange(m) + 1  # the kept outputs of the 'valid' convolution (MATLAB's 2:2:end)
    for q in range(k):  # a convolution: output t takes extended sample t + q times tap L - 1 - q
        out.index_put_((src[t + q], torch.arange(m)), torch.full((m,), taps[k - 1 - q], dtype=torch.float64), True)
    return out.to(dtype=dtype, device=device)


def dwt2_mosaic(x: torch.Tensor) -> torch.Tensor:
    """``[cA, cH; cV, cD]`` of MATLAB's ``[cA, cH, cV, cD] = dwt2(x, 'dmey')`` for every
    (B, 1, H, W) image: (B, 1, 2 Mh, 2 Mw), Mh = floor((H + 101) / 2). cH is high-pass down the
    columns and low-pass along the rows, cV the reverse, as MATLAB names them. On a CPU the
    hand-written kernel (:func:`metrics._native.dwt2`) runs each output's 102 taps, skipping the
    matrices' zeros (2.1-2.4 -> 1.2-1.3 ms a 240x240 float64 image, one thread); else two matrix products."""
    lo, hi = dmey()
    h, w = x.shape[-2:]
    if _native.cpu_ready(x):
        return _native.dwt2(x, lo[::-1], hi[::-1], _extension(h, len(lo)), _extension(w, len(lo)))
    rows = torch.cat([_analysis(h, lo, x.dtype, x.device), _analysis(h, hi, x.dtype, x.device)], 1)
    cols = torch.cat([_analysis(w, lo, x.dtype, x.device), _analysis(w, hi, x.dtype, x.device)], 1)
    p = torch.matmul(rows.t(), torch.matmul(x, cols))  # [[cA, cV], [cH, cD]]: rows' filter picks the band row
    mh, mw = rows.shape[1] // 2, cols.shape[1] // 2
    return torch.cat(
        [torch.cat([p[..., :mh, :mw], p[..., mh:, :mw]], -1), torch.cat([p[..., :mh, mw:], p[..., mh:, mw:]], -1)], -2
    )


def rerange(x: torch.Tensor) -> torch.Tensor:
    """``analysis_fmi``'s ``rerange``: each image min-max scaled to [0, 1]; a constant one -> ones (and
    one with a NaN). Its minimum and maximum (``amin``/``amax``: ``aminmax`` and ``min(dim=...)``
    ran 25x and 6x slower here), then (x - lo) / span in place; ones only where an image is constant."""
    flat = x.flatten(1)
    lo, hi = flat.amin(dim=1), flat.amax(dim=1)
    lo, span = lo.view(-1, 1, 1, 1), (hi.view(-1, 1, 1, 1) - lo.view(-1, 1, 1, 1))
    ok = span > 0
    y = (x - lo).div_(torch.where(ok, span, torch.ones_like(span)))
    if x.device.type != "cpu" or not bool(ok.all()):  # no sync with a GPU to skip one pass
        y = y.masked_fill_(~ok, 1.0)
    return y
