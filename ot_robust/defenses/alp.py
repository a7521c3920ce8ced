"""Adversarial logit pairing, ALP (Kannan, Kurakin & Goodfellow 2018, Sec. 3.2-3.3).

Mixed-minibatch PGD training plus a logit-pairing term (their Eq. in Sec. 3.3)::

    J(M, theta) + lambda * 1/m sum_i L( f(x_i; theta), f(x~_i; theta) ),   L = squared L2 distance of logits

with ``J`` the mixed-minibatch loss ``w * CE(clean) + (1 - w) * CE(adv)`` (w = 0.5: half clean, half adversarial)
and x~ the Madry PGD adversary (uniform start, K sign steps on CE). Kannan et al. use lambda = 0.5 (ImageNet).

Random start: Kannan et al. released no training code; we use Madry's adversary and start (uniform, clipped to
[0, 1] before the first gradient, as :mod:`.pgd_at`). The OTJR authors' ALP (``losses/ALP.py``, their Table 2 row)
starts at the unclipped ``x + 0.001 N(0, I)`` and weights the logit pairing by an MSE mean: a different adversary
start and scale, stated here because the study's ALP row stands beside theirs.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import ce_loss, perturb
from ..core.validation import check_number
from .base import Defense, DefenseOutput, attack_params, register_defense


@register_defense("alp")
class ALP(Defense):
    """ALP: ``w CE(f(x), y) + (1 - w) CE(f(x~), y) + lam * mean_i ||f(x_i) - f(x~_i)||_2^2``.

    Args:
        eps (>= 0), step_size (> 0), steps (>= 1): the PGD adversary. lam: pairing weight (>= 0).
        clean_weight: w in [0, 1] (0.5 = mixed minibatch; 0 = pure adversarial, "ALP" on adversarial only).
    Raises:
        ValueError: bad adversary parameters, lam < 0, clean_weight outside [0, 1].
    """

    def __init__(self, eps: float = 8 / 255, step_size: float = 2 / 255, steps: int = 7, lam: float = 0.5,
                 clean_weight: float = 0.5):
        super().__init__()
        self.eps, self.step_size, self.steps = attack_params(eps, step_size, steps)
        self.lam = check_number("lam", lam)
        self.clean_weight = check_number("clean_weight", clean_weight, high=1.0, high_open=False)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> DefenseOutput:
        x_adv = perturb(model, x, y, ce_loss, self.eps, self.step_size, self.steps, init="uniform", keep_best=False)
        logits, logits_adv = model(x), model(x_adv)
        ce_clean, ce_adv = F.cross_entropy(logits, y), F.cross_entropy(logits_adv, y)
        pair = (logits - logits_adv).pow(2).sum(1).mean()
        loss = self.clean_weight * ce_clean + (1 - self.clean_weight) * ce_adv + self.lam * pair
        logs = {"ce_clean": float(ce_clean.detach()), "ce_adv": float(ce_adv.detach()), "pairing": float(pair.detach())}
        return DefenseOutput(loss=loss, logs=logs, logits_adv=logits_adv.detach())
