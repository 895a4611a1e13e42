"""Tumour-region scores: every metric also inside a box around the tumour.

Where labels exist (phantom, HDF5 ``seg``), the tumour mask is labels 1, 2 and 4 dilated by
``dilate`` pixels (5). The toolbox metrics need a rectangle (Q_FMI's windows, Q_NCIE's
histograms, the SSIM maps), so the region is the square box around the dilated mask's bounding
box: side = the box's longer side, at least ``min_side`` (48) pixels and rounded up to a multiple
of 8, centred on the tumour and shifted to lie inside the image. The same box crops F, x1 and x2,
which are then scored like whole slices (``region=tumour`` rows beside ``region=slice``).
Images without tumour labels get no tumour row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def tumour_boxes(labels: torch.Tensor, dilate: int = 5, min_side: int = 48) -> list:
    """One ``(row, col, side)`` box per image of ``labels`` (B, H, W), or None without tumour."""
    mask = (labels > 0).float()[:, None]
    if dilate > 0:
        mask = F.max_pool2d(mask, 2 * dilate + 1, stride=1, padding=dilate)
    h, w = labels.shape[-2:]
    out = []
    for m in mask[:, 0] > 0:
        rows, cols = torch.nonzero(m.any(dim=1)).flatten(), torch.nonzero(m.any(dim=0)).flatten()
        if rows.numel() == 0:
            out.append(None)
            continue
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        side = max(min_side, r1 - r0 + 1, c1 - c0 + 1)
        side = min(-(-side // 8) * 8, h, w)
        rc, cc = (r0 + r1) // 2, (c0 + c1) // 2
        r = min(max(0, rc - side // 2), h - side)
        c = min(max(0, cc - side // 2), w - side)
        out.append((r, c, side))
    return out


def region_groups(boxes) -> dict:
    """Image positions grouped by box side, so each group is scored as one batch."""
    groups: dict = {}
    for j, b in enumerate(boxes):
        if b is not None:
            groups.setdefault(b[2], []).append(j)
    return groups


def crop(x: torch.Tensor, boxes, idx) -> torch.Tensor:
    return torch.stack(
        [x[j, :, boxes[j][0] : boxes[j][0] + boxes[j][2], boxes[j][1] : boxes[j][1] + boxes[j][2]] for j in idx]
    )
