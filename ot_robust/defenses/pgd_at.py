"""Madry et al. (2018) PGD adversarial training: FS paper Eq. (1)-(2).

    min_theta E[ max_{x' in B(x, eps)} CE(f_theta(x'), y) ]                                   (FS Eq. 1)
    x^{t+1} = P_{S_x}( x^t + alpha * sign(grad_x CE(f_theta(x^t), y)) ),  x^0 ~ U(B(x, eps))   (FS Eq. 2)

K steps of size alpha from a uniform random start; the model is trained on the last iterate (no per-example
"best" selection, as in Madry's code). FS Sec. 5: CIFAR-10 K = 7, alpha = 2/255, eps = 8/255.

Random start as Madry's code (MadryLab ``cifar10_challenge``, ``pgd_attack.py``, ``LinfPGDAttack.perturb``): the
uniform start is clipped to the pixel range before the first gradient (our loop's default, ``clip_start=True``).
The OTJR authors' PGD baseline (``losses/PGD.py``) starts instead at the unclipped ``x + 0.001 N(0, I)``; the study
trains Madry's.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import ce_loss, perturb
from .base import Defense, DefenseOutput, attack_params, register_defense


@register_defense("pgd_at")
class PGDAT(Defense):
    """Madry PGD-AT: CE on K-step PGD adversarial images.

    Args:
        eps: Linf budget on the [0, 1] pixel scale (>= 0). step_size: alpha (> 0). steps: K (>= 1).
        random_start: uniform start in the eps-ball (Madry) or start at x.
        attack_eval: generate the attack with the model in eval mode (BatchNorm running statistics, not updated by
            the attack forwards; the mode is restored). ``False`` attacks in train mode (as Madry's TF code did).
    Raises:
        ValueError: eps < 0, step_size <= 0, steps < 1, or (without ``random_start``) a single step larger than
            eps (:func:`ot_robust.core.validation.check_step`: the projection would cut it back).
    """

    def __init__(self, eps: float = 8 / 255, step_size: float = 2 / 255, steps: int = 7, random_start: bool = True,
                 attack_eval: bool = True):
        super().__init__()
        self.eps, self.step_size, self.steps = attack_params(eps, step_size, steps, bool(random_start))
        self.random_start, self.attack_eval = bool(random_start), bool(attack_eval)

    def attack(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """FS Eq. (2): the K-step PGD adversary (last iterate)."""
        return perturb(model, x, y, ce_loss, self.eps, self.step_size, self.steps,
                       init="uniform" if self.random_start else "none", keep_best=False, eval_mode=self.attack_eval)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> DefenseOutput:
        x_adv = self.attack(model, x, y)
        logits_adv = model(x_adv)
        loss = F.cross_entropy(logits_adv, y)
        return DefenseOutput(loss=loss, logs={"ce_adv": float(loss.detach())}, logits_adv=logits_adv.detach())
