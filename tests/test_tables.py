"""Leaderboards: order, bolding by direction (ties too), formats, and bench table."""

import pandas as pd

from benchmark.reporting.tables import bold_mask, leaderboard, render, write_leaderboards


def scores():
    rows = []
    for m, base in (("fusioninn", 0.90), ("mean", 0.80), ("deepfuse", 0.90), ("zzz-plugin", 0.5)):
        for i in range(3):
            rows.append({"model": m, "index": i, "Q_SSIM": base + 0.0001 * i, "Q_P": 0.7, "Q_XY": base / 2})
    return pd.DataFrame(rows)


def test_rows_follow_table1_and_columns_metric_order():
    t = leaderboard(scores())
    assert list(t.index) == ["mean", "deepfuse", "fusioninn", "zzz-plugin"]
    assert [c for c in t.columns if not c.endswith("_std") and c != "n"] == ["Q_SSIM", "Q_XY", "Q_P"]
    assert t.loc["mean", "n"] == 3


def test_bold_best_and_ties():
    t = leaderboard(scores())
    mask = bold_mask(t, ["Q_SSIM", "Q_XY", "Q_P"])
    assert mask["Q_SSIM"].tolist() == [False, True, True, False]  # tie at 3 decimals: both bold
    assert mask["Q_P"].all()  # everybody ties
    md = render(t, ["Q_SSIM", "Q_XY", "Q_P"], "md")
    assert "| DeepFuse | **0.900** |" in md and "| Mean | 0.800 |" in md
    tex = render(t, ["Q_SSIM"], "tex", caption="c")
    assert "\\toprule" in tex and "\\textbf{0.900}" in tex and "\\bottomrule" in tex and "Q\\_SSIM" in tex


def test_lower_is_better_direction(monkeypatch):
    from metrics.registry import METRICS, MetricInfo

    monkeypatch.setitem(METRICS, "Q_P", MetricInfo("Q_P", False, "", ""))
    t = leaderboard(pd.DataFrame([{"model": "a", "Q_P": 0.2}, {"model": "b", "Q_P": 0.1}]))
    assert bold_mask(t, ["Q_P"])["Q_P"].tolist() == [False, True]


def test_write_and_bench_table_rebuild(tmp_path):
    from benchmark.cli import main

    s = scores()
    s.to_csv(tmp_path / "scores.csv", index=False)
    assert main(["table", str(tmp_path), "--std"]) == 0
    md = (tmp_path / "leaderboard.md").read_text()
    assert "±" in md and "FusionINN" in md
    csv = pd.read_csv(tmp_path / "leaderboard.csv", index_col=0)
    assert csv.loc["deepfuse", "Q_SSIM"] == pd.Series([0.9, 0.9001, 0.9002]).mean().round(6)
    assert f"Fusion metrics ({tmp_path})." in md  # no config.json: a generic caption
    # a run folder written before captions were recorded: its shrinks still reach the caption
    (tmp_path / "config.json").write_text('{"shrinks": ["6 epochs (paper 400)", "64 training pairs"]}')
    assert main(["table", str(tmp_path)]) == 0
    md = (tmp_path / "leaderboard.md").read_text()
    assert "Not the paper setting: 6 epochs (paper 400); 64 training pairs." in md
    write_leaderboards(str(tmp_path), s, "x", stem="other")
    assert (tmp_path / "other.tex").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_bench_table_rebuilds_the_committed_run_to_the_byte(tmp_path):
    """``bench table`` on the committed quick run's scores.csv, decomposition.csv and config.json
    writes its twelve leaderboard files exactly as the run did: the values from scores.csv's 10 digits, the
    bootstrap's draws and seed, and the caption with everything the profile shrinks."""
    import shutil
    from pathlib import Path

    from benchmark.cli import main

    ref = Path(__file__).parents[1] / "results" / "quick-phantom-reference"
    for f in ("scores.csv", "config.json", "decomposition.csv"):
        shutil.copy(ref / f, tmp_path / f)
    assert main(["table", str(tmp_path)]) == 0
    names = [f"{t}{r}" for t in ("leaderboard", "decomposition_leaderboard") for r in ("", "_tumour")]
    names = [f"{n}.{x}" for n in names for x in ("csv", "md", "tex")] + ["decomposition.csv"]
    for name in names:
        assert (tmp_path / name).read_text() == (ref / name).read_text(), name
    assert "Not the paper setting: 6 epochs (paper 400)" in (tmp_path / "leaderboard.md").read_text()


