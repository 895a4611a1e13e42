"""bench eval's PNG reader (benchmark/data/png.py with metrics/png_kernel.cpp): Pillow's samples for every
filter type, colour type and chunk layout it takes, and Pillow itself, with its errors, for every file it
does not take."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from benchmark.data import png
from benchmark.data.imageio import read_image

pytestmark = pytest.mark.usefixtures("native_kernel")  # the reader's unfiltering is a hand-written kernel


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _filtered(image: np.ndarray, types: list[int]) -> bytes:
    """The scanlines of the uint8 (H, W) or (H, W, C) ``image``, row r filtered with ``types[r]`` as the PNG
    specification defines the five (each from the unfiltered samples: left, above, upper left)."""
    h = image.shape[0]
    bpp = 1 if image.ndim == 2 else image.shape[2]
    rows = image.reshape(h, -1).astype(np.int64)
    out = []
    for r in range(h):
        x = rows[r]
        up = rows[r - 1] if r else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), up[:-bpp]])
        pred = [0 * x, left, up, (left + up) // 2, _paeth(left, up, upleft)][types[r]]
        out.append(bytes([types[r]]) + ((x - pred) % 256).astype(np.uint8).tobytes())
    return b"".join(out)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(image, types, colour, pieces=1, extra=(), depth=8, interlace=0, stream=None) -> bytes:
    """A PNG file of ``image`` written here chunk by chunk: its IDAT data cut into ``pieces`` chunks, the
    chunks ``extra`` (kind, body) before them."""
    h, w = image.shape[:2]
    data = zlib.compress(_filtered(image, types)) if stream is None else stream
    cut = np.linspace(0, len(data), pieces + 1).astype(int)
    return (
        png.SIGNATURE
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace))
        + b"".join(_chunk(k, b) for k, b in extra)
        + b"".join(_chunk(b"IDAT", data[cut[i] : cut[i + 1]]) for i in range(pieces))
        + _chunk(b"IEND", b"")
    )


def _pillow(path):
    with Image.open(path) as im:
        return np.asarray(im)


@pytest.mark.parametrize("colour", [0, 2, 4, 6])
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (24, 3), (5, 240)])
def test_every_filter_type_gives_pillows_samples(tmp_path, colour, shape):
    """Grey, RGB, grey with alpha and RGBA images of odd and one-pixel sizes, each row filtered with one of
    the five types (every type in every position, the first row too: Up and Paeth there read zeros above),
    the IDAT data in one chunk and in three, beside ancillary chunks: the reader's samples are Pillow's."""
    rng = np.random.default_rng(colour * 100 + shape[1])
    channels = png.CHANNELS[colour]
    h, w = shape
    image = rng.integers(0, 256, (h, w, channels) if channels > 1 else (h, w), dtype=np.uint8)
    image[h // 2 :] = np.minimum(image[h // 2 :], 40)  # near values too: Paeth's ties and Average's rounding
    for start in range(5):
        types = [(start + r) % 5 for r in range(h)]
        for pieces, extra in ((1, ()), (3, ((b"gAMA", struct.pack(">I", 45455)), (b"tEXt", b"a\0b")))):
            path = tmp_path / f"c{colour}_{start}_{pieces}.png"
            path.write_bytes(_png(image, types, colour, pieces, extra))
            got = png.decode(str(path))
            assert got is not None and got.dtype == np.uint8
            assert np.array_equal(got, image) and np.array_equal(got, _pillow(path)), (start, pieces)


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (5, 240)])
def test_sixteen_bit_grey_gives_the_samples_written(tmp_path, shape, monkeypatch):
    """16-bit grey PNGs, big-endian samples filtered two bytes a pixel with every type in every row
    position: the reader gives the uint16 samples written, and read_image the same values as with Pillow
    and scikit-image alone (FUSIONBENCH_NATIVE=0), which read such files before it."""
    rng = np.random.default_rng(shape[1])
    image = rng.integers(0, 65536, shape, dtype=np.uint16)
    image[shape[0] // 2 :] = np.minimum(image[shape[0] // 2 :], 300)  # high bytes 0 and 1: Paeth's ties
    as_bytes = image.astype(">u2").view(np.uint8).reshape(shape[0], shape[1], 2)
    paths = []
    for start in range(5):
        paths.append(tmp_path / f"g16_{start}.png")
        paths[-1].write_bytes(_png(as_bytes, [(start + r) % 5 for r in range(shape[0])], 0, depth=16))
        got = png.decode(str(paths[-1]))
        assert got.dtype == np.uint16 and np.array_equal(got, image), start
        assert png.probe(str(paths[-1])) == shape
    ours = [read_image(str(p)) for p in paths]
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    for p, a in zip(paths, ours):
        assert np.array_equal(a, read_image(str(p))) and a.dtype == np.float32, p.name


def test_pillows_own_files_read_the_same_either_way(tmp_path, monkeypatch):
    """PNGs as Pillow writes them (its adaptive filter per row, every compression level): read_image gives
    the same values bit for bit with the reader as with Pillow (FUSIONBENCH_NATIVE=0: Pillow alone), grey,
    RGB (kept as colour), RGBA, grey with alpha (its grey) and 16-bit grey."""
    from benchmark.data.phantom import make_split

    x1, x2, _ = make_split(3, "val", 2)
    grey = (x1 * 255).round().astype(np.uint8)
    rgb = np.stack([grey[0], (x2[0] * 255).round().astype(np.uint8), grey[1]], axis=-1)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 200, np.uint8)], axis=-1)
    files = []
    for level in (0, 1, 6, 9):
        for name, a in (
            ("grey", grey[1]),
            ("rgb", rgb),
            ("rgba", rgba),
            ("la", rgba[..., 1:3].copy()),
            ("grey16", (x2[1] * 65535).round().astype(np.uint16)),  # Pillow writes it as I;16
        ):
            files.append(tmp_path / f"{name}{level}.png")
            Image.fromarray(a).save(files[-1], compress_level=level)
    for f in files:
        assert png.decode(str(f)) is not None, f.name  # taken by the reader
    with monkeypatch.context() as m:  # read without Pillow
        m.setattr(Image, "open", lambda *a, **k: pytest.fail("Pillow opened a PNG the reader takes"))
        ours = [read_image(str(f), colour=True) for f in files]
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")
    assert png.decode(str(files[0])) is None  # kernels off: Pillow
    for f, a in zip(files, ours):
        b = read_image(str(f), colour=True)
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape and np.array_equal(a, b), f.name


def test_files_the_reader_does_not_take_are_pillows(tmp_path, monkeypatch):
    """16-bit colour, 1-bit, palette and interlaced PNGs, more pixels than Pillow's decompression-bomb limit, a
    PLTE in a grey image, no IDAT, IDAT chunks apart, an unknown critical chunk, bad CRCs, no IEND, a
    truncated file, data past the zlib stream, a short and a long stream and a filter type past 4: the
    reader returns None, so Pillow decodes each: read_image gives what it gave with Pillow alone, the same
    values or the same one-line error naming the file."""
    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (6, 9), dtype=np.uint8)
    types = [r % 5 for r in range(6)]
    good = _png(grey, types, 0)
    stream = zlib.compress(_filtered(grey, types))
    idat_apart = good.replace(_chunk(b"IEND", b""), b"")  # a second IDAT after an ancillary chunk
    idat_apart += _chunk(b"tEXt", b"a\0b") + _chunk(b"IDAT", b"") + _chunk(b"IEND", b"")
    bad_type = bytearray(_filtered(grey, types))
    bad_type[0] = 5
    cases = {
        "sixteen_rgb": _png(np.zeros((2, 2, 6), np.uint8), [0, 0], 2, depth=16),  # Pillow reads it as 8-bit
        "one_bit": _png(np.array([[128], [0], [128]], np.uint8), [0, 0, 0], 0, depth=1),  # a byte a row, as 8-bit
        "no_idat": good[: good.index(b"IDAT") - 4] + _chunk(b"IEND", b""),
        "no_iend": good[: -len(_chunk(b"IEND", b""))],
        "bad_idat_crc": good[:-13] + bytes([good[-13] ^ 1]) + good[-12:],  # the last byte of IDAT's CRC
        "interlaced": _png(grey, types, 0, interlace=1),
        "plte_in_grey": _png(grey, types, 0, extra=((b"PLTE", bytes(6)),)),
        "idat_apart": idat_apart,
        "critical": _png(grey, types, 0, extra=((b"ABCD", b""),)),
        "bad_crc": good[:-5] + bytes([good[-5] ^ 1]) + good[-4:],
        "truncated": good[: len(good) // 2],
        "past_stream": _png(grey, types, 0, stream=stream + b"xx"),
        "short_stream": _png(grey, types, 0, stream=zlib.compress(_filtered(grey, types)[:-3])),
        "long_stream": _png(grey, types, 0, stream=zlib.compress(_filtered(grey, types) + bytes(10))),
        "bad_filter": _png(grey, types, 0, stream=zlib.compress(bytes(bad_type))),
        "not_png": b"GIF89a" + good[6:],
    }
    unfilter = png._kernel()
    for name, data in cases.items():
        assert png.decode_bytes(data, unfilter) is None, name
        (tmp_path / f"{name}.png").write_bytes(data)
    p = tmp_path / "pal.png"
    Image.fromarray(grey).convert("P").save(p)
    assert png.decode(str(p)) is None and np.array_equal(read_image(str(p)) * 255, grey.astype(np.float32))
    (tmp_path / "ok.png").write_bytes(good)
    assert np.array_equal(png.decode(str(tmp_path / "ok.png")), grey)

    def outcome(name):
        try:
            return read_image(str(tmp_path / f"{name}.png"))
        except ValueError as e:
            return str(e)

    ours = {name: outcome(name) for name in cases}
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")  # Pillow alone, as before the reader
    for name in cases:
        want = outcome(name)
        assert type(ours[name]) is type(want), name
        assert ours[name] == want if isinstance(want, str) else np.array_equal(ours[name], want), name
    assert "truncated.png: unreadable" in ours["truncated"]

    from benchmark.data import imageio

    def probed(name):
        try:
            return imageio.probe_image(str(tmp_path / f"{name}.png"))
        except ValueError as e:
            return str(e)

    names = [*cases, "pal", "ok"]
    sizes = {name: probed(name) for name in names}  # bench eval's check of every source, before it scores
    assert sizes["ok"] == (6, 9) and "truncated.png: unreadable" in sizes["truncated"]
    took = [name for name in names if png.probe(str(tmp_path / f"{name}.png")) is not None]
    assert took == ["past_stream", "short_stream", "long_stream", "bad_filter", "ok"]  # chunks fine; the rest: Pillow
    with monkeypatch.context() as m:  # the files it takes are probed without Pillow
        m.setattr(Image, "open", lambda *a, **k: pytest.fail("Pillow opened a PNG the reader takes"))
        assert [imageio.probe_image(str(tmp_path / f"{name}.png")) for name in took] == [(6, 9)] * len(took)
    monkeypatch.setattr(imageio, "_png_size", lambda path: None)  # Pillow's probe alone, as before
    assert {name: probed(name) for name in names} == sizes

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # Pillow's decompression-bomb limit, below 6 x 9
    assert png.decode_bytes(good, unfilter) is None
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 54)
    assert np.array_equal(png.decode_bytes(good, unfilter), grey)


def test_the_kernel_refuses_a_pixel_size_it_has_no_loop_for():
    """png_unfilter takes 1-4 bytes a pixel (the colour types the reader takes) and row lengths that are
    whole pixels; anything else returns -1 and writes nothing."""
    fn = png._kernel()
    src = np.zeros(2 * 13, np.uint8)
    out = np.full(2 * 12, 7, np.uint8)
    assert fn(src.ctypes.data, 2, 12, 5, out.ctypes.data) == -1
    assert fn(src.ctypes.data, 2, 12, 0, out.ctypes.data) == -1
    assert fn(src.ctypes.data, 2, 10, 4, out.ctypes.data) == -1
    assert (out == 7).all()
    assert fn(src.ctypes.data, 2, 12, 4, out.ctypes.data) == 0 and (out == 0).all()


def test_a_reader_unit_that_cannot_be_built_leaves_the_files_to_pillow(tmp_path, monkeypatch):
    """Where the PNG reader's unit alone fails to build (a compiler error in it), Pillow reads every PNG, the
    same values, and the build is not tried again for every file."""
    from metrics import _native

    path = tmp_path / "a.png"
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8)).save(path)
    tries = []

    class Broken:
        def __getattr__(self, name):
            tries.append(name)
            raise OSError("g++ could not build metrics/png_kernel.cpp (png): error")

    monkeypatch.setattr(_native, "library", lambda: Broken())
    monkeypatch.setattr(png, "_FAILED", [])
    for _ in range(3):
        assert png.decode(str(path)) is None
        assert np.array_equal(read_image(str(path)) * 255, np.arange(48, dtype=np.float32).reshape(6, 8))
    assert tries == ["png_unfilter"] and "png_kernel.cpp" in png._FAILED[0]
