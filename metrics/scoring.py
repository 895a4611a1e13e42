"""One entry point that scores a batch with any subset of the registered metrics, sharing their work.

The inputs are checked once; then, chunk by chunk, one :class:`~metrics._workspace.Workspace`
goes to every metric function of :mod:`metrics.registry`, so the 8-bit inputs, the SSIM statistics
and the Sobel responses are computed once per chunk and reused by every metric that needs them.
"""

from __future__ import annotations

import logging

import torch

from metrics import _compile
from metrics._checks import check_triple
from metrics._workspace import Workspace, one_image_twice
from metrics.profiles import get_profile
from metrics.registry import METRICS, column_names, resolve_metrics

log = logging.getLogger("fusionbench.metrics")


def min_image_size(names, profile: str = "upstream") -> int:
    """The smallest image side on which every metric in ``names`` (registered names) is defined
    under ``profile``: ``bench run`` and ``bench eval`` check it before any work, :func:`score` on
    every call."""
    need = max([11] + [METRICS[k].min_size for k in names])
    if "Q_P" in names and get_profile(profile).piella_map == "toolbox":
        need = max(need, 21)  # the shipped toolbox's Piella maps are 21x21 blocks
    return need


def score(
    fused: torch.Tensor,
    x1: torch.Tensor,
    x2: torch.Tensor,
    metrics=None,
    profile: str = "upstream",
    quantize: bool | None = None,
    paper_inputs: bool = False,
    xy_constants: str = "liu",
    fmi_window: int = 3,
    chunk_size: int | None = None,
    workload: int | None = None,
    lineages=None,
    notes: list | None = None,
) -> dict[str, torch.Tensor]:
    """Score a batch with any subset of the registered metrics; returns ``{name: Tensor[B]}``.

    Images: float (B, 1, H, W) in [0, 1], on any device; x1 = T1-Gd, x2 = FLAIR. ``metrics``: names
    from :data:`metrics.registry.METRICS` (default: all of them, in table order). ``chunk_size``
    scores that many images at a time, so memory does not grow with B. On a CPU, many pairs run
    compiled kernels (:mod:`metrics._compile`, ``FUSIONBENCH_COMPILE``); ``workload`` is the number
    of pairs the caller scores in all, batch by batch (default: this call's B), so that every batch
    of one run, and every rank of a distributed run, makes the same choice.

    ``lineages`` (``"vifb"``, ``"tang,cddfuse"``, ...) scores every metric of those lineages
    (:mod:`metrics.lineage`) on the 8-bit images; their keys are the originals' names, prefixed
    ``lineage:`` when several lineages are scored (:func:`metrics.registry.column_names`). Where an
    original gives NaN or errors, the value is NaN and the reason is logged (``fusionbench.metrics``)
    and appended to ``notes`` as ``(column, sample indices, reason)``.
    """
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        # a negative step sliced off the last images: fewer rows than images, silently
        raise ValueError(f"chunk_size = {chunk_size!r}: expected a whole number >= 1, or None for the whole batch")
    names = resolve_metrics(metrics, lineages)
    cols = column_names(names)
    extra = {"xy_constants": xy_constants, "fmi_window": fmi_window}
    n = fused.shape[0] if isinstance(fused, torch.Tensor) else 0
    step = chunk_size or n
    need = min_image_size(names, profile)
    check_triple(fused, x1, x2, need, chunk=step)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in names}
    compiled = _compile.active() or _compile.wanted(workload or n, fused.device)
    with _compile.compiling(compiled):
        for s in range(0, n, max(1, step)):
            batch = [x[s : s + step] for x in (fused, x1, x2)]
            _score_chunk(batch, s, names, cols, profile, quantize, paper_inputs, extra, parts, notes)
    return {cols[k]: torch.cat(v) for k, v in parts.items()}


def _score_chunk(batch, chunk_start, names, cols, profile, quantize, paper_inputs, extra, parts, notes) -> None:
    n = batch[0].shape[0]
    if one_image_twice(batch):  # a lone image gets the scores it gets in any batch
        batch = [torch.cat([x, x]) for x in batch]
    ws = Workspace(*batch, profile, quantize, paper_inputs)
    for k in names:
        info = METRICS[k]
        options = {mine: extra[ours] for ours, mine in info.options}
        parts[k].append(info.fn(*batch, profile=profile, quantize=quantize, work=ws, **options)[:n])
    noted: dict[str, set] = {}
    for name, idx, reason in ws.lineage_notes():
        noted.setdefault(name, set()).update(idx)
        if any(i < n for i in idx):
            _note(cols.get(name, name), [chunk_start + i for i in idx if i < n], reason, notes)
    # No silent NaN or inf: a value the metric's own arithmetic made non-finite is noted too. One
    # check of all the chunk's values first (one device sync), then per metric only if one is not finite.
    if not bool(torch.isfinite(torch.stack([parts[k][-1].double() for k in names])).all()):
        for k in names:
            bad = [
                i for i in torch.nonzero(~torch.isfinite(parts[k][-1])).flatten().tolist() if i not in noted.get(k, ())
            ]
            if bad:
                _note(cols.get(k, k), [chunk_start + i for i in bad], NONFINITE, notes)


NONFINITE = (
    "the original's own formula divides by zero or takes the log of 0 on these images (e.g. constant images, "
    "images without edges, or F equal to what it is compared with: PSNR is then infinite)"
)


def is_nan(reason: str) -> str:
    """How a note's log line says what the value is: "is NaN", or "is not finite" (NaN or infinite,
    as the metric's own arithmetic gave it) for :data:`NONFINITE`."""
    return "is not finite" if reason.startswith(NONFINITE) else "is NaN"


def _note(column: str, idx: list[int], reason: str, notes: list | None) -> None:
    if notes is not None:
        notes.append((column, idx, reason))
    log.warning("%s %s for %d image(s) %s: %s", column, is_nan(reason), len(idx), idx[:10], reason)
