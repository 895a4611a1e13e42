"""``bench data prepare``: import BraTS NIfTI volumes into the authors' HDF5 layout.

File names of three BraTS generations are recognised (case-sensitive, per file basename):

========  ==================  ==================  =================  ================
modality  2015                2018-2021           2023+              labels
========  ==================  ==================  =================  ================
t1        ``T1*`` / ``MR_T1`` ``*_t1.nii*``       ``*-t1n.nii*``
t1ce      ``T1c*`` /``MR_T1c````*_t1ce.nii*``     ``*-t1c.nii*``
t2        ``T2*`` / ``MR_T2`` ``*_t2.nii*``       ``*-t2w.nii*``
flair     ``Flair*``          ``*_flair.nii*``    ``*-t2f.nii*``
seg       ``OTMultiClass*``   ``*_seg.nii*``      ``*-seg.nii*``
========  ==================  ==================  =================  ================

Labels are mapped to the BraTS 2018 convention (1 necrotic / non-enhancing core, 2 oedema,
4 enhancing): 2015's 3 (non-enhancing) becomes 1, 2023's 3 (enhancing) becomes 4.
Axial slices (last array axis) are selected by ``select``: ``labels12`` (default; the slice holds
label 1 and label 2, docs/reference.md §1), ``tumour`` (any label), ``nonempty`` (any non-constant slice; for
cases without labels). Each kept image is min-max normalised to [0, 1] over the slice; slices that
are constant in either modality are dropped and counted (the reference code divides by zero on
them). Patients are split into train/validation with a seeded shuffle, so no patient is in both.
Output: ``data`` (N, 4, H, W) float32 with channel 2 = first modality (x1) and channel 3 = second
(x2), channels 0-1 zero as in the authors' files; ``seg`` (N, H, W) uint8; ``split`` (0 train,
1 validation); ``patient`` and ``slice`` per row.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np

MODALITIES = ("t1", "t1ce", "t2", "flair")
PATTERNS = {
    "t1": [r"^T1[_.]", r"MR_T1\.", r"_t1\.nii", r"-t1n\.nii"],
    "t1ce": [r"^T1c[_.]", r"MR_T1c\.", r"_t1ce\.nii", r"-t1c\.nii"],
    "t2": [r"^T2[_.]", r"MR_T2\.", r"_t2\.nii", r"-t2w\.nii"],
    "flair": [r"^Flair[_.]", r"MR_Flair\.", r"_flair\.nii", r"-t2f\.nii"],
    "seg": [r"^OTMultiClass", r"^OT[_.]", r"_seg\.nii", r"-seg\.nii"],
}
SELECT = ("labels12", "tumour", "nonempty")


def _match(name: str, kind: str) -> bool:
    # hidden files are not volumes: macOS writes a ._NAME beside each file on foreign disks and in zips
    return (
        name.endswith((".nii", ".nii.gz"))
        and not name.startswith(".")
        and any(re.search(p, name) for p in PATTERNS[kind])
    )


def find_cases(root: str, modalities=("t1ce", "flair"), skipped: list | None = None) -> list[dict]:
    """Case folders under ``root`` holding both modalities: ``[{"patient", "x1", "x2", "seg", "layout"}]``.
    A folder with only one of them is appended to ``skipped`` (``{"patient", "reason"}``)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"BraTS folder not found: {root}")
    cases = []
    for d, _, files in sorted(os.walk(root, followlinks=True)):
        parts = os.path.relpath(d, root).split(os.sep)
        if any(p != "." and (p.startswith(".") or p == "__MACOSX") for p in parts):
            continue  # hidden folders, and the metadata copies a macOS zip holds
        found = {}
        for kind in (*modalities, "seg"):
            hits = sorted(f for f in files if _match(f, kind))
            if len(hits) > 1:
                raise ValueError(f"{d}: several {kind} files match ({', '.join(hits)}); expected one per case")
            if hits:
                found[kind] = os.path.join(d, hits[0])
        if skipped is not None and any(m in found for m in modalities) and not all(m in found for m in modalities):
            missing = [m for m in modalities if m not in found]
            skipped.append({"patient": os.path.basename(d), "reason": f"no {' or '.join(missing)} file in {d}"})
        if all(m in found for m in modalities):
            seg = found.get("seg")
            layout = (
                "2015"
                if seg and os.path.basename(seg).startswith("OT")
                else "2023"
                if seg and seg.endswith(("-seg.nii", "-seg.nii.gz"))
                else "2018"
            )
            cases.append(
                {
                    "patient": os.path.basename(d),
                    "x1": found[modalities[0]],
                    "x2": found[modalities[1]],
                    "seg": seg,
                    "layout": layout,
                }
            )
    if not cases:
        want = " and ".join(f"{m} ({', '.join(PATTERNS[m])})" for m in modalities)
        raise ValueError(
            f"{root}: no case folder holds both {want}; BraTS 2015 (T1c*, Flair*), 2018-2021 (*_t1ce, *_flair) "
            "and 2023+ (*-t1c, *-t2f) names are recognised"
        )
    return cases


