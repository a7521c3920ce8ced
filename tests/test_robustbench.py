"""The RobustBench-style adapter: checkpoints in RobustBench's shapes load weights-only, the first-n convention is
the dataset's own order, and benchmark() gives fra31's AutoAttack result on those images (checked per example
against fra31's driver with the same batch size)."""

import json

import pytest
import torch

from ot_robust.attacks import AutoAttack
from ot_robust.core.data import dataset_targets, load_mnist_sample
from ot_robust.evaluation.robustbench import benchmark, cli, first_n, load_checkpoint

from _models import MLP, one_thread, trained_model


@pytest.fixture(scope="module")
def model():
    with one_thread():
        yield trained_model()


def test_load_checkpoint_dataparallel_nesting(tmp_path, model):
    path = tmp_path / "rb.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}, "epoch": 3}, path)
    fresh = load_checkpoint(MLP(), path)
    x = torch.rand(4, 1, 28, 28)
    assert not fresh.training and torch.equal(fresh(x), model(x))
    torch.save({"wrong": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt does not fit MLP"):
        load_checkpoint(MLP(), tmp_path / "bad.pt")
    (tmp_path / "evil.pt").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    with pytest.raises(ValueError, match="cannot be read as weights"):
        load_checkpoint(MLP(), tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_first_n_is_dataset_order():
    ds = load_mnist_sample("test")
    x, y = first_n(ds, 25)
    assert torch.equal(y, torch.as_tensor(dataset_targets(ds))[:25]) and x.shape == (25, 1, 28, 28)
    with pytest.raises(ValueError, match="n_examples=0"):
        first_n(ds, 0)


def test_benchmark_equals_fra31_on_the_first_n(model):
    import pyautoattack

    with one_thread():
        aa = AutoAttack(eps=0.05, apgd_steps=2, fab_steps=6, n_targets=3, queries=60, seed=0)  # test budgets
        res = benchmark(model, n_examples=30, dataset="mnist-sample", eps=0.05, batch_size=8, sanity=False,
                        autoattack=aa)
        x, y = first_n(load_mnist_sample("test"), 30)
        ref = pyautoattack.AutoAttack(model, eps=0.05, norm="Linf", version="standard", seed=0, device="cpu")
        ref.verbose = False
        c = dict(aa.components(model, 10, x.device))  # fra31's own objects with the same budgets
        ref.apgd, ref.apgd_targeted, ref.fab, ref.square = c["apgd-ce"], c["apgd-t"], c["fab-t"], c["square"]
        with torch.random.fork_rng():
            _, y_adv = ref.run_standard_evaluation(x, y, batch_size=8)
    assert res["masks"]["autoattack"] == (y_adv == y).tolist()
    assert res["robust_accuracy"] == pytest.approx(100 * (y_adv == y).float().mean().item())
    assert 0 < res["robust_accuracy"] < res["clean_accuracy"]
    assert res["n"] == 30 and res["ci"]["robust"][0] <= res["robust_accuracy"] <= res["ci"]["robust"][1]
    assert res["data_note"] is None and res["protocol"]["batch_size"] == 8


def test_cli_and_bad_input(tmp_path, model, capsys):
    ck = tmp_path / "m.pt"
    torch.save(model.state_dict(), ck)
    out = tmp_path / "r.json"
    with one_thread():
        assert cli(["--model", "_models:MLP", "--checkpoint", str(ck), "--dataset", "mnist-sample", "--eps", "0.3",
                    "--n", "12", "--batch-size", "6", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n"] == 12 and res["robust_accuracy"] < res["clean_accuracy"]
    assert "clean accuracy" in capsys.readouterr().out
    assert {s["check"] for s in res["sanity"]} >= {"deterministic_forward", "nonzero_gradients"}
    with pytest.raises(ValueError, match="threat_model='L1'"):
        benchmark(model, 10, "mnist-sample", "L1", eps=0.1)
    with pytest.raises(ValueError, match="eps is required"):
        benchmark(model, 10, "mnist-sample")
