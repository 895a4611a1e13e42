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
images at once, in chunks of ``chunk`` windows; identical windows are skipped. On a CPU the 3x3
windows go to the hand-written kernel (``metrics/fmi_kernel.cpp``, :mod:`metrics._native`: the
same arithmetic as :func:`_nfmi`, 2-3x faster than it compiled) wherever that kernel builds;
:func:`_nfmi` scores them on a GPU, under autograd, for other window sizes and where it cannot be built.
"""

from __future__ import annotations

import torch

from metrics import _compile, _native
from metrics._workspace import Workspace, batch_invariant


def _offsets(w: int, width: int) -> list[int]:
    """Flat pixel offsets of a w x w window's elements from its top-left pixel, in MATLAB's
    column-major order (element k = c * w + r is pixel (r, c))."""
    return [r * width + c for c in range(w) for r in range(w)]


def _window_all(mask: torch.Tensor, w: int) -> torch.Tensor:
    """(B, H-w+1, W-w+1): is ``mask`` (B, 1, H, W) true at all w*w pixels of each window."""
    h, wd = mask.shape[-2] - w + 1, mask.shape[-1] - w + 1
    out = mask[:, 0, :h, :wd].clone()
    for r in range(w):
        for c in range(w):
            out &= mask[:, 0, r : r + h, c : c + wd]
    return out


def _gather_windows(img_flat: torch.Tensor, p: torch.Tensor, offsets: list[int]) -> torch.Tensor:
    """Windows with top-left flat pixel indices ``p`` of ``img_flat``, their elements along dim -2:
    (l, N) for ``p`` of shape (N,), (K, l, B) for blocks of windows (K, B)."""
    return torch.stack([img_flat[p + o] for o in offsets], dim=-2)


def _minmax(x: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each window (elements along dim -2); a constant window becomes ones."""
    lo = x.amin(dim=-2, keepdim=True)
    hi = x.amax(dim=-2, keepdim=True)
    flat = hi == lo
    return torch.where(flat, torch.ones_like(x), (x - lo) / torch.where(flat, torch.ones_like(hi), hi - lo))


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log2(torch.where(p != 0, p, torch.ones_like(p)))).sum(dim=-2)


