"""Building fusionbench's hand-written CPU kernels (``metrics/*_kernel.cpp``, loaded by
:mod:`metrics._native`) into one library in the cache folder, with the standard library only.

Why apart from :mod:`metrics._native`: ``bench eval`` and ``bench run`` start this file as a script of
its own (``python metrics/_native_build.py``, :func:`benchmark.cli.start_kernel_build`) before they
import torch, so that on a fresh machine the compiler runs while the command imports torch (~1.1 s
on one core) instead of after (1.8-1.9 s on both, 3.2-3.3 s of CPU). The build is keyed by the
sources, flags, compiler and CPU, written atomically, and locked, so the command's own first use of
the kernels waits for that build and loads it, or builds it itself if the script could not.
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

KERNELS = (
    "fmi_kernel.cpp",
    "phase_kernel.cpp",
    "filter_kernel.cpp",
    "mef_kernel.cpp",
    "qabf_kernel.cpp",
    "hist_kernel.cpp",
    "moment_kernel.cpp",
)
SOURCES = [Path(__file__).with_name(name) for name in KERNELS]
HEADERS = [Path(__file__).with_name("simd.h")]  # what they include: part of the build's key
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


# Translation units, the longest first: fmi_kernel.cpp once per form, and the filters, Q^AB/F and phase
# congruency (0.4-0.6 s each). None includes <vector> or <cmath> (simd.h's Buf): their parsing took
# 0.08-0.13 s a unit, a quarter of the build then. Compiled in parallel, then linked. The FMI forms at -O2
# with complete loop peeling (their fixed 9- and 17-step loops unrolled, as -O3 does): 0.25 s a form
# against 1.07 at -O3, and their windows as fast or faster (Tang's three FMI maps 12.65 against 12.75 ms
# a triple); the other units keep -O3 (at -O2 phase congruency's sums ran 5x slower).
FMI_OPT = ["-O2", "-fpeel-loops"]
UNITS = [(SOURCES[0], [f"-DFUSIONBENCH_FORM={k}", *FMI_OPT]) for k in (2, 0, 1)] + [(src, []) for src in SOURCES[1:]]


def _compile_units(cxx: str, lib: Path) -> None:
    """Build the library ``lib`` from :data:`UNITS`: each compiled to an object beside it under a
    temporary name, as many at once as this process may use CPUs, then linked and renamed into place
    (atomic: a process never loads half a file). A failure removes every file it made and raises OSError."""
    stem = f".{lib.stem}-{os.getpid()}-{threading.get_ident()}"
    objects = [lib.with_name(f"{stem}-{i}.o") for i in range(len(UNITS))]
    tmp = lib.with_name(f"{stem}.so")
    flags = [f for f in FLAGS if f != "-shared"]

    def unit(i: int) -> subprocess.CompletedProcess:
        src, defines = UNITS[i]
        cmd = [cxx, *flags, *defines, "-c", "-o", str(objects[i]), str(src)]
        return subprocess.run(cmd, capture_output=True, text=True)

    try:
        with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
            failed = [d for d in pool.map(unit, range(len(UNITS))) if d.returncode]  # all finish first
        if not failed:
            link = [cxx, "-shared", "-o", str(tmp), *map(str, objects), "-lmvec", "-lm"]
            failed = [d for d in [subprocess.run(link, capture_output=True, text=True)] if d.returncode]
        if failed:
            _failed(cxx, failed[0].stderr)
        os.replace(tmp, lib)
    finally:
        for leftover in (*objects, tmp):
            leftover.unlink(missing_ok=True)


def _failed(cxx: str, stderr: str) -> None:
    last = (stderr.strip().splitlines() or ["(no message)"])[-1]
    names = ", ".join(f"metrics/{x.name}" for x in SOURCES)
    raise OSError(f"{os.path.basename(cxx)} could not build {names}: {last[:300]}")


def build() -> Path:
    """The library's path, built there first unless a build of these sources, flags, compiler and CPU
    is there already (another process building it is waited for). Raises OSError where it cannot be
    built (not Linux x86-64, no compiler, a compiler error)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise OSError(f"the hand-written kernel is for Linux on x86-64, not {platform.system()} {platform.machine()}")
    cxx = _compiler()
    if cxx is None:
        raise OSError("no C++ compiler found (g++, c++, clang++ or $CXX)")
    src = b"\0".join(x.read_bytes() for x in SOURCES + HEADERS)
    # The machine's own instruction sets go into the build (-march=native), so the key holds the CPU.
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        cpu = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
    flags = " ".join([*FLAGS, *(f for _, unit in UNITS for f in unit)]).encode()
    key = hashlib.sha256(b"\0".join([src, flags, cxx.encode(), cpu.encode()])).hexdigest()[:16]
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / f"fusionbench-{os.getuid()}"
        folder.mkdir(parents=True, exist_ok=True)
    lib = folder / f"kernels-{key}.so"
    # One process builds; one beside it (bench eval's workers start together) waits and loads that build.
    with open(folder / f".kernels-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not lib.exists():
            _compile_units(cxx, lib)
    return lib


def main() -> int:
    """Build the library unless ``FUSIONBENCH_NATIVE=0``; 0 when it is there, 1 when it cannot be built
    (the command's own first use then says why, once). Stopped (SIGTERM: the command ended first), it
    removes what it had written, as a failed build does."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if setting() == "0":
        return 0
    try:
        build()
    except (OSError, ValueError):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
