"""Per-example attack losses (the loop in :mod:`ot_robust.attacks.loop` maximizes them).

* :func:`ce_loss`: cross-entropy, the PGD loss of Madry et al. (2018), FS paper Eq. (2).
* :func:`cw_margin_loss`: the Carlini & Wagner (2017) margin loss (their f_6) used *inside PGD*, as the FS paper
  (Sec. 5, "CW-loss within the PGD framework") and its code (``CWLoss``) do.

Both take logits ``(B, C)`` and integer labels ``(B,)`` and return a ``(B,)`` tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per example: ``-log softmax(logits)[y]``, shape ``(B,)``."""
    return F.cross_entropy(logits, y, reduction="none")


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``z_y - max_{j != y} z_j`` per example, shape ``(B,)`` (positive = classified as ``y``)."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return z_y - other


def cw_margin_loss(logits: torch.Tensor, y: torch.Tensor, kappa: float = 0.0, targeted: bool = False) -> torch.Tensor:
    """Carlini & Wagner (2017) margin loss f_6 for use inside PGD, shape ``(B,)``.

    Untargeted (``y`` = true label, to be *maximized*): ``min(max_{j!=y} z_j - z_y, kappa)``. This equals the FS
    code's ``-clamp(z_y - max_other + kappa, min=0)`` up to the constant ``kappa`` (same gradient): the ascent stops
    once the example is misclassified with margin ``kappa``.

    Targeted (``y`` = target label, to be *minimized*, as :func:`~ot_robust.attacks.loop.perturb` does with
    ``targeted=True``): ``max(max_{j!=y} z_j - z_y, -kappa)``.

    Raises:
        ValueError: ``kappa < 0``.
    """
    if kappa < 0:
        raise ValueError(f"kappa={kappa!r} must be >= 0")
    m = -margin(logits, y)
    return m.clamp(min=-kappa) if targeted else m.clamp(max=kappa)


LOSSES = {"ce": ce_loss, "cw": cw_margin_loss}
