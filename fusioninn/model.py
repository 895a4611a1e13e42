"""FusionINN (Kumar et al., 2024): an invertible flow that fuses T1-Gd and FLAIR and decomposes back.

FrEIA graph on [x1, x2] (2 x H x W), docs/reference.md §3, for k = 3 coupling blocks:

    ActNorm -> GLOW(32) -> PermuteRandom -> iRevNet down (8 x H/2 x W/2) -> GLOW(64)
            -> PermuteRandom -> iRevNet up -> GLOW(32) -> Split -> (y: fused, z: latent)

GLOW subnets are Conv3x3 -> ReLU -> Conv3x3 -> ReLU (hidden 32 or 64, clamp 2.0); the final ReLU
makes scale and shift non-negative, as in the paper (``subnet_final_relu=False`` drops it).
17,564 trainable parameters for k = 3. Other k (1..4) alternate full- and half-resolution blocks.

* ``encode(x1, x2) -> (y, z)`` and ``decode(y, z) -> (x1, x2)`` are the raw flow and its exact inverse.
* ``fuse(x1, x2) = sigmoid(y)`` (also ``forward``).
* ``decompose(fused) = sigmoid(f^-1([fused, z']))`` with z' drawn from the latent prior by a seeded
  generator (the reference draws unseeded noise; pass ``generator`` for reproducible draws).
* ``loss``: alpha (L_fusion(sigmoid(y)) + L_latent) + (1 - alpha) L_dec(x_hat), alpha 0.5; L_dec
  is the fusion-loss form on (x_hat1, x1) and (x_hat2, x2); L_latent is the MMD of z against the
  prior (``mmd="paper"``: per image, nearly constant; ``mmd="pixels"``: per pixel, a useful gradient).
* ``latent_prior``: ``normal`` (default), ``zeros``, ``uniform`` (U[0, 1)), Table 2's three.

Images are float (B, 1, H, W) in [0, 1], x1 = T1-Gd, x2 = FLAIR. The raw flow (``encode``,
``decode``) needs an even H and W (the iRevNet downsampling halves them); ``fuse``, ``decompose``
and ``loss`` zero-pad an odd side by one row or column and crop their images back, as the
baselines pad to their multiple (:func:`baselines.blocks.pad_to_multiple`), so any size fuses.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from baselines.blocks import crop_to, pad_to_multiple
from baselines.loss import LossConfig, fusion_loss, pair_loss
from baselines.registry import register_fuser
from fusioninn.mmd import mmd_images, mmd_pixels
from metrics.ssim import ssim

PRIORS = ("normal", "zeros", "uniform")
MMD = ("paper", "pixels")
K_RANGE = (1, 4)  # coupling blocks: the blocks alternate full and half resolution up to four


def _subnet(hidden: int, final_relu: bool):
    def make(cin: int, cout: int) -> nn.Module:
        layers = [nn.Conv2d(cin, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, cout, 3, padding=1)]
        return nn.Sequential(*layers, nn.ReLU()) if final_relu else nn.Sequential(*layers)

    return make


def build_graph(k: int = 3, clamp: float = 2.0, subnet_final_relu: bool = True, seed: int = 0):
    """The FrEIA GraphINN. Permutations are drawn inside a saved/restored NumPy RNG state, because
    ``PermuteRandom(seed=...)`` reseeds NumPy's global generator (docs/reference.md §3)."""
    import FrEIA.framework as Ff
    import FrEIA.modules as Fm

    state = np.random.get_state()
    try:
        nodes = [
            Ff.InputNode(2, 240, 240, name="input")
        ]  # nominal size: the blocks are convolutional, any even H, W runs
        nodes.append(Ff.Node(nodes[-1], Fm.ActNorm, {}, name="actnorm"))
        for i in range(k):
            half = i % 2 == 1
            if half:
                nodes.append(Ff.Node(nodes[-1], Fm.IRevNetDownsampling, {}, name=f"down{i}"))
            nodes.append(
                Ff.Node(
                    nodes[-1],
                    Fm.GLOWCouplingBlock,
                    {"subnet_constructor": _subnet(64 if half else 32, subnet_final_relu), "clamp": clamp},
                    name=f"glow{i}",
                )
            )
            if i < k - 1:
                nodes.append(Ff.Node(nodes[-1], Fm.PermuteRandom, {"seed": seed + i}, name=f"perm{i}"))
            if half:
                nodes.append(Ff.Node(nodes[-1], Fm.IRevNetUpsampling, {}, name=f"up{i}"))
        split = Ff.Node(nodes[-1], Fm.Split, {"section_sizes": [1, 1], "dim": 0}, name="split")
        outs = [Ff.OutputNode(split.out0, name="y"), Ff.OutputNode(split.out1, name="z")]
        return Ff.GraphINN(nodes + [split] + outs, verbose=False)
    finally:
        np.random.set_state(state)


