"""DDFM: the EM step against an independent dense solve, the sampler, the prior's train/save/load."""

import os
import re

import numpy as np
import pytest
import torch

from baselines.ddfm.em_fusion import EMState, em_step
from baselines.ddfm.prior import DiffusionPrior, load_prior
from baselines.ddfm.sampler import schedule


def _dense_ops(h, w):
    """Dense matrices of the circular forward differences whose OTFs are K1 = [1, -1], K2 = [1; -1]."""
    n = h * w
    idx = np.arange(n).reshape(h, w)
    dx = np.zeros((n, n))
    dy = np.zeros((n, n))
    for r in range(h):
        for c in range(w):
            # psf2otf([1, -1]) puts -1 at column 0 and 1 at column W-1: (K1 x)[c] = x[c+1] - x[c] (circular)
            dx[idx[r, c], idx[r, c]] -= 1
            dx[idx[r, c], idx[r, (c + 1) % w]] += 1
            dy[idx[r, c], idx[r, c]] -= 1
            dy[idx[r, c], idx[(r + 1) % h, c]] += 1
    return dx, dy


def test_em_step_matches_a_direct_dense_solve():
    rng = np.random.default_rng(0)
    h, w = 6, 5
    f, i, v = (torch.tensor(rng.uniform(-1, 1, (1, 1, h, w))) for _ in range(3))
    st = EMState.initial(f)
    st.F1 = torch.tensor(rng.normal(0, 0.1, (1, 1, h, w)))
    st.F2 = torch.tensor(rng.normal(0, 0.1, (1, 1, h, w)))
    out, new = em_step(f, i, v, st)
    # independent float64 computation of the same update, with H from a dense linear solve
    Y, X = (i - v).numpy().ravel(), (f - v).numpy().ravel()
    D = np.sqrt(2 / (1.0 * (X**2 + 1e-6)))
    C = np.sqrt(2 / (1.0 * (Y - X + 1e-6) ** 2))
    D = np.minimum(D, 2 * C)
    dx, dy = _dense_ops(h, w)
    A = np.eye(h * w) + dx.T @ dx + dy.T @ dy
    H = np.linalg.solve(A, (Y - X) + dx.T @ st.F1.numpy().ravel() + dy.T @ st.F2.numpy().ravel())
    np.testing.assert_allclose(new.H.numpy().ravel(), H, atol=1e-10)
    Xn = (2 * C * Y + 0.001 * (Y - H)) / (2 * C + 2 * D + 0.001)
    np.testing.assert_allclose(out.numpy().ravel(), i.numpy().ravel() - Xn, atol=1e-10)
    Hm = H.reshape(h, w)
    f1 = np.concatenate([Hm[:, :-1] - Hm[:, 1:], Hm[:, -1:]], 1) * 0.001 / (1 + 0.001)
    np.testing.assert_allclose(new.F1.numpy()[0, 0], f1, atol=1e-12)
    np.testing.assert_allclose(new.tau_b.item(), np.mean(1 / (D + 1e-10) + 0.5), rtol=1e-12)


def test_em_step_batched_state_shapes_and_flat_images():
    f = torch.zeros(3, 1, 16, 12)
    i = torch.full_like(f, 0.5)
    v = torch.full_like(f, 0.5)
    st = EMState.initial(f)
    for _ in range(3):
        out, st = em_step(f, i, v, st)
    assert out.shape == f.shape and st.tau_a.shape == (3, 1, 1, 1) and st.H.shape == f.shape
    assert torch.isfinite(out).all() and all(
        torch.isfinite(t).all() for t in (st.C, st.D, st.F1, st.F2, st.H, st.tau_a, st.tau_b)
    )
    # batched equals one at a time
    g = torch.rand(2, 1, 8, 8) * 2 - 1
    a, b = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    both, _ = em_step(g, a, b, EMState.initial(g))
    one, _ = em_step(g[1:], a[1:], b[1:], EMState.initial(g[1:]))
    torch.testing.assert_close(both[1:], one)


def test_schedule_is_the_papers_respacing():
    ts, abar = schedule(100)
    assert ts.tolist() == [round(i * 999 / 99) for i in range(99, -1, -1)]
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    torch.testing.assert_close(abar.double(), torch.cumprod(1 - betas, 0), rtol=1e-5, atol=1e-7)


