"""One entry point that scores a batch with any subset of the five metrics, sharing their work.

The 8-bit inputs, the SSIM statistics of (F, x1), (F, x2) and (x1, x2), and the Sobel responses are
each computed once per batch and reused by every metric that needs them.
"""
from __future__ import annotations

import torch

from metrics import _compile
from metrics._checks import check_triple
from metrics.fmi import fmi_from_images
from metrics.ncie import ncie_from_normalized, normalize1
from metrics.piella import q_p_from_stats
from metrics.profiles import get_profile
from metrics.qabf import q_xy_from_gradients, sobel
from metrics.ssim import ssim_map, ssim_stats
from metrics.toolbox_input import paper_input_path, quantize_255


class Workspace:
    """Lazily computed, cached intermediates for one batch (fused, x1, x2) under one profile."""

    def __init__(self, fused, x1, x2, profile: str = "upstream", quantize: bool | None = None, paper_inputs: bool = False, xy_constants: str = "liu", fmi_window: int = 3):
        self.profile = get_profile(profile)
        if paper_inputs and self.profile.name != "fusioninn":
            raise ValueError("paper_inputs (the authors' matplotlib PNG path) is an option of the 'fusioninn' profile only")
        self.fused, self.x1, self.x2 = fused, x1, x2
        self.quantize = True if quantize is None else bool(quantize)
        self.quantize_ssim = self.profile.quantize_ssim if quantize is None else bool(quantize)
        self.paper_inputs = paper_inputs
        self.xy_constants = xy_constants
        self.fmi_window = fmi_window
        self._cache: dict = {}

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def toolbox_images(self):
        """(A, B, F) in 0..255 units as the toolbox saw them."""
        def make():
            if self.paper_inputs:
                return (paper_input_path(self.x1, True), paper_input_path(self.x2, True), paper_input_path(self.fused, False))
            return tuple(quantize_255(x, self.quantize) for x in (self.x1, self.x2, self.fused))
        return self._cached("img", make)

    def ssim_images(self):
        """(A, B, F) for Q_SSIM: float (the paper's Q_SSIM, profile ``fusioninn``) or 8-bit."""
        if not self.quantize_ssim:
            return self._float_images()
        if self.quantize and not self.paper_inputs:
            return self.toolbox_images()
        return self._cached("q8", lambda: tuple(quantize_255(x, True) for x in (self.x1, self.x2, self.fused)))

    def _float_images(self):
        return self._cached("float", lambda: tuple(quantize_255(x, False) for x in (self.x1, self.x2, self.fused)))

    def stats(self, which: str, mode: str, images):
        a, b, f = images
        pair = {"FA": (f, a), "FB": (f, b), "AB": (a, b)}[which]
        return self._cached(("stats", which, mode, id(images[0])), lambda: ssim_stats(*pair, mode=mode))

    def ssim_per_source(self, map_mode: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean SSIM(F, x1), mean SSIM(F, x2)) per image, the two halves of Q_SSIM."""
        mode = map_mode or self.profile.ssim_map

        def make():
            imgs = self.toolbox_images() if map_mode == "toolbox" else self.ssim_images()
            m1 = ssim_map(None, None, 255.0, stats=self.stats("FA", mode, imgs)).flatten(1).mean(dim=1)
            m2 = ssim_map(None, None, 255.0, stats=self.stats("FB", mode, imgs)).flatten(1).mean(dim=1)
            return m1, m2

        return self._cached(("ssim_sources", mode, map_mode == "toolbox"), make)

    def q_ssim(self, map_mode: str | None = None) -> torch.Tensor:
        m1, m2 = self.ssim_per_source(map_mode)
        return (m1 + m2) / 2

    def q_ssim_x1(self) -> torch.Tensor:
        return self.ssim_per_source()[0]

    def q_ssim_x2(self) -> torch.Tensor:
        return self.ssim_per_source()[1]

    def q_p(self) -> torch.Tensor:
        mode, imgs = self.profile.piella_map, self.toolbox_images()
        return q_p_from_stats(self.stats("AB", mode, imgs), self.stats("FA", mode, imgs), self.stats("FB", mode, imgs), 255.0)

    def sobel(self):
        a, b, f = self.toolbox_images()
        return self._cached("sobel", lambda: tuple(sobel(x, self.profile.sobel) for x in (a, b, f)))

    def q_xy(self) -> torch.Tensor:
        ga, gb, gf = self.sobel()
        return q_xy_from_gradients(ga, gb, gf, self.xy_constants)

    def q_fmi(self) -> torch.Tensor:
        a, b, f = self.toolbox_images()
        if self.paper_inputs:  # MATLAB saw the RGB PNG as H x 3W (three channels side by side)
            a, b, f = (torch.cat([x, x, x], dim=-1) for x in (a, b, f))
        return fmi_from_images(a, b, f, self.fmi_window)

    def q_ncie(self) -> torch.Tensor:
        a, b, f = self.toolbox_images()
        return ncie_from_normalized(normalize1(a), normalize1(b), normalize1(f))


def score(fused: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, metrics=None, profile: str = "upstream", quantize: bool | None = None, paper_inputs: bool = False, xy_constants: str = "liu", fmi_window: int = 3, chunk_size: int | None = None, workload: int | None = None) -> dict[str, torch.Tensor]:
    """Score a batch with any subset of the registered metrics; returns ``{name: Tensor[B]}``.

    Images: float (B, 1, H, W) in [0, 1], on any device; x1 = T1-Gd, x2 = FLAIR. ``metrics``: names
    from :data:`metrics.registry.METRICS` (default: all five, in Table 1 order). ``chunk_size``
    scores that many images at a time, so memory does not grow with B. On a CPU, many pairs run
    compiled kernels (:mod:`metrics._compile`, ``FUSIONBENCH_COMPILE``); ``workload`` is the number
    of pairs the caller scores in all, batch by batch (default: this call's B), so that every batch
    of one run, and every rank of a distributed run, makes the same choice.
    """
    from metrics.registry import resolve_metrics

    names = resolve_metrics(metrics)
    n = fused.shape[0] if isinstance(fused, torch.Tensor) else 0
    step = chunk_size or n
    check_triple(fused, x1, x2, 21 if get_profile(profile).piella_map == "toolbox" else 11, chunk=step)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in names}
    compiled = _compile.active() or _compile.wanted(workload or n, fused.device)
    with _compile.compiling(compiled):
        for s in range(0, n, max(1, step)):
            batch = [x[s : s + step] for x in (fused, x1, x2)]
            single = compiled and batch[0].shape[0] == 1
            if single:  # dynamo specialises size 1 (a recompilation): score the image twice
                batch = [torch.cat([x, x]) for x in batch]
            ws = Workspace(*batch, profile, quantize, paper_inputs, xy_constants, fmi_window)
            for k in names:
                v = getattr(ws, k.lower())()
                parts[k].append(v[:1] if single else v)
    return {k: torch.cat(v) for k, v in parts.items()}
