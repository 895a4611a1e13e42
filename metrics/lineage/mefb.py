"""MEFB's metrics (Zhang, Inf. Fusion 2021; xingchenzhang/MEFB @ 9e185bf8, ``metrics/``).

Called as MEFB's ``compute_metrics.m`` calls them, ``metrics<Name>(imgA = A, imgB = B, F)`` on
8-bit images. Eleven are VIFB's code (same values; ``SD`` is VIFB's ``Variance``); the others are
Zheng Liu's toolbox functions as MEFB wraps them: ``NMI`` (Hossny), ``TE`` (Cvejic's Tsallis, with
the toolbox's transposed marginals kept), ``Qncie`` (= Q_NCIE), ``Qc`` (Cvejic), ``Qw`` (Piella's
edge-dependent index), ``Qy`` (Yang), ``Qcb`` (converted with ``im2double`` before ``normalize1``,
which moves its rounding: up to 1.2e-3 from VIFB's copy on real slices). These originals
``normalize1`` their inputs, which divides 0 by 0 on a constant non-zero image and then errors
indexing a histogram: NaN here, with that reason. ``VIF`` is Han's VIFF (not Sheikh-Bovik's VIF as
in Tang and CDDFuse); ``Qp`` is Zhao et al.'s index on Liu's port of Kovesi's phase congruency
(:mod:`metrics.lineage.phase`). ``FMI`` (Fast-FMI of MATLAB's Sobel edge maps; the oracle could
not run it) is implemented from the original's definition, not checked against it. ``MEF_SSIM``
errors on grey inputs in the original (``rgb2gray`` of a 2-D image, in MATLAB too); here it is the
value the original gives for the same images as equal-channel RGB (not checked against the original).
"""

from __future__ import annotations

import math

import torch

from metrics import _native
from metrics._lineage_images import LineageImages
from metrics.lineage import kernels as K
from metrics.lineage import vifb
from metrics.lineage._spec import Spec
from metrics.lineage.phase import phase_congruency
from metrics.lineage.tang import mef_ms_ssim
from metrics.ncie import ncie_from_ncc, ncie_from_normalized
from metrics.ssim import K1, K2, ssim_map
from metrics.toolbox_input import divide

CONSTANT = "normalize1 divides 0 by 0 on a constant non-zero image and the original then errors indexing a histogram"


def _normalized(li: LineageImages):
    """``normalize1`` of A, B, F and the samples where one of them is a constant non-zero image."""

    def make():
        imgs = [*vifb._normalized_sources(li), vifb._normalized_f(li)]  # Q_CV's too
        bad = torch.zeros(li.n, dtype=torch.bool, device=li.a.device)
        for x in imgs:  # NaN or an infinity in an image: in its smallest or largest value (two quick reductions)
            flat = x.flatten(1)
            bad |= ~(torch.isfinite(flat.amin(dim=1)) & torch.isfinite(flat.amax(dim=1)))
        if bool(bad.any()):
            imgs = [torch.where(bad.view(-1, 1, 1, 1), torch.zeros_like(x), x) for x in imgs]
        return imgs, bad

    return li.cached("mefb_norm", make)


def _joint(li: LineageImages, k: int) -> torch.Tensor:
    """The joint histogram of ``normalize1`` of source k (0: A, 1: B) and of F, rows the source's labels:
    NMI's and TE's, made once."""
    (a, b, f), _ = _normalized(li)
    return li.cached(("mefb_joint", k), lambda: K.joint_hist((a, b)[k], f))


def nmi(li: LineageImages, name: str) -> torch.Tensor:
    """Hossny's normalised MI: 2 (I(A;F) / (H(A) + H(F)) + I(B;F) / (H(B) + H(F))), bits."""
    _, bad = _normalized(li)

    def part(k):
        h = _joint(li, k)
        hs, hf, hsf = K.entropy(h.sum(dim=2)), K.entropy(h.sum(dim=1)), K.entropy(h, dims=(1, 2))
        return (hs + hf - hsf) / (hf + hs)

    return li.nan_where(name, 2 * (part(0) + part(1)), bad, CONSTANT)


