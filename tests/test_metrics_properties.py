"""Identities, symmetry, batching, precision, flat images, devices, options."""

import math

import numpy as np
import pytest
import torch

import metrics
from benchmark.data.phantom import make_pair

TABLE1 = ["Q_SSIM", "Q_FMI", "Q_NCIE", "Q_XY", "Q_P"]  # the toolbox metrics the oracle holds

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
    for none in ("", " , ", []):  # was "max() arg is an empty sequence" from deep inside bench run / eval
        with pytest.raises(ValueError, match="no metric named; give comma-separated metric names"):
            metrics.score(x, x, x, metrics=none)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (CPU paths are tested above)")
def test_cuda_matches_cpu(pairs):
    x1, x2 = pairs[0][:4].float(), pairs[1][:4].float()
    f = (x1 + x2) / 2
    cpu = metrics.score(f, x1, x2)
    gpu = metrics.score(f.cuda(), x1.cuda(), x2.cuda())
    for m in cpu:
        torch.testing.assert_close(gpu[m].cpu(), cpu[m], atol=1e-4, rtol=0)


def test_fmi_chunk_is_large_on_a_gpu_and_changes_no_score(pairs):
    """On a GPU the FMI kernel scores 262,144 windows a call (13.5x faster on an H200 than 16,384);
    how many windows a call takes changes no score."""
    from metrics import fmi

    assert fmi.chunk_for(torch.device("cpu")) == fmi.CHUNK == 16384
    assert fmi.chunk_for("cuda") == fmi.chunk_for(torch.device("cuda:1")) == fmi.CUDA_CHUNK == 262144
    a, b = (torch.round(x[:2] * 255) for x in pairs)
    f = torch.round((a + b) / 2)
    small = fmi.fmi_from_images(a, b, f, chunk=fmi.CHUNK)  # ~226,000 windows: 14 calls, or 1 of 262,144
    assert torch.equal(fmi.fmi_from_images(a, b, f), small)  # the CPU's default
    torch.testing.assert_close(fmi.fmi_from_images(a, b, f, chunk=fmi.CUDA_CHUNK), small, rtol=0, atol=1e-12)


def test_compiled_fmi_kernel_takes_blocks_of_windows_with_the_same_scores(monkeypatch, pairs, torch_kernels):
    """Compiled (on a CPU), the FMI kernel gets its windows in blocks, (CHUNK / BLOCK, BLOCK) top-left
    pixels a call; eager, one row. Every window scores the same in blocks as in one row, bit for bit,
    in both kernels (float32 pdfs from float64 windows too)."""
    from metrics import _compile, fmi

    a, b = (torch.round(x[:1] * 255) for x in pairs)
    f = torch.round((a + b) / 2)
    shapes = []

    def spy(fn, *args, **kw):  # records the layout, then runs the kernel eagerly
        shapes.append((tuple(args[2].shape), tuple(args[3].shape)))
        return fn(*args)

    monkeypatch.setattr(_compile, "_BROKEN", [])
    monkeypatch.setattr(_compile, "call", spy)
    with _compile.compiling(True):
        blocked = fmi.fmi_from_images(a, b, f)
    rows = fmi.CHUNK // fmi.BLOCK
    assert shapes and set(shapes) == {((rows, fmi.BLOCK), (rows, fmi.BLOCK))}
    shapes.clear()
    assert torch.equal(fmi.fmi_from_images(a, b, f), blocked)
    assert shapes and all(len(s) == 1 for s, _ in shapes)  # eager: (N,) windows
    # The kernels themselves, window by window: 2 x 64 windows as blocks against one row of 128.
    src, ff = torch.cat([a.flatten(), b.flatten()]).double() / 255, f.flatten().double() / 255
    p = torch.arange(0, 128 * 113, 113)
    offsets = fmi._offsets(3, a.shape[-1])
    for kernel in (fmi._fmi_at, fmi._fmi_at_f32):
        row = kernel(src, ff, p + a.numel(), p, offsets)
        assert row.shape == (128,) and 0.1 < row.mean() < 1
        assert torch.equal(kernel(src, ff, (p + a.numel()).view(2, 64), p.view(2, 64), offsets), row.view(2, 64))


