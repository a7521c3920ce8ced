"""Issue 36, "a library people can install and use": the mistakes a new user makes get one clear answer.

One answer per model (the command line evaluates the same images as ``evaluate()``, never overwrites a ``./eval.json``
it did not write, says where it wrote; ``evaluate()`` hands the model back where and as it was); one-line errors for
channel-less images, a model returning a tuple, a 3-channel model on MNIST, ``train --run-dir`` naming a file, a
model without an autograd graph; no ``unbounded_pgd`` flag from 0 of 0 images; the training adversary's step rule;
CIFAR-10 missing offline; no float noise in what the command line prints."""

import json
import re

import pytest
import torch
from torch import nn

from ot_robust.__main__ import main
from ot_robust.core.data import class_round_robin, first_n_indices, get_dataset, load_mnist_sample
from ot_robust.evaluation.suite import evaluate
from ot_robust.evaluation.sanity import SanityConfig, run_sanity

from _models import MLP, mnist_test, one_thread

X, Y = mnist_test(8)
FAST = ["--no-sanity", "--no-progress"]

USER_MODELS = '''
import torch
from torch import nn


def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


class _Tuple(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x):
        z = self.lin(x.flatten(1))
        return z, x.flatten(1)


def tuple_model():
    return _Tuple()


def rgb_cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))


class _NoGrad(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x):
        with torch.no_grad():
            return self.lin(x.flatten(1))


def no_grad_model():
    return _NoGrad()
'''


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture()
def user_models(tmp_path, monkeypatch):
    """A user's package ``um_models`` (factories for --model) on sys.path; the working folder is ``tmp_path``."""
    (tmp_path / "um_models.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import importlib
    import sys

    sys.modules.pop("um_models", None)
    return importlib.import_module("um_models")


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    for n in needles:
        assert n in err[0], (n, err[0])
    return err[0]


class _NoGraph(nn.Module):
    """The output is detached inside forward (parameters need grad, so ``requires_grad`` alone does not show it)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x):
        return self.lin(x.detach().flatten(1))


class _NoGradInside(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x):
        with torch.no_grad():
            return self.lin(x.flatten(1))


class _Tuple(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x):
        z = self.lin(x.flatten(1))
        return z, z.softmax(1)


class _AlwaysZero(nn.Module):
    """Always predicts class 0 (differentiable: the logits keep their graph to the input)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x):
        z = self.lin(x.flatten(1))
        bias = torch.zeros(10)
        bias[0] = 100.0
        return z - z.detach() + bias


def _numbers(records):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in records]


# --- 1. one answer per model ------------------------------------------------------------------------------------


def test_cli_evaluates_the_same_images_as_the_api_by_default(user_models, tmp_path):
    model = user_models.tiny()
    api = evaluate(model, "mnist-sample", ["fgsm eps=0.1"], n_examples=20, sanity=False, progress=False)
    assert main(["evaluate", "--model", "um_models:tiny", "--dataset", "mnist-sample", "--attacks", "fgsm eps=0.1",
                 "--n", "20", "--out", str(tmp_path / "cli.json"), *FAST]) == 0
    cli = json.loads((tmp_path / "cli.json").read_text())
    targets = load_mnist_sample("test").targets
    assert api.meta["order"] == cli["meta"]["order"] == "balanced"
    assert api.meta["indices"] == class_round_robin(targets)[:20].tolist()
    assert _numbers(cli["table"]) == _numbers(json.loads(api.table.to_json(orient="records")))  # the same numbers
    assert main(["evaluate", "--model", "um_models:tiny", "--dataset", "mnist-sample", "--attacks", "fgsm eps=0.1",
                 "--n", "20", "--order", "first", "--out", str(tmp_path / "first.json"), *FAST]) == 0
    first = evaluate(model, "mnist-sample", ["fgsm eps=0.1"], n_examples=20, sanity=False, progress=False,
                     order="first")
    assert first.meta["indices"] == list(first_n_indices(load_mnist_sample("test"), 20))
    assert _numbers(json.loads((tmp_path / "first.json").read_text())["table"]) == _numbers(
        json.loads(first.table.to_json(orient="records")))


