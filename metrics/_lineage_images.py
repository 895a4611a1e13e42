"""The images a lineage's original code receives, and a cache shared by its metrics.

The originals read 8-bit files: VIFB, MEFB and Tang's MATLAB code get ``uint8`` arrays and apply
their own ``double()`` / ``im2double()``; CDDFuse's ``Evaluator`` gets float32 arrays holding
0..255. Here every lineage metric receives :class:`LineageImages`: the three images in 0..255
units (float32 or float64, (B, 1, H, W)) and, per sample, whether the fused image is 8-bit
(integer-valued). A non-integer fused image is what the originals see when handed a float image
(the shared case c19): some then error, some rescale it, and each lineage module reproduces that.
"""

from __future__ import annotations

import contextlib
import contextvars

import torch

from metrics import _native

# The sources' memo of :func:`sharing_sources` (None: no sharing), and what it holds: per pair of
# source tensors (A, B) seen, their intermediates by key.
_SOURCES: contextvars.ContextVar[list | None] = contextvars.ContextVar("fusionbench_sources", default=None)


@contextlib.contextmanager
def sharing_sources():
    """Within this block, what lineage metrics compute from the sources (A, B) alone (e.g. their
    phase congruency) is computed once per distinct pair of source tensors, however many fused
    images are scored against them (``bench eval`` of several fused folders scores each batch of
    sources against every folder in one such block). Every score is the one it gets without the
    block, bit for bit: the same computation on equal tensors. What the block keeps is freed at its
    end, so memory is that of one batch of sources."""
    token = _SOURCES.set([])
    try:
        yield
    finally:
        _SOURCES.reset(token)


class LineageImages:
    """A, B, F in 0..255 units (x1 = A = T1-Gd, the "visible" role; x2 = B = FLAIR, the "infrared"
    role), with a per-batch cache and the reasons for NaN values (:meth:`note`)."""

    # Images per pass on a CPU: 240x240 float64 moments of 4 images stay in cache (2-3x faster than
    # 16). Elsewhere the whole batch is one pass: a GPU waits on each launch, and pieces of 4 multiply
    # the launches (on an H200, 72 triples of vifb took ~66,500 operators in pieces of 4; profiled by
    # ``python -m benchmark.tools.speed_metrics --device cuda --lineage vifb --profile 18``).
    CHUNK = 4

    def __init__(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        f: torch.Tensor,
        notes: list | None = None,
        offset: int = 0,
        flags: tuple | None = None,
    ):
        # A piece of a batch (chunks, as_double) shares the batch's notes list and knows its offset;
        # it holds no reference back to the batch, so no reference cycle keeps images alive. Its
        # ``flags`` (per sample: F integer-valued, A and B integer-valued) come from the batch rather
        # than being recomputed; ``ab_integer`` is whether A and B are, over this piece.
        self.a, self.b, self.f = a, b, f
        self._offset = offset
        if flags is None and f.shape[0] and f[0].numel() and _native.cpu_ready(a, b, f):
            whole = [_native.integer_valued(x) for x in (f, a, b)]  # one pass each, the same flags
            flags = (whole[0], whole[1] & whole[2])
        elif flags is None:
            f_integer = (f == torch.round(f)).flatten(1).all(dim=1)
            flags = (f_integer, ((a == torch.round(a)) & (b == torch.round(b))).flatten(1).all(dim=1))
        self.f_integer, self._ab_integer = flags  # per sample
        self.ab_integer = bool(self._ab_integer.all())
        self._cache: dict = {}
        self.notes: list[tuple[str, list[int], str]] = notes if notes is not None else []

    @property
    def split(self) -> bool:
        """Whether the batch is scored in pieces (:meth:`chunks`): on a CPU, when it holds more than
        :attr:`CHUNK` images."""
        return self.n > self.CHUNK and self.a.device.type == "cpu"

    def chunks(self) -> list["LineageImages"]:
        """The batch in pieces of at most :attr:`CHUNK` images (cached, so their intermediates are shared
        by every metric); their NaN notes come back here with the right sample indices."""

        def make():
            # Pieces of equal size (+-1), so that none holds a single image when the batch has more:
            # a reduction to one value is split over the CPU threads, and its rounding would then
            # depend on how many there are (a lone image is scored twice over: one_image_twice).
            k = -(-self.n // self.CHUNK)
            bounds = [self.n * i // k for i in range(k + 1)]
            return [
                LineageImages(
                    self.a[s:e],
                    self.b[s:e],
                    self.f[s:e],
                    self.notes,
                    self._offset + s,
                    (self.f_integer[s:e], self._ab_integer[s:e]),
                )
                for s, e in zip(bounds, bounds[1:])
            ]

        return self.cached("chunks", make)

    def as_double(self) -> "LineageImages":
        """The same batch in float64 (cached; NaN notes go to this object's list)."""

        def make():
            flags = (self.f_integer, self._ab_integer)
            return LineageImages(self.a.double(), self.b.double(), self.f.double(), self.notes, self._offset, flags)

        return self.cached("float64", make)

    @property
    def n(self) -> int:
        return self.a.shape[0]

    def source_cached(self, key, make):
        """``make()``, kept inside :func:`sharing_sources` for every batch of equal A and B (same
        shape, dtype, device and values), whatever its F: once per key for these sources. Outside
        such a block nothing is kept (the value is freed when its metric is done, as any
        intermediate). ``make`` must read only ``a`` and ``b`` (nothing of F, and no :meth:`note`: a
        batch that reuses the value would not note it again)."""
        memo = _SOURCES.get()
        if memo is None:
            return make()
        mine = self.cached("sources", lambda: _entry(memo, self.a, self.b))
        if key not in mine:
            mine[key] = make()
        return mine[key]

    def source_memo(self, tag):
        """:meth:`source_cached` as a function ``(key, make)``, its keys under ``tag``: for kernels
        that take a ``cache`` rather than a :class:`LineageImages`."""
        return lambda key, make: self.source_cached((tag, key), make)

    def cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def note(self, metric: str, mask: torch.Tensor, reason: str) -> None:
        """Record that ``metric`` is NaN for the samples in ``mask`` and why."""
        idx = torch.nonzero(mask.flatten()).flatten().tolist()
        if idx:
            self.notes.append((metric, [self._offset + i for i in idx], reason))

    def nan_where(self, metric: str, values: torch.Tensor, mask: torch.Tensor, reason: str) -> torch.Tensor:
        """``values`` with NaN where ``mask`` (per sample), the reason noted."""
        self.note(metric, mask, reason)
        return torch.where(mask.to(values.device), torch.full_like(values, float("nan")), values)

    def nan_if_nonfinite(self, metric: str, values: torch.Tensor, reason: str) -> torch.Tensor:
        """Note the samples where the original itself returns NaN (e.g. 0/0 on a constant image)."""
        self.note(metric, ~torch.isfinite(values), reason)
        return values


def _entry(memo: list, a: torch.Tensor, b: torch.Tensor) -> dict:
    """The intermediates kept for sources equal to (a, b) in ``memo``, a new entry if none is."""
    for ea, eb, held in memo:
        same = ea.shape == a.shape and ea.dtype == a.dtype and ea.device == a.device
        if same and torch.equal(ea, a) and torch.equal(eb, b):
            return held
    held: dict = {}
    memo.append((a, b, held))
    return held
