"""FusionINN's decomposition as a result of the suite: per-image scores and tables.

For every validation image, ``draws`` latent samples z' (seeded: draw d uses seed + d) decompose
the fused image; per source the SSIM (Gaussian, valid, as Table 2) and PSNR against the true
source are averaged over draws, and their spread (standard deviation over draws) is reported.
The tables are written by :func:`benchmark.reporting.report.write_decomposition_tables`.
"""

from __future__ import annotations

import torch

from metrics.ssim import ssim


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp(min=1e-12)
    return 10 * torch.log10(1.0 / mse)


@torch.no_grad()
def decompose_draws(model, fused: torch.Tensor, draws: int, seed: int):
    """Stacks (draws, B, 1, H, W) of x1_hat and x2_hat for seeded z' draws."""
    outs1, outs2 = [], []
    for d in range(draws):
        g = torch.Generator(device=fused.device).manual_seed(seed + d)
        a, b = model.decompose(fused, generator=g)
        outs1.append(a.float())
        outs2.append(b.float())
    return torch.stack(outs1), torch.stack(outs2)


def draw_scores(h1, h2, x1, x2, indices, region, name):
    """One row per image: SSIM and PSNR of the decomposed sources ``h1``, ``h2`` (draws, B, 1, H, W)
    against the true ones, averaged over the draws, with the SSIMs' spread over draws."""
    d = h1.shape[0]
    s1 = torch.stack([ssim(h1[i], x1) for i in range(d)])
    s2 = torch.stack([ssim(h2[i], x2) for i in range(d)])
    p1 = torch.stack([psnr(h1[i], x1) for i in range(d)])
    p2 = torch.stack([psnr(h2[i], x2) for i in range(d)])
    return [
        {
            "model": name,
            "index": idx,
            "region": region,
            "SSIM_x1": float(s1[:, j].mean()),
            "SSIM_x2": float(s2[:, j].mean()),
            "PSNR_x1": float(p1[:, j].mean()),
            "PSNR_x2": float(p2[:, j].mean()),
            "SSIM_x1_spread": float(s1[:, j].std(unbiased=False)),
            "SSIM_x2_spread": float(s2[:, j].std(unbiased=False)),
            "draws": d,
        }
        for j, idx in enumerate(indices)
    ]


def decomposition_rows(model, fused, x1, x2, indices, cfg, boxes=None, name: str = "fusioninn") -> list[dict]:
    """Rows for the whole slice and, with tumour ``boxes`` (benchmark.data.regions), inside each box:
    the full fused image is decomposed, then the decomposed and true sources are cropped alike."""
    h1, h2 = decompose_draws(model, fused, cfg.decomposition_draws, cfg.seed)
    rows = draw_scores(h1, h2, x1, x2, indices, "slice", name)
    if boxes is not None:
        from benchmark.data.regions import crop, region_groups

        for side, pos in region_groups(boxes).items():
            c1 = torch.stack([crop(h, boxes, pos) for h in h1])
            c2 = torch.stack([crop(h, boxes, pos) for h in h2])
            inside = [indices[j] for j in pos]
            rows += draw_scores(c1, c2, crop(x1, boxes, pos), crop(x2, boxes, pos), inside, "tumour", name)
    return rows
