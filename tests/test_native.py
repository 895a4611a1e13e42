"""The hand-written kernels (metrics/fmi_kernel.cpp: Fast-FMI's windows; metrics/phase_kernel.cpp: phase
congruency's sums and medians; metrics/filter_kernel.cpp: separable filtering, Tang's dwt2 and 3x3 Sobels;
metrics/mef_kernel.cpp: MEF-SSIM's per-pixel steps; metrics/qabf_kernel.cpp: Q^AB/F, N^AB/F and MATLAB's
Sobel edge map; metrics/hist_kernel.cpp: the joint histograms' entropy and normalize1; metrics/moment_kernel.cpp: VIF's
per-pixel steps), built by metrics._native (its
build: metrics/_native_build.py, also run as a script by bench eval and bench run).

Its values against the PyTorch kernel window by window (the oracle tests in test_metrics_reference.py
and test_lineages.py run through it, as it is the CPU's default), when it is used and when not, and
what happens where it cannot be built."""

import math
import pathlib
import subprocess

import pytest
import torch

import metrics
from metrics import _compile, _native, _native_build, fmi


def _images(n=2, size=40, seed=3):
    """0..255 images with the windows that take the kernel's special paths: flat patches in both
    (both-flat windows, c = 1), F flat where the source is not (sd = 0), F = 255 - A in a corner
    (negative correlation: the lower Frechet bound), F equal to A in a strip (skipped windows), and
    a block of three grey levels against two (many windows whose cdfs share values, so that cells on the
    bound's staircase are empty and it steps diagonally)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 256, (n, 1, size, size), generator=g).double()
    b = torch.nn.functional.avg_pool2d(torch.rand(n, 1, size, size, generator=g, dtype=torch.float64), 3, 1, 1) * 255
    b = b.round()
    f = ((a + b) / 2).round()
    a[:, :, :8, :8] = 17
    f[:, :, :6, :6] = 17
    f[:, :, 10:16, :10] = 99
    f[:, :, -10:, -10:] = 255 - a[:, :, -10:, -10:]
    f[:, :, 20:24, :] = a[:, :, 20:24, :]
    block = (..., slice(size - 16, size - 10), slice(0, size - 10))
    a[block] = torch.randint(0, 3, a[block].shape, generator=g).double() * 127
    f[block] = torch.randint(0, 2, f[block].shape, generator=g).double() * 255
    return a, b, f


def _windows(a, b, f):
    """Every window of both sources, as fmi_from_images hands them over (flat pixel indices)."""
    n, _, h, w = a.shape
    offsets = fmi._offsets(3, w)
    rows = torch.arange(h - 2).view(-1, 1) * w + torch.arange(w - 2)
    p = (torch.arange(n).view(-1, 1, 1) * h * w + rows).flatten()
    src = torch.cat([a.flatten(), b.flatten()])
    return src, f.flatten(), torch.cat([p, p + a.numel()]), torch.cat([p, p]), offsets


def test_native_kernel_equals_the_pytorch_kernel_window_by_window(native_kernel):
    """Each of its three forms against the PyTorch kernel it replaces, on every window (flat, negatively
    correlated and identical ones included), in row order (vector loads) and shuffled (one window at a
    time; also in order but for two, which must not pass for a row), with a group of fewer windows than a
    SIMD register at the end: float64 within 1e-12, and
    float32 within 6e-5 a window (two float32 roundings of the same formula) and 1e-7 as means."""
    a, b, f = _images()
    src, ff, ps, pf, offsets = _windows(a, b, f)
    perm = torch.randperm(ps.numel(), generator=torch.Generator().manual_seed(0))[:-5]  # -5: a short last group
    swapped = torch.arange(ps.numel())
    swapped[[1, 2]] = swapped[[2, 1]]  # the first group's ends one row apart, its middle not in order
    for order in (torch.arange(ps.numel() - 3), perm, swapped):
        s_idx, f_idx = ps[order], pf[order]
        for dtype, score_f32 in ((torch.float64, False), (torch.float32, False), (torch.float64, True)):
            x, y = src.to(dtype), ff.to(dtype)
            kernel = fmi._fmi_at_f32 if score_f32 else fmi._fmi_at
            want = kernel(x, y, s_idx, f_idx, offsets)
            got = _native.fmi_windows(x, y, s_idx, f_idx, offsets, score_f32)
            assert got.dtype == dtype and got.shape == want.shape
            assert torch.isfinite(got).all()
            if dtype == torch.float64 and not score_f32:
                torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
            else:
                torch.testing.assert_close(got, want, rtol=0, atol=6e-5)
                assert abs(float(got.double().mean() - want.double().mean())) < 1e-7
    # The windows the kernel treats apart score as the PyTorch kernel says: 1 for two flat windows, etc.
    got = _native.fmi_windows(src, ff, ps, pf, offsets, False)
    assert (got == 1).sum() > 0 and (got == 0).sum() > 0


def test_scores_use_the_native_kernel_on_a_cpu_and_equal_the_pytorch_kernels(monkeypatch, native_kernel):
    """On a CPU every Fast-FMI metric (Liu's Q_FMI, Tang's three, MEFB's FMI) scores its windows in one
    call of the hand-written kernel (skip rules and all), compiled scoring or not, and never through
    inductor; the scores
    equal the PyTorch kernel's (eager) within 1e-12 in float64 and 1e-6 in float32 (FMI_w, whose
    windows both kernels score in float32: 1e-6)."""
    a, b, f = (x / 255 for x in _images(n=3, size=48))
    names = ["Q_FMI", "tang:FMI_pixel", "tang:FMI_dct", "tang:FMI_w", "mefb:FMI"]
    calls, compiled = [], []
    real = _native.fmi_maps

    def counted(*args):
        out = real(*args)
        calls.append(out[2])  # the windows it scored
        return out

    monkeypatch.setattr(_native, "fmi_maps", counted)
    monkeypatch.setattr(_compile, "call", lambda fn, *args, **kw: compiled.append(fn) or fn(*args))
    for dtype, atol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        x = [t.to(dtype) for t in (f, a, b)]
        calls.clear()
        compiled.clear()
        with _compile.compiling(True):
            native = metrics.score(*x, metrics=names, lineages="tang,mefb", notes=[])
        assert len(calls) == 5 and min(calls) > 1000 and not compiled  # all windows of a metric in one call
        monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
        pytorch = metrics.score(*x, metrics=names, lineages="tang,mefb", notes=[])
        monkeypatch.delenv("FUSIONBENCH_NATIVE")
        assert len(calls) == 5  # not called again
        for k in native:
            assert native[k].dtype == dtype
            tol = 1e-6 if k == "tang:FMI_w" else atol  # FMI_w scores its windows in float32 in both kernels
            torch.testing.assert_close(native[k], pytorch[k], rtol=0, atol=tol, msg=k)


def test_native_kernel_does_not_depend_on_the_thread_count(native_kernel):
    """The windows (the maps' rows) are split over torch's threads; each window's score is its own, bit
    for bit."""
    a, b, f = _images(n=4, size=64)
    src, ff, ps, pf, offsets = _windows(a, b, f)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _native.fmi_windows(src.float(), ff.float(), ps, pf, offsets, False)
        maps_one = _native.fmi_maps(a.float(), b.float(), f.float(), False)
        torch.set_num_threads(2)
        assert ps.numel() >= 2 * _native.MIN_PER_THREAD
        two = _native.fmi_windows(src.float(), ff.float(), ps, pf, offsets, False)
        maps_two = _native.fmi_maps(a.float(), b.float(), f.float(), False)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    assert all(torch.equal(x, y) for x, y in zip(maps_one[:2], maps_two[:2])) and maps_one[2] == maps_two[2]


@pytest.mark.parametrize("size", [(40, 40), (24, 30), (12, 9), (7, 20)])
def test_native_maps_apply_the_skip_rules_and_score_as_the_window_kernel(native_kernel, size):
    """``fmi_maps`` (skip rules, gathering and scoring in the kernel) against metrics.fmi.skipped and the
    window kernel on the windows it leaves, bit for bit, in all three forms: windows skipped by either
    rule score 1 (x2's window equal to F's min-max normalised window where x1's differs from F's: a block
    of F in {0, 255} with x2 = F / 255), windows flat in a source and in F (at other levels) score what
    the window kernel gives them, and the count of windows scored is theirs. Sizes: rows longer
    and shorter than a SIMD register (16 float32, 8 float64 lanes), and ending in a short group."""
    g = torch.Generator().manual_seed(sum(size))
    a, b, f = _images(n=2, size=40)
    a, b, f = (x[..., : size[0], : size[1]].contiguous() for x in (a, b, f))
    f[:, :, :6, :6] = 255 * torch.randint(0, 2, (2, 1, 6, 6), generator=g)[..., : size[0], : size[1]]
    b[:, :, :6, :6] = f[:, :, :6, :6] / 255
    a[:, :, -3:, :] = f[:, :, -3:, :]  # the last row of windows: x1's equal F's
    # flat in all three images at three levels: windows flat in a source and in F, which the kernel does not
    # score but takes the value two windows of ones score
    a[:, :, 1:6, 6:12], b[:, :, 1:6, 6:12], f[:, :, 1:6, 6:12] = 40, 60, 90
    b[0, :, 4:6, 6:9] = a[1, :, 4:6, 6:9] = torch.arange(6.0).view(2, 3)  # flat only in x1 / in x2 below row 3
    n, _, height, width = a.shape
    h, w = height - 2, width - 2
    eq_a, eq_b = fmi.skipped(a, b, f, 3)
    assert (eq_b & ~eq_a).any() and eq_a.any() and (~eq_b).any()  # the normalised-F rule, and both kinds
    flat = [fmi._window_all(x == x[:, :, 2:3, 7:8], 3).flatten() for x in (a, b, f)]
    for one, other, eq in ((0, 1, eq_a), (1, 0, eq_b)):
        assert (flat[one] & flat[2] & ~eq).any() and (flat[one] & flat[2] & ~flat[other] & ~eq).any()
    todo_a, todo_b = torch.nonzero(~eq_a).flatten(), torch.nonzero(~eq_b).flatten()
    for dtype, score_f32 in ((torch.float64, False), (torch.float32, False), (torch.float64, True)):
        x, y, z = (t.to(dtype) for t in (a, b, f))
        want = torch.ones(2, n * h * w, dtype=dtype)
        for side, (src, todo) in enumerate(((x, todo_a), (y, todo_b))):
            p = fmi._pixel(todo, 3, height, width)
            want[side, todo] = _native.fmi_windows(src.flatten(), z.flatten(), p, p, fmi._offsets(3, width), score_f32)
        m1, m2, scored = _native.fmi_maps(x, y, z, score_f32)
        assert m1.shape == m2.shape == (n, h, w) and m1.dtype == dtype
        assert torch.equal(m1.flatten(), want[0]) and torch.equal(m2.flatten(), want[1])
        assert scored == todo_a.numel() + todo_b.numel()


def test_autograd_takes_the_pytorch_kernel(native_kernel):
    """A fused image that requires grad gets Q_FMI with a gradient (the PyTorch kernel); detached, the
    hand-written kernel scores it, to float rounding the same."""
    a, b, f = (x / 255 for x in _images(n=1, size=32))
    leaf = f.clone().requires_grad_()
    recorded = metrics.score(leaf, a, b, metrics=["Q_FMI"])["Q_FMI"]
    assert recorded.grad_fn is not None
    recorded.sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()
    plain = metrics.score(f, a, b, metrics=["Q_FMI"])["Q_FMI"]
    torch.testing.assert_close(recorded.detach(), plain, rtol=0, atol=1e-12)


def test_each_unit_is_built_once_into_the_cache_on_first_use(monkeypatch, tmp_path, native_kernel):
    """Each unit is built into FUSIONBENCH_CACHE/native (compiled and linked in one call, atomically renamed
    into place) when one of its entry points is first called: the probe unit first, which tells whether
    this machine builds the kernels, then the FMI f32 form at its first call and nothing else; two builds
    at once (bench eval's worker processes start together) compile once, the second waiting for the
    first; a later process loads the libraries without compiling; the values are those of the build."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(_native, "_LIB", [])
    runs = []
    real = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: runs.append(a[0]) or real(*a, **k))
    with ThreadPoolExecutor(2) as pool:  # two "processes": each its own lock file handle
        kernels = list(pool.map(lambda _: _native._build(), range(2)))
    assert all(k.units() == [_native_build.PROBE] for k in kernels)
    assert [r[-3].split("/")[-1] for r in runs] == ["mef_kernel.cpp"] and "-shared" in runs[0]

    a, b, f = _images(n=1, size=24)
    src, ff, ps, pf, offsets = _windows(a, b, f)
    want = fmi._fmi_at(src.float(), ff.float(), ps, pf, offsets)
    monkeypatch.setattr(_native, "_LIB", kernels[:1])
    with ThreadPoolExecutor(2) as pool:  # its first call, twice at once
        got = list(pool.map(lambda _: _native.fmi_windows(src.float(), ff.float(), ps, pf, offsets, False), range(2)))
    assert kernels[0].units() == ["mef", "fmi_f32"] and len(runs) == 2 and "-DFUSIONBENCH_FORM=0" in runs[1]
    for g in got:
        torch.testing.assert_close(g, want, rtol=0, atol=6e-5)
    files = sorted(x.name for x in (tmp_path / "native").iterdir())
    assert [x.split("-")[1] for x in files if x.endswith(".so")] == ["fmi_f32", "mef"]
    assert not [x for x in files if x.startswith(".") and not x.endswith(".lock")]  # no temporary names left

    monkeypatch.setattr(_native, "_LIB", [])  # a new process
    assert _native.available()
    again = _native.fmi_windows(src.float(), ff.float(), ps, pf, offsets, False)
    assert torch.equal(again, got[0])
    assert len(runs) == 2
    with pytest.raises(AttributeError, match="no kernel entry point 'no_such_kernel'"):
        _native.library().no_such_kernel


def test_the_build_script_needs_no_torch_and_a_stopped_build_leaves_nothing_half_made(
    monkeypatch, tmp_path, native_kernel
):
    """bench eval and bench run start metrics/_native_build.py as a script before they import torch
    (benchmark.cli.start_kernel_build): it imports no torch, builds the libraries the command then loads
    without compiling, and builds nothing under FUSIONBENCH_NATIVE=0. Stopped while compiling (the
    command ended first) it leaves no temporary file: only the units it finished, whole, and locks."""
    import ctypes
    import os
    import sys
    import time

    from benchmark import cli

    script = _native_build.__file__
    env = {"FUSIONBENCH_CACHE": str(tmp_path / "off"), "FUSIONBENCH_NATIVE": "0"}
    off = subprocess.run([sys.executable, script], env={**os.environ, **env})
    assert off.returncode == 0 and not (tmp_path / "off").exists()

    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path))
    folder = tmp_path / "native"
    monkeypatch.setattr(_native, "_LIB", [])  # as in a fresh process, which has not loaded the kernels
    proc = cli.start_kernel_build()  # every unit
    for _ in range(400):  # until its compilers run (past the probe, the smallest unit)
        if folder.exists() and sum(x.suffix == ".lock" for x in folder.iterdir()) >= 2:
            break
        time.sleep(0.025)
    time.sleep(0.1)
    assert proc.poll() is None, "the build ended before it could be stopped"
    cli.stop_kernel_build(proc)
    assert proc.returncode != 0
    left = [x for x in folder.iterdir() if x.suffix != ".lock"]
    assert len(left) < len(_native_build.UNITS)  # stopped before its end
    assert not [x for x in left if x.name.startswith(".")]  # no temporary file of the stopped compilers
    for lib in left:  # the units it had finished: whole libraries, kept for the next command
        ctypes.CDLL(str(lib))

    done = subprocess.run([sys.executable, "-X", "importtime", script], capture_output=True, text=True)
    assert done.returncode == 0 and "torch" not in done.stderr
    built = sorted(x.name.split("-")[1] for x in folder.iterdir() if x.suffix == ".so")
    assert built == sorted(_native_build.UNITS)
    assert not [x for x in folder.iterdir() if x.name.startswith(".") and x.suffix != ".lock"]  # no temporaries
    runs = []
    real = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: runs.append(a[0]) or real(*a, **k))
    monkeypatch.setattr(_native, "_LIB", [])
    assert _native.available() and runs == []  # the script's build, loaded as it is
    _native.library().fmi_maps_f64, _native.library().phase_median_f32
    assert runs == []
    assert cli.start_kernel_build() is None  # loaded in this process: nothing to start

    started = []  # what bench eval builds ahead: the units of what it scores (Liu's five by default)
    monkeypatch.setattr(cli, "start_kernel_build", lambda sets: started.append(sets))
    bad = ["eval", "--x1", str(tmp_path / "none"), "--x2", "x", "--fused", "x"]
    for extra in (
        [],
        ["--lineage", "vifb, tang"],
        ["--lineage", "mefb,all"],
        ["--metrics", "Q_FMI,cddfuse:VIF"],  # what --metrics names, not the whole of its sets
        ["--lineage", "cddfuse", "--metrics", "SD"],
        ["--lineage", "tang,vifb", "--metrics", "Qabf,Q_XY"],
        ["--lineage", "tang", "--metrics", "all"],
    ):
        assert cli.main(bad + extra) == 2
    assert started == [  # and the PNG reader's unit (bench eval reads before it scores)
        ["liu", "png"],
        ["tang", "vifb", "png"],
        ["all", "png"],
        ["liu:Q_FMI", "cddfuse:VIF", "png"],
        ["cddfuse:SD", "png"],
        ["tang:Qabf", "vifb:Qabf", "liu:Q_XY", "png"],
        ["tang", "png"],
    ]
    assert _native_build.units_for(["liu"]) == ["mef", "hist_f32", "filter_f32", "liu_f32", "fmi_f32", "qabf_f32"]
    assert _native_build.units_for(None) == _native_build.units_for(["liu", "nonesuch"]) == list(_native_build.UNITS)
    every_set = _native_build.units_for(list(_native_build.METRIC_UNITS))  # --lineage all: each set's, no other
    assert _native_build.units_for(["all"]) == _native_build.units_for(["mefb", "ALL"]) == every_set
    not_called = {"png", "phase_f64", "hist_f64", "fmi_f64", "liu_f64", "dwt_f32"}  # png: eval's reading, added
    assert set(_native_build.UNITS) - set(every_set) == not_called
    assert _native_build.units_for(["cddfuse:SD"]) == ["mef", "hist_f32"]  # SD's unit, not CDDFuse's four
    assert _native_build.units_for(["cddfuse:SD", "png"]) == ["mef", "png", "hist_f32"]  # the reader's, next to read
    assert _native_build.units_for(["png"]) == ["mef", "png"]
    assert "png" in _native_build.units_for(None)
    xy_dct = ["mef", "hist_f32", "filter_f32", "qabf_f32", "fmi_f32"]
    assert _native_build.units_for(["liu:xy", "Tang:fmi_dct"]) == xy_dct  # Liu's without Q_, case aside
    assert _native_build.units_for(["tang:nonesuch"]) == ["mef"]  # the command stops at the name


