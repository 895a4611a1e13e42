"""The ``bench`` command: list, run, table, eval, data prepare, decompose, ablate."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys


def _cmd_list(args) -> int:
    from baselines.registry import list_fusers
    from metrics.registry import METRICS

    fusers = [e.as_dict() for e in list_fusers()]
    mets = [{"name": m.name, "direction": m.direction, "reference": m.reference} for m in METRICS.values()]
    if args.json:
        print(json.dumps({"fusers": fusers, "metrics": mets}, indent=2))
        return 0
    print("Fusers")
    print(f"  {'name':<14}{'kind':<16}{'trainable':<11}{'params':>12}  {'source':<34}reference")
    for f in fusers:
        params = "-" if f["params"] is None else f"{f['params']:,}"
        print(f"  {f['name']:<14}{f['kind']:<16}{('yes' if f['trainable'] else 'no'):<11}{params:>12}  {f['source']:<34}{f['reference']}")
        if f["error"]:
            print(f"      ERROR: {f['error']}")
    print("  smp-<arch>-<encoder>: segmentation-models-pytorch architectures on demand (pip install 'fusionbench[smp]')")
    print("Metrics")
    for m in mets:
        print(f"  {m['name']:<8} {m['direction']} is better   {m['reference']}")
    return 0


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", default="all", help="comma-separated fuser names or 'all' (see bench list)")
    p.add_argument("--data", default="phantom", help="'phantom' (embedded), FILE.h5 from 'bench data prepare', or TRAIN.h5,VAL.h5")
    p.add_argument("--profile", default="quick", help="smoke | quick | paper")
    p.add_argument("--epochs", type=int)
    p.add_argument("--n-train", type=int)
    p.add_argument("--n-val", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--width", type=float, help="width multiplier of UNet/UNet++/UNet3+")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--amp", action="store_true", default=None, help="bf16 autocast on CUDA")
    p.add_argument("--metric-profile", help="upstream (default) | intended | fusioninn")
    p.add_argument("--metrics", help="comma-separated metric names (default all five)")
    p.add_argument("--ddfm-prior", help="local diffusers UNet2DModel folder to use as DDFM's prior")
    p.add_argument("--out", help="results folder (default results)")
    p.add_argument("--run-name", help="name of the run folder (default <profile>-<data>)")
    p.add_argument("--retrain", action="store_true", default=None, help="train again even where finished checkpoints exist")
    p.add_argument("--from", dest="from_run", metavar="RUN_DIR", help="train nothing: load every fuser's weights from a finished run folder (e.g. results/cpu-phantom)")
    p.add_argument("--nproc", type=int, default=1, help="processes (torchrun standalone; gloo on CPU, NCCL on GPUs)")
    p.add_argument("--style", dest="table_style", help="stats (default: CIs, paired tests) | paper (plain Table 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config field, e.g. --set lr=1e-4")


def config_from_args(args):
    from benchmark.config import RunConfig, make_config, parse_override

    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    over = {}
    for key in ("models", "data", "epochs", "n_train", "n_val", "batch_size", "width", "seed", "device", "amp", "metric_profile", "metrics", "ddfm_prior", "out", "run_name", "retrain", "table_style", "from_run"):
        v = getattr(args, key, None)
        if v is not None:
            over[key] = v
    for item in args.set:
        k, v = parse_override(fields, item)
        over[k] = v
    return make_config(args.profile, **over)


def _launch_torchrun(nproc: int) -> int:
    """Re-run this command under torchrun with ``nproc`` processes (rank 0 writes the results)."""
    import subprocess

    argv = sys.argv[1:]
    clean = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        clean.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "benchmark", *clean]
    return subprocess.call(cmd)


def _cmd_run(args) -> int:
    from benchmark.runner import run

    if args.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return _launch_torchrun(args.nproc)
    cfg = config_from_args(args)
    run_dir = run(cfg)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    res = json.load(open(os.path.join(run_dir, "run.json")))
    md = os.path.join(run_dir, "leaderboard.md")
    if os.path.exists(md):
        print(open(md).read())
    print(f"results: {run_dir}  ({res['seconds']:.0f} s)")
    return 1 if res["failures"] else 0


def _cmd_table(args) -> int:
    import pandas as pd

    from benchmark.tables import write_leaderboards

    path = os.path.join(args.run_dir, "scores.csv")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found; bench table rebuilds the leaderboards of a run folder from its scores.csv")
    scores = pd.read_csv(path)
    caption = f"Fusion metrics ({args.run_dir})."
    if "region" in scores:
        if (scores.region == "tumour").any():
            write_leaderboards(args.run_dir, scores[scores.region == "tumour"], caption.replace("Fusion metrics", "Fusion metrics inside the tumour box"), with_std=args.std, stem="leaderboard_tumour", style=args.style)
        scores = scores[scores.region == "slice"]
    write_leaderboards(args.run_dir, scores, caption, with_std=args.std, style=args.style)
    print(open(os.path.join(args.run_dir, "leaderboard.md")).read())
    return 0


def _cmd_eval(args) -> int:
    from benchmark.evaluate import evaluate, parse_fused

    out = args.out or os.path.join("results", "eval")
    evaluate(args.x1, args.x2, parse_fused(args.fused), out, args.metric_profile, args.metrics, None if not args.no_quantize else False, device=args.device)
    print(open(os.path.join(out, "leaderboard.md")).read())
    print(f"results: {out}")
    return 0


def _cmd_data_prepare(args) -> int:
    from benchmark.data.brats import prepare

    summary = prepare(args.brats_dir, args.out, tuple(args.modalities.split(",")), args.select, args.val_fraction, args.seed)
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench", description="fusionbench: benchmark medical image fusion (T1-Gd + FLAIR).")
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("list", help="list fusers and metrics")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(fn=_cmd_list)
    pr = sub.add_parser("run", help="train, fuse, score and tabulate")
    _add_run_args(pr)
    pr.set_defaults(fn=_cmd_run)
    pt = sub.add_parser("table", help="rebuild the leaderboards of a run folder from scores.csv")
    pt.add_argument("run_dir")
    pt.add_argument("--std", action="store_true", help="show the standard deviation")
    pt.add_argument("--style", default="stats", help="stats (CIs, paired tests) | paper (plain Table 1)")
    pt.set_defaults(fn=_cmd_table)
    pe = sub.add_parser("eval", help="score fused images made by any software")
    pe.add_argument("--x1", required=True, help="folder of T1-Gd images")
    pe.add_argument("--x2", required=True, help="folder of FLAIR images")
    pe.add_argument("--fused", required=True, action="append", help="folder of fused images, or NAME=DIR (repeatable)")
    pe.add_argument("--metric-profile", default="upstream")
    pe.add_argument("--metrics")
    pe.add_argument("--no-quantize", action="store_true", help="do not round to 8 bits before the toolbox metrics")
    pe.add_argument("--device", default="cpu")
    pe.add_argument("--out")
    pe.set_defaults(fn=_cmd_eval)
    pd_ = sub.add_parser("data", help="data tools")
    dsub = pd_.add_subparsers(dest="data_cmd", required=True)
    pp = dsub.add_parser("prepare", help="import BraTS NIfTI volumes into the authors' HDF5 layout")
    pp.add_argument("brats_dir")
    pp.add_argument("--out", required=True)
    pp.add_argument("--modalities", default="t1ce,flair", help="two of t1,t1ce,t2,flair (x1,x2)")
    pp.add_argument("--select", default="labels12", help="labels12 | tumour | nonempty")
    pp.add_argument("--val-fraction", type=float, default=0.12)
    pp.add_argument("--seed", type=int, default=0)
    pp.set_defaults(fn=_cmd_data_prepare)
    try:
        from benchmark.cli_fusioninn import add_fusioninn_commands

        add_fusioninn_commands(sub)
    except ImportError:
        pass
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError, PermissionError, RuntimeError) as e:
        if os.environ.get("FUSIONBENCH_DEBUG"):
            raise
        print(f"bench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
