"""Has training levelled off? Held-out accuracy after every epoch of a profile's runs ("enough epochs that
held-out robust accuracy has levelled off (committed curves show it)").

Every training run records, after each epoch, clean and PGD-10 accuracy (%) on ``eval_n`` held-out test images at
``eval_eps`` (the [0, 1] pixel scale) in ``<runs_dir>/<profile>/train/<exp>/metrics.jsonl`` (keys ``epoch``,
``eval_clean_acc``, ``eval_pgd10_acc``, ``eval_n``, ``eval_eps``). This module reads them for every experiment and
seed of a profile, judges the last epoch, and draws the curves.

**The rule** (:func:`last_epoch_change`): the change of held-out PGD-10 accuracy over the last epoch is *flat within
noise* when it lies within 1.96 standard errors of the difference of two independent binomial proportions on ``n``
images (conservative: the held-out images are the same every epoch, so the paired error is smaller), *rising* above
that, *falling* below it. With n = 500 the noise is 3-6 points, so "flat within noise" means "no detectable change
in one epoch", not "converged": read it with the ``best epoch`` column and the curves (a run whose best epoch is its
last is still gaining).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from matplotlib.lines import Line2D

from ..profiles.paths import RunLayout
from ..core.run_files import METRICS_FILE, read_config, read_metrics
from ..core.style import figure, integer_ticks, method_color


def last_epoch_change(before: float, after: float, n: int) -> tuple[float, float, str]:
    """``(change, noise, verdict)`` of held-out accuracy from ``before`` to ``after`` (both in %, on ``n`` images):
    ``noise`` = 1.96 x the standard error of a difference of two independent proportions (points), ``verdict`` one of
    ``"flat within noise"``, ``"rising"``, ``"falling"``.

    Raises:
        ValueError: if ``n`` < 1 or an accuracy is outside [0, 100].
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of held-out images, got {n}")
    for name, v in (("before", before), ("after", after)):
        if not 0.0 <= v <= 100.0:
            raise ValueError(f"{name}={v}: an accuracy in % must lie in [0, 100]")
    p1, p2 = before / 100.0, after / 100.0
    noise = 100.0 * 1.96 * math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
    change = after - before
    verdict = "flat within noise" if abs(change) <= noise else ("rising" if change > 0 else "falling")
    return change, noise, verdict


def training_curves(profile: str, runs_dir: str | Path = "results", experiments: Sequence[str] | None = None):
    """Held-out accuracy by epoch of every trained run of ``profile`` (a DataFrame: ``experiment, label, seed,
    epoch, epochs, clean, pgd10, n, eps``; accuracy in %; ``epochs`` = the run's planned epochs from its
    ``config.json``, so a run stopped by a budget shows as unfinished). Runs not started yet are left out.

    Raises:
        ProfileError: unknown profile.
    """
    import pandas as pd

    from ..profiles import load_profile

    prof = load_profile(profile, check_registries=False)
    layout = RunLayout(str(runs_dir), prof.name)
    rows = []
    for exp in experiments or prof.methods:
        run_dir = layout.train(exp)
        if not (Path(run_dir) / METRICS_FILE).is_file():
            continue
        seed = prof.seed_of(exp)
        try:
            planned = read_config(run_dir)["config"]["epochs"]   # None (no config.json): TypeError
        except (OSError, ValueError, KeyError, TypeError):
            planned = None
        for rec in read_metrics(run_dir):
            if "eval_pgd10_acc" in rec:
                rows.append({"experiment": exp, "label": prof.label(exp), "seed": seed, "epoch": rec["epoch"],
                             "epochs": planned, "clean": rec.get("eval_clean_acc"), "pgd10": rec["eval_pgd10_acc"],
                             "n": rec.get("eval_n"), "eps": rec.get("eval_eps")})
    return pd.DataFrame(rows, columns=["experiment", "label", "seed", "epoch", "epochs", "clean", "pgd10", "n",
                                       "eps"])


def convergence_table(curves):
    """One row per run of :func:`training_curves`: ``label, seed, pgd10 by epoch`` (``"80.8 -> ... -> 92.8"``),
    ``last epoch`` (the verdict of :func:`last_epoch_change`; ``"one epoch"`` for a run of one epoch, ``"training
    (e of E)"`` for a run stopped before its planned epochs), ``last change`` (points, with its noise), ``epochs``
    and ``best epoch``."""
    import pandas as pd

    rows = []
    for exp, g in curves.groupby("experiment", sort=False):
        g = g.sort_values("epoch")
        acc = g["pgd10"].tolist()
        done, planned = int(g["epoch"].max()), g["epochs"].iloc[0]
        unfinished = planned is not None and not pd.isna(planned) and done < int(planned)
        row = {"label": g["label"].iloc[0], "seed": int(g["seed"].iloc[0]),
               "pgd10 by epoch": " -> ".join(f"{a:.1f}" for a in acc),
               "last epoch": f"training ({done} of {int(planned)})" if unfinished else "one epoch",
               "last change": "", "epochs": f"{done} of {int(planned)}" if unfinished else str(done),
               "best epoch": int(g["epoch"].iloc[int(g["pgd10"].values.argmax())])}
        if len(acc) >= 2 and not unfinished:
            change, noise, verdict = last_epoch_change(acc[-2], acc[-1], int(g["n"].iloc[-1]))
            row.update({"last change": f"{change:+.1f} (noise +-{noise:.1f})", "last epoch": verdict})
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["label", "seed"], kind="stable").reset_index(drop=True)


