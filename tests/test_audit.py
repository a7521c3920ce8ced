"""The masking audit (issue 33): the profile's ``audit`` schema, its ``audit/<exp>`` steps, the attack families, and
the lowest-of-R protocol (per-example worst case over restarts, and the worst single run)."""

import copy

import pytest
import torch
import yaml

from ot_robust.attacks import AttackProtocol, FAMILIES, attack_family, attack_norm
from ot_robust.evaluation.suite import evaluate
from ot_robust.profiles import PROFILE_DIR, ProfileError, load_profile, validate_profile
from ot_robust.profiles.audit_schema import groups_of
from ot_robust.study.audit import _columns
from ot_robust.study.pipeline import build_plan


def _raw(**audit):
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    raw["audit"] = copy.deepcopy(audit) if audit else raw["audit"]
    return raw


GROUP = {"experiments": ["pgd_at"], "n_examples": 10, "attacks": {"rays": "rays eps=0.3 queries=10"}}


@pytest.mark.parametrize("audit, match", [
    ({"g": {**GROUP, "experiments": ["nope"]}}, r"audit\.g\.experiments names unknown experiment\(s\) \['nope'\]"),
    ({"g": {**GROUP, "attacks": {"pgd10": "rays eps=0.3"}}}, r"column 'pgd10' is already an eval column"),
    ({"g": GROUP, "h": GROUP}, r"audit\.h\.attacks\.rays: column 'rays' is already in audit\.g"),
    ({"g": {k: v for k, v in GROUP.items() if k != "n_examples"}}, r"audit\.g has attacks but no n_examples"),
    ({"g": {"experiments": ["pgd_at"], "n_examples": 5}}, r"audit\.g has neither attacks nor eps_sweep"),
    ({"g": {**GROUP, "attacks": {"t": {"source": "ghost", "via": "pgd-linf eps=0.3"}}}},
     r"audit\.g\.attacks\.t\.source 'ghost' is not one of the experiments"),
    ({"g": {**GROUP, "attacks": {"rays": "rays eps=0.3 querys=3"}}}, r"audit\.g\.rays: .*unknown key 'querys'"),
    ({"g": {"experiments": ["pgd_at"], "eps_sweep": {"epsilons": [0.1], "n_examples": 5,
                                                     "protocols": {"p": {"steps": 4, "labels": "guessed"}}}}},
     r"labels 'guessed'; allowed: \['true', 'predicted'\]"),
    ({"g": {**GROUP, "colour": 1}}, r"unknown key\(s\) \['colour'\] in audit\.g"),
])
def test_bad_audit_sections_are_refused_with_the_key_path(audit, match):
    with pytest.raises(ProfileError, match=match):
        validate_profile(_raw(**audit), source="smoke.yaml")


def test_a_transfer_column_is_left_out_for_its_own_source_model():
    audit = {"g": {"experiments": ["standard", "pgd_at"], "n_examples": 4,
                   "attacks": {"rays": "rays eps=0.3", "t": {"source": "standard", "via": "pgd-linf eps=0.3"}}}}
    assert list(groups_of(audit, "pgd_at")["g"]["attacks"]) == ["rays", "t"]
    assert groups_of(audit, "pgd_at")["g"]["n_examples"] == 4
    assert list(groups_of(audit, "standard")["g"]["attacks"]) == ["rays"]
    assert groups_of(audit, "otjr") == {}


