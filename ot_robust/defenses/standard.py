"""Standard training: cross-entropy on the clean images (the "Standard" rows of FS Tables 1-2)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import Defense, DefenseOutput, register_defense


@register_defense("standard")
class Standard(Defense):
    """``min_theta 1/n sum_i CE(f_theta(x_i), y_i)`` on clean images; no parameters."""

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> DefenseOutput:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        return DefenseOutput(loss=loss, logs={"ce_clean": float(loss.detach())}, logits_adv=logits.detach())
