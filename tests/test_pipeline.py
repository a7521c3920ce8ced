"""The reproduction pipeline: profile validation, plans and dry runs, hashing/skip logic on a trivial notebook, and
the `smoke` profile end to end through papermill (asserting on the JSON the notebooks wrote)."""

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from ot_robust.study import pipeline
from ot_robust.study.pipeline import DONE_FILE, Plan, PipelineError, Step, build_plan, is_done, run_plan
from ot_robust.profiles import PROFILE_DIR, ProfileError, list_profiles, load_profile, validate_profile

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- profiles
def test_shipped_profiles_are_valid():
    assert {"smoke", "quick", "ablations", "mnist", "cifar10-paper", "cifar100-paper",
            "svhn-paper"} <= set(list_profiles())
    from ot_robust.profiles import load_meta_profile

    for name in list_profiles():
        meta = load_meta_profile(name)  # a meta profile (study) includes plain ones, loaded by it
        if meta is not None:
            with pytest.raises(ProfileError, match="meta profile"):
                load_profile(name)
            continue
        p = load_profile(name)
        assert p.name == name and p.methods and p.eval["attacks"]
        for column, spec in p.eval["attacks"].items():  # every spec parsed once, when the profile is loaded
            assert p.attack_specs[column] is p.attack(column) and str(p.attack(column)) == spec


def test_a_profile_parses_its_attack_specs_once_and_names_a_missing_one():
    p = load_profile("study-fashion")
    assert p.attack("pgd20").value("eps") == 0.1 and p.attack("audit.hardlabel.rays").family == "hard-label"
    assert p.attack("audit.transfer.pgd20_undefended").norm == "linf"
    with pytest.raises(KeyError, match="no attack 'pgd7'"):
        p.attack("pgd7")
    q = load_profile("study-fashion", check_registries=False)  # parsed on first use instead
    assert not q.attack_specs and q.attack("cw20").name == "cw-linf" and list(q.attack_specs) == ["cw20"]


def _raw(**changes):
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    for path, value in changes.items():
        *parents, last = path.split(".")
        d = raw
        for k in parents:
            d = d[k]
        d[last] = value
    return raw


def test_check_keys_refuses_a_bool_wherever_the_schema_does_not_allow_one():
    from ot_robust.core.validation import check_keys

    schema = {"eps": (int, float, str), "n": int, "flag": bool, "mode": (bool, str)}
    check_keys({"eps": 0.3, "n": 2, "flag": True, "mode": False}, schema, "x")
    for key in ("eps", "n"):
        with pytest.raises(ValueError, match=rf"x\.{key} must be .*, got True"):
            check_keys({key: True}, schema, "x")
    with pytest.raises(ValueError, match=r"missing required key\(s\) \['n'\] in x"):
        check_keys({}, schema, "x", ("n",))


@pytest.mark.parametrize("changes, message", [
    ({"epochz": 1}, r"unknown key\(s\) \['epochz'\] in the profile; allowed: \["),
    ({"methods.pgd_at.parms": {}}, r"unknown key\(s\) \['parms'\] in methods.pgd_at"),
    ({"eval.n_examples": "many"}, r"eval.n_examples must be int, got 'many'"),
    ({"dataset": "cifar11"}, r"dataset 'cifar11'"),
    ({"methods.pgd_at.method": "pgd_att"}, r"methods.pgd_at.method 'pgd_att' unknown; allowed: \[.*'pgd_at'"),
    ({"defaults.epoch": 1}, r"unknown TrainConfig field\(s\) \['epoch'\] in defaults"),
    ({"eval.attacks.pgd10": "pgd-linf eps=0.1 stepz=3"}, r"eval attack 'pgd10': unknown key 'stepz'"),
    ({"eval.loss_curves.experiment": "nobody"}, r"loss_curves.experiment 'nobody' is not one of the methods"),
])
def test_profile_errors_name_the_key_and_the_allowed_values(changes, message):
    with pytest.raises(ProfileError, match=message):
        validate_profile(_raw(**changes), source="smoke.yaml")


@pytest.mark.parametrize("changes, message", [
    ({"tables": ["fs_table99"]}, r"tables entry 'fs_table99' unknown"),
    ({"figures": ["fig_nope"]}, r"figures entry 'fig_nope' unknown"),
])
def test_report_names_are_checked_by_the_reports(changes, message):
    """Table and figure names are the reports' registry (a layer above profiles): checked before a plan is built."""
    from ot_robust.reports import check_names

    prof = validate_profile(_raw(**changes), source="smoke.yaml")
    with pytest.raises(ProfileError, match=message):
        check_names(prof)
    with pytest.raises(ProfileError, match=message):
        build_plan(prof)


