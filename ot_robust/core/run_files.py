"""A training run's folder: the one place its file names are written, and two small readers.

A run folder (``<runs_dir>/<profile>/train/<experiment>/``: :data:`TRAIN_DIR` under a profile's runs, see
:class:`ot_robust.profiles.paths.RunLayout`) is written by :class:`ot_robust.training.trainer.Trainer` and holds:

* :data:`CONFIG_FILE` (``config.json``): ``{"config": every TrainConfig field, "model_spec", "defense", "world_size",
  "device", "amp_active", "amp_dtype", "eval_attack", "dataset": {"name", "exact", "note"}, "provenance"}``, written
  when training starts (and again on resume);
* :data:`METRICS_FILE` (``metrics.jsonl``): one JSON line per finished epoch (``epoch``, ``lr``, train loss and
  accuracy, clean and PGD accuracy on the fixed held-out batch with ``eval_n`` / ``eval_eps``, the defense's logs
  averaged, times, images/s);
* :data:`CHECKPOINT_FILE` (``checkpoint.pt``) after every epoch, the one before kept as
  :data:`PREVIOUS_CHECKPOINT_FILE` (``checkpoint.prev.pt``): self-verifying, resumable bit-identically
  (:mod:`ot_robust.training.checkpoint`);
* :data:`MODEL_FILE` (``model.pt``) at the end (weights + model spec, with a ``model.pt.sha256`` sidecar), which
  :func:`ot_robust.models.loading.load_model` reads back; a folder without it has not finished training;
* :data:`DIVERGED_FILE` (``diverged.json``) instead of ``model.pt`` when training diverged (a non-finite loss or
  model output): ``{"epoch", "batch", "reason", "last_finite_epoch"}`` (:class:`ot_robust.training.trainer.
  TrainingDiverged`); such a run has no model, and its evaluation reports the divergence instead of numbers.

These names live in ``core`` (the lowest layer) rather than in ``training`` because ``models.loading``, which sits
below ``training``, reads ``model.pt`` and ``config.json`` too. An evaluation folder's files are owned by
:mod:`ot_robust.evaluation.results`; every path of a profile is built by :class:`ot_robust.profiles.paths.RunLayout`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .utils import read_jsonl

#: every parameter, model spec, dataset and provenance of a run (JSON)
CONFIG_FILE = "config.json"
#: one JSON line per finished epoch
METRICS_FILE = "metrics.jsonl"
#: the latest checkpoint, and the one before it
CHECKPOINT_FILE = "checkpoint.pt"
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.pt"
#: the trained model (weights + model spec), written when training finishes
MODEL_FILE = "model.pt"
#: where and why training diverged (JSON), written instead of the model
DIVERGED_FILE = "diverged.json"
#: the folder of a profile's runs that holds one run folder per experiment
TRAIN_DIR = "train"


def read_config(run_dir: str | os.PathLike) -> Any:
    """The parsed :data:`CONFIG_FILE` of ``run_dir`` (a dict, as the Trainer writes it), or None when there is none.

    Raises:
        json.JSONDecodeError (a ValueError): the file is not JSON (callers name the file in their own message).
    """
    path = Path(run_dir) / CONFIG_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The per-epoch records of ``run_dir``'s :data:`METRICS_FILE`; ``[]`` when it has none
    (:func:`ot_robust.core.utils.read_jsonl`)."""
    return read_jsonl(Path(run_dir) / METRICS_FILE)


def read_diverged(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The :data:`DIVERGED_FILE` record of ``run_dir`` (``{"epoch", "batch", "reason", "last_finite_epoch"}``), or
    None when its training did not diverge."""
    path = Path(run_dir) / DIVERGED_FILE
    return json.loads(path.read_text()) if path.is_file() else None
