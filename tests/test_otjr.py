"""OTJR-family defenses (Random/Optimal JR, SW, OTJR), SAT, SAT + JR and the AWP wrapper on real MNIST batches."""
import pytest
import torch

from ot_robust.core.data import as_tensors, get_dataset
from ot_robust.defenses import get_defense
from ot_robust.defenses.awp import AWP, perturbable_weights
from ot_robust.presets import get_preset as preset
from ot_robust.presets.otjr import PRESETS
from ot_robust.models import get_model

ATTACK = dict(eps=0.1, step_size=0.05, steps=2)  # short attack: these tests check the losses, not robustness
NAMES = ["random_jr", "optimal_jr", "sw", "otjr", "sat", "sat_jr"]
OTJR_FIXED = {"random_jr": dict(ce_on="clean", projection="random", lambda_sw=0.0)}


@pytest.fixture(scope="module")
def batch():
    x, y = as_tensors(get_dataset("mnist-sample", "train"), 32)
    return x, y


def _model(seed=0):
    torch.manual_seed(seed)
    return get_model("small_cnn", dataset="mnist-sample")


def _params(name):
    return {} if name == "random_jr" else dict(ATTACK)


@pytest.mark.parametrize("name", NAMES + ["awp_otjr", "awp_trades"])
def test_each_defense_trains_with_finite_loss_and_gradients(name, batch):
    x, y = batch
    model = _model()
    params = dict(inner_params=ATTACK) if name.startswith("awp") else _params(name)
    defense = get_defense(name, **params)
    defense.validate(x.shape[0])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(2):
        out = defense.loss(model, x, y)
        opt.zero_grad()
        out.loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert torch.isfinite(out.loss) and grads and all(torch.isfinite(g).all() for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0
        opt.step()
        getattr(defense, "after_step", lambda m: None)(model)
    assert all(torch.isfinite(v) for v in map(torch.tensor, out.logs.values()))
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))  # it trained
    assert out.logits_adv is not None and out.logits_adv.shape == (x.shape[0], 10)


def test_terms_present_match_the_method(batch):
    x, y = batch
    expect = {"random_jr": {"ce_clean", "jr"}, "optimal_jr": {"ce_clean", "jr"}, "sw": {"ce_adv", "sw"},
              "otjr": {"ce_adv", "sw", "jr"}, "sat": {"ce_adv", "sinkhorn"}, "sat_jr": {"ce_adv", "sinkhorn", "jr"}}
    for name, keys in expect.items():
        defense = get_defense(name, **_params(name))
        out = defense.loss(_model(), x[:16], y[:16])
        assert set(out.logs) - {"loss"} == keys, name
        assert defense.needs_double_backprop == ("jr" in keys)
    # OTJR's loss is exactly CE(adv) + lambda_J * JR + lambda_SW * SW (Eq. 13)
    d = get_defense("otjr", **ATTACK)
    logs = d.loss(_model(), x[:16], y[:16]).logs
    assert logs["loss"] == pytest.approx(logs["ce_adv"] + d.lambda_j * logs["jr"] + d.lambda_sw * logs["sw"], rel=1e-5)


def test_otjr_sw_term_decreases_during_training(batch):
    """A model with large, attack-sensitive logits starts with a large SW(adv, clean); OTJR training shrinks it."""
    x, y = batch
    model = _model(1)
    with torch.no_grad():
        model.fc.weight.mul_(20.0)
    torch.manual_seed(0)
    defense = get_defense("otjr", **ATTACK)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sw = []
    for _ in range(6):
        out = defense.loss(model, x, y)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        sw.append(out.logs["sw"])
    assert sum(sw[-2:]) / 2 < 0.5 * sum(sw[:2]) / 2, sw


@pytest.mark.parametrize("name, model_name", [("otjr", "small_cnn"), ("random_jr", "cw_cnn"), ("sat_jr", "small_cnn")])
def test_finite_difference_jr_gradient_matches_double_backprop(name, model_name, batch):
    """jr_gradient='finite_difference' trains the same model: same loss terms, same parameter gradient (ReLU
    networks without BatchNorm; the CW CNN has dropout and max-pooling), without double backprop."""
    x, y = batch
    grads, logs = [], []
    # lambda_J large enough that the penalty's share of the gradient is visible (the small CNNs start smooth)
    for jr_gradient, lambda_j in (("double_backward", 0.0), ("double_backward", 100.0), ("finite_difference", 100.0)):
        torch.manual_seed(0)
        model = get_model(model_name, dataset="mnist-sample").train()
        if lambda_j:
            defense = get_defense(name, **_params(name), lambda_j=lambda_j, jr_gradient=jr_gradient)
        else:  # the same loss without the penalty
            defense = get_defense("sat", **ATTACK) if name == "sat_jr" else \
                get_defense("otjr", **_params(name), **OTJR_FIXED.get(name, {}), lambda_j=0.0)
        torch.manual_seed(1)  # same attack start and dropout masks
        out = defense.loss(model, x, y)
        out.loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        logs.append(out.logs)
    assert defense.needs_double_backprop is False
    assert logs[2] == pytest.approx(logs[1], rel=1e-5)
    jr_part = grads[1] - grads[0]  # the Jacobian penalty's share of the gradient, by double backprop
    assert float(jr_part.norm()) > 0.05 * float(grads[1].norm())
    # exact up to float32 rounding of the difference (~1e-3 at the default step; float64: tests/test_linearize.py)
    assert float((grads[2] - grads[1]).norm() / jr_part.norm()) < 1e-2


