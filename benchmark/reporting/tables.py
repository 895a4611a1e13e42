"""Leaderboards from ``scores.csv``: CSV, LaTeX (booktabs) and Markdown, Table 1 layout.

Rows follow the paper's Table 1 (anchors first, then DeepFuse ... FusionINN, then any other fuser
alphabetically); columns are the metrics in Table 1 order. Values are means over images with three
decimals as in the paper (optionally +- standard deviation); in each column the best value by the
metric's direction is bold, and every value that ties with it at the displayed precision is bold.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd

from baselines.registry import display_name, table_order
from benchmark.atomic import write_text
from metrics.registry import TABLE_ORDER, metric_info

STYLES = ("stats", "paper")  # leaderboard layouts: CIs and paired tests | the plain Table 1


def order_models(names) -> list[str]:
    """Model names in the registry's Table 1 order (anchors first), then any other alphabetically."""
    return table_order(names)


def metric_columns(scores: pd.DataFrame) -> list[str]:
    """The metric columns of a scores table: Table 1's in its order, then lineage metrics as they come."""
    liu = [m for m in TABLE_ORDER if m in scores.columns]
    return liu + [c for c in scores.columns if c not in liu and metric_info(str(c)) is not None]


def leaderboard(scores: pd.DataFrame, columns=None) -> pd.DataFrame:
    """Mean, standard deviation and count per model: columns ``<metric>``, ``<metric>_std``, ``n``."""
    if "model" not in scores.columns:
        raise ValueError("scores table has no 'model' column")
    cols = list(columns or metric_columns(scores))
    if not cols:
        raise ValueError(f"scores table has no metric columns; expected some of {', '.join(TABLE_ORDER)}")
    g = scores.groupby("model", sort=False)[cols]
    mean, std, count = g.mean(), g.std(ddof=1), g.count()
    out = mean.copy()
    for c in cols:
        out[f"{c}_std"] = std[c]
    out["n"] = g.size()
    for c in cols:  # a mean over fewer images than the table's (NaN scores, a model's rows missing) says so: <metric>_n
        if (count[c] < out["n"].max()).any():
            out[f"{c}_n"] = count[c]
    return out.loc[order_models(out.index)]


def check_scores(scores: pd.DataFrame, source: str = "scores", warn=None) -> pd.DataFrame:
    """Validate a scores table (as ``bench table`` reads it): a ``model`` column, at least one row,
    known or numeric metric columns. NaN scores are kept (the leaderboard counts them out and says
    over how many images each mean is); ``warn`` (default: print to stderr) names model, metric, rows."""
    import sys

    if "model" not in scores.columns:
        raise ValueError(f"{source}: no 'model' column; found {', '.join(map(str, scores.columns)) or 'no columns'}")
    cols = metric_columns(scores)
    if not cols:
        raise ValueError(f"{source}: no metric columns; expected some of {', '.join(TABLE_ORDER)}")
    if scores.empty:
        raise ValueError(f"{source}: header only, no score rows")
    if "region" in scores.columns:  # a run's rows: each is a whole slice or its tumour box
        bad = scores.index[~scores.region.isin(("slice", "tumour"))].tolist()
        if bad:
            raise ValueError(
                f"{source}: rows {bad[:10]} have region {scores.region[bad[0]]!r}; expected slice or tumour"
            )
        if not (scores.region == "slice").any():  # the tumour rows complement the slices' table, never stand alone
            raise ValueError(f"{source}: only tumour rows; expected the whole slices' rows (region slice) too")
    if scores.model.isna().any():
        raise ValueError(f"{source}: rows {scores.index[scores.model.isna()].tolist()[:10]} have no model name")
    key = next((k for k in ("index", "name") if k in scores.columns), None)
    if key is not None:  # a repeated image would weigh twice in the mean; the intervals and tests pair only one
        by = ["model", *(["region"] if "region" in scores.columns else []), key]
        twice = scores.duplicated(by, keep=False)
        if twice.any():
            first = scores[twice].iloc[0]
            what = ", ".join(f"{k} {first[k]!r}" if isinstance(first[k], str) else f"{k} {first[k]}" for k in by)
            raise ValueError(
                f"{source}: rows {scores.index[twice].tolist()[:10]} score one image more than once ({what}); "
                "expected one row per model and image"
            )
    for c in cols:
        values = pd.to_numeric(scores[c], errors="coerce")
        bad = scores.index[values.isna() & scores[c].notna()].tolist()
        if bad:
            raise ValueError(
                f"{source}: column {c} holds non-numbers in rows {bad[:10]} (e.g. {scores[c][bad[0]]!r}); "
                "expected numbers"
            )
        scores[c] = values
    warn = warn or (lambda m: print(m, file=sys.stderr))
    other = [str(c) for c in scores.columns if c not in cols and c not in ("model", "index", "name", "region")]
    if other:
        warn(
            f"warning: {source}: columns {', '.join(other)} are not metrics fusionbench knows (bench list); "
            "the leaderboards leave them out"
        )
    for c in cols:
        nan = scores[~np.isfinite(scores[c].astype(float))]  # NaN, and infinities, which the tables count out
        for model, rows in nan.groupby("model").groups.items():
            where = nan.loc[rows, "index"].tolist() if "index" in nan else list(rows)
            warn(
                f"warning: {source}: {model} has no finite {c} for {len(rows)} image(s) {where[:10]}; "
                "its mean is over the others"
            )
    regions = scores.groupby("region", sort=False) if "region" in scores.columns else [("", scores)]
    for region, part in regions:  # every model of a run or an eval scores the same images (else: cut short, edited)
        sizes = part.groupby("model", sort=False).size()
        if sizes.nunique() > 1:
            where = f" ({region} rows)" if region else ""
            warn(
                f"warning: {source}: the models score different numbers of images{where}: "
                f"{', '.join(f'{m} {k}' for m, k in sizes.items())}; a mean over fewer images says its n, and "
                "is not comparable with the others; each paired test uses the images both models score"
            )
    return scores


