import ot
import pytest
import torch
from torch.autograd import gradcheck

from ot_robust.ot import random_projections, sliced_wasserstein

D = torch.float64


@pytest.mark.parametrize("p", [1, 2])
def test_matches_pot_given_projections(p):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 5, generator=g, dtype=D), torch.randn(30, 5, generator=g, dtype=D) + 1
    V = random_projections(5, 16, g, dtype=D)
    res = sliced_wasserstein(x, y, projections=V, p=p)
    ref = ot.sliced_wasserstein_distance(x, y, projections=V, p=p)
    torch.testing.assert_close(res.distance, ref, rtol=1e-12, atol=1e-12)
    # OTJR Listing 1's ``sw`` is the un-normalised sum: n * K * SW_p^p
    torch.testing.assert_close(res.total, 30 * 16 * res.distance ** p)


def test_projections_are_unit_and_seedable():
    V = random_projections(7, 64, torch.Generator().manual_seed(3))
    torch.testing.assert_close(V.norm(dim=0), torch.ones(64))
    x, y = torch.randn(10, 7), torch.randn(10, 7)
    r1 = sliced_wasserstein(x, y, 64, generator=torch.Generator().manual_seed(3))
    r2 = sliced_wasserstein(x, y, 64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(r1.projections, V)
    torch.testing.assert_close(r1.distance, r2.distance)
    assert r1.displacement.shape == (64, 10)


def test_directions_unit_norm_and_reduce_distance():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 3, generator=g, dtype=D), torch.randn(40, 3, generator=g, dtype=D) + 2
    res = sliced_wasserstein(x, y, n_projections=50, generator=g)
    torch.testing.assert_close(res.directions.norm(dim=1), torch.ones(40, dtype=D))
    stepped = sliced_wasserstein(x + 0.05 * res.directions, y, projections=res.projections)
    assert stepped.distance < res.distance          # moving along Delta_i decreases SW


def test_directions_in_1d_point_to_sorted_matched_target():
    x = torch.tensor([[0.3], [-1.0], [2.0], [0.9]], dtype=D)
    y = torch.tensor([[5.0], [-3.0], [0.0], [1.0]], dtype=D)
    # sorted matching: x ranks (2, 1, 4, 3) -> y sorted (-3, 0, 1, 5): targets 0, -3, 5, 1
    target = torch.tensor([[0.0], [-3.0], [5.0], [1.0]], dtype=D)
    for V in (torch.tensor([[1.0]], dtype=D), torch.tensor([[-1.0]], dtype=D), torch.tensor([[1.0, -1.0]], dtype=D)):
        res = sliced_wasserstein(x, y, projections=V)
        torch.testing.assert_close(res.directions, torch.sign(target - x))
        torch.testing.assert_close(res.distance, ((target - x) ** 2).mean().sqrt())


def test_gradcheck_distance_and_directions():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 3, generator=g, dtype=D, requires_grad=True)
    y = torch.randn(5, 3, generator=g, dtype=D)
    V = random_projections(3, 8, g, dtype=D)
    assert gradcheck(lambda x: sliced_wasserstein(x, y, projections=V).distance, (x,))
    assert gradcheck(lambda x: sliced_wasserstein(x, y, projections=V).directions, (x,))


def test_bad_inputs():
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match="same shape"):
        sliced_wasserstein(x, torch.randn(4, 3))
    with pytest.raises(ValueError, match="projections"):
        sliced_wasserstein(x, x, projections=torch.randn(4, 2))
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein(x, x, n_projections=0)
    with pytest.raises(ValueError, match="p="):
        sliced_wasserstein(x, x, p=0.5)
    with pytest.raises(ValueError, match="dimensions"):
        sliced_wasserstein(torch.randn(2, 5, 3), torch.randn(2, 5, 3))
