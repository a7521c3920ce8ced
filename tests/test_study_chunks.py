"""Issue 14: a study too big for one sitting runs in chunks. Committed results (weights not committed) count as done
on a fresh clone; --budget stops cleanly (no step starts after the deadline; training stops at an epoch end with its
checkpoint) and the same command continues; the study meta profile and the claims table."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ot_robust.study import pipeline
from ot_robust.study.pipeline import DEADLINE_ENV, BudgetReached, Plan, Step, parse_budget, run_plan
from ot_robust.profiles import PROFILE_DIR, load_meta_profile, load_profile
from test_pipeline import _fake_notebook

WRITE = "from pathlib import Path\nfor o in out.split(','):\n    Path(o).parent.mkdir(parents=True, exist_ok=True)\n" \
        "    Path(o).write_text(str(x))"


def _tiny_study(root: Path) -> Plan:
    """train/a -> evaluate/a, train/b -> evaluate/b: the shape of a study profile, with trivial notebooks."""
    (root / "nb").mkdir(exist_ok=True)
    _fake_notebook(root / "nb" / "t.ipynb", WRITE)
    steps = []
    for e in ("a", "b"):
        tr = f"results/tiny/train/{e}"
        steps.append(Step(f"train/{e}", "nb/t.ipynb", f"results/tiny/notebooks/train.{e}.ipynb",
                          {"x": 1, "out": f"{tr}/model.pt,{tr}/metrics.jsonl"}, tr, [f"{tr}/model.pt"]))
        ev = f"results/tiny/eval/{e}"
        steps.append(Step(f"evaluate/{e}", "nb/t.ipynb", f"results/tiny/notebooks/eval.{e}.ipynb",
                          {"x": 2, "out": f"{ev}/eval.json"}, ev, [f"{ev}/eval.json"], [f"train/{e}"]))
    plan = Plan(load_profile("smoke"), steps, root, "results/tiny", "figs")
    pipeline.compute_hashes(plan)
    return plan


def _fresh_clone(src: Path, dst: Path) -> None:
    """What git would give: everything but the weights (results/**/*.pt are ignored)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.pt"))


def test_committed_partial_study_skips_done_steps_on_a_fresh_clone(tmp_path):
    first = tmp_path / "first"
    first.mkdir()
    plan = _tiny_study(first)
    # chunk 1: the budget is used up after the first two steps
    st = run_plan(plan, only="train/a,evaluate/a", log=lambda s: None)
    assert st == {"train/a": "ran", "evaluate/a": "ran"}
    clone = tmp_path / "clone"
    _fresh_clone(first, clone)
    assert not (clone / "results/tiny/train/a/model.pt").exists()
    log = []
    st = run_plan(_tiny_study(clone), log=log.append)
    assert st == {"train/a": "committed", "evaluate/a": "skipped", "train/b": "ran", "evaluate/b": "ran"}
    assert any("committed result" in line for line in log)
    assert (clone / "results/tiny/eval/b/eval.json").is_file()
    # a committed training step reruns when a step that must run needs its weights
    (clone / "results/tiny/eval/a/eval.json").unlink()
    st = run_plan(_tiny_study(clone), log=lambda s: None)
    assert st["train/a"] == "ran" and st["evaluate/a"] == "ran" and st["train/b"] == "skipped"


def test_budget_defers_steps_and_the_same_command_continues(tmp_path, monkeypatch):
    monkeypatch.delenv(DEADLINE_ENV, raising=False)
    plan = _tiny_study(tmp_path)
    log = []
    st = run_plan(plan, deadline=0.0, log=log.append)  # a deadline already past: nothing starts
    assert set(st.values()) == {"deferred"} and "budget reached" in log[-1]
    st = run_plan(plan, budget_s=3600, log=lambda s: None)
    assert set(st.values()) == {"ran"}
    monkeypatch.delenv(DEADLINE_ENV, raising=False)


def test_parse_budget():
    assert parse_budget("150m") == 9000 and parse_budget("2.5h") == 9000 and parse_budget("90s") == 90
    assert parse_budget(None) is None
    for bad in ("150", "-3m", "xm", "m"):
        with pytest.raises(ValueError, match="--budget"):
            parse_budget(bad)


