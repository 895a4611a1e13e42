"""PNGs decoded without Pillow's per-row loop, for ``bench eval``'s reading (3,459 files for 1,153
triples): the chunks parsed and checked here, the image data inflated by Python's :mod:`zlib` in one call,
the scanlines unfiltered by the hand-written kernel (``metrics/png_kernel.cpp``). A 240x240 8-bit grey
slice took Pillow ~0.37-0.44 ms, ~0.13 of it zlib's inflate: Pillow inflates, unfilters and unpacks a
scanline at a time (0.22 ms for a PNG stored without compression); a 16-bit one took Pillow with
scikit-image ~1.5 ms.

Only what this decodes exactly as the reader before it did is taken: bit depth 8 with colour types 0, 2,
4 and 6 (grey, RGB, grey with alpha, RGBA: Pillow's arrays), or 16-bit grey (uint16, as scikit-image's
reading through Pillow gave it), no interlacing, every chunk's CRC right, no critical chunk but IHDR,
PLTE (a suggested palette of an RGB image) and IDAT, the IDAT chunks consecutive, the inflated data
exactly the scanlines' size and ending the zlib stream, known filter types. Anything else (16-bit colour,
which Pillow reads as 8-bit; 1-, 2- and 4-bit, palette, interlaced, damaged or truncated files) returns
None and Pillow decodes it as before, with its errors and their messages. Ancillary chunks (gamma, colour
profiles, text, transparency) change no sample, as in Pillow's arrays. Where the hand-written kernels are
off (``FUSIONBENCH_NATIVE=0``) or cannot be built, Pillow decodes every file. :func:`probe` reads such a
file's size the same way, for ``bench eval``'s check of every source before it scores.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples a pixel: grey, RGB, grey + alpha, RGBA
_FAILED: list[str] = []  # the unit's build failed once in this process: Pillow from then on


def decode(path: str) -> np.ndarray | None:
    """The samples of the PNG at ``path`` as Pillow's array of it gives them, uint8 (uint16 for 16-bit
    grey), (H, W) for grey and (H, W, C) otherwise; None where this module does not take the file (see
    above)."""
    unfilter = _kernel()
    if unfilter is None:
        return None
    with open(path, "rb") as fh:
        data = fh.read()
    return decode_bytes(data, unfilter)


def probe(path: str) -> tuple[int, int] | None:
    """(height, width) of a PNG this module takes, its chunks checked as Pillow's ``verify`` checks them
    (their CRCs) and more (its header's type and the chunks' order), without Pillow (19-21 against 49 us a
    file, the read included; ``bench eval`` probes every source before it scores); None for any other
    file, which Pillow then probes. Needs no kernel."""
    with open(path, "rb") as fh:
        parsed = _parse(fh.read())
    return None if parsed is None else (parsed[1], parsed[0])


def decode_bytes(data: bytes, unfilter) -> np.ndarray | None:
    """:func:`decode` of a PNG file's bytes, with the kernel's entry point ``unfilter``."""
    parsed = _parse(data)
    if parsed is None:
        return None
    width, height, channels, depth, idat = parsed
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
        return None  # Pillow's decompression-bomb warning or refusal, as before
    bpp = channels * depth // 8  # bytes a pixel, as the filters count them
    row_bytes = width * bpp
    size = height * (row_bytes + 1)
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(idat, size + 1)  # never more than the image holds, whatever the stream says
    except zlib.error:
        return None
    if not inflate.eof or inflate.unused_data or len(raw) != size:  # size + 1: a longer stream
        return None
    out = np.empty((height, width, channels) if channels > 1 else (height, width * bpp), np.uint8)
    src = np.frombuffer(raw, np.uint8)
    if unfilter(src.ctypes.data, height, row_bytes, bpp, out.ctypes.data):
        return None  # a filter type outside 0-4
    return out.view(">u2").astype(np.uint16) if depth == 16 else out  # 16-bit samples are big-endian


def _parse(data: bytes):
    """(width, height, channels, bit depth, the concatenated IDAT data) of a PNG this module takes, else
    None."""
    if data[:8] != SIGNATURE:
        return None
    view = memoryview(data)
    pos, header, idat, idat_done = 8, None, [], False
    while True:
        if pos + 12 > len(data):
            return None  # no IEND: truncated
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data) or zlib.crc32(view[pos + 4 : end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            return None
        body = view[pos + 8 : end - 4]
        if header is None:
            if kind != b"IHDR" or length != 13:
                return None
            width, height, depth, colour, compression, method, interlace = struct.unpack(">IIBBBBB", body)
            taken = depth == 8 and colour in CHANNELS or depth == 16 and colour == 0  # 16-bit: grey alone
            if not (width and height and taken and compression == method == interlace == 0):
                return None
            header = (width, height, CHANNELS[colour], depth)
        elif kind == b"IDAT":
            if idat_done:
                return None  # IDAT chunks apart
            idat.append(body)
        elif kind == b"IEND":
            break
        else:
            if idat:
                idat_done = True
            if not kind[0] & 0x20 and (kind != b"PLTE" or header[2] < 3):  # an unknown critical chunk, or a
                return None  # palette in a grey image
        pos = end
    if not idat:
        return None
    return (*header, b"".join(idat))


def _kernel():
    """The kernel's ``png_unfilter``, or None where the hand-written kernels are off or cannot be built."""
    if _FAILED:
        return None
    from metrics import _native

    lib = _native.library()
    if lib is None:
        return None
    try:
        return lib.png_unfilter
    except OSError as e:  # this unit alone did not build: Pillow decodes, without a build a file
        _FAILED.append(str(e))
        return None
