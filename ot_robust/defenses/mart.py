"""MART, misclassification-aware adversarial training (Wang et al., ICLR 2020, Eq. 13-15; official ``mart.py``).

    L = 1/n sum_i [ BCE(p(x'_i), y_i) + beta * KL( p(x_i) || p(x'_i) ) * (1 - p_{y_i}(x_i)) ]           (Eq. 15)
    BCE(p, y) = -log p_y - log(1 - max_{k != y} p_k)                                                     (Eq. 13)

x' is PGD on CE from x + 0.001 N(0, I) generated with ``model.eval()`` (official code); the loss is computed in
train mode. Random start as the official code (``mart.py``, ``mart_loss``, line 20): the first gradient is taken at
the unclipped start, the box applied after each step (``clip_start=False``, default; True clips it first, as runs made
before the option did). Official CIFAR-10: eps 8/255, step 2/255, 10 steps, beta 6. The small constants (1.0001, 1e-12,
1.0000001) are those of the official code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import ce_loss, perturb
from ..core.validation import check_number
from .base import Defense, DefenseOutput, attack_params, register_defense


@register_defense("mart")
class MART(Defense):
    """MART (Eq. 15). Args: eps (>= 0), step_size (> 0), steps (>= 1), beta (>= 0), clip_start (see the module
    docstring). Raises ValueError on bad values."""

    recorded = {"clip_start": (False, True)}

    def __init__(self, eps: float = 8 / 255, step_size: float = 2 / 255, steps: int = 10, beta: float = 6.0,
                 clip_start: bool = False):
        super().__init__()
        self.clip_start = bool(clip_start)
        self.eps, self.step_size, self.steps = attack_params(eps, step_size, steps)
        self.beta = check_number("beta", beta)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> DefenseOutput:
        x_adv = perturb(model, x, y, ce_loss, self.eps, self.step_size, self.steps, init="normal", init_std=0.001,
                        keep_best=False, clip_start=self.clip_start)
        logits, logits_adv = model(x), model(x_adv)
        p_adv, p_nat = F.softmax(logits_adv, 1), F.softmax(logits, 1)
        top2 = torch.argsort(p_adv, dim=1)[:, -2:]
        wrong = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])          # argmax_{k != y} p_k(x')
        bce = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), wrong)   # Eq. 13
        kl = F.kl_div(torch.log(p_adv + 1e-12), p_nat, reduction="none").sum(1)
        p_true = p_nat.gather(1, y[:, None]).squeeze(1)
        robust = (kl * (1.0000001 - p_true)).mean()                                  # Eq. 14
        loss = bce + self.beta * robust
        return DefenseOutput(loss=loss, logs={"bce_adv": float(bce.detach()), "kl_weighted": float(robust.detach())},
                             logits_adv=logits_adv.detach())
