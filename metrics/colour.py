"""Colour (RGB) fused images and sources, with each lineage's own rule.

MRI-PET and MRI-SPECT fusions are RGB. The originals differ in how they score them, and each rule
is kept (``colour_score``):

- ``vifb``, ``mefb``: their wrappers loop over the fused image's channels, scoring channel k of F
  against channel k of an RGB source (or the grey source), and average the channel scores. Two
  exceptions kept: VIFB's ``Spatial_frequency`` sizes the image with ``[m, n] = size(F)``, which
  for an RGB F walks the channels side by side as one M x 3N image; MEFB's ``NMI``, ``TE``,
  ``Qc``, ``Qw`` and ``Qy`` keep only the first channel of an RGB F when both sources are grey;
  MEFB's ``MEF_SSIM`` converts every image with ``rgb2gray``.
- ``tang``: its driver converts every RGB image with MATLAB ``rgb2gray`` (0.298936 R + 0.587043 G
  + 0.114021 B, rounded to 8 bits).
- ``cddfuse``: its reader ``image_read_cv2(.., 'GRAY')`` converts with OpenCV (0.299 R + 0.587 G +
  0.114 B) and rounds (half to even).
- ``liu`` (the Table 1 five): Liu's toolbox takes grey images; the field's convention, the Y
  channel of YCbCr (BT.601: 0.299 R + 0.587 G + 0.114 B), is scored.
"""

from __future__ import annotations

import torch

from metrics.registry import METRICS, column_names
from metrics.scoring import score
from metrics.toolbox_input import divide

_MATLAB = (0.298936021293775, 0.587043074451121, 0.114020904255103)  # rgb2gray's row of inv(T)
_BT601 = (0.299, 0.587, 0.114)
MEFB_FIRST_CHANNEL = {"NMI", "TE", "Qc", "Qw", "Qy"}


def _grey(x: torch.Tensor, w, rule: str) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 1, H, W) by the weights ``w``, rounded to 8 bits as the rule does."""
    if x.shape[1] == 1:
        return x
    v = x.double() * 255
    v = torch.where(torch.abs(v - torch.round(v)) < 1e-3, torch.round(v), v)  # the 8-bit values read
    y = w[0] * v[:, 0:1] + w[1] * v[:, 1:2] + w[2] * v[:, 2:3]
    if rule == "matlab":  # uint8 result: round half away from zero
        y = torch.floor(y + 0.5)
    elif rule == "cv2":
        y = torch.round(y)
    return divide(y, 255).clamp(0, 1).to(x.dtype)  # times 255 again later: the 8-bit values on every device


_RULES = {
    "vifb": "each channel of F against the same channel of an RGB source (or the grey source), channel "
    "scores averaged; Spatial_frequency on the channels side by side",
    "mefb": "each channel of F against the same channel of an RGB source (or the grey source), channel "
    "scores averaged; NMI, TE, Qc, Qw, Qy on F's first channel when both sources are grey; MEF_SSIM on rgb2gray",
    "tang": "MATLAB rgb2gray of every RGB image, rounded to 8 bits",
    "cddfuse": "OpenCV grey (0.299 R + 0.587 G + 0.114 B) of every RGB image, rounded to 8 bits",
    "liu": "the Y channel of YCbCr (BT.601) of every RGB image",
}


def colour_rules(names) -> dict[str, str]:
    """How RGB images are scored, for each lineage of the resolved metric ``names`` (in order)."""
    return {lin: _RULES[lin] for lin in dict.fromkeys(METRICS[n].lineage for n in names)}


def _channel(x: torch.Tensor, k: int) -> torch.Tensor:
    return x if x.shape[1] == 1 else x[:, k : k + 1]


def colour_score(fused, x1, x2, names, **kw) -> dict[str, torch.Tensor]:
    """:func:`metrics.score` for images with 1 or 3 channels ((B, C, H, W) in [0, 1]), with each
    lineage's colour rule; ``names`` are resolved metric names. Grey inputs go straight to ``score``."""
    if max(fused.shape[1], x1.shape[1], x2.shape[1]) == 1:
        return score(fused, x1, x2, metrics=names, **kw)
    cols = column_names(names)
    out = {}
    for lineage in dict.fromkeys(METRICS[n].lineage for n in names):
        group = [n for n in names if METRICS[n].lineage == lineage]
        if lineage in ("vifb", "mefb"):
            per = [
                score(_channel(fused, k), _channel(x1, k), _channel(x2, k), metrics=group, **kw)
                for k in range(fused.shape[1])
            ]
            for n in group:
                col, key = cols[n], METRICS[n].key
                k_cols = [p[_col(p, n)] for p in per]
                if lineage == "mefb" and key == "MEF_SSIM":  # its wrapper converts every image with rgb2gray
                    grey = [_grey(x, _MATLAB, "matlab") for x in (fused, x1, x2)]
                    out[col] = next(iter(score(*grey, metrics=[n], **kw).values()))
                elif lineage == "mefb" and key in MEFB_FIRST_CHANNEL and x1.shape[1] == x2.shape[1] == 1:
                    out[col] = k_cols[0]
                elif lineage == "vifb" and key == "Spatial_frequency" and fused.shape[1] == 3:
                    side = torch.cat([fused[:, k : k + 1] for k in range(3)], dim=-1)
                    wide = [torch.cat([x] * 3, dim=-1) if x.shape[1] == 1 else x for x in (x1, x2)]
                    wide = [
                        torch.cat([x[:, k : k + 1] for k in range(3)], dim=-1) if x.shape[1] == 3 else x for x in wide
                    ]
                    out[col] = next(iter(score(side, *wide, metrics=[n], **kw).values()))
                else:
                    out[col] = torch.stack(k_cols).mean(dim=0)
            continue
        w, rule = {"tang": (_MATLAB, "matlab"), "cddfuse": (_BT601, "cv2")}.get(lineage, (_BT601, "float"))
        got = score(_grey(fused, w, rule), _grey(x1, w, rule), _grey(x2, w, rule), metrics=group, **kw)
        for n in group:
            out[cols[n]] = got[_col(got, n)]
    return {cols[n]: out[cols[n]] for n in names}


def _col(scores: dict, name: str) -> str:
    """The key of metric ``name`` in a ``score`` result computed for its lineage alone."""
    m = METRICS[name]
    return m.key if m.key in scores else name
