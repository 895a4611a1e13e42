"""The six discriminative baselines: parameter counts, shapes and ranges, one training step, checkpoints."""

import pytest
import torch

from baselines.loss import LossConfig
from baselines.registry import create_fuser, get_fuser
from benchmark.training.trainer import load_checkpoint, model_loss, save_checkpoint

# docs/reference.md §4 reference counts (FusionINN authors' code);
# Half-UNet's paper variant sums features (64 -> 1 head).
COUNTS = {"deepfuse": 89_155, "funfusean": 122_209, "unet": 31_042_945, "unet++": 36_629_057, "unet3+": 26_971_201}
SMALL = {
    "deepfuse": {},
    "funfusean": {},
    "half-unet": {},
    "unet": {"width": 0.125},
    "unet++": {"width": 0.125},
    "unet3+": {"width": 0.125},
}


def n_params(m):
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", list(COUNTS))
def test_parameter_counts(name):
    """Equal to the reference counts, and to what the registry declares (so listing builds nothing)."""
    assert n_params(create_fuser(name)) == COUNTS[name] == get_fuser(name).params
    assert get_fuser(name).kind == "discriminative" and get_fuser(name).trainable


def test_half_unet_variants():
    from baselines.half_unet import HalfUNet

    assert n_params(HalfUNet("reference")) == 337_729  # exact reference count, inert depthwise convs included
    assert abs(n_params(HalfUNet("paper")) - 337_729) <= 0.02 * 337_729  # "about 0.34M"
    assert get_fuser("funfusean").batch_size == 8 and get_fuser("unet").batch_size == 64


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("size", [(240, 240), (37, 29)])
def test_output_shape_and_range(name, size):
    torch.manual_seed(0)
    m = create_fuser(name, **SMALL[name]).eval()
    x1, x2 = torch.rand(2, 1, *size), torch.rand(2, 1, *size)
    with torch.no_grad():
        f = m(x1, x2)
    assert f.shape == x1.shape and f.dtype == torch.float32
    assert torch.isfinite(f).all() and f.min() >= 0 and f.max() <= 1


@pytest.mark.parametrize("name", list(SMALL))
def test_one_training_step_lowers_the_loss(name):
    torch.manual_seed(0)
    m = create_fuser(name, **SMALL[name])
    x1, x2 = torch.rand(4, 1, 48, 48), torch.rand(4, 1, 48, 48)
    opt = torch.optim.Adam(m.parameters(), lr=3e-4)
    m.train()
    before = model_loss(m, x1, x2, LossConfig())
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():  # same batch, same (training) BatchNorm mode
        after = model_loss(m, x1, x2, LossConfig())
    assert after < before, f"{name}: loss {float(before):.4f} -> {float(after):.4f}"


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    m = create_fuser("unet3+", width=0.125).eval()
    save_checkpoint(str(tmp_path / "best.pt"), m.state_dict())
    m2 = create_fuser("unet3+", width=0.125).eval()
    m2.load_state_dict(load_checkpoint(str(tmp_path / "best.pt")))
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x, x), m2(x, x))


def test_checkpoints_refuse_pickled_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="pickled Python objects besides tensors; such files are never loaded") as e:
        load_checkpoint(str(tmp_path / "evil.pt"))
    assert "weights_only" not in str(e.value) and isinstance(e.value.__context__, pickle.UnpicklingError)


def test_funfusean_guard_option():
    torch.manual_seed(0)
    m = create_fuser("funfusean", guard=True).eval()
    with torch.no_grad():
        f = m(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))
    assert torch.isfinite(f).all()


def test_smp_fuser_runs_or_explains():
    try:
        import segmentation_models_pytorch  # noqa: F401
    except Exception:
        with pytest.raises(ValueError, match=r"pip install 'fusionbench\[smp\]'"):
            get_fuser("smp-unet-resnet34")
        return
    m = create_fuser("smp-unet-resnet18").eval()
    with torch.no_grad():
        f = m(torch.rand(1, 1, 240, 240), torch.rand(1, 1, 240, 240))
    assert f.shape == (1, 1, 240, 240) and 0 <= f.min() and f.max() <= 1
    assert get_fuser("smp-unetplusplus-resnet18").params > 1_000_000


def test_unet3p_channel_grouped_upsampling_is_exact():
    """The grouped path used at large batch equals plain upsample-then-conv."""
    from baselines.unet3p import UNet3P

    torch.manual_seed(0)
    m = UNet3P(width=0.125).eval()
    branch = m.branches["0_4"]
    c = branch[0].in_channels
    x = torch.rand(2, c, 4, 4, dtype=torch.float64)
    branch = branch.double()
    with torch.no_grad():
        plain = m._up_branch(branch, x, 16)
        grouped = m._up_branch(branch, x, 16, limit=2 * 64 * 64 * 5)  # forces groups of 5 channels
    torch.testing.assert_close(grouped, plain)
