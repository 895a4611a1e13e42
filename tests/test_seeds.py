"""bench run --seeds: one run per seed, and leaderboards of mean ± sd over the seeds."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from skimage import io as skio

import benchmark
from benchmark.cli import main
from benchmark.reporting.seeds import seed_tables, write_seed_tables

SMOKE = ["run", "--models", "mean,max", "--profile", "smoke"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds")
    assert main([*SMOKE, "--seeds", "0,2", "--out", str(out)]) == 0
    return out


def test_the_table_over_seeds_is_mean_and_sd_of_each_runs_means(seeded, capsys):
    table = pd.read_csv(seeded / "smoke-phantom-seeds" / "leaderboard.csv", index_col="model")
    runs = [pd.read_csv(seeded / f"smoke-phantom-seed{s}" / "leaderboard.csv", index_col="model") for s in (0, 2)]
    assert list(table.index) == ["mean", "max"] and (table.n_seeds == 2).all()
    for c in ("Q_SSIM", "Q_FMI", "Q_P", "Q_SSIM_x1"):
        per_seed = np.stack([r[c].to_numpy() for r in runs])  # each run's own mean over its images
        assert per_seed[0, 0] != per_seed[1, 0]  # the seed draws other phantom images: the runs differ
        np.testing.assert_allclose(table[[f"{c}_seed0", f"{c}_seed2"]].to_numpy(), per_seed.T, atol=1e-6)
        np.testing.assert_allclose(table[c], per_seed.mean(0), atol=1e-6)
        np.testing.assert_allclose(table[f"{c}_std"], per_seed.std(0, ddof=1), atol=1e-6)
    md = (seeded / "smoke-phantom-seeds" / "leaderboard.md").read_text()
    assert "Mean over 2 seeds (0, 2) of each run's mean over images ± standard deviation over the seeds" in md
    row = next(line for line in md.splitlines() if line.startswith("| Mean |"))
    assert f"{table.at['mean', 'Q_SSIM']:.3f} ± {table.at['mean', 'Q_SSIM_std']:.3f}" in row
    assert (seeded / "smoke-phantom-seeds" / "leaderboard_tumour.md").exists()  # the phantom has labels
    before = {p.name: p.read_bytes() for p in (seeded / "smoke-phantom-seeds").glob("leaderboard*")}
    capsys.readouterr()
    assert main(["table", str(seeded / "smoke-phantom-seeds")]) == 0  # read again from the runs: the same files
    assert {p.name: p.read_bytes() for p in (seeded / "smoke-phantom-seeds").glob("leaderboard*")} == before
    assert "Mean over 2 seeds" in capsys.readouterr().out


def test_the_table_over_seeds_tests_each_model_against_the_best_paired_by_seed(seeded):
    from scipy import stats

    table = seed_tables([str(seeded / f"smoke-phantom-seed{s}") for s in (0, 2)])[0]["slice"]
    csv = pd.read_csv(seeded / "smoke-phantom-seeds" / "leaderboard.csv", index_col="model")
    np.testing.assert_allclose(csv.filter(like="_p"), table.filter(like="_p"), atol=1e-6)
    md = (seeded / "smoke-phantom-seeds" / "leaderboard.md").read_text()
    assert "paired t-test over the seeds" in md
    for c in ("Q_SSIM", "Q_FMI", "Q_P"):
        best, other = table[c].idxmax(), table[c].idxmin()
        seeds = [f"{c}_seed0", f"{c}_seed2"]
        p = stats.ttest_rel(table.loc[best, seeds], table.loc[other, seeds]).pvalue  # one comparison: no Holm
        assert table.at[other, f"{c}_p"] == pytest.approx(p) and np.isnan(table.at[best, f"{c}_p"])
        assert table.at[other, f"{c}_same"] == (p >= 0.05) and table.at[best, f"{c}_same"]
        row = next(line for line in md.splitlines() if line.startswith(f"| {other.capitalize()} |"))
        cell = row.split("|")[2 + list(csv.columns).index(c)]
        assert cell.endswith(" ≈ ") == (p >= 0.05), (c, cell, p)
    assert "Q_SSIM_x1_p" not in table  # a diagnostic, not ranked: not tested


def test_over_seeds_the_best_of_a_lower_is_better_metric_is_the_lowest_mean():
    """The t-test over the seeds compares each model with the lowest MSE (lower is better), and with
    the highest SSIM."""
    from benchmark.reporting.seeds import over_seeds

    seeds, frames = [0, 1, 2], []
    for k, shift in enumerate((0.0, 0.5, -0.3)):  # what each seed's training moved, for every model alike
        rows = []
        for model, mse, ssim in (("low", 10.0, 0.70), ("near", 10.0 + (0.2, -0.25, 0.1)[k], 0.71), ("high", 12.0, 0.9)):
            mse = mse + shift + (0.0, 0.01, -0.01)[k] * (model == "high")
            rows += [{"model": model, "name": f"s{i}", "MSE": mse, "SSIM": ssim + 0.01 * k} for i in range(2)]
        frames.append(pd.DataFrame(rows))
    table = over_seeds(seeds, frames, "slice", lambda part: ["MSE", "SSIM"])
    assert np.isnan(table.at["low", "MSE_p"]) and table.at["low", "MSE_same"]
    assert table.at["near", "MSE_same"] and table.at["high", "MSE_p"] < 0.05 and not table.at["high", "MSE_same"]
    assert np.isnan(table.at["high", "SSIM_p"]) and not table.at["low", "SSIM_same"]


def test_the_figure_draws_each_seeds_means_as_a_line(seeded, monkeypatch, tmp_path):
    from benchmark.reporting import figures

    for name in ("seeds.png", "seeds_tumour.png"):
        png = seeded / "smoke-phantom-seeds" / "figures" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    drawn, save = {}, figures._save

    def keep(fig, path):
        drawn[os.path.basename(path)] = fig
        save(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    runs = [str(seeded / f"smoke-phantom-seed{s}") for s in (0, 2)]
    write_seed_tables(runs, str(tmp_path / "s"))
    table, fig = seed_tables(runs)[0]["slice"], drawn["seeds.png"]
    ax = fig.axes[0]  # Q_SSIM: one line per seed through its means, and the mean over the seeds
    assert ax.get_title() == "Q_SSIM" and [t.get_text() for t in ax.get_xticklabels()] == ["Mean", "Max"]
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    np.testing.assert_allclose(lines["seed 0"], table["Q_SSIM_seed0"])
    np.testing.assert_allclose(lines["seed 2"], table["Q_SSIM_seed2"])
    np.testing.assert_allclose(lines["mean"], table["Q_SSIM"])


def test_a_rerun_reuses_every_seed_and_python_gets_the_same_tables(seeded):
    said = []
    res = benchmark.run_seeds("0,2", models="mean,max", profile="smoke", out=seeded, progress=False, log=said.append)
    assert sum("reusing mean" in line for line in said) == 2, said  # each seed's finished run, not scored again
    assert not any("tables over seeds in" in line for line in said)  # written once, after the last run
    assert res.path == str(seeded / "smoke-phantom-seeds") and [r.path for r in res.runs] == [
        str(seeded / f"smoke-phantom-seed{s}") for s in (0, 2)
    ]
    table = pd.read_csv(seeded / "smoke-phantom-seeds" / "leaderboard.csv", index_col="model")
    np.testing.assert_allclose(res.leaderboard["Q_SSIM"], table["Q_SSIM"], atol=1e-6)
    assert set(res.leaderboards) == {"slice", "tumour"}


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--seeds", "1"], "--seeds '1': expected at least two different seeds >= 0, e.g. 0,1,2"),
        (["--seeds", "0,0"], "--seeds '0,0': expected at least two different seeds"),
        (["--seeds", "0,x"], "--seeds '0,x': expected comma-separated whole numbers, e.g. 0,1,2"),
        (["--seeds", "0,1", "--seed", "3"], "--seed 3 and --seeds 0,1: give one of them"),
        (["--seeds", "0,1", "--from", "results/cpu-phantom"], "--seeds with --from results/cpu-phantom: nothing is"),
    ],
)
def test_bad_seeds_fail_before_any_run(tmp_path, capsys, args, needle):
    assert main([*SMOKE, *args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: ") and needle in err and len(err.splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_the_tables_never_land_among_other_files_nor_eval_among_them(tmp_path, seeded, capsys):
    mine = tmp_path / "smoke-phantom-seeds"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main([*SMOKE, "--seeds", "0,1", "--out", str(tmp_path)]) == 2
    assert "smoke-phantom-seeds holds files and is not a folder of tables over seeds" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smoke-phantom-seeds"]  # checked before any run
    img = tmp_path / "img.png"
    skio.imsave(img, (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8), check_contrast=False)
    tables = seeded / "smoke-phantom-seeds"
    before = {p: p.read_bytes() for p in tables.rglob("*") if p.is_file()}
    assert main(["eval", "--x1", str(img), "--x2", str(img), "--fused", str(img), "--out", str(tables)]) == 2
    assert "is not a bench eval folder" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in tables.rglob("*") if p.is_file()} == before


def test_runs_of_other_configs_make_no_table_over_seeds(tmp_path, seeded):
    assert main([*SMOKE, "--n-val", "4", "--seed", "5", "--out", str(tmp_path)]) == 0
    with pytest.raises(ValueError, match=r"differs from \S+seed0 in more than its seed: n_val = 4 there, 8 here"):
        write_seed_tables([str(seeded / "smoke-phantom-seed0"), str(tmp_path / "smoke-phantom")], str(tmp_path / "s"))
    with pytest.raises(ValueError, match="share seeds"):
        write_seed_tables([str(seeded / "smoke-phantom-seed0")] * 2, str(tmp_path / "s"))
    assert not (tmp_path / "s").exists()


def test_a_model_missing_in_one_seed_is_shown_over_the_others(tmp_path, seeded):
    """A fuser that failed in one seed's run (a plugin) has no rows there: its row is over fewer seeds."""
    import json
    import shutil

    other = tmp_path / "seed7"
    shutil.copytree(seeded / "smoke-phantom-seed2", other)
    config = json.loads((other / "config.json").read_text())
    config["config"]["seed"] = 7
    (other / "config.json").write_text(json.dumps(config))
    scores = pd.read_csv(other / "scores.csv")
    scores[scores.model != "max"].to_csv(other / "scores.csv", index=False)
    tables = write_seed_tables([str(seeded / "smoke-phantom-seed0"), str(other)], str(tmp_path / "s"))
    assert tables["slice"].at["max", "Q_SSIM_n"] == 1 and tables["slice"].at["mean", "Q_SSIM_n"] == 2
    csv = pd.read_csv(tmp_path / "s" / "leaderboard.csv", index_col="model")
    assert (csv.n_seeds == 2).all() and csv.at["max", "Q_SSIM_n_seeds"] == 1 and np.isnan(csv.at["max", "Q_SSIM_std"])
    assert np.isnan(csv.at["max", "Q_SSIM_seed7"])
    md = (tmp_path / "s" / "leaderboard.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| Max"))
    assert "(n=k): over the k seeds whose run has a finite mean for that model" in md
    # one seed: no spread to show, and no pair to test against the best: not shown to differ from it
    assert f"| {csv.at['max', 'Q_SSIM']:.3f} (n=1) ≈ |" in row and csv.at["max", "Q_SSIM_p"] == 1


