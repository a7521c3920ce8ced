"""Result figures shared by the papers' reports: accuracy vs eps / steps (FS Fig. 3, GOT Figs. 2-5) and the PGD loss
over iterations (FS supplement Fig. 1), in the style of :mod:`ot_robust.core.style`.

Curves come from ``runs/<profile>/eval/<experiment>/curves.json`` (``{"vs_epsilon": {"x": [...], "accuracy":
[...]}, "vs_steps": {...}}``, accuracy in %, epsilon on the [0, 1] pixel scale) and ``loss_curves.json``
(``{"loss": [[...], ...]}`` restarts x (steps + 1)), both written by ``notebooks/20_evaluate.ipynb``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.style import figure, integer_ticks, legend_outside, method_color


class FigureNotDrawn(ValueError):
    """A figure a profile cannot draw (the models it needs were not run); the message says why."""


def plot_accuracy_curves(curves: dict[str, dict], title_suffix: str = ""):
    """FS Fig. 3 / GOT Figs. 2-5: accuracy (%) vs epsilon (a) and vs PGD iterations (b), one line per method in its
    colour (:func:`ot_robust.core.style.method_color`), the legend beside the panels, the attack in the panel titles and
    n and ``title_suffix`` in the figure's title (panel titles stay short enough not to overlap).

    Args:
        curves: ``{label: {"vs_epsilon": {"x": eps list, "accuracy": % list, "steps"?}, "vs_steps": {"x": steps,
            "accuracy", "eps"?}, "n_examples"?}}`` (``curves.json``); a label missing one of the two curves is left
            out of that panel. ``label``: the paper's name of the method (a profile's ``label``).
    Returns:
        the matplotlib Figure (two panels).
    Raises:
        ValueError: if ``curves`` is empty.
    """
    if not curves:
        raise ValueError("plot_accuracy_curves needs at least one model's curves")
    fig, axes = figure(ncols=2)
    any_c = next(iter(curves.values()))
    n = any_c.get("n_examples")
    steps = (any_c.get("vs_epsilon") or {}).get("steps", 20)
    eps = (any_c.get("vs_steps") or {}).get("eps")
    titles = {"vs_epsilon": f"(a) vs budget, PGD-{steps}",
              "vs_steps": "(b) vs PGD iterations" + (f", eps = {eps:.3g}" if eps is not None else "")}
    for key, ax, xlabel in [("vs_epsilon", axes[0, 0], "attack budget $\\epsilon$ ([0,1] pixel scale)"),
                            ("vs_steps", axes[0, 1], "PGD attack iterations")]:
        for label, c in curves.items():
            if key in c:
                ax.plot(c[key]["x"], c[key]["accuracy"], marker="o", label=label, color=method_color(label))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(titles[key])
    integer_ticks(axes[0, 1].xaxis)
    legend_outside(axes[0, 1])
    fig.suptitle("Accuracy under PGD" + (f", n = {n} test images" if n else "") + title_suffix)
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
    integer_ticks(ax.xaxis)
    ax.set_xlabel("PGD iteration")
    ax.set_ylabel(f"{loss_name} loss")
    ax.set_title(f"PGD loss, {arr.shape[0]} random starts{(' - ' + label) if label else ''}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
