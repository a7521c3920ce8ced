"""Small shared helpers: device choice, seeding, provenance, atomic writes."""

from __future__ import annotations

import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_ROOT.parent


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device`` as a :class:`torch.device`; ``None`` or ``"auto"`` picks ``cuda`` when available, else ``cpu``.

    Raises:
        ValueError: if ``device`` names CUDA but no CUDA device is available.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); with ``deterministic`` also ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def git_commit(short: bool = False) -> str | None:
    """The git commit of the checkout this package lives in (``None`` outside a git checkout); ``+dirty`` if
    modified."""
    try:
        args = ["git", "-C", str(REPO_ROOT), "rev-parse"] + (["--short"] if short else []) + ["HEAD"]
        sha = subprocess.run(args, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        # outputs the pipeline writes into the checkout (figures/, results/) do not make the code dirty
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":!figures", ":!results"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    """Versions of the packages whose behaviour changes numbers: python, torch, torchvision, numpy, pot,
    torchattacks."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "numpy", "pot", "torchattacks", "scikit-learn"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def provenance(**extra: Any) -> dict[str, Any]:
    """A provenance record: git commit, package versions, host, torch threads, plus ``extra`` fields."""
    rec = {
        "git_commit": git_commit(),
        "versions": package_versions(),
        "host": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                 "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()},
    }
    rec.update(extra)
    return rec


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (``metrics.jsonl``), blank lines skipped; ``[]`` when the file is missing."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> bytes:
    """``torch.save`` to ``path`` atomically (temporary file in the same folder, then rename); returns the bytes."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())
    return buf.getvalue()


def all_reduce_mean_(tensors: list[torch.Tensor]) -> None:
    """Average ``tensors`` in place over the processes of ``torch.distributed`` (one flattened all-reduce); nothing
    when it is not initialized (a single process). Used for the model's gradients (the Trainer) and for GOT's
    Kantorovich potential."""
    import torch.distributed as dist

    if not tensors or not (dist.is_available() and dist.is_initialized()):
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat.div_(dist.get_world_size())
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def derive_seed(base: int, *parts: int) -> int:
    """A seed in [0, 2**31 - 1) derived from ``base`` and integer ``parts`` (e.g. attack index, batch index): the
    evaluation's per-batch seeds, so that every random choice of an evaluation follows from its one seed."""
    s = base
    for p in parts:
        s = (s * 1_000_003 + p + 1) % (2**31 - 1)
    return s


def parse_number(text: str | float | int) -> float:
    """Parse ``"8/255"``, ``"0.3"`` or a number into a float. Raises ValueError naming the bad text."""
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip()
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            return float(num) / float(den)
        return float(s)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"cannot parse {text!r} as a number (allowed: a float like 0.03 or a fraction like "
                         "8/255)") from None


def tqdm_class():
    """tqdm's bar class: the notebook widget where ipywidgets is installed, else the text bar. (``tqdm.auto`` in a
    Jupyter kernel without ipywidgets warns "IProgress not found" at import, in every executed notebook.)
    ``$TQDM_DISABLE=1`` turns every bar off, even one created with ``disable=False`` (used for the notebooks
    committed with outputs, ``scripts/execute_notebooks.py``). In a Jupyter kernel without ipywidgets the text bar
    writes to stdout, not stderr: a finished bar (``leave=False``) then leaves nothing visible instead of an empty
    pink stderr box in JupyterLab."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        from tqdm.std import tqdm
        if "ipykernel" in sys.modules:
            tqdm = _to_stdout(tqdm)
    else:
        from tqdm.auto import tqdm
    if os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes"):
        return _silenced(tqdm)
    return tqdm


def _to_stdout(cls):
    class ToStdout(cls):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("file", sys.stdout)
            super().__init__(*args, **kwargs)

    return ToStdout


def _silenced(cls):
    class Silent(cls):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent



class ProgressLog:
    """Progress lines of a long step for the pipeline's console log.

    With ``on`` (the pipeline's steps: :func:`ot_robust.study.signals.progress_requested`) each call writes
    ``"<prefix> <message>"`` to the process's real stderr, which the step's Jupyter kernel shares with the pipeline,
    at most once per ``every_s`` seconds unless ``force=True``; off (JupyterLab, tests, the default) it does nothing,
    and the notebook shows its own bars.
    """

    def __init__(self, prefix: str, every_s: float = 60.0, on: bool = False):
        self.prefix, self.every_s = prefix, every_s
        self.on = bool(on)
        self._last = -math.inf
        self.t0 = time.time()

    def __call__(self, message: str, force: bool = False) -> None:
        now = time.time()
        if not self.on or (not force and now - self._last < self.every_s):
            return
        self._last = now
        stream = sys.__stderr__ or sys.stderr
        print(f"{self.prefix} {message} ({(now - self.t0) / 60:.1f} min)", file=stream, flush=True)
