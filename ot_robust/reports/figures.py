"""Result figures shared by the papers' reports: accuracy vs eps / steps (FS Fig. 3, GOT Figs. 2-5) and the PGD loss
over iterations (FS supplement Fig. 1), in the style of :mod:`ot_robust.style`.

Curves come from ``runs/<profile>/eval/<experiment>/curves.json`` (``{"vs_epsilon": {"x": [...], "accuracy":
[...]}, "vs_steps": {...}}``, accuracy in %, epsilon on the [0, 1] pixel scale) and ``loss_curves.json``
(``{"loss": [[...], ...]}`` restarts x (steps + 1)), both written by ``notebooks/20_evaluate.ipynb``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..style import figure


def plot_accuracy_curves(curves: dict[str, dict], title_suffix: str = ""):
    """FS Fig. 3: accuracy (%) vs epsilon (a) and vs PGD iterations (b).

    Args:
        curves: ``{label: {"vs_epsilon": {"x": eps list, "accuracy": % list}, "vs_steps": {"x": steps, ...}}}``;
            a label missing one of the two curves is left out of that panel.
    Returns:
        the matplotlib Figure (two panels).
    Raises:
        ValueError: if ``curves`` is empty.
    """
    if not curves:
        raise ValueError("plot_accuracy_curves needs at least one model's curves")
    fig, axes = figure(ncols=2)
    for key, ax, xlabel, letter in [("vs_epsilon", axes[0, 0], "attack budget $\\epsilon$ ([0,1] pixel scale)", "a"),
                                    ("vs_steps", axes[0, 1], "PGD attack iterations", "b")]:
        for label, c in curves.items():
            if key in c:
                ax.plot(c[key]["x"], c[key]["accuracy"], marker="o", label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"({letter}) accuracy vs {'budget' if letter == 'a' else 'iterations'}{title_suffix}")
    axes[0, 1].legend(loc="best")
    fig.tight_layout()
    return fig


def plot_loss_curves(loss: Sequence[Sequence[float]], label: str = "", loss_name: str = "cross-entropy"):
    """FS supplement Fig. 1: the attack loss over PGD iterations, one thin line per random start + their mean.

    Args:
        loss: restarts x (steps + 1) values (iteration 0 = the random start).
    Raises:
        ValueError: if ``loss`` is not a non-empty 2-D array.
    """
    arr = np.asarray(loss, dtype=float)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"loss must be a non-empty restarts x iterations array, got shape {arr.shape}")
    fig, axes = figure()
    ax = axes[0, 0]
    it = np.arange(arr.shape[1])
    for row in arr:
        ax.plot(it, row, color="0.6", linewidth=0.7, alpha=0.8)
    ax.plot(it, arr.mean(0), color="C3", label=f"mean of {arr.shape[0]} random starts")
    ax.set_xlabel("PGD iteration")
    ax.set_ylabel(f"{loss_name} loss")
    ax.set_title(f"PGD loss, {arr.shape[0]} random starts{(' - ' + label) if label else ''}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