def test_metrics_of_several_lineages_get_a_table_each_over_the_seeds(tmp_path, capsys):
    """As a run's own tables: past eight columns of several lineages, one table per lineage beside the
    whole one, under the original's names; a later call with one lineage removes them."""
    args = [*SMOKE, "--seeds", "0,1", "--out", str(tmp_path)]
    assert main([*args, "--lineage", "liu,cddfuse"]) == 0
    folder = tmp_path / "smoke-phantom-seeds"
    whole = pd.read_csv(folder / "leaderboard.csv", index_col="model")
    own = pd.read_csv(folder / "leaderboard_cddfuse.csv", index_col="model")
    assert [c for c in own.columns if not c.endswith(("_std", "_seed0", "_seed1", "n_seeds"))][:3] == ["EN", "SD", "SF"]
    for c in ("EN", "MSE", "SSIM"):
        for suffix in ("", "_std", "_seed1"):
            np.testing.assert_array_equal(own[c + suffix], whole[c + suffix])  # liu keeps its names: no prefix
    md = (folder / "leaderboard_cddfuse.md").read_text()
    assert "± " in md and "The cddfuse lineage's metrics, each as its original computes it" in md
    assert (folder / "leaderboard_liu.md").exists() and (folder / "leaderboard_tumour_cddfuse.md").exists()
    out = capsys.readouterr().out
    assert "cddfuse: " in out and "(lower is better for MSE; leaderboard_cddfuse.md)" in out  # printed per lineage
    assert main([*args, "--lineage", "cddfuse"]) == 0
    assert not list(folder.glob("leaderboard_*cddfuse*")) and not list(folder.glob("leaderboard_liu*"))


