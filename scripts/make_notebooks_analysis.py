"""Generate the analysis notebooks 43-47 (t-SNE, loss landscapes, activations/gradients, decision cells, toys).

Run ``python scripts/make_notebooks_analysis.py`` after changing this file (``--check`` exits 1 if a committed
notebook differs). Every notebook: a title cell, a cell tagged ``parameters`` (papermill), a setup cell that loads the
profile's trained models from ``<runs_dir>/<profile>/train/<experiment>/`` (default: the study's committed models) (skipping missing ones with a printed note),
thin cells calling :mod:`ot_robust.analysis`, and a caption cell per figure naming the paper figure it regenerates
and how our setting differs. Figures go to ``figures/<profile>/`` as PNG + PDF.
"""

from __future__ import annotations

import sys

from nbgen import build, code, main, markdown

PARAMS = """\
profile = "study-fashion"  # default: the study's committed models (results/study-fashion/train/*/model.pt)
runs_dir = "results"       # parent of <profile>/ (or <parent>/<profile> itself, as the pipeline passes it)
fig_dir = None             # None -> runs/<profile>/figures/ (scratch; the pipeline passes figures/<profile>)
models = ["standard", "pgd_at", "feature_scattering"]   # experiment names of the profile's trained models
dataset = None             # None -> the profile's dataset (test split), e.g. "mnist-sample"
n_examples = {n}
eps = None                 # Linf budget on the [0, 1] scale; None -> the profile's PGD eps (else 0.3 MNIST, 8/255)
seed = 0"""

SETUP = """\
import json
import os
from pathlib import Path
if Path.cwd().name == "notebooks":  # opened in JupyterLab: run from the project root like papermill does
    os.chdir("..")
import torch
from ot_robust import analysis as A
from ot_robust.profiles import paths as L
from ot_robust.core.data import as_tensors, get_dataset
from ot_robust.core.style import save_figure
from ot_robust.core.utils import parse_number

models = json.loads(models) if isinstance(models, str) else models  # the pipeline passes lists as JSON
torch.manual_seed(seed)
fig_dir = Path(fig_dir or f"runs/{profile}/figures")
dataset = dataset or L.profile_dataset(profile)
eps = L.profile_eps(profile, dataset) if eps is None else parse_number(eps)
trained = L.load_trained_models(models, runs_dir, profile)
names = L.profile_labels(profile)  # legends and titles use the papers' names (a profile's label), not experiment keys
trained = {names.get(k, k): m for k, m in trained.items()}
x, y = as_tensors(get_dataset(dataset, "test"), n_examples)
print(f"models: {list(trained)}; {len(x)} test images of {dataset}; Linf eps = {eps:.4g}; figures -> {fig_dir}")"""

NO_MODELS = 'print("no trained model found: nothing to plot (run `python -m ot_robust reproduce` first)")'

SETTING = ("Our setting: the profile's dataset and CPU model (study-fashion: Fashion-MNIST, small_cnn trained for "
           "6 epochs; quick: the bundled 2k-image MNIST test sample, the CW CNN trained for 1-2 epochs) instead of the papers' CIFAR-10 WRN-28-10/WRN-34-10 trained for 100-200 "
           "epochs; compare qualitative trends, not the pictures' exact shapes.")


def notebook(title: str, n_examples: int, cells: list, extra_params: str = "", setup: bool = True):
    params = PARAMS.format(n=n_examples) + (("\n" + extra_params) if extra_params else "")
    return build([markdown(title), code(params, ["parameters"])] + ([code(SETUP)] if setup else []) + cells)


