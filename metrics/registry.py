"""The metric registry: name, direction and reference of each metric.

The five Table 1 metrics are ranked (higher is better: bold and paired tests in the leaderboards).
``Q_SSIM_x1`` and ``Q_SSIM_x2`` are Q_SSIM's two halves, SSIM of the fused image against each
source (the paper's Table 2 reports them): diagnostics shown beside the five but not ranked, since a
copy of one source maximises one of them; together they show whether a fuser combines both.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool
    reference: str
    description: str
    ranked: bool = True  # bold and paired tests in the leaderboards (False: a diagnostic column)

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("Q_SSIM", True, "Wang et al., IEEE TIP 2004", "mean SSIM of F against each source"),
        MetricInfo("Q_FMI", True, "Haghighat et al., Comput. Electr. Eng. 2011; Fast-FMI, AICT 2014", "feature (pixel) mutual information, 3x3 windows"),
        MetricInfo("Q_NCIE", True, "Wang, Shen & Jin, Image Fusion (Stathaki ed.) 2008", "nonlinear correlation information entropy"),
        MetricInfo("Q_XY", True, "Xydeas & Petrovic, Electronics Letters 2000", "gradient (edge) preservation Q^AB/F"),
        MetricInfo("Q_P", True, "Piella & Heijmans, ICIP 2003", "saliency-weighted SSIM (Piella index, variant 1)"),
        MetricInfo("Q_SSIM_x1", True, "Wang et al., IEEE TIP 2004", "SSIM of F against T1-Gd (Q_SSIM's first half; diagnostic, not ranked)", ranked=False),
        MetricInfo("Q_SSIM_x2", True, "Wang et al., IEEE TIP 2004", "SSIM of F against FLAIR (Q_SSIM's second half; diagnostic, not ranked)", ranked=False),
    )
}

TABLE_ORDER = tuple(METRICS)  # the paper's Table 1 column order, then the per-source diagnostics


def resolve_metrics(names=None) -> list[str]:
    """Validate metric names (a list or comma-separated string; None or 'all' = all five)."""
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
