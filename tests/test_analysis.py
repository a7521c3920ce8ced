"""Analysis functions (ot_robust.analysis) on a tiny CNN and a real MNIST batch: shapes, exact centres, plots."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ot_robust import analysis as A
from ot_robust.core.data import as_tensors, get_dataset
from ot_robust.models import get_model
from ot_robust.core.style import save_figure

EPS = 0.1


@pytest.fixture(scope="module")
def batch():
    return as_tensors(get_dataset("mnist-sample", "test"), 24)


@pytest.fixture(scope="module")
def model(batch):
    """small_cnn (width 4) after 30 Adam steps on the mnist-sample training split: not random, still tiny."""
    torch.manual_seed(0)
    m = get_model("small_cnn", "mnist-sample", width=4)
    x, y = as_tensors(get_dataset("mnist-sample", "train"), 960)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for i in range(0, 960, 32):
        opt.zero_grad()
        F.cross_entropy(m(x[i:i + 32]), y[i:i + 32]).backward()
        opt.step()
    return m.eval()


def identity(model, x, y):
    return x.clone()


def test_loss_landscape_shapes_and_exact_centre(model, batch):
    x, y = batch
    ls = A.loss_landscape(model, x, y, radius=EPS, n_points=7, n_examples=3, progress=False)
    assert ls.loss.shape == (3, 7, 7) and ls.alphas.shape == ls.betas.shape == (7,)
    assert ls.alphas[3] == 0 and ls.betas[3] == 0
    with torch.no_grad():
        expected = F.cross_entropy(model(x[:3]), y[:3], reduction="none").numpy()
    np.testing.assert_allclose(ls.loss[:, 3, 3], expected, rtol=1e-5, atol=1e-6)
    # the FGSM direction raises the loss (first order): the far edge along d_a is above the centre on average
    assert ls.loss[:, -1, 3].mean() > ls.loss[:, 3, 3].mean()
    with pytest.raises(ValueError, match="n_points"):
        A.loss_landscape(model, x, y, n_points=6, progress=False)


def test_decision_cells_centre_is_prediction_and_ball_geometry(model, batch):
    x, y = batch
    cells = A.decision_cells(model, x, y, A.pgd(EPS, steps=3), EPS, n_points=9, n_examples=4, progress=False)
    assert cells.pred.shape == cells.ball.shape == (4, 9, 9) and cells.alphas.shape == (9,)
    with torch.no_grad():
        np.testing.assert_array_equal(cells.pred[:, 4, 4], model(x[:4]).argmax(1).numpy())
    assert np.all(cells.ball[:, 4, 4] == 0) and cells.ball.max() > EPS  # the whole ball is in view
    frac = cells.cell_fraction()
    assert frac.shape == (4,) and np.all((frac > 0) & (frac <= 1))
    d1, d2 = A.orthonormal_directions(x[:4], x[:4] + 0.01 * torch.randn_like(x[:4]))
    assert torch.allclose(d1.flatten(1).norm(dim=1), torch.ones(4), atol=1e-5)
    assert (d1.flatten(1) * d2.flatten(1)).sum(1).abs().max() < 1e-5
    with pytest.raises(ValueError, match="norm"):
        A.decision_cells(model, x, y, identity, EPS, norm="l1", progress=False)


def test_activation_magnitudes(model, batch):
    x, y = batch
    r = A.activation_magnitudes(model, x, y, A.pgd(EPS, steps=2), n_examples=16, progress=False)
    d = model.feature_dim
    assert r.clean.shape == r.adversarial.shape == r.order.shape == (d,)
    assert np.all(np.diff(r.clean[r.order]) <= 0)
    with torch.no_grad():
        np.testing.assert_allclose(r.clean, model(x[:16], return_features=True)[1].abs().mean(0).numpy(), rtol=1e-5)
    assert not np.allclose(r.clean, r.adversarial)


def test_per_example_grad_norms_match_autograd_and_ratio_of_identity_is_one(model, batch):
    x, y = batch
    norms = A.per_example_grad_norms(model, x[:3], y[:3])
    names = [n for n, _ in model.named_parameters()]
    assert norms.shape == (3, len(names))
    for i in range(3):
        grads = torch.autograd.grad(F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]), list(model.parameters()))
        torch.testing.assert_close(norms[i], torch.stack([g.norm() for g in grads]), rtol=1e-4, atol=1e-7)
    r = A.gradient_norm_ratios(model, x, y, identity, n_examples=8, batch_size=5, progress=False)
    assert r.names == names and r.ratios.shape == (len(names),) and r.per_example.shape == (8, len(names))
    np.testing.assert_allclose(r.ratios, 1.0, rtol=1e-6)
    adv = A.gradient_norm_ratios(model, x, y, A.pgd(EPS, steps=2), n_examples=8, progress=False)
    assert np.all(adv.ratios > 0) and not np.allclose(adv.ratios, 1.0)


def test_tsne_features_shapes(model, batch):
    x, y = batch
    perts = {"clean": None, "copy": identity, "feature scattering": A.feature_scattering(EPS)}
    r = A.tsne_features(model, x, y, perts, n_examples=20, max_iter=250, progress=False)
    assert list(r.embeddings) == list(perts) and r.labels.shape == (20,)
    for name in perts:
        assert r.embeddings[name].shape == (20, 2) and r.features[name].shape == (20, model.feature_dim)
        assert np.isfinite(r.embeddings[name]).all()
    np.testing.assert_allclose(r.features["clean"], r.features["copy"], rtol=1e-6)


@pytest.fixture(scope="module")
def toy():
    return A.toy_perturbations({"fs": A.feature_scattering(0.05)}, n=60, eps=0.05, train_steps=150)


def test_toy_data_model_and_movement_directions(toy):
    x, y = A.make_toy_data(100, seed=1)
    assert x.shape == (100, 2) and x.min() >= 0 and x.max() <= 1 and set(y.tolist()) == {0, 1}
    assert (toy.model(toy.x).argmax(1) == toy.y).float().mean() > 0.8  # the clean-trained boundary fits the data
    assert toy.perturbed["fs"].shape == (60, 2)
    assert (toy.perturbed["fs"] - toy.x).abs().max() <= 0.05 + 1e-6 and (toy.perturbed["fs"] != toy.x).any()
    src, tgt = A.toy_clouds("shift", n=40)
    mv = A.movement_directions(src, tgt)
    assert mv.optimal.shape == mv.random.shape == (40, 2)
    np.testing.assert_allclose(np.linalg.norm(mv.optimal, axis=1), 1, rtol=1e-6)
    shift = (tgt.mean(0) - src.mean(0)).numpy()
    assert (mv.optimal @ shift / np.linalg.norm(shift)).mean() > 0.8  # optimal directions point at the target


def test_plots_write_non_empty_images(model, batch, toy, tmp_path):
    x, y = batch
    figs = {
        "tsne": A.plot_tsne_grid({"m": A.tsne_features(model, x, y, {"clean": None}, n_examples=12, max_iter=250,
                                                       progress=False)}),
        "landscape": A.plot_loss_landscapes({"m": A.loss_landscape(model, x, y, 0.1, 5, 1, progress=False)}),
        "activations": A.plot_activation_magnitudes({"m": A.activation_magnitudes(model, x, y, identity, 4,
                                                                                   progress=False)}),
        "ratios": A.plot_gradient_ratios({"m": A.gradient_norm_ratios(model, x, y, identity, 4, progress=False)}),
        "cells": A.plot_decision_cells({"m": A.decision_cells(model, x, y, identity, EPS, n_points=5, n_examples=2,
                                                               progress=False)}),
        "toy": A.plot_toy_perturbations(toy),
        "moves": A.plot_movement_directions({"shift": A.movement_directions(*A.toy_clouds("shift", n=10))}),
    }
    for name, fig in figs.items():
        png, pdf = save_figure(fig, name, tmp_path)
        assert png.stat().st_size > 2000 and pdf.stat().st_size > 1000, name


def test_find_run_dir_layouts_and_missing_models_are_skipped(tmp_path, capsys):
    for layout in ("quick/train/std", "quick/fs"):
        (tmp_path / layout).mkdir(parents=True)
        (tmp_path / layout / "model.pt").write_bytes(b"x")
    from ot_robust.profiles.paths import RunLayout, find_run_dir, load_trained_models

    assert find_run_dir(tmp_path, "quick", "std") == tmp_path / "quick/train/std"
    assert find_run_dir(tmp_path / "quick", "quick", "fs") == tmp_path / "quick/fs"
    assert find_run_dir(tmp_path, "quick", "missing") is None
    assert load_trained_models(["missing"], tmp_path, "quick") == {}
    assert RunLayout.resolve(tmp_path, "quick") == tmp_path / "quick" == RunLayout.resolve(tmp_path / "quick", "quick")
    lay = RunLayout("runs/", "quick", "figures")
    assert (lay.train("fs"), lay.eval("fs"), lay.tables, lay.step("tables", "fs")) == (
        "runs/quick/train/fs", "runs/quick/eval/fs", "figures/quick/tables", "runs/quick/tables/fs")
    assert "skipping 'missing'" in capsys.readouterr().out
    with pytest.raises(ValueError, match="n_examples"):
        A.activation_magnitudes(None, torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), identity, 0)


def test_one_colour_per_method_in_every_figure():
    """Issue 17: a method keeps its colour across figures (keyed by the paper's name, seeds included)."""
    from ot_robust.reports.figures import plot_accuracy_curves
    from ot_robust.core.style import METHOD_COLORS, method_color

    assert method_color("Madry") == method_color("PGD-AT") == method_color("Madry (seed 1)") == METHOD_COLORS["Madry"]
    assert method_color("my new defense") == method_color("my new defense")  # unlisted: stable
    assert len({METHOD_COLORS[k] for k in ("Standard", "Madry", "TRADES", "Proposed", "OTJR", "SW", "SAT")}) == 7
    c = {"vs_epsilon": {"x": [0, 0.1], "accuracy": [90, 40], "steps": 20},
         "vs_steps": {"x": [1, 5, 20], "accuracy": [60, 50, 40], "eps": 0.1}, "n_examples": 300}
    fig = plot_accuracy_curves({"TRADES": c, "Proposed": c})
    a, b = fig.axes[0], fig.axes[1]
    for ax in (a, b):
        assert [ln.get_color() for ln in ax.lines] == [METHOD_COLORS["TRADES"], METHOD_COLORS["Proposed"]]
    assert "n = 300" in fig._suptitle.get_text() and "eps = 0.1" in b.get_title() and "PGD-20" in a.get_title()
    fig.canvas.draw()  # the two panel titles do not overlap (they did with n and the profile in each)
    ra, rb = (ax.title.get_window_extent() for ax in (a, b))
    assert ra.x1 < rb.x0
    assert all(float(t).is_integer() for t in b.get_xticks())
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_accuracy_curves_draw_the_papers_protocol_in_a_third_panel():
    """Issue 33: GOT Fig. 2 shows the paper's protocol (App. A.3, 40 x 0.01) beside ours, solid with the random start
    and dashed without, each method in its colour; mixed step budgets in one panel are refused."""
    import matplotlib.pyplot as plt

    from ot_robust.core.style import method_color
    from ot_robust.reports.figures import plot_accuracy_curves

    c = {"vs_epsilon": {"x": [0.1, 0.3], "accuracy": [95, 90], "steps": 20},
         "vs_steps": {"x": [1, 40], "accuracy": [95, 90], "eps": 0.3}}
    sweep = {"epsilons": [0.3, 0.5, 0.7], "n_examples": 10, "protocols": {
        "paper": {"steps": 40, "step_size": 0.01, "random_start": True, "accuracy": [90, 5, 0]},
        "paper_no_start": {"steps": 40, "step_size": 0.01, "random_start": False, "accuracy": [90, 85, 85]}}}
    fig = plot_accuracy_curves({"PGD-AT": c, "MART": c}, sweeps={"PGD-AT": sweep})
    assert len(fig.axes) == 3
    panel = fig.axes[2]
    assert "40 x 0.01" in panel.get_title()
    assert [(ln.get_color(), ln.get_linestyle()) for ln in panel.lines] == [(method_color("PGD-AT"), "-"),
                                                                          (method_color("PGD-AT"), "--")]
    assert list(panel.lines[1].get_ydata()) == [90, 85, 85]
    assert [t.get_text() for t in panel.get_legend().get_texts()] == ["PGD-AT", "MART", "(c) random start",
                                                                       "(c) no random start"]  # beside the panel
    plt.close(fig)
    bad = {"epsilons": [0.3], "protocols": {"a": {"steps": 40, "step_size": 0.01, "accuracy": [1]},
                                            "b": {"steps": 20, "step_size": 0.01, "accuracy": [1]}}}
    with pytest.raises(ValueError, match="share steps and step size"):
        plot_accuracy_curves({"PGD-AT": c}, sweeps={"PGD-AT": bad})
    plt.close("all")
