"""Convert [0, 1] float images into what the MATLAB toolbox saw (docs/reference.md §6).

The toolbox read 8-bit PNGs, so by default the toolbox-faithful metrics quantise each image to the
integers 0..255 with ``round(255 v)`` (round half to even, as numpy's ``round`` that made the
reference cases) and work in 0..255 units. ``quantize=False`` keeps the float values (scaled by 255).

``paper_input_path`` reproduces the FusionINN authors' own route into MATLAB, which is *inferred*
from their scripts and not checked against MATLAB: every image went through
``plt.imsave(cmap='gray')``: sources autoscaled per image (no vmin/vmax), fused images with
vmin 0, vmax 1 (out-of-range values clipped), each mapped through matplotlib's grey colour table to
8 bits (about floor(256 v), with 24 of 256 levels one lower than that).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from metrics import _native


def divide(x: torch.Tensor, d: float) -> torch.Tensor:
    """``x / d``, correctly rounded on every device, as MATLAB and NumPy divide.

    On CUDA, PyTorch divides a tensor by a Python number as ``x * (1 / d)``, which "may lose one bit
    of precision" (its comment in aten/src/ATen/native/cuda/BinaryDivTrueKernel.cu); a value that
    the original's division leaves exactly on a rounding tie (``normalize1``'s round of a k + 0.5)
    then lands beside it, and MEFB's Qcb moved by 3e-5 on one shared case on an H200. Dividing by a
    0-dim tensor on the tensor's device takes the true division on CPU and CUDA alike. Used where a
    quotient is then rounded or compared; elsewhere one bit is far below every tolerance."""
    return x / torch.tensor(d, dtype=x.dtype, device=x.device)


def quantize_255(x: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """Map a [0, 1] image to 0..255 units; with ``quantize`` round half-to-even to integers (and clamp to
    0..255). On a CPU the hand-written kernel takes the three steps in one pass, with their values bit for
    bit (:func:`metrics._native.quantize_255`)."""
    if quantize and x.numel() and _native.cpu_ready(x):
        return _native.quantize_255(x)
    y = x * 255.0
    if quantize:
        y = torch.round(y).clamp_(0, 255)
    return y


@functools.lru_cache(maxsize=1)
def _gray_lut() -> np.ndarray:
    # matplotlib's own colour table: the 8-bit value plt.imsave writes for each of 256 indices.
    import matplotlib

    return np.asarray(matplotlib.colormaps["gray"](np.arange(256), bytes=True)[:, 0], dtype=np.float64)


def _through_gray_cmap(v: torch.Tensor) -> torch.Tensor:
    # matplotlib Colormap.__call__ on floats: x * N, x == N -> N - 1, clip, truncate to int.
    idx = torch.clamp(torch.floor(v * 256.0), 0, 255).long()
    lut = torch.as_tensor(_gray_lut(), dtype=v.dtype, device=v.device)
    return lut[idx]


def paper_input_path(x: torch.Tensor, autoscale: bool) -> torch.Tensor:
    """8-bit values (0..255, as float) of ``x`` written by ``plt.imsave(cmap='gray')`` and read by MATLAB.

    ``autoscale=True`` is how the sources were written (per-image min-max), ``False`` how the fused
    images were written (vmin 0, vmax 1). Inferred from the authors' scripts; see the module docstring.
    """
    if autoscale:
        flat = x.flatten(1)
        lo = flat.amin(dim=1).view(-1, 1, 1, 1)
        hi = flat.amax(dim=1).view(-1, 1, 1, 1)
        span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
        v = (x - lo) / span
    else:
        v = x.clamp(0, 1)
    return _through_gray_cmap(v)
