"""LBGAT (Cui et al., ICCV 2021; official ``lbgat_loss``): the loss equals the paper's objective computed by hand on
tiny linear models, each model gets the gradients of its own terms only, the natural model and its optimiser survive
state_dict / a Trainer resume, training on real MNIST lowers the loss, and bad parameters are refused by name."""
import copy
import math

import pytest
import torch
from torch import nn

from _models import MLP, one_thread
from ot_robust.core.data import as_tensors, get_dataset
from ot_robust.defenses import DEFENSES, LBGAT, get_defense
from ot_robust.defenses.lbgat import lbgat_terms


class Linear(nn.Module):
    """f(x) = W vec(x) + b on (B, 1, 2, 2) images: 4 inputs, 3 classes (float64 for exact comparisons)."""

    num_classes = 3

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3).double()

    def forward(self, x):
        return self.fc(x.flatten(1))


W_ROB = torch.tensor([[0.5, -1.0, 2.0, 0.3], [-1.5, 0.7, 0.2, 1.1], [0.9, 0.4, -0.8, -2.0]], dtype=torch.float64)
B_ROB = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
W_NAT = torch.tensor([[1.2, 0.3, -0.4, 0.8], [0.1, -1.3, 0.9, 0.5], [-0.6, 1.0, 0.7, -0.9]], dtype=torch.float64)
B_NAT = torch.tensor([-0.3, 0.2, 0.05], dtype=torch.float64)
X = torch.tensor([[0.1, 0.9, 0.4, 0.6], [0.8, 0.2, 0.5, 0.3], [0.0, 0.7, 1.0, 0.2]], dtype=torch.float64)
DELTA = torch.tensor([[0.1, -0.1, 0.1, -0.1], [-0.1, 0.1, 0.1, 0.1], [0.1, 0.1, -0.1, -0.1]], dtype=torch.float64)
X_ADV = (X + DELTA).clamp(0, 1)
Y = torch.tensor([2, 0, 1])


def _images(v):
    return v.reshape(-1, 1, 2, 2)


def _case(**params):
    """A robust and a natural linear model with the fixed weights above; the defense's attack returns X_ADV."""
    rob = Linear()
    with torch.no_grad():
        rob.fc.weight.copy_(W_ROB)
        rob.fc.bias.copy_(B_ROB)
    d = LBGAT(**params)
    nat = d.natural_model(rob)
    with torch.no_grad():
        nat.fc.weight.copy_(W_NAT)
        nat.fc.bias.copy_(B_NAT)
    d.attack = lambda model, x, y=None: _images(X_ADV)
    return d, rob, nat


def _softmax(z):
    e = torch.exp(z - z.max(1, keepdim=True).values)
    return e / e.sum(1, keepdim=True)


def _by_hand(w_rob, b_rob, w_nat, b_nat):
    """The paper's terms written out: logits z = x W^T + b, CE = log sum exp(z_nat) - z_nat[y] (batch mean),
    MSE = sum of squared logit differences / (B K) (nn.MSELoss), KL(p || q) = sum p (log p - log q) / B with
    p = softmax f_rob(x), q = softmax f_rob(x')."""
    za = X_ADV @ w_rob.T + b_rob
    zc = X @ w_rob.T + b_rob
    zn = X @ w_nat.T + b_nat
    B, K = zn.shape
    ce = sum(torch.log(torch.exp(zn[i]).sum()) - zn[i, Y[i]] for i in range(B)) / B
    mse = ((za - zn) ** 2).sum() / (B * K)
    p, q = _softmax(zc), _softmax(za)
    kl = (p * (torch.log(p) - torch.log(q))).sum() / B
    kl_reversed = (q * (torch.log(q) - torch.log(p))).sum() / B
    return ce, mse, kl, kl_reversed


@pytest.mark.parametrize("params,weights", [({}, (1.0, 1.0, 6.0)),   # paper / official defaults: CE 1, MSE 1, KL 6
                                            (dict(ce_weight=2.0, mse_weight=3.0, beta=0.5), (2.0, 3.0, 0.5))])
