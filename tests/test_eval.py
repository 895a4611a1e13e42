"""bench eval: score fused images from any software (PNG, 16-bit PNG, TIFF, NumPy, NIfTI), bad folders."""

import json
import logging
import os
import sys
import threading

import numpy as np
import pandas as pd
import pytest
import torch
from skimage import io as skio

import metrics
from benchmark.cli import main
from benchmark.data.phantom import make_split


@pytest.fixture(scope="module")
def triples():
    x1, x2, _ = make_split(41, "val", 3)
    return x1, x2


def _write(folder, stems, arrays, kind):
    folder.mkdir(parents=True, exist_ok=True)
    for s, a in zip(stems, arrays):
        if kind == "png8":
            skio.imsave(folder / f"{s}.png", np.round(a * 255).astype(np.uint8), check_contrast=False)
        elif kind == "png16":
            skio.imsave(folder / f"{s}.png", np.round(a * 65535).astype(np.uint16), check_contrast=False)
        elif kind in ("tif", "bmp", "jpg"):
            from PIL import Image

            Image.fromarray(np.round(a * 255).astype(np.uint8)).save(folder / f"{s}.{kind}", quality=90)
        elif kind in ("png_la", "png_rgba"):  # grey with an alpha channel (matplotlib, many viewers), not opaque
            from PIL import Image

            g = np.round(a * 255).astype(np.uint8)
            alpha = (np.arange(g.size).reshape(g.shape) % 251).astype(np.uint8)
            planes = [g, alpha] if kind == "png_la" else [g, g, g, alpha]
            Image.fromarray(np.stack(planes, -1), "LA" if kind == "png_la" else "RGBA").save(folder / f"{s}.png")
        elif kind == "npy":
            np.save(folder / f"{s}.npy", a.astype(np.float32))
        elif kind == "nii":
            import nibabel as nib

            nib.save(nib.Nifti1Image(a.astype(np.float32), np.eye(4)), str(folder / f"{s}.nii.gz"))
        elif kind == "nii4d":  # a slice as many NIfTI writers store it, (H, W, 1, 1) (was "expected a 2-D slice")
            import nibabel as nib

            nib.save(nib.Nifti1Image(a.astype(np.float32)[..., None, None], np.eye(4)), str(folder / f"{s}.nii"))