def te(li: LineageImages, name: str) -> torch.Tensor:
    """Cvejic's Tsallis measure, q = 1.85, summed over sources. The toolbox's ``tsallis`` pairs
    h(i, j) with colmarg(i) * rowmarg(j) (its marginals are transposed); kept. On a CPU each table in
    one pass over its filled rows (:func:`metrics._native.table_tsallis`: 65,536 cells' two powers
    in eager PyTorch took most of TE's 2.9 ms a triple)."""
    _, bad = _normalized(li)
    q = 1.85

    def part(k):
        h = _joint(li, k)
        if _native.cpu_ready(h):
            return _native.table_tsallis(h, q)
        h = h / h.sum(dim=(1, 2), keepdim=True)
        col, row = h.sum(dim=1), h.sum(dim=2)  # sum(h) (per column), sum(h') (per row)
        buff = col.unsqueeze(2) * row.unsqueeze(1)
        ok = buff != 0
        term = torch.where(ok, h**q / torch.where(ok, buff, torch.ones_like(buff)) ** (q - 1), torch.zeros_like(h))
        return (1 - term.sum(dim=(1, 2))) / (1 - q)

    return li.nan_where(name, part(0) + part(1), bad, CONSTANT)


def qncie(li: LineageImages, name: str) -> torch.Tensor:
    """Wang's Q_NCIE (``metricWang.m``). On a CPU its three NCCs take their tables' entropies from the
    hand-written kernel (:func:`K.entropy`: the filled cells only; 2.8 ms a triple as PyTorch's passes
    over every cell) and the A-F and B-F tables NMI and TE made; the same values to float rounding."""
    (a, b, f), bad = _normalized(li)
    if not _native.cpu_ready(a):
        return li.nan_where(name, ncie_from_normalized(a, b, f), bad, CONSTANT)

    def ncc(h):  # H(X) + H(Y) - H(X, Y) in log base 256, from the counts
        return (K.entropy(h.sum(dim=2)) + K.entropy(h.sum(dim=1)) - K.entropy(h, dims=(1, 2))) / math.log(256)

    v = ncie_from_ncc(ncc(K.joint_hist(a, b)), ncc(_joint(li, 0)), ncc(_joint(li, 1)))
    return li.nan_where(name, v, bad, CONSTANT)


def _yang_moments(li: LineageImages):
    """ssim_yang's local moments of A, B and F (7x7 Gaussian, sigma 1.5, 'valid'): (means, {pair: mean of
    the product}), A's and B's part once per pair of sources."""
    pairs = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]
    return li.cached(
        "mefb_yang_moments",
        lambda: K.moments_beside(li, "ssim_yang", lambda: [li.a, li.b], li.f, pairs, K.gaussian_1d(7, 1.5, li.a)),
    )


def _yang_in_kernel(li: LineageImages):
    """Q_Y's and Q_C's (sum, count of the non-NaN values) per image, (B, 4) float64, from the hand-written
    kernel (:func:`metrics._native.yang`: the three SSIM maps and both indices a pixel in one pass), or
    None where it does not take these images."""
    mu, e = _yang_moments(li)
    maps = [*mu, *(e[(k, k)] for k in range(3)), e[(0, 1)], e[(0, 2)], e[(1, 2)]]
    if not K.moments_in_kernel(*maps):
        return None
    return li.cached("mefb_yang_native", lambda: _native.yang(maps, 2e-16))


def _yang_maps(li: LineageImages):
    """The toolbox's ``ssim_yang`` (7x7 Gaussian, sigma 1.5, 'valid', C1 = C2 = 2e-16) for (A, B),
    (A, F) and (B, F), from one pass over the nine local moments; shared by Qc and Qy.
    Returns {pair: (ssim map, var of first, var of second, covariance)}."""

    def make():
        mu, e = _yang_moments(li)
        var = [e[(k, k)] - mu[k] * mu[k] for k in range(3)]
        out = {}
        for i, j in ((0, 1), (0, 2), (1, 2)):
            cov = e[(i, j)] - mu[i] * mu[j]
            c = 2e-16
            s = ((2 * mu[i] * mu[j] + c) * (2 * cov + c)) / (
                (mu[i] * mu[i] + mu[j] * mu[j] + c) * (var[i] + var[j] + c)
            )
            out[(i, j)] = (s, var[i], var[j], cov)
        return out

    return li.cached("mefb_yang", make)


def _nanmean(x: torch.Tensor) -> torch.Tensor:
    """mean2(x(~isnan(x))) per image."""
    keep = ~torch.isnan(x)
    return torch.where(keep, x, torch.zeros_like(x)).sum(dim=(1, 2, 3)) / keep.sum(dim=(1, 2, 3))


