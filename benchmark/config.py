"""Run configuration: one dataclass of defaults, three named profiles, command-line overrides.

Profiles (every field can be overridden, e.g. ``--epochs 3`` or ``--set width=0.5``):

* ``smoke``: seconds; for tests. 16 train / 8 validation phantom pairs, 1 epoch, nets at 1/8 width.
* ``quick``: the README default; at most 15 minutes for every model on a 2-core CPU, and every
  trained fuser competent (Q_SSIM >= 0.88 on the phantom validation split). 64 train / 24
  validation pairs; training on random 64x64 crops with flips (10 per pair per epoch, 6 epochs,
  batch 16: 240 steps), Adam with a cosine schedule, per-model learning rates and budgets
  (``per_model``); the 27-37M-parameter nets (UNet, UNet++, UNet3+) at 1/4 width; DDFM with a
  small prior trained on crops and 10 sampling steps instead of 100. What it changes is written
  into config.json and the leaderboard caption.
* ``paper``: docs/reference.md §2: all the data, 400 epochs, the models' own batch sizes, full width.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field


@dataclass
class RunConfig:
    profile: str = "quick"
    models: str = "all"
    data: str = "phantom"
    n_train: int | None = None  # None: the whole training split
    n_val: int | None = None
    epochs: int = 400
    batch_size: int | None = None  # None: each model's own (registry metadata), capped by max_batch
    max_batch: int | None = None
    width: float = 1.0  # width multiplier of the 27-37M-parameter nets (UNet, UNet++, UNet3+)
    lr: float = 3e-4
    plateau_factor: float = 0.95
    plateau_patience: int = 8
    loss_lambda: float = 0.8
    loss_w: float = 0.5
    reference_quirks: bool = False  # reference training loop: no shuffle, drop last batch, scheduler on last val batch
    crop: int | None = None  # train on random crop x crop patches (None: whole slices, as the paper)
    flip: bool = False  # random flips of each training pair (both sources alike)
    crops_per_pair: int = 1  # patches drawn from each training pair per epoch
    schedule: str = "plateau"  # plateau (the reference: ReduceLROnPlateau per epoch) | cosine (per step, with warm-up)
    warmup: int = 0  # warm-up steps of the cosine schedule
    per_model: str = ""  # training fields for one model: "deepfuse.lr=3e-4,fusioninn.crop=32"
    seed: int = 0
    phantom_seed: int | None = None  # the phantom's images from this seed, not --seed: the same images in every seed
    device: str = "auto"
    amp: bool = False
    metric_profile: str = "upstream"
    metrics: str = "all"
    lineage: str = ""  # metric sets of other evaluation code: "vifb", "tang,cddfuse", "liu,vifb" (metrics.lineage)
    quantize: bool | None = None
    score_batch: int = 16
    table_style: str = "stats"  # "stats": CIs and paired tests; "paper": the plain Table 1 layout
    n_boot: int = 2000
    n_show: int = 4
    phantom_train: int = 512
    phantom_val: int = 128
    ddfm_steps: int = 100
    ddfm_prior: str | None = None
    ddfm_prior_epochs: int = 20
    ddfm_prior_channels: str = "32,64,64"
    fusioninn_k: int = 3
    fusioninn_alpha: float = 0.5
    fusioninn_prior: str = "normal"
    fusioninn_mmd: str = "paper"
    decomposition_draws: int = 4
    out: str = "results"
    run_name: str | None = None
    retrain: bool = False
    from_run: str | None = None  # load every fuser's weights from this finished run folder; train nothing
    num_workers: int = 0
    save_fused: bool = False  # write every fused validation image and the sources as 8-bit PNGs (bench eval reads them)
    extra: dict = field(default_factory=dict)

    def image_seed(self) -> int:
        """The seed the phantom's images are drawn from: ``phantom_seed`` if given, else ``seed``."""
        return self.seed if self.phantom_seed is None else self.phantom_seed

    def trains(self, models) -> bool:
        """Whether training reads this config for any of ``models``: a trainable net, or DDFM,
        whose diffusion prior is trained here unless ``ddfm_prior`` gives one."""
        from baselines.registry import get_fuser

        return any(get_fuser(m).trainable or (m == "ddfm" and not self.ddfm_prior) for m in models)

    def shrinks(self, models=None) -> list[str]:
        """Human-readable list of what this config shrinks relative to the paper setting
        (only what applies to ``models`` when given)."""
        models = list(models) if models is not None else None
        trains = models is None or self.trains(models)
        out = []
        if trains and self.epochs < 400:
            out.append(f"{self.epochs} epoch{'s' * (self.epochs != 1)} (paper 400)")
        if trains and self.n_train is not None:
            out.append(f"{self.n_train} training pair{'s' * (self.n_train != 1)}")
        if self.width != 1.0 and (models is None or {"unet", "unet++", "unet3+"} & set(models)):
            out.append(f"UNet/UNet++/UNet3+ at width x{self.width:g}")
        if trains and self.crop is not None:
            out.append(
                f"trained on random {self.crop}x{self.crop} crops{' with flips' if self.flip else ''}, "
                f"{self.crops_per_pair} per pair per epoch (paper: whole slices)"
            )
        if trains and (self.schedule != "plateau" or self.lr != 3e-4):
            steps = f"{self.warmup} warm-up step{'s' * (self.warmup != 1)}"
            sched = f"cosine schedule ({steps})" if self.schedule == "cosine" else "plateau schedule"
            out.append(f"Adam lr {self.lr:g}, {sched} (paper: 3e-4, plateau)")
        for model, over in parse_per_model(self.per_model).items():
            if models is None or model in models:
                out.append(f"{model}: " + ", ".join(f"{k} {v}" for k, v in over.items()))
        for model, kw in self.extra.items():
            if models is None or model.lower() in {m.lower() for m in models}:
                out.append(f"{model}: " + ", ".join(f"{k} {v}" for k, v in kw.items()))
        if trains and self.batch_size is not None:  # one batch for every model (--batch-size)
            batch = min(self.batch_size, self.max_batch) if self.max_batch else self.batch_size
            out.append(f"batch {batch} (paper 64, FunFuseAn 8)")
        elif trains and self.max_batch is not None:
            out.append(f"batch <= {self.max_batch} (paper 64, FunFuseAn 8)")
        if self.ddfm_prior is None and (models is None or "ddfm" in models):
            out.append(
                f"DDFM prior trained here (channels {self.ddfm_prior_channels}, {self.ddfm_prior_epochs} "
                f"epoch{'s' * (self.ddfm_prior_epochs != 1)}), not the ImageNet prior"
            )
        if self.ddfm_steps != 100 and (models is None or "ddfm" in models):
            out.append(f"DDFM {self.ddfm_steps} sampling step{'s' * (self.ddfm_steps != 1)} (paper 100)")
        return out


