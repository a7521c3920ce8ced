"""Loading a zoo model by name (through :func:`ot_robust.models.loading.load_model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from ..models.loading import load_model
from .catalog import resolve, weights_missing


def load(name: str, device: Optional[str | torch.device] = None,
         results_dir: str | Path | None = None) -> torch.nn.Module:
    """The zoo model ``name`` (e.g. ``"fashion-mnist/pgd_at"``, scheme in :mod:`ot_robust.zoo`) in eval mode on
    ``device`` (default: :func:`ot_robust.core.utils.get_device`), mapping ``(B, C, H, W)`` images in [0, 1] to
    logits ``(B, K)``. ``results_dir``: the folder of ``<profile>/train/<experiment>/`` (default
    :func:`ot_robust.zoo.catalog.results_root`: ``$OT_ROBUST_RESULTS``, else the checkout's ``results/``). The model
    is loaded whatever its leaderboard ``status``; :func:`list_models` tells whether a
    current evaluation stands for it.

    Raises:
        ValueError: unknown name (one line naming it and its close matches); ``model.pt`` does not match its
            SHA-256 sidecar or is not a model file (:func:`ot_robust.models.loading.load_model`).
        FileNotFoundError: the weights are not in this checkout (no ``model.pt``, or a Git LFS pointer).
    """
    run = resolve(name, results_dir)
    why = weights_missing(run.run_dir)
    if why:
        raise FileNotFoundError(f"zoo model {name!r} has no weights here: {why}")
    return load_model(run.run_dir, device=device)