def test_cli_never_overwrites_an_eval_json_it_did_not_write(user_models, tmp_path, capsys):
    argv = ["evaluate", "--model", "um_models:tiny", "--dataset", "mnist-sample", "--attacks", "fgsm eps=0.1",
            "--n", "10", *FAST]
    assert main(argv) == 0  # no ./eval.json yet: written, and the path printed
    assert f"wrote {tmp_path.resolve() / 'eval.json'}" in capsys.readouterr().out
    (tmp_path / "eval.json").write_text("precious\n")
    assert main(argv) == 2
    _one_line_error(capsys, "eval.json", "--out", "--overwrite")
    assert (tmp_path / "eval.json").read_text() == "precious\n"
    assert main(argv + ["--overwrite"]) == 0
    assert f"wrote {tmp_path.resolve() / 'eval.json'}" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval.json").read_text())["table"][0]["n"] == 10
    assert main(argv + ["--out", "other.json"]) == 0  # an explicit --out is the user's choice
    assert f"wrote {tmp_path.resolve() / 'other.json'}" in capsys.readouterr().out


class _Spy(MLP):
    """An MLP that records every device it is moved to."""

    def __init__(self):
        super().__init__()
        self.moves = []

    def to(self, *args, **kwargs):
        self.moves.append(torch.device(args[0]) if args else kwargs.get("device"))
        return super().to(*args, **kwargs)


def test_evaluate_hands_the_model_back_on_its_device_and_in_its_modes():
    model = _Spy()
    model.train()
    model.net[1].eval()  # mixed modes, as a user may leave them
    modes = [m.training for m in model.modules()]
    evaluate(model, (X, Y), ["fgsm eps=0.1"], sanity=False, progress=False, device="cpu")
    assert [m.training for m in model.modules()] == modes
    assert model.moves[-1] == torch.device("cpu") and len(model.moves) == 2  # moved to the device, then back home


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device (CUDA)")
def test_evaluate_on_cuda_leaves_a_cpu_model_on_the_cpu():
    model = MLP().train()
    evaluate(model, (X, Y), ["fgsm eps=0.1"], sanity=False, progress=False, device="cuda")
    assert {p.device.type for p in model.parameters()} == {"cpu"} and model.training


# --- 2. one-line errors -------------------------------------------------------------------------------------------


def test_images_without_a_channel_dimension_are_refused():
    with pytest.raises(ValueError, match=r"shape \(8, 28, 28\).*\(N, C, H, W\).*unsqueeze\(1\)"):
        evaluate(MLP(), (X[:, 0], Y), ["fgsm eps=0.1"], sanity=False, progress=False)


def test_a_model_returning_a_tuple_is_refused(user_models, capsys):
    with pytest.raises(ValueError, match="returned a tuple of 2 items, not a logits tensor"):
        evaluate(_Tuple(), (X, Y), ["fgsm eps=0.1"], sanity=False, progress=False)
    assert main(["evaluate", "--model", "um_models:tuple_model", "--dataset", "mnist-sample", "--attacks",
                 "fgsm eps=0.1", "--n", "10", *FAST]) == 2
    _one_line_error(capsys, "tuple", "logits")


def test_a_three_channel_model_on_mnist_names_both_shapes(user_models, capsys):
    with pytest.raises(ValueError, match=r"shape \(2, 1, 28, 28\) \(1 channel\(s\), 28x28.*expects 3 input "
                                         "channel"):
        evaluate(user_models.rgb_cnn(), (X, Y), ["fgsm eps=0.1"], sanity=False, progress=False)
    assert main(["evaluate", "--model", "um_models:rgb_cnn", "--dataset", "mnist-sample", "--attacks",
                 "fgsm eps=0.1", "--n", "10", *FAST]) == 2
    _one_line_error(capsys, "(2, 1, 28, 28)", "expects 3 input channel")


def test_train_run_dir_naming_an_existing_file_is_refused(tmp_path, capsys):
    from ot_robust.training.api import train

    f = tmp_path / "notes.txt"
    f.write_text("not a run\n")
    assert main(["train", "--run-dir", str(f), "--set", "dataset=mnist-sample", "--set", "epochs=1"]) == 2
    _one_line_error(capsys, str(f), "existing file")
    with pytest.raises(ValueError, match="existing file"):
        train(dict(dataset="mnist-sample", epochs=1), f / "run")
    assert f.read_text() == "not a run\n"


