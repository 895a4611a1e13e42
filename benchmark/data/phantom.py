"""``phantom``: the embedded default dataset, procedurally generated BraTS-like slice pairs.

Anatomy comes from real axial slices of the MNI ICBM152 2009a template (1 mm, skull-stripped T1
and grey/white-matter probability maps) that nilearn ships inside its package, read offline with
nibabel (no download, no file from outside the installed packages). On top of each slice, drawn
from ``(seed, split, index)``: an in-plane pose (rotation, scaling, shift, left-right flip) into a
240x240 canvas; tissue contrasts (x1 T1-Gd-like: white > grey matter > CSF; x2 FLAIR-like:
grey > white matter, CSF dark); a tumour with a necrotic core (label 1, dark on T1-Gd), an
enhancing rim (label 4, bright on T1-Gd) and oedema around it (label 2, bright on FLAIR, faint on
T1-Gd), with an irregular outline; smooth texture, a smooth multiplicative bias field per
modality and Rician noise inside the brain; the background stays exactly 0 as in skull-stripped
BraTS. Each image is min-max normalised to [0, 1] (float32), like the paper's preprocessing.

The same ``(seed, split, index)`` always gives the same bytes; train and validation pairs are
drawn from separate streams.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
from scipy import ndimage

SIZE = 240
_Z_RANGE = (52, 124)  # axial MNI slices with a large brain section (mm index in the 1 mm template)
_SPLIT_STREAM = {"train": 0, "val": 1}


def _template_dir() -> str:
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the phantom dataset needs nilearn's bundled MNI152 template: pip install nilearn")
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")


@functools.lru_cache(maxsize=1)
def _template_slices():
    """(t1, gm, wm) axial slices in _Z_RANGE as float32 arrays (Z, 233, 197), rows anterior->posterior."""
    import nibabel as nib

    d = _template_dir()
    out = []
    for kind in ("t1", "gm", "wm"):
        path = os.path.join(d, f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz")
        if not os.path.exists(path):
            raise RuntimeError(f"MNI152 template file not found: {path} (nilearn installation incomplete?)")
        vol = np.asarray(nib.load(path).dataobj)[:, :, _Z_RANGE[0] : _Z_RANGE[1]].astype(np.float32) / 255.0
        out.append(np.ascontiguousarray(np.rot90(vol, k=1, axes=(0, 1)).transpose(2, 0, 1)))
    return tuple(out)


def _smooth_noise(rng: np.random.Generator, grid: int, amplitude: float = 1.0) -> np.ndarray:
    """Smooth random field on the canvas: a coarse Gaussian grid upsampled with cubic splines."""
    coarse = rng.standard_normal((grid, grid)).astype(np.float32)
    return amplitude * ndimage.zoom(coarse, SIZE / grid, order=3, mode="reflect")[:SIZE, :SIZE]


def _pose(rng: np.random.Generator, shape):
    """Affine (matrix, offset) mapping canvas pixels to template-slice pixels for one random pose."""
    ang = np.deg2rad(rng.uniform(-12, 12))
    scale = rng.uniform(0.88, 1.08) * np.array([rng.uniform(0.95, 1.05), rng.uniform(0.95, 1.05)])
    flip = -1.0 if rng.random() < 0.5 else 1.0
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    mat = rot @ np.diag([1 / scale[0], flip / scale[1]])
    shift = rng.uniform(-10, 10, size=2)
    centre_in = (np.array(shape) - 1) / 2
    centre_out = np.array([SIZE - 1, SIZE - 1]) / 2 + shift
    return mat, centre_in - mat @ centre_out


def _tumour(rng: np.random.Generator, inside: np.ndarray):
    """Soft masks (core, rim, oedema) and BraTS labels of one irregular tumour inside the brain."""
    ys, xs = np.nonzero(inside)
    k = rng.integers(len(ys))
    cy, cx = ys[k], xs[k]
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    theta = np.arctan2(dy, dx)
    a = rng.uniform(0, np.pi)
    aspect = rng.uniform(0.7, 1.0)
    u = dx * np.cos(a) + dy * np.sin(a)
    v = (-dx * np.sin(a) + dy * np.cos(a)) / aspect
    r = np.sqrt(u * u + v * v)
    wobble = sum(rng.normal(0, 0.12 / h) * np.cos(h * theta + rng.uniform(0, 2 * np.pi)) for h in range(2, 6))
    r = r / (1 + wobble)
    r_oed = rng.uniform(16, 34)
    r_rim = r_oed * rng.uniform(0.38, 0.6)
    r_core = r_rim * rng.uniform(0.45, 0.7)
    oed_wobble = 1 + 0.25 * _smooth_noise(rng, 8)
    labels = np.zeros((SIZE, SIZE), np.uint8)
    labels[(r < r_oed * oed_wobble) & inside] = 2
    labels[r < r_rim] = 4
    labels[r < r_core] = 1
    soft = {v: ndimage.gaussian_filter((labels == v).astype(np.float32), 0.8) for v in (1, 2, 4)}
    return soft, labels


def make_pair(seed: int, split: str, index: int):
    """One phantom pair ``(x1, x2, labels)``: float32 (240, 240) T1-Gd-like and FLAIR-like in [0, 1], uint8 labels."""
    t1, gm, wm = _template_slices()
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split], index])
    z = rng.integers(t1.shape[0])
    mat, off = _pose(rng, t1.shape[1:])
    warp = lambda img: ndimage.affine_transform(
        img, mat, offset=off, output_shape=(SIZE, SIZE), order=1, mode="constant", cval=0.0
    )
    brain_soft = np.clip(warp((t1[z] > 0.04).astype(np.float32)), 0, 1)
    p_gm, p_wm = np.clip(warp(gm[z]), 0, 1), np.clip(warp(wm[z]), 0, 1)
    brain = brain_soft > 0.5
    p_csf = np.clip(brain_soft - p_gm - p_wm, 0, 1)

    jit = lambda v: v * rng.uniform(0.92, 1.08)
    # Tissue contrasts (relative): T1-Gd white > grey > CSF; FLAIR grey > white, CSF dark.
    t1c = p_wm * jit(0.72) + p_gm * jit(0.50) + p_csf * jit(0.12)
    flair = p_wm * jit(0.42) + p_gm * jit(0.56) + p_csf * jit(0.07)
    texture = 1 + _smooth_noise(rng, 48, 0.035)
    t1c, flair = t1c * texture, flair * (1 + _smooth_noise(rng, 48, 0.035))

    soft, labels = _tumour(rng, (p_wm + p_gm) > 0.6)
    oed, rim, core = soft[2], soft[4], soft[1]
    # Oedema: bright on FLAIR, faintly dark on T1-Gd; rim: enhancing (bright) on T1-Gd; core: necrotic (dark on T1-Gd).
    t1c = t1c * (1 - 0.18 * oed)
    flair = flair * (1 - oed) + oed * jit(0.88) * (1 + _smooth_noise(rng, 24, 0.05))
    t1c = t1c * (1 - rim) + rim * jit(0.97)
    flair = flair * (1 - rim) + rim * jit(0.72)
    t1c = t1c * (1 - core) + core * jit(0.14)
    flair = flair * (1 - core) + core * jit(0.48)

    yy, xx = (np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE) - 0.5
    out = []
    for img in (t1c, flair):
        c = rng.normal(0, 0.25, size=5)
        bias = np.exp(c[0] * yy + c[1] * xx + c[2] * yy * yy + c[3] * xx * xx + c[4] * xx * yy)
        sigma = rng.uniform(0.008, 0.025)
        img = img * bias
        img = np.sqrt(
            (img + sigma * rng.standard_normal(img.shape)) ** 2 + (sigma * rng.standard_normal(img.shape)) ** 2
        )
        img = np.where(brain, img, 0.0).astype(np.float32)
        lo, hi = float(img.min()), float(img.max())
        out.append(((img - lo) / (hi - lo)).astype(np.float32))
    labels = np.where(brain, labels, 0).astype(np.uint8)
    return out[0], out[1], labels


def make_split(seed: int, split: str, n: int, progress: bool = False):
    """Arrays ``(x1, x2, labels)`` of shape (n, 240, 240) for one split."""
    from tqdm.auto import tqdm

    x1 = np.empty((n, SIZE, SIZE), np.float32)
    x2 = np.empty_like(x1)
    lab = np.empty((n, SIZE, SIZE), np.uint8)
    for i in tqdm(range(n), desc=f"phantom {split}", disable=not progress, leave=False):
        x1[i], x2[i], lab[i] = make_pair(seed, split, i)
    return x1, x2, lab
