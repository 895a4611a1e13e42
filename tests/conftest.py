import os
import pathlib

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("FUSIONBENCH_CACHE", str(pathlib.Path(__file__).parent / ".cache"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SHARED = ROOT.parent / "shared"


@pytest.fixture
def shared_data():
    d = SHARED / "data"
    if not d.is_dir():
        pytest.skip("../shared/data is absent (real BraTS fixtures live only beside the checkout)")
    return d