PER_MODEL_FIELDS = ("epochs", "lr", "crop", "flip", "crops_per_pair", "schedule", "warmup", "batch_size", "max_batch")


def parse_per_model(text: str) -> dict[str, dict]:
    """``"deepfuse.lr=3e-4,fusioninn.crop=32"`` -> ``{"deepfuse": {"lr": 0.0003}, "fusioninn": {"crop": 32}}``
    (values typed like the RunConfig fields; only training fields may differ per model)."""
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    out: dict[str, dict] = {}
    for item in (t.strip() for t in (text or "").split(",")):
        if not item:
            continue
        model, sep, rest = item.partition(".")
        if not sep or "=" not in rest:
            raise ValueError(f"per_model: cannot read {item!r}; expected MODEL.FIELD=VALUE, e.g. deepfuse.lr=3e-4")
        field = rest.partition("=")[0].strip().replace("-", "_")
        if field not in PER_MODEL_FIELDS:
            raise ValueError(f"per_model: {field!r} cannot differ per model; allowed: {', '.join(PER_MODEL_FIELDS)}")
        try:
            key, value = parse_override(fields, rest)
        except ValueError as e:  # parse_override speaks of --set; name the per_model item instead
            raise ValueError(f"per_model: {item!r}: {str(e).partition(': ')[2]}") from None
        out.setdefault(model.strip(), {})[key] = value
    return out


