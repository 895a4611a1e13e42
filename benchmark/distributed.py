"""Multi-process runs through PyTorch's own engine (torch.distributed).

``torchrun --nproc-per-node N -m benchmark run ...`` (or ``bench run --nproc N``, which starts
torchrun in standalone mode) runs N processes: training uses DistributedDataParallel (gloo on CPU,
NCCL on GPUs, one GPU per process; BatchNorm is synchronised on GPUs only, as SyncBatchNorm needs
CUDA), the validation set is sharded for fusing and scoring, and the score rows are gathered on
rank 0, which alone writes results. Multi-node works the same way with torchrun's usual
``--nnodes``/``--rdzv-endpoint`` arguments.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def pick_device(name: str) -> torch.device:
    """``--device``: ``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N`` (or another
    accelerator torch finds here, e.g. ``mps``); one clear error for a device this machine does not
    have or a name that is not a device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {name}: not a device; expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type not in ("cpu", "cuda"):  # another accelerator (mps, xpu): only where torch finds one
        backend = getattr(torch.backends, dev.type, None) or getattr(torch, dev.type, None)
        if not (hasattr(backend, "is_available") and backend.is_available()):
            raise ValueError(f"--device {name}: not available on this machine; expected auto, cpu, cuda or cuda:N")
    return dev


def init_from_env(device_name: str) -> torch.device | None:
    """Join the process group described by torchrun's environment; returns this rank's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return None
    cuda = device_name != "cpu" and torch.cuda.is_available()
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


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
