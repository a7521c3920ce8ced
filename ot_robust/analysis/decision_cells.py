"""Cross sections of decision cells in the input space (OTJR supplement Sec. 5, Fig. 9).

The predicted class is mapped over the plane ``x + a * d_adv + b * d_rand`` through an input ``x``, where ``d_adv`` is
the direction of an adversarial example (``x_adv - x``, e.g. PGD) and ``d_rand`` a random Gaussian direction made
orthogonal to it (Gram-Schmidt); both have unit L2 norm, so the plane is an isometric copy of R^2 and ``a``, ``b``
are L2 distances on the [0, 1] pixel scale. The threat-model ball ``||a d_adv + b d_rand||_p <= eps`` is drawn as
the level set of the exact norm over the grid (a circle for L2, a polygon for Linf). A larger cell of the clean
prediction around the centre means a more robust model (OTJR: "extending the decision boundaries").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from torch import nn

from ._common import Perturbation, apply_in_batches, model_device, take
from ._plane import evaluate_plane, symmetric_grid

NORMS = ("linf", "l2")


@dataclass
class DecisionCells:
    """Predicted classes on a plane through each input.

    Attributes:
        alphas: ``(G,)`` coordinates along ``d_adv`` (L2 distance, [0, 1] pixel scale); ``alphas[G // 2] == 0``.
        betas: ``(G,)`` coordinates along ``d_rand`` (same units).
        pred: ``(N, G, G)`` predicted class at ``x_n + alphas[i] d_adv + betas[j] d_rand``; the centre
            ``pred[:, G // 2, G // 2]`` is the model's prediction on the inputs.
        ball: ``(N, G, G)`` threat-model norm (``norm``) of each grid point's offset from ``x_n``.
        labels: ``(N,)`` true labels.
        eps: the threat-model radius drawn; ``norm``: ``"linf"`` or ``"l2"``.
    """

    alphas: np.ndarray
    betas: np.ndarray
    pred: np.ndarray
    ball: np.ndarray
    labels: np.ndarray
    eps: float
    norm: str

    def cell_fraction(self) -> np.ndarray:
        """``(N,)`` fraction of the grid points inside the eps-ball predicted as at the centre (1 = no flip)."""
        g = len(self.alphas) // 2
        inside = self.ball <= self.eps
        same = self.pred == self.pred[:, g, g][:, None, None]
        return (same & inside).sum((1, 2)) / np.maximum(inside.sum((1, 2)), 1)


def orthonormal_directions(x: torch.Tensor, x_adv: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-L2 ``d_adv`` along ``x_adv - x`` and a random unit-L2 ``d_rand`` orthogonal to it, both ``(N, C, H, W)``.

    An input whose adversarial example did not move (``x_adv == x``) gets a second random direction as ``d_adv``.
    """
    gen = torch.Generator().manual_seed(seed)
    flat = (x_adv - x).flatten(1).double()
    r1 = torch.randn(flat.shape, generator=gen, dtype=torch.float64).to(flat.device)
    r2 = torch.randn(flat.shape, generator=gen, dtype=torch.float64).to(flat.device)
    norm = flat.norm(dim=1, keepdim=True)
    d1 = torch.where(norm > 1e-12, flat, r1)
    d1 = d1 / d1.norm(dim=1, keepdim=True)
    d2 = r2 - (r2 * d1).sum(1, keepdim=True) * d1
    d2 = d2 / d2.norm(dim=1, keepdim=True)
    return d1.view_as(x).to(x.dtype), d2.view_as(x).to(x.dtype)


def _plane_norms(d1: torch.Tensor, d2: torch.Tensor, alphas: torch.Tensor, betas: torch.Tensor, norm: str):
    """``(N, G, G)`` norm of ``a d1 + b d2`` for every grid point (L2: exact by orthonormality)."""
    a, b = torch.meshgrid(alphas.double(), betas.double(), indexing="ij")
    if norm == "l2":
        return (a**2 + b**2).sqrt().expand(d1.shape[0], -1, -1)
    f1, f2 = d1.flatten(1).double().cpu(), d2.flatten(1).double().cpu()  # (N, D)
    # one grid row (fixed a) at a time keeps memory at N * G * D
    rows = [(ai * f1[:, None, :] + betas.double()[None, :, None] * f2[:, None, :]).abs().amax(-1) for ai in a[:, 0]]
    return torch.stack(rows, 1)


def decision_cells(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Perturbation, eps: float,
                   norm: str = "linf", radius: float | None = None, n_points: int = 51,
                   n_examples: int | None = None, seed: int = 0, clamp: bool = False, batch_size: int = 1024,
                   progress: bool = True) -> DecisionCells:
    """Predicted class over a ``n_points x n_points`` grid on the (adversarial, random) plane through each input.

    Args:
        model: a classifier of the :mod:`ot_robust.models` contract.
        x, y: images ``(N, C, H, W)`` in [0, 1], labels ``(N,)``; the first ``n_examples`` are used.
        attack: ``attack(model, x, y) -> x_adv`` giving the adversarial direction (e.g. PGD-20 with budget ``eps``).
        eps, norm: the threat-model ball drawn (``norm`` in ``"linf"``, ``"l2"``; eps on the [0, 1] scale).
        radius: half-width of the grid (L2 distance); ``None`` = 1.5 x the ball's largest extent along either axis
            over the inputs, so the whole ball is in view.
        n_points: odd number of grid points per axis (the centre is the input itself).
        clamp: clamp grid images to [0, 1] (off: the exact plane).
        batch_size: images per forward pass; total cost ``N * n_points**2`` forward passes.
    Returns:
        :class:`DecisionCells` with ``pred`` of shape ``(N, n_points, n_points)``.
    Raises:
        ValueError: unknown ``norm``, ``eps`` <= 0, even ``n_points``, bad shapes.
    """
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r}; allowed: {NORMS}")
    if not eps > 0:
        raise ValueError(f"eps={eps!r} must be > 0 (on the [0, 1] pixel scale)")
    x, y = take(x, y, n_examples)
    dev = model_device(model)
    x, y = x.to(dev), y.to(dev)
    x_adv = apply_in_batches(attack, model, x, y, max(1, batch_size // 8), progress, "attack")
    d1, d2 = orthonormal_directions(x, x_adv, seed)
    if radius is None:
        if norm == "l2":
            radius = 1.5 * eps
        else:  # along a unit-L2 direction d the Linf ball ends at t = eps / ||d||_inf
            ext = torch.maximum(d1.flatten(1).abs().amax(1).reciprocal(), d2.flatten(1).abs().amax(1).reciprocal())
            radius = 1.5 * eps * float(ext.max())
    grid = symmetric_grid(radius, n_points)
    pred = evaluate_plane(model, x, y, d1, d2, grid, grid, lambda z, t: z.argmax(1), clamp=clamp,
                          batch_size=batch_size, progress=progress, desc="decision cells")
    ball = _plane_norms(d1, d2, grid, grid, norm)
    return DecisionCells(grid.numpy(), grid.numpy(), pred.long().numpy(), ball.float().numpy(), y.cpu().numpy(),
                         float(eps), norm)


def plot_decision_cells(cells: Mapping[str, DecisionCells], max_inputs: int = 4,
                        class_names: list[str] | None = None) -> plt.Figure:
    """Gallery: one row per input, one column per model (``cells`` key); colour = predicted class, black = eps-ball.

    Raises:
        ValueError: empty ``cells``.
    """
    from ..core.style import use_style

    use_style()
    if not cells:
        raise ValueError("cells is empty: nothing to plot")
    n = min(max_inputs, min(c.pred.shape[0] for c in cells.values()))
    k = len(cells)
    num_classes = int(max(max(c.pred.max(), c.labels.max()) for c in cells.values())) + 1
    base = plt.get_cmap("tab10" if num_classes <= 10 else "tab20")
    cmap = ListedColormap([base(i % base.N) for i in range(num_classes)])
    fig, axes = plt.subplots(n, k, figsize=(2.9 * k + 1.2, 2.6 * n), squeeze=False)
    for col, (name, c) in enumerate(cells.items()):
        ext = [c.alphas[0], c.alphas[-1], c.betas[0], c.betas[-1]]
        a, b = np.meshgrid(c.alphas, c.betas, indexing="ij")
        frac = c.cell_fraction()
        for row in range(n):
            ax = axes[row, col]
            ax.imshow(c.pred[row].T, origin="lower", extent=ext, cmap=cmap, vmin=-0.5, vmax=num_classes - 0.5,
                      interpolation="nearest", aspect="auto")
            ax.contour(a, b, c.ball[row], levels=[c.eps], colors="k", linewidths=1.5)
            ax.plot(0, 0, "w+", ms=9, mew=2)
            ax.grid(False)
            g = len(c.alphas) // 2
            ax.set_title(f"{name}: y={c.labels[row]}, pred={c.pred[row, g, g]}, "
                         f"cell {100 * frac[row]:.0f}%", fontsize=8)
            if row == n - 1:
                ax.set_xlabel("adversarial direction (L2 distance, [0,1] scale)", fontsize=8)
            if col == 0:
                ax.set_ylabel("random orthogonal direction (L2)", fontsize=8)
            ax.tick_params(labelsize=7)
    names = class_names or [str(i) for i in range(num_classes)]
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i), label=names[i]) for i in range(num_classes)]
    handles.append(plt.Line2D([], [], color="k", label=f"{next(iter(cells.values())).norm} eps-ball"))
    fig.legend(handles=handles, loc="center right", title="predicted class", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1 - 1.1 / (2.9 * k + 1.2), 1))
    return fig
