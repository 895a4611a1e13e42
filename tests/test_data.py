"""Phantom determinism and contrasts, HDF5 round trip and errors, the BraTS importer on real layouts."""

import os

import h5py
import numpy as np
import pytest

from benchmark.data import H5Pairs, load_data
from benchmark.data.brats import find_cases, prepare
from benchmark.data.phantom import make_split


def test_phantom_is_deterministic_and_seeded():
    a = make_split(0, "train", 3)
    b = make_split(0, "train", 3)
    for u, v in zip(a, b):
        assert u.tobytes() == v.tobytes()
    c = make_split(1, "train", 3)
    assert a[0].tobytes() != c[0].tobytes()
    v = make_split(0, "val", 3)
    assert a[0].tobytes() != v[0].tobytes()  # separate streams for train and validation


def test_phantom_format_and_contrasts():
    x1s, x2s, labs = make_split(5, "val", 12)
    assert x1s.shape == (12, 240, 240) and x1s.dtype == np.float32 and labs.dtype == np.uint8
    assert x1s.min() == 0.0 and x1s.max() == 1.0 and x2s.min() == 0.0 and x2s.max() == 1.0
    assert set(np.unique(labs)) == {0, 1, 2, 4}
    wm_like = (labs == 0) & (x1s > 0.55)  # bright-on-T1 normal tissue (white matter)
    for x1, x2, lab in zip(x1s, x2s, labs):
        assert (lab == 1).any() and (lab == 2).any() and (lab == 4).any()
        assert x1[lab == 4].mean() > x1[lab == 1].mean() + 0.3  # enhancing rim bright, necrotic core dark on T1-Gd
    assert x2s[labs == 2].mean() > x2s[wm_like].mean() + 0.2  # oedema bright on FLAIR vs white matter
    bg = (x1s == 0) & (x2s == 0)
    assert bg.mean() > 0.3  # skull-stripped: exact-zero background


