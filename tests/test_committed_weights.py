"""The weights of results/cpu-phantom ship with the repository: they load safely and work out of the box."""

import pathlib

import numpy as np
import torch
from skimage import io as skio

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN = ROOT / "results" / "cpu-phantom"


def test_committed_weights_are_small_and_load_with_weights_only():
    from baselines import load_fuser
    from baselines.registry import get_fuser

    files = sorted(RUN.glob("*/best.pt"))
    assert files, "results/cpu-phantom holds no weights"
    sizes = [f.stat().st_size for f in files]
    assert max(sizes) <= 20 * 2**20 and sum(sizes) <= 60 * 2**20
    for f in files:
        state = torch.load(f, weights_only=True)  # tensors only: loading runs no code
        assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    for name in ("deepfuse", "unet3+", "fusioninn"):
        assert get_fuser(name).trainable and not load_fuser(str(RUN), name).training


def test_bench_decompose_with_the_default_weights(tmp_path, capsys):
    from benchmark.cli import main
    from benchmark.data.phantom import make_split

    x1, x2, _ = make_split(3, "val", 1)
    img = tmp_path / "fused.png"
    skio.imsave(img, np.round((x1[0] + x2[0]) / 2 * 255).astype(np.uint8), check_contrast=False)
    assert main(["decompose", str(img), "--draws", "2", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert str(RUN / "fusioninn") in out
    for k in ("x1_mean", "x2_mean", "x1_std", "x2_std"):
        assert (tmp_path / "out" / f"fused_{k}.png").exists()
    z = np.load(tmp_path / "out" / "fused_decomposed.npz")
    assert z["x1_mean"].shape == (240, 240) and z["draws_x1"].shape == (2, 240, 240)
    from metrics import ssim

    got = float(ssim(torch.from_numpy(z["x1_mean"])[None, None], torch.from_numpy(x1[:1])[:, None]))
    assert got > 0.8, got  # the committed FusionINN gives T1-Gd back from a fused image


def test_bench_decompose_without_the_repository_results_says_what_to_do(tmp_path, capsys, monkeypatch):
    """Installed without -e (pip install .), results/ stays in the checkout: the default weights'
    path in site-packages was named as "no FusionINN folder there", with no word of why."""
    from benchmark.cli import fusioninn, main

    monkeypatch.setattr(fusioninn, "DEFAULT_FUSIONINN", str(tmp_path / "site-packages" / "results" / "x"))
    img = tmp_path / "fused.png"
    skio.imsave(img, np.zeros((8, 8), np.uint8), check_contrast=False)
    assert main(["decompose", str(img), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no --model-dir given" in err and "pip install -e ." in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_bench_decompose_checks_every_image_and_the_output_first(tmp_path, capsys):
    """A folder whose last image is bad left the earlier images' outputs (half a result); --out a
    file was a FileExistsError traceback; --out the image folder mixed the outputs in with the images."""
    from benchmark.cli import main

    folder = tmp_path / "fused"
    folder.mkdir()
    skio.imsave(folder / "a.png", np.full((64, 64), 100, np.uint8), check_contrast=False)
    np.save(folder / "b.npy", np.full((64, 64), 2.0, np.float32))  # outside [0, 1]: read_image refuses it
    out = tmp_path / "out"
    assert main(["decompose", str(folder), "--out", str(out)]) == 2
    assert "b.npy: float values in [2, 2]; expected [0, 1]" in capsys.readouterr().err
    assert not out.exists()
    (folder / "b.npy").unlink()
    (tmp_path / "file").write_text("")
    for bad, needle in ((tmp_path / "file", "is a file, not a folder"), (folder, "that is the folder of fused images")):
        assert main(["decompose", str(folder), "--out", str(bad)]) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in folder.iterdir()) == ["a.png"]
    scores_only = ROOT / "results" / "quick-phantom-reference"  # a run committed without its weights
    assert main(["decompose", str(folder), "--model-dir", str(scores_only), "--out", str(out)]) == 2
    err = capsys.readouterr().err  # it advised "leave it out of --models", an option decompose does not have
    assert "no trained weights there" in err and "--models" not in err and not out.exists(), err


def test_bench_decompose_scores_the_decomposition_against_given_sources(tmp_path, capsys):
    """--x1 / --x2: the true sources, named like the fused images, score the decomposition as bench
    run does (its draw_scores on the same images); the committed FusionINN recovers both."""
    import pandas as pd

    from baselines import load_fuser
    from benchmark.cli import main
    from benchmark.data.imageio import read_image
    from benchmark.data.phantom import make_split
    from benchmark.running.decomposition import decompose_draws, draw_scores

    x1, x2, _ = make_split(3, "val", 2)
    model = load_fuser(str(RUN), "fusioninn")
    with torch.no_grad():
        fused = model(torch.from_numpy(x1)[:, None], torch.from_numpy(x2)[:, None])
    d = {k: tmp_path / k for k in ("fused", "x1", "x2")}
    for folder in d.values():
        folder.mkdir()
    for i in range(2):
        for k, a in (("fused", fused[i, 0].numpy()), ("x1", x1[i]), ("x2", x2[i])):
            skio.imsave(d[k] / f"s{i}.png", np.round(a * 255).astype(np.uint8), check_contrast=False)
    out = tmp_path / "out"
    base = ["decompose", str(d["fused"]), "--draws", "2", "--out", str(out)]
    assert main([*base, "--x1", str(d["x1"]), "--x2", str(d["x2"])]) == 0
    said, bar = capsys.readouterr()
    # a folder shows its progress bar, with its total (the bar's last state depends on tqdm's refresh
    # timing: "100%" was not always drawn before the bar cleared itself); the lines stay on stdout
    assert "decompose:   0%" in bar and "0/2 [" in bar
    got = pd.read_csv(out / "decomposition.csv")
    assert list(got.name) == ["s0", "s1"]
    assert list(got.columns[:5]) == ["name", "SSIM_x1", "SSIM_x2", "PSNR_x1", "PSNR_x2"]
    assert (got.SSIM_x1 > 0.9).all() and (got.SSIM_x2 > 0.9).all(), got  # 0.963 / 0.951 in the run
    f = torch.from_numpy(read_image(str(d["fused"] / "s1.png")))[None, None]
    h1, h2 = decompose_draws(model, f, 2, 0)
    src = [torch.from_numpy(read_image(str(d[k] / "s1.png")))[None, None] for k in ("x1", "x2")]
    want = draw_scores(h1, h2, *src, ["s1"], "slice", "fusioninn")[0]
    for k in ("SSIM_x1", "SSIM_x2", "PSNR_x1", "PSNR_x2"):
        assert abs(got.loc[1, k] - want[k]) < 1e-6, k
    assert "s1.png: mean std x1" in said and f"SSIM to the sources x1 {want['SSIM_x1']:.4f}" in said
    assert f"mean over 2 images and 2 draws: x1 {got.SSIM_x1.mean():.4f}, x2 {got.SSIM_x2.mean():.4f}" in said
    one = ["decompose", str(d["fused"] / "s1.png"), "--draws", "2", "--out", str(tmp_path / "one")]
    assert main([*one, "--x1", str(d["x1"] / "s1.png"), "--x2", str(d["x2"] / "s1.png")]) == 0  # one image, files
    single = pd.read_csv(tmp_path / "one" / "decomposition.csv")
    assert list(single.name) == ["s1"] and abs(single.loc[0, "SSIM_x1"] - want["SSIM_x1"]) < 1e-6
    capsys.readouterr()
    (d["x2"] / "s1.png").unlink()  # each a clear line, before any output
    skio.imsave(d["x1"] / "s0.png", np.zeros((32, 32), np.uint8), check_contrast=False)
    out2 = tmp_path / "out2"
    base[-1] = str(out2)
    for extra, needle in (
        (["--x1", str(d["x1"])], "--x1 and --x2: give both source folders"),
        (["--x1", str(d["x1"]), "--x2", str(d["x2"])], f"s1.png: no source named s1 in --x2 {d['x2']}"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
    (d["fused"] / "s1.png").unlink()
    assert main([*base, "--x1", str(d["x1"]), "--x2", str(d["x2"])]) == 2
    assert "s0.png: 32x32; expected 240x240 like the fused image" in capsys.readouterr().err
    assert not out2.exists()


def test_from_committed_run_trains_nothing(tmp_path, capsys):
    from benchmark.cli import main

    args = [
        "run",
        "--models",
        "mean,fusioninn",
        "--profile",
        "smoke",
        "--from",
        str(RUN),
        "--out",
        str(tmp_path),
        "--run-name",
        "f",
    ]
    assert main([*args, "--width", "0.5"]) == 0
    assert not (tmp_path / "f" / "fusioninn" / "best.pt").exists()
    out = capsys.readouterr().out  # the settings that would have trained, said not to apply (were silent)
    note = out[out.index(f"[fusionbench] --from {RUN}: its weights were trained there") :].splitlines()[0]
    assert "so these training settings do not apply here: " in note
    assert "epochs 1 (there 6)" in note and "width 0.5 (there 0.25)" in note
    assert "fusioninn.epochs unset (there 220)" in note and "unet" not in note  # per model: the models loaded only


def test_from_note_skips_what_an_older_run_did_not_record(tmp_path):
    """A --from run whose config.json lacks a training field (written before it existed) raised KeyError."""
    import json

    from benchmark.config import make_config
    from benchmark.running.runner import _note_unused_training

    (tmp_path / "config.json").write_text(json.dumps({"config": {"epochs": 9, "per_model": "unet.lr=2e-3"}}))
    said = []
    _note_unused_training(make_config("quick", from_run=str(tmp_path), per_model=""), ["unet"], said.append)
    assert len(said) == 1 and "epochs 6 (there 9), unet.lr unset (there 0.002)" in said[0]
    assert "width" not in said[0]  # not recorded there: not compared
