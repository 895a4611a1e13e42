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
    """``bench table`` on the committed quick run's scores.csv and config.json writes its six
    leaderboard files exactly as the run did: the values from scores.csv's 10 digits, the
    bootstrap's draws and seed, and the caption with everything the profile shrinks."""
    import shutil
    from pathlib import Path

    from benchmark.cli import main

    ref = Path(__file__).parents[1] / "results" / "quick-phantom-reference"
    for f in ("scores.csv", "config.json"):
        shutil.copy(ref / f, tmp_path / f)
    assert main(["table", str(tmp_path)]) == 0
    names = [f"leaderboard{r}.{x}" for r in ("", "_tumour") for x in ("csv", "md", "tex")]
    for name in names:
        assert (tmp_path / name).read_text() == (ref / name).read_text(), name
    assert "Not the paper setting: 6 epochs (paper 400)" in (tmp_path / "leaderboard.md").read_text()
