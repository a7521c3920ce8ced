"""The gradient-masking sanity checks flag a deliberately masked model (input quantized with a zero-gradient
rounding) and pass an ordinary model; table checks flag AutoAttack weaker than PGD."""

import pytest
import torch

from ot_robust.evaluation.sanity import SanityConfig, check_table_consistency, run_sanity

from _models import Quantized, mnist_test, one_thread, trained_model

CFG = SanityConfig(n=60, steps=10, square_queries=100, loss_examples=10, loss_starts=3)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


def _status(model):
    x, y = mnist_test(200)
    out = run_sanity(model, x, y, eps=0.1, config=CFG)
    assert all(set(r) == {"check", "status", "details", "numbers"} and r["status"] in ("pass", "flag") for r in out)
    return {r["check"]: r["status"] for r in out}


def test_ordinary_model_passes_every_check():
    status = _status(trained_model())
    assert len(status) == 7 and set(status.values()) == {"pass"}, status


def test_gradient_masked_model_is_flagged():
    status = _status(Quantized(trained_model()))
    for check in ("nonzero_gradients", "unbounded_pgd", "blackbox_vs_whitebox", "pgd_loss_plateau"):
        assert status[check] == "flag", status


def test_sanity_rejects_bad_eps():
    x, y = mnist_test(200)
    with pytest.raises(ValueError, match="eps"):
        run_sanity(trained_model(), x, y, eps=0.0, config=CFG)


def test_table_consistency_flags_autoattack_weaker_than_pgd():
    # the shape of the OTJR Table 7 inconsistency: AutoAttack accuracy above PGD accuracy
    bad = [{"attack": "clean", "accuracy": 85.0}, {"attack": "FGSM", "accuracy": 60.0},
           {"attack": "PGD-20", "accuracy": 50.0}, {"attack": "AutoAttack", "accuracy": 52.3},
           {"attack": "Square", "accuracy": 45.0}]
    flags = {r["check"]: r for r in check_table_consistency(bad)}
    assert flags["autoattack_not_weaker_than_pgd"]["status"] == "flag"
    assert flags["autoattack_not_weaker_than_pgd"]["numbers"] == {"autoattack": 52.3, "pgd": 50.0}
    assert flags["table_blackbox_vs_whitebox"]["status"] == "flag"
    assert flags["table_iterative_vs_single_step"]["status"] == "pass"
    good = [{"attack": "FGSM", "accuracy": 60.0}, {"attack": "PGD-20", "accuracy": 50.0},
            {"attack": "AA", "accuracy": 47.0}, {"attack": "transfer", "accuracy": 70.0}]
    assert {r["status"] for r in check_table_consistency(good)} == {"pass"}
    assert check_table_consistency([{"attack": "PGD-20", "accuracy": 50.0}]) == []


class _NoGraph(torch.nn.Module):
    """Obfuscated: the forward runs under no_grad, so the output has no autograd graph."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        with torch.no_grad():
            return self.m(x)


class _Randomized(torch.nn.Module):
    """A randomized defense: Gaussian input noise in eval mode too (needs EOT attacks)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m((x + 0.3 * torch.randn_like(x)).clamp(0, 1))


