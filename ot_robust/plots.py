"""One plotting style for every figure, and the Feature Scattering figures built from the pipeline's JSON.

* :func:`use_style` - the project's matplotlib/seaborn style (call once; :func:`figure` does it for you).
* :func:`save_figure` - write ``<fig_dir>/<name>.png`` and ``.pdf`` (atomic), return both paths.
* :func:`plot_accuracy_curves` - FS Fig. 3: accuracy under PGD vs the attack budget epsilon (a) and vs the number
  of attack iterations (b), one line per model.
* :func:`plot_loss_curves` - FS supplement Fig. 1: the PGD loss over iterations for 20 random starts.
* :data:`FIGURES` - figure name -> builder ``(runs_dir, fig_dir, labels) -> [paths]`` used by the figures notebook.

Curves are read from ``runs/<profile>/eval/<experiment>/curves.json`` (``{"vs_epsilon": {"x": [...], "accuracy":
[...]}, "vs_steps": {...}}``, accuracy in %, epsilon on the [0, 1] pixel scale) and ``loss_curves.json``
(``{"loss": [[...], ...]}`` restarts x (steps + 1)), both written by ``notebooks/20_evaluate.ipynb``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np

STYLE = {"figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight", "font.size": 9, "axes.titlesize": 10,
         "axes.labelsize": 9, "legend.fontsize": 8, "lines.linewidth": 1.6, "lines.markersize": 4,
         "axes.spines.top": False, "axes.spines.right": False, "pdf.fonttype": 42}
_styled = False


def use_style() -> None:
    """Apply the project style: seaborn ``whitegrid`` + ``colorblind`` palette + :data:`STYLE` rc settings."""
    global _styled
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", rc=STYLE)
    _styled = True


def figure(ncols: int = 1, nrows: int = 1, width: float = 3.4, height: float = 2.6, **kw):
    """``plt.subplots`` in the project style, panels of ``width`` x ``height`` inches; returns ``(fig, axes)``."""
    if not _styled:
        use_style()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)


def save_figure(fig, name: str, fig_dir: str | Path, close: bool = True) -> list[Path]:
    """Write ``fig`` as ``<fig_dir>/<name>.png`` and ``<fig_dir>/<name>.pdf`` (atomically); returns the two paths.

    Raises:
        ValueError: if ``name`` is empty or contains a path separator.
    """
    from .utils import atomic_write_bytes

    if not name or "/" in name or "\\" in name:
        raise ValueError(f"figure name {name!r} must be a plain file stem (no '/')")
    paths = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, metadata={"CreationDate": None} if ext == "pdf" else None)
        p = Path(fig_dir) / f"{name}.{ext}"
        atomic_write_bytes(p, buf.getvalue())
        paths.append(p)
    if close:
        plt.close(fig)
    return paths


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


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def fig_fs_fig3(runs_dir: str | Path, fig_dir: str | Path, labels: dict[str, str]) -> list[Path]:
    """Build FS Fig. 3 from every ``eval/<exp>/curves.json`` under ``runs_dir``; ``labels``: experiment -> legend."""
    curves = {}
    for p in sorted(Path(runs_dir).glob("eval/*/curves.json")):
        curves[labels.get(p.parent.name, p.parent.name)] = json.loads(p.read_text())
    return save_figure(plot_accuracy_curves(curves), "fs_fig3_accuracy_vs_eps_steps", fig_dir)


def fig_fs_supp_fig1(runs_dir: str | Path, fig_dir: str | Path, labels: dict[str, str]) -> list[Path]:
    """Build FS supplement Fig. 1 from the (single) ``eval/<exp>/loss_curves.json`` under ``runs_dir``."""
    paths = sorted(Path(runs_dir).glob("eval/*/loss_curves.json"))
    if not paths:
        raise ValueError(f"no eval/*/loss_curves.json under {runs_dir}: set eval.loss_curves in the profile")
    data = json.loads(paths[0].read_text())
    fig = plot_loss_curves(data["loss"], label=labels.get(paths[0].parent.name, paths[0].parent.name),
                           loss_name=data.get("loss_name", "cross-entropy"))
    return save_figure(fig, "fs_supp_fig1_pgd_loss_random_starts", fig_dir)


FIGURES: dict[str, Callable[..., list[Path]]] = {
    "fs_fig3": fig_fs_fig3,
    "fs_supp_fig1": fig_fs_supp_fig1,
}
