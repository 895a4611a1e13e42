"""The one fuser registry (timm style): built-ins register with a decorator, plugins by entry point.

A fuser maps ``(x1, x2)`` float32 (B, 1, H, W) in [0, 1] (x1 = T1-Gd, x2 = FLAIR) to a fused
(B, 1, H, W) image in [0, 1]. Trainable fusers are ``torch.nn.Module``s; they may define
``loss(x1, x2, loss_cfg) -> Tensor`` (default: the shared fusion loss on ``forward``); invertible
ones also expose ``decompose``.

Third-party packages add fusers without touching this repository through the entry-point group
``fusionbench.fusers``: each entry point names a factory (``pkg.module:make_fuser``) returning
such a callable; optional metadata is read from the factory's ``fusionbench`` dict attribute
(``kind``, ``trainable``, ``reference``, ``batch_size``, ``description``).
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable

import torch

KINDS = ("classical", "discriminative", "generative", "invertible")
ENTRY_POINT_GROUP = "fusionbench.fusers"
_BUILTIN_MODULES = (
    "baselines.classical",
    "baselines.deepfuse",
    "baselines.funfusean",
    "baselines.half_unet",
    "baselines.unet",
    "baselines.unet_pp",
    "baselines.unet3p",
    "baselines.ddfm",
    "fusioninn.model",
)
SMP_PATTERN = re.compile(r"^smp-([a-z0-9]+)-([a-z0-9_.\-]+)$")


@dataclass
class FuserEntry:
    name: str
    factory: Callable | None
    kind: str
    trainable: bool
    reference: str = ""
    batch_size: int = 64
    source: str = "built-in"
    description: str = ""
    error: str | None = None  # set for a plugin that could not be loaded
    _params: int | None = field(default=None, repr=False)

    def build(self, **kwargs):
        """Instantiate the fuser; a broken plugin raises its load error here."""
        if self.error is not None:
            raise RuntimeError(self.error)
        try:
            return self.factory(**kwargs)
        except Exception as e:
            if self.source != "built-in":
                raise RuntimeError(f"plugin fuser {self.name!r} (from {self.source}) failed to build: {type(e).__name__}: {e}") from e
            raise

    @property
    def params(self) -> int | None:
        """Trainable parameter count of the default build (None for a broken plugin)."""
        if self._params is None and self.error is None:
            try:
                m = self.build()
            except Exception:
                return None
            self._params = sum(p.numel() for p in m.parameters() if p.requires_grad) if isinstance(m, torch.nn.Module) else 0
        return self._params

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "trainable": self.trainable, "params": self.params, "reference": self.reference, "batch_size": self.batch_size, "source": self.source, "error": self.error}


_REGISTRY: dict[str, FuserEntry] = {}
_loaded = False


def register_fuser(name: str, *, kind: str, trainable: bool, reference: str = "", batch_size: int = 64, description: str = ""):
    """Decorator registering a built-in fuser factory under ``name``."""
    if kind not in KINDS:
        raise ValueError(f"fuser {name!r}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")

    def deco(factory):
        _REGISTRY[name] = FuserEntry(name, factory, kind, trainable, reference, batch_size, "built-in", description or (factory.__doc__ or "").strip().split("\n")[0])
        return factory

    return deco


def _load_plugins() -> None:
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        source = f"plugin {dist.name}" if dist is not None else f"plugin {ep.value}"
        if ep.name in _REGISTRY and _REGISTRY[ep.name].source == "built-in":
            continue  # a plugin cannot shadow a built-in
        try:
            factory = ep.load()
            meta = dict(getattr(factory, "fusionbench", {}) or {})
            kind = meta.get("kind", "classical")
            if kind not in KINDS:
                raise ValueError(f"metadata kind {kind!r} is not one of {', '.join(KINDS)}")
            _REGISTRY[ep.name] = FuserEntry(ep.name, factory, kind, bool(meta.get("trainable", False)), meta.get("reference", ""), int(meta.get("batch_size", 8)), source, meta.get("description", ""))
        except Exception as e:  # a broken plugin must not break the suite: record and report it
            _REGISTRY[ep.name] = FuserEntry(ep.name, None, "classical", False, "", 8, source, error=f"plugin fuser {ep.name!r} (entry point {ep.value!r} in {source}) failed to load: {type(e).__name__}: {e}")


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
    _load_plugins()


def reload_plugins() -> None:
    """Forget plugin entries and discover entry points again (after installing a plugin)."""
    _ensure_loaded()
    for k in [k for k, v in _REGISTRY.items() if v.source != "built-in"]:
        del _REGISTRY[k]
    _load_plugins()


def _order(entry: FuserEntry):
    mod = getattr(entry.factory, "__module__", "") or ""
    rank = next((i for i, m in enumerate(_BUILTIN_MODULES) if mod == m or mod.startswith(m + ".")), len(_BUILTIN_MODULES))
    return (entry.source != "built-in", rank)


def list_fusers() -> list[FuserEntry]:
    """All registered fusers: built-ins in a fixed order (whatever was imported first), then plugins."""
    _ensure_loaded()
    return sorted(_REGISTRY.values(), key=_order)


def _smp_entry(name: str) -> FuserEntry:
    from baselines.smp_fusers import make_smp_entry

    return make_smp_entry(name)


def get_fuser(name: str) -> FuserEntry:
    """The entry called ``name``; ``smp-<arch>-<encoder>`` names are built on demand."""
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if SMP_PATTERN.match(name):
        entry = _smp_entry(name)
        _REGISTRY[name] = entry
        return entry
    known = ", ".join(sorted(_REGISTRY))
    raise ValueError(f"unknown model {name!r}; known models: {known} (and smp-<arch>-<encoder> with segmentation-models-pytorch installed)")


def create_fuser(name: str, **kwargs):
    """Build the fuser ``name`` with keyword arguments for its factory."""
    return get_fuser(name).build(**kwargs)


def resolve_models(spec) -> list[str]:
    """Model names from a comma-separated string or list; ``all`` = every registered fuser."""
    _ensure_loaded()
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for n in names:
        if not n:
            continue
        if n == "all":
            out.extend(e.name for e in list_fusers() if not SMP_PATTERN.match(e.name))
        else:
            get_fuser(n)
            out.append(n)
    return list(dict.fromkeys(out))