def test_no_compiler_means_the_pytorch_kernel_with_one_warning(monkeypatch, tmp_path):
    """Where the kernels cannot be built (here: no compiler; likewise no AVX2 or libmvec), one warning
    says so and every FMI and Qp score comes from the PyTorch kernels, unchanged."""
    a, b, f = (x / 255 for x in _images(n=2, size=32))
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    want = metrics.score(f, a, b, metrics=["Q_FMI", "tang:FMI_dct", "mefb:Qp"], lineages="tang,mefb", notes=[])
    monkeypatch.delenv("FUSIONBENCH_NATIVE")
    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(_native, "_LIB", [])
    monkeypatch.setattr(_native, "_PROBLEM", [])
    monkeypatch.setattr(_native_build, "_compiler", lambda: None)
    warned = "hand-written kernels .FMI windows, phase congruency. are not available .no C.. compiler"
    with pytest.warns(RuntimeWarning, match=warned):
        got = metrics.score(f, a, b, metrics=["Q_FMI", "tang:FMI_dct", "mefb:Qp"], lineages="tang,mefb", notes=[])
    assert not _native.available() and _native._PROBLEM
    for k in want:
        assert torch.equal(got[k], want[k]), k
    assert not (tmp_path / "native").exists() or not any((tmp_path / "native").iterdir())


def test_every_entry_point_is_in_its_units_library(monkeypatch, tmp_path, native_kernel):
    """Each entry point _native.SIGNATURES names is exported by the library of its unit (a source built
    for one type keeps that type's entry points alone: simd.h's FUSIONBENCH_TYPE) and by no other unit's
    library of the same source, and every unit is some entry point's."""
    import ctypes

    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path))
    libs = {unit: ctypes.CDLL(str(path)) for unit, path in _native_build.build().items()}
    assert {u for u, _, _ in _native.SIGNATURES.values()} == set(_native_build.UNITS)
    for name, (unit, _, _) in _native.SIGNATURES.items():
        assert hasattr(libs[unit], name), (name, unit)
        for other, (src, _) in _native_build.UNITS.items():
            if other != unit and src == _native_build.UNITS[unit][0]:
                assert not hasattr(libs[other], name), (name, other)


@pytest.mark.parametrize("metric_set", sorted(_native_build.AHEAD))
def test_each_metric_set_calls_the_units_built_ahead_for_it(monkeypatch, tmp_path, native_kernel, metric_set):
    """bench eval / bench run build ahead, while they import torch, the units _native_build.AHEAD lists for
    what they score: each metric set's scoring of float32 images (as bench eval reads them) calls exactly
    those units (and the probe), in the list's order, so the list can neither miss a unit (built then in
    the first batch, on a fresh machine) nor hold one it does not call (built for nothing), and the first
    batch finds what it calls first built first."""
    monkeypatch.setattr(_native, "_LIB", [])  # a fresh process: the units load as they are called
    a, b, f = (x.float() / 255 for x in _images(n=2, size=48))
    metrics.score(f, a, b, lineages=None if metric_set == "liu" else metric_set, notes=[])
    assert _native.library().units() == [_native_build.PROBE, *_native_build.AHEAD[metric_set]]
    assert _native_build.units_for([metric_set]) == _native.library().units()


def test_every_lineage_scored_calls_the_units_built_ahead_for_all(monkeypatch, native_kernel):
    """`--lineage all` builds ahead every metric set's units (_native_build.units_for(["all"])), in the order
    scoring every lineage (Liu's five first) calls them, and no unit that scoring does not call."""
    monkeypatch.setattr(_native, "_LIB", [])  # a fresh process: the units load as they are called
    a, b, f = (x.float() / 255 for x in _images(n=2, size=48))
    metrics.score(f, a, b, lineages="all", notes=[])
    assert _native.library().units() == _native_build.units_for(["all"])


@pytest.mark.parametrize("metric_set", sorted(_native_build.METRIC_UNITS))
def test_each_metric_calls_the_units_built_ahead_for_it(monkeypatch, native_kernel, metric_set):
    """A command that scores some metrics (--metrics) builds ahead the units _native_build.METRIC_UNITS
    lists for them: each metric scored alone on float32 images calls exactly those (and the probe), in
    the entry's order; the set's entries are its metrics in the order it scores them, so the set's own
    list (AHEAD, made of them) is the set's calls, as the test above holds."""
    from metrics.registry import METRICS

    a, b, f = (x.float() / 255 for x in _images(n=2, size=48))
    names = [k for k in METRICS if METRICS[k].lineage == metric_set]
    table = _native_build.METRIC_UNITS[metric_set]
    assert [METRICS[k].key or k for k in names] == list(table)
    for name in names:
        monkeypatch.setattr(_native, "_LIB", [])  # a fresh process: the units load as they are called
        metrics.score(f, a, b, metrics=[name], lineages=None if metric_set == "liu" else metric_set, notes=[])
        key = METRICS[name].key or name
        assert _native.library().units() == [_native_build.PROBE, *table[key]], name
        assert _native_build.units_for([f"{metric_set}:{key}"]) == _native.library().units(), name


def test_a_failed_build_leaves_no_library_behind(monkeypatch, tmp_path, native_kernel):
    """A compiler that fails (here: a flag it rejects) leaves nothing in the cache, and the reason names
    the source file."""
    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(_native_build, "FLAGS", [*_native_build.FLAGS, "--no-such-flag"])
    with pytest.raises(OSError, match=r"could not build metrics/mef_kernel.cpp \(mef\): .*no-such-flag"):
        _native._build()
    assert [x.suffix for x in (tmp_path / "native").iterdir()] == [".lock"]  # no object, no library


def test_native_setting(monkeypatch, native_kernel):
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "off")
    assert _native.setting() == "0" and _native.library() is None and not _native.available()
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "auto")
    assert _native.setting() == "auto" and _native.available()
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "sometimes")
    with pytest.raises(ValueError, match="FUSIONBENCH_NATIVE must be auto or 0"):
        _native.setting()


