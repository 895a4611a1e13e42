"""The one trainer, exercised with a tiny trainable fuser on phantom data."""

import json
import re

import pytest
import torch

from baselines.loss import LossConfig, fusion_loss
from benchmark.data import phantom_split
from benchmark.training.trainer import TrainConfig, load_checkpoint, summary, train


class TinyFuser(torch.nn.Module):
    """Two 3x3 convolutions and a sigmoid: the smallest trainable fuser."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 3, padding=1)
        )

    def forward(self, x1, x2):
        return torch.sigmoid(self.net(torch.cat([x1, x2], 1)))


@pytest.fixture(scope="module")
def data():
    return phantom_split(11, "train", 12, cache=False), phantom_split(11, "val", 4, cache=False)


def _model():
    torch.manual_seed(0)
    return TinyFuser()


def test_fusion_loss_matches_definition():
    torch.manual_seed(0)
    x1, x2, f = torch.rand(3, 2, 1, 32, 32).unbind(0)
    from metrics.ssim import ssim

    lam, w = 0.8, 0.5
    want = lam * (w * (1 - ssim(f, x1).mean()) + (1 - w) * (1 - ssim(f, x2).mean())) + (1 - lam) * (
        w * ((f - x1) ** 2).mean() + (1 - w) * ((f - x2) ** 2).mean()
    )
    torch.testing.assert_close(fusion_loss(f, x1, x2, LossConfig(lam, w)), want)
    assert fusion_loss(x1, x1, x1).item() == pytest.approx(0.0, abs=1e-6)


def test_training_lowers_validation_loss_and_writes_checkpoints(data, tmp_path):
    tr, va = data
    m = _model()
    cfg = TrainConfig(epochs=3, batch_size=4, lr=3e-3, seed=1)
    state = train(m, tr, va, cfg, str(tmp_path), progress=False, name="tiny")
    hist = state["history"]
    assert len(hist) == 3 and hist[-1]["val_loss"] < hist[0]["val_loss"]
    assert all(k in hist[0] for k in ("train_loss", "val_loss", "lr", "images_per_s"))
    best = load_checkpoint(str(tmp_path / "best.pt"))
    assert set(best) == set(m.state_dict())
    log = json.loads((tmp_path / "train.json").read_text())
    assert log["best_val_loss"] == pytest.approx(min(h["val_loss"] for h in hist))
    first, last = hist[0]["val_loss"], hist[-1]["val_loss"]  # the line a batch job's log keeps (bars leave none)
    said = summary("tiny", hist)
    want = rf"\[fusionbench\] tiny: trained 3 epochs, 9 steps, \d+s; validation loss {first:.4f} after epoch 1, "
    assert re.match(want + rf"{last:.4f} after epoch 3", said), said


def test_the_training_summary_names_the_kept_epoch():
    hist = [{"epoch": e, "step": 5 * e, "val_loss": v, "seconds": 30.0} for e, v in ((1, 0.5), (2, 0.25), (3, 0.3))]
    assert summary("unet", hist) == (
        "[fusionbench] unet: trained 3 epochs, 15 steps, 1m30s; validation loss 0.5000 after epoch 1, "
        "0.3000 after epoch 3; best 0.2500 after epoch 2 (kept)"
    )
    assert summary("p", hist[:1]) == "[fusionbench] p: trained 1 epoch, 5 steps, 30s; validation loss 0.5000"
    assert summary("p", []) == "[fusionbench] p: no epoch to train (epochs 0); it keeps its initial weights"


@pytest.mark.parametrize("schedule", ["plateau", "cosine"])
def test_resumed_training_equals_uninterrupted(data, tmp_path, schedule):
    """Killed after epoch 1 and resumed from last.pt: the same weights and losses as one run. The
    cosine schedule warms up and decays by step (3e-3 -> 1.5e-4 over these 9 steps), so a resume that
    lost the scheduler's state would differ; the plateau one keeps 3e-3 through these three epochs
    (each improves), so there only the model and optimiser state are checked."""
    tr, va = data
    cfg = TrainConfig(epochs=3, batch_size=4, lr=3e-3, seed=2, schedule=schedule, warmup=2, plateau_patience=0)
    full = _model()
    train(full, tr, va, cfg, str(tmp_path / "full"), progress=False)
    part = _model()
    train(part, tr, va, cfg, str(tmp_path / "part"), progress=False, stop_after_epochs=1)  # "killed" after epoch 1
    resumed, said = _model(), []  # a fresh process: new model, state only from last.pt
    train(resumed, tr, va, cfg, str(tmp_path / "part"), progress=False, resume=True, log=said.append)
    want = r"\[fusionbench\] resuming model from \S+ \(written [\d :-]{16}\): 1 of 3 epochs done"
    assert len(said) == 1 and re.fullmatch(want, said[0]), said
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    a = load_checkpoint(str(tmp_path / "full" / "last.pt"))
    b = load_checkpoint(str(tmp_path / "part" / "last.pt"))
    assert a["history"][-1]["val_loss"] == b["history"][-1]["val_loss"]


def test_the_best_epoch_is_kept_not_the_last(data, tmp_path, monkeypatch):
    """Validation losses 0.5, 0.25, 0.3: best.pt holds the weights after epoch 2, the trained model
    ends with them (not epoch 3's, which last.pt keeps for a resume), and train.json says 0.25."""
    import benchmark.training.trainer as trainer

    losses, after = iter([0.5, 0.25, 0.3]), []

    def scripted(model, ds, cfg, device):
        after.append({k: v.clone() for k, v in model.state_dict().items()})
        v = next(losses)
        return v, v, {}

    monkeypatch.setattr(trainer, "evaluate_loss", scripted)
    m = _model()
    train(m, *data, TrainConfig(epochs=3, batch_size=4, lr=3e-3, seed=0), str(tmp_path), progress=False)
    best, last = load_checkpoint(str(tmp_path / "best.pt")), load_checkpoint(str(tmp_path / "last.pt"))["model"]
    for k, v in m.state_dict().items():
        assert torch.equal(best[k], after[1][k]) and torch.equal(v, after[1][k]), k
        assert torch.equal(last[k], after[2][k]), k
    assert not all(torch.equal(after[1][k], after[2][k]) for k in best)
    assert json.loads((tmp_path / "train.json").read_text())["best_val_loss"] == 0.25


def test_plateau_scheduler_and_reference_quirks(data, tmp_path):
    tr, va = data
    cfg = TrainConfig(
        epochs=2, batch_size=5, lr=3e-3, seed=0, plateau_patience=0, plateau_factor=0.5, reference_quirks=True
    )
    state = train(_model(), tr, va, cfg, str(tmp_path), progress=False)
    lrs = [h["lr"] for h in state["history"]]
    assert lrs[0] in (3e-3, 1.5e-3) and all(lr <= 3e-3 for lr in lrs)


def test_reference_quirks_on_differ_from_off(data, tmp_path):
    """Quirks on: file order and the last partial batch dropped (12 pairs at batch 5: 2 steps);
    off: shuffled, every pair used (3 steps). Different batches, different weights."""
    tr, va = data
    kw = dict(epochs=1, batch_size=5, lr=3e-3, seed=0)
    on, off = _model(), _model()
    h_on = train(on, tr, va, TrainConfig(**kw, reference_quirks=True), str(tmp_path / "on"), progress=False)["history"]
    h_off = train(off, tr, va, TrainConfig(**kw), str(tmp_path / "off"), progress=False)["history"]
    assert h_on[0]["step"] == 2 and h_off[0]["step"] == 3
    assert not torch.equal(on.net[0].weight, off.net[0].weight)


def test_nan_loss_is_a_clear_error(data, tmp_path):
    class Bad(TinyFuser):
        def loss(self, x1, x2, cfg):
            return self(x1, x2).sum() * float("nan")

    with pytest.raises(FloatingPointError, match="training loss became nan"):
        train(Bad(), data[0], data[1], TrainConfig(epochs=1, batch_size=4), str(tmp_path), progress=False, name="bad")


def test_loss_is_float32_under_bf16_autocast():
    """Under autocast the SSIM convolutions would run in bf16 and the loss would be noise."""
    torch.manual_seed(0)
    x1, x2 = torch.rand(2, 1, 64, 64), torch.rand(2, 1, 64, 64)
    f = (x1 + x2) / 2
    ref = fusion_loss(f, x1, x2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fusion_loss(f.bfloat16(), x1, x2)
    assert got.dtype == torch.float32
    assert abs(float(got) - float(ref)) < 5e-3


def test_progress_bar_shows_the_time_left_to_the_end_of_training(data, tmp_path, monkeypatch):
    """Each step's bar shows the whole training's time left (not only the epoch's): the mean step
    time so far times the steps still to come, in every later epoch too; 0s at the last step."""
    from benchmark.training import trainer

    shown = []

    class Bar:
        def __init__(self, it, **kw):
            self.it = list(it)

        def __iter__(self):
            return iter(self.it)

        def __len__(self):
            return len(self.it)

        def set_postfix(self, **kw):
            shown.append(kw["left"])

    class Clock:  # every reading 10 s after the last
        t = 0

        @classmethod
        def perf_counter(cls):
            cls.t += 10
            return cls.t

    monkeypatch.setattr(trainer, "tqdm", Bar)
    monkeypatch.setattr(trainer, "time", Clock)
    train(_model(), *data, TrainConfig(epochs=2, batch_size=4, seed=1), str(tmp_path), progress=True)
    # 2 epochs of 3 steps; e.g. the first: 20 s a step so far, 2 + 3 steps to go
    assert shown == ["1m40s", "1m00s", "40s", "40s", "18s", "0s"], shown
    assert [trainer._clock(x) for x in (45, 725, 105240)] == ["45s", "12m05s", "29h14m"]
