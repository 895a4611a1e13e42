"""Figures: the sample grid of the paper's Fig. 3, the decomposition grid of its Fig. 4, metric
distributions, learning curves, and the per-seed means of a table over seeds.

Drawn with matplotlib's object API (``matplotlib.figure.Figure``), never ``pyplot``: no global
backend is switched, so calling these from a notebook leaves the user's matplotlib as it was.
"""

from __future__ import annotations

import os

import numpy as np

from baselines.registry import display_name
from benchmark.atomic import atomic_path


def Figure(*args, **kwargs):  # noqa: N802 - matplotlib's class, imported when a figure is drawn
    """``matplotlib.figure.Figure``, imported on first use: matplotlib takes ~0.35 s to import and
    ``bench eval`` draws no figure."""
    from matplotlib.figure import Figure as _Figure

    return _Figure(*args, **kwargs)


def _save(fig, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def sample_grid(path: str, x1: np.ndarray, x2: np.ndarray, fused: dict[str, np.ndarray], title: str = "") -> None:
    """Rows: validation pairs; columns: T1-Gd, FLAIR, then each model. Arrays (n, H, W) in [0, 1]."""
    cols = [("T1-Gd", x1), ("FLAIR", x2)] + [(display_name(k), v) for k, v in fused.items()]
    n = x1.shape[0]
    fig = Figure(figsize=(1.6 * len(cols), 1.6 * n + (0.3 if title else 0)))
    axes = fig.subplots(n, len(cols), squeeze=False)
    for r in range(n):
        for c, (label, imgs) in enumerate(cols):
            ax = axes[r, c]
            ax.imshow(imgs[r], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def decomposition_grid(path: str, x1, x2, fused, x1_hat, x2_hat) -> None:
    """The paper's Fig. 4: T1-Gd, FLAIR, fused, decomposed T1-Gd, decomposed FLAIR per row."""
    cols = [("T1-Gd", x1), ("FLAIR", x2), ("Fused", fused), ("Decomposed T1-Gd", x1_hat), ("Decomposed FLAIR", x2_hat)]
    n = x1.shape[0]
    fig = Figure(figsize=(1.8 * len(cols), 1.8 * n))
    axes = fig.subplots(n, len(cols), squeeze=False)
    for r in range(n):
        for c, (label, imgs) in enumerate(cols):
            axes[r, c].imshow(imgs[r], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(label, fontsize=8)
    fig.tight_layout()
    _save(fig, path)


DISTRIBUTIONS_PER_ROW = 7  # Table 1's seven columns in one row, as before; more wrap onto further rows


def distributions(path: str, scores, cols, models) -> None:
    """Per-image distribution of each metric per model (box plots), models in table order."""
    from matplotlib.ticker import MaxNLocator

    per_row = min(len(cols), DISTRIBUTIONS_PER_ROW)  # --lineage all's 69 panels in one row: 19,734 px wide
    rows = -(-len(cols) // per_row)
    fig = Figure(figsize=(2.6 * per_row, (0.35 * len(models) + 1.2) * rows))
    axes = fig.subplots(rows, per_row, squeeze=False)
    for ax in axes.flat[len(cols) :]:
        ax.set_visible(False)
    for i, (ax, c) in enumerate(zip(axes.flat, cols)):
        data = [scores.loc[scores.model == m, c].to_numpy(dtype=float) for m in models]
        data = [v[np.isfinite(v)] for v in data]  # as the tables count them: an original's -inf PSNR of an
        # all-black image made the box plot's percentiles warn "invalid value encountered in subtract"
        ax.boxplot(
            data,
            orientation="horizontal",
            tick_labels=[display_name(m) for m in models],
            showfliers=True,
            flierprops={"markersize": 2},
        )
        ax.invert_yaxis()
        ax.set_title(c, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # a narrow range (Q_NCIE 0.805-0.820) ran its labels together
        if i % per_row:  # the models named once a row
            ax.set_yticklabels([])
    fig.tight_layout()
    _save(fig, path)


def seed_lines(path: str, table, cols, seeds, lower=()) -> None:
    """A table over seeds drawn: per metric, each seed's mean per model as one line across the
    models (table order), and the mean over the seeds as a black bar. Lines that run parallel are a
    difference every seed repeats (what the paired test over seeds finds, however far apart the seeds
    lie); lines that cross are one a rerun may reverse. ``lower``: metrics where lower is better."""
    from matplotlib.ticker import MaxNLocator

    models = list(table.index)
    per_row = min(len(cols), DISTRIBUTIONS_PER_ROW)
    rows = -(-len(cols) // per_row)
    fig = Figure(figsize=(max(2.6, 0.4 * len(models) + 1.2) * per_row, 2.9 * rows))
    axes = fig.subplots(rows, per_row, squeeze=False)
    for ax in axes.flat[len(cols) :]:
        ax.set_visible(False)
    x = np.arange(len(models))
    for i, (ax, c) in enumerate(zip(axes.flat, cols)):
        for seed in seeds:
            ax.plot(x, table[f"{c}_seed{seed}"].to_numpy(dtype=float), "-o", ms=3, lw=1, label=f"seed {seed}")
        ax.plot(x, table[c].to_numpy(dtype=float), "_", color="black", ms=14, mew=2, label="mean")
        ax.set_xticks(x, [display_name(m) for m in models], rotation=45, ha="right", fontsize=7)
        ax.set_title(c + (" (lower is better)" if c in lower else ""), fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))  # Q_NCIE's 0.8070-0.8073 ran to seven labels
        if i == 0:
            ax.legend(fontsize=6)
    fig.tight_layout()
    _save(fig, path)


def _log_ticks(lo: float, hi: float) -> list[float]:
    """A few round values (1, 2, 5 times a power of ten, or every digit where those are too few)
    inside [lo, hi] for a log axis: matplotlib's own labels either ran together (4x10^1 6x10^1,
    each minor tick labelled) or, with decades only, left a loss axis inside one decade without a
    number."""
    if not (0 < lo < hi and np.isfinite(hi)):
        return []
    for subs in ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [
            float(f"{m * 10.0**k:.12g}")
            for k in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
            for m in subs
            if lo <= m * 10.0**k <= hi
        ]
        if len(ticks) >= 2:
            break
    else:  # a range inside one digit step (0.61-0.69): its ends, rounded inwards to its own scale
        step = 10.0 ** np.floor(np.log10(hi - lo))
        ticks = sorted({float(f"{np.ceil(lo / step) * step:.12g}"), float(f"{np.floor(hi / step) * step:.12g}")})
    return ticks if len(ticks) <= 6 else ticks[:: -(-len(ticks) // 6)]


def _label_log_axis(axis, limits) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ticks = _log_ticks(*sorted(limits))
    if ticks:
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def training_curves(path: str, histories: dict[str, list[dict]]) -> None:
    """One panel per trained model: train and validation loss against optimiser steps (log x), and
    every extra term a model records (FusionINN: fusion / latent / decomposition terms, and its
    validation decomposition SSIM on a second axis). ``histories``: name -> ``train.json`` history."""
    names = [n for n, h in histories.items() if h]
    if not names:
        return
    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    fig = Figure(figsize=(3.4 * cols, 2.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        h = histories[name]
        steps = [r.get("step", r["epoch"]) for r in h]
        ax.plot(steps, [r["train_loss"] for r in h], "-o", ms=2.5, lw=1.2, label="train")
        ax.plot(steps, [r["val_loss"] for r in h], "-o", ms=2.5, lw=1.2, label="validation")
        terms = sorted(k for k in h[0] if k.startswith("train_") and k != "train_loss")
        for k in terms:
            ax.plot(steps, [r.get(k, float("nan")) for r in h], "--", lw=0.9, label=k.replace("train_", "train "))
        scores = sorted(k for k in h[0] if k.startswith("val_") and k.endswith(("_x1", "_x2")) and "ssim" in k)
        if scores:
            ax2 = ax.twinx()
            for k in scores:
                ax2.plot(
                    steps,
                    [r.get(k, float("nan")) for r in h],
                    ":",
                    lw=1.2,
                    label=k.replace("val_", "val ").replace("_", " "),
                )
            ax2.set_ylim(0, 1)
            ax2.set_ylabel("SSIM", fontsize=7)
            ax2.tick_params(labelsize=6)
            ax2.legend(fontsize=5, loc="center right")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _label_log_axis(ax.xaxis, ax.get_xlim())
        _label_log_axis(ax.yaxis, ax.get_ylim())
        ax.set_xlabel("optimiser steps", fontsize=7)
        ax.set_ylabel("loss", fontsize=7)
        ax.set_title(display_name(name), fontsize=9)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5, loc="lower left")
    fig.tight_layout()
    _save(fig, path)