def qy(li: LineageImages, name: str) -> torch.Tensor:
    """Yang et al.'s index: 7x7 Gaussian SSIM maps with C1 = C2 = 2e-16; where SSIM(A, B) >= 0.75
    the variance-weighted mean of SSIM(A, F) and SSIM(B, F), elsewhere their maximum."""
    if (sums := _yang_in_kernel(li)) is not None:
        return (sums[:, 0] / sums[:, 1]).to(li.f.dtype)
    m = _yang_maps(li)
    s_ab, va, vb, _ = m[(0, 1)]
    s_af, s_bf = m[(0, 2)][0], m[(1, 2)][0]
    binm = (s_ab >= 0.75).to(s_ab.dtype)
    lam = va / (va + vb)
    q = (lam * s_af + (1 - lam) * s_bf) * binm + torch.fmax(s_af, s_bf) * (1 - binm)
    return _nanmean(q)


def qc(li: LineageImages, name: str) -> torch.Tensor:
    """Cvejic et al.'s index: covariance-weighted mean of SSIM(A, F) and SSIM(B, F) (7x7, C 2e-16)."""
    if (sums := _yang_in_kernel(li)) is not None:
        return (sums[:, 2] / sums[:, 3]).to(li.f.dtype)
    m = _yang_maps(li)
    (s_af, _, _, c_af), (s_bf, _, _, c_bf) = m[(0, 2)], m[(1, 2)]
    w = c_af / (c_af + c_bf)
    sim = w * s_af + (1 - w) * s_bf
    sim = torch.where(w < 0, torch.zeros_like(sim), sim)
    sim = torch.where(w > 1, torch.ones_like(sim), sim)
    return _nanmean(sim)


def _qw_in_kernel(maps: list) -> bool:
    """Whether Q_W's steps after its moments run in the hand-written kernel (:func:`metrics._native.piella`)."""
    return K.moments_in_kernel(*maps)


def qw(li: LineageImages, name: str) -> torch.Tensor:
    """Piella & Heijmans' edge-dependent index as the toolbox's ``metricPeilla`` (case 3): Wang
    SSIM (11x11, L 255) between Prewitt edge-strength images, weighted by the sources' local
    variances (0.5 added where both are 0) and normalised by their maximum."""
    f1 = K.kernel([[1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]], li.a)
    f2 = K.kernel([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]], li.a)

    def edge(x):
        gx, gy = K.filt(x, f1, "same"), K.filt(x, f2, "same")
        return K.sqrt(gx * gx + gy * gy)

    pairs = [(0, 0), (1, 1), (2, 2), (2, 0), (2, 1)]
    g = K.gaussian_1d(11, 1.5, li.a)
    mu, e = K.moments_beside(li, "qw edges", lambda: [edge(li.a), edge(li.b)], edge(li.f), pairs, g)
    maps = [*mu, *(e[(k, k)] for k in range(3)), e[(2, 0)], e[(2, 1)]]
    if _qw_in_kernel(maps):
        # The steps below a pixel in two passes (moment_kernel.cpp), the sums in double: within float rounding.
        return _native.piella(maps, (K1 * 255.0) ** 2, (K2 * 255.0) ** 2).to(li.f.dtype)
    var = [e[(k, k)] - mu[k] * mu[k] for k in range(3)]
    zero = ((var[0] + var[1]) == 0).to(var[0].dtype) * 0.5
    va, vb = var[0] + zero, var[1] + zero
    lam = va / (va + vb)

    def wang(k):  # SSIM(F edges, source k edges), C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2
        stats = (mu[2], mu[k], var[2], var[k], e[(2, k)] - mu[2] * mu[k])
        return ssim_map(None, None, 255.0, stats=stats)

    cw = torch.maximum(va, vb)
    cw = cw / cw.sum(dim=(1, 2, 3), keepdim=True)
    return (cw * (lam * wang(0) + (1 - lam) * wang(1))).sum(dim=(1, 2, 3))


