"""Defenses on real MNIST batches (bundled mnist-sample): finite losses with gradients, training lowers them, the FS
inner step increases the OT distance, label smoothing, the model is never copied and its mode is restored."""
import math

import pytest
import torch
import torch.nn.functional as F

from ot_robust.attacks import perturb
from ot_robust.attacks.feature_scattering import feature_matching_distance, feature_scatter
from ot_robust.core.data import as_tensors, get_dataset
from ot_robust.defenses import DEFENSES, get_defense, smooth_labels, soft_cross_entropy
from ot_robust.models import get_model

EPS = dict(eps=0.1, step_size=0.05)
CASES = {
    "standard": {},
    "pgd_at": dict(EPS, steps=3),
    "trades": dict(EPS, steps=3, beta=1.0),
    "alp": dict(EPS, steps=3),
    "mart": dict(EPS, steps=3),
    "random_targeted": dict(EPS, steps=3),
    "feature_scattering": dict(eps=0.1),
}
FS_ABLATIONS = [dict(solver="ipot"), dict(matching="uniform"), dict(matching="identity"),
                dict(perturbation="random"), dict(perturbation="supervised"), dict(steps=2, step_size=0.05),
                dict(label_smoothing=0.0)]


@pytest.fixture(scope="module")
def mnist():
    x, y = as_tensors(get_dataset("mnist-sample", "train"), 2100)
    return x, y


def _model(seed=0):
    torch.manual_seed(seed)
    return get_model("small_cnn", "mnist-sample")


def _cases():
    out = [(k, v) for k, v in CASES.items()]
    out += [("feature_scattering", dict(eps=0.1, **a)) for a in FS_ABLATIONS]
    return out


@pytest.mark.parametrize("name,params", _cases(), ids=lambda v: str(v) if isinstance(v, str) else
                         ",".join(f"{k}={w}" for k, w in v.items()))
def test_loss_finite_with_gradients(mnist, name, params):
    x, y = mnist[0][:64], mnist[1][:64]
    model = _model()
    model.train()
    out = get_defense(name, **params).loss(model, x, y)
    assert out.loss.dim() == 0 and math.isfinite(float(out.loss.detach()))
    assert all(math.isfinite(v) for v in out.logs.values())
    out.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert model.training  # mode restored after the attack


@pytest.mark.parametrize("name", list(CASES) + ["fs_ipot"])
def test_one_epoch_lowers_the_loss(mnist, name):
    params = dict(CASES.get(name, dict(eps=0.1, solver="ipot")))
    params.update({k: v / 2 for k, v in params.items() if k in ("eps", "step_size")})  # a weak model: small budget
    defense = get_defense("feature_scattering" if name == "fs_ipot" else name, **params)
    x, y = mnist
    xh, yh = x[2000:], y[2000:]          # held-out batch
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)

    def heldout_loss():
        torch.manual_seed(123)
        return float(defense.loss(model, xh, yh).loss.detach())

    before = heldout_loss()
    for i in range(0, 1600, 20):         # one epoch on 1,600 real MNIST images
        out = defense.loss(model, x[i:i + 20], y[i:i + 20])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    after = heldout_loss()
    assert after < before - 0.005, (before, after)   # held-out loss, same attack seed


@pytest.mark.parametrize("matching,solver", [("ot", "sinkhorn"), ("ot", "ipot"), ("uniform", "sinkhorn"),
                                             ("identity", "sinkhorn")])
def test_fs_inner_step_increases_ot_distance(mnist, matching, solver):
    x = mnist[0][:60]
    model = _model(1).eval()
    with torch.no_grad():
        f = model(x)
    start = perturb(model, x, None, lambda la, _: la.sum(), 0.1, 0.1, 0,
                    generator=torch.Generator().manual_seed(5))
    x_adv = feature_scatter(model, x, eps=0.1, steps=1, matching=matching, solver=solver,
                            generator=torch.Generator().manual_seed(5))
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        d0 = float(feature_matching_distance(f, model(start), matching, solver))
        d1 = float(feature_matching_distance(f, model(x_adv), matching, solver))
    assert d1 > 1.5 * d0 > 0, (d0, d1)


def test_smoothed_targets():
    y = torch.tensor([0, 3, 9, 3])
    for delta in (0.0, 0.1, 0.5, 0.9):
        q = smooth_labels(y, 10, delta)
        assert torch.allclose(q.sum(1), torch.ones(4))
        assert torch.allclose(q[torch.arange(4), y], torch.full((4,), 1 - delta))
        assert torch.allclose(q[1, 0], torch.tensor(delta / 9))
    logits = torch.randn(4, 10)
    assert torch.allclose(soft_cross_entropy(logits, smooth_labels(y, 10, 0.0)), F.cross_entropy(logits, y))
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="label_smoothing"):
            smooth_labels(y, 10, bad)


def test_fs_attacks_in_eval_mode_without_copy(mnist):
    x, y = mnist[0][:32], mnist[1][:32]
    model = _model().train()
    modes, ids = [], []

    def record(m, inp):
        modes.append(m.training)
        ids.append(id(m))

    model.register_forward_pre_hook(record)
    out = get_defense("feature_scattering", eps=0.1).loss(model, x, y)
    assert modes == [False, False, True]      # clean logits, 1 scattering step (eval), training pass (train)
    assert set(ids) == {id(model)}            # the model itself: no deep copy
    assert all(p.grad is None for p in model.parameters())   # the attack leaves no parameter gradients
    assert out.logits_adv.shape == (32, 10)


@pytest.mark.parametrize("name,params,match", [
    ("nope", {}, "unknown defense"),
    ("pgd_at", dict(eps=-0.1), "eps"),
    ("pgd_at", dict(step_size=0.0), "step_size"),
    ("trades", dict(steps=0), "steps"),
    ("feature_scattering", dict(steps=0), "steps"),
    ("feature_scattering", dict(label_smoothing=1.0), "label_smoothing"),
    ("feature_scattering", dict(label_smoothing=-0.2), "label_smoothing"),
    ("feature_scattering", dict(matching="greedy"), "matching"),
    ("feature_scattering", dict(solver="emd"), "solver"),
    ("feature_scattering", dict(reg=0), "reg"),
    ("standard", dict(eps=0.1), "bad parameters"),
])
def test_bad_parameters(name, params, match):
    with pytest.raises(ValueError, match=match):
        get_defense(name, **params)


def test_ot_method_needs_a_batch():
    with pytest.raises(ValueError, match="batch_size >= 2"):
        get_defense("feature_scattering").validate(1)
    get_defense("feature_scattering", perturbation="random").validate(1)   # no coupling: fine
    assert {"standard", "pgd_at", "trades", "alp", "mart", "random_targeted", "feature_scattering"} <= set(DEFENSES)
