"""Resumable evaluation: per-batch attack outcomes kept on disk, so that a killed evaluation goes on where it stopped.

:func:`ot_robust.evaluation.suite.evaluate` with ``cache_dir=...`` writes one small file per finished (attack, run,
batch): the batch's per-example robust mask and the seconds it took. A later call with the same model weights, attack,
seed, images and package version reads it back instead of attacking again. The key covers everything the outcome depends
on (the attack's full ``repr`` with its per-batch seed, a SHA-256 of the batch's images and labels, of the model's
parameters and buffers, and the package version), so a changed model or setting can never pick up a stale result.
Every attack of the suite is deterministic given its seed, so a resumed evaluation equals an uninterrupted one
(tested). A robust model's AutoAttack on 1,000 images takes about 100 CPU-minutes here; this is what lets the study
run in chunks without losing a half-finished evaluation.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 (hex) of the tensors' dtypes, shapes and bytes, in order."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_digest(model: nn.Module) -> str:
    """SHA-256 (hex) of ``model``'s state dict (names, dtypes, shapes, values) in name order."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor_digest(t).encode())
    return h.hexdigest()


class BatchCache:
    """Per-batch robust masks under ``directory`` (created on first write).

    ``key(...)`` names one outcome; ``get(key)`` returns ``(mask (B,) bool tensor, seconds)`` or None;
    ``put(key, mask, seconds)`` writes it atomically (a kill mid-write leaves no partial file);
    :func:`clear` removes the folder.
    """

    def __init__(self, directory: str | Path, model: nn.Module):
        from .. import __version__

        self.dir = Path(directory)
        self._base = f"{__version__}|{model_digest(model)}"

    def key(self, attack_repr: str, x: torch.Tensor, y: torch.Tensor) -> str:
        """Key of the outcome of the attack (``repr`` including its seed) on images ``x`` with labels ``y``."""
        h = hashlib.sha256(f"{self._base}|{attack_repr}|{tensor_digest(x, y)}".encode())
        return h.hexdigest()[:32]

    def get(self, key: str) -> tuple[torch.Tensor, float] | None:
        p = self.dir / f"{key}.json"
        if not p.exists():
            return None
        rec = json.loads(p.read_text())
        return torch.tensor([c == "1" for c in rec["mask"]], dtype=torch.bool), float(rec["seconds"])

    def put(self, key: str, mask: torch.Tensor, seconds: float) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"mask": "".join("1" if b else "0" for b in mask.tolist()), "seconds": round(seconds, 3)})
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, self.dir / f"{key}.json")


def clear(directory: str | Path) -> None:
    """Remove a cache folder's outcomes and the folder (after the evaluation's results are written)."""
    d = Path(directory)
    if d.is_dir():
        for p in list(d.glob("*.json")) + list(d.glob(".tmp-*")):
            p.unlink()
        try:
            d.rmdir()
        except OSError:  # something else lives there: leave it
            pass
