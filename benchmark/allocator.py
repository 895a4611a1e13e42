"""Keep freed memory in the process, so that scoring does not page-fault its way through every batch.

Scoring a batch allocates and frees hundreds of image-sized tensors (a 240x240 float64 map of four
images is 1.8 MB). glibc's ``malloc`` serves blocks that large with ``mmap`` (above a threshold that
starts at 128 KiB) and trims the top of its heap back to the kernel, so the next tensor of the same
size arrives as fresh pages the kernel must fault in and zero, one 4 KiB page at a time. Measured on
the project's 2-core CPU: ``metrics.score`` of 64 phantom triples in batches of 16 made 7,700-11,800
minor page faults per triple for mefb with glibc's defaults, 340-450 with the settings below (10-30%
less wall time for liu, vifb, tang and mefb in that loop); whole ``bench eval`` runs of 1153 triples
spend half the system time or less (tang 3.6 against 8.8 s, mefb 5.4 against 10.7 s); wall time:
tang 7% less (ratios 0.92-0.94 over two A/B pairs; a first, noisier set 0.84-1.15), mefb 9% less
(one pair), liu unchanged (0.997 over four pairs).

The settings (glibc ``mallopt``): blocks up to 32 MiB (the largest threshold glibc accepts on 64-bit)
come from the heap, not ``mmap``; the heap keeps up to 1 GiB of free memory at its top rather than
returning it; each growth asks for 64 MiB more than needed. Peak memory is what the work needs, as
before; what changes is that freed memory stays with the process until it exits. This is what
PyTorch's CPU performance guide achieves by swapping in jemalloc or tcmalloc, without a new
dependency.

The ``bench`` command applies them at start (and in ``bench eval``'s worker processes). In your
own process, call :func:`keep_freed_memory` once. Nothing is changed when ``FUSIONBENCH_MALLOC=0``,
when any ``MALLOC_*`` variable is set (your own tuning wins), or off glibc (macOS, musl: their
allocators behave differently and need nothing here).
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20))

_APPLIED: list[bool] = []


def keep_freed_memory() -> bool:
    """Apply the settings above once per process; returns whether they are in effect."""
    if _APPLIED:
        return _APPLIED[0]
    _APPLIED.append(_apply())
    return _APPLIED[0]


def _apply() -> bool:
    if os.environ.get("FUSIONBENCH_MALLOC", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if any(k.startswith("MALLOC_") for k in os.environ):
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS)
