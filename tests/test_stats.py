"""Issue 14: intervals and paired tests against scipy on known cases; the verdict rule on constructed inputs;
masks round-trip; per-threat-model worst case."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from ot_robust.evaluation.results import load_masks, save_masks
from ot_robust.core.stats import accuracy_summary, mcnemar, t_interval, verdict, wilson_interval
from ot_robust.study.tasks import worst_by_threat_model


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (81, 263), (1, 2), (150, 300), (997, 1000), (3, 10000)])
def test_wilson_matches_scipy(k, n):
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(100 * ci.low, abs=1e-9) and hi == pytest.approx(100 * ci.high, abs=1e-9)


def test_wilson_published_case_and_errors():
    # Newcombe (1998), Table I: 81/263 -> 0.2553 to 0.3662 (method 3, score interval)
    lo, hi = wilson_interval(81, 263)
    assert (round(lo / 100, 4), round(hi / 100, 4)) == (0.2553, 0.3662)
    for bad in [(-1, 10), (11, 10), (1, 0)]:
        with pytest.raises(ValueError, match=r"k=|n="):
            wilson_interval(*bad)
    s = accuracy_summary([True] * 3 + [False])
    assert s["accuracy"] == 75.0 and s["n"] == 4 and s["ci_low"] < 75 < s["ci_high"]


def test_mcnemar_exact_against_scipy_and_known_case():
    rng = np.random.default_rng(0)
    a = rng.random(500) < 0.6
    b = a.copy()
    flip = rng.choice(500, 40, replace=False)
    b[flip] = ~b[flip]
    r = mcnemar(a, b)
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())
    assert (r["a_only"], r["b_only"]) == (n10, n01)
    assert r["p_value"] == pytest.approx(sps.binomtest(n10, n10 + n01, 0.5).pvalue)
    assert r["diff"] == pytest.approx(100 * (a.mean() - b.mean()))
    # textbook case (Agresti 2002, Table 10.1 style): 10 vs 2 discordant pairs -> exact two-sided p = 0.0386
    a = np.array([True] * 10 + [False] * 2 + [True] * 30)
    b = np.array([False] * 10 + [True] * 2 + [True] * 30)
    assert mcnemar(a, b)["p_value"] == pytest.approx(0.03857, abs=1e-4)
    assert mcnemar(a, a)["p_value"] == 1.0
    with pytest.raises(ValueError, match="same length"):
        mcnemar(a, a[:-1])


def test_t_interval_against_scipy():
    v = [1.0, 2.5, 0.5]
    r = t_interval(v)
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(v), scale=sps.sem(v))
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(lo), pytest.approx(hi)) and r["n"] == 3
    one = t_interval([4.0])
    assert one["mean"] == 4.0 and math.isnan(one["ci_low"])
    with pytest.raises(ValueError):
        t_interval([])


@pytest.mark.parametrize("effect,lo,hi,margin,expected", [
    (25.6, 3.0, 9.0, None, "reproduced"),        # same sign, interval excludes 0
    (25.6, -9.0, -3.0, None, "contradicted"),     # opposite sign, excludes 0
    (25.6, -1.0, 4.0, None, "inconclusive"),      # contains 0
    (-2.0, -5.0, -1.0, None, "reproduced"),       # a claimed decrease
    (-2.0, 1.0, 5.0, None, "contradicted"),
    (0.0, -0.8, 0.9, None, "reproduced"),         # "perform alike": within +-1 point
    (0.0, 1.5, 3.0, None, "contradicted"),
    (0.0, -2.0, 3.0, None, "inconclusive"),
    (16.7, 5.0, 20.0, 10.0, "reproduced"),        # bounded: drop <= 26.7
    (16.7, 80.0, 95.0, 10.0, "contradicted"),     # drop far larger than the paper's (no plateau)
    (16.7, 20.0, 40.0, 10.0, "inconclusive"),
])
def test_verdict_rule(effect, lo, hi, margin, expected):
    assert verdict(effect, lo, hi, margin) == expected


def test_verdict_rejects_bad_interval():
    with pytest.raises(ValueError):
        verdict(1.0, 2.0, 1.0)
    with pytest.raises(ValueError):
        verdict(1.0, math.nan, 1.0)


def test_masks_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(1)
    m = {"clean": rng.random(1003) < 0.9, "pgd20": rng.random(1003) < 0.5, "autoattack": rng.random(100) < 0.4}
    idx = rng.permutation(5000)[:1003]
    p = save_masks(tmp_path / "masks.npz", m, idx)
    assert p.stat().st_size < 4000 + 4 * 1003  # packed bits (the int32 indices dominate)
    back, bidx = load_masks(p)
    assert set(back) == set(m) and all(np.array_equal(back[k], m[k]) for k in m) and np.array_equal(bidx, idx)
    with pytest.raises(ValueError, match="expected"):
        save_masks(tmp_path / "bad.npz", {"x": np.ones(5, bool)}, [1, 2])
    with pytest.raises(ValueError, match="not allowed"):
        save_masks(tmp_path / "bad.npz", {"n_x": np.ones(1, bool)}, [1])


def test_worst_case_is_per_threat_model():
    clean = np.array([1, 1, 1, 1, 0, 1], bool)
    masks = {"clean": clean, "pgd20": np.array([1, 1, 0, 1, 1, 1], bool),
             "l2_pgd": np.array([0, 0, 0, 0, 0, 0], bool), "autoattack": np.array([1, 0, 1], bool)}
    specs = {"pgd20": "pgd-linf eps=0.3 steps=20 step=0.0375", "l2_pgd": "pgd-l2 eps=2.0 steps=20 step=0.25",
             "autoattack": "autoattack eps=0.3"}
    w = worst_by_threat_model(masks, specs)
    assert w["linf"]["accuracy"] == pytest.approx(100 * 4 / 6) and w["linf"]["columns"] == ["pgd20"]
    assert w["linf_all"]["n"] == 3 and w["linf_all"]["accuracy"] == pytest.approx(100 / 3)  # AA on the first 3
    assert w["l2"]["accuracy"] == 0.0  # L2 never mixed into the Linf worst case


def test_pgd_autoattack_gap_is_flagged():
    """Issue 16: FS with PGD-20 29% and AutoAttack 0% was reported 'pass'; a large gap is itself a masking sign."""
    from ot_robust.evaluation.sanity import check_pgd_autoattack_gap

    n = 200
    clean = np.ones(n, bool)
    pgd = np.arange(n) < 58            # 29%
    r = check_pgd_autoattack_gap({"clean": clean, "pgd20": pgd, "autoattack": np.zeros(100, bool)}, "pgd20")
    assert r["status"] == "flag" and r["numbers"]["n"] == 100 and r["numbers"]["gap"] > 10
    ok = check_pgd_autoattack_gap({"clean": clean, "pgd20": pgd, "autoattack": pgd[:100].copy()}, "pgd20")
    assert ok["status"] == "pass" and ok["numbers"]["gap"] == 0
