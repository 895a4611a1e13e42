"""benchmark.tools.speed_floor counts the windows Tang's FMI kernels score (the figure the README's
floor for ``tang`` multiplies)."""

from pathlib import Path

import pytest
import torch

from benchmark.tools.speed_floor import fmi_windows_and_ms, metric_ms


@pytest.mark.parametrize("native", ["auto", "0"])
def test_fmi_window_counts_are_every_window_the_original_scores(native, monkeypatch):
    """The same counts whichever kernel scores the windows: the hand-written one, or (FUSIONBENCH_NATIVE=0)
    the PyTorch kernel."""
    monkeypatch.setenv("FUSIONBENCH_NATIVE", native)
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 256, (4, 1, 40, 48), generator=g).to(torch.float32)
    b = torch.randint(0, 256, (4, 1, 40, 48), generator=g).to(torch.float32)
    f = torch.round((a + b) / 2)
    f[:, :, :8, :8] = a[:, :, :8, :8]  # identical to x1 there: those windows are skipped (x1 pass)
    counts = fmi_windows_and_ms(a, b, f, timed=False)
    assert set(counts) == {"FMI_pixel", "FMI_dct", "FMI_w"}
    assert all(ms == 0 for _, ms in counts.values())
    # DCT features: every 3x3 window of both passes (the DCT spreads the identical corner everywhere)
    assert counts["FMI_dct"][0] == 2 * 38 * 46
    # wavelet mosaic: each subband floor((n + 101) / 2) long (MATLAB's dwt with 'dmey', 102 taps)
    assert counts["FMI_w"][0] == 2 * (2 * 70 - 2) * (2 * 74 - 2)
    # binary Sobel edge maps: the many windows where the source's map equals F's are skipped
    assert 0 < counts["FMI_pixel"][0] < 2 * 38 * 46
    if native == "auto":  # timed (the PyTorch kernel would compile first: ~15 s)
        timed = fmi_windows_and_ms(a, b, f)
        assert all(timed[k][0] == counts[k][0] and timed[k][1] > 0 for k in counts)


def test_metric_ms_times_every_metric_of_the_set_alone():
    from metrics.lineage import SPECS

    g = torch.Generator().manual_seed(4)
    a = torch.randint(0, 256, (4, 1, 40, 48), generator=g).to(torch.float32)
    b = torch.randint(0, 256, (4, 1, 40, 48), generator=g).to(torch.float32)
    ms = metric_ms(a, b, torch.round((a + b) / 2), "cddfuse", repeats=1)
    assert list(ms) == [s.key for s in SPECS["cddfuse"]]
    assert all(v > 0 for v in ms.values())


