"""Windows and the toolbox's filtering modes, batched over (B, C, H, W) tensors."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from metrics import _native


def correlate(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """Filter every channel of ``x`` (B, C, H, W) with a 2-D ``kernel``.

    mode ``valid``: MATLAB ``filter2(k, x, 'valid')``; ``corr_same``: ``filter2(k, x, 'same')``
    (correlation, zero padding); ``conv_same``: ``imfilter(x, k, 'conv')`` / ``conv2(x, k, 'same')``
    (true convolution, zero padding). Odd kernels only. A rank-one 3x3 kernel (Sobel) runs as two
    passes of shifted slices (:func:`filter_rank_one_3`) on any device.
    """
    if mode not in ("valid", "corr_same", "conv_same"):
        raise ValueError(f"unknown filtering mode {mode!r}")
    kh, kw = kernel.shape
    c = x.shape[1]
    k = kernel.to(dtype=x.dtype)
    if mode == "conv_same":
        k = torch.flip(k, dims=(0, 1))
    factors = rank_one_3x3(k)
    if factors is not None:
        return filter_rank_one_3(x, *factors, zero_pad=mode != "valid")
    weight = k.to(x.device).expand(c, 1, kh, kw)
    if mode == "valid":
        return F.conv2d(x, weight, groups=c)
    return F.conv2d(x, weight, padding=(kh // 2, kw // 2), groups=c)


def rank_one_3x3(k: torch.Tensor):
    """(column taps, row taps) of a 3x3 kernel that is exactly their outer product (Sobel, Prewitt
    and their scaled forms), else None. The nine taps are read on the host: one small copy where the
    kernel lives on a GPU, where the slices also beat the grouped convolution (cuDNN's float64 3x3
    convolutions took 29 of MEFB's 105 ms of GPU time a batch of 72 on an H200, docs/speed.md)."""
    if tuple(k.shape) != (3, 3):
        return None
    vals = k.tolist()
    r = max(range(3), key=lambda i: max(abs(v) for v in vals[i]))
    c = max(range(3), key=lambda j: abs(vals[r][j]))
    if vals[r][c] == 0:
        return None
    u = [vals[i][c] / vals[r][c] for i in range(3)]
    v = vals[r]
    if any(u[i] * v[j] != vals[i][j] for i in range(3) for j in range(3)):
        return None
    return u, v


def filter_rank_one_3(x: torch.Tensor, u, v, zero_pad: bool = False) -> torch.Tensor:
    """'valid' correlation of (padded) ``x`` with outer(u, v) as two passes of shifted slices (zero
    taps skipped): 2-10x faster than a grouped 3x3 convolution on a CPU, float64 included (which
    oneDNN does not run). With 0..255 integer images every partial sum is exact, so the result
    equals the convolution's; otherwise it differs by float rounding only. Elementwise products and
    sums round the same on every device, so a GPU gets the CPU's values bit for bit; on a CPU the
    hand-written kernel takes the same steps in one pass a row (:func:`metrics._native.rank_one_3`).
    ``zero_pad``: of ``x`` padded by one zero on every side (the 'same' correlation), which the kernel
    does without the padded copy."""
    if min(x.shape[-2:]) >= (1 if zero_pad else 3) and _native.cpu_ready(x):
        return _native.rank_one_3(x, u, v, zero_pad)
    if zero_pad:
        x = F.pad(x, (1, 1, 1, 1))

    def taps(y, w, dim):
        n = y.shape[dim] - 2
        out = None
        for i, t in enumerate(w):
            if t == 0:
                continue
            term = y.narrow(dim, i, n)
            term = term if t == 1 else term * t
            out = term.clone() if out is None else out.add_(term)
        return out if out is not None else torch.zeros_like(y.narrow(dim, 0, n))

    return taps(taps(x, u, -2), v, -1)


def toolbox_centre(h: int, w: int, k: int) -> tuple[slice, slice]:
    """Rows/cols of the size-``k`` centred block that ``imfilter(kernel, image, 'conv')`` returns.

    For an HxW image, Octave's swapped call returns ``conv2(kernel, image, 'same')``: the full
    convolution's block starting at ``floor(H/2)`` (reference README, profile ``toolbox``). In
    terms of a same-size (zero padded) map that is rows ``floor(H/2) - k//2 .. floor(H/2) + k//2``.
    """
    r0, c0 = h // 2 - k // 2, w // 2 - k // 2
    return slice(r0, r0 + k), slice(c0, c0 + k)


def gaussian_1d(size: int = 11, sigma: float = 1.5, dtype=torch.float64, device=None) -> torch.Tensor:
    """1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)`` (the 2-D window is its outer product), sum 1."""
    r = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def _separable_conv(x: torch.Tensor, g: torch.Tensor, pad: int) -> torch.Tensor:
    c, k = x.shape[1], g.numel()
    x = F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), padding=(pad, 0), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), padding=(0, pad), groups=c)