def test_training_stops_at_an_epoch_end_when_the_budget_is_spent_and_resumes(tmp_path, monkeypatch):
    from ot_robust.training.api import train

    cfg = dict(dataset="mnist-sample", model="small_cnn", method="standard", num_train=80, batch_size=40, epochs=3,
               eval_n=20, eval_steps=1, progress=False, deterministic=True, seed=2)
    ref = tmp_path / "ref"
    train(cfg, ref)
    from ot_robust.study.signals import deadline_passed

    monkeypatch.setenv(DEADLINE_ENV, "0")
    train(cfg, tmp_path / "library")  # the budget is an argument: a plain call ignores the pipeline's environment
    assert (tmp_path / "library" / "model.pt").exists()
    run = tmp_path / "run"
    with pytest.raises(BudgetReached, match="after epoch 1/3"):
        train(cfg, run, should_stop=deadline_passed)
    assert not (run / "model.pt").exists() and (run / "checkpoint.pt").exists()
    monkeypatch.delenv(DEADLINE_ENV)
    train(cfg, run)
    import torch

    a = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(ref / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_study_meta_profile_and_its_parts():
    meta = load_meta_profile("study")
    assert (meta.include == ["study-fashion", "study-mnist", "study-cifar10"] and meta.runs_dir == "results"
            and meta.claims)
    assert load_meta_profile("quick") is None
    f, m = load_profile("study-fashion"), load_profile("study-mnist")
    assert f.dataset == "fashion-mnist" and m.dataset == "mnist" and f.runs_dir == m.runs_dir == "results"
    for p in (f, m):
        assert p.eval["n_examples"] == 10000 and p.eval["autoattack"]["n_examples"] >= 1000
        assert p.eval["strong"]["n_examples"] >= 1000
    # three seeds of every headline model
    for p, heads in ((f, ["pgd_at", "feature_scattering", "trades", "otjr", "sw", "sat", "random_jr", "optimal_jr"]),
                     (m, ["pgd_at", "trades", "got_pgd_s", "got_pgd_lm", "got_trades_s", "got_trades_lm"])):
        for h in heads:
            seeds = sorted(p.seed_of(e) for e in p.methods if p.label(e) == p.label(h))
            assert seeds == [0, 1, 2], (p.name, h)


def _fake_eval(root, exp, masks, indices, epochs=6, **method_params):
    """A constructed evaluation (eval.json, masks.npz) and its training config.json (6 epochs, eps 0.1)."""
    from ot_robust.evaluation.results import save_masks

    d = root / "study-fashion" / "eval" / exp
    d.mkdir(parents=True)
    (d / "eval.json").write_text(json.dumps({"experiment": exp}))
    save_masks(d / "masks.npz", masks, indices)
    from ot_robust.profiles import load_profile

    entry = load_profile("study-fashion", check_registries=False).methods[exp]   # the run the profile states
    cfg = {"method": entry.method, "method_params": {**entry.params, **method_params},
           "dataset": "fashion-mnist", "model": "small_cnn", "epochs": epochs, "batch_size": 128}
    train = root / "study-fashion" / "train" / exp
    train.mkdir(parents=True, exist_ok=True)
    (train / "config.json").write_text(json.dumps({"config": cfg}))


def test_claims_table_on_constructed_results(tmp_path):
    """FS vs Madry with three seeds each (t interval) and an ablation with one seed (McNemar)."""
    from ot_robust.reports.claims import CLAIMS, claims_table, render_claims

    rng = np.random.default_rng(0)
    n = 2000
    idx = np.arange(n)
    for s, suffix in enumerate(["", "_s1", "_s2"]):
        base = rng.random(n) < 0.5
        better = base | (rng.random(n) < 0.3)
        _fake_eval(tmp_path, f"pgd_at{suffix}", {"clean": np.ones(n, bool), "pgd20": base}, idx)
        _fake_eval(tmp_path, f"feature_scattering{suffix}", {"clean": np.ones(n, bool), "pgd20": better}, idx)
    _fake_eval(tmp_path, "fs_random", {"clean": np.ones(n, bool), "pgd20": rng.random(n) < 0.2}, idx)
    df = claims_table(tmp_path, claims=[c for c in CLAIMS if c.id in ("fs-madry-pgd20", "fs-vs-random",
                                                                       "fs-madry-cw20")])
    r = df.set_index("id")
    assert r.loc["fs-madry-pgd20", "verdict"] == "reproduced" and r.loc["fs-madry-pgd20", "seeds"] == 3
    assert r.loc["fs-madry-pgd20", "test"].startswith("t over 3 seeds")
    assert r.loc["fs-vs-random", "test"].startswith("McNemar") and r.loc["fs-vs-random", "p_value"] < 1e-6
    assert r.loc["fs-vs-random", "verdict"] == "reproduced"
    assert r.loc["fs-madry-cw20", "verdict"] == "not run yet"
    paths = render_claims(df, tmp_path / "out")
    assert "| FS | FS beats Madry under PGD-20 |" in paths[0].read_text()
    # models evaluated on different images are refused, not compared
    _fake_eval(tmp_path, "fs_supervised", {"clean": np.ones(n, bool), "pgd20": rng.random(n) < 0.2}, idx[::-1])
    with pytest.raises(ValueError, match="different images"):
        claims_table(tmp_path, claims=[c for c in CLAIMS if c.id == "fs-vs-supervised"])


@pytest.mark.parametrize("exp,entry,message", [
    ("pgd_at", {"fs_table3a": "Supervised"}, "needs a feature_scattering model with perturbation='supervised'"),
    ("feature_scattering", {"fs_rebuttal_batch_size": {"row": "Proposed", "column": "bs60"}},
     "needs a model trained at batch size 60"),
    ("feature_scattering", {"fs_rebuttal_label_smoothing": {"row": "Proposed", "column": "ls0.0"}},
     "needs label_smoothing=0.0"),
    ("feature_scattering", {"fs_table4": "IPOT"}, "solver='ipot'"),
])
def test_a_table_cell_needs_a_model_trained_as_its_row_or_column_says(exp, entry, message):
    """Issue 14: the mislabelled tables (a batch-128 model in the bs60 column, Madry as 'Supervised') cannot
    come back: the profile is refused, naming the entry."""
    import copy

    import yaml

    from ot_robust.profiles import PROFILE_DIR, ProfileError, validate_profile

    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    bad = copy.deepcopy(raw)
    bad["methods"][exp].setdefault("tables", {}).update(entry)
    with pytest.raises(ProfileError, match=message):
        validate_profile(bad, check_registries=False)
    ok = copy.deepcopy(raw)
    if "bs60" in str(entry):
        ok["methods"][exp]["train"] = {"batch_size": 60}
        ok["methods"][exp]["tables"] = entry
        validate_profile(ok, check_registries=False)


def test_only_on_the_study_meta_profile_selects_across_profiles_and_the_claims_step(tmp_path, monkeypatch):
    """`reproduce --profile study --only claims` rebuilds only the verdict table; `--only 'evaluate/pgd_at_s1'` runs
    only the profile that has that step (no claims); a pattern matching nothing anywhere is refused."""
    import ot_robust.profiles as profiles
    from types import SimpleNamespace

    meta = SimpleNamespace(name="study", include=["p1", "p2"], runs_dir="results", claims=True)
    monkeypatch.setattr(profiles, "load_meta_profile", lambda name: meta)
    monkeypatch.setattr(profiles, "load_profile", lambda name: name)
    monkeypatch.setattr(pipeline, "build_plan", lambda prof, **kw: SimpleNamespace(
        name=prof, steps=[Step(f"train/{prof}_x", "nb.ipynb", "o.ipynb", {}, "d")]))
    ran = []
    monkeypatch.setattr(pipeline, "run_plan", lambda plan, only=None, **kw: ran.append((plan.name, only)) or {})
    monkeypatch.setattr(pipeline, "execute_step", lambda step, root, kernel=None: ran.append(step.name) or
                        {"ok": True})
    monkeypatch.setattr(pipeline, "write_provenance", lambda *a: None)
    monkeypatch.setattr("ot_robust.study.jupyter_kernel.shutdown", lambda: None)
    pipeline.run_profile("study", root=tmp_path, log=lambda s: None, only="claims")
    assert ran == ["claims"]
    ran.clear()
    pipeline.run_profile("study", root=tmp_path, log=lambda s: None, only="train/p2_*")
    assert ran == [("p2", "train/p2_*")]
    ran.clear()
    pipeline.run_profile("study", root=tmp_path, log=lambda s: None)
    assert ran == [("p1", None), ("p2", None), "claims"]
    with pytest.raises(ValueError, match="matches no step of study"):
        pipeline.run_profile("study", root=tmp_path, log=lambda s: None, only="evaluate/nothing")


def test_status_reports_done_committed_in_progress_stale_and_to_run(tmp_path):
    """reproduce --status: what a clone holds, read from the files only (nothing runs)."""
    from ot_robust.study.status import status_lines, step_state

    plan = _tiny_study(tmp_path)
    run_plan(plan, only="train/a,evaluate/a", log=lambda s: None)
    states = {s.name: step_state(s, tmp_path)[0] for s in plan.steps}
    assert states == {"train/a": "done", "evaluate/a": "done", "train/b": "to run", "evaluate/b": "to run"}
    (tmp_path / "results/tiny/train/a/model.pt").unlink()  # a fresh clone: weights not committed
    assert step_state(plan["train/a"], tmp_path) == ("committed", "weights not on this clone")
    b = tmp_path / "results/tiny/train/b"  # a chunk stopped train/b after epoch 2 of 5
    b.mkdir(parents=True)
    (b / "checkpoint.pt").write_bytes(b"")
    (b / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    plan["train/b"].params["train_params"] = json.dumps({"epochs": 5})
    assert step_state(plan["train/b"], tmp_path) == ("in progress", "checkpoint after epoch 2 of 5")
    part = tmp_path / "results/tiny/eval/b/partial"  # ... and evaluate/b after 3 attack batches
    part.mkdir(parents=True)
    for i in range(3):
        (part / f"{i}.npz").write_bytes(b"")
    assert step_state(plan["evaluate/b"], tmp_path) == ("in progress", "3 finished attack batch file(s) kept")
    plan["evaluate/a"].params["x"] = 3  # its parameters changed since it ran
    pipeline.compute_hashes(plan)
    assert step_state(plan["evaluate/a"], tmp_path)[0] == "stale"
    lines = status_lines(plan, plan.steps, jobs=2)
    assert lines[0].startswith("[status] smoke: 4 steps: 1 committed, 2 in progress, 1 stale;")
    assert "with --jobs 2" in lines[0]
    assert [next(t for t in ln.split() if "/" in t) for ln in lines[1:]] == ["evaluate/a", "train/b", "evaluate/b"]


def test_status_flag_runs_nothing(tmp_path, capsys):
    from ot_robust.__main__ import main

    assert main(["reproduce", "--profile", "smoke", "--status", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[status] smoke: ") and "to run" in out and "no finished step" in out
    assert not any(tmp_path.iterdir())


def test_a_chunk_of_one_study_profile_says_the_verdict_table_is_behind(tmp_path, monkeypatch):
    """A chunk run on study-mnist alone (not through `study`) changes results the verdict table reads: the run says
    how to rebuild it (a stale table failed CI once); a run of a profile outside the study, or into another runs
    folder, or that ran nothing, says nothing."""
    ran = {"train/x": "ran"}
    monkeypatch.setattr(pipeline, "run_plan", lambda plan, **kw: dict(ran))
    log = []
    pipeline.run_profile("study-mnist", log=log.append)
    notes = [line for line in log if line.startswith("[note]")]
    assert len(notes) == 1 and "--profile study --only claims" in notes[0] and "make study-sync" in notes[0]
    for profile, kw in (("quick", {}), ("study-mnist", {"runs_dir": tmp_path / "elsewhere"})):
        log.clear()
        pipeline.run_profile(profile, log=log.append, **kw)
        assert not [line for line in log if line.startswith("[note]")], (profile, kw)
    ran["train/x"] = "skipped"
    log.clear()
    pipeline.run_profile("study-mnist", log=log.append)
    assert not [line for line in log if line.startswith("[note]")]


def test_table_and_figure_steps_have_the_same_hash_in_a_clone_elsewhere(tmp_path):
    """The tables/figures steps take the profile file as a parameter; it was absolute, so a fresh clone in another
    directory found those committed steps stale. A profile inside the checkout is passed relative to its root."""
    from ot_robust.study.pipeline import build_plan

    src = PROFILE_DIR / "study-mnist.yaml"
    hashes = []
    for where in ("a", "b/deeper"):
        root = tmp_path / where
        (root / "profiles").mkdir(parents=True)
        shutil.copy(src, root / "profiles" / src.name)
        plan = build_plan(load_profile(root / "profiles" / src.name), root=root)
        pipeline.compute_hashes(plan)
        got = {s.name: s for s in plan.steps if s.name.startswith(("tables/", "figures/"))}
        assert got and {s.params["profile_file"] for s in got.values()} == {"profiles/study-mnist.yaml"}
        hashes.append({n: s.hash for n, s in got.items()})
    assert hashes[0] == hashes[1]
    outside = build_plan(load_profile(src), root=tmp_path / "a")  # a profile outside the root keeps its path
    assert {s.params["profile_file"] for s in outside.steps if "profile_file" in s.params} == {str(src)}
