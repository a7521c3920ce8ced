"""Toy 2-D illustrations: FS paper Fig. 2 (perturbation schemes) and OTJR Fig. 5 (movement directions).

* FS Fig. 2 (Zhang & Wang 2019): (a) original 2-D data, (b) supervised adversarial perturbations (PGD on the CE of the
  true label) and (c) feature-scattering perturbations (unsupervised, maximizing the OT distance between clean and
  perturbed logits, FS Alg. 1), with the decision boundary of a model trained on clean data. Our data: two moons
  rescaled into [0, 1]^2 (the paper does not say which data it drew); the model: a tiny MLP trained in about a second.
  Points are rows of ``(N, 2)`` tensors in [0, 1], so the same attack loop as for images applies (Linf ball).
* OTJR Fig. 5 (Le et al.): random movement directions uniform on S^1 vs the optimal movement directions of the sliced
  Wasserstein distance between a source (green) and a target (orange) cloud (OTJR Eq. 10-11,
  :func:`ot_robust.ot.sliced_wasserstein`).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._common import Perturbation


class ToyMLP(nn.Module):
    """A 2-``hidden``-``hidden``-K ReLU MLP on ``(N, 2)`` points; ``return_features=True`` also gives the last hidden
    layer (the :mod:`ot_robust.models` contract, so attacks and feature scattering apply unchanged)."""

    def __init__(self, num_classes: int = 2, hidden: int = 32):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, num_classes)

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    @property
    def feature_dim(self) -> int:
        return self.fc.in_features

    def forward(self, x: torch.Tensor, return_features: bool = False):
        h = self.body(x.flatten(1))
        return (self.fc(h), h) if return_features else self.fc(h)


def make_toy_data(n: int = 200, noise: float = 0.08, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved moons (scikit-learn), rescaled into ``[0.1, 0.9]^2``: ``x`` ``(n, 2)`` float, ``y`` ``(n,)``.

    Raises:
        ValueError: ``n`` < 4 or ``noise`` < 0.
    """
    from sklearn.datasets import make_moons

    if int(n) != n or n < 4:
        raise ValueError(f"n={n!r} must be an integer >= 4")
    if noise < 0:
        raise ValueError(f"noise={noise!r} must be >= 0")
    x, y = make_moons(n_samples=int(n), noise=noise, random_state=seed)
    x = (x - x.min(0)) / (x.max(0) - x.min(0)) * 0.8 + 0.1
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)


def train_toy_model(x: torch.Tensor, y: torch.Tensor, hidden: int = 32, steps: int = 400, lr: float = 0.02,
                    seed: int = 0) -> ToyMLP:
    """A :class:`ToyMLP` trained on clean ``(x, y)`` with full-batch Adam (``steps`` updates; about a second on CPU)."""
    torch.manual_seed(seed)
    model = ToyMLP(int(y.max()) + 1, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@dataclass
class ToyPerturbations:
    """FS Fig. 2 data: ``x`` ``(N, 2)``, ``y`` ``(N,)``, perturbed points per scheme ``(N, 2)``, the clean-trained
    model and the Linf budget ``eps`` (on the [0, 1] data scale)."""

    x: torch.Tensor
    y: torch.Tensor
    perturbed: dict[str, torch.Tensor]
    model: ToyMLP
    eps: float


def toy_perturbations(perturbations: dict[str, Perturbation], n: int = 200, eps: float = 0.08, seed: int = 0,
                      train_steps: int = 400) -> ToyPerturbations:
    """FS Fig. 2: toy data, a clean-trained MLP and the data perturbed by each scheme.

    Args:
        perturbations: scheme name -> ``attack(model, x, y) -> x_pert`` with budget ``eps`` (e.g.
            ``{"supervised (PGD)": pgd(eps, 10), "feature scattering": feature_scattering(eps)}``).
        n, seed: number of points and seed of data, model and attacks.
        train_steps: full-batch Adam steps of the clean model (:func:`train_toy_model`).
    """
    x, y = make_toy_data(n, seed=seed)
    model = train_toy_model(x, y, steps=train_steps, seed=seed)
    torch.manual_seed(seed)
    perturbed = {name: p(model, x, y).detach() for name, p in perturbations.items()}
    return ToyPerturbations(x, y, perturbed, model, float(eps))


def _boundary(ax, model: nn.Module, resolution: int = 200) -> None:
    g = torch.linspace(0, 1, resolution)
    gx, gy = torch.meshgrid(g, g, indexing="xy")
    with torch.no_grad():
        prob = model(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)).softmax(1)[:, 1].view(resolution, resolution)
    ax.contourf(gx, gy, prob, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.25)
    ax.contour(gx, gy, prob, levels=[0.5], colors="k", linewidths=1.2)


