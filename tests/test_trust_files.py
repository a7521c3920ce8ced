"""Issue 16: no code runs from a model file or checkpoint, corruption is caught, the checkpoint write is crash-safe
at every instant, and metrics.jsonl holds each epoch once after a resume."""
import json
import os
import warnings

import pytest
import torch

from ot_robust.training.api import Trainer, load_model, train
from ot_robust.training import checkpoint as ck
from ot_robust.training.checkpoint import load_latest, save_checkpoint

CFG = dict(dataset="mnist-sample", model="small_cnn", method="standard", num_train=80, batch_size=40, epochs=2,
           eval_n=20, eval_steps=1, progress=False, deterministic=True, seed=1)


class _Payload:
    """Unpickling this creates the marker file: the stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    r = tmp_path_factory.mktemp("trust") / "run"
    train(CFG, r)
    return r


def _plant(path, marker):
    torch.save({"spec": _Payload(marker), "state_dict": {}, "epoch": _Payload(marker)}, path)


@pytest.mark.parametrize("sidecar", ["rewritten", "deleted"])
def test_malicious_model_pt_does_not_run(run, tmp_path, sidecar):
    import hashlib
    import shutil

    r = tmp_path / "run"
    shutil.copytree(run, r)
    marker = tmp_path / "pwned"
    _plant(r / "model.pt", marker)
    side = r / "model.pt.sha256"
    if sidecar == "rewritten":
        side.write_text(hashlib.sha256((r / "model.pt").read_bytes()).hexdigest() + "\n")
    else:
        side.unlink()
    with pytest.raises(ValueError, match="model.pt cannot be loaded as weights"):
        load_model(r)
    assert not marker.exists()


@pytest.mark.parametrize("sidecar", ["rewritten", "deleted"])
def test_malicious_checkpoint_does_not_run(tmp_path, sidecar):
    import hashlib

    marker = tmp_path / "pwned"
    _plant(tmp_path / "checkpoint.pt", marker)
    side = tmp_path / "checkpoint.pt.sha256"
    if sidecar == "rewritten":
        side.write_text(hashlib.sha256((tmp_path / "checkpoint.pt").read_bytes()).hexdigest() + "\n")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert load_latest(tmp_path) == (None, None)
    assert not marker.exists()
    why = "cannot be loaded as weights" if sidecar == "rewritten" else "cannot be verified"
    assert any(why in str(x.message) for x in w)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9, -1])
def test_model_pt_byte_flip_and_truncation_detected(run, tmp_path, where):
    import shutil

    r = tmp_path / "run"
    shutil.copytree(run, r)
    data = bytearray((r / "model.pt").read_bytes())
    i = int(len(data) * where) if where > 0 else len(data) - 1
    data[i] ^= 0x01
    (r / "model.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its SHA-256"):
        load_model(r)
    (r / "model.pt").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ValueError, match="model.pt"):
        load_model(r)


def test_checkpoint_byte_flip_and_truncation_detected(tmp_path):
    save_checkpoint(tmp_path, {"epoch": 1, "w": torch.ones(3)})
    save_checkpoint(tmp_path, {"epoch": 2, "w": torch.ones(3)})
    p = tmp_path / "checkpoint.pt"
    good = p.read_bytes()
    for i in (0, len(good) // 3, len(good) - 70, len(good) - 1):
        data = bytearray(good)
        data[i] ^= 0x40
        p.write_bytes(bytes(data))
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            state, path = load_latest(tmp_path)
        assert path.name == "checkpoint.prev.pt" and state["epoch"] == 1, i
    for n in (10, len(good) // 2, len(good) - 1):
        p.write_bytes(good[:n])
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            assert load_latest(tmp_path)[0]["epoch"] == 1


def test_checkpoint_write_is_crash_safe_at_every_instant(tmp_path, monkeypatch):
    """Simulate a kill at each point of save_checkpoint: after the rotation rename, during the temporary write
    (partial temp file), and before the final rename. A valid checkpoint always remains."""
    save_checkpoint(tmp_path, {"epoch": 1})
    save_checkpoint(tmp_path, {"epoch": 2})

    class Kill(BaseException):
        pass

    real_replace = os.replace
    for point in ("after_rotate", "during_write", "before_final_rename"):
        calls = {"n": 0}

        def fake_replace(a, b, point=point, calls=calls):
            calls["n"] += 1
            if point == "after_rotate" and calls["n"] == 2:
                raise Kill
            if point == "before_final_rename" and str(b).endswith("checkpoint.pt") and calls["n"] == 2:
                raise Kill
            return real_replace(a, b)

        def fake_write(path, data, point=point):
            if point == "during_write":
                tmp = path.with_name("." + path.name + ".x.tmp")
                tmp.write_bytes(data[: len(data) // 2])
                raise Kill
            return real_write(path, data)

        real_write = ck.atomic_write_bytes
        monkeypatch.setattr(ck.os, "replace", fake_replace)
        monkeypatch.setattr(ck, "atomic_write_bytes", fake_write if point == "during_write" else real_write)
        with pytest.raises(Kill):
            save_checkpoint(tmp_path, {"epoch": 3})
        monkeypatch.setattr(ck.os, "replace", real_replace)
        monkeypatch.setattr(ck, "atomic_write_bytes", real_write)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state, path = load_latest(tmp_path)
        assert state is not None and state["epoch"] >= 2, point
        save_checkpoint(tmp_path, {"epoch": 2})  # back to a known state for the next point


class Killed(Exception):
    pass


def test_metrics_have_each_epoch_once_after_kill_before_first_checkpoint(tmp_path, monkeypatch):
    """Killed after epoch 1's metrics line and before its checkpoint: the resumed run must not list epoch 1 twice."""
    r = tmp_path / "run"

    def boom(run_dir, state):
        raise Killed

    monkeypatch.setattr("ot_robust.training.trainer.save_checkpoint", boom)
    with pytest.raises(Killed):
        train(CFG, r)
    assert len((r / "metrics.jsonl").read_text().splitlines()) == 1
    monkeypatch.undo()
    train(CFG, r)
    epochs = [json.loads(x)["epoch"] for x in (r / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_model_pt_has_sidecar_and_loads(run):
    import hashlib

    assert (run / "model.pt.sha256").read_text().strip() == hashlib.sha256((run / "model.pt").read_bytes()).hexdigest()
    m = load_model(run)
    assert not m.training
    assert Trainer is not None


def test_older_checkpoint_with_sidecar_keeps_it_as_previous(tmp_path):
    """A run started by an older version (sidecar, no trailer) resumed by this one: after the next save the old
    file is a verifiable checkpoint.prev.pt."""
    import hashlib
    import io

    buf = io.BytesIO()
    torch.save({"epoch": 1}, buf)
    (tmp_path / "checkpoint.pt").write_bytes(buf.getvalue())
    (tmp_path / "checkpoint.pt.sha256").write_text(hashlib.sha256(buf.getvalue()).hexdigest() + "\n")
    assert load_latest(tmp_path)[0]["epoch"] == 1
    save_checkpoint(tmp_path, {"epoch": 2})
    assert not (tmp_path / "checkpoint.pt.sha256").exists()
    assert ck._read_valid(tmp_path / "checkpoint.prev.pt")["epoch"] == 1
    assert load_latest(tmp_path)[0]["epoch"] == 2


def test_checkpoint_of_an_older_version_with_numpy_rng_keys_loads(tmp_path):
    """Older versions stored the NumPy RNG keys as an ndarray: such a checkpoint still loads weights-only (and
    resumes the NumPy stream), while any other global stays refused (the malicious tests above)."""
    import numpy as np

    from ot_robust.training.checkpoint import rng_state, set_rng_state

    np.random.seed(3)
    st = rng_state()
    kind, keys, pos, has_gauss, gauss = st["numpy"]
    st["numpy"] = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss)  # the older layout
    expected = np.random.rand(3)
    save_checkpoint(tmp_path, {"epoch": 4, "rng": [st]})
    state, _ = load_latest(tmp_path)
    assert state["epoch"] == 4 and isinstance(state["rng"][0]["numpy"][1], np.ndarray)
    np.random.seed(0)
    set_rng_state(state["rng"][0])
    assert np.array_equal(np.random.rand(3), expected)


def test_sealed_checkpoint_outranks_a_stale_sidecar(tmp_path):
    """A sealed checkpoint verifies itself; a .sha256 sidecar left beside it by an older checkpoint of the same name
    (as in clones of early study commits) is reported stale, not read as corruption."""
    save_checkpoint(tmp_path, {"epoch": 6})
    (tmp_path / "checkpoint.pt.sha256").write_text("0" * 64 + "\n")
    with pytest.warns(UserWarning, match="stale"):
        assert load_latest(tmp_path)[0]["epoch"] == 6
    blob = bytearray((tmp_path / "checkpoint.pt").read_bytes())
    blob[100] ^= 0xFF  # a damaged sealed file is still refused, whatever the sidecar says
    (tmp_path / "checkpoint.pt").write_bytes(bytes(blob))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_latest(tmp_path) == (None, None)
