"""Loaders read the real data; the bundled MNIST sample is exactly what it claims to be; errors are clear."""

import json

import numpy as np
import pytest
import torch

from ot_robust.core import data
from ot_robust.core.data import as_tensors, dataset_info, get_dataset, load_mnist_sample, sample_checksum

# Labels of the first items of the official files (MNIST: 5 0 4 1 9 2 1 3 1 4 / 7 2 1 0 4 1 4 9 5 9;
# Fashion-MNIST: 9 0 0 3 0 2 7 2 5 5 / 9 2 1 1 6 1 4 6 5 7).
FIRST_LABELS = {
    ("mnist", "train"): [5, 0, 4, 1, 9, 2, 1, 3, 1, 4],
    ("mnist", "test"): [7, 2, 1, 0, 4, 1, 4, 9, 5, 9],
    ("fashion-mnist", "train"): [9, 0, 0, 3, 0, 2, 7, 2, 5, 5],
    ("fashion-mnist", "test"): [9, 2, 1, 1, 6, 1, 4, 6, 5, 7],
}


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("split,size", [("train", 60000), ("test", 10000)])
def test_mnist_like_loaders(data_root, name, split, size):
    ds = get_dataset(name, split, augment=False)
    assert len(ds) == size
    x, y = ds[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= float(ds.images.min()) / 255 and float(ds.images.max()) / 255 <= 1.0 and ds.images.max() == 255
    assert [int(t) for t in ds.targets[:10]] == FIRST_LABELS[(name, split)]
    counts = torch.bincount(ds.targets, minlength=10)
    assert counts.sum() == size and counts.min() > size // 12  # all ten classes well represented
    if name == "fashion-mnist":
        assert counts.tolist() == [size // 10] * 10  # Fashion-MNIST is exactly balanced


@pytest.mark.parametrize("split,size", [("train", 50000), ("test", 10000)])
def test_cifar10_jpeg_folder(data_root, split, size):
    ds = get_dataset("cifar10-jpeg", split)
    assert len(ds) == size
    assert torch.bincount(ds.targets, minlength=10).tolist() == [size // 10] * 10
    assert ds.classes[:3] == ["airplane", "automobile", "bird"]
    assert not dataset_info("cifar10-jpeg").exact
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and 0.0 <= x.min() and x.max() <= 1.0 and y == 0
    # the generic image-folder route reads the same files
    same = get_dataset(f"imagefolder:{data_root / 'CIFAR10-JPEG'}", split, augment=False)
    assert torch.equal(same[5][0], get_dataset("cifar10-jpeg", split, augment=False)[5][0])


def test_cifar_augmentation_keeps_shape_and_range(data_root):
    ds = get_dataset("cifar10-jpeg", "train", augment=True)
    torch.manual_seed(0)
    xs = [ds[3][0] for _ in range(8)]
    assert all(x.shape == (3, 32, 32) and 0 <= x.min() and x.max() <= 1 for x in xs)
    assert any(not torch.equal(xs[0], x) for x in xs[1:])  # augmentation is random
    assert torch.equal(get_dataset("cifar10-jpeg", "test")[3][0], get_dataset("cifar10-jpeg", "test")[3][0])


def test_mnist_sample_checksum_balance_and_identity(data_root):
    meta = json.loads(data.SAMPLE_META.read_text())
    with np.load(data.SAMPLE_PATH) as z:
        arrays = {k: z[k] for k in z.files}
    official = {s: get_dataset("mnist", s, augment=False) for s in ("train", "test")}
    for split, per_class in (("train", 1000), ("test", 200)):
        ds = load_mnist_sample(split)
        assert len(ds) == 10 * per_class
        assert torch.bincount(ds.targets, minlength=10).tolist() == [per_class] * 10
        imgs, labels, idx = arrays[f"{split}_images"], arrays[f"{split}_labels"], arrays[f"{split}_indices"]
        assert sample_checksum(imgs, labels) == meta["sha256"][split]
        assert len(set(idx.tolist())) == len(idx)
        ref = official[split]
        assert torch.equal(ds.images[:, 0], ref.images[torch.from_numpy(idx), 0])
        assert torch.equal(ds.targets, ref.targets[torch.from_numpy(idx)])


def test_mnist_sample_detects_tampering(monkeypatch, tmp_path):
    meta = json.loads(data.SAMPLE_META.read_text())
    meta["sha256"]["test"] = "0" * 64
    fake = tmp_path / "meta.json"
    fake.write_text(json.dumps(meta))
    monkeypatch.setattr(data, "SAMPLE_META", fake)
    with pytest.raises(RuntimeError, match="checksum"):
        load_mnist_sample("test")


def test_as_tensors_matches_items():
    ds = get_dataset("mnist-sample", "test")
    x, y = as_tensors(ds, 16)
    assert x.shape == (16, 1, 28, 28) and torch.equal(x[3], ds[3][0]) and int(y[3]) == ds[3][1]


def test_unknown_names_and_splits():
    with pytest.raises(ValueError, match=r"unknown dataset 'mnits'.*valid names.*mnist-sample"):
        get_dataset("mnits", "train")
    with pytest.raises(ValueError, match=r"unknown split 'val'"):
        get_dataset("mnist", "val")


@pytest.mark.parametrize("name", ["mnist", "cifar10", "svhn", "cifar10-jpeg"])
def test_missing_data_error_names_root_files_and_env(tmp_path, name):
    with pytest.raises(FileNotFoundError) as e:
        get_dataset(name, "test", root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "OT_ROBUST_DATA" in msg and "expected files" in msg


def test_env_variable_sets_root(monkeypatch, tmp_path, data_root):
    monkeypatch.setenv("OT_ROBUST_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        get_dataset("mnist", "test")
    monkeypatch.setenv("OT_ROBUST_DATA", str(data_root))
    assert len(get_dataset("mnist", "test")) == 10000


def test_evaluation_subsets_of_class_sorted_data_cover_every_class():
    """The first n of an ImageFolder-layout dataset (sorted by class) are interleaved by class, so an evaluation on
    300 JPEG CIFAR-10 images is not an evaluation on 300 airplanes; unsorted datasets keep their first n."""
    from ot_robust.core.data import as_tensors, first_n_indices, get_dataset, load_mnist_sample

    jpeg = get_dataset("cifar10-jpeg", "test")
    _, y = as_tensors(jpeg, 300)
    assert torch.bincount(y, minlength=10).tolist() == [30] * 10
    assert y[:10].tolist() == list(range(10))
    sample = load_mnist_sample("test")
    assert list(first_n_indices(sample, 7)) == list(range(7))