def plot_toy_perturbations(toy: ToyPerturbations) -> plt.Figure:
    """FS Fig. 2 panels: (a) original data, then one panel per perturbation scheme, with the clean model's boundary."""
    from ..core.style import use_style

    use_style()
    panels = {"(a) original": toy.x, **{f"({chr(98 + i)}) {k}": v for i, (k, v) in enumerate(toy.perturbed.items())}}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3.2), squeeze=False)
    colors = np.array(["tab:blue", "tab:red", "tab:green", "tab:orange"])[toy.y.numpy() % 4]
    for ax, (title, pts) in zip(axes[0], panels.items()):
        _boundary(ax, toy.model)
        if pts is not toy.x:
            ax.scatter(toy.x[:, 0], toy.x[:, 1], c=colors, s=6, alpha=0.25, linewidths=0)
            for (x0, y0), (x1, y1) in zip(toy.x[::4].tolist(), pts[::4].tolist()):
                ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="-", color="0.4", lw=0.5))
        ax.scatter(pts[:, 0], pts[:, 1], c=colors, s=9, linewidths=0)
        ax.set_title(title)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("feature 1 ([0,1] scale)")
    axes[0, 0].set_ylabel(f"feature 2 ([0,1] scale); Linf eps={toy.eps:g}")
    fig.tight_layout()
    return fig


@dataclass
class MovementDirections:
    """OTJR Fig. 5 data for one (source, target) pair: points ``(n, 2)`` and unit directions ``(n, 2)``."""

    source: np.ndarray
    target: np.ndarray
    random: np.ndarray
    optimal: np.ndarray


def movement_directions(source: torch.Tensor, target: torch.Tensor, n_projections: int = 64,
                        seed: int = 0) -> MovementDirections:
    """Random directions uniform on S^1 and the SW optimal movement directions of ``source`` towards ``target``.

    Args:
        source, target: ``(n, 2)`` point clouds of equal size (source = adversarial, target = clean in OTJR).
        n_projections: K random slices of the sliced Wasserstein distance (OTJR Eq. 9).
    Raises:
        ValueError: (from :func:`ot_robust.ot.sliced_wasserstein`) shapes that differ or are not 2-D.
    """
    from ..ot import sliced_wasserstein

    gen = torch.Generator().manual_seed(seed)
    res = sliced_wasserstein(source.double(), target.double(), n_projections=n_projections, generator=gen)
    rnd = torch.randn(source.shape, generator=gen, dtype=torch.float64)
    rnd = rnd / rnd.norm(dim=1, keepdim=True)
    return MovementDirections(source.numpy(), target.numpy(), rnd.numpy(), res.directions.detach().numpy())


def toy_clouds(kind: str, n: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Source/target 2-D clouds for OTJR Fig. 5: ``"shift"`` (a translated Gaussian) or ``"ring"`` (a Gaussian blob
    to be spread onto a ring). Returns two ``(n, 2)`` float tensors.

    Raises:
        ValueError: unknown ``kind``.
    """
    gen = torch.Generator().manual_seed(seed)
    if kind == "shift":
        src = torch.randn(n, 2, generator=gen) * 0.5
        tgt = torch.randn(n, 2, generator=gen) * 0.5 + torch.tensor([3.0, 1.5])
    elif kind == "ring":
        src = torch.randn(n, 2, generator=gen) * 0.4
        t = torch.rand(n, generator=gen) * 2 * torch.pi
        tgt = torch.stack([t.cos(), t.sin()], 1) * 3 + torch.randn(n, 2, generator=gen) * 0.15
    else:
        raise ValueError(f"kind={kind!r}; allowed: 'shift', 'ring'")
    return src, tgt


def plot_movement_directions(pairs: dict[str, MovementDirections]) -> plt.Figure:
    """OTJR Fig. 5: top row random directions, bottom row SW optimal directions; a column per (source, target)."""
    from ..core.style import use_style

    use_style()
    fig, axes = plt.subplots(2, len(pairs), figsize=(3.4 * len(pairs), 6.4), squeeze=False)
    for col, (name, m) in enumerate(pairs.items()):
        rows = [("random directions on $S^1$", m.random), ("SW optimal directions", m.optimal)]
        for row, (label, d) in enumerate(rows):
            ax = axes[row, col]
            ax.scatter(*m.source.T, s=10, color="tab:green", label="source")
            ax.scatter(*m.target.T, s=10, color="tab:orange", label="target")
            ax.quiver(*m.source.T, *d.T, color="tab:green", angles="xy", scale_units="xy", scale=1.5, width=0.006)
            ax.set_title(f"({chr(97 + row * len(pairs) + col)}) {name}: {label}", fontsize=9)
            ax.set_aspect("equal")
            ax.set_xlabel("$z_1$ (latent units)")
            ax.set_ylabel("$z_2$ (latent units)")
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
