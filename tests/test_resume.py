"""Checkpoint/resume: a run killed after epoch k and resumed ends bit-identical to an uninterrupted one (CPU,
deterministic); a corrupted or half-written checkpoint is detected and the previous one is used."""
import json
import warnings

import pytest
import torch

from ot_robust.training.api import Trainer, train
from ot_robust.training.checkpoint import load_latest

# PGD-AT with a random start and SGD momentum: resuming must restore the RNG, optimizer and scheduler states
CFG = dict(dataset="mnist-sample", model="small_cnn", method="pgd_at",
           method_params=dict(eps=0.1, step_size=0.05, steps=2), num_train=200, batch_size=40, epochs=3, lr=0.05,
           momentum=0.9, schedule="multistep", milestones=[2], eval_n=20, eval_steps=1, progress=False,
           deterministic=True, seed=3)


def _weights(run):
    return torch.load(run / "model.pt", weights_only=True)["state_dict"]


def _same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("ref") / "run"
    train(CFG, run)
    return run


class Killed(Exception):
    pass


def _train_killed_after(run, k, monkeypatch):
    orig = Trainer.train_epoch

    def epoch(self, e):
        if e == k:
            raise Killed
        return orig(self, e)

    monkeypatch.setattr(Trainer, "train_epoch", epoch)
    with pytest.raises(Killed):
        train(CFG, run)
    monkeypatch.setattr(Trainer, "train_epoch", orig)


def test_resume_is_bit_identical(reference, tmp_path, monkeypatch):
    run = tmp_path / "run"
    _train_killed_after(run, 1, monkeypatch)          # killed during epoch 2
    assert not (run / "model.pt").exists()
    assert load_latest(run)[0]["epoch"] == 1
    train(CFG, run)
    assert _same(_weights(run), _weights(reference))
    ref_lines = [json.loads(x) for x in (reference / "metrics.jsonl").read_text().splitlines()]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in lines] == [r["train_loss"] for r in ref_lines]


@pytest.mark.parametrize("damage", ["truncate", "garbage_no_hash"])
def test_corrupted_checkpoint_falls_back_to_previous(reference, tmp_path, monkeypatch, damage):
    run = tmp_path / "run"
    _train_killed_after(run, 2, monkeypatch)          # checkpoints of epochs 1 (prev) and 2 (latest)
    ck = run / "checkpoint.pt"
    if damage == "truncate":                          # half-written file: hash mismatch
        ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    else:                                             # no sidecar hash, unreadable content: torch.load fails
        ck.write_bytes(b"not a checkpoint")
        (run / "checkpoint.pt.sha256").unlink(missing_ok=True)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        state, path = load_latest(run)
    assert path.name == "checkpoint.prev.pt" and state["epoch"] == 1
    assert any("checkpoint.pt" in str(x.message) for x in w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(CFG, run)                               # redoes epochs 2 and 3 from the previous checkpoint
    assert _same(_weights(run), _weights(reference))
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_changed_config_refuses_to_resume(reference, tmp_path, monkeypatch):
    run = tmp_path / "run"
    _train_killed_after(run, 1, monkeypatch)
    with pytest.raises(ValueError, match="different configuration"):
        train(dict(CFG, lr=0.01), run)


def test_unusable_checkpoints_are_not_trained_over(tmp_path, monkeypatch):
    """Checkpoint files that cannot be used (both damaged) stop the resume with an error naming them: a finished
    run is never retrained from scratch behind a warning."""
    from ot_robust.training.trainer import CheckpointUnusable

    run = tmp_path / "run"
    _train_killed_after(run, 2, monkeypatch)
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (run / name).write_bytes(b"not a checkpoint")
    before = (run / "metrics.jsonl").read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CheckpointUnusable, match="checkpoint.pt, checkpoint.prev.pt present"):
            train(CFG, run)
    assert (run / "metrics.jsonl").read_text() == before
