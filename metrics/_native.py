"""fusionbench's hand-written CPU kernels, built on first use: Fast-FMI's 3x3 windows
(``metrics/fmi_kernel.cpp``), phase congruency's per-orientation sums and, for most sides, the inverse
FFTs before them (``metrics/phase_kernel.cpp``, MEFB's Qp), separable filtering
(``metrics/filter_kernel.cpp``, the lineages' local moments), MEF-SSIM's per-pixel steps
(``metrics/mef_kernel.cpp``), Q^AB/F with Tang's N^AB/F, Liu's Q_XY and MATLAB's Sobel edge map
(``metrics/qabf_kernel.cpp``), histograms and the entropy of joint histograms (``metrics/hist_kernel.cpp``,
the lineages' and Liu's Q_NCIE) and VIF's and SSIM's per-pixel steps after their moments, Liu's Q_SSIM and
Q_P maps and CDDFuse's (skimage's) SSIM whole (``metrics/moment_kernel.cpp``), a library a unit; and one
that no metric calls, the unfiltering of PNGs' scanlines for ``bench eval``'s reader
(``metrics/png_kernel.cpp``, :mod:`benchmark.data.png`).

Why: the FMI windows are the costliest step of Liu's Q_FMI and of Tang's three Fast-FMI metrics
(~400 million windows for Tang's set on 1,153 triples). PyTorch's kernel, compiled by inductor,
runs ~40 loops over each block of windows' 9x9 joint pdfs; the hand-written one keeps each SIMD
group of windows in registers and takes glibc's vector logarithms (docs/speed.md, "A hand-written
FMI kernel"). Phase congruency's sums were the last kernel inductor compiled, in every process of
a fresh machine. Banded matrix products filtered the lineages' Gaussian windows at ~3 GFLOP/s (a
quarter of Tang's and MEFB's scoring time); a tap loop runs 2.5-3.5x faster. MEF-SSIM's and
Q^AB/F's ~60 and ~40 elementwise steps a pixel (``mef_kernel.cpp``, ``qabf_kernel.cpp``) run in one
vector pass each instead of as many eager passes. Each unit's library is built once per machine and
source, when one of its kernels is first called (:class:`Kernels`; 0.1-0.6 s a unit, all twenty-one 4.6-4.8
s on two cores of an AMD EPYC; :mod:`metrics._native_build`, which ``bench eval`` and ``bench run`` start
before they import torch for the units of what they score) with the C++ compiler inductor uses, into fusionbench's cache
folder, and loaded with ctypes, whose calls release the GIL, so the FMI windows are split over threads
(the other kernels' short calls stay on the calling thread: see below).

``FUSIONBENCH_NATIVE``: ``auto`` (default: use them where they build) or ``0`` (never: the PyTorch
kernels, eager or compiled as :mod:`metrics._compile` decides). Where they cannot be built (no
compiler, no AVX2, no libmvec, not Linux x86-64) the PyTorch kernels run, with one warning.
"""

from __future__ import annotations

import ctypes
import functools
import math
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import torch

from metrics import _native_build
from metrics._native_build import setting  # noqa: F401  (FUSIONBENCH_NATIVE, read here and by the build script)

VERSION = 3  # fusionbench_fmi_version() of the sources; a library that reports another is refused
MIN_PER_THREAD = 4096  # windows below which a call stays on one thread (a thread costs ~50 us)

_LOCK = threading.Lock()
_LIB: list = []  # [Kernels] once the probe unit built, [None] once it could not
_PROBLEM: list[str] = []


_P, _I, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double


def _signatures() -> dict[str, tuple[str, list, object]]:
    """Every entry point: ``{name: (unit, argument types, result type)}``, its unit as
    :data:`metrics._native_build.UNITS` names it."""
    table: dict[str, tuple[str, list, object]] = {}

    def add(unit: str, names, args: list, result=None) -> None:
        for name in [names] if isinstance(names, str) else names:
            table[name] = (unit, args, result)

    def both(name: str) -> tuple[str, str]:
        return name + "_f32", name + "_f64"

    def typed(unit: str, names, args: list, result=None) -> None:  # a unit built once per type
        for name in [names] if isinstance(names, str) else names:
            add(unit + name[-4:], name, args, result)

    add("fmi_f32", "fusionbench_fmi_version", [], ctypes.c_int)
    for form in ("f32", "f64", "f64_scored_f32"):
        add("fmi_" + form, "fmi_" + form, [_P] * 4 + [_I, _P, _P])
        add("fmi_" + form, "fmi_maps_" + form, [_P] * 3 + [_I] * 4 + [_P] * 2, _I)
    typed("phase", both("phase_orientation"), [_P, _I, _I, _I, _D, _P])
    typed("phase", both("phase_totals"), [_P, _P] + [_I] * 6 + [_P] + [_D] * 3 + [_I, _I, _P])
    typed("phase", both("phase_median"), [_P, _I, _I, _I, _P])
    typed("phase", both("phase_spectrum_blocks"), [_P] + [_I] * 3 + [_P, _P])
    typed("phase", both("phase_orientation_fft"), [_P] * 3 + [_I] * 3 + [_D, _P], _I)
    typed("phase", both("phase_fft_lanes"), [], _I)
    typed("phase", both("phase_spectrum"), [_P] + [_I] * 3 + [_P, _P], _I)
    typed("csf", both("csf_filter"), [_P] * 3 + [_I] * 4 + [_P, _P], _I)
    typed("csf", both("csf_fft_lanes"), [], _I)
    typed("filter", both("separable"), [_P, _I, _I, _P, _I, _P, _P] + [_I] * 5 + [_P])
    typed("filter", both("separable_products"), [_P] * 4 + [_I] * 3 + [_P, _I, _P, _P] + [_I] * 5 + [_P], _I)
    typed("dwt", both("dwt2"), [_P, _I, _I, _P, _P, _I, _P, _P, _I, _I, _P])
    typed("filter", both("rank_one_3"), [_P, _I, _I, _P, _P, _I, _I, _I, _P])
    typed("filter", both("filter_permutes") + both("filter_skip_zeros"), [_I], _I)
    typed("filter", both("halve"), [_P, _I, _I, _I, _I, _P])
    add("qabf_f64", "edge_gradients_f64", [_P] + [_I] * 4 + [_P] * 3)
    add("qabf_f64", "edge_thin_f64", [_P] * 4 + [_I] * 4 + [_P])
    typed("qabf", both("qabf") + both("nabf"), [_P] * 3 + [_I] * 4 + [_P])
    typed("qabf", both("xydeas"), [_P, _P] + [_I] * 3 + [_P] * 3)
    typed("hist", both("table_entropy"), [_P] + [_I] * 3 + [_P])
    typed("hist", both("hist"), [_P] + [_I] * 4 + [_P], _I)
    typed("hist", both("joint_hist"), [_P, _P] + [_I] * 4 + [_P], _I)
    typed("hist", both("table_tsallis"), [_P] + [_I] * 3 + [_D, _P])
    typed("hist", both("normalize1"), [_P] + [_I] * 4 + [_P])
    typed("hist", both("integer_valued"), [_P] + [_I] * 3 + [_P])
    typed("hist", both("quantize_255"), [_P, _I, _P])
    add("png", "png_unfilter", [_P, _I, _I, _I, _P], _I)
    add("mef", "mef_desired_f64", [_P, _P] + [_I] * 3 + [_P])
    add("mef", "mef_score_f64", [_P, _P] + [_I] * 3 + [_D, _P])
    add("moment", both("vif_reference"), [_P, _I] * 2 + [_I] * 3 + [_D] * 2 + [_P] * 2)
    add("moment", both("ssim_mean"), [_P] * 2 + [_I] * 3 + [_D] * 2 + [_P])
    add("moment", both("qp_sum"), [_P] * 3 + [_I] * 3 + [_P])
    add("moment", both("qp_masks"), [_P, _P] + [_I] * 4 + [_P, _P])
    add("moment", both("cb_contrast"), [_P, _I] * 2 + [_I] * 3 + [_P])
    add("moment", both("cb_score"), [_P] * 2 + [_I] * 3 + [_P])
    add("moment", both("sqrt"), [_P] + [_I] * 2 + [_P])
    add("moment", both("yang"), [_P] * 2 + [_I] * 3 + [_D, _P])
    add("moment", both("piella"), [_P] * 2 + [_I] * 3 + [_D, _D, _P])
    add("skimage_ssim", "skimage_ssim_f32", [_P] * 3 + [_I] * 4 + [_D] * 3 + [_P] * 2)
    typed("liu", both("liu_ssim"), [_P] * 2 + [_I] * 3 + [_D] * 2 + [_P])
    typed("liu", both("liu_piella"), [_P] * 2 + [_I] * 3 + [_P])
    add("moment", both("vif_against"), [_P] * 2 + [_I] * 3 + [_D] * 2 + [_P] * 2)
    add("moment", both("vif_pick"), [_P] * 2 + [_I] * 3 + [_D] + [_P] * 2)
    return table


