"""Trainer: run directory contents, load_model, presets, subsets, CLI, and bad configurations failing at start."""
import json

import pytest
import torch
import yaml

from ot_robust.core.data import as_tensors, get_dataset
from ot_robust.presets import PRESETS, get_preset
from ot_robust.training.api import TrainConfig, cli, load_model, subset_indices, train

TINY = dict(dataset="mnist-sample", model="small_cnn", num_train=300, batch_size=50, eval_n=40, eval_steps=2,
            progress=False, deterministic=True, optimizer="adam", lr=3e-3)


def test_run_directory_and_load_model(tmp_path):
    path = train(dict(TINY, method="standard", epochs=2, schedule="multistep", milestones=[1], gamma=0.1),
                 tmp_path / "run")
    run = tmp_path / "run"
    assert path == run / "model.pt"
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    for key in ("train_loss", "train_acc", "eval_clean_acc", "eval_pgd2_acc", "time_s", "images_per_s", "lr"):
        assert all(key in r for r in lines), key
    assert lines[0]["lr"] == pytest.approx(3e-3) and lines[1]["lr"] == pytest.approx(3e-4)   # multistep decay
    assert lines[0]["train_images"] == 300
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["config"]["method"] == "standard" and cfg["dataset"] == {
        "name": "mnist-sample", "exact": True, "note": cfg["dataset"]["note"]}
    assert "torch" in cfg["provenance"]["versions"] and "git_commit" in cfg["provenance"]
    assert (run / "checkpoint.pt").exists() and (run / "checkpoint.prev.pt").exists()
    model = load_model(run)
    assert not model.training
    blob = torch.load(run / "model.pt", weights_only=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, blob["state_dict"][k])
    x, y = as_tensors(get_dataset("mnist-sample", "test"), 40)
    acc = float((model(x).argmax(1) == y).float().mean() * 100)
    assert acc == pytest.approx(lines[-1]["eval_clean_acc"])
    # a finished run returns at once without training again
    before = (run / "metrics.jsonl").read_text()
    train(dict(TINY, method="standard", epochs=2, schedule="multistep", milestones=[1], gamma=0.1), run)
    assert (run / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize("changes,match", [
    (dict(method="nope"), "unknown defense"),
    (dict(model="resnet9000"), "unknown model"),
    (dict(dataset="imagenet"), "unknown dataset"),
    (dict(method="pgd_at", method_params=dict(eps=-0.1)), "eps"),
    (dict(method="pgd_at", method_params=dict(step_size=0)), "step_size"),
    (dict(method="feature_scattering", method_params=dict(steps=0)), "steps"),
    (dict(method="feature_scattering", method_params=dict(label_smoothing=1.0)), "label_smoothing"),
    (dict(method="feature_scattering", batch_size=1), "batch_size >= 2"),
    (dict(optimizer="rmsprop"), "optimizer"),
    (dict(schedule="linear"), "schedule"),
    (dict(milestones=[5, 3]), "milestones"),
    (dict(lr=0), "lr"),
    (dict(eval_eps=-1), "eval_eps"),
    (dict(method="otjr", amp=True, method_params=dict(jr_gradient="finite_difference")), "amp"),
    (dict(method="awp_otjr", amp=True, method_params=dict(inner_params=dict(jr_gradient="finite_difference"))),
     "amp"),
])
def test_bad_config_fails_before_training(tmp_path, changes, match):
    with pytest.raises(ValueError, match=match):
        train(dict(TINY, **changes), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.pt").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()


def test_unknown_config_key():
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_presets_are_the_paper_settings():
    cfg = TrainConfig.from_dict({"preset": "fs-cifar10-wrn28-10", "method_params": {"label_smoothing": 0.3}})
    assert (cfg.model, cfg.batch_size, cfg.lr, cfg.epochs, cfg.milestones, cfg.momentum, cfg.weight_decay) == (
        "wrn28_10", 60, 0.1, 200, [60, 90], 0.9, 2e-4)
    assert cfg.method_params == dict(eps=8 / 255, steps=1, label_smoothing=0.3, reg=0.01,
                                     perturbation="feature_scattering", matching="ot", solver="sinkhorn")
    madry = TrainConfig.from_dict({"preset": "madry-cifar10-wrn28-10"})
    assert (madry.epochs, madry.method_params["steps"], madry.method_params["step_size"]) == (100, 7, 2 / 255)
    assert TrainConfig.from_dict({"preset": "fs-svhn-wrn28-10"}).lr == 0.01
    assert {"fs-cifar100-wrn28-10", "madry-svhn-wrn28-10"} <= set(PRESETS)
    for name in PRESETS:
        TrainConfig.from_dict({"preset": name}).validate()
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig.from_dict({"preset": "fs-imagenet"})


def test_one_preset_lookup_for_all_three_papers():
    """The constructor, from_dict and the CLI take every paper's presets; given fields win over the preset's."""
    c = TrainConfig(preset="otjr-cifar10-wrn34-10", epochs=3)  # README example; the fields left default: preset's
    assert (c.method, c.model, c.dataset, c.epochs, c.lr, c.milestones) == ("otjr", "wrn34_10", "cifar10", 3, 0.1,
                                                                          [75, 90])
    assert c.method_params["lambda_sw"] == 64.0 and c.preset == "otjr-cifar10-wrn34-10"
    assert TrainConfig.from_dict({"preset": "otjr-cifar10-wrn34-10", "epochs": 1}).epochs == 1  # even = default
    g = TrainConfig.from_dict({"preset": "got-trades-lm-mnist-cw_cnn"})
    assert (g.method, g.model, g.optimizer, g.lr, g.method_params["warmup_steps"]) == (
        "got_trades_lm", "cw_cnn", "adam", 1e-3, 60000 // 128)
    assert {p.split("-")[0] for p in PRESETS} >= {"fs", "madry", "got", "otjr", "sw", "sat"}
    assert get_preset("fs-cifar10-wrn28-10") is not get_preset("fs-cifar10-wrn28-10")  # copies
    with pytest.raises(ValueError, match="unknown preset 'nope'; valid names"):
        TrainConfig(preset="nope")


def test_stratified_subset_is_balanced():
    targets = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    idx = subset_indices(targets, 30, "stratified", 0)
    assert torch.bincount(targets[idx]).tolist() == [10, 10, 10]
    assert idx.tolist() == sorted(idx.tolist()) and idx[:1].tolist() == [0]
    r = subset_indices(targets, 30, "random", 1)
    assert len(set(r.tolist())) == 30 and torch.equal(r, subset_indices(targets, 30, "random", 1))


def test_cli_with_yaml_and_overrides(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(dict(TINY, method="feature_scattering", method_params={"eps": 0.1})))
    rc = cli(["train", "--config", str(cfg), "--run-dir", str(tmp_path / "run"), "--set", "method_params.eps=8/255",
              "--set", "schedule=cosine", "--set", "num_train=100"])
    assert rc == 0 and str(tmp_path / "run" / "model.pt") in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert saved["method_params"]["eps"] == "8/255" and saved["schedule"] == "cosine" and saved["num_train"] == 100
    rec = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert rec["train_images"] == 100 and "train_ot_distance_start" in rec


def test_backward_fills_only_the_given_parameters_with_the_full_gradients():
    from ot_robust.training.api import backward

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    x = torch.randn(5, 4, requires_grad=True)  # e.g. a defense's clean inputs for an input-gradient penalty
    (g_full,) = torch.autograd.grad(net(x).pow(2).sum(), [net[0].weight])
    backward(net(x).pow(2).sum(), net.parameters())
    assert torch.allclose(net[0].weight.grad, g_full)
    assert x.grad is None  # not computed
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="requires grad"):
        backward(frozen(torch.randn(1, 2)).sum() + x.sum(), frozen.parameters())


def test_amp_on_cpu_trains_in_bfloat16(tmp_path):
    """issue 15: amp=True is bfloat16 autocast on the CPU (it used to be silently ignored there)."""
    import json

    from ot_robust.training.api import train

    cfg = dict(dataset="mnist-sample", model="small_cnn", method="pgd_at", num_train=40, batch_size=20, epochs=1,
               eval_n=10, eval_steps=1, progress=False, amp=True,
               method_params=dict(eps=0.1, step_size=0.05, steps=1))
    train(cfg, tmp_path / "run")
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    assert conf["amp_active"] and conf["amp_dtype"] == "bfloat16"
    rec = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["train_loss"] == rec["train_loss"] and 0 < rec["train_loss"] < 10  # finite, sane


@pytest.mark.parametrize("method", ["pgd_at", "feature_scattering"])
def test_channels_last_trains_the_same_model(tmp_path, method):
    """issue 15: channels_last changes the memory layout only: the same losses and weights up to float round-off,
    through a defense's attack and loss; and a checkpoint older than the field resumes (missing = default)."""
    # FS with the clipped start: from the official unclipped start, background pixels (x = 0) take a first step whose
    # sign is that of a near-zero gradient, decided by round-off, which a different layout changes
    params = dict(eps=0.1, step_size=0.05, steps=2) if method == "pgd_at" else dict(eps=0.1, steps=1,
                                                                                    clip_start=True)
    cfg = dict(TINY, method=method, epochs=1, num_train=100, method_params=params)
    train(cfg, tmp_path / "a")
    train(dict(cfg, channels_last=True), tmp_path / "b")
    la, lb = (json.loads((tmp_path / r / "metrics.jsonl").read_text().splitlines()[0])["train_loss"] for r in "ab")
    assert la == pytest.approx(lb, rel=1e-3)
    ma, mb = (load_model(tmp_path / r) for r in "ab")
    # a model comes back in the layout it was trained in (so evaluation runs the NHWC kernels too), unless told
    conv = lambda m: next(p for p in m.parameters() if p.dim() == 4 and p.shape[1] > 1)  # noqa: E731 (C > 1: else both)
    assert conv(mb).is_contiguous(memory_format=torch.channels_last) and not conv(mb).is_contiguous()
    assert conv(ma).is_contiguous()
    assert conv(load_model(tmp_path / "b", channels_last=False)).is_contiguous()
    assert conv(load_model(tmp_path / "a", channels_last=True)).is_contiguous(memory_format=torch.channels_last)
    wa, wb = ma.state_dict(), mb.state_dict()
    # Adam turns round-off in near-zero gradients into parts of an lr-sized step (3e-3 here): bound well below it
    assert max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa) < 1e-3


def test_checkpoint_from_before_a_config_field_resumes(tmp_path):
    from ot_robust.training.checkpoint import load_latest
    from ot_robust.training.api import Trainer

    cfg = TrainConfig.from_dict(dict(TINY, method="standard", epochs=1, num_train=100))
    t = Trainer(cfg, tmp_path / "run")
    t.fit()
    state, _ = load_latest(tmp_path / "run")
    assert "channels_last" in state["config"]
    del state["config"]["channels_last"]  # as written before the field existed
    from ot_robust.training.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "run", state)
    again = Trainer(TrainConfig.from_dict(dict(TINY, method="standard", epochs=2, num_train=100)), tmp_path / "run")
    assert again.resume() == 1
    with pytest.raises(ValueError, match="different configuration"):
        Trainer(TrainConfig.from_dict(dict(TINY, method="standard", epochs=2, num_train=100, channels_last=True)),
                tmp_path / "run").resume()


