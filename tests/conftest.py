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


@pytest.fixture
def native_kernel():
    """The hand-written kernels (metrics._native: FMI windows, phase congruency's sums), which the test
    needs built. Skipped only where
    this machine cannot build it by design (not Linux on x86-64, no AVX2, no C++ compiler: there the
    PyTorch kernel scores, as the fallback tests check); anywhere else a failed build fails the test."""
    import platform

    from metrics import _native, _native_build

    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"the hand-written FMI kernel is for Linux on x86-64, not {platform.system()} {platform.machine()}")
    if "avx2" not in pathlib.Path("/proc/cpuinfo").read_text():
        pytest.skip("the hand-written FMI kernel needs AVX2, which this CPU lacks")
    if _native_build._compiler() is None:
        pytest.skip("no C++ compiler here to build the hand-written FMI kernel")
    assert _native.available(), _native._PROBLEM


@pytest.fixture
def torch_kernels(monkeypatch):
    """Score Fast-FMI windows and phase congruency's sums with the PyTorch kernels (eager, or compiled
    where a test compiles), as where the hand-written CPU kernels (metrics._native) cannot be built
    and on a GPU."""
    monkeypatch.setenv("FUSIONBENCH_NATIVE", "0")


@pytest.fixture
def cuda_division(monkeypatch):
    """Divide as CUDA does: PyTorch computes a tensor divided by a Python number as x * (1 / d) on
    a GPU ("may lose one bit of precision", aten/src/ATen/native/cuda/BinaryDivTrueKernel.cu), and
    by true division on a CPU. Within a test using this fixture, the CPU does as CUDA does, so
    that GPU rounding paths are tested on any machine (it gave the H200's wrong values, before their
    fix, to the last digit)."""

    def recip(div, in_place: bool):
        def f(x, d):
            if isinstance(d, (int, float)) and not isinstance(d, bool) and d != 0 and x.is_floating_point():
                return x.mul_(1.0 / d) if in_place else x * (1.0 / d)
            return div(x, d)

        return f

    for name, in_place in (("__truediv__", False), ("__itruediv__", True)):
        monkeypatch.setattr(torch.Tensor, name, recip(getattr(torch.Tensor, name), in_place))