SIGNATURES = _signatures()


class Kernels:
    """The kernels' entry points as attributes (``library().fmi_maps_f32``): on first use of an entry
    point its unit's library is built (or waited for, where ``bench eval``'s build script or another
    process builds it) and loaded, and the entry point keeps its argument types; later uses find it
    here. A unit that cannot be built raises OSError there (the probe unit built: a compiler error in
    that unit alone)."""

    def __init__(self, probe: ctypes.CDLL):
        self._units = {_native_build.PROBE: probe}
        self._lock = threading.Lock()

    def units(self) -> list[str]:
        """The units loaded so far, in the order they were first called (the probe first)."""
        return list(self._units)

    def __getattr__(self, name: str):
        if name not in SIGNATURES:
            raise AttributeError(f"no kernel entry point {name!r}")
        unit, args, result = SIGNATURES[name]
        with self._lock:
            if unit not in self._units:
                dll = ctypes.CDLL(str(_native_build.build([unit])[unit]))
                if unit == "fmi_f32" and dll.fusionbench_fmi_version() != VERSION:
                    raise OSError(f"{unit} reports kernel version {dll.fusionbench_fmi_version()}, expected {VERSION}")
                self._units[unit] = dll
            fn = getattr(self._units[unit], name)
        fn.argtypes, fn.restype = args, result
        setattr(self, name, fn)  # found as an attribute from now on
        return fn


def _build() -> Kernels:
    """The kernels, with the probe unit (:data:`metrics._native_build.PROBE`) built and loaded: where it
    builds, this machine builds the kernels (the other units follow on first use)."""
    probe = _native_build.PROBE
    return Kernels(ctypes.CDLL(str(_native_build.build([probe])[probe])))


def library() -> Kernels | None:
    """The kernels, or None where they are switched off or cannot be built (warned once)."""
    if setting() == "0":
        return None
    with _LOCK:
        if not _LIB:
            try:
                _LIB.append(_build())
            except OSError as e:
                _LIB.append(None)
                _PROBLEM.append(str(e))
                warnings.warn(
                    f"fusionbench: the hand-written kernels (FMI windows, phase congruency) are not available ({e}); "
                    "the PyTorch kernels score instead (slower, same values to float rounding)",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return _LIB[0]


def available() -> bool:
    """Whether the hand-written kernel is switched on and built (building it on first use)."""
    return library() is not None


def cpu_ready(*tensors: torch.Tensor) -> bool:
    """Whether the hand-written kernels can take these tensors: float32 or float64 on a CPU, not
    recorded by autograd (the PyTorch kernels give them a gradient), and the library built."""
    return (
        all(x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) for x in tensors)
        and not (torch.is_grad_enabled() and any(x.requires_grad for x in tensors))
        and library() is not None
    )


def usable(offsets: list[int], *images: torch.Tensor) -> bool:
    """Whether the hand-written FMI kernel can score these windows: 3x3 windows (``offsets``) of
    ``images`` that :func:`cpu_ready` accepts."""
    return len(offsets) == 9 and cpu_ready(*images)


def _kernel(dll: Kernels, prefix: str, dtype: torch.dtype, score_f32: bool):
    """The entry point ``prefix`` + ``_f32`` / ``_f64`` / ``_f64_scored_f32`` for ``dtype``."""
    if dtype == torch.float32:
        return getattr(dll, prefix + "_f32")
    return getattr(dll, prefix + ("_f64_scored_f32" if score_f32 else "_f64"))


