"""AWP, adversarial weight perturbation (Wu, Xia & Wang, NeurIPS 2020), as a wrapper around any defense loss.

AWP trains on the worst case of the defense loss ``L`` over both the inputs (the wrapped defense's own attack) and a
small layer-wise weight perturbation ``v`` (Wu et al. Eq. 6-9, official code ``csdongxian/AWP``, ``utils_awp.py``)::

    x~   = attack of the wrapped defense on the current weights w
    w'   = w + eta * grad_w L(w; x, x~, y)            one ascent step of a proxy copy (SGD, lr = proxy_lr)
    v_l  = ||w_l|| / ||w'_l - w_l|| * (w'_l - w_l)    for every weight matrix / kernel (dim > 1; no biases or BN)
    step:  w <- w + gamma * v;  optimizer step on L(w + gamma v; x, x~, y);  w <- w - gamma * v   (restore)

OTJR Table 3 plugs the TRADES and the OTJR losses into AWP (``awp_trades``, ``awp_otjr``); any registered defense
with an ``attack`` method works via ``get_defense("awp", inner="<name>", inner_params={...})``. The input attack,
its random start included, is the wrapped defense's own (TRADES: the official unclipped start, ``trades.py``;
OTJR: the authors' unclipped start, ``TransportJac.py``; ``clip_start`` goes in ``inner_params``), as the AWP
authors' TRADES-AWP training generates x~ with TRADES' own perturbation.

Trainer contract: the weight perturbation is still applied when :meth:`AWP.loss` returns (the gradient must be taken
at ``w + gamma v``); the Trainer must call ``defense.after_step(model)`` right after ``optimizer.step()`` to remove
it. As a safety net, a perturbation still present at the next :meth:`AWP.loss` call is removed first (this gives the
same training trajectory, but checkpoints or evaluations taken between the step and that call would see perturbed
weights, so the hook is required for correct artefacts).
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import Tensor, nn

from ..core.validation import check_int, check_number
from .base import Defense, DefenseOutput, get_defense, register_defense

_EPS = 1e-20


def perturbable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters AWP perturbs: names containing ``weight`` with more than one dimension (conv kernels, linear
    matrices), as the official ``diff_in_weights``."""
    return {n: p for n, p in model.named_parameters() if "weight" in n and p.dim() > 1}


