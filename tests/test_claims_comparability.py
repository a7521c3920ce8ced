"""Like with like (issue 32): a verdict row compares runs that differ only in the claim's factor."""
import json

import numpy as np

from ot_robust.reports.claims import CLAIMS, budget_text, claims_table, comparability

CLAIM = {c.id: c for c in CLAIMS}


def _cfg(method="feature_scattering", epochs=6, batch_size=128, **params):
    return {"method": method, "method_params": {"eps": 0.1, "steps": 1, "label_smoothing": 0.5, **params},
            "dataset": "fashion-mnist", "model": "small_cnn", "epochs": epochs, "batch_size": batch_size,
            "optimizer": "adam", "lr": 0.001}


EV = {"n_examples": 10000, "order": "balanced", "attacks": {"pgd20": "pgd-linf eps=0.1 steps=20 step=0.0125"}}


def test_pair_differing_only_in_the_claimed_factor_is_accepted():
    claim = CLAIM["fs-vs-random"]                              # factor: the perturbation
    assert comparability(claim, _cfg(), _cfg(perturbation="random"), EV, EV) == []


def test_pairs_differing_in_budget_adversary_or_attack_are_refused_with_the_keys_named():
    claim = CLAIM["fs-vs-random"]
    a = _cfg()
    assert comparability(claim, a, _cfg(epochs=4, perturbation="random"), EV, EV) == ["epochs: 6 vs 4"]
    assert comparability(claim, a, _cfg(batch_size=60, perturbation="random"), EV, EV) == ["batch_size: 128 vs 60"]
    assert comparability(claim, a, _cfg(steps=3, perturbation="random"), EV, EV) == ["steps: 1 vs 3"]
    assert comparability(claim, a, _cfg(eps=0.2, perturbation="random"), EV, EV) == ["eps: 0.1 vs 0.2"]
    other = {**EV, "attacks": {"pgd20": "pgd-linf eps=0.1 steps=20 step=0.01"}}
    assert comparability(claim, a, _cfg(perturbation="random"), EV, other) == [
        "attack pgd20: 'pgd-linf eps=0.1 steps=20 step=0.0125' vs 'pgd-linf eps=0.1 steps=20 step=0.01'"]
    assert comparability(claim, a, _cfg(perturbation="random"), EV, {**EV, "n_examples": 1000}) == [
        "evaluation n_examples: 10000 vs 1000"]
    assert "dataset: 'fashion-mnist' vs 'mnist'" in comparability(
        claim, a, {**_cfg(perturbation="random"), "dataset": "mnist"}, EV, EV)


def test_got_runs_from_before_the_exact_potential_count_as_adam():
    claim = CLAIM["got-lm-s-pgd"]
    lm = {**_cfg("got_pgd_lm"), "method_params": {"eps": 0.3, "steps": 5}}            # no potential_solver key
    s = {**_cfg("got_pgd_s"), "method_params": {"eps": 0.3, "steps": 5, "potential_solver": "sinkhorn"}}
    assert comparability(claim, lm, s, EV, EV) == ["potential_solver: 'adam' vs 'sinkhorn'"]
    s["method_params"]["potential_solver"] = "adam"
    assert comparability(claim, lm, s, EV, EV) == []


def test_verdict_row_reads_not_comparable_from_constructed_run_folders(tmp_path):
    from ot_robust.evaluation.results import save_masks

    rng = np.random.default_rng(0)
    n = 500
    from ot_robust.profiles import load_profile

    params = {e: load_profile("study-fashion", check_registries=False).methods[e].params
              for e in ("feature_scattering", "fs_random")}           # the runs the profile states
    for exp, cfg in [("feature_scattering", {**_cfg(), "method_params": params["feature_scattering"]}),
                     ("fs_random", {**_cfg(epochs=4), "method_params": params["fs_random"]})]:
        ev = tmp_path / "study-fashion" / "eval" / exp
        ev.mkdir(parents=True)
        (ev / "eval.json").write_text(json.dumps(EV))
        save_masks(ev / "masks.npz", {"clean": np.ones(n, bool), "pgd20": rng.random(n) < 0.5}, np.arange(n))
        tr = tmp_path / "study-fashion" / "train" / exp
        tr.mkdir(parents=True)
        (tr / "config.json").write_text(json.dumps({"config": cfg}))
    row = claims_table(tmp_path, claims=[CLAIM["fs-vs-random"]]).iloc[0]
    assert row.verdict == "not comparable" and np.isnan(row.ours)
    assert "epochs: 6 vs 4" in row.note
    assert row.budget == "A: 6 ep, adv 1x0.1@0.1; B: 4 ep, adv 1x0.1@0.1"
    cfg = {**_cfg(), "method_params": params["fs_random"]}
    (tmp_path / "study-fashion" / "train" / "fs_random" / "config.json").write_text(json.dumps({"config": cfg}))
    row = claims_table(tmp_path, claims=[CLAIM["fs-vs-random"]]).iloc[0]
    assert row.verdict != "not comparable" and row.budget == "6 ep, adv 1x0.1@0.1"


