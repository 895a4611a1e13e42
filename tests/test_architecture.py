"""The structure a newcomer walks: layers that point one way, no import circles, the Python API."""

import ast
import pathlib

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("metrics", "baselines", "fusioninn", "benchmark")
LAYER = {"metrics": 0, "baselines": 1, "fusioninn": 1, "benchmark": 2}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every project module -> the project modules it imports (at module level or inside functions)."""
    modules = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in modules:  # "pkg.mod.func" -> "pkg.mod"
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):  # a package's own __init__ is no edge
                    deps.add(t)
        graph[name] = deps
    return graph


def test_layers_point_one_way():
    """metrics <- models (baselines, fusioninn) <- benchmark: no arrow runs back up."""
    bad = [(a, b) for a, deps in _imports().items() for b in deps if LAYER[b.split(".")[0]] > LAYER[a.split(".")[0]]]
    assert not bad, f"imports that run back up the layers: {bad}"


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first walk of ``graph`` (node -> the nodes it imports) meets."""
    state, cycles = {}, []

    def visit(n, stack):
        state[n] = 1
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d) :] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    return cycles


def test_no_import_circles():
    cycles = _circles(_imports())
    assert not cycles, f"import circles: {cycles}"


@pytest.mark.parametrize("package", ["metrics", "benchmark"])
def test_folders_inside_a_package_point_one_way(package):
    """Inside metrics/ and benchmark/, folders and top-level modules import each other in no
    circle, however long: benchmark's reporting/ once wrote FusionINN's tables through running/,
    which reports through reporting/; metrics' lineage/ uses ssim.py, whose per-batch workspace
    built lineage/'s image cache."""
    folder: dict[str, set[str]] = {}
    for a, deps in _imports().items():
        if a.startswith(package + "."):
            part = a.split(".")[1]
            folder.setdefault(part, set()).update(
                d.split(".")[1] for d in deps if d.startswith(package + ".") and d.split(".")[1] != part
            )
    cycles = _circles(folder)
    assert not cycles, f"{package}/ parts importing each other in a circle: {cycles}"


def test_python_api_run_returns_what_it_wrote(tmp_path):
    import benchmark

    res = benchmark.run(
        models="mean,max", profile="smoke", out=str(tmp_path), run_name="api", progress=False, log=lambda *_: None
    )
    assert isinstance(res, benchmark.RunResult) and res.path == str(tmp_path / "api")
    written = pd.read_csv(tmp_path / "api" / "scores.csv")
    pd.testing.assert_frame_equal(res.scores.reset_index(drop=True), written, check_exact=False, rtol=1e-9)
    assert list(res.leaderboard.index) == ["mean", "max"] and "Q_SSIM_lo" in res.leaderboard.columns
    board = pd.read_csv(tmp_path / "api" / "leaderboard.csv", index_col=0)
    np.testing.assert_allclose(board["Q_SSIM"], res.leaderboard["Q_SSIM"], atol=1e-6)
    assert set(res.leaderboards) >= {"slice", "tumour"}