@pytest.mark.parametrize("model", [_NoGradInside(), _NoGraph()], ids=["no_grad", "detach"])
def test_a_model_without_an_autograd_graph_is_refused_up_front(model):
    with pytest.raises(ValueError, match="no autograd graph back to its input"):
        evaluate(model, (X, Y), ["pgd-linf eps=0.1 steps=2"], sanity=False, progress=False)
    # black-box attacks need no gradient: the same model is evaluated
    rep = evaluate(model, (X, Y), ["square eps=0.1 queries=5"], sanity=False, progress=False)
    assert rep.table.iloc[0]["n"] == 8


def test_a_model_without_an_autograd_graph_from_the_command_line(user_models, capsys):
    assert main(["evaluate", "--model", "um_models:no_grad_model", "--dataset", "mnist-sample", "--attacks",
                 "pgd-linf eps=0.1 steps=2", "--n", "10", *FAST]) == 2
    _one_line_error(capsys, "no autograd graph", "requires_grad is False")


# --- 3. no sanity flag from 0 of 0 images -------------------------------------------------------------------------


def test_unbounded_pgd_is_not_applicable_without_a_correct_image():
    keep = Y != 0
    x, y = X[keep], Y[keep]
    cfg = SanityConfig(n=8, steps=3, square_queries=10, loss_examples=4, loss_starts=2)
    out = {r["check"]: r for r in run_sanity(_AlwaysZero(), x, y, eps=0.1, config=cfg)}
    assert out["unbounded_pgd"]["status"] == "n/a" and "not applicable" in out["unbounded_pgd"]["details"]
    assert out["pgd_loss_plateau"]["status"] == "n/a"  # a constant model's flat loss on misclassified inputs
    rep = evaluate(_AlwaysZero(), (x, y), ["fgsm eps=0.1"], progress=False, sanity_config=cfg)
    assert not {"unbounded_pgd", "pgd_loss_plateau"} & {s["check"] for s in rep.flags}
    from ot_robust.reports.tables import sanity_text

    assert "unbounded_pgd" not in sanity_text({"sanity": rep.sanity})


# --- 4. the training adversary's step rule ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pgd_at", "random_targeted"])
def test_defense_single_step_above_eps_without_random_start_is_refused(name):
    from ot_robust.defenses import get_defense

    with pytest.raises(ValueError, match="exceeds the budget eps=0.1"):
        get_defense(name, eps=0.1, step_size=0.5, steps=1, random_start=False)
    assert get_defense(name, eps=0.1, step_size=0.5, steps=1, random_start=True).step_size == 0.5


# --- 5. CIFAR-10 missing offline; printed numbers ----------------------------------------------------------------