def test_the_package_data_takes_every_source_the_build_reads():
    """pyproject.toml's package data (what a wheel ships beside the Python files) takes every unit's source
    and header, and no other file of metrics/: a file it leaves out is absent from a wheel's install,
    where that unit then never builds (png_kernel.cpp was, and bench eval read PNGs with Pillow without a
    word). Checked against the patterns, not a built wheel; every source is in the repository."""
    import fnmatch

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pytest's own dependency reads TOML there
        import tomli as tomllib

    root = pathlib.Path(_native_build.__file__).parent
    config = tomllib.loads((root.parent / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["metrics"]
    read = {src.name for src, _ in _native_build.UNITS.values()} | {h.name for h in _native_build.HEADERS}
    assert all((root / name).is_file() for name in read)
    shipped = {p.name for p in root.iterdir() if p.is_file() and any(fnmatch.fnmatch(p.name, g) for g in patterns)}
    assert shipped == read, (sorted(read - shipped), sorted(shipped - read))


def test_the_kernels_source_is_part_of_the_metrics_code_hash(tmp_path, monkeypatch):
    """bench eval's kept batches and bench run's fingerprints hash the metrics' code: the C++ kernel's
    source counts, so an edit to it scores again instead of reusing stale scores."""
    import shutil

    from benchmark import provenance

    shutil.copytree(provenance.os.path.join(provenance.PROJECT, "metrics"), tmp_path / "metrics")
    monkeypatch.setattr(provenance, "PROJECT", str(tmp_path))
    before = provenance.metrics_code()
    for name in ("fmi_kernel.cpp", "phase_kernel.cpp", "simd.h"):
        kernel = tmp_path / "metrics" / name
        kernel.write_text(kernel.read_text() + "\n// edited\n")
        assert provenance.metrics_code() != before, name
        before = provenance.metrics_code()


def test_the_avx2_build_gives_the_same_values(tmp_path, monkeypatch, native_kernel):
    """A CPU without AVX-512 gets the kernel in 256-bit registers (8 floats, 4 doubles) and libmvec's
    AVX2 logarithms: built here for such a CPU (-march=haswell), its scores equal the PyTorch kernel's
    as the AVX-512 build's do."""
    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(
        _native_build, "FLAGS", [f if f != "-march=native" else "-march=haswell" for f in _native_build.FLAGS]
    )
    monkeypatch.setattr(_native, "_LIB", [])
    dll = _native.library()
    assert dll is not None and "haswell" in " ".join(_native_build.FLAGS)
    a, b, f = _images(n=1, size=30)
    src, ff, ps, pf, offsets = _windows(a, b, f)
    perm = torch.randperm(ps.numel(), generator=torch.Generator().manual_seed(1))[:-3]
    for order in (torch.arange(ps.numel() - 1), perm):
        for dtype, score_f32, atol in (
            (torch.float64, False, 1e-12),
            (torch.float32, False, 6e-5),
            (torch.float64, True, 6e-5),
        ):
            x, y = src.to(dtype), ff.to(dtype)
            kernel = fmi._fmi_at_f32 if score_f32 else fmi._fmi_at
            want = kernel(x, y, ps[order], pf[order], offsets)
            got = _native.fmi_windows(x, y, ps[order], pf[order], offsets, score_f32)
            torch.testing.assert_close(got, want, rtol=0, atol=atol)
    # The filters' zero skipping (movemasks in 256-bit registers): the same values as every output computed
    from metrics.filters import gaussian_1d, separable_matmul

    gen = torch.Generator().manual_seed(9)
    for dtype in (torch.float64, torch.float32):
        x = _zero_background((2, 1, 45, 70), gen, dtype)
        g = gaussian_1d(11, 1.5, dtype=dtype)
        out = []
        for on in (1, 0):
            _native.filter_skip_zeros(dtype, on)
            out.append(separable_matmul(x, g, "same"))
        _native.filter_skip_zeros(dtype, 1)
        assert out[0].numpy().tobytes() == out[1].numpy().tobytes() and (out[0] == 0).float().mean() > 0.2


def test_phase_kernel_equals_the_pytorch_sums(monkeypatch, native_kernel):
    """Phase congruency's per-orientation sums over the scales (phase_kernel.cpp) against
    metrics.lineage.phase._orientation on an image's real responses (float64 within 1e-13 relative,
    float32 1e-6), the same whatever torch's thread count; so is the whole phase congruency against the
    PyTorch kernels'; MEFB's Qp then uses them, compiles nothing, and scores as with the PyTorch
    kernels (FUSIONBENCH_NATIVE=0)."""
    from metrics import _compile
    from metrics.lineage import phase

    a, b, f = (x / 255 for x in _images(n=4, size=128))
    for dtype, tol in ((torch.float64, 1e-13), (torch.float32, 1e-6)):
        im = f.to(dtype)
        filters = phase._bank(128, 128)[0].to(dtype)
        spectrum = torch.fft.fft2(im)[:, 0]
        parts = torch.view_as_real(torch.fft.ifft2(filters[1][:, None] * spectrum[None])).reshape(4, -1, 2)
        want = phase._orientation(parts)
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            one = _native.orientation(parts, phase.EPSILON)
            torch.set_num_threads(2)
            two = _native.orientation(parts, phase.EPSILON)
        finally:
            torch.set_num_threads(threads)
        assert all(torch.equal(x, y) for x, y in zip(one, two))
        for got, ref in zip(two, want):
            assert got.dtype == dtype and got.shape == ref.shape
            torch.testing.assert_close(got, ref, rtol=tol, atol=tol * float(ref.abs().max()))
    # Whole phase congruency (the kernels' sums, then each orientation's share of the totals and their
    # end): as the PyTorch kernels' within rounding, NaN where they are NaN (a constant image's 0 / 0),
    # and the same on one thread and two.
    im = torch.cat([f[:3], torch.full_like(f[:1], 0.25)])
    for dtype, tol in ((torch.float64, 1e-13), (torch.float32, 1e-6)):
        x = im.to(dtype)
        try:
            torch.set_num_threads(1)
            one = phase.phase_congruency(x)
            torch.set_num_threads(2)
            two = phase.phase_congruency(x)
        finally:
            torch.set_num_threads(threads)
        monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
        want = phase.phase_congruency(x)
        monkeypatch.delenv("FUSIONBENCH_NATIVE")
        for got, same, ref in zip(two, one, want):
            assert torch.equal(got.isnan(), ref.isnan()) and not ref[:3].isnan().any()
            assert torch.equal(got.nan_to_num(), same.nan_to_num())
            torch.testing.assert_close(got[:3], ref[:3], rtol=tol, atol=tol)
        assert want[1][3].isnan().all() and want[2][3].isnan().all()  # the constant image's moments: 0 / 0
    calls = []
    monkeypatch.setattr(_compile, "call", lambda fn, *args, **kw: calls.append(fn) or fn(*args))
    a, b, f = (x[:2, :, :48, :48] for x in (a, b, f))
    with _compile.compiling(True):
        native = metrics.score(f, a, b, metrics=["mefb:Qp"], lineages="mefb", notes=[])["Qp"]
    assert calls == []
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    with _compile.compiling(True):
        pytorch = metrics.score(f, a, b, metrics=["mefb:Qp"], lineages="mefb", notes=[])["Qp"]
    assert phase._orientation in calls
    torch.testing.assert_close(native, pytorch, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_filter_kernel_equals_the_banded_matrices(monkeypatch, native_kernel, dtype):
    """On a CPU metrics.filters.separable_matmul filters with filter_kernel.cpp, against the banded
    matrix products it replaces (blocks=True, which the tests of test_metrics_properties.py hold to the
    2-D window): every padding, strides 1 and 2, 3 to 31 taps, sides that are no multiple of a SIMD
    register and a side of exactly k pixels; float64 within 1e-12 relative to the largest value,
    float32 within 2e-6. A batch gives its maps one by one bit for bit. Not used where
    FUSIONBENCH_NATIVE=0, where autograd records the input, or on a side shorter than the window."""
    from metrics.filters import gaussian_1d, separable_matmul

    calls = []
    real = _native.separable
    monkeypatch.setattr(_native, "separable", lambda *a: calls.append(a[0].shape) or real(*a))
    gen = torch.Generator().manual_seed(5)
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    for shape in ((2, 3, 47, 61), (1, 2, 240, 240), (1, 1, 11, 13)):
        x = (torch.rand(shape, generator=gen, dtype=torch.float64) * 255).round().to(dtype)
        x = x * x  # local second moments' range, 0..65025
        for k in (3, 5, 11, 31):
            if k > min(shape[-2:]):
                continue
            g = gaussian_1d(k, k / 5, dtype=dtype)
            for pad in ("valid", "same", "replicate", "reflect", "symmetric"):
                if pad in ("reflect", "symmetric") and k // 2 >= min(shape[-2:]):
                    continue
                for stride in (1, 2):
                    n = len(calls)
                    got = separable_matmul(x, g, pad, stride)
                    assert len(calls) == n + 1, "the hand-written kernel was not used"
                    want = separable_matmul(x, g, pad, stride, blocks=True)
                    assert got.dtype == dtype and got.shape == want.shape
                    torch.testing.assert_close(got, want, rtol=0, atol=tol * float(x.max()))
                    one = torch.cat([separable_matmul(x[i : i + 1], g, pad, stride) for i in range(shape[0])])
                    assert torch.equal(one, got)
    n = len(calls)
    x = torch.rand(1, 1, 30, 30, dtype=dtype)
    g = gaussian_1d(11, 1.5, dtype=dtype)
    separable_matmul(x.clone().requires_grad_(), g)  # autograd: the matrices, which it differentiates
    separable_matmul(torch.rand(1, 1, 9, 30, dtype=dtype), g, "same")  # a side of 9 < 11 taps
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    monkeypatch.setattr(_native, "_LIB", [])
    separable_matmul(x, g)
    assert len(calls) == n


def _both_paths(x, windows, switch, dtype):
    """The separable filter of ``x`` with each of ``windows`` (1-D taps), every padding and strides 1 and 2 that
    its sides allow, once with the kernel's ``switch`` (``_native.filter_permutes`` or ``filter_skip_zeros``)
    on and once off: yields (taps, padding, stride, [output on, output off])."""
    from metrics.filters import separable_matmul

    for g in windows:
        k = g.numel()
        if k > min(x.shape[-2:]):
            continue
        for pad in ("valid", "same", "replicate", "reflect", "symmetric"):
            if pad in ("reflect", "symmetric") and k // 2 >= min(x.shape[-2:]):
                continue
            for stride in (1, 2):
                out = []
                for on in (1, 0):
                    assert switch(dtype, on) in (0, 1) and switch(dtype) == on
                    out.append(separable_matmul(x, g, pad, stride))
                yield k, pad, stride, out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_filter_kernel_horizontal_pass_by_permutes_equals_the_pass_by_loads(native_kernel, dtype):
    """filter_kernel.cpp's horizontal pass builds each tap's samples by two-register permutes on Intel
    processors with AVX-512 (hrow) and loads them unaligned elsewhere (combine): the same multiply-adds in
    the same order, so the same values bit for bit, NaN included: widths of whole blocks (240), blocks and
    a remainder (230, 100), fewer than a block (47, 13), every padding, strides 1 and 2, 3 to 31 taps. A build
    without the permutes (AVX2) says so (-1) and keeps the loads."""
    from metrics.filters import gaussian_1d

    was = _native.filter_permutes(dtype)
    if was == -1:
        assert _native.filter_permutes(dtype, 1) == -1 and _native.filter_permutes(dtype) == -1
        return
    gen = torch.Generator().manual_seed(11)
    try:
        for shape in ((1, 2, 240, 240), (2, 1, 37, 230), (1, 1, 31, 100), (1, 2, 50, 47), (1, 1, 13, 13)):
            x = (torch.rand(shape, generator=gen, dtype=torch.float64) * 255).to(dtype)
            x[0, 0, 5, 7] = float("nan")
            windows = [gaussian_1d(k, 1.5, dtype=dtype) for k in (3, 11, 31)]
            for k, pad, stride, out in _both_paths(x, windows, _native.filter_permutes, dtype):
                assert out[0].isnan().any() and out[0].shape == out[1].shape
                assert out[0].numpy().tobytes() == out[1].numpy().tobytes(), (shape, k, pad, stride)
    finally:
        _native.filter_permutes(dtype, was)
    assert _native.filter_permutes(dtype) == was


def _zero_background(shape, gen, dtype):
    """Maps of ``shape`` as a brain slice is: an elliptic region of values in a background of zeros (-0 among
    them), rows and columns of zeros at the edges, a NaN and an infinity inside, lone pixels at an edge and a
    corner; the second map of a batch all zero where there is one, the last channel dense where there are two."""
    h, w = shape[-2:]
    x = torch.rand(shape, generator=gen, dtype=torch.float64) * 255
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    blob = ((yy - h * 0.45) / (h * 0.3)) ** 2 + ((xx - w * 0.6) / (w * 0.25)) ** 2 < 1
    x = torch.where(blob, x, torch.zeros(()))
    x[..., 0, : w // 3] = -0.0
    x[..., h // 2, int(w * 0.6)] = float("nan")
    x[..., h // 2 + 1, int(w * 0.6)] = float("inf")
    x[..., 1, w - 1] = 7.0
    x[..., h - 1, 0] = -3.0
    if shape[0] > 1:
        x[1] = 0.0
    if shape[1] > 1:
        x[:, -1] = torch.rand((shape[0], h, w), generator=gen, dtype=torch.float64) + 0.5
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_filter_kernel_skipping_zeros_equals_computing_every_output(native_kernel, dtype):
    """filter_kernel.cpp computes only the outputs whose taps reach a row's nonzero samples and writes +0 for
    the rest (filter_skip_zeros on, the default): the same values bit for bit as computing every output, on
    maps with zero backgrounds (-0, all-zero rows and maps, NaN and infinities inside, lone pixels at the
    edges), widths of whole blocks and registers and of remainders, every padding, strides 1 and 2, Gaussian
    windows of 3 to 31 taps, a window with negative and zero taps, and the products separable_products makes;
    the horizontal pass by loads and by permutes (Intel's). An infinite tap turns the skipping off (infinity
    times zero is NaN)."""
    from metrics.filters import gaussian_1d, separable_matmul
    from metrics.lineage.kernels import moment_maps

    was, permuting = _native.filter_skip_zeros(dtype), _native.filter_permutes(dtype)
    assert was == 1
    gen = torch.Generator().manual_seed(5)
    windows = [gaussian_1d(k, 1.5, dtype=dtype) for k in (3, 11, 17, 31)]
    windows.append(torch.tensor([1.0, 0.0, -2.0, 0.5, 0.0, 1.0, -0.25], dtype=dtype))
    checked = 0
    try:
        shapes = ((2, 2, 240, 240), (1, 1, 64, 200), (2, 1, 37, 230), (1, 1, 31, 100), (1, 2, 50, 47), (1, 1, 13, 13))
        for shape in shapes:
            x = _zero_background(shape, gen, dtype)
            # the horizontal pass on a row's nonzero part by loads (combine) and, where built, by permutes (hrow)
            for permutes in (0, 1) if permuting != -1 else (-1,):
                _native.filter_permutes(dtype, permutes)
                for k, pad, stride, out in _both_paths(x, windows, _native.filter_skip_zeros, dtype):
                    assert out[0].shape == out[1].shape and out[0].isnan().any()
                    assert out[0].numpy().tobytes() == out[1].numpy().tobytes(), (shape, k, pad, stride, permutes)
                    checked += 1
            _native.filter_permutes(dtype, permuting)
            a, b = x[:, :1], _zero_background((shape[0], 1, *shape[-2:]), gen, dtype)
            for g in windows[1:3]:
                if g.numel() <= min(shape[-2:]):
                    out = []
                    for on in (1, 0):
                        _native.filter_skip_zeros(dtype, on)
                        out.append(moment_maps([a, b], [(0, 0), (1, 1), (0, 1)], g, "same"))
                    assert out[0].numpy().tobytes() == out[1].numpy().tobytes(), (shape, g.numel())
                    checked += 1
        x = _zero_background((1, 1, 40, 60), gen, dtype)
        g = torch.tensor([1.0, float("inf"), 1.0], dtype=dtype)
        out = []
        for on in (1, 0):
            _native.filter_skip_zeros(dtype, on)
            out.append(separable_matmul(x, g, "same"))
        assert out[0].numpy().tobytes() == out[1].numpy().tobytes() and out[0][..., 20:, :3].isnan().all()
    finally:
        _native.filter_skip_zeros(dtype, was)
        _native.filter_permutes(dtype, permuting)
    assert _native.filter_skip_zeros(dtype) == was and _native.filter_permutes(dtype) == permuting and checked > 200


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rank_one_3x3_kernel_equals_the_pytorch_passes_bit_for_bit(monkeypatch, native_kernel, dtype):
    """metrics.filters.filter_rank_one_3 (Sobel and Prewitt windows: the lineages' edges, Liu's Q_G) runs in
    filter_kernel.cpp on a CPU, with the values of its PyTorch passes bit for bit: zero taps skipped (an
    infinity next to one stays finite), taps of 1 and tiny taps, NaN, infinities and -0 in the images (a NaN's
    sign aside), sides of 3 pixels and sides that are no multiple of a SIMD register, channels; a batch is its
    maps one by one. Likewise the 'same' correlation (zero_pad), which the kernel pads itself, against the
    passes over F.pad's copy, down to sides of 1 and 2 pixels."""
    from metrics import filters

    calls = []
    real = _native.rank_one_3
    monkeypatch.setattr(_native, "rank_one_3", lambda *a: calls.append(1) or real(*a))
    zero_pad = [(False, ((4, 1, 242, 242), (2, 3, 17, 5), (1, 1, 3, 3), (3, 1, 3, 40)))]
    zero_pad.append((True, ((4, 1, 240, 240), (2, 3, 17, 5), (1, 1, 1, 1), (3, 1, 2, 40), (2, 1, 33, 1))))
    gen = torch.Generator().manual_seed(2)
    windows = [
        ((0.5, 1.0, 0.5), (-2.0, 0.0, 2.0)),  # Sobel as rank_one_3x3 factors it
        ((1.0, -0.0, -1.0), (-1.0, -2.0, -1.0)),
        ((1.0, 1.0, 1.0), (1.0, 0.0, -1.0)),  # Prewitt
        ((0.3, -1.7, 2.1), (0.1, 0.0, 1e-50)),  # a tap that is 0 only once converted to float32
        ((0.0, 0.0, 0.0), (1.0, 2.0, 1.0)),
    ]
    for pad, shapes in zero_pad:
        for shape in shapes:
            x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 100).to(dtype)
            flat = x.view(-1)
            flat[::97], flat[5::101], flat[7::103], flat[9::107] = float("nan"), float("inf"), -0.0, float("-inf")
            flat[-1] = -0.0 if pad else flat[-1]  # a -0 at a corner, beside the padding's zeros
            for u, v in windows:
                n = len(calls)
                got = filters.filter_rank_one_3(x, u, v, zero_pad=pad)
                assert len(calls) == n + 1, "the hand-written kernel was not used"
                with monkeypatch.context() as m:
                    m.setattr(_native, "cpu_ready", lambda *a: False)
                    want = filters.filter_rank_one_3(x, u, v, zero_pad=pad)
                    if pad:
                        assert torch.equal(
                            want.nan_to_num(7.0),
                            filters.filter_rank_one_3(torch.nn.functional.pad(x, (1, 1, 1, 1)), u, v).nan_to_num(7.0),
                        )
                assert got.dtype == dtype and got.shape == want.shape == (
                    *shape[:2],
                    *(s - 2 + 2 * pad for s in shape[2:]),
                )
                nan = want.isnan()
                assert torch.equal(got.isnan(), nan)
                assert torch.equal(got[~nan], want[~nan]) and torch.equal(got[~nan].signbit(), want[~nan].signbit())
                one = torch.cat([filters.filter_rank_one_3(x[i : i + 1], u, v, zero_pad=pad) for i in range(shape[0])])
                assert torch.equal(one.nan_to_num(7.0), got.nan_to_num(7.0))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_normalize1_kernel_equals_the_pytorch_steps_bit_for_bit(monkeypatch, native_kernel, dtype):
    """normalize1 (MEFB's and VIFB's Q_CB, Q_CV and information measures) runs in hist_kernel.cpp on a CPU, with
    its PyTorch steps' values bit for bit: integer and fractional images (halves rounded away from zero),
    an all-zero image kept, a constant non-zero one NaN (0 / 0), a NaN or an infinity in an image, -0, sizes
    that are no multiple of a SIMD register and a single pixel; likewise Liu's Q_NCIE's normalize1 and VIFB's
    minmax_255 by the same kernel, a constant image (or one holding a NaN) zeros there."""
    import importlib

    from metrics.lineage import kernels as K

    calls = []
    real = _native.normalize1
    monkeypatch.setattr(_native, "normalize1", lambda x, **k: calls.append(1) or real(x, **k))
    gen = torch.Generator().manual_seed(4)
    for shape in ((6, 1, 240, 240), (6, 1, 7, 5), (1, 1, 1, 1), (6, 1, 33, 17)):
        x = (torch.rand(shape, generator=gen, dtype=torch.float64) * 300 - 20).to(dtype)
        if shape[0] > 1:
            x[0] = x[0].round()
            x[1] = 0.0  # kept as it is
            x[2] = 5.0  # 0 / 0
            x[3].view(-1)[-1] = float("nan")
            x[4].view(-1)[3] = float("inf")
            x[5] = (torch.arange(x[5].numel(), dtype=dtype).view(x[5].shape) % 3) * 0.5 + 1  # halves: 1, 1.5, 2
            x[0].view(-1)[2] = -0.0
        got = K.normalize1(x)
        assert len(calls) == 1 and got.dtype == dtype and got.shape == x.shape
        calls.clear()
        with monkeypatch.context() as m:
            m.setattr(_native, "cpu_ready", lambda *a: False)
            want = K.normalize1(x)
        nan = want.isnan()
        assert torch.equal(got.isnan(), nan)
        assert torch.equal(got[~nan], want[~nan]) and torch.equal(got[~nan].signbit(), want[~nan].signbit())
        # the kernel's other callers, whose rule makes a constant image (or one holding a NaN) zeros: Liu's
        # Q_NCIE and VIFB's mutinf, each against its own eager steps
        ncie = importlib.import_module("metrics.ncie")
        for fn in (ncie.normalize1, K.minmax_255):
            got = fn(x)
            with monkeypatch.context() as m:
                m.setattr(_native, "cpu_ready", lambda *a: False)
                want = fn(x)
            assert len(calls) == 1 and torch.equal(got.isnan(), want.isnan()), fn.__qualname__
            calls.clear()
            nan = want.isnan()
            assert torch.equal(got[~nan], want[~nan]) and torch.equal(got[~nan].signbit(), want[~nan].signbit())
            if shape[0] > 1:
                assert got[[1, 2, 3]].abs().sum() == 0 and got[4].isnan().sum() == 1, fn.__qualname__


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_halve_kernel_equals_the_pytorch_steps_bit_for_bit(monkeypatch, native_kernel, dtype):
    """MEF-SSIM's step between scales (Tang's MS_SSIM, MEFB's MEF_SSIM: ``tang._halve``) runs in
    filter_kernel.cpp on a CPU, with its PyTorch steps' values bit for bit: even and odd sides (the last row
    or column repeated), a single row, column or pixel, several maps a batch, a non-contiguous view, and
    NaN, infinities and -0 carried as the additions carry them."""
    from metrics.lineage import tang

    calls = []
    real = _native.halve
    monkeypatch.setattr(_native, "halve", lambda x: calls.append(1) or real(x))
    gen = torch.Generator().manual_seed(5)
    shapes = ((4, 1, 240, 240), (2, 3, 15, 15), (1, 1, 7, 8), (2, 1, 8, 7), (3, 1, 1, 1), (2, 1, 1, 5), (1, 1, 6, 1))
    for shape in shapes:
        x = (torch.rand(shape, generator=gen, dtype=torch.float64) * 255).to(dtype)
        if x.numel() > 8:
            x.view(-1)[:4] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0], dtype=dtype)
        for arg in (x, x.transpose(-1, -2)):
            got = tang._halve(arg)
            assert len(calls) == 1 and got.dtype == dtype
            calls.clear()
            with monkeypatch.context() as m:
                m.setattr(_native, "cpu_ready", lambda *a: False)
                want = tang._halve(arg)
            assert got.shape == want.shape == (*arg.shape[:-2], (arg.shape[-2] + 1) // 2, (arg.shape[-1] + 1) // 2)
            nan = want.isnan()
            assert torch.equal(got.isnan(), nan)
            assert torch.equal(got[~nan], want[~nan]) and torch.equal(got[~nan].signbit(), want[~nan].signbit())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_quantize_255_kernel_equals_the_pytorch_steps_bit_for_bit(monkeypatch, native_kernel, dtype):
    """The toolbox's 8-bit values of the images (metrics.toolbox_input.quantize_255: x * 255, rounded half to
    even, clamped to 0..255) come from hist_kernel.cpp's one pass on a CPU, with PyTorch's values bit for bit:
    every 8-bit value's k / 255, the halves between them (ties to even), values outside [0, 1], -0, NaN and
    infinities, sizes that are no multiple of a SIMD register; quantize=False keeps the plain product."""
    from metrics import toolbox_input

    calls = []
    real = _native.quantize_255
    monkeypatch.setattr(_native, "quantize_255", lambda x: calls.append(1) or real(x))
    k = torch.arange(256, dtype=torch.float64)
    x = torch.cat([k / 255, (k + 0.5) / 255, torch.rand(1000, dtype=torch.float64) * 1.4 - 0.2])
    x = torch.cat([x, torch.tensor([-0.0, 0.0, float("nan"), float("inf"), float("-inf"), -1e-9, 1 + 1e-9])])
    for shape in ((x.numel(),), (1, 1, 1, 1), (3, 1, 7, 5)):
        xs = x[: math.prod(shape)].reshape(shape).to(dtype)
        got = toolbox_input.quantize_255(xs)
        assert len(calls) == 1
        calls.clear()
        with monkeypatch.context() as m:
            m.setattr(_native, "cpu_ready", lambda *a: False)
            want = toolbox_input.quantize_255(xs)
        nan = want.isnan()
        assert got.dtype == dtype and got.shape == want.shape and torch.equal(got.isnan(), nan)
        assert torch.equal(got[~nan], want[~nan]) and torch.equal(got[~nan].signbit(), want[~nan].signbit())
    assert torch.equal(toolbox_input.quantize_255(x, False).nan_to_num(7.0), (x * 255.0).nan_to_num(7.0)) and not calls


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_integer_flags_of_the_lineage_images_from_the_kernel(monkeypatch, native_kernel, dtype):
    """The lineage metrics' per-sample flags (F integer-valued; A and B integer-valued), which pick each
    original's rule for float images, come from hist_kernel.cpp's one pass on a CPU, as PyTorch's
    x == round(x) gives them: a half, a NaN (not whole), an infinity (whole), large values with and
    without a fraction, negative values and -0, sizes that are no multiple of a SIMD register."""
    from metrics._lineage_images import LineageImages

    gen = torch.Generator().manual_seed(6)
    for shape in ((7, 1, 240, 240), (7, 1, 7, 5), (7, 1, 1, 1)):
        x = (torch.rand(shape, generator=gen, dtype=torch.float64) * 255).round().to(dtype)
        x[1].view(-1)[-1] += 0.5
        x[2].view(-1)[0] = float("nan")
        x[3].view(-1)[-1] = float("inf")
        x[4] = x[4] * 1e5 + 0.5  # a fraction above 2^16
        x[5] = -x[5] - 0.0
        x[6] = x[6] * 1e9 + (0.25 if dtype == torch.float64 else 256.0)  # past 2^23: whole in float32
        want = (x == torch.round(x)).flatten(1).all(dim=1)
        assert torch.equal(_native.integer_valued(x), want)
        ones = torch.ones_like(x)
        for a, b, f in ((x, ones, ones), (ones, x, x)):
            li = LineageImages(a, b, f)
            assert torch.equal(li.f_integer, (f == torch.round(f)).flatten(1).all(dim=1))
            assert li.ab_integer == bool(((a == torch.round(a)) & (b == torch.round(b))).all())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_dwt_kernel_equals_the_matrix_products(monkeypatch, native_kernel, dtype):
    """Tang's FMI_w feature, MATLAB's dwt2(x, 'dmey') as a mosaic, by filter_kernel.cpp's dwt2 against the
    two matrix products it replaces (FUSIONBENCH_NATIVE=0; test_wavelet.py holds both to a per-row NumPy
    form of the algorithm): a 240x240 slice, sides that are no multiple of a SIMD register, and sides
    shorter than the 102 taps (mirrored again and again); float64 within 1e-12 relative to the largest
    value, float32 within 2e-6. A batch gives its images one by one bit for bit. Not used where
    FUSIONBENCH_NATIVE=0 or where autograd records the input."""
    from metrics.lineage import wavelet

    calls = []
    real = _native.dwt2
    monkeypatch.setattr(_native, "dwt2", lambda *a: calls.append(a[0].shape) or real(*a))
    gen = torch.Generator().manual_seed(7)
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    shapes = ((2, 1, 240, 240), (3, 1, 23, 31), (2, 1, 5, 7), (1, 1, 37, 120))
    xs = [(torch.rand(s, generator=gen, dtype=torch.float64) * 255).round().to(dtype) for s in shapes]
    got = []
    for x in xs:
        got.append(wavelet.dwt2_mosaic(x))
        one = torch.cat([wavelet.dwt2_mosaic(x[i : i + 1]) for i in range(x.shape[0])])
        assert torch.equal(one, got[-1])
    n = sum(1 + x.shape[0] for x in xs)  # each batch, then its images one by one
    assert len(calls) == n, "the hand-written kernel was not used"
    wavelet.dwt2_mosaic(xs[2].clone().requires_grad_())  # autograd: the matrices
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    monkeypatch.setattr(_native, "_LIB", [])
    for x, g in zip(xs, got, strict=True):
        want = wavelet.dwt2_mosaic(x)
        assert g.dtype == dtype and g.shape == want.shape
        torch.testing.assert_close(g, want, rtol=0, atol=tol * float(want.abs().max()))
    assert len(calls) == n


def test_edge_kernel_equals_the_pytorch_steps(monkeypatch, native_kernel):
    """MATLAB's Sobel edge map (kernels.edge_sobel: the feature of Tang's FMI_pixel and MEFB's FMI) by
    qabf_kernel.cpp's two passes against the PyTorch steps (FUSIONBENCH_NATIVE=0), bit for bit: integer
    and non-integer images, float32 ones, steps whose two columns tie (the thinning's asymmetric test),
    images narrower than the window (one row, one column), a constant image (no edge); a batch equals
    its images one by one."""
    from metrics.lineage import kernels as K

    calls = []
    real = _native.edge_gradients
    monkeypatch.setattr(_native, "edge_gradients", lambda d: calls.append(d.shape) or real(d))
    gen = torch.Generator().manual_seed(11)
    cases = []
    for shape in ((3, 1, 240, 240), (2, 1, 23, 31), (2, 1, 1, 9), (2, 1, 3, 1)):
        x = (torch.rand(shape, generator=gen, dtype=torch.float64) * 255).round()
        cases += [x, x + torch.rand(shape, generator=gen, dtype=torch.float64), x.float()]
    step = torch.zeros(2, 1, 16, 20, dtype=torch.float64)
    step[0, ..., 10:] = 200.0
    step[1] = 7.0
    cases += [step, step.transpose(-1, -2).contiguous()]
    got = []
    for x in cases:
        got.append(K.edge_sobel(x))
        assert torch.equal(torch.cat([K.edge_sobel(x[i : i + 1]) for i in range(x.shape[0])]), got[-1])
    n = len(calls)
    assert n == sum(1 + x.shape[0] for x in cases), "the hand-written kernel was not used"
    assert all(g.sum() > 10 for g in got[:6])  # the random images have edges to thin
    assert got[-2][0, 0, :, 10].all() and got[-2].sum() == 16 and not got[-2][1].any()
    for x in cases[1::3]:  # the gradients themselves, bit for bit (non-integer images: every sum rounds)
        sobel = K.kernel(K.SOBEL_H1, x) / 8
        gx, gy, b = _native.edge_gradients(x)
        assert torch.equal(gy, K.filt(x, sobel, "replicate")) and torch.equal(gx, K.filt(x, sobel.t(), "replicate"))
        assert torch.equal(b, gx * gx + gy * gy)
    n = len(calls)
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    monkeypatch.setattr(_native, "_LIB", [])
    for x, g in zip(cases, got, strict=True):
        want = K.edge_sobel(x)
        assert g.dtype == want.dtype == x.dtype and torch.equal(g, want)
    assert len(calls) == n


def test_entropy_kernel_equals_the_exact_sum(monkeypatch, native_kernel):
    """The entropy of the lineages' joint histograms (kernels.entropy of 65,536 cells: hist_kernel.cpp)
    against an exact sum (math.fsum) of -p log p: within 1e-14 nats in float64 (summed with
    compensation: a plain sum of the background's cell and thousands of small ones lost 4e-14) and
    within 2e-6 in float32 (the PyTorch steps sum float32 tables in float32), each row alone; an empty
    row is 0; the PyTorch steps take small tables, and all tables where FUSIONBENCH_NATIVE=0."""
    import math

    from metrics.lineage import kernels as K

    calls = []
    real = _native.table_entropy
    monkeypatch.setattr(_native, "table_entropy", lambda c: calls.append(c.shape) or real(c))
    g = torch.Generator().manual_seed(13)
    tables = []
    for spread, background in ((40, 30000), (3, 0), (256, 50000), (1, 10)):
        a = torch.randint(0, 256, (57600,), generator=g)
        b = (a + torch.randint(0, spread, (57600,), generator=g)).clamp(max=255)
        a[:background], b[:background] = 0, 0
        tables.append(K.joint_hist(a.view(1, 1, 240, 240).double(), b.view(1, 1, 240, 240).double())[0])
    tables.append(torch.zeros(256, 256, dtype=torch.float64))
    h = torch.stack(tables)  # (5, 256, 256)
    exact = []
    for t in tables:
        n = float(t.sum())
        exact.append(-math.fsum(c / n * math.log(c / n) for c in t.flatten().tolist() if c > 0) if n else 0.0)
    exact = torch.tensor(exact, dtype=torch.float64)
    got = K.entropy(h, dims=(1, 2))
    assert calls == [(5, 65536)] and got.dtype == torch.float64
    torch.testing.assert_close(got, exact, rtol=0, atol=1e-14)
    got32 = K.entropy(h.float(), dims=(1, 2))
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), exact, rtol=0, atol=2e-6)
    assert torch.equal(torch.cat([K.entropy(h[i : i + 1], dims=(1, 2)) for i in range(5)]), got)
    n = len(calls)
    K.entropy(h.sum(dim=2))  # 256 cells: the PyTorch steps
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    monkeypatch.setattr(_native, "_LIB", [])
    plain = K.entropy(h, dims=(1, 2))
    assert len(calls) == n
    torch.testing.assert_close(plain, exact, rtol=0, atol=1e-14)


def test_mef_kernel_equals_the_pytorch_steps(monkeypatch, native_kernel):
    """MEF-SSIM's per-pixel steps (mef_kernel.cpp: the desired patch from the sources' moments, then F's
    structure index and its mean) against tang.py's PyTorch steps (FUSIONBENCH_NATIVE=0) on images with
    flat patches (the ill-conditioned ratio R), F = 255 - A (negative scores, complex powers) and a
    constant F, at every scale of the multi-scale index: the desired patch's six maps within 1e-12
    relative, the scores within 1e-12; a batch gives its images one by one bit for bit; used for two
    float64 sources on a CPU, not for three."""
    from metrics.lineage import tang

    a, b, f = _images(n=4, size=64)
    f[1] = 255 - a[1]
    f[2] = 40.0
    calls = []
    for name in ("mef_desired", "mef_score"):
        real = getattr(_native, name)
        monkeypatch.setattr(_native, name, lambda *x, real=real, name=name: calls.append(name) or real(*x))
    seq = [b, a]
    got = tang._desired(seq)
    got_scores = tang.mef_ms_ssim(seq, f)
    one = torch.cat([tang.mef_ms_ssim([b[i : i + 1], a[i : i + 1]], f[i : i + 1]) for i in range(4)])
    assert calls.count("mef_desired") == 1 + 3 + 4 * 3 and calls.count("mef_score") == 3 + 4 * 3
    assert got[5] is not None and torch.equal(one, got_scores)
    assert tang._desired([a, b, f])[5] is None  # three sources: the PyTorch steps
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    monkeypatch.setattr(_native, "_LIB", [])
    want = tang._desired(seq)
    assert want[5] is None
    for x, y in zip([*got[0], *got[1:5]], [*want[0], *want[1:5]]):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-12 * float(y.abs().max()))
    torch.testing.assert_close(got_scores, tang.mef_ms_ssim(seq, f), rtol=0, atol=1e-12)
    assert float(got_scores[1]) < 0.1 and len(calls) == 1 + 3 + 3 + 4 * 6  # nothing native after the switch


def test_mef_kernel_background_registers_equal_their_sums(native_kernel):
    """mef_kernel.cpp gives a register of pixels whose ten inputs are all +0 (an image's background) the
    values it computes once for +0: the same bits as a +0 pixel computed beside nonzero ones, every map;
    a -0 input, or a NaN, is computed. On a pair of zero-background sources, MEF-SSIM's desired patch
    equals the PyTorch steps' as on any images (test_mef_kernel_equals_the_pytorch_steps)."""
    from metrics.lineage import tang

    lanes = 64  # at least four registers of float64 lanes on any build: register 0 all +0, the rest mixed
    box, gauss = torch.zeros(1, 5, 1, lanes, dtype=torch.float64), torch.zeros(1, 5, 1, lanes, dtype=torch.float64)
    box[0, :, 0, 9], gauss[0, :, 0, 9] = 121 * 30.0, 30.0  # a nonzero pixel in the second register
    box[0, 2, 0, 20] = 1.0
    box[0, 0, 0, 33] = -0.0
    gauss[0, 4, 0, 45] = float("nan")
    out = _native.mef_desired(box, gauss)[0, :, 0]
    background = out[:, 0]
    assert background.isfinite().all() and (background != 0).any()
    for lane in range(lanes):
        if lane not in (9, 20, 33, 45):
            assert out[:, lane].numpy().tobytes() == background.numpy().tobytes(), lane
    assert not torch.equal(out[:, 9], background) and out[:, 45].isnan().any()
    # real images with zero backgrounds, against the PyTorch steps
    a, b, _ = _images(n=2, size=64)
    a[:, :, :20] = 0.0
    b[:, :, :20] = 0.0
    got = tang._desired([b, a])
    with pytest.MonkeyPatch.context() as m:
        m.setenv("FUSIONBENCH_NATIVE", "0")
        m.setattr(_native, "_LIB", [])
        want = tang._desired([b, a])
    for x, y in zip([*got[0], *got[1:5]], [*want[0], *want[1:5]]):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-12 * float(y.abs().max()))


