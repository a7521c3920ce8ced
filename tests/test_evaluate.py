"""evaluate(): table rows and worst case, determinism for a seed, JSON with provenance, clear errors for bad specs,
curves, and the CLI (with a stand-in for the trainer's load_model)."""

import json

import pytest
import torch

from ot_robust.attacks import AttackSpec, make_attack
from ot_robust.evaluation.curves import accuracy_vs_epsilon, accuracy_vs_steps, pgd_loss_curves
from ot_robust.evaluation.suite import cli, evaluate

from _models import mnist_test, one_thread, trained_model

ATTACKS = ["fgsm eps=0.1", "pgd-linf eps=0.1 steps=5 step=0.025 restarts=2", "cw eps=0.1 steps=5"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def data():
    x, y = mnist_test(200)
    return x[:48], y[:48]


def test_table_rows_worst_case_and_determinism(data, tmp_path):
    model = trained_model()
    r1 = evaluate(model, data, ATTACKS, n_examples=40, seed=1, batch_size=16, sanity=False, progress=False)
    r2 = evaluate(model, data, ATTACKS, n_examples=40, seed=1, batch_size=16, sanity=False, progress=False)
    t = r1.table
    assert list(t.attack) == ["clean", "fgsm", "pgd-linf", "pgd-linf (min over 2 runs)", "cw-linf",
                              "worst case (all attacks)"]
    assert (t.n == 40).all() and set(["attack", "spec", "accuracy", "n"]) <= set(t.columns)
    acc = dict(zip(t.attack, t.accuracy))
    assert acc["worst case (all attacks)"] == r1.worst_case <= min(acc["fgsm"], acc["pgd-linf"], acc["cw-linf"])
    assert acc["pgd-linf"] <= acc["pgd-linf (min over 2 runs)"] < acc["clean"]
    cols = ["attack", "accuracy", "max_min"]
    assert r1.table[cols].equals(r2.table[cols]) and r1.robust == r2.robust
    r1.to_json(tmp_path / "eval.json")
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["worst_case"] == r1.worst_case and "git_commit" in saved["provenance"]
    assert saved["meta"]["seed"] == 1 and len(saved["table"]) == 6


def test_evaluate_runs_sanity_with_table_checks(data):
    from ot_robust.evaluation.sanity import SanityConfig

    cfg = SanityConfig(n=30, steps=5, square_queries=50, loss_examples=5, loss_starts=2)
    rep = evaluate(trained_model(), data, ["fgsm eps=0.1", "pgd eps=0.1 steps=5"], n_examples=30,
                   progress=False, sanity_config=cfg)
    checks = {s["check"] for s in rep.sanity}
    assert {"table_iterative_vs_single_step", "nonzero_gradients", "unbounded_pgd"} <= checks
    assert rep.flags == [s for s in rep.sanity if s["status"] == "flag"]


@pytest.mark.parametrize("spec,match", [
    ("nosuch eps=0.1", "unknown attack"), ("pgd eps=0.1 foo=3", "unknown key 'foo'"),
    ("pgd eps=-0.1", "eps"), ("pgd eps=0.1 steps=1 step=0.2 rs=false", "exceeds the budget"),
    ("pgd eps=abc", "bad value for 'eps'"), ("pgd steps=10", "eps"), ("pgd eps=0.1 steps=0", "steps"),
    ("pgd eps=0.1 norm=l2", "unknown key 'norm'"), ("pgd eps=0.1 targeted=maybe", "targeted"),
    ("transfer eps=0.1", "source"), ("pgd eps=0.1 steps", "key=value"), ("", "non-empty"),
    ("square eps=0.1 queries=0", "queries"), ("simba eps=0.1 basis=fft", "basis"),
])
def test_bad_specs_raise_clear_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        make_attack(spec)


def test_spec_parsing_builds_the_right_attack():
    a = make_attack("pgd-linf eps=8/255 steps=20 step=2/255 restarts=5")
    assert (a.eps, a.steps, a.step_size, a.restarts, a.norm) == (8 / 255, 20, 2 / 255, 5, "linf")
    aa = make_attack("aa eps=8/255")
    assert (aa.apgd_steps, aa.fab_steps, aa.n_targets, aa.queries) == (100, 100, 9, 5000)  # reference settings


def test_a_parsed_spec_is_checked_once_and_stands_for_its_string(data):
    s = AttackSpec.parse("pgd eps=0.1 steps=5 step=0.025")
    assert (s.name, str(s), s.norm, s.family) == ("pgd-linf", "pgd eps=0.1 steps=5 step=0.025", "linf", "white-box")
    assert (s.value("eps"), s.value("steps"), s.value("restarts", 1)) == (0.1, 5, 1)
    assert AttackSpec.parse(s) is s and AttackSpec.parse("pgd-l2 eps=0.5").norm == "l2"
    with pytest.raises(ValueError, match="takes no key 'queries'"):
        s.value("queries")
    with pytest.raises(ValueError, match="unknown key 'foo'"):  # a bad key is refused when parsed, not when built
        AttackSpec.parse("pgd eps=0.1 foo=3")
    t = AttackSpec.parse("transfer source=/no/such/run via=pgd-l2 eps=0.5 steps=3")
    assert (t.family, t.norm, t.value("eps")) == ("transfer", "l2", 0.5)  # the source model is not loaded
    specs = ["fgsm eps=0.1", "pgd eps=0.1 steps=5 step=0.025"]
    kw = dict(n_examples=24, seed=3, batch_size=12, sanity=False, progress=False)
    r1 = evaluate(trained_model(), data, specs, **kw)
    r2 = evaluate(trained_model(), data, [AttackSpec.parse(p) for p in specs], **kw)
    assert r1.table[["attack", "spec", "accuracy"]].equals(r2.table[["attack", "spec", "accuracy"]])


def test_inputs_outside_unit_range_raise(data):
    x, y = data
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate(trained_model(), (x * 255, y), ["fgsm eps=0.1"], n_examples=8, sanity=False, progress=False)


def test_curves(data):
    model = trained_model()
    x, y = data[0][:24], data[1][:24]
    ve = accuracy_vs_epsilon(model, x, y, [0.0, 0.05, 0.2], steps=5)
    assert list(ve.columns) == ["epsilon", "accuracy"] and ve.accuracy.is_monotonic_decreasing
    vs = accuracy_vs_steps(model, x, y, 0.1, [1, 5], step_size=0.025)
    assert vs.accuracy.iloc[1] <= vs.accuracy.iloc[0] + 100 / 24
    lc = pgd_loss_curves(model, x[:8], y[:8], n_starts=4, steps=5, eps=0.1)
    assert lc.shape == (4 * 6, 3) and set(lc.start) == set(range(4))
    first, last = lc[lc.iteration == 0].loss.mean(), lc[lc.iteration == 5].loss.mean()
    assert last > first


def test_cli_evaluates_a_trained_run_with_the_dataset_from_its_config(tmp_path, capsys):
    from ot_robust.training.api import train

    run = tmp_path / "run"
    train(dict(dataset="mnist-sample", model="small_cnn", method="standard", epochs=1, num_train=200,
               batch_size=50, eval_n=20, eval_steps=1, progress=False), run)
    out = tmp_path / "eval.json"
    assert cli(["--run", str(run), "--attacks", "fgsm eps=0.1; pgd eps=0.1 steps=3", "--n", "16",
                "--out", str(out), "--no-sanity", "--no-progress"]) == 0  # no --dataset: read from config.json
    rep = json.loads(out.read_text())
    assert [r["attack"] for r in rep["table"]] == ["clean", "fgsm", "pgd-linf", "worst case (all attacks)"]
    assert "worst case" in capsys.readouterr().out


def test_evaluate_your_own_model_from_the_command_line(tmp_path, monkeypatch, capsys):
    """issue 17: `evaluate --model pkg.module:factory --checkpoint file --dataset ...` on any [0, 1]-input model."""
    import json

    import torch

    from ot_robust.__main__ import main

    (tmp_path / "my_models.py").write_text(
        "from torch import nn\n\ndef tiny():\n    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_models

    torch.manual_seed(0)
    torch.save(my_models.tiny().state_dict(), tmp_path / "w.pt")
    out = tmp_path / "eval.json"
    rc = main(["evaluate", "--model", "my_models:tiny", "--checkpoint", str(tmp_path / "w.pt"), "--dataset",
               "mnist-sample", "--attacks", "fgsm eps=0.1", "--n", "20", "--no-sanity", "--no-progress",
               "--out", str(out)])
    assert rc == 0 and json.loads(out.read_text())["table"][0]["n"] == 20
    assert main(["evaluate", "--model", "my_models:nope", "--dataset", "mnist-sample", "--attacks",
                 "fgsm eps=0.1"]) == 2
    assert "my_models:nope" in capsys.readouterr().err
    assert main(["evaluate", "--model", "my_models:tiny", "--attacks", "fgsm eps=0.1"]) == 2  # no --dataset


def test_accuracy_vs_steps_one_run_equals_one_run_per_point(data):
    """issue 15: the one-run accuracy_vs_steps (fooled_at) gives what a separate k-step PGD gives for every k."""
    from ot_robust.attacks import PGD
    from ot_robust.evaluation.curves import _accuracy

    model = trained_model()
    x, y = data[0][:120], data[1][:120]
    ks = [1, 2, 5, 10]
    one = accuracy_vs_steps(model, x, y, 0.1, ks, step_size=0.02, batch_size=50, seed=3).accuracy.tolist()
    sep = [_accuracy(model, PGD(0.1, k, 0.02, seed=3), x, y, 50, None, 3) for k in ks]
    assert one == pytest.approx(sep, abs=1e-9) and one[0] > one[-1]
    with pytest.raises(ValueError, match="fooled_at needs restarts=1"):
        from ot_robust.attacks import perturb
        from ot_robust.attacks.losses import ce_loss

        perturb(model, x, y, ce_loss, 0.1, 0.02, 2, restarts=2, fooled_at=torch.zeros(len(x), dtype=torch.int64))


def test_fig3_curves_share_the_pgd20_point_and_it_is_the_same_number():
    from ot_robust.core.data import load_mnist_sample
    from ot_robust.evaluation.suite import _load_data
    from ot_robust.study.tasks import _curves

    model, test = trained_model(), load_mnist_sample("test")
    c = {"epsilons": [0.0, 0.1, 0.2], "steps": [1, 20], "eps": 0.1, "n_examples": 60}
    out = _curves(model, test, c, 0, 30)
    assert out["vs_epsilon"]["accuracy"][1] == out["vs_steps"]["accuracy"][1]  # reused, not rerun
    x, y, _, _ = _load_data(test, 60, "balanced")
    direct = accuracy_vs_epsilon(model, x, y, [0.1], steps=20, batch_size=30, seed=0).accuracy.iloc[0]
    assert direct == pytest.approx(out["vs_epsilon"]["accuracy"][1], abs=1e-9)


def test_progress_lines_after_each_batch_and_at_each_attack_end(data):
    lines = []
    evaluate(trained_model(), data, ["fgsm eps=0.1"], n_examples=40, batch_size=16, sanity=False, progress=False,
             log=lambda m, force=False: lines.append((m, force)))
    assert [m.split(": ")[1].split(",")[0] for m, _ in lines] == ["16/40 images", "32/40 images", "40/40 images"]
    assert [f for _, f in lines] == [False, False, True] and "% robust so far" in lines[-1][0]
