"""GOT's Kantorovich potential at the dual maximum (GOT Eq. 5-6, App. A.3): the exact solver against POT's entropic
primal on small problems and on a committed trained checkpoint (features of norm ~50), and the direction the
classifier's gradient moves an adversarial point on a toy."""
from pathlib import Path

import numpy as np
import ot as pot
import pytest
import torch

from ot_robust.core.data import as_tensors, get_dataset
from ot_robust.defenses import get_defense
from ot_robust.defenses.got import GOTDistance, latent_forward
from ot_robust.models.loading import load_model
from ot_robust.ot import dual_potential, entropic_dual

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "results/study-mnist/train/got_pgd_lm"   # CW CNN, 5 epochs of MNIST: latent norms ~50


def _pot_entropic(C: np.ndarray, theta: float, y: np.ndarray | None):
    """(entropic W, plan) by POT's log-domain Sinkhorn in float64; label matching = one problem per class."""
    n = C.shape[0]
    groups = [np.arange(n)] if y is None else [np.flatnonzero(y == c) for c in np.unique(y)]
    plan = np.zeros_like(C)
    for i in groups:
        u = np.full(len(i), 1 / len(i))
        plan[np.ix_(i, i)] = len(i) / n * pot.sinkhorn(u, u, C[np.ix_(i, i)], theta, method="sinkhorn_log",
                                                       numItermax=100000, stopThr=1e-13)
    nz = plan > 0
    return float((plan * C).sum() + theta * (plan[nz] * np.log(plan[nz] * n * n)).sum()), plan


@pytest.mark.parametrize("scale", [3.0, 20.0])
@pytest.mark.parametrize("lm", [False, True])
def test_dual_potential_reaches_the_entropic_primal_and_its_gradient_is_the_plan(lm, scale):
    """Costs up to 30 or 200 theta (the second is where plain Sinkhorn needs thousands of iterations; POT's own
    reference is then checked only through the maximum property, its Sinkhorn being the less accurate one)."""
    torch.manual_seed(0)
    n = 16
    C = torch.rand(n, n, dtype=torch.float64) * scale
    y = torch.arange(n) % 3 if lm else None
    phi, info = dual_potential(C, 0.1, labels=y, labels_adv=y)
    assert info["err"] < 1e-6
    Cg = C.clone().requires_grad_(True)
    value = entropic_dual(phi, Cg, 0.1, labels=y, labels_adv=y)
    value.backward()
    value = value.detach()
    w, plan = _pot_entropic(C.numpy(), 0.1, None if y is None else y.numpy())
    if scale <= 3:
        assert float(value) == pytest.approx(w, abs=1e-8)
        assert np.abs(Cg.grad.numpy() - plan).max() < 1e-6
    else:
        assert float(value) >= w - 1e-6                        # never below POT's (less converged) primal value
    assert torch.allclose(Cg.grad.sum(0), torch.full((n,), 1 / n, dtype=torch.float64))   # the plan's marginals
    assert torch.allclose(Cg.grad.sum(1), torch.full((n,), 1 / n, dtype=torch.float64), atol=1e-6)
    for _ in range(5):  # a maximum: any other potential gives less
        assert float(entropic_dual(phi + 0.05 * torch.randn(n, dtype=torch.float64), C, 0.1, labels=y,
                                   labels_adv=y)) < float(value)


def test_dual_potential_refuses_unbounded_label_matching():
    C = torch.rand(4, 4)
    with pytest.raises(ValueError, match=r"clean labels \[1\]"):
        dual_potential(C, 0.1, labels=torch.tensor([0, 0, 1, 1]), labels_adv=torch.tensor([0, 0, 0, 2]))
    with pytest.raises(ValueError, match="class masses"):
        dual_potential(C, 0.1, labels=torch.tensor([0, 0, 0, 1]), labels_adv=torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="tol"):
        dual_potential(C, 0.1, tol=0.0)


def _cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


@pytest.mark.parametrize("variant", ["got_pgd_s", "got_pgd_lm"])
def test_exact_potential_on_a_trained_checkpoint(variant):
    """Issue 38's measurement as a test: on the committed study-mnist checkpoint (its training adversary, a fresh
    batch of 128), W after the potential step is within 1% of the exact entropic W and the gradient on the adversarial
    latents has cosine >= 0.99 with the exact envelope gradient, for S and LM."""
    model = load_model(CHECKPOINT, device="cpu").eval()
    x, y = as_tensors(get_dataset("mnist", "train", augment=False), indices=range(128))
    defense = get_defense(variant, eps=0.3, step_size=0.1, steps=5, clean_weight=0.0)
    torch.manual_seed(0)
    x_adv = defense.attack(model, x, y)
    with torch.no_grad():
        logits, z = latent_forward(model, x)
        _, z_adv = latent_forward(model, x_adv)
    assert float(z.norm(dim=1).mean()) > 30          # the scale at which the Adam update failed
    z_adv.requires_grad_(True)
    logits_adv = model.fc(z_adv)
    w, logs = defense.ot(z, z_adv, logits, logits_adv, y)
    grad, = torch.autograd.grad(w, z_adv, retain_graph=True)
    C = defense.ot.cost(z, z_adv, logits.softmax(-1), logits_adv.softmax(-1))
    exact, plan = _pot_entropic(C.detach().double().numpy(), 0.1, y.numpy() if variant.endswith("lm") else None)
    exact_grad, = torch.autograd.grad((torch.from_numpy(plan).float() * C).sum(), z_adv)
    assert abs(float(w) - exact) <= 0.01 * abs(exact)
    assert _cosine(grad, exact_grad) >= 0.99


@pytest.mark.parametrize("lm", [False, True])
def test_toy_adversarial_point_in_the_other_cluster_moves_home(lm):
    """Two clusters of clean latents (norm ~40); the adversarial copy of one class-0 point sits inside class 1's
    cluster. One descent step on W (the classifier's view) moves it toward class 0, for S and LM."""
    torch.manual_seed(0)
    d, k = 8, 6
    centres = 40 * torch.eye(d)[:2]
    z = torch.cat([centres[0] + torch.randn(k, d), centres[1] + torch.randn(k, d)])
    y = torch.tensor([0] * k + [1] * k)
    head = torch.nn.Linear(d, 2)
    with torch.no_grad():
        head.weight.copy_(torch.stack([centres[0], centres[1]]) / 40)
        head.bias.zero_()
    z_adv = z + 0.5 * torch.randn_like(z)
    z_adv[0] = centres[1] + torch.randn(d)                    # class 0's adversarial point inside class 1
    z_adv.requires_grad_(True)
    reg = GOTDistance(theta=0.1, label_matching=lm)
    w, _ = reg(z, z_adv, head(z), head(z_adv), y)
    grad, = torch.autograd.grad(w, z_adv)
    moved = z_adv.detach() - 0.5 * grad / grad[0].norm()
    cos = lambda a, b: float(torch.nn.functional.cosine_similarity(a, b, dim=0))  # noqa: E731
    assert cos(moved[0], centres[0]) > cos(z_adv[0].detach(), centres[0])
    assert cos(moved[0], centres[1]) < cos(z_adv[0].detach(), centres[1])
