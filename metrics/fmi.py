"""Q_FMI: Haghighat's fast feature mutual information, as ``fmi.m`` with raw-pixel features.

M. Haghighat, A. Aghagolzadeh, H. Seyedarabi, "A non-reference image fusion metric based on mutual
information of image features", Comput. Electr. Eng. 37(5), 2011; fast variant: Haghighat &
Razian, "Fast-FMI", AICT 2014. For every w x w window (no padding) and each source S:
window min-max normalised (constant -> ones), marginal pdfs p = window / sum (column-major order,
as MATLAB's ``(:)``), cdfs by cumulative sum; the joint pdf is Nelsen's mixture
phi * (Frechet bound cell mass) + (1 - phi) * p_F p_S, upper bound min(F_i, S_j) when the Pearson
correlation c of the pdfs is >= 0 (phi = c / corr_up), lower bound max(F_i + S_j - 1, 0) when c < 0;
FMI_SF = 2 I(S; F) / (H(S) + H(F)) (1 where the windows are identical, 0 where I = 0). The map
value is (FMI_AF + FMI_BF) / 2 and Q_FMI its mean.

The toolbox's quirks are kept because they change the numbers: after the x1 pass F's window is
replaced by its normalised version, so the x2 pass tests ``x2 window == normalised F window``
(reference README: Q_FMI is not symmetric in x1, x2); ``c`` is 0 when the covariance sum is exactly 0;
negative joint masses enter as -p log2|p| (MATLAB's ``real``). Vectorised: all windows of all
images at once, in chunks of ``chunk`` windows; identical windows are skipped.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from metrics._checks import check_triple


def _windows(img: torch.Tensor, w: int) -> torch.Tensor:
    """All w x w windows of (B, 1, H, W) as (B, L, w*w), elements in MATLAB column-major order."""
    cols = F.unfold(img, kernel_size=w)  # (B, w*w, L), row-major within the window
    perm = [r * w + c for c in range(w) for r in range(w)]
    return cols[:, perm, :].transpose(1, 2)


def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo = x.min(dim=1, keepdim=True).values
    hi = x.max(dim=1, keepdim=True).values
    flat = hi == lo
    return torch.where(flat, torch.ones_like(x), (x - lo) / torch.where(flat, torch.ones_like(hi), hi - lo))


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log2(torch.where(p != 0, p, torch.ones_like(p)))).sum(dim=1)


def _nfmi(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Normalised FMI between min-max normalised windows ``s`` (source) and ``t`` (fused), (N, l) each."""
    l = s.shape[1]
    sp = s / s.sum(dim=1, keepdim=True)
    tp = t / t.sum(dim=1, keepdim=True)
    sc, tc = torch.cumsum(sp, dim=1), torch.cumsum(tp, dim=1)
    st, tt = sp - sp.mean(dim=1, keepdim=True), tp - tp.mean(dim=1, keepdim=True)
    num = (st * tt).sum(dim=1)
    c = torch.where(num == 0, torch.zeros_like(num), num / torch.sqrt((st * st).sum(dim=1) * (tt * tt).sum(dim=1)))
    # Two constant windows (both normalised to ones, uniform pdfs): MATLAB's sequential mean of nine
    # 1/9s leaves a 2.8e-17 residue in both centred pdfs, so the toolbox finds c = 1 (not 0) and the
    # window scores 1. Encoded explicitly so that float32 and any summation order agree.
    both_flat = (s == 1).all(dim=1) & (t == 1).all(dim=1)
    c = torch.where(both_flat, torch.ones_like(c), c)
    i = torch.arange(1, l + 1, dtype=s.dtype, device=s.device)
    sd_s = torch.sqrt(((i * i * sp).sum(dim=1) - (i * sp).sum(dim=1) ** 2).clamp(min=0))
    sd_t = torch.sqrt(((i * i * tp).sum(dim=1) - (i * tp).sum(dim=1) ** 2).clamp(min=0))
    T, S = tc[:, :, None], sc[:, None, :]  # rows: fused index i, columns: source index j
    prod = T * S
    pos = c >= 0
    # Frechet-Hoeffding bounds, written as the toolbox writes them: 0.5 (a + b -|a - b|), 0.5 (a + b - 1 + |a + b - 1|)
    bound = torch.where(pos[:, None, None], 0.5 * (T + S - torch.abs(T - S)), 0.5 * (T + S - 1 + torch.abs(T + S - 1)))
    cov = (bound - prod).sum(dim=(1, 2))
    sd0 = (sd_s == 0) | (sd_t == 0)
    corr_bound = cov / torch.where(sd0, torch.ones_like(sd_s), sd_t * sd_s)
    safe = torch.where(corr_bound == 0, torch.ones_like(corr_bound), corr_bound)
    phi = torch.where(sd0 | (pos & (c == 0)), torch.zeros_like(c), c / safe)
    b = F.pad(bound, (1, 0, 1, 0))
    cell = ((b[:, 1:, 1:] - b[:, :-1, 1:]) - b[:, 1:, :-1]) + b[:, :-1, :-1]  # copula mass of cell (i, j)
    phi3 = phi[:, None, None]
    jp = phi3 * cell + ((1 - phi3) * tp[:, :, None]) * sp[:, None, :]
    nz = jp != 0
    je = -(jp * torch.log2(torch.where(nz, torch.abs(jp), torch.ones_like(jp)))).sum(dim=(1, 2))
    hs, ht = _entropy(sp), _entropy(tp)
    mi = hs + ht - je
    den = hs + ht
    return torch.where((mi == 0) | (den == 0), torch.zeros_like(mi), 2 * mi / torch.where(den == 0, torch.ones_like(den), den))


