"""What the slowest metric sets' own definitions cost on this machine, before any other work.

    python -m benchmark.tools.speed_floor [--triples 32] [--n 1153]

The issue's target, every metric set in under 30 s for 1,153 triples, is met by ``liu``,
``cddfuse`` and ``vifb`` on the 2-core CPU but not by ``tang`` and ``mefb``. This measures the
core that their originals' definitions impose, timed alone on ``triples`` of the phantom triples
that :mod:`benchmark.tools.speed_lineages` scores (240x240, 8-bit, fused = the mean), float32
images as ``bench eval`` scores them, and extrapolated to ``n`` triples:

- ``mefb``'s ``Qp``: three phase congruencies a triple, each 24 inverse 2-D FFTs of a 240x240
  complex image (4 scales x 6 orientations of log-Gabor filters; each response is needed whole).
  Timed alone with their filter products, as phase congruency runs them (per orientation, 4 scales
  x 4 images in one call): where the hand-written kernels build, their own FFTs with the sums over
  the scales that come with them (:func:`metrics._native.orientation_fft`), else PyTorch's FFTs
  without anything after. Also the noise estimate the original takes per
  image and orientation, the median of the 57,600 squared smallest-scale amplitudes (an exact
  selection: the threshold it sets decides which energy counts), timed as phase congruency runs it
  (4 images a call): :func:`metrics._native.median` where the hand-written kernels build, else
  :func:`metrics.lineage.phase._median`.
- ``tang``'s three Fast-FMI metrics (``FMI_pixel``, ``FMI_dct``, ``FMI_w``): the 3x3 windows each
  scores a triple (counted on the triples; the windows the original skips, where the source's
  window equals F's, are not counted), each a 9x9 joint pdf and its entropy. Timed alone: only
  the FMI kernel's calls (the hand-written one, :func:`metrics._native.fmi_maps`, where it builds,
  which applies the skip rules too; else the compiled :func:`metrics.fmi._fmi_at`, or ``_fmi_at_f32``
  for ``FMI_w``, without the window selection), not the feature images.

Also the start of a fresh process that imports torch and the metrics, and every metric of both
sets scored alone (4 triples a call, compiled where ``bench eval`` compiles, no work shared between
metrics): for ``tang``, its 14 metrics other than the Fast-FMI ones take about 22 s for 1,153
triples by themselves, with the start (22.3 s in the README's run at c03201e; 29-35 s before the
filters, MEF-SSIM and Q^AB/F had hand-written kernels). Prints one line
per part and the sum per set, in ms a triple and in seconds for ``n`` triples (plus the start).
Last, each set's metrics scored together on one call, split into the time inside the hand-written
kernels' calls and the rest (PyTorch's own operations and Python: :func:`kernel_split`), and that rest
by the line of the project's code that calls each PyTorch operation (:func:`glue_sites`).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch

FMI_KEYS = ("FMI_pixel", "FMI_dct", "FMI_w")


def triples(k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A, B, F) in 0..255 float32, (k, 1, 240, 240): ``speed_lineages``' 8-bit phantom triples."""
    from benchmark.tools.speed_metrics import pairs

    _, a, b = pairs(k, "cpu", torch.float32)
    a, b = torch.round(a * 255), torch.round(b * 255)
    return a, b, torch.round((a + b) / 2)