def _nfmi(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Normalised FMI between min-max normalised windows ``s`` (source) and ``t`` (fused), each window's
    l elements along dim -2: (l, N), or (K, l, B) for K blocks of B windows (the compiled kernel's
    layout, :data:`BLOCK`); returns (N,) or (K, B)."""
    l = s.shape[-2]
    sp = s / s.sum(dim=-2, keepdim=True)
    tp = t / t.sum(dim=-2, keepdim=True)
    sc, tc = torch.cumsum(sp, dim=-2), torch.cumsum(tp, dim=-2)
    st, tt = sp - sp.mean(dim=-2, keepdim=True), tp - tp.mean(dim=-2, keepdim=True)
    num = (st * tt).sum(dim=-2)
    c = torch.where(num == 0, torch.zeros_like(num), num / torch.sqrt((st * st).sum(dim=-2) * (tt * tt).sum(dim=-2)))
    # Two constant windows (both normalised to ones, uniform pdfs): MATLAB's sequential mean of nine
    # 1/9s leaves a 2.8e-17 residue in both centred pdfs, so the toolbox finds c = 1 (not 0) and the
    # window scores 1. Encoded explicitly so that float32 and any summation order agree.
    both_flat = (s == 1).all(dim=-2) & (t == 1).all(dim=-2)
    c = torch.where(both_flat, torch.ones_like(c), c)
    i = torch.arange(1, l + 1, dtype=s.dtype, device=s.device)[:, None]
    sd_s = torch.sqrt(((i * i * sp).sum(dim=-2) - (i * sp).sum(dim=-2) ** 2).clamp(min=0))
    sd_t = torch.sqrt(((i * i * tp).sum(dim=-2) - (i * tp).sum(dim=-2) ** 2).clamp(min=0))
    pos = c >= 0
    pos2, pos3 = pos[..., None, :], pos[..., None, None, :]  # against (l, ...) and (l, l, ...) per window
    # Frechet-Hoeffding bound copula: upper min(F_i, S_j) when c >= 0, lower max(F_i + S_j - 1, 0)
    # when c < 0. Its mass in cell (i, j) is the overlap of the fused interval (T_{i-1}, T_i] with
    # the source interval (S_{j-1}, S_j] (upper) or (1 - S_j, 1 - S_{j-1}] (lower): the toolbox's
    # 2-D difference of the bound, in one step.
    T, S = tc[..., :, None, :], sc[..., None, :, :]  # rows: fused index i, columns: source index j
    s0 = torch.cat([torch.zeros_like(sc[..., :1, :]), sc[..., :-1, :]], dim=-2)
    t0 = torch.cat([torch.zeros_like(tc[..., :1, :]), tc[..., :-1, :]], dim=-2)
    lo = torch.where(pos2, s0, 1 - sc)
    hi = torch.where(pos2, sc, 1 - s0)
    lo, hi, t0 = lo[..., None, :, :], hi[..., None, :, :], t0[..., :, None, :]
    cell = (torch.minimum(T, hi) - torch.maximum(t0, lo)).clamp(min=0)
    bound = torch.where(pos3, torch.minimum(T, S), (T + S - 1).clamp(min=0))
    cov = bound.sum(dim=(-3, -2)) - tc.sum(dim=-2) * sc.sum(dim=-2)
    sd0 = (sd_s == 0) | (sd_t == 0)
    corr_bound = cov / torch.where(sd0, torch.ones_like(sd_s), sd_t * sd_s)
    safe = torch.where(corr_bound == 0, torch.ones_like(corr_bound), corr_bound)
    phi = torch.where(sd0 | (pos & (c == 0)), torch.zeros_like(c), c / safe)[..., None, None, :]
    jp = phi * cell + ((1 - phi) * tp[..., :, None, :]) * sp[..., None, :, :]
    nz = jp != 0
    je = -(jp * torch.log2(torch.where(nz, torch.abs(jp), torch.ones_like(jp)))).sum(dim=(-3, -2))
    hs, ht = _entropy(sp), _entropy(tp)
    mi = hs + ht - je
    den = hs + ht
    return torch.where(
        (mi == 0) | (den == 0), torch.zeros_like(mi), 2 * mi / torch.where(den == 0, torch.ones_like(den), den)
    )


def _fmi_at(src: torch.Tensor, f: torch.Tensor, ps: torch.Tensor, pf: torch.Tensor, offsets: list[int]) -> torch.Tensor:
    """Normalised FMI of the windows at flat pixel indices ``ps`` of the flat source image(s) and
    ``pf`` of the flat fused image(s), (N,) or blocks (K, B) of windows; the result has their shape.

    The windows are gathered, normalised and scored in one function, so that when compiled inductor
    fuses the gathering into the scoring."""
    return _nfmi(_minmax(_gather_windows(src, ps, offsets)), _minmax(_gather_windows(f, pf, offsets)))


def _fmi_at_f32(
    src: torch.Tensor, f: torch.Tensor, ps: torch.Tensor, pf: torch.Tensor, offsets: list[int]
) -> torch.Tensor:
    """:func:`_fmi_at` on float64 images with the windows scored in float32: the windows' offsets
    from their minimum need float64 where they vary by less than float32 resolves (wavelet features
    far from any edge, Tang's ``FMI_w``); the ~40 passes over each 9x9 joint pdf do not, and run
    1.5-2x faster in float32 (within 2.2e-7 of all-float64 on the shared cases). The min-max division is
    left out: :func:`_nfmi`'s pdfs divide by the window's sum, in which the range cancels."""
    s = _shifted(_gather_windows(src, ps, offsets)).to(torch.float32)
    t = _shifted(_gather_windows(f, pf, offsets)).to(torch.float32)
    return _nfmi(s, t).to(src.dtype)


def _shifted(x: torch.Tensor) -> torch.Tensor:
    """Each window (elements along dim -2) minus its minimum; a constant window becomes ones (as
    :func:`_minmax`'s, which these equal up to the factor 1 / range)."""
    lo = x.amin(dim=-2, keepdim=True)
    return torch.where(x.amax(dim=-2, keepdim=True) == lo, torch.ones_like(x), x - lo)


CHUNK = 16384  # windows one kernel call scores; compiled, every call has exactly this many (static shapes)
# On a GPU the kernel runs eager, ~40 launches a call, and 16,384 windows leave the device mostly
# waiting on them: on an H200, Q_FMI of 72 images took 331 ms in chunks of 16,384 windows, 91 ms in
# chunks of 65,536 and 25 ms in chunks of 262,144 (217 -> 2,932 pairs/s; benchmark/tools/gpu_check.sh's
# session, docs/speed.md "On a GPU"). A call's intermediates take about 1 GB in float64, 0.5 GB in
# float32 (peak growth measured on the CPU, 6 images).
CUDA_CHUNK = 262144
# Compiled (on a CPU), a call's windows come as (CHUNK / BLOCK, 9, BLOCK) blocks instead of (9, CHUNK):
# inductor's loops then run block by block, each over BLOCK contiguous windows, and the kernel's
# intermediates (its 9x9 joint pdfs among them) are read back from cache instead of memory: medians
# 103-115 against 147-165 ns a window (two threads; 27 calls of phantom windows, alternating; blocks
# of 16, 64 and 256 ran alike; docs/speed.md). The same values bit for bit as the row layout.
# Eager (and on a GPU) the layout stays (9, N): no faster there.
BLOCK = 64


def chunk_for(device: torch.device) -> int:
    """Windows per kernel call on ``device``: :data:`CHUNK` on a CPU, :data:`CUDA_CHUNK` elsewhere."""
    return CHUNK if torch.device(device).type == "cpu" else CUDA_CHUNK


def _pixel(i: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Window indices (image, row, col in window order) -> their top-left flat pixels in (B, 1, height,
    width) images."""
    h, w = height - window + 1, width - window + 1
    return (i // (h * w)) * (height * width) + ((i % (h * w)) // w) * width + i % w


def skipped(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows the toolbox skips (they score 1), (B * h * w,) booleans in window order, for the
    x1 pass and the x2 pass: x1's window equals F's; x2's equals F's window as the x1 pass left it.
    (The hand-written kernel applies the same rules by itself: :func:`metrics._native.fmi_maps`.)"""
    height, width = a.shape[-2:]
    offsets = _offsets(window, width)
    eq_a = _window_all(a == f, window).flatten()
    # After the x1 pass the toolbox has replaced F's window by its normalised version, unless the
    # x1 window equalled F's (then it was skipped): the x2 pass compares x2 with that.
    eq_b = eq_a & _window_all(b == f, window).flatten()
    # x2 can equal a normalised F window, which holds both a 0 and a 1 (exactly: (lo - lo) / span and
    # span / span) or is all ones (a flat one), only where it lies in [0, 1] and does the same; test
    # those exactly (a few windows, not every window of a dark or binary image).
    both = ~_window_all(b != 0, window) & ~_window_all(b != 1, window)
    shape = (both | _window_all(b == 1, window)) & _window_all((b >= 0) & (b <= 1), window)
    maybe = torch.nonzero(~eq_a & shape.flatten()).flatten()
    if maybe.numel():
        p = _pixel(maybe, window, height, width)
        fb, ff = b.reshape(-1), f.reshape(-1)
        eq_b[maybe] = (_gather_windows(fb, p, offsets) == _minmax(_gather_windows(ff, p, offsets))).all(dim=-2)
    return eq_a, eq_b


def fmi_from_images(
    a: torch.Tensor,
    b: torch.Tensor,
    f: torch.Tensor,
    window: int = 3,
    chunk: int | None = None,
    score_f32: bool = False,
) -> torch.Tensor:
    """Q_FMI per image from 0..255 (B, 1, H, W) images (raw pixel features).

    The FMI map value of each window is (FMI_AF + FMI_BF) / 2. Windows that the toolbox skips (the
    source window equals F's) score 1 without computation. Where :func:`metrics._native.usable` says
    so (a CPU, 3x3 windows, no autograd) the hand-written kernel does it all, the skip rules included
    (:func:`metrics._native.fmi_maps`). Else the rest, of both sources together, run
    :func:`_nfmi` in chunks of ``chunk`` windows through :func:`metrics._compile.call` (compiled
    when compiling is active: inductor fuses the gathering and the ~40 passes over each window's
    9x9 joint pdf into one vectorised loop). Compiled, the last chunk is padded to ``chunk``
    windows (repeats of its last one, dropped after), so that one static kernel serves every call,
    and the windows go in blocks of :data:`BLOCK` (``chunk`` rounded up to a multiple of it).
    ``score_f32``: float64 images' windows are taken from their minimum in float64 and scored in float32
    (:func:`_fmi_at_f32`). ``chunk``: default :func:`chunk_for` the images' device.
    """
    if window < 2:
        raise ValueError(f"FMI window must be at least 2 pixels; got {window}")
    chunk = chunk or chunk_for(a.device)
    n, _, height, width = a.shape
    h, w = height - window + 1, width - window + 1
    offsets = _offsets(window, width)
    if _native.usable(offsets, a, b, f):  # the hand-written CPU kernel, skip rules and all
        m1, m2, _ = _native.fmi_maps(a, b, f, score_f32)
        return ((m1 + m2) / 2).view(n, -1).mean(dim=1)
    fa, fb, ff = (x.reshape(-1) for x in (a, b, f))
    eq_a, eq_b = skipped(a, b, f, window)
    # Both passes in one list: x1's windows index the first half of ``src``, x2's the second.
    todo_a, todo_b = torch.nonzero(~eq_a).flatten(), torch.nonzero(~eq_b).flatten()
    src = torch.cat([fa, fb])
    pf = _pixel(torch.cat([todo_a, todo_b]), window, height, width)
    ps = pf.clone()
    ps[todo_a.numel() :] += fa.numel()
    dst = torch.cat([todo_a, todo_b + n * h * w])
    fmi = torch.ones(2 * n * h * w, dtype=a.dtype, device=a.device)  # skipped windows score 1
    compiled = _compile.active()
    if compiled:
        chunk = -(-chunk // BLOCK) * BLOCK
    kernel = _fmi_at_f32 if score_f32 and a.dtype == torch.float64 else _fmi_at
    for start in range(0, dst.numel(), chunk):
        cs, cf = ps[start : start + chunk], pf[start : start + chunk]
        k = cs.numel()
        if compiled:
            if k < chunk:
                cs, cf = (torch.cat([x, x[-1:].expand(chunk - k)]) for x in (cs, cf))
            cs, cf = cs.view(-1, BLOCK), cf.view(-1, BLOCK)
        got = _compile.call(kernel, src, ff, cs, cf, offsets, varying=(0, 1))
        fmi[dst[start : start + k]] = got.reshape(-1)[:k]
    return ((fmi[: n * h * w] + fmi[n * h * w :]) / 2).view(n, -1).mean(dim=1)


@batch_invariant
def q_fmi(
    fused: torch.Tensor,
    x1: torch.Tensor,
    x2: torch.Tensor,
    profile: str = "upstream",
    quantize: bool | None = None,
    window: int = 3,
    paper_inputs: bool = False,
    work: Workspace | None = None,
) -> torch.Tensor:
    """Q_FMI per image, ``Tensor[B]`` (higher is better, max 1). Images float (B, 1, H, W) in [0, 1].

    ``window`` is the sliding window (3, the paper's setting); ``paper_inputs`` (profile
    ``fusioninn`` only) feeds the images as the authors' RGB PNGs reached MATLAB: three identical
    channels side by side (H x 3W).
    """
    work = Workspace.of(work, fused, x1, x2, profile, quantize, window, paper_inputs)
    a, b, f = work.toolbox_images()
    if work.paper_inputs:  # MATLAB saw the RGB PNG as H x 3W (three channels side by side)
        a, b, f = (torch.cat([x, x, x], dim=-1) for x in (a, b, f))
    return fmi_from_images(a, b, f, window)
