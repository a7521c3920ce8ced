"""The attack protocol: what :func:`ot_robust.evaluation.suite.evaluate` and the sanity checks may ask of an attack.

Every attack is a callable ``attack(model, x, y) -> x_adv`` (images ``(B, C, H, W)`` in [0, 1]) with two optional
attributes, ``eps`` (the budget on the [0, 1] pixel scale; ``None`` or ``inf`` = unbounded) and ``norm``
(``"linf"`` | ``"l2"``), which the evaluation uses to verify the output stays in the ball. Anything else is asked
through three named methods, which the project's attacks get from :class:`AttackProtocol` (a user's plain callable
needs none of them; the functions below give it the neutral answer):

* ``with_default_seed(seed)``: the attack with ``seed`` where its own seed is ``None`` (evaluation seeds each
  batch so that equal seeds give equal numbers); an attack with a fixed seed, or none, returns itself.
* ``restart_runs(seeds)``: a restart study as separate one-restart runs (FS Table 1's "min over R runs" row
  reports each run's accuracy); the PGD family splits ``restarts=R`` into R runs seeded from ``seeds``; attacks
  whose restarts are internal (torchattacks APGD, ...) return ``[self]``.
* ``fast_path()``: the attack for code that reads only *whether* each example is fooled (the PGD family stops
  iterating on fooled examples: the same per-example outcome, fewer steps); others return themselves.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence


class AttackProtocol:
    """Mixin with the neutral protocol answers; dataclass attacks with a ``seed`` field get ``with_default_seed``."""

    def with_default_seed(self, seed: int):
        """A copy with ``seed`` if this attack's ``seed`` is ``None``; else ``self``."""
        if getattr(self, "seed", 0) is None and dataclasses.is_dataclass(self):
            return dataclasses.replace(self, seed=seed)
        return self

    def restart_runs(self, seeds: Callable[[int], int]) -> list:
        """The runs of a restart study; ``seeds(j)`` is run j's seed. Default: one run, ``[self]``."""
        return [self]

    def fast_path(self):
        """This attack as used when only the per-example fooled / not-fooled outcome is read. Default: ``self``."""
        return self


def with_default_seed(attack, seed: int):
    """``attack.with_default_seed(seed)``, or ``attack`` itself for a callable without the protocol."""
    method = getattr(attack, "with_default_seed", None)
    return method(seed) if method is not None else attack


def restart_runs(attack, seeds: Callable[[int], int]) -> Sequence:
    """``attack.restart_runs(seeds)``, or ``[attack]`` for a callable without the protocol."""
    method = getattr(attack, "restart_runs", None)
    return method(seeds) if method is not None else [attack]


def fast_path(attack):
    """``attack`` with the evaluation fast path on (``attack.fast_path()``; a callable without the protocol is
    returned unchanged). For code that reads only whether each example is fooled (accuracy), never for code that
    uses the examples."""
    method = getattr(attack, "fast_path", None)
    return method() if method is not None else attack
