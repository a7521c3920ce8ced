"""Adapters to torchattacks 3.5 (a well-kept library; we do not rewrite these attacks) and AutoAttack "standard".

Each adapter is a dataclass with *explicit* settings (never torchattacks' defaults silently): ``attack(model, x, y)``
builds the torchattacks object for ``model``, runs it with the global RNG forked (torchattacks reseeds the global RNG
inside APGD/FAB), restores every submodule's train/eval mode and the parameters' ``.grad``, and projects the
result onto the eps-ball and [0, 1] (guarding against float round-off; minimum-norm attacks without ``eps`` are only
clamped to [0, 1]).

torchattacks is not installed by ``pip install .`` and cannot be an extra (``pip install .[...]``): 3.5.1 pins
``requests~=2.25.1`` (which conflicts with jupyterlab's ``requests>=2.31``, so pip silently falls back to 3.3.0, which
lacks SPSA) and ships a top-level ``robustbench`` package that shadows the real one. It is one explicit step,
``pip install --no-deps torchattacks==3.5.1`` (``make venv`` runs it). Without it, building one of these adapters
(``make_attack("apgd-ce ...")``, ``APGD(...)``) raises ImportError at once with that command, before any attack runs.

:class:`AutoAttack` runs the "standard" suite of Croce & Hein (2020) on fra31/auto-attack's own component code
(``pyautoattack``, a dependency of ``pip install .``), with the reference settings; see its docstring for what differs
from fra31's driver. The Square attack is our own (:mod:`ot_robust.attacks.square`), so it needs no torchattacks.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from .protocol import AttackProtocol
from .loop import check_attack_params, check_images, correct_mask, model_mode, project_
from .whitebox import num_classes_of

_TA_NORM = {"linf": "Linf", "l2": "L2"}
TORCHATTACKS_PIN = "torchattacks==3.5.1"  # = pyproject.toml [tool.ot_robust] no_deps (tests/test_install.py)
TORCHATTACKS_HINT = (f"pip install --no-deps {TORCHATTACKS_PIN}  (a separate step, not a pip extra: its "
                     "requests~=2.25.1 pin conflicts with jupyterlab and it never imports requests; `make venv` "
                     "runs it)")
#: the attacks that need torchattacks (AutoAttack and Square do not: pyautoattack and our own code)
TORCHATTACKS_ATTACKS = ("APGD", "APGD-T", "FAB", "SPSA", "C&W-L2", "DeepFool")


class MissingDependencyError(ImportError, ValueError):
    """An attack asked for whose package is not installed: an ImportError, and a ValueError so that the command line
    (``python -m ot_robust evaluate``) reports it as one ``error:`` line, like a bad spec, before any attack runs."""


def _missing_torchattacks(what: str | None = None) -> MissingDependencyError:
    """One line: ``what`` (None: all of them) needs torchattacks, which others do and do not, the install command."""
    if what is None:
        head = f"the torchattacks attacks ({', '.join(TORCHATTACKS_ATTACKS)}) need torchattacks"
    else:
        head = f"{what} needs torchattacks (so do {', '.join(a for a in TORCHATTACKS_ATTACKS if a != what)})"
    return MissingDependencyError(f"{head}, which `pip install .` does not install (AutoAttack and Square do not "
                                  f"need it): {TORCHATTACKS_HINT}")


def require_torchattacks(what: str) -> None:
    """Raise :class:`MissingDependencyError` (an ImportError; one line: what needs it and the install command) unless
    torchattacks can be found. Called when an adapter is built, so that a missing torchattacks stops an evaluation
    before any attack runs."""
    try:
        found = importlib.util.find_spec("torchattacks") is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        found = False
    if not found:
        raise _missing_torchattacks(what)


def _ta():
    """torchattacks, imported when a library attack first runs. Raises ImportError with the install command."""
    try:
        import torchattacks
    except ImportError:
        raise _missing_torchattacks() from None
    return torchattacks


def resolve_seed(seed: int | None) -> int:
    """``seed`` as an int; ``None``: an int drawn from torch's global RNG (the caller's stream)."""
    return int(seed) if seed is not None else int(torch.randint(0, 2**31 - 1, ()))


@dataclass
class LibraryAttack(AttackProtocol):
    """Base adapter: subclasses implement ``build(model, num_classes) -> torchattacks.Attack``."""

    eps: float | None = None
    norm: str = "linf"
    seed: int | None = 0
    kind: ClassVar[str] = "white-box"

    def build(self, model: nn.Module, num_classes: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def run_seed(self) -> int:
        """The seed of this call: ``seed``, or with ``seed=None`` one drawn from the caller's torch RNG (so that
        ``evaluate``'s per-batch seeding decides it). One meaning of None for every attack of this module."""
        return resolve_seed(self.seed)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Adversarial examples ``(B, C, H, W)`` in [0, 1] within the eps-ball (when ``eps`` is set)."""
        check_images(x)
        devices = [x.device] if x.device.type == "cuda" else []
        params = list(model.parameters())
        saved = [p.grad for p in params]  # some torchattacks attacks (FAB, C&W) call .backward() on the model
        try:
            with torch.random.fork_rng(devices=devices), model_mode(model):
                if self.seed is not None:
                    torch.manual_seed(int(self.seed))
                atk = self.build(model, num_classes_of(model, x))
                x_adv = atk(x.detach(), y).detach()
        finally:
            for p, g in zip(params, saved):
                p.grad = g
        delta = x_adv.to(x.dtype) - x
        return (x + project_(delta, x, math.inf if self.eps is None else self.eps, self.norm)).detach()


@dataclass
class APGD(LibraryAttack):
    """APGD (Croce & Hein 2020, Alg. 1) with loss ``"ce"`` or ``"dlr"``: ``steps`` iterations, ``restarts`` restarts."""

    steps: int = 100
    restarts: int = 1
    loss: str = "ce"

    def __post_init__(self):
        check_attack_params(self.eps, self.norm, steps=self.steps, restarts=self.restarts)
        if self.eps is None:
            raise ValueError("APGD needs eps")
        if self.loss not in ("ce", "dlr"):
            raise ValueError(f"loss={self.loss!r}; allowed: 'ce', 'dlr'")
        require_torchattacks("APGD")

    def build(self, model, num_classes):
        return _ta().APGD(model, norm=_TA_NORM[self.norm], eps=self.eps, steps=self.steps,
                                 n_restarts=self.restarts, seed=self.run_seed(), loss=self.loss, rho=0.75)


@dataclass
class APGDT(LibraryAttack):
    """Targeted APGD with the DLR-targeted loss over ``n_targets`` (default min(9, C-1)) highest non-true classes."""

    steps: int = 100
    restarts: int = 1
    n_targets: int = 9

    def __post_init__(self):
        check_attack_params(self.eps, self.norm, steps=self.steps, restarts=self.restarts, n_targets=self.n_targets)
        if self.eps is None:
            raise ValueError("APGD-T needs eps")
        require_torchattacks("APGD-T")

    def build(self, model, num_classes):
        atk = _ta().APGDT(model, norm=_TA_NORM[self.norm], eps=self.eps, steps=self.steps,
                                 n_restarts=self.restarts, seed=self.run_seed(), rho=0.75, n_classes=num_classes)
        atk.n_target_classes = min(self.n_targets, num_classes - 1)
        return atk


@dataclass
class FAB(LibraryAttack):
    """FAB (Croce & Hein 2020b); ``targeted=True`` = FAB-T over ``n_targets`` classes (AutoAttack's variant)."""

    steps: int = 100
    restarts: int = 1
    targeted: bool = True
    n_targets: int = 9

    def __post_init__(self):
        check_attack_params(self.eps, self.norm, steps=self.steps, restarts=self.restarts, n_targets=self.n_targets)
        if self.eps is None:
            raise ValueError("FAB needs eps")
        require_torchattacks("FAB")

    def build(self, model, num_classes):
        atk = _ta().FAB(model, norm=_TA_NORM[self.norm], eps=self.eps, steps=self.steps,
                               n_restarts=self.restarts, alpha_max=0.1, eta=1.05, beta=0.9, seed=self.run_seed(),
                               multi_targeted=self.targeted, n_classes=num_classes)
        atk.n_target_classes = min(self.n_targets, num_classes - 1)
        return atk


@dataclass
class SPSA(LibraryAttack):
    """SPSA (Uesato et al. 2018), gradient-free Linf attack (FS supplement Sec. 2.2): Adam on SPSA estimates."""

    steps: int = 100
    samples: int = 128
    delta: float = 0.01
    lr: float = 0.01
    max_batch: int = 64
    kind: ClassVar[str] = "black-box"

    def __post_init__(self):
        check_attack_params(self.eps, self.norm, steps=self.steps, samples=self.samples, max_batch=self.max_batch)
        if self.eps is None or self.norm != "linf":
            raise ValueError("SPSA needs eps and norm='linf'")
        require_torchattacks("SPSA")

    def build(self, model, num_classes):
        return _ta().SPSA(model, eps=self.eps, delta=self.delta, lr=self.lr, nb_iter=self.steps,
                                 nb_sample=self.samples, max_batch_size=self.max_batch)


@dataclass
class CWL2(LibraryAttack):
    """Carlini & Wagner (2017) L2 attack (minimum norm, Adam, constant ``c``); ``eps`` set: projected onto that ball."""

    norm: str = "l2"
    c: float = 1.0
    kappa: float = 0.0
    steps: int = 100
    lr: float = 0.01

    def __post_init__(self):
        check_attack_params(self.eps, self.norm, steps=self.steps)
        if self.norm != "l2" or self.c <= 0 or self.kappa < 0 or self.lr <= 0:
            raise ValueError(f"C&W-L2 needs norm='l2', c > 0, kappa >= 0, lr > 0; got {self}")
        require_torchattacks("C&W-L2")

    def build(self, model, num_classes):
        return _ta().CW(model, c=self.c, kappa=self.kappa, steps=self.steps, lr=self.lr)


@dataclass
class DeepFool(LibraryAttack):
    """DeepFool (Moosavi-Dezfooli et al. 2016), minimum-L2 attack; with ``eps`` projected onto the L2 ball."""

    norm: str = "l2"
    steps: int = 50
    overshoot: float = 0.02

    def __post_init__(self):
        check_attack_params(self.eps, self.norm, steps=self.steps)
        if self.overshoot < 0:
            raise ValueError(f"overshoot={self.overshoot!r} must be >= 0")
        require_torchattacks("DeepFool")

    def build(self, model, num_classes):
        return _ta().DeepFool(model, steps=self.steps, overshoot=self.overshoot)


AUTOATTACK_HINT = ("pip install pyautoattack==0.2.0  (fra31/auto-attack's reference code on PyPI, a dependency of "
                   "`pip install .`; no torchattacks needed)")


def _fra31():
    """fra31/auto-attack's reference components (the ``pyautoattack`` distribution), imported on first use."""
    try:
        from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
        from pyautoattack.fab_pt import FABAttack_PT
        from pyautoattack.square import SquareAttack
    except ImportError:
        raise ImportError(f"AutoAttack runs fra31's reference implementation: {AUTOATTACK_HINT}") from None
    return APGDAttack, APGDAttack_targeted, FABAttack_PT, SquareAttack


@dataclass
class AutoAttack(AttackProtocol):
    """AutoAttack "standard" (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T, Square on the still-robust points.

    The components are fra31/auto-attack's own code (``pyautoattack``, the reference on PyPI) with the settings of
    its ``version='standard'``: APGD-CE (100 iterations, 1 restart, rho 0.75), APGD-T (100 iterations, min(9, C-1)
    target classes), FAB-T (100 iterations, min(9, C-1) targets), Square (5000 queries, p_init 0.8, no schedule
    rescaling); each component runs only on the points still robust after the previous ones, every component
    seeded with ``seed``; the result is the per-example worst case (first success).

    One call = one batch of fra31's ``run_standard_evaluation`` with ``batch_size = len(x)``: on the same images
    and seed the adversarial examples are fra31's (``benchmarks/bench_autoattack.py`` checks it per example and
    times both). What fra31 does and this does not: its ``check_randomized`` / ``check_dynamic`` / ``check_range``
    / ``check_square_sr`` warnings (the equivalent checks live in :mod:`ot_robust.evaluation.sanity` and run with every
    evaluation); what this adds: predictions re-verified on the output projected onto the eps-ball and [0, 1],
    the global RNG and the parameters' ``.grad`` left as they were.

    Args: eps (required, [0, 1] pixel scale), norm (``linf`` or ``l2``), seed, and the reference budgets
    ``apgd_steps=100``, ``fab_steps=100``, ``n_targets=9``, ``queries=5000`` (lower them only for tests). After a
    call, ``last_log`` holds the robust accuracy (in %, among all B inputs) after each component and ``last_clean``
    the clean-correctness mask ``(B,)`` bool the components started from.
    Raises: ValueError for bad settings; ImportError naming the install command when ``pyautoattack`` is missing
    (both at construction, so before any attack of an evaluation runs).
    """

    eps: float
    norm: str = "linf"
    seed: int | None = 0
    apgd_steps: int = 100
    fab_steps: int = 100
    n_targets: int = 9
    queries: int = 5000
    last_log: list = field(default_factory=list, compare=False, repr=False)
    last_clean: Any = field(default=None, compare=False, repr=False)
    kind: ClassVar[str] = "autoattack"

    def __post_init__(self):
        check_attack_params(self.eps, self.norm, apgd_steps=self.apgd_steps, fab_steps=self.fab_steps,
               n_targets=self.n_targets, queries=self.queries)
        try:  # fail here, before any attack of an evaluation runs, not at this attack's first call
            found = importlib.util.find_spec("pyautoattack") is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingDependencyError(f"AutoAttack runs fra31's reference implementation: {AUTOATTACK_HINT}")

    def components(self, model: nn.Module, num_classes: int, device) -> list[tuple[str, Any]]:
        """The four fra31 attacks of version 'standard' for ``model`` (each has ``perturb(x, y)``)."""
        APGDAttack, APGDAttack_targeted, FABAttack_PT, SquareAttack = _fra31()
        norm, seed, k = _TA_NORM[self.norm], resolve_seed(self.seed), min(self.n_targets, num_classes - 1)
        kw = dict(norm=norm, eps=self.eps, seed=seed, device=device)
        apgd = APGDAttack(model, n_iter=self.apgd_steps, n_restarts=1, loss="ce", eot_iter=1, rho=0.75, **kw)
        apgdt = APGDAttack_targeted(model, n_iter=self.apgd_steps, n_restarts=1, eot_iter=1, rho=0.75,
                                    n_target_classes=k, **kw)
        fab = FABAttack_PT(model, n_restarts=1, n_iter=self.fab_steps, targeted=True, n_target_classes=k, **kw)
        square = SquareAttack(model, p_init=0.8, n_queries=self.queries, n_restarts=1, resc_schedule=False, **kw)
        return [("apgd-ce", apgd), ("apgd-t", apgdt), ("fab-t", fab), ("square", square)]

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example worst case over the components (the first successful one), ``(B, C, H, W)`` in [0, 1]:
        one batch of fra31's driver (:meth:`run` with ``batch_size = len(x)``)."""
        return self.run(model, x, y)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None
            ) -> torch.Tensor:
        """fra31's ``run_standard_evaluation(x, y, bs=batch_size)``: each component attacks the points still robust
        after the previous ones, taken across all of ``x`` in chunks of ``batch_size`` (None: all at once); chunks
        move to the model's device, the result stays on ``x``'s. Returns ``x_adv`` ``(N, C, H, W)`` in [0, 1]."""
        check_images(x)
        if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1 or None")
        x, y = x.detach(), y.detach()
        dev = next(iter(model.parameters()), x).device
        bs = len(x) if batch_size is None else int(batch_size)
        x_adv = x.clone()
        devices = [dev] if dev.type == "cuda" else []
        params = list(model.parameters())
        saved = [p.grad for p in params]  # FAB calls .backward() through the model
        try:
            with torch.random.fork_rng(devices=devices), model_mode(model), torch.no_grad():
                robust = correct_mask(model, x, y, bs, dev)
                self.last_clean = robust.clone()
                self.last_log = [("clean", 100.0 * robust.float().mean().item())]
                comps = self.components(model, num_classes_of(model, x[:1].to(dev)), dev)
                for name, atk in comps:  # as fra31's driver, under no_grad (components enable grad themselves)
                    todo = robust.nonzero().squeeze(1)
                    if todo.numel() == 0:
                        break
                    for i in range(0, todo.numel(), bs):
                        idx = todo[i:i + bs]
                        xb, yb = x[idx].to(dev), y[idx].to(dev)
                        adv = atk.perturb(xb.clone(), yb.clone()).detach().to(x.dtype)
                        adv = (xb + project_(adv - xb, xb, self.eps, self.norm)).detach()
                        fooled = (model(adv).argmax(1) != yb).to(x.device)
                        x_adv[idx[fooled]] = adv[fooled.to(adv.device)].to(x.device)
                        robust[idx[fooled]] = False
                    self.last_log.append((name, 100.0 * robust.float().mean().item()))
        finally:
            for p, g in zip(params, saved):
                p.grad = g
        return x_adv
