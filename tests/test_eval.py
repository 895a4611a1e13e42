"""bench eval: score fused images from any software (PNG, 16-bit PNG, TIFF, NumPy, NIfTI), bad folders."""

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
        elif kind == "tif":
            skio.imsave(folder / f"{s}.tif", np.round(a * 255).astype(np.uint8), check_contrast=False)
        elif kind == "npy":
            np.save(folder / f"{s}.npy", a.astype(np.float32))
        elif kind == "nii":
            import nibabel as nib

            nib.save(nib.Nifti1Image(a.astype(np.float32), np.eye(4)), str(folder / f"{s}.nii.gz"))


def test_eval_png_folders_equal_direct_scores(tmp_path, triples):
    x1, x2 = triples
    stems = ["p0", "p1", "p2"]
    mean = np.round((x1 + x2) / 2 * 255) / 255
    _write(tmp_path / "a", stems, x1, "png8")
    _write(tmp_path / "b", stems, x2, "png8")
    _write(tmp_path / "mean", stems, mean, "png8")
    _write(tmp_path / "max", stems, np.maximum(x1, x2), "tif")
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


def _as_read(a, kind):
    """What a file of ``kind`` holds of the float image ``a`` once read back in [0, 1]."""
    if kind in ("png8", "tif"):
        return np.round(a * 255) / 255
    if kind == "png16":
        return np.round(a * 65535) / 65535
    return a.astype(np.float32)


@pytest.mark.parametrize("kind", ["png8", "png16", "tif", "npy", "nii"])
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
