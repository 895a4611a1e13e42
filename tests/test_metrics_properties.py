"""Identities, symmetry, batching, precision, flat images, devices, options."""
import math

import numpy as np
import pytest
import torch

import metrics
from benchmark.data.phantom import make_pair

XY_PERFECT = 1 / (1 + math.exp(-5)) ** 2  # Liu's sigmoids without normalising constant (reference README)


@pytest.fixture(scope="module")
def pairs():
    ps = [make_pair(3, "val", i) for i in range(8)]
    x1 = torch.from_numpy(np.stack([p[0] for p in ps]))[:, None].double()
    x2 = torch.from_numpy(np.stack([p[1] for p in ps]))[:, None].double()
    return x1, x2


def test_identical_inputs_give_each_maximum(pairs):
    x = pairs[0][:2]
    s = metrics.score(x, x, x)
    torch.testing.assert_close(s["Q_SSIM"], torch.ones(2, dtype=x.dtype))
    torch.testing.assert_close(s["Q_FMI"], torch.ones(2, dtype=x.dtype))
    # NCC(X, X) = H(X) / 8 bits, so R has eigenvalues 1 + 2n, 1 - n, 1 - n (n = H/8): closed form
    from metrics.ncie import ncc, normalize1

    n = ncc(normalize1(x * 255), normalize1(x * 255))
    ev = torch.stack([1 + 2 * n, 1 - n, 1 - n], -1) / 3
    torch.testing.assert_close(s["Q_NCIE"], 1 + (ev * torch.log2(ev)).sum(-1) / 8, atol=1e-12, rtol=0)
    assert torch.all(s["Q_NCIE"] > metrics.q_ncie(torch.roll(x, 7, dims=-1), x, x))
    torch.testing.assert_close(s["Q_XY"], torch.full((2,), XY_PERFECT, dtype=x.dtype))
    torch.testing.assert_close(s["Q_P"], torch.ones(2, dtype=x.dtype))


@pytest.mark.parametrize("profile", ["upstream", "intended", "fusioninn"])
def test_symmetric_metrics_are_symmetric_in_sources(pairs, profile):
    x1, x2 = pairs[0][:3], pairs[1][:3]
    f = (x1 + x2) / 2
    s12 = metrics.score(f, x1, x2, profile=profile)
    s21 = metrics.score(f, x2, x1, profile=profile)
    for m in ("Q_SSIM", "Q_NCIE", "Q_P"):
        torch.testing.assert_close(s12[m], s21[m], atol=1e-12, rtol=0)
    torch.testing.assert_close(s12["Q_XY"], s21["Q_XY"], atol=1e-8, rtol=0)  # 1e-5 substitutions are order-dependent
    torch.testing.assert_close(s12["Q_FMI"], s21["Q_FMI"], atol=5e-3, rtol=0)  # toolbox quirk: not symmetric


@pytest.mark.parametrize("profile", ["upstream", "intended", "fusioninn"])
def test_batch_equals_single_calls(pairs, profile):
    x1, x2 = pairs
    f = torch.maximum(x1, x2)
    batch = metrics.score(f, x1, x2, profile=profile)
    for i in range(x1.shape[0]):
        one = metrics.score(f[i : i + 1], x1[i : i + 1], x2[i : i + 1], profile=profile)
        for m in batch:
            torch.testing.assert_close(batch[m][i : i + 1], one[m], atol=1e-12, rtol=0)
    chunked = metrics.score(f, x1, x2, profile=profile, chunk_size=3)
    for m in batch:
        torch.testing.assert_close(chunked[m], batch[m], atol=1e-12, rtol=0)


def test_float32_close_to_float64(pairs):
    x1, x2 = pairs[0][:4], pairs[1][:4]
    f = 0.6 * x1 + 0.4 * x2
    s64 = metrics.score(f, x1, x2)
    s32 = metrics.score(f.float(), x1.float(), x2.float())
    for m in s64:
        assert s32[m].dtype == torch.float32
        torch.testing.assert_close(s32[m].double(), s64[m], atol=1e-4, rtol=0)