def test_a_profile_method_may_name_a_preset():
    """GOT's paper profiles name their presets instead of retyping App. A.3's numbers; the entry's keys win."""
    p = load_profile("got-cifar10-paper")
    m = p.methods["got_trades_lm"]
    assert m.preset == "got-trades-lm-cifar10-resnet18" and m.method == "got_trades_lm"
    assert (m.params["alpha"], m.params["warmup_steps"], m.train["milestones"]) == (6.0, 390, [75, 90])
    assert load_profile("got-svhn-paper").methods["got_pgd_s"].params["clean_weight"] == 0.5
    raw = yaml.safe_load((PROFILE_DIR / "got-cifar10-paper.yaml").read_text())
    raw["methods"]["got_pgd_s"]["params"] = {"beta": 1.0}
    raw["methods"]["got_pgd_s"]["train"] = {"epochs": 2}
    m = validate_profile(raw).methods["got_pgd_s"]
    assert (m.params["beta"], m.params["theta"], m.train["epochs"]) == (1.0, 0.1, 2)
    raw["methods"]["got_pgd_s"]["preset"] = "got-pgd-s-mnist-cw_cnn"
    with pytest.raises(ProfileError, match=r"preset 'got-pgd-s-mnist-cw_cnn' is for dataset='mnist', the profile "
                                           r"has dataset='cifar10'"):
        validate_profile(raw, source="x.yaml")
    raw["methods"]["got_pgd_s"]["preset"] = "got-nope"
    with pytest.raises(ProfileError, match=r"methods.got_pgd_s.preset: unknown preset 'got-nope'"):
        validate_profile(raw, source="x.yaml")


def test_missing_keys_and_unknown_profile():
    raw = _raw()
    del raw["methods"]
    with pytest.raises(ProfileError, match=r"missing required key\(s\) \['methods'\]"):
        validate_profile(raw)
    with pytest.raises(ProfileError, match="unknown profile 'nope'; available: .*quick"):
        load_profile("nope")
    assert isinstance(ProfileError("x"), ValueError)