def test_speed_metrics_times_a_lineage(capsys):
    """speed_metrics --lineage SET times that set's metrics (the GPU check's scoring-alone figures)."""
    import json

    from benchmark.tools import speed_metrics

    assert speed_metrics.main(["--n", "4", "--chunk", "2", "--lineage", "cddfuse", "--sets-only", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["set"] == "cddfuse" and list(r["pairs_per_s"]) == ["all"] and r["device_name"] == "CPU"
    assert speed_metrics.main(["--n", "2", "--chunk", "2", "--lineage", "vifb", "--metrics", "Qabf,Psnr"]) == 0
    out = capsys.readouterr().out
    assert "vifb:Qabf" in out and "vifb:Psnr" in out and "all of vifb:" in out and "Entropy" not in out


def test_speed_metrics_profiles_one_chunk_of_a_set(capsys):
    """--profile K lists where one chunk of a set spends its time: K operators by self time, after the
    count of all operators (on a GPU, each a kernel launch or more)."""
    import json

    from benchmark.tools import speed_metrics

    args = ["--n", "2", "--chunk", "2", "--sets-only", "--profile"]
    assert speed_metrics.main([*args, "3", "--lineage", "vifb", "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)["profile"]
    assert prof[0]["op"] == "(all aten operators)" and prof[0]["count"] > 100
    top = prof[1:4]
    assert all(r["op"].startswith("aten::") for r in top)
    assert top[0]["self_ms"] >= top[1]["self_ms"] >= top[2]["self_ms"] > 0
    assert prof[0]["self_ms"] >= sum(r["self_ms"] for r in top)
    assert speed_metrics.main([*args, "2", "--lineage", "cddfuse"]) == 0
    out = capsys.readouterr().out
    assert "one chunk of 2 profiled, operators by self CPU time:" in out and "(all aten operators)" in out


def test_speed_lineages_times_without_usr_bin_time(tmp_path, monkeypatch, capsys):
    """The GPU machine's image has no /usr/bin/time: a Python parent times bench eval and reads its
    peak RSS instead; --ref-n 0 leaves the NumPy column out, and a set of several lineages has none."""
    import os
    import sys

    from benchmark.tools import speed_lineages

    real = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: False if p == "/usr/bin/time" else real(p))
    assert speed_lineages.timer()[:2] == [sys.executable, "-c"]
    out = tmp_path / "t.md"
    assert speed_lineages.main(["--n", "2", "--sets", "cddfuse,all", "--ref-n", "0", "--out", str(out)]) == 0
    table = out.read_text()
    rows = {s: next(line for line in table.splitlines() if line.startswith(f"| {s} |")) for s in ("cddfuse", "all")}
    for row in rows.values():
        wall, rss = float(row.split("|")[2]), row.split("|")[4]
        assert wall > 0 and all(float(x) > 50 for x in rss.split("->"))  # MiB of a Python process with torch
    assert "not timed" in rows["cddfuse"]  # a NumPy set, not timed at --ref-n 0
    assert "no NumPy reference" in rows["all"]  # several lineages: no one NumPy set
    assert "NumPy: not timed (--ref-n 0)." in table


def test_speed_lineages_bounds_each_speed_up_by_the_floor(tmp_path):
    """Where the NumPy column is timed, the table also times the floor (bench eval scoring one cheap metric)
    and bounds each set's speed-up by NumPy's time over it."""
    from benchmark.tools import speed_lineages

    assert speed_lineages.numpy_columns(True, 0.1, 1000, 10.0, 4.0) == "100, 100 | 10.0x | 25.0x"
    assert speed_lineages.numpy_columns(True, None, 1000, 10.0, None) == "not timed | - | -"
    assert speed_lineages.numpy_columns(False, None, 1000, 10.0, 4.0) == "no NumPy reference | - | -"
    out = tmp_path / "t.md"
    assert speed_lineages.main(["--n", "2", "--sets", "cddfuse", "--ref-n", "1", "--out", str(out)]) == 0
    table = out.read_text()
    row = next(line for line in table.splitlines() if line.startswith("| cddfuse |")).split("|")
    assert row[6].strip().endswith("x") and row[7].strip().endswith("x")  # speed-up and its bound, both timed
    assert float(table.split("Floor: ")[1].split(" s (")[0]) > 0 and "--metrics SD" in table


def test_speed_lineages_floor_is_the_faster_of_two_runs(tmp_path, monkeypatch):
    """The floor bounds every speed-up, so one slow run of it must not loosen the bound: the table takes
    the faster of two runs of the floor's command (and one run of each set)."""
    from benchmark.tools import speed_lineages

    floors = iter([4.3, 2.2])
    calls = []

    def fake_run_eval(folder, metric_set, n_label, *args, metrics=None, **kwargs):
        calls.append((metric_set, metrics))
        return (next(floors) if metrics else 7.0), 300.0

    monkeypatch.setattr(speed_lineages, "run_eval", fake_run_eval)
    monkeypatch.setattr(speed_lineages, "numpy_reference_seconds", lambda folder, n, s: 0.03)
    out = tmp_path / "t.md"
    assert speed_lineages.main(["--n", "2", "--sets", "cddfuse", "--ref-n", "1", "--out", str(out)]) == 0
    assert calls.count(("cddfuse", "SD")) == 2 and calls.count(("cddfuse", None)) == 2  # the set: n and n/8
    assert "Floor: 2.2 s (the fastest of 2 runs)" in out.read_text()


def test_speed_lineages_repeats_give_medians_and_ranges_over_rounds(tmp_path, monkeypatch):
    """--repeats N: every timing N times, the sets in turn within each round; each wall time is the median
    with its range, NumPy's time the median, the floor the fastest of its runs, the n/8 memory run once."""
    from benchmark.tools import speed_lineages

    walls = {"liu": iter([9.0, 7.0, 8.0]), "cddfuse": iter([6.0, 5.0, 10.0])}
    floors = iter([4.3, 2.6, 2.2, 3.0])
    refs = iter([0.09, 0.03, 0.1, 0.02, 0.08, 0.04])  # liu's and cddfuse's per round, in turn
    order = []

    def fake_run_eval(folder, metric_set, n_label, *args, metrics=None, compile_as=None, **kwargs):
        if metrics:
            order.append("floor")
            return next(floors), 300.0
        if compile_as is not None:
            order.append(f"{metric_set} n/8")
            return 1.0, 250.0
        order.append(metric_set)
        return next(walls[metric_set]), 300.0

    monkeypatch.setattr(speed_lineages, "run_eval", fake_run_eval)
    monkeypatch.setattr(speed_lineages, "numpy_reference_seconds", lambda folder, n, s: next(refs))
    out = tmp_path / "t.md"
    argv = ["--n", "100", "--sets", "liu,cddfuse", "--ref-n", "1", "--repeats", "3", "--out", str(out)]
    assert speed_lineages.main(argv) == 0
    assert order == ["floor", "floor", "liu", "liu n/8", "cddfuse", "cddfuse n/8"] + ["floor", "liu", "cddfuse"] * 2
    table = out.read_text()
    rows = {line.split("|")[1].strip(): line.split("|") for line in table.splitlines() if line.startswith("| ")}
    assert rows["liu"][2].strip() == "8.0 (7.0-9.0)" and rows["cddfuse"][2].strip() == "6.0 (5.0-10.0)"
    assert rows["liu"][5].strip() == "90, 9" and rows["liu"][6].strip() == "1.1x"  # NumPy's median: 0.09 s
    assert rows["cddfuse"][5].strip() == "30, 3"  # the median of 0.03, 0.02, 0.04
    assert "Floor: 2.2 s (the fastest of 4 runs)" in table and "median of 3 rounds" in table


def test_every_lineage_has_a_numpy_reference_that_times_it(tmp_path):
    """The speed table's NumPy column covers Liu's five and every lineage, each timed per triple on
    the same PNGs bench eval reads."""
    from benchmark.tools import speed_lineages
    from metrics.lineage import LINEAGES

    assert set(speed_lineages.numpy_references()) == {"liu", *LINEAGES}
    speed_lineages.write_triples(str(tmp_path), 1)
    for s in speed_lineages.numpy_references():
        assert 0 < speed_lineages.numpy_reference_seconds(str(tmp_path), 1, s) < 30, s


def test_speed_sharing_times_both_ways_and_refuses_different_scores(tmp_path, monkeypatch):
    """benchmark.tools.speed_sharing runs bench eval of several fused folders with and without
    sharing the sources' work (FUSIONBENCH_SHARE_SOURCES=0 / 1) and tables both; scores that differ
    between the two stop it."""
    from benchmark.tools import speed_sharing

    out = tmp_path / "t.md"
    args = ["--folders", "2", "--sets", "cddfuse", "--pairs", "1"]
    assert speed_sharing.main(["--n", "2", *args, "--out", str(out)]) == 0
    table = out.read_text()
    assert "against 2 fused folders (mean, max)" in table
    cells = next(line for line in table.splitlines() if line.startswith("| cddfuse |")).split("|")
    assert float(cells[2]) > 0 and float(cells[3]) > 0 and all(float(x) > 50 for x in cells[5].split("->"))
    seen = []

    def fake(folder, metric_set, label, fused, env, keep):  # each way writes other scores
        seen.append(env["FUSIONBENCH_SHARE_SOURCES"])
        Path(keep).write_text(env["FUSIONBENCH_SHARE_SOURCES"])
        return 1.0, 100.0

    monkeypatch.setattr(speed_sharing, "run_eval", fake)
    with pytest.raises(RuntimeError, match="cddfuse: the scores with and without sharing differ"):
        speed_sharing.main(["--n", "1", *args])
    assert seen == ["0", "1"]


def test_gpu_check_script_parses_and_calls_what_exists():
    """benchmark/tools/gpu_check.sh runs only on a lent GPU machine: here, its shell parses and every
    module and test file it names exists (a typo would cost a lease)."""
    import importlib.util
    import re
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = root / "benchmark" / "tools" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    modules = set(re.findall(r"python3 -m ([\w.]+)", text)) - {"pip", "pytest"}
    assert {"benchmark", "benchmark.tools.speed_metrics", "benchmark.tools.speed_lineages"} <= modules
    assert all(importlib.util.find_spec(m) is not None for m in modules), modules
    files = re.findall(r"tests/\w+\.py", text)
    assert files and all((root / f).is_file() for f in files)


@pytest.mark.parametrize("native", ["auto", "0"])
def test_qp_floor_times_the_ffts_phase_congruency_runs(native, monkeypatch):
    """speed_floor's Qp figures time the FFTs phase congruency takes: the hand-written kernel's (with its
    sums over the scales) where it builds and takes the sides, else PyTorch's; and the noise medians."""
    from benchmark.tools.speed_floor import qp_ms

    monkeypatch.setenv("FUSIONBENCH_NATIVE", native)
    g = torch.Generator().manual_seed(5)
    a, b = (torch.randint(0, 256, (4, 1, 40, 48), generator=g).to(torch.float32) for _ in range(2))
    ffts, medians, own = qp_ms(a, b, torch.round((a + b) / 2), repeats=1)
    assert ffts > 0 and medians > 0 and own == (native == "auto")


def test_kernel_split_times_the_kernels_calls_and_restores_them(monkeypatch):
    """The whole covers the kernels' share, which is the sum of the calls named (public kernel entries
    of metrics._native); the module is left as it was; with the kernels off (FUSIONBENCH_NATIVE=0)
    nothing is inside them."""
    from benchmark.tools.speed_floor import kernel_split
    from metrics import _native

    before = dict(vars(_native))
    g = torch.Generator().manual_seed(5)
    a = torch.randint(0, 256, (4, 1, 48, 48), generator=g).to(torch.float32)
    b = torch.randint(0, 256, (4, 1, 48, 48), generator=g).to(torch.float32)
    f = torch.round((a + b) / 2)
    whole, inside, calls = kernel_split(a, b, f, "vifb", repeats=1)
    assert vars(_native) == before
    if _native.available():
        assert {"separable_products", "qabf"} <= set(calls) and all(v > 0 for v in calls.values())
        assert 0 < inside <= whole and abs(sum(calls.values()) - inside) < 1e-9
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    whole0, inside0, calls0 = kernel_split(a, b, f, "vifb", repeats=1)
    assert whole0 > 0 and inside0 == 0 and not calls0


def test_glue_sites_charge_pytorch_calls_to_project_lines_outside_the_kernels(monkeypatch):
    """Each PyTorch call is charged to the project line that made it (``path:line function``), none to
    the body of a kernel entry of metrics._native (the kernels' share, kernel_split's); the total is the
    sites' sum; the module and PyTorch's function modes are left as they were. With the kernels off the
    PyTorch steps that replace them are charged too (their lines in metrics/lineage)."""
    import inspect
    import re

    from benchmark.tools.speed_floor import _kernel_entries, glue_sites
    from metrics import _native

    before = dict(vars(_native))
    g = torch.Generator().manual_seed(6)
    a = torch.randint(0, 256, (4, 1, 48, 48), generator=g).to(torch.float32)
    b = torch.randint(0, 256, (4, 1, 48, 48), generator=g).to(torch.float32)
    f = torch.round((a + b) / 2)
    bodies = []
    for fn in _kernel_entries().values():
        lines, first = inspect.getsourcelines(fn)
        bodies.append(range(first, first + len(lines)))
    total, sites = glue_sites(a, b, f, "vifb")
    assert vars(_native) == before and not torch._C._is_torch_function_mode_enabled()
    assert sites and abs(total - sum(ms for ms, _ in sites.values())) < 1e-9
    for where, (ms, calls) in sites.items():
        m = re.fullmatch(r"((?:metrics|benchmark|baselines|fusioninn)/[\w/]+\.py):(\d+) [\w<>]+", where)
        assert m, where
        assert ms > 0 and calls > 0
        if m.group(1) == "metrics/_native.py":
            assert not any(int(m.group(2)) in body for body in bodies), where
    assert any(w.startswith("metrics/lineage/vifb.py:") for w in sites)
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    total0, sites0 = glue_sites(a, b, f, "vifb")
    assert total0 > 0 and len(sites0) > len(sites)
