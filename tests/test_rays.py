"""RayS (Chen & Gu, KDD 2020): bounds and modes, the boundary distance on a linear model equals the closed form, the
per-image query budget is never exceeded (every forward counted), and an undefended MNIST model is broken."""

import math

import pytest
import torch
from torch import nn

from ot_robust.attacks import RayS, make_attack
from ot_robust.models import get_model

from _models import mnist_test, one_thread, trained_model


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


class Linear2(nn.Module):
    """Two-class linear model on flattened inputs: logits [0, w.x + b] (class 1 iff w.x + b > 0)."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(torch.tensor(b, dtype=w.dtype))

    def forward(self, x):
        z = x.flatten(1) @ self.w.flatten() + self.b
        return torch.stack([torch.zeros_like(z), z], 1)


class Counting(nn.Module):
    """Counts the rows (images) of every forward."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows, self.calls = model, 0, 0

    def forward(self, x):
        self.rows += x.shape[0]
        self.calls += 1
        return self.model(x)


def _linear_problem(seed=0, n=8, dtype=torch.float64):
    """A linear binary classifier and interior images (in [0.4, 0.6]) whose Linf boundary distance, at most 0.1, is
    |w.x + b| / ||w||_1: the box never binds. Labels = the model's predictions."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(1, 4, 4, generator=g, dtype=dtype)
    model = Linear2(w, -0.5 * float(w.sum()))
    x = 0.5 + 0.1 * (torch.rand(n, 1, 4, 4, generator=g, dtype=dtype) * 2 - 1)
    with torch.no_grad():
        z = x.flatten(1) @ w.flatten() + model.b
    y = (z > 0).long()
    return model, x, y, (z.abs() / w.abs().sum()).detach()


def _assert_in_ball(x, x_adv, eps):
    assert x_adv.shape == x.shape
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert float((x_adv - x).abs().flatten(1).amax(1).max()) <= eps * (1 + 1e-5) + 1e-6


@pytest.mark.parametrize("early_stop", [True, False])
def test_bounds_mode_and_grads(early_stop):
    torch.manual_seed(0)
    model = get_model("small_cnn", "mnist-sample", width=4)
    x, y = mnist_test(200)
    x, y = x[-4:], y[-4:]
    model.train()
    atk = RayS(0.1, queries=60, early_stop=early_stop)
    x_adv = atk(model, x, y)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    _assert_in_ball(x, x_adv, 0.1)
    # x_adv is a fooling point exactly where the attack reports success, else x itself
    with torch.no_grad():
        model.eval()
        wrong = model(x_adv).argmax(1) != y
    assert torch.equal(wrong, atk.last_success)
    assert torch.equal(x_adv[~atk.last_success], x[~atk.last_success])


@pytest.mark.parametrize("seed", [0, 1])
def test_boundary_distance_on_linear_model_is_closed_form(seed):
    model, x, y, closed = _linear_problem(seed)
    atk = RayS(0.0, queries=1000, early_stop=False, tol=1e-5)  # eps 0: never stops early, refines to the budget
    x_adv = atk(model, x, y)
    adbd = atk.last_adbd
    # a found boundary point can never be closer than the true boundary, and RayS reaches it (s = sign(w)) up to tol
    assert (adbd >= closed - 1e-9).all(), (adbd - closed).min()
    assert (adbd <= closed + 2e-5).all(), (adbd - closed).max()
    assert not atk.last_success.any()  # eps = 0: nothing within the budget
    assert torch.equal(x_adv, x)
    # the default tolerance, 1e-3 / sqrt(d) on the Linf radius, is within that tolerance too
    atk = RayS(0.0, queries=1000, early_stop=False)
    atk(model, x, y)
    assert (atk.last_adbd - closed).abs().max() <= 2e-3 / math.sqrt(16)


def test_success_threshold_on_linear_model():
    """eps just above the closed-form distance: every image is fooled, at a point whose distance is last_adbd <= eps;
    eps just below: none is (no adversarial point exists in the ball)."""
    model, x, y, closed = _linear_problem(2)
    eps_hi = float(closed.max()) * 1.05
    atk = RayS(eps_hi, queries=2000, tol=1e-6)
    x_adv = atk(model, x, y)
    assert atk.last_success.all()
    with torch.no_grad():
        assert (model(x_adv).argmax(1) != y).all()
    dist = (x_adv - x).abs().flatten(1).amax(1)
    torch.testing.assert_close(dist, atk.last_adbd, atol=1e-12, rtol=0)
    assert (dist <= eps_hi).all() and (dist >= closed - 1e-9).all()
    eps_lo = float(closed.min()) * 0.9
    atk = RayS(eps_lo, queries=300)
    x_adv = atk(model, x, y)
    assert not atk.last_success.any() and torch.equal(x_adv, x)
    assert (atk.last_queries == 300).all()  # robust images spend the whole budget


@pytest.mark.parametrize("budget", [1, 2, 7, 40, 333])
def test_query_budget_never_exceeded(budget):
    model, x, y, _ = _linear_problem(3, n=6)
    counting = Counting(model)
    atk = RayS(0.0, queries=budget, early_stop=False)
    atk(counting, x, y)
    q = atk.last_queries
    assert q.dtype == torch.long and q.shape == (6,)
    assert (q <= budget).all() and (q >= 1).all()
    assert counting.rows == int(q.sum())  # every forward of every image is counted
    assert (q == budget).all()  # eps 0 is never reached: each image spends exactly its budget
    # one image alone: its counter is exactly the number of model calls
    counting = Counting(model)
    atk(counting, x[:1], y[:1])
    assert counting.calls == counting.rows == int(atk.last_queries[0]) == budget


@pytest.mark.parametrize("early_stop", [True, False])
def test_a_batch_runs_each_image_as_alone_with_one_model_call_per_query(early_stop):
    """Each image follows the query sequence of RayS run on it alone (its own block counter), and every model call
    carries all images still searching: at most budget + 1 calls for the whole batch (the clean call included)."""
    model = trained_model()
    x, y = mnist_test(200)
    x, y = x[:10], y[:10]
    atk = RayS(0.15, queries=120, early_stop=early_stop)
    counting = Counting(model)
    x_adv = atk(counting, x, y)
    batch = (x_adv, atk.last_adbd, atk.last_queries, atk.last_success)
    assert counting.calls <= 120 + 1 and counting.rows == int(atk.last_queries.sum())
    for i in range(10):
        alone = atk(model, x[i:i + 1], y[i:i + 1])
        assert torch.equal(alone[0], batch[0][i])
        for got, want in zip((atk.last_adbd, atk.last_queries, atk.last_success), batch[1:]):
            assert torch.equal(got[0], want[i]), i


def test_misclassified_at_start_costs_one_query():
    model, x, y, _ = _linear_problem(4, n=4)
    y = y.clone()
    y[1] = 1 - y[1]  # wrong label: misclassified at the start
    counting = Counting(model)
    atk = RayS(0.05, queries=50, early_stop=False)
    x_adv = atk(counting, x, y)
    assert atk.last_queries[1] == 1 and atk.last_adbd[1] == 0 and atk.last_success[1]
    assert torch.equal(x_adv[1], x[1])
    assert counting.rows == int(atk.last_queries.sum())
    assert (atk.last_queries[[0, 2, 3]] == 50).all()


def test_undefended_mnist_model_is_broken():
    model = trained_model()  # small MLP, a few seconds of training on the MNIST sample (cached)
    x, y = mnist_test(200)
    x, y = x[:24], y[:24]
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean()
    assert clean >= 0.8
    atk = make_attack("rays eps=0.3 queries=500")
    x_adv = atk(model, x, y)
    _assert_in_ball(x, x_adv, 0.3)
    with torch.no_grad():
        robust = (model(x_adv).argmax(1) == y).float().mean()
    assert robust <= 0.05, robust
    assert torch.equal(~atk.last_success, model(x_adv).argmax(1) == y)
    assert (atk.last_adbd[atk.last_success] <= 0.3).all()
    assert (atk.last_queries <= 500).all()
    # early stop: the fooled images stop well before the budget
    assert float(atk.last_queries[atk.last_success].float().mean()) < 250


def test_deterministic_and_random_init():
    model, x, y, _ = _linear_problem(5, n=4)
    a, b = RayS(0.0, queries=30, early_stop=False), RayS(0.0, queries=30, early_stop=False)
    a(model, x, y), b(model, x, y)
    assert torch.equal(a.last_adbd, b.last_adbd) and torch.equal(a.last_queries, b.last_queries)
    r1 = RayS(0.0, queries=30, early_stop=False, init="random", seed=3)
    r2 = RayS(0.0, queries=30, early_stop=False, init="random", seed=3)
    r1(model, x, y), r2(model, x, y)
    assert torch.equal(r1.last_adbd, r2.last_adbd)


def test_spec_and_bad_values():
    atk = make_attack("rays eps=8/255 queries=123 seed=4")
    assert isinstance(atk, RayS) and atk.eps == pytest.approx(8 / 255) and atk.queries == 123 and atk.seed == 4
    assert atk.norm == "linf"
    with pytest.raises(ValueError, match="allowed keys"):
        make_attack("rays eps=0.1 steps=3")
    with pytest.raises(ValueError, match="queries=0"):
        RayS(0.1, queries=0)
    with pytest.raises(ValueError, match="8/255"):
        RayS(8)
    with pytest.raises(ValueError, match="eps=-0.1"):
        RayS(-0.1)
    with pytest.raises(ValueError, match="tol=0"):
        RayS(0.1, tol=0)
    with pytest.raises(ValueError, match="init='zeros'"):
        RayS(0.1, init="zeros")
    model, x, y, _ = _linear_problem(6, n=2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RayS(0.1, queries=5)(model, x * 3, y)
    with pytest.raises(ValueError, match="label 5"):
        RayS(0.1, queries=5)(model, x, torch.tensor([0, 5]))


def test_runs_inside_evaluate():
    from ot_robust.evaluation.suite import evaluate

    x, y = mnist_test(200)
    r = evaluate(trained_model(), (x[:16], y[:16]), ["rays eps=0.3 queries=200"], n_examples=16, seed=0,
                 batch_size=8, sanity=False, progress=False)
    acc = dict(zip(r.table.attack, r.table.accuracy))
    assert acc["rays"] <= 10.0 < acc["clean"]
