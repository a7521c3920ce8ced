import ot
import pytest
import torch
from torch.autograd import gradcheck

from ot_robust.ot import emd, ipot

D = torch.float64


def _emd2(C):
    n, m = C.shape[-2:]
    a, b = torch.full((n,), 1 / n, dtype=D), torch.full((m,), 1 / m, dtype=D)
    return torch.as_tensor([ot.emd2(a, b, c) for c in C.reshape(-1, n, m)]).reshape(C.shape[:-2])


def test_ipot_converges_to_exact_ot_batched():
    C = torch.rand(3, 8, 6, generator=torch.Generator().manual_seed(0), dtype=D)
    exact = _emd2(C)
    res = ipot(C, beta=1.0, max_iter=300)
    assert res.plan.shape == (3, 8, 6) and res.n_iter == 300
    assert float((res.cost - exact).abs().max()) < 1e-3
    assert res.err < 1e-3
    few = ipot(C, beta=1.0, max_iter=5)
    assert float((few.cost - exact).abs().max()) > float((res.cost - exact).abs().max())
    torch.testing.assert_close(emd(C).cost, exact)
    torch.testing.assert_close(ipot(C[1], beta=1.0, max_iter=300).plan, res.plan[1])


def test_ipot_log_stable_where_plain_version_underflows():
    C = 2 * torch.rand(8, 8, generator=torch.Generator().manual_seed(1))   # float32, costs in [0, 2]
    beta = 0.005
    assert (torch.exp(-C / beta) == 0).any()           # the plain IPOT kernel underflows here
    res = ipot(C, beta=beta, max_iter=50, inner_iter=3)
    assert torch.isfinite(res.plan).all() and torch.isfinite(res.cost)
    assert abs(float(res.cost) - float(_emd2(C.double()))) < 1e-3


def test_ipot_tol_stops_early():
    C = torch.rand(6, 6, dtype=D)
    res = ipot(C, beta=0.1, max_iter=1000, tol=1e-9, check_every=5)
    assert res.n_iter < 1000 and res.n_iter % 5 == 0 and res.err < 1e-9


def test_ipot_gradients():
    C = torch.rand(3, 4, dtype=D, requires_grad=True)
    env = ipot(C, beta=0.5, max_iter=20)                # default: envelope (official FS IPOT detaches T)
    assert not env.plan.requires_grad
    (g,) = torch.autograd.grad(env.cost, C)
    torch.testing.assert_close(g, env.plan)
    assert gradcheck(lambda C: ipot(C, beta=0.5, max_iter=10, inner_iter=2, grad="unrolled").cost, (C,))
    (ge,) = torch.autograd.grad(emd(C).cost, C)         # exact: envelope gradient = optimal plan
    torch.testing.assert_close(ge, emd(C).plan)


def test_ipot_bad_inputs():
    C = torch.rand(3, 4)
    with pytest.raises(ValueError, match="beta"):
        ipot(C, beta=-1.0)
    with pytest.raises(ValueError, match="inner_iter"):
        ipot(C, inner_iter=0)
    with pytest.raises(ValueError, match="grad"):
        ipot(C, grad="none")
    with pytest.raises(ValueError, match="sum to 1"):
        emd(C, a=torch.ones(3))
