"""Issue 16: bad input through the API and the command line gets a clear error naming the value and what is
allowed; the CLI answers in one line `error: ...` with exit 2 and no traceback."""
import math
import shutil
import subprocess
import sys

import pytest
import torch

from ot_robust.attacks import PGD, make_attack
from ot_robust.defenses import get_defense
from ot_robust.evaluation.suite import evaluate
from ot_robust.evaluation.sanity import run_sanity
from ot_robust.core.stats import mcnemar, wilson_interval

from _models import MLP, mnist_test

X, Y = mnist_test(8)


def _nan():
    x = X.clone()
    x[0, 0, 0, 0] = float("nan")
    return x


def _inf():
    x = X.clone()
    x[1, 0, 3, 3] = float("inf")
    return x


API = [
    ("pgd eps 8 (0-255 scale)", lambda: make_attack("pgd-linf eps=8 steps=10"), "did you mean 8/255"),
    ("fgsm eps 8", lambda: make_attack("fgsm eps=8"), "did you mean 8/255"),
    ("autoattack eps 8", lambda: make_attack("autoattack eps=8"), "did you mean 8/255"),
    ("cw eps 16", lambda: make_attack("cw-linf eps=16 steps=10"), "did you mean 16/255"),
    ("mim eps 8", lambda: make_attack("mim eps=8 steps=10"), "above 1"),
    ("pgd eps 1e9", lambda: make_attack("pgd-linf eps=1e9"), "eps=1000000000.0 is above 1"),
    ("l2 eps 1e9", lambda: make_attack("pgd-l2 eps=1e9"), "exceeds 1000"),
    ("negative eps", lambda: make_attack("pgd-linf eps=-0.1"), "eps=-0.1"),
    ("nan eps", lambda: make_attack("pgd-linf eps=nan"), "eps=nan"),
    ("zero steps", lambda: make_attack("pgd-linf eps=0.03 steps=0"), "steps=0"),
    ("single step above eps", lambda: PGD(0.03, 1, 0.1, random_start=False), "exceeds the budget eps=0.03"),
    ("infinite step", lambda: PGD(0.03, 10, float("inf")), "step_size=inf"),
    ("unknown attack", lambda: make_attack("nonsense eps=0.1"), "nonsense"),
    ("NaN pixels", lambda: PGD(0.1, 2)(MLP(), _nan(), Y), "NaN/Inf"),
    ("Inf pixels", lambda: PGD(0.1, 2)(MLP(), _inf(), Y), "NaN/Inf"),
    ("pixels above 1", lambda: PGD(0.1, 2)(MLP(), X * 255, Y), r"\[0, 1\]"),
    ("integer images", lambda: PGD(0.1, 2)(MLP(), (X * 255).long(), Y), "floating"),
    ("label out of range", lambda: PGD(0.1, 2)(MLP(), X, torch.full((8,), 11)), "label 11 but the model has 10"),
    ("negative label", lambda: PGD(0.1, 2)(MLP(), X, torch.full((8,), -1)), "label -1"),
    ("x/y length mismatch", lambda: PGD(0.1, 2)(MLP(), X, Y[:5]), r"shape \(8,\)"),
    ("float labels", lambda: PGD(0.1, 2)(MLP(), X, Y.float()), "integer class indices"),
    ("evaluate x/y mismatch", lambda: evaluate(MLP(), (X, Y[:5]), ["fgsm eps=0.1"], sanity=False,
                                               progress=False), "8 images but y has 5"),
    ("evaluate NaN pixels", lambda: evaluate(MLP(), (_nan(), Y), ["fgsm eps=0.1"], sanity=False,
                                             progress=False), "NaN/Inf"),
    ("evaluate labels out of range", lambda: evaluate(MLP(), (X, Y + 20), ["fgsm eps=0.1"], sanity=False,
                                                      progress=False), "label"),
    ("evaluate n 0", lambda: evaluate(MLP(), (X, Y), ["fgsm eps=0.1"], n_examples=0), "n_examples=0"),
    ("evaluate batch 0", lambda: evaluate(MLP(), (X, Y), ["fgsm eps=0.1"], batch_size=0), "batch_size=0"),
    ("evaluate eps 8", lambda: evaluate(MLP(), (X, Y), ["pgd-linf eps=8"]), "did you mean 8/255"),
    ("defense eps 8", lambda: get_defense("pgd_at", eps=8, step_size=2 / 255, steps=10), "did you mean 8/255"),
    ("defense eps 1e9", lambda: get_defense("trades", eps=1e9), "above 1"),
    ("FS eps 8", lambda: get_defense("feature_scattering", eps=8), "did you mean 8/255"),
    ("defense negative step", lambda: get_defense("pgd_at", eps=0.03, step_size=-1, steps=10), "step_size=-1"),
    ("defense zero steps", lambda: get_defense("pgd_at", eps=0.03, step_size=0.01, steps=0), "steps=0"),
    ("unknown defense", lambda: get_defense("nope"), "nope"),
    ("sanity eps 0", lambda: run_sanity(MLP(), X, Y, eps=0.0), "eps"),
    ("sanity eps nan", lambda: run_sanity(MLP(), X, Y, eps=math.nan), "eps"),
    ("sanity norm", lambda: run_sanity(MLP(), X, Y, eps=0.1, norm="l3"), "l3"),
    ("unknown dataset", lambda: __import__("ot_robust.core.data", fromlist=["x"]).get_dataset("nope"), "nope"),
    ("Sinkhorn NaN cost", lambda: __import__("ot_robust.ot", fromlist=["x"]).sinkhorn(torch.full((3, 3), math.nan)),
     "finite|NaN"),
    ("Wilson k > n", lambda: wilson_interval(5, 3), "k=5"),
    ("McNemar different images", lambda: mcnemar([True, False], [True]), "same length"),
    ("budget without unit", lambda: __import__("ot_robust.study.pipeline", fromlist=["x"]).parse_budget("5"),
     "--budget"),
    ("train eps 8", lambda: __import__("ot_robust.training.api", fromlist=["x"]).TrainConfig(
        method="pgd_at", method_params={"eps": 8, "step_size": 0.01, "steps": 2}).validate(), "did you mean 8/255"),
    ("train epochs 0", lambda: __import__("ot_robust.training.api", fromlist=["x"]).TrainConfig(epochs=0).validate(),
     "epochs=0"),
]


