"""Multi-process runs through PyTorch's own engine (torch.distributed).

``torchrun --nproc-per-node N -m benchmark run ...`` (or ``bench run --nproc N``, which starts
torchrun in standalone mode) runs N processes: training uses DistributedDataParallel (gloo on CPU,
NCCL on GPUs, one GPU per process; BatchNorm is synchronised on GPUs only, as SyncBatchNorm needs
CUDA), the validation set is sharded for fusing and scoring, and the score rows are gathered on
rank 0, which alone writes results. Multi-node works the same way with torchrun's usual
``--nnodes``/``--rdzv-endpoint`` arguments.
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist

from baselines.loading import pick_device as _pick_device


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def pick_device(name: str) -> torch.device:
    """``--device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (:func:`baselines.loading.pick_device`)."""
    return _pick_device(name, "--device")


def init_from_env(device_name: str) -> torch.device | None:
    """Join the process group described by torchrun's environment (once: a later run in the same
    process, as ``--seeds`` makes, stays in it); returns this rank's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    cuda = device_name != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def barrier() -> None:
    if active():
        dist.barrier()


def gather_rows(rows: list) -> list:
    """All ranks' lists concatenated on every rank (small objects: score rows, sample images)."""
    if not active():
        return rows
    out = [None] * world()
    dist.all_gather_object(out, rows)
    return [r for part in out for r in part]


def shard(ds):
    """This rank's share of a dataset (every world-th item)."""
    if not active():
        return ds
    return torch.utils.data.Subset(ds, list(range(rank(), len(ds), world())))


def all_reduce_sum(values: list[float]) -> list[float]:
    if not active():
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


_KEPT = [0]  # inside kept(): the runs share one process group


@contextlib.contextmanager
def kept():
    """Keep the process group between runs (``--seeds``: one run per seed in each process): a run's
    end is then a barrier only. Destroying and joining it again between runs raced in torchrun's
    rendezvous store: the second run hung in 2 of 4 tries."""
    _KEPT[0] += 1
    try:
        yield
    finally:
        _KEPT[0] -= 1


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        if not _KEPT[0]:
            dist.destroy_process_group()
