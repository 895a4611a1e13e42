"""Leaderboard statistics, tumour regions, byte-identical reruns, and resuming a killed run."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT

from benchmark.data.regions import tumour_boxes
from benchmark.reporting.stats import add_statistics, bootstrap_ci, holm, paired_pvalues, wide_tables
from benchmark.reporting.tables import leaderboard, render


def test_bootstrap_interval_contains_mean_and_shrinks_with_more_images():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0.8, 0.05, 20), rng.normal(0.8, 0.05, 2000)
    lo_s, hi_s = bootstrap_ci(small, 2000, seed=1)
    lo_l, hi_l = bootstrap_ci(large, 2000, seed=1)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert (hi_l - lo_l) < 0.25 * (hi_s - lo_s)
    assert bootstrap_ci(small, 500, seed=3) == bootstrap_ci(small, 500, seed=3)  # seeded


def _drawn_interval(values, n_boot, seed, level=0.95):
    """The interval with its resamples drawn afresh for this call, as bootstrap_ci computed it before it
    kept them for the next column."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    rng, means = np.random.default_rng(seed), np.empty(n_boot)
    for s in range(0, n_boot, 256):
        k = min(256, n_boot - s)
        means[s : s + k] = v[rng.integers(0, v.size, size=(k, v.size))].mean(axis=1)
    return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2))


@pytest.mark.parametrize("n", [2, 7, 1153, 2500])  # 2500 x 2000 resamples: over the kept limit, drawn each call
def test_bootstrap_interval_is_the_freshly_drawn_one_for_every_column(n):
    rng = np.random.default_rng(n)
    for seed in (0, 4):
        for column in range(3):  # the second and third columns use the kept resamples
            v = rng.normal(0.5, 0.1, n)
            if n > 2:
                v[column] = np.nan  # one value fewer: the kept resamples of n - 1 values
            assert bootstrap_ci(v, 2000, seed) == _drawn_interval(v, 2000, seed)


