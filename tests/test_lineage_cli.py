"""--lineage on bench eval and bench run; RGB images under each lineage's own rule; bench list."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from skimage import io as skio

from benchmark.cli import main
from metrics.colour import MEFB_FIRST_CHANNEL
from metrics.lineage import SPECS, lineage_values

DATA = Path(__file__).parent / "data" / "reference"
ORACLE = json.loads((DATA / "lineage.json").read_text())["cases"]
CASES = ("c13_camera_moon_avg", "r01_pat0005_mean")


def _folders(tmp_path, fused=None):
    for case in CASES:
        z = np.load(DATA / f"{case}.npz")
        for role, key in (("x1", "A"), ("x2", "B"), ("fused", "F")):
            (tmp_path / role).mkdir(exist_ok=True)
            img = z[key] if fused is None or role != "fused" else fused(z)
            skio.imsave(tmp_path / role / f"{case}.png", img, check_contrast=False)
    return ["--x1", str(tmp_path / "x1"), "--x2", str(tmp_path / "x2"), "--fused", f"mine={tmp_path / 'fused'}"]


@pytest.mark.parametrize("lineage", ["vifb", "cddfuse"])
def test_eval_lineage_columns_equal_the_original(tmp_path, lineage, capsys):
    out = tmp_path / "out"
    assert main(["eval", *_folders(tmp_path), "--lineage", lineage, "--out", str(out)]) == 0
    scores = pd.read_csv(out / "scores.csv").set_index("name")
    assert [c for c in scores.columns if c not in ("model", "name")] == [s.key for s in SPECS[lineage]]
    for case in CASES:
        for key, ref in ORACLE[case][lineage].items():
            if key == "Qcb" and case.startswith("r"):
                continue  # documented hazard (tests/test_lineages.py)
            assert scores.loc[case, key] == pytest.approx(float(ref), rel=1e-6, abs=1e-6), (case, key)
    board = (out / "leaderboard.md").read_text()
    assert "Qabf" in board and "lineages " + lineage in board


def test_eval_metric_names_within_a_lineage(tmp_path, capsys):
    """``--lineage tang --metrics SSIM,Qabf`` scores Tang's SSIM and Qabf as their original computes
    them (before, a bare SSIM was Liu's Q_SSIM); a lineage none of whose metrics is named is one
    line, exit 2, no output."""
    out = tmp_path / "out"
    args = _folders(tmp_path)
    assert main(["eval", *args, "--lineage", "tang", "--metrics", "SSIM,Qabf", "--out", str(out)]) == 0
    scores = pd.read_csv(out / "scores.csv").set_index("name")
    assert list(scores.columns) == ["model", "Qabf", "SSIM"]  # in the lineage's order
    for case in CASES:
        for key in ("SSIM", "Qabf"):
            assert scores.loc[case, key] == pytest.approx(float(ORACLE[case]["tang"][key]), rel=1e-6, abs=1e-6)
    capsys.readouterr()
    assert main(["eval", *args, "--lineage", "vifb", "--metrics", "Q_SSIM", "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lineage 'vifb' was asked for, but none of the metrics Q_SSIM" in err[0], err
    assert not (tmp_path / "o2").exists()


@pytest.mark.parametrize("command", ["eval", "run"])
@pytest.mark.parametrize("given", ["", ","])
def test_a_lineage_option_that_names_none_is_an_error(tmp_path, capsys, command, given):
    """``--lineage "$UNSET"`` (or ``,``) scored the Table 1 five in silence, where an empty --models or
    --metrics is an error."""
    out = tmp_path / "o"
    args = _folders(tmp_path) if command == "eval" else ["--models", "mean", "--profile", "smoke"]
    assert main([command, *args, "--lineage", given, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "bench: error: --lineage '' is empty; give it a value (an unset shell variable?)"
        if not given
        else "bench: error: --lineage ',' names no lineage; give vifb, tang, mefb, cddfuse, liu or all, "
        "comma-separated (bench list), or leave out --lineage for the Table 1 five"
    ), err
    assert not out.exists()


def test_lineage_all_is_every_lineage():
    from metrics.registry import ALL_LINEAGES, parse_lineages, resolve_metrics

    assert parse_lineages("all") == list(ALL_LINEAGES)
    assert parse_lineages("tang,all") == ["tang"] + [x for x in ALL_LINEAGES if x != "tang"]
    names = resolve_metrics(None, "all")
    assert {n.split(":")[0] for n in names if ":" in n} == set(ALL_LINEAGES) - {"liu"} and "Q_FMI" in names
    with pytest.raises(ValueError, match="known lineages: liu, vifb, tang, mefb, cddfuse \\(or all\\)"):
        parse_lineages("every")


def test_eval_several_lineages_prefix_columns_and_liu_keeps_names(tmp_path):
    out = tmp_path / "out"
    assert main(["eval", *_folders(tmp_path), "--lineage", "liu,tang,cddfuse", "--out", str(out)]) == 0
    written = {p.name: p.read_text() for p in out.glob("leaderboard.*")}
    assert main(["table", str(out)]) == 0  # the same leaderboards, caption included
    assert {p.name: p.read_text() for p in out.glob("leaderboard.*")} == written
    assert "Lower is better for tang:MSE, tang:Nabf, cddfuse:MSE" in written["leaderboard.md"]
    config = json.loads((out / "config.json").read_text())
    assert config["rgb_triples"] == 0 and config["colour_rules"] == {}  # grey images: no colour rule applied
    assert "RGB" not in (out / "leaderboard.md").read_text()
    cols = list(pd.read_csv(out / "scores.csv").columns)
    assert "Q_SSIM" in cols and "tang:PSNR" in cols and "cddfuse:PSNR" in cols and "PSNR" not in cols


def test_several_lineages_get_a_table_each(tmp_path, capsys):
    """One table of every lineage's columns (69 with --lineage all) is read neither on a terminal
    nor in a paper: beside it, one table per lineage (the original's own column names, the same
    numbers), printed one after another; rebuilt by bench table, and gone when a later eval scores
    one lineage, or a few picked metrics (up to eight columns stay one table)."""
    out, args = tmp_path / "out", _folders(tmp_path)
    labels = ["--labels", str(tmp_path / "x1")]  # any image is a label map: its pixels > 0 make the box
    assert main(["eval", *args, "--lineage", "liu,tang,cddfuse", *labels, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    whole = pd.read_csv(out / "leaderboard.csv", index_col="model")
    for lineage, col in (("liu", "Q_SSIM"), ("tang", "MSE"), ("cddfuse", "VIFF")):
        own = pd.read_csv(out / f"leaderboard_{lineage}.csv", index_col="model")
        named = {c: c if lineage == "liu" else f"{lineage}:{c}" for c in own.columns if c != "n"}
        assert col in own.columns and all(own[c].equals(whole[w]) for c, w in named.items()), lineage
        md = (out / f"leaderboard_{lineage}.md").read_text()
        assert f"The {lineage} lineage's metrics, each as its original computes it (" in md
        assert f"{lineage}: " in printed and f"leaderboard_{lineage}.md)" in printed
        assert (out / f"leaderboard_tumour_{lineage}.md").is_file()
    assert "| Model | EN | MI | PSNR | MSE |" in printed and "tang:MSE" not in printed  # each lineage's own names
    assert "(lower is better for MSE, Nabf; leaderboard_tang.md)" in printed
    tang = (out / "leaderboard_tang.md").read_text()
    assert "Lower is better for MSE, Nabf." in tang and "| Model | EN | MI | PSNR | MSE |" in tang
    written = {p.name: p.read_bytes() for p in out.glob("leaderboard*")}
    assert main(["table", str(out)]) == 0 and {p.name: p.read_bytes() for p in out.glob("leaderboard*")} == written
    assert capsys.readouterr().out.count("leaderboard_cddfuse.md)") == 1
    assert main(["eval", *args, "--lineage", "tang", "--out", str(out)]) == 0  # one lineage: one table
    assert sorted(p.name for p in out.glob("leaderboard*")) == ["leaderboard.csv", "leaderboard.md", "leaderboard.tex"]
    assert "leaderboard_tang.md" not in capsys.readouterr().out
    picked = ["--metrics", "vifb:Qabf,cddfuse:EN,Q_SSIM"]  # a few picked metrics: one table reads fine
    assert main(["eval", *args, *picked, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("leaderboard*")) == ["leaderboard.csv", "leaderboard.md", "leaderboard.tex"]


def test_run_with_a_lineage(tmp_path, caplog, capsys):
    import benchmark

    caplog.set_level(logging.WARNING, logger="fusionbench.metrics")
    res = benchmark.run(
        models="mean,copy-x1",
        profile="smoke",
        lineage="cddfuse",
        n_boot=300,  # bench table below must rebuild with the run's draws, not its default 2000
        out=str(tmp_path),
        run_name="lin",
        progress=False,
        log=lambda *_: None,
    )
    assert [c for c in res.scores.columns if c in {s.key for s in SPECS["cddfuse"]}] == [
        s.key for s in SPECS["cddfuse"]
    ]
    assert "Q_SSIM" not in res.scores.columns
    board = pd.read_csv(tmp_path / "lin" / "leaderboard.csv", index_col=0)
    assert {"MSE", "PSNR", "SSIM"} <= set(board.columns)
    # bench table rebuilds the run's own leaderboards to the last digit (from scores.csv's 10
    # digits, with the run's bootstrap draws), caption (what the profile shrinks) included
    written = {p.name: p.read_text() for p in (tmp_path / "lin").glob("leaderboard*.*")}
    assert "profile smoke" in written["leaderboard.md"] and "leaderboard_tumour.tex" in written
    assert main(["table", str(tmp_path / "lin")]) == 0
    assert {p.name: p.read_text() for p in (tmp_path / "lin").glob("leaderboard*.*")} == written
    # bench eval into the run's folder would replace its record beside its other tables: refused
    record = {p.name: p.read_bytes() for p in (tmp_path / "lin").iterdir() if p.is_file()}
    (tmp_path / "src").mkdir()
    assert main(["eval", *_folders(tmp_path / "src"), "--out", str(tmp_path / "lin")]) == 2
    assert {p.name: p.read_bytes() for p in (tmp_path / "lin").iterdir() if p.is_file()} == record
    assert "the folder of a bench run" in capsys.readouterr().err
    # F = T1-Gd: SCD's correlation is 0/0. One line per model, metric and region, naming the
    # validation images (not their positions in a scoring batch), whatever the batches
    n = int(res.scores.query("model == 'copy-x1' and region == 'slice'")["SCD"].isna().sum())
    assert n == int((res.scores["region"] == "slice").sum()) // 2 > 4
    want = f"copy-x1: SCD is NaN for {n} image(s) {list(range(n))[:10]} (slice): F minus a source is constant"
    assert caplog.text.count(want) == 1, caplog.text
    assert caplog.text.count("SCD is NaN") == caplog.text.count("copy-x1: SCD is NaN") == 2, caplog.text  # + tumour


def _rgb(z):
    return np.stack([z["F"], z["A"], z["B"]], axis=-1)  # a colour F with three different channels


def _expected_rgb(lineage, case):
    z = np.load(DATA / f"{case}.npz")
    rgb = _rgb(z).astype(np.float64)
    t = lambda a: torch.tensor(a, dtype=torch.float64).view(1, 1, *a.shape)  # noqa: E731
    a, b = t(z["A"].astype(np.float64)), t(z["B"].astype(np.float64))
    if lineage == "tang":
        grey = np.floor(rgb @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103]) + 0.5)
        return {k: float(v[0]) for k, v in lineage_values(t(grey), a, b, "tang")[0].items()}
    if lineage == "cddfuse":
        grey = np.round(rgb @ np.array([0.299, 0.587, 0.114]))
        return {k: float(v[0]) for k, v in lineage_values(t(grey), a, b, "cddfuse")[0].items()}
    per = [lineage_values(t(rgb[..., k]), a, b, lineage)[0] for k in range(3)]
    out = {k: float(np.mean([float(p[k][0]) for p in per])) for k in per[0]}
    if lineage == "mefb":
        out.update({k: float(per[0][k][0]) for k in MEFB_FIRST_CHANNEL})
        grey = np.floor(rgb @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103]) + 0.5)
        out["MEF_SSIM"] = float(lineage_values(t(grey), a, b, "mefb", {"MEF_SSIM"})[0]["MEF_SSIM"][0])
    if lineage == "vifb":
        side = np.concatenate([rgb[..., k] for k in range(3)], axis=1)
        out["Spatial_frequency"] = float(
            lineage_values(
                t(side),
                t(np.tile(z["A"], 3).astype(float)),
                t(np.tile(z["B"], 3).astype(float)),
                "vifb",
                {"Spatial_frequency"},
            )[0]["Spatial_frequency"][0]
        )
    return out


@pytest.mark.parametrize("lineage", ["vifb", "tang", "mefb", "cddfuse"])
def test_rgb_fused_image_follows_the_lineage_rule(tmp_path, lineage, caplog):
    out = tmp_path / "out"
    assert main(["eval", *_folders(tmp_path, _rgb), "--lineage", lineage, "--out", str(out)]) == 0
    # the run says which triples were colour and which rule scored them: log, config and caption
    config = json.loads((out / "config.json").read_text())
    assert config["rgb_triples"] == len(CASES) and list(config["colour_rules"]) == [lineage]
    rule = {"tang": "rgb2gray", "cddfuse": "OpenCV", "vifb": "each channel", "mefb": "each channel"}[lineage]
    assert rule in config["colour_rules"][lineage]
    assert f"2 of 2 triples hold RGB images (mine/{CASES[0]}" in caplog.text and rule in caplog.text
    assert "2 with RGB images" in (out / "leaderboard.md").read_text()
    scores = pd.read_csv(out / "scores.csv").set_index("name")
    want = _expected_rgb(lineage, CASES[0])
    for key, v in want.items():
        got = scores.loc[CASES[0], key]
        assert (math.isnan(v) and math.isnan(got)) or got == pytest.approx(v, rel=1e-6, abs=1e-9), key


def test_python_api_scores_colour_images_with_the_lineage_rule():
    """benchmark.evaluate takes RGB stacks, channels last (uint8 arrays) or first (tensors), and
    scores them as bench eval does; a shape with neither is one clear error."""
    import benchmark

    z = np.load(DATA / f"{CASES[0]}.npz")
    rgb = _rgb(z)[None]  # (1, H, W, 3) uint8
    want = _expected_rgb("tang", CASES[0])
    for fused in (rgb, torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous()):
        df = benchmark.evaluate(fused, z["A"][None], z["B"][None], lineage="tang")
        for key, v in want.items():
            got = float(df.loc[0, key])
            assert (math.isnan(v) and math.isnan(got)) or got == pytest.approx(v, rel=1e-6, abs=1e-9), key
    lacks = "^device 'cuda': CUDA is not available on this machine; use device='cpu' or 'auto'"  # the keyword's words
    with pytest.raises(ValueError, match=lacks) if not torch.cuda.is_available() else contextlib.nullcontext():
        benchmark.evaluate(rgb, z["A"][None], z["B"][None], device="cuda")  # was an AssertionError from torch
    with pytest.raises(ValueError, match=r"fused: shape \(1, 2, 64, 64\); expected"):
        benchmark.evaluate(np.zeros((1, 2, 64, 64), np.uint8), z["A"][None], z["B"][None])


@pytest.mark.parametrize("lineage", ["tang", "cddfuse"])
def test_rgb_to_grey_is_8_bit_where_division_rounds_as_on_cuda(lineage, request):
    """The grey of an RGB image is rounded to 8 bits, divided by 255 and, in the lineage, multiplied
    back; CUDA's division by a number (x * (1 / 255)) leaves 24 of the 256 levels off their integer in
    float64 (33 * (1 / 255) * 255 != 33), which makes the lineage take F for a float image (unless
    quantized). With the CPU dividing as CUDA does, a float64 RGB image scores as on the CPU."""
    from metrics.colour import colour_score
    from metrics.registry import resolve_metrics

    z = np.load(DATA / f"{CASES[0]}.npz")
    rgb = torch.from_numpy(_rgb(z).astype(np.float64)).permute(2, 0, 1)[None] / 255
    a, b = (torch.from_numpy(z[k].astype(np.float64)).view(1, 1, *z[k].shape) / 255 for k in "AB")
    names = resolve_metrics(lineages=lineage)
    want = colour_score(rgb, a, b, names, quantize=False)  # unrounded: 8-bit only if the levels are exact
    request.getfixturevalue("cuda_division")
    got = colour_score(rgb, a, b, names, quantize=False)
    for k, v in want.items():
        x, y = float(got[k][0]), float(v[0])
        assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-9, abs=1e-12), k


def test_rgb_with_table1_scores_the_y_channel(tmp_path):
    import metrics

    out = tmp_path / "out"
    assert main(["eval", *_folders(tmp_path, _rgb), "--out", str(out)]) == 0
    scores = pd.read_csv(out / "scores.csv").set_index("name")
    z = np.load(DATA / f"{CASES[0]}.npz")
    y = (_rgb(z).astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / 255
    t = lambda a: torch.tensor(a, dtype=torch.float32).view(1, 1, *a.shape)  # noqa: E731
    want = metrics.score(t(y), t(z["A"] / 255.0), t(z["B"] / 255.0))
    assert scores.loc[CASES[0], "Q_SSIM"] == pytest.approx(float(want["Q_SSIM"][0]), abs=1e-6)


def test_bench_list_shows_every_metric_with_lineage_and_direction(capsys):
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    lineages = {m["lineage"] for m in data["metrics"]}
    assert lineages == {"liu", "vifb", "tang", "mefb", "cddfuse"}
    mse = [m for m in data["metrics"] if m["name"] == "tang:MSE"][0]
    assert mse["direction"] == "lower" and mse["column"] == "MSE" and mse["reference"]
    assert all(not v["not_implemented"] for v in data["lineages"].values())  # every key of every original
    for name in ("mefb:MEF_SSIM", "tang:FMI_w", "tang:FMI_pixel"):
        assert [m for m in data["metrics"] if m["name"] == name][0]["checked_against_original"] is False
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "cddfuse: Zhaozixiang1228/MMIF-CDDFuse @ fd8da1f3" in text and "Nabf" in text
    diag = [line for line in text.splitlines() if line.strip().startswith("Q_SSIM_x")]
    assert len(diag) == 2 and all(line.count("diagnostic, not ranked") == 1 for line in diag)
    fmi_w = [line for line in text.splitlines() if line.strip().startswith("FMI_w ")]
    assert len(fmi_w) == 1 and fmi_w[0].count("not checked against the original") == 1


def test_python_api_evaluate_with_a_lineage():
    import benchmark

    z = np.load(DATA / f"{CASES[0]}.npz")
    df = benchmark.evaluate(z["F"][None], z["A"][None], z["B"][None], lineage="tang")
    assert df.loc[0, "PSNR"] == pytest.approx(ORACLE[CASES[0]]["tang"]["PSNR"], rel=1e-6)


def test_lineage_columns_inverts_the_column_names():
    """Every pair of lineages: the columns scored come back grouped by lineage; bare keys shared by
    several lineages (EN and SD alone) stay ungrouped (no per-lineage tables then)."""
    import itertools

    from metrics.registry import ALL_LINEAGES, column_names, lineage_columns, resolve_metrics

    for pair in itertools.combinations(ALL_LINEAGES, 2):
        names = resolve_metrics(None, ",".join(pair))
        cols = column_names(names)
        got = lineage_columns(list(cols.values()))
        assert list(got) == list(pair) and {c: x for x, cs in got.items() for c in cs} == {
            cols[n]: n.split(":")[0] if ":" in n else "liu" for n in names
        }, pair
    assert lineage_columns(["Q_SSIM", "EN", "SD"]) == {"liu": ["Q_SSIM"], "": ["EN", "SD"]}
    assert lineage_columns(["Q_SSIM", "EN", "VIFF"]) == {"liu": ["Q_SSIM"], "cddfuse": ["EN", "VIFF"]}
