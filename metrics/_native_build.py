"""Building fusionbench's hand-written CPU kernels (``metrics/*_kernel.cpp``, loaded by
:mod:`metrics._native`) into libraries in the cache folder, one a unit (:data:`UNITS`), with the
standard library only.

Why apart from :mod:`metrics._native`: ``bench eval`` and ``bench run`` start this file as a script of
its own (``python metrics/_native_build.py SET...``, :func:`benchmark.cli.start_kernel_build`) before
they import torch, so that on a fresh machine the compiler runs while the command imports torch (~1.1 s
on one core) instead of after, and builds only the units that the metric sets it scores call
(:data:`AHEAD`). Each library is keyed by its source, flags, compiler and CPU, written atomically, and
locked, so the command's own first use of a unit waits for that build and loads it, or builds it itself
if the script did not.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_HERE = Path(__file__).parent
HEADERS = [_HERE / "simd.h"]  # what they include: part of the build's key
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fPIC", "-shared", "-Wno-psabi"]


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


# The units, each built into a library of its own on first use, or ahead by bench eval / bench run for
# what they score (AHEAD): fmi_kernel.cpp once per form, the other sources once each. None includes
# <vector> or <cmath> (simd.h's Buf): their parsing took 0.08-0.13 s a unit, a quarter of the build then.
# The FMI forms at -O2 with complete loop peeling (their fixed 9- and 17-step loops unrolled, as -O3
# does): 0.25 s a form against 1.07 at -O3, and their windows as fast or faster (Tang's three FMI maps
# 12.65 against 12.75 ms a triple); the other units keep -O3 (at -O2 phase congruency's sums ran 5x
# slower). One library a unit, not one for all: a command builds only what it scores with (Liu's five
# need six units of twenty-one, the probe's included: 1.5 s of CPU on an Intel Xeon, against 6.0 s for the
# nineteen there were then, 7.0-7.2 s for all twenty-one on an AMD EPYC), while
# it imports torch.
FMI_OPT = ["-O2", "-fpeel-loops"]
UNITS = {
    "mef": (_HERE / "mef_kernel.cpp", []),  # the smallest (0.1 s): the probe of whether this machine builds them
    "png": (_HERE / "png_kernel.cpp", []),  # bench eval's reading of PNGs (benchmark/data/png.py), no metric's
    # the longest first (a build of all units goes in this order, the builds side by side: 0.6 s for phase
    # congruency's down to 0.1 for Liu's maps, one type, on the Intel Xeon); where a metric set calls one type
    # of a source's kernels, that type alone (-DFUSIONBENCH_TYPE, simd.h: each type about half the source's
    # time); where few sets call a part of a source, that part alone (-DFUSIONBENCH_PART, simd.h: the
    # wavelet transform, Tang's; Liu's SSIM and Piella maps; CDDFuse's SSIM)
    "phase_f32": (_HERE / "phase_kernel.cpp", ["-DFUSIONBENCH_TYPE=32"]),
    "phase_f64": (_HERE / "phase_kernel.cpp", ["-DFUSIONBENCH_TYPE=64"]),
    "csf_f32": (_HERE / "phase_kernel.cpp", ["-DFUSIONBENCH_TYPE=32", "-DFUSIONBENCH_PART=1"]),
    "csf_f64": (_HERE / "phase_kernel.cpp", ["-DFUSIONBENCH_TYPE=64", "-DFUSIONBENCH_PART=1"]),
    "moment": (_HERE / "moment_kernel.cpp", []),  # every metric set that calls it calls both types
    "filter_f32": (_HERE / "filter_kernel.cpp", ["-DFUSIONBENCH_TYPE=32"]),
    "fmi_f64_scored_f32": (_HERE / "fmi_kernel.cpp", ["-DFUSIONBENCH_FORM=2", *FMI_OPT]),
    "filter_f64": (_HERE / "filter_kernel.cpp", ["-DFUSIONBENCH_TYPE=64"]),
    "fmi_f32": (_HERE / "fmi_kernel.cpp", ["-DFUSIONBENCH_FORM=0", *FMI_OPT]),
    "fmi_f64": (_HERE / "fmi_kernel.cpp", ["-DFUSIONBENCH_FORM=1", *FMI_OPT]),
    "qabf_f64": (_HERE / "qabf_kernel.cpp", ["-DFUSIONBENCH_TYPE=64"]),
    "hist_f32": (_HERE / "hist_kernel.cpp", ["-DFUSIONBENCH_TYPE=32"]),
    "hist_f64": (_HERE / "hist_kernel.cpp", ["-DFUSIONBENCH_TYPE=64"]),
    "dwt_f32": (_HERE / "filter_kernel.cpp", ["-DFUSIONBENCH_TYPE=32", "-DFUSIONBENCH_PART=1"]),
    "dwt_f64": (_HERE / "filter_kernel.cpp", ["-DFUSIONBENCH_TYPE=64", "-DFUSIONBENCH_PART=1"]),
    "qabf_f32": (_HERE / "qabf_kernel.cpp", ["-DFUSIONBENCH_TYPE=32"]),
    "skimage_ssim": (_HERE / "moment_kernel.cpp", ["-DFUSIONBENCH_PART=2"]),  # float32 only
    "liu_f32": (_HERE / "moment_kernel.cpp", ["-DFUSIONBENCH_TYPE=32", "-DFUSIONBENCH_PART=1"]),
    "liu_f64": (_HERE / "moment_kernel.cpp", ["-DFUSIONBENCH_TYPE=64", "-DFUSIONBENCH_PART=1"]),
}
PROBE = "mef"
# The units each metric calls when bench eval / bench run score float32 images (as they read them), in the
# order it first calls them, per metric set (lineage) and metric key, each set's metrics in the order the
# set scores them (metrics/lineage's specs; Liu's in Table 1's order, then its per-source SSIMs). Every
# lineage metric calls the histograms' unit (its images' checks). tests/test_native.py holds each metric's
# calls to its entry here, so an entry can neither miss a unit (built then in the first batch, on a fresh
# machine) nor hold one it does not call (built for nothing: `--lineage cddfuse --metrics SD` built all four
# of CDDFuse's units, 1.5 s of CPU, for a metric that calls one).
_H, _M, _Q, _F32, _F64, _L = "hist_f32", "moment", "qabf_f32", "filter_f32", "filter_f64", "liu_f32"
METRIC_UNITS = {
    "liu": {
        "Q_SSIM": (_H, _F32, _L),
        "Q_FMI": (_H, "fmi_f32"),
        "Q_NCIE": (_H,),
        "Q_XY": (_H, _F32, _Q),
        "Q_P": (_H, _F32, _L),
        **dict.fromkeys(["Q_SSIM_x1", "Q_SSIM_x2"], (_H, _F32, _L)),
    },
    "vifb": {
        **dict.fromkeys(["Cross_entropy", "Entropy", "Mutinf", "Psnr"], (_H,)),
        "Avg_gradient": (_H, _M),
        "Edge_intensity": (_H, _F32, _M),
        "Qabf": (_H, _Q),
        **dict.fromkeys(["Variance", "Spatial_frequency", "Rmse"], (_H,)),
        "Ssim": (_H, _F32, _M),
        "Qcb": (_H, "csf_f64", _F64, _M),
        "Qcv": (_H, "csf_f32", _F32, _M),
    },
    "tang": {
        **dict.fromkeys(["EN", "MI", "PSNR", "MSE", "SF", "SD"], (_H,)),
        "VIF": (_H, _F64, _M),
        "AG": (_H, _M),
        **dict.fromkeys(["CC", "SCD"], (_H,)),
        **dict.fromkeys(["Qabf", "Nabf"], (_H, _Q)),
        "SSIM": (_H, _F64, _M),
        "FMI_pixel": (_H, "qabf_f64", "fmi_f32"),
        "FMI_dct": (_H, "fmi_f32"),
        "FMI_w": (_H, "dwt_f64", "fmi_f64_scored_f32"),
        "MS_SSIM": (_H, _F64),
    },
    "mefb": {
        **dict.fromkeys(["Cross_entropy", "Entropy", "NMI", "Psnr", "Qncie", "TE"], (_H,)),
        "Avg_gradient": (_H, _M),
        "Edge_intensity": (_H, _F32, _M),
        "Qabf": (_H, _Q),
        "Qp": (_H, "phase_f32", _M, _F32),
        **dict.fromkeys(["SD", "Spatial_frequency"], (_H,)),
        "Qc": (_H, _F64, _M),
        "Qw": (_H, _F32, _M),
        "Qy": (_H, _F64, _M),
        "MEF_SSIM": (_H, _F64),
        "Qcb": (_H, "csf_f64", _F64, _M),
        "Qcv": (_H, "csf_f32", _F32, _M),
        "FMI": (_H, "qabf_f64", "fmi_f32"),
        "VIF": (_H, _F64, _M),
    },
    "cddfuse": {
        **dict.fromkeys(["EN", "SD", "SF"], (_H,)),
        "AG": (_H, _M),
        **dict.fromkeys(["MI", "MSE", "CC", "PSNR", "SCD"], (_H,)),
        "VIFF": (_H, _F64, _M),
        "Qabf": (_H, _Q),
        "SSIM": (_H, "skimage_ssim"),
    },
}


def _in_order(units) -> list[str]:
    return list(dict.fromkeys(units))


# The units each whole metric set calls, in the order it first calls them, built ahead of its first batch
# in that order: the first batch waits less for what it calls first (longest first, MEFB's first batch
# waited 1.2 s for the histograms, the moments, Q^AB/F and phase congruency).
AHEAD = {lin: tuple(_in_order(u for units in table.values() for u in units)) for lin, table in METRIC_UNITS.items()}


# Units that no metric calls: bench eval's reading of PNGs (benchmark/data/png.py), named as such
# among the sets (bench eval adds it: its first batch reads before it scores).
READ_UNITS = ("png",)


def units_for(sets: list[str] | None) -> list[str]:
    """The units to build ahead for what a command scores, the probe first, then in the order it calls
    them: ``sets`` names metric sets (lineages: each one's :data:`AHEAD`) or metrics (``lineage:key``,
    case aside, Liu's also without its ``Q_``: that metric's :data:`METRIC_UNITS`; a key its lineage
    does not have adds nothing, as the command then stops at the name), and the :data:`READ_UNITS` the
    command reads with (right after the probe). ``all``: every metric set's, in the order ``--lineage all``
    scores them (Liu's five first), not the units no set calls on the float32 images a command reads (the
    other type of phase congruency, the histograms, the FMI windows, Liu's maps and the wavelet transform:
    1.6 s of CPU). None or an unknown lineage: every unit, in :data:`UNITS`' order (the longest first)."""
    readers = [s for s in sets or [] if s in READ_UNITS]
    sets = [s for s in sets or [] if s not in READ_UNITS] if readers else sets
    if sets and any(s.strip().lower() == "all" for s in sets):
        sets = list(METRIC_UNITS)
    if not readers and not sets or any(s.partition(":")[0].strip().lower() not in METRIC_UNITS for s in sets):
        return list(UNITS)
    picked = list(readers)
    for s in sets:
        lin, _, key = (x.strip() for x in s.partition(":"))
        table = METRIC_UNITS[lin.lower()]
        if not key:
            picked += AHEAD[lin.lower()]
            continue
        keys = {k.lower(): k for k in table}
        for name in (key.lower(), "q_" + key.lower()) if lin.lower() == "liu" else (key.lower(),):
            if name in keys:
                picked += table[keys[name]]
                break
    return _in_order([PROBE, *picked])


