"""LBGAT, Learnable Boundary Guided Adversarial Training (Cui, Liu, Wang, Jia, ICCV 2021; arXiv 2011.11164; official
code ``dvlab-research/LBGAT``, ``lbgat.py``/``lbgat_loss`` and ``train_lbgat_cifar100.py``).

A *natural* model f_nat, trained on clean images only, and the *robust* model f_rob are trained jointly; the natural
model's logits on x are a learnable boundary that the robust model's logits on x' are pulled to. With the TRADES
adversary and regulariser (the "LBGAT + TRADES" variant, the one the official code implements and the one OTJR's
Table 3 plugs its loss into)::

    min_{theta_rob, theta_nat}  E[ ce_weight  * CE( f_nat(x), y )                          (natural model)
                                 + mse_weight * MSE( f_rob(x'), f_nat(x) )                 (boundary guidance)
                                 + beta       * KL( softmax f_rob(x) || softmax f_rob(x') ) ]  (TRADES)

    x' = argmax_{||x' - x||_inf <= eps} KL( softmax f_rob(x) || softmax f_rob(x') )   (TRADES Alg. 1, on f_rob)

Sources of each term and weight (the published equations read from the authors' earlier manuscript, which the
authors ship as ``assets/manuscripts_submitted_to_cvpr2020.pdf`` in their repository: there the method is called
AODT, renamed LBGAT in the ICCV version; the ICCV text itself was not available to us):

* guidance ``L(M_robust(x_adv), M_natural(x))`` with "L is Mean Square Error (MSE) loss" (manuscript Eq. 2-3), weight
  1 (no coefficient in Eq. 3; the code adds it unweighted). MSE as the code computes it (``torch.nn.MSELoss()``,
  mean reduction): the mean over all B x K logit entries, ``1/(B K) sum_i ||f_rob(x'_i) - f_nat(x_i)||^2``.
* ``beta_paper * CE(softmax(M_natural(x)), y)`` (manuscript Eq. 3: "we choose beta = 1"; code: ``ce(out, y)``
  unweighted): ``ce_weight = 1``. The CE trains the natural model only (it involves no robust-model output).
* the TRADES regulariser with the manuscript's alpha (Eq. 5, "AODT+TRADES" = Eq. 5 with its first term replaced by
  Eq. 3); the code calls it ``beta`` and computes ``KLDivLoss(log_softmax(f_rob(x')), softmax(f_rob(x)))`` summed / B
  = ``KL(f_rob(x) || f_rob(x'))`` averaged over the batch, the TRADES direction (the manuscript prints the arguments
  the other way round; we follow the code and TRADES). Default ``beta = 6``: the argparse default of
  ``train_lbgat_cifar100.py`` and the "LBGAT6" models of the README (CIFAR-100 WRN-34-10 60.64 / 29.33 AA), which
  OTJR Table 3's "LBGAT with the TRADES loss" row matches (60.43 / 29.34); ``beta = 0`` is "LBGAT0"
  (``sh/train_lbgat0_cifar100.sh``, 70.25 / 27.16).
* the adversary: x' from ``x + 0.001 N(0, I)`` (the first gradient taken at that unclipped start, as the official
  code), K signed steps on the KL above with the robust model in eval mode, each projected on the eps-ball and
  [0, 1] (:func:`~ot_robust.defenses.trades.trades_perturb`). Official: eps 0.031, step 0.007, K = 10 (we default to
  eps 8/255 as our TRADES does).
* the loss is computed in train mode: f_rob(x'), f_rob(x) and f_nat(x) are three separate forward passes (separate
  BatchNorm statistics), as in the code.

Gradients: the natural model receives ``d/d theta_nat`` of the CE and guidance terms; the robust model of the
guidance and KL terms (the CE does not depend on it). The official code updates both with one SGD optimiser (lr 0.1,
momentum 0.9, weight decay 2e-4; for both models lr 0.02 in the first epoch, x0.1 after epochs 75 and 90). Here the
Trainer owns the robust model's optimiser and schedule, and the defense owns f_nat and its SGD optimiser built from
``nat_lr``, ``nat_momentum``, ``nat_weight_decay`` (defaults: the official 0.1 / 0.9 / 2e-4) with an optional decay
(``nat_milestones``, ``nat_gamma``): :meth:`LBGAT.loss` computes f_nat's gradient and stores it in its parameters'
``.grad``; :meth:`LBGAT.after_step` (called by the Trainer right after the robust model's optimiser step) steps
f_nat's optimiser, so both models move from the same iterate as with the single official optimiser. The returned
``loss`` has the value of the full objective but carries gradient only to the robust model (f_nat's logits enter it
detached), so ``loss.backward()`` never accumulates a second copy of f_nat's gradient.

The natural model is created on the first call of :meth:`LBGAT.loss` (or :meth:`LBGAT.natural_model`) as a deep copy
of the robust model's architecture with freshly initialised weights (``natural_init="reinit"``: every submodule's
``reset_parameters()``, drawn from a private generator seeded from ``init_seed``, so the global RNG stream is not
touched, a resumed run consumes the same random numbers, and every DDP process builds the same model; the paper: "We
randomly initialize M_robust and M_natural"), or with the robust model's current weights (``natural_init="copy"``).
The official code uses a *different* architecture for f_nat (ResNet-18 / ResNet-152 next to a WRN-34-10); the same
architecture is our choice (the manuscript: the two "need not to be with the same network structure"). Its weights,
its optimiser state and the number of steps taken are in :meth:`LBGAT.state_dict`, so a resumed run continues the
natural model too.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.utils import all_reduce_mean_
from ..core.validation import check_choice, check_int, check_number
from .base import Defense, DefenseOutput, attack_params, register_defense
from .trades import kl_clean_adv, trades_perturb

NATURAL_INITS = ("reinit", "copy")


def lbgat_terms(logits_adv: Tensor, logits_clean: Tensor, logits_nat: Tensor, y: Tensor) -> dict[str, Tensor]:
    """The three LBGAT terms, each a scalar (batch mean), from logits of shape (B, K) and labels y (B,).

    ``ce``: CE(f_nat(x), y); ``mse``: mean over the B x K entries of (f_rob(x') - f_nat(x))^2 (``nn.MSELoss``);
    ``kl``: mean over the batch of KL(softmax f_rob(x) || softmax f_rob(x')). Differentiable in every input.
    Raises ValueError when the three logit tensors do not share one shape (B, K).
    """
    if not (logits_adv.shape == logits_clean.shape == logits_nat.shape) or logits_adv.dim() != 2:
        raise ValueError(f"LBGAT needs logits of one shape (B, K): robust(x') {tuple(logits_adv.shape)}, robust(x) "
                         f"{tuple(logits_clean.shape)}, natural(x) {tuple(logits_nat.shape)}")
    return {"ce": F.cross_entropy(logits_nat, y),
            "mse": F.mse_loss(logits_adv, logits_nat),
            "kl": kl_clean_adv(logits_clean, logits_adv).mean()}


def _private_seed(init_seed: int) -> int:
    """The RNG seed of the natural model's initialisation: derived from ``init_seed`` but not equal to it, so that a
    run seeded with the same small number (``seed=0`` and ``init_seed=0``) does not give f_nat exactly f_rob's
    initial weights (the paper initialises the two models independently)."""
    return (int(init_seed) * 0x9E3779B1 + 0x5BD1E995) % (2 ** 63)


def _reinitialise(module: nn.Module, seed: int) -> None:
    """Fresh default initialisation of every parameter of ``module`` (each submodule's ``reset_parameters``), drawn
    from a private CPU RNG seeded from ``seed`` (:func:`_private_seed`). Raises ValueError if a parameter's owner
    cannot re-initialise."""
    device = next(module.parameters()).device
    module.to("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_private_seed(seed))
        for name, m in module.named_modules():
            own = list(m.parameters(recurse=False))
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
            elif own:
                raise ValueError(f"natural_init='reinit' cannot re-initialise the parameters of submodule "
                                 f"{name or '<root>'!r} ({type(m).__name__} has no reset_parameters); "
                                 f"use natural_init='copy'")
    module.to(device)


@register_defense("lbgat")
class LBGAT(Defense):
    """LBGAT (+ TRADES): ``ce_weight CE(f_nat(x), y) + mse_weight MSE(f_rob(x'), f_nat(x)) + beta KL(f_rob(x) ||
    f_rob(x'))`` with the TRADES adversary (see the module docstring for the sources).

    ``loss(model, x, y)``: ``model`` is the robust model f_rob (images (B, C, H, W) in [0, 1] -> logits (B, K)),
    y (B,) int64 labels. Returns the objective's value (gradient to f_rob only) and, in train mode with autograd on,
    stores f_nat's gradient in its ``.grad``; :meth:`after_step` steps f_nat.

    Args:
        eps (>= 0, [0, 1] pixel scale, L_inf), step_size (> 0), steps (>= 1): the TRADES adversary on f_rob
            (official: 0.031 / 0.007 / 10). init_std (>= 0): std of its Gaussian start (0.001).
        beta (>= 0): weight of the TRADES KL (official default 6 = "LBGAT6"; 0 = "LBGAT0").
        ce_weight (>= 0): weight of CE(f_nat(x), y) (paper: 1). mse_weight (>= 0): weight of the guidance (1).
        nat_lr (> 0), nat_momentum (in [0, 1)), nat_weight_decay (>= 0): SGD of the natural model (official, same
            as the robust model's: 0.1 / 0.9 / 2e-4). nat_milestones (increasing integers >= 1, in natural-model
            optimiser steps) and nat_gamma (in (0, 1]): its lr is ``nat_lr * nat_gamma ** (number of milestones
            reached)`` (default none: constant; the official schedule decays both models after epochs 75 and 90:
            give ``nat_milestones=[75 * steps_per_epoch, 90 * steps_per_epoch]`` to match it, since the Trainer's
            scheduler steps only the robust model's optimiser; the official 0.02 first epoch is not reproduced).
        natural_init: ``"reinit"`` (fresh default initialisation, seeded by ``init_seed``) or ``"copy"`` (the robust
            model's weights at the first call). init_seed (integer >= 0).
    Raises:
        ValueError: eps < 0 or > 1, step_size <= 0, steps < 1, init_std / beta / ce_weight / mse_weight /
        nat_weight_decay < 0, nat_lr <= 0, nat_momentum outside [0, 1), nat_gamma outside (0, 1], nat_milestones
        not increasing integers >= 1, unknown natural_init, init_seed not an integer >= 0 (each message names the
        parameter and its value); at the first :meth:`loss`, a model that ``"reinit"`` cannot re-initialise, and
        logits of different shapes.
    """

    def __init__(self, eps: float = 8 / 255, step_size: float = 0.007, steps: int = 10, beta: float = 6.0,
                 ce_weight: float = 1.0, mse_weight: float = 1.0, init_std: float = 0.001, nat_lr: float = 0.1,
                 nat_momentum: float = 0.9, nat_weight_decay: float = 2e-4, nat_milestones=(), nat_gamma: float = 0.1,
                 natural_init: str = "reinit", init_seed: int = 0):
        super().__init__()
        self.eps, self.step_size, self.steps = attack_params(eps, step_size, steps)
        self.beta = check_number("beta", beta)
        self.ce_weight = check_number("ce_weight", ce_weight)
        self.mse_weight = check_number("mse_weight", mse_weight)
        self.init_std = check_number("init_std", init_std)
        self.nat_lr = check_number("nat_lr", nat_lr, low_open=True)
        self.nat_momentum = check_number("nat_momentum", nat_momentum, high=1.0)
        self.nat_weight_decay = check_number("nat_weight_decay", nat_weight_decay)
        self.nat_gamma = check_number("nat_gamma", nat_gamma, low_open=True, high=1.0, high_open=False)
        if isinstance(nat_milestones, (str, bytes)) or not hasattr(nat_milestones, "__iter__"):
            raise ValueError(f"nat_milestones={nat_milestones!r} must be a list of increasing integers >= 1")
        ms = [check_int("nat_milestones", m) for m in nat_milestones]
        if any(b <= a for a, b in zip(ms, ms[1:])):
            raise ValueError(f"nat_milestones={list(nat_milestones)!r} must be strictly increasing")
        self.nat_milestones = tuple(ms)
        self.natural_init = check_choice("natural_init", natural_init, NATURAL_INITS)
        self.init_seed = check_int("init_seed", init_seed, low=0)
        self._natural: nn.Module | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._scaler: torch.amp.GradScaler | None = None   # float16 autocast only (f_nat's own loss scaling)
        self._nat_steps = 0
        self._pending: dict | None = None

    # -- the natural model -------------------------------------------------------------------------------------------
    def natural_model(self, model: nn.Module) -> nn.Module:
        """The natural model f_nat (built from ``model``'s architecture on the first call, with its SGD optimiser;
        a state given to :meth:`load_state_dict` before is applied then)."""
        if self._natural is None:
            nat = copy.deepcopy(model)
            for p in nat.parameters():
                p.grad = None
            if self.natural_init == "reinit":
                _reinitialise(nat, self.init_seed)
            self._natural = nat
            self._optimizer = torch.optim.SGD(nat.parameters(), lr=self.nat_lr, momentum=self.nat_momentum,
                                              weight_decay=self.nat_weight_decay)
            if self._pending is not None:
                pending, self._pending = self._pending, None
                self._load(pending)
        return self._natural

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The natural model's SGD optimiser (None before the natural model exists)."""
        return self._optimizer

    def lr_at(self, step: int) -> float:
        """The natural model's learning rate for its optimiser step number ``step`` (0-based)."""
        return self.nat_lr * self.nat_gamma ** sum(step >= m for m in self.nat_milestones)

    # -- the objective -------------------------------------------------------------------------------------------
    def attack(self, model: nn.Module, x: Tensor, y: Tensor | None = None) -> Tensor:
        """x' by TRADES Alg. 1 on the robust model (:func:`trades_perturb`); ``y`` is unused (label-free)."""
        return trades_perturb(model, x, self.eps, self.step_size, self.steps, self.init_std)

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The LBGAT objective at given x (B, C, H, W), x' (same shape) and y (B,): ``(total, terms)`` with the
        natural model in ``model``'s mode; total and terms fully differentiable (in both models' parameters)."""
        nat = self.natural_model(model)
        nat.train(model.training)
        logits_adv = model(x_adv)
        logits_clean = model(x)
        logits_nat = nat(x)
        terms = lbgat_terms(logits_adv, logits_clean, logits_nat, y)
        terms.update(logits_adv=logits_adv, logits_clean=logits_clean, logits_nat=logits_nat)
        total = self.ce_weight * terms["ce"] + self.mse_weight * terms["mse"] + self.beta * terms["kl"]
        return total, terms

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> DefenseOutput:
        """LBGAT training loss for a batch x (B, C, H, W) in [0, 1], y (B,); also stores f_nat's gradient."""
        x_adv = self.attack(model, x, y)
        _, t = self.objective(model, x, x_adv, y)
        nat = self._natural
        logits_adv, logits_nat = t["logits_adv"], t["logits_nat"]
        logs = {"ce_nat": float(t["ce"].detach()), "mse_guide": float(t["mse"].detach()),
                "kl_adv": float(t["kl"].detach())}
        if model.training and torch.is_grad_enabled() and logits_nat.requires_grad:
            # d/d theta_nat of the objective: CE + guidance (f_rob's logits are constants for f_nat)
            nat_obj = self.ce_weight * t["ce"] + self.mse_weight * F.mse_loss(logits_adv.detach(), logits_nat)
            if logits_nat.dtype == torch.float16 and self._scaler is None:  # float16 autocast: dynamic loss scale
                self._scaler = torch.amp.GradScaler(logits_nat.device.type)
            if self._scaler is not None:
                nat_obj = self._scaler.scale(nat_obj)
            params = [p for p in nat.parameters() if p.requires_grad]
            grads = torch.autograd.grad(nat_obj, params, allow_unused=True)
            for p, g in zip(params, grads):
                p.grad = torch.zeros_like(p) if g is None else g.to(p.dtype)
        # the objective's value; f_nat's logits detached: this loss trains f_rob only (guidance + KL terms)
        loss = (self.ce_weight * F.cross_entropy(logits_nat.detach(), y)
                + self.mse_weight * F.mse_loss(logits_adv, logits_nat.detach()) + self.beta * t["kl"])
        return DefenseOutput(loss=loss, logs=logs, logits_adv=logits_adv.detach())

    def after_step(self, model: nn.Module) -> None:
        """Step the natural model's optimiser with the gradient the last :meth:`loss` stored (averaged over DDP
        processes), at lr :meth:`lr_at`; nothing if there is none. Under float16 autocast the gradient is unscaled
        and a step with Inf/NaN is skipped (``torch.amp.GradScaler``). BatchNorm buffers follow rank 0 under DDP."""
        if self._natural is None or self._optimizer is None:
            return
        params = [p for p in self._natural.parameters() if p.requires_grad]
        has_grad = [p.grad is not None for p in params]
        if self.distributed is not None:
            flags = torch.tensor([float(all(has_grad))], device=params[0].device) if params else None
            if flags is not None:
                all_reduce_mean_([flags])
            if flags is None or float(flags) < 1.0:  # some process stored no gradient: every process skips
                self._optimizer.zero_grad(set_to_none=True)
                return
            all_reduce_mean_([p.grad for p in params])
        elif not any(has_grad):
            return
        for group in self._optimizer.param_groups:
            group["lr"] = self.lr_at(self._nat_steps)
        if self._scaler is None:
            self._optimizer.step()
            stepped = True
        else:
            scale = self._scaler.get_scale()
            self._scaler.step(self._optimizer)
            self._scaler.update()
            stepped = self._scaler.get_scale() >= scale    # the scale drops exactly when the step was skipped
        self._optimizer.zero_grad(set_to_none=True)
        self._nat_steps += int(stepped)
        if self.distributed is not None:
            self.distributed.broadcast_module(self._natural, buffers_only=True)

    # -- checkpoint state ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"natural": f_nat weights, "optimizer": its SGD state, "nat_steps": steps taken, "scaler": its float16
        loss-scaler state or None}`` (None entries before the natural model exists; a pending loaded state is passed
        through)."""
        if self._natural is None:
            if self._pending is not None:
                return copy.deepcopy(self._pending)
            return {"natural": None, "optimizer": None, "nat_steps": self._nat_steps, "scaler": None}
        return {"natural": self._natural.state_dict(), "optimizer": self._optimizer.state_dict(),
                "nat_steps": self._nat_steps, "scaler": None if self._scaler is None else self._scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output; applied when the natural model is built if it does not exist yet."""
        if self._natural is None:
            self._pending = copy.deepcopy(state)
            self._nat_steps = int(state.get("nat_steps", 0))
            return
        self._load(state)

    def _load(self, state: dict) -> None:
        if state.get("natural") is not None:
            self._natural.load_state_dict(state["natural"])
        if state.get("optimizer") is not None:
            self._optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        if state.get("scaler"):
            self._scaler = torch.amp.GradScaler(next(self._natural.parameters()).device.type)
            self._scaler.load_state_dict(state["scaler"])
        self._nat_steps = int(state.get("nat_steps", 0))