def test_budget_text():
    assert budget_text({"epochs": 5, "method_params": {"eps": 0.3, "steps": 5, "step_size": 0.1}}) == \
        "5 ep, adv 5x0.1@0.3"
    assert budget_text({"epochs": 6, "method_params": {"lambda_j": 0.02}}) == "6 ep, no adversary"


def test_seeds_of_one_side_must_be_the_same_run_but_for_the_seed():
    from ot_robust.reports.claims import seed_mismatches

    claim = CLAIM["got-pgd-s"]
    s0 = {**_cfg("got_pgd_s"), "seed": 0, "method_params": {"eps": 0.3, "potential_solver": "sinkhorn"}}
    s1 = {**_cfg("got_pgd_s"), "seed": 1, "method_params": {"eps": 0.3}}           # before the exact potential
    b = {**_cfg("pgd_at"), "method_params": {"eps": 0.3}}
    assert seed_mismatches(claim, {0: (s0, b), 1: ({**s0, "seed": 1}, {**b, "seed": 1})}) == []
    assert seed_mismatches(claim, {0: (s0, b), 1: (s1, b)}) == [
        "got_pgd_s seed 0 vs seed 1: potential_solver: 'sinkhorn' vs 'adam'"]


def test_runs_not_matching_the_profile_or_evaluated_before_retraining_are_left_out(tmp_path):
    from types import SimpleNamespace

    from ot_robust.reports.claims import stale_reason

    from ot_robust.profiles import MethodEntry

    prof = SimpleNamespace(name="p", methods={
        "s": MethodEntry("got_pgd_s", params={"eps": 0.3, "potential_solver": "sinkhorn"}),
        "t": MethodEntry("trades", params={"eps": 0.3, "clip_start": True})})

    def run(exp, method, params, train_t, eval_t):
        for kind, t in (("train", train_t), ("eval", eval_t)):
            d = tmp_path / "p" / kind / exp
            d.mkdir(parents=True, exist_ok=True)
            (d / ".done.json").write_text(json.dumps({"finished": t}))
        (tmp_path / "p" / "train" / exp / "config.json").write_text(json.dumps(
            {"config": {"method": method, "method_params": params}}))

    run("s", "got_pgd_s", {"eps": 0.3}, "2026-12-01T00:00", "2026-12-02T00:00")        # Adam (before the key)
    assert "potential_solver: 'adam', profile 'sinkhorn'" in stale_reason(tmp_path, prof, "s")
    run("s", "got_pgd_s", {"eps": 0.3, "potential_solver": "sinkhorn"}, "2026-12-03T00:00", "2026-12-02T00:00")
    assert stale_reason(tmp_path, prof, "s") == "evaluated before its last training (not yet re-evaluated)"
    run("s", "got_pgd_s", {"eps": 0.3, "potential_solver": "sinkhorn"}, "2026-12-03T00:00", "2026-12-04T00:00")
    assert stale_reason(tmp_path, prof, "s") is None
    run("t", "trades", {"eps": 0.3}, "2026-12-01T00:00", "2026-12-02T00:00")           # clipped, as stated
    assert stale_reason(tmp_path, prof, "t") is None


def test_a_wrappers_inner_adversary_is_compared_key_by_key():
    claim = CLAIM["otjr-awp-trades"]                            # factor: the loss inside AWP
    adv = {"eps": 0.1, "step_size": 0.025, "steps": 5}

    def awp(method, gamma=0.005, **inner):
        return {**_cfg(method), "method_params": {"inner_params": {**adv, **inner}, "gamma": gamma}}

    a, b = awp("awp_otjr", n_slices=32, lambda_j=0.002), awp("awp_trades", beta=6.0)
    assert comparability(claim, a, b, EV, EV) == []
    assert comparability(claim, a, awp("awp_trades", beta=6.0, steps=3), EV, EV) == ["inner_params.steps: 5 vs 3"]
    assert comparability(claim, a, awp("awp_trades", gamma=0.01, beta=6.0), EV, EV) == ["gamma: 0.005 vs 0.01"]
    assert budget_text(b) == "6 ep, adv 5x0.025@0.1"