class AWP(Defense):
    """Adversarial weight perturbation around the defense ``inner`` (see the module docstring).

    Args:
        inner: the wrapped defense (a :class:`Defense` instance or a registered name).
        inner_params: parameters for ``inner`` when it is given by name.
        gamma: relative size of the weight perturbation (>= 0; Wu et al.: 5e-3 for TRADES, 1e-2 for PGD-AT).
        proxy_lr: learning rate of the proxy's ascent step (> 0; official code: 0.01).
        warmup_steps: optimizer steps trained without the perturbation first (>= 0; official TRADES-AWP: 10 epochs,
            i.e. ``10 * batches_per_epoch``). Counted by :meth:`after_step` and checkpointed.
    Raises:
        ValueError: a negative gamma or warmup, proxy_lr <= 0, an unknown inner defense, or nesting AWP in AWP.
    """

    def __init__(self, inner: Defense | str = "trades", inner_params: Optional[dict] = None, gamma: float = 5e-3,
                 proxy_lr: float = 0.01, warmup_steps: int = 0):
        super().__init__()
        if isinstance(inner, str):
            inner = get_defense(inner, **(inner_params or {}))
        elif inner_params:
            raise ValueError("inner_params is only used when inner is given by name")
        if not isinstance(inner, Defense):
            raise ValueError(f"inner must be a Defense or a registered defense name, got {type(inner).__name__}")
        if isinstance(inner, AWP):
            raise ValueError("AWP cannot wrap AWP")
        self.inner = inner
        self.gamma = check_number("gamma", gamma)
        self.proxy_lr = check_number("proxy_lr", proxy_lr, low_open=True)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, low=0)
        self.steps_done = 0
        self._proxy: Optional[nn.Module] = None
        self._proxy_opt: Optional[torch.optim.Optimizer] = None
        self._applied: Optional[dict[str, Tensor]] = None  # gamma * v currently added to the model's weights

    # the wrapper inherits what the wrapped loss needs
    @property
    def needs_double_backprop(self) -> bool:
        return self.inner.needs_double_backprop

    @property
    def supports_amp(self) -> bool:
        return self.inner.supports_amp

    @property
    def batch_coupled(self) -> bool:
        return self.inner.batch_coupled

    def validate(self, batch_size: int) -> None:
        self.inner.validate(batch_size)

    def state_dict(self) -> dict:
        return {"steps_done": self.steps_done, "inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.steps_done = int(state.get("steps_done", 0))
        self.inner.load_state_dict(state.get("inner", {}))

    # --- AWP -------------------------------------------------------------------------------------------------------
    def _proxy_for(self, model: nn.Module) -> nn.Module:
        if self._proxy is None:
            self._proxy = copy.deepcopy(model)
            self._proxy_opt = torch.optim.SGD(self._proxy.parameters(), lr=self.proxy_lr)
        self._proxy.load_state_dict(model.state_dict())
        self._proxy.train()
        return self._proxy

    def weight_perturbation(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[dict[str, Tensor], DefenseOutput]:
        """``gamma * v`` per perturbed weight (Wu et al. Eq. 8-9) from one ascent step of the proxy on the inner loss.

        Returns the perturbation and the proxy's inner output (whose attack was computed on weights equal to the
        model's, and is cached for the model's loss by :meth:`loss`).
        """
        proxy = self._proxy_for(model)
        out = self.inner.loss(proxy, x, y)
        self._proxy_opt.zero_grad(set_to_none=True)
        (-out.loss).backward()  # ascent on the defense loss
        self._proxy_opt.step()
        old, new = perturbable_weights(model), perturbable_weights(proxy)
        with torch.no_grad():
            diff = {}
            for name, w in old.items():
                d = new[name] - w
                diff[name] = self.gamma * w.norm() / (d.norm() + _EPS) * d
        self._proxy_opt.zero_grad(set_to_none=True)
        return diff, out

    def _add(self, model: nn.Module, diff: dict[str, Tensor], sign: float) -> None:
        weights = perturbable_weights(model)
        with torch.no_grad():
            for name, d in diff.items():
                weights[name].add_(d, alpha=sign)

    def after_step(self, model: nn.Module) -> None:
        """Remove the weight perturbation (call right after ``optimizer.step()``) and count the step."""
        if self._applied is not None:
            self._add(model, self._applied, -1.0)
            self._applied = None
        self.steps_done += 1

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> DefenseOutput:
        """Inner attack on ``w``, proxy ascent, ``w += gamma v``, inner loss at the perturbed weights (to backprop)."""
        if self._applied is not None:  # after_step was not called: restore before anything else
            self._add(model, self._applied, -1.0)
            self._applied = None
        if self.gamma == 0 or self.steps_done < self.warmup_steps:
            out = self.inner.loss(model, x, y)
            out.logs = {**out.logs, "awp_active": 0.0}
            return out
        with _cached_attack(self.inner):
            diff, proxy_out = self.weight_perturbation(model, x, y)
            self._add(model, diff, +1.0)
            self._applied = diff
            out = self.inner.loss(model, x, y)
        out.logs = {**out.logs, "awp_active": 1.0, "awp_proxy_loss": float(proxy_out.loss.detach())}
        return out

    def __repr__(self) -> str:
        return (f"AWP(inner={self.inner!r}, gamma={self.gamma:g}, proxy_lr={self.proxy_lr:g}, "
                f"warmup_steps={self.warmup_steps})")


class _cached_attack:
    """Within the block, ``inner.attack`` runs once and its result is reused: the model's loss then sees the same
    adversarial examples as the proxy, generated on the unperturbed weights (as in the official AWP loop)."""

    def __init__(self, inner: Defense):
        self.inner = inner

    def __enter__(self):
        original = getattr(self.inner, "attack", None)
        if original is None:
            return self
        cache = []

        def attack(*args, **kwargs):
            if not cache:
                cache.append(original(*args, **kwargs))
            return cache[0]

        self.inner.attack = attack  # instance attribute shadows the method
        return self

    def __exit__(self, *exc):
        self.inner.__dict__.pop("attack", None)
        return False


@register_defense("awp")
def awp(inner: Defense | str = "trades", **params) -> AWP:
    """``AWP(inner, ...)``; e.g. ``get_defense("awp", inner="otjr", inner_params={"n_slices": 128}, gamma=5e-3)``."""
    defense = AWP(inner, **params)
    defense.name = f"awp_{defense.inner.name}"
    return defense


def _awp_of(inner_name: str):
    def build(inner_params: Optional[dict] = None, **params) -> AWP:
        defense = AWP(inner_name, inner_params=inner_params, **params)
        defense.name = f"awp_{inner_name}"
        return defense

    build.__name__ = build.__qualname__ = f"awp_{inner_name}"
    build.__doc__ = f"AWP around {inner_name!r} (OTJR Table 3); ``inner_params`` go to {inner_name!r}."
    return build


for _inner in ("trades", "otjr", "pgd_at"):
    register_defense(f"awp_{_inner}")(_awp_of(_inner))
