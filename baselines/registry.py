"""The one fuser registry (timm style): built-ins register with a decorator, plugins by entry point.

A fuser maps ``(x1, x2)`` float32 (B, 1, H, W) in [0, 1] (x1 = T1-Gd, x2 = FLAIR) to a fused
(B, 1, H, W) image in [0, 1]. Trainable fusers are ``torch.nn.Module``s; they may define
``loss(x1, x2, loss_cfg) -> Tensor`` (default: the shared fusion loss on ``forward``); invertible
ones also expose ``decompose``.

Third-party packages add fusers without touching this repository through the entry-point group
``fusionbench.fusers``: each entry point names a factory (``pkg.module:make_fuser``) returning
such a callable; optional metadata is read from the factory's ``fusionbench`` dict attribute
(``kind``, ``trainable``, ``reference``, ``batch_size``, ``description``, ``display``, ``config``).

The registry is the one place that knows the models: each entry carries its display name, its
place in the paper's Table 1 (``order``), the run-config fields its factory takes (``config``:
factory keyword -> config field, declared, never guessed from parameter names), its default batch
size and its parameter count (declared for built-ins, so listing builds nothing).
"""

from __future__ import annotations

import importlib
import inspect
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
    display: str = ""  # name in tables and figures (default: the registry name)
    order: int = 1000  # place in the paper's Table 1 (anchors first); others follow alphabetically
    config: dict = field(default_factory=dict)  # factory keyword -> RunConfig field it takes
    _params: int | None = field(default=None, repr=False)

    def build(self, **kwargs):
        """Instantiate the fuser; a broken plugin raises its load error here."""
        if self.error is not None:
            raise RuntimeError(self.error)
        try:
            return self.factory(**kwargs)
        except Exception as e:
            if self.source != "built-in":
                raise RuntimeError(
                    f"plugin fuser {self.name!r} (from {self.source}) failed to build: {type(e).__name__}: {e}"
                ) from e
            raise

    @property
    def label(self) -> str:
        return self.display or self.name

    @property
    def params(self) -> int | None:
        """Trainable parameter count of the default build (declared for built-ins; a plugin is built
        once to count; None for a broken plugin)."""
        if self._params is None and self.error is None:
            try:
                m = self.build()
            except Exception:
                return None
            self._params = (
                sum(p.numel() for p in m.parameters() if p.requires_grad) if isinstance(m, torch.nn.Module) else 0
            )
        return self._params

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "display": self.label,
            "kind": self.kind,
            "trainable": self.trainable,
            "params": self.params,
            "reference": self.reference,
            "batch_size": self.batch_size,
            "config": dict(self.config),
            "source": self.source,
            "error": self.error,
        }


_REGISTRY: dict[str, FuserEntry] = {}
_IGNORED: list[str] = []  # plugin entry points not registered, and why (bench list shows them)
_loaded = False
# A fuser's name is a folder of every run and an item of --models a,b and --set per_model=NAME.key=v:
# letters, digits, '_', '+', '-' (an entry point's name may hold '/', ',', '.' or '..').
PLUGIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+\-]*$")


def register_fuser(
    name: str,
    *,
    kind: str,
    trainable: bool,
    reference: str = "",
    batch_size: int = 64,
    description: str = "",
    display: str = "",
    order: int = 1000,
    config: dict | None = None,
    params: int | None = None,
):
    """Decorator registering a built-in fuser factory under ``name`` with its metadata (see module doc)."""
    if kind not in KINDS:
        raise ValueError(f"fuser {name!r}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")

    def deco(factory):
        _REGISTRY[name] = FuserEntry(
            name,
            factory,
            kind,
            trainable,
            reference,
            batch_size,
            "built-in",
            description or (factory.__doc__ or "").strip().split("\n")[0],
            display=display,
            order=order,
            config=dict(config or {}),
            _params=params,
        )
        return factory

    return deco


def _load_plugins() -> None:
    _IGNORED.clear()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        source = f"plugin {dist.name}" if dist is not None else f"plugin {ep.value}"
        where = f"plugin fuser {ep.name!r} (entry point {ep.value!r} in {source})"
        taken = {k.lower(): v for k, v in _REGISTRY.items()}.get(ep.name.lower())
        if taken is not None:  # names match regardless of case: a plugin cannot shadow a built-in or another plugin
            _IGNORED.append(f"{where} is ignored: the name is taken by the fuser {taken.name!r} ({taken.source})")
            continue
        if not PLUGIN_NAME.match(ep.name) or SMP_PATTERN.match(ep.name.lower()):
            _IGNORED.append(
                f"{where} is ignored: a fuser's name is letters, digits, '_', '+' and '-' (it names a folder "
                "and an item of --models), not starting with 'smp-'"
            )
            continue
        try:
            factory = ep.load()
            meta = dict(getattr(factory, "fusionbench", {}) or {})
            kind = meta.get("kind", "classical")
            if kind not in KINDS:
                raise ValueError(f"metadata kind {kind!r} is not one of {', '.join(KINDS)}")
            _REGISTRY[ep.name] = FuserEntry(
                ep.name,
                factory,
                kind,
                bool(meta.get("trainable", False)),
                meta.get("reference", ""),
                int(meta.get("batch_size", 8)),
                source,
                meta.get("description", ""),
                display=str(meta.get("display", "")),
                config=dict(meta.get("config", {})),
            )
        except Exception as e:  # a broken plugin must not break the suite: record and report it
            _REGISTRY[ep.name] = FuserEntry(
                ep.name,
                None,
                "classical",
                False,
                "",
                8,
                source,
                error=f"{where} failed to load: {type(e).__name__}: {e}",
            )


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
    return (entry.source != "built-in", entry.order, entry.name)


