"""Pair datasets: each item is ``{"x1": (1,H,W), "x2": (1,H,W), "labels": (H,W) uint8 or absent, "index": i}``.

x1 = T1-Gd, x2 = FLAIR, float32 in [0, 1]. ``load_data`` turns a ``--data`` spec into
(train, validation) datasets: ``phantom`` (embedded default), ``FILE.h5`` (a file written by
``bench data prepare``, with a ``split`` dataset), or ``TRAIN.h5,VAL.h5`` (the authors' pair of files).
"""

from __future__ import annotations

import contextlib
import hashlib
import os

import numpy as np
import torch

from benchmark.data import phantom


class ArrayPairs(torch.utils.data.Dataset):
    """In-memory pairs (N, H, W) with optional labels."""

    def __init__(self, x1: np.ndarray, x2: np.ndarray, labels: np.ndarray | None = None, name: str = "arrays"):
        if x1.shape != x2.shape:
            raise ValueError(f"{name}: x2 has shape {x2.shape}; expected {x1.shape} like x1")
        self.x1, self.x2, self.labels, self.name = x1, x2, labels, name

    def __len__(self):
        return len(self.x1)

    def __getitem__(self, i):
        item = {
            "x1": torch.from_numpy(np.ascontiguousarray(self.x1[i]))[None],
            "x2": torch.from_numpy(np.ascontiguousarray(self.x2[i]))[None],
            "index": i,
        }
        if self.labels is not None:
            item["labels"] = torch.from_numpy(np.ascontiguousarray(self.labels[i]))
        return item


