"""Batched building blocks the lineages share: windows, filtering modes, histograms, gradients.

Every function takes (B, 1, H, W) tensors in 0..255 units and works in their dtype, on their
device, without Python loops over pixels, windows or images. The maths is each original's; the
lineage modules say which original uses which block and with what quirks.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from metrics import _native, filters
from metrics.filters import filter_rank_one_3, rank_one_3x3, separable_matmul

LOG2 = math.log(2.0)


def fspecial_gaussian(n: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """MATLAB ``fspecial('gaussian', n, sigma)``: exp(-(x^2 + y^2) / 2 sigma^2), values below
    eps * max set to 0, normalised to sum 1 (also CDDFuse's "Gaussian kernel as MATLAB's")."""
    r = torch.arange(n, dtype=torch.float64, device=like.device) - (n - 1) / 2
    h = torch.exp(-(r.view(-1, 1) ** 2 + r.view(1, -1) ** 2) / (2 * sigma * sigma))
    h = torch.where(h < torch.finfo(torch.float64).eps * h.max(), torch.zeros_like(h), h)
    return (h / h.sum()).to(like.dtype)


def filt(x: torch.Tensor, k: torch.Tensor, mode: str = "valid", conv: bool = False) -> torch.Tensor:
    """Correlate every (B, C, H, W) channel with the 2-D kernel ``k`` (``conv``: true convolution).

    ``mode``: ``valid`` (``filter2(k, x, 'valid')``), ``same`` (zero padding: ``filter2 'same'``,
    ``conv2 'same'``), ``replicate`` (``imfilter(.., 'replicate')``), ``reflect`` (edge not
    repeated: ``per_extn_im_fn``), ``symmetric`` (edge repeated: ``imfilter 'symmetric'``,
    scipy.ndimage's ``reflect``). Odd kernels, or even ones for ``symmetric`` as imfilter pads them.
    """
    k = k.to(dtype=x.dtype)
    if conv:
        k = torch.flip(k, dims=(0, 1))
    kh, kw = k.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    factors = rank_one_3x3(k)  # Sobel, Prewitt: shifted slices on any device
    if factors is not None and mode == "same":  # zero padding: the kernel's own, without the padded copy
        return filter_rank_one_3(x, *factors, zero_pad=True)
    x = _pad(x, (left, kw - 1 - left, top, kh - 1 - top), mode)
    if factors is not None:
        return filter_rank_one_3(x, *factors)
    return F.conv2d(x, k.to(x.device).expand(x.shape[1], 1, kh, kw), groups=x.shape[1])


def _pad(x: torch.Tensor, pad, mode: str) -> torch.Tensor:
    """Pad (left, right, top, bottom) for a filtering ``mode`` (``valid``: nothing)."""
    if mode == "valid":
        return x
    if mode == "same":
        return F.pad(x, pad)
    if mode == "symmetric":
        return _pad_symmetric(x, pad)
    return F.pad(x, pad, mode={"replicate": "replicate", "reflect": "reflect"}[mode])


def no_cache(key, make):
    """The ``cache(key, make)`` of a kernel called on its own: ``make()``, nothing kept. Kernels that
    take a ``cache`` (VIF, MEF-SSIM, Q^AB/F, Q_CB, Q_CV) route what their sources alone give through
    it; a :class:`LineageImages`' :meth:`~LineageImages.source_memo` keeps it for every F scored
    against the same sources."""
    return make()


def gaussian_1d(n: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """1-D factor of :func:`fspecial_gaussian` (its window is the outer product of this with itself
    whenever no tap falls below eps * max, true for every window used here), in ``like``'s dtype and
    on its device. Made once per window, dtype and device and kept (a batch of ``mefb`` asks for 13
    windows, seven of them different, at 18 us each made afresh): the same tensor each time, which
    no caller changes in place."""
    return _gaussian_1d(int(n), float(sigma), like.dtype, like.device)


@functools.lru_cache(maxsize=64)
def _gaussian_1d(n: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    r = torch.arange(n, dtype=torch.float64, device=device) - (n - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma * sigma))
    return (g / g.sum()).to(dtype)


def separable(x: torch.Tensor, g: torch.Tensor, mode: str = "valid", stride: int = 1) -> torch.Tensor:
    """Filter with the window ``outer(g, g)`` (symmetric odd ``g``): ``mode`` as :func:`filt`,
    keeping every ``stride``-th row and column; as banded matrix products with the padding folded
    in (:func:`metrics.filters.separable_matmul`)."""
    return separable_matmul(x, g.to(dtype=x.dtype, device=x.device), mode, stride)


def local_moments(xs: list, pairs: list, g: torch.Tensor, mode: str = "valid", means=None):
    """Local Gaussian means of each image in ``xs`` (or of those whose indices ``means`` lists; the
    others' are None) and of the products ``xs[i] * xs[j]`` for ``(i, j)`` in ``pairs``, filtered
    together in one :func:`separable` pass (each map once, however many pairs share it). Returns
    (list of means, {pair: mean of the product})."""
    which = range(len(xs)) if means is None else means
    n = len(which)
    m = moment_maps(xs, pairs, g, mode, means)
    mu = [None] * len(xs)
    for k, i in enumerate(which):
        mu[i] = m[:, k : k + 1]
    return mu, {p: m[:, n + k : n + k + 1] for k, p in enumerate(pairs)}


def moment_maps(xs: list, pairs: list, g: torch.Tensor, mode: str = "valid", means=None) -> torch.Tensor:
    """:func:`local_moments` as one (B, maps, h, w) tensor: the means (of ``means``' images, else of
    all, in that order), then the products of ``pairs``, in their order. On a CPU the hand-written
    filter takes the images and makes each product itself (:func:`metrics._native.separable_products`),
    bit for bit what filtering :func:`moment_inputs` gives, without copying the images into one
    tensor and writing the products to memory first."""
    which = range(len(xs)) if means is None else means
    x0 = xs[0]
    k = g.numel()
    if (
        min(x0.shape[-2:]) >= k
        and all(x.shape == x0.shape and x.dtype == x0.dtype for x in xs)
        and _native.cpu_ready(*xs)
    ):
        rows, cols = (filters._source_index(n, k, mode) for n in x0.shape[-2:])
        factors = [(xs[i], None) for i in which] + [(xs[i], xs[j]) for i, j in pairs]
        taps = tuple(g.to(dtype=x0.dtype).flatten().tolist())
        return _native.separable_products(factors, taps, rows, cols)
    return separable(moment_inputs(xs, pairs, means), g, mode)


def moment_inputs(xs: list, pairs: list, means=None) -> torch.Tensor:
    """What :func:`moment_maps` filters: the images (of ``means``, else all) and the products of
    ``pairs``, (B, maps, H, W); for one set of maps filtered with several windows."""
    which = range(len(xs)) if means is None else means
    n = len(which)
    buf = torch.empty((xs[0].shape[0], n + len(pairs), *xs[0].shape[-2:]), dtype=xs[0].dtype, device=xs[0].device)
    for k, i in enumerate(which):
        buf[:, k : k + 1] = xs[i]
    in_place = not (torch.is_grad_enabled() and any(x.requires_grad for x in xs))  # autograd takes no out=
    for k, (i, j) in enumerate(pairs):  # products written in place: no temporaries, no concatenation
        if in_place:
            torch.mul(xs[i], xs[j], out=buf[:, n + k : n + k + 1])
        else:
            buf[:, n + k : n + k + 1] = xs[i] * xs[j]
    return buf


def moments_beside(li, key, sources, f: torch.Tensor, pairs: list, g: torch.Tensor, mode: str = "valid"):
    """:func:`local_moments` of ``[*maps, f]`` where ``maps = sources()`` are maps of A and B alone:
    their means and the ``pairs`` among them are computed once per pair of sources under ``key``
    (:meth:`LineageImages.source_cached`: once for every fused image scored against them in
    :func:`metrics.sharing_sources`); F's mean and the pairs with F (index ``len(maps)``) for
    this F. Returns (list of means, {pair: mean of the product}), as :func:`local_moments`."""
    maps = li.source_cached((key, "maps"), sources)
    n = len(maps)
    own = [p for p in pairs if n not in p]
    mu_s, e_s = li.source_cached((key, "moments"), lambda: local_moments(maps, own, g, mode))
    mu_f, e_f = local_moments([*maps, f], [p for p in pairs if n in p], g, mode, means=[n])
    return [*mu_s, mu_f[n]], {**e_s, **e_f}


def _pad_symmetric(x: torch.Tensor, pad) -> torch.Tensor:
    left, right, top, bottom = pad
    parts = [torch.flip(x[..., :top, :], (-2,)), x, torch.flip(x[..., x.shape[-2] - bottom :, :], (-2,))]
    x = torch.cat(parts, dim=-2)
    parts = [torch.flip(x[..., :left], (-1,)), x, torch.flip(x[..., x.shape[-1] - right :], (-1,))]
    return torch.cat(parts, dim=-1)


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``round`` / ``int16()``: halves away from zero (torch.round rounds them to even)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


def minmax_255(x: torch.Tensor, away: bool = True) -> torch.Tensor:
    """Per image (x - min) / (max - min) * 255, rounded half away from zero; constant -> zeros
    (VIFB ``mutinf``; ``normalize1`` leaves an all-zero image as it is). On a CPU, rounded, by
    :func:`normalize1`'s kernel (the same steps, a constant image zeros), bit for bit."""
    if away and x.shape[0] and x[0].numel() and _native.cpu_ready(x):
        return _native.normalize1(x, flat_zero=True)
    flat = x.flatten(1)
    lo = flat.amin(dim=1).view(-1, 1, 1, 1)
    span = flat.amax(dim=1).view(-1, 1, 1, 1) - lo
    y = (x - lo) / torch.where(span > 0, span, torch.ones_like(span))
    y = round_half_away(y * 255) if away else y * 255
    return torch.where(span > 0, y, torch.zeros_like(y))


def normalize1(x: torch.Tensor) -> torch.Tensor:
    """Zheng Liu's ``normalize1.m``: min-max to 0..255, ``round``; an all-zero image stays zeros
    (a constant non-zero one divides 0 by 0: NaN, as in MATLAB). On a CPU the hand-written kernel
    (:func:`metrics._native.normalize1`: two passes an image, where these eleven steps took 0.62 ms for four
    240x240 images) gives the same values bit for bit."""
    if x.shape[0] and x[0].numel() and _native.cpu_ready(x):
        return _native.normalize1(x)
    flat = x.flatten(1)
    lo = flat.amin(dim=1).view(-1, 1, 1, 1)
    hi = flat.amax(dim=1).view(-1, 1, 1, 1)
    y = round_half_away((x - lo) / (hi - lo) * 255)
    return torch.where((hi == 0) & (lo == 0), x, y)


def hist(labels: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """Counts per image of integer labels 0..bins-1: (B, bins), in the labels' float dtype. On a CPU by
    the hand-written kernel (:func:`metrics._native.hist`: one pass, where bincount took an int64 copy,
    offsets and a conversion back; the same counts)."""
    if _native.cpu_ready(labels):
        return _native.hist(labels, bins)
    n = labels.shape[0]
    idx = labels.flatten(1).long() + torch.arange(n, device=labels.device).view(-1, 1) * bins
    return torch.bincount(idx.flatten(), minlength=n * bins).view(n, bins).to(labels.dtype)


def joint_hist(a: torch.Tensor, b: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """Joint counts per image of integer labels: (B, bins, bins) with rows a, columns b (on a CPU by
    the hand-written kernel, as :func:`hist`)."""
    if _native.cpu_ready(a, b) and a.dtype == b.dtype:
        return _native.hist(a, bins, b)
    n = a.shape[0]
    idx = a.flatten(1).long() * bins + b.flatten(1).long()
    idx = idx + torch.arange(n, device=a.device).view(-1, 1) * bins * bins
    h = torch.bincount(idx.flatten(), minlength=n * bins * bins).view(n, bins, bins)
    return h.to(a.dtype)


def plogp(p: torch.Tensor) -> torch.Tensor:
    """p log p (natural log) with 0 log 0 = 0."""
    return torch.where(p > 0, p * torch.log(torch.where(p > 0, p, torch.ones_like(p))), torch.zeros_like(p))


# Cells from which a table's entropy is taken by the hand-written kernel on a CPU (the joint histograms,
# 65,536 cells, a few thousand of them filled: 0.4-0.5 ms a table as PyTorch's passes, 0.05 there).
NATIVE_TABLE = 4096


def entropy(counts: torch.Tensor, dims=-1) -> torch.Tensor:
    """Shannon entropy in nats of a count table, summed over ``dims``. A table of at least
    :data:`NATIVE_TABLE` cells over the trailing dims goes to :func:`metrics._native.table_entropy` on a
    CPU (summed in double: within float32's rounding of these steps for a float32 table)."""
    dims_t = (dims,) if isinstance(dims, int) else tuple(dims)
    nd = counts.dim()
    cells = math.prod(counts.shape[d] for d in dims_t)
    trailing = sorted(d % nd for d in dims_t) == list(range(nd - len(dims_t), nd))
    if trailing and cells >= NATIVE_TABLE and _native.cpu_ready(counts):
        return _native.table_entropy(counts.reshape(-1, cells)).view(counts.shape[: nd - len(dims_t)])
    total = counts.sum(dim=dims, keepdim=True)
    return -plogp(counts / total).sum(dim=dims)


def mutual_information(a_lab: torch.Tensor, b_lab: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """I(a; b) in nats from integer labels, H(a) + H(b) - H(a, b) of the joint histogram."""
    h = joint_hist(a_lab, b_lab, bins)
    return entropy(h.sum(dim=2)) + entropy(h.sum(dim=1)) - entropy(h, dims=(1, 2))


def label_mutual_information(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """I(a; b) in nats with every distinct value its own label (sklearn ``mutual_info_score``),
    for any real values: the joint table is built from sorted unique (image, a, b) keys."""
    n = a.shape[0]
    _, la = torch.unique(a.flatten(), return_inverse=True)
    _, lb = torch.unique(b.flatten(), return_inverse=True)
    la, lb = la.view(n, -1), lb.view(n, -1)
    base_b = int(lb.max()) + 1
    base_a = int(la.max()) + 1
    img = torch.arange(n, device=a.device).view(-1, 1)
    npix = la.shape[1]

    def h_of(keys: torch.Tensor, per: int) -> torch.Tensor:
        uniq, counts = torch.unique(keys.flatten(), return_counts=True)
        owner = torch.div(uniq, per, rounding_mode="floor")
        p = counts.to(a.dtype) / npix
        return -torch.zeros(n, dtype=a.dtype, device=a.device).index_add_(0, owner, plogp(p))

    ha = h_of(img * base_a + la, base_a)
    hb = h_of(img * base_b + lb, base_b)
    hab = h_of((img * base_a + la) * base_b + lb, base_a * base_b)
    return ha + hb - hab


def pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MATLAB ``corr2`` per image: sum(dx dy) / sqrt(sum dx^2 sum dy^2) (0/0 = NaN as there)."""
    dx = x - x.mean(dim=(-2, -1), keepdim=True)
    dy = y - y.mean(dim=(-2, -1), keepdim=True)
    return (dx * dy).sum(dim=(1, 2, 3)) / torch.sqrt((dx * dx).sum(dim=(1, 2, 3)) * (dy * dy).sum(dim=(1, 2, 3)))


def std_pop(x: torch.Tensor) -> torch.Tensor:
    """sqrt(mean((x - mean)^2)) per image (np.std; VIFB's ``Variance``, Tang's SD)."""
    d = x - x.mean(dim=(-2, -1), keepdim=True)
    return torch.sqrt((d * d).mean(dim=(1, 2, 3)))


def gradient(x: torch.Tensor):
    """MATLAB ``gradient`` / ``np.gradient``: central differences inside, one-sided at the edges.
    Returns (d/dcol, d/drow)."""
    gx = torch.cat(
        [x[..., :, 1:2] - x[..., :, 0:1], (x[..., :, 2:] - x[..., :, :-2]) / 2, x[..., :, -1:] - x[..., :, -2:-1]],
        dim=-1,
    )
    gy = torch.cat(
        [x[..., 1:2, :] - x[..., 0:1, :], (x[..., 2:, :] - x[..., :-2, :]) / 2, x[..., -1:, :] - x[..., -2:-1, :]],
        dim=-2,
    )
    return gx, gy


def sum_sq_diffs(x: torch.Tensor):
    """(sum of squared row-neighbour differences, the same for column neighbours) per image."""
    rf = (x[..., :, 1:] - x[..., :, :-1]) ** 2
    cf = (x[..., 1:, :] - x[..., :-1, :]) ** 2
    return rf.sum(dim=(1, 2, 3)), cf.sum(dim=(1, 2, 3)), rf[0].numel(), cf[0].numel()


SOBEL_H1 = [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]  # fspecial('sobel'); Qabf's h1
SOBEL_H3 = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]  # Qabf's h3


def kernel(rows, like: torch.Tensor) -> torch.Tensor:
    """A filter kernel in ``like``'s dtype, on the host: :func:`filt` reads a 3x3 kernel's taps there
    (no device sync) and moves a kernel to the device only to convolve with it."""
    return torch.tensor(rows, dtype=like.dtype)


def qabf(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, cache=None) -> torch.Tensor:
    """Xydeas & Petrovic's Q^AB/F as VIFB, MEFB, Tang and CDDFuse compute it (one formula): Sobel
    ``conv2(.., 'same')``, orientation atan(gy / gx) with pi/2 where gx = 0, the relative strength
    min/max except gF where gA == gF (their quirk), constants Tg 0.9994, kg -15, Dg 0.5, Ta 0.9879,
    ka -22, Da 0.8, L 1, ratio of sums. ``cache(key, make)``: where A's and B's gradients are kept
    (e.g. a :class:`LineageImages`' :meth:`~LineageImages.source_memo`, to compute them once for
    every F scored against them). On a CPU, where the hand-written kernels build, all of it runs in one
    pass a pixel (:func:`metrics._native.qabf`, ``metrics/qabf_kernel.cpp``), the same arithmetic."""
    if _native.cpu_ready(a, b, f) and a.dtype == b.dtype == f.dtype:
        return _native.qabf(a, b, f)

    def grad(x):
        gx = filt(x, kernel(SOBEL_H3, x), "same", conv=True)
        gy = filt(x, kernel(SOBEL_H1, x), "same", conv=True)
        g = torch.sqrt(gx * gx + gy * gy)
        ang = torch.where(gx == 0, torch.full_like(gx, math.pi / 2), torch.atan(gy / gx))
        return g, ang

    (g_a, t_a), (g_b, t_b), total = (cache or no_cache)("gradients", lambda: _with_total(grad(a), grad(b)))
    g_f, t_f = grad(f)

    def q(g_s, t_s):
        rel = torch.where(g_s > g_f, g_f / g_s, torch.where(g_s == g_f, g_f, g_s / g_f))
        ang = 1 - torch.abs(t_s - t_f) / (math.pi / 2)
        return 0.9994 / (1 + torch.exp(-15 * (rel - 0.5))) * (0.9879 / (1 + torch.exp(-22 * (ang - 0.8))))

    num = (q(g_a, t_a) * g_a + q(g_b, t_b) * g_b).sum(dim=(1, 2, 3))
    return num / total


def _with_total(grad_a, grad_b):
    return grad_a, grad_b, (grad_a[0] + grad_b[0]).sum(dim=(1, 2, 3))


def qabf_once(li) -> torch.Tensor:
    """:func:`qabf` of a batch's (A, B, F) (a :class:`LineageImages`), computed once for every lineage
    that scores it in one call (VIFB, MEFB, CDDFuse, and Tang on an 8-bit F): the same function of
    the same images. A and B enter it symmetrically and its sums commute exactly, so Tang's (B, A)
    order gives the same value bit for bit."""
    return li.cached("qabf", lambda: qabf(li.a, li.b, li.f, cache=li.source_memo("qabf(a, b)")))


def vifp_mscale(ref: torch.Tensor, dist: torch.Tensor, nan_to_one: bool = True) -> torch.Tensor:
    """Sheikh & Bovik's multiscale pixel-domain VIF (``vifp_mscale.m``; CDDFuse's ``compare_viff``):
    four scales with N = 17, 9, 5, 3 Gaussian windows (sigma N / 5), 'valid' filtering, factor-2
    decimation after filtering from the second scale, sigma_nsq = 2, eps = 1e-10; NaN -> 1 (CDDFuse)."""
    return vifp_mscale_pair(ref, ref, dist, nan_to_one)[0]


# The smallest image side on which every scale of vifp_mscale holds a whole window: 17 px at the
# first scale, then three 'valid' filterings (9, 5, 3 taps) each decimated by 2 must leave at least
# 9, 5 and 3 px. Below it a scale's map is empty (MATLAB sums it as 0, CDDFuse's scipy convolve2d
# swaps image and window, smaller still torch cannot filter at all), so the metric is refused there.
VIF_MIN_SIZE = 41


def vifp_scales(refs: list, dist: torch.Tensor, sigma_nsq: float, cache=None):
    """Per scale of Sheikh & Bovik's ``vifp_mscale.m``, for each reference in ``refs`` against
    ``dist``: the maps (information with distortion, without distortion, gain g). Four scales with
    N = 17, 9, 5, 3 Gaussian windows (sigma N / 5), 'valid' filtering, factor-2 decimation after
    filtering from the second scale, eps = 1e-10; ``dist``'s moments and decimation are computed
    once for every reference. ``cache(key, make)``: where what the references alone give is kept
    (their decimations, moments and information without distortion; e.g. a
    :class:`LineageImages`' :meth:`~LineageImages.source_memo`, to compute it once for every
    ``dist`` scored against them). Yields [(num, den, g) per reference] per scale."""
    eps = 1e-10
    cache = cache or no_cache
    refs = list(refs)
    r = len(refs)
    pairs = [(k, r) for k in range(r)] + [(r, r)]
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = gaussian_1d(n, n / 5.0, dist)
        if scale > 1:
            down = lambda x=refs, w=win: list(separable(torch.cat(x, dim=1), w, stride=2).split(1, dim=1))  # noqa: E731
            refs = cache(("down", scale), down)
            dist = separable(dist, win, stride=2)
        own = cache(("own", scale, sigma_nsq), lambda x=refs: _vif_references(x, win, sigma_nsq, eps))
        mu, e = local_moments([*refs, dist], pairs, win, means=[r])
        mu_f = mu[r]
        if moments_in_kernel(mu_f, *[x[1] for x in own]):
            # The same steps a pixel in one pass (moment_kernel.cpp): Tang's VIF 5.5 -> 3.4 ms a triple.
            out = []
            for k, (mu_k, s1, _, den) in enumerate(own):
                num, g = _native.vif_against(mu_k, s1, mu_f, e[(r, r)], e[(k, r)], sigma_nsq, eps)
                out.append((num, den, g))
            yield out
            continue
        s2 = (e[(r, r)] - mu_f * mu_f).clamp_(min=0)
        low2 = s2 < eps
        out = []
        for k, (mu_k, s1, low1, den) in enumerate(own):
            low1 = s1 < eps if low1 is None else low1  # None: the kernel made s1 (and takes it itself)
            s12 = e[(k, r)] - mu_k * mu_f
            g = s12 / (s1 + eps)
            sv = s2 - g * s12
            # The original's corrections, in its order: where s1 < eps, g = 0, sv = s2, s1 = 0; where
            # s2 < eps, g = 0, sv = 0; where (then) g < 0, sv = s2, g = 0; finally sv >= eps. Folded
            # into selections on the uncorrected g: where s1 or s2 is below eps, g < 0 changes nothing
            # the corrections have not already decided (g is 0; sv is s2, or eps where s2 < eps).
            neg = g < 0
            sv = torch.where(low1 | neg, s2, sv)
            sv = torch.where(low2 | (sv <= eps), eps, sv)
            g = torch.where(low1 | low2 | neg, 0.0, g)
            num = (g * g * torch.where(low1, 0.0, s1)).div_(sv + sigma_nsq).add_(1).log10_()
            out.append((num, den, g))
        yield out


def sqrt(x: torch.Tensor) -> torch.Tensor:
    """``torch.sqrt`` of a map; on a CPU the hardware's correctly rounded square root
    (:func:`metrics._native.sqrt`): PyTorch's vector form took 1.9 ns an element in float64 here (2.4 in
    float32 on zeros, which gradient maps hold), and rounds one float32 result in five a unit apart. Taken
    whatever the size (it was from 4,096 values on: a batch of small images then got other roots than
    each image alone)."""
    if x.numel() and _native.cpu_ready(x):
        return _native.sqrt(x)
    return torch.sqrt(x)


def ssim_mean(mu_x, mu_y, e_xx, e_yy, e_xy, c1: float, c2: float) -> torch.Tensor:
    """The mean of each image's SSIM map (Wang et al. 2004, eq. 13) from the local means, mean squares
    and mean product of x and y, (B, 1, h, w) each: ((2 mu_x mu_y + c1)(2 cov + c2)) / ((mu_x^2 +
    mu_y^2 + c1)(var_x + var_y + c2)); symmetric in x and y bit for bit. On a CPU in one pass
    (:func:`metrics._native.ssim_mean`, ``moment_kernel.cpp``; its mean summed in double)."""
    if moments_in_kernel(mu_x, mu_y, e_xx, e_yy, e_xy):
        return _native.ssim_mean(mu_x, mu_y, e_xx, e_yy, e_xy, c1, c2)
    var_x, var_y, cov = e_xx - mu_x * mu_x, e_yy - mu_y * mu_y, e_xy - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    return s.mean(dim=(1, 2, 3))


def moments_in_kernel(*maps: torch.Tensor) -> bool:
    """Whether per-pixel steps after local moments (VIF's, SSIM's, MEFB's Q_P, Q_Y and Q_C) run in the
    hand-written kernel (``moment_kernel.cpp``): maps of one dtype that :func:`metrics._native.cpu_ready`
    accepts."""
    return _native.cpu_ready(*maps) and len({m.dtype for m in maps}) == 1


def _vif_references(refs: list, win: torch.Tensor, sigma_nsq: float, eps: float) -> list:
    """What :func:`vifp_scales` takes of each reference alone at one scale: (local mean, variance s1
    clamped at 0, s1 < eps, the information without distortion log10(1 + s1 / sigma_nsq) with s1
    taken as 0 where it is below eps)."""
    mu, e = local_moments(refs, [(k, k) for k in range(len(refs))], win)
    if moments_in_kernel(*mu):  # in one pass (moment_kernel.cpp), which takes s1 < eps itself
        own = [_native.vif_reference(mu[k], e[(k, k)], sigma_nsq, eps) for k in range(len(refs))]
        return [(mu[k], s1, None, den) for k, (s1, den) in enumerate(own)]
    out = []
    for k in range(len(refs)):
        s1 = (e[(k, k)] - mu[k] * mu[k]).clamp_(min=0)
        low1 = s1 < eps
        den = (torch.where(low1, 0.0, s1) / sigma_nsq).add_(1).log10_()
        out.append((mu[k], s1, low1, den))
    return out


def vifp_mscale_pair(ref_a: torch.Tensor, ref_b: torch.Tensor, dist: torch.Tensor, nan_to_one: bool = True, cache=None):
    """(:func:`vifp_mscale` (ref_a, dist), (ref_b, dist)): sigma_nsq = 2, the ratio of the sums of
    :func:`vifp_scales`' maps over pixels and scales; NaN -> 1 (CDDFuse). ``cache``: as
    :func:`vifp_scales`'."""
    zero = torch.zeros(dist.shape[0], dtype=dist.dtype, device=dist.device)
    num, den = [zero, zero], [zero, zero]
    for per_ref in vifp_scales([ref_a, ref_b], dist, 2.0, cache):
        for k, (n_map, d_map, _) in enumerate(per_ref):
            num[k] = num[k] + n_map.sum(dim=(1, 2, 3))
            den[k] = den[k] + d_map.sum(dim=(1, 2, 3))
    out = []
    for k in range(2):
        v = num[k] / den[k]
        out.append(torch.where(torch.isnan(v), torch.ones_like(v), v) if nan_to_one else v)
    return out[0], out[1]


def vifp_pair_once(li):
    """:func:`vifp_mscale_pair` (A, B, F) of a batch (a :class:`LineageImages`), computed once for
    Tang's VIF and CDDFuse's VIFF in one call (on an 8-bit F, the same images): each source's maps
    are filtered channel by channel, so Tang's (B, A) order gives the same pair bit for bit
    (checked on every shared case, float32 and float64)."""
    return li.cached("vifp_pair", lambda: vifp_mscale_pair(li.a, li.b, li.f, cache=li.source_memo("vif(a, b)")))


def freqspace(n: int, like: torch.Tensor) -> torch.Tensor:
    """MATLAB ``freqspace(n)`` frequencies: ((0:n-1) - floor(n/2)) * 2 / n."""
    return (torch.arange(n, dtype=like.dtype, device=like.device) - n // 2) * (2.0 / n)


def csf_half(response: torch.Tensor) -> torch.Tensor:
    """The half of a centred response :func:`csf_filter` multiplies the real FFT by: its uncentred
    (``ifftshift``) columns 0 .. W / 2."""
    return torch.fft.ifftshift(response, dim=(-2, -1))[..., : response.shape[-1] // 2 + 1]


def csf_filter(
    x: torch.Tensor, response: torch.Tensor, half: torch.Tensor | None = None, uncentred: torch.Tensor | None = None
) -> torch.Tensor:
    """The real image ``ifft2(ifftshift(fftshift(fft2(x)) .* S))`` for a centred response S that is
    even (S at frequency k equals S at -k, as every radial contrast-sensitivity function on
    ``freqspace``'s grid: its values at u and -u are computed from the same square). For such an S that
    product's exact inverse transform is real: the imaginary part of the originals' complex result is
    their FFT's rounding noise alone (5e-16 of the image's scale on uniform noise images, 240x240 and
    63x81; this result is within 1.2e-15 of their real part), so only the real image is computed.

    On a CPU, for the sides the hand-written FFT takes (:func:`metrics._native.fft_takes`, as 240), in it
    (:func:`metrics._native.csf_filter`: an image's channels two at a time as one complex image, whose
    real and imaginary parts the even response keeps apart; 2-3x faster than PyTorch's real FFTs with
    their copies here). Elsewhere through PyTorch's real FFT, half the FFT work and half the maps after it;
    one image's inverse transform then taken as two: MKL's code for Intel processors rounds a single
    2-D inverse real FFT otherwise than each transform of a batch (any batch of two or more alike), so
    an image scored alone got another Q_CB than in a batch (1.4e-5 apart on the flat case c07, 1.1e-8
    on c10; measured on a Xeon; AMD's generic code rounds both alike). ``half`` and ``uncentred``:
    :func:`csf_half` and ``ifftshift`` of ``response`` in x's type, where the caller keeps them."""
    h, w = x.shape[-2:]
    if x.dim() == 4 and _native.cpu_ready(x, response) and _native.fft_takes(h, w, x.dtype, of="csf"):
        if uncentred is None:
            uncentred = torch.fft.ifftshift(response.to(x.dtype), dim=(-2, -1))
        return _native.csf_filter(x, uncentred)
    spec = torch.fft.rfft2(x) * (csf_half(response) if half is None else half)
    if spec.shape[:-2].numel() == 1 and spec.dim() > 2:
        return torch.fft.irfft2(torch.cat([spec, spec]), s=(h, w))[:1]
    return torch.fft.irfft2(spec, s=(h, w))


def filter2_same_fft(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``filter2(k, x, 'same')`` (zero padding, odd square ``k``) through the FFT: large windows in
    O(HW log HW) instead of O(HW k^2); real or complex ``x``. Equal to direct filtering to ~1e-13."""
    h, w = x.shape[-2:]
    kh, kw = k.shape
    ph, pw = h + kh - 1, w + kw - 1
    kk = torch.flip(k, dims=(0, 1)).to(x.real.dtype)  # filter2 correlates: convolve with the flip
    spec = torch.fft.fft2(x, s=(ph, pw)) * torch.fft.fft2(kk, s=(ph, pw))
    full = torch.fft.ifft2(spec)
    if not x.is_complex():
        full = full.real
    return full[..., kh // 2 : kh // 2 + h, kw // 2 : kw // 2 + w]


def filter2_same_separable(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``filter2(outer(g, g), x, 'same')`` (zero padding, symmetric odd ``g``) of a real or complex
    image, in the spatial domain as two 1-D passes: the ratio of two such filterings in Q_CB is
    ill-conditioned where the image is flat, so an FFT's rounding (1e-13 of the peak) would show."""
    if x.is_complex():
        return torch.complex(separable(x.real, g, "same"), separable(x.imag, g, "same"))
    return separable(x, g, "same")


def block_sums(x: torch.Tensor, size: int) -> torch.Tensor:
    """Sums over ``size`` x ``size`` blocks, partial blocks zero padded (``blkproc`` with [0 0] border)."""
    h, w = x.shape[-2:]
    ph, pw = -h % size, -w % size
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    b = x.shape[0]
    return x.reshape(b, x.shape[-2] // size, size, x.shape[-1] // size, size).sum(dim=(2, 4))  # (B, rows, cols)


def edge_sobel(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``edge(I)`` (its defaults: Sobel, automatic threshold, both directions, thinning) of
    each (B, 1, H, W) image in its own units, as a 0/1 image in ``x``'s dtype; computed in float64
    (MATLAB keeps a double input double). Gradients: correlation with fspecial('sobel') / 8 and its
    transpose, replicate padding; b = gx^2 + gy^2, cut at 4 mean(b); thinning keeps a pixel where
    |gx| >= |gy| - 100 eps and b(r, c-1) <= b(r, c) > b(r, c+1), or |gy| >= |gx| - 100 eps and
    b(r-1, c) <= b(r, c) > b(r+1, c) (a missing neighbour at the border counts as passed)."""
    d = x.double()
    if _native.cpu_ready(d):  # the same steps in two passes around the mean (qabf_kernel.cpp): 0.79 -> 0.14 ms
        gx, gy, b = _native.edge_gradients(d)
        return _native.edge_thin(gx, gy, b, 4 * b.mean(dim=(1, 2, 3))).to(x.dtype)
    sobel = kernel(SOBEL_H1, d) / 8
    by = filt(d, sobel, "replicate")
    bx = filt(d, sobel.t().contiguous(), "replicate")
    b = bx * bx + by * by
    cutoff = 4 * b.mean(dim=(1, 2, 3), keepdim=True)
    ax, ay = torch.abs(bx), torch.abs(by)
    tol = 100 * torch.finfo(torch.float64).eps
    yes_c = torch.ones_like(b[..., :, :1], dtype=torch.bool)
    yes_r = torch.ones_like(b[..., :1, :], dtype=torch.bool)
    left = torch.cat([yes_c, b[..., :, :-1] <= b[..., :, 1:]], dim=-1)
    right = torch.cat([b[..., :, :-1] > b[..., :, 1:], yes_c], dim=-1)
    up = torch.cat([yes_r, b[..., :-1, :] <= b[..., 1:, :]], dim=-2)
    down = torch.cat([b[..., :-1, :] > b[..., 1:, :], yes_r], dim=-2)
    e = (b > cutoff) & (((ax >= ay - tol) & left & right) | ((ay >= ax - tol) & up & down))
    return e.to(x.dtype)
