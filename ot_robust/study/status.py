"""Where a profile's plan stands (``python -m ot_robust reproduce --status``): a study run in chunks
needs to say, on any clone, what is done, what a stopped chunk left half-way and what is still to run.

Read only from the files a run leaves (nothing is executed): a step is *done* when its ``.done.json`` records its
current hash and its outputs exist (:func:`ot_robust.study.pipeline.is_done`), *committed* when only its weights are
missing (a fresh clone of a committed results folder), *in progress* when a stopped training run left a checkpoint
(epochs from its ``metrics.jsonl``) or a stopped evaluation left finished attack batches in ``partial/``, *stale*
when a ``.done.json`` exists for another hash (the notebook, parameters or package version changed), else *to run*.
The time still needed is :class:`ot_robust.study.eta.StepClock`'s estimate from the durations recorded by similar steps.
"""

from __future__ import annotations

import json
from pathlib import Path

from .eta import StepClock
from .pipeline import DONE_FILE, is_committed, is_done, profile_plans, select_steps
from ..core.run_files import CHECKPOINT_FILE, read_metrics
from ..evaluation.results import PARTIAL_DIR

STATES = ("done", "committed", "in progress", "stale", "to run")


def step_state(step, root: Path) -> tuple[str, str]:
    """``(state, detail)`` of one step of a plan; ``state`` is one of :data:`STATES`, ``detail`` a short note."""
    root = Path(root)
    if is_done(step, root):
        return "done", ""
    if is_committed(step, root):
        return "committed", "weights not on this clone"
    folder = root / step.done_dir
    if (folder / DONE_FILE).is_file():
        return "stale", "recorded for another notebook, parameter set or package version"
    if step.name.startswith("train/") and (folder / CHECKPOINT_FILE).is_file():
        epochs = json.loads(step.params.get("train_params") or "{}").get("epochs")
        done = max((r["epoch"] for r in read_metrics(folder) if isinstance(r.get("epoch"), int)),
                   default=0)
        return "in progress", f"checkpoint after epoch {done}" + (f" of {epochs}" if epochs else "")
    kept = list((folder / PARTIAL_DIR).iterdir()) if (folder / PARTIAL_DIR).is_dir() else []
    if kept:
        return "in progress", f"{len(kept)} finished attack batch file(s) kept"
    return "to run", ""


def status_lines(plan, steps, jobs: int = 1) -> list[str]:
    """Report lines for ``steps`` (a selection of ``plan.steps``): one per step not done, then a summary line with
    the count of each state and the estimated time still needed on ``jobs`` parallel workers."""
    clock = StepClock(jobs)
    clock.record_done_files(plan.steps, plan.root, DONE_FILE)
    counts = dict.fromkeys(STATES, 0)
    left, lines = [], []
    for s in steps:
        state, detail = step_state(s, plan.root)
        counts[state] += 1
        if state in ("in progress", "stale", "to run"):
            left.append(s)
            lines.append(f"  {state:11s} {s.name}" + (f" ({detail})" if detail else ""))
    eta = clock.remaining(left)
    when = "" if not left else (f"; still to run: about {eta / 3600:.1f} h with --jobs {clock.jobs} (durations of "
                                "similar finished steps; a stopped step counted whole)" if eta is not None
                                else "; no finished step to estimate the time from")
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    return [f"[status] {plan.profile.name}: {len(steps)} steps: {summary}{when}"] + lines


def report(profile: str | Path, runs_dir: str | Path | None = None, fig_dir: str | Path = "figures",
           only: str | list[str] | None = None, jobs: int = 1, log=print) -> None:
    """``python -m ot_robust reproduce --status``: log :func:`status_lines` for each plan of ``profile`` (each
    included profile of a meta profile), restricted to the steps ``only`` selects. Runs nothing, writes nothing.

    Raises ProfileError for a bad profile, ValueError when ``only`` matches nothing.
    """
    _, plans, _ = profile_plans(profile, runs_dir=runs_dir, fig_dir=fig_dir, only=only)
    for plan in plans.values():
        for line in status_lines(plan, select_steps(plan, only), jobs):
            log(line)
