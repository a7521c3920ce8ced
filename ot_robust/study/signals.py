"""The two signals the pipeline hands a step's Jupyter kernel through its environment, the only channel into that
separate process: the ``--budget`` deadline and the progress switch.

``python -m ot_robust reproduce`` sets ``$OT_ROBUST_DEADLINE`` (unix time, with ``--budget``) and
``$OT_ROBUST_PROGRESS=1`` for its steps. Only the study's tasks read them, here, and pass them down as arguments:
``should_stop=deadline_passed`` to ``train`` / ``evaluate`` (a training step stops at its next epoch end with its
checkpoint saved, an evaluation after its current batch, raising
:class:`~ot_robust.training.budget.BudgetReached`; the same command run again continues) and
``progress_lines=progress_requested()`` / ``ProgressLog(on=...)`` for the lines a long step writes to the pipeline's
console. The library itself never reads the environment for them.
"""

from __future__ import annotations

import os
import time

DEADLINE_ENV = "OT_ROBUST_DEADLINE"  # unix time after which a step stops (training: at its next epoch end)
PROGRESS_ENV = "OT_ROBUST_PROGRESS"  # "1" under the pipeline: long steps write progress lines to its console log


def deadline_passed() -> bool:
    """True if a pipeline budget is set (``$OT_ROBUST_DEADLINE``) and its deadline has passed."""
    v = os.environ.get(DEADLINE_ENV)
    return bool(v) and time.time() > float(v)


def progress_requested() -> bool:
    """True under the pipeline (``$OT_ROBUST_PROGRESS=1``): a step writes progress lines to its console."""
    return os.environ.get(PROGRESS_ENV) == "1"
