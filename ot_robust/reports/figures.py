"""Result figures shared by the papers' reports: accuracy vs eps / steps (FS Fig. 3, GOT Figs. 2-5) and the PGD loss
over iterations (FS supplement Fig. 1), in the style of :mod:`ot_robust.core.style`.

Curves come from ``runs/<profile>/eval/<experiment>/curves.json`` (``{"vs_epsilon": {"x": [...], "accuracy":
[...]}, "vs_steps": {...}}``, accuracy in %, epsilon on the [0, 1] pixel scale) and ``loss_curves.json``
(``{"loss": [[...], ...]}`` restarts x (steps + 1)), both written by ``notebooks/20_evaluate.ipynb``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.style import figure, integer_ticks, legend_outside, method_style


class FigureNotDrawn(ValueError):
    """A figure a profile cannot draw (the models it needs were not run); the message says why."""


def plot_accuracy_curves(curves: dict[str, dict], title_suffix: str = "", sweeps: dict[str, dict] | None = None):
    """FS Fig. 3 / GOT Figs. 2-5: accuracy (%) vs epsilon (a) and vs PGD iterations (b), one line per method in its
    colour and marker (:func:`ot_robust.core.style.method_style`), the legend beside the panels, the attack in the
    panel titles and n and ``title_suffix`` in the figure's title (panel titles stay short enough not to overlap).
    With ``sweeps``, a third panel (c): accuracy vs epsilon under another attack protocol (GOT's own, App. A.3: a
    fixed number of fixed steps, so the total move is capped whatever epsilon), solid with PGD's random start and
    dashed without, the method's colour and marker kept.

    Args:
        curves: ``{label: {"vs_epsilon": {"x": eps list, "accuracy": % list, "steps"?}, "vs_steps": {"x": steps,
            "accuracy", "eps"?}, "n_examples"?}}`` (``curves.json``); a label missing one of the two curves is left
            out of that panel. ``label``: the paper's name of the method (a profile's ``label``).
        sweeps: ``{label: {"epsilons": [...], "n_examples", "protocols": {name: {"steps", "step_size", "labels",
            "random_start", "accuracy": % list}}}}`` (an audit's ``eps_sweep`` group, ``ot_robust.study.audit``);
            every protocol must share one ``steps`` and ``step_size`` (they are printed in the panel title).
    Returns:
        the matplotlib Figure (two panels, three with ``sweeps``).
    Raises:
        ValueError: if ``curves`` is empty, or the sweeps' protocols differ in steps or step size.
    """
    if not curves:
        raise ValueError("plot_accuracy_curves needs at least one model's curves")
    fig, axes = figure(ncols=3 if sweeps else 2)
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
                ax.plot(c[key]["x"], c[key]["accuracy"], label=label, **method_style(label))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(titles[key])
    integer_ticks(axes[0, 1].xaxis)
    handles, labels = axes[0, 1].get_legend_handles_labels()  # every method, also those without a sweep
    if sweeps:
        handles += _plot_sweeps(axes[0, 2], sweeps)
        labels += [h.get_label() for h in handles[len(labels):]]
    legend_outside(axes[0, -1], handles=handles, labels=labels)
    fig.suptitle("Accuracy under PGD" + (f", n = {n} test images" if n else "") + title_suffix)
    fig.tight_layout()
    return fig


def _plot_sweeps(ax, sweeps: dict[str, dict]) -> list:
    """Panel (c) of :func:`plot_accuracy_curves`: each method's accuracy vs eps per protocol of its sweep; returns
    the legend handles of the two line styles."""
    from matplotlib.lines import Line2D

    budgets = {(p["steps"], p.get("step_size")) for s in sweeps.values() for p in s["protocols"].values()}
    if len(budgets) != 1:
        raise ValueError("the sweeps' protocols must share steps and step size to share a panel; "
                         f"got {sorted(budgets)}")
    (steps, step), = budgets
    for label, s in sweeps.items():
        for p in s["protocols"].values():
            style = {**method_style(label), "linestyle": "-" if p.get("random_start", True) else "--"}
            ax.plot(s["epsilons"], p["accuracy"], **style)
    ax.set_xlabel("attack budget $\\epsilon$ ([0,1] pixel scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"(c) paper's protocol, {steps} x {step:g}" if step is not None else f"(c) {steps} steps")
    return [Line2D([], [], color="0.3", linestyle="-", label="(c) random start"),
            Line2D([], [], color="0.3", linestyle="--", label="(c) no random start")]


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


#: the attack families of the masking signature, in the order the figure draws them (:data:`ot_robust.attacks.FAMILIES`)
SIGNATURE_FAMILIES = ("white-box", "feature-space", "transfer", "score-based", "hard-label")
_MARKERS = {"white-box": "o", "feature-space": "s", "transfer": "^", "score-based": "D", "hard-label": "v"}


def masking_signature(evals: dict[str, dict], labels: dict[str, str] | None = None):
    """Per model and attack family, the lowest accuracy (%) any attack of that family reached: the masking signature
    (a model whose gradients mislead PGD loses more to the families that do not follow them; FS's public model: PGD-20
    70.5 (paper), AutoAttack 36.6, RayS 44.5, FeatureAttack 36.9).

    Args:
        evals: ``{experiment: eval.json merged with its audit}`` (:func:`ot_robust.evaluation.results.read_evals`);
            the evaluation's columns are white-box, each audit column carries its family.
        labels: ``{experiment: display name}``.
    Returns:
        DataFrame indexed by model name with columns ``clean`` + :data:`SIGNATURE_FAMILIES` (NaN where a family was
        not run) and ``<family>_attack`` (the column that reached the minimum); only models with an audit.
    """
    import pandas as pd

    rows = {}
    for exp, ev in evals.items():
        audit = ev.get("audit_columns") or {}
        if not audit:
            continue
        acc = ev.get("accuracy", {})
        fam = {c: "white-box" for c in acc if c != "clean" and c not in audit}
        if ev.get("autoattack") is not None:
            fam["autoattack"] = "white-box"
            acc = {**acc, "autoattack": ev["autoattack"]}
        fam.update({c: v["family"] for c, v in audit.items()})
        row = {"clean": acc.get("clean")}
        for f in SIGNATURE_FAMILIES:
            cols = [c for c, ff in fam.items() if ff == f and acc.get(c) is not None]
            best = min(cols, key=lambda c: acc[c]) if cols else None
            row[f], row[f"{f}_attack"] = (acc[best], best) if best else (float("nan"), "")
        name = (labels or {}).get(exp, exp)
        rows[name if name not in rows else f"{name} ({exp})"] = row  # two models never share a row
    return pd.DataFrame.from_dict(rows, orient="index")


def plot_masking_signature(frame, title_suffix: str = ""):
    """The masking signature (:func:`masking_signature`): per model, one marker per attack family at the lowest
    accuracy that family reached, joined by a thin line from clean accuracy down; a family below white-box is the
    signature. Markers differ by shape as well as colour (readable in grayscale). Raises ValueError when empty."""
    if frame is None or len(frame) == 0:
        raise ValueError("plot_masking_signature needs at least one audited model")
    fig, axes = figure(width=max(3.4, 0.75 * len(frame) + 1.6), height=2.8)
    ax = axes[0, 0]
    xs = np.arange(len(frame))
    for i, (_, r) in enumerate(frame.iterrows()):
        vals = [r[f] for f in SIGNATURE_FAMILIES if np.isfinite(r[f])]
        ax.vlines(i, min(vals, default=r["clean"]), r["clean"], color="0.75", linewidth=0.8, zorder=1)
    ax.scatter(xs, frame["clean"], marker="_", s=120, color="0.3", label="clean", zorder=2)
    for k, f in enumerate(SIGNATURE_FAMILIES):
        if frame[f].notna().any():
            ax.scatter(xs + (k - 2) * 0.08, frame[f], marker=_MARKERS[f], s=22, color=f"C{k}", label=f, zorder=3)
    ax.set_xticks(xs, list(frame.index), rotation=30, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Lowest accuracy per attack family" + title_suffix)
    legend_outside(ax)
    fig.tight_layout()
    return fig


def draw_masking_signature(profile, runs_dir, fig_dir, name: str) -> list:
    """Draw :func:`plot_masking_signature` of the audited models under ``runs_dir`` as ``<name>.png/.pdf`` and write
    the numbers beside it as ``<name>.csv``. Raises FigureNotDrawn when no model has an audit."""
    from pathlib import Path

    from ..core.style import save_figure
    from ..evaluation.results import read_evals

    labels = {e: profile.label(e) + ("" if profile.seed_of(e) == profile.seed else f" (seed {profile.seed_of(e)})")
              for e in profile.methods} if profile is not None else {}
    frame = masking_signature(read_evals(runs_dir), labels)
    if frame.empty:
        raise FigureNotDrawn(f"no audit/*/eval.json under {runs_dir}: list the models under the profile's audit")
    suffix = f" ({profile.name}, {profile.dataset})" if profile is not None else ""
    paths = save_figure(plot_masking_signature(frame, suffix), name, fig_dir)
    csv = Path(fig_dir) / f"{name}.csv"
    frame.round(2).to_csv(csv, index_label="model")
    return paths + [csv]
