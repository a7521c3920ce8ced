"""Atomic, self-verifying checkpoints with a fallback to the previous one, and the RNG state they carry.

Layout in a run directory: ``checkpoint.pt`` (latest) and ``checkpoint.prev.pt`` (the one before). Each file ends
with a trailer ``MAGIC + SHA-256 of the payload``, so it verifies itself. Saving: the latest is renamed to ``prev``
(one atomic rename), then the new file is written atomically (temporary file, fsync, rename,
:func:`ot_robust.core.utils.atomic_write_bytes`). Loading tries ``checkpoint.pt`` then ``checkpoint.prev.pt``: a file is
used if its trailer matches (checkpoints of older versions: their ``.sha256`` sidecar, which a sealed file
outranks; a file with neither cannot be verified and is not used); a truncated, corrupted or half-written file is
skipped with a warning.
Files are read with ``torch.load(weights_only=True)``: tensors and plain Python values only, so a crafted pickle
cannot run code, whatever its sidecar says. The one extension: NumPy's array-rebuilding globals
(:func:`_numpy_array_globals`), because checkpoints of older versions stored the NumPy RNG keys as an ndarray.
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

from ..core.run_files import CHECKPOINT_FILE as LATEST, PREVIOUS_CHECKPOINT_FILE as PREVIOUS
from ..core.utils import atomic_write_bytes

MAGIC = b"\nOT_ROBUST_SHA256:"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _seal(data: bytes) -> bytes:
    """``data`` followed by the trailer ``MAGIC + sha256(data)``: a file that verifies itself."""
    return data + MAGIC + _sha(data).encode()


def _unseal(blob: bytes) -> Optional[bytes]:
    """The payload of a sealed file if its trailer matches (None if not), or ``blob`` itself for a file without
    a trailer (older checkpoints, checked by their sidecar)."""
    n = len(MAGIC) + 64
    if len(blob) >= n and blob[-n:-64] == MAGIC:
        data = blob[:-n]
        return data if _sha(data).encode() == blob[-64:] else None
    return blob


def save_checkpoint(run_dir: str | Path, state: dict) -> Path:
    """Write ``state`` as ``run_dir/checkpoint.pt``; the previous latest becomes ``checkpoint.prev.pt``.

    Crash-safe at every instant: each file carries its own SHA-256 in a trailer (no sidecar to keep in step), the
    rotation is one atomic rename and the new file is written to a temporary name, fsynced and renamed. A kill
    leaves either a valid ``checkpoint.pt`` or (between the two renames) a valid ``checkpoint.prev.pt``.
    """
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    torch.save(state, buf)
    latest = run_dir / LATEST
    side_latest, side_prev = run_dir / (LATEST + ".sha256"), run_dir / (PREVIOUS + ".sha256")
    side_prev.unlink(missing_ok=True)  # a sidecar of an older-version checkpoint would contradict the new prev
    if latest.exists():
        os.replace(latest, run_dir / PREVIOUS)
        if side_latest.exists():  # an older-version checkpoint (no trailer) keeps its sidecar as prev
            os.replace(side_latest, side_prev)
    atomic_write_bytes(latest, _seal(buf.getvalue()))
    return latest


def _numpy_array_globals() -> list:
    """The globals a pickled ``numpy.ndarray`` needs (``_reconstruct``, ``ndarray``, ``dtype`` and the uint32
    dtype class): checkpoints written before the RNG state was stored as tensors hold the NumPy Mersenne-Twister keys
    as an ndarray. They rebuild an array from its bytes and call nothing else, so allowing them keeps the
    weights-only guarantee; any other global is still refused."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _read_valid(path: Path) -> Optional[dict]:
    """The checkpoint at ``path`` if it is intact, else ``None`` (with a warning saying why)."""
    if not path.exists():
        return None
    data = _unseal(path.read_bytes())
    if data is None:
        warnings.warn(f"checkpoint {path} does not match the SHA-256 in its trailer: corrupted or truncated; skipped")
        return None
    side = path.with_name(path.name + ".sha256")
    sealed = data is not None and len(data) < path.stat().st_size
    if not sealed and not side.exists():
        warnings.warn(f"checkpoint {path} has neither a SHA-256 trailer nor a .sha256 sidecar: cannot be verified; "
                      "skipped")
        return None
    if side.exists() and side.read_text().strip() != _sha(data):
        if sealed:  # the trailer verified the file; a sidecar beside it was left by an older checkpoint of that name
            warnings.warn(f"{side} is stale (it belongs to an older checkpoint); {path} verified by its own trailer")
        else:
            warnings.warn(f"checkpoint {path} does not match its SHA-256 ({side.name}): corrupted or half-written; "
                          "skipped")
            return None
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()):  # never runs pickled code
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means an unusable file
        warnings.warn(f"checkpoint {path} cannot be loaded as weights ({type(e).__name__}: "
                      f"{str(e).splitlines()[0][:200] if str(e) else ''}); skipped")
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
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    # plain types and tensors only, so that the checkpoint loads with torch.load(weights_only=True)
    st = {"python": random.getstate(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos),
                                                  int(has_gauss), float(gauss)), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    if loader_generator is not None:
        st["loader"] = loader_generator.get_state()
    return st


def set_rng_state(st: dict[str, Any], loader_generator: Optional[torch.Generator] = None) -> None:
    """Restore :func:`rng_state`."""
    random.setstate(st["python"])
    kind, keys, pos, has_gauss, gauss = st["numpy"]
    keys = keys.numpy().astype(np.uint32) if isinstance(keys, torch.Tensor) else np.asarray(keys, dtype=np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, gauss))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    if loader_generator is not None and "loader" in st:
        loader_generator.set_state(st["loader"])