def qcb(li: LineageImages, name: str) -> torch.Tensor:
    """MEFB's copy: ``im2double`` (x / 255 for an 8-bit image; a float one unchanged), then ``normalize1``."""
    scale = torch.where(li.f_integer.view(-1, 1, 1, 1), divide(li.f, 255), li.f)  # rounded next: true division
    sources = (li.a, li.b)
    a, b = li.source_cached("normalize1(a / 255, b / 255)", lambda: [K.normalize1(divide(x, 255)) for x in sources])
    v = vifb.chen_blum(a, b, K.normalize1(scale), cache=li.source_memo("chen_blum(im2double)"))
    return li.nan_if_nonfinite(name, v, vifb.CONSTANT)


def mef_ssim(li: LineageImages, name: str) -> torch.Tensor:
    """Ma et al.'s multi-scale MEF-SSIM of F against (A, B) (``mef_ms_ssim``, Tang's MS_SSIM code).
    The original calls ``rgb2gray`` on every image and so errors on grey ones (MATLAB and Octave
    alike); this is its value on the same images given as RGB with three equal channels (which
    ``rgb2gray`` maps back to the grey values). Not checked against the original on grey images."""
    return mef_ms_ssim([li.a, li.b], li.f, cache=li.source_memo("mef_ms_ssim(a, b)"))


def vif(li: LineageImages, name: str) -> torch.Tensor:
    """Han, Cai, Cao & Xu's VIFF (``metricsVIF.m``): Sheikh-Bovik's four-scale pixel VIF maps of each
    source against F (:func:`K.vifp_scales`) with visual noise sigma_nsq = 0.005 * 255^2; at each
    pixel the source with the smaller gain g is kept (ties: B), each scale's ratio
    sum(VID + C) / sum(VIND + C) with C = 1e-7, weighted by [1, 0, 0.15, 1] / 2.15 and summed."""
    weights = [w / 2.15 for w in (1.0, 0.0, 0.15, 1.0)]
    total = torch.zeros(li.n, dtype=li.f.dtype, device=li.f.device)
    for w, ((num_a, den_a, g_a), (num_b, den_b, g_b)) in zip(
        weights, K.vifp_scales([li.a, li.b], li.f, 0.005 * 255 * 255, cache=li.source_memo("vif(a, b)"))
    ):
        maps = (g_a, g_b, num_a, num_b, den_a, den_b)
        if K.moments_in_kernel(*maps):  # the selections and additions in one pass (moment_kernel.cpp)
            vid, vind = _native.vif_pick(*maps, 1e-7)
        else:
            pick_a = g_a < g_b
            vid, vind = torch.where(pick_a, num_a, num_b) + 1e-7, torch.where(pick_a, den_a, den_b) + 1e-7
        total = total + w * (vid.sum(dim=(1, 2, 3)) / vind.sum(dim=(1, 2, 3)))
    return total


PC_CONSTANT = "phase congruency divides 0 by 0 on a constant image (no response at any scale), as in the original"


def _qp_in_kernel(maps: list) -> bool:
    """Whether Q_P's per-pixel correlations run in the hand-written kernel (:func:`metrics._native.qp_sum`)."""
    return K.moments_in_kernel(*maps)


def _qp_masks_in_kernel(*maps: torch.Tensor) -> bool:
    """Whether Q_P's masks and masked maps are made by the hand-written kernel (:func:`metrics._native.qp_masks`)."""
    return _native.cpu_ready(*maps)


def _eager_masks(pc1: torch.Tensor, pc2: torch.Tensor, features):
    """Q_P's masks and masked maps by PyTorch's eager steps (any device): (masked_maps(t), masks()) as
    :func:`qp` takes them, masked_maps(t) a function giving feature t's three masked maps (A's where A's
    phase congruency exceeds 0.1, B's likewise, the picked one where the picked phase congruency does),
    masks() the three bool masks."""
    first = (pc1 > pc2).to(pc1.dtype)
    other = 1 - first

    def pick(x1, x2):  # mask .* x1 + (~mask) .* x2: NaN in either map survives, as in MATLAB
        return first * x1 + other * x2

    mask1, mask2 = pc1 > 0.1, pc2 > 0.1
    mask3 = pick(pc1, pc2) > 0.1
    ones: list = []  # the masks as 0 / 1 maps, made once for the three masked() calls that need them

    def masks01() -> list:  # (a product with a bool mask converts it at every call; the same values: True
        if not ones:  # is 1.0, and NaN * 0 is NaN either way); none made where the sources' maps are cached
            ones.extend(m.to(pc1.dtype) for m in (mask1, mask2, mask3))
        return ones

    def masked_maps(t: int):
        m1, m2, _ = features[t]

        def masked():
            one1, one2, one3 = masks01()
            return [m1 * one1, m2 * one2, pick(m1, m2) * one3]

        return masked

    return masked_maps, lambda: [mask1, mask2, mask3]


