"""bench run end to end on the smoke profile, and its bad inputs."""

import dataclasses
import json
import os
import re

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.cli import main

METRICS = ["Q_SSIM", "Q_FMI", "Q_NCIE", "Q_XY", "Q_P", "Q_SSIM_x1", "Q_SSIM_x2"]


def test_bench_run_mean_max_writes_every_file(tmp_path, capsys):
    assert (
        main(
            [
                "run",
                "--models",
                "mean,max",
                "--data",
                "phantom",
                "--profile",
                "smoke",
                "--out",
                str(tmp_path),
                "--run-name",
                "r",
            ]
        )
        == 0
    )
    d = tmp_path / "r"
    for f in (
        "config.json",
        "scores.csv",
        "leaderboard.csv",
        "leaderboard.tex",
        "leaderboard.md",
        "figures/samples.png",
        "run.json",
    ):
        assert (d / f).exists(), f
    cfg = json.loads((d / "config.json").read_text())
    assert (
        cfg["seed"] == 0
        and cfg["config"]["profile"] == "smoke"
        and "torch" in cfg["versions"]
        and cfg["device"]["device"] == "cpu"
        and cfg["device"]["cpu"]
        and cfg["device"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    )
    s = pd.read_csv(d / "scores.csv")
    assert list(s.columns) == ["model", "index", "region"] + METRICS and len(s) == 32
    assert s[s.region == "slice"].groupby("model").size().to_dict() == {"mean": 8, "max": 8}
    assert (
        (s.region == "tumour").sum() == 16
        and (d / "leaderboard_tumour.md").exists()
        and (d / "figures" / "distributions.png").exists()
    )
    board = pd.read_csv(d / "leaderboard.csv", index_col=0)
    assert list(board.index) == ["mean", "max"]
    np.testing.assert_allclose(
        board.loc["mean", "Q_SSIM"], s[(s.model == "mean") & (s.region == "slice")].Q_SSIM.mean(), atol=1e-6
    )
    assert {"Q_SSIM_lo", "Q_SSIM_hi", "Q_SSIM_p", "Q_SSIM_same"} <= set(board.columns)
    assert "**" in (d / "leaderboard.md").read_text()
    assert not [p for p in d.rglob("*") if ".tmp" in p.name]
    # per-source Q_SSIM: the two halves of Q_SSIM, shown but not ranked (never bold)
    sl = s[s.region == "slice"]
    np.testing.assert_allclose(sl.Q_SSIM, (sl.Q_SSIM_x1 + sl.Q_SSIM_x2) / 2, atol=1e-9)
    md = (d / "leaderboard.md").read_text()
    assert "| Q_SSIM_x1 | Q_SSIM_x2 |" in md and all(
        c.count("**") == 0 for line in md.splitlines()[4:] for c in line.split("|")[-3:]
    )
    # a rerun reuses finished models, says so, and gives the same bytes
    capsys.readouterr()
    before = (d / "scores.csv").read_bytes()
    assert main(["run", "--models", "mean,max", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]) == 0
    assert (d / "scores.csv").read_bytes() == before
    out = capsys.readouterr().out
    assert f"reusing mean from {d / 'mean'}, finished 20" in out and "--retrain" in out
    assert "also holds finished" not in out
    # a rerun with fewer models tabulates those only, and names the finished ones it leaves out
    assert main(["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]) == 0
    assert list(pd.read_csv(d / "leaderboard.csv", index_col=0).index) == ["mean"]
    assert f"note: {d} also holds finished max from an earlier command" in capsys.readouterr().out


def test_copy_anchors_score_what_fusing_nothing_scores(tmp_path):
    assert (
        main(
            ["run", "--models", "copy-x1,copy-x2,mean", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "c"]
        )
        == 0
    )
    s = pd.read_csv(tmp_path / "c" / "scores.csv")
    s = s[s.region == "slice"].groupby("model").mean(numeric_only=True)
    # a copy is its own source exactly (SSIM 1 against it) and only partly the other
    assert s.loc["copy-x1", "Q_SSIM_x1"] == pytest.approx(1.0, abs=1e-9) and s.loc["copy-x1", "Q_SSIM_x2"] < 0.95
    assert s.loc["copy-x2", "Q_SSIM_x2"] == pytest.approx(1.0, abs=1e-9) and s.loc["copy-x2", "Q_SSIM_x1"] < 0.95
    board = pd.read_csv(tmp_path / "c" / "leaderboard.csv", index_col=0)
    assert list(board.index) == ["mean", "copy-x1", "copy-x2"]
    assert "Copy T1-Gd" in (tmp_path / "c" / "leaderboard.md").read_text()


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
    assert (
        main(
            [
                "run",
                "--models",
                "mean",
                "--profile",
                "smoke",
                "--data",
                f"{p},{p}",
                "--out",
                str(tmp_path / "o"),
                "--run-name",
                "x",
            ]
        )
        == 2
    )
    assert "sample 2 contains NaN or Inf" in capsys.readouterr().err
    assert not (tmp_path / "o" / "x" / "scores.csv").exists()


def test_overrides_and_unknown_fields(tmp_path, capsys):
    assert main(["run", "--models", "mean", "--profile", "smoke", "--set", "nope=1", "--out", str(tmp_path)]) == 2
    assert "unknown config field 'nope'" in capsys.readouterr().err
    assert main(["run", "--models", "mean", "--profile", "bogus", "--out", str(tmp_path)]) == 2
    assert "unknown profile 'bogus'" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "--models",
                "mean",
                "--profile",
                "smoke",
                "--n-val",
                "3",
                "--set",
                "metrics=Q_SSIM,Q_P",
                "--out",
                str(tmp_path),
                "--run-name",
                "o",
            ]
        )
        == 0
    )
    s = pd.read_csv(tmp_path / "o" / "scores.csv")
    assert list(s.columns) == ["model", "index", "region", "Q_SSIM", "Q_P"] and (s.region == "slice").sum() == 3


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--epochs", "-1"], "epochs = -1: expected a whole number >= 0"),
        (["--set", "n_boot=0"], "n_boot = 0: expected a whole number >= 1"),
        (["--width", "0"], "width = 0.0: expected a finite number > 0"),
        (["--set", "decomposition_draws=0"], "decomposition_draws = 0"),
        (["--set", "seed=-5"], "seed = -5"),
        (["--set", "loss_lambda=2"], "loss_lambda = 2.0: expected a finite number >= 0 and <= 1"),
        (["--set", "table_style=foo"], "table_style = 'foo': expected one of stats, paper"),
        (["--set", "fusioninn_k=5"], "fusioninn_k = 5: expected a whole number from 1 to 4"),
        (["--set", "per_model=fusioninn.lr=0"], "per_model fusioninn: config field lr = 0.0: expected a finite"),
        # per_model's items named "--set lr" or "--set: unknown config field" before
        (["--set", "per_model=fusioninn.lr=abc"], "per_model: 'fusioninn.lr=abc': cannot read 'abc' as float"),
        (["--set", "per_model=fusioninn.foo=1"], "per_model: 'foo' cannot differ per model; allowed: epochs, lr,"),
        (["--set", "lr=inf"], "lr = inf: expected a finite number > 0"),  # trained to NaN, then a traceback
        (["--width", "inf"], "width = inf: expected a finite number > 0"),
        (["--set", "ddfm_prior_channels=12,16"], "ddfm_prior_channels = '12,16': expected comma-separated"),
        (["--set", "ddfm_prior=/no/such/prior"], "--ddfm-prior /no/such/prior: not a diffusers UNet2DModel folder"),
        (["--set", "phantom_seed=-1"], "phantom_seed = -1: expected a whole number >= 0 and <= 4294967295 or None"),
        (["--set", "phantom_seed=1", "--data", "x.h5"], "phantom_seed = 1: it draws the phantom's images, and the"),
    ],
)
def test_a_value_no_run_can_use_fails_before_any_work(tmp_path, capsys, args, needle):
    """Before, these trained every fuser and then raised a traceback (n_boot, decomposition_draws,
    table_style, the DDFM prior's channels or folder) or ran with a meaningless setting (negative
    epochs, lambda outside [0, 1])."""
    cmd = ["run", "--models", "fusioninn", "--profile", "smoke", *args, "--out", str(tmp_path / "r")]
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_a_diverging_fuser_is_one_line_and_leaves_no_leaderboard(tmp_path, capsys):
    """A learning rate that sends a built-in fuser's loss to NaN was a FloatingPointError traceback."""
    cmd = ["run", "--models", "unet", "--profile", "smoke", "--set", "per_model=unet.lr=1e30", "--out", str(tmp_path)]
    assert main(cmd) == 2
    err = capsys.readouterr().err.split("\r")[-1]  # after the training bar, which clears its line
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "unet: training loss became nan at epoch 1" in err
    assert "lower its learning rate (1e+30; e.g. --set per_model=unet.lr=...)" in err
    assert not list(tmp_path.glob("*/leaderboard*")) and not list(tmp_path.glob("*/scores.csv"))