def test_audit_steps_follow_their_evaluation_and_transfer_sources(tmp_path):
    plan = build_plan("smoke", runs_dir="runs", fig_dir="figures")
    names = [s.name for s in plan.steps]
    assert [n for n in names if n.startswith("audit/")] == [
        "audit/masking/pgd_at", "audit/masking/feature_scattering", "audit/plateau/pgd_at"]
    step = plan["audit/masking/pgd_at"]
    assert step.notebook.endswith("21_audit.ipynb") and step.inputs["step"] == "audit/masking/pgd_at"
    assert step.output.endswith("notebooks/21_audit.masking.pgd_at.ipynb")
    assert set(step.deps) == {"train/pgd_at", "evaluate/pgd_at", "train/standard"}
    assert names.index("evaluate/pgd_at") < names.index("audit/masking/pgd_at") < names.index("tables/fs")
    assert "audit/masking/pgd_at" not in plan["tables/fs"].deps  # tables show the audits present, never wait
    v = step.values
    assert v["group"] == "masking" and v["n_examples"] == 40 and v["eps_sweep"] is None
    assert v["attacks"]["pgd10_undefended"]["source"] == "runs/smoke/train/standard"
    assert v["eval_dir"] == "runs/smoke/eval/pgd_at" and step.done_dir == "runs/smoke/audit/masking/pgd_at"
    sweep = plan["audit/plateau/pgd_at"]
    assert sweep.values["attacks"] == {} and sweep.values["eps_sweep"]["protocols"]["paper"]["step_size"] == 0.01
    assert set(sweep.deps) == {"train/pgd_at", "evaluate/pgd_at"}
    # an audit never changes the train / evaluate steps (their hashes cover their own parameters only)
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    del raw["audit"]
    p = tmp_path / "smoke.yaml"
    p.write_text(yaml.safe_dump(raw))
    without = build_plan(validate_profile(raw, source=str(p)), runs_dir="runs", fig_dir="figures")
    for n in ("train/pgd_at", "evaluate/pgd_at"):
        assert without[n].params == plan[n].params
    assert not [s for s in without.steps if s.name.startswith("audit/")]


@pytest.mark.parametrize("spec, family", [
    ("pgd-linf eps=0.1 steps=20", "white-box"), ("autoattack eps=0.1", "white-box"), ("fgsm eps=0.1", "white-box"),
    ("feature-attack eps=0.1", "feature-space"), ("rays eps=0.1", "hard-label"), ("square eps=0.1", "score-based"),
    ("spsa eps=0.1", "score-based"), ("localsearch eps=0.1", "score-based"),
    ("transfer source=x via=pgd-linf eps=0.1", "transfer")])
def test_attack_families(spec, family):
    assert attack_family(spec) == family and family in FAMILIES


@pytest.mark.parametrize("spec,norm", [
    ("pgd-linf eps=0.1 steps=20", "linf"), ("pgd-l2 eps=0.5 steps=20", "l2"),
    ("transfer source=/no/such/model.pt via=pgd-l2 eps=0.5", "l2"),
    ("transfer source=/no/such/model.pt via=pgd-linf eps=0.1", "linf")])
def test_attack_norm_without_loading_a_transfer_source(spec, norm):
    assert attack_norm(spec) == norm


class _Fixed(AttackProtocol):
    """Restart run j fools exactly the images in ``fools[j]`` (it returns an image the model misclassifies)."""
    eps, norm = 1.0, "linf"

    def __init__(self, fools, run=None):
        self.fools, self.run = fools, run

    def restart_runs(self, seeds):
        return [_Fixed(self.fools, j) for j in range(len(self.fools))]

    def __call__(self, model, x, y):
        out = x.clone()
        for i in range(len(x)):
            if int(x[i, 0, 0, 0] * 100) in self.fools[self.run]:  # the image's id is written in its first pixel
                out[i] = 1.0 - x[i]  # the model below answers by this pixel's side of 0.5
        return out

    def __repr__(self):
        return f"_Fixed({self.fools})"


class _ByPixel(torch.nn.Module):
    def forward(self, x):
        p = x[:, 0, 0, 0]
        return torch.stack([0.5 - p, p - 0.5], 1)


def test_lowest_of_r_is_the_per_example_worst_case_and_the_worst_run_is_kept():
    x = torch.zeros(10, 1, 2, 2)
    x[:, 0, 0, 0] = torch.arange(10) / 100 + 0.001  # ids 0..9, all below 0.5: class 0
    y = torch.zeros(10, dtype=torch.long)
    atk = _Fixed([{0, 1}, {2, 3, 4}, {5}])  # three runs fool disjoint images
    rep = evaluate(_ByPixel(), (x, y), [atk], n_examples=10, sanity=False, progress=False, order="first")
    col = _columns(rep, {"c": repr(atk)})["c"]
    assert col["accuracy"] == 40.0  # robust only where no run succeeded: 10 - 6 images
    assert col["min_run"] == 70.0 and col["runs"] == 3  # the worst single run fooled 3 of 10
    assert col["max_min"] == pytest.approx(20.0)  # runs at 80, 70, 90


def test_shipped_profiles_with_an_audit_load():
    for name in ("smoke", "study-fashion", "study-mnist"):
        prof = load_profile(name)
        for g in prof.audit.values():
            assert set(g["experiments"]) <= set(prof.methods)