def for_model(cfg: RunConfig, name: str) -> RunConfig:
    """``cfg`` with the ``per_model`` overrides of model ``name`` applied (its name in any case, as
    ``--models`` takes it: ``UNet.lr=2e-3`` is unet's)."""
    over: dict = {}
    for model, fields in parse_per_model(cfg.per_model).items():
        if model.lower() == name.lower():
            over.update(fields)
    return dataclasses.replace(cfg, **over) if over else cfg


PROFILES: dict[str, dict] = {
    "smoke": dict(
        n_train=16,
        n_val=8,
        epochs=1,
        max_batch=8,
        width=0.125,
        crop=64,
        flip=True,
        schedule="cosine",
        lr=1e-3,
        ddfm_steps=10,
        ddfm_prior_epochs=1,
        ddfm_prior_channels="16,16,32",
        phantom_train=16,
        phantom_val=8,
        n_show=2,
        decomposition_draws=2,
    ),
    # quick: tuned on the 2-core CPU (README, "Profiles"); every trained fuser reaches Q_SSIM >= 0.88
    # (FusionINN's fusion >= 0.85) on the phantom validation split. Per-model learning rates and
    # budgets were measured: DeepFuse's BatchNorm-before-tanh head diverges at 1e-3;
    # UNet++ (and UNet) start on a flat-output plateau that 4e-3 (2e-3) leaves within the budget,
    # UNet's raw linear head is unstable under the SSIM loss, so it is trained on its clamped output
    # (``loss_on``), FusionINN needs ~1400 steps (cheap on 32x32 crops).
    "quick": dict(
        n_train=64,
        n_val=24,
        epochs=6,
        max_batch=16,
        width=0.25,
        crop=64,
        flip=True,
        crops_per_pair=10,
        schedule="cosine",
        lr=1e-3,
        warmup=20,
        per_model="deepfuse.lr=3e-4,unet.lr=2e-3,unet++.lr=4e-3,unet3+.lr=2e-3,fusioninn.lr=2e-3,fusioninn.crop=32,fusioninn.crops_per_pair=60",
        extra={"unet": {"loss_on": "clamped"}},
        ddfm_steps=10,
        ddfm_prior_epochs=2,
        ddfm_prior_channels="16,16,32",
        phantom_train=64,
        phantom_val=24,
    ),
    "paper": dict(epochs=400, width=1.0),
}