_COMPILED = None


def _kernel():
    """``_nfmi`` or, with FUSIONBENCH_COMPILE=1, its ``torch.compile``d form: inductor fuses the
    ~40 elementwise passes over each window's 9x9 joint-pdf grid into one loop (6x faster on a
    2-core CPU; about 30 s of compilation once per process, cached on disk by torch)."""
    global _COMPILED
    if os.environ.get("FUSIONBENCH_COMPILE", "0") not in ("1", "true", "yes"):
        return _nfmi
    if _COMPILED is None:
        _COMPILED = torch.compile(_nfmi, dynamic=True)
    return _COMPILED


def fmi_map_values(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, chunk: int = 16384) -> torch.Tensor:
    """FMI map values (FMI_AF + FMI_BF) / 2 for window rows (N, l) of x1 (a), x2 (b) and F (f)."""
    out = torch.ones(a.shape[0], dtype=a.dtype, device=a.device)
    eq_a = (a == f).all(dim=1)
    fn = _minmax(f)
    f_seen_by_b = torch.where(eq_a[:, None], f, fn)  # the toolbox overwrote F's window in the x1 pass
    eq_b = (b == f_seen_by_b).all(dim=1)
    fmi_af = torch.ones_like(out)
    fmi_bf = torch.ones_like(out)
    kernel = _kernel()
    for eq, src, dst in ((eq_a, a, fmi_af), (eq_b, b, fmi_bf)):
        todo = torch.nonzero(~eq).flatten()
        for start in range(0, todo.numel(), chunk):
            idx = todo[start : start + chunk]
            dst[idx] = kernel(_minmax(src[idx]), fn[idx])
    return (fmi_af + fmi_bf) / 2


def fmi_from_images(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, window: int = 3, chunk: int = 16384) -> torch.Tensor:
    """Q_FMI per image from 0..255 (B, 1, H, W) images (raw pixel features)."""
    if window < 2:
        raise ValueError(f"FMI window must be at least 2 pixels; got {window}")
    n = a.shape[0]
    wa, wb, wf = (_windows(x, window) for x in (a, b, f))
    per_image = wa.shape[1]
    vals = fmi_map_values(wa.reshape(-1, wa.shape[-1]), wb.reshape(-1, wb.shape[-1]), wf.reshape(-1, wf.shape[-1]), chunk)
    return vals.view(n, per_image).mean(dim=1)


def q_fmi(fused: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, profile: str = "upstream", quantize: bool | None = None, window: int = 3, paper_inputs: bool = False) -> torch.Tensor:
    """Q_FMI per image, ``Tensor[B]`` (higher is better, max 1). Images float (B, 1, H, W) in [0, 1].

    ``window`` is the sliding window (3, the paper's setting); ``paper_inputs`` (profile
    ``fusioninn`` only) feeds the images as the authors' RGB PNGs reached MATLAB: three identical
    channels side by side (H x 3W).
    """
    from metrics.scoring import Workspace

    check_triple(fused, x1, x2, window)
    return Workspace(fused, x1, x2, profile=profile, quantize=quantize, paper_inputs=paper_inputs, fmi_window=window).q_fmi()