def tsne():
    return notebook(
        "# 43 - t-SNE of clean, PGD-adversarial and feature-scattering features\n\n"
        "Regenerates **FS supplement Fig. 2** (rows: Standard / Proposed model; columns: clean, supervised PGD "
        "attack, feature scattering) and **GOT Fig. 6** (penultimate features against PGD-20, TRADES vs GOT). "
        "One row per trained model of the profile; points coloured by the true label.",
        150,
        [code("perturbations = {\"clean\": None, \"PGD-20\": A.pgd(eps, 20, seed=seed),\n"
              "                 \"feature scattering\": A.feature_scattering(eps, seed=seed)}\n"
              "results = {name: A.tsne_features(m, x, y, perturbations, layer=layer, max_iter=tsne_max_iter, "
              "seed=seed)\n           for name, m in trained.items()}"),
         code("if results:\n"
              "    fig = A.plot_tsne_grid(results)\n"
              "    save_figure(fig, figure_name, fig_dir, close=False)\n"
              "else:\n    " + NO_MODELS),
         markdown(
             "**Figure (FS supplement Fig. 2; GOT Fig. 6).** t-SNE (scikit-learn, fixed seed, one joint embedding "
             "per model so its three panels share coordinates) of penultimate-layer features of clean test images, "
             "of PGD-20 adversarial images (supervised, Linf eps) and of feature-scattering perturbations (one "
             "step of size eps maximising the Sinkhorn OT distance between clean and perturbed logits of the "
             "batch); colour = true label, `acc` = accuracy on the panel's images. Expected: for the standard "
             "model PGD mixes the clusters while a robust model keeps their label identity. " + SETTING
             + " The papers used CIFAR-10 (and GOT a CIFAR-10 TRADES/GOT-TRADES-LM pair).")],
        extra_params='layer = "penultimate"     # or "logits"\ntsne_max_iter = 500\n'
                     'figure_name = "fs_supp_fig2_tsne_features"  # a GOT profile: "got_fig6_tsne_features"')


def landscape():
    return notebook(
        "# 44 - Loss landscapes around natural images\n\n"
        "Regenerates **FS Fig. 4**: the cross-entropy over a 2-D grid `x + a d_a + b d_r` around a test image, "
        "`d_a = sign(grad_x CE)` (adversarial direction) and `d_r` a Rademacher vector, for the Standard, Madry "
        "(PGD-AT) and feature-scattering models; 3-D surface and contour views.",
        2,
        [code("radius = eps if radius is None else parse_number(radius)\n"
              "results = {name: A.loss_landscape(m, x, y, radius=radius, n_points=n_points, seed=seed)\n"
              "           for name, m in trained.items()}"),
         code("for i in range(len(x) if results else 0):\n"
              "    fig = A.plot_loss_landscapes(results, index=i)\n"
              "    fig.suptitle(f\"test image {i} (label {int(y[i])})\", y=1.02)\n"
              "    save_figure(fig, f\"fs_fig4_loss_landscape_{i}\", fig_dir, close=False)\n"
              "if not results:\n    " + NO_MODELS),
         markdown(
             "**Figure (FS Fig. 4).** Cross-entropy loss (nats) of each model on `x + a d_a + b d_r`, with "
             "`a, b` in `[-radius, radius]` (Linf distance on the [0, 1] pixel scale; radius = eps by default), "
             "`d_a` the sign of the input gradient and `d_r` a Rademacher vector; the grid centre is the image "
             "itself (no clamping to [0, 1], as a plane must be). Surfaces share the z-range. Expected: the "
             "standard model's loss rises steeply along `d_a`, the adversarially trained ones stay low and flat. "
             + SETTING)],
        extra_params="radius = None              # half-width of the grid (Linf); None -> eps\nn_points = 21")


