"""Resumable evaluation (ot_robust.evaluation.batch_cache): a killed evaluate() called again reuses its finished attack
batches and gives the same numbers as an uninterrupted run; a different model, attack, seed or image set never reuses
them."""

from dataclasses import dataclass

import pytest
import torch

from ot_robust.attacks import AttackProtocol, make_attack
from ot_robust.evaluation.batch_cache import BatchCache, clear, model_digest, tensor_digest
from ot_robust.evaluation.suite import evaluate

from _models import mnist_test, one_thread, trained_model

CALLS: list[int] = []
FAIL_AT: list[int] = []  # raise on this call number (1-based), once


class Killed(Exception):
    pass


@dataclass
class CountingPGD(AttackProtocol):
    """PGD-5 that records its calls and can be 'killed' at a chosen call (a stand-in for a process kill); the
    attack protocol's ``with_default_seed`` lets evaluate seed each batch."""

    eps: float = 0.1
    norm: str = "linf"
    seed: int | None = None

    def __call__(self, model, x, y):
        CALLS.append(len(x))
        if FAIL_AT and len(CALLS) == FAIL_AT[0]:
            FAIL_AT.clear()
            raise Killed
        torch.manual_seed(self.seed)
        return make_attack("pgd-linf eps=0.1 steps=5 step=0.025 random_start=true")(model, x, y)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture()
def data():
    CALLS.clear()
    FAIL_AT.clear()
    x, y = mnist_test(200)
    return x[:40], y[:40]


def _eval(model, data, cache_dir, attacks=None):
    return evaluate(model, data, attacks or [CountingPGD(), "fgsm eps=0.1"], n_examples=40, seed=3, batch_size=10,
                    sanity=False, progress=False, cache_dir=cache_dir)


def test_killed_evaluation_resumes_with_the_same_numbers(data, tmp_path):
    model = trained_model()
    whole = _eval(model, data, None)
    assert len(CALLS) == 4  # 4 batches of 10
    CALLS.clear()
    FAIL_AT.append(3)  # killed during the third batch
    with pytest.raises(Killed):
        _eval(model, data, tmp_path / "partial")
    assert len(list((tmp_path / "partial").glob("*.json"))) == 2  # the two finished batches, nothing half-written
    CALLS.clear()
    resumed = _eval(model, data, tmp_path / "partial")
    assert len(CALLS) == 2  # only batches 3 and 4 ran again
    assert resumed.robust == whole.robust
    assert list(resumed.table.accuracy) == list(whole.table.accuracy)
    CALLS.clear()
    again = _eval(model, data, tmp_path / "partial")  # everything cached now: no attack runs at all
    assert CALLS == [] and again.robust == whole.robust
    assert float(again.table.time_s[1]) == pytest.approx(float(resumed.table.time_s[1]), abs=1e-2)
    clear(tmp_path / "partial")
    assert not (tmp_path / "partial").exists()


def test_budget_stops_after_a_batch_and_the_rerun_goes_on(data, tmp_path):
    """--budget inside an evaluation: should_stop() after the second batch raises BudgetReached with both batches
    kept; the rerun attacks only the rest and gives the uninterrupted numbers."""
    from ot_robust.training.budget import BudgetReached

    model = trained_model()
    whole = _eval(model, data, None)
    CALLS.clear()
    with pytest.raises(BudgetReached, match="rerun to continue"):
        evaluate(model, data, [CountingPGD()], n_examples=40, seed=3, batch_size=10, sanity=False, progress=False,
                 cache_dir=tmp_path, should_stop=lambda: len(CALLS) >= 2)
    assert len(CALLS) == 2 and len(list(tmp_path.glob("*.json"))) == 2
    CALLS.clear()
    resumed = _eval(model, data, tmp_path)
    assert len(CALLS) == 2  # only the last two PGD batches ran again
    assert resumed.robust == whole.robust


def test_a_different_model_seed_or_image_set_does_not_reuse_outcomes(data, tmp_path):
    model = trained_model()
    _eval(model, data, tmp_path)
    CALLS.clear()
    evaluate(model, data, [CountingPGD()], n_examples=40, seed=4, batch_size=10, sanity=False, progress=False,
             cache_dir=tmp_path)
    assert len(CALLS) == 4  # another seed: another per-batch seed in the key
    CALLS.clear()
    x, y = data
    evaluate(model, (x.flip(0), y.flip(0)), [CountingPGD()], n_examples=40, seed=3, batch_size=10, sanity=False,
             progress=False, cache_dir=tmp_path)
    assert len(CALLS) == 4  # other images in every batch
    CALLS.clear()
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    _eval(model, data, tmp_path)
    assert len(CALLS) == 4  # changed weights


def test_digests_see_values_dtypes_and_shapes():
    a = torch.arange(6.0)
    assert tensor_digest(a) == tensor_digest(a.clone())
    assert tensor_digest(a) != tensor_digest(a.reshape(2, 3))
    assert tensor_digest(a) != tensor_digest(a.double())
    assert tensor_digest(a) != tensor_digest(a + 1e-7)
    m = torch.nn.Linear(3, 2)
    d = model_digest(m)
    with torch.no_grad():
        m.bias[0] += 1
    assert model_digest(m) != d
    c = BatchCache("unused", m)
    assert c.key("a", a, a) != c.key("b", a, a)
