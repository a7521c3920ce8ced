"""GOT's evaluation protocol as an option of the eps sweep (GOT, ICLR 2022 submission, App. A.3): PGD with a fixed
step size whatever eps, attacking the model's predicted labels; accuracy still against the true labels."""

import pandas as pd
import pytest
import torch
from torch import nn

from ot_robust.attacks import PGD, fast_path, model_mode
from ot_robust.core.utils import derive_seed
from ot_robust.evaluation import curves
from ot_robust.evaluation.curves import accuracy_vs_epsilon


def _tiny(dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3), nn.Dropout(dropout))


def _data(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return 0.2 + 0.6 * torch.rand(n, 1, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


class _Spy:
    """A stand-in attack recording the labels it is given; returns the clean input (no attack)."""

    def __init__(self, got: list):
        self.got = got

    def __call__(self, model, x, y):
        self.got.append(y.clone())
        return x


def _spy_labels(monkeypatch, model, x, y, **kw) -> tuple[torch.Tensor, float]:
    got: list = []
    monkeypatch.setattr(curves, "PGD", lambda *a, **k: _Spy(got))
    acc = accuracy_vs_epsilon(model, x, y, [0.1], steps=3, batch_size=10, **kw).accuracy.iloc[0]
    return torch.cat(got), acc


def test_the_attack_gets_the_clean_predictions_or_the_true_labels(monkeypatch):
    model, (x, y) = _tiny(dropout=0.9), _data()
    with torch.no_grad():
        pred = model.eval()(x).argmax(1)
    assert 0 < int((pred != y).sum()) < len(y)  # the two label sets differ on some images, agree on others
    clean_acc = 100.0 * (pred == y).float().mean().item()
    model.train()  # predictions must be taken in eval mode (dropout 0.9 would scramble them), the mode restored
    seen, acc = _spy_labels(monkeypatch, model, x, y, labels="predicted")
    assert torch.equal(seen, pred) and model.training
    assert acc == pytest.approx(clean_acc)  # counted against the true labels, not the predictions (that is 100%)
    seen, acc = _spy_labels(monkeypatch, model, x, y, labels="true")
    assert torch.equal(seen, y) and acc == pytest.approx(clean_acc)
    seen, _ = _spy_labels(monkeypatch, model, x, y)
    assert torch.equal(seen, y)


def test_a_fixed_step_size_stays_fixed_across_eps(monkeypatch):
    model, (x, y) = _tiny(), _data()
    built: list[PGD] = []

    def record(*a, **k):
        built.append(PGD(*a, **k))
        return built[-1]

    monkeypatch.setattr(curves, "PGD", record)
    accuracy_vs_epsilon(model, x, y, [0.0, 0.1, 0.3, 0.5], steps=5, step_size=0.01, labels="predicted")
    assert [a.eps for a in built] == [0.1, 0.3, 0.5] and {a.step_size for a in built} == {0.01}
    for atk in built:  # the steps alone (no random start) move a pixel at most steps * step_size = 0.05 < eps
        with model_mode(model):
            moved = (atk.replace(random_start=False)(model, x, y) - x).abs().max().item()
        assert moved == pytest.approx(5 * 0.01, abs=1e-6)
    built.clear()
    accuracy_vs_epsilon(model, x, y, [0.1, 0.3], steps=5)  # default: 2.5 * eps / steps, resolved per eps
    assert [a.step_size for a in built] == pytest.approx([0.05, 0.15])
    with model_mode(model):
        moved = (built[1].replace(random_start=False)(model, x, y) - x).abs().max().item()
    assert moved > 5 * 0.01


def _reference(model, x, y, epsilons, steps, step_size, batch_size, seed):
    """The eps sweep as it was before ``labels`` (true labels), written out."""
    accs = []
    for e in epsilons:
        atk = fast_path(PGD(e, steps, step_size, seed=seed)) if e else None
        ok = []
        with model_mode(model):
            for b, i in enumerate(range(0, len(x), batch_size)):
                xb, yb = x[i:i + batch_size], y[i:i + batch_size]
                torch.manual_seed(derive_seed(seed, b))
                xa = atk(model, xb, yb) if atk is not None else xb
                with torch.no_grad():
                    ok.append((model(xb).argmax(1) == yb) & (model(xa).argmax(1) == yb))
        accs.append(100.0 * torch.cat(ok).float().mean().item())
    return accs


@pytest.mark.parametrize("step_size", [None, 0.05])
def test_true_labels_give_todays_numbers(step_size):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    x, _ = _data(40)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[::4] = (y[::4] + 1) % 3  # a quarter misclassified
    eps, kw = [0.0, 0.1, 0.5], dict(steps=5, step_size=step_size, batch_size=16, seed=3)
    default = accuracy_vs_epsilon(model, x, y, eps, **kw)
    assert list(default.columns) == ["epsilon", "accuracy"] and default.epsilon.tolist() == eps
    pd.testing.assert_frame_equal(accuracy_vs_epsilon(model, x, y, eps, labels="true", **kw), default)
    assert default.accuracy.tolist() == _reference(model, x, y, eps, **kw)
    assert default.accuracy.iloc[0] == 75.0 and default.accuracy.iloc[-1] < 75.0


def test_bad_labels_value_is_refused():
    model, (x, y) = _tiny(), _data()
    with pytest.raises(ValueError, match=r"labels='pred'.*'true', 'predicted'"):
        accuracy_vs_epsilon(model, x, y, [0.1], steps=2, labels="pred")


def test_without_a_random_start_every_eps_above_steps_times_step_gives_the_same_attack():
    """GOT Table 6's signature: with a fixed step and no random start, k steps of eta move a pixel at most k * eta,
    so every eps >= k * eta runs the same attack (the projection never binds); with a random start they differ."""
    torch.manual_seed(0)
    model, (x, y) = _tiny(), _data(64)
    kw = dict(steps=4, step_size=0.05, batch_size=64, seed=1)
    fixed = accuracy_vs_epsilon(model, x, y, [0.2, 0.3, 0.5], random_start=False, **kw)["accuracy"].tolist()
    assert fixed[0] == fixed[1] == fixed[2]
    small = accuracy_vs_epsilon(model, x, y, [0.1], random_start=False, **kw)["accuracy"].iloc[0]
    assert small >= fixed[0]  # below k * eta the ball binds: a weaker attack
    started = accuracy_vs_epsilon(model, x, y, [0.2, 0.5], **kw)["accuracy"].tolist()
    assert started[1] <= started[0]


def test_a_cached_sweep_resumes_from_its_finished_batches_and_equals_an_uncached_one(tmp_path, monkeypatch):
    model, (x, y) = _tiny(), _data()
    kw = dict(steps=5, step_size=0.05, batch_size=10, labels="predicted", seed=3)
    plain = accuracy_vs_epsilon(model, x, y, [0.1, 0.3], **kw).accuracy.tolist()
    cached = accuracy_vs_epsilon(model, x, y, [0.1, 0.3], cache_dir=tmp_path, **kw).accuracy.tolist()
    assert cached == plain and len(list(tmp_path.glob("*.json"))) == 2 * 3  # one outcome per (eps, batch)
    monkeypatch.setattr(PGD, "__call__", lambda *a, **k: pytest.fail("a finished batch was attacked again"))
    assert accuracy_vs_epsilon(model, x, y, [0.1, 0.3], cache_dir=tmp_path, **kw).accuracy.tolist() == plain


def test_the_cache_key_tells_the_labels_rule_and_the_start_apart(tmp_path):
    model, (x, y) = _tiny(), _data()
    for labels in ("true", "predicted"):
        for start in (True, False):
            accuracy_vs_epsilon(model, x, y, [0.2], steps=2, step_size=0.05, batch_size=24, labels=labels,
                                random_start=start, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 4