def _audit(cols, **kw):
    return {"columns": {c: {"spec": s, "family": f, "accuracy": a, "n": 100, "ci": [a - 5, a + 5], "group": "g",
                            "runs": 1, "min_run": a, "max_min": 0.0, "time_s": 1.0} for c, (s, f, a) in cols.items()},
            **kw}


def test_an_audit_merges_into_its_evaluation_for_tables_and_claims():
    from ot_robust.evaluation.results import with_audit

    ev = {"accuracy": {"clean": 90.0, "pgd20": 60.0}, "n": {"clean": 1000, "pgd20": 1000}, "ci": {},
          "autoattack": 55.0, "worst_case": 55.0, "transfer": {"Undefended": {"pgd100": 85.0}},
          "sanity": [{"check": "a", "status": "pass"}]}
    au = _audit({"rays": ("rays eps=0.1", "hard-label", 52.0), "pgd20_u": ("transfer source=s via=pgd-linf eps=0.1",
                                                                          "transfer", 80.0)},
                transfer={"Undefended": {"pgd20": 80.0}}, sanity=[{"check": "b", "status": "flag"}],
                eps_sweep={"g": {"epsilons": [0.1]}})
    m = with_audit(ev, {"g": au})
    assert m["accuracy"] == {"clean": 90.0, "pgd20": 60.0, "rays": 52.0, "pgd20_u": 80.0}
    assert m["audit_attacks"]["rays"] == "rays eps=0.1" and m["n"]["rays"] == 100
    assert m["transfer"] == {"Undefended": {"pgd100": 85.0, "pgd20": 80.0}}
    assert [c["check"] for c in m["sanity"]] == ["a", "b"]
    assert m["eps_sweep"] == {"g": {"epsilons": [0.1]}} and m["audit_columns"]["rays"]["family"] == "hard-label"
    assert ev["accuracy"] == {"clean": 90.0, "pgd20": 60.0}  # the evaluation itself is not modified


def test_masking_signature_takes_the_lowest_accuracy_of_each_family():
    from ot_robust.evaluation.results import with_audit
    from ot_robust.reports.figures import masking_signature, plot_masking_signature

    ev = {"accuracy": {"clean": 90.0, "fgsm": 70.0, "pgd20": 60.0, "cw20": 58.0}, "autoattack": 40.0}
    fs = with_audit(ev, {"g": _audit({"rays": ("rays eps=0.1", "hard-label", 45.0),
                                "feature_attack": ("feature-attack eps=0.1", "feature-space", 38.0),
                                "square": ("square eps=0.1", "score-based", 50.0),
                                "spsa": ("spsa eps=0.1", "score-based", 47.0)})})
    frame = masking_signature({"feature_scattering": fs, "plain": ev}, {"feature_scattering": "Proposed"})
    assert list(frame.index) == ["Proposed"]  # a model without an audit is left out
    two = masking_signature({"a": fs, "b": fs}, {"a": "Proposed", "b": "Proposed"})
    assert list(two.index) == ["Proposed", "Proposed (b)"]  # two models never share (overwrite) a row
    r = frame.loc["Proposed"]
    assert r["white-box"] == 40.0 and r["white-box_attack"] == "autoattack"
    assert r["score-based"] == 47.0 and r["score-based_attack"] == "spsa"
    assert r["hard-label"] == 45.0 and r["feature-space"] == 38.0 and r["transfer"] != r["transfer"]  # NaN
    fig = plot_masking_signature(frame)
    assert len(fig.axes[0].collections) >= 4
    with pytest.raises(ValueError, match="at least one audited model"):
        plot_masking_signature(frame.iloc[:0])


