"""A run whose training diverges (non-finite loss, or a solver refusing the non-finite output of a blown-up model)
stops with TrainingDiverged and a diverged.json record instead of a model, the pipeline step finishes, and its
evaluation reports the divergence (a flagged check, no numbers) for the tables."""
import json

import pytest
import torch

from ot_robust.core.run_files import read_diverged
from ot_robust.defenses.standard import Standard
from ot_robust.reports.tables import sanity_text
from ot_robust.study import tasks
from ot_robust.training.api import train
from ot_robust.training.trainer import TrainingDiverged

CFG = dict(dataset="mnist-sample", model="small_cnn", method="standard", num_train=80, batch_size=40, epochs=3,
           eval_n=20, eval_steps=1, progress=False, deterministic=True, seed=1)


def _diverge_in_epoch_2(monkeypatch, how):
    orig, calls = Standard.loss, {"n": 0}

    def loss(self, model, x, y):
        calls["n"] += 1
        if calls["n"] <= 2:                     # epoch 1: two batches of 40
            return orig(self, model, x, y)
        if how == "nan":
            out = orig(self, model, x, y)
            out.loss = out.loss * float("nan")
            return out
        if how == "blown_up":                   # the model's output is no longer finite; a solver refuses it
            with torch.no_grad():
                next(model.parameters()).fill_(float("inf"))
        raise ValueError("cost C contains NaN or inf values")

    monkeypatch.setattr(Standard, "loss", loss)


@pytest.mark.parametrize("how", ["nan", "blown_up"])
def test_divergence_is_recorded_instead_of_a_model(tmp_path, monkeypatch, how):
    _diverge_in_epoch_2(monkeypatch, how)
    with pytest.raises(TrainingDiverged, match="epoch 2, batch 1"):
        train(CFG, tmp_path)
    rec = read_diverged(tmp_path)
    assert rec["epoch"] == 2 and rec["batch"] == 1 and rec["last_finite_epoch"] == 1
    assert ("non-finite loss" if how == "nan" else "non-finite model output") in rec["reason"]
    assert not (tmp_path / "model.pt").exists()
    assert [json.loads(x)["epoch"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1]


def test_a_value_error_of_a_finite_model_is_not_called_divergence(tmp_path, monkeypatch):
    _diverge_in_epoch_2(monkeypatch, "refused")  # the model is still finite: a genuine error, raised as it is
    with pytest.raises(ValueError, match="cost C") as info:
        train(CFG, tmp_path)
    assert not isinstance(info.value, TrainingDiverged) and read_diverged(tmp_path) is None


def test_pipeline_step_finishes_and_the_evaluation_reports_it(tmp_path, monkeypatch):
    _diverge_in_epoch_2(monkeypatch, "nan")
    run, out = tmp_path / "train", tmp_path / "eval"
    summary = tasks.run_train(profile="p", experiment="x", method="standard", method_params={},
                              dataset="mnist-sample", data_root=None, model="small_cnn", model_params={},
                              train_params={k: v for k, v in CFG.items() if k not in ("dataset", "model", "method")},
                              seed=1, max_batches=None, run_dir=run)
    assert summary["diverged"]["epoch"] == 2
    ev = tasks.run_evaluate(profile="p", experiment="x", label="X", method="standard", run_dir=run, out_dir=out,
                            dataset="mnist-sample", data_root=None, attacks={"pgd20": "pgd-linf eps=0.3 steps=2"},
                            n_examples=10)
    assert ev["accuracy"] == {} and ev["diverged"]["batch"] == 1
    assert json.loads((out / "eval.json").read_text())["diverged"] == ev["diverged"]
    assert sanity_text(ev) == "flag: training_diverged"


def test_the_pipeline_counts_diverged_json_as_the_training_steps_output(tmp_path):
    from ot_robust.study.pipeline import _present

    run = tmp_path / "runs" / "p" / "train" / "x"
    run.mkdir(parents=True)
    assert not _present(tmp_path, "runs/p/train/x/model.pt")
    (run / "diverged.json").write_text(json.dumps({"epoch": 2, "batch": 1, "reason": "r", "last_finite_epoch": 1}))
    assert _present(tmp_path, "runs/p/train/x/model.pt")
    assert not _present(tmp_path, "runs/p/eval/x/eval.json")  # only a model is stood in for
