"""Shared test setup: the data root defaults to ../shared/data (what CI sets), tests run single-threaded-ish."""

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if "OT_ROBUST_DATA" not in os.environ and (REPO.parent / "shared" / "data").is_dir():
    os.environ["OT_ROBUST_DATA"] = str(REPO.parent / "shared" / "data")

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding MNIST/, FashionMNIST/, CIFAR10-JPEG/ (fails, never skips, when it is missing)."""
    root = Path(os.environ["OT_ROBUST_DATA"])
    assert (root / "MNIST" / "raw").is_dir(), f"test data missing under {root}: set OT_ROBUST_DATA"
    return root
