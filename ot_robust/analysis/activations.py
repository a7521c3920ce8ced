"""Channel-wise activation magnitudes at the penultimate layer (OTJR Fig. 2 and Fig. 8; Bai et al., ICLR 2021).

For each channel c of the penultimate layer: ``mean_n |z_{n,c}|`` over clean images and over their PGD-20 adversarial
counterparts; channels are sorted in descending order of the clean magnitude. The penultimate layer is what
``model(x, return_features=True)`` returns (the input of the final linear layer): for the ResNets/WRNs and small_cnn
it is the global average pool of the last convolutional stage, i.e. exactly the per-channel spatial mean of the last
(post-ReLU) feature map that Bai et al. plot; for cw_cnn it is the 200-d second fully connected layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from ._common import Perturbation, apply_in_batches, take
from .tsne import extract_features


@dataclass
class ActivationMagnitudes:
    """Mean |activation| per penultimate channel.

    Attributes:
        clean: ``(D,)`` mean absolute activation on clean images (in channel order).
        adversarial: ``(D,)`` the same on adversarial images.
        order: ``(D,)`` channel indices sorted by descending clean magnitude (``clean[order]`` is non-increasing).
    """

    clean: np.ndarray
    adversarial: np.ndarray
    order: np.ndarray


def activation_magnitudes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Perturbation,
                          n_examples: int | None = None, batch_size: int = 256,
                          progress: bool = True) -> ActivationMagnitudes:
    """Mean |penultimate activation| per channel for clean ``x`` and ``attack(model, x, y)``.

    Args:
        model: a classifier of the :mod:`ot_robust.models` contract (``feature_dim = D``).
        x, y: images ``(N, C, H, W)`` in [0, 1], labels ``(N,)``; the first ``n_examples`` are used.
        attack: ``attack(model, x, y) -> x_adv``; the papers use PGD-20 (``ot_robust.analysis.pgd(eps, 20)``).
    Returns:
        :class:`ActivationMagnitudes` with ``(D,)`` arrays.
    """
    x, y = take(x, y, n_examples)
    x_adv = apply_in_batches(attack, model, x, y, batch_size, progress, "PGD")
    clean, _ = extract_features(model, x, "penultimate", batch_size, progress)
    adv, _ = extract_features(model, x_adv, "penultimate", batch_size, progress)
    clean_mag, adv_mag = np.abs(clean).mean(0), np.abs(adv).mean(0)
    order = np.argsort(-clean_mag, kind="stable")
    return ActivationMagnitudes(clean_mag, adv_mag, order)


def plot_activation_magnitudes(results: Mapping[str, ActivationMagnitudes], sharey: bool = True) -> plt.Figure:
    """One bar panel per method: clean and adversarial magnitudes, channels sorted by the clean magnitude.

    Raises:
        ValueError: empty ``results``.
    """
    from ..core.style import use_style

    use_style()
    if not results:
        raise ValueError("results is empty: nothing to plot")
    k = len(results)
    ncol = min(k, 3)
    nrow = -(-k // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.0 * nrow), squeeze=False, sharey=sharey)
    for ax, (name, r) in zip(axes.flat, results.items()):
        pos = np.arange(len(r.order))
        ax.bar(pos, r.clean[r.order], width=1.0, alpha=0.6, label="clean", color="tab:blue")
        ax.bar(pos, r.adversarial[r.order], width=1.0, alpha=0.6, label="adversarial (PGD-20)", color="tab:red")
        ax.set_title(name)
        ax.set_xlabel("channel (sorted by clean magnitude)")
        ax.set_ylabel("mean |activation| (a.u.)")
        ax.set_xlim(-0.5, len(pos) - 0.5)
    for ax in list(axes.flat)[k:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