# ----------------------------------------------------------------------------------------------- plans
def test_quick_plan_order_and_dry_run(capsys):
    plan = build_plan("quick", runs_dir="runs", fig_dir="figures", root=REPO)
    names = [s.name for s in plan.steps]
    pos = {n: i for i, n in enumerate(names)}
    for s in plan.steps:  # dependency order
        assert all(pos[d] < pos[s.name] for d in s.deps)
    assert plan["evaluate/feature_scattering"].deps == ["train/feature_scattering", "train/standard",
                                                         "train/feature_scattering_siamese"]
    assert set(plan["tables/fs"].deps) == {n for n in names if n.startswith("evaluate/")}
    assert plan["train/pgd_at"].output == "runs/quick/notebooks/10_train.pgd_at.ipynb"
    status = run_plan(plan, dry_run=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(plan.steps) and set(status.values()) == {"printed"}
    argv = shlex.split(lines[names.index("train/pgd_at")])
    assert argv[:3] == ["papermill", "notebooks/10_train.ipynb", "runs/quick/notebooks/10_train.pgd_at.ipynb"]
    params = {argv[i + 1]: argv[i + 2] for i in range(3, len(argv), 3) if argv[i] in ("-p", "-r")}
    assert params == {"profile_file": "ot_robust/profiles/quick.yaml", "step": "train/pgd_at", "max_batches": "None",
                      "profile_sha256": plan["train/pgd_at"].inputs["profile_sha256"], "runs_dir": "runs",
                      "fig_dir": "figures"}
    resolved = plan["train/pgd_at"].params  # what the notebook resolves from the profile (and the hash covers)
    assert resolved["method"] == "pgd_at" and json.loads(resolved["method_params"])["steps"] == 3
    assert resolved["max_batches"] is None and resolved["run_dir"] == "runs/quick/train/pgd_at"
    assert plan["evaluate/feature_scattering"].params["label"] == "Proposed"


PAPER_PROFILES = ("cifar10-paper", "cifar100-paper", "svhn-paper", "got-cifar10-paper", "got-cifar100-paper",
                  "got-svhn-paper", "otjr-cifar10-paper")


@pytest.mark.parametrize("prof", PAPER_PROFILES)
def test_every_training_step_of_a_paper_profile_validates_as_its_one_batch_check_would(prof):
    """What the one-batch check (`--max-batches 1`) builds before its first batch, for every training step of the
    GPU profiles: the TrainConfig with its defense (built with the step's parameters) and model name, so that a
    misspelt parameter fails here and not hours into a GPU allocation."""
    from ot_robust.study.tasks import train_config

    plan = build_plan(prof, runs_dir="runs", fig_dir="figures", root=REPO, max_batches=1)
    trains = [s for s in plan.steps if s.name.startswith("train/")]
    assert trains
    for s in trains:
        v = s.values
        cfg = train_config(method=v["method"], method_params=v["method_params"], dataset=v["dataset"],
                           data_root=v["data_root"], model=v["model"], model_params=v["model_params"], seed=v["seed"],
                           train_params=v["train_params"], max_batches=1)
        assert cfg.epochs == 1 and cfg.num_train == cfg.batch_size, s.name


def test_paper_profiles_dry_run_and_one_batch_commands(capsys):
    from ot_robust.__main__ import main

    for prof in ("cifar10-paper", "cifar100-paper", "svhn-paper", "mnist", "got-cifar10-paper", "got-cifar100-paper",
                 "got-svhn-paper", "otjr-cifar10-paper"):
        assert main(["reproduce", "--profile", prof, "--dry-run", "--only", "train/*", "--max-batches", "1"]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines and all(line.startswith("papermill notebooks/10_train.ipynb") for line in lines)
        assert all("-p max_batches 1" in line for line in lines)
    assert main(["reproduce", "--profile", "nope", "--dry-run"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
    out = subprocess.run([sys.executable, "-m", "ot_robust", "reproduce", "--profile", "cifar10-paper", "--dry-run"],
                         cwd=REPO, capture_output=True, text=True)  # the real entry point
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].startswith("papermill notebooks/40_figures_fs.ipynb")


def test_papermill_reads_every_parameter_of_every_numbered_notebook():
    """(Generators up to date: tests/test_notebooks.py.)"""
    for p in (REPO / "notebooks").glob("[0-9]*.ipynb"):
        nb = nbformat.read(p, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, p
        # papermill can read every parameter (a line with two '=' is skipped: "Passed unknown parameter", issue 17)
        from papermill.translators import PythonTranslator

        names = {q.name for q in PythonTranslator.inspect({"source": tagged[0].source})}
        assigned = {ln.split("=")[0].strip() for ln in tagged[0].source.splitlines()
                    if "=" in ln and not ln.lstrip().startswith("#")}
        assert names == assigned, (p.name, sorted(assigned - names))


def test_evaluate_default_attacks_follow_the_dataset():
    from ot_robust.attacks import make_attack
    from ot_robust.study.tasks import default_attacks

    for ds, eps in (("mnist-sample", 0.3), ("fashion-mnist", 0.1), ("cifar10", 8 / 255)):
        atk = {k: make_attack(v) for k, v in default_attacks(ds).items()}
        assert set(atk) == {"fgsm", "pgd20"} and atk["pgd20"].eps == eps and atk["pgd20"].steps == 20


# ----------------------------------------------------------------------------------------------- hashing, skipping
def _fake_notebook(path: Path, body: str) -> None:
    nb = new_notebook(cells=[new_code_cell("x = 1\nout = 'out.txt'", metadata={"tags": ["parameters"]}, id="p"),
                             new_code_cell(body, id="body")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _fake_plan(root: Path, x_a=1, body_b="open(out, 'w').write(str(x))") -> Plan:
    (root / "nb").mkdir(exist_ok=True)
    _fake_notebook(root / "nb" / "a.ipynb", "open(out, 'w').write(str(x))")
    _fake_notebook(root / "nb" / "b.ipynb", body_b)
    steps = [Step("a", "nb/a.ipynb", "runs/nb/a.ipynb", {"x": x_a, "out": "runs/a/out.txt"}, "runs/a",
                  ["runs/a/out.txt"]),
             Step("b", "nb/b.ipynb", "runs/nb/b.ipynb", {"x": 2, "out": "runs/b/out.txt"}, "runs/b",
                  ["runs/b/out.txt"], ["a"])]
    plan = Plan(load_profile("smoke"), steps, root, "runs", "figs")
    pipeline.compute_hashes(plan)
    return plan


def test_hash_skip_force_only_and_failure(tmp_path):
    plan = _fake_plan(tmp_path)
    assert run_plan(plan, log=lambda s: None) == {"a": "ran", "b": "ran"}
    assert (tmp_path / "runs/b/out.txt").read_text() == "2" and (tmp_path / "runs/nb/b.ipynb").is_file()
    done = json.loads((tmp_path / "runs/a" / DONE_FILE).read_text())
    assert done["hash"] == plan["a"].hash and done["params"] == {"x": 1, "out": "runs/a/out.txt"}
    assert run_plan(plan, log=lambda s: None) == {"a": "skipped", "b": "skipped"}

    changed = _fake_plan(tmp_path, x_a=5)  # a's parameter changes a's hash and, through it, b's
    assert changed["a"].hash != plan["a"].hash and changed["b"].hash != plan["b"].hash
    assert not is_done(changed["a"], tmp_path) and not is_done(changed["b"], tmp_path)
    edited = _fake_plan(tmp_path, body_b="open(out, 'w').write(str(x * 10))")  # notebook content is hashed too
    assert edited["a"].hash == plan["a"].hash and edited["b"].hash != plan["b"].hash
    plan = _fake_plan(tmp_path)
    (tmp_path / "runs/b/out.txt").unlink()  # a missing output means "not done" even with a matching hash
    assert is_done(plan["a"], tmp_path) and not is_done(plan["b"], tmp_path)
    with pytest.raises(PipelineError, match=r"step b needs \['a'\]"):  # --only on a stale upstream
        run_plan(changed, only="b", log=lambda s: None)

    # --force --only b reruns b alone; b fails in its second cell: the error names the notebook and the cell,
    # and a's .done.json stays.
    failing = _fake_plan(tmp_path, body_b="raise RuntimeError('boom in b')")
    with pytest.raises(PipelineError) as ei:
        run_plan(failing, force=True, only="b", jobs=2, log=lambda s: None)
    msg = str(ei.value)
    assert "step b failed in cell 2 of the executed notebook" in msg  # index 1 + papermill's injected cell
    assert "RuntimeError: boom in b" in msg
    assert str(tmp_path / "runs/nb/b.ipynb") in msg and "raise RuntimeError('boom in b')" in msg
    assert ei.value.notebook == str(tmp_path / "runs/nb/b.ipynb") and ei.value.cell["ename"] == "RuntimeError"
    assert is_done(failing["a"], tmp_path)
    with pytest.raises(ValueError, match="matches no step"):
        run_plan(failing, only="zzz*", log=lambda s: None)


def test_steps_stream_progress_lines_to_the_pipeline_console(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("OT_ROBUST_PROGRESS", raising=False)
    body = ("from ot_robust.core.utils import ProgressLog\nfrom ot_robust.study.signals import progress_requested\n"
            "log = ProgressLog('[step a]', on=progress_requested())\nlog('batch 1', force=True)\n"
            "log('batch 2')\nopen(out, 'w').write(str(x))")  # the second line is throttled (< 60 s later)
    (tmp_path / "nb").mkdir()
    _fake_notebook(tmp_path / "nb" / "a.ipynb", body)
    plan = Plan(load_profile("smoke"), [Step("a", "nb/a.ipynb", "runs/nb/a.ipynb", {"x": 1, "out": "runs/a/o.txt"},
                                             "runs/a", ["runs/a/o.txt"])], tmp_path, "runs", "figs")
    pipeline.compute_hashes(plan)
    assert run_plan(plan, log=lambda s: None) == {"a": "ran"}
    err = capfd.readouterr().err
    assert "[step a] batch 1 (" in err and "batch 2" not in err
    assert "OT_ROBUST_PROGRESS" not in __import__("os").environ  # restored after the run
    from ot_robust.core.utils import ProgressLog

    ProgressLog("[outside]")("silent", force=True)  # outside the pipeline: no output
    assert "[outside]" not in capfd.readouterr().err


# ----------------------------------------------------------------------------------------------- smoke, end to end
@pytest.mark.slow
def test_smoke_profile_end_to_end(tmp_path):
    """Every smoke notebook through papermill; then assert on the JSON they wrote; a rerun skips everything."""
    plan = build_plan("smoke", runs_dir=tmp_path / "runs", fig_dir=tmp_path / "figures", root=REPO)
    status = run_plan(plan, jobs=2, log=lambda s: None)
    assert set(status.values()) == {"ran"}
    runs = tmp_path / "runs" / "smoke"
    ev = {e: json.loads((runs / "eval" / e / "eval.json").read_text())
          for e in ("standard", "pgd_at", "feature_scattering")}
    std, pgd = ev["standard"]["accuracy"], ev["pgd_at"]["accuracy"]
    assert std["clean"] > 50 and std["pgd10"] < std["clean"] - 25  # the standard model collapses under PGD
    assert pgd["pgd10"] > std["pgd10"] + 10  # PGD-AT holds up far better
    for e in ev.values():
        acc = e["accuracy"]
        assert acc["pgd10"] <= acc["fgsm"] + 5 and acc["pgd10"] <= acc["clean"]
        assert e["worst_case"] <= min(v for v in acc.values() if v is not None) + 1e-6
        assert e["sanity"] and {c["status"] for c in e["sanity"]} <= {"pass", "flag"}
    assert not list(runs.glob("eval/*/partial"))  # the resume cache is removed once eval.json is written
    curves = json.loads((runs / "eval/standard/curves.json").read_text())
    assert (curves["vs_epsilon"]["x"][0] == 0.0
            and curves["vs_epsilon"]["accuracy"][0] > curves["vs_epsilon"]["accuracy"][-1])
    loss = json.loads((runs / "eval/feature_scattering/loss_curves.json").read_text())["loss"]
    assert len(loss) == 5 and all(len(r) >= 10 for r in loss)
    t1 = (tmp_path / "figures/smoke/tables/fs_table1.md").read_text()
    assert "| Madry | paper |" in t1 and "| Madry | ours (smoke) |" in t1
    for name in ("fs_fig3_accuracy_vs_eps_steps", "fs_supp_fig1_pgd_loss_random_starts"):
        for ext in ("png", "pdf"):
            assert (tmp_path / f"figures/smoke/{name}.{ext}").stat().st_size > 1000
    assert (runs / "notebooks/20_evaluate.pgd_at.ipynb").is_file()
    for e in ("got_trades_lm", "otjr"):  # GOT and OTJR models are trained and evaluated like the others
        acc = json.loads((runs / "eval" / e / "eval.json").read_text())["accuracy"]
        assert 10 < acc["clean"] <= 100 and acc["pgd10"] <= acc["clean"]
    for table, row in (("got_table1", "GOT-TRADES-LM"), ("otjr_table2", "OTJR")):
        md = (tmp_path / f"figures/smoke/tables/{table}.md").read_text()
        assert row in md and "smoke" in md
    figs = {p.name for p in (tmp_path / "figures/smoke").glob("*.png")}
    for prefix in ("fs_supp_fig2_tsne", "fs_fig4_loss_landscape", "otjr_fig2_activation", "otjr_fig4_gradient",
                   "otjr_supp_fig9_decision_cells", "fs_fig2_toy"):  # every analysis notebook (43-47) drew its figure
        assert any(f.startswith(prefix) for f in figs), (prefix, sorted(figs))
    audit = json.loads((runs / "audit/masking/pgd_at/eval.json").read_text())  # the masking audit (21_audit)
    cols = audit["columns"]
    assert {c: v["family"] for c, v in cols.items()} == {
        "rays": "hard-label", "feature_attack": "feature-space", "pgd20x3": "white-box", "square": "score-based",
        "pgd10_undefended": "transfer"}
    assert all(v["n"] == 40 for v in cols.values()) and cols["pgd20x3"]["runs"] == 3
    assert cols["pgd20x3"]["accuracy"] <= cols["pgd20x3"]["min_run"]  # per-example worst case <= worst single run
    from ot_robust.evaluation.results import read_evaluation

    merged = read_evaluation(runs, "pgd_at")[0]  # the audit joins its evaluation (its 40 images are fewer than the
    assert merged["accuracy"]["rays"] == cols["rays"]["accuracy"]  # evaluation's 200: they stay out of its worst)
    assert merged["worst_case_n"] == 200 and "rays" not in merged["worst"]["linf_audit"]["columns"]
    assert {s["check"] for s in audit["sanity"]} == {f"weaker_family_vs_whitebox:{c}"
                                                     for c in ("rays", "square", "pgd10_undefended")}
    sweep = json.loads((runs / "audit/plateau/pgd_at/eval.json").read_text())["eps_sweep"]["plateau"]
    assert sweep["protocols"]["paper"]["step_size"] == 0.01 and sweep["protocols"]["paper"]["labels"] == "predicted"
    assert len(sweep["protocols"]["ours"]["accuracy"]) == 3
    fs_audit = json.loads((runs / "audit/masking/feature_scattering/eval.json").read_text())
    assert "pgd10_undefended" in fs_audit["columns"] and not (runs / "audit/plateau/feature_scattering").exists()
    assert not list(runs.glob("audit/*/*/partial"))
    from ot_robust.reports import draw_figures  # figures/fs need not wait for the audits: draw it again now

    drawn = draw_figures(load_profile("smoke"), runs, tmp_path / "sig", ["fs_masking_signature"])
    assert any(str(p).endswith("fs_masking_signature.csv") for p in drawn["fs_masking_signature"])
    again = run_plan(build_plan("smoke", runs_dir=tmp_path / "runs", fig_dir=tmp_path / "figures", root=REPO),
                     log=lambda s: None)
    assert set(again.values()) == {"skipped"}


def test_train_and_evaluate_steps_receive_the_profile_and_the_step_name_only(tmp_path):
    """No value crosses papermill as a string: a train/evaluate notebook gets the profile file, its sha256, the
    step's name and the plan options, and resolves the same parameters (as Python objects) from the profile."""
    from ot_robust.study.tasks import resolve_step

    plan = build_plan("quick", runs_dir="runs", fig_dir="figures", root=REPO)
    checked = 0
    for s in plan.steps:
        if not s.name.startswith(("train/", "evaluate/")):
            assert s.inputs is None and s.papermill_params == s.params
            continue
        assert set(s.inputs) == {"profile_file", "profile_sha256", "step", "runs_dir", "fig_dir", "max_batches"}
        nb = nbformat.read(REPO / s.notebook, as_version=4)
        source = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert {ln.split("=")[0].strip() for ln in source.splitlines() if "=" in ln} == set(s.inputs)
        opts = {k: v for k, v in s.inputs.items() if k not in ("profile_file", "step")}
        got = resolve_step(REPO / s.inputs["profile_file"], s.inputs["step"], **opts)
        assert got.params == s.params and got.hash == s.hash
        for key in ("method_params", "train_params", "attacks"):
            if key in got.values:
                assert isinstance(got.values[key], dict) and json.loads(s.params[key]) == got.values[key]
        checked += 1
    assert checked == 2 * len(plan.profile.methods)

    copy = tmp_path / "quick.yaml"
    copy.write_text((PROFILE_DIR / "quick.yaml").read_text())
    step = build_plan(load_profile(copy), runs_dir=str(tmp_path / "runs"), root=REPO)["train/pgd_at"]
    copy.write_text(copy.read_text().replace("epochs: 2", "epochs: 3"))
    with pytest.raises(ValueError, match="changed since this step was planned"):
        resolve_step(copy, "train/pgd_at", profile_sha256=step.inputs["profile_sha256"])
    with pytest.raises(ValueError, match="no step 'train/nobody'"):
        resolve_step(copy, "train/nobody")


def test_a_step_stopped_at_the_budget_is_recorded_in_its_status_file(tmp_path):
    """A training step that reaches the budget at an epoch end leaves ``.stopped.json`` (written by its task), which
    is how the pipeline tells a stop from a failure; the next run removes it and finishes the step."""
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    raw["methods"] = {"standard": raw["methods"]["standard"]}
    raw["defaults"].update(epochs=2, num_train=256, eval_n=32)
    raw.update(tables=[], figures=[], analysis={}, notebooks=[], audit={})
    raw["eval"].pop("loss_curves", None)
    path = tmp_path / "stoptest.yaml"
    path.write_text(yaml.safe_dump({**raw, "name": "stoptest"}))
    plan = build_plan(load_profile(path), runs_dir=str(tmp_path / "runs"), root=REPO)
    st = run_plan(plan, only="train/standard", deadline=time.time() + 1, log=lambda s: None)
    marker = REPO / plan["train/standard"].done_dir / pipeline.STOPPED_FILE
    assert st == {"train/standard": "stopped"}
    assert "after epoch 1/2" in json.loads(marker.read_text())["reason"]
    assert run_plan(plan, only="train/standard", log=lambda s: None) == {"train/standard": "ran"}
    assert not marker.exists()
