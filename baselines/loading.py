"""Load a trained fuser from a run folder: ``load_fuser("results/cpu-phantom", "unet")``.

A run folder (written by ``bench run``) holds one folder per model with ``model.json`` (the
factory's keyword arguments, e.g. the width it was built at, and ``status: done``), ``best.pt``
(the weights, for a trainable fuser) and, for DDFM, ``prior/unet`` (its diffusion prior as a
diffusers folder). Weights are read with ``torch.load(weights_only=True)``: a results folder
cannot run code on the reader's machine.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import torch

from baselines.registry import get_fuser


def model_folder(run_dir: str, name: str) -> str:
    """The folder of model ``name`` inside a run folder (names are made file-system safe)."""
    return os.path.join(run_dir, re.sub(r"[^A-Za-z0-9_.+-]", "_", name))


@dataclass
class TrainedFuser:
    """Where a finished model of a run keeps what it needs: factory keywords, weights, prior."""

    name: str
    folder: str
    kwargs: dict
    weights: str | None  # best.pt of a trainable fuser


def _accepted(entry, kwargs: dict) -> dict:
    """The keywords the factory still takes: a run written by an older fusionbench may record
    settings that have since moved out of the factory (DDFM's prior training settings)."""
    import inspect

    try:
        params = inspect.signature(entry.factory).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def missing_plugin(run_dir: str, name: str, info_path: str | None = None) -> str | None:
    """Why fuser ``name`` of the run ``run_dir`` is unknown here, where its ``model.json`` says a plugin
    made it (``source: plugin <distribution>``) that is not installed; None where it does not."""
    try:
        get_fuser(name)
        return None  # registered here: nothing is missing
    except ValueError:
        pass
    info_path = info_path or os.path.join(model_folder(run_dir, name), "model.json")
    try:
        with open(info_path) as fh:
            source = json.load(fh).get("source", "")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(source, str) or not source.startswith("plugin "):
        return None
    return (
        f"{run_dir}: model {name!r} came from the plugin {source.split(' ', 1)[1]} ({info_path}), which is not "
        "installed here; pip install that package (bench list then shows the fuser)"
    )


def find_trained(run_dir: str, name: str, folder: str | None = None) -> TrainedFuser:
    """Locate model ``name`` in ``run_dir`` (or in ``folder``); a model that is not there,
    unfinished or missing its weights (or DDFM's prior) raises one ValueError naming the file."""
    folder = folder or model_folder(run_dir, name)
    info_path = os.path.join(folder, "model.json")
    try:
        entry = get_fuser(name)
    except ValueError:
        said = missing_plugin(run_dir, name, info_path)
        if said is None:
            raise
        raise ValueError(said) from None
    hint = "train it there first, or leave it out of --models"
    if os.path.isfile(run_dir):
        raise ValueError(f"{run_dir}: a file; expected a run folder written by bench run (e.g. results/cpu-phantom)")
    if not os.path.exists(info_path):
        raise ValueError(f"{run_dir}: model {name!r} is not in that run (no {info_path}); {hint}")
    try:
        with open(info_path) as fh:
            info = json.load(fh)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{info_path}: not readable JSON ({e}); expected the model.json that bench run writes"
        ) from None
    if info.get("status") != "done":
        raise ValueError(
            f"{run_dir}: model {name!r} did not finish in that run (status {info.get('status')!r} in "
            f"{info_path}); {hint}"
        )
    kwargs = _accepted(entry, dict(info.get("kwargs", {})))
    weights = None
    if entry.trainable:
        weights = os.path.join(folder, "best.pt")
        if not os.path.exists(weights):
            raise ValueError(f"{run_dir}: model {name!r} has no trained weights (no {weights}); {hint}")
    if "prior_path" in kwargs:
        prior = kwargs["prior_path"] or os.path.join(folder, "prior", "unet")
        if not os.path.exists(os.path.join(prior, "config.json")):
            raise ValueError(f"{run_dir}: model {name!r} has no diffusion prior (no {prior}/config.json); {hint}")
        kwargs["prior_path"] = prior
    return TrainedFuser(name, folder, kwargs, weights)


def load_weights(model: torch.nn.Module, path: str, device="cpu") -> None:
    """Load a state dict saved by the trainer into ``model``; a damaged file is one clear error."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(state)
    except Exception as e:  # a truncated or foreign file: say which, never suggest weights_only=False
        raise ValueError(
            f"{path}: cannot load these weights ({checkpoint_problem(e)}); expected a best.pt written by bench run"
        ) from None


def checkpoint_problem(e: Exception) -> str:
    """Why torch could not read a checkpoint, in one line, without torch's advice on forcing the load."""
    text = str(e)
    if "Weights only load failed" in text:
        return "it holds pickled Python objects besides tensors; such files are never loaded"
    first = text.splitlines()[0][:160] if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def load_fuser(run_dir: str, name: str, device="cpu"):
    """The trained fuser ``name`` (any case: ``UNet``) of a finished run folder, built as it was
    trained, in eval mode, on ``device`` (``"auto"``: a GPU when there is one)."""
    try:
        name = get_fuser(name).name
    except ValueError:  # find_trained says why: a plugin that the run used and this machine lacks
        pass
    return _load(find_trained(run_dir, name), device)


def load_model_folder(folder: str, expected: str | None = None, device="cpu"):
    """The trained fuser kept in one model folder (``results/<run>/<model>``), in eval mode;
    ``expected`` names the fuser the caller needs (another one there is an error)."""
    info_path = os.path.join(folder, "model.json")
    if not os.path.exists(info_path):
        raise ValueError(f"{folder}: no model.json; expected the folder of a trained model (results/<run>/<model>)")
    try:
        with open(info_path) as fh:
            name = json.load(fh).get("name")
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{info_path}: not readable JSON ({e}); expected the model.json that bench run writes"
        ) from None
    if expected is not None and name != expected:
        raise ValueError(f"{folder}: holds model {name!r}; expected a {expected} folder")
    return _load(find_trained(os.path.dirname(os.path.normpath(folder)), name, folder), device)


def pick_device(name, flag: str = "device") -> torch.device:
    """``name``: ``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N`` (or another
    accelerator torch finds here, e.g. ``mps``), or a ``torch.device``; one clear error for a device
    this machine does not have or a name that is not a device, worded for the caller's ``flag``
    (``--device`` on the command line, the keyword ``device`` from Python). Here, below the
    registry, so that loading weights checks it too (torch.load's own error blamed the weights)."""
    cli = flag.startswith("--")
    shown, use = (f"{flag} {name}", f"{flag} cpu or auto") if cli else (f"{flag} {name!r}", f"{flag}='cpu' or 'auto'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"{shown}: not a device; expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{shown}: CUDA is not available on this machine; use {use}")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{shown}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type not in ("cpu", "cuda"):  # another accelerator (mps, xpu): only where torch finds one
        backend = getattr(torch.backends, dev.type, None) or getattr(torch, dev.type, None)
        if not (hasattr(backend, "is_available") and backend.is_available()):
            raise ValueError(f"{shown}: not available on this machine; expected auto, cpu, cuda or cuda:N")
    return dev


def _load(found: TrainedFuser, device):
    name = found.name
    device = pick_device(device)
    torch.manual_seed(0)
    model = get_fuser(name).build(**found.kwargs)
    if found.weights is not None:
        load_weights(model, found.weights, device)
    if isinstance(model, torch.nn.Module):
        model.to(device).eval()
    return model