def higher_is_better(col: str) -> bool:
    m = metric_info(col)
    return m.higher_is_better if m is not None else True


def ranked(col: str) -> bool:
    """Whether a column is ranked (bold, ≈); the per-source SSIM diagnostics are not."""
    m = metric_info(col)
    return m.ranked if m is not None else True


def bold_mask(table: pd.DataFrame, cols, decimals: int = 3) -> pd.DataFrame:
    """True where a value equals its column's best at the displayed precision (ties all bold)."""
    mask = pd.DataFrame(False, index=table.index, columns=cols)
    for c in cols:
        r = table[c].round(decimals)
        if ranked(c) and r.notna().any():
            best = r.max() if higher_is_better(c) else r.min()
            mask[c] = r == best
    return mask


def _num(v: float, decimals: int) -> str:
    """``v`` at ``decimals`` places; a value that rounds to zero has no sign (a CI bound of
    -0.00004 printed as "-0.000", beside "0.000" of an equal column)."""
    txt = f"{v:.{decimals}f}"
    return txt[1:] if txt.startswith("-") and float(txt) == 0 else txt


def _fmt(v: float, s: float | None, decimals: int) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "--"
    txt = _num(v, decimals)
    if s is not None and not np.isnan(s):
        txt += f" ± {_num(s, decimals)}"
    return txt


STATS_NOTE = (
    "Mean [95% bootstrap CI over images]; bold: best; {mark}: not significantly different from the best of its column "
    "(paired Wilcoxon signed-rank, Holm-corrected across {rows}s, p >= 0.05)."
)
FEW_IMAGES_NOTE = (
    " With {n} image{s} no difference can be significant: the smallest p possible (two-sided Wilcoxon over {n} "
    "pair{s}, Holm-corrected for {m} {rows}{ms} against the best) is {p:.3g}."
)
SEEDS_TEST_NOTE = (
    " {mark}: not significantly different from the best mean of its column over the seeds (paired t-test over the "
    "seeds, each seed's {rows}s scored on the same images; Holm-corrected across {rows}s; p >= 0.05)."
)
DIAGNOSTIC_NOTE = " Q_SSIM_x1 / Q_SSIM_x2 (SSIM against T1-Gd / FLAIR alone) are diagnostics, not ranked."
DIRECTION_NOTE = " Lower is better for {cols}."


_TEX_SPECIAL = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
}
_TEX_MATH = ((">=", "$\\geq$"), ("<=", "$\\leq$"), (">", "$>$"), ("<", "$<$"), ("±", "$\\pm$"), ("≈", "$\\approx$"))