def test_compile_setting(monkeypatch):
    """FUSIONBENCH_COMPILE: auto compiles large CPU batches only; 1 always on CPU; 0 never; CUDA never."""
    from metrics import _compile

    monkeypatch.setattr(_compile, "_BROKEN", [])
    monkeypatch.delenv("FUSIONBENCH_COMPILE", raising=False)
    assert not _compile.wanted(_compile.AUTO_MIN_PAIRS - 1, "cpu") and _compile.wanted(_compile.AUTO_MIN_PAIRS, "cpu")
    assert not _compile.wanted(10_000, "cuda")
    monkeypatch.setenv("FUSIONBENCH_COMPILE", "1")
    assert _compile.wanted(1, "cpu") and not _compile.wanted(1, "cuda")
    monkeypatch.setenv("FUSIONBENCH_COMPILE", "0")
    assert not _compile.wanted(10_000, "cpu")
    monkeypatch.setenv("FUSIONBENCH_COMPILE", "sometimes")
    with pytest.raises(ValueError, match="FUSIONBENCH_COMPILE"):
        _compile.wanted(1, "cpu")


def test_workload_decides_compilation(monkeypatch, pairs, torch_kernels):
    """Under ``auto`` the caller's whole workload (not one batch) decides, so every batch and rank of
    a run compiles or none does; a batch of one is scored like any other."""
    import metrics.fmi as fmi
    from metrics import _compile

    seen = []

    def spy(fn, *args, **kw):
        seen.append(_compile.active())
        return fn(*args)

    monkeypatch.setattr(_compile, "_BROKEN", [])
    monkeypatch.setattr(_compile, "call", spy)
    monkeypatch.setattr(_compile, "AUTO_MIN_PAIRS", 8)
    monkeypatch.delenv("FUSIONBENCH_COMPILE", raising=False)
    x1, x2 = pairs[0][:1].float(), pairs[1][:1].float()
    f = (x1 + x2) / 2
    eager = metrics.score(f, x1, x2, metrics=["Q_FMI", "Q_XY"])
    assert seen and not any(seen)
    seen.clear()
    got = metrics.score(f, x1, x2, metrics=["Q_FMI", "Q_XY"], workload=8)
    assert seen and all(seen)
    for m in got:
        assert got[m].shape == (1,)
        torch.testing.assert_close(got[m], eager[m], atol=1e-6, rtol=0)
    assert fmi._compile.call is spy


