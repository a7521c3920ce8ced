"""White-box attacks as thin settings over the one loop :func:`~ot_robust.attacks.loop.perturb`.

* :class:`PGD` - Madry et al. (2018), FS paper Eq. (2): random start, K signed-gradient (Linf) or normalized-gradient
  (L2) steps, R restarts keeping the per-example worst case (FS rebuttal Sec. 2: "min over 5 random restarts").
* :class:`FGSM` - Goodfellow et al. (2015): one step of size eps from the clean point.
* :class:`CW` - "CW-k" of the FS paper (Sec. 5.1 and Table 1): the Carlini & Wagner margin loss inside PGD.
* :class:`MIM` - momentum iterative method, Dong et al. (2018), Alg. 1.

Every attack is a dataclass: ``attack(model, x, y) -> x_adv`` with ``x`` ``(B, C, H, W)`` in [0, 1]; eps and step sizes
are on the [0, 1] pixel scale. ``targeted`` is ``False``, ``True`` (pass ``y_target=`` to the call) or ``"random"``
(target uniform among the B wrong classes, drawn with a generator seeded by ``seed``; FS rebuttal's random-targeted
baseline).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from ..core.validation import check_eps, check_step
from .protocol import AttackProtocol
from .loop import NORMS, perturb
from .losses import LOSSES, cw_margin_loss


def random_targets(y: torch.Tensor, num_classes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Targets ``(B,)`` drawn uniformly among the ``num_classes - 1`` wrong classes of each label in ``y``."""
    if num_classes < 2:
        raise ValueError(f"random targets need num_classes >= 2, got {num_classes}")
    shift = torch.randint(1, num_classes, y.shape, generator=generator, device=y.device)
    return (y + shift) % num_classes


def num_classes_of(model: nn.Module, x: torch.Tensor) -> int:
    """``model.num_classes`` if the model has it, else the width of its logits on one example."""
    k = getattr(model, "num_classes", None)
    if isinstance(k, int):
        return k
    with torch.no_grad():
        return int(model(x[:1]).shape[1])