def tex_escape(text: str) -> str:
    """Plain text as LaTeX text: its special characters escaped (a bare ``%`` comments out the rest
    of the line, ``_`` and ``&`` stop the compiler or split a table cell), and ``>=``, ``<``,
    ``±``, ``≈`` as math (in text mode the default OT1 font prints ``<`` and ``>`` as ¡ and ¿)."""
    text = "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)
    for plain, math in _TEX_MATH:
        text = text.replace(plain, math)
    return text


def render(
    table: pd.DataFrame,
    cols,
    fmt: str,
    caption: str = "",
    with_std: bool = False,
    decimals: int = 3,
    style: str = "paper",
    index_label: str = "Model",
    rows: str = "model",
) -> str:
    """The leaderboard as ``md`` or ``tex`` text; ``style="stats"`` adds CIs and the tie marker
    (needs the columns of :func:`benchmark.reporting.stats.add_statistics`); ``style="seeds"``
    the tie marker of a table over seeds (``<metric>_same``, :mod:`benchmark.reporting.seeds`). Rows are shown by
    the fusers' display names; ``index_label`` heads the first column. ``caption``, names and
    labels are plain text: the ``tex`` form escapes them (:func:`tex_escape`). ``rows`` names what a
    row is in the notes on the tests ("model"; "value" in an ablation's table)."""
    mask = bold_mask(table, cols, decimals)
    stats_on = style == "stats" and all(f"{c}_lo" in table.columns for c in cols)
    if stats_on:
        caption = (caption + " " if caption else "") + STATS_NOTE.format(mark="\0", rows=rows)
        if any(not ranked(c) for c in cols):
            caption += DIAGNOSTIC_NOTE
        n, m = (int(table["n"].max()) if "n" in table.columns else 0), len(table) - 1
        if m > 0 and n > 0 and m * 2 / 2**n >= 0.05:  # the tie marks cannot say anything about the fusers
            plural = {"s": "s" if n > 1 else "", "ms": "s" if m > 1 else ""}
            caption += FEW_IMAGES_NOTE.format(n=n, m=m, p=min(1.0, m * 2 / 2**n), rows=rows, **plural)
    ties_on = stats_on or (style == "seeds" and all(f"{c}_same" in table.columns for c in cols if ranked(c)))
    if ties_on and not stats_on:
        caption += SEEDS_TEST_NOTE.format(mark="\0", rows=rows) + (
            DIAGNOSTIC_NOTE if any(not ranked(c) for c in cols) else ""
        )
    lower = [c for c in cols if not higher_is_better(c)]
    if lower:
        caption += DIRECTION_NOTE.format(cols=", ".join(lower))
    text = tex_escape if fmt == "tex" else (lambda t: t)
    cell = tex_escape if fmt == "tex" else (lambda t: t.replace("|", "\\|"))  # a bare | splits a Markdown cell
    caption = text(caption).replace("\0", "$^{\\approx}$" if fmt == "tex" else "≈")
    heads = [cell(index_label)] + [cell(c) for c in cols]
    rows = []
    n_all = table["n"].max() if "n" in table.columns else 0  # the most images (or seeds) a row's mean is over
    for m in table.index:
        cells = [cell(display_name(str(m)))]
        for c in cols:
            t = _fmt(table.at[m, c], table.at[m, f"{c}_std"] if with_std else None, decimals)
            if f"{c}_n" in table.columns and table.at[m, f"{c}_n"] < n_all:
                t += f" (n={int(table.at[m, f'{c}_n'])})"  # NaN scores, or images the others have, left out
            if fmt == "tex":
                t = t.replace("±", "$\\pm$")
            if mask.at[m, c]:
                t = f"\\textbf{{{t}}}" if fmt == "tex" else f"**{t}**"
            if stats_on:
                lo, hi = table.at[m, f"{c}_lo"], table.at[m, f"{c}_hi"]
                if not (np.isnan(lo) or np.isnan(hi)):
                    t += f" [{_num(lo, decimals)}, {_num(hi, decimals)}]"
            if ties_on and ranked(c) and table.at[m, f"{c}_same"] and not mask.at[m, c]:
                t += "$^{\\approx}$" if fmt == "tex" else " ≈"
            cells.append(t)
        rows.append(cells)
    if fmt == "md":
        lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(["---"] + ["---:"] * len(cols)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return (f"{caption}\n\n" if caption else "") + "\n".join(lines) + "\n"
    lines = ["\\begin{table}[t]", "\\centering"]
    if caption:
        lines.append(f"\\caption{{{caption}}}")
    lines += ["\\begin{tabular}{l" + "r" * len(cols) + "}", "\\toprule", " & ".join(heads) + " \\\\", "\\midrule"]
    lines += [" & ".join(r) + " \\\\" for r in rows]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def table_csv(table: pd.DataFrame, cols, index_label: str = "model") -> str:
    """A leaderboard as CSV text: values at six decimals, and the p-values (``<metric>_p``) at six
    significant digits, so that a p of 1e-7 (24 images all one way) is not written as 0.000000."""
    out = table.rename_axis(index_label).copy()
    for c in cols:
        if f"{c}_p" in out.columns:
            out[f"{c}_p"] = ["" if pd.isna(v) else f"{v:.6g}" for v in out[f"{c}_p"]]
    return out.to_csv(float_format="%.6f")


def cut_short(path: str) -> str | None:
    """Why the CSV file ``path`` looks cut short (a copy or a disk that stopped mid-file), or None: its
    last line ends without a line break and holds fewer fields than its header. Every table fusionbench
    writes ends with a line break; pandas reads such a last row with its missing fields as NaN and a
    number cut in two as another number (0.8761 cut after "0." as 0)."""
    import csv

    with open(path, "rb") as fh:
        header = fh.readline()
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(len(header), size - (1 << 16)))
        tail = fh.read()
    if not tail or tail.endswith(b"\n"):
        return None
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
    fields = [len(next(csv.reader([line]), [])) for line in (header.decode("utf-8", "replace"), last)]
    if fields[1] >= fields[0]:
        return None
    return f"its last line ends without a line break, with {fields[1]} of the header's {fields[0]} fields"


