"""The Defense interface, its output record, the registry by name, and the parameter checks every defense shares.

A defense turns a clean batch into the scalar training loss (its inner maximisation included)::

    out = defense.loss(model, x, y)      # x (B, C, H, W) in [0, 1], y (B,) int64
    out.loss.backward()                  # the Trainer steps the optimiser(s)

The Trainer never knows which method it runs: it asks :meth:`Defense.validate` before training, checkpoints
:meth:`Defense.state_dict` (which holds whatever the defense trains itself, e.g. GOT's Kantorovich potential and its
optimiser, stepped inside :meth:`Defense.loss`), and refuses ``amp=True`` at configuration time for a defense whose
``supports_amp`` is False.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from torch import Tensor, nn

from ..core.validation import check_eps, check_int, check_number, check_step


@dataclass
class DefenseOutput:
    """What :meth:`Defense.loss` returns.

    Attributes:
        loss: scalar tensor to minimise (differentiable w.r.t. the model parameters).
        logs: floats to average over the epoch and write to ``metrics.jsonl`` (e.g. ``ce_adv``, ``ot_distance``).
        logits_adv: detached logits ``(B, K)`` of the training inputs the loss used (adversarial or clean), for the
            Trainer's running training accuracy; ``None`` if not available.
    """

    loss: Tensor
    logs: dict = field(default_factory=dict)
    logits_adv: Optional[Tensor] = None


class Defense:
    """Base class of every training method. Subclasses implement :meth:`loss` and read like their paper's algorithm.

    Class attributes:
        needs_double_backprop: the loss contains input gradients that must be differentiated again (OTJR).
        batch_coupled: the loss or its inner maximisation couples the examples of a batch (OT methods); the Trainer
            then refuses ``batch_size < 2`` (via :meth:`validate`) and, under DDP, the defense decides how to couple.
        supports_amp: the loss is sound under float16 autocast (False: OTJR's finite-difference Jacobian gradient).
        recorded: ``{parameter: (default now, value of runs made before the parameter existed)}``. A new run writes
            these parameters into its ``config.json`` explicitly; a run whose ``config.json`` predates one of them
            resumes with the older value, so no run mixes the two (:func:`resolve_recorded`); the verdict table reads
            missing keys the same way (``ot_robust.reports.claims``).
    """

    needs_double_backprop: bool = False
    supports_amp: bool = True
    batch_coupled: bool = False
    name: str = "defense"
    recorded: dict = {}

    def __init__(self) -> None:
        self.distributed = None  # set by the Trainer under DDP: a ot_robust.training.distributed.DistInfo

    def __init_subclass__(cls, **kw) -> None:
        """Every subclass's :meth:`loss` checks its inputs first (one validation layer at the public
        boundaries): ``x`` finite in [0, 1], ``y`` one integer label per image within the model's classes."""
        super().__init_subclass__(**kw)
        if "loss" in cls.__dict__:
            import functools

            inner = cls.__dict__["loss"]

            @functools.wraps(inner)
            def loss(self, model, x, y, *args, **kwargs):
                from ..core.validation import check_images, check_labels

                check_images(x)
                check_labels(y, x.shape[0], getattr(model, "num_classes", None))
                return inner(self, model, x, y, *args, **kwargs)

            cls.loss = loss

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> DefenseOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def validate(self, batch_size: int) -> None:
        """Raise ValueError if the defense cannot train with this (per-step, global) batch size."""
        if self.batch_coupled and int(batch_size) < 2:
            raise ValueError(f"{self.name} couples the examples of a batch (optimal transport) and needs "
                             f"batch_size >= 2, got {batch_size}")

    def state_dict(self) -> dict:
        """The defense's own state (modules etc.) for checkpoints; default empty."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""

    def after_step(self, model: nn.Module) -> None:
        """Called by the Trainer right after each optimizer step (AWP removes its weight perturbation here)."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and k != "distributed")
        return f"{type(self).__name__}({params})"


DEFENSES: dict[str, type] = {}


def register_defense(name: str) -> Callable[[type], type]:
    """Class decorator: register a :class:`Defense` subclass under ``name`` (ValueError on a duplicate name)."""
    def deco(cls: type) -> type:
        if name in DEFENSES and DEFENSES[name] is not cls:
            raise ValueError(f"defense name {name!r} is already registered by {DEFENSES[name].__name__}")
        DEFENSES[name] = cls
        cls.name = name
        return cls
    return deco


def get_defense(name: str, **params) -> Defense:
    """Instantiate the registered defense ``name`` with ``params``.

    Raises:
        ValueError: unknown name (listing the valid ones) or an unknown / invalid parameter (message names it).
    """
    if name not in DEFENSES:
        raise ValueError(f"unknown defense/method {name!r}; valid names: {sorted(DEFENSES)}")
    try:
        return DEFENSES[name](**params)
    except TypeError as e:  # unexpected keyword
        raise ValueError(f"bad parameters for defense {name!r}: {e}") from None


def resolve_recorded(method: str, params: dict, previous: dict | None = None) -> dict:
    """``params`` with every :attr:`Defense.recorded` parameter of ``method`` made explicit: the value ``params``
    give, else the one of the ``previous`` run being resumed (its saved method parameters; a key it lacks means the
    run predates the parameter: the recorded older value), else today's default. Unknown methods pass through."""
    cls = DEFENSES.get(method)
    out = dict(params)
    for key, (now, before) in (getattr(cls, "recorded", {}) or {}).items():
        if key in out:
            continue
        out[key] = now if previous is None else previous.get(key, before)
    return out


def attack_params(eps, step_size, steps, random_start: bool = True) -> tuple[float, float, int]:
    """Checked training-adversary parameters (Linf, the [0, 1] pixel scale): eps by
    :func:`ot_robust.core.validation.check_eps` (above 1 refused: "did you mean 8/255?"), steps >= 1, and the step size
    by the same rule as the evaluation attacks (:func:`ot_robust.core.validation.check_step`)."""
    e = check_eps(check_number("eps", eps))
    n = check_int("steps", steps)
    return e, check_step(e, check_number("step_size", step_size, low_open=True), n, "linf", random_start), n