def _write_authors_h5(path, n=5, seg=True):
    rng = np.random.default_rng(0)
    data = rng.random((n, 4, 32, 32)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["data"] = data
        if seg:
            f["seg"] = rng.integers(0, 3, (n, 32, 32)).astype(np.uint8)
    return data


def test_h5_round_trip_lazy(tmp_path):
    p = tmp_path / "train_data.h5"
    data = _write_authors_h5(p)
    ds = H5Pairs(str(p))
    assert len(ds) == 5
    item = ds[3]
    x1 = (data[3, 2] - data[3, 2].min()) / (data[3, 2].max() - data[3, 2].min())
    np.testing.assert_allclose(item["x1"][0].numpy(), x1, rtol=0, atol=1e-6)
    assert item["x2"].shape == (1, 32, 32) and "labels" in item
    tr, va, info = load_data(f"{p},{p}", n_val=2)
    assert len(tr) == 5 and len(va) == 2


def test_h5_bad_layouts(tmp_path):
    p = tmp_path / "bad.h5"
    with h5py.File(p, "w") as f:
        f["images"] = np.zeros((2, 4, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"no dataset 'data'; found \['images'\]"):
        H5Pairs(str(p))
    with h5py.File(p, "w") as f:
        f["data"] = np.zeros((2, 2, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"has shape \(2, 2, 8, 8\); expected \(N, 4, H, W\)"):
        H5Pairs(str(p))
    with h5py.File(p, "w") as f:
        d = np.random.rand(2, 4, 8, 8).astype(np.float32)
        d[1, 3, 2, 2] = np.nan
        f["data"] = d
    with pytest.raises(ValueError, match="sample 1 contains NaN"):
        H5Pairs(str(p))[1]
    with pytest.raises(ValueError, match="no 'split' dataset"):
        load_data(str(p))
    with h5py.File(p, "a") as f:
        f["split"] = np.array([0, 2], "u1")  # a 2 (a test split?) was silently in neither split
    with pytest.raises(ValueError, match=r"dataset 'split' holds \[2\]; expected 0 \(train\) or 1"):
        load_data(str(p))
    with pytest.raises(FileNotFoundError):
        H5Pairs(str(tmp_path / "missing.h5"))


def test_import_brats2015_layout(shared_data, tmp_path):
    out = tmp_path / "b15.h5"
    s = prepare(str(shared_data / "brats2015-deepmedic"), str(out), progress=False)
    assert s["cases"] == 2 and s["kept"]["train"] > 0 and s["kept"]["val"] > 0
    with h5py.File(out) as f:
        assert f["data"].shape[1:] == (4, 240, 240)
        seg, split, patient = f["seg"][:], f["split"][:], f["patient"][:]
        assert all(((seg[i] == 1).any() and (seg[i] == 2).any()) for i in range(len(seg)))  # labels12 rule
        assert not (seg == 3).any()  # 2015's 3 (non-enhancing) joined label 1
        x = f["data"][0]
        assert x[2].min() == 0 and x[2].max() == 1 and x[3].max() == 1 and not x[:2].any()
    assert not set(patient[split == 0]) & set(patient[split == 1])  # split by patient
    tr, va, _ = load_data(str(out))
    assert len(tr) == s["kept"]["train"] and len(va) == s["kept"]["val"]


def test_validation_patients_are_drawn_among_those_that_kept_slices(shared_data, tmp_path, capsys):
    """The whole shared folder: the 2023 case has no labels and is skipped under labels12. The
    seeded draw over all three patients picked it for validation, leaving the validation split empty
    (bench run then refused the file); the draw is now over the patients that kept slices, and is
    the same draw as before when every patient keeps some."""
    from benchmark.cli import main
    from benchmark.data.brats import _val_patients

    s = prepare(str(shared_data), str(tmp_path / "all.h5"), progress=False)
    assert [x["patient"] for x in s["skipped"]] == ["brats2023-gli-00001-000"]
    assert s["val_patients"] and "brats2023-gli-00001-000" not in s["val_patients"]
    assert s["kept"]["train"] > 0 and s["kept"]["val"] > 0
    tr, va, _ = load_data(str(tmp_path / "all.h5"))
    assert len(tr) == s["kept"]["train"] and len(va) == s["kept"]["val"]
    patients = [f"p{i}" for i in range(20)]  # every patient kept slices: the old draw over all of them
    order = np.random.default_rng(3).permutation(20)
    assert _val_patients(patients, set(patients), 0.12, 3) == {patients[i] for i in order[:2]}
    assert _val_patients(patients, {"p7"}, 0.12, 3) == set()
    assert len(_val_patients(patients[:2], set(patients), 0.9, 0)) == 1  # the training split keeps one (was 0)
    with pytest.raises(ValueError, match="--val-fraction must be between 0 and 1"):
        prepare(str(shared_data), str(tmp_path / "x.h5"), val_fraction=1.5, progress=False)
    with pytest.raises(ValueError, match="--seed -1: expected a whole number from 0"):  # was numpy's, after the import
        prepare(str(shared_data), str(tmp_path / "x.h5"), seed=-1, progress=False)
    with pytest.raises(ValueError, match="unknown --select"):  # the modalities in capitals pass (were refused)
        prepare(str(shared_data), str(tmp_path / "x.h5"), modalities=("T1CE", " Flair"), select="x", progress=False)
    one = shared_data / "brats2015-deepmedic" / "brats_2013_pat0005_1"  # one patient: no validation split, said
    assert main(["data", "prepare", str(one), "--out", str(tmp_path / "one.h5")]) == 0
    assert "one patient kept slices, so the validation split is empty" in capsys.readouterr().err


def test_import_brats2023_layout_without_labels(shared_data, tmp_path):
    root = str(shared_data / "brats2023-gli-00001-000")
    with pytest.raises(ValueError, match="needs labels"):
        prepare(root, str(tmp_path / "x.h5"), progress=False)
    assert not (tmp_path / "x.h5").exists()  # nothing half-written
    s = prepare(root, str(tmp_path / "b23.h5"), select="nonempty", modalities=("t1", "t2"), progress=False)
    assert s["kept"]["train"] > 100 and s["dropped_constant"] > 0  # empty edge slices are dropped and counted
    assert find_cases(root, ("t1", "t2"))[0]["x1"].endswith("-t1n.nii.gz")


def test_import_skips_hidden_files_and_macos_zip_copies(shared_data, tmp_path):
    """A BraTS folder copied from a Mac holds ``._NAME`` AppleDouble files beside each volume and a
    ``__MACOSX`` folder mirroring the tree: both matched the 2018-2023 volume names ("several t1ce
    files match", or a case of garbage). Hidden files and folders are not volumes."""
    want = find_cases(str(shared_data))
    root = tmp_path / "data"
    for d, _, files in os.walk(shared_data):
        rel = os.path.relpath(d, shared_data)
        for where, mirror in ((root / rel, False), (root / "__MACOSX" / rel, True)):
            where.mkdir(parents=True, exist_ok=True)
            for f in files:
                if not mirror:
                    (where / f).symlink_to(os.path.join(d, f))
                (where / f"._{f}").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    for name in ("a_flair.nii.gz", "a_t1ce.nii.gz"):  # a hidden folder's volumes are not a case either
        (root / ".trash" / "a").mkdir(parents=True, exist_ok=True)
        (root / ".trash" / "a" / name).write_bytes(b"")
    got = find_cases(str(root))
    assert len(want) == 3 and [c["patient"] for c in got] == [c["patient"] for c in want]
    for g, w in zip(got, want, strict=True):
        assert {k: os.path.basename(str(v)) for k, v in g.items() if k in ("x1", "x2", "seg", "layout")} == {
            k: os.path.basename(str(v)) for k, v in w.items() if k in ("x1", "x2", "seg", "layout")
        }


def test_import_folder_without_modalities(tmp_path):
    (tmp_path / "case1").mkdir()
    (tmp_path / "case1" / "foo_t1.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="no case folder holds both t1ce"):
        prepare(str(tmp_path), str(tmp_path / "o.h5"), progress=False)


def test_phantom_larger_than_memory_is_refused_before_generation(tmp_path, monkeypatch, capsys):
    """--n-val 100000 on the phantom generated images for an hour, into arrays of 52 GB on a 24 GB
    machine, until the process was killed; it is now one line before any work."""
    from benchmark.cli import main
    from benchmark.data import datasets

    monkeypatch.setattr(datasets, "_memory_available", lambda: 10**9)
    monkeypatch.setattr(datasets.phantom, "make_split", None)  # generating anything would fail loudly
    need = r"64 training \+ 2000 validation pairs .* need 1\.1 GB, more than 80% of the 1\.0 GB"
    with pytest.raises(ValueError, match=need):
        load_data("phantom", n_train=64, n_val=2000)
    monkeypatch.undo()
    out = tmp_path / "results"
    code = main(["run", "--models", "mean", "--profile", "smoke", "--n-val", "100000000", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "need 51840.0 GB" in err and "ask for fewer with --n-train and --n-val" in err
    assert not out.exists()  # nothing partial


def test_a_split_smaller_than_asked_for_is_named(tmp_path, capsys):
    """--n-val 500 on a file with 2 validation slices scored those 2 without a word."""
    from benchmark.cli import main

    p = tmp_path / "small.h5"
    _write_authors_h5(p, n=5)
    with h5py.File(p, "a") as f:
        f["split"] = np.array([0, 0, 0, 1, 1], "u1")
    args = ["run", "--models", "mean", "--profile", "smoke", "--data", str(p), "--out", str(tmp_path / "r")]
    assert main([*args, "--n-val", "500"]) == 0
    out = capsys.readouterr().out
    assert f"note: {p}: n_val 500 asks for more validation pairs than the data holds; all 2 are used" in out
    assert "n_train" not in out  # the profile's 16 > 3 training slices, but mean trains nothing
    assert main([*args, "--models", "deepfuse", "--epochs", "0", "--run-name", "t"]) == 0
    out = capsys.readouterr().out
    assert "n_train 16 asks for more training pairs than the data holds; all 3 are used" in out
    assert "n_val 8 asks for more validation pairs than the data holds; all 2 are used" in out  # the profile's
    ablate = ["ablate", "--param", "alpha", "--values", "0.5", "--profile", "smoke", "--data", str(p), "--epochs", "0"]
    assert main([*ablate, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "n_train 16 asks for more training pairs" in out and "n_val 8 asks for more validation pairs" in out


def test_data_specs_with_a_comma_in_a_file_name_a_folder_or_an_empty_part(tmp_path):
    """A file named "my,data.h5" was split into "my" and "data.h5"; a folder named x.h5 gave
    h5py's error over two lines; "a.h5," said "HDF5 file not found: " (an empty name)."""
    p = tmp_path / "my,data.h5"
    _write_authors_h5(p, n=5)
    with h5py.File(p, "a") as f:
        f["split"] = np.array([0, 0, 0, 1, 1], "u1")
    tr, va, info = load_data(str(p))
    assert (len(tr), len(va)) == (3, 2) and list(info["files"]) == [str(p)]
    (tmp_path / "dir.h5").mkdir()
    with pytest.raises(ValueError, match=r"dir\.h5: a folder; expected an HDF5 file \(bench data prepare"):
        load_data(str(tmp_path / "dir.h5"))
    (tmp_path / "text.h5").write_text("not HDF5")
    with pytest.raises(ValueError, match="not a readable HDF5 file") as e:
        load_data(str(tmp_path / "text.h5"))
    assert "\n" not in str(e.value)
    plain = tmp_path / "plain.h5"
    _write_authors_h5(plain, n=2)
    for spec in (f"{plain},", f",{plain}"):
        with pytest.raises(ValueError, match="a file name is empty; expected TRAIN.h5,VAL.h5"):
            load_data(spec)


@pytest.mark.parametrize("bits", [8, 16])
def test_integer_images_read_as_every_value_divided_in_float64(tmp_path, bits):
    """An 8- or 16-bit image is read as float32 values in [0, 1] equal, for every value the type holds, to the
    value divided by 255 (65,535) in float64 and rounded to float32 (the reader divides in float32: the same
    numbers, without a float64 copy of every image)."""
    from PIL import Image

    from benchmark.data.imageio import read_image

    top = 2**bits - 1
    values = np.arange(top + 1, dtype=np.uint8 if bits == 8 else np.uint16)
    side = 16 if bits == 8 else 256
    path = str(tmp_path / "all.png")
    Image.fromarray(values.reshape(side, side)).save(path)  # mode L, or I;16: a 16-bit PNG
    got = read_image(path)
    assert got.dtype == np.float32
    assert np.array_equal(got.ravel(), (np.arange(top + 1) / float(top)).astype(np.float32))