def ignored_plugins() -> list[str]:
    """Why each plugin entry point that was not registered was left out (a taken or unusable name)."""
    _ensure_loaded()
    return list(_IGNORED)


def list_fusers() -> list[FuserEntry]:
    """All registered fusers: built-ins in Table 1 order, then plugins (whatever was imported first)."""
    _ensure_loaded()
    return sorted(_REGISTRY.values(), key=_order)


def table_order(names) -> list[str]:
    """``names`` in the paper's Table 1 order (anchors first), then any other fuser alphabetically."""
    _ensure_loaded()
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda n: (_REGISTRY[n].order, n) if n in _REGISTRY else (1000, n))


def display_name(name: str) -> str:
    """The name a table or figure shows for fuser ``name`` (its registry name if unknown)."""
    _ensure_loaded()
    return _REGISTRY[name].label if name in _REGISTRY else name


def _smp_entry(name: str) -> FuserEntry:
    from baselines.smp_fusers import SMP_MISSING, SmpFuser, smp_available

    arch, encoder = SMP_PATTERN.match(name).groups()
    problem = smp_available()
    if problem:
        raise ValueError(f"model {name!r}: {SMP_MISSING} ({problem})")
    return FuserEntry(
        name,
        lambda: SmpFuser(arch, encoder),
        "discriminative",
        True,
        f"segmentation-models-pytorch {arch} with a {encoder} encoder (random init)",
        16,
        "built-in (smp)",
    )


def get_fuser(name: str) -> FuserEntry:
    """The entry called ``name``, matched regardless of case as ``--models`` matches it (``UNet++``);
    ``smp-<arch>-<encoder>`` names are built on demand."""
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    by_lower = {k.lower(): k for k in _REGISTRY}
    if isinstance(name, str) and name.lower() in by_lower:
        return _REGISTRY[by_lower[name.lower()]]
    if SMP_PATTERN.match(name):
        entry = _smp_entry(name)
        _REGISTRY[name] = entry
        return entry
    known = ", ".join(sorted(_REGISTRY))
    raise ValueError(
        f"unknown model {name!r}; known models: {known} (and smp-<arch>-<encoder> with "
        "segmentation-models-pytorch installed, and a plugin's fusers once its package is installed)"
    )


def unknown_keywords(name: str, kwargs: dict) -> str | None:
    """What is wrong with ``kwargs`` for the factory of fuser ``name`` ("unknown argument(s) wdth;
    it takes width=1.0, ..."), or None when it takes them all (or takes ``**kwargs``)."""
    entry = get_fuser(name)
    if entry.factory is None or not kwargs:
        return None
    params = inspect.signature(entry.factory).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    bad = [k for k in kwargs if k not in params]
    if not bad:
        return None
    takes = ", ".join(f"{k}={p.default!r}" for k, p in params.items() if p.default is not p.empty)
    return f"unknown argument(s) {', '.join(bad)}; it takes {takes or 'no arguments'}"


def create_fuser(name: str, **kwargs):
    """Build the fuser ``name`` with keyword arguments for its factory."""
    entry = get_fuser(name)
    wrong = unknown_keywords(name, kwargs)  # a misspelt keyword is named with the ones it takes
    if wrong:
        raise TypeError(f"create_fuser({entry.name!r}): {wrong}")
    return entry.build(**kwargs)


def resolve_models(spec) -> list[str]:
    """Model names from a comma-separated string or list; ``all`` = every registered fuser. Names
    are matched regardless of case, so the papers' spellings work (``FusionINN``, ``UNet++``)."""
    _ensure_loaded()
    if not isinstance(spec, (str, list, tuple)) or not all(isinstance(n, str) for n in spec):
        raise ValueError(f"models: expected 'all', a comma-separated string or a list of names; got {spec!r}")
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for n in names:
        if not n:
            continue
        if n.lower() == "all":
            out.extend(e.name for e in list_fusers() if not SMP_PATTERN.match(e.name))
        else:
            out.append(get_fuser(n).name)  # its registered name, whatever the case given
    return list(dict.fromkeys(out))
