"""Evaluating a model on a 2-D plane through each input: ``x + a * d1 + b * d2`` for a grid of ``(a, b)``.

Shared by the loss landscapes (FS Fig. 4) and the decision-cell cross sections (OTJR supp. Fig. 9).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ._common import batches, model_device


def symmetric_grid(radius: float, n_points: int) -> torch.Tensor:
    """``n_points`` values evenly spaced in ``[-radius, radius]`` whose middle value is exactly 0.

    Raises:
        ValueError: ``n_points`` not an odd integer >= 3 or ``radius`` not > 0.
    """
    if int(n_points) != n_points or n_points < 3 or n_points % 2 == 0:
        raise ValueError(f"n_points={n_points!r} must be an odd integer >= 3 (the grid centre must be the input)")
    if not radius > 0:
        raise ValueError(f"radius={radius!r} must be > 0 (on the [0, 1] pixel scale)")
    k = int(n_points) // 2
    return torch.arange(-k, k + 1, dtype=torch.float64).mul(radius / k).float()


@torch.no_grad()
def evaluate_plane(model: nn.Module, x: torch.Tensor, y: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor,
                   alphas: torch.Tensor, betas: torch.Tensor,
                   fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], clamp: bool = False,
                   batch_size: int = 1024, progress: bool = True, desc: str = "plane") -> torch.Tensor:
    """``fn(model(x_n + alphas[i] d1_n + betas[j] d2_n), y_n)`` for every input n and grid point (i, j).

    Args:
        x, d1, d2: ``(N, C, H, W)`` inputs and the two directions per input; ``y`` ``(N,)``.
        alphas, betas: ``(A,)`` and ``(B,)`` coordinates along ``d1`` and ``d2``.
        fn: ``(logits (M, K), labels (M,)) -> (M,)`` values (e.g. per-example CE or argmax).
        clamp: clamp the points to the image box [0, 1] (off by default: the plane is then exact and the grid centre
            is ``x`` itself).
        batch_size: number of images per forward pass.
    Returns:
        ``(N, A, B)`` tensor on the CPU (model in eval mode; its previous mode is restored).
    """
    n, a, b = x.shape[0], alphas.numel(), betas.numel()
    dev = model_device(model)
    ga, gb = torch.meshgrid(alphas, betas, indexing="ij")
    coef = torch.stack([ga.reshape(-1), gb.reshape(-1)], 1).to(dev)  # (A*B, 2)
    total = n * a * b
    out = torch.empty(total)
    x, y, d1, d2 = x.to(dev), y.to(dev), d1.to(dev), d2.to(dev)
    shape = (-1,) + (1,) * (x.dim() - 1)
    was_training = model.training
    model.eval()
    try:
        for s in batches(total, batch_size, progress, desc):
            idx = torch.arange(s.start, s.stop, device=dev)
            img, pt = idx // (a * b), idx % (a * b)
            pts = x[img] + coef[pt, 0].view(shape) * d1[img] + coef[pt, 1].view(shape) * d2[img]
            if clamp:
                pts = pts.clamp(0, 1)
            out[s] = fn(model(pts), y[img]).float().cpu()
    finally:
        model.train(was_training)
    return out.view(n, a, b)
