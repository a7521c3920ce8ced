"""scripts/gpu_run.py (issue 34, item 3): its CPU smoke run writes every file with the expected keys, and a second
run continues the first (epochs go on, decoded data read from the cache). The GPU run itself needs a GPU."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
METHODS = ("feature_scattering", "pgd_at")


def _load_script():
    if "gpu_run" in sys.modules:
        return sys.modules["gpu_run"]
    spec = importlib.util.spec_from_file_location("gpu_run", REPO / "scripts" / "gpu_run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_run"] = mod  # pickle and dataclasses look classes up by module name
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def gpu_run():
    return _load_script()


@pytest.fixture(scope="module")
def smoke(gpu_run, tmp_path_factory, data_root):
    """Two smoke runs into one tmp folder: the first with --save-weights, the second continuing it."""
    out = tmp_path_factory.mktemp("gpu-smoke")
    args = ["--smoke", "--out", str(out), "--data-root", str(data_root)]
    assert gpu_run.main(args + ["--save-weights"]) == 0
    first = {"provenance": json.loads((out / "provenance.json").read_text()),
             "metrics": {m: (out / m / "metrics.jsonl").read_text() for m in METHODS}}
    assert gpu_run.main(args) == 0
    return out, first


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def test_smoke_writes_every_file_with_its_keys(smoke, data_root):
    from ot_robust.core.data import class_round_robin, get_dataset
    from ot_robust.evaluation.results import load_masks
    from ot_robust.models.loading import load_model

    out, _ = smoke
    test_targets = get_dataset("cifar10-jpeg", "test", root=data_root).targets
    for m in METHODS:
        d = out / m
        for name in ("eval.json", "masks.npz", "metrics.jsonl", "checkpoint.pt", "config.json", "model.pt"):
            assert (d / name).is_file(), f"{d / name} missing"
        ev = json.loads((d / "eval.json").read_text())
        for key in ("accuracy", "n", "ci", "autoattack", "autoattack_spec", "autoattack_status", "worst",
                    "worst_case", "sanity", "report", "autoattack_report", "provenance", "epochs", "n_examples",
                    "dataset", "method", "masks", "order", "attacks", "smoke_note"):
            assert key in ev, f"eval.json of {m} lacks {key!r}"
        assert ev["method"] == m and ev["dataset"] == "cifar10-jpeg" and ev["n_examples"] == 64
        assert set(ev["accuracy"]) == {"clean", "pgd20"} and ev["autoattack_status"] == "done"
        assert ev["n"] == {"clean": 64, "pgd20": 64, "autoattack": 64}
        assert 0 <= ev["autoattack"] <= ev["accuracy"]["clean"] and ev["epochs"] == 2
        masks, indices = load_masks(d / "masks.npz")
        assert set(masks) == {"clean", "pgd20", "autoattack"} and all(len(v) == 64 for v in masks.values())
        # the pipeline's class-balanced order of the test set (steps.run_evaluate, order="balanced")
        assert indices.tolist() == class_round_robin(test_targets)[:64].tolist()
        assert 100.0 * masks["pgd20"].mean() == pytest.approx(ev["accuracy"]["pgd20"])
        rows = _jsonl(d / "metrics.jsonl")
        for key in ("epoch", "loss", "heldout_clean_acc", "heldout_pgd_acc", "images_per_s", "seconds", "lr_start",
                    "cycle"):
            assert all(key in r for r in rows), f"metrics.jsonl of {m} lacks {key!r}"
        assert all(np.isfinite(r["loss"]) for r in rows)
        model = load_model(d)  # --save-weights writes the package's model format
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    prov = json.loads((out / "provenance.json").read_text())
    for key in ("gpu", "torch", "cuda", "git_commit", "command", "dataset", "budget", "methods", "wall_times_s",
                "smoke", "official_fs_timing", "history", "evaluation"):
        assert key in prov, f"provenance.json lacks {key!r}"
    assert prov["dataset"]["note"] == "CIFAR-10 JPEG copy: lossy" and prov["dataset"]["exact"] is False
    assert prov["evaluation"]["autoattack"].startswith("apgd-ce")  # the smoke run says what replaced AutoAttack
    assert any("AutoAttack replaced" in c for c in prov["smoke"]["changes"])
    assert prov["official_fs_timing"]["skipped"].startswith("official FS timing skipped")
    for m in METHODS:
        assert prov["methods"][m]["epochs_reached"] == 2
        assert set(prov["wall_times_s"]) >= {"data", "train", "evaluate", "total"}


def test_second_smoke_run_continues_the_first(smoke):
    out, first = smoke
    prov = json.loads((out / "provenance.json").read_text())
    assert first["provenance"]["dataset"]["from_cache"] is False
    assert prov["dataset"]["from_cache"] is True  # decoded once, read back
    assert len(prov["history"]) == 1 and prov["history"][0]["epochs_reached"] == {m: 1 for m in METHODS}
    for m in METHODS:
        rows = _jsonl(out / m / "metrics.jsonl")
        assert [r["epoch"] for r in rows] == [1, 2]
        assert (out / m / "metrics.jsonl").read_text().startswith(first["metrics"][m])  # epoch 1 kept as it was
        info = prov["methods"][m]
        assert info["resumed_from_epoch"] == 1 and info["epochs_this_run"] == 1
        assert [c["start_epoch"] for c in info["cycles"]] == [0, 1]  # a finished cycle -> a new one (warm restart)


def test_smoke_evaluation_images_are_the_package_decoding(smoke, gpu_run, data_root):
    """The cached uint8 tensors equal the package's own loader (ImageFolderDataset, PIL) on those images."""
    from ot_robust.core.data import as_tensors, get_dataset

    out, _ = smoke
    data = gpu_run.load_data(Path(data_root), out / ".cache", 512, 64, 32)
    assert data["info"]["from_cache"]
    x, y = as_tensors(get_dataset("cifar10-jpeg", "test", root=data_root), indices=data["eval_idx"][:16].tolist())
    assert torch.equal((x * 255).round().to(torch.uint8), data["eval_x"][:16]) and torch.equal(y, data["eval_y"][:16])
    assert not set(data["eval_idx"].tolist()) & set(data["held_idx"].tolist())