def test_python_api_evaluate_tensors_arrays_uint8():
    import benchmark
    import metrics
    from benchmark.data.phantom import make_split

    x1, x2, _ = make_split(7, "val", 3)
    f = (x1 + x2) / 2
    want = metrics.score(*(torch.from_numpy(a)[:, None] for a in (f, x1, x2)))
    df = benchmark.evaluate(torch.from_numpy(f)[:, None], torch.from_numpy(x1)[:, None], torch.from_numpy(x2)[:, None])
    assert list(df.columns) == ["index"] + list(want) and len(df) == 3
    for k, v in want.items():
        np.testing.assert_allclose(df[k], v.double().numpy(), atol=1e-12)
    df2 = benchmark.evaluate(f, x1, x2, metrics="Q_SSIM,Q_P")  # (B, H, W) arrays
    np.testing.assert_allclose(df2["Q_SSIM"], df["Q_SSIM"], atol=1e-12)
    u8 = [np.round(a * 255).astype(np.uint8) for a in (f, x1, x2)]
    df3 = benchmark.evaluate({"mean": u8[0], "copy": u8[1]}, u8[1], u8[2], metrics=["Q_SSIM_x1"])
    assert df3.model.tolist() == ["mean"] * 3 + ["copy"] * 3
    np.testing.assert_allclose(df3[df3.model == "copy"].Q_SSIM_x1, 1.0)
    with pytest.raises(ValueError, match="shape"):
        benchmark.evaluate(f[0], x1, x2)
    one = benchmark.evaluate(f[1], x1[1], x2[1], metrics="Q_SSIM,Q_P")  # one image alone, (H, W)
    assert len(one) == 1 and one.Q_SSIM[0] == df2.Q_SSIM[1] and one.Q_P[0] == df2.Q_P[1]
    rgb = np.stack([f[1], x1[1], x2[1]], axis=-1)  # one colour image, (H, W, 3)
    got = benchmark.evaluate(rgb, x1[1], x2[1], lineage="cddfuse")
    assert len(got) == 1 and got.equals(benchmark.evaluate(rgb[None], x1[1:2], x2[1:2], lineage="cddfuse"))
    lab = np.zeros(f.shape[1:], np.uint8)
    lab[100:120, 100:120] = 1
    boxed = benchmark.evaluate(f[1], x1[1], x2[1], metrics="Q_SSIM", labels=lab)  # and its (H, W) label map
    assert boxed.region.tolist() == ["slice", "tumour"]
    assert boxed.equals(benchmark.evaluate(f[1:2], x1[1:2], x2[1:2], metrics="Q_SSIM", labels=lab[None]))
    # 16-bit stacks are read as bench eval reads a 16-bit PNG (benchmark.data.imageio: / 65535)
    from benchmark.data.imageio import _to_unit

    u16 = [np.round(a * 65535).astype(np.uint16) for a in (f, x1, x2)]
    df4 = benchmark.evaluate(*u16, metrics="Q_SSIM,Q_FMI")
    as_read = [torch.from_numpy(_to_unit("a.png", a)) for a in u16]
    want16 = metrics.score(*(a[:, None] for a in as_read), metrics=["Q_SSIM", "Q_FMI"])
    for k, v in want16.items():
        np.testing.assert_array_equal(df4[k], v.double().numpy())
    with pytest.raises(ValueError, match="empty batch"):
        benchmark.evaluate(f[:0], x1[:0], x2[:0])
    with pytest.raises(ValueError, match="an empty dict"):  # was pandas' "No objects to concatenate"
        benchmark.evaluate({}, x1, x2)
    for bad in (-1, 0, 1.5):  # -1 scored 2 of the 3 images, silently
        with pytest.raises(ValueError, match=f"chunk_size = {bad}: expected a whole number >= 1"):
            benchmark.evaluate(f, x1, x2, metrics="Q_SSIM", chunk_size=bad)
    # a fuser's output straight from its forward pass (torch refused .numpy() on it)
    live = torch.from_numpy(f).requires_grad_()
    assert benchmark.evaluate(live, x1, x2, metrics="Q_SSIM").Q_SSIM.equals(df2.Q_SSIM)
    # of several methods, the one that is wrong is named (the metrics' checks said "fused" of any)
    late = r"^fused\['late'\]: shape \(2, 1, 240, 240\); expected 3 image\(s\) of 240x240, like x1$"
    with pytest.raises(ValueError, match=late):
        benchmark.evaluate({"mean": f, "late": f[:2]}, x1, x2, metrics="Q_SSIM")
    with pytest.raises(ValueError, match=r"^fused\['x255'\] has values in \[0, 2\S+\] in sample\(s\) \[0, 1, 2\]"):
        benchmark.evaluate({"mean": f, "x255": f * 255}, x1, x2, metrics="Q_SSIM")
    with pytest.raises(ValueError, match=r"^fused\['rgb'\] contains NaN or Inf in sample\(s\) \[1\]"):
        rgb3 = np.repeat(f[:, None], 3, axis=1)
        rgb3[1, 2, 5, 5] = np.nan  # in the last channel of the second image
        benchmark.evaluate({"rgb": rgb3}, x1, x2, lineage="cddfuse", metrics="EN")


