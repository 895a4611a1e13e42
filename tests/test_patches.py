"""Patch training: random crops with flips, the same for both sources; training on crops learns."""

import json

import pytest
import torch

from benchmark.data import phantom_split
from benchmark.training.patches import random_patches
from benchmark.training.trainer import TrainConfig, train


def _grid(b=5, h=40, w=48):
    """Images whose pixel values encode their own (sample, row, column)."""
    r = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    c = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    x1 = torch.stack([1000 * i + r * w + c for i in range(b)])[:, None]
    return x1, x1 + 0.5


def test_patch_shapes_positions_and_pairing():
    x1, x2 = _grid()
    g = torch.Generator().manual_seed(3)
    p1, p2 = random_patches(x1, x2, 16, flip=False, generator=g)
    assert p1.shape == p2.shape == (5, 1, 16, 16)
    torch.testing.assert_close(p2, p1 + 0.5)  # the same window in both sources
    for i in range(5):
        v = p1[i, 0] - 1000 * i
        top, left = divmod(int(v[0, 0]), 48)
        assert 0 <= top <= 40 - 16 and 0 <= left <= 48 - 16  # inside the image
        torch.testing.assert_close(
            p1[i, 0], x1[i, 0, top : top + 16, left : left + 16]
        )  # a contiguous, unflipped window


def test_patches_are_seeded_and_flips_apply_to_both_sources():
    x1, x2 = _grid(b=64)
    a = random_patches(x1, x2, 16, flip=True, generator=torch.Generator().manual_seed(7))
    b = random_patches(x1, x2, 16, flip=True, generator=torch.Generator().manual_seed(7))
    c = random_patches(x1, x2, 16, flip=True, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a[0], b[0])
    assert not torch.equal(a[0], c[0])
    torch.testing.assert_close(a[1], a[0] + 0.5)
    rows_down = a[0][:, 0, 1, 0] > a[0][:, 0, 0, 0]  # rows increasing = not flipped up-down
    cols_right = a[0][:, 0, 0, 1] > a[0][:, 0, 0, 0]
    assert 0 < int(rows_down.sum()) < 64 and 0 < int(cols_right.sum()) < 64  # both flips occur, not always


def test_patch_errors():
    x1, x2 = _grid()
    with pytest.raises(ValueError, match="crop 64 is larger than the images"):
        random_patches(x1, x2, 64)
    with pytest.raises(ValueError, match="like x1"):
        random_patches(x1, x2[:, :, :32], 16)


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(2, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1)
        )

    def forward(self, x1, x2):
        return torch.sigmoid(self.net(torch.cat([x1, x2], 1)))


def test_training_on_crops_lowers_whole_slice_validation_loss(tmp_path):
    tr, va = phantom_split(5, "train", 8, cache=False), phantom_split(5, "val", 4, cache=False)
    torch.manual_seed(0)
    m = _Tiny()
    cfg = TrainConfig(
        epochs=3, batch_size=8, lr=1e-2, crop=48, flip=True, crops_per_pair=4, schedule="cosine", warmup=2
    )
    hist = train(m, tr, va, cfg, str(tmp_path), progress=False, name="tiny")["history"]
    assert [h["step"] for h in hist] == [4, 8, 12]  # 8 pairs x 4 crops / batch 8 per epoch
    assert hist[-1]["val_loss"] < hist[0]["val_loss"] and hist[-1]["train_loss"] < hist[0]["train_loss"]
    log = json.loads((tmp_path / "train.json").read_text())
    assert log["config"]["crop"] == 48 and len(log["history"]) == 3


def test_fusioninn_records_its_loss_terms_and_decomposition_ssim(tmp_path):
    from fusioninn import model as fm

    tr, va = phantom_split(5, "train", 4, cache=False), phantom_split(5, "val", 2, cache=False)
    torch.manual_seed(0)
    m = fm.FusionINN()
    hist = train(m, tr, va, TrainConfig(epochs=1, batch_size=4, lr=1e-3, crop=32), str(tmp_path), progress=False)[
        "history"
    ]
    for k in (
        "train_fusion",
        "train_latent",
        "train_decomposition",
        "val_fusion",
        "val_decomposition",
        "val_decomposition_ssim_x1",
        "val_decomposition_ssim_x2",
    ):
        assert k in hist[0], k
    assert 0 <= hist[0]["val_decomposition_ssim_x1"] <= 1