class _Saturated(torch.nn.Module):
    """Saturated logits: x 1e4, so the cross-entropy gradient underflows to 0 on confident inputs."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x) * 1e4


@pytest.mark.parametrize("trap,expected", [
    (_NoGraph, {"differentiable"}),
    (_Randomized, {"deterministic_forward"}),
    (Quantized, {"nonzero_gradients", "unbounded_pgd"}),  # shattered gradients (zero-gradient rounding)
    (_Saturated, {"unbounded_pgd", "blackbox_vs_whitebox"}),
])
def test_masked_models_of_several_kinds_are_flagged_never_crash(trap, expected):
    """Issue 16: a forward without autograd graph is flagged (it used to crash with 'element 0 of tensors does
    not require grad'); each trap raises its own flag(s)."""
    status = _status(trap(trained_model()))
    flagged = {k for k, v in status.items() if v == "flag"}
    assert expected <= flagged, status


def test_honest_adversarially_trained_model_is_not_flagged():
    """Issue 16: the traps above are flagged, an honest PGD-AT model is not (3 epochs of 3-step PGD on 5,000
    real MNIST images, about 10 s)."""
    import torch.nn.functional as F

    from ot_robust.attacks import PGD
    from ot_robust.core.data import as_tensors, load_mnist_sample

    from _models import MLP

    torch.manual_seed(0)
    m = MLP()
    x, y = as_tensors(load_mnist_sample("train"), 5000)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    atk = PGD(0.1, 3, 0.04)
    for _ in range(3):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 100):
            xb, yb = x[perm[i:i + 100]], y[perm[i:i + 100]]
            xa = atk(m, xb, yb)
            m.train()
            loss = F.cross_entropy(m(xa), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    m.eval()
    status = _status(m)
    assert set(status.values()) == {"pass"}, status


def test_no_attack_runs_twice(monkeypatch):
    """issue 15: the PGD at eps of the iterative-vs-single-step check is the eps point of accuracy-vs-eps (it ran
    once); no attack with the same settings runs twice in one sanity report."""
    import ot_robust.evaluation.sanity as S

    seen = []
    real = S._robust_acc
    monkeypatch.setattr(S, "_robust_acc", lambda m, a, x, y: seen.append(repr(a)) or real(m, a, x, y))
    x, y = mnist_test(200)
    out = {r["check"]: r for r in run_sanity(trained_model(), x, y, eps=0.1, config=CFG)}
    attacks = [a for a in seen if "function" not in a]  # the clean 'attack' is a lambda
    assert len(attacks) == len(set(attacks)), attacks
    assert out["accuracy_vs_epsilon"]["numbers"]["accuracy"][0] == out["iterative_vs_single_step"]["numbers"]["pgd"]


def _weaker(masks, families=None, **kw):
    from ot_robust.evaluation.sanity import check_weaker_family_vs_whitebox

    return check_weaker_family_vs_whitebox(masks, "pgd20", families or {"rays": "hard-label"}, **kw)


def test_weaker_family_far_below_whitebox_is_flagged_with_the_attack_named():
    import numpy as np

    i = np.arange(1000)
    masks = {"clean": i < 800, "pgd20": i < 640, "rays": i < 612, "square": i < 700}
    r, sq = _weaker(masks, {"rays": "hard-label", "square": "score-based black-box"})
    assert r["check"] == "weaker_family_vs_whitebox:rays" and r["status"] == "flag"
    assert r["details"].startswith("rays (hard-label) 61.2% vs pgd20 (white-box) 64.0% on the same 1000 images")
    n = r["numbers"]
    assert (n["n"], n["accuracy"], n["whitebox_accuracy"]) == (1000, 61.2, 64.0) and n["difference"] == 2.8
    assert 0 < n["ci_low"] < 2.8 < n["ci_high"] and n["p_value"] < 0.05
    assert sq["check"] == "weaker_family_vs_whitebox:square" and sq["status"] == "pass"  # above white-box
    assert sq["numbers"]["ci_high"] < 0


def test_weaker_family_equal_or_within_noise_passes():
    import numpy as np

    i = np.arange(200)
    base = {"clean": i < 200, "pgd20": i < 100}
    same = _weaker({**base, "rays": i < 100})[0]
    assert same["status"] == "pass" and same["numbers"]["difference"] == 0
    assert same["numbers"]["ci_low"] < 0 < same["numbers"]["ci_high"]  # never a zero-width interval
    noise = _weaker({**base, "rays": i < 96})[0]  # 4 discordant pairs, all one way: exact McNemar p = 0.125
    assert noise["status"] == "pass" and noise["numbers"]["ci_low"] < 0 < noise["numbers"]["ci_high"]
    assert _weaker({**base, "rays": i < 90})[0]["status"] == "flag"  # 10 of 10: p = 0.002


def test_weaker_family_compares_the_common_prefix():
    import numpy as np

    i = np.arange(300)
    # on the first 100 images rays is far below PGD; PGD fails every later image (full-length PGD: 100 / 300)
    masks = {"clean": i < 300, "pgd20": i < 80, "rays": np.arange(100) < 40}
    r = _weaker(masks)[0]
    assert r["numbers"]["n"] == 100 and r["numbers"]["whitebox_accuracy"] == 80.0 and r["status"] == "flag"
    assert "on the same 100 images" in r["details"]
    assert _weaker({**masks, "rays": np.arange(10) < 0})[0]["status"] == "n/a"  # 10 common images < MIN_PAIRED_N


def test_weaker_family_counts_only_images_correct_on_the_clean_input():
    import numpy as np

    i = np.arange(200)
    # rays' raw mask marks the 60 clean-misclassified images correct: ungated 80% > PGD 70%, gated 50% < 70%
    masks = {"clean": i >= 60, "pgd20": i >= 60, "rays": (i < 60) | (i >= 100)}
    r = _weaker(masks)[0]
    assert r["numbers"]["accuracy"] == 50.0 and r["numbers"]["whitebox_accuracy"] == 70.0 and r["status"] == "flag"
    none = _weaker({"clean": i < 0, "pgd20": i < 200, "rays": i < 0})[0]
    assert none["status"] == "n/a" and "correct clean" in none["details"]
    with pytest.raises(ValueError, match="'spsa'"):
        _weaker(masks, {"spsa": "score-based"})


def test_paired_difference_interval_matches_the_reference():
    """Newcombe's method 10 on Fagerland et al.'s Ch. 8 table (59, 6; 16, 80): -0.0621 (95% CI -0.1186 to -0.0046)."""
    import numpy as np

    from ot_robust.evaluation.sanity import paired_difference_interval

    a = np.repeat([True, True, False, False], [59, 6, 16, 80])
    b = np.repeat([True, False, True, False], [59, 6, 16, 80])
    lo, hi = paired_difference_interval(a, b)
    assert (round(lo, 2), round(hi, 2)) == (-11.86, -0.46)
