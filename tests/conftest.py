"""Shared test setup: the data root defaults to ../shared/data (what CI sets), tests run single-threaded-ish.

`make test` runs the suite in two pytest-xdist workers, one test file per worker at a time (``--dist loadfile``: a
module's fixtures, e.g. its trained model or the single-node SLURM, are built once). Each worker then gets its share
of the torch threads, and the files with slow tests are handed out first, so that the longest ones (the SLURM and
install tests) do not start last and leave one worker idle at the end."""

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if "OT_ROBUST_DATA" not in os.environ and (REPO.parent / "shared" / "data").is_dir():
    os.environ["OT_ROBUST_DATA"] = str(REPO.parent / "shared" / "data")

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, torch.get_num_threads()) // WORKERS))


def _file_weight(items) -> dict[str, int]:
    """Per test file: 2 if it has a SLURM test, 1 if it has a slow test, else 0 (heaviest first)."""
    weight: dict[str, int] = {}
    for item in items:
        w = 2 if item.get_closest_marker("slurm") else 1 if item.get_closest_marker("slow") else 0
        f = item.nodeid.split("::")[0]
        weight[f] = max(weight.get(f, 0), w)
    return weight


def pytest_collection_modifyitems(config, items):
    """Files with slow tests first (stable: a file's tests keep their order and stay together)."""
    weight = _file_weight(items)
    items.sort(key=lambda item: -weight[item.nodeid.split("::")[0]])


def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _seeded_module():
    """A test file's module-scoped fixtures (its trained models) start from the same random state, whichever worker
    runs the file and whatever file ran before it there."""
    _seed()


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state, whichever worker runs it and whatever ran before it there (an
    unseeded draw once made a Sinkhorn tolerance test depend on the order the tests happened to run in)."""
    _seed()


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding MNIST/, FashionMNIST/, CIFAR10-JPEG/ (fails, never skips, when it is missing)."""
    root = Path(os.environ["OT_ROBUST_DATA"])
    assert (root / "MNIST" / "raw").is_dir(), f"test data missing under {root}: set OT_ROBUST_DATA"
    return root
