"""``bench decompose`` and ``bench ablate``: FusionINN's decomposition and its Table 2."""

from __future__ import annotations

import os

from benchmark.cli.args import add_run_args, config_from_args

# The FusionINN trained on the CPU whose weights ship with the repository (results/README.md).
DEFAULT_FUSIONINN = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "results", "cpu-phantom", "fusioninn"
)


def _cmd_decompose(args) -> int:
    import numpy as np
    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    from baselines.loading import load_model_folder
    from benchmark.atomic import atomic_path, check_writable
    from benchmark.data.imageio import list_images, read_image, stem
    from benchmark.running.decomposition import decompose_draws, draw_scores

    if args.draws < 1:
        raise ValueError(f"--draws {args.draws}: expected at least 1 latent draw")
    if (args.x1 is None) != (args.x2 is None):
        raise ValueError("--x1 and --x2: give both source folders (to score the decomposition) or neither")
    mdir = args.model_dir or DEFAULT_FUSIONINN
    if args.model_dir is None and not os.path.isdir(mdir):  # installed without -e: results/ stayed in the checkout
        raise ValueError(
            f"no --model-dir given, and the FusionINN trained on the CPU that ships in the repository "
            f"(results/cpu-phantom/fusioninn) is not beside this installation ({mdir}); give --model-dir "
            "RUN/fusioninn of a finished run (bench run --models fusioninn trains one), or install the checkout "
            "with pip install -e ."
        )
    if not os.path.isdir(mdir):
        raise ValueError(
            f"{mdir}: no FusionINN folder there; give --model-dir results/<run>/fusioninn of a finished run"
        )
    if not os.path.isfile(os.path.join(mdir, "model.json")) and os.path.isfile(
        os.path.join(mdir, "fusioninn", "model.json")
    ):  # a run folder: its FusionINN
        mdir = os.path.join(mdir, "fusioninn")
    elif os.path.isfile(os.path.join(mdir, "run.json")):  # a run folder that trained no FusionINN
        fusers = sorted(d.name for d in os.scandir(mdir) if os.path.isfile(os.path.join(d.path, "model.json")))
        raise ValueError(
            f"{mdir}: a run folder without a FusionINN (its fusers: {', '.join(fusers) or 'none'}); "
            "give a run that trained one (bench run --models fusioninn), or leave --model-dir out for "
            f"the one committed in {DEFAULT_FUSIONINN}"
        )
    if os.path.isfile(os.path.join(mdir, "model.json")) and not os.path.isfile(os.path.join(mdir, "best.pt")):
        raise ValueError(  # the loader's advice is bench run's ("leave it out of --models")
            f"--model-dir {args.model_dir}: no trained weights there (no {os.path.join(mdir, 'best.pt')}); expected "
            f"a FusionINN that holds them, e.g. {DEFAULT_FUSIONINN}"
        )
    model = load_model_folder(mdir, expected="fusioninn")
    src = args.image
    if not os.path.exists(src):
        raise FileNotFoundError(f"{src}: no such image or folder")
    files = list(list_images(src).values()) if os.path.isdir(src) else [src]
    out = args.out or os.path.join("results", "decomposed")
    if os.path.isdir(src) and os.path.realpath(out) == os.path.realpath(src):
        raise ValueError(f"--out {out}: that is the folder of fused images; expected a folder of its own")
    sources = _sources(args, files)
    for f in files:  # every file read and checked before the first output (a bad one late in a folder left
        h, w = read_image(f).shape  # half a result); read again below, so that memory stays flat in N
        for src_file in sources.get(f, ()):
            shape = read_image(src_file).shape
            if shape != (h, w):
                raise ValueError(f"{src_file}: {shape[0]}x{shape[1]}; expected {h}x{w} like the fused image {f}")
    check_writable(out)
    rows = []
    bar = tqdm(files, desc="decompose", disable=len(files) < 2, leave=False)  # a folder of many: where it is
    for f in bar:
        img = read_image(f)
        fused = torch.from_numpy(img)[None, None]
        h1, h2 = decompose_draws(model, fused, args.draws, args.seed)
        said = ""
        if sources:  # the true sources: how well the decomposition recovers them (as bench run scores it)
            x1, x2 = (torch.from_numpy(read_image(p))[None, None] for p in sources[f])
            rows += draw_scores(h1, h2, x1, x2, [stem(f)], "slice", "fusioninn")
            said = f", SSIM to the sources x1 {rows[-1]['SSIM_x1']:.4f}, x2 {rows[-1]['SSIM_x2']:.4f}"
        res = {
            "x1_mean": h1.mean(0)[0, 0],
            "x2_mean": h2.mean(0)[0, 0],
            "x1_std": h1.std(0, unbiased=False)[0, 0],
            "x2_std": h2.std(0, unbiased=False)[0, 0],
        }
        s = stem(f)
        with atomic_path(os.path.join(out, f"{s}_decomposed.npz"), ".npz") as tmp:
            np.savez(
                tmp,
                **{k: v.numpy() for k, v in res.items()},
                draws_x1=h1[:, 0, 0].numpy(),
                draws_x2=h2[:, 0, 0].numpy(),
            )
        for k, v in res.items():
            a = v.numpy()
            if k.endswith("std"):  # uncertainty map, stretched for viewing (raw values in the .npz)
                a = a / a.max() if a.max() > 0 else a
            with atomic_path(os.path.join(out, f"{s}_{k}.png"), ".png") as tmp:
                Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8)).save(tmp, format="PNG")
        bar.write(f"{f}: mean std x1 {float(res['x1_std'].mean()):.4f}, x2 {float(res['x2_std'].mean()):.4f}{said}")
    if rows:
        import pandas as pd

        from benchmark.atomic import write_text

        df = pd.DataFrame(rows).drop(columns=["model", "region"]).rename(columns={"index": "name"})
        write_text(os.path.join(out, "decomposition.csv"), df.to_csv(index=False, float_format="%.6f"))
        print(
            f"decomposition SSIM to the sources, mean over {len(df)} image{'s' * (len(df) != 1)} and {args.draws} "
            f"draw{'s' * (args.draws != 1)}: x1 {df.SSIM_x1.mean():.4f}, x2 {df.SSIM_x2.mean():.4f} "
            f"(PSNR {df.PSNR_x1.mean():.2f} / {df.PSNR_x2.mean():.2f} dB; per image: decomposition.csv)"
        )
    print(f"wrote {out} (weights: {mdir})")
    return 0