def test_eval_png_folders_equal_direct_scores(tmp_path, triples):
    x1, x2 = triples
    stems = ["p0", "p1", "p2"]
    mean = np.round((x1 + x2) / 2 * 255) / 255
    _write(tmp_path / "a", stems, x1, "png8")
    _write(tmp_path / "b", stems, x2, "png8")
    _write(tmp_path / "mean", stems, mean, "png8")
    _write(tmp_path / "max", stems, np.maximum(x1, x2), "tif")
    for d in ("a", "mean"):  # a Mac's AppleDouble copies and hidden files are not images (were "no source images")
        (tmp_path / d / "._p0.png").write_bytes(b"\x00\x05\x16\x07")
        (tmp_path / d / ".p9.png").write_bytes(b"")
    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                "--x1",
                str(tmp_path / "a"),
                "--x2",
                str(tmp_path / "b"),
                "--fused",
                f"mine={tmp_path / 'mean'}",
                "--fused",
                f"theirs={tmp_path / 'max'}",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    s = pd.read_csv(out / "scores.csv")
    assert list(s.columns) == ["model", "name", "Q_SSIM", "Q_FMI", "Q_NCIE", "Q_XY", "Q_P", "Q_SSIM_x1", "Q_SSIM_x2"]
    assert set(s.model) == {"mine", "theirs"} and sorted(s[s.model == "mine"].name) == stems
    t = lambda a: torch.from_numpy(np.round(a * 255) / 255)[:, None].float()
    direct = metrics.score(t(mean), t(x1), t(x2))
    got = s[s.model == "mine"].sort_values("name")
    for m, v in direct.items():
        np.testing.assert_allclose(got[m].to_numpy(), v.numpy(), atol=1e-6)
    for f in ("leaderboard.csv", "leaderboard.md", "leaderboard.tex", "config.json"):
        assert (out / f).exists()
    # what made the scores: the packages, and the machine (its processor and PyTorch's vector ISA on it)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["versions"]["torch"] == torch.__version__ and cfg["versions"]["numpy"] == np.__version__
    dev = cfg["device"]
    assert dev["device"] == "cpu" and dev["workers"] == 1 and dev["cpu"]
    assert dev["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_evaluate_folders_takes_folders_as_bench_eval_does(tmp_path, triples):
    """From Python, ``fused`` may be one folder (named by the folder, a str or a Path) or a list of
    ``--fused`` specs, not only a dict: the same scores as the dict form."""
    from benchmark.running.evaluate import evaluate_folders

    x1, x2 = triples
    stems = ["p0", "p1", "p2"]
    for d, arrays in (("a", x1), ("b", x2), ("mean", (x1 + x2) / 2), ("max", np.maximum(x1, x2))):
        _write(tmp_path / d, stems, arrays, "png8")
    src, kw = (str(tmp_path / "a"), str(tmp_path / "b")), {"metrics": "Q_SSIM,Q_XY", "progress": False}
    want = evaluate_folders(
        *src, {"mean": str(tmp_path / "mean"), "m": str(tmp_path / "max")}, str(tmp_path / "o1"), **kw
    )
    one = evaluate_folders(*src, tmp_path / "mean", str(tmp_path / "o2"), **kw)
    pd.testing.assert_frame_equal(one, want[want.model == "mean"].reset_index(drop=True))
    both = evaluate_folders(*src, [str(tmp_path / "mean"), f"m={tmp_path / 'max'}"], str(tmp_path / "o3"), **kw)
    pd.testing.assert_frame_equal(both, want)
    with pytest.raises(TypeError, match=r"^out: expected a folder \(a str or pathlib.Path\); got None$"):
        evaluate_folders(*src, tmp_path / "mean", None, **kw)  # was: expected str, bytes or os.PathLike object
    assert not (tmp_path / "o4").exists()


def _as_read(a, kind):
    """What a file of ``kind`` holds of the float image ``a`` once read back in [0, 1]."""
    if kind in ("png8", "tif", "bmp", "png_la", "png_rgba"):  # alpha ignored, as imread and cv2 ignore it
        return np.round(a * 255) / 255
    if kind == "png16":
        return np.round(a * 65535) / 65535
    return a.astype(np.float32)


@pytest.mark.parametrize("kind", ["png8", "png16", "tif", "bmp", "npy", "nii", "nii4d", "png_la", "png_rgba"])
def test_eval_every_format_equals_direct_scores(tmp_path, triples, kind):
    x1, x2 = triples
    f = (x1 + x2) / 2
    stems = ["a", "b", "c"]
    for name, arr in (("x1", x1), ("x2", x2), ("f", f)):
        _write(tmp_path / name, stems, arr, kind)
    args = ["eval", "--x1", str(tmp_path / "x1"), "--x2", str(tmp_path / "x2"), "--fused", str(tmp_path / "f")]
    assert main(args + ["--out", str(tmp_path / "o")]) == 0
    got = pd.read_csv(tmp_path / "o" / "scores.csv").set_index("name").loc[stems]
    t = [
        torch.from_numpy(np.stack([_as_read(a, kind) for a in arr]).astype(np.float32))[:, None] for arr in (f, x1, x2)
    ]
    want = metrics.score(*t)
    for k, v in want.items():
        np.testing.assert_allclose(got[k].to_numpy(), v.double().numpy(), atol=1e-6, err_msg=f"{kind} {k}")


def test_eval_reads_jpeg_as_decoded_and_names_a_truncated_one(tmp_path, triples, capsys):
    """JPEG (lossy): the scores are those of the decoded pixels; a truncated file is one line."""
    from PIL import Image

    x1, x2 = triples
    stems = ["a", "b", "c"]
    for name, arr in (("x1", x1), ("x2", x2), ("f", (x1 + x2) / 2)):
        _write(tmp_path / name, stems, arr, "png8" if name != "f" else "jpg")
    args = ["eval", "--x1", str(tmp_path / "x1"), "--x2", str(tmp_path / "x2"), "--fused", str(tmp_path / "f")]
    assert main([*args, "--out", str(tmp_path / "o")]) == 0
    got = pd.read_csv(tmp_path / "o" / "scores.csv").set_index("name").loc[stems]
    decoded = np.stack([np.asarray(Image.open(tmp_path / "f" / f"{s}.jpg")) for s in stems]) / 255.0
    t = [
        torch.from_numpy(np.asarray(v, np.float32))[:, None]
        for v in (decoded, np.round(x1 * 255) / 255, np.round(x2 * 255) / 255)
    ]
    for k, v in metrics.score(*t).items():
        np.testing.assert_allclose(got[k].to_numpy(), v.double().numpy(), atol=1e-6, err_msg=k)
    bad = tmp_path / "f" / "b.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    assert main([*args, "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: unreadable" in err and "expected a complete 8-bit grey or RGB BMP/JPEG image" in err
    assert "Traceback" not in err and not (tmp_path / "o2").exists()


@pytest.mark.parametrize(
    "shape, dtype, needle",
    [
        ((48, 48, 3), np.float32, "image has shape (48, 48, 3); expected a 2-D slice"),  # 3 slices, read as colour
        (
            (48, 48),
            np.int16,
            "integer values in [0, 999]; expected 0..255 (8 bits), 16-bit unsigned (0..65535) or "
            "floats in [0, 1]: rescale the slices first",
        ),
    ],
)
def test_eval_refuses_nifti_volumes_and_raw_intensities(tmp_path, capsys, shape, dtype, needle):
    import nibabel as nib

    a = (np.arange(np.prod(shape)).reshape(shape) % 1000).astype(dtype)
    a = a / 1000 if dtype == np.float32 else a
    for d in ("x1", "x2", "f"):
        (tmp_path / d).mkdir()
        nib.save(nib.Nifti1Image(a, np.eye(4)), str(tmp_path / d / "s.nii.gz"))
    args = ["eval", "--x1", str(tmp_path / "x1"), "--x2", str(tmp_path / "x2"), "--fused", str(tmp_path / "f")]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.split("\r")[-1]
    assert needle in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def test_eval_numpy_16bit_and_nifti(tmp_path, triples):
    x1, x2 = triples
    stems = ["a", "b", "c"]
    _write(tmp_path / "x1", stems, x1, "npy")
    _write(tmp_path / "x2", stems, x2, "png16")
    _write(tmp_path / "f", stems, (x1 + x2) / 2, "nii")
    assert (
        main(
            [
                "eval",
                "--x1",
                str(tmp_path / "x1"),
                "--x2",
                str(tmp_path / "x2"),
                "--fused",
                str(tmp_path / "f"),
                "--out",
                str(tmp_path / "o"),
                "--metric-profile",
                "intended",
            ]
        )
        == 0
    )
    s = pd.read_csv(tmp_path / "o" / "scores.csv")
    assert len(s) == 3 and s.model.unique().tolist() == ["f"] and s.Q_SSIM.between(0.5, 1).all()


def test_eval_unmatched_names_are_counted_and_a_renaming_is_named(tmp_path, triples, capsys):
    """Fused images named as many fusion codes name them (``fused_p00`` for ``p00``) matched nothing, and the
    error listed ten names of many without saying how many. It says how many more, and names the text added
    to the sources' names; names with no such pattern get no guess."""
    x1, x2 = triples
    stems = [f"p{i:02d}" for i in range(12)]
    _write(tmp_path / "a", stems, [x1[i % 3] for i in range(12)], "png8")
    _write(tmp_path / "b", stems, [x2[i % 3] for i in range(12)], "png8")
    _write(tmp_path / "pre", [f"fused_{s}" for s in stems], [x1[i % 3] for i in range(12)], "png8")
    _write(tmp_path / "post", [f"{s}_out" for s in stems[1:]], [x1[i % 3] for i in range(11)], "png8")
    _write(tmp_path / "other", [f"img{i}" for i in range(12)], [x1[i % 3] for i in range(12)], "png8")
    src = ["eval", "--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b"), "--out", str(tmp_path / "o")]
    assert main([*src, "--fused", str(tmp_path / "pre")]) == 2
    err = capsys.readouterr().err
    assert "no fused image for p00, p01, p02, p03, p04, p05, p06, p07, p08, p09 and 2 more" in err
    assert "no source images for fused_p00," in err and "fused_p09 and 2 more" in err
    assert "its names are the sources' with 'fused_' before them; images are matched by the file name" in err
    assert main([*src, "--fused", str(tmp_path / "post")]) == 2
    err = capsys.readouterr().err
    assert "and 1 more" in err and "its names are the sources' with '_out' after them" in err
    assert main([*src, "--fused", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "no source images for img0, img1, img10, img11, img2" in err and "its names are" not in err
    (tmp_path / "b" / "p11.png").unlink()
    assert main([*src, "--fused", str(tmp_path / "a")]) == 2
    assert f"x1 and x2 folders differ: only in {tmp_path / 'a'}: p11\n" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_eval_bad_folders(tmp_path, triples, capsys):
    x1, x2 = triples
    _write(tmp_path / "a", ["p0", "p1"], x1[:2], "png8")
    _write(tmp_path / "b", ["p0", "p1"], x2[:2], "png8")
    _write(tmp_path / "f", ["p0", "zz"], x1[:2], "png8")
    assert (
        main(
            [
                "eval",
                "--x1",
                str(tmp_path / "a"),
                "--x2",
                str(tmp_path / "b"),
                "--fused",
                str(tmp_path / "f"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "unmatched files" in err and "no fused image for p1" in err and "no source images for zz" in err
    assert not (tmp_path / "o" / "scores.csv").exists()
    _write(tmp_path / "g", ["p0", "p1"], [x1[0], x1[1][:200]], "png8")
    assert (
        main(
            [
                "eval",
                "--x1",
                str(tmp_path / "a"),
                "--x2",
                str(tmp_path / "b"),
                "--fused",
                str(tmp_path / "g"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "is 200x240; expected 240x240" in capsys.readouterr().err
    np.save(tmp_path / "g" / "p0.npy", np.full((240, 240), 2.0, np.float32))
    (tmp_path / "g" / "p0.png").unlink()
    assert (
        main(
            [
                "eval",
                "--x1",
                str(tmp_path / "a"),
                "--x2",
                str(tmp_path / "b"),
                "--fused",
                str(tmp_path / "g"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "expected [0, 1]" in capsys.readouterr().err
    assert (
        main(["eval", "--x1", str(tmp_path / "nope"), "--x2", str(tmp_path / "b"), "--fused", str(tmp_path / "g")]) == 2
    )
    assert "folder not found" in capsys.readouterr().err
    src = ["eval", "--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b"), "--out", str(tmp_path / "o2")]
    assert main([*src, "--fused", str(tmp_path / "a" / "p0.png")]) == 2  # a file among folders
    assert "p0.png is one image; give every input as one image (one triple) or every one as a folder" in (
        capsys.readouterr().err
    )
    for spec in (f"={tmp_path / 'g'}", "mine=", f" ={tmp_path / 'g'}"):  # an empty name gave an unnamed row
        assert main([*src, "--fused", spec]) == 2, spec
        assert "expected DIR or NAME=DIR" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_workers_give_the_same_scores_and_name_the_nan_images(tmp_path, triples, caplog):
    """Batches scored side by side in spawned worker processes (one thread each) give the single
    process's scores (two threads) bit for bit, a last batch of one image included; NaN reasons are
    logged once for all batches, naming the images and the fused folder."""
    import logging

    from benchmark.running.evaluate import evaluate_folders

    x1, x2 = triples
    stems = [f"s{i}" for i in range(7)]
    xs1, xs2 = [x1[i % 3] for i in range(7)], [x2[i % 3] for i in range(7)]
    fused = [np.round((p + q) / 2 * 255) / 255 for p, q in zip(xs1, xs2)]
    fused[1] = fused[4] = xs2[4]  # F = B: CDDFuse's SCD divides 0 by 0 (NaN, with its reason), in two batches
    _write(tmp_path / "a", stems, xs1, "png8")
    _write(tmp_path / "b", stems, xs2, "png8")
    _write(tmp_path / "f", stems, fused, "png8")
    got = {}
    threads = torch.get_num_threads()
    try:
        for w in (1, 2):
            torch.set_num_threads(2)
            with caplog.at_level(logging.WARNING, logger="fusionbench.metrics"):
                caplog.clear()
                got[w] = evaluate_folders(
                    str(tmp_path / "a"),
                    str(tmp_path / "b"),
                    {"m": str(tmp_path / "f")},
                    str(tmp_path / f"out{w}"),
                    lineage="cddfuse",
                    batch=2,
                    progress=False,
                    workers=w,
                )
                # one line for both batches' NaNs, naming the images and the fused folder
                assert caplog.text.count("SCD is NaN for 2 image(s) ['s1', 's4'] of fused folder m:") == 1, caplog.text
                assert caplog.text.count("SCD is NaN") == 1, caplog.text
    finally:
        torch.set_num_threads(threads)
    pd.testing.assert_frame_equal(got[1], got[2])
    assert (tmp_path / "out1" / "scores.csv").read_text() == (tmp_path / "out2" / "scores.csv").read_text()


def test_several_fused_folders_share_the_sources_work_with_the_same_scores(tmp_path, triples, monkeypatch):
    """Several fused folders scored in one eval compute what the lineage metrics take of the
    sources alone once per batch of sources (here MEFB's phase congruency: A and B once, each
    folder's F once), in one process or in workers; every score equals that of each folder scored
    by its own eval, bit for bit."""
    from benchmark.running.evaluate import evaluate_folders
    from metrics.lineage import mefb

    _six_triples(tmp_path, triples)
    x1, x2 = triples
    _write(tmp_path / "g", [f"s{i}" for i in range(6)], [np.maximum(x1[i % 3], x2[i % 3]) for i in range(6)], "png8")
    folders = (str(tmp_path / "a"), str(tmp_path / "b"))
    kw = dict(lineage="mefb,cddfuse", batch=2, progress=False)
    calls = []
    real = mefb.phase_congruency
    monkeypatch.setattr(mefb, "phase_congruency", lambda x: calls.append(x.shape[0]) or real(x))
    alone = [evaluate_folders(*folders, {m: str(tmp_path / m)}, str(tmp_path / f"alone_{m}"), **kw) for m in "fg"]
    assert len(calls) == 2 * 3 * 3  # two folders, three batches, A, B and F each
    calls.clear()
    both = {m: str(tmp_path / m) for m in "fg"}
    together = evaluate_folders(*folders, both, str(tmp_path / "together"), workers=1, **kw)
    assert len(calls) == 3 * (2 + 2)  # three batches: A and B once, then each folder's F
    pd.testing.assert_frame_equal(together, pd.concat(alone, ignore_index=True))
    in_workers = evaluate_folders(*folders, both, str(tmp_path / "workers"), workers=2, **kw)
    pd.testing.assert_frame_equal(in_workers, together)
    calls.clear()
    monkeypatch.setenv("FUSIONBENCH_SHARE_SOURCES", "0")  # less memory: each folder's batch on its own
    apart = evaluate_folders(*folders, both, str(tmp_path / "apart"), workers=1, **kw)
    assert len(calls) == 2 * 3 * 3
    pd.testing.assert_frame_equal(apart, together)
    monkeypatch.setenv("FUSIONBENCH_SHARE_SOURCES", "yes")
    with pytest.raises(ValueError, match="^FUSIONBENCH_SHARE_SOURCES must be 0 or 1; got 'yes'$"):
        evaluate_folders(*folders, both, str(tmp_path / "bad"), workers=1, **kw)
    assert not (tmp_path / "bad").exists()
    monkeypatch.delenv("FUSIONBENCH_SHARE_SOURCES")
    from PIL import Image

    lab = make_split(41, "val", 3)[2]  # the triples' tumour labels: each triple is also scored in its box
    (tmp_path / "l").mkdir()
    for i in range(6):
        Image.fromarray(lab[i % 3].astype(np.uint8)).save(tmp_path / "l" / f"s{i}.png")
    kw["labels"] = str(tmp_path / "l")
    calls.clear()
    alone = [evaluate_folders(*folders, {m: str(tmp_path / m)}, str(tmp_path / f"boxes_{m}"), **kw) for m in "fg"]
    n_alone = len(calls)
    calls.clear()
    together = evaluate_folders(*folders, both, str(tmp_path / "boxes"), workers=1, **kw)
    assert len(calls) == n_alone * 2 // 3  # whole slices and boxes: A and B once, each folder's F
    pd.testing.assert_frame_equal(together, pd.concat(alone, ignore_index=True))


def test_bad_file_in_a_worker_batch_is_one_clear_error(tmp_path, triples, capsys):
    """A wrong-sized fused image in a batch a worker process scores stops the eval with the
    single-process error (file, shape, what was expected) and leaves no output folder."""
    from benchmark.running.evaluate import evaluate_folders

    x1, x2 = triples
    stems = [f"s{i}" for i in range(6)]
    _write(tmp_path / "a", stems, [x1[i % 3] for i in range(6)], "png8")
    _write(tmp_path / "b", stems, [x2[i % 3] for i in range(6)], "png8")
    _write(tmp_path / "f", stems, [x1[i % 3] for i in range(6)], "png8")
    skio.imsave(tmp_path / "f" / "s0.png", np.zeros((40, 40), np.uint8), check_contrast=False)  # batch 0: a worker's
    folders = [str(tmp_path / d) for d in "ab"]
    with pytest.raises(ValueError, match=r"s0\.png is 40x40; expected 240x240 like .*s0\.png"):
        evaluate_folders(
            *folders, {"m": str(tmp_path / "f")}, str(tmp_path / "out"), batch=2, progress=False, workers=2
        )
    assert not (tmp_path / "out").exists()
    args = ["eval", "--x1", folders[0], "--x2", folders[1], "--fused", f"m={tmp_path / 'f'}", "--workers", "0"]
    assert main([*args, "--out", str(tmp_path / "o2")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "bench: error: --workers must be at least 1; got 0"
    os.environ["FUSIONBENCH_EVAL_WORKERS"] = "abc"  # the variable's bad value is named as the variable's
    try:
        assert main([*args[:-2], "--out", str(tmp_path / "o2")]) == 2
    finally:
        del os.environ["FUSIONBENCH_EVAL_WORKERS"]
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "bench: error: FUSIONBENCH_EVAL_WORKERS must be a whole number or 'auto'; got 'abc'"


def test_worker_count_rule(monkeypatch):
    from benchmark.running.evaluate import eval_workers

    monkeypatch.delenv("FUSIONBENCH_EVAL_WORKERS", raising=False)
    cores = len(__import__("os").sched_getaffinity(0))
    assert eval_workers("auto", 100, 7, "cpu") == 1  # too few triples to pay for starting processes
    assert eval_workers("auto", 1153, 73, "cpu") == min(cores, 73)
    assert eval_workers("auto", 1153, 73, "cuda") == 1
    assert eval_workers("3", 1153, 2, "cpu") == 2  # never more processes than batches
    monkeypatch.setenv("FUSIONBENCH_EVAL_WORKERS", "1")
    assert eval_workers("auto", 1153, 73, "cpu") == 1
    with pytest.raises(ValueError, match="whole number"):
        eval_workers("many", 1153, 73, "cpu")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_the_workers_start_with_the_scoring_or_before_torch_and_score_or_stop(
    tmp_path, triples, monkeypatch, capsys, method
):
    """bench eval's workers are forked when the scoring starts (Linux), with what this process imported;
    where they are spawned instead (macOS, Windows), bench eval starts them (benchmark.running.pool.start)
    from the number of source images, before it imports torch, and the scoring takes that pool (no
    second one). Either way the scores are those of one process; an eval that needs another number of
    processes, or ends on bad input, stops early-started ones."""
    import benchmark.running.evaluate as ev
    from benchmark.cli import main
    from benchmark.running import pool

    if method == "fork":
        assert pool.start_method() == ("fork" if sys.platform.startswith("linux") else "spawn")
    monkeypatch.setattr(pool, "start_method", lambda: method)
    _six_triples(tmp_path, triples)
    monkeypatch.setattr(pool, "AUTO_MIN_TRIPLES", 6)
    monkeypatch.delenv("FUSIONBENCH_EVAL_WORKERS", raising=False)
    monkeypatch.setattr(pool.os, "sched_getaffinity", lambda _: {0, 1})  # two cores: one worker
    made, stopped, kinds = [], [], []
    real_new, real_stop = pool.new_pool, pool._stop
    if ev.tqdm.monitor is not None:  # another test's progress bar's monitor thread: ended, as in a fresh process
        ev.tqdm.monitor.exit()
        ev.tqdm.monitor = None
    before = set(threading.enumerate())

    def new_pool(n):
        made.append(n)
        if method == "fork":  # forked before the eval starts a thread (the progress bar's monitor off)
            assert set(threading.enumerate()) <= before
        p = real_new(n)
        kinds.append(p._mp_context.get_start_method())
        return p

    monkeypatch.setattr(pool, "new_pool", new_pool)
    monkeypatch.setattr(pool, "_stop", lambda p: stopped.append(p) or real_stop(p))
    monkeypatch.setattr(ev, "evaluate_folders", _with_batch(ev.evaluate_folders, 2))  # three batches
    imported = []  # the tables' imports, while this process waits for the workers' last batches (if it does)
    monkeypatch.setattr(ev, "_import_reporting", lambda: imported.append(1))
    src = ["--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b"), "--fused", f"m={tmp_path / 'f'}"]
    run = ["eval", *src, "--lineage", "cddfuse", "--metrics", "EN,SD,MI"]
    assert main([*run, "--out", str(tmp_path / "side")]) == 0
    assert made == [2] and stopped == [] and pool._EARLY == [] and kinds == [method]  # one pool, shut down
    assert imported in ([], [1])
    assert main([*run, "--out", str(tmp_path / "one"), "--workers", "1"]) == 0 and made == [2]
    side, one = (pd.read_csv(tmp_path / d / "scores.csv") for d in ("side", "one"))
    pd.testing.assert_frame_equal(side, one)
    monkeypatch.setattr(pool, "AUTO_MIN_TRIPLES", 7)  # the early count (6 images) starts none
    assert main([*run, "--out", str(tmp_path / "none")]) == 0 and made == [2]
    monkeypatch.setattr(pool, "AUTO_MIN_TRIPLES", 6)
    capsys.readouterr()
    assert main(["eval", *src[:4], "--fused", f"m={tmp_path / 'missing'}", "--out", str(tmp_path / "bad")]) == 2
    assert "folder not found" in capsys.readouterr().err
    if method == "spawn":
        assert made == [2, 2] and len(stopped) == 1 and pool._EARLY == []  # started, then stopped on the bad input
        assert not any(p.is_alive() for p in (getattr(stopped[0], "_processes", None) or {}).values())
    else:
        assert made == [2] and stopped == [] and pool._EARLY == []  # none forked before the scoring
    assert main([*run, "--out", str(tmp_path / "three"), "--workers", "3"]) == 0  # 3 batches: 3 processes
    assert made[-1] == 3 and len(stopped) == (method == "spawn")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "three" / "scores.csv"), one)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_bad_input_found_by_a_worker_is_one_line_and_no_result(tmp_path, triples, monkeypatch, capsys, method):
    """An image that fails only when a worker process decodes it (a float .npy outside [0, 1]: its header
    passes the checks before the scoring) ends the eval as bad input found in this process does: one line
    naming the file, status 2, no result file."""
    import benchmark.running.evaluate as ev
    from benchmark.running import pool

    monkeypatch.setattr(pool, "start_method", lambda: method)
    _six_triples(tmp_path, triples)
    fused = tmp_path / "g"
    fused.mkdir()
    for i in range(6):
        img = skio.imread(tmp_path / "f" / f"s{i}.png").astype(np.float32) / 255
        np.save(fused / f"s{i}.npy", img * (2 if i == 0 else 1))  # s0: in the worker's first batch
    monkeypatch.setattr(pool, "AUTO_MIN_TRIPLES", 6)
    monkeypatch.delenv("FUSIONBENCH_EVAL_WORKERS", raising=False)
    monkeypatch.setattr(pool.os, "sched_getaffinity", lambda _: {0, 1})
    monkeypatch.setattr(ev, "evaluate_folders", _with_batch(ev.evaluate_folders, 2))
    seen = []
    real = ev._score_side_by_side
    monkeypatch.setattr(ev, "_score_side_by_side", lambda *a, **k: seen.append(a[2]) or real(*a, **k))
    out = tmp_path / "out"
    src = ["--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b"), "--fused", f"g={fused}"]
    capsys.readouterr()
    assert main(["eval", *src, "--lineage", "cddfuse", "--metrics", "EN,SD", "--out", str(out)]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip() and not x.startswith("eval g:")]  # no bar
    assert seen == [2] and len(err) == 1, err
    assert err[0].startswith(f"bench: error: {fused / 's0.npy'}: ") and "expected [0, 1]" in err[0]
    assert not out.exists() or not [x for x in out.iterdir() if not x.name.startswith(".")]


def test_the_last_batches_go_out_in_pieces_with_the_whole_batches_scores(
    tmp_path, triples, monkeypatch, capsys, caplog
):
    """Side by side, the last 2 N groups of batches (here all: two groups, each f's and g's batch of the
    same five sources) are scored in pieces of at most four triples, cut as the lineage metrics cut a
    batch (2 and 3 of five), both processes taking pieces; each batch's scores and NaN notes are put
    together again, cached once and whole (a rerun reuses every batch, with the same scores), and equal
    one process's scoring of whole batches bit for bit, every lineage's column (Liu's five score a batch
    of five at once there), with the same NaN lines (s0 and s4, F equal to a source, in two pieces of
    one batch: one line)."""
    import benchmark.running.evaluate as ev
    from benchmark.running import pool

    x1, x2 = triples
    stems = [f"s{i}" for i in range(10)]
    xs1, xs2 = [x1[i % 3] for i in range(10)], [x2[i % 3] for i in range(10)]
    fs = [(i + 1) / 11 * p + (10 - i) / 11 * q for i, (p, q) in enumerate(zip(xs1, xs2))]
    fs[0], fs[4] = xs2[0], xs1[4]  # F equal to a source: SCD's 0 / 0
    for d, xs in (("a", xs1), ("b", xs2), ("f", fs), ("g", [np.maximum(p, q) for p, q in zip(xs1, xs2)])):
        _write(tmp_path / d, stems, xs, "png8")
    monkeypatch.setattr(pool, "AUTO_MIN_TRIPLES", 10)
    monkeypatch.delenv("FUSIONBENCH_EVAL_WORKERS", raising=False)
    monkeypatch.setattr(pool.os, "sched_getaffinity", lambda _: {0, 1})  # two cores: one worker
    monkeypatch.setattr(ev, "evaluate_folders", _with_batch(ev.evaluate_folders, 5))
    cut, here, put = [], [], []
    real_pieces, real_group, real_put = ev._pieces, ev._score_group, ev.BatchCache.put
    monkeypatch.setattr(ev, "_pieces", lambda g, t: cut.append(real_pieces(g, t)) or cut[-1])
    monkeypatch.setattr(ev, "_score_group", lambda ts: here.append([(t[0], list(t[1])) for t in ts]) or real_group(ts))
    monkeypatch.setattr(ev.BatchCache, "put", lambda self, i, r: put.append(i) or real_put(self, i, r))
    src = ["--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b"), "--fused", f"f={tmp_path / 'f'}"]
    src += ["--fused", f"g={tmp_path / 'g'}", "--lineage", "all"]

    def run(name, *extra):
        capsys.readouterr()
        with caplog.at_level(logging.WARNING, logger="fusionbench.metrics"):
            caplog.clear()
            assert main(["eval", *src, "--out", str(tmp_path / name), *extra]) == 0
            lines = sorted(r.getMessage() for r in caplog.records if " is NaN " in r.getMessage())
        return (tmp_path / name / "scores.csv").read_text(), lines, capsys.readouterr().err

    first = run("two")
    pieces = [[(t[0], list(t[1])) for _, t in piece] for group in cut for piece in group]
    halves = [["s0", "s1"], ["s2", "s3", "s4"], ["s5", "s6"], ["s7", "s8", "s9"]]
    assert pieces == [[("f", h), ("g", h)] for h in halves]
    assert here and all(x in pieces for x in here) and len(here) < len(pieces)  # this process scored some
    assert sorted(put) == [0, 1, 2, 3]  # each batch cached once, when its last piece is in
    cut.clear(), here.clear(), put.clear()

    def config(name):
        return json.loads((tmp_path / name / "config.json").read_text())

    assert config("two")["batches"] == {"scored": 4, "reused": 0} and config("two")["device"]["workers"] == 2
    rerun = run("two")
    assert "reusing 4 of 4 batches" in rerun[2] and cut == put == []
    assert config("two")["batches"] == {"scored": 0, "reused": 4}  # whose machine scored them: the first run's
    one = run("one", "--workers", "1")
    assert here == [] and sorted(put) == [0, 1, 2, 3]  # one process: whole batches, not side by side
    assert rerun[:2] == first[:2] == one[:2]
    assert [x for x in one[1] if "SCD" in x] == [
        f"{lin}:SCD is NaN for 2 image(s) ['s0', 's4'] of fused folder f: F minus a source is constant (e.g. F "
        "equals it): 0/0 in the correlation"
        for lin in ("cddfuse", "tang")
    ]
    table = pd.read_csv(tmp_path / "one" / "scores.csv")
    assert table.shape == (20, 2 + 69)  # every lineage's 69 columns


def test_auto_workers_go_side_by_side_even_when_the_metrics_compile(tmp_path, triples, monkeypatch, torch_kernels):
    """Under ``auto`` a large eval on a CPU scores side by side from its first batch, whether or not
    its metrics run compiled kernels (each worker compiles them; still faster: mefb 77 against 103 s
    for 1,153 triples, when its Qp compiled), with the same scores as one process that compiles them
    in the background while it scores the rest; ``--workers 1`` (or FUSIONBENCH_EVAL_WORKERS=1) keeps
    one process. Qp compiles only without the hand-written kernels (FUSIONBENCH_NATIVE=0, as here)."""
    import benchmark.running.evaluate as ev
    from benchmark.running import pool
    from metrics import _compile

    x1, x2 = triples
    stems = [f"s{i}" for i in range(6)]
    for d, xs in (("a", x1), ("b", x2), ("f", x1)):
        _write(tmp_path / d, stems, [xs[i % 3] for i in range(6)], "png8")
    monkeypatch.setattr(pool, "AUTO_MIN_TRIPLES", 1)
    monkeypatch.setattr(_compile, "AUTO_MIN_PAIRS", 1)  # Qp compiles for this small workload
    monkeypatch.setattr(_compile, "_BROKEN", [])
    monkeypatch.delenv("FUSIONBENCH_EVAL_WORKERS", raising=False)
    monkeypatch.delenv("FUSIONBENCH_COMPILE", raising=False)
    side, deferring = [], []

    def side_by_side(tasks, results, n, bar, first, finished):  # records the call, scores here
        side.append((n, first))
        for i in range(first, len(tasks)):
            results[i] = ev._score_batch(tasks[i])

    monkeypatch.setattr(ev, "_score_side_by_side", side_by_side)
    real_deferring = ev._score_deferring
    monkeypatch.setattr(ev, "_score_deferring", lambda *a: deferring.append(a[3]) or real_deferring(*a))
    args = (str(tmp_path / "a"), str(tmp_path / "b"), {"m": str(tmp_path / "f")})
    kw = dict(lineage="mefb", metrics="Qp,SD", batch=2, progress=False)
    assert ev._deferrable(["mefb:Qp", "mefb:SD"], 6, "cpu") == ["mefb:Qp"]  # Qp runs a compiled kernel
    ev.evaluate_folders(*args, str(tmp_path / "o1"), workers="auto", **kw)
    assert side == [(2, 0)] and deferring == []  # two processes (this one and a worker) from batch 0
    ev.evaluate_folders(*args, str(tmp_path / "o2"), workers=1, **kw)
    assert side == [(2, 0)] and deferring == [["mefb:Qp"]]  # one process: Qp compiled in the background
    assert (tmp_path / "o1" / "scores.csv").read_text() == (tmp_path / "o2" / "scores.csv").read_text()


def test_metrics_deferred_while_their_kernel_compiles_get_the_same_scores(
    tmp_path, triples, monkeypatch, native_kernel
):
    """With compiled kernels (FUSIONBENCH_COMPILE=1), bench eval compiles them in a background
    thread and scores the other metrics first; the batches scored meanwhile get the compiled
    metrics once the kernel is ready. Scores (and columns, prefixed for two lineages) equal the
    batch-by-batch run's, and the columns keep their order. The Fast-FMI metrics compile only
    without the hand-written kernels (FUSIONBENCH_NATIVE=0, as here), and so does MEFB's Qp; with them
    no metric is deferred."""
    import benchmark.running.evaluate as ev
    from metrics import _compile
    from metrics.registry import METRICS

    _six_triples(tmp_path, triples)
    monkeypatch.setenv("FUSIONBENCH_COMPILE", "1")
    monkeypatch.setattr(_compile, "_BROKEN", [])
    args = (str(tmp_path / "a"), str(tmp_path / "b"), {"m": str(tmp_path / "f")})
    names = "Q_FMI,Q_SSIM,tang:FMI_dct,tang:FMI_pixel,tang:EN,cddfuse:EN,cddfuse:SCD"
    assert ev._deferrable(names.split(","), 6, "cpu") == []  # the hand-written kernels: nothing compiles
    assert ev._deferrable(list(METRICS), 6, "cpu") == []
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    assert ev._deferrable(["mefb:Qp", "cddfuse:EN"], 6, "cpu") == ["mefb:Qp"]
    assert ev._deferrable(names.split(","), 6, "cpu") == ["Q_FMI", "tang:FMI_dct", "tang:FMI_pixel"]
    kw = dict(metrics=names, lineage="tang,cddfuse", batch=2, progress=False, workers=1)
    seen = []
    real = _compile.warming
    answers = iter([True, True])  # the first two batches are scored while "still compiling"
    monkeypatch.setattr(_compile, "warming", lambda: seen.append(1) or next(answers, None) or real())
    deferred = ev.evaluate_folders(*args, str(tmp_path / "deferred"), **kw)
    assert len(seen) >= 3 and not _compile._BROKEN
    monkeypatch.setattr(ev, "_deferrable", lambda *a: [])
    whole = ev.evaluate_folders(*args, str(tmp_path / "whole"), **kw)
    assert list(deferred.columns) == list(whole.columns)
    assert {"Q_FMI", "tang:FMI_dct", "tang:FMI_pixel", "tang:EN", "cddfuse:EN"} <= set(whole.columns)
    pd.testing.assert_frame_equal(deferred, whole)


def test_rerun_and_interrupted_eval_reuse_the_batches_already_scored(tmp_path, triples, monkeypatch, capsys):
    """A stopped eval (Ctrl-C) writes no result file but keeps the batches it finished; the same
    command scores only the rest and ends with the uninterrupted eval's files. A rerun reuses
    every batch whose images, metrics and code are unchanged, and says so; a touched image
    scores its batch again; other metrics score everything again."""
    import benchmark.running.evaluate as ev
    from benchmark.cli import main
    from benchmark.running import pool

    _six_triples(tmp_path, triples)
    monkeypatch.setattr(pool, "AUTO_MIN_TRIPLES", 10**6)  # one process: the batches in order
    src = ["--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b"), "--fused", f"m={tmp_path / 'f'}"]

    def cmd(out, *more):
        return ["eval", *src, "--lineage", "cddfuse", "--out", str(tmp_path / out), *more]

    monkeypatch.setattr(ev, "_score_batch", _counting(ev._score_batch))
    real = ev._score_batch
    assert main(cmd("whole")) == 0 and real.calls == 1  # 6 triples: one batch of 16
    monkeypatch.setattr(ev, "evaluate_folders", _with_batch(ev.evaluate_folders, 2))
    stop = _counting(real, stop_at=3)  # the third batch is interrupted
    monkeypatch.setattr(ev, "_score_batch", stop)
    capsys.readouterr()
    assert main(cmd("out")) == 130
    assert "interrupted" in capsys.readouterr().err
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [".scored"] and len(list((out / ".scored").iterdir())) == 2
    again = _counting(real)
    monkeypatch.setattr(ev, "_score_batch", again)
    assert main(cmd("out")) == 0 and again.calls == 1  # only the third batch
    err = capsys.readouterr().err
    assert "reusing 2 of 3 batches scored by an earlier bench eval" in err
    for f in ("scores.csv", "leaderboard.md", "leaderboard.csv"):
        assert (out / f).read_text() == (tmp_path / "whole" / f).read_text(), f
    # a rerun: nothing scored; a touched image: its batch alone
    assert main(cmd("out")) == 0 and again.calls == 1 and "reusing 3 of 3" in capsys.readouterr().err
    os.utime(tmp_path / "f" / "s3.png", ns=(1, 1))
    assert main(cmd("out")) == 0 and again.calls == 2 and "reusing 2 of 3" in capsys.readouterr().err
    # other metrics: everything again, and the folder keeps only this eval's batches
    assert main(["eval", *src, "--out", str(out)]) == 0 and again.calls == 5
    err = capsys.readouterr().err
    assert "reusing" not in err and len(list((out / ".scored").iterdir())) == 3
    assert "scoring every batch again: none of the 3 batches scored by an earlier bench eval into" in err
    assert main(cmd("fresh")) == 0
    assert "scoring every batch again" not in capsys.readouterr().err  # a new folder: nothing to say


def test_a_rerun_scores_again_what_other_code_kernels_or_bytes_would_change(tmp_path, triples, monkeypatch, capsys):
    """A batch is reused only when nothing that makes its scores changed: the metrics' code, whether
    the kernels run compiled (they round differently), or a file's size (another image under the same
    name and modification time, as a copy that keeps timestamps leaves it)."""
    import benchmark.running.evaluate as ev
    from benchmark.cli import main
    from benchmark.running import pool

    _six_triples(tmp_path, triples)
    monkeypatch.setattr(pool, "AUTO_MIN_TRIPLES", 10**6)
    monkeypatch.setattr(ev, "evaluate_folders", _with_batch(ev.evaluate_folders, 3))  # two batches
    cmd = ["eval", "--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b"), "--fused", f"m={tmp_path / 'f'}"]
    cmd += ["--lineage", "cddfuse", "--out", str(tmp_path / "out")]
    real = ev._score_batch
    assert main(cmd) == 0
    capsys.readouterr()

    def rerun():
        counted = _counting(real)
        monkeypatch.setattr(ev, "_score_batch", counted)
        assert main(cmd) == 0
        return counted.calls, capsys.readouterr().err

    assert rerun()[0] == 0
    metrics_code = ev.metrics_code
    monkeypatch.setattr(ev, "metrics_code", lambda: metrics_code() + " edited")
    calls, err = rerun()
    assert calls == 2 and "scoring every batch again" in err
    monkeypatch.setattr(ev, "metrics_code", metrics_code)
    wanted = ev._compile.wanted
    monkeypatch.setattr(ev._compile, "wanted", lambda *a: not wanted(*a))
    assert rerun()[0] == 2
    monkeypatch.setattr(ev._compile, "wanted", wanted)
    assert rerun()[0] == 2  # back as before: the earlier batches were replaced, not kept beside
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")  # the PyTorch FMI kernel instead of the hand-written one
    assert rerun()[0] == 2
    monkeypatch.delenv("FUSIONBENCH_NATIVE")
    assert rerun()[0] == 2
    f = tmp_path / "f" / "s4.png"
    stamp, size = f.stat().st_mtime_ns, f.stat().st_size
    skio.imsave(f, np.zeros_like(skio.imread(f)), check_contrast=False)
    os.utime(f, ns=(stamp, stamp))
    assert f.stat().st_size != size and f.stat().st_mtime_ns == stamp
    calls, err = rerun()
    assert calls == 1 and "reusing 1 of 2" in err


def _six_triples(tmp_path, triples):
    """Folders a, b, f of six 8-bit triples (the three phantom pairs twice; F = their mean)."""
    x1, x2 = triples
    stems = [f"s{i}" for i in range(6)]
    xs1, xs2 = [x1[i % 3] for i in range(6)], [x2[i % 3] for i in range(6)]
    _write(tmp_path / "a", stems, xs1, "png8")
    _write(tmp_path / "b", stems, xs2, "png8")
    _write(tmp_path / "f", stems, [np.round((p + q) / 2 * 255) / 255 for p, q in zip(xs1, xs2)], "png8")


def _counting(fn, stop_at=None):
    def wrapped(*a, **k):
        wrapped.calls += 1
        if wrapped.calls == stop_at:
            raise KeyboardInterrupt
        return fn(*a, **k)

    wrapped.calls = 0
    return wrapped


def _with_batch(fn, batch):
    return lambda *a, **k: fn(*a, **{**k, "batch": batch})


def test_each_source_is_decoded_once_for_every_fused_folder(tmp_path, monkeypatch):
    """Fused folders scored batch by batch together decode each source file once for all of them, in the
    whole slices' pass and in the tumour boxes' (a second pass: twice in all, against four times with two
    folders), with each folder's scores those it gets scored alone."""
    from PIL import Image

    import benchmark.running.evaluate as ev
    from benchmark.data.phantom import make_split

    x1, x2, lab = make_split(5, "val", 4)
    q = lambda x: np.round(x * 255).astype(np.uint8)  # noqa: E731
    for d, arrs in (("a", q(x1)), ("b", q(x2)), ("f", q((x1 + x2) / 2)), ("g", q(np.maximum(x1, x2)))):
        (tmp_path / d).mkdir()
        for i, arr in enumerate(arrs):
            Image.fromarray(arr).save(tmp_path / d / f"s{i}.png")
    (tmp_path / "l").mkdir()
    for i, arr in enumerate(lab.astype(np.uint8)):
        Image.fromarray(arr).save(tmp_path / "l" / f"s{i}.png")
    reads = []
    real = ev.read_image
    monkeypatch.setattr(ev, "read_image", lambda p, colour=False: reads.append(p) or real(p, colour=colour))
    src = ["eval", "--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b"), "--labels", str(tmp_path / "l")]
    src += ["--lineage", "cddfuse", "--metrics", "EN,SSIM", "--workers", "1"]
    assert main([*src, "--fused", f"f={tmp_path / 'f'}", f"g={tmp_path / 'g'}", "--out", str(tmp_path / "o")]) == 0
    per_file = {(os.path.basename(os.path.dirname(p)), os.path.basename(p)): reads.count(p) for p in reads}
    assert len(per_file) == 16 and set(per_file.values()) == {2}, per_file  # a, b, f, g: slices, then boxes
    both = pd.read_csv(tmp_path / "o" / "scores.csv")
    for m in ("f", "g"):
        assert main([*src, "--fused", f"{m}={tmp_path / m}", "--out", str(tmp_path / f"alone_{m}")]) == 0
        alone = pd.read_csv(tmp_path / f"alone_{m}" / "scores.csv")
        pd.testing.assert_frame_equal(both[both.model == m].reset_index(drop=True), alone)


def test_eval_with_labels_scores_each_tumour_box_as_bench_run_does(tmp_path, capsys, monkeypatch):
    """``--labels``: every triple is also scored inside its tumour's box, the box bench run uses
    (labels > 0 dilated by 5 px, a square of at least 48 px); a slice without labels gets no
    tumour row; leaderboard_tumour.* is written, bench table rebuilds it, a rerun gives the same
    file; a missing or wrongly sized label map is one line."""
    from PIL import Image

    from benchmark.data.phantom import make_split
    from benchmark.data.regions import crop, region_groups, tumour_boxes

    x1, x2, lab = make_split(5, "val", 4)
    lab[3] = 0  # no tumour in this slice
    q = lambda x: np.round(x * 255).astype(np.uint8)  # noqa: E731
    fused = (x1 + x2) / 2
    for d, arrs in (("a", q(x1)), ("b", q(x2)), ("f", q(fused)), ("l", lab.astype(np.uint8))):
        (tmp_path / d).mkdir()
        for i, arr in enumerate(arrs):
            Image.fromarray(arr).save(tmp_path / d / f"s{i}.png")
    args = ["eval", "--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b"), "--fused", f"m={tmp_path / 'f'}"]
    assert main([*args, "--labels", str(tmp_path / "l"), "--out", str(tmp_path / "o")]) == 0
    s = pd.read_csv(tmp_path / "o" / "scores.csv")
    assert list(s.columns[:3]) == ["model", "name", "region"]
    inside = s[s.region == "tumour"].set_index("name")
    assert sorted(inside.index) == ["s0", "s1", "s2"]
    t = [torch.from_numpy(q(x).astype(np.float32) / 255)[:, None] for x in (fused, x1, x2)]
    boxes = tumour_boxes(torch.from_numpy(lab))
    for pos in region_groups(boxes).values():  # what the runner scores for its tumour rows
        want = metrics.score(*(crop(x, boxes, pos) for x in t))
        for n, j in enumerate(pos):
            for k, v in want.items():
                assert inside.loc[f"s{j}", k] == pytest.approx(float(v[n]), abs=1e-6), (j, k)
    whole = s[s.region == "slice"].set_index("name")
    assert whole.loc["s0", "Q_SSIM"] != inside.loc["s0", "Q_SSIM"]
    import benchmark  # the Python API's labels: the same rows

    api = benchmark.evaluate(q(fused), q(x1), q(x2), labels=lab)
    assert list(api.columns[:2]) == ["index", "region"] and (api.region == "tumour").sum() == 3
    for region, got in (("tumour", inside), ("slice", whole)):
        part = api[api.region == region].set_index("index")
        for j in part.index:
            for k in metrics.TABLE_ORDER:
                assert part.loc[j, k] == pytest.approx(got.loc[f"s{j}", k], abs=1e-6), (region, j, k)
    flair = benchmark.evaluate(q(fused), q(x1), q(x2), metrics="Q_SSIM", labels=torch.from_numpy(lab > 0))
    assert flair.Q_SSIM.tolist() == pytest.approx(api.Q_SSIM.tolist())  # a boolean tumour mask: the same boxes
    with pytest.raises(ValueError, match=r"labels: shape \(3, 240, 240\); expected \(4, 240, 240\)"):
        benchmark.evaluate(q(fused), q(x1), q(x2), labels=lab[:3])
    written = {p.name: p.read_text() for p in (tmp_path / "o").glob("leaderboard*")}
    assert "leaderboard_tumour.md" in written and "inside the tumour box" in written["leaderboard_tumour.md"]
    assert main(["table", str(tmp_path / "o")]) == 0
    assert {p.name: p.read_text() for p in (tmp_path / "o").glob("leaderboard*")} == written
    before = (tmp_path / "o" / "scores.csv").read_text()
    from benchmark.running import evaluate as ev

    capsys.readouterr()
    with monkeypatch.context() as mp:  # a rerun reuses the tumour boxes' scores too: nothing is scored
        mp.setattr(ev, "_score_batch", lambda *a, **k: pytest.fail("whole slices scored again"))
        mp.setattr(ev, "_score_tumour", lambda *a, **k: pytest.fail("tumour boxes scored again"))
        assert main([*args, "--labels", str(tmp_path / "l"), "--out", str(tmp_path / "o")]) == 0
    assert "reusing 2 of 2 batches (whole slices and tumour boxes)" in capsys.readouterr().err
    assert (tmp_path / "o" / "scores.csv").read_text() == before
    moved = lab[0].copy()  # s0's tumour elsewhere: its box, and only the tumour boxes' batch, change
    moved[:] = 0
    moved[150:200, 150:200] = 1
    Image.fromarray(moved.astype(np.uint8)).save(tmp_path / "l" / "s0.png")
    with monkeypatch.context() as mp:
        mp.setattr(ev, "_score_batch", lambda *a, **k: pytest.fail("whole slices scored again"))
        assert main([*args, "--labels", str(tmp_path / "l"), "--out", str(tmp_path / "o")]) == 0
    assert "reusing 1 of 2 batches" in capsys.readouterr().err
    again = pd.read_csv(tmp_path / "o" / "scores.csv").set_index(["region", "name"])
    box = tumour_boxes(torch.from_numpy(moved)[None])
    want = metrics.score(*(crop(x[:1], box, [0]) for x in t))
    assert again.loc[("tumour", "s0"), "Q_SSIM"] == pytest.approx(float(want["Q_SSIM"][0]), abs=1e-6)
    assert again.loc[("tumour", "s0"), "Q_SSIM"] != inside.loc["s0", "Q_SSIM"]
    assert again.loc[("tumour", "s1"), "Q_SSIM"] == inside.loc["s1", "Q_SSIM"]
    assert again.loc[("slice", "s0"), "Q_SSIM"] == whole.loc["s0", "Q_SSIM"]
    assert len(list((tmp_path / "o" / ".scored").iterdir())) == 2  # the old tumour batch was pruned
    assert main([*args, "--out", str(tmp_path / "o")]) == 0  # without --labels: no tumour table stays behind
    assert sorted(p.name for p in (tmp_path / "o").glob("leaderboard*")) == [
        f"leaderboard.{e}" for e in ("csv", "md", "tex")
    ]
    (tmp_path / "l" / "s2.png").unlink()
    assert main([*args, "--labels", str(tmp_path / "l"), "--out", str(tmp_path / "o2")]) == 2
    assert f"{tmp_path / 'l'}: no label map for s2" in capsys.readouterr().err
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "l" / "s2.png")
    monkeypatch.setattr(ev, "_score_batch", lambda *a, **k: pytest.fail("scored before the labels were checked"))
    assert main([*args, "--labels", str(tmp_path / "l"), "--out", str(tmp_path / "o2")]) == 2
    assert "s2.png is 40x40; expected 240x240 like" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_large_images_are_scored_a_few_at_a_time_with_the_same_scores(tmp_path, triples, monkeypatch):
    """A batch of 16 was scored at once whatever the image size: sixteen 2048 x 2048 triples with
    every lineage would have needed ~60 GB. The batch is now scored in chunks of a pixel budget."""
    from benchmark.running import evaluate as ev

    x1, x2 = triples
    stems = ["a", "b", "c"]
    for name, arr in (("x1", x1), ("x2", x2), ("f", (x1 + x2) / 2)):
        _write(tmp_path / name, stems, arr, "png8")
    args = ["eval", "--x1", str(tmp_path / "x1"), "--x2", str(tmp_path / "x2"), "--fused", str(tmp_path / "f")]
    assert main([*args, "--metrics", "Q_SSIM,Q_P", "--out", str(tmp_path / "whole")]) == 0
    chunks = []
    real = ev.colour_score
    monkeypatch.setattr(ev, "colour_score", lambda *a, **k: chunks.append(k["chunk_size"]) or real(*a, **k))
    monkeypatch.setattr(ev, "EVAL_PIXELS", 2 * 240 * 240 + 1)  # two 240 x 240 images at a time
    assert main([*args, "--metrics", "Q_SSIM,Q_P", "--out", str(tmp_path / "chunked")]) == 0
    assert chunks == [2]
    whole, chunked = (pd.read_csv(tmp_path / d / "scores.csv") for d in ("whole", "chunked"))
    pd.testing.assert_frame_equal(whole, chunked)


def test_captions_count_one_image_in_the_singular(tmp_path, triples):
    """ "mean over 1 validation pairs", "(1 triples, ...)"."""
    import torch

    from benchmark.config import make_config
    from benchmark.running.evaluate import evaluate_folders
    from benchmark.running.runner import caption_for

    assert "(mean over 1 validation pair, data phantom" in caption_for(make_config("smoke"), 1, torch.device("cpu"))
    assert "(mean over 2 validation pairs, data" in caption_for(make_config("smoke"), 2, torch.device("cpu"))
    x1, x2 = triples
    for d, arrays in (("a", x1[:1]), ("b", x2[:1]), ("f", (x1[:1] + x2[:1]) / 2)):
        _write(tmp_path / d, ["p0"], arrays, "png8")
    evaluate_folders(str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "f"), str(tmp_path / "o"), progress=False)
    assert "Fusion metrics of user images (1 triple, metric profile" in (tmp_path / "o" / "leaderboard.md").read_text()
    from benchmark.cli import main

    ablate = ["ablate", "--param", "alpha", "--values", "0.5", "--profile", "smoke", "--n-val", "1", "--epochs", "0"]
    assert main([*ablate, "--out", str(tmp_path / "a"), "--run-name", "r"]) == 0
    table = (tmp_path / "a" / "r" / "ablation_alpha.md").read_text()
    assert "(Table 2 layout; data phantom, profile smoke, 1 validation pair)." in table


def test_fused_folders_are_named_by_the_method(tmp_path):
    """DIR is named by its folder, or by its parent's for RUN/<model>/fused; a name given twice is
    one error naming both folders and the way out (NAME=DIR)."""
    from benchmark.running.evaluate import parse_fused

    run = tmp_path / "run"
    got = parse_fused([str(run / "mean" / "fused"), f"{run / 'deepfuse' / 'fused'}/", "mine=x/fused", "out/own"])
    assert got == {"mean": str(run / "mean" / "fused"), "deepfuse": f"{run / 'deepfuse' / 'fused'}/"} | {
        "mine": "x/fused",
        "own": "out/own",
    }
    with pytest.raises(ValueError, match=r"^--fused b/own: method name 'own' given twice \(also a/own\); name each"):
        parse_fused(["a/own", "b/own"])
    odd = tmp_path / "lr=1e-3" / "fused"  # a folder whose path holds "=": was read as NAME=DIR
    odd.mkdir(parents=True)
    assert parse_fused([str(odd), f"mine={odd}"]) == {"lr=1e-3": str(odd), "mine": str(odd)}


def test_a_run_or_model_folder_as_fused_says_where_the_images_are(tmp_path, capsys):
    """--fused RUN/<model> read the model's samples.npy as an image named "samples" and listed every
    source as unmatched; --fused RUN said "no images". Each is one line naming the folder to give."""
    import shutil

    from benchmark.cli import main

    run = tmp_path / "smoke-phantom"
    assert main(["run", "--models", "mean", "--profile", "smoke", "--out", str(tmp_path), "--save-fused"]) == 0
    src = ["eval", "--x1", str(run / "sources" / "x1"), "--x2", str(run / "sources" / "x2")]
    out = ["--out", str(tmp_path / "ev")]
    capsys.readouterr()
    mean = run / "mean"
    for fused, needle in (
        (mean, f"--fused {mean}: a model folder of a run; its fused images are in {mean / 'fused'}"),
        (run, f"--fused {run}: a run folder; give each model's fused images, {run / '<model>' / 'fused'}"),
    ):
        assert main([*src, "--fused", str(fused), *out]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
    shutil.rmtree(mean / "fused")
    assert main([*src, "--fused", str(mean), *out]) == 2
    assert "which kept no fused images; bench run --save-fused writes them to" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()


def test_one_triple_of_image_files(tmp_path, capsys):
    """--x1, --x2, --fused (and --labels) given as image files score that one triple, named by the
    x1 file, as its folder would score it ("is a file, not a folder of images" before); files mixed
    with folders, or a missing file, are one line each."""
    from benchmark.cli import main

    run = tmp_path / "smoke-phantom"
    assert main(["run", "--models", "mean,max", "--profile", "smoke", "--out", str(tmp_path), "--save-fused"]) == 0
    src = run / "sources"
    capsys.readouterr()
    one = [
        *("eval", "--x1", str(src / "x1" / "00003.png"), "--x2", str(src / "x2" / "00003.png")),
        *("--fused", f"mean={run / 'mean' / 'fused' / '00003.png'}", str(run / "max" / "fused" / "00003.png")),
        *("--labels", str(src / "labels" / "00003.png"), "--out", str(tmp_path / "one")),
    ]
    assert main(one) == 0
    got = pd.read_csv(tmp_path / "one" / "scores.csv")
    assert list(got.model) == ["mean", "mean", "00003", "00003"] and set(got.name) == {3}
    assert "(1 triple, metric profile" in (tmp_path / "one" / "leaderboard.md").read_text()
    whole = pd.read_csv(run / "scores.csv")
    whole = whole[whole["index"] == 3].set_index(["model", "region"])
    for (model, region), row in got.replace({"00003": "max"}).set_index(["model", "region"]).iterrows():
        for c in ("Q_SSIM", "Q_FMI", "Q_NCIE", "Q_XY", "Q_P"):
            assert row[c] == whole.loc[(model, region), c], (model, region, c)
    capsys.readouterr()
    mixed = [*one[:5], "--fused", str(run / "mean" / "fused"), "--out", str(tmp_path / "bad")]
    missing = [*one[:4], str(src / "x1" / "nope.png"), *one[5:8], "--out", str(tmp_path / "bad")]
    for argv, needle in (
        (mixed, f"--fused mean {run / 'mean' / 'fused'}: a folder, while --x1 {one[2]} is one image"),
        (missing, f"--x2 {src / 'x1' / 'nope.png'}: no such image (--x1 is one image, so each input is one)"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()
    digits = [*one[:5], "--fused", one[7], "--out", str(tmp_path / "digits")]  # a method named 00003 alone
    assert main(digits) == 0 and main(["table", str(tmp_path / "digits")]) == 0
    for f in ("leaderboard.md", "leaderboard.csv"):  # its row said "3": the names were read back as numbers
        text = (tmp_path / "digits" / f).read_text()
        assert "00003" in text and "| 3 |" not in text and "\n3," not in text, text
