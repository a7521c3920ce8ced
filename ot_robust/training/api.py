"""Training, the public face: ``train(config, run_dir)``, :func:`load_model`, and ``python -m ot_robust train``.

``train`` runs the :class:`~ot_robust.training.trainer.Trainer` (one loop for every method: the defense supplies the
loss; checkpoints, resume, metrics, DDP) and writes into ``run_dir``: ``config.json`` (every parameter, model spec,
dataset, provenance), ``checkpoint.pt`` every epoch (atomic, resumable bit-identically), ``metrics.jsonl`` (one line
per epoch) and ``model.pt`` at the end, which :func:`load_model` reads back. See :mod:`ot_robust.training.trainer`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Optional

from ..models.loading import load_model
from .config import TrainConfig
from .trainer import Trainer, backward, subset_indices

__all__ = ["TrainConfig", "Trainer", "train", "load_model", "cli", "backward", "subset_indices",
           "check_run_dir"]


def train(config: TrainConfig | dict, run_dir: str | Path, resume: bool = True,
          should_stop: Callable[[], bool] | None = None, progress_lines: bool = False) -> Path:
    """Train per ``config`` (a :class:`TrainConfig` or a dict for :meth:`TrainConfig.from_dict`) into ``run_dir``.

    With ``resume`` an existing run continues from its newest intact checkpoint (a finished run returns at once).
    ``should_stop``: asked at each epoch end before the last (the checkpoint saved); True raises
    :class:`~ot_robust.training.budget.BudgetReached`, and the same call made again continues (the pipeline's
    ``--budget`` passes :func:`~ot_robust.study.signals.deadline_passed`). ``progress_lines``: write a progress line
    every two minutes and one per finished epoch to the real stderr (the pipeline's console; :class:`ProgressLog`).
    Under ``torchrun`` (WORLD_SIZE > 1) every process calls this; rank 0 writes the files.
    Returns the path of ``model.pt``. Raises ValueError for a bad configuration, or a ``run_dir`` that is (or lies
    under) an existing file, before any training.
    """
    check_run_dir(run_dir)
    cfg = TrainConfig.from_dict(config) if isinstance(config, dict) else config
    trainer = Trainer(cfg, run_dir)
    try:
        return trainer.fit(resume=resume, should_stop=should_stop, progress_lines=progress_lines)
    finally:
        trainer.dist.close()


def check_run_dir(run_dir: str | Path) -> Path:
    """``Path(run_dir)`` if it is a folder or can be made one; ValueError naming it when it, or a folder above it,
    is an existing file (``--run-dir`` takes a folder: new, or a run to resume)."""
    path = Path(run_dir)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            what = "is an existing file" if p == path else f"lies under {str(p)!r}, an existing file"
            raise ValueError(f"run_dir (--run-dir) {str(path)!r} {what}; give a folder (a new one, or a run to "
                             "resume)")
        if p.is_dir():
            break
    return path


def cli(argv: Optional[list[str]] = None) -> int:
    """``python -m ot_robust train --config cfg.json|yaml --run-dir DIR [--set key=value ...] [--no-resume]``."""
    p = argparse.ArgumentParser(prog="python -m ot_robust train", description=cli.__doc__)
    p.add_argument("--config", help="JSON or YAML file of TrainConfig fields (optional with --preset/--set)")
    p.add_argument("--preset", help="named paper configuration (`python -m ot_robust presets` lists them)")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set lr=0.01 --set method_params.eps=8/255")
    p.add_argument("--no-resume", action="store_true", help="start over even if run-dir has a checkpoint")
    argv = list(argv) if argv is not None else None
    if argv and argv[0] == "train":
        argv = argv[1:]
    a = p.parse_args(argv)
    check_run_dir(a.run_dir)  # before the configuration is read or any data loaded
    from .config import apply_overrides

    if a.config:
        cfg = TrainConfig.from_file(a.config, a.overrides + ([f"preset={a.preset}"] if a.preset else []))
    else:
        cfg = TrainConfig.from_dict(apply_overrides({"preset": a.preset} if a.preset else {}, a.overrides))
    path = train(cfg, a.run_dir, resume=not a.no_resume)
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(cli())
