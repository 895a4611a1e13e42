"""Statistics for leaderboards: bootstrap confidence intervals and paired tests against the best.

* 95% CI of each model's mean: percentile bootstrap over images (seeded; ``n_boot`` resamples).
* Against the best model of each column (by the metric's direction): a paired Wilcoxon
  signed-rank test over the same images (scipy, two-sided, zero differences dropped), with Holm's
  step-down correction across the other models of that column. A model whose adjusted p-value is
  >= 0.05 is "not significantly different from the best" (marked in the tables).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd


def bootstrap_ci(values, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (1-D)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    if v.size == 1:
        return float(v[0]), float(v[0])
    means = np.empty(n_boot)
    s = 0
    for idx in _resamples(v.size, n_boot, seed):
        means[s : s + len(idx)] = v[idx].mean(axis=1)
        s += len(idx)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def _resamples(n: int, n_boot: int, seed: int):
    """The bootstrap's resampled indices of ``n`` values, in chunks of up to 256 resamples (bounded memory
    for large n), from the generator seeded with ``seed``: kept (:func:`_kept_resamples`) where they are
    at most 4 Mi indices, for every column of a table has the same images, and drawing them took three
    quarters of an interval's time."""
    if n * n_boot <= 1 << 22:
        return _kept_resamples(n, n_boot, seed)
    return _draw_resamples(n, n_boot, seed)


@functools.lru_cache(maxsize=2)
def _kept_resamples(n: int, n_boot: int, seed: int) -> tuple:
    kept = tuple(idx.astype(np.int32) for idx in _draw_resamples(n, n_boot, seed))  # the same indices, 16 MiB at most
    for idx in kept:
        idx.setflags(write=False)
    return kept


def _draw_resamples(n: int, n_boot: int, seed: int):
    rng = np.random.default_rng(seed)
    for s in range(0, n_boot, 256):
        yield rng.integers(0, n, size=(min(256, n_boot - s), n))


def holm(pvalues: dict) -> dict:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    items = sorted(pvalues.items(), key=lambda kv: kv[1])
    m = len(items)
    out, running = {}, 0.0
    for i, (k, p) in enumerate(items):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def paired_pvalues(wide: pd.DataFrame, best: str, test: str = "wilcoxon") -> dict:
    """Holm-adjusted p-values of every column of ``wide`` (rows: the pairing units, images or
    seeds; columns: models) against ``best``: a paired Wilcoxon signed-rank test (``test="wilcoxon"``,
    over images) or a paired t-test (``"t"``, over seeds: with three seeds no rank test can fall under
    0.05, the smallest two-sided Wilcoxon p being 0.25). No pairs or no difference: p = 1; a
    difference equal in every pair (no spread for the t-test): p = 0."""
    raw = {}
    for m in wide.columns:
        if m == best:
            continue
        pair = wide[[best, m]].dropna()
        d = (pair[best] - pair[m]).to_numpy()
        if len(d) == 0 or np.all(d == 0) or (test == "t" and len(d) < 2):
            raw[m] = 1.0
            continue
        from scipy import stats  # imported here: ~0.8 s, and a table of one fuser has no paired test

        if test == "t":
            raw[m] = 0.0 if np.all(d == d[0]) else float(stats.ttest_rel(pair[best], pair[m]).pvalue)
        else:
            raw[m] = float(stats.wilcoxon(pair[best], pair[m], zero_method="wilcox", alternative="two-sided").pvalue)
    return holm(raw) if raw else {}


def image_key(scores: pd.DataFrame) -> str:
    for k in ("index", "name"):
        if k in scores.columns:
            return k
    raise ValueError("scores table has neither an 'index' nor a 'name' column to pair images across models")


def wide_tables(scores: pd.DataFrame, key: str, cols) -> dict:
    """Each column's table of images (``key``) x models, as ``scores.pivot_table(index=key, columns="model",
    values=c, aggfunc="first")`` gives it (a model's first value of an image that is not NaN; images and
    models with none left out), from one grouping for all ``cols``: a pivot a column took ~13 ms, a quarter
    of a second of a 20-metric ``bench eval``'s end."""
    cols = list(cols)
    if not cols:
        return {}
    first = scores.groupby([key, "model"])[cols].first()
    return {c: first[c].unstack("model").dropna(how="all").dropna(how="all", axis=1) for c in cols}


def add_statistics(
    table: pd.DataFrame,
    scores: pd.DataFrame,
    cols,
    higher_is_better,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Add ``<col>_lo``, ``<col>_hi`` (95% CI), ``<col>_p`` (Holm-adjusted vs the best) and
    ``<col>_same`` (True where not significantly different from the best, and for the best)."""
    key = image_key(scores)
    out = table.copy()
    extra = {}
    wides = wide_tables(scores, key, [c for c in cols if table[c].notna().any()])
    for c in cols:
        if not table[c].notna().any():  # no model has a value (an original that errors on every image)
            for suffix in ("lo", "hi", "p"):
                extra[f"{c}_{suffix}"] = pd.Series(np.nan, index=table.index)
            extra[f"{c}_same"] = pd.Series(False, index=table.index)
            continue
        wide = wides[c]
        lo, hi = {}, {}
        for m in table.index:
            lo[m], hi[m] = bootstrap_ci(wide[m].to_numpy() if m in wide else [], n_boot, seed)
        extra[f"{c}_lo"] = pd.Series(lo)
        extra[f"{c}_hi"] = pd.Series(hi)
        means = table[c]
        best = means.idxmax() if higher_is_better(c) else means.idxmin()
        p = paired_pvalues(wide[[m for m in table.index if m in wide]], best) if best in wide else {}
        extra[f"{c}_p"] = pd.Series({m: (np.nan if m == best else p.get(m, np.nan)) for m in table.index})
        extra[f"{c}_same"] = pd.Series({m: bool(m == best or p.get(m, 0.0) >= alpha) for m in table.index})
    return pd.concat([out, pd.DataFrame(extra, index=table.index)], axis=1) if extra else out
