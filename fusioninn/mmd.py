"""Maximum mean discrepancy with inverse multiquadric kernels (the FusionINN latent loss, docs/reference.md §3).

k(a, b) = sum over widths h of h^2 / (h^2 + ||a - b||^2), widths (0.05, 0.2, 0.9);
MMD^2 = mean k(X, X) + mean k(Y, Y) - 2 mean k(X, Y) (biased estimate, as the reference).

``mmd_images`` (the paper's form) treats each flattened latent image (57,600 values) as one sample:
with such long vectors every off-diagonal distance is huge, the kernel is ~0 there, and the loss is
nearly the constant 6/B with ~zero gradient (docs/reference.md §3). ``mmd_pixels`` (an option) treats latent
pixels as samples of a 1-D distribution, which has a useful gradient.
"""

from __future__ import annotations

import torch

WIDTHS = (0.05, 0.2, 0.9)


def mmd(x: torch.Tensor, y: torch.Tensor, widths=WIDTHS) -> torch.Tensor:
    """Biased MMD^2 between sample sets x (N, D) and y (M, D)."""
    xx, yy, xy = x @ x.T, y @ y.T, x @ y.T
    rx, ry = xx.diag(), yy.diag()
    dxx = (rx[:, None] + rx[None, :] - 2 * xx).clamp(min=0)
    dyy = (ry[:, None] + ry[None, :] - 2 * yy).clamp(min=0)
    dxy = (rx[:, None] + ry[None, :] - 2 * xy).clamp(min=0)
    kxx = sum(h * h / (h * h + dxx) for h in widths)
    kyy = sum(h * h / (h * h + dyy) for h in widths)
    kxy = sum(h * h / (h * h + dxy) for h in widths)
    return kxx.mean() + kyy.mean() - 2 * kxy.mean()


def mmd_images(z: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Paper form: one sample per latent image, (B, 1, H, W) -> (B, H*W)."""
    return mmd(z.flatten(1).float(), prior.flatten(1).float())


def mmd_pixels(z: torch.Tensor, prior: torch.Tensor, n: int = 1024) -> torch.Tensor:
    """Option: ``n`` latent pixels (evenly strided, deterministic) against ``n`` prior pixels, 1-D samples."""
    zf, pf = z.flatten().float(), prior.flatten().float()
    step = max(1, zf.numel() // n)
    return mmd(zf[::step][:n, None], pf[::step][:n, None])
