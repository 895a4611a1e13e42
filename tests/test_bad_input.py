"""Bad input gets one clear line naming the file, exit status 2, and leaves nothing partial or stale."""

import json
import os
import shutil

import h5py
import numpy as np
import pytest
from skimage import io as skio

from benchmark.cli import main
from benchmark.config import make_config
from benchmark.data.phantom import make_split


def _one_line(capsys, *needles):
    raw = capsys.readouterr().err.replace("\r", "\n")
    err = "\n".join(
        line for line in raw.splitlines() if line.strip() and not line.rstrip().endswith(("it/s]", "s/it]"))
    )  # bar redraws aside
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and "weights_only=False" not in err
    for n in needles:
        assert n in err, (n, err)
    return err


@pytest.fixture(scope="module")
def pairs():
    x1, x2, _ = make_split(43, "val", 2)
    return x1, x2


def _folders(tmp_path, pairs):
    x1, x2 = pairs
    for name, arr in (("a", x1), ("b", x2), ("f", (x1 + x2) / 2)):
        (tmp_path / name).mkdir(exist_ok=True)
        for i, img in enumerate(arr):
            skio.imsave(tmp_path / name / f"s{i}.png", np.round(img * 255).astype(np.uint8), check_contrast=False)
    return [str(tmp_path / n) for n in "abf"]


def _eval(a, b, f, out):
    return main(["eval", "--x1", a, "--x2", b, "--fused", f, "--out", out])


