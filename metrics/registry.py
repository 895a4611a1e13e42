"""The metric registry: each metric's callable, direction, reference and lineage (pyiqa style).

``get_metric("Q_FMI")`` returns the pure function ``(fused, x1, x2, *, profile, quantize, work,
...) -> Tensor[B]``; ``list_metrics()`` the names in table order; :func:`metrics.score` dispatches
through this table, handing every metric the batch's shared workspace.

The five Table 1 metrics are ranked (higher is better: bold and paired tests in the leaderboards).
``Q_SSIM_x1`` and ``Q_SSIM_x2`` are Q_SSIM's two halves, SSIM of the fused image against each
source (the paper's Table 2 reports them): diagnostics shown beside the five but not ranked, since a
copy of one source maximises one of them; together they show whether a fuser combines both.
All seven are Zheng Liu's toolbox lineage (``liu``), in the three profiles of :mod:`metrics.profiles`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from metrics.fmi import q_fmi
from metrics.ncie import q_ncie
from metrics.piella import q_p
from metrics.qabf import q_xy
from metrics.ssim import q_ssim, q_ssim_x1, q_ssim_x2


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool
    reference: str
    description: str
    ranked: bool = True  # bold and paired tests in the leaderboards (False: a diagnostic column)
    fn: Callable | None = field(default=None, repr=False, compare=False)
    options: tuple = ()  # (score() keyword, this metric's keyword) pairs it accepts
    min_size: int = 11  # smallest image side the metric is defined on
    lineage: str = "liu"

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("Q_SSIM", True, "Wang et al., IEEE TIP 2004", "mean SSIM of F against each source", fn=q_ssim),
        MetricInfo(
            "Q_FMI",
            True,
            "Haghighat et al., Comput. Electr. Eng. 2011; Fast-FMI, AICT 2014",
            "feature (pixel) mutual information, 3x3 windows",
            fn=q_fmi,
            options=(("fmi_window", "window"),),
            min_size=3,
        ),
        MetricInfo(
            "Q_NCIE",
            True,
            "Wang, Shen & Jin, Image Fusion (Stathaki ed.) 2008",
            "nonlinear correlation information entropy",
            fn=q_ncie,
            min_size=3,
        ),
        MetricInfo(
            "Q_XY",
            True,
            "Xydeas & Petrovic, Electronics Letters 2000",
            "gradient (edge) preservation Q^AB/F",
            fn=q_xy,
            options=(("xy_constants", "constants"),),
            min_size=3,
        ),
        MetricInfo(
            "Q_P", True, "Piella & Heijmans, ICIP 2003", "saliency-weighted SSIM (Piella index, variant 1)", fn=q_p
        ),
        MetricInfo(
            "Q_SSIM_x1",
            True,
            "Wang et al., IEEE TIP 2004",
            "SSIM of F against T1-Gd (Q_SSIM's first half; diagnostic, not ranked)",
            ranked=False,
            fn=q_ssim_x1,
        ),
        MetricInfo(
            "Q_SSIM_x2",
            True,
            "Wang et al., IEEE TIP 2004",
            "SSIM of F against FLAIR (Q_SSIM's second half; diagnostic, not ranked)",
            ranked=False,
            fn=q_ssim_x2,
        ),
    )
}

TABLE_ORDER = tuple(METRICS)  # the paper's Table 1 column order, then the per-source diagnostics


def list_metrics() -> list[str]:
    """Every registered metric name, in table order."""
    return list(TABLE_ORDER)


def get_metric(name: str) -> Callable:
    """The metric function called ``name`` (case-insensitive; ``ssim`` finds ``Q_SSIM``)."""
    return METRICS[resolve_metrics([name])[0]].fn


def resolve_metrics(names=None) -> list[str]:
    """Validate metric names (a list or comma-separated string; None or 'all' = every metric)."""
    if names is None or names == "all" or names == ["all"]:
        return list(TABLE_ORDER)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    lookup = {k.lower(): k for k in METRICS}
    out = []
    for n in names:
        key = lookup.get(n.lower()) or lookup.get("q_" + n.lower())
        if key is None:
            raise ValueError(f"unknown metric {n!r}; known metrics: {', '.join(TABLE_ORDER)}")
        out.append(key)
    return [k for k in TABLE_ORDER if k in out]