# The label values each release uses (0 = background); anything else means a wrong or damaged file.
RELEASE_LABELS = {"2015": {0, 1, 2, 3, 4}, "2018": {0, 1, 2, 4}, "2023": {0, 1, 2, 3}}


def _labels(seg: np.ndarray, layout: str, path: str = "labels") -> np.ndarray:
    values = set(np.unique(seg).tolist())
    extra = sorted(values - RELEASE_LABELS[layout])
    if extra:
        want = ", ".join(map(str, sorted(RELEASE_LABELS[layout])))
        raise ValueError(f"{path}: label values {extra[:10]} are not BraTS {layout} labels; expected {{{want}}}")
    seg = np.rint(seg).astype(np.uint8)
    if layout == "2015":
        seg[seg == 3] = 1  # non-enhancing core joins the necrotic / non-enhancing core label
    elif layout == "2023":
        seg[seg == 3] = 4  # 2023 enhancing tumour
    return seg


def _keep(labels: np.ndarray | None, select: str) -> bool:
    if select == "nonempty":
        return True
    if labels is None:
        raise ValueError(f"--select {select} needs label files; this case has none (use --select nonempty)")
    if select == "labels12":
        return bool((labels == 1).any() and (labels == 2).any())
    return bool((labels > 0).any())


def _check_output(out: str, out_dir: str) -> None:
    if os.path.isdir(out):
        raise ValueError(f"--out {out}: is a folder; expected a file name, e.g. {os.path.join(out, 'brats.h5')}")
    if not out.lower().endswith((".h5", ".hdf5")):  # bench run --data FILE takes these; any other name was
        raise ValueError(f"--out {out}: expected a file name ending in .h5 or .hdf5")  # overwritten, notes.txt too
    import h5py

    if os.path.isfile(out) and not h5py.is_hdf5(out):  # an HDF5 file is replaced, nothing else
        raise ValueError(f"--out {out}: exists and is not an HDF5 file; expected a new file or an HDF5 one")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(
            f"--out {out}: {out_dir} is a file, not a folder; expected a writable folder for {os.path.basename(out)}"
        )
    try:
        os.makedirs(out_dir, exist_ok=True)
        probe = os.path.join(out_dir, f".{os.path.basename(out)}.{os.getpid()}.probe")
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as e:
        raise ValueError(
            f"--out {out}: cannot write in {out_dir} ({e.strerror or e}); expected a writable folder"
        ) from None


def _read(path: str, nib) -> np.ndarray:
    try:
        return np.asarray(nib.load(path).dataobj)
    except Exception as e:  # truncated or not NIfTI: name the file
        first = str(e).splitlines()[0][:120] if str(e) else ""
        raise ValueError(f"{path}: unreadable ({type(e).__name__}: {first}); expected a NIfTI volume") from None