def make_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A torch.Generator on ``device`` seeded with ``seed`` (``None`` -> use the global RNG)."""
    return None if seed is None else torch.Generator(device=device).manual_seed(int(seed))


@dataclass
class PGD(AttackProtocol):
    """Projected gradient descent (ascent on the loss), Linf or L2.

    Args:
        eps: budget (Linf: max per-pixel change; L2: per-example norm), >= 0; ``inf`` = unbounded.
        steps: K >= 1. step_size: alpha > 0; ``None`` -> ``2.5 * eps / steps`` (Madry et al.).
        norm: ``"linf"`` | ``"l2"``. random_start: uniform start in the ball (else start at ``x``).
        restarts: R >= 1 (per-example worst case). loss: ``"ce"`` | ``"cw"`` | callable ``(logits, y) -> (B,)``.
        kappa: CW margin confidence (``loss="cw"``). targeted: ``False`` | ``True`` | ``"random"``.
        momentum: MIM decay (``None`` = plain PGD). keep_best: see :func:`perturb`. seed: random start/targets.
        stop_fooled: the evaluation fast path of :func:`perturb` (same per-example outcome;
            :func:`ot_robust.evaluation.suite.evaluate` turns it on, since it reads only whether each example is
            fooled).
    Raises:
        ValueError: eps < 0, steps < 1, step_size <= 0, a single step larger than the Linf budget, bad
            norm/loss/targeted.
    """

    eps: float
    steps: int = 10
    step_size: float | None = None
    norm: str = "linf"
    random_start: bool = True
    restarts: int = 1
    loss: str | Callable = "ce"
    kappa: float = 0.0
    targeted: bool | str = False
    momentum: float | None = None
    keep_best: bool = True
    seed: int | None = None
    stop_fooled: bool = False
    kind: ClassVar[str] = "white-box"

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"norm={self.norm!r}; allowed: {NORMS}")
        self.eps = check_eps(self.eps, self.norm, allow_inf=True)  # inf: the sanity suite's unbounded PGD
        if int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"steps={self.steps!r} must be an integer >= 1")
        if self.step_size is None:
            self.step_size = self.eps if self.steps == 1 else 2.5 * self.eps / self.steps
            if self.step_size == float("inf"):
                raise ValueError("an unbounded eps needs an explicit finite step_size")
        self.step_size = check_step(self.eps, self.step_size, self.steps, self.norm, self.random_start)
        if not callable(self.loss) and self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r}; allowed: {sorted(LOSSES)} or a callable (logits, y) -> (B,)")
        if self.targeted not in (False, True, "random"):
            raise ValueError(f"targeted={self.targeted!r}; allowed: False, True, 'random'")
        if int(self.restarts) != self.restarts or self.restarts < 1:
            raise ValueError(f"restarts={self.restarts!r} must be an integer >= 1")
        if self.kappa < 0:
            raise ValueError(f"kappa={self.kappa!r} must be >= 0")

    def loss_fn(self) -> Callable:
        """The per-example loss ``(logits, labels) -> (B,)`` this attack maximizes (minimizes when targeted)."""
        if callable(self.loss):
            return self.loss
        if self.loss == "cw":
            kappa, targeted = self.kappa, bool(self.targeted)
            return lambda logits, t: cw_margin_loss(logits, t, kappa=kappa, targeted=targeted)
        return LOSSES[self.loss]

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 y_target: torch.Tensor | None = None) -> torch.Tensor:
        """Adversarial examples ``(B, C, H, W)`` for clean ``x`` in [0, 1] with labels ``y`` ``(B,)``."""
        gen = make_generator(self.seed, x.device)
        if self.targeted == "random":
            y_target = random_targets(y, num_classes_of(model, x), gen)
        elif self.targeted and y_target is None:
            raise ValueError("targeted=True needs y_target=... in the call (or use targeted='random')")
        return perturb(model, x, y, self.loss_fn(), self.eps, self.step_size, self.steps, norm=self.norm,
                       init="uniform" if self.random_start else "none", restarts=self.restarts,
                       momentum=self.momentum, targeted=bool(self.targeted),
                       y_target=y_target if self.targeted else None, keep_best=self.keep_best, generator=gen,
                       stop_fooled=self.stop_fooled)

    def replace(self, **changes) -> "PGD":
        """A copy with some fields changed (e.g. ``restarts=1, seed=3`` for one run of a restart study)."""
        return dataclasses.replace(self, **changes)

    def restart_runs(self, seeds) -> list:
        """``restarts=R > 1``: R one-restart copies, run j seeded ``seeds(j)``; else ``[self]`` (attack protocol)."""
        if self.restarts > 1:
            return [self.replace(restarts=1, seed=seeds(j)) for j in range(self.restarts)]
        return [self]

    def fast_path(self) -> "PGD":
        """A copy with ``stop_fooled=True``: the same per-example outcome (see
        :func:`~ot_robust.attacks.loop.perturb`)."""
        return self.replace(stop_fooled=True)


@dataclass
class FGSM(PGD):
    """Fast gradient sign method (Goodfellow et al. 2015): ``x + eps * sign(grad)`` (one step, no random start)."""

    steps: int = 1
    random_start: bool = False
    kind: ClassVar[str] = "single-step"


@dataclass
class CW(PGD):
    """CW-k of the FS paper: the Carlini-Wagner margin loss (f_6, confidence ``kappa``) inside PGD (Sec. 5.1)."""

    loss: str | Callable = "cw"


@dataclass
class MIM(PGD):
    """Momentum iterative FGSM (Dong et al. 2018, Alg. 1): decay ``momentum`` (mu = 1.0), no random start."""

    momentum: float | None = 1.0
    random_start: bool = False

    def __post_init__(self):
        if self.step_size is None:
            self.step_size = self.eps / self.steps  # Dong et al.: alpha = eps / T
        super().__post_init__()