def test_fusioninn_and_baselines_api(tmp_path):
    from baselines import create_fuser, list_fusers, load_fuser
    from benchmark.cli import main
    from fusioninn import FusionINN

    assert isinstance(create_fuser("fusioninn"), FusionINN)
    assert {"mean", "deepfuse", "fusioninn"} <= {e.name for e in list_fusers()}
    assert main(["run", "--models", "deepfuse", "--profile", "smoke", "--out", str(tmp_path), "--run-name", "r"]) == 0
    m = load_fuser(str(tmp_path / "r"), "deepfuse")
    assert not m.training
    s = pd.read_csv(tmp_path / "r" / "scores.csv")
    from benchmark.data import load_data
    from metrics import score

    _, va, _ = load_data("phantom", 0, 16, 8, 16, 8)
    x1, x2 = va[0]["x1"][None], va[0]["x2"][None]
    with torch.no_grad():
        got = score(m(x1, x2).clamp(0, 1), x1, x2, metrics="Q_SSIM")["Q_SSIM"]
    want = s[(s.region == "slice") & (s["index"] == 0)].Q_SSIM.item()
    assert abs(float(got) - want) < 1e-6  # the loaded weights fuse as the run did
    with pytest.raises(ValueError, match="model 'unet' is not in that run"):
        load_fuser(str(tmp_path / "r"), "unet")
    with pytest.raises(ValueError, match="device 'gpu': not a device; expected auto, cpu, cuda or cuda:N"):
        load_fuser(str(tmp_path / "r"), "deepfuse", device="gpu")
    if not torch.cuda.is_available():  # was torch.load's advice about map_location, blamed on the weights
        lacks = "^device 'cuda': CUDA is not available on this machine; use device='cpu' or 'auto'"
        with pytest.raises(ValueError, match=lacks):
            load_fuser(str(tmp_path / "r"), "deepfuse", device="cuda")
    with pytest.raises(ValueError, match="config.json: a file; expected a run folder written by bench run"):
        load_fuser(str(tmp_path / "r" / "config.json"), "deepfuse")
    # the papers' spellings, as --models takes them (were "unknown model 'DeepFuse'")
    assert isinstance(create_fuser("FusionINN"), FusionINN)
    with pytest.raises(TypeError, match=r"create_fuser\('unet'\): unknown argument\(s\) wdth; it takes width=1\.0, "):
        create_fuser("unet", wdth=0.5)  # was: unet() got an unexpected keyword argument 'wdth'
    with pytest.raises(TypeError, match="unknown argument.s. k; it takes no arguments"):
        create_fuser("mean", k=3)
    again = load_fuser(str(tmp_path / "r"), "DeepFuse")
    assert all(torch.equal(p, q) for p, q in zip(again.state_dict().values(), m.state_dict().values(), strict=True))
    from benchmark.config import for_model, make_config

    cfg = make_config("smoke", per_model="DeepFuse.lr=0.002,UNet++.crop=32")  # per_model names alike
    assert for_model(cfg, "deepfuse").lr == 0.002 and for_model(cfg, "unet++").crop == 32
    assert for_model(cfg, "unet").lr == cfg.lr


def test_metric_registry_hands_out_callables():
    import metrics

    assert metrics.get_metric("Q_FMI") is metrics.q_fmi and metrics.get_metric("ssim") is metrics.q_ssim
    assert metrics.list_metrics()[:5] == ["Q_SSIM", "Q_FMI", "Q_NCIE", "Q_XY", "Q_P"]
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.get_metric("nope")


def test_listing_fusers_builds_nothing(monkeypatch):
    from baselines.registry import FuserEntry, list_fusers

    def refuse(self, **kw):
        raise AssertionError(f"{self.name} was built just to be listed")

    monkeypatch.setattr(FuserEntry, "build", refuse)
    rows = [e.as_dict() for e in list_fusers() if e.source == "built-in"]
    assert rows and all(r["params"] is not None and r["display"] for r in rows)


def test_registry_orders_and_names_the_tables():
    from baselines.registry import display_name, table_order

    assert table_order(["fusioninn", "zzz-plugin", "mean", "unet", "copy-x1", "aaa-plugin"]) == [
        "mean",
        "copy-x1",
        "unet",
        "fusioninn",
        "aaa-plugin",
        "zzz-plugin",
    ]
    assert display_name("unet3+") == "UNet3+" and display_name("not-a-fuser") == "not-a-fuser"


def test_bench_help_does_not_import_torch():
    """``bench --help`` and the parser answer without importing torch or pandas (1.4 s here):
    ``benchmark``'s public names load on first use."""
    import subprocess
    import sys

    code = "import sys, benchmark.cli as c; c.build_parser(); print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_an_eval_worker_imports_no_pandas_and_no_phantom():
    """What bench eval's spawned workers import (``benchmark.running.evaluate``, for their initializer)
    holds neither pandas (the main process imports it to write the tables) nor the phantom's
    scipy.ndimage (``benchmark.data`` names its datasets on first use): 0.3 s of every worker's start."""
    import subprocess
    import sys

    code = "import sys, benchmark.running.evaluate; print(*(m in sys.modules for m in ('pandas', 'scipy.ndimage')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    from benchmark.data import load_data, phantom_split  # and they are there on first use

    assert callable(load_data) and callable(phantom_split)


def test_every_argument_of_every_command_says_what_it_is():
    """``bench CMD --help`` explains every argument (positional ones too): none is a bare name."""
    import argparse

    from benchmark.cli import build_parser

    bare = []

    def walk(parser, path):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, f"{path} {name}")
            elif not a.help:
                bare.append(f"{path} {'/'.join(a.option_strings) or a.dest}")

    walk(build_parser(), "bench")
    assert not bare, bare