def fastest(job, runs: int) -> float:
    """Seconds of the fastest of ``runs`` calls of ``job()``."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        job()
        best = min(best, time.perf_counter() - t0)
    return best


def start_seconds(runs: int = 3) -> float:
    """Fastest of ``runs`` fresh processes that import torch and the metrics."""
    return fastest(
        lambda: subprocess.run([sys.executable, "-c", "import torch, metrics, metrics.lineage"], check=True), runs
    )


def qp_ms(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, repeats: int = 3) -> tuple[float, float, bool]:
    """ms a triple of ``Qp``'s filter products and inverse FFTs alone (the hand-written kernel's, with
    its sums over the scales, where it takes the images), and of its noise medians alone (fastest of
    ``repeats`` passes each); whether the kernel's FFTs were timed."""
    from metrics import _native
    from metrics.lineage.phase import EPSILON, NORIENT, _bank, _blocked_bank, _median

    median = _native.median if _native.cpu_ready(a) else _median  # as phase congruency takes it here
    rows, cols = a.shape[-2:]
    own = _native.cpu_ready(a) and _native.fft_takes(rows, cols, torch.float32)

    filters = _bank(rows, cols)[0].to(torch.float32)
    spectra = [torch.fft.fft2(x[i : i + 4, 0]) for x in (a, b, f) for i in range(0, len(x), 4)]

    def filtered():  # (NSCALE, 4, H, W) complex responses, one orientation at a time as phase congruency
        for spectrum in spectra:
            for o in range(NORIENT):
                yield torch.fft.ifft2(filters[o][:, None] * spectrum[None])

    smallest = [r[0].abs().square().flatten(1) for r in filtered()]  # (4, H * W) each
    if own:  # as phase congruency runs them: the kernel's FFTs and sums, one orientation a call
        bank = _blocked_bank(rows, cols, torch.float32)
        planes = [[_native.fft_blocks(p) for p in (s.real, s.imag)] for s in spectra]

        def ffts():
            return [_native.orientation_fft(bank[o], *pl, rows, cols, EPSILON) for pl in planes for o in range(NORIENT)]
    else:

        def ffts():
            return [None for _ in filtered()]

    per_triple = 1000 / len(a)
    return (
        fastest(ffts, repeats) * per_triple,
        fastest(lambda: [median(x) for x in smallest], repeats) * per_triple,
        own,
    )


def fmi_windows_and_ms(
    a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, timed: bool = True
) -> dict[str, tuple[float, float]]:
    """{key: (windows a triple, ms a triple of the FMI kernel's calls alone)} for Tang's FMI metrics,
    scored 4 triples a call as ``bench eval`` scores lineage metrics. The kernel is the one ``bench
    eval`` runs: the hand-written one (:mod:`metrics._native`) where it builds, else the compiled
    PyTorch kernel. The windows are counted in a first pass; ``timed``: then (compile the PyTorch
    kernel and) time a second pass (else the ms are 0)."""
    import metrics.fmi as fmi
    from metrics import _compile, _native
    from metrics.lineage import LineageImages, tang

    specs = {s.key: s for s in tang.SPECS if s.key in FMI_KEYS}
    kernels = (fmi._fmi_at, fmi._fmi_at_f32)
    out = {}
    real_call, real_native = _compile.call, _native.fmi_maps
    for key, spec in specs.items():
        windows, seconds, counting = [0], [0.0], [True]

        def timed_call(run, n_windows):
            t0 = time.perf_counter()
            r = run()
            seconds[0] += time.perf_counter() - t0
            if counting[0]:
                windows[0] += n_windows(r)
            return r

        def counted(fn, *args, **kw):
            if fn not in kernels:
                return real_call(fn, *args, **kw)
            return timed_call(lambda: real_call(fn, *args, **kw), lambda _: args[2].numel())

        def native(*args):
            return timed_call(lambda: real_native(*args), lambda r: r[2])  # fmi_maps says how many it scored

        fmi._compile.call, fmi._native.fmi_maps = counted, native
        try:
            for i_pass, compiled in enumerate((False, True, True) if timed else (False,)):  # count; compile; time
                seconds[0], counting[0] = 0.0, i_pass == 0
                with _compile.compiling(compiled):
                    for i in range(0, len(a), 4):
                        spec(LineageImages(a[i : i + 4], b[i : i + 4], f[i : i + 4]), key)
        finally:
            fmi._compile.call, fmi._native.fmi_maps = real_call, real_native
        out[key] = (windows[0] / len(a), seconds[0] / len(a) * 1000 if timed else 0.0)
    return out


def metric_ms(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, lineage: str, repeats: int = 2) -> dict[str, float]:
    """{key: ms a triple} of every metric of ``lineage`` scored alone, 4 triples a call as ``bench
    eval`` scores lineage metrics, compiled kernels compiled (as for a large workload); fastest of
    ``repeats`` timed passes after one pass that compiles."""
    from metrics import _compile
    from metrics.lineage import SPECS, LineageImages

    def one(spec):
        for i in range(0, len(a), 4):
            spec(LineageImages(a[i : i + 4], b[i : i + 4], f[i : i + 4]), spec.key)

    out = {}
    with _compile.compiling(True):
        for spec in SPECS[lineage]:
            one(spec)
            out[spec.key] = fastest(lambda: one(spec), repeats) * 1000 / len(a)
    return out