def test_wide_tables_equal_a_pivot_a_column():
    """One grouping for all columns gives each column's images x models as pivot_table did: a model's first
    value that is not NaN, images and models with none left out."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "model": m,
            "name": f"i{i:02d}",
            "X": rng.random(),
            "Y": rng.random(),
            "Z": rng.random() if m != "c" else np.nan,
        }
        for m in "bac"
        for i in range(40)
    ]
    scores = pd.DataFrame(rows)
    scores.loc[rng.random(len(scores)) < 0.3, "X"] = np.nan
    scores.loc[scores.name == "i05", "Y"] = np.nan  # an image without any value
    scores = pd.concat([scores, scores.iloc[:6].assign(X=2.0)]).sample(frac=1, random_state=1)  # repeated rows
    wide = wide_tables(scores, "name", ["X", "Y", "Z"])
    for c in "XYZ":
        pivot = scores.pivot_table(index="name", columns="model", values=c, aggfunc="first")
        pd.testing.assert_frame_equal(wide[c], pivot)
    assert "i05" not in wide["Y"].index and "c" not in wide["Z"].columns


def test_paired_wilcoxon_known_answer_and_holm():
    # b is worse than a on every one of 10 images: exact two-sided p = 2 / 2^10
    a = np.linspace(0.8, 0.9, 10)
    wide = pd.DataFrame(
        {"a": a, "b": a - 0.01 - np.arange(10) * 1e-3, "c": a + np.tile([1e-3, -1e-3], 5) * np.arange(1, 11)}
    )
    p = paired_pvalues(wide, "a")
    assert p["b"] == pytest.approx(min(1, 2 * 2 / 2**10))  # Holm: two comparisons, smallest p doubled
    assert p["c"] > 0.05
    assert holm({"x": 0.01, "y": 0.04, "z": 0.03}) == pytest.approx({"x": 0.03, "z": 0.06, "y": 0.06})


def test_paired_t_over_seeds_known_answer_and_edge_cases():
    """The test of a table over seeds: a paired t-test over the seeds (scipy), Holm-corrected."""
    from scipy import stats

    wide = pd.DataFrame(
        {
            "a": [0.90, 0.91, 0.89],
            "b": [0.88, 0.90, 0.86],  # worse in every seed, by 0.02, 0.01, 0.03
            "c": [0.89, 0.90, 0.88],  # worse by 0.01 in every seed: no spread, p = 0
            "d": [0.90, 0.91, 0.89],  # the same: p = 1
            "e": [0.50, np.nan, np.nan],  # one seed: no test, p = 1
        },
        index=pd.Index([0, 1, 2], name="seed"),
    )
    p = paired_pvalues(wide, "a", test="t")
    raw = stats.ttest_rel(wide.a, wide.b).pvalue
    assert 0.03 < raw < 0.1  # t = 3.46 on 2 degrees of freedom
    assert p == pytest.approx({"c": 0.0, "b": min(1, 3 * raw), "d": 1.0, "e": 1.0})  # Holm: b is 2nd of 4
    assert paired_pvalues(wide[["a", "b"]], "a")["b"] == pytest.approx(0.25)  # Wilcoxon over 3 pairs: never < 0.25


def test_a_table_over_seeds_marks_ties_from_its_own_columns():
    t = pd.DataFrame(
        {"Q_SSIM": [0.9, 0.89, 0.8], "Q_SSIM_std": [0.01] * 3, "Q_SSIM_same": [True, True, False], "n": 3},
        index=["best", "same", "worse"],
    )
    md = render(t, ["Q_SSIM"], "md", with_std=True, style="seeds")
    rows = {r.split("|")[1].strip(): r for r in md.splitlines() if r.startswith("| ") and "Model" not in r}
    assert rows["same"].endswith("0.890 ± 0.010 ≈ |") and "≈" not in rows["worse"] and "≈" not in rows["best"]
    assert "≈: not significantly different from the best mean of its column over the seeds (paired t-test" in md
    tex = render(t, ["Q_SSIM"], "tex", with_std=True, style="seeds")
    assert "0.890 $\\pm$ 0.010$^{\\approx}$" in tex
    assert "≈" not in render(t, ["Q_SSIM"], "md", with_std=True, style="paper")


def test_statistics_in_tables_mark_ties_with_the_best():
    rng = np.random.default_rng(1)
    rows = []
    for i in range(30):
        base = rng.normal(0.8, 0.02)
        rows += [
            {"model": "best", "index": i, "Q_SSIM": base + 0.02},
            {"model": "same", "index": i, "Q_SSIM": base + 0.02 + rng.normal(0, 1e-3)},
            {"model": "worse", "index": i, "Q_SSIM": base},
        ]
    s = pd.DataFrame(rows)
    t = add_statistics(leaderboard(s, ["Q_SSIM"]), s, ["Q_SSIM"], lambda c: True, 1000, 0)
    assert t.loc["worse", "Q_SSIM_p"] < 1e-3 and not t.loc["worse", "Q_SSIM_same"]
    assert t.loc["same", "Q_SSIM_same"] and t.loc["best", "Q_SSIM_same"]
    md = render(t, ["Q_SSIM"], "md", style="stats")
    assert "≈" in md and "[" in md and "Wilcoxon" in md
    assert "[" not in render(t, ["Q_SSIM"], "md", style="paper")


def test_tumour_boxes_on_phantom():
    from benchmark.data.phantom import make_split

    _, _, lab = make_split(2, "val", 4)
    lab = torch.from_numpy(lab)
    boxes = tumour_boxes(lab)
    for b, l in zip(boxes, lab):
        r, c, side = b
        assert side >= 48 and side % 8 == 0 and 0 <= r <= 240 - side and 0 <= c <= 240 - side
        inside = l[r : r + side, c : c + side]
        assert (inside > 0).sum() == (l > 0).sum()  # the whole tumour is in the box
    assert tumour_boxes(torch.zeros(1, 64, 64, dtype=torch.uint8)) == [None]


def _bench(args, env=None):
    return [sys.executable, "-m", "benchmark", "run", *args]


def test_same_seed_gives_byte_identical_scores(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for name in ("a", "b"):
        r = subprocess.run(
            _bench(["--models", "mean,deepfuse", "--profile", "smoke", "--out", str(tmp_path), "--run-name", name]),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr[-2000:]
    a, b = (tmp_path / "a" / "scores.csv").read_bytes(), (tmp_path / "b" / "scores.csv").read_bytes()
    assert a == b and b"tumour" in a


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_tables(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = ["--models", "mean,deepfuse", "--profile", "smoke", "--epochs", "3", "--out", str(tmp_path)]
    ref = subprocess.run(_bench(args + ["--run-name", "ref"]), env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]
    p = subprocess.Popen(
        _bench(args + ["--run-name", "k"]),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    last = tmp_path / "k" / "deepfuse" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    assert last.exists(), "the run never wrote its first epoch checkpoint"
    os.killpg(p.pid, signal.SIGKILL)  # mid-training, after epoch 1
    p.wait()
    assert not (tmp_path / "k" / "scores.csv").exists()
    again = subprocess.run(_bench(args + ["--run-name", "k"]), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert re.search(r"resuming deepfuse from \S+last\.pt \(written [\d :-]+\): [12] of 3 epochs done", again.stdout)
    assert re.search(r"deepfuse: trained 3 epochs, 6 steps, \d+s; validation loss [\d.]+ after epoch 1,", again.stdout)
    for f in ("scores.csv", "leaderboard.csv", "leaderboard.md"):
        assert (tmp_path / "k" / f).read_bytes() == (tmp_path / "ref" / f).read_bytes(), f


@pytest.mark.slow
def test_two_gloo_processes_give_the_same_scores_as_one(tmp_path):
    """torchrun with 2 CPU processes (gloo): sharded fusing and scoring, gathered on rank 0."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    one = subprocess.run(
        _bench(["--models", "mean,max", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "one"]),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        _bench(
            [
                "--models",
                "mean,max,deepfuse",
                "--profile",
                "smoke",
                "--nproc",
                "2",
                "--out",
                str(tmp_path),
                "--run-name",
                "two",
            ]
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    assert two.stdout.count("[fusionbench] deepfuse\n") == 1  # rank 0 speaks for the run (each rank did)
    a = pd.read_csv(tmp_path / "one" / "scores.csv")
    b = pd.read_csv(tmp_path / "two" / "scores.csv")
    pd.testing.assert_frame_equal(a, b[b.model.isin(["mean", "max"])].reset_index(drop=True))
    import json

    cfg = json.loads((tmp_path / "two" / "config.json").read_text())
    assert cfg["device"]["processes"] == 2
    assert json.loads((tmp_path / "two" / "deepfuse" / "model.json").read_text())["processes"] == 2
    assert (b.model == "deepfuse").sum() == 16 and b.Q_SSIM.notna().all()  # DDP-trained model scored on all 8 pairs


def test_a_second_bench_on_the_same_folder_is_refused_and_a_killed_one_leaves_no_lock(tmp_path, capsys):
    """While one process writes a run or eval folder, a second `bench run` / `bench eval` into it
    is one line and exit 2 (it used to delete the first's tables and mix its files in); the lock
    goes with its process however that ends (SIGKILL included) and leaves no file behind."""
    from benchmark.atomic import folder_lock
    from benchmark.cli import main

    run_dir = tmp_path / "runs" / "r"
    (run_dir).mkdir(parents=True)
    (run_dir / "leaderboard.md").write_text("the first run's table\n")
    (run_dir / "config.json").write_text('{"config": {}}')  # what marks a run's folder
    with folder_lock(str(run_dir), "hint"):
        args = ["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path / "runs"), "--run-name", "r"]
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is in use by bench (pid" in err[0] and "another --run-name" in err[0], err
        assert (run_dir / "leaderboard.md").read_text() == "the first run's table\n"  # untouched
        ev = tmp_path / "ev"  # the same for bench eval's --out
        for d, img in (("a", 0.2), ("b", 0.6), ("f", 0.4)):
            (tmp_path / d).mkdir()
            np.save(tmp_path / d / "s.npy", np.full((32, 32), img, np.float32))
        eargs = ["eval", "--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b"), "--fused", str(tmp_path / "f")]
        with folder_lock(str(ev), "hint"):
            assert main([*eargs, "--metrics", "Q_SSIM", "--out", str(ev)]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "is in use by bench (pid" in err[0] and "another --out" in err[0], err
            assert os.listdir(ev) == [".lock"]
        ab = ["ablate", "--param", "alpha", "--values", "0.5", "--profile", "smoke", "--out", str(tmp_path / "runs")]
        with folder_lock(str(tmp_path / "runs" / "ab"), "hint"):  # and bench ablate's folder (a run's it refuses)
            assert main([*ab, "--run-name", "ab"]) == 2
            assert "is in use by bench (pid" in capsys.readouterr().err
        (run_dir / "scores.csv").write_text("model,index,region,Q_SSIM\na,0,slice,0.5\n")
        assert main(["table", str(run_dir)]) == 2  # nor does bench table rewrite a run's tables meanwhile
        assert "is in use by bench (pid" in capsys.readouterr().err
        assert (run_dir / "leaderboard.md").read_text() == "the first run's table\n"
    assert not (run_dir / ".lock").exists()
    assert main(args) == 0 and not (run_dir / ".lock").exists()  # free again
    assert main([*eargs, "--metrics", "Q_SSIM", "--out", str(ev)]) == 0 and not (ev / ".lock").exists()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from benchmark.atomic import folder_lock\nwith folder_lock({str(run_dir)!r}, ''):\n"
            "    print('held', flush=True)\n    import time; time.sleep(60)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RuntimeError, match=f"in use by bench \\(pid {holder.pid},"):
            with folder_lock(str(run_dir), "hint"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(str(run_dir), "hint"):  # SIGKILL released it
        pass


def test_a_file_system_without_flock_works_unlocked(tmp_path, monkeypatch):
    import errno
    import fcntl

    from benchmark.atomic import folder_lock

    def no_locks(*a):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with folder_lock(str(tmp_path / "f"), "hint"):
        (tmp_path / "f" / "x").write_text("written")
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["x"]


def test_json_files_are_standard_json(tmp_path):
    """NaN and infinities are not JSON (jq and JavaScript reject Python's bare NaN / Infinity): the
    run's JSON files hold null there. bench run --epochs 0 wrote "best_val_loss": Infinity."""
    import math

    from benchmark.atomic import write_json
    from benchmark.cli import main

    def strict(path):
        return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path.name} holds {c}"))

    write_json(tmp_path / "x.json", {"a": [1.5, math.nan, {"b": -math.inf}], "c": (math.inf, 2), "d": "NaN"})
    assert strict(tmp_path / "x.json") == {"a": [1.5, None, {"b": None}], "c": [None, 2], "d": "NaN"}
    args = "run --models deepfuse --profile smoke --epochs 0".split() + ["--out", str(tmp_path), "--run-name", "r"]
    assert main(args) == 0
    files = list((tmp_path / "r").rglob("*.json"))
    assert len(files) >= 4 and all(strict(p) is not None for p in files)
    assert strict(tmp_path / "r" / "deepfuse" / "train.json")["best_val_loss"] is None


def test_result_files_get_the_mode_of_any_other_file(tmp_path):
    """Every file written atomically was 0600 (tempfile.mkstemp's mode, kept by os.replace): the
    tables, figures and checkpoints of a run on a shared machine were unreadable to the user's
    group. Now 0666 less the umask, as any other file; no temporary file stays behind."""
    from benchmark.cli import main

    old = os.umask(0o022)
    try:
        args = "run --models mean,deepfuse --profile smoke --epochs 1".split() + ["--out", str(tmp_path)]
        assert main(args) == 0
        os.umask(0o027)  # the user's umask decides, as for any file
        assert main(["table", str(tmp_path / "smoke-phantom")]) == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "smoke-phantom").rglob("*") if p.is_file() and p.name != ".lock"]
    modes = {p.relative_to(tmp_path).as_posix(): oct(p.stat().st_mode & 0o777) for p in files}
    rebuilt = {
        k
        for k in modes
        if k.split("/")[-1].startswith("leaderboard") or k.endswith(("distributions.png", "training.png"))
    }
    for must in ("scores.csv", "leaderboard.md", "figures/samples.png", "deepfuse/best.pt", "deepfuse/train.json"):
        assert f"smoke-phantom/{must}" in modes, must
    wrong = {k: m for k, m in modes.items() if m != ("0o640" if k in rebuilt else "0o644")}
    assert not wrong, wrong
    assert not [p for p in files if ".tmp" in p.name]
