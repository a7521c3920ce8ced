"""GOT (GOT paper Sec. 3.2, Eq. 3-6): the regulariser, the label-matching dual, the four defenses on real MNIST."""
import pytest
import torch

from ot_robust.core.data import as_tensors, get_dataset
from ot_robust.defenses.base import DEFENSES, get_defense
from ot_robust.defenses.got import GOT, GOTDistance, latent_forward
from ot_robust.models import get_model
from ot_robust.ot import KantorovichPotential, entropic_dual, sinkhorn

VARIANTS = ["got_pgd_s", "got_pgd_lm", "got_trades_s", "got_trades_lm"]


@pytest.fixture(scope="module")
def mnist():
    x, y = as_tensors(get_dataset("mnist-sample", "train"), 64 * 6)
    return x, y


def _fit_potential(z, C, theta, labels=None, steps=1500):
    """Maximise the semi-dual over a linear potential on z (n <= d + 1: every potential vector is reachable)."""
    torch.manual_seed(0)
    pot = KantorovichPotential(z.shape[1]).double()
    opt = torch.optim.LBFGS(pot.parameters(), lr=0.5, max_iter=steps, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        obj = -entropic_dual(pot(z), C, theta, labels=labels, labels_adv=labels)
        obj.backward()
        return obj

    opt.step(closure)
    with torch.no_grad():
        return float(entropic_dual(pot(z), C, theta, labels=labels, labels_adv=labels))


def test_label_matching_dual_equals_primal_on_same_label_blocks():
    """GOT Eq. 6 with an optimal potential equals entropic OT restricted to equal-label pairs, and ignores the
    costs of cross-label pairs entirely (value and gradient)."""
    g = torch.Generator().manual_seed(0)
    n, d, theta = 6, 8, 0.1
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    C = torch.rand(n, n, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 2, 1, 0])
    cross = y[:, None] != y[None, :]
    lm = _fit_potential(z, C, theta, labels=y)
    primal = float(sinkhorn(C + 1e4 * cross, reg=theta, max_iter=5000, tol=1e-12).objective)
    assert lm == pytest.approx(primal, abs=1e-6)
    # the standard (S) value differs: it may transport across labels
    s = _fit_potential(z, C, theta)
    assert s < lm - 1e-3
    # cross-label costs are ignored: any change there leaves the LM dual and its gradient unchanged
    phi = torch.randn(n, generator=g, dtype=torch.float64)
    C1 = C.clone().requires_grad_(True)
    C2 = (C + 5.0 * torch.rand(n, n, generator=g, dtype=torch.float64) * cross).requires_grad_(True)
    v1, v2 = (entropic_dual(phi, c, theta, labels=y, labels_adv=y) for c in (C1, C2))
    (g1,), (g2,) = torch.autograd.grad(v1, C1), torch.autograd.grad(v2, C2)
    assert float(v1) == pytest.approx(float(v2), abs=1e-12)
    assert torch.equal(g1[cross], torch.zeros_like(g1[cross])) and torch.allclose(g1, g2)