def make_config(profile: str = "quick", **overrides) -> RunConfig:
    """A RunConfig from a profile name plus field overrides (unknown fields are an error)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known profiles: {', '.join(PROFILES)}")
    names = {f.name for f in dataclasses.fields(RunConfig)}
    bad = [k for k in overrides if k not in names]
    if bad:
        raise ValueError(f"unknown config field(s) {', '.join(bad)}; known fields: {', '.join(sorted(names))}")
    given = {k: _plain(k, v) for k, v in overrides.items()}
    if isinstance(given.get("extra"), dict):  # merged with the profile's, per model and keyword: a plugin's
        merged = {m: dict(kw) for m, kw in PROFILES[profile].get("extra", {}).items()}  # keywords must not
        for m, kw in given["extra"].items():  # drop quick's UNet setting
            merged[m] = {**merged.get(m, {}), **kw} if isinstance(kw, dict) else kw  # bad: _check_types says
        given["extra"] = merged
    cfg = RunConfig(**{**PROFILES[profile], "profile": profile, **given})
    check_config(cfg)
    for model in parse_per_model(cfg.per_model):  # a malformed per_model is an error before any work
        check_config(for_model(cfg, model), f"per_model {model}: ")
    return cfg


# Fields with a range: (lowest, highest or None); a field typed "| None" may also be None. Checked
# before any work, so that a value no model can use fails in one line, not after training.
_RANGES = {
    "n_train": (1, None),
    "n_val": (1, None),
    "epochs": (0, None),
    "batch_size": (1, None),
    "max_batch": (1, None),
    "width": (0, None),  # > 0
    "lr": (0, None),  # > 0
    "plateau_factor": (0, 1),  # > 0 and < 1
    "plateau_patience": (0, None),
    "loss_lambda": (0, 1),
    "loss_w": (0, 1),
    "crop": (1, None),
    "crops_per_pair": (1, None),
    "warmup": (0, None),
    "seed": (0, 2**32 - 1),
    "phantom_seed": (0, 2**32 - 1),
    "score_batch": (1, None),
    "n_boot": (1, None),
    "n_show": (0, None),
    "phantom_train": (1, None),
    "phantom_val": (1, None),
    "ddfm_steps": (1, None),
    "ddfm_prior_epochs": (0, None),
    "fusioninn_alpha": (0, 1),
    "decomposition_draws": (1, None),
    "num_workers": (0, None),
}
_OPEN = {"width", "lr", "plateau_factor"}  # bounds excluded


_LISTS = ("models", "metrics", "lineage")  # comma-separated names; from Python a list of names too


def _plain(name: str, value):
    """A value from Python as the command line gives it: a path (``pathlib.Path``) as its text, a
    list of names (``models=["unet", "mean"]``) as the comma-separated string, ``metrics=None`` or
    ``lineage=None`` as the default."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None and name in ("metrics", "lineage"):  # None: the default (the Table 1 five, no lineage)
        return RunConfig.__dataclass_fields__[name].default
    if name in _LISTS and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return value


def _check_types(cfg: RunConfig, where: str) -> None:
    """Text and yes/no fields hold text and True/False: ``retrain="False"`` from Python was true,
    and retrained every model; ``data=Path(...)`` failed deep in the run."""
    for f in dataclasses.fields(RunConfig):
        v, typ = getattr(cfg, f.name), str(f.type)
        if v is None and "None" in typ:
            continue
        if typ.startswith("bool") and not isinstance(v, bool):
            raise ValueError(
                f"{where}config field {f.name} = {v!r}: expected True or False" + (" or None" if "None" in typ else "")
            )
        if typ.startswith("dict") and not (
            isinstance(v, dict) and all(isinstance(m, str) and isinstance(kw, dict) for m, kw in v.items())
        ):  # extra from --set as a JSON list, or {"unet": 3}: was an AttributeError deep in the run
            raise ValueError(
                f"{where}config field {f.name} = {v!r}: expected {{model: {{keyword: value}}}}, e.g. "
                '{"funfusean": {"guard": true}}'
            )
        if typ.startswith("str") and not isinstance(v, str):
            raise ValueError(
                f"{where}config field {f.name} = {v!r}: expected text"
                + (" or None" if "None" in typ else "")
                + (" (comma-separated names, or a list of names)" if f.name in _LISTS else "")
            )