def test_augment_batch_is_a_padded_crop_and_flip(gpu_run):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 32, 32), dtype=torch.uint8)
    out = gpu_run.augment_batch(x, g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    flips = 0
    for b in range(len(x)):
        found = [(i, j, f) for i in range(9) for j in range(9) for f in (0, 1)
                 if torch.equal(out[b], (padded[b, :, i:i + 32, j:j + 32].flip(-1) if f else
                                         padded[b, :, i:i + 32, j:j + 32]))]
        assert found, f"image {b} is not a crop (+ flip) of its padded input"
        flips += found[0][2]
    assert 10 < flips < 54  # about half flipped


def test_autocast_forward_and_schedule(gpu_run):
    from ot_robust.models import get_model

    torch.manual_seed(0)
    model = get_model("preact_resnet18", "cifar10-jpeg").eval().to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    net = gpu_run.AutocastForward(model, "cpu", torch.bfloat16)
    with torch.no_grad():
        logits, feats = net(x, return_features=True)
        ref = model(x)
    assert logits.dtype == feats.dtype == torch.float32 and net.num_classes == 10
    assert torch.allclose(logits, ref, atol=0.1 * float(ref.abs().max()) + 1e-3)
    lrs = [gpu_run.lr_at(s, 10, 0.2) for s in range(10)]
    assert lrs == sorted(lrs[:5]) + sorted(lrs[5:], reverse=True) and max(lrs) <= 0.2 and min(lrs) > 0


def test_official_fs_absent_is_one_line_skip(gpu_run, tmp_path):
    cls, why = gpu_run.load_official_fs(None)
    assert cls is None and "--official-fs" in why
    cls, why = gpu_run.load_official_fs(str(tmp_path))
    assert cls is None and "attack_methods.py" in why
