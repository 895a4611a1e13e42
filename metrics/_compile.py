"""Optional ``torch.compile`` of the metric kernels on CPU.

On a CPU, eager PyTorch runs the metrics' many small elementwise passes (a 9x9 joint pdf per FMI
window, an 11-tap Gaussian over five moment maps) one memory pass at a time; inductor fuses each
kernel into one vectorised C++ loop, which makes scoring several times faster (README, "Speed").
The price is a one-off compilation per process (about 6 s on 2 cores the first time; inductor
caches the result on disk, so later processes pay about a second) and a C++ compiler. Only the
kernels that gain more than their compilation costs go through :func:`call` (phase congruency's
per-orientation sums over its scales; the Fast-FMI windows' joint pdfs only where the hand-written
kernel of :mod:`metrics._native`, which replaces them on a CPU, cannot be built); the rest are eager
forms that need no compiling (banded matrix products, shifted slices).

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
import threading
import warnings

import torch

AUTO_MIN_PAIRS = 256
_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("fusionbench_compile", default=False)
_COMPILED: dict = {}
_BROKEN: list[str] = []
_WARMING: list[threading.Thread] = []  # the warm-up thread (warm_up), until a kernel call joins it


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


def call(fn, *args, varying: tuple[int | tuple[int, int], ...] = ()):
    """``fn(*args)``, through ``torch.compile(fn)`` when compiling is active.

    Shapes are static (a static kernel compiles in about a third of the time of a dynamic one and
    runs as fast), except the first dimension of the tensor arguments at the positions ``varying``
    (or dimension ``d`` of argument ``i`` for an entry ``(i, d)``), which may change from call to
    call without a recompilation (e.g. a batch's images, when the last batch is smaller). Callers
    keep every other shape fixed."""
    if not active():
        return fn(*args)
    if _WARMING and _WARMING[0] is not threading.current_thread():
        _WARMING.pop().join()  # the kernel is being compiled in the background: wait for it, once
    compiled = _COMPILED.get(fn)
    if compiled is None:
        compiled = _COMPILED[fn] = torch.compile(fn, dynamic=None)
    for v in varying:
        i, dim = v if isinstance(v, tuple) else (v, 0)
        torch._dynamo.mark_dynamic(args[i], dim)
    try:
        with _trusted_isa():
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


def _trusted_isa():
    """Inductor's first compilation in a process with empty caches builds and loads a test program
    for every SIMD instruction set the CPU reports (about 6 s on 2 cores, more than the metric kernel
    itself); trust the CPU's report instead (``cpp.vec_isa_ok``), unless the user set it. Should the
    compiler then fail, :func:`call` falls back to eager scoring with its one warning."""
    from torch._inductor import config

    if config.cpp.vec_isa_ok is not None:
        return contextlib.nullcontext()
    return config.patch({"cpp.vec_isa_ok": True})


def warm_up(job) -> None:
    """Run ``job`` (a call that compiles the kernels, e.g. scoring one dummy triple) in a background
    thread, so that compiling (mostly Python and a C++ compiler, ~10 s on 2 cores) overlaps eager
    work of the caller's. The first :func:`call` of another thread waits for it; :func:`warming`
    says whether it still runs. A failure in ``job`` is left to that first call to meet again."""

    def run():
        try:
            job()
        except Exception:  # noqa: BLE001 - the caller's own kernel call compiles (or reports) instead
            pass

    t = threading.Thread(target=run, name="fusionbench-compile", daemon=True)
    _WARMING[:] = [t]
    t.start()


def warming() -> bool:
    """Whether a :func:`warm_up` thread is still compiling."""
    return bool(_WARMING) and _WARMING[0].is_alive()