def test_every_profile_passes_the_config_check_and_ablation_checks_each_value(tmp_path, capsys):
    from benchmark.config import PROFILES, make_config

    for name in PROFILES:
        make_config(name)  # raises if a shipped profile broke a range
    cmd = ["ablate", "--param", "k", "--values", "2,5", "--profile", "smoke", "--out", str(tmp_path / "a")]
    assert main(cmd) == 2  # the bad last value stops the sweep before the first is trained
    assert "--values 5: config field fusioninn_k = 5" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    for values, twice in (("0.5,0.8,0.50", "0.5"), ("normal, zeros,normal", "normal")):  # once crashed at the table
        param = "alpha" if values[0] == "0" else "prior"
        cmd = ["ablate", "--param", param, "--values", values, "--profile", "smoke", "--out", str(tmp_path / "a")]
        assert main(cmd) == 2
        assert f"{twice} given twice; each value is one row" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    base = ["ablate", "--param", "alpha", "--values", "0.5", "--profile", "smoke", "--out", str(tmp_path / "a")]
    for extra in (["--lineage", "tang"], ["--metrics", "Q_P"], ["--models", "unet"], ["--from", "results/cpu-phantom"]):
        with pytest.raises(SystemExit) as e:  # Table 2's SSIMs of one FusionINN per value: not silently ignored
            main([*base, *extra])
        assert e.value.code == 2 and f"unrecognized arguments: {' '.join(extra)}" in capsys.readouterr().err
    assert main([*base, "--set", "from_run=results/cpu-phantom"]) == 2  # every row the same loaded weights
    assert "bench ablate trains one FusionINN per value; it does not load weights" in capsys.readouterr().err
    assert main([*base, "--paper"]) == 2  # ran the four sweeps, --param alpha ignored
    assert "--paper runs the paper's four sweeps; give it without --param and --values" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_trained_fuser_curves_and_reuse_messages(tmp_path, capsys):
    args = [
        "run",
        "--models",
        "deepfuse",
        "--profile",
        "smoke",
        "--epochs",
        "2",
        "--out",
        str(tmp_path),
        "--run-name",
        "t",
    ]
    assert main(args) == 0
    d = tmp_path / "t"
    hist = json.loads((d / "deepfuse" / "train.json").read_text())["history"]
    assert [h["epoch"] for h in hist] == [1, 2] and hist[1]["step"] > hist[0]["step"] > 0
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"]) for h in hist)
    assert (d / "figures" / "training.png").stat().st_size > 5000
    # bench table draws the figures of saved files again, as the run drew them (not the sample grid)
    drawn = {f: (d / "figures" / f).read_bytes() for f in ("training.png", "distributions.png", "samples.png")}
    for f in drawn:
        (d / "figures" / f).write_bytes(b"old")
    capsys.readouterr()
    assert main(["table", str(d)]) == 0
    assert "redrew figures/distributions.png, figures/training.png" in capsys.readouterr().out
    for f in ("training.png", "distributions.png"):
        assert (d / "figures" / f).read_bytes() == drawn[f]
    assert (d / "figures" / "samples.png").read_bytes() == b"old"
    (d / "figures" / "samples.png").write_bytes(drawn["samples.png"])
    capsys.readouterr()
    assert main(args) == 0
    assert f"reusing deepfuse from {d / 'deepfuse'}, finished" in capsys.readouterr().out
    # scores gone but weights kept: the run reuses the trained weights and says so
    os.remove(d / "deepfuse" / "scores.csv")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "reusing the trained weights of deepfuse" in out and (d / "deepfuse" / "scores.csv").exists()
    # other metrics (a lineage, a metric profile): the same training, scored again (it retrained)
    best = (d / "deepfuse" / "best.pt").read_bytes()
    assert main([*args, "--lineage", "cddfuse"]) == 0
    out = capsys.readouterr().out
    assert "deepfuse: the metrics (their settings or code) or the decomposition draws changed" in out
    assert "reusing the trained weights of deepfuse" in out and (d / "deepfuse" / "best.pt").read_bytes() == best
    assert "Qabf" in pd.read_csv(d / "scores.csv").columns and "epoch 1/2" not in capsys.readouterr().err
    # a training setting: trained again
    assert main([*args[:-4], "--set", "lr=2e-3", *args[-4:]]) == 0
    out = capsys.readouterr().out
    assert "reusing the trained weights" not in out  # and it says why it trains again (it said nothing)
    assert f"deepfuse: the training settings changed since {d / 'deepfuse'} was written; training it again" in out
    assert json.loads((d / "deepfuse" / "train.json").read_text())["config"]["lr"] == 2e-3
    summary = d / "deepfuse" / "model.json"  # changed code, as model.json records it: named too
    rec = json.loads(summary.read_text())
    rec.update(fingerprint="0" * 12, train_fingerprint="0" * 12, train_parts={**rec["train_parts"], "code": "0" * 12})
    summary.write_text(json.dumps(rec))
    assert main([*args[:-4], "--set", "lr=2e-3", *args[-4:]]) == 0
    assert "deepfuse: its code (or fusionbench's version) changed since" in capsys.readouterr().out
    rec = json.loads(summary.read_text())  # a model.json from before the parts were recorded
    rec.update(fingerprint="0" * 12, train_fingerprint="0" * 12)
    del rec["train_parts"]
    summary.write_text(json.dumps(rec))
    assert main([*args[:-4], "--set", "lr=2e-3", *args[-4:]]) == 0
    assert "deepfuse: its code, settings or data changed since" in capsys.readouterr().out