def test_failed_compilation_falls_back_to_eager(monkeypatch, pairs, torch_kernels):
    """No C++ compiler (or any inductor failure): one warning, then eager scores, not a crash."""
    from metrics import _compile

    def broken_compile(fn, **kw):
        def run(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

        return run

    x1, x2 = pairs[0][:2].float(), pairs[1][:2].float()
    f = (x1 + x2) / 2
    monkeypatch.setenv("FUSIONBENCH_COMPILE", "0")
    eager = metrics.score(f, x1, x2)
    monkeypatch.setattr(_compile, "_BROKEN", [])
    monkeypatch.setattr(_compile, "_COMPILED", {})
    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setenv("FUSIONBENCH_COMPILE", "1")
    with pytest.warns(RuntimeWarning, match="scoring continues eagerly"):
        got = metrics.score(f, x1, x2)
    assert _compile._BROKEN and not _compile.wanted(10_000, "cpu")
    for m in got:
        torch.testing.assert_close(got[m], eager[m], atol=2e-5, rtol=0)


def test_kernel_error_is_not_taken_for_a_compiler_failure(monkeypatch):
    """An error of the kernel itself surfaces as it would eagerly; compiling stays enabled."""
    from metrics import _compile

    def kernel(x):
        raise ValueError("bad window size")

    monkeypatch.setattr(_compile, "_BROKEN", [])
    monkeypatch.setattr(_compile, "_COMPILED", {kernel: kernel})
    with _compile.compiling(True), pytest.raises(ValueError, match="bad window size"):
        _compile.call(kernel, torch.zeros(2))
    assert not _compile._BROKEN


def test_scoring_ssim_statistics_equal_the_training_losses():
    """Scoring filters each distinct SSIM moment map of the three pairs once, with banded matrices;
    the training loss filters a pair's five maps with a grouped convolution. The statistics agree
    to float rounding, in every map mode and in float32 and float64."""
    from metrics._workspace import Workspace
    from metrics.ssim import ssim_stats, stats_of

    gen = torch.Generator().manual_seed(1)
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 0.05)):
        a, b, f = (torch.round(torch.rand(2, 1, 40, 33, generator=gen) * 255).to(dtype) for _ in range(3))
        for mode in ("valid", "same", "toolbox"):
            work = Workspace(f, a, b)
            for which, pair in (("FA", (f, a)), ("AB", (a, b)), ("FB", (f, b))):
                for got, want in zip(stats_of(work, which, mode, (a, b, f)), ssim_stats(*pair, mode)):
                    torch.testing.assert_close(got, want, atol=tol, rtol=0)


