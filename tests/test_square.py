"""Our Square attack (ot_robust/attacks/square.py, Andriushchenko et al. ECCV 2020): the reference's building blocks
(the L2 pattern, the p schedule), bounds, seeding and query counts, success rates close to the reference PyTorch
code (fra31's ``pyautoattack.square``, always installed, and torchattacks' Square where installed) on a small CNN
trained on real MNIST, and the sanity suite and the ``square`` spec without torchattacks."""

import functools
import math
import sys

import pytest
import torch
from torch import nn

from ot_robust import evaluate
from ot_robust.attacks import PGD, Square, make_attack
from ot_robust.attacks import square as square_mod
from ot_robust.attacks.library import MissingDependencyError
from ot_robust.evaluation.sanity import SanityConfig, run_sanity

from _models import fit_on_mnist, mnist_test, one_thread, trained_model

TA_NORM = {"linf": "Linf", "l2": "L2"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@functools.lru_cache(maxsize=None)
def small_cnn() -> nn.Module:
    """A two-layer CNN (about 20k parameters) trained for 2 epochs on 3000 real MNIST images (a few seconds)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 8, 5, 2, 2), nn.ReLU(), nn.Conv2d(8, 16, 5, 2, 2), nn.ReLU(), nn.Flatten(),
                      nn.Linear(16 * 7 * 7, 10))
    return fit_on_mnist(m, n_train=3000, epochs=2)


def _fooled(model, x, y, x_adv) -> torch.Tensor:
    with torch.no_grad():
        return (model(x).argmax(1) == y) & (model(x_adv).argmax(1) != y)


def test_the_l2_pattern_and_the_p_schedule_are_the_references():
    from pyautoattack.square import SquareAttack

    ref = SquareAttack(lambda t: t, norm="L2", eps=1.0, device="cpu")
    for a, b in [(1, 3), (2, 5), (3, 3), (4, 7), (6, 6), (7, 7)]:
        torch.testing.assert_close(square_mod._rect_pattern(a, b).float(), ref.eta_rectangles(a, b))
    for s in (3, 5, 6, 7, 11):
        theirs = ref.eta(s)  # transposed at random
        ours = square_mod.eta(s).float()
        assert torch.allclose(ours, theirs, atol=1e-6) or torch.allclose(ours.t(), theirs, atol=1e-6), s
        assert math.isclose(float(ours.norm()), 1.0, rel_tol=1e-6)
    for queries, rescale in [(10000, False), (5000, False), (300, True), (1000, True)]:
        ref.n_queries, ref.rescale_schedule, ref.p_init = queries, rescale, 0.8
        for it in range(queries):
            assert square_mod.p_schedule(0.8, it, queries, rescale) == ref.p_selection(it), (queries, it)


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0)])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 20, 26), (2, 4, 4)])
def test_bounds_seeding_queries_and_mode(norm, eps, shape):
    torch.manual_seed(0)
    c, h, w = shape
    model = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 10), nn.Dropout(0.5)).train()
    x = torch.rand(12, *shape)
    x[:3] = x[:3].round()  # pixels at the box's ends
    y = torch.randint(0, 10, (12,))
    atk = Square(eps=eps, norm=norm, queries=40, restarts=2, seed=3)
    x_adv = atk(model, x, y)
    assert model.training and model[2].training  # eval mode inside, the caller's mode restored
    d = (x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert bool((size <= eps * (1 + 1e-5)).all()) and x_adv.min() >= 0 and x_adv.max() <= 1
    assert bool(((atk.last_queries >= 0) & (atk.last_queries <= 2 * 40)).all())
    model.eval()
    with torch.no_grad():
        wrong = model(x).argmax(1) != y
        fooled = model(x_adv).argmax(1) != y
    assert torch.equal(atk.last_success, fooled)
    assert torch.equal(x_adv[wrong], x[wrong]) and bool((atk.last_queries[wrong] == 0).all())  # nothing to do
    assert torch.equal(x_adv[~fooled], x[~fooled])  # not fooled: x itself
    model.train()
    assert torch.equal(Square(eps=eps, norm=norm, queries=40, restarts=2, seed=3)(model, x, y), x_adv)
    torch.manual_seed(5)
    a = Square(eps=eps, norm=norm, queries=40, seed=None)(model, x, y)
    torch.manual_seed(5)
    assert torch.equal(Square(eps=eps, norm=norm, queries=40, seed=None)(model, x, y), a)


def test_a_fooled_image_stops_and_the_budget_is_exact():
    model, (x, y) = trained_model(), mnist_test(60)
    atk = Square(eps=0.3, queries=50, seed=0)
    x_adv = atk(model, x, y)
    fooled = _fooled(model, x, y, x_adv)
    assert fooled.sum() > 0
    assert bool((atk.last_queries[~atk.last_success] == 50).all())  # budget spent, the initial point included
    assert atk.last_queries[fooled].float().mean() < 50  # stops at success
    with pytest.raises(ValueError, match="queries"):
        Square(eps=0.1, queries=0)
    with pytest.raises(ValueError, match="p_init"):
        Square(eps=0.1, p_init=1.5)
    with pytest.raises(ValueError, match="norm"):
        Square(eps=0.1, norm="l1")


def _rates(model, x, y, norm, eps, queries, seeds=(0, 1)):
    """Mean success rate (fooled / clean-correct) over ``seeds``: ours, ours with the PyTorch port's proposal (no
    redraw of no-op signs), fra31's reference and torchattacks' (None when not installed)."""
    from pyautoattack.square import SquareAttack

    n = int((model(x).argmax(1) == y).sum())
    out = {"ours": 0.0, "ours_no_redraw": 0.0, "fra31": 0.0, "torchattacks": 0.0}
    try:
        import torchattacks
    except ImportError:
        torchattacks = None
    for seed in seeds:
        out["ours"] += int(_fooled(model, x, y, Square(eps=eps, norm=norm, queries=queries,
                                                       seed=seed)(model, x, y)).sum())
        saved, square_mod._RESAMPLE = square_mod._RESAMPLE, 0
        try:
            out["ours_no_redraw"] += int(_fooled(model, x, y, Square(eps=eps, norm=norm, queries=queries,
                                                                       seed=seed)(model, x, y)).sum())
        finally:
            square_mod._RESAMPLE = saved
        ref = SquareAttack(model, norm=TA_NORM[norm], eps=eps, n_queries=queries, seed=seed, device=x.device)
        with torch.no_grad():
            out["fra31"] += int(_fooled(model, x, y, ref.perturb(x, y)).sum())
        if torchattacks is not None:
            ta = torchattacks.Square(model, norm=TA_NORM[norm], eps=eps, n_queries=queries, seed=seed)
            out["torchattacks"] += int(_fooled(model, x, y, ta(x, y)).sum())
    if torchattacks is None:
        out["torchattacks"] = None
    return {k: None if v is None else v / (n * len(seeds)) for k, v in out.items()}, n


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.5)])
def test_success_rate_close_to_the_reference_code(norm, eps):
    """Same queries and schedule (rescaled to 300): ours within a few points of fra31's PyTorch port and
    torchattacks' copy of it, never weaker; the redraw of no-op signs (the authors' original code) makes ours a
    little stronger under Linf on MNIST's many black pixels, never above white-box PGD."""
    model, (x, y) = small_cnn(), mnist_test(200)
    rates, n = _rates(model, x, y, norm, eps, queries=300)
    assert n >= 170, n  # the CNN learned something
    pgd = float(_fooled(model, x, y, PGD(eps, 20, norm=norm, seed=0)(model, x, y)).sum()) / n
    print(norm, rates, "pgd-20", pgd)
    refs = [r for r in (rates["fra31"], rates["torchattacks"]) if r is not None]
    for ref in refs:
        assert abs(rates["ours_no_redraw"] - ref) <= 0.06, rates
        assert rates["ours"] >= ref - 0.03, rates
        assert rates["ours"] <= ref + 0.10, rates
    assert 0.1 < rates["ours"] <= pgd + 0.02, (rates, pgd)