def _compile_unit(cxx: str, name: str, lib: Path) -> None:
    """Build the library ``lib`` of unit ``name``: compiled and linked in one call under a temporary name
    beside it, then renamed into place (atomic: a process never loads half a file). A failure removes
    what it made and raises OSError."""
    src, defines = UNITS[name]
    tmp = lib.with_name(f".{lib.stem}-{os.getpid()}-{threading.get_ident()}.so")
    cmd = [cxx, *FLAGS, *defines, "-o", str(tmp), str(src), "-lmvec", "-lm"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise OSError(f"{os.path.basename(cxx)} could not build metrics/{src.name} ({name}): {last[:300]}")
        os.replace(tmp, lib)
    finally:
        tmp.unlink(missing_ok=True)


def build(units: list[str] | None = None) -> dict[str, Path]:
    """The libraries of ``units`` (names in :data:`UNITS`; None: all), ``{unit: path}``, each built first
    unless a build of its source, flags, compiler and CPU is there already (another process building it
    is waited for), side by side on this process's CPUs. Raises OSError where one cannot be built (not
    Linux x86-64, no compiler, a compiler error)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise OSError(f"the hand-written kernel is for Linux on x86-64, not {platform.system()} {platform.machine()}")
    cxx = _compiler()
    if cxx is None:
        raise OSError("no C++ compiler found (g++, c++, clang++ or $CXX)")
    headers = b"\0".join(x.read_bytes() for x in HEADERS)
    # The machine's own instruction sets go into the build (-march=native), so the key holds the CPU.
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as fh:  # closed here (left open, it was a ResourceWarning at exit)
            cpu = next((line for line in fh if line.startswith("flags")), "")
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / f"fusionbench-{os.getuid()}"
        folder.mkdir(parents=True, exist_ok=True)

    def one(name: str) -> Path:
        src, defines = UNITS[name]
        parts = [src.read_bytes(), headers, " ".join([*FLAGS, *defines]).encode(), cxx.encode(), cpu.encode()]
        key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]
        lib = folder / f"kernels-{name}-{key}.so"
        # One process builds; one beside it (bench eval's workers start together) waits and loads that build.
        with open(folder / f".kernels-{name}-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not lib.exists():
                _compile_unit(cxx, name, lib)
        return lib

    names = list(UNITS) if units is None else list(units)
    if len(names) == 1:
        return {names[0]: one(names[0])}
    with ThreadPoolExecutor(min(len(names), len(os.sched_getaffinity(0)))) as pool:
        return dict(zip(names, pool.map(one, names)))


def main(argv: list[str] | None = None) -> int:
    """Build the libraries of the metric sets named in ``argv`` (:func:`units_for`; none named: every
    unit) unless ``FUSIONBENCH_NATIVE=0``; 0 when it is there, 1 when it cannot be built
    (the command's own first use then says why, once). Stopped (SIGTERM: the command ended first), it
    removes what it had written, as a failed build does."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if setting() == "0":
        return 0
    try:
        build(units_for(sys.argv[1:] if argv is None else argv))
    except (OSError, ValueError):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
