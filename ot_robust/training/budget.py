"""The pipeline's time budget as the Trainer sees it (``python -m ot_robust reproduce --budget``).

The pipeline sets ``$OT_ROBUST_DEADLINE`` (unix time) for its steps' kernels; a training step past it stops at its
next epoch end with its checkpoint saved, raising :class:`BudgetReached`, and the same command run again continues.
"""

from __future__ import annotations

import os
import time

DEADLINE_ENV = "OT_ROBUST_DEADLINE"  # unix time after which a training step stops at its next epoch end


class BudgetReached(RuntimeError):
    """Raised inside a step (the Trainer, at an epoch end) when the pipeline's ``--budget`` deadline has passed;
    the step's checkpoint is saved and the next run of the same command continues from it."""


def deadline_passed() -> bool:
    """True if a pipeline budget is set (``$OT_ROBUST_DEADLINE``) and its deadline has passed."""
    v = os.environ.get(DEADLINE_ENV)
    return bool(v) and time.time() > float(v)