def test_loss_equals_the_paper_objective_by_hand(params, weights):
    d, rob, nat = _case(**params)
    rob.train()
    out = d.loss(rob, _images(X), Y)
    ce, mse, kl, kl_rev = _by_hand(W_ROB, B_ROB, W_NAT, B_NAT)
    wc, wm, wk = weights
    expected = wc * ce + wm * mse + wk * kl
    assert float(out.loss.detach()) == pytest.approx(float(expected), rel=1e-10, abs=1e-12)
    total, terms = d.objective(rob, _images(X), _images(X_ADV), Y)
    terms = {k: float(v.detach()) for k, v in dict(terms, total=total).items() if v.dim() == 0}
    assert terms["total"] == pytest.approx(float(expected), rel=1e-10)
    assert terms["ce"] == pytest.approx(float(ce)) and terms["mse"] == pytest.approx(float(mse))
    assert terms["kl"] == pytest.approx(float(kl))
    assert out.logs["ce_nat"] == pytest.approx(float(ce)) and out.logs["kl_adv"] == pytest.approx(float(kl))
    # the case tells the KL direction and the MSE reduction apart (a wrong implementation fails above)
    assert abs(float(kl - kl_rev)) > 1e-3 and float(mse) > 1e-3
    assert torch.equal(out.logits_adv, rob(_images(X_ADV)).detach())


def test_each_model_gets_the_gradients_of_its_terms():
    d, rob, nat = _case(beta=2.0, ce_weight=1.5, mse_weight=0.7)
    rob.train()
    out = d.loss(rob, _images(X), Y)
    # the natural model: d/d theta_nat of CE + guidance, stored by loss(); both terms contribute
    wn, bn = W_NAT.clone().requires_grad_(True), B_NAT.clone().requires_grad_(True)
    ce, mse, _, _ = _by_hand(W_ROB, B_ROB, wn, bn)
    g_ce = torch.autograd.grad(1.5 * ce, (wn, bn), retain_graph=True)
    g_mse = torch.autograd.grad(0.7 * mse, (wn, bn))
    got_nat = (nat.fc.weight.grad.clone(), nat.fc.bias.grad.clone())
    for got, a, b in zip(got_nat, g_ce, g_mse):
        assert torch.allclose(got, a + b, atol=1e-12)
        assert a.abs().sum() > 1e-3 and b.abs().sum() > 1e-3          # CE and guidance both reach f_nat
    # the robust model: d/d theta_rob of guidance + KL (CE is not a function of theta_rob), via out.loss.backward()
    assert all(p.grad is None for p in rob.parameters())
    out.loss.backward()
    wr, br = W_ROB.clone().requires_grad_(True), B_ROB.clone().requires_grad_(True)
    _, mse_r, kl_r, _ = _by_hand(wr, br, W_NAT, B_NAT)
    g_mse_r = torch.autograd.grad(0.7 * mse_r, (wr, br), retain_graph=True)
    g_kl_r = torch.autograd.grad(2.0 * kl_r, (wr, br))
    for p, a, b in zip((rob.fc.weight, rob.fc.bias), g_mse_r, g_kl_r):
        assert torch.allclose(p.grad, a + b, atol=1e-12)
        assert a.abs().sum() > 1e-3 and b.abs().sum() > 1e-3          # guidance and KL both reach f_rob
    # the returned loss carries no gradient to f_nat: backward left its stored gradient as it was (no double count)
    assert torch.equal(nat.fc.weight.grad, got_nat[0]) and torch.equal(nat.fc.bias.grad, got_nat[1])
    fresh = d.loss(rob, _images(X), Y).loss
    assert all(g is None for g in torch.autograd.grad(fresh, list(nat.parameters()), allow_unused=True))
    # after_step: one SGD step of f_nat (lr 0.1, momentum 0.9, wd 2e-4) with that gradient, which it then clears
    g0 = nat.fc.weight.grad.clone()
    d.after_step(rob)
    assert torch.allclose(nat.fc.weight.detach(), W_NAT - 0.1 * (g0 + 2e-4 * W_NAT), atol=1e-12)
    assert all(p.grad is None for p in nat.parameters())
    # no stored gradient (eval mode, or no_grad): nothing is stored and after_step does not move f_nat
    rob.eval()
    d.loss(rob, _images(X), Y)
    w = nat.fc.weight.detach().clone()
    d.after_step(rob)
    assert all(p.grad is None for p in nat.parameters()) and torch.equal(nat.fc.weight, w)


def test_natural_model_is_a_fresh_copy_of_the_architecture():
    torch.manual_seed(0)
    rob = MLP()
    state = torch.get_rng_state()
    nat = LBGAT().natural_model(rob)
    assert torch.equal(torch.get_rng_state(), state)     # seeded on a private generator: global RNG untouched
    assert type(nat) is MLP and nat is not rob
    pairs = list(zip(rob.parameters(), nat.parameters()))
    assert all(a.shape == b.shape and not torch.equal(a, b) for a, b in pairs)          # re-initialised
    again = LBGAT().natural_model(rob)
    assert all(torch.equal(a, b) for a, b in zip(nat.parameters(), again.parameters()))  # same seed, same init
    copied = LBGAT(natural_init="copy").natural_model(rob)
    assert all(torch.equal(a, b) and a is not b for a, b in zip(rob.parameters(), copied.parameters()))