def activations():
    return notebook(
        "# 45 - Activation magnitudes, input gradients and gradient-norm ratios (OTJR analyses)\n\n"
        "Regenerates **OTJR Fig. 2 and Fig. 8** (channel-wise penultimate activation magnitudes, clean vs PGD-20), "
        "**OTJR Fig. 3 / Table 12** (mean `|grad_x CE|` across PGD iterations, from "
        "`ot_robust.analysis.input_gradients`) and **OTJR Fig. 4 and Fig. 6** (per-parameter ratios "
        "`E(||grad_theta L(x_adv)|| / ||grad_theta L(x)||)`). Set `models` to the OTJR methods of the profile "
        "(e.g. PGD-AT, random JR, SAT, OTJR) to match the papers' panels.",
        256,
        [markdown("## Activation magnitudes (OTJR Fig. 2, Fig. 8)"),
         code("attack = A.pgd(eps, 20, seed=seed)\n"
              "acts = {name: A.activation_magnitudes(m, x, y, attack) for name, m in trained.items()}\n"
              "if acts:\n"
              "    save_figure(A.plot_activation_magnitudes(acts), \"otjr_fig2_activation_magnitudes\", fig_dir, "
              "close=False)\n"
              "else:\n    " + NO_MODELS),
         markdown(
             "**Figure (OTJR Fig. 2 / Fig. 8; Bai et al. 2021).** Mean absolute activation of each penultimate "
             "channel (the global-average-pooled last feature map, i.e. `model(x, return_features=True)`) over "
             "the test images, clean (blue) and PGD-20 adversarial (red, Linf eps), channels sorted by the clean "
             "magnitude. Expected: adversarial training suppresses the magnitudes and brings adversarial ones "
             "close to clean ones. " + SETTING + " (the CW CNN has 200 penultimate units; WRN-34-10 has 640 channels.)"),
         markdown("## Input-gradient magnitude across PGD iterations (OTJR Fig. 3, Table 12)"),
         code("from ot_robust.core.style import figure\n"
              "grads = {name: A.input_gradient_l1(m, x, y, eps=eps, step_size=2.5 * eps / 20, n_examples=n_grad)\n"
              "         for name, m in trained.items()}\n"
              "if grads:\n"
              "    fig, ax = figure(width=4.5, height=3.0)\n"
              "    for name, g in grads.items():\n"
              "        ax[0, 0].plot(list(g), list(g.values()), marker=\"o\", label=name)\n"
              "    ax[0, 0].set(xlabel=\"PGD iterations (0 = clean)\",\n"
              "                 ylabel=\"mean |d CE / d pixel| (per [0,1] unit)\",\n"
              "                 yscale=\"log\")\n"
              "    ax[0, 0].legend()\n"
              "    save_figure(fig, \"otjr_fig3_input_gradients\", fig_dir, close=False)"),
         markdown(
             "**Figure (OTJR Fig. 3, Table 12).** Mean over test images and pixels of `|grad_x CE|` on clean "
             "inputs and after 1-20 Linf-PGD iterations (each count a separate run from the clean image). The "
             "paper draws a per-sample min-max band; `input_gradient_l1` returns the mean only, so we plot the "
             "mean per method. Expected: Jacobian regularisation keeps input gradients lowest. " + SETTING),
         markdown("## Per-parameter gradient-norm ratios (OTJR Fig. 4, Fig. 6)"),
         code("ratios = {name: A.gradient_norm_ratios(m, x, y, attack, n_examples=n_ratio)\n"
              "          for name, m in trained.items()}\n"
              "if ratios:\n"
              "    save_figure(A.plot_gradient_ratios(ratios), \"otjr_fig4_gradient_norm_ratios\", fig_dir, "
              "close=False)\n"
              "    save_figure(A.plot_gradient_ratios(ratios, statistic=\"median\"), "
              "\"otjr_fig4_gradient_norm_ratios_median\", fig_dir, close=False)"),
         markdown(
             "**Figure (OTJR Fig. 4 / Fig. 6).** For every parameter tensor (input to output), the mean over test "
             "images of `||grad_theta_i CE(x_adv)||_2 / ||grad_theta_i CE(x)||_2` (exact per-example gradients via "
             "`torch.func.vmap`), x_adv from PGD-20; log scale, 1 = dashed. A second figure shows the median, which "
             "is robust to confidently classified clean images whose gradient is near zero. Expected: lower ratios "
             "= the model puts more emphasis on perturbations (AT); JR stays near 1 in the middle layers. "
             + SETTING)],
        extra_params="n_grad = 64               # examples for the input-gradient curve\n"
                     "n_ratio = 64              # examples for the gradient-norm ratios")


