"""The examples a newcomer runs first work as their docstrings say."""

import re
import subprocess
import sys

import torch
from conftest import ROOT


def test_api_tour_runs_and_shows_a_decomposition():
    r = subprocess.run([sys.executable, "examples/api_tour.py"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Qabf" in r.stdout and "tumour" in r.stdout and "accelerate" not in r.stderr
    got = re.search(r"FusionINN decomposition SSIM: T1-Gd (\S+), FLAIR (\S+)", r.stdout)
    assert got and min(float(got[1]), float(got[2])) > 0.9, r.stdout


def test_evaluate_gives_tumour_rows_in_image_order(tmp_path):
    """The tumour boxes are scored in batches by box size; their rows came in that order (0, 1, 3, 2),
    from benchmark.evaluate and in bench eval's scores.csv."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    import benchmark
    from benchmark.cli import main
    from benchmark.data.phantom import make_split

    x1, x2, labels = (torch.from_numpy(a) for a in make_split(0, "val", 4))
    df = benchmark.evaluate((x1 + x2) / 2, x1, x2, metrics="Q_SSIM", labels=labels)
    assert df[df.region == "tumour"]["index"].tolist() == [0, 1, 2, 3]
    for d, arr in (("a", x1), ("b", x2), ("f", (x1 + x2) / 2), ("l", labels)):
        (tmp_path / d).mkdir()
        for i, a in enumerate(arr.numpy()):
            Image.fromarray(a.astype(np.uint8) if d == "l" else np.round(a * 255).astype(np.uint8)).save(
                tmp_path / d / f"s{i}.png"
            )
    args = ["eval", "--x1", str(tmp_path / "a"), "--x2", str(tmp_path / "b"), "--labels", str(tmp_path / "l")]
    assert (
        main([*args, "--fused", f"m={tmp_path / 'f'}", "--fused", f"c={tmp_path / 'a'}", "--out", str(tmp_path / "o")])
        == 0
    )
    s = pd.read_csv(tmp_path / "o" / "scores.csv")
    want = [(m, r, f"s{i}") for m in ("m", "c") for r in ("slice", "tumour") for i in range(4)]
    assert list(zip(s.model, s.region, s.name)) == want