def _edge_cases(dtype):
    """Five triples of _images (37x37: no multiple of a SIMD register) with F = 255 - A, a constant F
    and a non-integer F as the second, third and fourth."""
    a, b, f = (x.to(dtype) for x in _images(n=5, size=37))
    f[1] = 255 - a[1]
    f[2] = 40.0
    f[3] = (a[3] + b[3]) / 3
    return a, b, f


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_qabf_kernel_equals_the_pytorch_steps(monkeypatch, native_kernel, dtype):
    """Q^AB/F (qabf_kernel.cpp: Sobel responses, magnitudes, orientations and both sigmoids in one pass)
    against kernels.py's PyTorch steps (FUSIONBENCH_NATIVE=0) on 8-bit images with flat patches (zero
    gradients: the orientation's pi / 2, the strength's gA == gF quirk), F = 255 - A, a constant F, a
    non-integer F and a side that is no multiple of a SIMD register: float64 within 1e-12, float32 within
    2e-6 (PyTorch sums float32 maps in float32); a batch gives its images one by one bit for bit."""
    from metrics.lineage import kernels as K

    a, b, f = _edge_cases(dtype)
    calls = []
    real = _native.qabf
    monkeypatch.setattr(_native, "qabf", lambda *x: calls.append(1) or real(*x))
    got = K.qabf(a, b, f)
    one = torch.cat([K.qabf(a[i : i + 1], b[i : i + 1], f[i : i + 1]) for i in range(5)])
    assert len(calls) == 6 and got.dtype == dtype and torch.equal(one, got)
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    monkeypatch.setattr(_native, "_LIB", [])
    want = K.qabf(a, b, f)
    assert len(calls) == 6 and torch.isfinite(want).all()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12 if dtype == torch.float64 else 2e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_xydeas_kernel_equals_the_pytorch_steps(monkeypatch, native_kernel, dtype):
    """Liu's Q_XY after its Sobel responses (qabf_kernel.cpp, xydeas) against qabf.py's eager steps, both
    constant sets, on the edge cases (F = 255 - A, a constant F: every strength of F substituted, a
    non-integer F) with flat patches in a source (its strengths substituted): float64 within 1e-13, float32
    within 1e-6 (atan, exp and sqrt round within an ulp or two of PyTorch's); a batch gives its images one
    by one bit for bit."""
    from metrics import qabf

    a, b, f = _edge_cases(dtype)
    a[:, :, :12, :12] = 30.0
    b[:, :, -9:, :] = 0.0
    grads = [qabf.sobel(x, "corr_same") for x in (a, b, f)]
    calls = []
    real = _native.xydeas
    monkeypatch.setattr(_native, "xydeas", lambda *x: calls.append(1) or real(*x))
    tol = 1e-13 if dtype == torch.float64 else 1e-6
    for constants in qabf.CONSTANTS:
        got = qabf.q_xy_from_gradients(*grads, constants)
        one = [qabf.q_xy_from_gradients(*[(x[i : i + 1], y[i : i + 1]) for x, y in grads], constants) for i in range(5)]
        assert got.dtype == dtype and torch.isfinite(got).all()
        torch.testing.assert_close(got, torch.cat(one), rtol=0, atol=0)
        with monkeypatch.context() as m:
            m.setattr(_native, "cpu_ready", lambda *t: False)
            want = qabf.q_xy_from_gradients(*grads, constants)
        torch.testing.assert_close(got, want, rtol=0, atol=tol)
    assert len(calls) == 2 * 6


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_liu_moments_make_their_products_in_the_filter_bit_for_bit(native_kernel, dtype):
    """Q_SSIM's and Q_P's Gaussian moments (metrics.filters.separable_of_products: the filter kernel makes
    each product) equal separable_matmul of the products made first, bit for bit, 'valid' and zero-padded,
    on whole images and on the toolbox's cropped views (not contiguous)."""
    from metrics import filters

    a, b, f = _edge_cases(dtype)
    g = filters.gaussian_1d(11, 1.5, dtype=dtype)
    for pad, view in (("valid", (...,)), ("same", (...,)), ("valid", (..., slice(5, 26), slice(8, 29)))):
        x, y, z = (t[view] for t in (a, b, f))
        factors = [(z, None), (x, None), (z, z), (x, x), (z, x), (x, y)]
        got = filters.separable_of_products(factors, g, pad)
        want = filters.separable_matmul(torch.cat([p if q is None else p * q for p, q in factors], dim=1), g, pad)
        assert got.shape == want.shape and torch.equal(got, want), pad


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_liu_ssim_and_q_p_kernels_equal_the_pytorch_steps_bit_for_bit(monkeypatch, native_kernel, dtype):
    """Liu's Q_SSIM and Q_P after their moments (moment_kernel.cpp, liu_ssim and liu_piella) against
    ssim.py's and piella.py's eager steps on the edge cases (F = 255 - A, a constant F, a non-integer F) with
    a region zero in both sources (0.5 added to both variances) and one in A alone, in every profile: the same
    scores bit for bit; a batch gives its images one by one."""
    import importlib
    from types import SimpleNamespace

    ssim, piella = (importlib.import_module(f"metrics.{m}") for m in ("ssim", "piella"))  # the modules
    a, b, f = (x / 255 for x in _edge_cases(dtype))
    a[:, :, :15, :15] = 0.0  # both variances exactly 0 there: 0.5 added to both
    b[:, :, :15, :15] = 0.0
    a[:, :, 20:35, 20:35] = 0.0  # A's alone: nothing added
    calls = []
    for name in ("liu_ssim", "liu_piella"):
        real = getattr(_native, name)
        monkeypatch.setattr(_native, name, lambda *x, real=real, name=name: calls.append(name) or real(*x))
    names = ["Q_SSIM", "Q_P", "Q_SSIM_x1", "Q_SSIM_x2"]
    for profile in ("upstream", "intended", "fusioninn"):
        got = metrics.score(f, a, b, metrics=names, profile=profile)
        one = [metrics.score(*(x[i : i + 1] for x in (f, a, b)), metrics=names, profile=profile) for i in range(5)]
        with monkeypatch.context() as m:
            eager = SimpleNamespace(cpu_ready=lambda *t: False)
            m.setattr(ssim, "_native", eager)
            m.setattr(piella, "_native", eager)
            want = metrics.score(f, a, b, metrics=names, profile=profile)
        for k in names:
            assert got[k].dtype == dtype and torch.isfinite(got[k]).all(), (profile, k)
            assert torch.equal(got[k], want[k]), (profile, k)
            assert torch.equal(got[k], torch.cat([o[k] for o in one])), (profile, k)
    assert {"liu_ssim", "liu_piella"} <= set(calls)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_liu_ncie_takes_the_histogram_kernels(monkeypatch, native_kernel, dtype):
    """Liu's Q_NCIE on a CPU: normalize1 by hist_kernel.cpp's (bit for bit the eager steps, a constant
    non-zero image and one holding a NaN zeros, an all-zero one kept), the NCCs from its joint tables and
    their entropies (float64 within 1e-13, float32 within 1e-6 of the eager float steps), on the edge cases
    (F = 255 - A, a constant F, a non-integer F); a batch gives its images one by one."""
    import importlib

    ncie = importlib.import_module("metrics.ncie")
    a, b, f = _edge_cases(dtype)
    x = torch.cat([a, f])
    x[3] = 0.0
    x[4, 0, 5, 5] = float("nan")
    normal = ncie.normalize1(x)
    calls = []
    real = _native.table_entropy
    monkeypatch.setattr(_native, "table_entropy", lambda *t: calls.append(1) or real(*t))
    got = ncie.ncie_from_normalized(*(ncie.normalize1(y) for y in (a, b, f)))
    one = [ncie.ncie_from_normalized(*(ncie.normalize1(y[i : i + 1]) for y in (a, b, f))) for i in range(5)]
    with monkeypatch.context() as m:
        m.setattr(_native, "cpu_ready", lambda *t: False)
        assert torch.equal(normal, ncie.normalize1(x))
        want = ncie.ncie_from_normalized(*(ncie.normalize1(y) for y in (a, b, f)))
    assert normal[[3, 4, 7]].abs().sum() == 0 and torch.isfinite(normal).all()
    assert len(calls) == 9 * 6 and got.dtype == dtype and torch.isfinite(got).all()
    torch.testing.assert_close(got, torch.cat(one), rtol=0, atol=0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-13 if dtype == torch.float64 else 1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_nabf_kernel_equals_the_pytorch_steps(monkeypatch, native_kernel, dtype):
    """Tang's N^AB/F (qabf_kernel.cpp, nabf: mirror-extended Sobel / 8, orientations with atan of +-inf
    where the horizontal response is 0, the artefact mask, weights g^1.5) against tang.py's PyTorch steps
    (FUSIONBENCH_NATIVE=0) on the cases of the Q^AB/F test: float64 within 1e-12, float32 within 2e-6;
    a batch gives its images one by one bit for bit."""
    from metrics._lineage_images import LineageImages
    from metrics.lineage import tang

    a, b, f = _edge_cases(dtype)
    calls = []
    real = _native.qabf
    monkeypatch.setattr(_native, "qabf", lambda *x, **k: calls.append(k) or real(*x, **k))
    got = tang.nabf(LineageImages(a, b, f), "Nabf")
    one = torch.cat([tang.nabf(LineageImages(a[i : i + 1], b[i : i + 1], f[i : i + 1]), "Nabf") for i in range(5)])
    assert calls == [{"name": "nabf"}] * 6 and got.dtype == dtype and torch.equal(one, got)
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    monkeypatch.setattr(_native, "_LIB", [])
    want = tang.nabf(LineageImages(a, b, f), "Nabf")
    # artefacts in all but the darker F = (A + B) / 3, whose edges are nowhere stronger than B's
    assert len(calls) == 6 and torch.isfinite(want).all() and ((want > 0) == torch.tensor([1, 1, 1, 0, 1])).all()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12 if dtype == torch.float64 else 2e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradient_kernels_skip_flat_registers_with_the_steps_values(monkeypatch, native_kernel, dtype):
    """qabf_kernel.cpp passes over a register of pixels where no image has a gradient (a background) with
    the values its steps give there: Q^AB/F adds +0 and +0, N^AB/F +0 and two weights of 0.001, Liu's Q_XY
    the values of zero responses computed once (the same bits as zeros computed beside nonzero ones, -0
    and NaN responses computed). Zero-background triples (rows and whole blocks of zeros, a source with
    none, a flat nonzero patch) against the PyTorch steps, as the tests above hold the edge cases."""
    from metrics import qabf
    from metrics._lineage_images import LineageImages
    from metrics.lineage import kernels as K
    from metrics.lineage import tang

    a, b, f = (x.to(dtype) for x in _images(n=3, size=67))
    for x in (a, b, f):
        x[:, :, :25] = 0.0
        x[:, :, :, 40:] = 0.0
    b[1] = 0.0
    a[2, :, 30:50, :30] = 80.0
    f[2, :, 30:50, :30] = 80.0
    b[2, :, 30:50, :30] = 10.0
    got = (K.qabf(a, b, f), tang.nabf(LineageImages(a, b, f), "Nabf"))
    lanes = 64  # Q_XY: register 0 of zeros, the rest mixed (at least four registers on any build)
    grads = [torch.zeros(1, 1, 1, lanes, dtype=dtype) for _ in range(6)]
    grads[0][..., 9] = 3.0
    grads[5][..., 20] = -0.0
    grads[3][..., 33] = float("nan")
    for constants in qabf.CONSTANTS.values():
        num, den = (x[0, 0, 0] for x in _native.xydeas(grads, constants[:6]))
        assert num[0] != 0 and den[0] != 0 and num[9] != num[0] and num[33].isnan()
        for lane in range(lanes):
            if lane not in (9, 33):
                assert num[lane].numpy().tobytes() == num[0].numpy().tobytes(), lane
                assert den[lane].numpy().tobytes() == den[0].numpy().tobytes(), lane
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    monkeypatch.setattr(_native, "_LIB", [])
    want = (K.qabf(a, b, f), tang.nabf(LineageImages(a, b, f), "Nabf"))
    for x, y in zip(got, want):
        assert torch.isfinite(y).all()
        torch.testing.assert_close(x, y, rtol=0, atol=1e-12 if dtype == torch.float64 else 2e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_vif_pick_kernel_equals_the_pytorch_steps_bit_for_bit(monkeypatch, native_kernel, dtype):
    """MEFB's VIFF picks at each pixel the source with the smaller gain (ties and NaN: B) and adds 1e-7 to
    the picked information maps before summing them; on a CPU moment_kernel.cpp makes both maps in one
    pass, with torch.where's and the addition's values bit for bit (NaN, infinities, -0, a map that is a
    channel of a larger tensor, sizes that are no multiple of a SIMD register); MEFB's VIF takes it once a
    scale and equals its eager steps (float64 within 1e-12, float32 within 1e-6)."""
    from metrics._lineage_images import LineageImages
    from metrics.lineage import mefb

    gen = torch.Generator().manual_seed(6)
    for shape in ((3, 1, 37, 29), (2, 1, 1, 1)):
        g = (torch.rand((shape[0], 2, *shape[2:]), generator=gen, dtype=torch.float64) * 4 - 1).to(dtype)
        g[0, 1, 0, :2] = g[0, 0, 0, :2]  # ties: B
        g.view(-1)[:1] = float("nan")
        maps = [(torch.rand(shape, generator=gen, dtype=torch.float64) * 3 - 1).to(dtype) for _ in range(4)]
        maps[0].view(-1)[:3] = torch.tensor([float("inf"), -0.0, float("nan")], dtype=dtype)[: maps[0].numel()]
        g_a, g_b = g[:, :1], g[:, 1:]  # channels of one tensor, taken as they are
        vid, vind = _native.vif_pick(g_a, g_b, *maps, 1e-7)
        pick_a = g_a < g_b
        want = (torch.where(pick_a, maps[0], maps[1]) + 1e-7, torch.where(pick_a, maps[2], maps[3]) + 1e-7)
        for x, y in zip((vid, vind), want):
            assert x.dtype == dtype and x.shape == y.shape
            nan = y.isnan()
            assert torch.equal(x.isnan(), nan) and torch.equal(x[~nan], y[~nan])
            assert torch.equal(x[~nan].signbit(), y[~nan].signbit())
    calls = []
    real = _native.vif_pick
    monkeypatch.setattr(_native, "vif_pick", lambda *x: calls.append(1) or real(*x))
    a, b, f = (x.to(dtype) for x in _images(n=3, size=64))
    got = mefb.vif(LineageImages(a, b, f), "VIF")
    assert len(calls) == 4  # one call a scale
    with monkeypatch.context() as m:
        m.setattr(_native, "vif_pick", lambda *x: pytest.fail("the eager steps were asked for"))
        m.setattr(mefb.K, "moments_in_kernel", lambda *x: False)
        want = mefb.vif(LineageImages(a, b, f), "VIF")
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12 if dtype == torch.float64 else 1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_vif_kernel_equals_the_pytorch_steps(monkeypatch, native_kernel, dtype):
    """Sheikh & Bovik's VIF maps after the local moments (moment_kernel.cpp: a reference's variance and
    information without distortion; its gain, corrected noise variance and information with distortion
    against F) against kernels.py's PyTorch steps on the same moments, at every scale and both noise
    variances (Tang's and CDDFuse's 2, MEFB's 0.005 * 255^2), on 8-bit images with flat patches (s1 and
    s2 below eps), F = 255 - A (negative gains), a constant F, F = A and a non-integer F: float64 within
    1e-12 of the largest value, float32 within 1e-6; a batch gives its images one by one bit for bit."""
    from metrics.lineage import kernels as K

    a, b, f = (x.to(dtype) for x in _images(n=5, size=64))
    f[1] = 255 - a[1]
    f[2] = 40.0
    f[3] = a[3]
    f[4] = (a[4] + b[4]) / 3
    calls = []
    for name in ("vif_reference", "vif_against"):
        real = getattr(_native, name)
        monkeypatch.setattr(_native, name, lambda *x, real=real, name=name: calls.append(name) or real(*x))

    def maps(refs, dist, sigma_nsq):
        return [[x for m in per for x in m] for per in K.vifp_scales(refs, dist, sigma_nsq)]

    for sigma_nsq in (2.0, 0.005 * 255 * 255):
        got = maps([a, b], f, sigma_nsq)
        one = [maps([a[i : i + 1], b[i : i + 1]], f[i : i + 1], sigma_nsq) for i in range(5)]
        for s, per in enumerate(got):
            for k, x in enumerate(per):
                assert torch.equal(x, torch.cat([o[s][k] for o in one]))
        assert calls.count("vif_against") == 6 * 8 and calls.count("vif_reference") == 6 * 8
        with monkeypatch.context() as m:
            m.setattr(K, "moments_in_kernel", lambda *x: False)
            want = maps([a, b], f, sigma_nsq)
        assert calls.count("vif_against") == 6 * 8
        calls.clear()
        for per_got, per_want in zip(got, want):
            for x, y in zip(per_got, per_want):
                assert torch.isfinite(y).all() and x.dtype == dtype
                tol = 1e-12 * float(y.abs().max()) if dtype == torch.float64 else 1e-6 * max(1.0, float(y.abs().max()))
                torch.testing.assert_close(x, y, rtol=0, atol=tol)
    g_neg = maps([a[1:2]], f[1:2], 2.0)[0][2]
    assert float(g_neg.max()) == 0.0  # F = 255 - A: every gain negative, set to 0 as the original does


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ssim_kernel_equals_the_pytorch_steps(monkeypatch, native_kernel, dtype):
    """The mean of an SSIM map from local moments (moment_kernel.cpp, ssim_mean: Tang's SSIM and VIFB's
    Ssim) against kernels.py's PyTorch steps on the Gaussian moments of 8-bit images with flat patches,
    F = 255 - A (negative maps), a constant F, F = A (a map of ones) and a non-integer F, with both
    papers' constants (data range 1 and 255): within 1e-13 in float64 and 1e-6 in float32 (the kernel
    sums in double); the same value with x and y swapped, bit for bit; a batch gives its images one by
    one bit for bit; and channels of one moments tensor are taken in place."""
    from metrics.lineage import kernels as K

    a, _, f = (x.to(dtype) for x in _images(n=5, size=40))
    f[1] = 255 - a[1]
    f[2] = 40.0
    f[3] = a[3]
    f[4] = (a[4] + f[4]) / 3
    calls = []
    real = _native.ssim_mean
    monkeypatch.setattr(_native, "ssim_mean", lambda *x: calls.append(1) or real(*x))
    mu, e = K.local_moments([a, f], [(0, 0), (1, 1), (0, 1)], K.gaussian_1d(11, 1.5, f))
    assert mu[0].stride(0) == 5 * mu[0][0].numel()  # channels of one tensor, not copies
    args = (mu[0], mu[1], e[(0, 0)], e[(1, 1)], e[(0, 1)])
    for c1, c2 in ((1e-4, 9e-4), ((0.01 * 255) ** 2, (0.03 * 255) ** 2)):
        got = K.ssim_mean(*args, c1, c2)
        swapped = K.ssim_mean(args[1], args[0], args[3], args[2], args[4], c1, c2)
        one = torch.cat([K.ssim_mean(*(x[i : i + 1] for x in args), c1, c2) for i in range(5)])
        assert got.dtype == dtype and torch.equal(got, swapped) and torch.equal(got, one)
        with monkeypatch.context() as m:
            m.setattr(K, "moments_in_kernel", lambda *x: False)
            want = K.ssim_mean(*args, c1, c2)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-13 if dtype == torch.float64 else 1e-6)
        assert float(got[3]) == pytest.approx(1.0, abs=1e-6) and float(got[1]) < 0
    assert len(calls) == 2 * (2 + 5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_moment_maps_make_their_products_in_the_filter_bit_for_bit(monkeypatch, native_kernel, dtype):
    """kernels.moment_maps on a CPU (filter_kernel.cpp, separable_products: each image read where it
    lies, each product made in a scratch map) gives what filtering moment_inputs' tensor of images and
    products gives (the path where the kernels do not build), bit for bit: every padding, a side that is
    no multiple of a register, images that are channels of a larger tensor, the means of some images
    only; strides too; without autograd only."""
    from metrics.lineage import kernels as K

    g = torch.Generator().manual_seed(11)
    big = torch.rand(3, 4, 37, 45, generator=g, dtype=dtype) * 255
    xs = [big[:, 1:2], big[:, 3:4], torch.rand(3, 1, 37, 45, generator=g, dtype=dtype) * 255]
    pairs = [(0, 0), (1, 1), (2, 2), (0, 2), (1, 2)]
    calls = []
    real = _native.separable_products
    monkeypatch.setattr(_native, "separable_products", lambda *x, **k: calls.append(1) or real(*x, **k))
    for mode in ("valid", "same", "replicate", "reflect", "symmetric"):
        for win, means in ((K.gaussian_1d(11, 1.5, xs[0]), None), (torch.ones(7, dtype=dtype), [2])):
            got = K.moment_maps(xs, pairs, win, mode, means)
            want = K.separable_matmul(K.moment_inputs(xs, pairs, means), win.to(dtype), mode)
            assert got.shape == want.shape and torch.equal(got, want), (mode, means)
    assert len(calls) == 10
    rows, cols = (K.filters._source_index(n, 9, "symmetric") for n in (37, 45))
    taps = tuple(K.gaussian_1d(9, 1.8, xs[0]).tolist())
    strided = _native.separable_products([(xs[0], xs[2]), (xs[1], None)], taps, rows, cols, stride=2)
    assert torch.equal(strided, _native.separable(K.moment_inputs(xs, [(0, 2)], [1])[:, [1, 0]], taps, rows, cols, 2))
    xs[0] = xs[0].clone().requires_grad_()
    K.moment_maps(xs, pairs, K.gaussian_1d(11, 1.5, xs[1]))  # autograd: the PyTorch path
    assert len(calls) == 11  # the ten above and the strided call


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_box_sums_slide_where_exact_and_equal_the_tap_loops_bit_for_bit(native_kernel, dtype):
    """A 'valid' box (every tap 1) of separable_products sums a map by sliding sums where its sums are exact
    (MEF-SSIM's box sums of 8-bit sources and their products, at each halving): the same values bit for bit
    as the tap loops (the separable kernel on the maps made first). Exact maps: integers, quarters, zeros of
    either sign; the others take the tap loops: a NaN, a fraction no power of two divides (0.1), a value past
    the bound (float64: 2^50; float32: the products of 8-bit values already); and no map where the box is
    padded or strided, or a tap is not 1."""
    from metrics.lineage import kernels as K

    g = torch.Generator().manual_seed(5)
    ints = torch.randint(0, 256, (3, 1, 29, 37), generator=g).to(dtype)
    quarters = torch.randint(0, 1024, (3, 1, 29, 37), generator=g).to(dtype) / 4
    quarters[1] = -quarters[1]  # negative values, and sums of zero from values of both signs
    quarters[2, :, :, :20] = -0.0
    odd = ints.clone()
    odd[0, 0, 3, 4] = float("nan")
    odd[1] += 0.1
    odd[2, 0, 7, 9] = 2.0**50
    xs, pairs = [ints, quarters, odd], [(0, 0), (0, 1), (1, 1), (2, 2), (0, 2)]
    inputs = K.moment_inputs(xs, pairs)
    for k in (11, 7, 1):
        rows, cols = (K.filters._source_index(n, k, "valid") for n in (29, 37))
        for taps in ((1.0,) * k, (1.0,) * (k - 1) + (0.5,)):
            counts = []
            got = _native.separable_products(
                [(x, None) for x in xs] + [(xs[i], xs[j]) for i, j in pairs], taps, rows, cols, exact=counts
            )
            want = _native.separable(inputs, taps, rows, cols, 1)
            same = torch.equal(got.nan_to_num(7.5), want.nan_to_num(7.5)) and torch.equal(got.isnan(), want.isnan())
            assert same and torch.equal(got.signbit(), want.signbit()), (k, taps)
            if taps[-1] != 1:
                assert counts == [0]
                continue
            # the integers and the quarters of every image, and in float64 their three products (in float32
            # a product near 65025 needs 65025 k (k + 1) 256 < 2^24: none); nothing of the odd image
            per_image = 2 + (3 if dtype == torch.float64 else 0)
            assert counts == [3 * per_image], (k, counts)
    rows, cols = (K.filters._source_index(n, 11, "same") for n in (29, 37))
    counts = []
    _native.separable_products([(ints, None)], (1.0,) * 11, rows, cols, exact=counts)
    rows, cols = (K.filters._source_index(n, 3, "valid") for n in (29, 37))
    _native.separable_products([(ints, None)], (1.0,) * 3, rows, cols, stride=2, exact=counts)
    assert counts == [0, 0]  # padded; strided


def test_dwt_kernel_takes_any_filter_pair_and_folds_only_mirrored_ones(native_kernel):
    """filter_kernel.cpp's dwt2 with filters that are not MATLAB's dmey (the plain tap loop) and with dmey
    (its mirrored samples added first, strip_taps_sym), both against the dense matrices of the same
    filters (float64, within 1e-12 of the largest value); a pair whose symmetry is broken in one tap goes
    the plain way and still equals its matrices."""
    from metrics.lineage import wavelet

    x = torch.rand(2, 1, 40, 56, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 255
    lo, hi = wavelet.dmey()
    broken_lo = (lo[0] + 1e-3, *lo[1:])
    plain = tuple(math.sin(0.3 * t + 0.2) for t in range(12)), tuple(math.cos(0.7 * t) for t in range(12))
    for a, b in ((lo, hi), (broken_lo, hi), plain):
        k = len(a)
        rows, cols = wavelet._extension(40, k), wavelet._extension(56, k)
        got = _native.dwt2(x, a[::-1], b[::-1], rows, cols)
        r = torch.cat([wavelet._analysis(40, a, x.dtype, x.device), wavelet._analysis(40, b, x.dtype, x.device)], 1)
        c = torch.cat([wavelet._analysis(56, a, x.dtype, x.device), wavelet._analysis(56, b, x.dtype, x.device)], 1)
        p = r.t() @ x @ c  # [[cA, cV], [cH, cD]]
        mh, mw = r.shape[1] // 2, c.shape[1] // 2
        top = torch.cat([p[..., :mh, :mw], p[..., mh:, :mw]], -1)
        want = torch.cat([top, torch.cat([p[..., :mh, mw:], p[..., mh:, mw:]], -1)], -2)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12 * float(want.abs().max()))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tsallis_kernel_equals_the_pytorch_steps(monkeypatch, native_kernel, dtype):
    """MEFB's Tsallis measure of a joint histogram (hist_kernel.cpp, table_tsallis: the filled rows only)
    against mefb.py's PyTorch steps on the normalised images' tables of the edge cases (F = 255 - A, a
    constant F, a non-integer F) and on a table with a filled cell whose transposed marginals' product
    is 0 (left out, as the original's where): float64 within 1e-12, float32 within 1e-5 relative (PyTorch
    sums float32 tables in float32, the kernel in double); TE equals its PyTorch form on a batch."""
    from metrics._lineage_images import LineageImages
    from metrics.lineage import mefb

    a, b, f = _edge_cases(dtype)
    counts = torch.zeros(2, 256, 256, dtype=dtype)
    counts[0, 3, 200] = 5  # row 200 and column 3 are empty: cell (3, 200) pairs them, product 0
    counts[0, 7, 7] = 11
    counts[1, :40, :40] = torch.arange(1600, dtype=dtype).view(40, 40) % 7
    calls = []
    real = _native.table_tsallis
    monkeypatch.setattr(_native, "table_tsallis", lambda *x: calls.append(1) or real(*x))
    got_te = mefb.te(LineageImages(a, b, f), "TE")
    got = _native.table_tsallis(counts, 1.85)
    with monkeypatch.context() as m:
        m.setattr(_native, "cpu_ready", lambda *x: False)
        want_te = mefb.te(LineageImages(a, b, f), "TE")
        h = counts / counts.sum(dim=(1, 2), keepdim=True)
        buff = h.sum(dim=1).unsqueeze(2) * h.sum(dim=2).unsqueeze(1)
        ok = buff != 0
        term = torch.where(ok, h**1.85 / torch.where(ok, buff, torch.ones_like(buff)) ** 0.85, torch.zeros_like(h))
        want = (1 - term.sum(dim=(1, 2))) / (1 - 1.85)
    assert len(calls) == 3 and got.dtype == dtype and float(got[0]) != float(want[0] + 1)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got, want, rtol=tol, atol=0)
    torch.testing.assert_close(got_te, want_te, rtol=tol, atol=0, equal_nan=True)  # NaN: the constant F
    assert torch.isnan(got_te[2]) and torch.isfinite(got_te[[0, 1, 3, 4]]).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_qncie_takes_its_entropies_from_the_kernel(monkeypatch, native_kernel, dtype):
    """MEFB's Q_NCIE on a CPU (its three NCCs from the joint tables' filled cells, hist_kernel.cpp, and
    the A-F and B-F tables NMI and TE share) equals metrics.ncie's PyTorch steps on the edge cases
    (F = 255 - A, a constant F: NaN as the original errors, a non-integer F): within 1e-12 in float64,
    1e-6 in float32."""
    from metrics._lineage_images import LineageImages
    from metrics.lineage import mefb

    a, b, f = _edge_cases(dtype)
    calls = []
    real = _native.table_entropy
    monkeypatch.setattr(_native, "table_entropy", lambda *x: calls.append(1) or real(*x))
    got = mefb.qncie(LineageImages(a, b, f), "Qncie")
    assert len(calls) == 3
    with monkeypatch.context() as m:
        m.setattr(_native, "cpu_ready", lambda *x: False)
        want = mefb.qncie(LineageImages(a, b, f), "Qncie")
    assert torch.isnan(got[2]) and torch.isfinite(got[[0, 1, 3, 4]]).all() and got.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(got, want, rtol=0, atol=tol, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_qp_kernel_equals_the_pytorch_steps(monkeypatch, native_kernel, dtype):
    """MEFB's Q_P with its per-pixel correlations, masks, NaN-skipping maximum and sums in one pass
    (moment_kernel.cpp, qp_sum) against mefb.py's PyTorch steps on the same phase congruencies, on the
    edge cases (F = 255 - A, a constant F: NaN, the original's 0 / 0, a non-integer F) and a batch that
    holds a constant source (NaN maps next to finite ones): float64 within 1e-12, float32 within 2e-6;
    a batch gives its images one by one bit for bit."""
    from metrics._lineage_images import LineageImages
    from metrics.lineage import mefb

    a, b, f = _edge_cases(dtype)
    b[4] = 90.0  # a constant source: its phase congruency is 0 / 0
    calls = []
    real = _native.qp_sum
    monkeypatch.setattr(_native, "qp_sum", lambda *x: calls.append(1) or real(*x))
    got = mefb.qp(LineageImages(a, b, f), "Qp")
    one = torch.cat([mefb.qp(LineageImages(a[i : i + 1], b[i : i + 1], f[i : i + 1]), "Qp") for i in range(5)])
    assert len(calls) == 3 * 6
    torch.testing.assert_close(got, one, rtol=0, atol=0, equal_nan=True)
    with monkeypatch.context() as m:
        m.setattr(mefb, "_qp_in_kernel", lambda maps: False)
        want = mefb.qp(LineageImages(a, b, f), "Qp")
    assert len(calls) == 3 * 6 and got.dtype == dtype
    assert torch.isnan(got[2]) and torch.isfinite(got[[0, 1, 3]]).all()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12 if dtype == torch.float64 else 2e-6, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_qp_masks_kernel_equals_the_eager_steps_bit_for_bit(monkeypatch, native_kernel, dtype):
    """MEFB's Q_P masks and masked feature maps in one pass (moment_kernel.cpp, qp_masks) against mefb.py's
    eager steps, bit for bit: phase congruencies tied, at 0.1 exactly and one float step either side of it,
    NaN in either source, feature maps holding NaN, infinities and -0 where a mask drops them (NaN * 0 and
    inf * 0 stay NaN, -0 * 1 stays -0), channels of a larger tensor; a batch is its images one by one. Q_P
    calls it once a batch (the masks and the three features' maps together) and gives the eager path's
    value bit for bit."""
    from metrics._lineage_images import LineageImages, sharing_sources
    from metrics.lineage import mefb

    gen = torch.Generator().manual_seed(11)
    pc = torch.rand(3, 2, 1, 9, 13, generator=gen, dtype=dtype) * 0.3
    tenth = torch.tensor(0.1, dtype=dtype)
    up, down = torch.nextafter(tenth, tenth + 1), torch.nextafter(tenth, tenth - 1)
    pc[:, 0, 0, 0, :4] = torch.stack([tenth, up, down, tenth])
    pc[1, 0, 0, 0, :4] = torch.stack([tenth, down, up, up])
    pc[1, 0, 0, 1, :3] = pc[0, 0, 0, 1, :3]  # ties: the picked map is B's
    pc[0, 1, 0, 2, 5] = float("nan")
    pc[1, 1, 0, 3, 6] = float("nan")
    pc1, pc2 = pc[0], pc[1]
    wide = torch.randn(2, 5, 9, 13, generator=gen, dtype=dtype)  # feature maps: channels of one tensor
    wide[0, 1, 0, :4] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0], dtype=dtype)
    wide[1, 2, 3, 6] = float("nan")
    features = [(pc1, pc2, None), (wide[:, 1:2], wide[:, 2:3], None), (wide[:, 3:4], -wide[:, 0:1], None)]
    masked_maps, masks = mefb._eager_masks(pc1, pc2, features)
    got_masks, got_maps = _native.qp_masks(pc1, pc2, [(m1, m2) for m1, m2, _ in features])
    for g, w in zip(got_masks, masks(), strict=True):
        assert g.dtype == torch.bool and g.shape == w.shape and torch.equal(g, w)
    for t in range(3):
        for g, w in zip(got_maps[t].split(1, dim=1), masked_maps(t)(), strict=True):
            assert g.dtype == dtype and g.shape == w.shape
            assert torch.equal(g.nan_to_num(7.0), w.nan_to_num(7.0)) and torch.equal(g.isnan(), w.isnan())
            assert torch.equal(torch.signbit(g), torch.signbit(w))  # -0 kept where the eager steps keep it
    only_masks, none = _native.qp_masks(pc1, pc2)
    assert none is None and all(torch.equal(g, w) for g, w in zip(only_masks, got_masks, strict=True))
    one = [_native.qp_masks(pc1[i : i + 1], pc2[i : i + 1], [(m1[i : i + 1], m2[i : i + 1]) for m1, m2, _ in features])
           for i in range(2)]  # fmt: skip
    for t in range(3):
        assert torch.equal(torch.cat([o[1][t] for o in one]).nan_to_num(7.0), got_maps[t].nan_to_num(7.0))
    with pytest.raises(ValueError, match="at most 8"):
        _native.qp_masks(pc1, pc2, [(pc1, pc2)] * 9)

    a, b, f = _edge_cases(dtype)
    calls = []
    real = _native.qp_masks
    monkeypatch.setattr(_native, "qp_masks", lambda *x: calls.append(len(x[2] or [])) or real(*x))
    got = mefb.qp(LineageImages(a, b, f), "Qp")
    assert calls == [3]  # once, with the three features' maps
    with sharing_sources():  # a second F against the same sources: their moments kept, the masks alone made
        first = mefb.qp(LineageImages(a, b, f), "Qp")
        second = mefb.qp(LineageImages(a, b, f.flip(-1)), "Qp")
    assert calls == [3, 3, 0]
    with monkeypatch.context() as m:
        m.setattr(mefb, "_qp_masks_in_kernel", lambda *maps: False)
        want = mefb.qp(LineageImages(a, b, f), "Qp")
        want_second = mefb.qp(LineageImages(a, b, f.flip(-1)), "Qp")
    assert calls == [3, 3, 0]
    for x, y in ((got, want), (first, want), (second, want_second)):
        assert torch.equal(x.nan_to_num(7.0), y.nan_to_num(7.0))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_qw_kernel_equals_the_pytorch_steps(monkeypatch, native_kernel, dtype):
    """MEFB's Q_W after its moments (moment_kernel.cpp, piella: the variances, both SSIM maps, the weights and
    their compensated sums in two passes) against mefb.py's PyTorch steps on the edge cases (F = 255 - A, a
    constant F, a non-integer F) and a constant source (its edge image all zero: both variances 0 where the
    other's is, the 0.5 added): float64 within 1e-13, float32 within 1e-6; a batch gives its images one by
    one bit for bit."""
    from metrics._lineage_images import LineageImages
    from metrics.lineage import mefb

    a, b, f = _edge_cases(dtype)
    b[4] = 90.0
    a[4, :, :24, :24] = 50.0  # flat in both sources there: both edge variances 0, 0.5 added to each
    calls = []
    real = _native.piella
    monkeypatch.setattr(_native, "piella", lambda *x: calls.append(1) or real(*x))
    got = mefb.qw(LineageImages(a, b, f), "Qw")
    one = torch.cat([mefb.qw(LineageImages(a[i : i + 1], b[i : i + 1], f[i : i + 1]), "Qw") for i in range(5)])
    assert len(calls) == 6 and got.dtype == dtype
    torch.testing.assert_close(got, one, rtol=0, atol=0, equal_nan=True)
    with monkeypatch.context() as m:
        m.setattr(mefb, "_qw_in_kernel", lambda maps: False)
        want = mefb.qw(LineageImages(a, b, f), "Qw")
    assert len(calls) == 6 and torch.isfinite(want).all()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-13 if dtype == torch.float64 else 1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_skimage_ssim_kernel_equals_the_pytorch_steps_bit_for_bit(monkeypatch, native_kernel, dtype):
    """CDDFuse's SSIM (skimage's, moment_kernel.cpp's skimage_ssim: the eight uniform means' running sums and
    the map's float32 steps) against cddfuse.py's eager steps on the edge cases (37x37; F = 255 - A, a
    constant F, a non-integer F), the smallest image it takes (7x7) and one no multiple of a register wide
    (9x23): the same values bit for bit, maps and scores; a batch's scores are its images' one by one."""
    from metrics._lineage_images import LineageImages
    from metrics.lineage import cddfuse

    g = torch.Generator().manual_seed(11)
    cases = [_edge_cases(dtype)] + [
        tuple((torch.rand(2, 1, *side, generator=g, dtype=torch.float64) * 255).round().to(dtype) for _ in range(3))
        for side in ((7, 7), (9, 23))
    ]
    calls = []
    real = _native.skimage_ssim
    monkeypatch.setattr(_native, "skimage_ssim", lambda *x: calls.append(1) or real(*x))
    for a, b, f in cases:
        got = cddfuse.ssim(LineageImages(a, b, f), "SSIM")
        one = [cddfuse.ssim(LineageImages(*(x[i : i + 1] for x in (a, b, f))), "SSIM") for i in range(len(a))]
        assert got.dtype == dtype and torch.isfinite(got).all()
        torch.testing.assert_close(got, torch.cat(one), rtol=0, atol=0)
        maps = real(*(x.float() for x in (f, a, b)), cddfuse.NORM, cddfuse.C1, cddfuse.C2)
        with monkeypatch.context() as m:
            m.setattr(_native, "cpu_ready", lambda *t: False)
            want = cddfuse.ssim(LineageImages(a, b, f), "SSIM")
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        for got_map, y in zip(maps, (a, b)):  # the eager map before its mean
            assert torch.equal(got_map, cddfuse._ssim_map(f, y))
    assert len(calls) == sum(1 + len(a) for a, _, _ in cases)


