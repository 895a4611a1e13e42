"""DDFM's EM fusion step (Zhao et al., "DDFM: Denoising Diffusion Model for Multi-Modality Image
Fusion", ICCV 2023), as the reference runs it (docs/reference.md §5). A pure function on batched tensors.

The model: the fused image F explains x1 = I up to a sparse residual and x2 = V in its gradients:
with Y = I - V and X = F - V, minimise ||Y - X||_1 + rho/2 ... with a hierarchical-Bayes prior
(DDFM eq. 10-13: Laplacian likelihoods written as Gaussian scale mixtures with latent scales C
(for Y - X, the "m" of the paper) and D (for X, the "n"), whose E-step expectations are eq. 17-18,
and TV regularisation of the auxiliary H (eq. 19-22) solved in the Fourier domain).

Each line of ``em_step`` and the DDFM paper's equations:
  D   = sqrt(2 / (tau_b (X^2 + 1e-6)))                   E[1/n]            (eq. 17)
  C   = sqrt(2 / (tau_a ((Y - X + 1e-6)^2)))             E[1/m]            (eq. 18)
  D   = min(D, 2C)                                       reference clamp (stabilises D where X ~ 0)
  tau_b = mean(1/(D + 1e-10) + tau_b/2)                  hyper-parameter update (eq. 19)
  tau_a = mean(1/(C + 1e-10) + tau_a/2)                  hyper-parameter update (eq. 19)
  H   = Re IFFT[(FFT(Y - X) + conj(K1) FFT(F1) + conj(K2) FFT(F2)) / (1 + |K1|^2 + |K2|^2)]   (eq. 21)
  F1  = rho / (2 lambda + rho) * Dx H,  F2 = rho / (2 lambda + rho) * Dy H                   (eq. 22)
  X   = (2 C Y + rho (Y - H)) / (2 C + 2 D + rho)        M-step for X     (eq. 20)
  F   = I - X                                            (as the reference writes it; I = x1)
with lambda 0.5, rho 0.001, K1 and K2 the optical transfer functions of [1, -1] and [1; -1], and
Dx, Dy forward differences with a zero boundary (d[j] = H[j] - H[j+1]; the last column/row is H
itself, not circular). The state (C, D, F1, F2, H, tau_a, tau_b) starts at C = D = 1,
F1 = F2 = H = 0, tau_a = tau_b = 1 and is carried across the sampler's steps. Images are
(B, 1, H, W); means are per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LAMBDA, RHO = 0.5, 0.001  # DDFM reference settings


@dataclass
class EMState:
    C: torch.Tensor
    D: torch.Tensor
    F1: torch.Tensor
    F2: torch.Tensor
    H: torch.Tensor
    tau_a: torch.Tensor  # (B, 1, 1, 1)
    tau_b: torch.Tensor

    @classmethod
    def initial(cls, like: torch.Tensor) -> "EMState":
        one = torch.ones_like(like)
        zero = torch.zeros_like(like)
        t = torch.ones(like.shape[0], 1, 1, 1, dtype=like.dtype, device=like.device)
        return cls(one, one.clone(), zero, zero.clone(), zero.clone(), t, t.clone())


def psf2otf(psf: torch.Tensor, shape) -> torch.Tensor:
    """MATLAB ``psf2otf``: zero-pad ``psf`` to ``shape``, circularly centre it at (0, 0), FFT."""
    pad = torch.zeros(shape, dtype=psf.dtype, device=psf.device)
    pad[: psf.shape[0], : psf.shape[1]] = psf
    pad = torch.roll(pad, shifts=(-(psf.shape[0] // 2), -(psf.shape[1] // 2)), dims=(0, 1))
    return torch.fft.fft2(pad)


def _diff(h: torch.Tensor, dim: int) -> torch.Tensor:
    """Forward difference with a zero boundary: d[j] = h[j] - h[j+1], d[last] = h[last]."""
    nxt = torch.cat([h.narrow(dim, 1, h.shape[dim] - 1), torch.zeros_like(h.narrow(dim, 0, 1))], dim)
    return h - nxt


def em_step(f: torch.Tensor, i: torch.Tensor, v: torch.Tensor, state: EMState, lam: float = LAMBDA, rho: float = RHO):
    """One EM fusion step. f: the diffusion model's clean estimate; i = x1, v = x2 (same shape,
    (B, 1, H, W), in the sampler's [-1, 1] range). Returns (fused, new state)."""
    Y, X = i - v, f - v
    D = torch.sqrt(2 / (state.tau_b * (X * X + 1e-6)))
    C = torch.sqrt(2 / (state.tau_a * (Y - X + 1e-6) ** 2))
    D = torch.minimum(D, 2 * C)
    tau_b = (1 / (D + 1e-10) + state.tau_b / 2).mean(dim=(1, 2, 3), keepdim=True)
    tau_a = (1 / (C + 1e-10) + state.tau_a / 2).mean(dim=(1, 2, 3), keepdim=True)
    shape = f.shape[-2:]
    cdt = torch.complex128 if f.dtype == torch.float64 else torch.complex64
    k1 = psf2otf(torch.tensor([[1.0, -1.0]], dtype=f.dtype, device=f.device), shape).to(cdt)
    k2 = psf2otf(torch.tensor([[1.0], [-1.0]], dtype=f.dtype, device=f.device), shape).to(cdt)
    num = torch.fft.fft2(Y - X) + k1.conj() * torch.fft.fft2(state.F1) + k2.conj() * torch.fft.fft2(state.F2)
    H = torch.fft.ifft2(num / (1 + k1.abs() ** 2 + k2.abs() ** 2)).real
    F1 = rho / (2 * lam + rho) * _diff(H, -1)
    F2 = rho / (2 * lam + rho) * _diff(H, -2)
    X = (2 * C * Y + rho * (Y - H)) / (2 * C + 2 * D + rho)
    return i - X, EMState(C, D, F1, F2, H, tau_a, tau_b)