def test_read_evaluation_merges_every_group_and_takes_the_worst_case_over_both(tmp_path):
    """Audit groups on prefixes of the evaluation's images: their masks join the evaluation's, and the worst case
    covers every Linf column of both on the evaluation's worst-case images (an L2 column never enters it, nor a
    column run on fewer images)."""
    import numpy as np

    from ot_robust.evaluation.results import read_evals, read_evaluation, write_evaluation

    idx = list(range(100, 110))
    clean = np.ones(10, bool)
    clean[9] = False
    pgd = np.ones(10, bool)
    pgd[0] = False
    ev = {"accuracy": {"clean": 90.0, "pgd20": 80.0}, "worst": {"linf": {"columns": ["pgd20", "aa"]}},
          "worst_case": 80.0}
    aa = np.ones(6, bool)
    aa[4] = False  # AutoAttack on the first 6 images fools image 4
    write_evaluation(tmp_path / "eval/m", ev, {"clean": clean, "pgd20": pgd, "aa": aa}, idx)
    rays = np.array([True, True, False, True, True, True])  # 6 images: fools image 2
    short = np.zeros(3, bool)  # a Linf column on 3 images only: left out of the worst case
    l2 = np.zeros(6, bool)  # an L2 attack that fools everything: not part of the Linf worst case
    au = _audit({"rays": ("rays eps=0.1", "hard-label", 83.3)})
    au["columns"]["rays"]["norm"] = "linf"
    write_evaluation(tmp_path / "audit/a/m", au, {"clean": clean[:6], "rays": rays}, idx[:6])
    au2 = _audit({"l2_pgd": ("pgd-l2 eps=1", "white-box", 0.0)})
    au2["columns"]["l2_pgd"]["norm"] = "l2"
    write_evaluation(tmp_path / "audit/b/m", au2, {"clean": clean[:6], "l2_pgd": l2}, idx[:6])
    au3 = _audit({"rays_short": ("rays eps=0.1", "hard-label", 0.0)})
    write_evaluation(tmp_path / "audit/c/m", au3, {"clean": clean[:3], "rays_short": short}, idx[:3])
    merged, masks, got_idx = read_evaluation(tmp_path, "m")
    assert set(masks) == {"clean", "pgd20", "aa", "rays", "l2_pgd", "rays_short"} and list(got_idx) == idx
    assert merged["worst_case_n"] == 6 and merged["worst_case"] == 100 * 3 / 6  # images 0, 2 and 4 fall
    assert merged["worst"]["linf_audit"]["columns"] == ["pgd20", "aa", "rays"]
    assert merged["accuracy"]["rays_short"] == 0.0  # its own number stays
    assert read_evals(tmp_path)["m"]["accuracy"]["rays"] == 83.3
    assert read_evals(tmp_path, audits=False)["m"]["worst_case"] == 80.0
    write_evaluation(tmp_path / "audit/d/m", au, {"clean": clean[:3], "rays": rays[:3]}, [7, 8, 9])
    with pytest.raises(ValueError, match="audit 'd' of 'm' ran on other images"):
        read_evaluation(tmp_path, "m")


def test_supplement_table1_reads_the_lowest_single_run_and_its_spread():
    """Issue 33: FS supplement Table 1 reports, per attack, the lowest accuracy of 5 random-start runs; ours shows
    the same statistic (``min_run``, not the per-example worst case over the runs, which is lower) and the runs'
    max-min spread, for each seed of the Madry rows, pooled over seeds as every study table is."""
    from ot_robust.evaluation.results import with_audit
    from ot_robust.reports.tables import build_table

    prof = load_profile("study-fashion")
    evals = {}
    for k, e in enumerate(("pgd_at", "pgd_at_s1")):
        cols = {c: {"spec": f"{c.rstrip('0123456789')}-linf eps=0.1 steps={c.lstrip('pgdcw')} step=0.0025 restarts=5",
                    "family": "white-box", "accuracy": 60.0 + k, "n": 500,
                    "ci": [55.0, 65.0], "group": "restarts", "runs": 5, "min_run": 62.0 + k, "max_min": 1.5 + k,
                    "time_s": 1.0} for c in ("pgd500", "pgd1000", "cw500", "cw1000")}
        evals[e] = with_audit({"accuracy": {"clean": 90.0}, "autoattack": 59.0}, {"restarts": {"columns": cols}})
    t = build_table("fs_supp_table1", evals, prof).frame
    ours = t.loc[[i for i in t.index if i[1].startswith("ours") and "mean" in i[1]][0]]
    assert ours["PGD500"] == pytest.approx(62.5) and ours["CW1000"] == pytest.approx(62.5)  # min_run, not 60.5
    assert ours["PGD500 max-min"] == pytest.approx(2.0)
    paper = t.loc[("Proposed (min over 5 runs)", "paper")]
    assert paper["PGD500"] == 64.5 and paper["PGD500 max-min"] != paper["PGD500 max-min"]  # the paper gives none