def read_scores(source) -> pd.DataFrame:
    """A scores table (``scores.csv`` or ``decomposition.csv``; a path or a text buffer) with its
    names as text: a method or image named ``00001`` or ``2024`` stays that name (it was read as
    the number 1, and the leaderboard's row said "1"). A file cut short (:func:`cut_short`) is one error line."""
    if isinstance(source, (str, os.PathLike)):
        why = cut_short(source)
        if why:
            raise ValueError(
                f"{source}: cut short ({why}); write it again with the command that made it (bench run and bench "
                "ablate reuse every finished fuser, bench eval every scored batch)"
            )
    return pd.read_csv(source, dtype={"model": str, "name": str})


def write_scores(path: str, scores: pd.DataFrame) -> pd.DataFrame:
    """Write ``scores.csv`` (10 significant digits) and return the scores as read back from it: the
    leaderboards are built from these, as ``bench table`` builds them from the file, so that a
    rebuilt leaderboard equals the run's own to the last digit."""
    text = scores.to_csv(index=False, float_format="%.10g")
    write_text(path, text)
    return read_scores(io.StringIO(text))


def write_leaderboards(
    run_dir: str,
    scores: pd.DataFrame,
    caption: str = "",
    with_std: bool = False,
    stem: str = "leaderboard",
    columns=None,
    style: str = "stats",
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Write ``<stem>.csv``, ``.tex`` and ``.md`` under ``run_dir`` (atomically); returns the table.

    ``style="stats"`` (default) adds bootstrap CIs and paired tests against the best
    (:mod:`benchmark.reporting.stats`); ``style="paper"`` is the plain Table 1 layout.
    """
    if style not in STYLES:
        raise ValueError(f"unknown table style {style!r}; expected 'stats' or 'paper'")
    cols = list(columns or metric_columns(scores))
    # An infinite score (an original's PSNR of identical images) is counted out of the mean like a NaN,
    # with the count shown: a mean of inf ranked nothing, and the intervals and tests dropped it anyway.
    scores = scores.assign(**{c: scores[c].where(np.isfinite(scores[c].astype(float))) for c in cols})
    table = leaderboard(scores, cols)
    if style == "stats":
        from benchmark.reporting.stats import add_statistics

        table = add_statistics(table, scores, cols, higher_is_better, n_boot, seed)
    write_text(os.path.join(run_dir, f"{stem}.csv"), table_csv(table, cols))
    write_text(os.path.join(run_dir, f"{stem}.tex"), render(table, cols, "tex", caption, with_std, style=style))
    write_text(os.path.join(run_dir, f"{stem}.md"), render(table, cols, "md", caption, with_std, style=style))
    return table