# _native's helpers that launch no kernel: what to use, not work
_NOT_KERNELS = ("library", "available", "cpu_ready", "usable", "fft_lanes", "fft_takes", "setting")


def _kernel_entries() -> dict:
    """{name: function} of :mod:`metrics._native`'s public kernel entries (its helpers that launch no
    kernel left out)."""
    import inspect

    from metrics import _native

    return {
        name: fn
        for name, fn in vars(_native).items()
        if inspect.isfunction(fn)
        and fn.__module__ == _native.__name__
        and not name.startswith("_")
        and name not in _NOT_KERNELS
    }


def _outermost(inside: list, charge, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; where no timed call is running (``inside[0]`` 0) it is timed, ``inside[0]``
    held above 0 meanwhile, and its seconds given to ``charge`` (so a call that makes others counts once)."""
    if inside[0]:
        return fn(*args, **kwargs)
    inside[0] += 1
    t = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        charge(time.perf_counter() - t)
        inside[0] -= 1


@contextlib.contextmanager
def _kernels_wrapped(spent, inside: list):
    """:mod:`metrics._native`'s kernel entries replaced, while the block runs, by wrappers that add each
    outermost call's seconds to ``spent[name]`` (a Counter) and hold ``inside[0]`` above 0 during it (a
    call that makes others counts once); the module as it was afterwards."""
    from metrics import _native

    def timed(name, fn):
        def charge(seconds):
            spent[name] += seconds

        return lambda *args, **kwargs: _outermost(inside, charge, fn, *args, **kwargs)

    real = _kernel_entries()
    try:
        for name, fn in real.items():
            setattr(_native, name, timed(name, fn))
        yield
    finally:
        for name, fn in real.items():
            setattr(_native, name, fn)


def _lineage_batches(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, lineage: str):
    """A function that scores every metric of ``lineage`` on the triples, 4 a call, as ``bench eval``
    shares work between them (:func:`metrics.lineage.lineage_values`)."""
    from metrics.lineage import lineage_values

    def one():
        for i in range(0, len(a), 4):
            lineage_values(f[i : i + 4], a[i : i + 4], b[i : i + 4], lineage)

    return one


def kernel_split(
    a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, lineage: str, repeats: int = 3
) -> tuple[float, float, dict[str, float]]:
    """Every metric of ``lineage`` scored together (:func:`metrics.lineage.lineage_values`, 4 triples a
    call, work shared between metrics as ``bench eval`` shares it), in ms a triple: (the whole, the part
    spent inside :mod:`metrics._native`'s calls, {call: ms}); the rest is PyTorch's own operations and
    Python. Each public function of :mod:`metrics._native` is timed where a metric calls it (an outermost
    call only, so a call that makes others counts once); fastest of ``repeats`` passes after one that
    builds and warms up."""
    spent: Counter = Counter()
    one = _lineage_batches(a, b, f, lineage)
    best = None
    with _kernels_wrapped(spent, [0]):
        one()
        for _ in range(repeats):
            spent.clear()
            t = time.perf_counter()
            one()
            whole = time.perf_counter() - t
            if best is None or whole < best[0]:
                best = (whole, dict(spent))
    whole, calls = best
    per = 1000 / len(a)
    return whole * per, sum(calls.values()) * per, {k: v * per for k, v in calls.items()}


# the project's packages, whose lines a PyTorch call is charged to (glue_sites), and the folder that holds them
_OWN = ("metrics", "baselines", "fusioninn", "benchmark")
_ROOT = Path(__file__).resolve().parents[2]


def glue_sites(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, lineage: str) -> tuple[float, dict[str, tuple]]:
    """Where :func:`kernel_split`'s rest goes: every metric of ``lineage`` scored together as there, each
    PyTorch function or tensor method called from Python outside :mod:`metrics._native`'s kernel calls
    timed (an outermost call only) and charged to the line of the project's code that made it
    (``path:line function``, the first frame outside torch). (the total in ms a triple, {site: (ms a
    triple, calls a triple)}), after one pass that builds and warms up. The function mode that does the
    timing adds its own cost to every call (a few microseconds): read the sites' shares, not the sum, and
    :func:`kernel_split` for the whole."""
    from torch.overrides import TorchFunctionMode

    spent: Counter = Counter()
    count: Counter = Counter()
    inside = [0]  # above 0 inside a kernel call (the kernels' share) or inside a timed PyTorch call

    def site() -> str:
        frame = sys._getframe(2)
        while frame is not None:
            where = Path(frame.f_code.co_filename)
            if where.is_relative_to(_ROOT) and where.relative_to(_ROOT).parts[0] in _OWN:
                return f"{where.relative_to(_ROOT).as_posix()}:{frame.f_lineno} {frame.f_code.co_name}"
            frame = frame.f_back
        return "elsewhere"

    class Charged(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if inside[0]:  # (no site looked up for a call that is not timed)
                return func(*args, **(kwargs or {}))
            where = site()

            def charge(seconds):
                spent[where] += seconds
                count[where] += 1

            return _outermost(inside, charge, func, *args, **(kwargs or {}))

    one = _lineage_batches(a, b, f, lineage)
    with _kernels_wrapped(Counter(), inside):
        one()
        with Charged():
            one()
    per = 1000 / len(a)
    sites = {k: (v * per, count[k] / len(a)) for k, v in spent.most_common()}
    return sum(spent.values()) * per, sites


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--triples", type=int, default=32, help="triples timed (a multiple of 4)")
    p.add_argument("--n", type=int, default=1153, help="triples to extrapolate to")
    args = p.parse_args(argv)
    from benchmark.allocator import keep_freed_memory

    keep_freed_memory()  # as bench sets it up
    a, b, f = triples(args.triples)
    start = start_seconds()
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, {args.triples} triples timed")
    print(f"fresh process importing torch and the metrics: {start:.1f} s")
    ffts, medians, own = qp_ms(a, b, f)
    how = " (the hand-written kernel's, with its sums over the scales)" if own else " (PyTorch's)"
    print(
        f"mefb Qp: 72 filter products and inverse FFTs a triple{how}: {ffts:.1f} ms a triple, "
        f"{ffts * args.n / 1000:.1f} s for {args.n}"
    )
    print(
        f"mefb Qp: 18 noise medians a triple: {medians:.1f} ms a triple, {medians * args.n / 1000:.1f} s for {args.n}"
    )
    total = 0.0
    for key, (windows, ms) in fmi_windows_and_ms(a, b, f).items():
        total += ms
        print(
            f"tang {key}: {windows:,.0f} windows a triple, {ms:.1f} ms a triple "
            f"({ms / windows * 1e6:.0f} ns a window), {ms * args.n / 1000:.1f} s for {args.n}"
        )
    print(
        f"tang's FMI kernels together: {total:.1f} ms a triple, "
        f"{total * args.n / 1000 + start:.1f} s for {args.n} with the start"
    )
    qp = ffts + medians
    print(
        f"mefb's Qp FFTs and medians together: {qp:.1f} ms a triple, "
        f"{qp * args.n / 1000 + start:.1f} s for {args.n} with the start"
    )
    for lineage in ("tang", "mefb"):
        ms = metric_ms(a, b, f, lineage)
        print(
            f"{lineage}, each metric alone: "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(ms.items(), key=lambda kv: -kv[1]))
        )
        rest = sum(v for k, v in ms.items() if lineage != "tang" or k not in FMI_KEYS)
        what = "its metrics other than the Fast-FMI ones" if lineage == "tang" else "all its metrics"
        print(
            f"{lineage}: {what}, one by one: {rest:.1f} ms a triple, "
            f"{rest * args.n / 1000 + start:.1f} s for {args.n} with the start"
        )
    for lineage in ("tang", "mefb"):
        whole, inside, calls = kernel_split(a, b, f, lineage)
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
        print(
            f"{lineage}, all its metrics together: {whole:.1f} ms a triple; in the hand-written kernels' calls "
            f"{inside:.1f} ({', '.join(f'{k} {v:.1f}' for k, v in top)}, ...), PyTorch's other operations "
            f"and Python {whole - inside:.1f}"
        )
    for lineage in ("tang", "mefb"):
        total, sites = glue_sites(a, b, f, lineage)
        top = list(sites.items())[:5]
        print(
            f"{lineage}, PyTorch's operations outside the kernels by the line that calls them ({len(sites)} lines, "
            f"{total:.1f} ms a triple timed call by call, which adds its own cost): "
            + ", ".join(f"{k} {ms:.2f} ({ms / total:.1%}, {n:.1f} calls)" for k, (ms, n) in top)
            + ", ..."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