def test_the_committed_ablation_tables_are_what_bench_table_writes_from_their_values(tmp_path, capsys):
    """results/ablation-cpu: its three Table 2 sweeps, written again by bench table from each value's
    per-slice results (ablation_<param>.json says which), byte for byte, with their paired tests."""
    import shutil
    from pathlib import Path

    import pandas as pd

    from benchmark.cli import main

    ref = Path(__file__).parents[1] / "results" / "ablation-cpu"
    shutil.copytree(ref, tmp_path / "a")
    tables = sorted((tmp_path / "a").glob("ablation_*.*[!n]"))  # csv, md, tex; not the records
    committed = {p.name: p.read_bytes() for p in tables}
    assert len(committed) == 9
    for p in tables:
        p.unlink()
    assert main(["table", str(tmp_path / "a")]) == 0
    assert {p.name: p.read_bytes() for p in tables} == committed
    k = pd.read_csv(ref / "ablation_k.csv", index_col=0)  # the README's reading: k = 1 cannot decompose
    assert k["Decomposition SSIM T1-Gd"].idxmax() == 3 and k.at[1, "Decomposition SSIM T1-Gd_p"] < 0.05
    for p in tables:
        if p.suffix == ".tex":
            assert not _latex_text_problems(p.read_text()), p.name
    # a damaged value: one line naming its file (was a traceback), and no sweep's tables written (alpha's were)
    (tmp_path / "a" / "k-1" / "fusioninn" / "scores.csv").write_text("garbage\n")
    for p in tables:
        p.unlink()
    capsys.readouterr()
    assert main(["table", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bench: error: {tmp_path / 'a' / 'k-1' / 'fusioninn' / 'scores.csv'}: no index, region, ")
    assert len(err.splitlines()) == 1 and not list((tmp_path / "a").glob("ablation_*.csv"))


def _latex_text_problems(tex: str) -> list[str]:
    """What would stop LaTeX or print the wrong thing in a table file: outside math, a bare % (it
    comments out the rest of the line, the caption's closing brace included), _ ^ # ~ (errors),
    < > (printed as ¡ ¿ in the default font); unbalanced braces; a table row whose cells do not
    match the column spec."""
    import re

    problems = []
    ncols = None
    for n, line in enumerate(tex.splitlines(), 1):
        text = re.sub(r"\\[\\&%$#_{}]", "", line)  # escaped characters
        text = re.sub(r"\$[^$]*\$", "", text)  # math
        for ch in "%_^#~<>$":
            if ch in text:
                problems.append(f"line {n}: bare {ch!r}")
        if text.count("{") != text.count("}"):
            problems.append(f"line {n}: unbalanced braces")
        spec = re.match(r"\\begin\{tabular\}\{(\w+)\}", line)
        if spec:
            ncols = len(spec.group(1))
        elif ncols and line.endswith("\\\\") and text.count("&") != ncols - 1:
            problems.append(f"line {n}: {text.count('&') + 1} cells; expected {ncols}")
        elif not (ncols and line.endswith("\\\\")) and "&" in text:
            problems.append(f"line {n}: bare '&'")
    return problems


def test_latex_tables_escape_names_and_captions(tmp_path):
    """Every .tex is valid LaTeX text. The stats note's "95%" commented out the rest of every
    caption (its closing brace too), "Q_SSIM_x1" in the diagnostics note and "p >= 0.05" were
    bare, and a model named like a method in a paper (``my_net&co 50%``) broke its row."""
    import pathlib

    rows = [
        {"model": m, "index": i, "region": "slice", "Q_SSIM": b + i / 100, "Q_SSIM_x1": 0.5, "vifb:Rmse": b}
        for m, b in (("my_net&co 50%", 0.8), ("mean", 0.7), ("a#b~c^d{e}\\f", 0.6))
        for i in range(5)
    ]
    write_leaderboards(str(tmp_path), pd.DataFrame(rows), caption="batch <= 16; lr_x 1e-3; 5% of $data", style="stats")
    tex = (tmp_path / "leaderboard.tex").read_text()
    assert _latex_text_problems(tex) == [], tex
    assert "my\\_net\\&co 50\\%" in tex and "batch $\\leq$ 16; lr\\_x 1e-3; 5\\% of \\$data" in tex
    assert "a\\#b\\textasciitilde{}c\\textasciicircum{}d\\{e\\}\\textbackslash{}f" in tex
    md = (tmp_path / "leaderboard.md").read_text()  # Markdown keeps the plain text
    assert "| my_net&co 50% |" in md and "batch <= 16; lr_x 1e-3; 5% of $data" in md
    root = pathlib.Path(__file__).parent.parent / "results"
    committed = sorted(root.glob("*/*.tex"))
    assert len(committed) >= 14
    for p in committed:
        assert _latex_text_problems(p.read_text()) == [], p


def test_stats_caption_says_when_too_few_images_can_be_significant(tmp_path):
    """With 5 images or fewer every model was marked ≈ (no Wilcoxon p can fall under 0.05), unexplained."""
    from benchmark.cli import main

    for n, said in ((3, True), (5, True), (6, False)):
        rows = "".join(f"a,{i},{0.9 + i / 100}\nb,{i},{0.5 + i / 100}\n" for i in range(n))
        d = tmp_path / str(n)
        d.mkdir()
        (d / "scores.csv").write_text("model,index,Q_SSIM\n" + rows)
        assert main(["table", str(d)]) == 0
        md = (d / "leaderboard.md").read_text()
        note = (
            f"With {n} images no difference can be significant: the smallest p possible (two-sided Wilcoxon over {n} "
        )
        assert (note in md) == said, md
        assert ("≈" in md.split("\n", 1)[1]) == said  # b is always 0.4 below a: significant from 6 images on
    assert (
        "pairs, Holm-corrected for 1 model against the best) is 0.25."
        in (tmp_path / "3" / "leaderboard.md").read_text()
    )
    rows = "".join(f"a,{i},{0.9 + i / 100}\nb,{i},0.5\nc,{i},0.4\n" for i in range(6))  # 6 images, 2 models
    (tmp_path / "6" / "scores.csv").write_text("model,index,Q_SSIM\n" + rows)  # Holm: 2 x 0.03125 >= 0.05
    assert main(["table", str(tmp_path / "6")]) == 0
    assert "Holm-corrected for 2 models against the best) is 0.0625." in (tmp_path / "6" / "leaderboard.md").read_text()


def test_markdown_cells_escape_the_pipe(tmp_path):
    """A method named "a|b" (bench eval --fused a|b=DIR) split its Markdown row into one cell too many."""
    import re

    from benchmark.cli import main

    rows = "".join(f"a|b,s{i},{0.5 + i / 100}\nc,s{i},0.4\n" for i in range(3))
    (tmp_path / "scores.csv").write_text("model,name,Q_SSIM\n" + rows)
    assert main(["table", str(tmp_path)]) == 0
    table = [r for r in (tmp_path / "leaderboard.md").read_text().splitlines() if r.startswith("|")]
    assert all(len(re.split(r"(?<!\\)\|", r)) == 4 for r in table), table  # | name | Q_SSIM | -> 4 pieces
    assert any(r.startswith("| a\\|b | ") for r in table)
    assert not (tmp_path / "figures").exists()  # a folder without figures gets none from bench table


def test_values_that_round_to_zero_have_no_sign(tmp_path):
    """A CI bound of -0.00004 was printed "-0.000" (bench eval of a black fused image, Q_FMI)."""
    from benchmark.cli import main

    rows = "".join(f"m,s{i},{v}\n" for i, v in enumerate((-4e-5, 0.2, 0.4, -2e-5)))
    (tmp_path / "scores.csv").write_text("model,name,Q_FMI\n" + rows)
    assert main(["table", str(tmp_path)]) == 0
    md, tex = (tmp_path / "leaderboard.md").read_text(), (tmp_path / "leaderboard.tex").read_text()
    assert "-0.000" not in md and "-0.000" not in tex
    assert "[0.000, " in md  # the lower bound, rounded to zero
    t = leaderboard(pd.DataFrame({"model": ["a", "a"], "index": [0, 1], "Q_SSIM": [-0.3, -0.2]}))
    assert "-0.250" in render(t, ["Q_SSIM"], "md")  # a negative value keeps its sign


def test_box_plot_tick_labels_do_not_run_together(tmp_path, monkeypatch):
    """Q_NCIE spans 0.805-0.820: matplotlib's default put seven 6-character labels under a 2.6-inch
    panel ("0.80500.80750.8100..."); the panels now hold at most five ticks."""
    import numpy as np

    from benchmark.reporting import figures

    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.append(fig))
    rng = np.random.default_rng(0)
    rows = [{"model": m, "index": i, "Q_NCIE": 0.805 + 0.015 * rng.random()} for m in ("a", "b") for i in range(20)]
    figures.distributions(str(tmp_path / "d.png"), pd.DataFrame(rows), ["Q_NCIE"], ["a", "b"])
    ax = saved[0].axes[0]
    lo, hi = ax.get_xlim()
    shown = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert 2 <= len(shown) <= 5, shown


def test_many_metrics_wrap_onto_rows_of_box_plots(tmp_path, monkeypatch):
    """--lineage all's 69 metrics drew one row of 69 panels, a figure 19,734 px wide; now rows of
    seven (Table 1's seven stay one row), each row naming the models once, no empty panel shown."""
    import numpy as np

    from benchmark.reporting import figures

    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.append(fig))
    rng = np.random.default_rng(0)
    cols = [f"m{k}" for k in range(16)]
    rows = [{"model": m, "index": i, **{c: rng.random() for c in cols}} for m in ("a", "b") for i in range(5)]
    for n, grid in ((7, (1, 7)), (16, (3, 7))):
        figures.distributions(str(tmp_path / "d.png"), pd.DataFrame(rows), cols[:n], ["a", "b"])
        fig = saved.pop()
        shown = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_title() for ax in shown] == cols[:n]
        assert fig.axes[0].get_subplotspec().get_gridspec().get_geometry() == grid
        named = [i for i, ax in enumerate(shown) if any(t.get_text() for t in ax.get_yticklabels())]
        assert named == list(range(0, n, 7)), named
        assert abs(fig.get_size_inches()[0] - 2.6 * 7) < 1e-9