def test_banded_matrix_filter_equals_the_2d_window():
    """The lineages' banded-matrix Gaussian filter equals filtering with the 2-D window outer(g, g)
    ('valid'), on non-square maps, for several window sizes."""
    import torch.nn.functional as F

    from metrics.filters import gaussian_1d, separable_matmul

    x = torch.rand(3, 5, 40, 33, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for k in (3, 11, 17):
        g = gaussian_1d(k, k / 5)
        want = F.conv2d(x, torch.outer(g, g).expand(5, 1, k, k), groups=5)
        for path in ({}, {"blocks": True}):  # the default (hand-written on a CPU where it builds), BLAS
            torch.testing.assert_close(separable_matmul(x, g, **path), want, atol=1e-13, rtol=0)


def test_lineage_gaussian_windows_are_made_once_and_equal_fresh_ones():
    """The lineages' Gaussian windows (``metrics.lineage.kernels.gaussian_1d``) are kept per size,
    sigma, dtype and device: the same tensor again, bit for bit what making it afresh gives, in the
    asked dtype; another dtype or sigma is another window."""
    import metrics.lineage.kernels as K

    x32, x64 = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    g = K.gaussian_1d(17, 17 / 5.0, x64)
    assert K.gaussian_1d(17, 3.4, x64) is g and g.dtype == torch.float64
    r = torch.arange(17, dtype=torch.float64) - 8
    fresh = torch.exp(-(r**2) / (2 * 3.4 * 3.4))
    assert torch.equal(g, fresh / fresh.sum())
    g32 = K.gaussian_1d(17, 3.4, x32)
    assert g32.dtype == torch.float32 and torch.equal(g32, g.to(torch.float32))
    assert not torch.equal(K.gaussian_1d(17, 3.0, x64), g)


def test_banded_matrix_filter_skips_zero_blocks_on_a_cpu_only():
    """At 240x240 the CPU skips the band's zero blocks, in blocks of about 12 outputs, each reading
    only the inputs its taps reach (38 products for an 11-tap window, 20 at stride 2); a side of fewer
    than 64 outputs is one block. Elsewhere one product each way (fewer launches on a GPU), equal
    to float rounding. The "meta" device stands in for a GPU: the blocks are found on the host,
    which a meta tensor cannot reach."""
    from metrics.filters import BLOCK_WIDTH, DENSE_BELOW, _blocks, gaussian_1d, separable_matmul

    assert (BLOCK_WIDTH, DENSE_BELOW) == (12, 64)
    taps = tuple(gaussian_1d(11, 1.5).tolist())
    for n, stride, outputs in ((240, 1, 230), (240, 2, 115)):
        blocks = _blocks(n, taps, torch.float64, torch.device("cpu"), "valid", stride)
        assert len(blocks) == round(outputs / BLOCK_WIDTH)
        assert [b[2] for b in blocks[1:]] == [b[3] for b in blocks[:-1]] and blocks[-1][3] == outputs
        for a0, a1, c0, c1 in blocks:  # the inputs of outputs c0..c1-1: (c0..c1-1) * stride + 0..10
            assert (a0, a1) == (c0 * stride, (c1 - 1) * stride + 11) and c1 - c0 <= BLOCK_WIDTH + 1
    assert len(_blocks(60, taps, torch.float64, torch.device("cpu"), "valid", 1)) == 1  # 50 outputs

    x = torch.rand(2, 3, 240, 240, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 255
    g = gaussian_1d(11, 1.5)
    for pad in ("valid", "symmetric"):
        blocked = separable_matmul(x, g, pad, stride=2, blocks=True)
        # (the default on a CPU: the hand-written kernel where it builds, test_native.py; else the blocks)
        torch.testing.assert_close(separable_matmul(x, g, pad, stride=2), blocked, atol=1e-10, rtol=0)
        torch.testing.assert_close(separable_matmul(x, g, pad, stride=2, blocks=False), blocked, atol=1e-10, rtol=0)
        assert separable_matmul(x.to("meta"), g, pad, stride=2).shape == blocked.shape
    with pytest.raises(NotImplementedError):  # what the meta stand-in guards: blocks need the host
        separable_matmul(x.to("meta"), g, blocks=True)
    # An input that autograd records (a fuser's output scored before detaching): the same values,
    # and a gradient, as the row pass's in-place products are left to plain assignment then.
    leaf = x.clone().requires_grad_()
    filtered = separable_matmul(leaf, g)
    assert torch.equal(filtered.detach(), separable_matmul(x, g, blocks=True))
    filtered.sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


def test_lineage_metrics_score_a_batch_in_pieces_on_a_cpu_only():
    """A lineage metric sees a CPU batch in pieces of at most 4 images of equal size (float64
    moments stay in cache), and any other device's batch whole (pieces multiply a GPU's launches)."""
    from metrics._lineage_images import LineageImages
    from metrics.lineage._spec import Spec

    seen = []
    spec = Spec("X", lambda li, name: seen.append(li.n) or torch.zeros(li.n, device=li.a.device), True, "", "")
    for device, want in (("cpu", [3, 3, 3]), ("meta", [9])):
        seen.clear()
        x = torch.zeros(9, 1, 8, 8, device=device)
        flags = (torch.ones(9, dtype=torch.bool), torch.ones(9, dtype=torch.bool))
        li = LineageImages(x, x, x, flags=flags)
        assert spec(li, "X").shape == (9,) and seen == want and li.split == (device == "cpu")
    x = torch.zeros(4, 1, 8, 8)
    assert not LineageImages(x, x, x).split


@pytest.mark.parametrize("pad", ["same", "replicate", "reflect", "symmetric"])
def test_banded_matrix_filter_folds_padding_and_decimation(pad):
    """Padding folded into the banded matrices equals padding the image and filtering 'valid'
    (every mode the lineages use), and ``stride=2`` equals filtering then keeping every 2nd pixel."""
    import torch.nn.functional as F

    from metrics.filters import gaussian_1d, separable_matmul
    from metrics.lineage.kernels import _pad

    x = torch.rand(2, 3, 37, 45, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 255
    for k in (3, 9, 31):
        g = gaussian_1d(k, k / 5)
        p = k // 2
        want = F.conv2d(_pad(x, (p, p, p, p), pad), torch.outer(g, g).expand(3, 1, k, k), groups=3)
        for path in ({}, {"blocks": True}):  # the default (hand-written on a CPU where it builds), BLAS
            torch.testing.assert_close(separable_matmul(x, g, pad, **path), want, atol=1e-10, rtol=0)
            got = separable_matmul(x, g, pad, stride=2, **path)
            torch.testing.assert_close(got, want[..., ::2, ::2], atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="unknown padding"):
        separable_matmul(x, g, "wrap")


def test_separable_3x3_filters_equal_the_convolution_exactly_on_integer_images():
    """The lineages' 3x3 Sobel / Prewitt filters run as two passes of shifted slices: on 0..255
    integer images the result is the grouped convolution's bit for bit, in every padding mode."""
    import torch.nn.functional as F

    from metrics.filters import rank_one_3x3
    from metrics.lineage import kernels as K

    x = torch.randint(0, 256, (2, 1, 31, 29), generator=torch.Generator().manual_seed(3)).double()
    prewitt = [[1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]]
    for rows in (K.SOBEL_H1, K.SOBEL_H3, prewitt):
        assert rank_one_3x3(K.kernel(rows, x)) is not None
        for scale in (1.0, 8.0):
            k = K.kernel(rows, x) / scale
            for mode in ("same", "replicate", "reflect", "valid"):
                for conv in (False, True):
                    kk = torch.flip(k, (0, 1)) if conv else k
                    want = F.conv2d(K._pad(x, (1, 1, 1, 1), mode), kk.view(1, 1, 3, 3))
                    assert torch.equal(K.filt(x, k, mode, conv), want), (rows, scale, mode, conv)
    assert rank_one_3x3(K.kernel([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 10.0]], x)) is None


def test_3x3_edge_filters_run_as_slices_on_any_device(monkeypatch):
    """Sobel and Prewitt take the shifted slices on every device, not the grouped convolution (on
    an H200, cuDNN's float64 3x3 convolutions were MEFB's largest GPU cost); the "meta" device
    stands in for a GPU, with the convolution made to fail. A kernel that is not rank one still
    convolves."""
    import torch.nn.functional as F

    from metrics import filters
    from metrics.lineage import kernels as K

    x = torch.zeros(2, 3, 20, 24, dtype=torch.float64, device="meta")
    real = F.conv2d
    monkeypatch.setattr(F, "conv2d", lambda *a, **k: (_ for _ in ()).throw(AssertionError("convolution")))
    for rows in (K.SOBEL_H1, K.SOBEL_H3, [[1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]]):
        k = K.kernel(rows, x) / 8  # as the lineage metrics make them
        for mode in ("same", "replicate", "valid"):
            assert K.filt(x, k, mode).shape == ((2, 3, 20, 24) if mode != "valid" else (2, 3, 18, 22))
        assert filters.correlate(x, k, "conv_same").shape == (2, 3, 20, 24)
    full = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 10.0]])
    with pytest.raises(AssertionError, match="convolution"):
        K.filt(x, full, "same")
    monkeypatch.setattr(F, "conv2d", real)
    assert K.filt(x, full, "same").shape == (2, 3, 20, 24)