def qp(li: LineageImages, name: str) -> torch.Tensor:
    """Zhao, Laganiere & Liu's phase-congruency index (``metricsQp.m``, the toolbox's
    ``metricZhao``): for each of the phase congruency, the maximum moment and the minimum moment
    (:func:`phase_congruency`), the largest local correlation (11x11 Gaussian, sigma 1.5, 'same',
    C = 1e-4) of F's map with A's, B's and their pixelwise maximum (by phase congruency), each
    masked where the source's phase congruency exceeds 0.1; averaged over the max mask; the three
    products. A constant image gives 0 / 0 in the original's phase congruency: NaN, noted."""
    pcs = [li.source_cached(("pc", k), lambda x=x: phase_congruency(x)) for k, x in (("a", li.a), ("b", li.b))]
    pcs.append(phase_congruency(li.f))
    (pc1, big1, small1), (pc2, big2, small2), (pcf, bigf, smallf) = pcs
    features = ((pc1, pc2, pcf), (big1, big2, bigf), (small1, small2, smallf))
    if _qp_masks_in_kernel(pc1, pc2, big1, big2, small1, small2):
        # The masks, and the three features' masked maps where the sources' moments are not cached, in one
        # pass of the hand-written kernel (moment_kernel.cpp, qp_masks: _eager_masks's steps bit for bit, which
        # took ~25 eager passes over the maps), made once for the three features.
        made: dict = {}

        def kernel(with_maps: bool) -> dict:
            if "masks" not in made or (with_maps and "maps" not in made):
                pairs = [(m1, m2) for m1, m2, _ in features] if with_maps else None
                made["masks"], maps = _native.qp_masks(pc1, pc2, pairs)
                if maps is not None:
                    made["maps"] = [list(m.split(1, dim=1)) for m in maps]
            return made

        def masked_maps(t: int):
            return lambda: kernel(True)["maps"][t]

        def masks() -> list:
            return kernel(False)["masks"]
    else:
        masked_maps, masks = _eager_masks(pc1, pc2, features)

    g = K.gaussian_1d(11, 1.5, li.f)
    out = torch.ones(li.n, dtype=li.f.dtype, device=li.f.device)
    pairs = [(0, 0), (1, 1), (2, 2), (3, 3), (0, 3), (1, 3), (2, 3)]
    for t, (_, _, mf) in enumerate(features):
        mu, e = K.moments_beside(li, ("qp", t), masked_maps(t), mf, pairs, g, "same")
        maps = [*mu, *(e[(k, k)] for k in range(4)), *(e[(k, 3)] for k in range(3))]
        mask1, mask2, mask3 = masks()
        if _qp_in_kernel(maps):
            # The steps below a pixel in one pass (moment_kernel.cpp; summed in double)
            total = _native.qp_sum(maps, [mask1, mask2, mask3]).to(out.dtype)
            out = out * total / mask3.sum(dim=(1, 2, 3)).to(out.dtype)
            continue
        var_f = e[(3, 3)] - mu[3] * mu[3]
        best = None
        for k, mask in enumerate((mask1, mask2, mask3)):
            cov = e[(k, 3)] - mu[k] * mu[3]
            var = e[(k, k)] - mu[k] * mu[k]
            r = (cov + 1e-4) / (torch.sqrt(torch.abs(var * var_f)) + 1e-4)
            # Outside its mask a map is mu * 0 (NaN where mu is, e.g. next to a constant image's
            # 0 / 0), and MATLAB's max skips NaN: fmax.
            r = torch.where(mask, r, mu[k] * 0)
            best = r if best is None else torch.fmax(best, r)
        out = out * best.sum(dim=(1, 2, 3)) / mask3.sum(dim=(1, 2, 3)).to(best.dtype)
    return li.nan_if_nonfinite(name, out, PC_CONSTANT)