def test_training_streams_epoch_lines_when_asked_and_never_reads_the_pipeline_switch(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("OT_ROBUST_PROGRESS", "1")  # the pipeline's switch: only its tasks read it, not train()
    train(dict(TINY, method="standard", epochs=1), tmp_path / "quiet")
    assert "[train/quiet]" not in capfd.readouterr().err
    monkeypatch.delenv("OT_ROBUST_PROGRESS")
    train(dict(TINY, method="standard", epochs=2), tmp_path / "run", progress_lines=True)  # what run_train passes
    err = capfd.readouterr().err
    assert "[train/run] epoch 1/2 done in" in err and "[train/run] epoch 2/2 done in" in err
    assert "held-out clean" in err and "pgd2" in err


def test_presets_command_lists_every_preset(capsys):
    from ot_robust.__main__ import main

    assert main(["presets"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(PRESETS) and any(ln.startswith("got-trades-lm-mnist-cw_cnn ") for ln in out)


def test_validate_builds_the_defense_once_per_configuration():
    import dataclasses

    from ot_robust.training.config import TrainConfig

    cfg = TrainConfig.from_dict(dict(method="pgd_at", method_params={"eps": 0.3}, dataset="mnist-sample",
                                     model="cw_cnn"))
    first = cfg.validate()
    assert cfg.validate() is first  # the task validates, then the Trainer: one defense
    cfg.method_params = {"eps": 0.2}
    rebuilt = cfg.validate()
    assert rebuilt is not first and rebuilt.eps == 0.2
    assert "_validated" not in dataclasses.asdict(cfg)
