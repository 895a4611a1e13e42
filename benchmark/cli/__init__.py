"""The ``bench`` command: list, run, table, eval, data prepare, decompose, ablate.

Each command is a small function over the library (``benchmark.run``, ``benchmark.evaluate_folders``,
``benchmark.reporting``); errors a user can fix are one line on stderr and exit status 2
(``bench --debug ...`` or ``FUSIONBENCH_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import atexit
import glob
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from typing import NoReturn

from benchmark.cli.args import METRICS_HELP, add_run_args, config_from_args, lineage_arg
from benchmark.cli.fusioninn import add_fusioninn_commands


def _cmd_list(args) -> int:
    from baselines.registry import ignored_plugins, list_fusers
    from metrics.lineage import NOT_IMPLEMENTED as missing
    from metrics.registry import ALL_LINEAGES, METRICS, source_of

    fusers = [e.as_dict() for e in list_fusers()]
    mets = [
        {
            "name": m.name,
            "column": m.key or m.name,
            "direction": m.direction,
            "ranked": m.ranked,
            "lineage": m.lineage,
            "checked_against_original": m.checked,
            "description": m.description,
            "reference": m.reference,
        }
        for m in METRICS.values()
    ]
    if args.json:
        lineages = {x: {"source": source_of(x), "not_implemented": list(missing.get(x, ()))} for x in ALL_LINEAGES}
        doc = {"fusers": fusers, "ignored_plugins": ignored_plugins(), "metrics": mets, "lineages": lineages}
        print(json.dumps(doc, indent=2))
        return 0
    print("Fusers")
    print(f"  {'name':<14}{'kind':<16}{'trainable':<11}{'params':>12}  {'source':<34}reference")
    for f in fusers:
        params = "-" if f["params"] is None else f"{f['params']:,}"
        print(
            f"  {f['name']:<14}{f['kind']:<16}{('yes' if f['trainable'] else 'no'):<11}{params:>12}  "
            f"{f['source']:<34}{f['reference']}"
        )
        if f["error"]:
            print(f"      ERROR: {f['error']}")
    if any(f["name"] == "ddfm" for f in fusers):  # "trainable no, params 0", yet bench run trains for it
        print(
            "  ddfm: no weights of its own (the paper's DDFM samples a pretrained diffusion prior); bench run "
            "trains that prior (191,585 parameters in smoke and quick, 1,062,497 in paper; --set "
            "ddfm_prior_epochs=N) unless --ddfm-prior PATH loads one"
        )
    for why in ignored_plugins():
        print(f"  IGNORED: {why}")
    print(
        "  smp-<arch>-<encoder>: segmentation-models-pytorch architectures on demand (pip install 'fusionbench[smp]')"
    )
    print("Metrics, by lineage (bench eval/run --lineage NAME; the column is the original's own name)")
    for lineage in ALL_LINEAGES:
        print(f"  {lineage}: {source_of(lineage)}")
        for m in (x for x in mets if x["lineage"] == lineage):
            note = "" if m["ranked"] else " (diagnostic, not ranked)"
            if not m["checked_against_original"]:
                note += " (not checked against the original)"
            print(f"    {m['column']:<18} {m['direction']:<6} is better  {m['description']}; {m['reference']}{note}")
        if missing.get(lineage):
            print(f"    not implemented: {', '.join(missing[lineage])} (docs/lineages.md)")
    return 0


def _launch_torchrun(nproc: int) -> int:
    """Re-run this command under torchrun with ``nproc`` processes (rank 0 writes the results)."""
    import subprocess

    clean, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            clean.append(a)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "benchmark",
        *clean,
    ]
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait()
    except KeyboardInterrupt as e:  # Ctrl-C reaches torchrun from the terminal; SIGTERM (Terminated) only this
        proc.send_signal(signal.SIGTERM)  # process: torchrun passes it to its ranks and waits for them, and
        proc.wait()  # rank 0 says how to resume (torchrun itself prints a traceback of the signal)
        return _stopped(e)


def _cmd_run(args) -> int:
    from benchmark.running.runner import run

    if args.nproc < 1:  # was taken as 1 without a word
        raise ValueError(f"--nproc {args.nproc}: expected a whole number of processes >= 1")
    if args.seeds is not None:
        return _run_seeds(args)
    if args.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return _launch_torchrun(args.nproc)
    res = run(config_from_args(args))
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if res.leaderboard is not None and os.path.exists(os.path.join(res.path, "leaderboard.md")):
        from benchmark.reporting.report import leaderboard_text

        print(leaderboard_text(res.path))
    print(f"results: {res.path}  ({res.seconds:.0f} s)")
    return 1 if res.failures else 0


def _run_seeds(args) -> int:
    """``bench run --seeds 0,1,2``: one run per seed, then the leaderboards over the seeds."""
    from benchmark.reporting.report import leaderboard_text
    from benchmark.running.seeds import parse_seeds, run_seeds

    seeds = parse_seeds(args.seeds)
    if args.seed is not None:
        raise ValueError(f"--seed {args.seed} and --seeds {args.seeds}: give one of them")
    if args.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return _launch_torchrun(args.nproc)  # every process runs the seeds one after another, each run shared
    res = run_seeds(config_from_args(args), seeds)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    print(leaderboard_text(res.path))
    print(f"results: {res.path}  (runs: {', '.join(r.path for r in res.runs)})")
    return 1 if any(r.failures for r in res.runs) else 0


def _run_tables(run_dir: str) -> dict:
    """How the run wrote its leaderboards (``config.json``), so that a rebuilt table equals them:
    its caption (data, profiles, everything it shrinks from the paper), its table style, and the
    bootstrap's draws and seed. Folders written before captions were recorded get a generic caption with the
    recorded shrinks; folders without a config, the defaults."""
    try:
        with open(os.path.join(run_dir, "config.json")) as fh:
            config = json.load(fh)
    except (OSError, ValueError):
        config = {}
    config = config if isinstance(config, dict) else {}
    run = config.get("config") if isinstance(config.get("config"), dict) else {}
    from benchmark.reporting.tables import STYLES

    out = {k: run[k] for k in ("n_boot", "seed") if isinstance(run.get(k), int)}
    if run.get("table_style") in STYLES:  # a run written with --style paper is rebuilt as it was
        out["style"] = run["table_style"]
    if isinstance(config.get("caption"), str):
        return {**out, "caption": config["caption"]}
    text = f"Fusion metrics ({run_dir})."
    if config.get("shrinks"):
        text += " Not the paper setting: " + "; ".join(map(str, config["shrinks"])) + "."
    return {**out, "caption": text}


def _warn_unlike_the_run(run_dir: str, scores, path: str) -> None:
    """Rows of ``scores.csv`` that its run folder's record says should be there and are not: a fuser that
    ``run.json`` records as scored, or fewer of a fuser's whole slices than the run's validation images
    (``config.json``, which the caption counts), as a file cut short or edited leaves them. The tables
    are still written from the rows there are; the warning says what they lack."""
    import sys

    def _load(name):
        try:
            with open(os.path.join(run_dir, name)) as fh:
                record = json.load(fh)
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    models = _load("run.json").get("models")
    done = (
        [m for m, info in models.items() if isinstance(info, dict) and info.get("status") == "done"]
        if isinstance(models, dict)
        else []
    )
    missing = [m for m in done if m not in set(scores.model.astype(str))]
    if missing:
        print(
            f"warning: {path}: no rows of {', '.join(missing)}, which {os.path.join(run_dir, 'run.json')} records as "
            f"scored; the tables leave {'them' if len(missing) > 1 else 'it'} out (bench run again writes scores.csv "
            "anew, reusing every finished fuser)",
            file=sys.stderr,
        )
    data = _load("config.json").get("data")
    n = data.get("n_val") if isinstance(data, dict) else None
    if not isinstance(n, int) or isinstance(n, bool):
        return
    slices = scores[scores.region == "slice"] if "region" in scores.columns else scores
    short = {m: k for m, k in slices.groupby("model", sort=False).size().items() if k != n}
    if short:
        print(
            f"warning: {path}: {', '.join(f'{m} has {k}' for m, k in short.items())} of the run's {n} validation "
            "images; the caption counts the run's",
            file=sys.stderr,
        )


def _cmd_table(args) -> int:
    import pandas as pd

    from benchmark.reporting import write_score_tables

    path = os.path.join(args.run_dir, "scores.csv")
    from benchmark.reporting.seeds import seed_runs

    if not os.path.exists(path) and seed_runs(args.run_dir) is not None:  # bench run --seeds' tables over the seeds
        return _seed_table(args)
    if not os.path.exists(path):
        found = glob.glob(os.path.join(glob.escape(args.run_dir), "ablation_*.csv")) + glob.glob(
            os.path.join(glob.escape(args.run_dir), "ablation_*.json")
        )
        if found:  # bench ablate's folder: its tables, from its values' results
            return _ablation_table(args, sorted({os.path.splitext(p)[0] + ".csv" for p in found}))
        raise FileNotFoundError(
            f"{path} not found; bench table rebuilds the leaderboards of a run folder from its scores.csv"
        )
    from benchmark.reporting.tables import check_scores, read_scores

    dec = os.path.join(args.run_dir, "decomposition.csv")  # FusionINN's decomposition rows, where the run wrote them
    tables_in = {p: None for p in (path, dec) if os.path.exists(p)}
    for p in tables_in:  # both read and checked (cut short, unreadable, columns) before any table is written
        try:
            tables_in[p] = read_scores(p)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
            raise ValueError(
                f"{p}: not a readable scores table ({type(e).__name__}: {e}); expected the {os.path.basename(p)} "
                "of a run"
            ) from None
    if dec in tables_in:
        from benchmark.reporting.report import DECOMPOSITION_COLUMNS

        need = ["model", *DECOMPOSITION_COLUMNS, "SSIM_x1_spread", "SSIM_x2_spread", "draws"]
        lacks = [c for c in need if c not in tables_in[dec].columns]
        if lacks or tables_in[dec].empty:
            raise ValueError(
                f"{dec}: {'no columns ' + ', '.join(lacks) if lacks else 'header only, no rows'}; expected the "
                "decomposition.csv of a run with FusionINN (or remove it)"
            )
    scores = check_scores(tables_in[path], path)
    _warn_unlike_the_run(args.run_dir, scores, path)
    from benchmark.atomic import folder_lock

    how = _run_tables(args.run_dir)
    recorded = how.pop("style", "stats")
    style = args.style or recorded  # the run's own style unless told
    with folder_lock(args.run_dir, "wait for it to finish; it writes the leaderboards itself"):
        tables = write_score_tables(args.run_dir, scores, style=style, with_std=args.std, **how)
        if tables_in.get(dec) is not None:  # FusionINN's decomposition tables, from the rows the run wrote
            from benchmark.reporting.report import write_decomposition_tables

            write_decomposition_tables(args.run_dir, tables_in[dec], how["caption"])
        from benchmark.reporting.report import redraw_figures

        drawn = redraw_figures(args.run_dir, scores)
    from benchmark.reporting.report import leaderboard_text

    print(leaderboard_text(args.run_dir))
    if drawn:
        sources = "scores.csv" + (" and train.json" if any(p.endswith("training.png") for p in drawn) else "")
        print(f"redrew {', '.join(os.path.relpath(p, args.run_dir) for p in drawn)} (from {sources})")
    return 0 if "slice" in tables else 2


def _ablation_table(args, tables: list[str]) -> int:
    from benchmark.atomic import folder_lock
    from benchmark.running.ablation import rebuild_ablation_tables

    unrecorded = [p for p in tables if not os.path.exists(p[: -len(".csv")] + ".json")]
    if unrecorded:  # written before bench ablate recorded its sweeps
        params = ", ".join(os.path.basename(p)[len("ablation_") : -len(".csv")] for p in unrecorded)
        raise ValueError(
            f"{args.run_dir}: an ablation folder (bench ablate: {params}) without the record of how its tables "
            "were made (ablation_<param>.json, written since); bench ablate with the same options writes them again "
            "from the finished values"
        )
    if args.std:
        raise ValueError(f"{args.run_dir}: an ablation's tables show CIs over the slices (--style stats); no --std")
    with folder_lock(args.run_dir, "wait for that ablation to finish; it writes its tables itself"):
        stems = rebuild_ablation_tables(args.run_dir, args.style)
    for stem in stems:
        with open(f"{stem}.md", encoding="utf-8") as fh:
            print(fh.read())
        print(f"results: {stem}.{{csv,md,tex}}")
    return 0


def _seed_table(args) -> int:
    from benchmark.atomic import folder_lock
    from benchmark.reporting.report import leaderboard_text
    from benchmark.reporting.seeds import seed_runs, write_seed_tables

    if args.std:
        raise ValueError(f"{args.run_dir}: tables over seeds show mean ± sd over the seeds already; no --std")
    with folder_lock(args.run_dir, "wait for it to finish; it writes the tables itself"):
        write_seed_tables(seed_runs(args.run_dir), args.run_dir, style=args.style)
    print(leaderboard_text(args.run_dir))
    return 0


def _early_eval_workers(args) -> None:
    """Start ``bench eval``'s worker processes before this process imports torch
    (:mod:`benchmark.running.pool`) where the eval will score side by side: on the CPU, for as many
    triples as ``--workers`` (``auto``: one process per core from 256 triples) takes. The triples are
    counted from x1's images (as the eval lists them) times the fused folders; one image or a missing
    folder starts none, and the eval says what is wrong."""
    from benchmark.data.imageio import list_images
    from benchmark.running import pool

    if args.device != "cpu" or not os.path.isdir(args.x1):
        return
    pool.start(args.workers, len(list_images(args.x1)) * len(args.fused), args.device)


def _cmd_eval(args) -> int:
    from benchmark.running import pool

    _early_eval_workers(args)
    try:
        from benchmark.running.evaluate import evaluate_folders, parse_fused

        out = args.out or os.path.join("results", "eval")
        evaluate_folders(
            args.x1,
            args.x2,
            parse_fused(args.fused),
            out,
            args.metric_profile,
            args.metrics,
            None if not args.no_quantize else False,
            device=args.device,
            lineage=lineage_arg(args.lineage),
            workers=args.workers,
            labels=args.labels,
        )
    finally:
        pool.discard()  # the workers an eval that ended early (bad input, every batch reused) did not take
    from benchmark.reporting.report import leaderboard_text

    print(leaderboard_text(out))
    print(f"results: {out}")
    return 0


def _prepare_report(summary: dict, args) -> str:
    """What ``bench data prepare`` imported, in words (``--json``: the summary itself, which the
    HDF5 file also keeps in its ``summary`` attribute)."""

    def n(k: int, what: str) -> str:
        return f"{k:,} {what}{'' if k == 1 else 's'}"

    x1, x2 = summary["modalities"]
    kept, pats, val = summary["kept"], summary["patients"], summary["val_patients"]
    empty = summary["patients_found"] - pats["train"] - pats["val"] - len(summary["skipped"])  # read, none kept
    lines = [
        f"imported {pats['train'] + pats['val']:,} of {n(summary['patients_found'], 'patient')} "
        f"from {args.brats_dir} (x1 = {x1}, x2 = {x2}; "
        f"--select {summary['select']}; --val-fraction {args.val_fraction}, --seed {args.seed})",
        f"  train: {n(kept['train'], 'slice')} from {n(pats['train'], 'patient')}",
        f"  val:   {n(kept['val'], 'slice')} from {n(pats['val'], 'patient')}"
        + (f" ({', '.join(val)})" if val else ""),
        f"  left out: {n(summary['not_selected'], 'slice')} not selected, "
        f"{n(summary['dropped_constant'], 'constant slice')}, {n(len(summary['skipped']), 'patient')} skipped"
        + (" (listed above)" if summary["skipped"] else "")
        + (f", {n(empty, 'patient')} with no slice selected" if empty > 0 else ""),
    ]
    return "\n".join(lines)


def _cmd_data_prepare(args) -> int:
    from benchmark.data.brats import prepare

    summary = prepare(
        args.brats_dir, args.out, tuple(args.modalities.split(",")), args.select, args.val_fraction, args.seed
    )
    for s in summary["skipped"]:
        print(f"bench: skipped patient {s['patient']}: {s['reason']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_prepare_report(summary, args))
    if not summary["kept"]["val"]:
        print(
            f"bench: note: one patient kept slices, so the validation split is empty; bench run needs "
            f"{args.out} paired with a validation file (--data {args.out},VAL.h5) or more patients",
            file=sys.stderr,
        )
    print(f"wrote {args.out}" + (f"; next: bench run --data {args.out}" if summary["kept"]["val"] else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench", description="fusionbench: benchmark medical image fusion (T1-Gd + FLAIR)."
    )
    p.add_argument("--debug", action="store_true", help="show the traceback of an error (also FUSIONBENCH_DEBUG=1)")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="cmd", required=False)  # bare `bench`: the help, not "cmd is required"
    pl = sub.add_parser("list", help="list fusers and metrics")
    pl.add_argument("--json", action="store_true", help="print the fusers and metrics as JSON (scripts)")
    pl.set_defaults(fn=_cmd_list)
    pr = sub.add_parser("run", help="train, fuse, score and tabulate")
    add_run_args(pr)
    pr.set_defaults(fn=_cmd_run)
    pt = sub.add_parser("table", help="rebuild the leaderboards of a run folder from scores.csv")
    pt.add_argument(
        "run_dir",
        help="a run folder holding scores.csv (e.g. results/cpu-phantom), the tables over seeds of bench run "
        "--seeds (read again from their runs), or bench ablate's folder (its tables, from its values' results)",
    )
    pt.add_argument("--std", action="store_true", help="show the standard deviation")
    pt.add_argument(
        "--style", help="stats (CIs, paired tests) | paper (plain Table 1); default: the style the run wrote them in"
    )
    pt.set_defaults(fn=_cmd_table)
    pe = sub.add_parser("eval", help="score fused images made by any software")
    pe.add_argument(
        "--x1", required=True, help="folder of T1-Gd images (or one image: --x2 and each --fused one image too)"
    )
    pe.add_argument("--x2", required=True, help="folder of FLAIR images (or one image)")
    pe.add_argument(
        "--fused",
        required=True,
        action="extend",
        nargs="+",
        metavar="DIR",
        help="folders of fused images, each named by its folder (RUN/<model>/fused: by the model, so "
        "--fused RUN/*/fused takes every model a run saved), or NAME=DIR; several after one --fused, or repeated. "
        "Several are scored batch by batch together: what the lineage metrics take of the sources alone is "
        "computed once for all (the same scores; FUSIONBENCH_SHARE_SOURCES=0: each on its own, less memory)",
    )
    pe.add_argument("--metric-profile", default="upstream", help="upstream (default) | intended | fusioninn")
    pe.add_argument("--metrics", help=METRICS_HELP)
    pe.add_argument(
        "--labels",
        help="folder of label maps named like the sources (BraTS labels, 0 = background): also score inside "
        "each tumour's box, as bench run does (leaderboard_tumour.*)",
    )
    pe.add_argument(
        "--lineage",
        help="score every metric of these lineages as their originals compute them: vifb | tang | mefb | "
        "cddfuse | liu (Table 1) | all; comma-separated for several (columns then lineage:name, and a "
        "table per lineage too past eight columns, leaderboard_<lineage>.*)",
    )
    pe.add_argument("--no-quantize", action="store_true", help="do not round to 8 bits before the toolbox metrics")
    pe.add_argument("--device", default="cpu", help="cpu (default) | auto | cuda | cuda:N")
    pe.add_argument(
        "--workers",
        default="auto",
        help="processes scoring batches side by side: a number, or auto (default: one per CPU core for "
        "256 or more triples on a CPU, else 1; "
        "FUSIONBENCH_EVAL_WORKERS overrides auto). Scores are identical for any number",
    )
    pe.add_argument(
        "--out",
        help="results folder (default results/eval); the batches scored are kept in OUT/.scored, so a stopped "
        "eval resumes and a rerun reuses them",
    )
    pe.set_defaults(fn=_cmd_eval)
    pd_ = sub.add_parser("data", help="data tools")
    dsub = pd_.add_subparsers(dest="data_cmd", required=True, metavar="prepare")
    pp = dsub.add_parser("prepare", help="import BraTS NIfTI volumes into the authors' HDF5 layout")
    pp.add_argument("brats_dir", help="folder of BraTS patients (2015, 2018-2021 or 2023+ naming)")
    pp.add_argument("--out", required=True, help="the HDF5 file to write (FILE.h5; replaced if it exists)")
    pp.add_argument("--modalities", default="t1ce,flair", help="two of t1,t1ce,t2,flair (x1,x2)")
    pp.add_argument("--select", default="labels12", help="labels12 | tumour | nonempty")
    pp.add_argument(
        "--val-fraction", type=float, default=0.12, help="fraction of the patients in the validation split (0.12)"
    )
    pp.add_argument("--seed", type=int, default=0, help="seed of the patients' split (0)")
    pp.add_argument("--json", action="store_true", help="print the import summary as JSON (scripts)")
    pp.set_defaults(fn=_cmd_data_prepare)
    add_fusioninn_commands(sub)
    return p


def _version() -> str:
    from importlib import metadata

    def of(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return f"fusionbench {of('fusionbench')} (torch {of('torch')}, Python {sys.version.split()[0]})"


def empty_option(argv: list[str]) -> str | None:
    """The first option given an empty value (``--out ""``, ``--from=``), as an unset shell variable
    gives one: each meant its default in silence (``bench run --from "$RUN"`` trained everything,
    ``--out ""`` wrote into the current folder), so it is an error instead."""
    for i, tok in enumerate(argv):
        if not tok.startswith("--"):
            continue
        flag, eq, value = tok.partition("=")
        if not eq and i + 1 < len(argv) and not argv[i + 1].strip():
            value, eq = argv[i + 1], "="
        if eq and not value.strip():
            return f"{flag} {value!r} is empty; give it a value (an unset shell variable?)"
    return None


def kernel_sets(args) -> list[str]:
    """What an eval or run scores, for the kernels' build ahead (:func:`metrics._native_build.units_for`):
    its ``--lineage`` names, or, where ``--metrics`` names metrics, those (``lineage:key``: a prefixed
    name as given; a bare one in each lineage given, and Liu's where ``liu`` is given, none is, or the
    name is Liu's own ``Q_...``), else Liu's (the Table 1 five); ``["all"]`` for every lineage (each one's
    units). A name no lineage has builds nothing ahead: the command stops at it."""
    lineages = [x.strip().lower() for x in (getattr(args, "lineage", None) or "").split(",") if x.strip()]
    if "all" in lineages:
        return ["all"]
    names = [m.strip() for m in (getattr(args, "metrics", None) or "").split(",") if m.strip()]
    if not names or [n.lower() for n in names] == ["all"]:
        return sorted(set(lineages)) or ["liu"]
    picked = []
    for n in names:
        if ":" in n:
            picked.append(n)
        elif n.lower().startswith("q_"):
            picked.append(f"liu:{n}")
        else:
            picked += [f"{lin}:{n}" for lin in (lineages or ["liu"])]
    return picked


def start_kernel_build(sets: list[str] | None = None) -> subprocess.Popen | None:
    """Start building the hand-written CPU kernels that the metric sets ``sets`` score with (lineage names;
    None: all; ``metrics/_native_build.py``, which needs only the standard library) in a process of its
    own, before this one imports torch: on a fresh machine the compiler then runs while ``bench eval`` /
    ``bench run`` import torch and pandas (~1.3 s on one core) instead of after them. The command's first
    use of a kernel waits for its unit's build (each is locked) and loads it, or builds it itself if this
    one failed or did not build it; a cached build returns at once. If the command ends first, the build
    is stopped and leaves nothing behind. Not started where this process has loaded the kernels already (a
    second command from Python, the tests): its commands use those."""
    native = sys.modules.get("metrics._native")
    if native is not None and native._LIB:
        return None
    spec = importlib.util.find_spec("metrics")  # the package's folder, without importing it (or torch)
    if spec is None or not spec.submodule_search_locations:
        return None
    script = os.path.join(list(spec.submodule_search_locations)[0], "_native_build.py")
    if not os.path.exists(script):
        return None
    proc = subprocess.Popen(
        [sys.executable, script, *(sets or [])],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stopped with its compilers, not by the terminal's Ctrl-C
    )
    atexit.register(stop_kernel_build, proc)
    return proc


def stop_kernel_build(proc: subprocess.Popen) -> None:
    """Stop a kernel build that :func:`start_kernel_build` started and that still runs (the command ended
    first): the build and its compilers, which remove their unfinished files (as a failed build does)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    proc.wait()


def console() -> NoReturn:
    """The ``bench`` command (and ``python -m benchmark``): :func:`main`, then :func:`quick_exit`. Where
    stderr is no terminal (a log file, a pipe, CI), progress bars redraw at most every 10 s, not tqdm's 0.1 s
    (``bench run --models deepfuse`` at ``quick``: 56 -> 24 KB of log; the training bar still redraws at each
    step, as its loss changes); ``TQDM_MININTERVAL`` set by the user stands."""
    if not _is_terminal(sys.stderr):
        os.environ.setdefault("TQDM_MININTERVAL", "10")  # tqdm >= 4.66 takes its defaults from TQDM_* variables
    quick_exit(main())


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


def quick_exit(status: int | None) -> NoReturn:
    """End the process with ``status`` after what an exit must do (flush the output, run the atexit
    handlers: logging's, the kernel build's stop, multiprocessing's joins), without the interpreter's
    teardown of every module: torch's takes 0.3-0.4 s a process here (``python -c "import torch"``
    1.31-1.49 s against 1.01-1.06 s ending with ``os._exit``), paid after the results are written. Every
    result file is complete and closed (written atomically) before :func:`main` returns."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach the reader
            pass
    atexit._run_exitfuncs()
    os._exit(status or 0)  # None: 0, as sys.exit


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a batch scheduler's time limit), raised where the command is, so that
    it stops as on Ctrl-C: its temporary files removed, a run folder it made and finished nothing in removed,
    its workers, its kernel build and its torchrun stopped, a line saying how to resume; exit status 143
    (128 + SIGTERM). Python's default ends the process at once, and left all of those behind."""


def _terminate(signum, frame) -> None:
    raise Terminated


def _stopped(e: KeyboardInterrupt) -> int:
    """The status a shell gives a command stopped by the signal: 128 + SIGTERM, or 128 + SIGINT (Ctrl-C)."""
    return 143 if isinstance(e, Terminated) else 130


def main(argv=None) -> int:
    # Only the main thread may set a handler; the caller's is given back when the command ends (the tests,
    # or a program that calls main).
    main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return _main(argv)
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def _main(argv=None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help(sys.stderr)
        return 2
    if args.cmd in ("eval", "run"):  # both score on the kernels: built while the command imports torch
        sets = kernel_sets(args)
        start_kernel_build(sets + ["png"] if sets is not None and args.cmd == "eval" else sets)  # eval reads PNGs
    from benchmark.allocator import keep_freed_memory

    keep_freed_memory()  # freed tensors stay with the process: no page faults per batch (allocator.py)
    try:
        if empty := empty_option(argv):
            raise ValueError(empty)
        return args.fn(args)
    except BrokenPipeError:  # `bench list | head`: the reader stopped reading; end quietly, as cat does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush at exit must not raise again
        return 141  # 128 + SIGPIPE, the status a shell gives a command its pipe's reader closed
    # OSError: a file not found, a folder not writable, a full disk (benchmark.atomic names the file)
    except (ValueError, OSError, RuntimeError, FloatingPointError, MemoryError) as e:
        if args.debug or os.environ.get("FUSIONBENCH_DEBUG"):
            raise
        if isinstance(e, MemoryError):  # NumPy's says how much at most; Python's own says nothing
            e = f"out of memory{f' ({e})' if str(e) else ''}; bench run and bench eval go on from what they finished"
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if args.debug or os.environ.get("FUSIONBENCH_DEBUG"):
            raise
        if os.environ.get("RANK", "0") != "0":  # one of torchrun's ranks: rank 0 says it for them all
            return _stopped(e)
        print(
            f"\nbench: {'terminated (SIGTERM)' if isinstance(e, Terminated) else 'interrupted'}; no result file was "
            "written. The same command resumes: bench run and bench ablate from their checkpoints and finished "
            "models, bench eval from the batches it scored (OUT/.scored)",
            file=sys.stderr,
        )
        return _stopped(e)