@pytest.mark.parametrize("damage", ["truncated", "text", "empty"])
def test_unreadable_png_names_the_file(tmp_path, pairs, capsys, damage):
    a, b, f = _folders(tmp_path, pairs)
    bad = os.path.join(f, "s1.png")
    data = open(bad, "rb").read()
    with open(bad, "wb") as fh:
        fh.write({"truncated": data[: len(data) // 2], "text": b"not an image", "empty": b""}[damage])
    assert _eval(a, b, f, str(tmp_path / "out")) == 2
    _one_line(capsys, bad, "expected a complete grey PNG/TIFF image")
    assert not (tmp_path / "out").exists()  # no output folder of a failed eval


@pytest.mark.parametrize("role", [0, 1])
def test_damaged_source_png_is_caught_before_scoring(tmp_path, pairs, capsys, role, monkeypatch):
    """The sources are checked from their headers (and a PNG's chunks) before anything is scored."""
    import benchmark.running.evaluate as ev

    folders = _folders(tmp_path, pairs)
    bad = os.path.join(folders[role], "s1.png")
    data = open(bad, "rb").read()
    open(bad, "wb").write(data[: len(data) // 2])
    monkeypatch.setattr(ev, "colour_score", lambda *a, **k: pytest.fail("scored before the sources were checked"))
    assert _eval(*folders, str(tmp_path / "out")) == 2
    _one_line(capsys, bad, "expected a complete grey PNG/TIFF image")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "device, needle", [("cuda", "CUDA is not available"), ("cuda:7", "--device cuda:7"), ("foo", "not a device")]
)
def test_eval_on_a_device_this_machine_lacks(tmp_path, pairs, capsys, device, needle, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: device == "cuda:7")  # cuda:7 on a 1-GPU machine
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    a, b, f = _folders(tmp_path, pairs)
    args = ["eval", "--x1", a, "--x2", b, "--fused", f, "--device", device, "--out", str(tmp_path / "out")]
    assert main(args) == 2
    _one_line(capsys, needle)
    assert not (tmp_path / "out").exists()


def test_eval_results_never_land_among_the_images_nor_after_an_unknown_profile(tmp_path, pairs, capsys, monkeypatch):
    """--out x1 wrote scores.csv, config.json and leaderboards among the sources; an unknown
    --metric-profile was found only when the first batch was scored."""
    a, b, f = _folders(tmp_path, pairs)
    for out, what in ((a, "x1"), (b + os.sep, "x2"), (f, "--fused f")):
        assert _eval(a, b, f, out) == 2
        _one_line(capsys, f"--out {out}: that is the {what} folder")
    assert sorted(os.listdir(a)) == sorted(os.listdir(f)) == ["s0.png", "s1.png"]
    assert _eval(a, a, f, str(tmp_path / "same")) == 0  # allowed, but said: most often a typo
    assert f"warning: --x1 and --x2 are the same folder ({a}); each triple's two sources" in capsys.readouterr().err
    project = tmp_path / "project"  # a folder of one's own files: its config.json was replaced
    project.mkdir()
    (project / "config.json").write_text('{"lr": 0.1}')
    assert _eval(a, b, f, str(project)) == 2
    _one_line(capsys, f"--out {project}: holds files and is not a bench eval folder")
    assert os.listdir(project) == ["config.json"] and (project / "config.json").read_text() == '{"lr": 0.1}'
    (project / "config.json").unlink()
    assert _eval(a, b, f, str(project)) == 0 and _eval(a, b, f, str(project)) == 0  # empty, then its own
    capsys.readouterr()
    import benchmark.running.evaluate as ev

    monkeypatch.setattr(ev, "colour_score", lambda *a, **k: pytest.fail("scored before the profile was checked"))
    args = ["eval", "--x1", a, "--x2", b, "--fused", f, "--metrics", "Q_SSIM", "--metric-profile", "x", "--out"]
    assert main([*args, str(tmp_path / "o")]) == 2
    _one_line(capsys, "unknown metric profile 'x'")
    assert not (tmp_path / "o").exists()


def test_truncated_npy_and_small_images_name_the_file(tmp_path, pairs, capsys):
    a, b, f = _folders(tmp_path, pairs)
    np.save(os.path.join(f, "s0.npy"), np.zeros((240, 240), np.float32))
    os.remove(os.path.join(f, "s0.png"))
    raw = open(os.path.join(f, "s0.npy"), "rb").read()
    open(os.path.join(f, "s0.npy"), "wb").write(raw[:100])
    assert _eval(a, b, f, str(tmp_path / "o1")) == 2
    _one_line(capsys, os.path.join(f, "s0.npy"), "expected a NumPy .npy array")
    for d in "abf":
        shutil.rmtree(tmp_path / d)
        (tmp_path / d).mkdir()
        skio.imsave(tmp_path / d / "tiny.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    assert _eval(*(str(tmp_path / d) for d in "abf"), str(tmp_path / "o2")) == 2
    _one_line(capsys, str(tmp_path / "a" / "tiny.png"), "need at least")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def _nii(path, arr):
    import nibabel as nib

    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))


def _brats(root, patient, flair=True, labels=None, truncate=None):
    d = root / patient
    d.mkdir(parents=True)
    rng = np.random.default_rng(len(patient))
    vol = rng.random((32, 32, 4)).astype(np.float32)
    _nii(d / f"{patient}_t1ce.nii.gz", vol)
    if flair:
        _nii(d / f"{patient}_flair.nii.gz", vol[::-1].copy())
    seg = np.zeros((32, 32, 4), np.int16)
    seg[8:16, 8:16] = 1
    seg[16:24, 16:24] = 2
    if labels is not None:
        seg[0, 0, 0] = labels
    _nii(d / f"{patient}_seg.nii.gz", seg)
    if truncate:
        p = d / f"{patient}_{truncate}.nii.gz"
        p.write_bytes(p.read_bytes()[:60])


def test_data_prepare_lists_every_skipped_patient(tmp_path, capsys):
    root = tmp_path / "brats"
    _brats(root, "good1")
    _brats(root, "good2")
    _brats(root, "noflair", flair=False)
    _brats(root, "badlabel", labels=-1)
    _brats(root, "broken", truncate="flair")
    out = tmp_path / "o.h5"
    assert main(["data", "prepare", str(root), "--out", str(out), "--val-fraction", "0.2"]) == 0
    said, err = capsys.readouterr()
    assert said.splitlines() == [  # in words, per split (was the summary as raw JSON)
        f"imported 2 of 5 patients from {root} (x1 = t1ce, x2 = flair; --select labels12; "
        "--val-fraction 0.2, --seed 0)",
        "  train: 4 slices from 1 patient",
        f"  val:   4 slices from 1 patient ({json.loads(h5py.File(out).attrs['summary'])['val_patients'][0]})",
        "  left out: 0 slices not selected, 0 constant slices, 3 patients skipped (listed above)",
        f"wrote {out}; next: bench run --data {out}",
    ]
    assert "skipped patient noflair: no flair file" in err
    assert "skipped patient badlabel:" in err and "label values [-1] are not BraTS 2018 labels" in err
    assert "skipped patient broken:" in err and "broken_flair.nii.gz: unreadable" in err
    with h5py.File(out) as f:
        summary = json.loads(f.attrs["summary"])
        assert {s["patient"] for s in summary["skipped"]} == {"noflair", "badlabel", "broken"}
        assert summary["patients"] == {"train": 1, "val": 1}
        assert set(np.unique(f["seg"][:])) <= {0, 1, 2}  # nothing wrapped to 255
    assert main(["data", "prepare", str(root), "--out", str(out), "--val-fraction", "0.2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.rsplit("wrote", 1)[0]) == summary  # --json: the file's summary
    _nii(root / "good2" / "good2_seg.nii.gz", np.zeros((32, 32, 4), np.int16))  # read, but no slice selected
    assert main(["data", "prepare", str(root), "--out", str(out), "--val-fraction", "0.2"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith("imported 1 of 5 patients") and said[3].endswith(
        "4 slices not selected, 0 constant slices, 3 patients skipped (listed above), 1 patient with no slice selected"
    ), said


def test_data_prepare_checks_the_output_before_importing(tmp_path, capsys):
    root = tmp_path / "brats"
    _brats(root, "p1")
    assert main(["data", "prepare", str(root), "--out", str(tmp_path)]) == 2
    _one_line(capsys, f"--out {tmp_path}: is a folder")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["data", "prepare", str(root), "--out", str(blocker / "o.h5")]) == 2
    _one_line(capsys, f"{blocker} is a file, not a folder")
    notes = tmp_path / "notes.txt"  # was overwritten with HDF5
    notes.write_text("mine")
    assert main(["data", "prepare", str(root), "--out", str(notes)]) == 2
    _one_line(capsys, "expected a file name ending in .h5 or .hdf5")
    (tmp_path / "notes.h5").write_text("mine")
    assert main(["data", "prepare", str(root), "--out", str(tmp_path / "notes.h5")]) == 2
    _one_line(capsys, "exists and is not an HDF5 file")
    assert notes.read_text() == (tmp_path / "notes.h5").read_text() == "mine"
    assert main(["data", "prepare", str(root), "--out", str(tmp_path / "o.h5")]) == 0
    assert main(["data", "prepare", str(root), "--out", str(tmp_path / "o.h5")]) == 0  # an HDF5 file is replaced


def test_hdf5_seg_and_split_checked_against_data(tmp_path, capsys):
    d = np.random.rand(4, 4, 32, 32).astype(np.float32)
    for name, extra in (
        ("seg", {"seg": np.zeros((4, 32, 31), np.uint8)}),
        ("split", {"split": np.array([0, 1], np.uint8)}),
    ):
        p = tmp_path / f"{name}.h5"
        with h5py.File(p, "w") as f:
            f["data"] = d
            if name == "seg":
                f["split"] = np.array([0, 0, 1, 1], np.uint8)
            for k, v in extra.items():
                f[k] = v
        assert (
            main(["run", "--models", "mean", "--profile", "smoke", "--data", str(p), "--out", str(tmp_path / "o")]) == 2
        )
        _one_line(capsys, str(p), f"dataset '{name}' has shape")
    assert not (tmp_path / "o").exists()  # no empty run folder


def test_random_bytes_in_a_checkpoint(tmp_path):
    from baselines import load_fuser

    assert main(["run", "--models", "deepfuse", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]) == 0
    best = tmp_path / "r" / "deepfuse" / "best.pt"
    best.write_bytes(np.random.default_rng(0).bytes(2000))  # fixed: os.urandom gave a pickle header 1 run in 256
    with pytest.raises(ValueError) as e:
        load_fuser(str(tmp_path / "r"), "deepfuse")
    assert str(best) in str(e.value) and "weights_only=False" not in str(e.value)


def test_a_finished_models_scores_cut_short_are_scored_again(tmp_path, capsys):
    """A run written before checksums, its model's scores.csv cut short: a rerun reused it, as read."""
    args = ["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]
    assert main(args) == 0
    folder = tmp_path / "r" / "mean"
    whole = (folder / "scores.csv").read_text()
    info = json.loads((folder / "model.json").read_text())
    del info["checksums"]
    (folder / "model.json").write_text(json.dumps(info))
    (folder / "scores.csv").write_text(whole[: len(whole) // 2].rstrip("\n")[:-3])
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{folder / 'scores.csv'} changed since the run that wrote it (checksum, or cut short)" in out, out
    assert (folder / "scores.csv").read_text() == whole


def test_damaged_checkpoint_of_a_finished_model_is_retrained(tmp_path, capsys):
    args = ["run", "--models", "deepfuse", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]
    assert main(args) == 0
    best = tmp_path / "r" / "deepfuse" / "best.pt"
    best.write_bytes(best.read_bytes()[:-10] + b"0123456789")
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{best} changed since the run that wrote it" in out and "reusing deepfuse" not in out
    info = json.loads((tmp_path / "r" / "deepfuse" / "model.json").read_text())
    import hashlib

    assert info["checksums"]["best.pt"] == hashlib.sha256(best.read_bytes()).hexdigest()


def test_changed_code_retrains(tmp_path, capsys, monkeypatch):
    from benchmark.running import runner

    args = ["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "reusing mean" in capsys.readouterr().out
    real = runner.code_version
    monkeypatch.setattr(runner, "code_version", lambda name: {**real(name), "fuser": "changed"})
    assert main(args) == 0
    assert "reusing mean" not in capsys.readouterr().out


def test_edited_phantom_generator_is_not_served_from_the_cache_nor_reused(tmp_path, capsys, monkeypatch):
    """The phantom cache key and the run's data fingerprint hold the generator's source hash (they
    held seed, split and n only: an edited generator served the old images from the cache, and a
    rerun reused models trained on them)."""
    from benchmark.data import datasets

    args = ["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]
    assert main(args) == 0 and main(args) == 0
    assert "reusing mean" in capsys.readouterr().out
    real, real_make = datasets.phantom_identity, datasets.phantom.make_split
    made = []
    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path / "cache"))  # the edited images stay out of the shared cache
    monkeypatch.setattr(datasets, "phantom_identity", lambda: {**real(), "code": "edited"})
    monkeypatch.setattr(datasets.phantom, "make_split", lambda *a, **k: made.append(a) or real_make(*a, **k))
    assert main(args) == 0 and "reusing mean" not in capsys.readouterr().out
    assert len(made) == 2  # train and validation made again, not read from the cache


def test_rewritten_data_file_trains_and_scores_again(tmp_path, capsys, monkeypatch):
    """A data file written again under the same name with as many slices (other modalities, another
    split) was reused: the fingerprint held its name and counts only. It now holds the contents'
    hash; a touched or copied file, same bytes, is still reused."""
    import h5py
    import pandas as pd

    from benchmark.data import datasets

    def write(path, seed):
        rng = np.random.default_rng(seed)
        with h5py.File(path, "w") as f:
            f["data"] = rng.random((6, 4, 48, 48)).astype("f4")
            f["split"] = np.array([0, 0, 0, 0, 1, 1], "u1")

    h5 = tmp_path / "d.h5"
    write(h5, 0)
    args = [
        "run",
        "--models",
        "mean",
        "--profile",
        "smoke",
        "--data",
        str(h5),
        "--out",
        str(tmp_path),
        "--run-name",
        "r",
    ]
    assert main(args) == 0
    first = pd.read_csv(tmp_path / "r" / "scores.csv")
    capsys.readouterr()
    os.utime(h5, (1e9, 1e9))  # touched: the same bytes
    assert main(args) == 0 and "reusing mean" in capsys.readouterr().out
    write(h5, 1)  # same name, shape and split; other images
    assert main(args) == 0 and "reusing mean" not in capsys.readouterr().out
    assert not np.allclose(pd.read_csv(tmp_path / "r" / "scores.csv").Q_SSIM, first.Q_SSIM)
    whole = datasets.file_identity(str(h5))
    monkeypatch.setattr(datasets, "_WHOLE", 1024)  # a large file: sampled blocks and the split read whole
    sampled = datasets.file_identity(str(h5))
    assert set(whole) == {"size", "sha256"} and set(sampled) == {"size", "sha256_sampled"}
    with h5py.File(h5, "a") as f:
        f["split"][...] = np.array([1, 0, 0, 0, 0, 1], "u1")
    assert datasets.file_identity(str(h5))["sha256_sampled"] != sampled["sha256_sampled"]


def test_images_too_small_for_the_metrics_stop_the_run_before_training(tmp_path, capsys, monkeypatch):
    """32x32 slices with --lineage cddfuse (its VIF needs 41 px) trained every fuser, then failed scoring."""
    import benchmark.running.runner as runner

    monkeypatch.setattr(runner, "train", lambda *a, **k: pytest.fail("trained before the sizes were checked"))
    h5 = tmp_path / "small.h5"
    with h5py.File(h5, "w") as f:
        f["data"] = np.random.default_rng(0).random((4, 4, 32, 32)).astype(np.float32)
    args = ["run", "--models", "deepfuse", "--profile", "smoke", "--data", f"{h5},{h5}", "--set", "crop=none"]
    assert main([*args, "--lineage", "cddfuse", "--out", str(tmp_path / "o")]) == 2
    _one_line(capsys, f"data '{h5},{h5}': images are 32x32; the metrics need at least 41x41 pixels")
    assert not (tmp_path / "o").exists()
    from metrics.scoring import min_image_size

    assert min_image_size(["Q_SSIM"]) == 11 and min_image_size(["Q_SSIM", "Q_P"], "fusioninn") == 21
    assert min_image_size(["Q_SSIM"], "fusioninn") == 11  # the toolbox's 21 px Piella blocks are Q_P's alone


def test_a_run_never_writes_into_a_folder_it_does_not_own(tmp_path, capsys):
    """--run-name . put a run's files in --out itself, and its clean-up of stale tables removed that
    folder's figures/ and sources/; --run-name .. wrote into the folder above; a bench eval folder
    lost its scores.csv and leaderboards. Now: a folder name only, and a new, empty or run folder."""
    paper = tmp_path / "paper"
    (paper / "figures").mkdir(parents=True)
    (paper / "figures" / "fig1.pdf").write_text("%PDF")
    (paper / "scores.csv").write_text("mine\n")
    base = ["run", "--models", "mean", "--profile", "smoke"]
    for name in (".", "..", "a/b"):
        assert main([*base, "--out", str(paper), "--run-name", name]) == 2
        _one_line(capsys, f"config field run_name = {name!r}: expected a folder name (no '/', not '.' or '..')")
    assert main([*base, "--out", str(paper), "--run-name", " "]) == 2
    _one_line(capsys, "--run-name ' ' is empty; give it a value (an unset shell variable?)")
    with pytest.raises(ValueError, match="config field run_name = ' ': expected a folder name"):
        make_config("smoke", run_name=" ")  # from Python, where no command line checks it
    assert main([*base, "--out", str(tmp_path), "--run-name", "paper"]) == 2
    _one_line(capsys, f"{paper} holds files and is not a bench run folder (no config.json of a run)")
    assert sorted(p.name for p in paper.rglob("*")) == ["fig1.pdf", "figures", "scores.csv"]
    (tmp_path / "empty").mkdir()
    assert main([*base, "--out", str(tmp_path), "--run-name", "empty"]) == 0  # an empty folder, then its own
    assert main([*base, "--out", str(tmp_path), "--run-name", "empty"]) == 0


def test_failed_rerun_leaves_no_stale_tables(tmp_path, capsys):
    args = ["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]
    assert main(args) == 0
    d = tmp_path / "r"
    assert (d / "leaderboard.md").exists() and (d / "scores.csv").exists()
    bad = tmp_path / "nan.h5"
    arr = np.random.rand(4, 4, 32, 32).astype(np.float32)
    arr[3, 2, 0, 0] = np.nan
    with h5py.File(bad, "w") as f:
        f["data"] = arr
    assert main(args + ["--data", f"{bad},{bad}"]) == 2
    _one_line(capsys, "contains NaN or Inf")
    left = {p.name for p in d.iterdir()}
    assert not left & {"scores.csv", "leaderboard.md", "leaderboard.csv", "run.json"}, left


@pytest.mark.parametrize(
    "content,needle",
    [
        ("", "not a readable scores table"),
        ("model,index,region,Q_SSIM\n", "header only"),
        ("model,index,region,Q_SSIM\na,0,slice,x\n", "non-numbers"),
        ("model,index,region,Q_SSIM\na,0,slice,0.5\ngarbage,x\n", "rows [1] have region nan; expected slice or tumour"),
        ("model,index,region,Q_SSIM\na,0,slice,0.5\na,0,tumor,0.5\n", "rows [1] have region 'tumor'"),
        ("model,index,region,Q_SSIM\na,0,slice,0.5\n,1,slice,0.5\n", "rows [1] have no model name"),
        ("model,index,region,Q_SSIM\na,0,tumour,0.5\nb,0,tumour,0.4\n", "only tumour rows"),  # a NaN-to-int crash
        # an image twice weighed twice in the mean, outside its own interval (the intervals pair one row)
        ("model,name,Q_SSIM\na,s0,0.5\na,s1,0.6\na,s0,0.9\n", "rows [0, 2] score one image more than once (model"),
        ("model,index,region,Q_SSIM\na,0,tumour,0.5\na,0,slice,0.5\na,0,tumour,0.4\n", "region 'tumour', index 0)"),
    ],
)
def test_bench_table_validates(tmp_path, capsys, content, needle):
    (tmp_path / "scores.csv").write_text(content)
    assert main(["table", str(tmp_path)]) == 2
    _one_line(capsys, str(tmp_path / "scores.csv"), needle)
    assert os.listdir(tmp_path) == ["scores.csv"]  # no table of a refused scores.csv


def test_bench_table_names_the_columns_it_leaves_out(tmp_path, capsys):
    """A column that is no metric fusionbench knows (a typo, a custom score) was dropped without a word."""
    (tmp_path / "scores.csv").write_text("model,index,Q_SSIM,Q_SIMM,note\na,0,0.5,0.1,x\na,1,0.6,0.2,y\n")
    assert main(["table", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "columns Q_SIMM, note are not metrics fusionbench knows" in err, err
    assert "Q_SIMM" not in (tmp_path / "leaderboard.md").read_text()


def test_bench_table_counts_nan_scores(tmp_path, capsys):
    rows = "".join(  # b's last Q_P infinite (an original's PSNR of identical images): its mean was inf, in bold
        f"a,{i},slice,{0.5 + i / 100},{'' if i < 2 else 0.6}\nb,{i},slice,{0.6 + i / 100},{'inf' if i == 7 else 0.7}\n"
        for i in range(8)
    )
    (tmp_path / "scores.csv").write_text("model,index,region,Q_SSIM,Q_P\n" + rows)
    assert main(["table", str(tmp_path)]) == 0
    cap = capsys.readouterr()
    assert (
        "a has no finite Q_P for 2 image(s) [0, 1]" in cap.err and "b has no finite Q_P for 1 image(s) [7]" in cap.err
    )
    assert "| **0.700 (n=7)** [0.700, 0.700] |" in (tmp_path / "leaderboard.md").read_text()
    assert "0.600 (n=6)" in (tmp_path / "leaderboard.md").read_text()


def test_bench_table_refuses_a_scores_csv_cut_short(tmp_path, capsys):
    """A copy that stopped mid-row was tabled: its last row's missing fields became NaN, its last number,
    cut after "0.", 0, and nothing said so. A whole file without its last line break is read as before."""
    rows = "model,index,region,Q_SSIM,Q_P\n" + "".join(f"a,{i},slice,0.{5 + i},0.7{i}\n" for i in range(4))
    (tmp_path / "scores.csv").write_text(rows + "a,4,slice,0.")
    assert main(["table", str(tmp_path)]) == 2
    _one_line(capsys, str(tmp_path / "scores.csv"), "cut short", "with 4 of the header's 5 fields")
    assert os.listdir(tmp_path) == ["scores.csv"]
    (tmp_path / "scores.csv").write_text(rows.rstrip("\n"))  # written by hand: no break after the last row
    assert main(["table", str(tmp_path)]) == 0
    assert "| **0.650** [" in (tmp_path / "leaderboard.md").read_text()


def test_bench_table_checks_decomposition_csv_before_it_writes_a_table(tmp_path, capsys):
    """A decomposition.csv cut short was tabled (and written back "whole" with the wrong numbers); one without
    a column stopped with a KeyError after the leaderboards had been rewritten. Both are refused first."""
    (tmp_path / "scores.csv").write_text("model,index,region,Q_SSIM\nfusioninn,0,slice,0.5\nfusioninn,1,slice,0.6\n")
    head = "model,index,region,SSIM_x1,SSIM_x2,PSNR_x1,PSNR_x2,SSIM_x1_spread,SSIM_x2_spread,draws\n"
    rows = "fusioninn,0,slice,0.9,0.8,30,25,0.01,0.02,4\nfusioninn,1,slice,0.95,0.85,31,26,0.01,0.02,4\n"
    for text, needle in (
        (head + rows[:-20], "cut short (its last line ends without a line break, with 5 of the header's 10 fields)"),
        (head.replace(",draws", "") + rows.replace(",4\n", "\n"), "no columns draws; expected the decomposition.csv"),
    ):
        (tmp_path / "decomposition.csv").write_text(text)
        assert main(["table", str(tmp_path)]) == 2
        _one_line(capsys, str(tmp_path / "decomposition.csv"), needle)
        assert sorted(os.listdir(tmp_path)) == ["decomposition.csv", "scores.csv"]  # nothing written
        assert (tmp_path / "decomposition.csv").read_text() == text
    (tmp_path / "decomposition.csv").write_text(head + rows)
    assert main(["table", str(tmp_path)]) == 0
    assert "| FusionINN | **0.925** | **0.825** |" in (tmp_path / "decomposition_leaderboard.md").read_text()


def test_an_ablation_value_scores_cut_short_are_refused(tmp_path):
    """bench table on a bench ablate folder reads each value's scores; one cut short was tabled as read."""
    from benchmark.running.ablation import _NEEDS, _read_results

    head = "model,index,region,Q_SSIM_x1,Q_SSIM_x2\n"
    (tmp_path / "scores.csv").write_text(head + "fusioninn,0,slice,0.91,0.88\nfusioninn,1,slice,0.9")
    said = r"scores.csv: cut short \(.*with 4 of the header's 5 fields\); write it again .* bench ablate reuse"
    with pytest.raises(ValueError, match=said):
        _read_results(str(tmp_path / "scores.csv"), _NEEDS[0])
    (tmp_path / "scores.csv").write_text(head + "fusioninn,0,slice,0.91,0.88\nfusioninn,1,slice,0.9,0.87\n")
    assert _read_results(str(tmp_path / "scores.csv"), _NEEDS[0]).Q_SSIM_x2.tolist() == [0.88, 0.87]


def test_a_seed_runs_scores_cut_short_are_refused(tmp_path):
    """A table over seeds reads each seed's scores.csv; one cut short was averaged in as read."""
    from benchmark.reporting.seeds import seed_tables

    runs = []
    for seed in (0, 1):
        run = tmp_path / f"r-seed{seed}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"config": {"seed": seed}}))
        (run / "scores.csv").write_text("model,index,region,Q_SSIM\n" + f"a,0,slice,0.5\na,1,slice,0.{6 + seed}\n")
        runs.append(str(run))
    assert seed_tables(runs)[0]["slice"].at["a", "Q_SSIM"] == pytest.approx(0.575)  # of 0.55 and 0.6
    (tmp_path / "r-seed1" / "scores.csv").write_text("model,index,region,Q_SSIM\na,0,slice,0.5\na,1,sli")
    with pytest.raises(ValueError, match=r"r-seed1/scores.csv: cut short \(.*with 3 of the header's 4 fields\)"):
        seed_tables(runs)


def test_bench_table_says_when_models_or_images_are_missing(tmp_path, capsys):
    """Rows of a run removed from its scores.csv (a fuser's, or some images'): the tables kept the run's
    caption ("mean over 8 validation pairs") over fewer images, without a word, and a model's mean over
    4 images stood beside means over 8 unmarked."""
    rows = "".join(f"a,{i},slice,{0.5 + i / 100}\n" for i in range(8)) + "".join(
        f"b,{i},slice,{0.6 + i / 100}\n" for i in range(4)
    )
    (tmp_path / "scores.csv").write_text("model,index,region,Q_SSIM\n" + rows)
    (tmp_path / "config.json").write_text(json.dumps({"data": {"n_val": 8}}))
    models = {"a": {"status": "done"}, "b": {"status": "done"}, "c": {"status": "done"}, "d": {"status": "running"}}
    (tmp_path / "run.json").write_text(json.dumps({"models": models}))
    assert main(["table", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "the models score different numbers of images (slice rows): a 8, b 4" in err, err
    assert f"no rows of c, which {tmp_path / 'run.json'} records as scored" in err, err
    assert "b has 4 of the run's 8 validation images" in err and "a has" not in err, err
    table = (tmp_path / "leaderboard.md").read_text()
    assert "| b | **0.615 (n=4)** [" in table and "| a | 0.535 [" in table, table


@pytest.mark.parametrize("entry", ["main", "console"])
@pytest.mark.parametrize("args", [["list"], ["list", "--json"]])
def test_a_closed_pipe_ends_quietly(args, entry):
    """`bench list | head` printed a BrokenPipeError traceback once head had its lines; through the
    command's own entry point (console, which ends with quick_exit's flush) as through main."""
    import subprocess
    import sys

    call = f"sys.exit(main({args!r}))" if entry == "main" else f"sys.argv = ['bench', *{args!r}]; console()"
    child = (
        "import os, sys\n"
        "r, w = os.pipe()\n"
        "os.close(r)\n"  # the reader is gone before the first line, as head is after its last
        "os.dup2(w, 1)\n"
        f"from benchmark.cli import {entry}\n"
        f"{call}\n"
    )
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert r.returncode == 141 and r.stderr == "", r.stderr


def test_the_command_ends_with_its_status_its_output_and_its_exit_handlers():
    """benchmark.cli.quick_exit skips only the interpreter's teardown: the status main returned (or 0
    for None), everything printed (unflushed, in a pipe), and every atexit handler (logging's, the
    kernel build's stop), in their order."""
    import subprocess
    import sys

    for status, code in ((3, 3), (None, 0), (0, 0)):
        child = (
            "import atexit, sys\n"
            "from benchmark.cli import quick_exit\n"
            "atexit.register(print, 'first registered, last run')\n"
            "atexit.register(print, 'last registered, first run', end=' ')\n"
            "print('result', end=' ')\n"
            "sys.stderr.write('note')\n"
            f"quick_exit({status})\n"
        )
        r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
        assert r.returncode == code
        assert r.stdout == "result last registered, first run first registered, last run\n"
        assert r.stderr == "note"
    r = subprocess.run([sys.executable, "-m", "benchmark", "table", "/nonexistent"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("bench: error:") and len(r.stderr.splitlines()) == 1


def test_an_eval_worker_ends_without_the_teardown():
    """bench eval's workers end with os._exit after their handlers registered later (their output
    flushed): the process's status is then 0, whatever sys.exit said, and no handler registered
    before the worker's start runs (those are the interpreter's and the imports')."""
    import subprocess
    import sys

    child = (
        "import atexit, sys\n"
        "atexit.register(print, 'teardown')\n"
        "from benchmark.running.pool import _init\n"
        "_init()\n"
        "atexit.register(print, 'later handler', end=' ')\n"
        "print('scored', end=' ')\n"
        "sys.exit(5)\n"
    )
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert (r.returncode, r.stdout) == (0, "scored later handler "), r.stderr


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["table", str(tmp_path)]) == 2
    _one_line(capsys, str(tmp_path / "scores.csv"))
    with pytest.raises(FileNotFoundError):
        main(["--debug", "table", str(tmp_path)])


def test_version_and_a_bare_command_say_what_they_should(capsys):
    """`bench --version` was an error; bare `bench` said "the following arguments are required: cmd"."""
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("fusionbench 0.1.0 (torch ")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: bench") and "{list,run,table,eval,data,decompose,ablate}" in err and "cmd" not in err
    with pytest.raises(SystemExit) as e:
        main(["data"])
    assert e.value.code == 2 and "required: prepare" in capsys.readouterr().err


def test_nproc_below_one_and_amp_on_a_cpu_say_so(tmp_path, capsys):
    """--nproc 0 (or -3) ran as one process, and --amp on a CPU ran in float32, both without a word."""
    from benchmark.cli import main

    args = ["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path)]
    assert main([*args, "--nproc", "0"]) == 2
    assert capsys.readouterr().err.strip() == "bench: error: --nproc 0: expected a whole number of processes >= 1"
    assert not any(tmp_path.iterdir())
    assert main([*args, "--amp", "--device", "cpu"]) == 0
    assert "--amp (bf16 autocast) applies on CUDA only; this run on cpu is in float32" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, flag",
    [
        (["run", "--models", "mean", "--profile", "smoke", "--from", ""], "--from ''"),  # trained everything
        (["run", "--models", "mean", "--profile", "smoke", "--run-name= "], "--run-name ' '"),
        (["eval", "--x1", "a", "--x2", "b", "--fused", "c", "--metrics", " "], "--metrics ' '"),
        (["decompose", "f.png", "--model-dir", ""], "--model-dir ''"),
    ],
)
def test_an_option_given_an_empty_value_is_an_error(tmp_path, capsys, monkeypatch, args, flag):
    """An unset shell variable (``--from "$RUN"``) meant the option's default in silence: ``--out ""``
    wrote a run into the current folder, ``--from ""`` trained every fuser. The last --out given here
    is empty too: nothing may be written anywhere."""
    from benchmark.cli import main

    monkeypatch.chdir(tmp_path)
    assert main([*args, "--out", ""]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"bench: error: {flag} is empty; give it a value (an unset shell variable?)", err
    assert not any(tmp_path.iterdir())


def test_the_paper_profile_on_a_cpu_says_what_it_costs_before_training(tmp_path):
    """--profile paper on a CPU started 400 epochs of whole slices (42 h for DeepFuse here) with no
    word until the bar's estimate after a first 48 s step. The note comes before any training (the
    log that sees it stops the run there); a run that trains nothing, or a few epochs, says nothing."""
    import benchmark

    class Said(Exception):
        pass

    lines = []

    def log(line, *_):
        if "profile paper trains" in line:
            raise Said(line)
        lines.append(line)

    kw = {"profile": "paper", "n_train": 2, "n_val": 1, "out": tmp_path, "progress": False, "log": log}
    note = "note: profile paper trains 400 epochs on whole slices: on a CPU, hours to days per fuser"
    with pytest.raises(Said, match=note):
        benchmark.run(models="deepfuse", **kw)
    assert not lines or all("epoch" not in line for line in lines)  # nothing trained before it
    benchmark.run(models="mean", **kw)
    benchmark.run(models="deepfuse", epochs=1, batch_size=2, **kw)
    assert lines and not any("profile paper trains" in line for line in lines)


# What each writer raises on a full disk, as measured on a full tmpfs (benchmark.atomic._raise_if_disk_full):
# torch.save a RuntimeError naming neither file nor cause, np.save a short write, open().write ENOSPC.
_FULL_DISK = [
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"),
    OSError("230400 requested and 71648 written"),
    OSError(28, "No space left on device"),
]


@pytest.mark.parametrize("error", _FULL_DISK, ids=["torch.save", "np.save", "write"])
def test_a_full_disk_names_the_file_and_keeps_nothing(tmp_path, monkeypatch, error):
    from benchmark import atomic

    def free(n):
        monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1 << 40, 1 << 40, n))

    says_so = getattr(error, "errno", None) == 28  # ENOSPC says it itself; the others by the space left
    free(10 << 30 if says_so else 0)
    target = tmp_path / "best.pt"
    with pytest.raises(OSError, match=f"could not write {target}: no space left on the device") as caught:
        with atomic.atomic_path(str(target)) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(b"partial")
            raise error
    assert caught.value.__cause__ is error
    assert os.listdir(tmp_path) == []  # neither the partial file nor the target
    if not says_so:  # the same error with space left is not the disk's: raised as it came
        free(10 << 30)
        with pytest.raises(type(error)) as again:
            with atomic.atomic_path(str(target)):
                raise error
        assert again.value is error


def test_a_full_disk_stops_a_run_with_one_line_and_no_folder(tmp_path, capsys, monkeypatch):
    from benchmark import atomic

    def short_write(path, arr, *a, **k):
        with open(path, "wb") as fh:
            fh.write(b"\x93NUMPY")
        raise OSError("230400 requested and 71648 written")  # what np.save said when the disk filled

    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1 << 40, 1 << 40, 0))
    monkeypatch.setattr(np, "save", short_write)
    args = ["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]
    assert main(args) == 2
    _one_line(capsys, f"could not write {tmp_path / 'r' / 'mean' / 'samples.npy'}: no space left on the device")
    assert os.listdir(tmp_path) == []  # the run made the folder and finished nothing in it


def test_a_full_disk_while_taking_the_lock_says_so(tmp_path, monkeypatch):
    from benchmark import atomic

    def full(*a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.time, "strftime", full)  # the lock's note is written from it
    with pytest.raises(OSError, match=r"could not write .*\.lock: no space left on the device"):
        with atomic.folder_lock(str(tmp_path / "r"), "hint"):
            pass
    assert not (tmp_path / "r" / ".lock").exists()


def test_data_prepare_stops_before_the_disk_is_full(tmp_path, capsys, monkeypatch):
    root = tmp_path / "brats"
    _brats(root, "p1")
    _brats(root, "p2")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1 << 40, 1 << 40, 31 << 20))
    out = tmp_path / "o.h5"
    assert main(["data", "prepare", str(root), "--out", str(out)]) == 2
    _one_line(capsys, f"could not write {out}: 31.0 MiB left on the device of {tmp_path}", "32 MiB short")
    assert sorted(os.listdir(tmp_path)) == ["brats"]  # no partial HDF5 file (a failed close would segfault)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(0, 0, 0))  # no sizes told
    assert main(["data", "prepare", str(root), "--out", str(out)]) == 0


def test_an_os_error_of_a_command_is_one_line(tmp_path, capsys):
    (tmp_path / "scores.csv").mkdir()
    assert main(["table", str(tmp_path)]) == 2
    _one_line(capsys, "Is a directory", str(tmp_path / "scores.csv"))


def test_the_phantom_cache_keeps_no_partial_file_on_a_full_disk(tmp_path, monkeypatch):
    from benchmark.data.datasets import phantom_split

    def short_write(path, **arrays):
        with open(path, "wb") as fh:
            fh.write(b"PK")
        raise OSError("230400 requested and 71648 written")

    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(np, "savez", short_write)
    pairs = phantom_split(7, "val", 2)
    assert len(pairs) == 2 and os.listdir(tmp_path) == []  # the images, and no cache file, whole or partial
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("FUSIONBENCH_CACHE", str(tmp_path / "file" / "cache"))  # no cache folder can be made
    assert len(phantom_split(7, "val", 2)) == 2


def test_sigterm_stops_a_run_as_ctrl_c_does_and_gives_the_handler_back(tmp_path, capsys, monkeypatch):
    """`kill`, `timeout` and a scheduler's time limit send SIGTERM, which ended the process at once: no
    line, a new run folder left behind with nothing finished in it, the kernel build and the workers left
    to run. It now stops the command as Ctrl-C does, with status 143."""
    import signal

    from benchmark.running import runner

    def killed(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered here, in the main thread, as the model's files are kept

    monkeypatch.setattr(runner, "persist_model", killed)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]) == 143
    assert "bench: terminated (SIGTERM); no result file was written. The same command resumes" in _one_line(capsys)
    assert os.listdir(tmp_path) == []  # the run's new folder, with nothing finished in it
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_stops_an_evals_workers(tmp_path, pairs):
    """A real SIGTERM to `bench eval --workers 2` as it scores: status 143, one line, no worker left."""
    import signal
    import subprocess
    import sys
    import time

    x1, x2 = pairs
    for name, arr in (("a", x1), ("b", x2), ("f", (x1 + x2) / 2)):
        (tmp_path / name).mkdir()
        for i in range(96):
            np.save(tmp_path / name / f"s{i:03d}.npy", arr[i % 2])
    out = tmp_path / "ev"
    cmd = [sys.executable, "-m", "benchmark", "eval", "--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b")]
    cmd += ["--fused", f"f={tmp_path / 'f'}", "--lineage", "mefb", "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / ".scored").is_dir() or not os.listdir(out / ".scored"):  # scoring, its workers started
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("bench: terminated (SIGTERM)") and "Traceback" not in err, err
    time.sleep(1)
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if str(out).encode() in fh.read():
                    left.append(pid)
        except OSError:
            pass
    assert left == [], left  # the workers were forked from the command: the same command line
    assert not list(out.glob("*.csv")) and not list(out.glob("leaderboard*"))


def test_a_rerun_removes_what_a_killed_command_left_mid_write(tmp_path, capsys, pairs):
    """SIGKILL (the out-of-memory killer, kill -9) ends a command inside atomic_path's write: its hidden
    temporary file stays. The next command that holds the folder's lock removes such files, says so, and
    leaves every other file alone."""
    args = ["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]
    assert main(args) == 0
    run = tmp_path / "r"
    left = [
        run / "mean" / ".best.pt.1f2e3d4c.tmp",
        run / ".scores.csv.0a0b0c0d.tmp",
        run / "mean" / ".s.npy.deadbeef.tmp.npy",
    ]
    mine = [run / ".notes.tmp", run / "mean" / "x.1f2e3d4c.tmp"]  # not atomic_path's names
    for p in left + mine:
        p.write_bytes(b"x" * 1024)
    capsys.readouterr()
    assert main(args) == 0
    assert f"removed 3 unfinished file(s) a killed command left in {run} (0.0 MiB)" in capsys.readouterr().out
    assert [p.exists() for p in left + mine] == [False, False, False, True, True]
    _folders(tmp_path, pairs)
    ev = ["eval", "--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b"), "--fused", str(tmp_path / "f")]
    assert main([*ev, "--out", str(tmp_path / "ev")]) == 0
    stale = tmp_path / "ev" / ".scored" / ".0123.json.abcdef01.tmp"
    stale.write_text("{")
    capsys.readouterr()
    assert main([*ev, "--out", str(tmp_path / "ev")]) == 0
    assert f"bench eval: removed 1 unfinished file(s) a killed command left in {tmp_path / 'ev'}" in (
        capsys.readouterr().err
    )
    assert not stale.exists()


def test_no_temporary_file_is_removed_where_the_folder_cannot_be_locked(tmp_path, capsys, monkeypatch):
    """On a file system without flock (some network mounts) commands run unlocked: a temporary file there
    may be another command's write in progress, and stays."""
    import fcntl

    args = ["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]
    assert main(args) == 0
    writing = tmp_path / "r" / "mean" / ".best.pt.1f2e3d4c.tmp"
    writing.write_bytes(b"x")

    def no_flock(*a):
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    assert main(args) == 0
    assert writing.exists() and "unfinished" not in capsys.readouterr().out


def _worker_killed(tasks):
    os._exit(9)  # as the kernel's out-of-memory killer ends a process: no exception, no clean-up


def test_an_eval_worker_killed_outright_is_one_line_and_the_batches_stay(tmp_path, capsys, pairs, monkeypatch):
    """A worker that dies (SIGKILL, the out-of-memory killer) was "A process in the process pool was terminated
    abruptly while the future was running or pending." The same command then goes on."""
    from benchmark.running import evaluate

    x1, x2 = pairs
    for name, arr in (("a", x1), ("b", x2), ("f", (x1 + x2) / 2)):
        (tmp_path / name).mkdir()
        for i in range(64):
            np.save(tmp_path / name / f"s{i:03d}.npy", arr[i % 2])
    monkeypatch.setattr(evaluate, "_score_in_worker", _worker_killed)  # the workers are forked from this process
    ev = ["eval", "--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b"), "--fused", str(tmp_path / "f")]
    assert main([*ev, "--metrics", "Q_SSIM", "--workers", "2", "--out", str(tmp_path / "ev")]) == 2
    _one_line(capsys, "a worker process of bench eval ended abruptly while scoring", "--workers 1")
    assert not list((tmp_path / "ev").glob("*.csv"))
    monkeypatch.undo()
    assert main([*ev, "--metrics", "Q_SSIM", "--workers", "1", "--out", str(tmp_path / "ev")]) == 0


def test_sigterm_under_torchrun_reaches_the_ranks_and_rank_0_alone_says_so(tmp_path, capsys, monkeypatch):
    """`bench run --nproc 2` waits for torchrun: a SIGTERM to it is passed on to torchrun (which stops its
    ranks; before, the command died and left them training), and of the ranks only rank 0 prints the line."""
    import signal

    from benchmark import cli
    from benchmark.running import runner

    sent = []

    class Torchrun:
        waits = 0

        def wait(self):
            self.waits += 1
            if self.waits == 1:
                raise cli.Terminated  # the SIGTERM, arriving as the command waits
            return -15

        def send_signal(self, sig):
            sent.append(sig)

    real = cli.subprocess.Popen  # the kernel build's too
    monkeypatch.setattr(
        cli.subprocess, "Popen", lambda cmd, **k: Torchrun() if "torch.distributed.run" in cmd else real(cmd, **k)
    )
    args = ["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path)]
    assert main([*args, "--nproc", "2"]) == 143 and sent == [signal.SIGTERM]
    assert capsys.readouterr().err == ""  # rank 0 says it
    monkeypatch.setattr(runner, "persist_model", lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM))
    monkeypatch.setenv("RANK", "1")
    assert main(args) == 143
    assert "terminated" not in capsys.readouterr().err


@pytest.mark.parametrize("error", [MemoryError(), MemoryError("Unable to allocate 64.0 GiB for an array")])
def test_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch, error):
    from benchmark.running import runner

    def short(*a, **k):
        raise error

    monkeypatch.setattr(runner, "persist_model", short)
    assert main(["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    said = _one_line(capsys, "bench: error: out of memory", "bench run and bench eval go on from what they finished")
    assert str(error) in said


def test_bench_table_on_a_read_only_folder_says_so(tmp_path, capsys, monkeypatch):
    """A run folder of a read-only checkout (the committed results on a read-only mount): the lock file was
    "[Errno 30] Read-only file system: '.../.lock'"."""
    import builtins
    import errno

    from benchmark import atomic

    assert main(["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]) == 0
    capsys.readouterr()

    def read_only(path, *a, **k):
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, "Read-only file system", path)
        return builtins.open(path, *a, **k)

    monkeypatch.setattr(atomic, "open", read_only, raising=False)  # the module's name for the builtin
    assert main(["table", str(tmp_path / "r")]) == 2
    _one_line(capsys, f"{tmp_path / 'r'} is not writable (Read-only file system)", "copy the folder somewhere")