def test_flat_images_are_defined():
    z = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    c = torch.full_like(z, 0.5)
    s = metrics.score(c, z, z)
    for m, v in s.items():
        assert torch.isfinite(v).all(), m
    # documented value: a constant image normalises to zeros and carries no information; three
    # such images give R = I, so NCIE = 1 - log_256(3)
    assert s["Q_NCIE"].item() == pytest.approx(1 - math.log2(3) / 8)
    # every window of F and the sources is constant: FMI's toolbox rule gives 1 for two flat windows
    assert s["Q_FMI"].item() == pytest.approx(1.0)
    # F is flat but the zero padding makes a step at its border: finite, below the perfect value
    assert 0 < s["Q_XY"].item() < XY_PERFECT
    # flat everywhere: all strengths substituted by 1e-5, G = 1, equal orientations -> the perfect value
    assert metrics.q_xy(z, z, z).item() == pytest.approx(XY_PERFECT)
    # SSIM of a constant 0.5 (8-bit 128, half to even) against 0: luminance term C1 / (mu^2 + C1)
    c1 = (0.01 * 255) ** 2
    assert s["Q_SSIM"].item() == pytest.approx(c1 / (128.0**2 + c1), rel=1e-9)


def test_petrovic_constants_option(pairs):
    x1, x2 = pairs[0][:2], pairs[1][:2]
    f = (x1 + x2) / 2
    liu = metrics.q_xy(f, x1, x2)
    pet = metrics.q_xy(f, x1, x2, constants="petrovic2000")
    assert torch.all((pet > 0) & (pet <= 1))
    assert not torch.allclose(liu, pet)
    with pytest.raises(ValueError, match="unknown Q_XY constants"):
        metrics.q_xy(f, x1, x2, constants="nope")


def test_fmi_window_sizes_and_paper_inputs(pairs):
    x1, x2 = pairs[0][:1], pairs[1][:1]
    f = (x1 + x2) / 2
    w3 = metrics.q_fmi(f, x1, x2, window=3)
    w5 = metrics.q_fmi(f, x1, x2, window=5)
    assert 0 < w5.item() < 1 and w5.item() != w3.item()
    paper = metrics.q_fmi(f, x1, x2, profile="fusioninn", paper_inputs=True)
    assert 0 < paper.item() < 1
    with pytest.raises(ValueError, match="fusioninn"):
        metrics.q_fmi(f, x1, x2, profile="upstream", paper_inputs=True)


def test_bad_inputs_give_clear_errors():
    x = torch.rand(2, 1, 32, 32)
    with pytest.raises(ValueError, match=r"x2 has shape \(2, 1, 32, 31\); expected \(2, 1, 32, 32\) like x1"):
        metrics.score(x, x, torch.rand(2, 1, 32, 31))
    bad = x.clone()
    bad[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"fused contains NaN or Inf in sample\(s\) \[1\]"):
        metrics.score(bad, x, x)
    with pytest.raises(ValueError, match="expected \\[0, 1\\]"):
        metrics.score(x * 255, x, x)
    with pytest.raises(ValueError, match="unknown metric 'Q_FOO'"):
        metrics.score(x, x, x, metrics="Q_FOO")
    with pytest.raises(ValueError, match="unknown metric profile"):
        metrics.score(x, x, x, profile="matlab")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (CPU paths are tested above)")
def test_cuda_matches_cpu(pairs):
    x1, x2 = pairs[0][:4].float(), pairs[1][:4].float()
    f = (x1 + x2) / 2
    cpu = metrics.score(f, x1, x2)
    gpu = metrics.score(f.cuda(), x1.cuda(), x2.cuda())
    for m in cpu:
        torch.testing.assert_close(gpu[m].cpu(), cpu[m], atol=1e-4, rtol=0)


def test_compiled_fmi_kernel_matches_eager(monkeypatch):
    """FUSIONBENCH_COMPILE=1 swaps in torch.compile(_nfmi); same values (float64, small input)."""
    import metrics.fmi as fmi

    g = torch.Generator().manual_seed(0)
    s = fmi._minmax(torch.rand(64, 9, generator=g, dtype=torch.float64))
    t = fmi._minmax(torch.rand(64, 9, generator=g, dtype=torch.float64))
    monkeypatch.setenv("FUSIONBENCH_COMPILE", "0")
    assert fmi._kernel() is fmi._nfmi
    monkeypatch.setenv("FUSIONBENCH_COMPILE", "1")
    monkeypatch.setattr(fmi, "_COMPILED", None)
    try:
        compiled = fmi._kernel()
        got = compiled(s, t)
    except Exception as e:  # no C++ toolchain for inductor: the option must fail loudly, not silently
        pytest.fail(f"torch.compile of the FMI kernel failed here: {e}")
    torch.testing.assert_close(got, fmi._nfmi(s, t), atol=1e-9, rtol=0)
