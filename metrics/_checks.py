"""Input checks shared by every metric: shapes first, then math (torchmetrics style)."""

from __future__ import annotations

import torch


def check_images(name: str, x: torch.Tensor, chunk: int | None = None, tol: float = 1e-6) -> None:
    """Raise a clear ValueError unless ``x`` is a finite float ``(B, 1, H, W)`` tensor in [0, 1]
    (``tol`` of slack at either end).

    The value checks run ``chunk`` samples at a time, so checking a large batch needs no memory in
    proportion to it.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, 1, H, W); got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (B, 1, H, W) float images in [0, 1]")
    if not x.is_floating_point():
        raise ValueError(
            f"{name} has dtype {x.dtype}; expected a float tensor in [0, 1] (convert 8-bit images with x / 255)"
        )
    step = max(1, chunk or x.shape[0])
    for s in range(0, x.shape[0], step):
        part = x[s : s + step]
        finite = torch.isfinite(part).flatten(1).all(dim=1)
        if not bool(finite.all()):
            bad = (torch.nonzero(~finite).flatten() + s).tolist()
            raise ValueError(f"{name} contains NaN or Inf in sample(s) {bad[:10]}; expected finite values in [0, 1]")
        lo, hi = float(part.min()), float(part.max())
        if lo < -tol or hi > 1 + tol:
            per = part.flatten(1)
            bad = (torch.nonzero((per.amin(dim=1) < -tol) | (per.amax(dim=1) > 1 + tol)).flatten() + s).tolist()
            raise ValueError(f"{name} has values in [{lo:.4g}, {hi:.4g}] in sample(s) {bad[:10]}; expected [0, 1]")


def check_triple(
    fused: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, min_size: int = 11, chunk: int | None = None
) -> None:
    """Check a (fused, x1, x2) triple: same shape, float, finite, in [0, 1], at least ``min_size`` pixels a side."""
    check_images("x1", x1, chunk)
    check_images("x2", x2, chunk)
    check_images("fused", fused, chunk)
    if x2.shape != x1.shape:
        raise ValueError(f"x2 has shape {tuple(x2.shape)}; expected {tuple(x1.shape)} like x1")
    if fused.shape != x1.shape:
        raise ValueError(f"fused has shape {tuple(fused.shape)}; expected {tuple(x1.shape)} like x1")
    if min(x1.shape[-2:]) < min_size:
        raise ValueError(f"images are {x1.shape[-2]}x{x1.shape[-1]}; the metrics need at least {min_size}x{min_size}")
