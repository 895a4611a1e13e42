"""``bench eval``'s worker processes: forked from the scoring process where the system can (Linux), else
spawned before the command imports torch.

A forked worker has what the main process imported (torch, the metrics and their lineages, the loaded
kernels) from the start, at no cost: on a fresh machine, where the kernels' build runs beside the
imports and every core is busy, this saves a spawned worker's own import of torch (~1.1-1.5 s of one
core: a fresh `bench eval` of 1153 triples ~0.5-1.3 s sooner, docs/speed.md). It is forked when the
scoring starts (:func:`take`), from a process with no other thread (the eval's progress bar runs without
tqdm's monitor thread), and scores on one thread (:func:`_init`), as PyTorch's DataLoader workers do
after a fork, so that it never enters a thread pool the parent may have started.

Where fork is not the platform's way (macOS, Windows) each worker is a spawned Python process that
imports torch and the metrics (~1.1 s of one core) before it scores. Started at the first batch, after
the main process's own import, it left the second core idle for that long, and on a fresh machine for
longer, since the hand-written kernels' build was running then. :func:`start` starts those as soon as
the command can tell it will use them (:mod:`benchmark.cli`, from the number of source images, before it
imports torch), each importing what it scores with at once, side by side with the main process's import
and the kernels' build; :func:`take` hands them to the scoring
(:func:`benchmark.running.evaluate._score_side_by_side`), which makes its own pool when none was started
or the eval needs another number; :func:`discard` stops them where the eval ends without them (bad input,
every batch reused). Nothing here imports torch.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

AUTO_MIN_TRIPLES = 256  # below this, starting worker processes (~2 s each) does not pay

_EARLY: list = []  # [(pool, processes it scores with, this one included)] from start()


def start_method() -> str:
    """How workers start: ``fork`` on Linux (the scoring process's imports and kernels come with it),
    else ``spawn`` (a parent's thread pools are not safe to fork there, nor is fork always offered)."""
    return "fork" if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods() else "spawn"


def eval_workers(workers: int | str, n_triples: int, n_batches: int, device: str) -> int:
    """How many processes score a ``bench eval``: ``workers`` (a number, or ``auto``; the
    ``FUSIONBENCH_EVAL_WORKERS`` variable overrides ``auto``). ``auto`` uses one single-threaded
    process per CPU core when the eval scores at least :data:`AUTO_MIN_TRIPLES` triples on a CPU
    (``device`` as :func:`benchmark.distributed.pick_device` names it; batches side by side beat one
    process whose small tensor operations are split over the cores; README, "Speed of whole
    lineages"), else this process alone, whether or not the metrics run compiled kernels (each
    process then compiles them: still faster, measured in :func:`benchmark.running.evaluate._score_folders`)."""
    what = "--workers"
    if workers == "auto":
        workers = os.environ.get("FUSIONBENCH_EVAL_WORKERS", "auto")
        what = "FUSIONBENCH_EVAL_WORKERS" if workers != "auto" else what  # name where a bad value came from
    if workers == "auto":
        if str(device).split(":")[0] != "cpu" or n_triples < AUTO_MIN_TRIPLES:
            return 1
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = cores
    try:
        n = int(workers)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a whole number or 'auto'; got {workers!r}") from None
    if n < 1:
        raise ValueError(f"{what} must be at least 1; got {n}")
    return max(1, min(n, n_batches))


def _init() -> None:
    """Each worker's start: one thread (a process per core), freed memory kept (as the main process:
    a spawned worker starts with glibc's defaults), Ctrl-C left to the main process, SIGTERM (the pool's
    stop) ending it at once, and an exit without the interpreter's teardown."""
    import atexit
    import signal

    import torch

    from benchmark.allocator import keep_freed_memory

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the main process stops the pool, quietly
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the pool's own stop; not the command's handler (forked)
    # A worker's results have gone back through the pool's pipe (written as each batch ends) by the time
    # it exits; the interpreter's teardown of torch after that (0.3-0.4 s), which the pool's shutdown
    # waits for, is skipped, as the main process skips its own (benchmark.cli.quick_exit). Registered
    # here, after the imports' atexit handlers, so it runs before them (last in, first out); the exit
    # (sys.exit in multiprocessing's spawn_main) has flushed the output by then. (A forked worker ends
    # with os._exit from multiprocessing itself.)
    atexit.register(os._exit, 0)
    keep_freed_memory()
    torch.set_num_threads(1)


def _ready() -> None:
    """A worker's first task: import what it scores with (the metrics and their lineages; the rest of
    :mod:`benchmark.running.evaluate`, ~0.1 s more, comes with its first batch)."""
    import metrics.lineage  # noqa: F401
    import metrics.scoring  # noqa: F401


def new_pool(n_workers: int) -> ProcessPoolExecutor:
    """``n_workers - 1`` processes (:func:`start_method`), one thread each; the calling process scores
    beside them."""
    return ProcessPoolExecutor(n_workers - 1, mp_context=multiprocessing.get_context(start_method()), initializer=_init)


def start(workers: int | str, n_triples: int, device: str) -> int:
    """Start the workers of an eval of ``n_triples`` triples on ``device`` now, if it will have any
    (:func:`eval_workers`) and they are spawned (forked ones start with the scoring, :func:`take`);
    returns how many processes it will score with (1: none)."""
    n = eval_workers(workers, n_triples, n_triples, device)
    if n > 1 and start_method() == "spawn":
        pool = new_pool(n)
        for _ in range(n - 1):  # each submission spawns a process, up to the pool's size
            pool.submit(_ready)
        _EARLY.append((pool, n))
    return n


def take(n_workers: int) -> ProcessPoolExecutor:
    """The pool :func:`start` began, if it scores with ``n_workers`` processes; else a new one (and an
    early pool of another size is stopped)."""
    if _EARLY:
        pool, n = _EARLY.pop()
        if n == n_workers:
            return pool
        _stop(pool)
    return new_pool(n_workers)


def discard() -> None:
    """Stop the workers :func:`start` began and the eval did not take."""
    while _EARLY:
        _stop(_EARLY.pop()[0])


def _stop(pool: ProcessPoolExecutor) -> None:
    # Its workers have scored nothing (they may still be importing torch): ended at once rather than
    # waited for. The pool's process table is not public; without it, shutdown waits for them.
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
