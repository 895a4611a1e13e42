"""``bench run --seeds 0,1,2``: the same run once per seed, then a leaderboard over the seeds."""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass, field

import pandas as pd

from benchmark import distributed as D
from benchmark.atomic import check_writable, first_missing, folder_kind, folder_lock
from benchmark.config import RunConfig
from benchmark.reporting.seeds import deferred, write_seed_tables
from benchmark.running.runner import RunResult, default_run_name, run


@dataclass
class SeedsResult:
    """What ``run_seeds`` returns: the folder of the tables over the seeds, those tables (``"slice"``
    and, with labels, ``"tumour"``; None and empty in a torchrun process other than rank 0, which
    alone writes them), and each seed's own :class:`RunResult`."""

    path: str
    leaderboard: pd.DataFrame | None
    leaderboards: dict = field(default_factory=dict)
    runs: list[RunResult] = field(default_factory=list)


def parse_seeds(text) -> list[int]:
    """``"0,1,2"`` (or a list of ints) -> ``[0, 1, 2]``: at least two different whole numbers >= 0."""
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    try:
        seeds = [int(t) for t in items if str(t).strip()]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected comma-separated whole numbers, e.g. 0,1,2") from None
    if len(seeds) < 2 or len(set(seeds)) < len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds {text!r}: expected at least two different seeds >= 0, e.g. 0,1,2")
    return seeds


def run_seeds(cfg: RunConfig, seeds, progress: bool = True, log=print) -> SeedsResult:
    """Run ``cfg`` once per seed, into ``OUT/<run>-seed<N>`` (each an ordinary run folder: reused,
    resumed and tabled as any run), then write the leaderboards over the seeds into
    ``OUT/<run>-seeds``. ``<run>`` is ``--run-name`` or the default run name."""
    seeds = parse_seeds(seeds)
    if cfg.from_run:  # the note over the seeds says their spread is the training's: here there is none
        raise ValueError(
            f"--seeds with --from {cfg.from_run}: nothing is trained, every seed would load the same weights; a "
            "table over seeds compares trainings (run each --seed alone to score other phantom draws)"
        )
    base = cfg.run_name or default_run_name(cfg)
    out_dir = os.path.join(cfg.out, f"{base}-seeds")
    if folder_kind(out_dir) not in ("new", "seeds"):  # checked before any training, and again under the lock
        raise ValueError(f"{out_dir} holds files and is not a folder of tables over seeds; give another --run-name")
    main = os.environ.get("RANK", "0") == "0"  # under torchrun (--nproc) every process runs each seed's run
    runs = []
    with D.kept(), deferred():  # one process group for every seed's run; the tables over them written below
        for i, seed in enumerate(seeds):
            if main:
                log(f"[fusionbench] seed {seed} ({i + 1} of {len(seeds)})")
            runs.append(run(dataclasses.replace(cfg, seed=seed, run_name=f"{base}-seed{seed}"), progress, log))
    D.shutdown()
    if not main:  # rank 0 writes the tables, as it alone writes each run's
        return SeedsResult(out_dir, None, {}, runs)
    created = first_missing(out_dir)
    check_writable(out_dir)
    try:
        with folder_lock(out_dir, "wait for that command to finish, or give this one another --run-name"):
            if folder_kind(out_dir) not in ("new", "seeds"):
                raise ValueError(f"{out_dir} holds files and is not a folder of tables over seeds")
            tables = write_seed_tables([r.path for r in runs], out_dir)
    except BaseException:
        if created:
            shutil.rmtree(created, ignore_errors=True)  # nothing partial: a folder this command made goes
        raise
    for seed, r in zip(seeds, runs):
        if r.failures:  # its row over the seeds is then over the others: the tables say "(n=...)"
            log(f"[fusionbench] seed {seed}: {', '.join(sorted(r.failures))} failed; the tables over seeds lack it")
    return SeedsResult(out_dir, tables["slice"], tables, runs)