def test_box_plots_leave_out_infinite_scores_as_the_tables_do(tmp_path, monkeypatch):
    """CDDFuse's PSNR of an all-black fused image is -inf (log of a zero peak): the box plot took it
    and numpy warned "invalid value encountered in subtract" on the user's terminal; the tables
    already count such values out of a mean."""
    import warnings

    import numpy as np

    from benchmark.reporting import figures

    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.append(fig))
    scores = pd.DataFrame({"model": ["a"] * 4 + ["b"] * 4, "PSNR": [20, 21, -np.inf, np.nan, 30, 31, 32, np.inf]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figures.distributions(str(tmp_path / "d.png"), scores, ["PSNR"], ["a", "b"])
    lo, hi = saved[0].axes[0].get_xlim()
    assert 15 < lo < 20 and 32 < hi < 40, (lo, hi)


def test_training_curves_label_their_log_axes_with_a_few_round_numbers(tmp_path, monkeypatch):
    """The log axes labelled every minor tick ("4x10^1 6x10^1" ran together), then decades only,
    which left a loss inside one decade (DeepFuse's 0.55-0.72) without a number."""
    from benchmark.reporting import figures

    assert figures._log_ticks(38, 260) == [50, 100, 200]
    assert figures._log_ticks(250, 1600) == [500, 1000]
    assert figures._log_ticks(0.55, 0.72) == [0.6, 0.7]
    assert figures._log_ticks(0.605, 0.694) == [0.61, 0.69]  # inside one digit step: its ends
    assert figures._log_ticks(1, 1e9) == [1, 100, 1e4, 1e6, 1e8]  # at most six
    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.append(fig))
    history = [{"epoch": e, "step": 40 * e, "train_loss": 0.72 - 0.03 * e, "val_loss": 0.7 - 0.02 * e} for e in (1, 6)]
    figures.training_curves(str(tmp_path / "t.png"), {"deepfuse": history})
    saved[0].canvas.draw()
    ax = saved[0].axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(len(t) <= 5 for t in labels), labels
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()] == ["50", "100", "200"]


