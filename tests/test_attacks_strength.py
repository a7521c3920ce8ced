"""Attack strength on a small CNN trained on real MNIST inside the test session: ours vs torchattacks' PGD-20,
restarts and AutoAttack never weaker than their first component, targeted modes reach their targets, black-box
attacks do something."""

import pytest
import torch
import torchattacks

from ot_robust.attacks import PGD, AutoAttack, LocalSearch, SimBA, make_attack

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
    aa = AutoAttack(eps=EPS, apgd_steps=5, fab_steps=3, n_targets=2, queries=30, seed=0)
    with torch.random.fork_rng():
        name, apgd = aa.components(model, 10, x.device)[0]
        with torch.no_grad():
            first = _robust(model, x, y, apgd.perturb(x.clone(), y.clone()))
    robust = _robust(model, x, y, aa(model, x, y))
    assert name == "apgd-ce" and not (robust & ~first).any()
    assert aa.last_log[0][0] == "clean" and [k for k, _ in aa.last_log][1:] == ["apgd-ce", "apgd-t", "fab-t",
                                                                               "square"][:len(aa.last_log) - 1]
    assert aa.last_log[-1][1] == pytest.approx(robust.float().mean().item() * 100)


@pytest.mark.parametrize("batch_size", [None, 7])
def test_autoattack_equals_fra31_driver_per_example(setup, batch_size):
    """Our driver over fra31's components = fra31's run_standard_evaluation (same images, seed and batch size; None
    = one batch, 7 = robust points regrouped across batches as fra31 does): the same adversarial examples up to the
    float round-off of our final projection, and the RNG untouched."""
    import pyautoattack

    model, x, y = setup
    x, y = x[:40], y[:40]
    aa = AutoAttack(eps=0.05, apgd_steps=2, fab_steps=6, n_targets=3, queries=60, seed=0)
    state = torch.random.get_rng_state()
    ours = aa(model, x, y) if batch_size is None else aa.run(model, x, y, batch_size=batch_size)
    assert torch.equal(torch.random.get_rng_state(), state)
    ref = pyautoattack.AutoAttack(model, eps=0.05, norm="Linf", version="standard", seed=0, device="cpu")
    ref.verbose = False
    comps = dict(aa.components(model, 10, x.device))  # the same budgets in fra31's own objects
    ref.apgd, ref.apgd_targeted = comps["apgd-ce"], comps["apgd-t"]
    ref.fab, ref.square = comps["fab-t"], comps["square"]
    with torch.random.fork_rng():
        theirs, y_adv = ref.run_standard_evaluation(x, y, batch_size=batch_size or len(x))
    assert (ours - theirs).abs().max() < 1e-6
    with torch.no_grad():
        assert torch.equal(model(ours).argmax(1) == y, y_adv == y)
    log = [v for _, v in aa.last_log]
    assert len(log) == 5 and log[1] < log[0] and log[3] < log[2]  # every component ran; APGD-CE and FAB-T found some


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


@pytest.mark.parametrize("attack", [PGD(EPS, steps=10, step_size=EPS / 4, seed=0),
                                    PGD(EPS, steps=5, restarts=3, seed=2),
                                    make_attack("cw-linf eps=0.1 steps=10 step=0.025").replace(seed=1),
                                    PGD(0.2, steps=10, step_size=0.04, targeted="random", seed=4)])
def test_fast_path_same_outcome_per_example(setup, attack):
    """stop_fooled (issue 15's evaluation fast path): every example is fooled or not exactly as without it; the
    examples never fooled keep the very same trajectory; the budget holds."""
    from ot_robust.attacks import fast_path

    model, x, y = setup
    x, y = x[:100], y[:100]
    fast = fast_path(attack)
    assert fast.stop_fooled and not attack.stop_fooled
    slow_adv, fast_adv = attack(model, x, y), fast(model, x, y)
    assert (fast_adv - x).abs().max() <= attack.eps + 1e-6 and 0 <= fast_adv.min() and fast_adv.max() <= 1
    with torch.no_grad():
        if attack.targeted:  # the same random targets (same generator use)
            t = torch.remainder(y + torch.randint(1, 10, y.shape, generator=torch.Generator().manual_seed(4)), 10)
            hit_slow, hit_fast = model(slow_adv).argmax(1) == t, model(fast_adv).argmax(1) == t
            assert torch.equal(hit_slow, hit_fast) and hit_slow.any()
            return
        ok_slow, ok_fast = model(slow_adv).argmax(1) == y, model(fast_adv).argmax(1) == y
    assert torch.equal(ok_slow, ok_fast)
    assert 0 < ok_slow.sum() < len(y)  # some fooled, some not: the test can tell the paths apart
    assert torch.allclose(slow_adv[ok_slow], fast_adv[ok_slow], atol=1e-6)
