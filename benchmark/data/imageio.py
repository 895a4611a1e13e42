"""Reading user images for ``bench eval``: PNG (8/16-bit), TIFF, BMP, JPEG, .npy and NIfTI slices -> [0, 1] float.
Pillow decodes them, but for 8-bit and 16-bit grey PNGs, which :mod:`benchmark.data.png` decodes to the
same samples in about two thirds (8-bit) or a third (16-bit) of the time where the hand-written kernels
are built.

JPEG is lossy, and JPEG decoders may differ by a grey level here and there: the pixels scored are
Pillow's decoding of the file; for numbers comparable across tools, prefer lossless files."""

from __future__ import annotations

import os

import numpy as np

EXTS = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg", ".npy", ".nii", ".nii.gz")


def stem(path: str) -> str:
    b = os.path.basename(path)
    for e in (".nii.gz",) + EXTS:
        if b.lower().endswith(e):
            return b[: -len(e)]
    return os.path.splitext(b)[0]


def read_image(path: str, colour: bool = False) -> np.ndarray:
    """A 2-D float32 image in [0, 1]. 8-bit integers are divided by 255, 16-bit by 65535; float
    ``.npy``/NIfTI must already lie in [0, 1]; RGB(A) images with equal channels are reduced to grey;
    an alpha channel is ignored, as MATLAB's ``imread`` and OpenCV's readers ignore it.
    ``colour``: an RGB image with different channels is returned as (H, W, 3) instead of refused."""
    low = path.lower()
    if not low.endswith(EXTS):
        raise ValueError(f"{path}: unsupported file type; expected one of {', '.join(EXTS)}")
    try:
        a = _decode(path, low)
    except ValueError as e:
        if str(e).startswith(path):
            raise
        raise ValueError(f"{path}: unreadable ({_reason(e)}); expected {_expected(low)}") from None
    except Exception as e:  # truncated, empty or mislabelled files raise whatever their decoder raises
        raise ValueError(f"{path}: unreadable ({_reason(e)}); expected {_expected(low)}") from None
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        rgb = a[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            if not colour:
                raise ValueError(f"{path}: colour image with different channels; expected a grey image")
            return _to_unit(path, rgb)
        a = rgb[..., 0]
    if a.ndim != 2:
        raise ValueError(f"{path}: image has shape {a.shape}; expected a 2-D slice")
    return _to_unit(path, a)


def read_labels(path: str) -> np.ndarray:
    """A 2-D integer label map (BraTS labels; 0 = background) from any format ``read_image`` reads,
    its values as stored (not scaled). For ``bench eval --labels``."""
    low = path.lower()
    if not low.endswith(EXTS):
        raise ValueError(f"{path}: unsupported file type; expected one of {', '.join(EXTS)}")
    try:
        a = _decode(path, low)
    except Exception as e:  # truncated, empty or mislabelled files raise whatever their decoder raises
        raise ValueError(f"{path}: unreadable ({_reason(e)}); expected a label map") from None
    if a.ndim == 3 and a.shape[-1] in (3, 4) and all(np.array_equal(a[..., 0], a[..., c]) for c in (1, 2)):
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"{path}: label map has shape {a.shape}; expected a 2-D slice of integer labels")
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if not np.issubdtype(a.dtype, np.integer):
        if not (np.isfinite(a).all() and (a == np.round(a)).all()):
            raise ValueError(f"{path}: label map holds non-integer values; expected integer labels (0 = background)")
    if a.size and a.min() < 0:
        raise ValueError(f"{path}: label map holds negative values; expected labels >= 0 (0 = background)")
    return a.astype(np.int64)


def probe_image(path: str) -> tuple[int, int]:
    """(height, width) of an image file without decoding its pixels (a PNG's chunks are still
    checked, so a truncated file fails here, naming itself). ``bench eval`` checks every source
    pair this way before scoring, then decodes each file once, batch by batch."""
    low = path.lower()
    if not low.endswith(EXTS):
        raise ValueError(f"{path}: unsupported file type; expected one of {', '.join(EXTS)}")
    try:
        if low.endswith(".npy"):
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        elif low.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            shape = _slice_shape(nib.load(path).shape)
        elif low.endswith(".png") and (size := _png_size(path)) is not None:
            shape = size  # an 8-bit PNG the reader takes, its chunks checked without Pillow
        else:
            from PIL import Image

            with Image.open(path) as im:
                shape = (im.size[1], im.size[0])
                if low.endswith(".png"):
                    im.verify()
    except Exception as e:  # truncated, empty or mislabelled files raise whatever their decoder raises
        raise ValueError(f"{path}: unreadable ({_reason(e)}); expected {_expected(low)}") from None
    if len(shape) == 3 and shape[-1] in (3, 4) and not low.endswith((".nii", ".nii.gz")):
        shape = shape[:2]  # colour; a NIfTI (H, W, 3) is three slices of a volume
    if len(shape) != 2:
        raise ValueError(f"{path}: image has shape {tuple(shape)}; expected a 2-D slice")
    return int(shape[0]), int(shape[1])