def test_random_jr_needs_no_attack_and_optimal_jr_uses_sw_directions(batch, monkeypatch):
    x, y = batch
    import ot_robust.defenses.otjr as otjr_mod

    calls = []
    monkeypatch.setattr(otjr_mod, "perturb", lambda *a, **k: calls.append(1) or a[1].detach())
    get_defense("random_jr").loss(_model(), x[:8], y[:8])
    assert calls == []
    get_defense("optimal_jr", **ATTACK).loss(_model(), x[:8], y[:8])
    assert calls == [1]


@pytest.mark.parametrize("name, params, match", [
    ("otjr", dict(n_slices=0), "n_slices"),
    ("sw", dict(n_slices=-3), "n_slices"),
    ("otjr", dict(lambda_j=-0.1), "lambda_j"),
    ("otjr", dict(lambda_sw=-1), "lambda_sw"),
    ("random_jr", dict(lambda_j=-0.02), "lambda_j"),
    ("otjr", dict(n_proj=0), "n_proj"),
    ("otjr", dict(ce_on="both"), "ce_on"),
    ("otjr", dict(projection="learned"), "projection"),
    ("otjr", dict(steps=0), "steps"),
    ("sat", dict(lambda_ot=-1), "lambda_sw|lambda_ot"),
    ("sat", dict(reg=0), "reg"),
    ("sat_jr", dict(lambda_j=0), "lambda_j"),
    ("sw", dict(ce_on="clean"), "fixes"),
    ("random_jr", dict(lambda_sw=1.0), "fixes"),
    ("awp_trades", dict(gamma=-5e-3), "gamma"),
    ("awp", dict(inner="nope"), "nope"),
    ("otjr", dict(bogus=1), "bogus"),
    ("otjr", dict(jr_gradient="forward"), "jr_gradient"),
])
def test_bad_settings_raise_clear_errors(name, params, match):
    with pytest.raises(ValueError, match=match):
        get_defense(name, **params)


def test_alignment_terms_need_two_examples():
    with pytest.raises(ValueError, match="batch_size"):
        get_defense("otjr").validate(1)
    get_defense("random_jr").validate(1)  # per-example loss: fine


def test_awp_perturbs_by_gamma_and_restores_weights_after_the_step(batch):
    x, y = batch
    model = _model(2)
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    defense = AWP("otjr", inner_params=ATTACK, gamma=5e-3)
    out = defense.loss(model, x, y)
    # during the loss, every weight matrix/kernel is moved by gamma * ||w_l|| (Wu et al. Eq. 9); nothing else is
    for n, p in model.named_parameters():
        rel = float((p.detach() - w0[n]).norm() / w0[n].norm())
        assert rel == pytest.approx(5e-3, rel=1e-3) if n in perturbable_weights(model) else rel == 0.0
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    opt.step()
    defense.after_step(model)
    # restore: w_new = w0 - lr * grad(L at w0 + gamma v), as perturb -> step -> restore in the official code
    for n, p in model.named_parameters():
        expected = w0[n] - 0.1 * grads[n] if n in grads else w0[n]
        assert torch.allclose(p.detach(), expected, atol=1e-6), n
    assert defense.steps_done == 1 and defense.state_dict()["steps_done"] == 1


def test_awp_reuses_one_attack_and_honours_warmup(batch, monkeypatch):
    x, y = batch
    defense = AWP("trades", inner_params=ATTACK, gamma=5e-3, warmup_steps=1)
    calls = []
    original = type(defense.inner).attack
    monkeypatch.setattr(type(defense.inner), "attack", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    model = _model(3)
    out = defense.loss(model, x[:16], y[:16])  # warm-up step: plain inner loss
    assert out.logs["awp_active"] == 0.0 and len(calls) == 1
    defense.after_step(model)
    out = defense.loss(model, x[:16], y[:16])
    assert out.logs["awp_active"] == 1.0 and len(calls) == 2  # proxy and model share one attack
    defense.after_step(model)
    assert "attack" not in vars(defense.inner)


def test_presets_build_registered_defenses_with_the_paper_settings():
    assert preset("otjr-cifar10-wrn34-10")["method_params"] == pytest.approx(
        dict(eps=8 / 255, step_size=2 / 255, steps=10, n_slices=32, lambda_j=0.002, lambda_sw=64.0))
    c100 = preset("otjr-cifar100-wrn34-10")
    assert (c100["method_params"]["n_slices"], c100["method_params"]["lambda_j"]) == (128, 0.001)
    assert (c100["epochs"], c100["lr"], c100["milestones"]) == (100, 0.1, [75, 90])
    for cfg in PRESETS.values():
        get_defense(cfg["method"], **cfg["method_params"])
    with pytest.raises(ValueError, match="unknown preset"):
        preset("otjr-imagenet")
