"""Loading trained models: this project's run folders, your own model factory, and plain / RobustBench checkpoints.

* :func:`load_model` - a run of :func:`ot_robust.training.api.train` (``model.pt`` with its model spec and SHA-256
  sidecar).
* :func:`load_user_model` - ``"pkg.module:factory"`` plus an optional checkpoint (``evaluate --model``).
* :func:`load_checkpoint` - a ``state_dict`` file in any of the usual nestings into a given model (RobustBench's).

Every file is read with ``torch.load(weights_only=True)``: tensors and plain values only, a crafted pickle cannot run
code.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..core.run_files import CHECKPOINT_FILE, CONFIG_FILE, MODEL_FILE, read_config
from ..core.utils import get_device
from . import get_model


def load_model(run_dir: str | Path, device: Optional[str | torch.device] = None,
               channels_last: Optional[bool] = None) -> torch.nn.Module:
    """Rebuild the trained model of a run (``run_dir/model.pt``, or a ``model.pt`` path) in eval mode on ``device``.

    ``channels_last``: the weights' memory layout (NHWC when True); None (default) keeps the layout the run was
    trained in (``config.channels_last`` of the ``config.json`` beside ``model.pt``; contiguous NCHW when there is
    none). The layout only changes which float32 conv kernels run (same arithmetic up to round-off): measured on the
    study's PGD-AT model (Fashion-MNIST, eps 0.1, 1 thread), PGD-20 on 1,000 images 1.46x and AutoAttack standard
    on 100 images 1.15x faster in NHWC, with the same robust/not-robust outcome on every image
    (``tests/test_channels_last_eval.py`` checks the agreement on every run).

    The file is read with ``torch.load(weights_only=True)`` (tensors and plain values only: a crafted pickle cannot
    run code) and checked against its ``model.pt.sha256`` sidecar when there is one.

    Raises:
        FileNotFoundError: there is no ``model.pt`` (training not finished).
        ValueError: the file does not match its SHA-256 sidecar, is truncated or corrupted, holds anything but
            tensors and plain values, or is not an ``ot_robust.model`` file (the message names the file).
    """
    import hashlib
    import io


    path = Path(run_dir)
    path = path / MODEL_FILE if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the run has not finished ({CHECKPOINT_FILE} holds partial "
                                "training)")
    data = path.read_bytes()
    side = path.with_name(path.name + ".sha256")
    if side.exists() and side.read_text().strip() != hashlib.sha256(data).hexdigest():
        raise ValueError(f"{path} does not match its SHA-256 ({side.name}): the file is corrupted or was altered")
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling errors come in many types
        raise ValueError(f"{path} cannot be loaded as weights ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                         "a model file holds tensors and plain values only") from None
    if not isinstance(blob, dict) or "spec" not in blob or "state_dict" not in blob:
        raise ValueError(f"{path} is not an ot_robust model file (expected a dict with 'spec' and 'state_dict')")
    spec = blob["spec"]
    model = get_model(spec["name"], spec["dataset"], num_classes=spec["num_classes"], **spec["params"])
    model.load_state_dict(blob["state_dict"])
    if channels_last is None:
        channels_last = _trained_channels_last(path.parent)
    model = model.to(get_device(device))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.eval()


def _trained_channels_last(run_dir: Path) -> bool:
    """``channels_last`` of a run's ``config.json`` (False when the file or the key is missing)."""
    import json

    try:
        rec = read_config(run_dir)
        return False if rec is None else bool(rec.get("config", {}).get("channels_last", False))
    except (json.JSONDecodeError, AttributeError) as e:
        raise ValueError(f"{run_dir / CONFIG_FILE} is not a run configuration (JSON object expected): {e}") from None


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a RobustBench-style checkpoint into ``model`` (in place; returned in eval mode).

    Accepts a plain ``state_dict`` or one nested under ``state_dict`` / ``model_state_dict`` / ``model``, with or
    without DataParallel's ``module.`` prefix (as RobustBench's loader does). Read with ``weights_only=True``: a
    crafted pickle cannot run code.

    Raises:
        ValueError: the file cannot be read as weights, holds no state dict, or does not fit the model (the
            message names the file and the first mismatch).
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling errors come in many types
        raise ValueError(f"{path}: cannot be read as weights ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(blob, dict) and isinstance(blob.get(key), dict):
            blob = blob[key]
            break
    if not isinstance(blob, dict) or not blob or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise ValueError(f"{path}: no state dict found (expected tensors, or a dict holding them under "
                         "'state_dict', 'model_state_dict' or 'model')")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in blob.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path} does not fit {type(model).__name__}: {str(e).splitlines()[0]}") from None
    return model.eval()


def load_user_model(factory: str, checkpoint: str | None = None) -> nn.Module:
    """Your own model for :func:`evaluate`: ``"pkg.module:factory"`` is imported and called with no arguments; its
    result must be an ``nn.Module`` mapping ``(B, C, H, W)`` images in [0, 1] to logits ``(B, K)`` (put any input
    normalization inside the model). ``checkpoint``: a ``state_dict`` file read by :func:`load_checkpoint`
    (nested under ``state_dict`` / ``model_state_dict`` / ``model``, ``module.`` prefixes removed, weights only).
    Returned in eval mode.

    Raises ValueError for a malformed factory string, an import or attribute error, a factory that returns no
    module, or a checkpoint that is not weights-only or does not fit the model.
    """
    mod_name, _, attr = factory.partition(":")
    if not mod_name or not attr:
        raise ValueError(f"--model {factory!r}: expected 'pkg.module:factory' (a callable returning an nn.Module)")
    try:
        fn = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"--model {factory!r}: {type(e).__name__}: {e}") from None
    model = fn()
    if not isinstance(model, nn.Module):
        raise ValueError(f"--model {factory!r} returned {type(model).__name__}, not a torch.nn.Module")
    if checkpoint:
        load_checkpoint(model, checkpoint)
    return model.eval()
