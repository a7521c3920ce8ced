"""Every attack keeps ||x_adv - x|| <= eps and x_adv in [0, 1], restores the model's mode, leaves no parameter
gradients; the loop's contract (scalar losses, restarts, targeted, errors); PGD on a linear model = closed form."""

import math

import pytest
import torch
from torch import nn

from ot_robust.attacks import PGD, Transfer, make_attack, perturb, random_targets
from ot_robust.attacks.losses import ce_loss
from ot_robust.models import get_model

from _models import mnist_test, one_thread

EPS = 0.1
SPECS = [
    "fgsm eps=0.1", "pgd-linf eps=0.1 steps=3 restarts=2", "pgd-linf eps=0.1 steps=3 targeted=random seed=1",
    "pgd-l2 eps=1.0 steps=3 step=0.5 restarts=2", "cw-linf eps=0.1 steps=3 kappa=5", "mim eps=0.1 steps=3",
    "apgd-ce eps=0.1 steps=3", "apgd-t eps=0.1 steps=3 targets=2", "fab eps=0.1 steps=3 targets=2",
    "square eps=0.1 queries=20", "spsa eps=0.1 steps=2 samples=4 max_batch=4", "cw-l2 eps=1.0 steps=5 lr=0.1",
    "deepfool eps=1.0 steps=3", "autoattack eps=0.1 steps=3 fab_steps=3 targets=2 queries=20",
    "simba eps=0.1 iters=20", "simba eps=0.1 iters=20 basis=dct", "localsearch eps=0.1 rounds=3 candidates=8",
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = get_model("small_cnn", "mnist-sample", width=4)
    x, y = mnist_test(200)
    x, y = x[-4:], y[-4:]
    return model, x, y


def _assert_bounds(x, x_adv, eps, norm):
    assert x_adv.shape == x.shape
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    d = (x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert (size <= eps * (1 + 1e-5) + 1e-6).all(), float(size.max())


@pytest.mark.parametrize("spec", SPECS)
def test_bounds_mode_and_grads(tiny, spec):
    model, x, y = tiny
    model.train()
    atk = make_attack(spec)
    x_adv = atk(model, x, y)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    _assert_bounds(x, x_adv, atk.eps, atk.norm)


def test_transfer_bounds(tiny):
    model, x, y = tiny
    source = get_model("small_cnn", "mnist-sample", width=4)
    atk = make_attack("transfer via=pgd-linf eps=0.1 steps=2", source=source)
    assert isinstance(atk, Transfer)
    _assert_bounds(x, atk(model, x, y), 0.1, "linf")


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.7), ("linf", math.inf)])
@pytest.mark.parametrize("init", ["uniform", "normal", "none"])
def test_perturb_bounds_all_inits(tiny, norm, eps, init):
    model, x, y = tiny
    x_adv = perturb(model, x, y, ce_loss, eps, 0.3, 3, norm=norm, init=init, restarts=2, momentum=0.9)
    _assert_bounds(x, x_adv, eps, norm)


def test_scalar_loss_train_mode_and_eval_mode_switch(tiny):
    model, x, y = tiny
    clean = model(x).detach()
    seen = []

    def ot_like(logits, _y):  # batch-coupled scalar loss closing over clean logits (FS style)
        seen.append(model.training)
        return torch.cdist(logits, clean).min(1).values.mean()

    model.train()
    x_adv = perturb(model, x, None, ot_like, EPS, 0.05, 2)
    _assert_bounds(x, x_adv, EPS, "linf")
    assert seen == [False, False] and model.training
    seen.clear()
    perturb(model, x, None, ot_like, EPS, 0.05, 2, eval_mode=False)
    assert seen == [True, True] and model.training
    with pytest.raises(ValueError, match="restarts=2"):
        perturb(model, x, None, ot_like, EPS, 0.05, 2, restarts=2)


def test_mode_restored_on_exception(tiny):
    model, x, y = tiny
    model.train()
    model.fc.eval()  # mixed modes are restored per submodule

    def boom(logits, y):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        perturb(model, x, y, boom, EPS, 0.05, 2)
    assert model.training and not model.fc.training and model.stages[0].training
    model.fc.train()


def test_bad_inputs(tiny):
    model, x, y = tiny
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        perturb(model, x * 2, y, ce_loss, EPS, 0.05, 2)
    with pytest.raises(ValueError, match="y_target"):
        perturb(model, x, y, ce_loss, EPS, 0.05, 2, targeted=True)
    with pytest.raises(ValueError, match="norm"):
        perturb(model, x, y, ce_loss, EPS, 0.05, 2, norm="l1")
    with pytest.raises(ValueError, match="eps"):
        perturb(model, x, y, ce_loss, -0.1, 0.05, 2)


def test_random_targets_are_wrong_classes_and_seeded():
    y = torch.arange(10).repeat(100)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    t1, t2 = random_targets(y, 10, g1), random_targets(y, 10, g2)
    assert torch.equal(t1, t2) and (t1 != y).all()
    assert set(t1[y == 0].tolist()) == set(range(1, 10))  # uniform over all wrong classes


class Linear2(nn.Module):
    """Two-class linear model: logits [0, w.x + b]."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(torch.tensor(b))

    def forward(self, x):
        z = x.flatten(1) @ self.w.flatten() + self.b
        return torch.stack([torch.zeros_like(z), z], 1)


def test_pgd_on_linear_model_equals_closed_form():
    torch.manual_seed(0)
    w = torch.randn(1, 6, 6)
    model = Linear2(w, -0.5)
    x = torch.rand(16, 1, 6, 6)
    y = torch.zeros(16, dtype=torch.long)  # CE for class 0 = softplus(w.x + b): increasing in w.x
    eps = 0.1
    # Linf with the [0, 1] box: delta_i = +min(eps, 1 - x_i) where w_i > 0, -min(eps, x_i) where w_i < 0
    best = torch.where(w > 0, torch.minimum(torch.full_like(x, eps), 1 - x), -torch.minimum(torch.full_like(x, eps), x))
    x_adv = PGD(eps, steps=10, seed=0)(model, x, y)
    torch.testing.assert_close(x_adv, x + best, atol=1e-6, rtol=0)
    # L2 (box inactive for x = 0.5 and a small eps): x + eps * w / ||w||
    xm = torch.full((4, 1, 6, 6), 0.5)
    x_adv = PGD(0.3, steps=5, step_size=0.1, norm="l2", random_start=False)(model, xm, y[:4])
    torch.testing.assert_close(x_adv, xm + 0.3 * w / w.norm(), atol=1e-4, rtol=0)