def _read_case(case: dict, nib):
    """(x1, x2) float32 volumes and the mapped labels (or None) of one case; ValueError names the file."""
    vols = []
    for key in ("x1", "x2"):
        v = _read(case[key], nib).astype(np.float32)
        if v.ndim != 3:
            raise ValueError(f"{case[key]}: volume has shape {v.shape}; expected 3-D (H, W, slices)")
        vols.append(v)
    if vols[0].shape != vols[1].shape:
        raise ValueError(f"{case['x2']}: shape {vols[1].shape}; expected {vols[0].shape} like {case['x1']}")
    seg = _labels(_read(case["seg"], nib), case["layout"], case["seg"]) if case["seg"] else None
    if seg is not None and seg.shape != vols[0].shape:
        raise ValueError(f"{case['seg']}: labels have shape {seg.shape}; expected {vols[0].shape} like the images")
    return vols, seg


def _val_patients(patients: list[str], kept: set[str], val_fraction: float, seed: int) -> set[str]:
    """The validation patients: a seeded shuffle of the patients that kept at least one slice (a
    patient skipped or with no selected slice cannot hold the validation split), about
    ``val_fraction`` of them, at least one and at most all but one when two or more kept slices.
    When every patient kept slices this is the same draw as over all of them."""
    kept_in_order = [p for p in patients if p in kept]
    order = np.random.default_rng(seed).permutation(len(kept_in_order))
    n = len(kept_in_order)
    n_val = min(max(1, int(round(val_fraction * n))), n - 1) if n > 1 else 0  # both splits keep a patient
    return {kept_in_order[i] for i in order[:n_val]}


# What the import leaves free on the disk: HDF5 writes its chunk caches and metadata when the file closes,
# and a close that fails for a full disk leaves an ID that segfaults the process when it is freed
# (h5py issues 914 and 2160; seen here on a full tmpfs). A BraTS slice's row is 4 x 240 x 240 float32, 0.9 MiB.
_KEEP_FREE = 32 << 20


def _check_space(out_dir: str, out: str) -> None:
    """Stop the import with one clear line before the disk is full (see ``_KEEP_FREE``)."""
    total, _, free = shutil.disk_usage(out_dir)
    if free < _KEEP_FREE and total:  # a file system that tells no sizes (total 0: some FUSE mounts) is trusted
        raise OSError(
            f"could not write {out}: {free / 2**20:.1f} MiB left on the device of {out_dir}; the import stops "
            f"{_KEEP_FREE >> 20} MiB short of a full disk. Free some space (or choose another --out) and run it again"
        )


