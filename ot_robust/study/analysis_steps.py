"""The analysis steps (notebooks 43-47), one call each: load a profile's trained models and test images, run one
analysis of :mod:`ot_robust.analysis`, save its figures (PNG + PDF, :func:`ot_robust.core.style.save_figure`).

Each returns ``{figure name: [png, pdf]}`` (what :func:`ot_robust.study.tasks.show_figures` displays); ``{}`` with a
printed note when none of ``models`` is trained. Shared arguments:

* ``profile``: a profile name or YAML path; ``runs_dir``: the parent of ``<profile>/`` (or that folder itself, as the
  pipeline passes it); ``fig_dir``: where the figures go (None: ``runs/<profile>/figures``, a scratch folder).
* ``models``: experiment names of the profile (a JSON list string is accepted, as papermill passes lists); legends
  and titles use their profile labels (the papers' names).
* ``dataset``: None -> the profile's dataset (test split); ``n_examples``: the first test images used;
  ``eps``: Linf budget on the [0, 1] pixel scale (None -> the profile's PGD eps); ``seed``: torch's seed.

Raises ValueError (unknown profile, experiment or dataset) as the loaders do.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

NO_MODELS = "no trained model found: nothing to plot (run `python -m ot_robust reproduce` first)"


@dataclass
class Inputs:
    """What every model-based analysis step starts from: ``models`` {label: model}, the test images ``x`` (N, C,
    H, W) in [0, 1] and labels ``y`` (N,), ``eps`` and the figure folder."""

    models: dict[str, Any]
    x: Any
    y: Any
    eps: float
    fig_dir: Path


def load_inputs(profile: str, runs_dir: str | Path, fig_dir: str | Path | None, models: Sequence[str] | str,
                dataset: str | None, n_examples: int, eps: float | str | None, seed: int) -> Inputs:
    """The trained ``models`` of ``profile`` by label, its first ``n_examples`` test images and eps (see the module
    docstring); prints what was loaded."""
    import torch

    from ..core.data import as_tensors, get_dataset
    from ..core.utils import parse_number
    from ..profiles import paths as L

    models = json.loads(models) if isinstance(models, str) else list(models)
    torch.manual_seed(seed)
    fig_dir = Path(fig_dir or f"runs/{profile}/figures")
    dataset = dataset or L.profile_dataset(profile)
    eps = L.profile_eps(profile, dataset) if eps is None else parse_number(eps)
    trained = L.load_trained_models(models, runs_dir, profile)
    names = L.profile_labels(profile)
    trained = {names.get(k, k): m for k, m in trained.items()}
    x, y = as_tensors(get_dataset(dataset, "test"), n_examples)
    print(f"models: {list(trained)}; {len(x)} test images of {dataset}; Linf eps = {eps:.4g}; figures -> {fig_dir}")
    return Inputs(trained, x, y, eps, fig_dir)


def _save(fig, name: str, fig_dir: Path) -> dict[str, list[str]]:
    from ..core.style import save_figure

    return {name: [str(p) for p in save_figure(fig, name, fig_dir, close=False)]}


def tsne(*, profile: str, runs_dir: str | Path = "results", fig_dir: str | Path | None = None,
         models: Sequence[str] | str = ("standard", "pgd_at", "feature_scattering"), dataset: str | None = None,
         n_examples: int = 150, eps: float | str | None = None, seed: int = 0, layer: str = "penultimate",
         tsne_max_iter: int = 500, figure_name: str = "fs_supp_fig2_tsne_features") -> dict[str, list[str]]:
    """FS supplement Fig. 2 / GOT Fig. 6: t-SNE of ``layer`` features of clean, PGD-20 and feature-scattering
    images, one row per model (:func:`ot_robust.analysis.tsne_features`), saved as ``figure_name``."""
    from .. import analysis as A

    inp = load_inputs(profile, runs_dir, fig_dir, models, dataset, n_examples, eps, seed)
    if not inp.models:
        print(NO_MODELS)
        return {}
    perturbations = {"clean": None, "PGD-20": A.pgd(inp.eps, 20, seed=seed),
                     "feature scattering": A.feature_scattering(inp.eps, seed=seed)}
    results = {name: A.tsne_features(m, inp.x, inp.y, perturbations, layer=layer, max_iter=tsne_max_iter, seed=seed)
               for name, m in inp.models.items()}
    return _save(A.plot_tsne_grid(results), figure_name, inp.fig_dir)


def landscape(*, profile: str, runs_dir: str | Path = "results", fig_dir: str | Path | None = None,
              models: Sequence[str] | str = ("standard", "pgd_at", "feature_scattering"), dataset: str | None = None,
              n_examples: int = 2, eps: float | str | None = None, seed: int = 0, radius: float | str | None = None,
              n_points: int = 21) -> dict[str, list[str]]:
    """FS Fig. 4: the loss over a ``n_points`` x ``n_points`` grid of half-width ``radius`` (Linf, None -> eps)
    around each test image (:func:`ot_robust.analysis.loss_landscape`), one figure per image."""
    from .. import analysis as A
    from ..core.utils import parse_number

    inp = load_inputs(profile, runs_dir, fig_dir, models, dataset, n_examples, eps, seed)
    if not inp.models:
        print(NO_MODELS)
        return {}
    radius = inp.eps if radius is None else parse_number(radius)
    results = {name: A.loss_landscape(m, inp.x, inp.y, radius=radius, n_points=n_points, seed=seed)
               for name, m in inp.models.items()}
    written: dict[str, list[str]] = {}
    for i in range(len(inp.x)):
        fig = A.plot_loss_landscapes(results, index=i)
        fig.suptitle(f"test image {i} (label {int(inp.y[i])})", y=1.02)
        written.update(_save(fig, f"fs_fig4_loss_landscape_{i}", inp.fig_dir))
    return written


def activations(*, profile: str, runs_dir: str | Path = "results", fig_dir: str | Path | None = None,
                models: Sequence[str] | str = ("standard", "pgd_at", "feature_scattering"),
                dataset: str | None = None, n_examples: int = 256, eps: float | str | None = None, seed: int = 0,
                n_grad: int = 64, n_ratio: int = 64) -> dict[str, list[str]]:
    """OTJR Figs. 2 / 8 (penultimate activation magnitudes, clean vs PGD-20), Fig. 3 (mean input gradient over PGD
    iterations, on ``n_grad`` images) and Figs. 4 / 6 (per-parameter gradient-norm ratios, mean and median, on
    ``n_ratio`` images)."""
    from .. import analysis as A
    from ..core.style import figure, legend_outside, method_style

    inp = load_inputs(profile, runs_dir, fig_dir, models, dataset, n_examples, eps, seed)
    if not inp.models:
        print(NO_MODELS)
        return {}
    attack = A.pgd(inp.eps, 20, seed=seed)
    acts = {name: A.activation_magnitudes(m, inp.x, inp.y, attack) for name, m in inp.models.items()}
    written = _save(A.plot_activation_magnitudes(acts), "otjr_fig2_activation_magnitudes", inp.fig_dir)
    grads = {name: A.input_gradient_l1(m, inp.x, inp.y, eps=inp.eps, step_size=2.5 * inp.eps / 20,
                                       n_examples=n_grad) for name, m in inp.models.items()}
    fig, ax = figure(width=4.5, height=3.0)
    for name, g in grads.items():
        ax[0, 0].plot(list(g), list(g.values()), label=name, **method_style(name))
    ax[0, 0].set(xlabel="PGD iterations (0 = clean)", ylabel="mean |d CE / d pixel| (per [0,1] unit)", yscale="log")
    legend_outside(ax[0, 0])
    written.update(_save(fig, "otjr_fig3_input_gradients", inp.fig_dir))
    ratios = {name: A.gradient_norm_ratios(m, inp.x, inp.y, attack, n_examples=n_ratio)
              for name, m in inp.models.items()}
    written.update(_save(A.plot_gradient_ratios(ratios), "otjr_fig4_gradient_norm_ratios", inp.fig_dir))
    written.update(_save(A.plot_gradient_ratios(ratios, statistic="median"), "otjr_fig4_gradient_norm_ratios_median",
                         inp.fig_dir))
    return written


def decision_cells(*, profile: str, runs_dir: str | Path = "results", fig_dir: str | Path | None = None,
                   models: Sequence[str] | str = ("standard", "pgd_at", "feature_scattering"),
                   dataset: str | None = None, n_examples: int = 4, eps: float | str | None = None, seed: int = 0,
                   n_points: int = 51) -> dict[str, list[str]]:
    """OTJR supplement Fig. 9: the predicted class over a plane through each test image (adversarial x random
    direction, ``n_points`` per side) with the eps-ball drawn; prints each model's share of the ball keeping the
    clean prediction."""
    from .. import analysis as A

    inp = load_inputs(profile, runs_dir, fig_dir, models, dataset, n_examples, eps, seed)
    if not inp.models:
        print(NO_MODELS)
        return {}
    attack = A.pgd(inp.eps, 20, seed=seed)
    cells = {name: A.decision_cells(m, inp.x, inp.y, attack, inp.eps, n_points=n_points, seed=seed)
             for name, m in inp.models.items()}
    written = _save(A.plot_decision_cells(cells, max_inputs=len(inp.x)), "otjr_supp_fig9_decision_cells", inp.fig_dir)
    for name, c in cells.items():
        print(f"{name}: fraction of the eps-ball keeping the clean prediction = {c.cell_fraction().round(3).tolist()}")
    return written


def toy(*, profile: str, fig_dir: str | Path | None = None, n_examples: int = 200, seed: int = 0,
        toy_eps: float = 0.08) -> dict[str, list[str]]:
    """FS Fig. 2: supervised (PGD-10) vs feature-scattering perturbations of ``n_examples`` two-moons points,
    Linf ``toy_eps`` on the toy data's [0, 1] scale; needs no trained model."""
    from .. import analysis as A

    fig_dir = Path(fig_dir or f"runs/{profile}/figures")
    toy_data = A.toy_perturbations({"supervised (PGD-10)": A.pgd(toy_eps, 10, seed=seed),
                                    "feature scattering": A.feature_scattering(toy_eps, seed=seed)},
                                   n=n_examples, eps=toy_eps, seed=seed)
    return _save(A.plot_toy_perturbations(toy_data), "fs_fig2_toy_perturbations", fig_dir)