def separable_matmul(
    x: torch.Tensor, g: torch.Tensor, pad: str = "valid", stride: int = 1, blocks: bool | None = None
) -> torch.Tensor:
    """Filtering of the last two dims with the window ``outer(g, g)`` (odd ``g``) as two matrix
    products with banded (Toeplitz) matrices, ``T_h' X T_w`` (the lineage metrics' filter). On a CPU,
    in blocks of :data:`BLOCK_WIDTH` outputs, BLAS does (BLOCK_WIDTH + k - 1) / k times the
    multiply-adds of a tap loop, yet it is 2-5x faster than eager shifted slices and 10-60x faster
    than a grouped convolution (float64: 11 ms against 51 and ~650 for a 17-tap window over 32
    240x240 maps, in blocks of about 60), eager, with nothing to compile. Equal to the 2-D filtering
    to ~1e-15 relative (float64).

    ``pad``: ``valid`` (no padding, output shrinks by k - 1), or a border of k // 2 pixels folded
    into the matrices instead of copied around the image: ``same`` (zeros), ``replicate``,
    ``reflect`` (edge not repeated), ``symmetric`` (edge repeated). ``stride``: keep every
    ``stride``-th output row and column (filter-then-decimate without computing what is dropped).
    ``blocks``: skip the band's zero blocks (below); default on a CPU only, as on a GPU the ~40
    small products cost more launches than the zeros they skip. Left at None on a CPU, where the
    hand-written kernels build (:mod:`metrics._native`) and autograd does not record ``x``, a tap loop
    filters instead (``metrics/filter_kernel.cpp``: 2.0 against 7.0 ms for twenty 240x240 float64
    maps and 11 taps, one thread), within float rounding of the products; ``True`` / ``False`` choose
    the products.

    :func:`gaussian_filter` keeps its convolution for the training losses: a change of its rounding
    would change every trained fuser's committed results in their last digits."""
    taps = tuple(g.flatten().tolist())  # one copy to the host (per tap, each would wait on a GPU)
    k = len(taps)
    if blocks is None and min(x.shape[-2:]) >= k and _native.cpu_ready(x):
        # On a CPU the hand-written tap loop (metrics/filter_kernel.cpp), where it builds.
        rows, cols = (_source_index(n, k, pad) for n in x.shape[-2:])
        return _native.separable(x, taps, rows, cols, stride)
    rows = _band(x.shape[-2], taps, x.dtype, x.device, pad, stride)
    cols = _band(x.shape[-1], taps, x.dtype, x.device, pad, stride)
    if not (x.device.type == "cpu" if blocks is None else blocks):
        return torch.matmul(rows.t(), torch.matmul(x, cols))
    row_blocks = _blocks(x.shape[-2], taps, x.dtype, x.device, pad, stride)
    col_blocks = _blocks(x.shape[-1], taps, x.dtype, x.device, pad, stride)
    if len(row_blocks) == 1 and len(col_blocks) == 1:
        return torch.matmul(rows.t(), torch.matmul(x, cols))
    # Block-diagonal slices of the band: each block of outputs takes only the inputs its taps reach
    # (strided views, nothing copied), so BLAS skips most of the zeros, with the very same products
    # and sums (the skipped terms are exact zeros). Rows first, whole, then the columns block by block.
    y = x.new_empty((*x.shape[:-1], cols.shape[1]))
    in_place = not (torch.is_grad_enabled() and x.requires_grad)  # autograd takes no out= products
    for a0, a1, c0, c1 in col_blocks:  # written in place (BLAS's leading dimension): no copy
        if in_place:
            torch.matmul(x[..., :, a0:a1], cols[a0:a1, c0:c1], out=y[..., c0:c1])
        else:
            y[..., c0:c1] = torch.matmul(x[..., :, a0:a1], cols[a0:a1, c0:c1])
    out = x.new_empty((*x.shape[:-2], rows.shape[1], cols.shape[1]))
    for b0, b1, r0, r1 in row_blocks:  # assigned: written in place, the batched product was 1.5-3x slower
        out[..., r0:r1, :] = torch.matmul(rows[b0:b1, r0:r1].t(), y[..., b0:b1, :])
    return out


# Outputs a block of the band: each block's product reads BLOCK_WIDTH + k - 1 inputs of a k-tap
# filter, against about 60 + k before (blocks of a quarter of 240). Timed on every distinct call
# the lineage metrics make for 4 triples (42 shapes, float32 and float64, 3-31 taps, median of 7
# alternating runs): tang's filtering 96.7 -> 47.7 ms, mefb's 190.6 -> 104.8, cddfuse's 23.3 -> 13.8,
# vifb's 24.2 -> 20.3, against 68.6-60.1 / 144.8-113.9 / 18.6-14.3 / 31.3-20.7 at widths 8, 16 and
# 24 (docs/speed.md, "Banded filters in narrower blocks"). A side with fewer outputs than
# DENSE_BELOW stays one block: there the products' fixed costs weigh more than the zeros.
BLOCK_WIDTH = 12
DENSE_BELOW = 64


