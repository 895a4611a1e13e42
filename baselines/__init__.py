"""Fusers: the registry, the shared loss, the classical anchors and the Table 1 baselines.

``create_fuser(name, **kw)`` builds one, ``list_fusers()`` lists them (built-ins and plugins), and
``load_fuser(run_dir, name)`` returns a trained one from a run folder, in eval mode.
"""

from baselines.loading import load_fuser
from baselines.loss import LossConfig, fusion_loss
from baselines.registry import create_fuser, get_fuser, list_fusers, register_fuser, resolve_models

__all__ = [
    "LossConfig",
    "create_fuser",
    "fusion_loss",
    "get_fuser",
    "list_fusers",
    "load_fuser",
    "register_fuser",
    "resolve_models",
]