def test_table1_sobel_filters_equal_the_convolution_exactly_on_integer_images():
    """Q_XY's Sobel responses (shifted slices on a CPU) equal the grouped convolution bit for bit
    on 8-bit images, in each of the profiles' filtering modes."""
    import torch.nn.functional as F

    from metrics.filters import correlate
    from metrics.qabf import SOBEL_X, SOBEL_Y

    x = torch.randint(0, 256, (2, 1, 31, 29), generator=torch.Generator().manual_seed(4)).float()
    for k in (SOBEL_X, SOBEL_Y):
        kk = k.float()
        assert torch.equal(correlate(x, k, "valid"), F.conv2d(x, kk.view(1, 1, 3, 3)))
        assert torch.equal(correlate(x, k, "corr_same"), F.conv2d(x, kk.view(1, 1, 3, 3), padding=1))
        flipped = torch.flip(kk, (0, 1)).view(1, 1, 3, 3)
        assert torch.equal(correlate(x, k, "conv_same"), F.conv2d(x, flipped, padding=1))
    with pytest.raises(ValueError, match="unknown filtering mode"):
        correlate(x, SOBEL_X, "full")


def test_cddfuse_uniform_filter_is_scipys_bit_for_bit():
    """CDDFuse's SSIM windows are scipy ``uniform_filter(size=7)`` on float32 images; reproduced
    exactly (the near-constant oracle case c05 depends on the last bit)."""
    import numpy as np
    from scipy.ndimage import uniform_filter

    from metrics.lineage.cddfuse import _mean7_f32

    rng = np.random.default_rng(4)
    x = (rng.integers(0, 256, (3, 1, 40, 36)) * (rng.random((3, 1, 40, 36)) > 0.3)).astype(np.float32)
    for img in (x, x * x):
        want = np.stack([uniform_filter(i[0], 7) for i in img])[:, None, 3:-3, 3:-3]
        assert np.array_equal(_mean7_f32(torch.from_numpy(img)).numpy(), want)


