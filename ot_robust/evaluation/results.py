"""An evaluation's files: the one reader and writer of ``eval.json`` (the accuracies, intervals, sanity report and
provenance of one model's evaluation) and ``masks.npz`` (its per-example correctness masks).

An evaluation folder (``<runs_dir>/<profile>/eval/<experiment>/``) holds :data:`EVAL_FILE` and :data:`MASKS_FILE`;
:func:`write_evaluation` writes both (masks first, so an ``eval.json`` never points at missing masks),
:func:`read_eval` / :func:`read_evals` / :func:`read_masks` read them.

``masks.npz`` holds, for each column of an evaluation (clean, fgsm, pgd20, autoattack, ...), the bit-packed bool
mask "still classified correctly" over the evaluated images, plus ``indices`` (the test-set index of each image,
in evaluation order) and ``n_<column>`` (how many images that column covers: the strong attacks and AutoAttack
cover the first ``n`` of the same order). Two models' masks on the same indices give the paired (McNemar) test.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.utils import atomic_write_bytes, atomic_write_json

#: an evaluation's summary (JSON) and its per-example masks (npz), in the evaluation folder
EVAL_FILE = "eval.json"
MASKS_FILE = "masks.npz"


def write_evaluation(eval_dir: str | Path, result: dict[str, Any], masks: Mapping[str, Sequence[bool]],
                     indices: Sequence[int]) -> dict[str, Any]:
    """Write ``masks`` / ``indices`` to ``<eval_dir>/masks.npz``, then ``result`` (with ``"masks"`` naming that file)
    to ``<eval_dir>/eval.json``, both atomically. Returns the dict written to ``eval.json``. Raises ValueError as
    :func:`save_masks`."""
    eval_dir = Path(eval_dir)
    save_masks(eval_dir / MASKS_FILE, masks, indices)
    result = {**result, "masks": MASKS_FILE}
    atomic_write_json(eval_dir / EVAL_FILE, result)
    return result


def has_eval(eval_dir: str | Path, masks: bool = False) -> bool:
    """Whether ``eval_dir`` holds a finished evaluation (and, with ``masks``, its masks too)."""
    eval_dir = Path(eval_dir)
    return (eval_dir / EVAL_FILE).is_file() and (not masks or (eval_dir / MASKS_FILE).is_file())


def read_eval(eval_dir: str | Path) -> dict[str, Any]:
    """The ``eval.json`` of ``eval_dir`` as a dict. Raises FileNotFoundError when there is none."""
    return json.loads((Path(eval_dir) / EVAL_FILE).read_text())


def read_evals(runs_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{experiment: eval.json content}`` for every ``<runs_dir>/eval/<experiment>/eval.json``, by name."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(Path(runs_dir).glob(f"eval/*/{EVAL_FILE}"))}


def read_masks(eval_dir: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``({column: (n_col,) bool}, indices (n,) int)`` of the evaluation in ``eval_dir`` (:func:`load_masks`)."""
    return load_masks(Path(eval_dir) / MASKS_FILE)


def save_masks(path: str | Path, masks: Mapping[str, Sequence[bool]], indices: Sequence[int]) -> Path:
    """Write ``masks`` ({column: (n_col,) bool, n_col <= len(indices)}) and ``indices`` to ``path`` (npz)
    atomically. Raises ValueError for a mask longer than ``indices`` or a column name with '/'."""
    arrays = {"indices": np.asarray(indices, dtype=np.int32)}
    for k, m in masks.items():
        m = np.asarray(m, dtype=bool)
        if "/" in k or k.startswith("n_") or k == "indices":
            raise ValueError(f"mask name {k!r} not allowed (no '/', not 'indices', not starting with 'n_')")
        if m.ndim != 1 or m.size > len(indices):
            raise ValueError(f"mask {k!r} has shape {m.shape}; expected (n,) with n <= {len(indices)} images")
        arrays[k] = np.packbits(m)
        arrays[f"n_{k}"] = np.asarray(m.size, dtype=np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_masks(path: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``({column: (n_col,) bool}, indices (n,) int)`` from a file written by :func:`save_masks`.

    Raises FileNotFoundError if missing, ValueError if it is not a masks file."""
    with np.load(path, allow_pickle=False) as z:
        if "indices" not in z.files:
            raise ValueError(f"{path} is not a masks file (no 'indices' array)")
        indices = z["indices"]
        out = {k: np.unpackbits(z[k])[: int(z[f"n_{k}"])].astype(bool) for k in z.files
               if k != "indices" and not k.startswith("n_")}
    return out, indices
