"""Fusers: the registry, the shared loss, the classical anchors and the Table 1 baselines."""
from baselines.loss import LossConfig, fusion_loss
from baselines.registry import create_fuser, get_fuser, list_fusers, register_fuser, resolve_models

__all__ = ["LossConfig", "create_fuser", "fusion_loss", "get_fuser", "list_fusers", "register_fuser", "resolve_models"]
