import math

import pytest
import torch
from torch.autograd import gradcheck

from ot_robust.ot import KantorovichPotential, cosine_cost, entropic_dual, sinkhorn

D = torch.float64
THETA = 0.1


def _problem(seed=0, n=6, d=8):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=D)
    za = z + 0.5 * torch.randn(n, d, generator=g, dtype=D)
    return z, za, cosine_cost(z, za)


def test_dual_lower_bounds_primal_and_is_tight_at_sinkhorn_potential():
    z, za, C = _problem()
    primal = sinkhorn(C, reg=THETA, max_iter=5000, tol=1e-13)
    g = torch.Generator().manual_seed(5)
    for _ in range(5):
        phi = torch.randn(6, generator=g, dtype=D)
        assert entropic_dual(phi, C, THETA) <= primal.objective + 1e-12
    phi_star = primal.f - THETA * math.log(1 / 6)
    torch.testing.assert_close(entropic_dual(phi_star, C, THETA), primal.objective)


def test_training_linear_potential_reaches_primal():
    torch.manual_seed(0)
    z, za, C = _problem(seed=0, n=6, d=8)      # d >= n: a linear layer can express any potential on the 6 points
    primal = float(sinkhorn(C, reg=THETA, max_iter=5000, tol=1e-13).objective)
    pot = KantorovichPotential(8).double()
    start = float(entropic_dual(pot(z), C, THETA).detach())
    opt = torch.optim.LBFGS(pot.parameters(), lr=1, max_iter=200, tolerance_grad=1e-12,
                            tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -entropic_dual(pot(z), C, THETA)
        loss.backward()
        return loss

    opt.step(closure)
    final = float(entropic_dual(pot(z), C, THETA).detach())
    assert start < primal - 1e-3
    assert final <= primal + 1e-10 and primal - final < 1e-6


def test_label_matching_bounds_masked_primal():
    z, za, C = _problem(seed=2, n=6)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    y_adv = torch.tensor([1, 0, 2, 0, 1, 2])       # same class counts: a label-respecting plan exists
    masked_C = C + 1e3 * (y[:, None] != y_adv[None, :])
    primal = sinkhorn(masked_C, reg=THETA, max_iter=5000, tol=1e-13)
    assert float((primal.plan * (y[:, None] != y_adv[None, :])).sum()) < 1e-12
    phi_star = primal.f - THETA * math.log(1 / 6)
    torch.testing.assert_close(entropic_dual(phi_star, C, THETA, labels=y, labels_adv=y_adv), primal.objective)
    for s in range(3):
        phi = torch.randn(6, generator=torch.Generator().manual_seed(s), dtype=D)
        assert entropic_dual(phi, C, THETA, labels=y, labels_adv=y_adv) <= primal.objective + 1e-12
    # LM differs from the standard dual: it ignores cross-label pairs
    assert not torch.isclose(entropic_dual(phi_star, C, THETA),
                             entropic_dual(phi_star, C, THETA, labels=y, labels_adv=y_adv))


def test_label_matching_drops_unmatched_adversarial_points():
    z, za, C = _problem(seed=3, n=4)
    phi = torch.randn(4, dtype=D)
    y, y_adv = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 7])
    full = entropic_dual(phi, C, THETA, labels=y, labels_adv=y_adv)
    dropped = entropic_dual(phi, C[:, :3], THETA, labels=y, labels_adv=y_adv[:3])
    torch.testing.assert_close(full, dropped)
    assert torch.isfinite(full)


def test_dual_gradcheck_and_batching():
    z, za, C = _problem(seed=4, n=4)
    phi = torch.randn(4, dtype=D, requires_grad=True)
    Cg = C.clone().requires_grad_()
    y = torch.tensor([0, 1, 0, 1])
    assert gradcheck(lambda p, c: entropic_dual(p, c, THETA), (phi, Cg))
    assert gradcheck(lambda p, c: entropic_dual(p, c, THETA, labels=y, labels_adv=y.flip(0)), (phi, Cg))
    batched = entropic_dual(torch.stack([phi, 2 * phi]), torch.stack([C, C]), THETA)
    assert batched.shape == (2,)
    torch.testing.assert_close(batched[1], entropic_dual(2 * phi, C, THETA))


def test_bad_inputs():
    C = torch.rand(3, 4)
    with pytest.raises(ValueError, match="phi"):
        entropic_dual(torch.zeros(4), C)
    with pytest.raises(ValueError, match="theta"):
        entropic_dual(torch.zeros(3), C, theta=0)
    with pytest.raises(ValueError, match="both labels"):
        entropic_dual(torch.zeros(3), C, labels=torch.zeros(3))
    with pytest.raises(ValueError, match="in_dim"):
        KantorovichPotential(0)
    assert KantorovichPotential(5)(torch.randn(7, 5)).shape == (7,)