def test_compiled_kernels_match_toolbox(monkeypatch, torch_kernels):
    """FUSIONBENCH_COMPILE=1: the compiled kernel (Q_FMI's) gives the Octave values in float32 within
    1e-4 for every 240x240 oracle case and profile, and agrees with eager scoring; batches of other
    sizes (one image included) reuse it without compiling again."""
    import json

    import numpy as np
    from conftest import DATA

    from metrics import _compile

    ref = json.loads((DATA / "reference" / "reference.json").read_text())
    cases = [k for k, v in sorted(ref["cases"].items()) if not k.startswith(("c09", "c19"))]  # one size, 8-bit
    arrays = [np.load(DATA / "reference" / ref["cases"][k]["file"]) for k in cases]
    f, a, b = (
        torch.tensor(np.stack([d[key] for d in arrays]).astype(np.float32))[:, None] / 255 for key in ("F", "A", "B")
    )
    column = {"upstream": "upstream", "intended": "intended", "fusioninn": "toolbox"}
    monkeypatch.setattr(_compile, "_BROKEN", [])
    for profile in ("upstream", "intended", "fusioninn"):
        monkeypatch.setenv("FUSIONBENCH_COMPILE", "0")
        eager = metrics.score(f, a, b, metrics=TABLE1, profile=profile)
        monkeypatch.setenv("FUSIONBENCH_COMPILE", "1")
        compiled = metrics.score(f, a, b, metrics=TABLE1, profile=profile)
        assert not _compile._BROKEN, f"torch.compile failed here: {_compile._BROKEN}"
        for m, v in compiled.items():
            for i, case in enumerate(cases):
                if case.startswith("c10") and m == "Q_P" and profile != "fusioninn":
                    continue  # reference README hazard: Piella's weight on flat plateaus is rounding residue
                assert abs(v[i].item() - eager[m][i].item()) <= 2e-5, (
                    f"{case} {profile} {m}: compiled {v[i].item()!r} vs eager {eager[m][i].item()!r}"
                )
                want = ref["cases"][case]["values"][
                    "upstream" if (profile, m) == ("fusioninn", "Q_SSIM") else column[profile]
                ][m]
                if want is not None:
                    assert abs(v[i].item() - want) <= 1e-4, f"{case} {profile} {m}: {v[i].item()!r} vs Octave {want!r}"
    assert _compile._COMPILED, "nothing was compiled"
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    for k in (1, 3):
        metrics.score(f[:k], a[:k], b[:k], metrics=["Q_FMI"])
    assert counters["stats"]["unique_graphs"] == graphs, "a batch of another size compiled the FMI kernel again"


