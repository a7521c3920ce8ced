import ot
import pytest
import torch
from torch.autograd import gradcheck

from ot_robust.ot import cosine_cost, cost_matrix, joint_cost

torch.manual_seed(0)


def _pts(*shape):
    return torch.randn(*shape, dtype=torch.float64)


@pytest.mark.parametrize("metric,pot_metric", [("sqeuclidean", "sqeuclidean"), ("euclidean", "euclidean"),
                                               ("l1", "cityblock"), ("cosine", "cosine")])
def test_costs_match_pot_dist(metric, pot_metric):
    x, y = _pts(7, 4), _pts(5, 4)
    ref = torch.as_tensor(ot.dist(x.numpy(), y.numpy(), metric=pot_metric))
    torch.testing.assert_close(cost_matrix(x, y, metric), ref, rtol=1e-9, atol=1e-9)


def test_cosine_range_and_definition():
    x, y = _pts(2, 6, 3), _pts(2, 5, 3)
    C = cosine_cost(x, y)
    assert C.shape == (2, 6, 5) and C.min() >= 0 and C.max() <= 2
    manual = 1 - torch.nn.functional.cosine_similarity(x[:, :, None], y[:, None], dim=-1)
    torch.testing.assert_close(C, manual)
    assert torch.allclose(cosine_cost(x, x).diagonal(dim1=-2, dim2=-1), torch.zeros(2, 6, dtype=torch.float64),
                          atol=1e-12)
    assert torch.allclose(cosine_cost(x, -x).diagonal(dim1=-2, dim2=-1), 2 * torch.ones(2, 6, dtype=torch.float64))


def test_kl_cost_on_simplex_and_batching():
    p = torch.softmax(_pts(3, 6, 4), -1)
    q = torch.softmax(_pts(3, 5, 4), -1)
    C = cost_matrix(p, q, "kl")
    manual = (p[:, :, None] * (p[:, :, None].log() - q[:, None].log())).sum(-1)
    torch.testing.assert_close(C, manual)
    assert torch.allclose(cost_matrix(p, p, "kl").diagonal(dim1=-2, dim2=-1), torch.zeros(3, 6, dtype=torch.float64),
                          atol=1e-12)
    for metric in ("sqeuclidean", "l1", "cosine"):  # batched == per-item
        torch.testing.assert_close(cost_matrix(p, q, metric)[1], cost_matrix(p[1], q[1], metric))


def test_joint_cost_is_weighted_sum():
    z, z2 = _pts(6, 8), _pts(6, 8)
    p, p2 = torch.softmax(_pts(6, 3), -1), torch.softmax(_pts(6, 3), -1)
    C = joint_cost(z, z2, p, p2, lam=0.5)
    torch.testing.assert_close(C, 0.5 * cosine_cost(z, z2) + cost_matrix(p, p2, "kl"))
    C2 = joint_cost(z, z2, p, p2, lam=2.0, d_x="sqeuclidean", d_y="l1")
    torch.testing.assert_close(C2, 2.0 * cost_matrix(z, z2, "sqeuclidean") + cost_matrix(p, p2, "l1"))


def test_bad_inputs_raise():
    x = _pts(4, 3)
    with pytest.raises(ValueError, match="metric"):
        cost_matrix(x, x, "hamming")
    with pytest.raises(ValueError, match="feature dimension"):
        cost_matrix(x, _pts(4, 2), "cosine")
    with pytest.raises(ValueError, match="dimensions"):
        cost_matrix(torch.randn(3, dtype=torch.float64), x)


@pytest.mark.parametrize("metric", ["cosine", "sqeuclidean", "euclidean", "kl"])
def test_cost_gradcheck(metric):
    x = _pts(3, 4).requires_grad_()
    y = _pts(2, 4).requires_grad_()
    if metric == "kl":
        f = lambda x, y: cost_matrix(torch.softmax(x, -1), torch.softmax(y, -1), "kl")
    else:
        f = lambda x, y: cost_matrix(x, y, metric)
    assert gradcheck(f, (x, y))
