"""The metric registry: each metric's callable, direction, reference and lineage (pyiqa style).

``get_metric("Q_FMI")`` returns the pure function ``(fused, x1, x2, *, profile, quantize, work,
...) -> Tensor[B]``; ``list_metrics()`` the names in table order; :func:`metrics.score` dispatches
through this table, handing every metric the batch's shared workspace.

The five Table 1 metrics are ranked (higher is better: bold and paired tests in the leaderboards).
``Q_SSIM_x1`` and ``Q_SSIM_x2`` are Q_SSIM's two halves, SSIM of the fused image against each
source (the paper's Table 2 reports them): diagnostics shown beside the five but not ranked, since a
copy of one source maximises one of them; together they show whether a fuser combines both.
All seven are Zheng Liu's toolbox lineage (``liu``), in the three profiles of :mod:`metrics.profiles`.

The other lineages (:mod:`metrics.lineage`: ``vifb``, ``tang``, ``mefb``, ``cddfuse``) register
every metric as ``<lineage>:<key>``, ``key`` being the original's own name. Their columns
(:func:`column_names`) are the bare keys when one lineage is scored and ``<lineage>:<key>`` when
several are; :func:`metric_info` finds a metric from either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from metrics import _native
from metrics._workspace import Workspace, batch_invariant
from metrics.fmi import q_fmi
from metrics.lineage import LINEAGES, SOURCES, SPECS, Spec
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
    key: str = ""  # the original's own name (lineage metrics; the column when one lineage is scored)
    checked: bool = True  # False: implemented from the original's definition, not checked against its output
    compiled: bool = False  # True: runs a compiled kernel on a CPU for large workloads (metrics._compile)
    # True: a hand-written kernel (metrics._native: Fast-FMI's windows, phase congruency's sums) replaces
    # that compiled one on a CPU where it builds
    native: bool = False

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    def runs_compiled(self) -> bool:
        """Whether scoring this metric on a CPU (large workload) compiles a kernel with inductor: a
        ``compiled`` metric, unless its kernel is the hand-written one, built on this machine."""
        return self.compiled and not (self.native and _native.available())


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
            compiled=True,
            native=True,
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
            "SSIM of F against T1-Gd (Q_SSIM's first half)",
            ranked=False,
            fn=q_ssim_x1,
        ),
        MetricInfo(
            "Q_SSIM_x2",
            True,
            "Wang et al., IEEE TIP 2004",
            "SSIM of F against FLAIR (Q_SSIM's second half)",
            ranked=False,
            fn=q_ssim_x2,
        ),
    )
}

TABLE_ORDER = tuple(METRICS)  # the paper's Table 1 column order, then the per-source diagnostics
ALL_LINEAGES = ("liu", *LINEAGES)


def _lineage_fn(spec: Spec, name: str):
    @batch_invariant
    def fn(fused, x1, x2, profile: str = "upstream", quantize: bool | None = None, work: Workspace | None = None):
        work = Workspace.of(work, fused, x1, x2, profile, quantize, spec.min_size)
        return spec(work.lineage_images(), name)

    fn.__name__ = name.replace(":", "_")
    fn.__doc__ = f"{name}: {spec.description} (``{spec.key}`` of {name.split(':')[0]}), ``Tensor[B]``."
    return fn


for _lin, _specs in SPECS.items():
    for _s in _specs:
        _name = f"{_lin}:{_s.key}"
        METRICS[_name] = MetricInfo(
            _name,
            _s.higher_is_better,
            _s.reference,
            _s.description,
            fn=_lineage_fn(_s, _name),
            min_size=_s.min_size,
            lineage=_lin,
            key=_s.key,
            checked=_s.checked,
            compiled=_s.compiled,
            native=_s.native,
        )


def list_metrics(lineage: str | None = None) -> list[str]:
    """Every registered metric name (or those of one lineage), in table order."""
    return [k for k, m in METRICS.items() if lineage is None or m.lineage == lineage]


def source_of(lineage: str) -> str:
    """Where a lineage's original code lives (repository @ commit, files)."""
    return SOURCES.get(lineage, "zhengliu6699/imageFusionMetrics (Liu et al., IEEE TPAMI 2012), see docs/reference.md")


def column_names(names) -> dict[str, str]:
    """Column name per metric: bare keys for one lineage, ``lineage:key`` for several; Liu's as named."""
    others = {METRICS[n].lineage for n in names} - {"liu"}
    return {n: (METRICS[n].key if len(others) == 1 and METRICS[n].lineage != "liu" else n) for n in names}


