"""Attack strength on a small CNN trained on real MNIST inside the test session: ours vs torchattacks' PGD-20,
restarts and AutoAttack never weaker than their first component, targeted modes reach their targets, black-box
attacks do something."""

import pytest
import torch
import torchattacks

from ot_robust.attacks import APGD, PGD, AutoAttack, LocalSearch, SimBA, make_attack

from _models import mnist_test, one_thread, trained_model

EPS = 0.1


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def setup():
    model = trained_model()
    x, y = mnist_test(200)
    return model, x, y


def _robust(model, x, y, x_adv):
    with torch.no_grad():
        return (model(x).argmax(1) == y) & (model(x_adv).argmax(1) == y)


def test_model_learned_something(setup):
    model, x, y = setup
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.5


def test_our_pgd20_at_least_as_strong_as_torchattacks(setup):
    model, x, y = setup
    x, y = x[:120], y[:120]
    ours = _robust(model, x, y, PGD(EPS, steps=20, step_size=EPS / 8, seed=0)(model, x, y)).float().mean() * 100
    torch.manual_seed(0)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=EPS / 8, steps=20, random_start=True)(x, y)
    theirs = _robust(model, x, y, theirs).float().mean() * 100
    assert ours <= theirs + 0.5, (ours, theirs)
    assert ours < _robust(model, x, y, x).float().mean() * 100 - 10  # and it does reduce accuracy


def test_restarts_and_iterations_never_weaker(setup):
    model, x, y = setup
    x, y = x[:60], y[:60]
    one = _robust(model, x, y, PGD(EPS, steps=5, seed=3)(model, x, y))
    three = _robust(model, x, y, PGD(EPS, steps=5, restarts=3, seed=3)(model, x, y))
    assert not (three & ~one).any()  # restart 0 equals the single run: keep-best can only add successes
    fgsm = _robust(model, x, y, make_attack("fgsm eps=0.1")(model, x, y))
    assert three.sum() <= fgsm.sum()


def test_autoattack_not_weaker_than_its_apgd_ce(setup):
    model, x, y = setup
    x, y = x[:24], y[:24]
    apgd = _robust(model, x, y, APGD(eps=EPS, steps=5, seed=0)(model, x, y))
    aa = AutoAttack(eps=EPS, apgd_steps=5, fab_steps=3, n_targets=2, queries=30, seed=0)
    robust = _robust(model, x, y, aa(model, x, y))
    assert not (robust & ~apgd).any()
    assert aa.last_log[0][0] == "clean"
    assert aa.last_log[-1][1] == pytest.approx(robust.float().mean().item() * 100)


@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_targeted_and_random_targeted(setup, loss):
    model, x, y = setup
    x, y = x[:20], y[:20]
    t = (y + 3) % 10
    x_adv = PGD(0.3, steps=20, step_size=0.03, loss=loss, targeted=True, seed=0)(model, x, y, y_target=t)
    with torch.no_grad():
        assert (model(x_adv).argmax(1) == t).float().mean() >= 0.8
    a = PGD(0.3, steps=10, step_size=0.05, targeted="random", seed=5)
    torch.testing.assert_close(a(model, x, y), a(model, x, y))  # seeded


def test_blackbox_attacks_reduce_accuracy(setup):
    model, x, y = setup
    x, y = x[:24], y[:24]
    clean = _robust(model, x, y, x).sum()
    for atk in (SimBA(eps=0.2, iters=150), SimBA(eps=0.2, iters=150, basis="dct"),
                LocalSearch(eps=0.3, rounds=8, candidates=32)):
        assert _robust(model, x, y, atk(model, x, y)).sum() < clean, atk