def convergence_markdown(curves, profile: str) -> str:
    """:func:`convergence_table` of ``curves`` as a Markdown table (the project's one renderer) with its caption."""
    from .tables import render_frame

    n, eps = curves["n"].iloc[0], curves["eps"].iloc[0]
    caption = (f"Held-out PGD-10 accuracy (%, n = {n}, eps = {eps:g}) after each epoch; last change = last epoch "
               "minus the one before, with 1.96 x its binomial standard error (ot_robust.reports.convergence)")
    return render_frame(convergence_table(curves), "md", f"Training curves, {profile}", caption,
                        f"convergence_{profile}", n_text=5)


def plot_training_curves(curves, title: str = ""):
    """One panel per method (``label``): held-out PGD-10 accuracy (solid) and clean accuracy (dashed) by epoch, one
    line per seed, in the method's colour, the seed told by its marker (the same marker for a seed in every panel,
    explained by one legend in a spare panel, else below the panels); n and eps in the title. A dotted vertical
    line marks the epoch at which the verdicts take each finished run (its last epoch: the evaluated ``model.pt``),
    so a curve still rising there is visible as such. Returns the Figure.

    Raises:
        ValueError: if ``curves`` is empty.
    """
    import pandas as pd

    if curves.empty:
        raise ValueError("plot_training_curves needs at least one trained run (training_curves(...) is empty)")
    labels = list(dict.fromkeys(curves.sort_values("label", kind="stable")["label"]))
    ncols = min(4, len(labels))
    nrows = math.ceil(len(labels) / ncols)
    fig, axes = figure(ncols=ncols, nrows=nrows, width=2.6, height=2.1)
    seeds = sorted(curves["seed"].unique())
    marker = {seed: "os^vDP"[i % 6] for i, seed in enumerate(seeds)}
    for ax, label in zip(axes.flat, labels):
        g = curves[curves["label"] == label]
        c = method_color(label)
        for seed, s in g.groupby("seed"):
            s = s.sort_values("epoch")
            ax.plot(s["epoch"], s["pgd10"], marker=marker[seed], markersize=3.5, color=c)
            ax.plot(s["epoch"], s["clean"], linestyle="--", color=c, alpha=0.5, linewidth=0.9,
                    marker=marker[seed], markersize=2, markerfacecolor="none")
        for e in sorted({int(s["epoch"].max()) for _, s in g.groupby("seed")
                         if pd.isna(s["epochs"].iloc[0]) or s["epoch"].max() >= s["epochs"].iloc[0]}):
            ax.axvline(e, color="0.45", linestyle=":", linewidth=1.0, zorder=0)
        low = min(g["pgd10"].min(), g["clean"].min())
        ax.set_ylim(max(0.0, 10.0 * math.floor(low / 10.0) - 5.0), 100)  # each panel zoomed on its own range
        ax.set_title(label, fontsize="small" if len(label) > 22 else None)
        integer_ticks(ax.xaxis)
        ax.set_xlabel("epoch")
    for ax in axes.flat[len(labels):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("held-out accuracy (%)")
    key = [Line2D([], [], color="0.35", marker=marker[s], markersize=4, linestyle="none", label=f"seed {s}")
           for s in seeds]
    key += [Line2D([], [], color="0.35", label="held-out PGD-10"),
            Line2D([], [], color="0.35", linestyle="--", alpha=0.5, label="held-out clean"),
            Line2D([], [], color="0.45", linestyle=":", label="epoch of the verdicts")]
    spare = axes.flat[len(labels):]
    if len(spare):
        spare[0].set_visible(True)
        spare[0].axis("off")
        spare[0].legend(handles=key, loc="center", fontsize="small", frameon=False, title="one line per run")
    else:
        fig.legend(handles=key, loc="lower center", ncol=len(key), fontsize="x-small", frameon=False)
    n, eps = curves["n"].iloc[0], curves["eps"].iloc[0]
    text = f"held-out PGD-10 (solid) and clean (dashed) accuracy after each epoch (n = {n}, eps = {eps:g})"
    fig.suptitle(f"{title}: {text}" if title else text, fontsize="small")
    fig.tight_layout(rect=(0, 0 if len(spare) else 0.05, 1, 1))
    return fig
