"""The registry with the example plugin installed (as a real distribution's entry points)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from conftest import ROOT

PLUGIN_SRC = ROOT / "examples" / "plugin" / "src"


def make_dist(site: pathlib.Path, dist: str, entries: dict, modules: dict | None = None):
    """Install a minimal distribution into ``site``: dist-info metadata with entry points (what pip writes)."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[fusionbench.fusers]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
    )
    for name, code in (modules or {}).items():
        (site / f"{name}.py").write_text(code)


BROKEN = {
    "bad_shape_plugin": "import torch\ndef make():\n    return lambda x1, x2: x1[..., :-1]\n",
    "bad_range_plugin": "import torch\ndef make():\n    return lambda x1, x2: x1 * 3 + 1\n",
}


@pytest.fixture
def plugin_site(tmp_path):
    site = tmp_path / "site"
    make_dist(site, "fusionbench-example-plugin", {"contrast-avg": "fusionbench_example_plugin:make_fuser"})
    make_dist(
        site,
        "broken-plugins",
        {
            "no-import": "does_not_exist_module:make",
            "bad-shape": "bad_shape_plugin:make",
            "bad-range": "bad_range_plugin:make",
        },
        BROKEN,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(PLUGIN_SRC), str(ROOT), env.get("PYTHONPATH", "")])
    return env


def bench(env, *args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args], env=env, capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_plugin_appears_in_bench_list(plugin_site):
    r = bench(plugin_site, "list", "--json")
    assert r.returncode == 0, r.stderr
    fusers = {f["name"]: f for f in json.loads(r.stdout)["fusers"]}
    assert {"mean", "max"} <= set(fusers)
    ex = fusers["contrast-avg"]
    assert (
        ex["source"] == "plugin fusionbench-example-plugin"
        and ex["kind"] == "classical"
        and ex["params"] == 0
        and ex["error"] is None
    )
    assert "does_not_exist_module" in fusers["no-import"]["error"] and "no-import" in fusers["no-import"]["error"]
    for f in fusers.values():
        assert set(f) >= {"name", "kind", "trainable", "params", "source"}
    r = bench(plugin_site, "list")
    assert (
        "contrast-avg" in r.stdout
        and "plugin fusionbench-example-plugin" in r.stdout
        and "higher is better" in r.stdout
    )


