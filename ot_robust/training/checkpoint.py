"""Atomic, self-verifying checkpoints with a fallback to the previous one, and the RNG state they carry.

Layout in a run directory: ``checkpoint.pt`` (latest) and ``checkpoint.prev.pt`` (the one before), each with a
sidecar ``<file>.sha256`` holding the SHA-256 of the file's bytes. Saving: the latest pair is renamed to ``prev``,
then the new file and its hash are written atomically (temporary file + rename, :func:`ot_robust.utils.atomic_write_bytes`).
Loading tries ``checkpoint.pt`` then ``checkpoint.prev.pt``: a file is used if its hash matches (or, without a
sidecar, if ``torch.load`` succeeds); a truncated, corrupted or half-written file is skipped with a warning.
"""
from __future__ import annotations

import hashlib
import io
import os
import random
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..utils import atomic_write_bytes

LATEST, PREVIOUS = "checkpoint.pt", "checkpoint.prev.pt"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_checkpoint(run_dir: str | Path, state: dict) -> Path:
    """Write ``state`` as ``run_dir/checkpoint.pt`` atomically; the previous latest becomes ``checkpoint.prev.pt``."""
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    latest = run_dir / LATEST
    if latest.exists():
        os.replace(latest, run_dir / PREVIOUS)
        side = run_dir / (LATEST + ".sha256")
        if side.exists():
            os.replace(side, run_dir / (PREVIOUS + ".sha256"))
        else:
            (run_dir / (PREVIOUS + ".sha256")).unlink(missing_ok=True)
    atomic_write_bytes(latest, data)
    atomic_write_bytes(run_dir / (LATEST + ".sha256"), (_sha(data) + "\n").encode())
    return latest


def _read_valid(path: Path) -> Optional[dict]:
    """The checkpoint at ``path`` if it is intact, else ``None`` (with a warning saying why)."""
    if not path.exists():
        return None
    data = path.read_bytes()
    side = path.with_name(path.name + ".sha256")
    if side.exists() and side.read_text().strip() != _sha(data):
        warnings.warn(f"checkpoint {path} does not match its SHA-256 ({side.name}): corrupted or half-written; skipped")
        return None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means an unusable file
        warnings.warn(f"checkpoint {path} cannot be loaded ({type(e).__name__}: {e}); skipped")
        return None
    if not isinstance(state, dict) or "epoch" not in state:
        warnings.warn(f"checkpoint {path} has no 'epoch' entry; skipped")
        return None
    return state


def load_latest(run_dir: str | Path) -> tuple[Optional[dict], Optional[Path]]:
    """``(state, path)`` of the newest intact checkpoint in ``run_dir`` (latest, else previous), or ``(None, None)``."""
    for name in (LATEST, PREVIOUS):
        path = Path(run_dir) / name
        state = _read_valid(path)
        if state is not None:
            return state, path
    return None, None


def rng_state(loader_generator: Optional[torch.Generator] = None) -> dict[str, Any]:
    """Python, NumPy, torch CPU (and every CUDA device) RNG states, plus the DataLoader generator's state."""
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    if loader_generator is not None:
        st["loader"] = loader_generator.get_state()
    return st


def set_rng_state(st: dict[str, Any], loader_generator: Optional[torch.Generator] = None) -> None:
    """Restore :func:`rng_state`."""
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    if loader_generator is not None and "loader" in st:
        loader_generator.set_state(st["loader"])