def test_regulariser_ascent_raises_dual_towards_primal(mnist):
    """The potential's ascent (Adam, the defense's defaults) raises the dual on real features; the value stays below
    the entropic primal (weak duality) and the classifier's view (frozen phi) gives no gradient to phi."""
    x, x2 = mnist[0][:64], mnist[0][64:128]  # two different real batches: the plan is far from the identity
    torch.manual_seed(0)
    model = get_model("small_cnn", dataset="mnist")
    reg = GOTDistance(theta=0.1, potential_steps=5)
    with torch.no_grad():
        logits, z = latent_forward(model, x)
        logits_a, z_a = latent_forward(model, x2)
    reg.build(z.shape[1])
    torch.nn.init.zeros_(reg.potential.linear.weight)
    C = reg.cost(z, z_a, logits.softmax(-1), logits_a.softmax(-1))
    values = [reg.ascend(z, C) for _ in range(8)]
    final = float(reg.dual(z, C).detach())
    primal = float(sinkhorn(C.double(), reg=0.1, max_iter=3000, tol=1e-10).objective)
    assert values[0] < values[4] < final <= primal + 1e-5
    assert primal - final < 0.5 * (primal - values[0])
    zz = z.clone().requires_grad_(True)
    reg.dual(zz, C, frozen=True).backward()
    assert zz.grad is not None and all(p.grad is None for p in reg.potential.parameters())


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("solver", ["sinkhorn", "adam"])
def test_variant_trains_on_real_mnist(mnist, name, solver):
    """Each GOT variant: finite loss with gradients; the classifier lowers the OT term on a fixed batch. With the
    exact potential (default) each batch's potential reaches the dual maximum (marginal error below tolerance); with
    the Adam update the ascent raises its objective (never lowers it, raises it in total) and is checkpointed."""
    x, y = mnist[0][:48], mnist[1][:48]
    torch.manual_seed(0)
    model = get_model("small_cnn", dataset="mnist")
    defense = get_defense(name, eps=0.3, step_size=0.15, steps=2, beta=10.0, potential_solver=solver)
    assert isinstance(defense, GOT) and defense.ot.label_matching == name.endswith("_lm")
    assert defense.variant == name.split("_")[1]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    logs = []
    for _ in range(5):
        out = defense.loss(model, x, y)
        assert torch.isfinite(out.loss)
        opt.zero_grad()
        out.loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
        logs.append(out.logs)
    assert all(torch.isfinite(torch.tensor(list(l.values()), dtype=torch.float64)).all() for l in logs)
    assert logs[-1]["got_w"] < logs[0]["got_w"]
    if solver == "sinkhorn":
        assert all(l["got_potential_err"] < defense.ot.potential_tol for l in logs)
        assert defense.state_dict()["ot"]["potential"] is None  # nothing carried across batches
        return
    rises = [l["got_w"] - l["got_dual_before"] for l in logs]
    assert all(r >= 0 for r in rises) and sum(rises) > 0
    assert logs[-1]["got_w"] < logs[0]["got_w"]
    st = defense.state_dict()["ot"]  # the potential and its optimiser, checkpointed once with the defense
    assert st["potential"] is not None and st["optimizer"] is not None


def test_state_roundtrip_and_middle_latent(mnist):
    """The potential and its optimiser survive state_dict/load_state_dict; a middle latent or a named submodule
    (cw_cnn's last max-pool, GOT Table 4) gives a potential on that layer's (flattened) size."""
    x, y = mnist[0][:32], mnist[1][:32]
    torch.manual_seed(0)
    model = get_model("small_cnn", dataset="mnist")
    d = get_defense("got_trades_lm", eps=0.3, step_size=0.1, steps=1, potential_solver="adam")
    d.loss(model, x, y)
    d2 = get_defense("got_trades_lm", eps=0.3, step_size=0.1, steps=1, potential_solver="adam")
    d2.load_state_dict(d.state_dict())
    assert torch.equal(d2.ot.potential.linear.weight, d.ot.potential.linear.weight)
    d2.loss(model, x, y)  # builds the optimiser from the saved state
    assert d2.ot.optimizer.state_dict()["state"][0]["step"] > d.ot.optimizer.state_dict()["state"][0]["step"]
    mid = get_defense("got_pgd_s", eps=0.3, step_size=0.1, steps=1, latent="middle", potential_solver="adam")
    mid.loss(model, x, y)
    assert mid.ot.potential.linear.in_features == latent_forward(model, x[:2], "middle")[1].shape[1]
    cw = get_model("cw_cnn", dataset="mnist")
    assert latent_forward(cw, x[:2], "stages.1")[1].shape == (2, 64 * 4 * 4)


@pytest.mark.parametrize("params, match", [
    ({"theta": 0.0}, "theta"), ({"theta": -0.1}, "theta"), ({"d_x": "manhattan"}, "d_x"), ({"d_y": "js"}, "d_y"),
    ({"variant": "fgsm"}, "variant"), ({"beta": -1}, "beta"), ({"potential_steps": 0}, "potential_steps"),
    ({"lam": 0}, "lam"), ({"eps": -0.1}, "eps"),
])
def test_bad_settings_raise(params, match):
    with pytest.raises(ValueError, match=match):
        GOT(**params)


def test_bad_latent_and_batch_raise(mnist):
    x, y = mnist[0][:8], mnist[1][:8]
    model = get_model("small_cnn", dataset="mnist")
    with pytest.raises(ValueError, match="latent='fc7'"):
        get_defense("got_pgd_s", eps=0.3, step_size=0.1, steps=1, latent="fc7").loss(model, x, y)
    with pytest.raises(ValueError, match="batch_size"):
        get_defense("got_pgd_lm").validate(1)
    with pytest.raises(ValueError, match="got_pgd_s"):
        get_defense("got_pgd_s", kappa=1.0)