def separable_of_products(factors: list, g: torch.Tensor, pad: str = "valid") -> torch.Tensor:
    """:func:`separable_matmul` of the maps ``factors`` names, each an image ``(x, None)`` or a product
    ``(x, y)`` of (B, 1, H, W) images of one dtype: (B, len(factors), h, w). On a CPU where the hand-written
    kernels build, the filter makes each product itself (:func:`metrics._native.separable_products`: the
    same values bit for bit, without the products and a copy of the images in memory first)."""
    x0 = factors[0][0]
    k = g.numel()
    images = [x for f in factors for x in f if x is not None]
    if min(x0.shape[-2:]) >= k and _native.cpu_ready(*images) and len({x.dtype for x in images}) == 1:
        rows, cols = (_source_index(n, k, pad) for n in x0.shape[-2:])
        return _native.separable_products(factors, tuple(g.flatten().tolist()), rows, cols)
    return separable_matmul(torch.cat([x if y is None else x * y for x, y in factors], dim=1), g, pad)


@functools.lru_cache(maxsize=128)
def _blocks(n: int, taps: tuple, dtype: torch.dtype, device: torch.device, pad: str = "valid", stride: int = 1):
    """Blocks of :func:`_band`'s outputs, about :data:`BLOCK_WIDTH` wide (one block below
    :data:`DENSE_BELOW` outputs), each as (first input, end input, first output, end output): the
    inputs its nonzero taps reach."""
    band = _band(n, taps, dtype, device, pad, stride)
    m = band.shape[1]
    nb = max(1, round(m / BLOCK_WIDTH)) if m >= DENSE_BELOW else 1
    reach = (band != 0).cpu()
    out = []
    for i in range(nb):
        c0, c1 = i * m // nb, (i + 1) * m // nb
        used = torch.nonzero(reach[:, c0:c1].any(dim=1)).flatten()
        out.append((int(used[0]), int(used[-1]) + 1, c0, c1) if used.numel() else (0, n, c0, c1))
    return tuple(out)


_PADS = ("valid", "same", "replicate", "reflect", "symmetric")


@functools.lru_cache(maxsize=128)
def _source_index(n: int, k: int, pad: str) -> torch.Tensor:
    """For each of the n + 2 (k // 2) positions of a side of n pixels padded as ``pad`` says for a
    k-tap window (n for ``valid``), the source pixel it repeats, or -1 for a zero (int64, CPU)."""
    if pad not in _PADS:
        raise ValueError(f"unknown padding {pad!r}; expected one of {', '.join(_PADS)}")
    p = 0 if pad == "valid" else k // 2
    if p >= n and pad in ("reflect", "symmetric"):
        raise ValueError(f"a {k}-tap window cannot {pad}-pad a side of {n} pixels")
    i = torch.arange(-p, n + p)
    if pad == "same":
        return torch.where((i >= 0) & (i < n), i, torch.full_like(i, -1))
    if pad == "replicate":
        return i.clamp(0, n - 1)
    if pad == "reflect":
        return torch.where(i < 0, -i, torch.where(i >= n, 2 * (n - 1) - i, i))
    if pad == "symmetric":
        return torch.where(i < 0, -i - 1, torch.where(i >= n, 2 * n - 1 - i, i))
    return i


@functools.lru_cache(maxsize=128)
def _band(n: int, taps: tuple, dtype: torch.dtype, device: torch.device, pad: str = "valid", stride: int = 1):
    """(n, outputs) matrix: ``x @ band`` correlates each row of ``x`` (length n) with the taps,
    after padding it as ``pad`` says, keeping every ``stride``-th output. Built in float64: a tap
    that several padded positions share (a replicated edge) is their sum."""
    k = len(taps)
    src = _source_index(n, k, pad)
    p = 0 if pad == "valid" else k // 2
    m = n + 2 * p - k + 1
    band = torch.zeros(n + 1, m, dtype=torch.float64)  # the last row collects the zeros' taps
    cols = torch.arange(m)
    for t_i, t in enumerate(taps):
        band.index_put_((src[cols + t_i], cols), torch.full((m,), t, dtype=torch.float64), accumulate=True)
    return band[:n, ::stride].contiguous().to(dtype=dtype, device=device)


def gaussian_filter(x: torch.Tensor, g: torch.Tensor, mode: str) -> torch.Tensor:
    """Separable Gaussian filtering of every channel of ``x`` (B, C, H, W), as a grouped convolution
    (the training losses' SSIM; differentiable on any device).

    Equal to filtering with the 2-D window ``outer(g, g)`` (up to float rounding; 22 instead of 121
    multiply-adds a pixel). ``mode``: ``valid`` or ``same`` (zero padding); the window is symmetric,
    so correlation and convolution agree. Scoring uses :func:`separable_matmul` instead
    (:func:`metrics.ssim.filtered_moments`): 10x faster on a CPU, with nothing to compile.
    """
    if mode not in ("valid", "same"):
        raise ValueError(f"unknown Gaussian filtering mode {mode!r}")
    g = g.to(dtype=x.dtype, device=x.device)
    return _separable_conv(x, g, 0 if mode == "valid" else g.numel() // 2)