def test_ddfm_prior_is_trained_again_when_its_settings_change(tmp_path, capsys):
    """The prior is DDFM's training: its channels changed, the prior is trained again (it was
    reused from the previous settings); other metrics alone reuse it."""
    args = ["run", "--models", "ddfm", "--profile", "smoke", "--set", "ddfm_steps=2", "--out", str(tmp_path)]
    unet = tmp_path / "smoke-phantom" / "ddfm" / "prior" / "unet" / "config.json"
    assert main(args) == 0
    assert json.loads(unet.read_text())["block_out_channels"] == [16, 16, 32]
    import shutil

    mine = tmp_path / "my-prior"  # a prior of the user's own (--ddfm-prior)
    shutil.copytree(unet.parent, mine)
    assert main([*args, "--set", "metrics=Q_SSIM"]) == 0
    assert "reusing the DDFM prior" in capsys.readouterr().out
    assert main([*args, "--set", "ddfm_prior_channels=8,16,16"]) == 0
    assert "reusing the DDFM prior" not in capsys.readouterr().out
    assert json.loads(unet.read_text())["block_out_channels"] == [8, 16, 16]
    ext = [*args, "--ddfm-prior", str(mine), "--run-name", "ext"]
    assert main(ext) == 0 and main(ext) == 0
    assert "reusing ddfm" in capsys.readouterr().out
    shutil.rmtree(mine)
    shutil.copytree(unet.parent, mine)  # other weights under the same folder name: DDFM fuses again
    assert main(ext) == 0 and "reusing ddfm" not in capsys.readouterr().out


