"""Q_NCIE: Wang's nonlinear correlation information entropy, as ``metricWang.m`` + ``NCC.m``.

Q. Wang, Y. Shen, J. Jin, "Performance evaluation of image fusion techniques", in Image Fusion:
Algorithms and Applications (Stathaki, ed.), 2008, ch. 19. Each image is min-max stretched to
0..255 and rounded half away from zero (``normalize1.m``); NCC(X, Y) = H(X) + H(Y) - H(X, Y) with
entropies in log base b = 256 from a 256x256 joint histogram; R = [[1, NCC_12, NCC_1F],
[NCC_12, 1, NCC_2F], [NCC_1F, NCC_2F, 1]]; NCIE = 1 + sum_i (r_i / 3) log_256(r_i / 3) over the
eigenvalues r_i of R.

Defined where the toolbox is not: a constant non-zero image makes ``normalize1`` divide by zero
(Octave errors); here it normalises to all zeros, like an all-zero image (it carries no
information: NCC with it is 0); three such images give R = I and NCIE = 1 - log_256(3) = 0.8019.
Eigenvalues are clamped at 0 and 0 log 0 = 0.
"""

from __future__ import annotations

import math

import torch

from metrics import _native
from metrics._workspace import Workspace, batch_invariant

BINS = 256


def normalize1(x: torch.Tensor) -> torch.Tensor:
    """Per image min-max to 0..255, rounded half away from zero; all-zero or constant -> zeros. On a CPU by
    the hand-written kernel (:func:`metrics._native.normalize1`: the lineages' form, the same floor(v + 0.5)
    of the same v, a constant image zeros), bit for bit."""
    if x.shape[0] and x[0].numel() and _native.cpu_ready(x):
        return _native.normalize1(x, flat_zero=True)
    flat = x.flatten(1)
    lo = flat.amin(dim=1).view(-1, 1, 1, 1)
    hi = flat.amax(dim=1).view(-1, 1, 1, 1)
    span = hi - lo
    y = torch.floor((x - lo) / torch.where(span > 0, span, torch.ones_like(span)) * 255 + 0.5)
    return torch.where(span > 0, y, torch.zeros_like(y))


def _entropy_bits(p: torch.Tensor, dims) -> torch.Tensor:
    return -(p * torch.log2(torch.where(p > 0, p, torch.ones_like(p)))).sum(dim=dims)


def ncc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Nonlinear correlation coefficient of two 0..255 integer-valued image batches, ``Tensor[B]``. On a CPU
    the joint table and its entropies from the hand-written kernels (``hist_kernel.cpp``: one pass for the
    counts, the filled cells' logarithms summed in double; 0.3 against 0.8 ms a table of 240x240 images
    as int64 labels, a bincount over 65,536 cells an image and PyTorch's passes over every cell): the same
    counts, the entropies within float rounding."""
    n = a.shape[0]
    if n and _native.cpu_ready(a, b) and a.dtype == b.dtype:
        h = _native.hist(a, BINS, b)
        hx, hy = _native.table_entropy(h.sum(dim=1)), _native.table_entropy(h.sum(dim=2))
        return (hx + hy - _native.table_entropy(h.view(n, -1))) / math.log(BINS)  # nats to log base 256
    idx = (a.flatten(1).long() * BINS + b.flatten(1).long()) + torch.arange(n, device=a.device).view(
        -1, 1
    ) * BINS * BINS
    h = torch.bincount(idx.flatten(), minlength=n * BINS * BINS).view(n, BINS, BINS).to(a.dtype)
    h = h / h.sum(dim=(1, 2), keepdim=True)
    hx = _entropy_bits(h.sum(dim=1), 1)
    hy = _entropy_bits(h.sum(dim=2), 1)
    hxy = _entropy_bits(h, (1, 2))
    return (hx + hy - hxy) / 8.0  # log2(256) = 8


def ncie_from_normalized(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """NCIE from images already passed through :func:`normalize1`."""
    return ncie_from_ncc(ncc(a, b), ncc(a, f), ncc(b, f))


def ncie_from_ncc(n_ab: torch.Tensor, n_af: torch.Tensor, n_bf: torch.Tensor) -> torch.Tensor:
    """NCIE from the three nonlinear correlation coefficients, each ``Tensor[B]``."""
    one = torch.ones_like(n_ab)
    r = torch.stack(
        [torch.stack([one, n_ab, n_af], -1), torch.stack([n_ab, one, n_bf], -1), torch.stack([n_af, n_bf, one], -1)], -2
    )
    ev = torch.linalg.eigvalsh(r).clamp(min=0) / 3.0
    term = torch.where(ev > 0, ev * torch.log2(torch.where(ev > 0, ev, torch.ones_like(ev))), torch.zeros_like(ev))
    return 1.0 + term.sum(dim=-1) / 8.0


@batch_invariant
def q_ncie(
    fused: torch.Tensor,
    x1: torch.Tensor,
    x2: torch.Tensor,
    profile: str = "upstream",
    quantize: bool | None = None,
    work: Workspace | None = None,
) -> torch.Tensor:
    """Q_NCIE per image, ``Tensor[B]`` (higher is better, in [0, 1]). Images float (B, 1, H, W) in [0, 1]."""
    work = Workspace.of(work, fused, x1, x2, profile, quantize, 3)
    a, b, f = work.toolbox_images()
    return ncie_from_normalized(normalize1(a), normalize1(b), normalize1(f))
