"""Shared work of one scored batch: the inputs as the toolbox saw them, and a cache.

Several metrics need the same intermediates (the 8-bit images, the SSIM statistics of (F, x1),
(F, x2) and (x1, x2), the Sobel responses). :func:`metrics.score` builds one ``Workspace`` per
chunk and hands it to every metric function, which computes an intermediate once through
:meth:`Workspace.cached`; a metric called on its own builds a private one. The workspace knows no
metric: it holds the images and the cache, and the metric files hold the maths.
"""

from __future__ import annotations

import functools

import torch

from metrics._checks import check_triple
from metrics._lineage_images import LineageImages
from metrics.profiles import get_profile
from metrics.toolbox_input import paper_input_path, quantize_255


class Workspace:
    """Inputs and lazily computed, cached intermediates for one batch (fused, x1, x2) under one profile.

    Images: float (B, 1, H, W) in [0, 1] (x1 = T1-Gd, x2 = FLAIR). ``quantize`` (default: True for
    the toolbox metrics, the profile's choice for Q_SSIM) rounds to 8 bits as the toolbox's PNGs
    did; ``paper_inputs`` (profile ``fusioninn`` only) reproduces the authors' matplotlib PNG path.
    """

    def __init__(
        self, fused, x1, x2, profile: str = "upstream", quantize: bool | None = None, paper_inputs: bool = False
    ):
        self.profile = get_profile(profile)
        if paper_inputs and self.profile.name != "fusioninn":
            raise ValueError(
                "paper_inputs (the authors' matplotlib PNG path) is an option of the 'fusioninn' profile only"
            )
        self.fused, self.x1, self.x2 = fused, x1, x2
        self.quantize = True if quantize is None else bool(quantize)
        self.quantize_ssim = self.profile.quantize_ssim if quantize is None else bool(quantize)
        self.paper_inputs = paper_inputs
        self._cache: dict = {}

    @classmethod
    def of(cls, work, fused, x1, x2, profile: str, quantize, min_size: int = 11, paper_inputs: bool = False):
        """The batch's shared ``work`` from :func:`metrics.score` (inputs already checked), or, for
        a metric called on its own, the inputs checked and a private workspace."""
        if work is not None:
            return work
        check_triple(fused, x1, x2, min_size)
        return cls(fused, x1, x2, profile=profile, quantize=quantize, paper_inputs=paper_inputs)

    def cached(self, key, make):
        """``make()`` once per key for this batch."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def toolbox_images(self):
        """(A, B, F) in 0..255 units as the toolbox saw them."""

        def make():
            if self.paper_inputs:
                return (
                    paper_input_path(self.x1, True),
                    paper_input_path(self.x2, True),
                    paper_input_path(self.fused, False),
                )
            return tuple(quantize_255(x, self.quantize) for x in (self.x1, self.x2, self.fused))

        return self.cached("img", make)

    def lineage_images(self):
        """The batch as the lineages' originals receive it (:class:`metrics.lineage.LineageImages`):
        the toolbox images, 0..255 (8-bit unless ``quantize=False``)."""
        return self.cached("lineage", lambda: LineageImages(*self.toolbox_images()))

    def lineage_notes(self) -> list:
        """``(metric, sample indices, reason)`` for every NaN the lineage metrics gave this batch."""
        li = self._cache.get("lineage")
        return li.notes if li is not None else []

    def ssim_images(self):
        """(A, B, F) for Q_SSIM: float (the paper's Q_SSIM, profile ``fusioninn``) or 8-bit."""
        if not self.quantize_ssim:
            return self.cached("float", lambda: tuple(quantize_255(x, False) for x in (self.x1, self.x2, self.fused)))
        if self.quantize and not self.paper_inputs:
            return self.toolbox_images()
        return self.cached("q8", lambda: tuple(quantize_255(x, True) for x in (self.x1, self.x2, self.fused)))


def one_image_twice(batch: list) -> bool:
    """Whether a batch of one image should be scored twice over (``batch`` = [fused, x1, x2]): on
    a CPU with several threads, torch splits a reduction to one value over the threads (two
    partial sums), so a lone image's scores would differ in the last digits from those it gets in
    any batch, or on one thread (bench eval's one-image last batch, with workers or without).
    Doubled, it gets a batch's. (Switching to one thread instead would make torch.compile compile
    its kernels again: the thread count is in its guards.)"""
    f = batch[0]
    return isinstance(f, torch.Tensor) and f.shape[0] == 1 and f.device.type == "cpu" and torch.get_num_threads() > 1


def batch_invariant(fn):
    """A metric ``fn(fused, x1, x2, ..., work=None) -> Tensor[B]`` whose scores of a single image,
    called without a shared :class:`Workspace`, equal those of the image in a batch, bit for bit
    (:func:`one_image_twice`; :func:`metrics.score` doubles such a batch itself)."""

    @functools.wraps(fn)
    def wrapper(fused, x1, x2, *args, work=None, **kwargs):
        shared = work is not None or any(isinstance(v, Workspace) for v in args)  # given positionally
        if not shared and one_image_twice([fused, x1, x2]):
            return fn(*(torch.cat([x, x]) for x in (fused, x1, x2)), *args, **kwargs)[:1]
        return fn(fused, x1, x2, *args, work=work, **kwargs)

    return wrapper