def check_config(cfg: RunConfig, where: str = "") -> None:
    """One clear error for a field no run can use (a negative count, a zero batch, an unknown
    schedule); model-specific limits (crop sizes, FusionINN's k) are checked by the models."""
    _check_types(cfg, where)
    types = {f.name: str(f.type) for f in dataclasses.fields(RunConfig)}
    for name, (lo, hi) in _RANGES.items():
        v, typ = getattr(cfg, name), types[name]
        if v is None and "None" in typ:
            continue
        whole = typ.startswith("int")
        number = isinstance(v, int) if whole else isinstance(v, (int, float))
        if number and not isinstance(v, bool) and (whole or math.isfinite(v)):  # NaN and infinity never are
            low_ok = v > lo if name in _OPEN else v >= lo
            high_ok = hi is None or (v < hi if name in _OPEN else v <= hi)
            if low_ok and high_ok:
                continue
        cmp_lo, cmp_hi = (">", "<") if name in _OPEN else (">=", "<=")
        want = f"{'a whole number' if whole else 'a finite number'} {cmp_lo} {lo}"
        want += f" and {cmp_hi} {hi}" if hi else ""
        raise ValueError(f"{where}config field {name} = {v!r}: expected {want}" + (" or None" if "None" in typ else ""))
    from baselines.ddfm.prior import check_channels, check_prior_folder
    from benchmark.reporting.tables import STYLES
    from benchmark.training.trainer import SCHEDULES
    from fusioninn.model import K_RANGE, MMD, PRIORS

    if not (isinstance(cfg.fusioninn_k, int) and K_RANGE[0] <= cfg.fusioninn_k <= K_RANGE[1]):
        raise ValueError(
            f"{where}config field fusioninn_k = {cfg.fusioninn_k!r}: expected a whole number from {K_RANGE[0]} to "
            f"{K_RANGE[1]} (FusionINN's coupling blocks)"
        )

    if cfg.phantom_seed is not None and cfg.data != "phantom":
        raise ValueError(
            f"{where}config field phantom_seed = {cfg.phantom_seed}: it draws the phantom's images, and the data "
            f"is {cfg.data!r}; leave it unset"
        )
    name = cfg.run_name
    if name not in (None, "") and (
        not isinstance(name, str) or not name.strip() or name in (".", "..") or any(c in name for c in "/\\")
    ):  # '.' or '..' put the run's files (and its clean-up of stale tables and figures) in a folder it did not make
        raise ValueError(
            f"{where}config field run_name = {name!r}: expected a folder name (no '/', not '.' or '..'); "
            "give the folder that holds it with --out"
        )
    from baselines.registry import unknown_keywords

    for model, kw in cfg.extra.items():  # an unknown model, or a keyword its factory does not take: an error
        wrong = unknown_keywords(model, kw)  # before any work (was a TypeError traceback once training began)
        if wrong:
            raise ValueError(f"{where}config field extra, {model}: {wrong}")
    check_channels(cfg.ddfm_prior_channels)
    if cfg.ddfm_prior is not None:
        check_prior_folder(cfg.ddfm_prior)
    for name, allowed in (
        ("schedule", SCHEDULES),
        ("table_style", STYLES),
        ("fusioninn_prior", PRIORS),
        ("fusioninn_mmd", MMD),
    ):
        v = getattr(cfg, name)
        if v not in allowed:
            raise ValueError(f"{where}config field {name} = {v!r}: expected one of {', '.join(allowed)}")


def parse_override(cfg_fields: dict, text: str):
    """Parse ``key=value`` into (key, typed value) using the RunConfig field's type."""
    if "=" not in text:
        raise ValueError(f"--set expects key=value; got {text!r}")
    key, value = text.split("=", 1)
    key = key.strip().replace("-", "_")
    if key not in cfg_fields:
        raise ValueError(f"--set: unknown config field {key!r}; known fields: {', '.join(sorted(cfg_fields))}")
    typ = str(cfg_fields[key].type)
    v = value.strip()
    if v.lower() in ("none", "null") and "None" in typ:
        return key, None
    try:
        if typ.startswith("bool"):
            if v.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError
            return key, v.lower() in ("1", "true", "yes")
        if typ.startswith("int"):
            return key, int(v)
        if typ.startswith("float"):
            return key, float(v)
        if typ.startswith("dict"):  # extra: JSON, {"model": {"keyword": value}}
            return key, json.loads(v)
    except ValueError:
        like = ' (JSON, e.g. {"funfusean": {"guard": true}})' if typ.startswith("dict") else ""
        raise ValueError(f"--set {key}: cannot read {value!r} as {typ}{like}") from None
    return key, v
