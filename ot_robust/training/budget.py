"""The stop at a time budget, as the Trainer and ``evaluate`` raise it (``python -m ot_robust reproduce --budget``).

A caller passes ``should_stop`` (the pipeline's tasks pass :func:`ot_robust.study.signals.deadline_passed`); when it
answers True a training run stops at its next epoch end with its checkpoint saved, an evaluation after its current
attack batch with the batch kept, raising :class:`BudgetReached`, and the same call made again continues.
"""

from __future__ import annotations


class BudgetReached(RuntimeError):
    """Raised inside a step (the Trainer, at an epoch end) when the pipeline's ``--budget`` deadline has passed;
    the step's checkpoint is saved and the next run of the same command continues from it."""