def test_phantom_seed_keeps_the_images_of_every_seed_the_same(tmp_path, seeded):
    """--set phantom_seed=N: each seed trains (and draws) anew on phantom_seed N's images, so the spread
    over seeds is the training's alone; the untrained anchors score the same in every seed."""
    assert main([*SMOKE, "--seeds", "0,1", "--set", "phantom_seed=2", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "smoke-phantom-seeds" / "leaderboard.csv", index_col="model")
    np.testing.assert_array_equal(table["Q_SSIM_seed0"], table["Q_SSIM_seed1"])
    assert (table["Q_SSIM_std"] == 0).all()
    # the images are those --seed 2 draws: seed 0's run scores as the seed-2 run without phantom_seed
    mine = pd.read_csv(tmp_path / "smoke-phantom-seed0" / "scores.csv")
    theirs = pd.read_csv(seeded / "smoke-phantom-seed2" / "scores.csv")
    np.testing.assert_allclose(mine.Q_SSIM, theirs.Q_SSIM, atol=1e-7)
    md = (tmp_path / "smoke-phantom-seeds" / "leaderboard.md").read_text()
    assert "data phantom (images of phantom_seed 2)" in md
    assert "(its training draws; the phantom's images are phantom_seed 2's in every run)" in md


def test_bench_table_rebuilds_a_paper_style_run_and_its_seeds_as_they_were_written(tmp_path, capsys):
    """bench table without --style rebuilt a run made with --style paper in the stats style; it keeps
    the run's own now, as it keeps its caption, and --style chooses for a table over seeds too."""
    assert main([*SMOKE, "--seeds", "0,1", "--style", "paper", "--out", str(tmp_path)]) == 0
    run, seeds = tmp_path / "smoke-phantom-seed0", tmp_path / "smoke-phantom-seeds"
    for folder in (run, seeds):
        written = {p.name: p.read_bytes() for p in folder.glob("leaderboard*")}
        assert "≈" not in (folder / "leaderboard.md").read_text()
        assert main(["table", str(folder)]) == 0
        assert {p.name: p.read_bytes() for p in folder.glob("leaderboard*")} == written
    assert main(["table", str(run), "--style", "stats"]) == 0
    assert "Wilcoxon" in (run / "leaderboard.md").read_text()
    assert main(["table", str(seeds), "--style", "stats"]) == 0
    assert "paired t-test over the seeds" in (seeds / "leaderboard.md").read_text()
    assert main(["table", str(seeds), "--style", "plain"]) == 2
    assert "unknown table style 'plain'; expected 'stats' or 'paper'" in capsys.readouterr().err
    assert main(["table", str(seeds), "--std"]) == 2
    assert "tables over seeds show mean ± sd over the seeds already; no --std" in capsys.readouterr().err


def test_a_metric_no_model_has_leaves_the_other_columns_tested(tmp_path, seeded):
    """An original that errors on every image (NaN in every row) has no best to test against; the
    other columns keep their tests and marks (one such column turned them off for all)."""
    import shutil

    runs = []
    for s in (0, 2):
        shutil.copytree(seeded / f"smoke-phantom-seed{s}", tmp_path / f"r{s}")
        scores = pd.read_csv(tmp_path / f"r{s}" / "scores.csv")
        scores.assign(Q_P=np.nan).to_csv(tmp_path / f"r{s}" / "scores.csv", index=False)
        runs.append(str(tmp_path / f"r{s}"))
    table = write_seed_tables(runs, str(tmp_path / "s"))["slice"]
    assert table["Q_P_p"].isna().all() and not table["Q_P_same"].any()
    md = (tmp_path / "s" / "leaderboard.md").read_text()
    assert table["Q_SSIM_same"].any() and "paired t-test over the seeds" in md


@pytest.mark.slow
def test_seeds_with_two_processes_table_the_same_as_one(tmp_path, seeded):
    """--seeds --nproc 2: torchrun once; both processes run each seed's run (training shared by DDP,
    scoring sharded), rank 0 alone speaks and writes the tables. It refused before."""
    import json
    import subprocess
    import sys

    from conftest import ROOT

    cmd = [sys.executable, "-m", "benchmark", *SMOKE[:2], "mean,max,deepfuse", *SMOKE[3:], "--seeds", "0,2"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [*cmd, "--nproc", "2", "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )  # the second seed's run hung in 2 of 4 tries while each run left and joined the process group again
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.count("[fusionbench] seed 2 (2 of 2)") == 1 and "results: " in done.stdout
    two = pd.read_csv(tmp_path / "smoke-phantom-seeds" / "leaderboard.csv", index_col="model")
    one = pd.read_csv(seeded / "smoke-phantom-seeds" / "leaderboard.csv", index_col="model")
    cols = [c for c in one.columns if c.startswith("Q_SSIM") and not c.endswith(("_p", "_same"))]
    pd.testing.assert_frame_equal(two.loc[["mean", "max"], cols], one.loc[["mean", "max"], cols])
    assert two.loc["deepfuse", ["Q_SSIM_seed0", "Q_SSIM_seed2"]].notna().all()
    for s in (0, 2):
        config = json.loads((tmp_path / f"smoke-phantom-seed{s}" / "config.json").read_text())
        assert config["device"]["processes"] == 2 and config["seed"] == s


def test_a_seed_run_again_alone_rewrites_or_removes_the_tables_over_seeds(tmp_path, seeded, capsys):
    """`bench run --seed 2 --run-name <run>-seed2` on its own left the tables over seeds showing that
    run's earlier scores. Now they are written again from the runs, or removed while the runs differ in
    more than their seed (never stale), each with a line saying so."""
    import shutil

    out = tmp_path / "r"
    shutil.copytree(seeded, out)  # the runs and their tables over seeds, which name them relative to it
    tables = out / "smoke-phantom-seeds"
    before = {p.name: p.read_bytes() for p in tables.glob("leaderboard*")}
    one = [*SMOKE, "--seed", "2", "--run-name", "smoke-phantom-seed2", "--out", str(out)]
    capsys.readouterr()
    assert main([*one, "--n-val", "4"]) == 0
    said = capsys.readouterr().out
    assert f"removed the tables over seeds in {tables}, which list {out / 'smoke-phantom-seed2'}" in said, said
    assert "n_val = 4 there, 8 here" in said and f"bench table {tables} writes them again" in said
    assert not list(tables.glob("leaderboard*")) and not (tables / "figures").exists()
    assert main(["table", str(tables)]) == 2  # nor does bench table make them while the runs differ
    capsys.readouterr()
    assert main(one) == 0  # the run as the others again
    assert f"rewrote the tables over seeds in {tables}, which list" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in tables.glob("leaderboard*")} == before
    assert (tables / "figures" / "seeds.png").exists()
    from benchmark.atomic import folder_lock

    with folder_lock(str(tables), "busy"):  # another bench writes them: the run is done all the same, and says so
        assert main(one) == 0
    said = capsys.readouterr().out
    assert f"the tables over seeds in {tables} list {out / 'smoke-phantom-seed2'} and were not rewritten" in said


def test_the_committed_tables_over_seeds_are_what_bench_table_writes_from_their_runs(tmp_path):
    """results/seeds-quick: three quick runs (without weights) and their tables over the seeds, which
    bench table writes again byte for byte from the runs' scores (so they are never stale)."""
    import shutil

    from conftest import ROOT

    shutil.copytree(ROOT / "results" / "seeds-quick", tmp_path / "s")
    tables = tmp_path / "s" / "quick-phantom-seeds"
    committed = {p.name: p.read_bytes() for p in tables.glob("leaderboard*")}
    assert len(committed) == 6
    for p in tables.glob("leaderboard*"):
        p.unlink()
    assert main(["table", str(tables)]) == 0
    assert {p.name: p.read_bytes() for p in tables.glob("leaderboard*")} == committed
    table = pd.read_csv(tables / "leaderboard.csv", index_col="model")
    assert table["Q_SSIM"].idxmax() == "unet++" and not table["Q_SSIM_same"].drop("unet++").any()
    assert table.at["unet", "Q_XY_same"] and table.at["unet", "Q_XY_p"] > 0.05  # the README's reverse case


def test_fusioninns_decomposition_gets_its_tables_over_the_seeds(tmp_path):
    """FusionINN's decomposition (SSIM and PSNR of each recovered source) is its claim: over the seeds
    it gets decomposition_leaderboard.* as the fusion metrics get theirs; gone when no run decomposes."""
    args = [*SMOKE[:2], "mean,fusioninn", *SMOKE[3:], "--seeds", "0,1", "--out", str(tmp_path)]
    assert main(args) == 0
    folder = tmp_path / "smoke-phantom-seeds"
    table = pd.read_csv(folder / "decomposition_leaderboard.csv", index_col="model")
    runs = [tmp_path / f"smoke-phantom-seed{s}" / "decomposition_leaderboard.csv" for s in (0, 1)]
    runs = [pd.read_csv(p, index_col="model") for p in runs]
    for c in ("SSIM_x1", "SSIM_x2", "PSNR_x1", "PSNR_x2"):
        per_seed = np.array([r.at["fusioninn", c] for r in runs])
        assert table.at["fusioninn", c] == pytest.approx(per_seed.mean(), abs=2e-6)
        assert table.at["fusioninn", f"{c}_std"] == pytest.approx(per_seed.std(ddof=1), abs=2e-6)
    md = (folder / "decomposition_leaderboard.md").read_text()
    assert md.startswith("Decomposition: SSIM and PSNR of each decomposed source") and "Mean over 2 seeds" in md
    assert (folder / "decomposition_leaderboard_tumour.md").exists()
    assert (folder / "figures" / "seeds_decomposition.png").exists()
    one = [*args[:5], "--seed", "1", "--run-name", "smoke-phantom-seed1", "--n-val", "4", "--out", str(tmp_path)]
    assert main(one) == 0  # a seed made again alone, differing in more than its seed: every table over seeds goes
    assert not list(folder.glob("*leaderboard*")) and not (folder / "figures").exists()
    assert main([*SMOKE, "--seeds", "0,1", "--out", str(tmp_path)]) == 0  # mean and max: nothing decomposes
    assert not list(folder.glob("decomposition_leaderboard*")) and not list(folder.glob("figures/seeds_decomposition*"))


def test_no_rank_starts_a_run_before_rank_0_has_checked_its_folder(tmp_path, monkeypatch):
    """In a multi-process run rank 0 alone checks and clears the run folder; every rank waits at a barrier
    after that and before its own work there (the other rank, done with one seed's run first, had written
    into the next seed's folder before rank 0 checked it, which then refused it). The order of the calls on
    rank 0 and on another rank, with the process group stood in for."""
    from benchmark.config import RunConfig
    from benchmark.running import runner

    for rank in (0, 1):
        calls = []
        monkeypatch.setattr(runner.D, "is_main", lambda rank=rank: rank == 0)
        monkeypatch.setattr(runner.D, "barrier", lambda: calls.append("barrier"))
        monkeypatch.setattr(runner, "_refuse_other_folder", lambda d: calls.append("check"))
        monkeypatch.setattr(runner, "_remove_run_outputs", lambda d: calls.append("clear"))
        monkeypatch.setattr(runner, "_run_in", lambda *a, **k: calls.append("work"))
        monkeypatch.setattr(runner, "refresh_tables_over_seeds", lambda *a, **k: None)
        cfg = RunConfig(models="mean", out=str(tmp_path), run_name=f"r{rank}")
        runner.run(cfg, progress=False, log=lambda *a: None)
        assert calls == (["check", "clear", "barrier", "work"] if rank == 0 else ["barrier", "work"]), (rank, calls)