def _cache_dir() -> str:
    return os.environ.get("FUSIONBENCH_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "fusionbench"))


def phantom_identity() -> dict:
    """What the phantom images depend on besides (seed, split, n): the generator's source and the
    nilearn release whose template it reads. In the cache key and in a run's data fingerprint, so an
    edited generator never serves stale images or reuses models trained on the old ones."""
    from importlib import metadata

    from benchmark.provenance import files_sha

    try:
        nilearn = metadata.version("nilearn")
    except metadata.PackageNotFoundError:
        nilearn = None
    return {"code": files_sha([phantom.__file__]), "nilearn": nilearn}


def phantom_split(seed: int, split: str, n: int, cache: bool = True) -> ArrayPairs:
    """The phantom split as an in-memory dataset, cached on disk (it is deterministic)."""
    ident = phantom_identity()
    key = hashlib.sha1(f"phantom-v1-{seed}-{split}-{n}-{ident['code']}-{ident['nilearn']}".encode()).hexdigest()[:16]
    path = os.path.join(_cache_dir(), f"phantom-{split}-{n}-{key}.npz")
    if cache and os.path.exists(path):
        try:
            with np.load(path) as z:
                return ArrayPairs(z["x1"], z["x2"], z["labels"], name=f"phantom/{split}")
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is rebuilt below
    x1, x2, lab = phantom.make_split(seed, split, n, progress=n >= 64)
    if cache:
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            np.savez(tmp, x1=x1, x2=x2, labels=lab)
            os.replace(tmp, path)
        except OSError:  # caching is an optimisation only; a full disk keeps no partial file
            with contextlib.suppress(OSError):
                os.remove(tmp)
    return ArrayPairs(x1, x2, lab, name=f"phantom/{split}")


class H5Pairs(torch.utils.data.Dataset):
    """Lazy reader of the authors' HDF5 layout: dataset ``data`` (N, C>=4, H, W), x1 = channel 2, x2 = channel 3.

    Only the requested slices are read; ``indices`` selects rows (e.g. one split). Each image is
    min-max normalised to [0, 1] on read (a no-op for the authors' files, which are already
    normalised; a constant image becomes zeros). Optional ``seg`` (N, H, W) labels.
    """

    def __init__(self, path: str, indices=None, name: str | None = None):
        import h5py

        self.path = path
        self.name = name or os.path.basename(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"HDF5 file not found: {path}")
        if os.path.isdir(path):
            raise ValueError(
                f"{path}: a folder; expected an HDF5 file (bench data prepare writes one from a folder of BraTS "
                "volumes)"
            )
        try:
            f = h5py.File(path, "r")
        except OSError as e:  # h5py's text runs over several lines: its first says what failed
            raise ValueError(f"{path}: not a readable HDF5 file ({str(e).splitlines()[0]})") from None
        with f:
            if "data" not in f:
                raise ValueError(
                    f"{path}: no dataset 'data'; found {sorted(f.keys())}. Expected 'data' of shape (N, 4, H, "
                    "W) with channel 2 = T1-Gd and channel 3 = FLAIR"
                )
            shape = f["data"].shape
            if len(shape) != 4 or shape[1] < 4:
                raise ValueError(
                    f"{path}: dataset 'data' has shape {shape}; expected (N, 4, H, W) with channel 2 = T1-Gd "
                    "and channel 3 = FLAIR"
                )
            self.shape = shape
            self.has_labels = "seg" in f
            if self.has_labels and tuple(f["seg"].shape) != (shape[0],) + tuple(shape[2:]):
                raise ValueError(
                    f"{path}: dataset 'seg' has shape {tuple(f['seg'].shape)}; "
                    f"expected {(shape[0],) + tuple(shape[2:])} "
                    "(one label map per slice of 'data')"
                )
            self.split = np.asarray(f["split"]) if "split" in f else None
            if self.split is not None and self.split.shape != (shape[0],):
                raise ValueError(
                    f"{path}: dataset 'split' has shape {self.split.shape}; expected ({shape[0]},) "
                    "(0 = train, 1 = validation for each slice of 'data')"
                )
            if self.split is not None and not np.isin(self.split, (0, 1)).all():
                odd = sorted({v.item() for v in np.unique(self.split)} - {0, 1})[:5]
                raise ValueError(
                    f"{path}: dataset 'split' holds {odd}; expected 0 (train) or 1 (validation) for each slice"
                )
        self.indices = np.arange(shape[0]) if indices is None else np.asarray(indices)
        self._file = None

    def __len__(self):
        return len(self.indices)

    def _h5(self):
        if self._file is None:  # opened lazily, once per worker process
            import h5py

            self._file = h5py.File(self.path, "r")
        return self._file

    def __getitem__(self, i):
        row = int(self.indices[i])
        f = self._h5()
        pair = np.asarray(f["data"][row, 2:4], dtype=np.float32)
        if not np.isfinite(pair).all():
            raise ValueError(f"{self.path}: sample {row} contains NaN or Inf; expected finite images")
        for c in range(2):
            lo, hi = float(pair[c].min()), float(pair[c].max())
            pair[c] = (pair[c] - lo) / (hi - lo) if hi > lo else 0.0
        item = {"x1": torch.from_numpy(pair[0:1].copy()), "x2": torch.from_numpy(pair[1:2].copy()), "index": i}
        if self.has_labels:
            item["labels"] = torch.from_numpy(np.asarray(f["seg"][row], dtype=np.uint8))
        return item

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_file"] = None
        return d


_WHOLE = 256 << 20  # files up to this size are hashed whole
_BLOCK = 1 << 16


def file_identity(path: str) -> dict:
    """What a run depends on in an HDF5 file, apart from its name and timestamps: its size and a
    SHA-256 of its bytes; above 256 MiB, of 1,024 evenly spaced 64 KiB blocks (64 MiB read) plus
    the small datasets that choose the slices (``split``, ``patient``, ``slice``) and the file's
    attributes. A file written again with other slices, modalities or split therefore trains and
    scores again, while a copied or touched one is reused."""
    from benchmark.provenance import file_sha256

    size = os.path.getsize(path)
    if size <= _WHOLE:
        return {"size": size, "sha256": file_sha256(path)}
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for k in range(1024):
            fh.seek((size - _BLOCK) * k // 1023)
            h.update(fh.read(_BLOCK))
    import h5py

    with h5py.File(path, "r") as f:
        for name in ("split", "patient", "slice"):
            if name in f:
                h.update(np.ascontiguousarray(f[name][()]).tobytes())
        for k in sorted(f.attrs):
            h.update(f"{k}={f.attrs[k]}".encode())
    return {"size": size, "sha256_sampled": h.hexdigest()}


def _memory_available() -> int | None:
    """Bytes of memory this machine can still give (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


# The phantom splits live in memory (x1 and x2 float32, labels uint8): more than this share of the
# memory left leaves too little for the nets, and the process would be killed an hour into generation.
PHANTOM_MEMORY_SHARE = 0.8


def _check_phantom_memory(n_train: int, n_val: int) -> None:
    need = (n_train + n_val) * phantom.SIZE * phantom.SIZE * (4 + 4 + 1)
    have = _memory_available()
    if have is not None and need > PHANTOM_MEMORY_SHARE * have:
        raise ValueError(
            f"phantom: {n_train} training + {n_val} validation pairs of {phantom.SIZE}x{phantom.SIZE} are held in "
            f"memory and need {need / 1e9:.1f} GB, more than {PHANTOM_MEMORY_SHARE:.0%} of the {have / 1e9:.1f} GB "
            "this machine has available; ask for fewer with --n-train and --n-val"
        )


def size_notes(spec: str, n_train: int | None, n_val: int | None, train_ds, val_ds) -> list[str]:
    """One line for each split that holds fewer pairs than asked for (``--n-val 500`` on a file with
    120 validation slices scores those 120): a table over fewer images than meant should say so."""
    return [
        f"{spec}: {field} {n} asks for more {what} pairs than the data holds; all {len(ds)} are used"
        for field, n, what, ds in (("n_train", n_train, "training", train_ds), ("n_val", n_val, "validation", val_ds))
        if n is not None and n > len(ds)
    ]


def _first(ds, n):
    if n is None or n >= len(ds):
        return ds
    return torch.utils.data.Subset(ds, range(n))


def load_data(
    spec: str,
    seed: int = 0,
    n_train: int | None = None,
    n_val: int | None = None,
    phantom_train: int = 512,
    phantom_val: int = 128,
):
    """(train, val, description) for a ``--data`` spec; ``n_train``/``n_val`` take the first n of each split."""
    if spec == "phantom":
        nt = phantom_train if n_train is None else n_train
        nv = phantom_val if n_val is None else n_val
        _check_phantom_memory(nt, nv)
        return (
            phantom_split(seed, "train", nt),
            phantom_split(seed, "val", nv),
            {
                "data": "phantom",
                "seed": seed,
                "n_train": nt,
                "n_val": nv,
                "size": [phantom.SIZE, phantom.SIZE],
                "generator": phantom_identity(),
            },
        )
    parts = [spec] if os.path.isfile(spec) else spec.split(",")  # a file named "a,b.h5" is one file
    if len(parts) == 2 and not all(p.strip() for p in parts):
        raise ValueError(f"--data {spec!r}: a file name is empty; expected TRAIN.h5,VAL.h5")
    if len(parts) == 2:
        tr, va = H5Pairs(parts[0]), H5Pairs(parts[1])
    elif len(parts) == 1 and spec.endswith((".h5", ".hdf5")):
        full = H5Pairs(spec)
        if full.split is None:
            raise ValueError(
                f"{spec}: no 'split' dataset; give the train and validation files as TRAIN.h5,VAL.h5 or write "
                "the file with 'bench data prepare'"
            )
        tr = H5Pairs(spec, np.nonzero(full.split == 0)[0], name=f"{full.name}/train")
        va = H5Pairs(spec, np.nonzero(full.split == 1)[0], name=f"{full.name}/val")
    else:
        raise ValueError(
            f"unknown data {spec!r}; expected 'phantom', FILE.h5 (from 'bench data prepare') or TRAIN.h5,VAL.h5"
        )
    tr, va = _first(tr, n_train), _first(va, n_val)
    files = {p: file_identity(p) for p in dict.fromkeys(parts)}  # the contents, not only the names
    return tr, va, {"data": spec, "seed": seed, "n_train": len(tr), "n_val": len(va), "files": files}
