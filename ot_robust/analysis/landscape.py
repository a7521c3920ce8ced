"""Loss landscapes around natural images (FS paper Fig. 4; Zhang & Wang 2019, after Tramer et al. 2018).

The cross-entropy loss is evaluated on the plane ``x + a * d_a + b * d_r`` where ``d_a = sign(grad_x CE(f(x), y))``
is the adversarial (FGSM) direction and ``d_r`` a Rademacher vector (i.i.d. +-1 pixels). Both directions have unit
Linf norm, so ``a`` and ``b`` are Linf distances on the [0, 1] pixel scale. A flat, low surface is what a robust model
shows; a standard model's loss rises steeply along ``d_a``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._common import model_device, take
from ._plane import evaluate_plane, symmetric_grid


@dataclass
class LossLandscape:
    """CE loss on a grid around each input.

    Attributes:
        alphas: ``(G,)`` coordinates along ``d_a`` (Linf distance, [0, 1] pixel scale); ``alphas[G // 2] == 0``.
        betas: ``(G,)`` coordinates along ``d_r`` (same units).
        loss: ``(N, G, G)`` per-example cross-entropy (nats); ``loss[n, i, j]`` is at
            ``x_n + alphas[i] d_a + betas[j] d_r``,
            so ``loss[:, G // 2, G // 2]`` is the model's loss on the inputs themselves.
        labels: ``(N,)`` true labels.
    """

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    labels: np.ndarray


def adversarial_direction(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``sign(grad_x CE(f(x), y))`` ``(N, C, H, W)``: the FGSM direction (model in eval mode, no parameter grads)."""
    was_training = model.training
    model.eval()
    try:
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(x), y, reduction="sum")
            (g,) = torch.autograd.grad(loss, x)
    finally:
        model.train(was_training)
    return g.sign()


def loss_landscape(model: nn.Module, x: torch.Tensor, y: torch.Tensor, radius: float = 8 / 255,
                   n_points: int = 21, n_examples: int | None = None, seed: int = 0, clamp: bool = False,
                   batch_size: int = 1024, progress: bool = True) -> LossLandscape:
    """CE loss of ``model`` over a ``n_points x n_points`` grid in ``[-radius, radius]^2`` around each input.

    Args:
        model: a classifier of the :mod:`ot_robust.models` contract.
        x, y: images ``(N, C, H, W)`` in [0, 1], labels ``(N,)``; the first ``n_examples`` are used.
        radius: half-width of the grid along each direction (Linf distance on the [0, 1] pixel scale; e.g. eps).
        n_points: grid points per axis (odd, so that the centre is the input itself).
        seed: seed of the Rademacher direction ``d_r`` (one per input).
        clamp: clamp grid images to [0, 1] (off: the paper's plane, and the centre is exact).
        batch_size: images per forward pass; total cost ``N * n_points**2`` forward passes.
    Returns:
        :class:`LossLandscape` with ``loss`` of shape ``(N, n_points, n_points)``.
    Raises:
        ValueError: even or too small ``n_points``, ``radius`` <= 0, bad shapes.
    """
    x, y = take(x, y, n_examples)
    grid = symmetric_grid(radius, n_points)
    dev = model_device(model)
    x, y = x.to(dev), y.to(dev)
    d_a = adversarial_direction(model, x, y)
    gen = torch.Generator().manual_seed(seed)
    d_r = (torch.randint(0, 2, x.shape, generator=gen) * 2 - 1).to(x)
    loss = evaluate_plane(model, x, y, d_a, d_r, grid, grid, lambda z, t: F.cross_entropy(z, t, reduction="none"),
                          clamp=clamp, batch_size=batch_size, progress=progress, desc="loss landscape")
    return LossLandscape(grid.numpy(), grid.numpy(), loss.numpy(), y.cpu().numpy())


def plot_loss_landscapes(landscapes: Mapping[str, LossLandscape], index: int = 0, zmax: float | None = None,
                         cmap: str = "viridis") -> plt.Figure:
    """One column per model (``landscapes`` key): a 3-D surface (top) and a contour plot (bottom) of input ``index``.

    All surfaces share the z-range (``zmax`` defaults to the largest loss shown) so that flatness is comparable.

    Raises:
        ValueError: empty ``landscapes`` or ``index`` out of range.
    """
    from ..core.style import use_style

    use_style()
    if not landscapes:
        raise ValueError("landscapes is empty: nothing to plot")
    for name, ls in landscapes.items():
        if not 0 <= index < ls.loss.shape[0]:
            raise ValueError(f"index={index} out of range for {name!r} with {ls.loss.shape[0]} inputs")
    top = zmax if zmax is not None else max(float(ls.loss[index].max()) for ls in landscapes.values())
    k = len(landscapes)
    fig = plt.figure(figsize=(3.6 * k, 6.6))
    for col, (name, ls) in enumerate(landscapes.items()):
        a, b = np.meshgrid(ls.alphas, ls.betas, indexing="ij")
        z = ls.loss[index]
        ax = fig.add_subplot(2, k, col + 1, projection="3d")
        ax.plot_surface(a, b, z, cmap=cmap, vmin=0, vmax=top, linewidth=0, antialiased=True)
        ax.set_zlim(0, top)
        ax.set_xlabel("$d_a$ step (Linf, [0,1])", fontsize=8)
        ax.set_ylabel("$d_r$ step (Linf, [0,1])", fontsize=8)
        ax.set_zlabel("CE loss (nats)", fontsize=8)
        ax.set_title(name)
        ax.tick_params(labelsize=7)
        ax2 = fig.add_subplot(2, k, k + col + 1)
        cs = ax2.contourf(a, b, z, levels=np.linspace(0, top, 16), cmap=cmap, extend="max")
        ax2.plot(0, 0, "w+", ms=10, mew=2)
        ax2.grid(False)
        ax2.set_xlabel("$d_a$: adversarial direction (Linf distance, [0,1] scale)", fontsize=8)
        ax2.set_ylabel("$d_r$: Rademacher direction (Linf distance)", fontsize=8)
        ax2.set_aspect("equal")
        fig.colorbar(cs, ax=ax2, label="CE loss (nats)", shrink=0.8)
    fig.tight_layout()
    return fig
