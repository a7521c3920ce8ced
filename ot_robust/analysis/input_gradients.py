"""Input-gradient magnitude after PGD iterations (OTJR Table 5 and supplementary Table 12).

OTJR reports ``E(||grad_x L_XE||_1)`` "at the pixel level": the mean absolute derivative of the per-example
cross-entropy loss with respect to each input pixel (on the [0, 1] scale), averaged over test images and pixels,
on clean inputs (Table 5 = Table 12 column "Clean") and on Linf-PGD adversarial inputs after 1, 5, 10, 15 and 20
iterations (Table 12). The paper prints the values in units of 1e-4; this module returns raw values.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..attacks import perturb
from ..attacks.losses import ce_loss
from ._common import batches, model_device, take

#: The PGD iteration counts of OTJR Table 12 (0 = clean inputs, Table 5).
TABLE12_STEPS = (0, 1, 5, 10, 15, 20)


def mean_abs_input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example mean over pixels of ``|d CE(f(x_i), y_i) / d x_i|``: shape ``(B,)`` (model used as is)."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")  # sum: each example's gradient is its own CE's gradient
    (g,) = torch.autograd.grad(loss, x)
    return g.abs().flatten(1).mean(1)


def input_gradient_l1(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: Sequence[int] = TABLE12_STEPS,
                      eps: float = 8 / 255, step_size: float = 2 / 255, n_examples: int | None = 1000,
                      batch_size: int = 250, seed: int = 0, progress: bool = True) -> dict[int, float]:
    """Mean pixel-level ``|grad_x CE|`` on clean inputs and after PGD iterations (OTJR Tables 5 and 12).

    Args:
        model: classifier on [0, 1] images; evaluated in eval mode (its previous mode is restored).
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)``.
        steps: PGD iteration counts; 0 means the clean input. Each count is a separate Linf-PGD run (uniform random
            start, step ``step_size``, last iterate) from the clean image, as an attacker stopping after t steps.
        eps, step_size: Linf budget and step on the [0, 1] scale (OTJR: 8/255 and 2/255).
        n_examples: use the first ``n_examples`` images (``None`` = all); batch_size: images per batch.
        seed: seeds the PGD random starts (same start for every step count).
    Returns:
        ``{t: mean |grad|}`` (raw values; multiply by 1e4 to compare with the paper's printed numbers).
    Raises:
        ValueError: a negative or non-integer step count, bad shapes, eps/step_size rejected by :func:`perturb`.
    """
    steps = [int(t) for t in steps]
    if any(t < 0 for t in steps) or not steps:
        raise ValueError(f"steps={steps!r} must be a non-empty list of integers >= 0")
    x, y = take(x, y, n_examples)
    device = model_device(model)
    was_training = model.training
    model.eval()
    sums = {t: 0.0 for t in steps}
    try:
        for sl in batches(x.shape[0], batch_size, progress, desc="input gradients"):
            xb, yb = x[sl].to(device), y[sl].to(device)
            for t in steps:
                gen = torch.Generator(device=device).manual_seed(seed + sl.start)
                xt = xb if t == 0 else perturb(model, xb, yb, ce_loss, eps, step_size, t, norm="linf",
                                               init="uniform", keep_best=False, generator=gen)
                sums[t] += float(mean_abs_input_gradient(model, xt, yb).sum())
    finally:
        model.train(was_training)
    return {t: s / x.shape[0] for t, s in sums.items()}
