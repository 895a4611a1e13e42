"""Run configuration: one dataclass of defaults, three named profiles, command-line overrides.

Profiles (every field can be overridden, e.g. ``--epochs 3`` or ``--set width=0.5``):

* ``smoke``: seconds; for tests. 16 train / 8 validation phantom pairs, 1 epoch, nets at 1/8 width.
* ``quick``: the README default; about 15 minutes for every model on a 2-core CPU, where training
  runs at 0.6-3.5 images/s (README, "Speed"). 32 train / 24 validation pairs, 2 epochs, batch at
  most 8, the 27-37M-parameter nets (UNet, UNet++, UNet3+) at 1/4 width, DDFM with a small prior
  (2 epochs) and 10 sampling steps instead of 100. What it shrinks is written into config.json
  and the leaderboard caption.
* ``paper``: SPEC §2: all the data, 400 epochs, the models' own batch sizes, full width.
"""
from __future__ import annotations

import dataclasses
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
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    metric_profile: str = "upstream"
    metrics: str = "all"
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
    num_workers: int = 0
    extra: dict = field(default_factory=dict)

    def shrinks(self, models=None) -> list[str]:
        """Human-readable list of what this config shrinks relative to the paper setting
        (only what applies to ``models`` when given)."""
        from baselines.registry import get_fuser

        models = list(models) if models is not None else None
        trains = models is None or any(get_fuser(m).trainable or m == "ddfm" for m in models)
        out = []
        if trains and self.epochs < 400:
            out.append(f"{self.epochs} epochs (paper 400)")
        if trains and self.n_train is not None:
            out.append(f"{self.n_train} training pairs")
        if self.width != 1.0 and (models is None or {"unet", "unet++", "unet3+"} & set(models)):
            out.append(f"UNet/UNet++/UNet3+ at width x{self.width:g}")
        if trains and self.max_batch is not None:
            out.append(f"batch <= {self.max_batch} (paper 64, FunFuseAn 8)")
        if self.ddfm_prior is None and (models is None or "ddfm" in models):
            out.append(f"DDFM prior trained here (channels {self.ddfm_prior_channels}, {self.ddfm_prior_epochs} epochs), not the ImageNet prior")
        if self.ddfm_steps != 100 and (models is None or "ddfm" in models):
            out.append(f"DDFM {self.ddfm_steps} sampling steps (paper 100)")
        return out


PROFILES: dict[str, dict] = {
    "smoke": dict(n_train=16, n_val=8, epochs=1, max_batch=8, width=0.125, ddfm_steps=10, ddfm_prior_epochs=1, ddfm_prior_channels="16,16,32", phantom_train=16, phantom_val=8, n_show=2, decomposition_draws=2),
    "quick": dict(n_train=32, n_val=24, epochs=2, max_batch=8, width=0.25, ddfm_steps=10, ddfm_prior_epochs=2, ddfm_prior_channels="16,16,32", phantom_train=32, phantom_val=24),
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
    return RunConfig(**{**PROFILES[profile], "profile": profile, **overrides})


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
    except ValueError:
        raise ValueError(f"--set {key}: cannot read {value!r} as {typ}") from None
    return key, v
