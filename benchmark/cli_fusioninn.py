"""``bench decompose`` and ``bench ablate``: FusionINN's decomposition and Table 2."""
from __future__ import annotations

import json
import os


def _cmd_decompose(args) -> int:
    import numpy as np
    import torch
    from skimage import io as skio

    from baselines.registry import get_fuser
    from benchmark.atomic import atomic_path
    from benchmark.decomposition import decompose_draws
    from benchmark.imageio import EXTS, read_image, stem
    from benchmark.trainer import load_checkpoint

    mdir = args.model_dir
    info_path, ckpt = os.path.join(mdir, "model.json"), os.path.join(mdir, "best.pt")
    if not (os.path.exists(info_path) and os.path.exists(ckpt)):
        raise FileNotFoundError(f"{mdir}: expected model.json and best.pt of a trained FusionINN (results/<run>/fusioninn)")
    info = json.load(open(info_path))
    if info.get("name") != "fusioninn":
        raise ValueError(f"{mdir}: holds model {info.get('name')!r}; bench decompose needs a FusionINN folder")
    model = get_fuser("fusioninn").build(**info.get("kwargs", {}))
    model.load_state_dict(load_checkpoint(ckpt))
    model.eval()
    src = args.image
    files = [os.path.join(src, f) for f in sorted(os.listdir(src)) if f.lower().endswith(EXTS)] if os.path.isdir(src) else [src]
    if not files:
        raise ValueError(f"{src}: no images ({', '.join(EXTS)})")
    out = args.out or os.path.join(mdir, "decomposed")
    os.makedirs(out, exist_ok=True)
    for f in files:
        img = read_image(f)
        if img.shape[0] % 2 or img.shape[1] % 2:
            raise ValueError(f"{f}: {img.shape[0]}x{img.shape[1]}; FusionINN needs even height and width")
        fused = torch.from_numpy(img)[None, None]
        h1, h2 = decompose_draws(model, fused, args.draws, args.seed)
        res = {"x1_mean": h1.mean(0)[0, 0], "x2_mean": h2.mean(0)[0, 0], "x1_std": h1.std(0, unbiased=False)[0, 0], "x2_std": h2.std(0, unbiased=False)[0, 0]}
        s = stem(f)
        with atomic_path(os.path.join(out, f"{s}_decomposed.npz"), ".npz") as tmp:
            np.savez(tmp, **{k: v.numpy() for k, v in res.items()}, draws_x1=h1[:, 0, 0].numpy(), draws_x2=h2[:, 0, 0].numpy())
        for k, v in res.items():
            a = v.numpy()
            if k.endswith("std"):  # uncertainty map, stretched for viewing (raw values in the .npz)
                a = a / a.max() if a.max() > 0 else a
            with atomic_path(os.path.join(out, f"{s}_{k}.png"), ".png") as tmp:
                skio.imsave(tmp, (np.clip(a, 0, 1) * 255).round().astype(np.uint8), check_contrast=False, extension=".png")
        print(f"{f}: mean std x1 {float(res['x1_std'].mean()):.4f}, x2 {float(res['x2_std'].mean()):.4f}")
    print(f"wrote {out}")
    return 0


def _cmd_ablate(args) -> int:
    from benchmark.ablation import PAPER_SWEEPS, ablate
    from benchmark.cli import config_from_args

    if not args.paper and not (args.param and args.values):
        raise ValueError("bench ablate needs --param and --values, or --paper for all four of the paper's sweeps")
    cfg = config_from_args(args)
    sweeps = PAPER_SWEEPS.items() if args.paper else [(args.param, args.values)]
    for p, v in sweeps:
        table = ablate(cfg, p, v)
        print(table.to_string(float_format=lambda x: f"{x:.3f}"))
    return 0


def add_fusioninn_commands(sub) -> None:
    from benchmark.cli import _add_run_args

    p = sub.add_parser("decompose", help="decompose fused images with a trained FusionINN")
    p.add_argument("image", help="a fused image or a folder of them")
    p.add_argument("--model-dir", required=True, help="results/<run>/fusioninn")
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")
    p.set_defaults(fn=_cmd_decompose)
    a = sub.add_parser("ablate", help="FusionINN Table 2 sweeps")
    a.add_argument("--param", help="alpha | lambda | k | prior")
    a.add_argument("--values", help="comma-separated values")
    a.add_argument("--paper", action="store_true", help="run all four of the paper's sweeps")
    _add_run_args(a)
    a.set_defaults(fn=_cmd_ablate)