def test_plugins_with_a_taken_or_unusable_name_are_ignored_and_listed(plugin_site, tmp_path):
    """A plugin named like a built-in was dropped without a word; one differing only in case ("UNet")
    was registered beside it, as was a name holding '/' or ',' (a run folder, a --models item)."""
    site = tmp_path / "site2"
    names = ["unet", "UNet", "Contrast-Avg", "../escape", "a,b", "my.fuser", "smp-unet-x", "fine_one+"]
    make_dist(site, "clashing", {n: "fusionbench_example_plugin:make_fuser" for n in names})
    env = dict(plugin_site, PYTHONPATH=os.pathsep.join([plugin_site["PYTHONPATH"], str(site)]))
    r = bench(env, "list", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    fusers = {f["name"]: f for f in doc["fusers"]}
    assert fusers["unet"]["source"] == "built-in" and fusers["fine_one+"]["source"] == "plugin clashing"
    assert fusers["contrast-avg"]["source"] == "plugin fusionbench-example-plugin"
    assert not set(fusers) & {"UNet", "Contrast-Avg", "../escape", "a,b", "my.fuser", "smp-unet-x"}
    ignored = "\n".join(doc["ignored_plugins"])
    for n in ("unet", "UNet"):
        assert (
            f"plugin fuser {n!r} (entry point 'fusionbench_example_plugin:make_fuser' in plugin clashing) is "
            "ignored: the name is taken by the fuser 'unet' (built-in)" in ignored
        )
    assert (
        "'Contrast-Avg' (entry point" in ignored and "taken by the fuser 'contrast-avg' (plugin fusionbench-" in ignored
    )
    for n in ("../escape", "a,b", "my.fuser", "smp-unet-x"):
        assert f"plugin fuser {n!r} (entry point" in ignored
    assert len(doc["ignored_plugins"]) == 7
    text = bench(env, "list").stdout
    assert text.count("IGNORED: plugin fuser") == 7


def test_plugin_runs_and_broken_plugins_do_not_stop_others(plugin_site, tmp_path):
    r = bench(
        plugin_site,
        "run",
        "--models",
        "mean,contrast-avg,no-import,bad-shape,bad-range",
        "--profile",
        "smoke",
        "--out",
        str(tmp_path / "res"),
        "--run-name",
        "p",
    )
    assert r.returncode == 1, r.stdout + r.stderr  # failures are reported in the exit status
    out = r.stdout + r.stderr
    assert "FAILED no-import" in out and "does_not_exist_module" in out
    assert "model 'bad-shape' (plugin broken-plugins) returned shape (8, 1, 240, 239); expected (8, 1, 240, 240)" in out
    assert "model 'bad-range' (plugin broken-plugins) output has values in" in out
    run = json.loads((tmp_path / "res" / "p" / "run.json").read_text())
    assert set(run["failures"]) == {"no-import", "bad-shape", "bad-range"}
    board = (tmp_path / "res" / "p" / "leaderboard.md").read_text()
    assert "| Mean |" in board and "| contrast-avg |" in board and "bad-shape" not in board


TRAINABLE = """import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, x1, x2):
        return torch.sigmoid(self.net(torch.cat([x1, x2], 1)))


def make(**kw):
    return Tiny(**kw)


make.fusionbench = {"kind": "discriminative", "trainable": True, "reference": "a user's net", "batch_size": 4}
"""


def test_a_trainable_plugin_is_trained_by_the_one_trainer_and_loads_back(tmp_path):
    """A user's own trainable net, registered from outside the repository, is trained on the shared
    loss like the built-ins (its learning curve in train.json), tabled, reused by a rerun, and
    loaded back with its trained weights by load_fuser."""
    site = tmp_path / "site"
    make_dist(site, "my-fusers", {"my-net": "my_net_plugin:make"}, {"my_net_plugin": TRAINABLE})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), env.get("PYTHONPATH", "")])
    args = ["run", "--models", "mean,my-net", "--profile", "smoke", "--epochs", "3", "--set", "crops_per_pair=8"]
    args += ["--out", str(tmp_path / "r")]
    r = bench(env, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    run = tmp_path / "r" / "smoke-phantom"
    history = json.loads((run / "my-net" / "train.json").read_text())["history"]
    losses = [e["train_loss"] for e in history]
    assert len(losses) == 3 and losses[-1] < losses[0], losses  # it learns
    assert "| my-net |" in (run / "leaderboard.md").read_text()
    info = json.loads((run / "my-net" / "model.json").read_text())
    assert info["name"] == "my-net" and "plugin my-fusers" in json.dumps(info), info
    r = bench(env, *args)
    assert r.returncode == 0 and "reusing my-net from" in r.stdout + r.stderr, r.stdout + r.stderr
    check = (
        "import sys, torch; from baselines import load_fuser; "
        f"m = load_fuser({str(run)!r}, 'my-net'); s = torch.load({str(run / 'my-net' / 'best.pt')!r}); "
        "print(not m.training and all(torch.equal(v, m.state_dict()[k]) for k, v in s.items()))"
    )
    out = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "True", out.stdout + out.stderr


def test_unknown_model_lists_known_names(tmp_path):
    from benchmark.cli import main

    assert main(["run", "--models", "mean,nope", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    from baselines.registry import resolve_models

    with pytest.raises(ValueError, match="unknown model 'nope'; known models: .*max.*mean"):
        resolve_models("mean,nope")
    assert resolve_models(["Mean", "max"]) == resolve_models(("mean", "MAX")) == ["mean", "max"]
    for bad in (123, None, ["mean", 3]):  # benchmark.run(models=123) was "'int' object is not iterable"
        with pytest.raises(ValueError, match="models: expected 'all', a comma-separated string or a list"):
            resolve_models(bad)
    assert not any(tmp_path.iterdir())  # nothing written


def test_all_resolves_every_registered_builtin():
    from baselines.registry import list_fusers, resolve_models

    names = resolve_models("all")
    assert resolve_models("ALL") == names
    # the papers' spellings, whatever the case
    assert resolve_models("FusionINN, UNet++,Half-UNet,FunFuseAn,DeepFuse,deepfuse") == [
        "fusioninn",
        "unet++",
        "half-unet",
        "funfusean",
        "deepfuse",
    ]
    assert names[:2] == ["mean", "max"]
    assert set(names) >= {e.name for e in list_fusers() if e.source == "built-in"}


def test_a_run_whose_plugin_is_not_installed_says_which_package(tmp_path, capsys):
    """load_fuser and bench run --from on a run that used a plugin this machine lacks said only "unknown
    model"; the run's model.json names the plugin's package, and now the error does."""
    from baselines import load_fuser
    from benchmark.cli import main

    run = tmp_path / "run"
    (run / "gone-fuser").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    info = {"name": "gone-fuser", "source": "plugin fusionbench-gone", "kwargs": {}, "status": "done"}
    (run / "gone-fuser" / "model.json").write_text(json.dumps(info))
    said = "model 'gone-fuser' came from the plugin fusionbench-gone"
    with pytest.raises(ValueError, match=said + r" \(.*model.json\), which is not installed here; pip install"):
        load_fuser(str(run), "gone-fuser")
    capsys.readouterr()
    args = ["run", "--models", "mean,gone-fuser", "--profile", "smoke", "--from", str(run)]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="unknown model 'gone-fusr'.*a plugin's fusers once its package is installed"):
        load_fuser(str(run), "gone-fusr")  # a name the run does not hold: the registry's own message
