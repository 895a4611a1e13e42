"""The DDIM sampler of DDFM (a loop), docs/reference.md §5.

Linear betas 1e-4..0.02 over 1000 steps (diffusers' ``DDPMScheduler`` gives the same
``alphas_cumprod``), epsilon prediction, respaced to ``steps`` timesteps t_i = round(i * 999 /
(steps - 1)) (diffusers' ``DDIMScheduler`` with ``timestep_spacing="linspace"`` yields exactly
these), deterministic DDIM (eta 0). The update is hand-written rather than ``DDIMScheduler.step``
because DDFM changes the step in the middle: the clean estimate x0 = clamp((x_t - sqrt(1 - a_t)
eps) / sqrt(a_t), -1, 1) is replaced by the EM fusion of x0 with the sources, eps is re-derived
from the new x0 (x_t and a_t fixed, no re-clamping), and only then
x_{t-1} = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps, with a_prev = 1 after the last step.

All images of a batch are sampled together (the reference samples one at a time). The initial
noise comes from a generator reset to ``seed`` for every image (the reference resets 3407 per
image), so every image starts from the same x_T.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from baselines.ddfm.em_fusion import EMState, em_step


def schedule(steps: int = 100, train_steps: int = 1000):
    """(timesteps descending, alphas_cumprod) from diffusers' schedulers."""
    from diffusers import DDIMScheduler

    s = DDIMScheduler(
        num_train_timesteps=train_steps,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        timestep_spacing="linspace",
        clip_sample=False,
        set_alpha_to_one=True,
    )
    s.set_timesteps(steps)
    return s.timesteps.clone(), s.alphas_cumprod.clone()


@torch.no_grad()
def ddfm_sample(
    eps_model,
    i: torch.Tensor,
    v: torch.Tensor,
    steps: int = 100,
    seed: int = 3407,
    progress: bool = False,
    fuse: bool = True,
) -> torch.Tensor:
    """Sample a fused image for sources ``i`` = x1 and ``v`` = x2, (B, C, H, W) in [-1, 1].

    ``eps_model(x_t, t)`` predicts the noise (C channels). ``fuse=False`` runs plain DDIM (no EM).
    Returns x0 in [-1, 1].
    """
    ts, abar = schedule(steps)
    abar = abar.to(device=i.device, dtype=torch.float64)
    g = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn((1, *i.shape[1:]), generator=g, dtype=torch.float32).to(i.device, i.dtype)
    x = noise.expand_as(i).clone()
    state = EMState.initial(i)
    for k, t in enumerate(tqdm(ts.tolist(), desc="DDFM", disable=not progress, leave=False)):
        a_t = float(abar[t])
        a_prev = float(abar[ts[k + 1]]) if k + 1 < len(ts) else 1.0
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        eps = eps_model(x, tt).to(x.dtype)
        x0 = ((x - (1 - a_t) ** 0.5 * eps) / a_t**0.5).clamp(-1, 1)
        if fuse:
            x0, state = em_step(x0, i, v, state)
            eps = (x - a_t**0.5 * x0) / (1 - a_t) ** 0.5
        x = a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps
    return x
