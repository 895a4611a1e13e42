"""bench run end to end on the smoke profile, and its bad inputs."""
import json
import os

import h5py
import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main

METRICS = ["Q_SSIM", "Q_FMI", "Q_NCIE", "Q_XY", "Q_P"]


def test_bench_run_mean_max_writes_every_file(tmp_path, capsys):
    assert main(["run", "--models", "mean,max", "--data", "phantom", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]) == 0
    d = tmp_path / "r"
    for f in ("config.json", "scores.csv", "leaderboard.csv", "leaderboard.tex", "leaderboard.md", "figures/samples.png", "run.json"):
        assert (d / f).exists(), f
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["seed"] == 0 and cfg["config"]["profile"] == "smoke" and "torch" in cfg["versions"] and cfg["device"]["device"] == "cpu"
    s = pd.read_csv(d / "scores.csv")
    assert list(s.columns) == ["model", "index", "region"] + METRICS and len(s) == 32
    assert s[s.region == "slice"].groupby("model").size().to_dict() == {"mean": 8, "max": 8}
    assert (s.region == "tumour").sum() == 16 and (d / "leaderboard_tumour.md").exists() and (d / "figures" / "distributions.png").exists()
    board = pd.read_csv(d / "leaderboard.csv", index_col=0)
    assert list(board.index) == ["mean", "max"]
    np.testing.assert_allclose(board.loc["mean", "Q_SSIM"], s[(s.model == "mean") & (s.region == "slice")].Q_SSIM.mean(), atol=1e-6)
    assert {"Q_SSIM_lo", "Q_SSIM_hi", "Q_SSIM_p", "Q_SSIM_same"} <= set(board.columns)
    assert "**" in (d / "leaderboard.md").read_text()
    assert not [p for p in d.rglob("*") if ".tmp" in p.name]
    # a rerun reuses finished models and gives the same bytes
    before = (d / "scores.csv").read_bytes()
    assert main(["run", "--models", "mean,max", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]) == 0
    assert (d / "scores.csv").read_bytes() == before


def test_unwritable_results_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        assert main(["run", "--models", "mean", "--profile", "smoke", "--out", str(ro)]) == 2
        assert "not writable" in capsys.readouterr().err
    finally:
        os.chmod(ro, 0o700)


def test_unwritable_results_folder_is_reported_even_as_root(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", "--models", "mean", "--profile", "smoke", "--out", str(blocker)]) == 2
    assert "not writable" in capsys.readouterr().err


def test_bad_data_specs(tmp_path, capsys):
    assert main(["run", "--models", "mean", "--profile", "smoke", "--data", "nowhere.txt", "--out", str(tmp_path)]) == 2
    assert "unknown data 'nowhere.txt'" in capsys.readouterr().err
    p = tmp_path / "nan.h5"
    d = np.random.rand(4, 4, 32, 32).astype(np.float32)
    d[2, 2, 0, 0] = np.inf
    with h5py.File(p, "w") as f:
        f["data"] = d
    assert main(["run", "--models", "mean", "--profile", "smoke", "--data", f"{p},{p}", "--out", str(tmp_path / "o"), "--run-name", "x"]) == 2
    assert "sample 2 contains NaN or Inf" in capsys.readouterr().err
    assert not (tmp_path / "o" / "x" / "scores.csv").exists()


def test_overrides_and_unknown_fields(tmp_path, capsys):
    assert main(["run", "--models", "mean", "--profile", "smoke", "--set", "nope=1", "--out", str(tmp_path)]) == 2
    assert "unknown config field 'nope'" in capsys.readouterr().err
    assert main(["run", "--models", "mean", "--profile", "bogus", "--out", str(tmp_path)]) == 2
    assert "unknown profile 'bogus'" in capsys.readouterr().err
    assert main(["run", "--models", "mean", "--profile", "smoke", "--n-val", "3", "--set", "metrics=Q_SSIM,Q_P", "--out", str(tmp_path), "--run-name", "o"]) == 0
    s = pd.read_csv(tmp_path / "o" / "scores.csv")
    assert list(s.columns) == ["model", "index", "region", "Q_SSIM", "Q_P"] and (s.region == "slice").sum() == 3