def _sources(args, files) -> dict:
    """``{fused file: (x1 file, x2 file)}`` from ``--x1`` / ``--x2`` (same file stem, as bench eval
    pairs them; or, for one fused image, its two source files); every fused image needs both."""
    from benchmark.data.imageio import list_images, stem

    if args.x1 is None:
        return {}
    if len(files) == 1 and not os.path.isdir(args.image) and os.path.isfile(args.x1) and os.path.isfile(args.x2):
        return {files[0]: (args.x1, args.x2)}  # one fused image and its two sources, as bench eval takes one triple
    folders = {"--x1": list_images(args.x1), "--x2": list_images(args.x2)}
    out = {}
    for f in files:
        for flag, found in folders.items():
            if stem(f) not in found:
                raise ValueError(
                    f"{f}: no source named {stem(f)} in {flag} {getattr(args, flag[2:])}; "
                    "expected the sources under the fused images' file names"
                )
        out[f] = (folders["--x1"][stem(f)], folders["--x2"][stem(f)])
    return out


def _cmd_ablate(args) -> int:
    from benchmark.running.ablation import PAPER_SWEEPS, ablate, ablate_seeds

    if not args.paper and not (args.param and args.values):
        raise ValueError("bench ablate needs --param and --values, or --paper for all four of the paper's sweeps")
    if args.paper and (args.param or args.values):  # the paper's four sweeps ran, and --param was ignored
        raise ValueError("bench ablate: --paper runs the paper's four sweeps; give it without --param and --values")
    cfg = config_from_args(args)
    sweeps = PAPER_SWEEPS.items() if args.paper else [(args.param, args.values)]
    if args.seeds is not None:
        from benchmark.running.seeds import parse_seeds

        parse_seeds(args.seeds)  # a bad list is one error before anything trains
    for p, v in sweeps:
        stem = (ablate(cfg, p, v) if args.seeds is None else ablate_seeds(cfg, p, v, args.seeds)).attrs["files"]
        with open(f"{stem}.md", encoding="utf-8") as fh:  # caption and bold, as bench run prints its table
            print(fh.read())
        print(f"results: {stem}.{{csv,md,tex}}")
    return 0


def add_fusioninn_commands(sub) -> None:
    p = sub.add_parser("decompose", help="decompose fused images with a trained FusionINN")
    p.add_argument("image", help="a fused image or a folder of them")
    p.add_argument(
        "--model-dir",
        "--from",  # bench run's name for a finished run folder
        dest="model_dir",
        help="results/<run>/fusioninn, or the run folder results/<run> (default: the FusionINN committed in "
        "results/cpu-phantom); --from RUN_DIR is the same, as bench run --from takes it",
    )
    p.add_argument("--draws", type=int, default=8, help="latent draws per image: their mean and per-pixel std (8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent draws (0)")
    p.add_argument("--out", help="output folder (default results/decomposed)")
    p.add_argument(
        "--x1",
        help="folder of the true T1-Gd sources, named like the fused images (one fused image: its file), with "
        "--x2: score the decomposition against them (SSIM and PSNR, as bench run does; OUT/decomposition.csv)",
    )
    p.add_argument("--x2", help="folder (or file) of the true FLAIR sources, with --x1")
    p.set_defaults(fn=_cmd_decompose)
    a = sub.add_parser("ablate", help="FusionINN Table 2 sweeps")
    a.add_argument("--param", help="alpha | lambda | k | prior")
    a.add_argument("--values", help="comma-separated values")
    a.add_argument("--paper", action="store_true", help="run all four of the paper's sweeps")
    a.add_argument(
        "--seeds",
        help="comma-separated seeds, e.g. 0,1,2: the sweep once per seed (OUT/<name>-seed<N>), then its table of mean "
        "± sd over the seeds in OUT/<name>-seeds, ≈ from a paired t-test over the seeds (whether a difference "
        "survives training again)",
    )
    add_run_args(a, ablate=True)
    a.set_defaults(fn=_cmd_ablate)
