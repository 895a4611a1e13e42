"""The hand-written CPU kernel of Fast-FMI's 3x3 windows (``metrics/fmi_kernel.cpp``), built on first use.

Why: the FMI windows are the costliest step of Liu's Q_FMI and of Tang's three Fast-FMI metrics
(~400 million windows for Tang's set on 1,153 triples). PyTorch's kernel, compiled by inductor,
runs ~40 loops over each block of windows' 9x9 joint pdfs; the hand-written one keeps each SIMD
group of windows in registers and takes glibc's vector logarithms (docs/speed.md, "A hand-written
FMI kernel"). It is built once per machine and source (about a second) with the C++ compiler
inductor uses, into fusionbench's cache folder, and loaded with ctypes, whose calls release the GIL,
so the windows are split over threads.

``FUSIONBENCH_NATIVE``: ``auto`` (default: use it where it builds) or ``0`` (never: the PyTorch
kernel, eager or compiled as :mod:`metrics._compile` decides). Where it cannot be built (no
compiler, no AVX2, no libmvec, not Linux x86-64) the PyTorch kernel runs, with one warning.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("fmi_kernel.cpp")
VERSION = 2  # fusionbench_fmi_version() of the source; a library that reports another is refused
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fPIC", "-shared", "-Wno-psabi"]
MIN_PER_THREAD = 4096  # windows below which a call stays on one thread (a thread costs ~50 us)

_LOCK = threading.Lock()
_LIB: list = []  # [ctypes.CDLL] once built, [None] once it could not be
_PROBLEM: list[str] = []


def setting() -> str:
    v = os.environ.get("FUSIONBENCH_NATIVE", "auto").strip().lower()
    if v in ("auto", "1", "true", "yes", "on"):
        return "auto"
    if v in ("0", "false", "no", "off"):
        return "0"
    raise ValueError(f"FUSIONBENCH_NATIVE must be auto or 0; got {v!r}")


def cache_dir() -> Path:
    """``native/`` in fusionbench's cache folder: ``$FUSIONBENCH_CACHE`` (where the phantom data are
    cached too), else ``$XDG_CACHE_HOME/fusionbench``, else ``~/.cache/fusionbench``."""
    base = os.environ.get("FUSIONBENCH_CACHE")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "fusionbench")
    return Path(base) / "native"


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _build() -> ctypes.CDLL:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise OSError(f"the hand-written kernel is for Linux on x86-64, not {platform.system()} {platform.machine()}")
    cxx = _compiler()
    if cxx is None:
        raise OSError("no C++ compiler found (g++, c++, clang++ or $CXX)")
    src = SOURCE.read_bytes()
    # The machine's own instruction sets go into the build (-march=native), so the key holds the CPU.
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        cpu = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
    key = hashlib.sha256(b"\0".join([src, " ".join(FLAGS).encode(), cxx.encode(), cpu.encode()])).hexdigest()[:16]
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / f"fusionbench-{os.getuid()}"
        folder.mkdir(parents=True, exist_ok=True)
    lib = folder / f"fmi_kernel-{key}.so"
    if not lib.exists():
        tmp = folder / f".fmi_kernel-{key}-{os.getpid()}-{threading.get_ident()}.so"
        cmd = [cxx, *FLAGS, "-o", str(tmp), str(SOURCE), "-lmvec", "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tmp.unlink(missing_ok=True)
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise OSError(f"{os.path.basename(cxx)} could not build metrics/fmi_kernel.cpp: {last[:300]}")
        os.replace(tmp, lib)  # atomic: a process beside this one loads a whole library or builds its own
    dll = ctypes.CDLL(str(lib))
    if dll.fusionbench_fmi_version() != VERSION:
        raise OSError(f"{lib} reports kernel version {dll.fusionbench_fmi_version()}, expected {VERSION}")
    args = [ctypes.c_void_p] * 4 + [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
    for name in ("fmi_f32", "fmi_f64", "fmi_f64_scored_f32"):
        getattr(dll, name).argtypes = args
        getattr(dll, name).restype = None
    for name in ("fmi_maps_f32", "fmi_maps_f64", "fmi_maps_f64_scored_f32"):
        getattr(dll, name).argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 4 + [ctypes.c_void_p] * 2
        getattr(dll, name).restype = ctypes.c_int64
    return dll


def library() -> ctypes.CDLL | None:
    """The built kernel, or None where it is switched off or cannot be built (warned once)."""
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
                    f"fusionbench: the hand-written FMI kernel is not available ({e}); "
                    "the PyTorch kernel scores the FMI windows instead (slower, same values to float rounding)",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return _LIB[0]


def available() -> bool:
    """Whether the hand-written kernel is switched on and built (building it on first use)."""
    return library() is not None


def usable(offsets: list[int], *images: torch.Tensor) -> bool:
    """Whether the hand-written kernel can score these windows: 3x3 windows (``offsets``) of float32 or
    float64 ``images`` on a CPU that autograd does not record (the PyTorch kernel gives F a gradient),
    and the kernel built."""
    return (
        len(offsets) == 9
        and all(x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) for x in images)
        and not (torch.is_grad_enabled() and any(x.requires_grad for x in images))
        and library() is not None
    )


def _kernel(dll: ctypes.CDLL, prefix: str, dtype: torch.dtype, score_f32: bool):
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
    :func:`metrics.fmi._fmi_at_f32`), (N,) in the images' dtype, split over torch's threads."""
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
