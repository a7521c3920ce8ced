"""Remaining-time estimate of a pipeline run ("steps done / total, elapsed and ETA").

Steps differ by orders of magnitude (a toy figure takes seconds, a robust model's evaluation the better part of an
hour), so an average over the steps done so far says little. :class:`StepClock` estimates each remaining step from
the recorded durations of *similar* steps: the same notebook and training method (``train/fs`` seed 1 from seed
0), else the same notebook, else all steps; durations come from the ``.done.json`` of steps finished earlier (on
this clone or committed) and from the steps finished in this run. The sum is divided by the number of parallel jobs.
It is a rough guide: a resumed step is counted as a whole one, and machine load is not modelled.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Iterable

from ..profiles.paths import DONE_FILE


def step_kind(step) -> tuple[str, str | None]:
    """``(notebook stem, training method or None)``: the key under which durations are pooled."""
    return Path(step.notebook).stem, (step.params or {}).get("method")


class StepClock:
    """Durations of finished steps pooled by :func:`step_kind`, and the estimate for the steps still to run.

    Args:
        jobs: parallel workers of the run (>= 1); the remaining total is divided by it.
    """

    def __init__(self, jobs: int = 1):
        self.jobs = max(1, int(jobs))
        self._by_kind: dict[tuple, list[float]] = {}

    def record(self, step, seconds: float) -> None:
        """Add one finished step's duration (seconds >= 0; others are ignored)."""
        if seconds is not None and seconds >= 0:
            self._by_kind.setdefault(step_kind(step), []).append(float(seconds))

    def record_done_files(self, steps: Iterable, root: Path, done_file: str = DONE_FILE) -> None:
        """Add the ``seconds`` recorded in each step's ``done_dir/<done_file>`` (missing or unreadable: skipped)."""
        for s in steps:
            try:
                self.record(s, json.loads((Path(root) / s.done_dir / done_file).read_text()).get("seconds"))
            except (OSError, ValueError, TypeError):
                continue

    def estimate(self, step) -> float | None:
        """Median duration of the most similar finished steps (same kind, else same notebook, else all), or None."""
        kind = step_kind(step)
        for pool in (self._by_kind.get(kind),
                     [t for k, v in self._by_kind.items() if k[0] == kind[0] for t in v],
                     [t for v in self._by_kind.values() for t in v]):
            if pool:
                return statistics.median(pool)
        return None

    def remaining(self, steps: Iterable) -> float | None:
        """Estimated wall seconds for ``steps`` on ``jobs`` workers, or None before any duration is known."""
        est = [self.estimate(s) for s in steps]
        if not est or any(e is None for e in est):
            return None if est else 0.0
        return sum(est) / self.jobs


def format_minutes(seconds: float | None) -> str:
    """``"ETA 42 min"``, ``"ETA 3.1 h"`` or ``""`` when unknown."""
    if seconds is None:
        return ""
    return f"ETA {seconds / 3600:.1f} h" if seconds >= 5400 else f"ETA {seconds / 60:.0f} min"
