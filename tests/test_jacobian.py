"""Jacobian regularization estimators (OTJR Eq. 3-5, Eq. 12) against the exact Jacobian from autograd."""
import pytest
import torch
from torch import nn

from ot_robust.defenses.jacobian import jacobian_frobenius, random_unit_vectors


def _tiny_net(seed=0, d_in=6, c=4):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, 8), nn.Tanh(), nn.Linear(8, c)).double()


def _exact_jacobians(net, x):
    """(B, C, D) per-example Jacobians by full autograd (one example at a time: reference only)."""
    return torch.stack([torch.autograd.functional.jacobian(net, xi) for xi in x])


def test_random_projection_estimate_matches_exact_frobenius_in_expectation():
    net = _tiny_net()
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    z = net(x)
    exact = _exact_jacobians(net, x.detach()).pow(2).sum((1, 2)).mean()
    gen = torch.Generator().manual_seed(2)
    est = jacobian_frobenius(x, z, n_proj=4000, generator=gen, create_graph=False)
    assert torch.isclose(est, exact, rtol=0.05), (float(est), float(exact))
    # one projection is a noisy but positive estimate with the right scale
    single = torch.stack([jacobian_frobenius(x, z, n_proj=1, generator=gen, create_graph=False) for _ in range(50)])
    assert (single > 0).all() and 0.5 * exact < single.mean() < 1.5 * exact


def test_estimate_is_exact_with_an_orthonormal_basis():
    """With the C canonical directions as projections the estimator is exact: mean_i ||J(x_i)||_F^2."""
    net = _tiny_net(3)
    x = torch.randn(3, 6, dtype=torch.float64).requires_grad_(True)
    z = net(x)
    eye = torch.eye(4, dtype=torch.float64).unsqueeze(1).expand(4, 3, 4)
    exact = _exact_jacobians(net, x.detach()).pow(2).sum((1, 2)).mean()
    # C / (P B) * sum = C/(C B) * B * mean||J||^2 = mean ||J||_F^2 with P = C canonical projections
    assert torch.allclose(jacobian_frobenius(x, z, projections=eye, create_graph=False), exact)


def test_optimal_direction_variant_equals_exact_directional_norm():
    net = _tiny_net(4)
    x = torch.randn(5, 6, dtype=torch.float64).requires_grad_(True)
    z = net(x)
    delta = torch.randn(5, 4, dtype=torch.float64)
    delta = delta / delta.norm(dim=1, keepdim=True)
    jac = _exact_jacobians(net, x.detach())                        # (B, C, D)
    exact = torch.einsum("bc,bcd->bd", delta, jac).pow(2).sum(1)   # |Delta_i^T J_i|^2
    expected = 4 * exact.mean()                                    # the C / B scale of the reference code
    assert torch.allclose(jacobian_frobenius(x, z, projections=delta, create_graph=False), expected)


def test_penalty_is_differentiable_wrt_parameters_and_directions_are_constants():
    net = _tiny_net(5)
    x = torch.randn(4, 6, dtype=torch.float64).requires_grad_(True)
    z = net(x)
    delta = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    r = jacobian_frobenius(x, z, projections=delta)
    r.backward()
    assert delta.grad is None  # detached
    grads = [p.grad for p in net.parameters() if p.dim() > 1]  # the output bias does not enter the Jacobian
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_random_unit_vectors_are_on_the_sphere_and_isotropic():
    v = random_unit_vectors(20000, 1, 3, generator=torch.Generator().manual_seed(0))[:, 0]
    assert torch.allclose(v.norm(dim=1), torch.ones(20000))
    cov = v.T @ v / v.shape[0]
    assert torch.allclose(cov, torch.eye(3) / 3, atol=0.02)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_proj=0), "n_proj"),
    (dict(projections=torch.ones(3, 5)), "projections"),
])
def test_bad_arguments_raise(kwargs, match):
    x = torch.randn(4, 6).requires_grad_(True)
    z = nn.Linear(6, 3)(x)
    with pytest.raises(ValueError, match=match):
        jacobian_frobenius(x, z, **kwargs)


def test_input_without_grad_raises():
    x = torch.randn(4, 6)
    with pytest.raises(ValueError, match="requires_grad|require grad"):
        jacobian_frobenius(x, nn.Linear(6, 3)(x))