def _png_size(path: str) -> tuple[int, int] | None:
    from benchmark.data import png

    return png.probe(path)


def _slice_shape(shape: tuple) -> tuple:
    """A NIfTI slice's shape without the trailing length-1 axes NIfTI writers add ((H, W, 1, 1))."""
    shape = tuple(shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def _to_unit(path: str, a: np.ndarray) -> np.ndarray:
    # 8- and 16-bit values divided in float32: for every one of the 256 and 65,536 values the same float32 as
    # a / 255.0 rounded from float64 gave (tests/test_data.py), without the float64 copy.
    if a.dtype in (np.uint8, np.uint16):
        unit = a.astype(np.float32)
        unit /= np.float32(255 if a.dtype == np.uint8 else 65535)
        return unit
    if np.issubdtype(a.dtype, np.integer):
        if a.min() < 0 or a.max() > 255:
            raise ValueError(
                f"{path}: integer values in [{a.min()}, {a.max()}]; expected 0..255 (8 bits), 16-bit unsigned "
                "(0..65535) or floats in [0, 1]: rescale the slices first (e.g. min-max per slice, as bench "
                "data prepare does)"
            )
        return (a / 255.0).astype(np.float32)
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{path}: contains NaN or Inf")
    if a.min() < -1e-6 or a.max() > 1 + 1e-6:
        raise ValueError(f"{path}: float values in [{a.min():.4g}, {a.max():.4g}]; expected [0, 1]")
    return np.clip(a, 0, 1)


def _decode(path: str, low: str) -> np.ndarray:
    if low.endswith(".npy"):
        return np.asarray(np.load(path, allow_pickle=False))
    if low.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        a = np.asarray(nib.load(path).dataobj)
        a = a.reshape(_slice_shape(a.shape))
        if a.ndim != 2:  # three slices are a volume here, not colour
            raise ValueError(f"{path}: image has shape {a.shape}; expected a 2-D slice")
        return a
    if low.endswith(".png"):
        from benchmark.data import png

        a = png.decode(path)  # 8-bit and 16-bit grey PNGs without Pillow's per-row loop (the same samples)
        if a is not None:
            return a[..., 0] if a.ndim == 3 and a.shape[-1] == 2 else a  # grey with alpha: the grey, as below
    from PIL import Image

    with Image.open(path) as im:  # decode fully here, so a truncated file fails now, naming itself
        im.load()
        if im.mode in ("L", "RGB", "RGBA"):  # 8-bit: Pillow's array is the image (decoded once)
            return np.asarray(im)
        if im.mode == "LA":  # grey with alpha: the grey, as the originals' readers (imread, cv2) take it
            return np.asarray(im)[..., 0]
    from skimage import io as skio  # 16-bit and other modes: skimage keeps their dtype

    return np.asarray(skio.imread(path))


def _reason(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__


def _expected(low: str) -> str:
    if low.endswith(".npy"):
        return "a NumPy .npy array of one 2-D slice"
    if low.endswith((".nii", ".nii.gz")):
        return "a NIfTI file of one 2-D slice"
    if low.endswith((".jpg", ".jpeg", ".bmp")):
        return "a complete 8-bit grey or RGB BMP/JPEG image"
    return "a complete grey PNG/TIFF image (8 or 16 bit)"


def list_images(folder: str) -> dict[str, str]:
    if not os.path.isdir(folder):
        if os.path.exists(folder):
            raise ValueError(f"{folder} is a file, not a folder of images")
        raise FileNotFoundError(f"folder not found: {folder}")
    out = {}
    for f in sorted(os.listdir(folder)):
        if f.lower().endswith(EXTS) and not f.startswith("."):  # hidden: macOS's ._ files, editors' files
            s = stem(f)
            if s in out:
                raise ValueError(f"{folder}: two files share the name {s!r} ({os.path.basename(out[s])}, {f})")
            out[s] = os.path.join(folder, f)
    if not out:
        raise ValueError(f"{folder}: no images ({', '.join(EXTS)})")
    return out