def _steps(d, model, opt, x, y, n, bs=16):
    for i in range(n):
        out = d.loss(model, x[i * bs:(i + 1) * bs], y[i * bs:(i + 1) * bs])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        d.after_step(model)
    return out


def test_state_dict_resumes_the_natural_model_and_its_optimizer():
    x, y = as_tensors(get_dataset("mnist-sample", "train"), 64)
    params = dict(eps=0.1, step_size=0.05, steps=1, nat_lr=0.05, nat_milestones=[3], nat_gamma=0.5)
    with one_thread():
        torch.manual_seed(0)
        rob = MLP()
        opt = torch.optim.SGD(rob.parameters(), lr=0.05)
        d = LBGAT(**params)
        _steps(d, rob, opt, x, y, 3)
        state = copy.deepcopy(d.state_dict())
        rob_state, opt_state = copy.deepcopy(rob.state_dict()), copy.deepcopy(opt.state_dict())
        assert state["nat_steps"] == 3 and state["optimizer"]["state"]          # momentum buffers saved
        # a new defense (as after a restart): the state waits for the natural model, then is applied
        d2 = LBGAT(**params)
        d2.load_state_dict(state)
        assert d2.state_dict()["nat_steps"] == 3                               # a checkpoint before any step keeps it
        torch.manual_seed(1)
        rob2 = MLP()
        rob2.load_state_dict(rob_state)
        opt2 = torch.optim.SGD(rob2.parameters(), lr=0.05)
        opt2.load_state_dict(opt_state)
        nat, nat2 = d.natural_model(rob), d2.natural_model(rob2)
        assert all(torch.equal(a, b) for a, b in zip(nat.parameters(), nat2.parameters()))
        mom = [d.optimizer.state[p]["momentum_buffer"] for p in nat.parameters()]
        mom2 = [d2.optimizer.state[p]["momentum_buffer"] for p in nat2.parameters()]
        assert all(torch.equal(a, b) for a, b in zip(mom, mom2))
        # continuing: the same next step (same attack noise) gives the same natural model, at the decayed lr
        torch.manual_seed(5)
        _steps(d, rob, opt, x[48:], y[48:], 1)
        torch.manual_seed(5)
        _steps(d2, rob2, opt2, x[48:], y[48:], 1)
    assert all(torch.equal(a, b) for a, b in zip(nat.parameters(), nat2.parameters()))
    assert d2.optimizer.param_groups[0]["lr"] == pytest.approx(0.025) and d2.state_dict()["nat_steps"] == 4
    # loading into an existing natural model works too
    d3 = LBGAT(**params)
    d3.natural_model(MLP())
    d3.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(d3.natural_model(None).parameters(), state["natural"].values()))


def test_trainer_resume_continues_the_natural_model(tmp_path):
    """Through the Trainer: f_nat is trained (after_step), checkpointed, and a run stopped after epoch 1 and
    resumed ends bit-identical (robust and natural model) to an uninterrupted one."""
    from ot_robust.training.api import train
    from ot_robust.training.checkpoint import load_latest

    cfg = dict(dataset="mnist-sample", model="small_cnn", method="lbgat",
               method_params=dict(eps=0.1, step_size=0.05, steps=1, nat_lr=0.05), num_train=64, batch_size=32,
               epochs=2, lr=0.05, eval_n=8, eval_steps=1, progress=False, deterministic=True, seed=3)
    with one_thread():
        train(cfg, tmp_path / "ref")
        train(dict(cfg, epochs=1), tmp_path / "run")
        first = load_latest(tmp_path / "run")[0]["defense"]
        train(cfg, tmp_path / "run")
    ref, run = load_latest(tmp_path / "ref")[0], load_latest(tmp_path / "run")[0]
    assert first["nat_steps"] == 2 and ref["defense"]["nat_steps"] == 4
    for key in ref["model"]:
        assert torch.equal(ref["model"][key], run["model"][key]), key
    for key, value in ref["defense"]["natural"].items():
        assert torch.equal(value, run["defense"]["natural"][key]), key
    assert not all(torch.equal(first["natural"][k], v) for k, v in ref["defense"]["natural"].items())  # it trained


