"""``bench ablate``: FusionINN's Table 2 sweeps (alpha, lambda, k, latent prior).

One FusionINN is trained per value with the shared trainer (through ``run_model``, so finished
values are reused on rerun); the table reports, as the paper's Table 2, the mean SSIM of the fused
image against each source and of each decomposed source against the true one.
"""
from __future__ import annotations

import dataclasses
import os

import pandas as pd
import torch

from benchmark.atomic import check_writable, write_text
from benchmark.config import RunConfig
from benchmark.data import load_data
from benchmark.runner import pick_device, run_model
from metrics.ssim import ssim

PARAMS = {"alpha": ("fusioninn_alpha", float), "lambda": ("loss_lambda", float), "k": ("fusioninn_k", int), "prior": ("fusioninn_prior", str)}
PAPER_SWEEPS = {"alpha": "0.2,0.5,0.8,1.0", "lambda": "0.8,0.9,0.99,0.999", "k": "1,2,3,4", "prior": "zeros,normal,uniform"}
COLUMNS = ["Fusion SSIM T1-Gd", "Fusion SSIM FLAIR", "Decomposition SSIM T1-Gd", "Decomposition SSIM FLAIR"]


@torch.no_grad()
def _fusion_ssim_per_source(model, val_ds, dev, batch):
    s1, s2, n = 0.0, 0.0, 0
    for b in torch.utils.data.DataLoader(val_ds, batch_size=batch):
        x1, x2 = b["x1"].to(dev), b["x2"].to(dev)
        f = model(x1, x2).float()
        s1 += float(ssim(f, x1).sum())
        s2 += float(ssim(f, x2).sum())
        n += x1.shape[0]
    return s1 / n, s2 / n


def ablate(cfg: RunConfig, param: str, values: str, progress: bool = True) -> pd.DataFrame:
    if param not in PARAMS:
        raise ValueError(f"unknown ablation parameter {param!r}; expected one of {', '.join(PARAMS)}")
    field, typ = PARAMS[param]
    vals = [typ(v.strip()) for v in values.split(",") if v.strip()]
    if not vals:
        raise ValueError("--values: give at least one value")
    dev = pick_device(cfg.device)
    root = os.path.join(cfg.out, cfg.run_name or f"ablate-{cfg.profile}-{'phantom' if cfg.data == 'phantom' else 'data'}")
    check_writable(root)
    train_ds, val_ds, info = load_data(cfg.data, cfg.seed, cfg.n_train, cfg.n_val, cfg.phantom_train, cfg.phantom_val)
    rows = []
    for v in vals:
        c = dataclasses.replace(cfg, **{field: v})
        vdir = os.path.join(root, f"{param}-{v}")
        os.makedirs(vdir, exist_ok=True)
        run_model("fusioninn", c, train_ds, val_ds, vdir, dev, info, progress)
        from baselines.registry import get_fuser
        from benchmark.runner import model_kwargs
        from benchmark.trainer import load_checkpoint

        model = get_fuser("fusioninn").build(**model_kwargs(get_fuser("fusioninn"), c)).to(dev)
        model.load_state_dict(load_checkpoint(os.path.join(vdir, "fusioninn", "best.pt"), dev))
        model.eval()
        f1, f2 = _fusion_ssim_per_source(model, val_ds, dev, c.score_batch)
        dec = pd.read_csv(os.path.join(vdir, "fusioninn", "decomposition.csv"))
        rows.append({param: v, COLUMNS[0]: f1, COLUMNS[1]: f2, COLUMNS[2]: dec["SSIM_x1"].mean(), COLUMNS[3]: dec["SSIM_x2"].mean()})
    table = pd.DataFrame(rows).set_index(param)
    write_table(root, param, table, f"FusionINN ablation over {param} (Table 2 layout; profile {cfg.profile}, {len(val_ds)} validation pairs).")
    return table


def write_table(root: str, param: str, table: pd.DataFrame, caption: str) -> None:
    write_text(os.path.join(root, f"ablation_{param}.csv"), table.to_csv(float_format="%.6f"))
    best = {c: table[c].round(3).max() for c in COLUMNS}
    cell = lambda c, v, md: (f"**{v:.3f}**" if md else f"\\textbf{{{v:.3f}}}") if round(v, 3) == best[c] else f"{v:.3f}"
    md = [caption, "", f"| {param} | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    md += [f"| {i} | " + " | ".join(cell(c, table.at[i, c], True) for c in COLUMNS) + " |" for i in table.index]
    write_text(os.path.join(root, f"ablation_{param}.md"), "\n".join(md) + "\n")
    tex = ["\\begin{table}[t]", "\\centering", f"\\caption{{{caption}}}", "\\begin{tabular}{l" + "r" * len(COLUMNS) + "}", "\\toprule", f"{param} & & Fusion & & Decomposition \\\\", " & T1-Gd & FLAIR & T1-Gd & FLAIR \\\\", "\\midrule"]
    tex += [f"{i} & " + " & ".join(cell(c, table.at[i, c], False) for c in COLUMNS) + " \\\\" for i in table.index]
    tex += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    write_text(os.path.join(root, f"ablation_{param}.tex"), "\n".join(tex) + "\n")
