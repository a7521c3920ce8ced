"""Internals of the Trainer (:mod:`ot_robust.training.api` is the public entry): config, checkpoints, distributed
helpers."""
from .checkpoint import load_latest, save_checkpoint
from .config import TrainConfig, apply_overrides
from .distributed import DistInfo, init_distributed

__all__ = ["TrainConfig", "apply_overrides", "save_checkpoint", "load_latest", "DistInfo",
           "init_distributed"]
