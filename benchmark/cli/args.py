"""Command-line arguments shared by ``bench run`` and ``bench ablate``, and the config they give."""

from __future__ import annotations

import argparse
import dataclasses

METRICS_HELP = (
    "comma-separated metric names (default: the Table 1 five, or every metric of --lineage); with "
    "--lineage, a bare key is that lineage's metric (--lineage tang --metrics SSIM,Qabf)"
)


def lineage_arg(text: str | None) -> str | None:
    """``--lineage`` as given: None when left out; given but naming no lineage (``--lineage ""``, as an
    unset shell variable gives) is an error, as an empty ``--models`` or ``--metrics`` is, rather than
    the Table 1 five scored in silence."""
    if text is not None and not any(x.strip() for x in text.split(",")):
        raise ValueError(
            f"--lineage {text!r} names no lineage; give vifb, tang, mefb, cddfuse, liu or all, comma-separated "
            "(bench list), or leave out --lineage for the Table 1 five"
        )
    return text


def add_run_args(p: argparse.ArgumentParser, ablate: bool = False) -> None:
    """``bench run``'s arguments; ``ablate``: only those ``bench ablate`` uses. It trains one FusionINN
    per value and scores Table 2's SSIMs, so the models, metrics, --from and --nproc are not its
    arguments: given, they are an error rather than silently ignored."""
    if not ablate:
        p.add_argument("--models", default="all", help="comma-separated fuser names or 'all' (see bench list)")
    p.add_argument(
        "--data", default="phantom", help="'phantom' (embedded), FILE.h5 from 'bench data prepare', or TRAIN.h5,VAL.h5"
    )
    p.add_argument("--profile", default="quick", help="smoke | quick | paper")
    p.add_argument("--epochs", type=int, help="training epochs (the profile's: smoke 1, quick 6, paper 400)")
    p.add_argument(
        "--n-train", type=int, help="training pairs (the profile's: smoke 16, quick 64, paper all of --data's)"
    )
    p.add_argument(
        "--n-val", type=int, help="validation pairs scored (the profile's: smoke 8, quick 24, paper all of --data's)"
    )
    p.add_argument("--batch-size", type=int, help="training batch (default: each fuser's own, as in the paper)")
    p.add_argument("--width", type=float, help="width multiplier of UNet/UNet++/UNet3+")
    p.add_argument(
        "--seed", type=int, help="seed of all that is random: phantom images, weights, crops, order, bootstrap CIs (0)"
    )
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--amp", action="store_true", default=None, help="bf16 autocast on CUDA")
    p.add_argument("--out", help="results folder (default results)")
    p.add_argument("--run-name", help="name of the run folder (default <profile>-<data>)")
    p.add_argument(
        "--retrain", action="store_true", default=None, help="train again even where finished checkpoints exist"
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override any config field, e.g. --set lr=1e-4"
    )
    p.add_argument(
        "--style",
        dest="table_style",
        metavar="STYLE",
        help="stats (default: CIs, paired tests) | paper (plain Table 1)"
        if not ablate
        else "stats (default: CIs over the slices, paired tests between values) | paper (the plain Table 2 layout)",
    )
    if ablate:
        return
    p.add_argument(
        "--save-fused",
        action="store_true",
        default=None,
        help="also write every fused validation image (RUN/<model>/fused/) and the sources and labels "
        "(RUN/sources/) as 8-bit PNGs: bench eval on them gives the run's scores, and other tools can read them",
    )
    p.add_argument("--metric-profile", help="upstream (default) | intended | fusioninn")
    p.add_argument("--metrics", help=METRICS_HELP)
    p.add_argument(
        "--lineage",
        help="score every metric of these lineages instead, as their originals compute them: "
        "vifb | tang | mefb | cddfuse | liu (Table 1) | all, comma-separated (bench list; several: a table "
        "per lineage too past eight columns, leaderboard_<lineage>.*)",
    )
    p.add_argument("--ddfm-prior", help="local diffusers UNet2DModel folder to use as DDFM's prior")
    p.add_argument(
        "--from",
        dest="from_run",
        metavar="RUN_DIR",
        help="train nothing: load every fuser's weights from a finished run folder (e.g. results/cpu-phantom)",
    )
    p.add_argument("--nproc", type=int, default=1, help="processes (torchrun standalone; gloo on CPU, NCCL on GPUs)")
    p.add_argument(
        "--seeds",
        help="comma-separated seeds, e.g. 0,1,2: the run once per seed (OUT/<run>-seed<N>), then leaderboards of "
        "mean ± sd over the seeds in OUT/<run>-seeds (whether a difference survives training again); on the "
        "phantom each seed draws its images too, unless --set phantom_seed=N fixes them",
    )


def config_from_args(args):
    from benchmark.config import RunConfig, make_config, parse_override

    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    over = {}
    lineage_arg(getattr(args, "lineage", None))
    for key in (
        "models",
        "data",
        "epochs",
        "n_train",
        "n_val",
        "batch_size",
        "width",
        "seed",
        "device",
        "amp",
        "save_fused",
        "metric_profile",
        "metrics",
        "lineage",
        "ddfm_prior",
        "out",
        "run_name",
        "retrain",
        "table_style",
        "from_run",
    ):
        v = getattr(args, key, None)
        if v is not None:
            over[key] = v
    for item in args.set:
        k, v = parse_override(fields, item)
        over[k] = v
    return make_config(args.profile, **over)
