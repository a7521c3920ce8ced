"""Per-example correctness masks, stored compactly beside ``eval.json`` (issue 14).

``masks.npz`` holds, for each column of an evaluation (clean, fgsm, pgd20, autoattack, ...), the bit-packed bool
mask "still classified correctly" over the evaluated images, plus ``indices`` (the test-set index of each image,
in evaluation order) and ``n_<column>`` (how many images that column covers: the strong attacks and AutoAttack
cover the first ``n`` of the same order). Two models' masks on the same indices give the paired (McNemar) test.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..core.utils import atomic_write_bytes


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