def prepare(
    root: str,
    out: str,
    modalities=("t1ce", "flair"),
    select: str = "labels12",
    val_fraction: float = 0.12,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Import every case under ``root`` into ``out`` (HDF5, written atomically); returns a summary dict."""
    import h5py
    import nibabel as nib
    from tqdm.auto import tqdm

    modalities = tuple(m.strip().lower() if isinstance(m, str) else m for m in modalities)  # T1CE,FLAIR too
    if len(modalities) != 2 or any(m not in MODALITIES for m in modalities) or modalities[0] == modalities[1]:
        raise ValueError(f"modalities must be two different names of {', '.join(MODALITIES)}; got {modalities}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"--val-fraction must be between 0 and 1 (a fraction of the patients); got {val_fraction}")
    if select not in SELECT:
        raise ValueError(f"unknown --select {select!r}; expected one of {', '.join(SELECT)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:  # numpy's rule, checked
        raise ValueError(f"--seed {seed!r}: expected a whole number from 0 to {2**32 - 1}")  # before the import
    out_dir = os.path.dirname(os.path.abspath(out))
    _check_output(out, out_dir)  # before any import work
    skipped: list[dict] = []
    cases = find_cases(root, modalities, skipped)

    tmp = os.path.join(out_dir, f".{os.path.basename(out)}.{os.getpid()}.tmp")
    summary = {
        "cases": len(cases),
        "patients_found": len(cases) + len(skipped),  # the folders find_cases skipped (a missing file) too
        "modalities": list(modalities),
        "select": select,
        "kept": {"train": 0, "val": 0},
        "patients": {"train": 0, "val": 0},
        "dropped_constant": 0,
        "not_selected": 0,
        "val_patients": [],
        "skipped": skipped,
    }
    try:
        with h5py.File(tmp, "w") as f:
            data = shape = None
            rows = []
            for case in tqdm(cases, desc="import", disable=not progress):
                try:
                    vols, seg = _read_case(case, nib)
                except ValueError as e:  # one bad patient is listed and skipped, not fatal
                    skipped.append({"patient": case["patient"], "reason": str(e)})
                    continue
                if seg is None and select != "nonempty":
                    reason = f"no label file; --select {select} needs labels (use --select nonempty)"
                    skipped.append({"patient": case["patient"], "reason": reason})
                    continue
                if shape is None:
                    shape = vols[0].shape[:2]
                    data = f.create_dataset(
                        "data",
                        shape=(0, 4, *shape),
                        maxshape=(None, 4, *shape),
                        dtype="f4",
                        chunks=(1, 4, *shape),
                        compression="gzip",
                        compression_opts=4,
                    )
                    segds = f.create_dataset(
                        "seg",
                        shape=(0, *shape),
                        maxshape=(None, *shape),
                        dtype="u1",
                        chunks=(1, *shape),
                        compression="gzip",
                    )
                elif vols[0].shape[:2] != shape:
                    raise ValueError(
                        f"{case['x1']}: slices are {vols[0].shape[:2]}; expected {shape} like the first case"
                    )
                for z in range(vols[0].shape[2]):
                    lab = seg[:, :, z] if seg is not None else None
                    if not _keep(lab, select):
                        summary["not_selected"] += 1
                        continue
                    pair = [vols[0][:, :, z], vols[1][:, :, z]]
                    if not all(np.isfinite(p).all() for p in pair):
                        raise ValueError(f"{case['patient']}: slice {z} contains NaN or Inf")
                    if any(p.max() == p.min() for p in pair):
                        summary["dropped_constant"] += 1
                        continue
                    _check_space(out_dir, out)
                    n = data.shape[0]
                    data.resize(n + 1, axis=0)
                    segds.resize(n + 1, axis=0)
                    block = np.zeros((4, *shape), np.float32)
                    for c, p in enumerate(pair):
                        block[2 + c] = (p - p.min()) / (p.max() - p.min())
                    data[n] = block
                    segds[n] = lab if lab is not None else 0
                    rows.append((case["patient"], z))
            if not rows:
                why = "; ".join(f"{s['patient']}: {s['reason']}" for s in skipped[:5])
                raise ValueError(
                    f"{root}: no slice passed --select {select} (dropped {summary['dropped_constant']} constant slices"
                    + (f"; skipped {len(skipped)} patient(s): {why}" if skipped else "")
                    + ")"
                )
            f.create_dataset("patient", data=np.array([r[0] for r in rows], dtype="S"))
            f.create_dataset("slice", data=np.array([r[1] for r in rows], dtype="i4"))
            val_patients = _val_patients([c["patient"] for c in cases], {r[0] for r in rows}, val_fraction, seed)
            split = np.array([r[0] in val_patients for r in rows], dtype="u1")
            f.create_dataset("split", data=split)
            summary["kept"] = {"train": int((split == 0).sum()), "val": int(split.sum())}
            kept = {r[0] for r in rows}  # the patients that kept slices, per split
            summary["patients"] = {"train": len(kept - val_patients), "val": len(kept & val_patients)}
            summary["val_patients"] = sorted(val_patients)
            f.attrs["channels"] = json.dumps({"2": modalities[0], "3": modalities[1]})
            f.attrs["summary"] = json.dumps(summary)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return summary
