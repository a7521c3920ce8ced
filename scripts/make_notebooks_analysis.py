"""Generate the analysis notebooks 43-47 (t-SNE, loss landscapes, activations/gradients, decision cells, toys).

Run ``python scripts/make_notebooks_analysis.py`` after changing this file (``--check`` exits 1 if a committed
notebook differs). Every notebook: a title cell, a cell tagged ``parameters`` (papermill), a setup cell, one call (it
loads the profile's trained models from ``<runs_dir>/<profile>/train/<experiment>/``, by default the study's committed
models, skipping missing ones with a printed note), to :mod:`ot_robust.study.analysis_steps` (which runs
:mod:`ot_robust.analysis` and saves the figures), and a caption cell per figure naming the paper figure it regenerates
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
import os
from pathlib import Path
if Path.cwd().name == "notebooks":  # opened in JupyterLab: run from the project root like papermill does
    os.chdir("..")
from ot_robust.study import analysis_steps, tasks"""

COMMON = ("profile=profile, runs_dir=runs_dir, fig_dir=fig_dir, models=models, dataset=dataset,\n    "
          "n_examples=n_examples, eps=eps, seed=seed")


def call(step: str, extra: str = "") -> str:
    """The step's one call (:mod:`ot_robust.study.analysis_steps`) and the display of what it wrote."""
    return (f"written = analysis_steps.{step}({COMMON}" + (f",\n    {extra}" if extra else "") + ")\n"
            "tasks.show_figures(written)")


SETTING = ("Our setting: the profile's dataset and CPU model (study-fashion: Fashion-MNIST, small_cnn trained for "
           "6 epochs; quick: the bundled 2k-image MNIST test sample, the CW CNN trained for 1-2 epochs) instead of the "
           "papers' CIFAR-10 WRN-28-10/WRN-34-10 trained for 100-200 "
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
        [code(call("tsne", "layer=layer, tsne_max_iter=tsne_max_iter, figure_name=figure_name")),
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
        [code(call("landscape", "radius=radius, n_points=n_points")),
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
        [code(call("activations", "n_grad=n_grad, n_ratio=n_ratio")),
         markdown("## Activation magnitudes (OTJR Fig. 2, Fig. 8)"),
         markdown(
             "**Figure (OTJR Fig. 2 / Fig. 8; Bai et al. 2021).** Mean absolute activation of each penultimate "
             "channel (the global-average-pooled last feature map, i.e. `model(x, return_features=True)`) over "
             "the test images, clean (blue) and PGD-20 adversarial (red, Linf eps), channels sorted by the clean "
             "magnitude. Expected: adversarial training suppresses the magnitudes and brings adversarial ones "
             "close to clean ones. " + SETTING
             + " (the CW CNN has 200 penultimate units; WRN-34-10 has 640 channels.)"),
         markdown("## Input-gradient magnitude across PGD iterations (OTJR Fig. 3, Table 12)"),
         markdown(
             "**Figure (OTJR Fig. 3, Table 12).** Mean over test images and pixels of `|grad_x CE|` on clean "
             "inputs and after 1-20 Linf-PGD iterations (each count a separate run from the clean image). The "
             "paper draws a per-sample min-max band; `input_gradient_l1` returns the mean only, so we plot the "
             "mean per method. Expected: Jacobian regularisation keeps input gradients lowest. " + SETTING),
         markdown("## Per-parameter gradient-norm ratios (OTJR Fig. 4, Fig. 6)"),
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
        [code(call("decision_cells", "n_points=n_points")),
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
        [code(SETUP),
         code("written = analysis_steps.toy(profile=profile, fig_dir=fig_dir, n_examples=n_examples, seed=seed, "
              "toy_eps=toy_eps)\ntasks.show_figures(written)"),
         markdown(
             "**Figure (FS Fig. 2).** (a) two-moons data in [0, 1]^2; (b) PGD-10 on the cross-entropy of the true "
             "label (supervised) and (c) one feature-scattering step (Sinkhorn OT distance between clean and "
             "perturbed logits of the whole batch), both Linf `toy_eps`; grey segments join a point to its "
             "perturbation; black line = decision boundary of an MLP trained on the clean data. Expected: "
             "supervised perturbations all push towards the boundary, feature scattering spreads them. The paper "
             "does not specify its toy data or model; ours are two moons and a 2-32-32-2 MLP."),
         markdown(
             "OTJR Fig. 5 (random vs sliced-Wasserstein optimal movement directions) is drawn by "
             "`01_ot_solvers`; `ot_robust.analysis.movement_directions` + `plot_movement_directions` give the paper's "
             "2 x 2 layout for any pair of clouds (`toy_clouds(\"shift\" | \"ring\")`).")],
        extra_params="toy_eps = 0.08            # Linf budget on the toy data's [0, 1] scale", setup=False)


NOTEBOOKS = {"43_figures_tsne": tsne, "44_figures_landscape": landscape, "45_figures_activations": activations,
             "46_figures_decision_cells": decision_cells, "47_figures_toy": toy}


if __name__ == "__main__":
    sys.exit(main(NOTEBOOKS, __file__, __doc__.splitlines()[0]))
