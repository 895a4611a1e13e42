"""Optional ``torch.compile`` of the metric kernels on CPU.

On a CPU, eager PyTorch runs the metrics' many small elementwise passes (a 9x9 joint pdf per FMI
window, an 11-tap Gaussian over five moment maps) one memory pass at a time; inductor fuses each
kernel into one vectorised C++ loop, which makes scoring several times faster (README, "Speed").
The price is a one-off compilation per process (about a minute on 2 cores the first time; inductor
caches the result on disk, so later processes pay a few seconds) and a C++ compiler.

``FUSIONBENCH_COMPILE`` chooses: ``auto`` (default) compiles when the workload (the pairs of one
:func:`metrics.score` call, or its ``workload`` argument: all the pairs a ``bench run`` or ``bench
eval`` scores batch by batch) has at least :data:`AUTO_MIN_PAIRS` pairs on a CPU, where the
compilation pays for itself;
``1`` always (on CPU); ``0`` never. On CUDA the kernels run eager (the GPU is already far inside
its target). If compilation fails (no compiler), a warning is given once and scoring continues
eagerly. Compiled and eager kernels agree to float rounding (tests hold both to the toolbox).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings

import torch

AUTO_MIN_PAIRS = 256
_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("fusionbench_compile", default=False)
_COMPILED: dict = {}
_BROKEN: list[str] = []
_CALLS = [0]  # compiled kernel calls made by this process (bench eval: whether to start workers)


def setting() -> str:
    v = os.environ.get("FUSIONBENCH_COMPILE", "auto").strip().lower()
    if v in ("1", "true", "yes", "on"):
        return "1"
    if v in ("0", "false", "no", "off"):
        return "0"
    if v == "auto":
        return "auto"
    raise ValueError(f"FUSIONBENCH_COMPILE must be auto, 1 or 0; got {v!r}")


def wanted(n_pairs: int, device: torch.device | str) -> bool:
    """Whether scoring ``n_pairs`` pairs on ``device`` should use the compiled kernels."""
    if torch.device(device).type != "cpu" or _BROKEN:
        return False
    s = setting()
    return s == "1" or (s == "auto" and n_pairs >= AUTO_MIN_PAIRS)


@contextlib.contextmanager
def compiling(flag: bool):
    """Within this block the metric kernels run compiled when ``flag`` is true."""
    token = _ACTIVE.set(bool(flag))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active() -> bool:
    return _ACTIVE.get() and not _BROKEN


def compiled_calls() -> int:
    """How many times this process has run a kernel through :func:`call` while compiling."""
    return _CALLS[0]


def call(fn, *args):
    """``fn(*args)``, through ``torch.compile(fn)`` when compiling is active."""
    if not active():
        return fn(*args)
    _CALLS[0] += 1
    compiled = _COMPILED.get(fn)
    if compiled is None:
        compiled = _COMPILED[fn] = torch.compile(fn, dynamic=True)
    try:
        return compiled(*args)
    except Exception as e:  # noqa: BLE001 - a missing compiler surfaces as many exception types
        result = fn(*args)  # an error of the kernel itself is raised here, as without compiling
        _BROKEN.append(f"{type(e).__name__}: {e}")
        warnings.warn(
            f"fusionbench: torch.compile of the metric kernels failed ({type(e).__name__}: {str(e)[:200]}); "
            "scoring continues eagerly (set FUSIONBENCH_COMPILE=0 to skip the attempt)",
            RuntimeWarning,
            stacklevel=2,
        )
        return result