def test_sampler_is_deterministic_and_in_range():
    torch.manual_seed(0)
    prior = DiffusionPrior(size=32, channels=(8, 8)).eval()
    from baselines.ddfm import DDFM

    m = DDFM(steps=4)
    m.prior = prior
    x1, x2 = torch.rand(2, 1, 30, 28), torch.rand(2, 1, 30, 28)
    with torch.no_grad():
        a, b = m(x1, x2), m(x1, x2)
    assert torch.equal(a, b) and a.shape == x1.shape and 0 <= a.min() and a.max() <= 1
    with pytest.raises(RuntimeError, match="never falls back to random weights"):
        DDFM(steps=4)(x1, x2)


def test_prior_trains_on_patches_of_any_size():
    """A patch whose sides the UNet cannot halve (a crop of 33, as `--set crop=33` on 61-pixel-wide data
    asks) stopped training with "Sizes of tensors must match". Patches are padded to the UNet's multiple,
    as whole slices are padded to the prior's size (background, -1); a patch of that multiple is as before."""
    torch.manual_seed(0)
    prior = DiffusionPrior(size=128, channels=(8, 8, 16))
    for size in ((33, 33), (17, 30), (32, 32)):
        x1, x2 = torch.rand(2, 1, *size), torch.rand(2, 1, *size)
        loss = prior.loss(x1, x2)
        loss.backward()
        assert torch.isfinite(loss) and loss > 0, size
    seen = []
    hook = prior.unet.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    torch.manual_seed(1)
    prior.loss(x1, x2)  # 32 x 32: a multiple of 4 already, so no padding: the noisy images are the patches'
    hook.remove()
    torch.manual_seed(1)
    x0 = torch.cat([x1, x2], 0) * 2 - 1
    noise, t = torch.randn_like(x0), torch.randint(0, 1000, (4,))
    assert torch.equal(seen[0], prior.noise.add_noise(x0, noise, t))


def test_prior_trains_saves_and_loads_through_ddfm_prior(tmp_path, capfd):
    from baselines.ddfm import DDFM
    from benchmark.config import make_config
    from benchmark.data import phantom_split
    from benchmark.running.runner import train_ddfm_prior

    tr, va = phantom_split(31, "train", 4, cache=False), phantom_split(31, "val", 2, cache=False)
    m = DDFM(steps=3)
    assert m.prior is None  # a model without a prior: the benchmark's trainer makes one
    cfg = make_config("smoke", ddfm_prior_epochs=1, ddfm_prior_channels="8,8")
    m.prior = train_ddfm_prior(cfg, tr, va, str(tmp_path), "cpu", progress=False)
    folder = tmp_path / "prior" / "unet"
    assert (folder / "config.json").exists() and (tmp_path / "prior" / "best.pt").exists()
    capfd.readouterr()
    loaded = load_prior(str(folder))
    assert "accelerate" not in "".join(capfd.readouterr())  # diffusers advised "pip install accelerate" on every load
    for (k, p), q in zip(m.prior.unet.state_dict().items(), loaded.unet.state_dict().values()):
        assert torch.equal(p, q), k
    x = torch.rand(1, 1, 240, 240)
    with torch.no_grad():
        f1 = m(x, x)
        m2 = DDFM(steps=3, prior_path=str(folder))
        f2 = m2(x, x)
    torch.testing.assert_close(f1, f2)
    with pytest.raises(FileNotFoundError, match="not a diffusers UNet2DModel folder"):
        DDFM(prior_path=str(tmp_path / "nothing"))
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_bench_list_says_what_bench_run_trains_for_ddfm(capsys):
    """bench list showed DDFM as "trainable no, params 0", yet bench run trains its diffusion prior;
    the line under the table says so, with the prior's size in each profile (counted here)."""
    from baselines.ddfm.prior import DiffusionPrior, check_channels
    from benchmark.cli import main
    from benchmark.config import make_config

    assert main(["list"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("  ddfm: no weights of its own")]
    assert len(line) == 1 and "unless --ddfm-prior PATH loads one" in line[0], line
    for profile in ("smoke", "quick", "paper"):
        prior = DiffusionPrior(channels=check_channels(make_config(profile).ddfm_prior_channels))
        n = sum(p.numel() for p in prior.parameters() if p.requires_grad)
        said = re.search(rf"([\d,]+) (?:parameters )?in [a-z ]*\b{profile}\b", line[0])
        assert said and int(said.group(1).replace(",", "")) == n, (profile, n, line[0])
