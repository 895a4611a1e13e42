"""fusionbench from Python: run the benchmark, or score fused images, and get DataFrames back.

    import benchmark
    res = benchmark.run(models="mean,max", profile="smoke")      # a RunResult
    res.scores, res.leaderboard, res.path                        # DataFrames and the run folder
    df = benchmark.evaluate(fused, x1, x2)                       # one row per image
    t = benchmark.ablate("k", [3, 1], profile="smoke")           # FusionINN's Table 2 sweep

Stages (``benchmark.running``): data -> training -> running -> reporting; the ``bench`` command
(``benchmark.cli``) is a thin layer over the same functions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from benchmark.config import RunConfig, make_config
    from benchmark.running.evaluate import evaluate_folders
    from benchmark.running.runner import RunResult

__all__ = ["RunConfig", "RunResult", "ablate", "evaluate", "evaluate_folders", "make_config", "run", "run_seeds"]

# Loaded on first use (PEP 562), so that ``bench --help`` and a command's argument errors answer
# at once instead of after importing torch and pandas (1.4 s here).
_LAZY = {
    "RunConfig": "benchmark.config",
    "make_config": "benchmark.config",
    "evaluate_folders": "benchmark.running.evaluate",
    "RunResult": "benchmark.running.runner",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")


def run(models="all", profile: str = "quick", *, progress: bool = True, log=print, **overrides) -> RunResult:
    """Run the benchmark: ``models`` (names or ``"all"``), a ``profile`` and any RunConfig field as a
    keyword (``data="phantom"``, ``epochs=3``, ``out="results"``, ``run_name=...``). Returns a
    :class:`RunResult` with ``.scores`` (every row of ``scores.csv``), ``.leaderboard`` (the slice
    leaderboard), ``.leaderboards`` (all tables) and ``.path`` (the run folder)."""
    from benchmark.config import make_config
    from benchmark.running.runner import run as _run

    return _run(make_config(profile, models=models, **overrides), progress=progress, log=log)


def run_seeds(seeds, models="all", profile: str = "quick", *, progress: bool = True, log=print, **overrides):
    """``bench run --seeds``: the run once per seed (``seeds``: ``[0, 1, 2]`` or ``"0,1,2"``), each an
    ordinary run folder ``<run>-seed<N>``, then the leaderboards over the seeds (mean ± sd of each
    run's means) in ``<run>-seeds``. Returns a ``SeedsResult`` (``.leaderboard``, ``.leaderboards``,
    ``.path``, and ``.runs``, each seed's :class:`RunResult`)."""
    from benchmark.config import make_config
    from benchmark.running.seeds import run_seeds as _run_seeds

    return _run_seeds(make_config(profile, models=models, **overrides), seeds, progress=progress, log=log)


def ablate(param: str, values, profile: str = "quick", *, seeds=None, progress: bool = True, log=print, **overrides):
    """``bench ablate``: FusionINN's Table 2 sweep of ``param`` (alpha | lambda | k | prior) over
    ``values`` (``[0.5, 1.0]`` or ``"0.5,1.0"``), one FusionINN trained per value (the held setting
    once per folder), with any RunConfig field as a keyword (``data=``, ``epochs=``, ``out=``,
    ``run_name=``, ``table_style="paper"``). Returns the table: one row per value, the four SSIMs and
    with the default style their CIs and paired tests (``<column>_lo``, ``_hi``, ``_p``, ``_same``);
    ``.attrs["files"]`` is the stem of its CSV, LaTeX and Markdown files. ``seeds`` (``[0, 1, 2]``):
    the sweep once per seed, and the table over the seeds back (mean ± sd, a paired t-test over the
    seeds), as ``bench ablate --seeds``."""
    from benchmark.config import make_config
    from benchmark.running.ablation import ablate as _ablate
    from benchmark.running.ablation import ablate_seeds

    if not isinstance(values, str):
        values = ",".join(str(v) for v in values)
    cfg = make_config(profile, **overrides)
    if seeds is not None:
        return ablate_seeds(cfg, param, values, seeds, progress=progress, log=log)
    return _ablate(cfg, param, values, progress=progress, log=log)


def _as_images(x, what: str) -> torch.Tensor:
    """(B, H, W), (B, 1, H, W) or colour (B, 3, H, W) / (B, H, W, 3) tensor or array, float in
    [0, 1], uint8 or uint16 (divided by 255 or 65535, as ``bench eval`` reads 8- and 16-bit
    files) -> float (B, C, H, W). One image may also come alone: (H, W), or colour (H, W, 3) (a
    batch of grey images 3 pixels wide would be too small to score, so that shape is not ambiguous)."""
    import numpy as np
    import torch

    want = "(B, H, W), (B, 1, H, W), or colour (B, 3, H, W) or (B, H, W, 3); or one image, (H, W) or (H, W, 3)"
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor or numpy array of shape {want}; got {type(x).__name__}")
    t = t.detach()  # a fuser's output straight from its forward pass; scores carry no gradient
    if t.dtype == torch.uint8:
        t = t.float() / 255
    elif t.dtype == torch.uint16:
        t = (t.double() / 65535).float()  # as benchmark.data.imageio reads a 16-bit PNG
    elif not t.is_floating_point():
        raise ValueError(f"{what}: dtype {t.dtype}; expected float images in [0, 1], uint8 or uint16")
    if t.ndim == 2:  # one grey image
        t = t[None, None]
    elif t.ndim == 3 and t.shape[-1] == 3 and min(t.shape[:2]) > 3:  # one colour image, channels last
        t = t.permute(2, 0, 1)[None].contiguous()
    elif t.ndim == 3:
        t = t[:, None]
    elif t.ndim == 4 and t.shape[1] not in (1, 3) and t.shape[-1] == 3:  # channels last (image stacks)
        t = t.permute(0, 3, 1, 2).contiguous()
    if t.ndim != 4 or t.shape[1] not in (1, 3):
        raise ValueError(f"{what}: shape {tuple(t.shape)}; expected {want}")
    if t.shape[0] == 0:
        raise ValueError(f"{what}: an empty batch, shape {tuple(t.shape)}; expected at least one image")
    return t


def evaluate(
    fused,
    x1,
    x2,
    metrics=None,
    metric_profile: str = "upstream",
    quantize: bool | None = None,
    device: str | None = None,
    chunk_size: int = 16,
    lineage=None,
    labels=None,
) -> pd.DataFrame:
    """Score fused images against their sources; one row per image (column ``index``), one column
    per metric. ``fused`` may also be a dict ``{method: images}`` (rows then carry ``model``).

    Images: tensors or arrays, (B, H, W) or (B, 1, H, W), float in [0, 1], uint8 or uint16, or one
    image as (H, W); x1 = T1-Gd, x2 = FLAIR. Colour images ((B, 3, H, W) or (B, H, W, 3), one as
    (H, W, 3); MRI-PET, MRI-SPECT) are scored with each lineage's own rule, as ``bench eval`` scores
    them (:mod:`metrics.colour`). ``metrics``: names or None for all; ``metric_profile``: upstream |
    intended | fusioninn; ``lineage``: score another evaluation code's metric set instead
    (``"cddfuse"``, ``"vifb,tang"``). ``labels``: label maps (B, H, W) ((H, W) for one image),
    BraTS labels with 0 = background: each image is then also scored inside its tumour's box, as
    ``bench run`` scores it (a ``region`` column, ``slice`` or ``tumour``).
    """
    import numpy as np
    import pandas as pd

    from baselines.loading import pick_device  # worded for the keyword (device='cpu'), not --device
    from metrics._checks import check_images
    from metrics.colour import colour_score
    from metrics.registry import resolve_metrics

    names = resolve_metrics(metrics, lineage)

    a, b = _as_images(x1, "x1"), _as_images(x2, "x2")
    boxes = _tumour_boxes(labels, a) if labels is not None else None
    methods = fused if isinstance(fused, dict) else {None: fused}
    if not methods:
        raise ValueError("fused: an empty dict; expected {method: images} with at least one method")
    frames = []
    for name, f in methods.items():
        what = f"fused[{name!r}]" if name is not None else "fused"
        f = _as_images(f, what)
        if (f.shape[0], *f.shape[2:]) != (a.shape[0], *a.shape[2:]):  # the metrics' own check names no method
            raise ValueError(
                f"{what}: shape {tuple(f.shape)}; expected {a.shape[0]} image(s) of {a.shape[2]}x{a.shape[3]}, like x1"
            )
        check_images(what, f.reshape(f.shape[0], 1, -1, f.shape[-1]))  # finite, in [0, 1]; colour's channels stacked
        dev = pick_device(device) if device else f.device
        three = (f.to(dev), a.to(dev), b.to(dev))

        def scored(*imgs):  # grey images go straight to metrics.score
            s = colour_score(*imgs, names, profile=metric_profile, quantize=quantize, chunk_size=chunk_size)
            return pd.DataFrame({k: v.double().cpu().numpy() for k, v in s.items()})

        df = scored(*three)
        df.insert(0, "index", np.arange(len(df)))
        if boxes is not None:
            from benchmark.data.regions import crop, region_groups

            df.insert(1, "region", "slice")
            parts = []
            for pos in region_groups(boxes).values():  # one batch per box size
                inside = scored(*(crop(x, boxes, pos) for x in three))
                inside.insert(0, "index", pos)
                inside.insert(1, "region", "tumour")
                parts.append(inside)
            if parts:  # in image order, as the slices (the batches came by box size)
                df = pd.concat([df, pd.concat(parts).sort_values("index", kind="stable")], ignore_index=True)
        if name is not None:
            df.insert(0, "model", name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _tumour_boxes(labels, like):
    """The tumour box of each image (:func:`benchmark.data.regions.tumour_boxes`) from (B, H, W)
    integer label maps shaped like the images ``like`` (B, C, H, W)."""
    import numpy as np
    import torch

    from benchmark.data.regions import tumour_boxes

    t = torch.from_numpy(np.ascontiguousarray(labels)) if isinstance(labels, np.ndarray) else labels
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"labels: expected a tensor or array of shape (B, H, W); got {type(labels).__name__}")
    if t.is_floating_point() and not bool((t == t.round()).all()):  # nibabel's get_fdata() is float
        raise ValueError("labels: non-integer values; expected integer labels (0 = background) or a boolean mask")
    if t.ndim == 4 and t.shape[1] == 1:
        t = t[:, 0]
    elif t.ndim == 2 and like.shape[0] == 1:  # one image's label map
        t = t[None]
    want = (like.shape[0], *like.shape[2:])
    if tuple(t.shape) != want:
        raise ValueError(f"labels: shape {tuple(t.shape)}; expected {want}, one label map per image")
    return tumour_boxes(t.cpu())