@pytest.mark.parametrize("case,call,message", API, ids=[c[0] for c in API])
def test_api_bad_input_names_the_value(case, call, message):
    with pytest.raises(ValueError, match=message):
        call()


CLI = [
    (["evaluate", "--run", "RUN", "--attacks", " ; "], "names no attack"),
    (["evaluate", "--run", "RUN", "--attacks", "pgd-linf eps=8 steps=10"], "did you mean 8/255"),
    (["evaluate", "--run", "RUN", "--attacks", "fgsm eps=0.1", "--n", "0"], "--n 0"),
    (["evaluate", "--run", "/nonexistent/run", "--attacks", "fgsm eps=0.1"], "/nonexistent/run"),
    (["train", "--run-dir", "OUT", "--set", "method=pgd_at", "--set", "method_params.eps=8"], "did you mean 8/255"),
    (["train", "--run-dir", "OUT", "--set", "epochs=0"], "epochs=0"),
    (["train", "--run-dir", "OUT", "--set", "nonsense=1"], "nonsense"),
    (["reproduce", "--profile", "nope"], "unknown profile 'nope'"),
    (["reproduce", "--profile", "smoke", "--budget", "5"], "--budget '5'"),
    (["reproduce", "--profile", "smoke", "--jobs", "0"], "jobs"),
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    import json

    d = tmp_path_factory.mktemp("run")
    (d / "config.json").write_text(json.dumps({"config": {"dataset": "mnist-sample"}}))
    return d


@pytest.mark.parametrize("argv,message", CLI, ids=[" ".join(a[:2]) + f" {i}" for i, (a, _) in enumerate(CLI)])
def test_cli_bad_input_one_line_exit_2(argv, message, run_dir, tmp_path, capsys):
    from ot_robust.__main__ import main

    argv = [str(run_dir) if a == "RUN" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert "Traceback" not in err[0]


def test_evaluate_run_never_replaces_an_earlier_evaluation_silently(run_dir, tmp_path, capsys):
    """Issue 36: `evaluate --run RUN` without --out refuses to replace RUN/eval.json (a zoo run's committed
    evaluation, say), before any model is loaded; the file is left as it was."""
    from ot_robust.__main__ import main

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "eval.json").write_text("{}")
    assert main(["evaluate", "--run", str(run), "--attacks", "fgsm eps=0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--overwrite" in err[0], err
    assert (run / "eval.json").read_text() == "{}"


def test_cli_bad_input_in_a_real_process_has_no_traceback_unless_debug(run_dir):
    cmd = [sys.executable, "-m", "ot_robust", "evaluate", "--run", str(run_dir), "--attacks", "fgsm eps=8"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: ") and "Traceback" not in r.stderr
    r = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_without_torchattacks_the_package_imports_and_library_attacks_say_what_to_install(monkeypatch):
    """issue 17: `pip install .` does not install torchattacks (its requests pin); the package must still import and
    evaluate with its own attacks, and a library attack must name the install command."""
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import torchattacks -> ImportError
    rep = evaluate(MLP(), (X, Y), ["pgd-linf eps=0.1 steps=2"], sanity=False, progress=False)
    assert rep.table.iloc[1]["n"] == 8
    with pytest.raises(ImportError, match="pip install --no-deps torchattacks==3.5.1"):
        make_attack("apgd-ce eps=0.1")(MLP(), X, Y)


@pytest.mark.parametrize("name,params", [("pgd_at", dict(eps=0.1, step_size=0.05, steps=1)),
                                         ("feature_scattering", dict(eps=0.1)), ("trades", dict(eps=0.1))])
def test_defense_losses_check_their_inputs(name, params):
    d = get_defense(name, **params)
    m = MLP()
    with pytest.raises(ValueError, match="NaN/Inf"):
        d.loss(m, _nan(), Y)
    with pytest.raises(ValueError, match="label 10 but the model has 10 classes"):
        d.loss(m, X, torch.full((8,), 10))
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        d.loss(m, X, Y[:3])
    assert d.loss(m, X, Y).loss.dim() == 0