def _even(*images: torch.Tensor):
    """The images zero-padded to an even H and W (bottom, right), and their size to crop back to; where both
    are even already, the images themselves and None: nothing is added to the graph, so an even size
    trains and fuses to the bit as before (a crop's backward changed the gradients' summation order)."""
    h, w = images[0].shape[-2:]
    if h % 2 == 0 and w % 2 == 0:
        return (*images, None)
    return (*(pad_to_multiple(x, 2)[0] for x in images), (h, w))


def _back(x: torch.Tensor, size) -> torch.Tensor:
    return x if size is None else crop_to(x, size)


class FusionINN(nn.Module):
    def __init__(
        self,
        k: int = 3,
        alpha: float = 0.5,
        latent_prior: str = "normal",
        mmd: str = "paper",
        clamp: float = 2.0,
        subnet_final_relu: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        if not K_RANGE[0] <= k <= K_RANGE[1]:
            raise ValueError(f"FusionINN k (coupling blocks) must be {K_RANGE[0]}..{K_RANGE[1]}; got {k}")
        if latent_prior not in PRIORS:
            raise ValueError(f"latent_prior must be one of {', '.join(PRIORS)}; got {latent_prior!r}")
        if mmd not in MMD:
            raise ValueError(f"mmd must be one of {', '.join(MMD)}; got {mmd!r}")
        self.k, self.alpha, self.latent_prior, self.mmd = k, alpha, latent_prior, mmd
        self.flow = _Flow(k, clamp, subnet_final_relu, seed)

    def _actnorm_ready(self):
        an = self.flow.actnorm()
        if an.init_on_next_batch:  # decode before any encode: start ActNorm at identity
            an.init_on_next_batch = False

    def _init_actnorm(self, x: torch.Tensor) -> None:
        # FrEIA's data-dependent ActNorm init (zero mean, unit std per channel on the first batch)
        # asserts the declared 240x240 size; the same init, done here, works for any size.
        an = self.flow.actnorm()
        if an.init_on_next_batch:
            with torch.no_grad():
                flat = x.transpose(0, 1).reshape(x.shape[1], -1)
                an.scale.data.view(-1)[:] = torch.log(1 / flat.std(dim=-1).clamp(min=1e-6))
                an.bias.data.view(-1)[:] = -(flat * an.scale.data.view(-1, 1).exp()).mean(dim=-1)
            an.init_on_next_batch = False

    @staticmethod
    def _check_even(x: torch.Tensor, what: str) -> None:
        # FrEIA's downsampling would drop an odd side's last row or column and hand back a smaller image
        if x.shape[-2] % 2 or x.shape[-1] % 2:
            raise ValueError(
                f"FusionINN.{what}: images of {x.shape[-2]}x{x.shape[-1]}; the flow halves H and W, so both must "
                "be even (fuse, decompose and loss pad an odd side themselves)"
            )

    def encode(self, x1: torch.Tensor, x2: torch.Tensor):
        """Raw flow: (y, z), each (B, 1, H, W); H and W even."""
        x = torch.cat([x1, x2], 1)
        self._check_even(x, "encode")
        self._init_actnorm(x)
        (y, z), _ = self.flow(x)
        return y, z

    def decode(self, y: torch.Tensor, z: torch.Tensor):
        """Exact inverse of :meth:`encode`: (x1, x2)."""
        self._check_even(y, "decode")
        self._actnorm_ready()
        x, _ = self.flow([y, z], rev=True)
        x = x[0] if isinstance(x, (tuple, list)) else x
        return x[:, :1], x[:, 1:]

    def fuse(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Fused image sigmoid(y), (B, 1, H, W) in [0, 1] (of any H, W: an odd side padded, then cropped)."""
        x1, x2, size = _even(x1, x2)
        return _back(torch.sigmoid(self.encode(x1, x2)[0]), size)

    forward = fuse

    def sample_prior(self, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.latent_prior == "zeros":
            return torch.zeros_like(like)
        if self.latent_prior == "uniform":
            return torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)

    def decompose(self, fused: torch.Tensor, generator: torch.Generator | None = None):
        """(x1_hat, x2_hat) = sigmoid(f^-1([fused, z'])), z' ~ latent prior drawn with ``generator`` (of any
        H, W: an odd side padded, then cropped)."""
        fused, size = _even(fused)
        z = self.sample_prior(fused, generator)
        a, b = self.decode(fused, z)
        return _back(torch.sigmoid(a), size), _back(torch.sigmoid(b), size)

    def loss_terms(self, x1, x2, cfg: LossConfig = LossConfig()) -> dict:
        """The three loss terms (each a scalar tensor) and the total; an odd side is padded for the flow and the
        images cropped back before their losses."""
        p1, p2, size = _even(x1, x2)
        y, z = self.encode(p1, p2)
        fused = torch.sigmoid(y)
        l_fusion = fusion_loss(_back(fused, size), x1, x2, cfg)
        prior = self.sample_prior(z)
        l_latent = mmd_images(z, prior) if self.mmd == "paper" else mmd_pixels(z, prior)
        xh1, xh2 = (_back(torch.sigmoid(t), size) for t in self.decode(fused, self.sample_prior(z)))
        l_dec = pair_loss(xh1, x1, xh2, x2, cfg)
        total = self.alpha * (l_fusion + l_latent) + (1 - self.alpha) * l_dec
        return {"fusion": l_fusion, "latent": l_latent, "decomposition": l_dec, "total": total}

    def loss(self, x1, x2, cfg: LossConfig = LossConfig()) -> torch.Tensor:
        return self.loss_terms(x1, x2, cfg)["total"]

    @torch.no_grad()
    def validation_scores(self, x1, x2) -> dict:
        """Learning-curve monitors: SSIM of the fused image against each source, and of each
        decomposed source (one seeded latent draw) against the true one; batch means."""
        fused = self.fuse(x1, x2)
        h1, h2 = self.decompose(fused, torch.Generator(device=fused.device).manual_seed(0))
        return {
            "fusion_ssim_x1": ssim(fused, x1).mean(),
            "fusion_ssim_x2": ssim(fused, x2).mean(),
            "decomposition_ssim_x1": ssim(h1, x1).mean(),
            "decomposition_ssim_x2": ssim(h2, x2).mean(),
        }


class _Flow(nn.Module):
    """The GraphINN, declared at 2 x 240 x 240; its blocks are convolutional and FrEIA does not
    check sizes at call time, so any even H, W runs (tested on 64 x 48)."""

    def __init__(self, k, clamp, final_relu, seed):
        super().__init__()
        self.graph = build_graph(k, clamp, final_relu, seed)

    def actnorm(self):
        return next(m for m in self.graph.module_list if type(m).__name__ == "ActNorm")

    def forward(self, x, rev=False):
        return self.graph(x, rev=rev, jac=False)


@register_fuser(
    "fusioninn",
    kind="invertible",
    trainable=True,
    reference="Kumar et al., FusionINN, 2024",
    batch_size=64,
    display="FusionINN",
    order=17,
    config={
        "k": "fusioninn_k",
        "alpha": "fusioninn_alpha",
        "latent_prior": "fusioninn_prior",
        "mmd": "fusioninn_mmd",
        "seed": "seed",
    },
    params=17_564,
)
def fusioninn(k: int = 3, alpha: float = 0.5, latent_prior: str = "normal", mmd: str = "paper", seed: int = 0):
    """FusionINN: invertible fusion and decomposition (FrEIA normalizing flow)."""
    return FusionINN(k, alpha, latent_prior, mmd, seed=seed)