def test_cifar10_missing_names_the_jpeg_copy_and_the_variable(tmp_path, monkeypatch, user_models, capsys):
    with pytest.raises(FileNotFoundError) as e:
        get_dataset("cifar10", "test", root=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "CIFAR-10 originals are not in the data root" in msg and str(tmp_path) in msg
    assert "'cifar10-jpeg'" in msg and "OT_ROBUST_DATA" in msg and "You can use download=True" not in msg
    monkeypatch.setenv("OT_ROBUST_DATA", str(tmp_path))
    assert main(["evaluate", "--model", "um_models:tiny", "--dataset", "cifar10", "--attacks", "fgsm eps=0.1",
                 "--n", "10", *FAST]) == 2
    _one_line_error(capsys, "cifar10-jpeg", "OT_ROBUST_DATA")


def test_printed_accuracies_carry_no_float_noise(user_models, capsys):
    import pandas as pd

    from ot_robust.evaluation.suite import format_table

    t = pd.DataFrame([dict(attack="clean", spec="", accuracy=97.00000286102295, n=100, ci_low=91.48222, ci_high=99.2,
                           runs=1, max_min=0.0, time_s=0.123456)])
    assert "97.00 " in format_table(t) + " " and "97.0000" not in format_table(t)
    assert main(["evaluate", "--model", "um_models:tiny", "--dataset", "mnist-sample", "--attacks",
                 "pgd-linf eps=0.1 steps=2 restarts=2", "--n", "30", "--out", "e.json", *FAST]) == 0
    out = capsys.readouterr().out
    assert "worst case" in out and not re.findall(r"\d+\.\d{3,}", out), out


def test_make_lab_runs_as_root_and_passes_arguments_on():
    """``make lab`` adds JupyterLab's --allow-root when run as root (containers) and passes ARGS on."""
    import os
    import subprocess
    from pathlib import Path

    lines = subprocess.run(["make", "--no-print-directory", "-n", "lab", "ARGS=--no-browser --port 8899"],
                           capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
                           check=True).stdout.splitlines()
    out = next(line for line in lines if "jupyter lab notebooks/" in line).strip()
    assert out.endswith("--no-browser --port 8899")
    assert ("--allow-root" in out) == (os.getuid() == 0)
    # Run All must not autosave into the committed notebooks: the venv's JupyterLab default turns autosave off
    import json

    cp = next(line for line in lines if "overrides.json" in line and line.strip().startswith("cp ")).split()
    assert cp[2].endswith("share/jupyter/lab/settings/overrides.json")
    settings = json.loads((Path(__file__).resolve().parents[1] / cp[1]).read_text())
    assert settings["@jupyterlab/docmanager-extension:plugin"]["autosave"] is False


def test_saving_a_run_committed_notebook_the_way_lab_does_leaves_git_status_clean(tmp_path):
    """Issue 36: ``make lab``'s server (scripts/jupyter_server_config.py) refuses, with a one-line 403, to save a
    notebook over a committed one, through the contents manager Lab saves with, after Run All filled its outputs;
    Save As under a new name works; ``git status`` of notebooks/ stays clean."""
    import runpy
    import subprocess
    from pathlib import Path

    from jupyter_server.services.contents.filemanager import FileContentsManager
    from tornado.web import HTTPError
    from traitlets.config import Config

    root = Path(__file__).resolve().parents[1]
    lines = subprocess.run(["make", "--no-print-directory", "-n", "lab"], capture_output=True, text=True, cwd=root,
                           check=True).stdout.splitlines()
    launch = next(line for line in lines if "jupyter lab notebooks/" in line).split()
    config_file = root / launch[launch.index("--config") + 1]
    c = Config()
    runpy.run_path(str(config_file), init_globals={"c": c})
    hook = c.ContentsManager.pre_save_hook
    for nb_dir, name in ((root / "notebooks", "30_tables_fs.ipynb"), (tmp_path / "repo" / "notebooks", "x.ipynb")):
        if nb_dir.parent != root:  # a git repository of our own, for the Save As half (nothing written in ours)
            nb_dir.mkdir(parents=True)
            (nb_dir / name).write_bytes((root / "notebooks" / "30_tables_fs.ipynb").read_bytes())
            subprocess.run(["git", "init", "-q"], cwd=nb_dir.parent, check=True)
            subprocess.run(["git", "add", "."], cwd=nb_dir.parent, check=True)
            subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "nb"],
                           cwd=nb_dir.parent, check=True)
        cm = FileContentsManager(root_dir=str(nb_dir), pre_save_hook=hook)
        model = cm.get(name)
        for i, cell in enumerate(model["content"]["cells"]):  # what Run All leaves in the document
            if cell["cell_type"] == "code":
                cell["execution_count"] = 100 + i
                cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran in Lab\n"}]
        before = (nb_dir / name).read_bytes()
        with pytest.raises(HTTPError) as e:
            cm.save(model, name)
        assert e.value.status_code == 403 and "Save Notebook As" in e.value.log_message
        assert "\n" not in e.value.log_message
        assert (nb_dir / name).read_bytes() == before
        status = subprocess.run(["git", "status", "--porcelain", "--", str(nb_dir)], capture_output=True, text=True,
                                cwd=nb_dir, check=True).stdout
        assert status == "", status
    cm.save(model, "x-mine.ipynb")  # Save As: a new, untracked notebook saves normally
    assert "ran in Lab" in (nb_dir / "x-mine.ipynb").read_text()
