"""TRADES (Zhang et al., ICML 2019, Eq. 5 and Alg. 1; official ``trades.py``/``trades_loss``).

    min_theta E[ CE(f(x), y) + beta * max_{x' in B(x, eps)} KL( f(x) || f(x') ) ]

Inner maximisation: x'^0 = x + 0.001 N(0, I), then K steps of PGD on ``KL(softmax f(x) || softmax f(x'))``
(step alpha, sign, projection), generated with ``model.eval()``; the loss is then computed in train mode.
Random start as the official code (``trades.py``, ``trades_loss``, line 31): the first gradient is taken at the
unclipped ``x + 0.001 N(0, I)`` and the box [0, 1] is applied after each step (``clip_start=False``, the default;
``clip_start=True`` projects the start into the box first, as runs made before the option did).
Official CIFAR-10 setting: eps 0.031, alpha 0.007, K 10, beta 6; MNIST: 0.3 / 0.01 / 40, beta 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import model_mode, perturb
from ..core.validation import check_number
from .base import Defense, DefenseOutput, attack_params, register_defense


def kl_clean_adv(logits: Tensor, logits_adv: Tensor) -> Tensor:
    """Per-example ``KL(softmax(logits) || softmax(logits_adv))``, shape (B,) (TRADES' ``KLDivLoss`` summed)."""
    return F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1), reduction="none").sum(1)


def trades_perturb(model: nn.Module, x: Tensor, eps: float, step_size: float, steps: int,
                   init_std: float = 0.001, clip_start: bool = False) -> Tensor:
    """TRADES Alg. 1, inner loop: x' maximising ``KL(f(x) || f(x'))`` from ``x + init_std N(0, I)``, in eval mode
    (clean logits from the eval-mode model, as TRADES' code); last iterate. Shapes as ``x`` (B, C, H, W) in [0, 1].
    ``clip_start``: see the module docstring (False: the official unclipped start)."""
    with torch.no_grad(), model_mode(model):
        logits_clean = model(x)
    return perturb(model, x, None, lambda la, _: kl_clean_adv(logits_clean, la), eps, step_size, steps,
                   init="normal", init_std=init_std, keep_best=False, clip_start=clip_start)


@register_defense("trades")
class TRADES(Defense):
    """TRADES: ``CE(f(x), y) + beta * KL(f(x) || f(x'))`` with x' from KL-PGD (see the module docstring).

    Args:
        eps (>= 0), step_size (> 0), steps (>= 1): the KL adversary on the [0, 1] pixel scale.
        beta: trade-off (>= 0; TRADES CIFAR-10: 6). init_std: std of the Gaussian start (0.001).
        clip_start: False (default, the official code) takes the first gradient at the unclipped start; True
            projects it into [0, 1] first (recorded in ``config.json``; older runs resume with True).
    Raises:
        ValueError: eps < 0, step_size <= 0, steps < 1, beta < 0, init_std < 0.
    """

    recorded = {"clip_start": (False, True)}

    def __init__(self, eps: float = 8 / 255, step_size: float = 0.007, steps: int = 10, beta: float = 6.0,
                 init_std: float = 0.001, clip_start: bool = False):
        super().__init__()
        self.clip_start = bool(clip_start)
        self.eps, self.step_size, self.steps = attack_params(eps, step_size, steps)
        self.beta = check_number("beta", beta)
        self.init_std = check_number("init_std", init_std)

    def attack(self, model: nn.Module, x: Tensor, y: Tensor | None = None) -> Tensor:
        """TRADES Alg. 1, inner loop (:func:`trades_perturb`); ``y`` is unused (the attack is label-free)."""
        return trades_perturb(model, x, self.eps, self.step_size, self.steps, self.init_std, self.clip_start)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> DefenseOutput:
        x_adv = self.attack(model, x, y)
        logits = model(x)
        logits_adv = model(x_adv)
        ce = F.cross_entropy(logits, y)
        kl = kl_clean_adv(logits, logits_adv).mean()
        loss = ce + self.beta * kl
        return DefenseOutput(loss=loss, logs={"ce_clean": float(ce.detach()), "kl_adv": float(kl.detach())},
                             logits_adv=logits_adv.detach())
