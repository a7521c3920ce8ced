"""Feature Scattering's tables and figures (Zhang & Wang 2019, its supplement and rebuttal), paper beside ours.

* :data:`TABLES` - FS Tables 1-4, Sec. 5.3 black-box, supplement Tables 1-4 and Sec. 2.2, rebuttal batch size /
  label smoothing / random-targeted (rendered by :func:`ot_robust.reports.tables.build_table`).
* :data:`FIGURES` - ``fs_fig3`` (accuracy vs eps and vs PGD steps) and ``fs_supp_fig1`` (PGD loss over iterations
  for 20 random starts), builders ``(profile, runs_dir, fig_dir) -> [paths]`` (legends: the profile's labels).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..core.style import save_figure
from ..evaluation.results import CURVES_FILE, EVAL_DIR, LOSS_CURVES_FILE
from .figures import FigureNotDrawn, draw_masking_signature, plot_accuracy_curves, plot_loss_curves
from .tables import TableSpec

TABLES: list[TableSpec] = [
    TableSpec("fs_table1", "fs", "table1_cifar10_whitebox", "FS Table 1: white-box accuracy vs attack iterations"),
    TableSpec("fs_table2a", "fs", "table2a_svhn_whitebox", "FS Table 2(a): SVHN white-box"),
    TableSpec("fs_table2b", "fs", "table2b_cifar100_whitebox", "FS Table 2(b): CIFAR-100 white-box"),
    TableSpec("fs_table3a", "fs", "table3a_perturbation_scheme", "FS Table 3(a): perturbation scheme ablation"),
    TableSpec("fs_table3b", "fs", "table3b_matching_scheme", "FS Table 3(b): matching scheme ablation"),
    TableSpec("fs_table4", "fs", "table4_ot_solvers", "FS Table 4: OT solvers", kind="blocks"),
    TableSpec("fs_blackbox", "fs", "sec5_3_blackbox_cifar10", "FS Sec. 5.3: black-box (transfer) attacks",
              kind="transfer"),
    TableSpec("fs_supp_table1", "fs", "supp_table1_stronger_whitebox",
              "FS supplement Table 1 / rebuttal Sec. 2: stronger white-box attacks (lowest of 5 random-start runs, "
              "and their max-min spread)", lowest_run=True),
    TableSpec("fs_supp_gradient_free", "fs", "supp_gradient_free", "FS supplement Sec. 2.2: gradient-free attacks"),
    TableSpec("fs_supp_table2", "fs", "supp_table2_label_smoothing", "FS supplement Table 2: label smoothing"),
    TableSpec("fs_supp_table3", "fs", "supp_table3_sinkhorn_tau", "FS supplement Table 3: Sinkhorn tau"),
    TableSpec("fs_supp_table4", "fs", "supp_table4_ipot_beta", "FS supplement Table 4: IPOT beta"),
    TableSpec("fs_rebuttal_batch_size", "fs", "rebuttal_batch_size_pgd100", "FS rebuttal: training batch size (PGD100)",
              kind="sweep", metric="pgd100"),
    TableSpec("fs_rebuttal_label_smoothing", "fs", "rebuttal_label_smoothing_pgd100",
              "FS rebuttal: label smoothing (PGD100)", kind="sweep", metric="pgd100"),
    TableSpec("fs_rebuttal_random_targeted", "fs", "rebuttal_random_targeted",
              "FS rebuttal: random-targeted adversarial training baseline"),
]



def _labels(profile: Any) -> dict[str, str]:
    return {exp: profile.label(exp) for exp in profile.methods} if profile is not None else {}


def fig_fs_fig3(profile: Any, runs_dir: str | Path, fig_dir: str | Path) -> list[Path]:
    """Build FS Fig. 3 from every ``eval/<exp>/curves.json`` under ``runs_dir`` (legends: ``profile``'s labels)."""
    labels = _labels(profile)
    curves = {}
    for p in sorted(Path(runs_dir).glob(f"{EVAL_DIR}/*/{CURVES_FILE}")):
        curves[labels.get(p.parent.name, p.parent.name)] = json.loads(p.read_text())
    suffix = f" ({profile.name}, {profile.dataset})" if profile is not None else ""
    return save_figure(plot_accuracy_curves(curves, suffix), "fs_fig3_accuracy_vs_eps_steps", fig_dir)


def fig_fs_supp_fig1(profile: Any, runs_dir: str | Path, fig_dir: str | Path) -> list[Path]:
    """Build FS supplement Fig. 1 from the (single) ``eval/<exp>/loss_curves.json`` under ``runs_dir``."""
    labels = _labels(profile)
    paths = sorted(Path(runs_dir).glob(f"{EVAL_DIR}/*/{LOSS_CURVES_FILE}"))
    if not paths:
        raise FigureNotDrawn(f"no eval/*/loss_curves.json under {runs_dir}: set eval.loss_curves in the profile")
    data = json.loads(paths[0].read_text())
    fig = plot_loss_curves(data["loss"], label=labels.get(paths[0].parent.name, paths[0].parent.name),
                           loss_name=data.get("loss_name", "cross-entropy"))
    return save_figure(fig, "fs_supp_fig1_pgd_loss_random_starts", fig_dir)


def fig_fs_masking_signature(profile: Any, runs_dir: str | Path, fig_dir: str | Path) -> list[Path]:
    """The masking signature of the audited models: lowest accuracy per attack family
    (:func:`ot_robust.reports.figures.masking_signature`), PNG, PDF and the numbers as CSV."""
    return draw_masking_signature(profile, runs_dir, fig_dir, "fs_masking_signature")


FIGURES: dict[str, Callable[..., list[Path]]] = {
    "fs_fig3": fig_fs_fig3,
    "fs_supp_fig1": fig_fs_supp_fig1,
    "fs_masking_signature": fig_fs_masking_signature,
}