def test_from_run_loads_weights_and_trains_nothing(tmp_path, capsys):
    import hashlib

    assert (
        main(["run", "--models", "mean,deepfuse", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "src"])
        == 0
    )
    best = tmp_path / "src" / "deepfuse" / "best.pt"
    sha = hashlib.sha256(best.read_bytes()).hexdigest()
    capsys.readouterr()
    assert (
        main(
            [
                "run",
                "--models",
                "mean,deepfuse",
                "--profile",
                "smoke",
                "--from",
                str(tmp_path / "src"),
                "--out",
                str(tmp_path),
                "--run-name",
                "dst",
            ]
        )
        == 0
    )
    assert f"weights from {best}" in capsys.readouterr().out
    assert hashlib.sha256(best.read_bytes()).hexdigest() == sha  # the source checkpoint is untouched
    dst = tmp_path / "dst" / "deepfuse"
    assert not any((dst / f).exists() for f in ("last.pt", "best.pt", "train.json"))  # no optimiser step, no checkpoint
    info = json.loads((dst / "model.json").read_text())
    assert info["from"] == str(best) and info["weights_sha256"] == sha and "train_seconds" not in info
    a, b = pd.read_csv(tmp_path / "src" / "scores.csv"), pd.read_csv(tmp_path / "dst" / "scores.csv")
    pd.testing.assert_frame_equal(a, b)  # same data, same weights: the same scores
    assert "trained in" in (tmp_path / "dst" / "leaderboard.md").read_text()
    # a fuser the run does not hold is one clear error naming it, before any work
    assert (
        main(
            [
                "run",
                "--models",
                "deepfuse,half-unet",
                "--profile",
                "smoke",
                "--from",
                str(tmp_path / "src"),
                "--out",
                str(tmp_path),
                "--run-name",
                "bad",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "model 'half-unet' is not in that run" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
    assert (
        main(
            [
                "run",
                "--models",
                "mean",
                "--profile",
                "smoke",
                "--from",
                str(tmp_path / "nowhere"),
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "not a run folder" in capsys.readouterr().err


def test_save_fused_images_give_the_runs_scores_under_bench_eval(tmp_path, capsys):
    """--save-fused writes each fuser's fused validation images and the sources and labels as 8-bit
    PNGs; bench eval --labels on them gives the run's slice and tumour scores exactly. A rerun
    without the flag scores again without training and leaves no images behind."""
    run = tmp_path / "smoke-phantom"
    args = ["run", "--models", "mean,deepfuse", "--profile", "smoke", "--out", str(tmp_path)]
    assert main([*args, "--save-fused"]) == 0
    src = run / "sources"
    assert sorted(p.name for p in src.iterdir()) == ["labels", "x1", "x2"]
    scores = pd.read_csv(run / "scores.csv")
    n = int((scores.region == "slice").sum()) // 2
    assert sorted(p.name for p in (run / "deepfuse" / "fused").iterdir()) == [f"{i:05d}.png" for i in range(n)]
    ev = [
        "eval",
        *("--x1", str(src / "x1"), "--x2", str(src / "x2"), "--labels", str(src / "labels")),
        *("--fused", str(run / "mean" / "fused"), str(run / "deepfuse" / "fused")),  # named by model; one --fused
        "--out",
        str(tmp_path / "ev"),
    ]
    assert main(ev) == 0  # was "method name 'fused' given twice": each folder of this layout is named fused
    got = pd.read_csv(tmp_path / "ev" / "scores.csv")
    got["index"] = got["name"].astype(int)
    both = scores.merge(got, on=["model", "index", "region"], suffixes=("", "_eval"))
    assert len(both) == len(scores) == len(got) and (scores.region == "tumour").any()
    for c in ("Q_SSIM", "Q_FMI", "Q_NCIE", "Q_XY", "Q_P", "Q_SSIM_x1", "Q_SSIM_x2"):
        np.testing.assert_array_equal(both[c], both[f"{c}_eval"], err_msg=c)
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "deepfuse: the metrics" in out and "reusing its training" in out
    assert not src.exists() and not (run / "deepfuse" / "fused").exists()


def test_python_config_values_are_checked_for_their_type_and_paths_and_lists_are_taken(tmp_path):
    """benchmark.run(retrain="False") retrained every model (a non-empty string is true), and
    data=Path(...) failed deep in the run with an AttributeError."""
    from pathlib import Path

    import benchmark
    from benchmark.config import make_config

    for field, value, want in (
        ("retrain", "False", "expected True or False"),
        ("amp", 1, "expected True or False"),
        ("quantize", "yes", "expected True or False or None"),
        ("data", 123, "expected text"),
        ("out", None, "expected text"),
        ("models", 3, "expected text (comma-separated names, or a list of names)"),
    ):
        with pytest.raises(ValueError, match=f"config field {field} = .*: {re.escape(want)}$"):
            make_config("smoke", **{field: value})
    cfg = make_config("smoke", data=Path("a.h5"), models=["mean", "max"], metrics=None, lineage=None)
    assert (cfg.data, cfg.models, cfg.metrics, cfg.lineage) == ("a.h5", "mean,max", "all", "")
    res = benchmark.run(models=("mean",), profile="smoke", out=tmp_path / "r", progress=False, log=lambda *_: None)
    assert Path(res.path) == tmp_path / "r" / "smoke-phantom" and list(res.leaderboard.index) == ["mean"]


def test_the_caption_names_the_batch_a_run_trained_with():
    """--batch-size 1 trained at 1 and the caption said "batch <= 8" (the profile's cap)."""
    from benchmark.config import make_config

    def said(**kw):
        return [s for s in make_config("smoke", **kw).shrinks(["funfusean"]) if s.startswith("batch")]

    assert said() == ["batch <= 8 (paper 64, FunFuseAn 8)"]
    assert said(batch_size=1) == ["batch 1 (paper 64, FunFuseAn 8)"]
    assert said(batch_size=32) == ["batch 8 (paper 64, FunFuseAn 8)"]  # the cap still holds
    assert [s for s in make_config("smoke", batch_size=1).shrinks(["mean"]) if s.startswith("batch")] == []
    cfg = make_config("smoke")
    assert cfg.trains(["mean", "ddfm"]) and not cfg.trains(["mean", "max"])
    given = dataclasses.replace(cfg, ddfm_prior="a/prior")  # DDFM with a given prior trains nothing here
    assert not given.trains(["ddfm"]) and not [s for s in given.shrinks(["ddfm"]) if "epoch" in s]


def test_extra_keywords_from_the_command_line_merge_with_the_profile(capsys, tmp_path):
    """--set extra=JSON (a plugin's or a built-in's keywords) was a string, and the run died with an
    AttributeError traceback; extra from Python replaced the profile's, dropping quick's UNet
    setting. Now JSON, merged per model and keyword; a malformed one is one line, and so is a
    keyword the model's factory does not take (bench run, bench ablate, run() from Python)."""
    from benchmark.cli import build_parser, main
    from benchmark.cli.args import config_from_args
    from benchmark.config import RunConfig, make_config

    def cfg(*argv):
        return config_from_args(build_parser().parse_args(["run", *argv]))

    assert cfg().extra == {"unet": {"loss_on": "clamped"}}
    assert cfg("--set", 'extra={"funfusean": {"guard": true}}').extra == {
        "unet": {"loss_on": "clamped"},
        "funfusean": {"guard": True},
    }
    assert cfg("--set", 'extra={"unet": {"loss_on": "raw"}}').extra == {"unet": {"loss_on": "raw"}}
    assert make_config("quick", extra={"funfusean": {"guard": True}}).extra["unet"] == {"loss_on": "clamped"}
    assert make_config("smoke", extra={"unet": {"width": 0.5}}).extra == {"unet": {"width": 0.5}}
    for value, needle in (
        ("{tiny", '--set extra: cannot read \'{tiny\' as dict (JSON, e.g. {"funfusean": {"guard": true}})'),
        ('{"unet": 3}', "config field extra = {'unet': 3}: expected {model: {keyword: value}}"),
        ("[1]", "config field extra = [1]: expected {model: {keyword: value}}"),
    ):
        assert main(["run", "--models", "mean", "--profile", "smoke", "--set", f"extra={value}"]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
    typo = ["run", "--models", "mean", "--profile", "smoke", "--set", 'extra={"funfusan": {"guard": true}}']
    assert main(typo) == 2  # an unknown model in extra was silently ignored, as it is not in per_model
    assert "unknown model 'funfusan'" in capsys.readouterr().err
    misspelt = 'extra={"fusioninn": {"alfa": 0.3}}'  # was a TypeError traceback once training began
    errs = []
    for argv in (
        ["run", "--models", "fusioninn", "--profile", "smoke", "--set", misspelt],
        ["ablate", "--param", "k", "--values", "2", "--profile", "smoke", "--set", misspelt],
        ["ablate", "--param", "k", "--values", "2", "--profile", "smoke", "--set", 'extra={"fusionin": {}}'],
    ):
        assert main([*argv, "--out", str(tmp_path)]) == 2
        errs.append(capsys.readouterr().err)
        assert len(errs[-1].strip().splitlines()) == 1 and not os.listdir(tmp_path), errs[-1]
    said = "config field extra, fusioninn: unknown argument(s) alfa; it takes k=3, alpha=0.5"
    assert said in errs[0] and said in errs[1] and "unknown model 'fusionin'" in errs[2], errs
    from benchmark.running.runner import run

    with pytest.raises(ValueError, match=re.escape(said)):  # a RunConfig made in Python is checked too
        run(RunConfig(models="fusioninn", extra={"fusioninn": {"alfa": 0.3}}, out=str(tmp_path)))
    assert not os.listdir(tmp_path)
    from baselines.registry import get_fuser
    from benchmark.running.runner import model_kwargs

    given = make_config("quick", extra={"FunFuseAn": {"guard": True}})  # any case, as --models takes names
    assert model_kwargs(get_fuser("funfusean"), given)["guard"] is True
    assert "FunFuseAn: guard True" in given.shrinks(["funfusean"])


def test_the_caption_counts_in_the_singular_for_one():
    """The smoke profile's caption said "1 epochs (paper 400)"."""
    from benchmark.config import make_config

    one = make_config("smoke", epochs=1, n_train=1, warmup=1, ddfm_prior_epochs=1, ddfm_steps=1)
    said = "; ".join(one.shrinks(["ddfm"]))
    for phrase in ("1 epoch (", "1 training pair;", "(1 warm-up step)", ", 1 epoch)", "DDFM 1 sampling step ("):
        assert phrase in said, (phrase, said)
    assert not re.search(r"\b1 [a-z -]+s\b", said.replace("1 per pair", "")), said
    two = "; ".join(make_config("smoke", epochs=2, n_train=2).shrinks(["deepfuse"]))
    assert "2 epochs (" in two and "2 training pairs" in two


def test_what_a_models_results_depend_on(tmp_path, monkeypatch):
    """The fingerprints that decide what a rerun reuses: the metrics' code scores again without
    training; the fuser's module, the shared loss and blocks, the trainer and the patch sampler train
    again; a plugin is named with its version; weights loaded with ``--from`` by their bytes."""
    import sys
    import types
    from importlib import metadata

    from baselines.registry import get_fuser
    from benchmark.config import RunConfig
    from benchmark.running import runner

    hashed = []
    files_sha = runner.files_sha
    monkeypatch.setattr(runner, "files_sha", lambda files: hashed.append(list(files)) or files_sha(files))
    code = runner.code_version("unet")
    assert code["metrics"] == runner.metrics_code() and code["fuser"] == files_sha(hashed[-1])
    shared = {"baselines/loss.py", "baselines/blocks.py", "benchmark/training/trainer.py"}
    shared.add("benchmark/training/patches.py")
    module = os.path.relpath(sys.modules[get_fuser("unet").factory.__module__].__file__, runner.PROJECT)
    assert {os.path.relpath(f, runner.PROJECT) for f in hashed[-1]} == shared | {module}
    version = metadata.version("fusionbench-example-plugin")
    assert runner.code_version("contrast-avg")["fuser"] == f"plugin fusionbench-example-plugin {version}"

    cfg, data = RunConfig(), {"data": "phantom"}
    whole, training, _ = runner._fingerprints_of("unet", cfg, {}, data, None)
    metrics_code = runner.metrics_code
    monkeypatch.setattr(runner, "metrics_code", lambda: metrics_code() + " edited")
    edited = runner._fingerprints_of("unet", cfg, {}, data, None)
    assert edited[0] != whole and edited[1] == training  # scored again, not trained again
    monkeypatch.setattr(runner, "metrics_code", metrics_code)

    weights = tmp_path / "best.pt"
    weights.write_bytes(b"one")
    source = types.SimpleNamespace(weights=str(weights))
    cfg = RunConfig(from_run=str(tmp_path))
    before = runner._fingerprints_of("unet", cfg, {}, data, source)
    weights.write_bytes(b"two")  # other weights at the same path: scored again
    after = runner._fingerprints_of("unet", cfg, {}, data, source)
    assert after[0] != before[0] and after[1] != before[1]


def test_cpu_model_names_the_processor_by_its_cpuinfo_ids(tmp_path, monkeypatch):
    """config.json's ``device.cpu``: a VM's generic model name plus the vendor, family, model and stepping
    that tell processor types apart (training's scores differ between them), from the first processor's
    block of /proc/cpuinfo; without that file, the platform's processor name."""
    import builtins

    from benchmark import provenance

    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
        "model name\t: AMD EPYC 9R14 96-Core Processor\nstepping\t: 1\n\n"
        "processor\t: 1\nvendor_id\t: Other\nmodel name\t: not the first\n"
    )
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: real_open(info if p == "/proc/cpuinfo" else p, *a, **k))
    assert provenance.cpu_model() == "AMD EPYC 9R14 96-Core Processor (AuthenticAMD, family 25, model 17, stepping 1)"
    info.unlink()  # no /proc/cpuinfo (macOS, Windows): macOS's sysctl name, else the platform's
    import subprocess

    calls = []

    def sysctl(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="Apple M2 Pro\n", stderr="")

    monkeypatch.setattr(subprocess, "run", sysctl)
    monkeypatch.setattr(provenance.platform, "processor", lambda: "arm")
    monkeypatch.setattr(provenance.sys, "platform", "darwin")
    assert provenance.cpu_model() == "Apple M2 Pro" and calls == [["sysctl", "-n", "machdep.cpu.brand_string"]]
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "no"))
    assert provenance.cpu_model() == "arm"
    monkeypatch.setattr(provenance.sys, "platform", "win32")
    assert provenance.cpu_model() == "arm"


def test_progress_bars_redraw_seldom_into_a_log():
    """Logged (stderr a file or pipe, as under nohup or CI), tqdm's bars redrew every 0.1 s: a whole run's
    log held thousands of redraws. `bench` then asks tqdm for 10 s, unless the user set TQDM_MININTERVAL."""
    import subprocess
    import sys

    code = "import os, benchmark.cli as c; c.main = lambda: print(os.environ.get('TQDM_MININTERVAL')) or 0; c.console()"
    env = {k: v for k, v in os.environ.items() if k != "TQDM_MININTERVAL"}
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert got.stdout.strip() == "10"
    env["TQDM_MININTERVAL"] = "0.5"
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert got.stdout.strip() == "0.5"