def fmi(li: LineageImages, name: str) -> torch.Tensor:
    """Haghighat's Fast-FMI as MEFB calls it, ``FMI(A, B, F)`` with its default feature ``'edge'``
    and 3x3 windows: the windowed FMI of :func:`metrics.fmi.fmi_from_images` (the same code) on
    MATLAB's default Sobel edge maps (:func:`K.edge_sobel`) of the double 0..255 images. Not
    checked against the original: the oracle could not run it (about 530 s per image in Octave,
    whose ``edge`` also refuses double images outside [0, 1])."""
    from metrics.fmi import fmi_from_images

    a, b = (li.source_cached(("edge_sobel", k), lambda x=x: K.edge_sobel(x)) for k, x in (("a", li.a), ("b", li.b)))
    return fmi_from_images(a, b, K.edge_sobel(li.f), 3)


# Keys of the original not implemented here (docs/lineages.md says why): none.
NOT_IMPLEMENTED = ()
SPECS = (
    Spec("Cross_entropy", vifb.cross_entropy, False, vifb.REF_CE, "mean cross-entropy, sources to F"),
    Spec("Entropy", vifb.entropy_floor, True, "Aardt, J. Appl. Remote Sens. 2008", "entropy of F (bits)"),
    Spec("NMI", nmi, True, "Hossny, Nahavandi & Creighton, Electron. Lett. 2008", "normalised mutual information"),
    Spec("Psnr", vifb.psnr, True, "Jagalingam & Hegde, Aquatic Procedia 2015", "PSNR, peak 255, VIFB's mse"),
    Spec("Qncie", qncie, True, "Wang, Shen & Jin, 2008", "nonlinear correlation information entropy"),
    Spec("TE", te, True, "Cvejic, Canagarajah & Bull, Electron. Lett. 2006", "Tsallis entropy measure, q 1.85"),
    Spec("Avg_gradient", vifb.avg_gradient, True, "Cui et al., Opt. Commun. 2015", "average gradient of F"),
    Spec("Edge_intensity", vifb.edge_intensity, True, "Rajalingam & Priya, IJESI 2018", "mean Sobel magnitude"),
    Spec("Qabf", vifb.qabf, True, "Xydeas & Petrovic, Electron. Lett. 2000", "gradient preservation Q^AB/F"),
    Spec(
        "Qp",
        qp,
        True,
        "Zhao, Laganiere & Liu, IJICIC 2007",
        "phase-congruency feature index",
        min_size=11,
        compiled=True,
        native=True,
    ),
    Spec("SD", vifb.variance, True, "Rao, Meas. Sci. Technol. 1997", "standard deviation of F"),
    Spec("Spatial_frequency", vifb.spatial_frequency, True, "Eskicioglu & Fisher, IEEE TCOM 1995", "spatial frequency"),
    Spec("Qc", qc, True, "Cvejic et al., IJSP 2005", "covariance-weighted SSIM index", min_size=11, f64=True),
    # In the inputs' dtype: its SSIM constants ((0.01 * 255)^2, (0.03 * 255)^2) hide the float32
    # cancellation of the edge images' moments (within 2.3e-7 of float64 on the shared cases, 67 BraTS and
    # phantom slices with six fusions, plateaus and ramps), at half the time.
    Spec("Qw", qw, True, "Piella & Heijmans, ICIP 2003", "edge-dependent fusion quality index", min_size=11),
    Spec("Qy", qy, True, "Yang et al., Inf. Fusion 2008", "SSIM-based similarity index", min_size=11, f64=True),
    Spec(
        "MEF_SSIM",
        mef_ssim,
        True,
        "Ma, Zeng & Wang, IEEE TIP 2015",
        "multi-scale MEF-SSIM (the original errors on grey images)",
        checked=False,
        min_size=44,
        f64=True,
    ),
    Spec("Qcb", qcb, True, "Chen & Blum, Image Vis. Comput. 2009", "human-perception contrast preservation"),
    Spec("Qcv", vifb.qcv, False, "Chen & Varshney, Inf. Fusion 2007", "regional CSF-weighted distortion"),
    Spec(
        "FMI",
        fmi,
        True,
        "Haghighat, Aghagolzadeh & Seyedarabi, CEE 2011",
        "Fast-FMI of Sobel edge maps",
        checked=False,
        compiled=True,
        native=True,
    ),
    Spec(
        "VIF",
        vif,
        True,
        "Han, Cai, Cao & Xu, Inf. Fusion 2013",
        "VIFF: multiscale VIF of F vs both sources",
        min_size=K.VIF_MIN_SIZE,
        f64=True,
    ),
)
