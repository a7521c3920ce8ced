"""The authors' random start (issue 32): FS, TRADES and MART take the first gradient at the unclipped start
``x + delta`` (official ``attack_methods.py`` line 170, ``trades.py`` line 31, ``mart.py`` line 20), the box [0, 1]
being applied after the step; ``clip_start=True`` keeps the clipped start. Each first step is compared with the
official formula written out here on a constructed case whose start leaves the box."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ot_robust.attacks import ce_loss, perturb
from ot_robust.attacks.feature_scattering import feature_matching_distance, feature_scatter
from ot_robust.defenses import get_defense
from ot_robust.defenses.base import resolve_recorded
from ot_robust.defenses.trades import kl_clean_adv, trades_perturb


class Net(nn.Module):
    """A small nonlinear classifier on 2x4x4 images: its input gradient depends on where it is taken."""

    num_classes = 3

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x):
        return self.body(x) * 4


def _same(a, b):
    """Equal up to float rounding (ours keeps x and delta apart); a different sign of any step is a 0.1-0.2 gap."""
    return float((a - b).abs().max()) < 1e-6


def _case():
    torch.manual_seed(0)
    x = (torch.rand(6, 2, 4, 4) > 0.5).float()           # pixels at 0 and 1: any start noise leaves the box
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    return Net().eval(), x, y


def _official_step(model, x, x0, loss_of, eps, step):
    """One official step: gradient at the (unclipped) start x0, sign step, ball projection, then the box."""
    x0 = x0.clone().requires_grad_(True)
    g, = torch.autograd.grad(loss_of(model(x0)), x0)
    x1 = x0.detach() + step * g.sign()
    x1 = torch.min(torch.max(x1, x - eps), x + eps)
    return x1.clamp(0, 1)


def test_trades_first_step_is_the_official_one():
    model, x, _ = _case()
    eps, step = 0.3, 0.1
    torch.manual_seed(7)
    ours = trades_perturb(model, x, eps, step, 1)
    torch.manual_seed(7)
    start = x + 0.001 * torch.randn(x.shape)
    assert ((start < 0) | (start > 1)).any()
    with torch.no_grad():
        clean = model(x)
    official = _official_step(model, x, start, lambda la: kl_clean_adv(clean, la).sum(), eps, step)
    assert _same(ours, official)
    torch.manual_seed(7)
    clipped = trades_perturb(model, x, eps, step, 1, clip_start=True)
    assert not _same(clipped, official)
    torch.manual_seed(7)
    assert _same(clipped, _official_step(model, x, start.clamp(0, 1),
                                               lambda la: kl_clean_adv(clean, la).sum(), eps, step))


def test_mart_first_step_is_the_official_one():
    model, x, y = _case()
    eps, step = 0.3, 0.1
    defense = get_defense("mart", eps=eps, step_size=step, steps=1)
    assert defense.clip_start is False
    torch.manual_seed(7)
    ours = perturb(model, x, y, ce_loss, eps, step, 1, init="normal", init_std=0.001, keep_best=False,
                   clip_start=defense.clip_start)
    torch.manual_seed(7)
    start = x + 0.001 * torch.randn(x.shape)
    official = _official_step(model, x, start, lambda la: F.cross_entropy(la, y, reduction="sum"), eps, step)
    assert _same(ours, official)


def test_feature_scattering_first_step_is_the_official_one():
    model, x, _ = _case()
    eps = 0.2
    torch.manual_seed(7)
    ours = feature_scatter(model, x, eps, eps, 1, clip_start=False)
    torch.manual_seed(7)
    start = x + (torch.rand(x.shape) * (2 * eps) - eps)
    with torch.no_grad():
        clean = model(x)
    official = _official_step(model, x, start, lambda la: feature_matching_distance(clean, la), eps, eps)
    assert _same(ours, official)
    torch.manual_seed(7)
    clipped = feature_scatter(model, x, eps, eps, 1, clip_start=True)
    assert not _same(clipped, official)
    assert float((clipped - x).abs().max()) <= eps + 1e-7 and clipped.min() >= 0 and clipped.max() <= 1


@pytest.mark.parametrize("method", ["otjr", "sw", "sat", "sat_jr"])
def test_otjr_family_first_step_is_the_authors_one(method):
    """The OTJR authors' code (``losses/TransportJac.py``, ``__gen_adversarial_sample``; ``losses/SINK.py`` for
    SAT) takes the first CE gradient at the unclipped ``x + 0.001 N(0, I)``; ``clip_start=True`` clips it first."""
    model, x, y = _case()
    eps, step = 0.3, 0.1
    defense = get_defense(method, eps=eps, step_size=step, steps=1)
    assert defense.clip_start is False
    torch.manual_seed(7)
    ours = defense.attack(model, x, y)
    torch.manual_seed(7)
    start = x + 0.001 * torch.randn(x.shape)
    official = _official_step(model, x, start, lambda la: F.cross_entropy(la, y), eps, step)
    assert _same(ours, official)
    torch.manual_seed(7)
    clipped = get_defense(method, eps=eps, step_size=step, steps=1, clip_start=True).attack(model, x, y)
    assert _same(clipped, _official_step(model, x, start.clamp(0, 1), lambda la: F.cross_entropy(la, y), eps, step))
    assert not _same(clipped, official)


def test_unclipped_start_is_a_training_adversary_option_only():
    model, x, y = _case()
    with pytest.raises(ValueError, match="clip_start=False"):
        perturb(model, x, y, ce_loss, 0.3, 0.1, 2, clip_start=False)          # keep_best=True (evaluation)
    out = perturb(model, x, y, ce_loss, 0.3, 0.1, 0, init="uniform", keep_best=False, clip_start=False)
    assert out.min() >= 0 and out.max() <= 1                                  # steps=0: the start is clipped


def test_recorded_parameters_new_runs_and_resumed_old_runs():
    assert resolve_recorded("feature_scattering", {"eps": 0.1}) == {"eps": 0.1, "clip_start": False,
                                                                     "lse_offset": 1e-6}
    old = {"eps": 0.1}                                    # a config.json from before the options existed
    assert resolve_recorded("feature_scattering", {"eps": 0.1}, old) == {"eps": 0.1, "clip_start": True,
                                                                          "lse_offset": 0.0}
    assert resolve_recorded("trades", {}, {"clip_start": False}) == {"clip_start": False}
    assert resolve_recorded("got_trades_s", {}, {}) == {"clip_start": True, "potential_solver": "adam"}
    assert resolve_recorded("got_pgd_lm", {}) == {"potential_solver": "sinkhorn"}
    assert resolve_recorded("pgd_at", {"eps": 0.3}, {}) == {"eps": 0.3}       # Madry's start: clipped, unchanged
    assert resolve_recorded("random_jr", {}, {}) == {}                        # no attack, no start
    for m in ("otjr", "sw", "optimal_jr", "sat", "sat_jr"):    # the study's OTJR seeds resume clipped
        assert resolve_recorded(m, {}, {}) == {"clip_start": True} and resolve_recorded(m, {}) == {"clip_start": False}