def decision_cells():
    return notebook(
        "# 46 - Decision-cell cross sections\n\n"
        "Regenerates **OTJR supplement Sec. 5, Fig. 9**: the predicted class over a 2-D plane through a test "
        "image spanned by an adversarial direction and a random orthogonal direction, with the eps-ball drawn; "
        "a gallery over several images, one column per method.",
        4,
        [code("attack = A.pgd(eps, 20, seed=seed)\n"
              "cells = {name: A.decision_cells(m, x, y, attack, eps, n_points=n_points, seed=seed)\n"
              "         for name, m in trained.items()}\n"
              "if cells:\n"
              "    save_figure(A.plot_decision_cells(cells, max_inputs=len(x)), \"otjr_supp_fig9_decision_cells\", "
              "fig_dir, close=False)\n"
              "    for name, c in cells.items():\n"
              "        print(f\"{name}: fraction of the eps-ball keeping the clean prediction = \"\n"
              "              f\"{c.cell_fraction().round(3).tolist()}\")\n"
              "else:\n    " + NO_MODELS),
         markdown(
             "**Figure (OTJR supplement Fig. 9).** Colour = predicted class on `x + a d_adv + b d_rand`: `d_adv` "
             "the unit-L2 direction of the model's own PGD-20 example, `d_rand` a random Gaussian direction "
             "orthogonalised to it; axes are L2 distances on the [0, 1] pixel scale; white + = the image (its "
             "prediction is the centre's colour); black = the Linf eps-ball's cross-section (a polygon, computed "
             "exactly). `cell` = share of the ball keeping the clean prediction. The paper compares no "
             "regularisation / random JR / optimal JR (OTJR); set `models` accordingly. " + SETTING)],
        extra_params="n_points = 51")


def toy():
    return notebook(
        "# 47 - Toy illustration: supervised vs feature-scattering perturbations\n\n"
        "Regenerates **FS Fig. 2** (2-D data: original, supervised perturbation and feature scattering, with the "
        "boundary of a clean-trained model). Needs no trained model (runs in seconds).",
        200,
        [code("import os\nfrom pathlib import Path\nif Path.cwd().name == \"notebooks\":\n    os.chdir(\"..\")\n"
              "from ot_robust import analysis as A\nfrom ot_robust.core.style import save_figure\n\n"
              "fig_dir = Path(fig_dir or f\"runs/{profile}/figures\")\n"
              "toy = A.toy_perturbations({\"supervised (PGD-10)\": A.pgd(toy_eps, 10, seed=seed),\n"
              "                           \"feature scattering\": A.feature_scattering(toy_eps, seed=seed)},\n"
              "                          n=n_examples, eps=toy_eps, seed=seed)\n"
              "save_figure(A.plot_toy_perturbations(toy), \"fs_fig2_toy_perturbations\", fig_dir, close=False)"),
         markdown(
             "**Figure (FS Fig. 2).** (a) two-moons data in [0, 1]^2; (b) PGD-10 on the cross-entropy of the true "
             "label (supervised) and (c) one feature-scattering step (Sinkhorn OT distance between clean and "
             "perturbed logits of the whole batch), both Linf `toy_eps`; grey segments join a point to its "
             "perturbation; black line = decision boundary of an MLP trained on the clean data. Expected: "
             "supervised perturbations all push towards the boundary, feature scattering spreads them. The paper "
             "does not specify its toy data or model; ours are two moons and a 2-32-32-2 MLP."),
         markdown(
             "OTJR Fig. 5 (random vs sliced-Wasserstein optimal movement directions) is drawn by "
             "`01_ot_solvers`; `A.movement_directions` + `A.plot_movement_directions` give the paper's 2 x 2 "
             "layout for any pair of clouds (`A.toy_clouds(\"shift\" | \"ring\")`).")],
        extra_params="toy_eps = 0.08            # Linf budget on the toy data's [0, 1] scale", setup=False)


NOTEBOOKS = {"43_figures_tsne": tsne, "44_figures_landscape": landscape, "45_figures_activations": activations,
             "46_figures_decision_cells": decision_cells, "47_figures_toy": toy}


if __name__ == "__main__":
    sys.exit(main(NOTEBOOKS, __file__, __doc__.splitlines()[0]))