def test_the_sanity_suite_and_the_square_spec_need_no_torchattacks(monkeypatch):
    """`pip install .` has no torchattacks: the sanity suite (its black-box check runs Square) and the spec work; an
    attack that needs torchattacks stops evaluate before any attack runs, with one line naming the install."""
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import torchattacks -> ImportError
    model, (x, y) = trained_model(), mnist_test(100)
    atk = make_attack("square eps=0.1 norm=l2 queries=20 restarts=2 p_init=0.5 seed=3 rescale=false")
    assert isinstance(atk, Square) and (atk.eps, atk.norm, atk.queries, atk.restarts, atk.p_init, atk.seed,
                                        atk.rescale_schedule) == (0.1, "l2", 20, 2, 0.5, 3, False)
    out = run_sanity(model, x, y, eps=0.1, config=SanityConfig(n=40, steps=5, square_queries=50, loss_examples=5,
                                                                loss_starts=2))
    bb = next(r for r in out if r["check"] == "blackbox_vs_whitebox")
    assert bb["status"] == "pass" and 0 <= bb["numbers"]["square"] <= 100

    calls = []

    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, t):
            calls.append(len(t))
            return self.m(t)

    with pytest.raises(MissingDependencyError) as e:
        evaluate(Counting(), (x, y), ["pgd-linf eps=0.1 steps=2", "apgd-ce eps=0.1"], progress=False)
    msg = str(e.value)
    assert calls == [] and "\n" not in msg and isinstance(e.value, ImportError)
    assert "pip install --no-deps torchattacks==3.5.1" in msg and "AutoAttack and Square do not" in msg
