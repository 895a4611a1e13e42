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
# The device of the oracle tests' tensors (tests/test_lineages.py, tests/test_metrics_reference.py):
# cpu here and in CI; FUSIONBENCH_TEST_DEVICE=cuda runs every oracle value on a GPU
# (benchmark/tools/gpu_check.sh does, on the GPU machine).
DEVICE = torch.device(os.environ.get("FUSIONBENCH_TEST_DEVICE", "cpu"))


@pytest.fixture
def shared_data():
    d = SHARED / "data"
    if not d.is_dir():
        pytest.skip("../shared/data is absent (real BraTS fixtures live only beside the checkout)")
    return d