def lineage_columns(columns) -> dict[str, list[str]]:
    """The inverse of :func:`column_names` on a scores table's metric columns: ``{lineage: [column,
    ...]}`` in the columns' order. A bare key belongs to the one lineage, besides Liu's, that has
    every bare key of the table; where several have them all (a few shared keys, e.g. ``EN,SD``
    alone), the bare keys are grouped under ``""``."""
    out: dict[str, list[str]] = {}
    bare = [c for c in columns if c not in METRICS]
    owners = [lin for lin in LINEAGES if all(f"{lin}:{c}" in METRICS for c in bare)]
    for c in columns:
        lineage = METRICS[c].lineage if c in METRICS else (owners[0] if len(owners) == 1 else "")
        out.setdefault(lineage, []).append(c)
    return out


def metric_info(column: str) -> MetricInfo | None:
    """The metric behind a scores column: a registered name, or a lineage metric's bare key (the
    same key means the same direction in every lineage; tested)."""
    if column in METRICS:
        return METRICS[column]
    for m in METRICS.values():
        if m.key and m.key == column:
            return m
    return None


def get_metric(name: str) -> Callable:
    """The metric function called ``name`` (case-insensitive; ``ssim`` finds ``Q_SSIM``)."""
    return METRICS[resolve_metrics([name])[0]].fn


def parse_lineages(lineages) -> list[str]:
    """Validate lineage names (a list or comma-separated string; ``all``: every lineage)."""
    if isinstance(lineages, str):
        lineages = [x.strip() for x in lineages.split(",") if x.strip()]
    out = []
    for x in lineages:
        if x.lower() == "all":
            out += [lin for lin in ALL_LINEAGES if lin not in out]
            continue
        if x.lower() not in ALL_LINEAGES:
            raise ValueError(f"unknown lineage {x!r}; known lineages: {', '.join(ALL_LINEAGES)} (or all)")
        if x.lower() not in out:
            out.append(x.lower())
    return out


def resolve_metrics(names=None, lineages=None) -> list[str]:
    """Validate metric names (a list or comma-separated string; None or 'all' = the Table 1 set,
    Liu's lineage). ``lineages`` (e.g. ``"vifb,cddfuse"``) adds every metric of each. A name is a
    registered one (``Q_SSIM``, ``vifb:Qabf``), or, with lineages, a bare key taken from every
    lineage given that has it: ``SSIM`` with ``tang`` is ``tang:SSIM`` (Liu's ``Q_SSIM`` only
    where ``liu`` is given or no lineage is), ``Qabf`` with ``vifb,cddfuse`` is both lineages'
    Qabf. A lineage named explicitly must keep at least one of its metrics."""
    chosen = parse_lineages(lineages) if lineages else []
    if names is None or names == "all" or names == ["all"]:
        if chosen:
            return [k for k in METRICS if METRICS[k].lineage in chosen]
        return list(TABLE_ORDER)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise ValueError(
            "no metric named; give comma-separated metric names (bench list shows them), or leave out "
            "--metrics for the Table 1 five (or every metric of --lineage)"
        )
    lookup = {k.lower(): k for k in METRICS}
    out = []
    for n in names:
        keys = [lookup[n.lower()]] if n.lower() in lookup else []
        for lin in chosen if not keys else []:
            for cand in (f"{lin}:{n.lower()}",) if lin != "liu" else (n.lower(), "q_" + n.lower()):
                if cand in lookup and METRICS[lookup[cand]].lineage == lin:
                    keys.append(lookup[cand])
                    break
        if not keys and not chosen and "q_" + n.lower() in lookup:
            keys = [lookup["q_" + n.lower()]]  # ``ssim`` finds ``Q_SSIM``
        if not keys:
            elsewhere = [lin for lin in LINEAGES if lin not in chosen and f"{lin}:{n.lower()}" in lookup]
            found = (
                f"; {n!r} is a metric of {', '.join(elsewhere)}: add --lineage {elsewhere[0]}, or name it "
                f"{lookup[f'{elsewhere[0]}:{n.lower()}']}"
                if elsewhere
                else ""
            )
            if chosen:
                have = "; ".join(
                    f"{lin}: {', '.join(METRICS[k].key or k for k in list_metrics(lin))}" for lin in chosen
                )
                raise ValueError(f"unknown metric {n!r} in the lineages {', '.join(chosen)}; they have {have}{found}")
            raise ValueError(
                f"unknown metric {n!r}; known metrics: {', '.join(TABLE_ORDER)} and <lineage>:<name> "
                f"for the lineages {', '.join(LINEAGES)} (bench list){found}"
            )
        out += keys
    named = [x.strip().lower() for x in (lineages.split(",") if isinstance(lineages, str) else lineages or [])]
    if "all" not in named:
        for lin in chosen:
            if not any(METRICS[k].lineage == lin for k in out):
                raise ValueError(
                    f"lineage {lin!r} was asked for, but none of the metrics {', '.join(names)} is one of its "
                    f"metrics; leave out the metric names to score all of {lin}'s (bench list shows them)"
                )
    return [k for k in METRICS if k in out]