def test_training_on_mnist_lowers_the_loss():
    x, y = as_tensors(get_dataset("mnist-sample", "train"), 1100)
    xh, yh = x[1000:], y[1000:]
    with one_thread():
        torch.manual_seed(0)
        model = MLP().train()
        d = get_defense("lbgat", eps=0.05, step_size=0.025, steps=2, nat_lr=0.05)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

        def heldout():
            torch.manual_seed(123)
            with torch.no_grad():   # no gradient stored: evaluation does not train f_nat
                out = d.loss(model, xh, yh)
            return float(out.loss), out.logs

        before, logs0 = heldout()
        out = _steps(d, model, opt, x, y, 40, bs=25)
        after, logs1 = heldout()
    assert math.isfinite(out.loss.item()) and all(math.isfinite(v) for v in out.logs.values())
    assert after < before - 0.3, (before, after)
    assert logs1["ce_nat"] < logs0["ce_nat"] - 0.3, (logs0, logs1)   # the natural model learnt (its own optimiser)
    assert model.training and d.natural_model(model).training


def test_float16_autocast_uses_its_own_loss_scale():
    """Under float16 autocast f_nat's gradient is loss-scaled (its own GradScaler, saved with the state): unscaled it
    matches the float32 gradient, and after_step unscales it before the SGD step."""
    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with one_thread():
        model = MLP().train()
        d = LBGAT()
        d.attack = lambda m, x, y=None: x
        nat = d.natural_model(model)
        d.loss(model, x, y)
        g32 = [p.grad.clone() for p in nat.parameters()]
        with torch.autocast("cpu", dtype=torch.float16):
            d.loss(model, x, y)
        scale = d.state_dict()["scaler"]["scale"]
        assert scale == 2.0 ** 16
        for p, g in zip(nat.parameters(), g32):
            assert float((p.grad / scale - g).norm()) < 1e-2 * float(g.norm())
        w = [p.detach().clone() for p in nat.parameters()]
        d.after_step(model)
    if d.state_dict()["scaler"]["scale"] == scale:      # stepped (no overflow): the step used the unscaled gradient
        assert d.state_dict()["nat_steps"] == 1
        assert all(float((p.detach() - (a - 0.1 * (g + 2e-4 * a))).norm()) < 1e-2 * 0.1 * float(g.norm())
                   for p, a, g in zip(nat.parameters(), w, g32))
    else:                                                # overflow: skipped, as torch.amp.GradScaler does
        assert d.state_dict()["nat_steps"] == 0 and all(torch.equal(p, a) for p, a in zip(nat.parameters(), w))
    d2 = LBGAT()
    d2.load_state_dict(d.state_dict())
    d2.natural_model(model)
    assert d2.state_dict()["scaler"] == d.state_dict()["scaler"]


def test_registered():
    assert DEFENSES["lbgat"] is LBGAT
    d = get_defense("lbgat")
    assert (d.beta, d.ce_weight, d.mse_weight, d.steps, d.nat_lr, d.nat_momentum, d.nat_weight_decay) == \
        (6.0, 1.0, 1.0, 10, 0.1, 0.9, 2e-4)


class NoReset(nn.Module):
    num_classes = 3

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(4, 3, dtype=torch.float64))

    def forward(self, x):
        return x.flatten(1) @ self.w


@pytest.mark.parametrize("params,match", [
    (dict(eps=-0.1), r"eps=-0\.1"),
    (dict(step_size=0.0), "step_size"),
    (dict(steps=0), r"steps=0"),
    (dict(beta=-1.0), r"beta=-1\.0"),
    (dict(ce_weight=-0.5), r"ce_weight=-0\.5"),
    (dict(mse_weight=float("nan")), r"mse_weight=nan"),
    (dict(init_std=-1e-3), r"init_std=-0\.001"),
    (dict(nat_lr=0.0), r"nat_lr=0\.0"),
    (dict(nat_momentum=1.0), r"nat_momentum=1\.0"),
    (dict(nat_weight_decay=-1e-4), r"nat_weight_decay=-0\.0001"),
    (dict(nat_gamma=0.0), r"nat_gamma=0\.0"),
    (dict(nat_gamma=1.5), r"nat_gamma=1\.5"),
    (dict(nat_milestones=[5, 3]), r"nat_milestones=\[5, 3\]"),
    (dict(nat_milestones=[0]), r"nat_milestones=0"),
    (dict(nat_milestones=7), r"nat_milestones=7"),
    (dict(natural_init="pretrained"), r"natural_init='pretrained'"),
    (dict(init_seed=-1), r"init_seed=-1"),
    (dict(gamma=1.0), "bad parameters"),
])
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        get_defense("lbgat", **params)


def test_bad_models_and_logits():
    with pytest.raises(ValueError, match="NoReset.*natural_init='copy'"):
        LBGAT().natural_model(NoReset())
    LBGAT(natural_init="copy").natural_model(NoReset())     # copying needs no re-initialisation
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"natural\(x\) \(2, 4\)"):
        lbgat_terms(z, z, torch.zeros(2, 4), torch.tensor([0, 1]))