def test_the_committed_ablation_over_seeds_is_what_bench_table_writes(tmp_path):
    """results/ablation-seeds-quick: k 3 against k 2 in three seeds' quick sweeps. Each seed's own
    table finds every difference significant over its slices, yet the winner changes with the seed,
    and over the seeds no difference is shown (the README's reading); bench table writes it to the byte."""
    import shutil
    from pathlib import Path

    import pandas as pd

    from benchmark.cli import main

    ref = Path(__file__).parents[1] / "results" / "ablation-seeds-quick"
    shutil.copytree(ref, tmp_path / "a")
    for folder in ("k-quick-seeds", "k-quick-seed1"):
        tables = sorted((tmp_path / "a" / folder).glob("ablation_k.*"))
        committed = {p.name: p.read_bytes() for p in tables}
        for p in tables:
            if p.suffix != ".json":
                p.unlink()
        assert main(["table", str(tmp_path / "a" / folder)]) == 0
        assert {p.name: p.read_bytes() for p in tables} == committed, folder
    cols = ["Fusion SSIM T1-Gd", "Fusion SSIM FLAIR", "Decomposition SSIM T1-Gd", "Decomposition SSIM FLAIR"]
    own = [pd.read_csv(ref / f"k-quick-seed{s}" / "ablation_k.csv", index_col=0) for s in (0, 1, 2)]
    for t in own:
        assert (t[[f"{c}_p" for c in cols]].max() < 1e-6).all()  # every difference "real" over the slices
    assert [t[cols[0]].idxmax() for t in own] == [3, 2, 3]  # but not the same winner in every seed
    over = pd.read_csv(ref / "k-quick-seeds" / "ablation_k.csv", index_col=0)
    assert over[[f"{c}_same" for c in cols]].all().all()  # over the seeds, no difference is shown


def test_a_tiny_p_value_keeps_its_digits_in_the_csv():
    """The CSV wrote p-values at six decimals: 24 images all one way (p 1.2e-7) read 0.000000."""
    import io

    import pandas as pd

    from benchmark.reporting.tables import table_csv

    p = [float("nan"), 1.1920929e-07, 0.0123456789]
    t = pd.DataFrame({"Q_P": [0.9, 0.8, 0.7], "Q_P_p": p}, index=["a", "b", "c"])
    text = table_csv(t, ["Q_P"])
    assert text.splitlines() == ["model,Q_P,Q_P_p", "a,0.900000,", "b,0.800000,1.19209e-07", "c,0.700000,0.0123457"]
    back = pd.read_csv(io.StringIO(text), index_col="model")
    assert abs(back.at["b", "Q_P_p"] - 1.19209e-07) < 1e-12 and back["Q_P_p"].dtype == float