def test_value_checks_run_in_chunks_and_name_the_sample(pairs):
    """score() checks values chunk by chunk (no memory in proportion to B) and names the bad sample."""
    x1, x2 = pairs[0][:6].float(), pairs[1][:6].float()
    f = ((x1 + x2) / 2).clone()
    f[5, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"fused contains NaN or Inf in sample\(s\) \[5\]"):
        metrics.score(f, x1, x2, chunk_size=2)
    f[5, 0, 3, 3] = 1.5
    with pytest.raises(ValueError, match=r"fused has values in \[0, 1.5\] in sample\(s\) \[5\]"):
        metrics.score(f, x1, x2, chunk_size=4)


def test_compiled_flag_names_exactly_the_metrics_that_run_compiled_kernels(monkeypatch, pairs, native_kernel):
    """``MetricInfo.runs_compiled()`` (bench eval compiles those kernels in the background and scores
    the other metrics meanwhile) is true exactly for the metrics that call a compiled kernel: with
    the hand-written kernels none; without them (``FUSIONBENCH_NATIVE=0``, or where they cannot be
    built) the five Fast-FMI metrics and MEFB's Qp, those flagged ``compiled``."""
    from metrics import _compile, _native
    from metrics.registry import METRICS

    calls = []

    def spy(fn, *args, **kw):
        calls.append(fn)
        return fn(*args)

    monkeypatch.setattr(_compile, "call", spy)
    x1, x2 = pairs[0][:1, :, 96:144, 96:144].float(), pairs[1][:1, :, 96:144, 96:144].float()  # not background
    f = (x1 + x2) / 2
    for native in ("auto", "0"):
        monkeypatch.setenv("FUSIONBENCH_NATIVE", native)
        assert _native.available() == (native == "auto")
        compiling = []
        for name, info in METRICS.items():
            calls.clear()
            with _compile.compiling(True):
                metrics.score(f, x1, x2, metrics=[name], lineages=info.lineage if info.lineage != "liu" else None)
            assert bool(calls) == info.runs_compiled(), name
            if calls:
                compiling.append(name)
        assert compiling == ([] if native == "auto" else [n for n, i in METRICS.items() if i.compiled])
        assert len(compiling) == (0 if native == "auto" else 6)


def test_scores_do_not_depend_on_the_batch_or_the_thread_count(pairs):
    """Bit for bit: a batch of five (lineage pieces of 3 + 2 images) on two CPU threads, on one,
    and each image alone on two (a single image's reductions to one value would otherwise be split
    over the threads and round differently; bench eval's results may not depend on its workers),
    and each metric function called alone on one image."""
    x1, x2 = (torch.round(x[:5].float() * 255) / 255 for x in pairs)
    f = torch.round((0.6 * x1 + 0.4 * x2) * 255) / 255
    threads = torch.get_num_threads()
    try:
        for lineages in (None, "vifb,tang,mefb,cddfuse"):
            torch.set_num_threads(2)
            batch = metrics.score(f, x1, x2, lineages=lineages)
            alone = [metrics.score(f[i : i + 1], x1[i : i + 1], x2[i : i + 1], lineages=lineages) for i in range(5)]
            torch.set_num_threads(1)
            one_thread = metrics.score(f, x1, x2, lineages=lineages)
            for m, v in batch.items():
                for other in (one_thread[m], torch.cat([a[m] for a in alone])):
                    assert torch.equal(v.isnan(), other.isnan()), m
                    assert torch.equal(v[~v.isnan()], other[~v.isnan()]), m
            torch.set_num_threads(2)
            for m, v in batch.items():  # each metric function called alone on one image (no shared work)
                single = metrics.METRICS[m].fn(f[2:3], x1[2:3], x2[2:3])
                assert torch.equal(single, v[2:3]) or (single.isnan().all() and v[2:3].isnan().all()), m
    finally:
        torch.set_num_threads(threads)
