import math
import warnings

import ot
import pytest
import torch
from torch.autograd import gradcheck

from ot_robust.ot import FS_SINKHORN, cosine_cost, emd, sinkhorn, sinkhorn_divergence

D = torch.float64


def _pot_log(C, reg, a=None, b=None):
    n, m = C.shape
    a = torch.full((n,), 1 / n, dtype=D) if a is None else a
    b = torch.full((m,), 1 / m, dtype=D) if b is None else b
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ot.sinkhorn(a, b, C, reg, method="sinkhorn_log", numItermax=100000, stopThr=1e-13)


def _rel(x, ref):
    return float((x - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize("reg", [0.1, 0.01, 1e-3])
def test_matches_pot_sinkhorn_log_batched_and_unbatched(reg):
    g = torch.Generator().manual_seed(1)
    C = 2 * torch.rand(3, 6, 5, generator=g, dtype=D)   # costs in [0, 2]
    res = sinkhorn(C, reg=reg, max_iter=20000, tol=1e-13)
    single = sinkhorn(C[0], reg=reg, max_iter=20000, tol=1e-13)
    assert res.plan.shape == (3, 6, 5) and res.cost.shape == (3,) and single.cost.shape == ()
    for k in range(3):
        P = _pot_log(C[k], reg)
        assert _rel(res.plan[k], P) <= 1e-5
        assert _rel(res.cost[k], (P * C[k]).sum()) <= 1e-5
    assert _rel(single.plan, res.plan[0]) <= 1e-10


def test_matches_pot_with_given_marginals():
    g = torch.Generator().manual_seed(2)
    C = torch.rand(5, 4, generator=g, dtype=D)
    a = torch.rand(5, generator=g, dtype=D) + 0.1
    b = torch.rand(4, generator=g, dtype=D) + 0.1
    a, b = a / a.sum(), b / b.sum()
    res = sinkhorn(C, a, b, reg=0.05, max_iter=5000, tol=1e-13)
    P = _pot_log(C, 0.05, a, b)
    assert _rel(res.plan, P) <= 1e-5
    torch.testing.assert_close(res.plan.sum(-1), a)
    torch.testing.assert_close(res.plan.sum(-2), b)


@pytest.mark.parametrize("reg", [1e-3, 1e-4])
def test_stable_for_tiny_reg_float32(reg):
    g = torch.Generator().manual_seed(1)  # seeded: the outcome no longer depends on the tests that ran before
    x = torch.randn(4, 64, 10, generator=g)
    C = cosine_cost(x, x + 0.5 * torch.randn(x.shape, generator=g))
    # reg 1e-4 in float32: 300 iterations leave err 0.06 on some draws
    res = sinkhorn(C, reg=reg, max_iter=1000, tol=1e-3)
    assert torch.isfinite(res.plan).all() and torch.isfinite(res.cost).all()
    assert torch.isfinite(res.f).all() and torch.isfinite(res.g).all()
    torch.testing.assert_close(res.plan.sum(-2), torch.full((4, 64), 1 / 64), rtol=1e-4, atol=1e-6)
    assert res.err < 0.05


def test_marginal_stop_respects_tol_and_check_every():
    C = torch.rand(2, 8, 8, dtype=D)
    res = sinkhorn(C, reg=0.05, max_iter=1000, tol=1e-8, check_every=7)
    assert res.err < 1e-8 and res.n_iter % 7 == 0 and res.n_iter < 1000
    fixed = sinkhorn(C, reg=0.05, max_iter=13, tol=0.0)
    assert fixed.n_iter == 13


def _official_fs_sinkhorn(C, epsilon=0.01, niter=100, thresh=0.1, offset=1e-6):
    """The official FS ``sinkhorn`` loop (Haichao-Zhang/FeatureScatter ot.py), ``lse(A) = log(sum exp(A) + 1e-6)``
    (``offset=0``: the plain log-sum-exp)."""
    m, n = C.shape
    mu, nu = torch.full((m,), 1 / m, dtype=C.dtype), torch.full((n,), 1 / n, dtype=C.dtype)
    M = lambda u, v: (-C + u[:, None] + v[None, :]) / epsilon
    u, v = torch.zeros_like(mu), torch.zeros_like(nu)
    lse = lambda A: torch.log(torch.exp(A).sum(1) + offset)  # noqa: E731
    for i in range(niter):
        u1 = u
        u = epsilon * (torch.log(mu) - lse(M(u, v))) + u
        v = epsilon * (torch.log(nu) - lse(M(u, v).t())) + v
        if (u - u1).abs().sum() < thresh:
            break
    return torch.exp(M(u, v)), i + 1


def test_fs_preset_reproduces_official_stopping_rule():
    assert FS_SINKHORN["reg"] == 0.01 and FS_SINKHORN["max_iter"] == 100
    assert FS_SINKHORN["stop"] == "fs" and FS_SINKHORN["tol"] == 0.1
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 60, 10, generator=g, dtype=D)
    C = cosine_cost(logits, logits + 0.3 * torch.randn(2, 60, 10, generator=g, dtype=D))
    res = sinkhorn(C, **FS_SINKHORN)
    refs = [_official_fs_sinkhorn(C[k]) for k in range(2)]
    assert res.n_iter == max(n for _, n in refs)   # batched: stop when every problem meets the rule
    assert 1 < res.n_iter < 100
    one = sinkhorn(C[0], **FS_SINKHORN)
    assert one.n_iter == refs[0][1]
    torch.testing.assert_close(one.plan, refs[0][0], rtol=1e-9, atol=1e-12)
    # lse_offset=0: exact Sinkhorn, the official loop without its 1e-6
    exact = sinkhorn(C[0], **{**FS_SINKHORN, "lse_offset": 0.0})
    ref0, n0 = _official_fs_sinkhorn(C[0], offset=0.0)
    assert exact.n_iter == n0
    torch.testing.assert_close(exact.plan, ref0, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(exact.plan, one.plan, rtol=1e-9, atol=1e-12)   # the offset is not a no-op


def test_envelope_gradient_is_the_plan():
    C = torch.rand(2, 5, 6, dtype=D, requires_grad=True)
    res = sinkhorn(C, reg=0.1, max_iter=2000, tol=1e-12, grad="envelope")
    assert not res.plan.requires_grad
    (gC,) = torch.autograd.grad(res.cost.sum(), C)
    torch.testing.assert_close(gC, res.plan)
    # envelope theorem: the unrolled gradient of the entropic objective is the plan as well
    res_u = sinkhorn(C, reg=0.1, max_iter=2000, tol=1e-12, grad="unrolled")
    (gU,) = torch.autograd.grad(res_u.objective.sum(), C)
    torch.testing.assert_close(gU, res.plan, rtol=1e-6, atol=1e-8)


def test_gradcheck_unrolled_and_envelope():
    x = torch.randn(4, 3, dtype=D, requires_grad=True)
    y = torch.randn(4, 3, dtype=D)
    assert gradcheck(lambda x: sinkhorn(cosine_cost(x, y), reg=0.1, max_iter=30, tol=0.0).cost, (x,))
    C = torch.rand(2, 3, 4, dtype=D, requires_grad=True)
    w = torch.tensor([0.2, 0.3, 0.5], dtype=D, requires_grad=True)   # a = softmax(w) stays on the simplex
    assert gradcheck(lambda C, w: sinkhorn(C, torch.softmax(w, 0), reg=0.2, max_iter=20, tol=0.0).cost, (C, w))
    assert gradcheck(lambda C: sinkhorn(C, reg=0.2, max_iter=3000, tol=1e-13, grad="envelope").objective,
                     (C,), atol=1e-6)


def test_approaches_exact_ot_as_reg_decreases():
    C = torch.rand(3, 7, 7, dtype=D)
    exact = torch.as_tensor([ot.emd2(torch.full((7,), 1 / 7, dtype=D), torch.full((7,), 1 / 7, dtype=D), c)
                             for c in C])
    gaps = [float((sinkhorn(C, reg=r, max_iter=3000, tol=1e-7, check_every=50).cost - exact).abs().max())
            for r in (0.1, 0.01, 1e-3)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3
    torch.testing.assert_close(emd(C).cost, exact)


def test_sinkhorn_divergence_debiased():
    x = torch.randn(10, 2, dtype=D)
    y = torch.randn(12, 2, dtype=D) + 1.0
    assert abs(float(sinkhorn_divergence(x, x, reg=0.5))) < 1e-8
    s = sinkhorn_divergence(x, y, reg=0.5)
    assert s.dim() == 0 and s > 0
    # debiasing: the plain entropic value of (x, x) is not zero, the divergence is
    assert float(sinkhorn(torch.cdist(x, x) ** 2, reg=0.5, tol=1e-9).objective) > 1e-3
    xs = torch.randn(5, 2, dtype=D, requires_grad=True)
    assert gradcheck(lambda xs: sinkhorn_divergence(xs, y[:5], reg=1.0, max_iter=20, tol=0.0), (xs,))


def test_bad_inputs_raise():
    C = torch.rand(4, 5)
    with pytest.raises(ValueError, match="reg"):
        sinkhorn(C, reg=0.0)
    with pytest.raises(ValueError, match="stop"):
        sinkhorn(C, stop="never")
    with pytest.raises(ValueError, match="grad"):
        sinkhorn(C, grad="implicit")
    with pytest.raises(ValueError, match="sum to 1"):
        sinkhorn(C, a=torch.full((4,), 0.3))
    with pytest.raises(ValueError, match="negative"):
        sinkhorn(C, b=torch.tensor([0.5, 0.5, 0.5, -0.5, 0.0]))
    with pytest.raises(ValueError, match="last dimension"):
        sinkhorn(C, a=torch.full((5,), 0.2))
    with pytest.raises(ValueError, match=r"\(\.\.\., n, m\)"):
        sinkhorn(torch.rand(5))
    with pytest.raises(ValueError, match="NaN"):
        sinkhorn(torch.full((3, 3), math.nan))
    with pytest.raises(ValueError, match="max_iter"):
        sinkhorn(C, max_iter=0)
