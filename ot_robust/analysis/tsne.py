"""t-SNE of features of clean, supervised-adversarial and feature-scattering-perturbed images.

Regenerates FS supplement Fig. 2 (Zhang & Wang 2019: rows Standard / Proposed model, columns clean / standard
(supervised PGD) attack / feature scattering) and GOT Fig. 6 (penultimate-layer features against PGD-20, TRADES vs
GOT-TRADES-LM). Points are coloured by their true label.

By default one t-SNE is fitted per model on the union of its panels (``joint=True``), so the panels of a row share
coordinates and the movement of the clusters under each perturbation is visible; ``joint=False`` fits one t-SNE per
panel as separate clusterings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from ._common import Perturbation, apply_in_batches, batches, model_device, take

LAYERS = ("penultimate", "logits")
EXACT_MAX = 2000  # points up to which t-SNE runs the exact O(N^2) method


@dataclass
class TSNEResult:
    """The t-SNE of one model's features.

    Attributes:
        embeddings: panel name -> ``(N, 2)`` t-SNE coordinates (no unit).
        features: panel name -> ``(N, D)`` features (``D = model.feature_dim`` or ``num_classes`` for logits).
        labels: ``(N,)`` true labels.
        predictions: panel name -> ``(N,)`` predicted labels on the (perturbed) images.
    """

    embeddings: dict[str, np.ndarray]
    features: dict[str, np.ndarray]
    labels: np.ndarray
    predictions: dict[str, np.ndarray] = field(default_factory=dict)


@torch.no_grad()
def extract_features(model: nn.Module, x: torch.Tensor, layer: str = "penultimate", batch_size: int = 256,
                     progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(N, D)`` and predictions ``(N,)`` of images ``x`` ``(N, C, H, W)`` in [0, 1] (model in eval mode).

    ``layer``: ``"penultimate"`` (``model(x, return_features=True)``) or ``"logits"``.

    Raises:
        ValueError: unknown ``layer``.
    """
    if layer not in LAYERS:
        raise ValueError(f"layer={layer!r}; allowed: {LAYERS}")
    was_training = model.training
    model.eval()
    dev = model_device(model)
    feats, preds = [], []
    try:
        for s in batches(len(x), batch_size, progress, "features"):
            logits, f = model(x[s].to(dev), return_features=True)
            feats.append((logits if layer == "logits" else f).float().cpu())
            preds.append(logits.argmax(1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(feats).numpy(), torch.cat(preds).numpy()


def tsne_features(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  perturbations: Mapping[str, Perturbation | None], n_examples: int | None = None,
                  layer: str = "penultimate", joint: bool = True, perplexity: float = 30.0, max_iter: int = 1000,
                  seed: int = 0, batch_size: int = 256, progress: bool = True) -> TSNEResult:
    """Features of ``x`` under each perturbation, embedded in 2-D by scikit-learn's TSNE (fixed ``seed``).

    Args:
        model: a classifier of the :mod:`ot_robust.models` contract.
        x, y: images ``(N, C, H, W)`` in [0, 1] and labels ``(N,)``; the first ``n_examples`` are used.
        perturbations: panel name -> ``attack(model, x, y) -> x_pert`` (``None`` = clean images), e.g.
            ``{"clean": None, "PGD-20": pgd(eps), "feature scattering": feature_scattering(eps)}``.
        layer: ``"penultimate"`` (FS supp. Fig. 2, GOT Fig. 6) or ``"logits"``.
        joint: one t-SNE over all panels (shared coordinates) or one per panel.
        perplexity: t-SNE perplexity (capped at ``(number of points - 1) / 3``).
        max_iter: t-SNE optimisation iterations (>= 250; scikit-learn's default 1000; 500 is enough for a preview).
    Returns:
        :class:`TSNEResult` with ``(N, 2)`` embeddings per panel.
    Raises:
        ValueError: empty ``perturbations``, bad shapes or ``layer``.
    """
    from sklearn.manifold import TSNE

    if not perturbations:
        raise ValueError("perturbations must name at least one panel, e.g. {'clean': None}")
    x, y = take(x, y, n_examples)
    features, preds = {}, {}
    for name, pert in perturbations.items():
        xp = apply_in_batches(pert, model, x, y, batch_size, progress, f"perturb: {name}")
        features[name], preds[name] = extract_features(model, xp, layer, batch_size, progress)

    def embed(f: np.ndarray) -> np.ndarray:
        perp = min(perplexity, max(1.0, (len(f) - 1) / 3))
        f = f.astype(np.float64)
        # Exact t-SNE up to EXACT_MAX points (O(N^2), seconds here), Barnes-Hut beyond. Coincident points (a
        # collapsed feature map, e.g. a model whose features all equal) make scikit-learn's Barnes-Hut quad tree
        # recurse without bound (segfault) and its PCA initialisation divide by zero, so ties are broken by a seeded
        # jitter of 1e-6 of the features' scale (1e-6 absolute for a constant map).
        method = "exact" if len(f) <= EXACT_MAX else "barnes_hut"
        f = f + np.random.default_rng(seed).normal(0, 1e-6 * max(f.std(), 1.0), f.shape)
        tsne = TSNE(n_components=2, perplexity=perp, init="pca", max_iter=max_iter, random_state=seed, method=method)
        return tsne.fit_transform(f).astype(np.float32)

    n = len(x)
    if joint:
        z = embed(np.concatenate(list(features.values())))
        embeddings = {name: z[i * n:(i + 1) * n] for i, name in enumerate(features)}
    else:
        embeddings = {name: embed(f) for name, f in features.items()}
    return TSNEResult(embeddings, features, y.cpu().numpy(), preds)


def plot_tsne_grid(results: Mapping[str, TSNEResult], class_names: list[str] | None = None,
                   point_size: float = 4.0) -> plt.Figure:
    """A grid of t-SNE panels: one row per model (``results`` key), one column per perturbation, coloured by label.

    Raises:
        ValueError: empty ``results``.
    """
    from ..core.style import use_style

    use_style()
    if not results:
        raise ValueError("results is empty: nothing to plot")
    columns = list(next(iter(results.values())).embeddings)
    fig, axes = plt.subplots(len(results), len(columns), figsize=(3.2 * len(columns), 3.0 * len(results)),
                             squeeze=False)
    num_classes = int(max(r.labels.max() for r in results.values())) + 1
    cmap = plt.get_cmap("tab10" if num_classes <= 10 else "tab20")
    for row, (model_name, res) in enumerate(results.items()):
        for col, panel in enumerate(columns):
            ax = axes[row, col]
            z = res.embeddings.get(panel)
            if z is not None:
                ax.scatter(z[:, 0], z[:, 1], c=res.labels, cmap=cmap, vmin=-0.5, vmax=cmap.N - 0.5, s=point_size,
                           linewidths=0)
                if panel in res.predictions:
                    acc = 100 * float(np.mean(res.predictions[panel] == res.labels))
                    ax.text(0.02, 0.02, f"acc {acc:.0f}%", transform=ax.transAxes, fontsize=8)
            ax.set_title(f"{model_name}: {panel}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel("t-SNE dim 2 (a.u.)")
            if row == len(results) - 1:
                ax.set_xlabel("t-SNE dim 1 (a.u.)")
    names = class_names or [str(k) for k in range(num_classes)]
    handles = [plt.Line2D([], [], marker="o", ls="", color=cmap(k), label=names[k]) for k in range(num_classes)]
    fig.legend(handles=handles, loc="center right", title="true label", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    return fig