def _over_threads(run, n: int, work: int) -> list:
    """``run(start, stop)`` over ``range(n)`` split into at most torch's thread count of parts, each of
    at least :data:`MIN_PER_THREAD` of ``work`` (ctypes releases the GIL); the parts' results."""
    parts = max(1, min(torch.get_num_threads(), work // MIN_PER_THREAD, n))
    step = max(1, -(-n // parts))
    starts = range(0, n, step)
    if len(starts) <= 1:
        return [run(0, n)]
    with ThreadPoolExecutor(len(starts)) as pool:
        return list(pool.map(lambda s: run(s, min(s + step, n)), starts))


def fmi_maps(
    a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, score_f32: bool
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Both passes' 3x3-window FMI maps of the (n, 1, H, W) images ``a`` (x1), ``b`` (x2) and ``f``, as
    :func:`metrics.fmi.fmi_from_images` defines them (the windows the toolbox skips score 1), each
    (n, H - 2, W - 2) in ``a``'s dtype, and how many windows were scored. The skip rules and the
    gathering run in the kernel too (``fmi_maps`` in ``fmi_kernel.cpp``), over torch's threads by rows."""
    dll = library()
    n, _, height, width = a.shape
    a, b, f = (x.to(a.dtype).contiguous() for x in (a, b, f))
    h, w = height - 2, width - 2
    out1, out2 = (torch.empty(n, h, w, dtype=a.dtype) for _ in range(2))
    fn = _kernel(dll, "fmi_maps", a.dtype, score_f32)
    ptrs = [x.data_ptr() for x in (a, b, f)]
    scored = _over_threads(
        lambda r0, r1: fn(*ptrs, height, width, r0, r1, out1.data_ptr(), out2.data_ptr()), n * h, 2 * n * h * w
    )
    return out1, out2, sum(scored)


def fmi_windows(
    src: torch.Tensor, f: torch.Tensor, ps: torch.Tensor, pf: torch.Tensor, offsets: list[int], score_f32: bool
) -> torch.Tensor:
    """Normalised FMI of the windows at top-left flat pixels ``ps`` of the flat image(s) ``src`` and
    ``pf`` of ``f`` (:func:`metrics.fmi._fmi_at`; with ``score_f32`` and float64 images
    :func:`metrics.fmi._fmi_at_f32`), (N,) in the images' dtype, split over torch's threads. Scoring
    uses :func:`fmi_maps`; this entry to the same window kernel takes windows in any order (its gather
    path), which the tests hold to the PyTorch kernel window by window."""
    dll = library()
    src, f = src.contiguous(), f.to(src.dtype).contiguous()
    ps, pf = ps.to(torch.int64).contiguous(), pf.to(torch.int64).contiguous()
    off = torch.tensor(offsets, dtype=torch.int64)
    out = torch.empty(ps.numel(), dtype=src.dtype)
    fn = _kernel(dll, "fmi", src.dtype, score_f32)
    size = src.element_size()

    def run(start: int, stop: int) -> None:
        fn(
            src.data_ptr(),
            f.data_ptr(),
            ps.data_ptr() + 8 * start,
            pf.data_ptr() + 8 * start,
            stop - start,
            off.data_ptr(),
            out.data_ptr() + size * start,
        )

    _over_threads(run, ps.numel(), ps.numel())
    return out


# Phase congruency's kernels and the filters run on the calling thread. Their calls are short (0.3-2 ms for 4 images)
# and come between torch's own parallel operations, whose OpenMP workers keep spinning for a while
# after each: split over a pool of threads as the FMI windows are, MEFB's Qp took 60.8 ms a triple on
# two torch threads, against 34.9 ms on the calling thread (37.1 with the compiled PyTorch kernel;
# bench eval's workers run one thread each, where the split never applies).


def orientation(parts: torch.Tensor, eps: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`metrics.lineage.phase._orientation` of ``parts`` (4, N, 2), float32 or float64, on a CPU:
    the hand-written kernel (``phase_kernel.cpp``); (4, N): the
    sum of amplitudes, their maximum, the raw energy and the squared smallest-scale amplitude. ``eps``:
    phase.py's EPSILON. ``out``: where to write them (a contiguous (4, N) of their dtype)."""
    dll = library()
    parts = parts.contiguous()
    n = parts.shape[1]
    out = torch.empty(4, n, dtype=parts.dtype) if out is None else out
    fn = dll.phase_orientation_f32 if parts.dtype == torch.float32 else dll.phase_orientation_f64
    fn(parts.data_ptr(), n, 0, n, eps, out.data_ptr())  # on this thread (see above)
    return out


def phase_totals(
    sums: torch.Tensor, thresholds: torch.Tensor, angles: list[float], constants: tuple, cols: int = 0
) -> torch.Tensor:
    """Phase congruency and its moments' maximum and minimum, (3, N), from each orientation's
    :func:`orientation` ``sums`` (orientations, 4, N) above its noise threshold (``thresholds``
    (orientations, images), N / images pixels each), the orientations at ``angles``. ``constants``:
    phase.py's (EPSILON, CUT_OFF, GAIN). ``cols``: where not 0, the sums' pixels are in
    :func:`orientation_fft`'s order for images ``cols`` wide, and the result in the images' rows (what
    :func:`fft_unblock` makes of them)."""
    dll = library()
    no, _, n = sums.shape
    thresholds = thresholds.to(sums.dtype).contiguous()
    nb = thresholds.shape[1]
    cs = (ctypes.c_double * (2 * no))(*[f(a) for a in angles for f in (math.cos, math.sin)])
    out = torch.empty(3, n, dtype=sums.dtype)
    fn = dll.phase_totals_f32 if sums.dtype == torch.float32 else dll.phase_totals_f64
    lanes = fft_lanes(sums.dtype) if cols else 0
    fn(sums.data_ptr(), thresholds.data_ptr(), no, nb, n, n // nb, 0, n, cs, *constants, cols, lanes, out.data_ptr())
    return out


_FFT_LANES: dict = {}


def fft_lanes(dtype: torch.dtype, of: str = "phase") -> int:
    """The lanes L of :func:`orientation_fft`'s registers for ``dtype``, the blocks of its layouts, as the
    kernel's build for this CPU has them (``phase_kernel.cpp``: 8 floats; 8 doubles with AVX-512, 4 with AVX2);
    ``of="csf"``: as :func:`csf_filter`'s unit has them (the same build, asked of its own unit, so that a
    metric that filters alone does not load phase congruency's)."""
    if (of, dtype) not in _FFT_LANES:
        suffix = "f32" if dtype == torch.float32 else "f64"
        _FFT_LANES[of, dtype] = int(getattr(library(), f"{of}_fft_lanes_{suffix}")())
    return _FFT_LANES[of, dtype]


def fft_takes(rows: int, cols: int, dtype: torch.dtype, of: str = "phase") -> bool:
    """Whether :func:`orientation_fft` (``of="csf"``: :func:`csf_filter`) takes images of these sides:
    multiples of :func:`fft_lanes` with no prime factor but 2, 3 and 5."""

    def smooth(n: int) -> bool:
        for p in (2, 3, 5):
            while n % p == 0:
                n //= p
        return n == 1

    lanes = fft_lanes(dtype, of)
    return rows % lanes == 0 and cols % lanes == 0 and smooth(rows) and smooth(cols)


def fft_blocks(x: torch.Tensor) -> torch.Tensor:
    """``x`` (..., H, W) in :func:`orientation_fft`'s input layout: (..., W / L, H, L), value (y, x) at
    [x / L][y][x % L]."""
    lanes = fft_lanes(x.dtype)
    *lead, h, w = x.shape
    return x.reshape(*lead, h, w // lanes, lanes).transpose(-3, -2).contiguous()


def spectrum_blocks(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The real and imaginary planes of complex images ``z`` (B, H, W) on a CPU, each in :func:`fft_blocks`'
    layout, in one pass of the hand-written kernel (``phase_kernel.cpp``): the same values as
    ``fft_blocks(z.real)``, ``fft_blocks(z.imag)``."""
    parts = torch.view_as_real(z.contiguous())
    b, h, w, _ = parts.shape
    lanes = fft_lanes(parts.dtype)
    re, im = (torch.empty(b, w // lanes, h, lanes, dtype=parts.dtype) for _ in range(2))
    fn = library().phase_spectrum_blocks_f32 if parts.dtype == torch.float32 else library().phase_spectrum_blocks_f64
    fn(parts.data_ptr(), b, h, w, re.data_ptr(), im.data_ptr())
    return re, im


def image_spectrum_blocks(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The real and imaginary planes of ``fft2`` of real images ``x`` (B, H, W) on a CPU, each in
    :func:`fft_blocks`' layout, by the hand-written FFT (``phase_kernel.cpp``'s spectrum), for sides that
    :func:`fft_takes`: PyTorch's ``spectrum_blocks(torch.fft.fft2(x))`` to float rounding."""
    x = x.contiguous()
    b, h, w = x.shape
    lanes = fft_lanes(x.dtype)
    re, im = (torch.empty(b, w // lanes, h, lanes, dtype=x.dtype) for _ in range(2))
    fn = library().phase_spectrum_f32 if x.dtype == torch.float32 else library().phase_spectrum_f64
    if not fn(x.data_ptr(), b, h, w, re.data_ptr(), im.data_ptr()):
        raise ValueError(f"phase_spectrum takes no {h}x{w} images")
    return re, im


def fft_unblock(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """:func:`orientation_fft`'s pixel order back to images: (B H W,) in blocks of L rows -> (B, H, W)."""
    lanes = fft_lanes(x.dtype)
    return x.reshape(-1, rows // lanes, cols, lanes).transpose(-2, -1).reshape(-1, rows, cols)


def orientation_fft(
    filters: torch.Tensor, re: torch.Tensor, im: torch.Tensor, rows: int, cols: int, eps: float, out=None
) -> torch.Tensor:
    """:func:`orientation` of one orientation's responses ``ifft2(filters[:, None] * (re + i im)[None])``, the
    inverse FFTs computed too (``phase_kernel.cpp``), for images of ``rows`` x ``cols`` pixels that
    :func:`fft_takes`: ``filters`` (4, ...) real and ``re``, ``im`` (B, ...) the spectra's planes, each in
    :func:`fft_blocks`' layout, float32 or float64 on a CPU. (4, B H W), each image's pixels in blocks of
    L rows (pixel (y, x) at (y / L) W L + x L + y % L: :func:`fft_unblock` undoes it), into ``out`` where
    given (contiguous, of their dtype)."""
    nb = re.shape[0]
    out = torch.empty(4, nb * rows * cols, dtype=re.dtype) if out is None else out
    fn = getattr(library(), "phase_orientation_fft" + ("_f32" if re.dtype == torch.float32 else "_f64"))
    if not fn(filters.data_ptr(), re.data_ptr(), im.data_ptr(), nb, rows, cols, eps, out.data_ptr()):
        raise ValueError(f"phase_orientation_fft takes no {rows}x{cols} images")
    return out


def csf_filter(x: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """``real(ifft2(fft2(image) .* response))`` of every (H, W) image of ``x`` (B, C, H, W), float32 or
    float64 on a CPU, for a real ``response`` (H, W) of the same type, uncentred and even (its value at
    frequency k equals its value at -k), in the hand-written FFT (``phase_kernel.cpp``'s csf, a unit apart
    from phase congruency's; sides that :func:`fft_takes` with ``of="csf"`` only). An image's channels go
    through it two at a time (one complex image), each image's on its own, so an image's result does not
    depend on the batch around it."""
    x = x.contiguous()
    b, c, h, w = x.shape
    if response.shape != (h, w):
        raise ValueError(f"csf_filter: a response of {h}x{w} for {h}x{w} images, not {tuple(response.shape)}")
    g = response.to(dtype=x.dtype, device="cpu").contiguous()  # no copy where it is already so
    out = torch.empty_like(x)
    fn = getattr(library(), "csf_filter" + ("_f32" if x.dtype == torch.float32 else "_f64"))
    size = x.element_size()
    for k in range(0, c, 2):
        pair = k + 1 < c
        at = k * h * w * size
        second = x.data_ptr() + at + h * w * size if pair else None
        second_out = out.data_ptr() + at + h * w * size if pair else None
        if not fn(x.data_ptr() + at, second, g.data_ptr(), b, h, w, c * h * w, out.data_ptr() + at, second_out):
            raise ValueError(f"csf_filter takes no {h}x{w} images")
    return out


def _per_row(name: str, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """One value a row of ``x`` (rows, n), float32 or float64, from the kernel ``name`` + ``_f32`` / ``_f64``
    (its arguments: the rows, n, the first and end row, the output), into ``out`` where given (contiguous,
    of x's dtype)."""
    x = x.contiguous()
    rows, n = x.shape
    out = torch.empty(rows, dtype=x.dtype) if out is None else out
    fn = getattr(library(), name + ("_f32" if x.dtype == torch.float32 else "_f64"))
    fn(x.data_ptr(), n, 0, rows, out.data_ptr())
    return out


def median(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """MATLAB's ``median`` of each row of ``x`` (rows, n), as :func:`metrics.lineage.phase._median`, by
    the hand-written kernel: a radix selection a row (into ``out`` where given), whose counts take rows of
    fewer than 2^32 values."""
    if x.shape[-1] >= 2**32:
        raise ValueError(f"the median kernel counts rows of fewer than 2^32 values, not {x.shape[-1]}")
    return _per_row("phase_median", x, out)


@functools.lru_cache(maxsize=64)
def _taps(taps: tuple, dtype: torch.dtype) -> torch.Tensor:
    """A window's taps as a tensor of ``dtype``, made once (each call made them again: 0.14 ms of MEFB's
    triple, ~70 calls). Nothing writes into it."""
    return torch.tensor(taps, dtype=dtype)


def separable(x: torch.Tensor, taps: tuple, src_r: torch.Tensor, src_c: torch.Tensor, stride: int) -> torch.Tensor:
    """``x`` (..., n_r, n_c), float32 or float64 on a CPU, filtered with the window ``outer(taps, taps)``
    by the hand-written kernel (``filter_kernel.cpp``): ``src_r`` / ``src_c`` give, for each padded
    position of a side, the source pixel it repeats or -1 for a zero (``metrics.filters._sources``),
    every ``stride``-th output kept."""
    dll = library()
    x = x.contiguous()
    k = len(taps)
    n_r, n_c = x.shape[-2:]
    m_r, m_c = src_r.numel() - k + 1, src_c.numel() - k + 1
    rows, cols = -(-m_r // stride), -(-m_c // stride)
    maps = x.numel() // (n_r * n_c) if x.numel() else 0
    out = torch.empty((*x.shape[:-2], rows, cols), dtype=x.dtype)
    if not maps:
        return out
    w = _taps(taps, x.dtype)
    fn = dll.separable_f32 if x.dtype == torch.float32 else dll.separable_f64
    args = (x.data_ptr(), n_r, n_c, w.data_ptr(), k, src_r.data_ptr(), src_c.data_ptr(), m_r, m_c, stride)
    fn(*args, 0, maps, out.data_ptr())  # on this thread, as phase congruency's kernels (see above)
    return out


def filter_permutes(dtype: torch.dtype, on: int | None = None) -> int:
    """Whether the filters' horizontal pass (``filter_kernel.cpp``) takes its two-register permutes (1: on Intel
    processors with AVX-512) or its unaligned loads (0: elsewhere); ``on`` 0 or 1 sets it for this process
    (for the tests that hold both paths equal). Returns the setting before, or -1 where the build has no
    permutes (AVX2)."""
    fn = library().filter_permutes_f32 if dtype == torch.float32 else library().filter_permutes_f64
    return fn(-1 if on is None else on)


def filter_skip_zeros(dtype: torch.dtype, on: int | None = None) -> int:
    """Whether the separable filters (``filter_kernel.cpp``) skip the outputs whose taps fall on zeros only,
    writing +0 there (1, the default: the same values bit for bit) or compute every output (0); ``on`` 0 or 1
    sets it for this process (for the tests that hold both paths equal). Returns the setting before."""
    fn = library().filter_skip_zeros_f32 if dtype == torch.float32 else library().filter_skip_zeros_f64
    return fn(-1 if on is None else on)


def rank_one_3(x: torch.Tensor, u, v, zero_pad: bool = False) -> torch.Tensor:
    """:func:`metrics.filters.filter_rank_one_3` of ``x`` (..., n_r, n_c), float32 or float64 on a CPU, by the
    hand-written kernel (``filter_kernel.cpp``): the same values bit for bit. n_r and n_c at least 3, or, with
    ``zero_pad`` (the 'same' correlation: of ``x`` padded by one zero on every side, without the copy), 1."""
    x = x.contiguous()
    n_r, n_c = x.shape[-2:]
    trim = 0 if zero_pad else 2
    out = torch.empty((*x.shape[:-2], n_r - trim, n_c - trim), dtype=x.dtype)
    maps = x.numel() // (n_r * n_c) if n_r * n_c else 0
    if not maps:
        return out
    u, v = (torch.tensor(w, dtype=torch.float64) for w in (u, v))  # converted to x's type where multiplied
    fn = library().rank_one_3_f32 if x.dtype == torch.float32 else library().rank_one_3_f64
    fn(x.data_ptr(), n_r, n_c, u.data_ptr(), v.data_ptr(), 0, maps, int(zero_pad), out.data_ptr())  # this thread
    return out


def separable_products(
    factors: list, taps: tuple, src_r: torch.Tensor, src_c: torch.Tensor, stride: int = 1, exact: list | None = None
) -> torch.Tensor:
    """:func:`separable` of the maps ``factors`` names without making them: each an image (x, None) or a
    product (x, y) of (B, 1, n_r, n_c) images of one dtype on a CPU; (B, len(factors), rows, cols), the
    values :func:`separable` gives the maps made by PyTorch, bit for bit (``filter_kernel.cpp``,
    ``separable_products``: each product made in a map that stays in cache, no image copied). A 'valid' box
    (every tap 1, stride 1) sums each map whose sums are exact by sliding sums, the same values
    (``box_exact``); ``exact``, where given, gets the number of maps summed so."""
    dll = library()
    x0 = factors[0][0]
    b, _, n_r, n_c = x0.shape
    k = len(taps)
    m_r, m_c = src_r.numel() - k + 1, src_c.numel() - k + 1
    rows, cols = -(-m_r // stride), -(-m_c // stride)
    out = torch.empty((b, len(factors), rows, cols), dtype=x0.dtype)
    if not b:
        return out
    n = n_r * n_c
    held = {}  # each image's contiguous form, kept alive until the call returns

    def image(x):
        if x is None:
            return None, 0
        if id(x) not in held:
            held[id(x)] = _maps(x, n)
        return held[id(x)]

    a_maps, c_maps = [image(x) for x, _ in factors], [image(y) for _, y in factors]
    nm = len(factors)
    a = (ctypes.c_void_p * nm)(*[x.data_ptr() for x, _ in a_maps])
    sa = (ctypes.c_int64 * nm)(*[s for _, s in a_maps])
    c = (ctypes.c_void_p * nm)(*[(y.data_ptr() if y is not None else None) for y, _ in c_maps])
    sc = (ctypes.c_int64 * nm)(*[s for _, s in c_maps])
    w = _taps(taps, x0.dtype)
    fn = dll.separable_products_f32 if x0.dtype == torch.float32 else dll.separable_products_f64
    summed = fn(a, sa, c, sc, nm, n_r, n_c, w.data_ptr(), k, src_r.data_ptr(), src_c.data_ptr(), m_r, m_c, stride,
                0, b, out.data_ptr())  # fmt: skip
    if exact is not None:
        exact.append(summed)
    return out


def dwt2(x: torch.Tensor, lo: tuple, hi: tuple, src_r: torch.Tensor, src_c: torch.Tensor) -> torch.Tensor:
    """MATLAB's single-level ``dwt2`` of every (n_r, n_c) map of ``x`` (float32 or float64 on a CPU) as the
    mosaic ``[cA, cH; cV, cD]`` (..., 2 m_r, 2 m_c), m = (n + k - 1) // 2, by the hand-written kernel
    (``filter_kernel.cpp``): ``lo`` / ``hi`` the k correlation weights (the decomposition filters
    reversed), ``src_r`` / ``src_c`` each side's n + 2 (k - 1) extended positions' source samples
    (:func:`metrics.lineage.wavelet._extension`)."""
    dll = library()
    x = x.contiguous()
    k = len(lo)
    n_r, n_c = x.shape[-2:]
    m_r, m_c = (n_r + k - 1) // 2, (n_c + k - 1) // 2
    maps = x.numel() // (n_r * n_c) if x.numel() else 0
    out = torch.empty((*x.shape[:-2], 2 * m_r, 2 * m_c), dtype=x.dtype)
    if not maps:
        return out
    w_lo, w_hi = (torch.tensor(w, dtype=x.dtype) for w in (lo, hi))
    fn = dll.dwt2_f32 if x.dtype == torch.float32 else dll.dwt2_f64
    fn(
        x.data_ptr(),
        n_r,
        n_c,
        w_lo.data_ptr(),
        w_hi.data_ptr(),
        k,
        src_r.data_ptr(),
        src_c.data_ptr(),
        0,
        maps,
        out.data_ptr(),
    )  # on this thread, as the filters
    return out


def edge_gradients(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gx, gy, b = gx^2 + gy^2) of MATLAB's ``edge(I)`` (:func:`metrics.lineage.kernels.edge_sobel`) for the
    (..., h, w) float64 images ``d`` on a CPU, each shaped as ``d``, by the hand-written kernel
    (``qabf_kernel.cpp``): the same values as the PyTorch steps, bit for bit."""
    dll = library()
    d = d.contiguous()
    h, w = d.shape[-2:]
    g = torch.empty((3, *d.shape), dtype=torch.float64)
    n = d.numel() // (h * w) if d.numel() else 0
    if n:
        dll.edge_gradients_f64(d.data_ptr(), h, w, 0, n, g[0].data_ptr(), g[1].data_ptr(), g[2].data_ptr())
    return g[0], g[1], g[2]


def edge_thin(gx: torch.Tensor, gy: torch.Tensor, b: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
    """The 0/1 float64 edge map from :func:`edge_gradients`' maps and each image's threshold ``cutoff``
    (one value an image), thinned as :func:`metrics.lineage.kernels.edge_sobel` states it."""
    dll = library()
    h, w = b.shape[-2:]
    n = b.numel() // (h * w) if b.numel() else 0
    gx, gy, b = (x.contiguous() for x in (gx, gy, b))
    cutoff = cutoff.to(torch.float64).contiguous().view(-1)
    if cutoff.numel() != n:
        raise ValueError(f"edge_thin: {cutoff.numel()} thresholds for {n} images")
    e = torch.empty_like(b)
    if n:
        dll.edge_thin_f64(gx.data_ptr(), gy.data_ptr(), b.data_ptr(), cutoff.data_ptr(), h, w, 0, n, e.data_ptr())
    return e


def table_entropy(counts: torch.Tensor) -> torch.Tensor:
    """The Shannon entropy in nats of each row of ``counts`` (rows, m), float32 or float64 on a CPU, by the
    hand-written kernel (``hist_kernel.cpp``: the non-zero cells' logarithms only, summed in double), in
    the counts' dtype."""
    return _per_row("table_entropy", counts)


def hist(labels: torch.Tensor, bins: int, other: torch.Tensor | None = None) -> torch.Tensor:
    """Counts per image of integer labels held as floats, ``labels`` (B, ...) on a CPU: (B, bins), or with
    ``other`` (its labels the columns) the joint counts (B, bins, bins), in the labels' dtype, by the
    hand-written kernel (``hist_kernel.cpp``: one pass, no int64 copy of the labels). A label outside
    0..bins - 1 (or NaN) raises ValueError."""
    dll = library()
    b = labels.shape[0]
    x = labels.reshape(b, -1).contiguous()
    n = x.shape[1]
    kind = "f32" if x.dtype == torch.float32 else "f64"
    if other is None:
        out = torch.empty(b, bins, dtype=x.dtype)
        bad = getattr(dll, "hist_" + kind)(x.data_ptr(), n, bins, 0, b, out.data_ptr())
    else:
        y = other.to(x.dtype).reshape(b, -1).contiguous()
        out = torch.empty(b, bins, bins, dtype=x.dtype)
        bad = getattr(dll, "joint_hist_" + kind)(x.data_ptr(), y.data_ptr(), n, bins, 0, b, out.data_ptr())
    if bad:
        raise ValueError(f"{bad} histogram label(s) outside 0..{bins - 1} (or NaN)")
    return out


def normalize1(x: torch.Tensor, flat_zero: bool = False) -> torch.Tensor:
    """:func:`metrics.lineage.kernels.normalize1` of ``x`` (B, ...), each image min-max scaled to 0..255 and
    rounded half away from zero, float32 or float64 on a CPU, by the hand-written kernel
    (``hist_kernel.cpp``): PyTorch's values bit for bit. ``flat_zero``: an image whose largest value is not
    above its smallest (constant, or holding a NaN) all zeros instead (Liu's Q_NCIE, VIFB's ``mutinf``)."""
    b = x.shape[0]
    flat = x.reshape(b, -1).contiguous()
    out = torch.empty_like(flat)
    if flat.numel():
        fn = library().normalize1_f32 if x.dtype == torch.float32 else library().normalize1_f64
        fn(flat.data_ptr(), flat.shape[1], 0, b, int(flat_zero), out.data_ptr())
    return out.view(x.shape)


def quantize_255(x: torch.Tensor) -> torch.Tensor:
    """:func:`metrics.toolbox_input.quantize_255` of ``x`` (any shape), float32 or float64 on a CPU, in one pass
    of the hand-written kernel (``hist_kernel.cpp``): PyTorch's three passes' values bit for bit."""
    x = x.contiguous()
    out = torch.empty_like(x)
    if x.numel():
        fn = library().quantize_255_f32 if x.dtype == torch.float32 else library().quantize_255_f64
        fn(x.data_ptr(), x.numel(), out.data_ptr())
    return out


def integer_valued(x: torch.Tensor) -> torch.Tensor:
    """Whether each image of ``x`` (B, ...), float32 or float64 on a CPU, holds whole numbers only, (B,) bool:
    ``(x == torch.round(x)).flatten(1).all(dim=1)`` in one pass (``hist_kernel.cpp``); images of at least
    one pixel."""
    return _per_row("integer_valued", x.reshape(x.shape[0], -1)) == 1


def table_tsallis(counts: torch.Tensor, q: float) -> torch.Tensor:
    """MEFB's Tsallis measure (:func:`metrics.lineage.mefb.te`'s ``part``) of each (b, b) joint count table of
    ``counts`` (rows, b, b), float32 or float64 on a CPU, in its dtype, by the hand-written kernel
    (``hist_kernel.cpp``: the filled rows only, glibc's vector pow, summed in double)."""
    counts = counts.contiguous()
    rows, b, _ = counts.shape
    out = torch.empty(rows, dtype=counts.dtype)
    fn = getattr(library(), "table_tsallis_" + ("f32" if counts.dtype == torch.float32 else "f64"))
    fn(counts.data_ptr(), b, 0, rows, q, out.data_ptr())
    return out


def mef_desired(box: torch.Tensor, gauss: torch.Tensor) -> torch.Tensor:
    """MEF-SSIM's desired patch per pixel (:func:`metrics.lineage.tang._desired`) from two sources' box
    sums ``box`` and Gaussian means ``gauss``, each (B, 5, h, w) float64: the maps x0, x1, x0^2, x0 x1,
    x1^2 filtered. Returns (B, 6, h, w): the coefficients a0, a1, the offset b, the contrast scale, the
    patch's Gaussian mean and mean square (``mef_kernel.cpp``)."""
    dll = library()
    box, gauss = box.contiguous(), gauss.contiguous()
    b, _, h, w = box.shape
    out = torch.empty(b, 6, h, w, dtype=torch.float64)
    dll.mef_desired_f64(box.data_ptr(), gauss.data_ptr(), h * w, 0, b, out.data_ptr())
    return out


def mef_score(desired: torch.Tensor, fm: torch.Tensor, c: float) -> torch.Tensor:
    """MEF-SSIM per image, (B,) float64: the mean of F's structure index against the desired patch
    (:func:`mef_desired`'s output) from F's Gaussian moments ``fm`` (B, 4, h, w): F, x0 F, x1 F, F^2;
    ``c`` the stabilising constant."""
    dll = library()
    desired, fm = desired.contiguous(), fm.contiguous()
    b, _, h, w = fm.shape
    out = torch.empty(b, dtype=torch.float64)
    dll.mef_score_f64(desired.data_ptr(), fm.data_ptr(), h * w, 0, b, c, out.data_ptr())
    return out


def _maps(x: torch.Tensor, n: int) -> tuple[torch.Tensor, int]:
    """``x`` (B, 1, h, w) as the kernels take a batch of maps: each map's n pixels contiguous, map i at
    i times the returned stride (a channel of a larger tensor is taken as it is, not copied)."""
    if x.stride(-1) != 1 or x.stride(-2) != x.shape[-1] or (x.shape[0] > 1 and x.stride(0) < n):
        x = x.contiguous()
    return x, x.stride(0)


def vif_reference(mu: torch.Tensor, e_kk: torch.Tensor, sigma_nsq: float, eps: float):
    """A reference's own VIF maps at one scale (:func:`metrics.lineage.kernels._vif_references`) from its
    local mean and mean square, each (B, 1, h, w) float32 or float64 on a CPU: (variance clamped at 0,
    information without distortion), by the hand-written kernel (``moment_kernel.cpp``)."""
    b, _, h, w = mu.shape
    n = h * w
    (mu, s_mu), (e_kk, s_e) = _maps(mu, n), _maps(e_kk, n)
    s1, den = (torch.empty(b, 1, h, w, dtype=mu.dtype) for _ in range(2))
    fn = getattr(library(), "vif_reference_" + ("f32" if mu.dtype == torch.float32 else "f64"))
    fn(mu.data_ptr(), s_mu, e_kk.data_ptr(), s_e, n, 0, b, sigma_nsq, eps, s1.data_ptr(), den.data_ptr())
    return s1, den


def vif_against(mu_k, s1, mu_f, e_ff, e_kf, sigma_nsq: float, eps: float):
    """One reference's VIF maps against F at one scale (:func:`metrics.lineage.kernels.vifp_scales`): its
    mean and clamped variance, F's mean and mean square and their product's mean, each (B, 1, h, w) on a
    CPU in one dtype, to (information with distortion, gain g), by the hand-written kernel."""
    b, _, h, w = mu_f.shape
    n = h * w
    maps = [_maps(x, n) for x in (mu_k, s1, mu_f, e_ff, e_kf)]
    ptrs = (ctypes.c_void_p * 5)(*[x.data_ptr() for x, _ in maps])
    strides = (ctypes.c_int64 * 5)(*[s for _, s in maps])
    num, g = (torch.empty(b, 1, h, w, dtype=mu_f.dtype) for _ in range(2))
    fn = getattr(library(), "vif_against_" + ("f32" if mu_f.dtype == torch.float32 else "f64"))
    fn(ptrs, strides, n, 0, b, sigma_nsq, eps, num.data_ptr(), g.data_ptr())
    return num, g


def vif_pick(g_a, g_b, num_a, num_b, den_a, den_b, c: float):
    """MEFB's VIFF at one scale (:func:`metrics.lineage.mefb.vif`): where g_a < g_b A's information maps,
    else B's, each plus ``c``, as (vid, vind) maps; the six (B, 1, h, w) maps on a CPU in one dtype, in one
    pass (``moment_kernel.cpp``), the values of ``torch.where(g_a < g_b, x_a, x_b) + c``."""
    b, _, h, w = g_a.shape
    n = h * w
    maps = [_maps(x, n) for x in (g_a, g_b, num_a, num_b, den_a, den_b)]
    ptrs = (ctypes.c_void_p * 6)(*[x.data_ptr() for x, _ in maps])
    strides = (ctypes.c_int64 * 6)(*[s for _, s in maps])
    vid, vind = (torch.empty(b, 1, h, w, dtype=g_a.dtype) for _ in range(2))
    fn = getattr(library(), "vif_pick_" + ("f32" if g_a.dtype == torch.float32 else "f64"))
    fn(ptrs, strides, n, 0, b, c, vid.data_ptr(), vind.data_ptr())
    return vid, vind


def ssim_mean(mu_x, mu_y, e_xx, e_yy, e_xy, c1: float, c2: float) -> torch.Tensor:
    """The mean of each SSIM map (:func:`metrics.lineage.kernels.ssim_mean`) from the local means, mean
    squares and mean product of x and y, each (B, 1, h, w) on a CPU in one dtype, (B,) in that dtype, by
    the hand-written kernel (``moment_kernel.cpp``: the map in one pass, its mean summed in double)."""
    b, _, h, w = mu_x.shape
    n = h * w
    maps = [_maps(x, n) for x in (mu_x, mu_y, e_xx, e_yy, e_xy)]
    ptrs = (ctypes.c_void_p * 5)(*[x.data_ptr() for x, _ in maps])
    strides = (ctypes.c_int64 * 5)(*[s for _, s in maps])
    out = torch.empty(b, dtype=mu_x.dtype)
    fn = getattr(library(), "ssim_mean_" + ("f32" if mu_x.dtype == torch.float32 else "f64"))
    fn(ptrs, strides, n, 0, b, c1, c2, out.data_ptr())
    return out


def skimage_ssim(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, norm: float, c1: float, c2: float):
    """skimage 0.19's SSIM maps of F against A and against B (:func:`metrics.lineage.cddfuse._skimage_ssim`'s
    maps before their means): ``f``, ``a``, ``b`` (B, 1, H, W) float32 on a CPU, to two (B, 1, H - 6, W - 6)
    float32 maps, by the hand-written kernel (``moment_kernel.cpp``), bit for bit the eager steps' values."""
    n, _, h, w = f.shape
    f, a, b = (x.contiguous() for x in (f, a, b))
    out_a, out_b = (torch.empty(n, 1, h - 6, w - 6, dtype=torch.float32) for _ in range(2))
    library().skimage_ssim_f32(
        f.data_ptr(), a.data_ptr(), b.data_ptr(), h, w, 0, n, norm, c1, c2, out_a.data_ptr(), out_b.data_ptr()
    )
    return out_a, out_b


def xydeas(grads: list, constants) -> tuple[torch.Tensor, torch.Tensor]:
    """Liu's Q_XY per pixel (:func:`metrics.qabf._q_xy_maps`) from the Sobel responses ``grads`` (A's gx, gy,
    B's, F's: six (B, 1, h, w) maps on a CPU in one dtype) and ``constants`` (Gamma_g, k_g, sigma_g, Gamma_a,
    k_a, sigma_a): the numerator and denominator maps, by the hand-written kernel (``qabf_kernel.cpp``)."""
    c = (ctypes.c_double * 6)(*[float(v) for v in constants])
    return _per_map("xydeas", grads, c, outputs=2)


def _per_map(name: str, maps: list, *scalars, outputs: int = 1):
    """The kernel ``name`` (``_f32`` / ``_f64`` by the maps' dtype) of the (B, 1, h, w) ``maps`` on a CPU, each
    map taken where it lies (a channel of a larger tensor too), to one (B, 1, h, w) map of their dtype (or a
    tuple of ``outputs`` of them)."""
    b, _, h, w = maps[0].shape
    n = h * w
    held = [_maps(x, n) for x in maps]
    ptrs = (ctypes.c_void_p * len(held))(*[x.data_ptr() for x, _ in held])
    strides = (ctypes.c_int64 * len(held))(*[s for _, s in held])
    out = [torch.empty(b, 1, h, w, dtype=maps[0].dtype) for _ in range(outputs)]
    fn = getattr(library(), name + ("_f32" if maps[0].dtype == torch.float32 else "_f64"))
    fn(ptrs, strides, n, 0, b, *scalars, *(o.data_ptr() for o in out))
    return out[0] if outputs == 1 else tuple(out)


def liu_ssim(mu_x, mu_y, e_xx, e_yy, e_xy, c1: float, c2: float) -> torch.Tensor:
    """Liu's SSIM map (:func:`metrics.ssim.ssim_map` of :func:`metrics.ssim.stats_of`'s statistics) from the
    local means, mean squares and mean product of x and y, by the hand-written kernel (``moment_kernel.cpp``):
    the eager steps' map bit for bit."""
    return _per_map("liu_ssim", [mu_x, mu_y, e_xx, e_yy, e_xy], c1, c2)


def liu_piella(mu_a, mu_b, e_aa, e_bb, m1, m2) -> torch.Tensor:
    """Liu's Q_P map (:func:`metrics.piella.q_p_from_stats` before its mean) from A's and B's local means and
    mean squares and the SSIM maps m1 = SSIM(F, A), m2 = SSIM(F, B), by the hand-written kernel: bit for bit."""
    return _per_map("liu_piella", [mu_a, mu_b, e_aa, e_bb, m1, m2])


def qp_sum(maps: list, masks: list) -> torch.Tensor:
    """Q_P's sum over the pixels of the largest masked local correlation at one feature map
    (:func:`metrics.lineage.mefb.qp`), (B,) float64, by the hand-written kernel (``moment_kernel.cpp``):
    ``maps`` the 11 local moments, each (B, 1, h, w) on a CPU in one dtype: the means of the three masked
    source maps and of F's, their mean squares in that order, then the three source maps' mean products
    with F's; ``masks`` the three (B, 1, h, w) bool masks."""
    b, _, h, w = maps[0].shape
    n = h * w
    held = [_maps(x, n) for x in maps]
    ptrs = (ctypes.c_void_p * 11)(*[x.data_ptr() for x, _ in held])
    strides = (ctypes.c_int64 * 11)(*[s for _, s in held])
    masks = [m.contiguous() for m in masks]
    mptrs = (ctypes.c_void_p * 3)(*[m.data_ptr() for m in masks])
    out = torch.empty(b, dtype=torch.float64)
    fn = getattr(library(), "qp_sum_" + ("f32" if maps[0].dtype == torch.float32 else "f64"))
    fn(ptrs, strides, mptrs, n, 0, b, out.data_ptr())
    return out


def qp_masks(pc1: torch.Tensor, pc2: torch.Tensor, maps: list | None = None):
    """Q_P's three masks (:func:`metrics.lineage.mefb.qp`) from the sources' phase congruency pc1, pc2, each
    (B, 1, h, w) on a CPU in one dtype: pc1 > 0.1, pc2 > 0.1 and the picked map (pc1 where pc1 > pc2, else
    pc2) > 0.1, as (B, 1, h, w) bool tensors; with ``maps``, a list of at most 8 (A's, B's) feature map pairs,
    also each pair's three masked maps (A's times mask 0, B's times mask 1, the picked one times mask 2),
    (B, 3, h, w) a pair. One pass (``moment_kernel.cpp``), the eager steps' values bit for bit. Returns
    (masks, masked maps or None)."""
    b, _, h, w = pc1.shape
    n = h * w
    pairs = list(maps or [])
    if len(pairs) > 8:
        raise ValueError(f"qp_masks takes at most 8 pairs of feature maps; got {len(pairs)}")
    held = [_maps(x, n) for x in (pc1, pc2, *(m for pair in pairs for m in pair))]
    ptrs = (ctypes.c_void_p * len(held))(*[x.data_ptr() for x, _ in held])
    strides = (ctypes.c_int64 * len(held))(*[s for _, s in held])
    masks = torch.empty(3, b, 1, h, w, dtype=torch.bool)
    mptrs = (ctypes.c_void_p * 3)(*[masks[k].data_ptr() for k in range(3)])
    out = torch.empty(b, 3 * len(pairs), h, w, dtype=pc1.dtype) if pairs else None
    fn = getattr(library(), "qp_masks_" + ("f32" if pc1.dtype == torch.float32 else "f64"))
    fn(ptrs, strides, len(pairs), n, 0, b, mptrs, None if out is None else out.data_ptr())
    masked = None if out is None else [out[:, 3 * t : 3 * t + 3] for t in range(len(pairs))]
    return list(masks), masked


def cb_contrast(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Chen & Blum's masked contrast (:func:`metrics.lineage.vifb._chen_blum`) from the two Gaussian
    responses of the same shape (..., h, w) on a CPU, in one pass (``moment_kernel.cpp``)."""
    g1, g2 = g1.contiguous(), g2.contiguous()
    n = g1.shape[-1] * g1.shape[-2]
    maps = g1.numel() // n if n else 0
    out = torch.empty_like(g1)
    fn = getattr(library(), "cb_contrast_" + ("f32" if g1.dtype == torch.float32 else "f64"))
    fn(g1.data_ptr(), n, g2.data_ptr(), n, n, 0, maps, out.data_ptr())
    return out


def cb_score(c1: torch.Tensor, c2: torch.Tensor, cf: torch.Tensor) -> torch.Tensor:
    """Q_CB per image from the masked contrasts of A, B and F, each (B, 1, h, w) on a CPU in one dtype:
    the mean of the saliency-weighted preservation, summed in double (``moment_kernel.cpp``)."""
    b, _, h, w = cf.shape
    n = h * w
    held = [_maps(x, n) for x in (c1, c2, cf)]
    ptrs = (ctypes.c_void_p * 3)(*[x.data_ptr() for x, _ in held])
    strides = (ctypes.c_int64 * 3)(*[s for _, s in held])
    out = torch.empty(b, dtype=cf.dtype)
    fn = getattr(library(), "cb_score_" + ("f32" if cf.dtype == torch.float32 else "f64"))
    fn(ptrs, strides, n, 0, b, out.data_ptr())
    return out


def sqrt(x: torch.Tensor) -> torch.Tensor:
    """``torch.sqrt(x)`` for float32 or float64 on a CPU by the hardware's square root (``moment_kernel.cpp``),
    bit for bit: both are correctly rounded."""
    x = x.contiguous()
    out = torch.empty_like(x)
    fn = getattr(library(), "sqrt_" + ("f32" if x.dtype == torch.float32 else "f64"))
    fn(x.data_ptr(), 0, x.numel(), out.data_ptr())
    return out


def halve(x: torch.Tensor) -> torch.Tensor:
    """MEF-SSIM's 2x2 mean kept at every other pixel from the first (:func:`metrics.lineage.tang._halve`) of
    each (h, w) map of ``x`` (float32 or float64 on a CPU), in one pass (``filter_kernel.cpp``): the same
    additions in the same order as the PyTorch steps, so the same bits; ((h + 1) // 2, (w + 1) // 2) maps."""
    x = x.contiguous()
    h, w = x.shape[-2:]
    out = torch.empty(*x.shape[:-2], (h + 1) // 2, (w + 1) // 2, dtype=x.dtype)
    fn = getattr(library(), "halve_" + ("f32" if x.dtype == torch.float32 else "f64"))
    fn(x.data_ptr(), h, w, 0, x.numel() // max(h * w, 1), out.data_ptr())
    return out


def yang(maps: list, c: float) -> torch.Tensor:
    """MEFB's Q_Y and Q_C per image from the local moments of A, B and F (:func:`metrics.lineage.mefb.qy`,
    ``qc``): ``maps`` the 9 (B, 1, h, w) maps on a CPU in one dtype (the means of A, B, F, their mean
    squares, then the mean products A B, A F, B F), ``c`` ssim_yang's constant; (B, 4) float64: the sum
    and count of Q_Y's non-NaN values, then Q_C's (``moment_kernel.cpp``)."""
    b, _, h, w = maps[0].shape
    n = h * w
    held = [_maps(x, n) for x in maps]
    ptrs = (ctypes.c_void_p * 9)(*[x.data_ptr() for x, _ in held])
    strides = (ctypes.c_int64 * 9)(*[s for _, s in held])
    out = torch.empty(b, 4, dtype=torch.float64)
    fn = getattr(library(), "yang_" + ("f32" if maps[0].dtype == torch.float32 else "f64"))
    fn(ptrs, strides, n, 0, b, c, out.data_ptr())
    return out


def piella(maps: list, c1: float, c2: float) -> torch.Tensor:
    """MEFB's Q_W per image from the local moments of the edge images of A, B and F
    (:func:`metrics.lineage.mefb.qw`): ``maps`` the 8 (B, 1, h, w) maps on a CPU in one dtype (the means of
    A's, B's and F's, their mean squares, then the mean products F A, F B), ``c1``, ``c2`` SSIM's constants;
    (B,) float64 (``moment_kernel.cpp``)."""
    b, _, h, w = maps[0].shape
    n = h * w
    held = [_maps(x, n) for x in maps]
    ptrs = (ctypes.c_void_p * 8)(*[x.data_ptr() for x, _ in held])
    strides = (ctypes.c_int64 * 8)(*[s for _, s in held])
    out = torch.empty(b, dtype=torch.float64)
    fn = getattr(library(), "piella_" + ("f32" if maps[0].dtype == torch.float32 else "f64"))
    fn(ptrs, strides, n, 0, b, c1, c2, out.data_ptr())
    return out


def qabf(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, name: str = "qabf") -> torch.Tensor:
    """Q^AB/F of each (n, 1, H, W) triple (:func:`metrics.lineage.kernels.qabf`) by the hand-written
    kernel (``qabf_kernel.cpp``): the ratio of its two sums over the pixels, summed in double, in
    ``a``'s dtype. ``name="nabf"``: Tang's N^AB/F (:func:`metrics.lineage.tang.nabf`) of the "fused"
    image ``a`` and the "sources" ``b``, ``f``, in the same way."""
    dll = library()
    a, b, f = (x.to(a.dtype).contiguous() for x in (a, b, f))
    n, _, h, w = a.shape
    sums = torch.empty(n, 2, dtype=torch.float64)
    fn = getattr(dll, name + ("_f32" if a.dtype == torch.float32 else "_f64"))
    fn(a.data_ptr(), b.data_ptr(), f.data_ptr(), h, w, 0, n, sums.data_ptr())
    return (sums[:, 0] / sums[:, 1]).to(a.dtype)