@pytest.mark.parametrize("side", [(37, 37), (33, 35), (36, 36)])
def test_phase_congruency_of_a_batch_is_its_images_one_by_one(native_kernel, side):
    """A batch's phase congruency (phase_kernel.cpp's sums, totals and end) is each image's alone, bit for
    bit, also where an image's pixel count is no multiple of a SIMD register (37 x 37: the kernel's last
    group of an image once overshot into the next image and left its first pixels out of the totals), and
    equals the PyTorch kernels' within rounding (float64 1e-13, float32 1e-6)."""
    from metrics.lineage import phase

    g = torch.Generator().manual_seed(sum(side))
    for dtype, tol in ((torch.float64, 1e-13), (torch.float32, 1e-6)):
        x = (torch.rand(3, 1, *side, generator=g, dtype=torch.float64) * 255).round().to(dtype)
        got = phase.phase_congruency(x)
        for i in range(3):
            for m, one in zip(got, phase.phase_congruency(x[i : i + 1])):
                assert torch.equal(m[i : i + 1], one)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_native, "cpu_ready", lambda *t: False)
            want = phase.phase_congruency(x)
        for m, ref in zip(got, want):
            torch.testing.assert_close(m, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_orientation_fft_equals_pytorchs_ffts_and_the_sums_kernel(native_kernel, dtype):
    """phase_kernel.cpp's own inverse FFTs with the sums over the scales (orientation_fft) against
    torch.fft.ifft2 of the filter products and the sums kernel on those responses, on sides of every
    radix (4, 2, 3, 5), square or not, down to one register's lanes, every orientation: float64 within
    1e-12 and float32 within 1e-5 of each map's largest value (float32 FFTs round differently), the energy
    (which cancels) within 2e-4; the blocked layouts round-trip; the kernel's forward FFT (spectrum) gives
    PyTorch's spectra's planes within the same bounds. Sides it does not take, fft_takes says so and the
    kernels refuse."""
    from metrics.lineage import phase

    lanes = _native.fft_lanes(dtype)
    # 8 floats; 8 doubles where the build has AVX-512's registers (-march=native), else 4
    avx512 = "avx512f" in pathlib.Path("/proc/cpuinfo").read_text().split()
    assert lanes == (8 if dtype == torch.float32 or avx512 else 4)
    tols = [1e-12] * 4 if dtype == torch.float64 else [1e-5, 1e-5, 2e-4, 1e-5]
    gen = torch.Generator().manual_seed(11)
    for rows, cols in [(240, 240), (64, 80), (24, 40), (lanes, 3 * lanes), (30 * lanes // 2, 10 * lanes)]:
        assert _native.fft_takes(rows, cols, dtype)
        im = (torch.rand(3, rows, cols, generator=gen, dtype=torch.float64) * 255).round().to(dtype)
        spectrum = torch.fft.fft2(im)
        planes = [_native.fft_blocks(x) for x in (spectrum.real, spectrum.imag)]
        assert all(torch.equal(a, b) for a, b in zip(_native.spectrum_blocks(spectrum), planes, strict=True))
        # the kernel's own forward FFT: the same planes to float rounding, each image's alone in any batch
        own = _native.image_spectrum_blocks(im)
        for mine, want in zip(own, planes, strict=True):
            torch.testing.assert_close(mine, want, rtol=0, atol=tols[0] * float(planes[0].abs().max()))
        assert all(torch.equal(x[1:2], y) for x, y in zip(own, _native.image_spectrum_blocks(im[1:2]), strict=True))
        # the output's blocks of rows are the input's blocks of columns of the transposed images
        assert torch.equal(_native.fft_unblock(_native.fft_blocks(im.transpose(-1, -2)).reshape(-1), rows, cols), im)
        bank = phase._bank_as(rows, cols, dtype, torch.device("cpu"))
        for o in range(phase.NORIENT):
            got = _native.orientation_fft(phase._blocked_bank(rows, cols, dtype)[o], *planes, rows, cols, 1e-4)
            parts = torch.view_as_real(torch.fft.ifft2(bank[o][:, None] * spectrum[None])).reshape(4, -1, 2)
            want = _native.orientation(parts, 1e-4)
            for k in range(4):
                mine = _native.fft_unblock(got[k], rows, cols).reshape(-1)
                torch.testing.assert_close(mine, want[k], rtol=0, atol=tols[k] * float(want[k].abs().max()))
    for rows, cols in [(56, 56), (37, 37), (lanes * 7, lanes)]:
        assert not _native.fft_takes(rows, cols, dtype)
    x = torch.zeros(1, 56, 56, dtype=dtype)
    with pytest.raises(ValueError, match="takes no 56x56"):
        _native.orientation_fft(_native.fft_blocks(torch.zeros(4, 56, 56, dtype=dtype)), x, x, 56, 56, 1e-4)
    with pytest.raises(ValueError, match="takes no 56x56"):
        _native.image_spectrum_blocks(x)


@pytest.mark.parametrize("side", [(40, 40), (64, 80), (240, 240)])
def test_phase_congruency_by_the_kernels_own_ffts(monkeypatch, native_kernel, side):
    """Where the kernel takes the sides, phase congruency runs its own FFTs (one call an orientation); a
    batch is its images one by one, bit for bit; float64 within 1e-12 of PyTorch's FFTs, and float32 as
    close to the float64 maps as float32 by PyTorch's FFTs (within 1.5x its largest error, plus 1e-7)."""
    from metrics.lineage import phase

    g = torch.Generator().manual_seed(sum(side))
    x = (torch.rand(3, 1, *side, generator=g, dtype=torch.float64) * 255).round()
    calls = []
    kernel = _native.orientation_fft
    monkeypatch.setattr(_native, "orientation_fft", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    truth = phase.phase_congruency(x)
    assert len(calls) == phase.NORIENT
    mine32 = phase.phase_congruency(x.float())
    for i in range(3):
        for m, one in zip(mine32, phase.phase_congruency(x[i : i + 1].float())):
            assert torch.equal(m[i : i + 1], one)
    monkeypatch.setattr(_native, "fft_takes", lambda *a: False)
    calls.clear()
    torchs = phase.phase_congruency(x)
    torchs32 = phase.phase_congruency(x.float())
    assert not calls
    for m, ref, m32, ref32 in zip(truth, torchs, mine32, torchs32):
        torch.testing.assert_close(m, ref, rtol=0, atol=1e-12)
        err, err_torch = ((y.double() - ref).abs().max() for y in (m32, ref32))
        assert err <= 1.5 * err_torch + 1e-7


def test_chen_blum_kernel_equals_the_pytorch_steps(monkeypatch, native_kernel):
    """Q_CB's masked contrasts and saliency-weighted preservation (moment_kernel.cpp, cb_contrast and
    cb_score) against vifb.py's PyTorch steps after the same filters, on the edge cases (F = 255 - A, a
    constant F, a non-integer F): within 1e-12 (its sums in double); what the sources give is cached per
    path, so one path's cache never feeds the other; a batch gives its images one by one (to the FFT's
    rounding)."""
    from metrics.lineage import kernels as K
    from metrics.lineage import vifb

    a, b, f = (K.normalize1(x) for x in _edge_cases(torch.float64))
    f[2] = 0.0  # normalize1 of the constant F is 0 / 0: an all-zero F instead
    calls = []
    for name in ("cb_contrast", "cb_score"):
        real = getattr(_native, name)
        monkeypatch.setattr(_native, name, lambda *x, real=real, name=name: calls.append(name) or real(*x))
    memo = {}
    got = vifb.chen_blum(a, b, f, cache=lambda k, make: memo.setdefault(k, make()) if k not in memo else memo[k])
    one = torch.cat([vifb.chen_blum(a[i : i + 1], b[i : i + 1], f[i : i + 1]) for i in range(5)])
    assert calls.count("cb_score") == 6 and calls.count("cb_contrast") == 12
    # NaN: the all-zero F's 0 / 0; the CSF filter's batched FFT rounds apart from single ones (5.6e-16 here)
    torch.testing.assert_close(got, one, rtol=0, atol=1e-14, equal_nan=True)
    with monkeypatch.context() as m:
        m.setattr(vifb, "_cb_in_kernel", lambda *x: False)
        want = vifb.chen_blum(a, b, f, cache=lambda k, make: memo.setdefault(k, make()) if k not in memo else memo[k])
    assert calls.count("cb_score") == 6 and len(memo) == 2  # each path its own cached sources
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12, equal_nan=True)


def test_yang_kernel_equals_the_pytorch_steps(monkeypatch, native_kernel):
    """MEFB's Q_Y and Q_C from ssim_yang's moments (moment_kernel.cpp, yang: the three SSIM maps and both
    indices a pixel, their NaN-skipping means summed in double) against mefb.py's PyTorch maps and steps on
    the edge cases (F = 255 - A, a constant F, a non-integer F) and a constant source (NaN maps: C = 2e-16
    hides no 0 / 0): within 1e-12; a batch gives its images one by one bit for bit."""
    from metrics._lineage_images import LineageImages
    from metrics.lineage import mefb

    a, b, f = _edge_cases(torch.float64)
    b[4] = 90.0
    calls = []
    real = _native.yang
    monkeypatch.setattr(_native, "yang", lambda *x: calls.append(1) or real(*x))
    li = LineageImages(a, b, f)
    got = torch.stack([mefb.qy(li, "Qy"), mefb.qc(li, "Qc")])
    assert len(calls) == 1  # one pass for both, cached
    singles = [LineageImages(a[i : i + 1], b[i : i + 1], f[i : i + 1]) for i in range(5)]
    one = torch.stack([torch.cat([m(x, "") for x in singles]) for m in (mefb.qy, mefb.qc)])
    torch.testing.assert_close(got, one, rtol=0, atol=0, equal_nan=True)
    with monkeypatch.context() as m:
        m.setattr(mefb, "_yang_in_kernel", lambda li: None)
        li = LineageImages(a, b, f)
        want = torch.stack([mefb.qy(li, "Qy"), mefb.qc(li, "Qc")])
    assert len(calls) == 6 and torch.isfinite(want[:, :2]).all()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_hist_kernel_counts_as_bincount(monkeypatch, native_kernel, dtype):
    """The lineages' histograms (hist_kernel.cpp, hist and joint_hist) equal PyTorch's bincount path count
    for count, single and joint, truncating labels as .long() does; a label outside 0..bins - 1 or NaN is
    refused with one clear error instead of landing in the next image's bins."""
    from metrics.lineage import kernels as K

    g = torch.Generator().manual_seed(2)
    a = torch.randint(0, 256, (3, 1, 37, 41), generator=g).to(dtype) + 0.25  # truncated to the integer below
    b = torch.randint(0, 256, (3, 1, 37, 41), generator=g).to(dtype)
    a[1] = 7.0
    got, got2 = K.hist(a), K.joint_hist(a, b)
    with monkeypatch.context() as m:
        m.setattr(_native, "cpu_ready", lambda *x: False)
        want, want2 = K.hist(a), K.joint_hist(a, b)
    assert got.dtype == dtype and torch.equal(got, want) and torch.equal(got2, want2)
    assert float(got[1, 7]) == 37 * 41 and float(got2.sum()) == 3 * 37 * 41
    for bad in (256.0, -1.0, float("nan")):
        c = a.clone()
        c[2, 0, 5, 5] = bad
        with pytest.raises(ValueError, match="outside 0..255"):
            K.hist(c)
        with pytest.raises(ValueError, match="outside 0..255"):
            K.joint_hist(b, c)


def test_sqrt_kernel_is_correctly_rounded(native_kernel):
    """The lineages' square roots of maps (kernels.sqrt, moment_kernel.cpp: the hardware's) are correctly
    rounded in float32 (the float64 root rounded once more) and float64 (Python's math.sqrt), on zeros,
    tiny and large values, NaN for negatives; small tensors keep PyTorch's."""
    import math as m

    from metrics.lineage import kernels as K

    g = torch.Generator().manual_seed(4)
    x = torch.rand(5000, generator=g, dtype=torch.float64) * torch.logspace(-30, 30, 5000, dtype=torch.float64)
    x[::9] = 0.0
    f32 = K.sqrt(x.float())
    assert torch.equal(f32, torch.sqrt(x.float().double()).float())
    f64 = K.sqrt(x)
    assert [float(v) for v in f64[:500]] == [m.sqrt(float(v)) for v in x[:500]]
    assert torch.isnan(K.sqrt(torch.full((4096,), -1.0))).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_csf_filter_by_the_kernels_own_ffts(monkeypatch, native_kernel, dtype):
    """Q_CB's and Q_CV's contrast-sensitivity filtering in phase_kernel.cpp's own FFTs (csf_filter, two of an
    image's channels as one complex image) against PyTorch's real FFTs, on sides of every radix, square or
    not, down to one register's lanes, an odd number of channels (the last one alone): float64 within 1e-13
    and float32 within 2e-6 of the largest value; each image's result the same bits in any batch (its
    channels paired as they come: a channel beside another rounds otherwise, within those bounds);
    kernels.csf_filter takes it where fft_takes(of="csf") says the kernel takes the sides,
    PyTorch's FFTs elsewhere and with the kernels off, and the kernel refuses other sides."""
    from metrics.lineage import kernels as K
    from metrics.lineage import vifb

    lanes = _native.fft_lanes(dtype, of="csf")
    assert lanes == _native.fft_lanes(dtype)  # one build for this CPU: the same registers in both units
    tol = 1e-13 if dtype == torch.float64 else 2e-6
    gen = torch.Generator().manual_seed(5)
    for rows, cols in [(240, 240), (64, 80), (24, 40), (lanes, 3 * lanes), (30 * lanes // 2, 10 * lanes)]:
        assert _native.fft_takes(rows, cols, dtype, of="csf")
        x = (torch.rand(3, 3, rows, cols, generator=gen, dtype=torch.float64) * 255).round().to(dtype)
        for kind in ("cb", "cv"):
            response, half, uncentred = vifb._csf(kind, rows, cols, dtype, torch.device("cpu"))
            got = _native.csf_filter(x, uncentred)
            with monkeypatch.context() as mp:
                mp.setattr(_native, "cpu_ready", lambda *t: False)
                want = K.csf_filter(x, response, half)
            assert not torch.equal(got, want)  # another FFT: not PyTorch's bits
            torch.testing.assert_close(got, want, rtol=0, atol=tol * float(want.abs().max()))
            assert torch.equal(K.csf_filter(x, response, half, uncentred), got)
            assert torch.equal(K.csf_filter(x, response), got)  # the response uncentred in the call
            for i in range(3):  # an image alone; its odd channel alone
                assert torch.equal(_native.csf_filter(x[i : i + 1], uncentred), got[i : i + 1])
                assert torch.equal(_native.csf_filter(x[i : i + 1, 2:], uncentred), got[i : i + 1, 2:])
            # a channel's rounding depends on the channel beside it (one complex image): the pairs are fixed
            paired_otherwise = _native.csf_filter(x[:, 1:], uncentred)[:, :1]
            torch.testing.assert_close(paired_otherwise, got[:, 1:2], rtol=0, atol=tol * float(want.abs().max()))
    assert not _native.fft_takes(63, 81, dtype, of="csf")
    x = torch.rand(2, 1, 63, 81, dtype=dtype)
    response, half, uncentred = vifb._csf("cb", 63, 81, dtype, torch.device("cpu"))
    calls = []
    monkeypatch.setattr(_native, "csf_filter", lambda *a: calls.append(1))
    assert torch.equal(K.csf_filter(x, response, half), torch.fft.irfft2(torch.fft.rfft2(x) * half, s=(63, 81)))
    assert not calls
    monkeypatch.undo()
    with pytest.raises(ValueError, match="takes no 56x56"):
        _native.csf_filter(torch.zeros(1, 2, 56, 56, dtype=dtype), torch.zeros(56, 56, dtype=dtype))
    with pytest.raises(ValueError, match="a response of 240x240"):
        _native.csf_filter(torch.zeros(1, 2, 240, 240, dtype=dtype), torch.zeros(240, 120, dtype=dtype))
    # a response of the other type is converted, not read as this one's bytes
    x = torch.rand(2, 2, 240, 240, dtype=dtype)
    unc = vifb._csf("cv", 240, 240, dtype, torch.device("cpu"))[2]
    other = torch.float64 if dtype == torch.float32 else torch.float32
    assert torch.equal(_native.csf_filter(x, unc.to(other).to(dtype)), _native.csf_filter(x, unc.to(other)))
    assert _native.csf_filter(x[:0], unc).shape == (0, 2, 240, 240)  # an empty batch


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_phase_totals_in_the_ffts_order_give_the_images_rows(native_kernel, dtype):
    """phase_totals on sums in orientation_fft's blocked pixel order (cols given) writes the images' rows:
    bit for bit what the same sums in the images' own order give, for several images, bands and sides
    (a band of `lanes` rows at a time, transposed in registers)."""
    lanes = _native.fft_lanes(dtype)
    gen = torch.Generator().manual_seed(2)
    angles = [o * math.pi / 6 for o in range(6)]
    for rows, cols, nb in [(240, 240, 3), (2 * lanes, 3 * lanes, 2), (lanes, lanes, 1)]:
        rowwise = torch.rand(6, 4, nb, rows, cols, generator=gen, dtype=torch.float64).to(dtype) + 0.05
        blocked = _native.fft_blocks(rowwise.transpose(-1, -2)).reshape(6, 4, -1)  # pixel (y, x) at [y/L][x][y%L]
        thresholds = (torch.rand(6, nb, generator=gen, dtype=torch.float64) * 0.3).to(dtype)
        want = _native.phase_totals(rowwise.reshape(6, 4, -1).contiguous(), thresholds, angles, (1e-4, 0.5, 10.0))
        got = _native.phase_totals(blocked.contiguous(), thresholds, angles, (1e-4, 0.5, 10.0), cols)
        assert torch.equal(got, want)


def test_the_build_leaves_no_file_open():
    """The build key's read of /proc/cpuinfo left the file open (a ResourceWarning in Python's dev mode)."""
    import sys

    code = "from metrics import _native_build as b; b.build(['png']); import gc; gc.collect()"
    got = subprocess.run([sys.executable, "-X", "dev", "-c", code], capture_output=True, text=True, check=True)
    assert "ResourceWarning" not in got.stderr, got.stderr
