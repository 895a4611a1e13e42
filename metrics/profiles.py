"""The three metric profiles (docs/reference.md §6).

* ``upstream`` (default): Zheng Liu's toolbox as published: ``filter2(window, img, 'valid')`` SSIM
  maps and ``filter2(sobel, img, 'same')`` (correlation, zero padding) Sobel responses.
* ``intended``: the FusionINN authors' copy with its ``imfilter`` argument order corrected:
  same-size maps, zero padding, true convolution.
* ``fusioninn``: the authors' copy as shipped. Its ``imfilter(kernel, image, 'conv')`` calls filter
  the *kernel* with the image, so Piella's SSIM maps are the 11x11 block of valid statistics centred
  on the image centre and Q_XY is a mean over a 3x3 Sobel map. Q_SSIM is computed as the paper did
  (``pytorch_msssim.ssim`` on float images: the ``upstream`` SSIM without 8-bit quantisation).

All toolbox-faithful computations run on images scaled to 0..255, because the toolbox ran on 8-bit
PNGs and several of its constants (SSIM's C1/C2 with L = 255, Q_XY's 1e-5 substitutions) are in
those units. ``quantize`` (default True) rounds to integers first, as the 8-bit files did.
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILES = ("upstream", "intended", "fusioninn")


@dataclass(frozen=True)
class MetricProfile:
    name: str
    ssim_map: str  # map used by Q_SSIM: "valid" | "same"
    piella_map: str  # map used by Q_P: "valid" | "same" | "toolbox"
    sobel: str  # "corr_same" | "conv_same" | "toolbox"
    quantize_ssim: bool  # whether Q_SSIM sees 8-bit inputs by default


_PROFILES = {
    "upstream": MetricProfile("upstream", "valid", "valid", "corr_same", True),
    "intended": MetricProfile("intended", "same", "same", "conv_same", True),
    "fusioninn": MetricProfile("fusioninn", "valid", "toolbox", "toolbox", False),
}


def get_profile(name: str) -> MetricProfile:
    """Return the named profile or raise a ValueError listing the known ones."""
    try:
        return _PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown metric profile {name!r}; known profiles: {', '.join(PROFILES)}") from None