def test_registered_names():
    get_defense("got_pgd_s")
    assert {n: DEFENSES[n]().variant for n in VARIANTS} == {
        "got_pgd_s": "pgd", "got_pgd_lm": "pgd", "got_trades_s": "trades", "got_trades_lm": "trades"}


def test_presets_build_the_four_defenses():
    """App. A.3 presets: MNIST 0.3 / 0.01 / 40 with alpha 1 (PGD, adversarial loss only) and 6 (TRADES)."""
    from ot_robust.presets.got import got_preset

    p = got_preset("mnist", "pgd", label_matching=True)
    d = get_defense(p["method"], **p["params"])
    assert (p["method"], p["model"], d.eps, d.step_size, d.steps, d.alpha, d.clean_weight, d.beta, d.ot.theta) == (
        "got_pgd_lm", "cw_cnn", 0.3, 0.01, 40, 1.0, 0.0, 10.0, 0.1)
    assert (d.warmup_steps, d.ot.gradient) == (60000 // 128, "adversarial")  # our additions: one epoch, W one-sided
    t = get_defense(**{"name": "got_trades_s", **got_preset("cifar10", "trades", False)["params"]})
    assert (t.alpha, t.steps, t.eps) == (6.0, 20, 8 / 255)
    with pytest.raises(ValueError, match="dataset"):
        got_preset("imagenet")


@pytest.mark.parametrize("w_gradient", ["adversarial", "both"])
def test_w_gradient_side(mnist, w_gradient):
    """``w_gradient="adversarial"`` (default) treats the benign latents and predictions as the target (no gradient
    reaches them; GOT Sec. 3.2 / Fig. 1: W moves the adversarial distribution); ``"both"`` is Eq. 3-4 read literally."""
    x, x2 = mnist[0][:32], mnist[0][32:64]
    y = mnist[1][:32]
    torch.manual_seed(0)
    model = get_model("small_cnn", dataset="mnist")
    reg = GOTDistance(label_matching=True, gradient=w_gradient)
    logits, z = (t.detach().requires_grad_(True) for t in latent_forward(model, x))
    logits_a, z_a = (t.detach().requires_grad_(True) for t in latent_forward(model, x2))
    w, _ = reg(z, z_a, logits, logits_a, y)
    gz, gl, gza, gla = torch.autograd.grad(w, (z, logits, z_a, logits_a), allow_unused=True)
    assert gza.abs().sum() > 0 and gla.abs().sum() > 0
    if w_gradient == "adversarial":
        assert gz is None and gl is None
    else:
        assert gz.abs().sum() > 0 and gl.abs().sum() > 0


def test_beta_warmup_schedule_and_resume(mnist):
    """W's weight: 0 during warm-up (the loss is then the base TRADES loss), a linear ramp, then beta; the step
    counter counts training steps only and survives state_dict (resume)."""
    d = get_defense("got_trades_lm", eps=0.3, step_size=0.1, steps=1, beta=10.0, warmup_steps=2, ramp_steps=4)
    assert [d.beta_at(s) for s in range(8)] == [0.0, 0.0, 2.5, 5.0, 7.5, 10.0, 10.0, 10.0]
    assert get_defense("got_pgd_s").beta_at(0) == 10.0
    x, y = mnist[0][:32], mnist[1][:32]
    torch.manual_seed(0)
    model = get_model("small_cnn", dataset="mnist")
    out = d.loss(model, x, y)
    logs = out.logs
    assert logs["got_beta"] == 0.0 and d.step == 1
    assert float(out.loss) == pytest.approx(6.0 * logs["kl_adv"] + logs["ce_clean"], rel=1e-5)
    model.eval()
    d.loss(model, x, y)  # evaluation-mode calls do not advance the schedule
    assert d.step == 1
    d2 = get_defense("got_trades_lm", eps=0.3, step_size=0.1, steps=1, beta=10.0, warmup_steps=2, ramp_steps=4)
    d2.load_state_dict(d.state_dict())
    assert d2.step == 1


@pytest.mark.parametrize("params, match", [
    ({"w_gradient": "clean"}, "gradient"), ({"warmup_steps": -1}, "warmup_steps"), ({"ramp_steps": 1.5}, "ramp_steps"),
])
def test_bad_schedule_settings_raise(params, match):
    with pytest.raises(ValueError, match=match):
        GOT(**params)
