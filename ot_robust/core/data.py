"""Datasets by name -> torch ``Dataset`` of ``(image, label)`` with images float in [0, 1], ``(C, H, W)``.

Names: ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``, ``svhn`` (torchvision classes, exact originals),
``mnist-sample`` (a real MNIST subset shipped inside the package: 1,000 train / 200 test images per class, drawn with a
fixed seed from the official files; see ``scripts/build_mnist_sample.py``), ``cifar10-jpeg`` (the lossy JPEG copy of
CIFAR-10 under ``<root>/CIFAR10-JPEG``) and ``imagefolder:<path>`` (``<path>/<split>/<class>/*.jpg|png``).

The data root is the ``root`` argument, else the environment variable ``OT_ROBUST_DATA``, else ``./data``.
Augmentation (training only, as the papers use it): random crop with 4-pixel padding + horizontal flip for
CIFAR-like data, random crop without flip for SVHN, none for MNIST-like data.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .utils import PACKAGE_ROOT

ENV_VAR = "OT_ROBUST_DATA"
SPLITS = ("train", "test")
SAMPLE_PATH = PACKAGE_ROOT / "assets" / "mnist_sample.npz"
SAMPLE_META = PACKAGE_ROOT / "assets" / "mnist_sample.json"

_MNIST_STATS = ((0.1307,), (0.3081,))
_FASHION_STATS = ((0.2860,), (0.3530,))
_CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
_CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
_SVHN_STATS = ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: image shape, classes, normalization, augmentation, and whether it is exact."""

    name: str
    channels: int
    size: int
    num_classes: int
    mean: tuple
    std: tuple
    augment: str  # "none", "crop", "crop+flip"
    exact: bool
    note: str = ""
    #: the default threat model on this data (Linf, [0, 1] scale) and the PGD of the per-epoch held-out check:
    #: MNIST 0.3 (GOT, FS supp.), Fashion-MNIST 0.1 (the study's choice: not saturated), colour data 8/255 (FS, OTJR)
    eps: float = 8 / 255
    attack_steps: int = 20
    attack_step_size: float = 2 / 255


_MNIST_ATTACK = dict(eps=0.3, attack_steps=20, attack_step_size=0.01)
_INFO = {
    "mnist": DatasetInfo("mnist", 1, 28, 10, *_MNIST_STATS, "none", True, **_MNIST_ATTACK),
    "mnist-sample": DatasetInfo("mnist-sample", 1, 28, 10, *_MNIST_STATS, "none", True,
                                "real MNIST subset: 10,000 train / 2,000 test, stratified, seed 0", **_MNIST_ATTACK),
    "fashion-mnist": DatasetInfo("fashion-mnist", 1, 28, 10, *_FASHION_STATS, "none", True,
                                 eps=0.1, attack_steps=20, attack_step_size=0.01),
    "cifar10": DatasetInfo("cifar10", 3, 32, 10, *_CIFAR10_STATS, "crop+flip", True),
    "cifar10-jpeg": DatasetInfo("cifar10-jpeg", 3, 32, 10, *_CIFAR10_STATS, "crop+flip", False,
                                "CIFAR-10 re-encoded as JPEG quality 75: lossy, not comparable to published numbers"),
    "cifar100": DatasetInfo("cifar100", 3, 32, 100, *_CIFAR100_STATS, "crop+flip", True),
    "svhn": DatasetInfo("svhn", 3, 32, 10, *_SVHN_STATS, "crop", True),
}
DATASETS = tuple(sorted(_INFO)) + ("imagefolder:<path>",)

_EXPECTED_FILES = {
    "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "fashion-mnist": "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "cifar10": "cifar-10-batches-py/{data_batch_1..5,test_batch}",
    "cifar100": "cifar-100-python/{train,test}",
    "svhn": "{train,test}_32x32.mat",
    "cifar10-jpeg": "CIFAR10-JPEG/{train,test}/<class>/*.jpg",
}


def dataset_info(name: str) -> DatasetInfo:
    """Facts about dataset ``name``; ``imagefolder:<path>`` gets 3 channels, 32 px and classes from its folders.

    Raises:
        ValueError: unknown name (the message lists valid names).
    """
    if name in _INFO:
        return _INFO[name]
    if name.startswith("imagefolder:"):
        path = Path(name.split(":", 1)[1])
        classes = sorted(p.name for p in (path / "train").iterdir() if p.is_dir()) if (path / "train").is_dir() else []
        return DatasetInfo(name, 3, 32, len(classes) or 10, *_CIFAR10_STATS, "crop+flip", False,
                           f"image folder {path}")
    raise ValueError(f"unknown dataset {name!r}; valid names: {list(DATASETS)}")


def default_attack(dataset: str) -> tuple[float, int, float]:
    """``(eps, steps, step_size)`` of the default Linf PGD on ``dataset`` (:class:`DatasetInfo`): MNIST 0.3 / 20 /
    0.01, Fashion-MNIST 0.1 / 20 / 0.01, anything else 8/255 / 20 / 2/255. The one table every module reads (the
    Trainer's held-out check, the evaluate notebook's default suite, the analysis figures' budget)."""
    try:
        info = dataset_info(dataset)
    except (ValueError, OSError):
        info = DatasetInfo(dataset, 3, 32, 10, (0.0,), (1.0,), "none", False)
    return info.eps, info.attack_steps, info.attack_step_size


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root``, else ``$OT_ROBUST_DATA``, else ``./data``."""
    return Path(root if root is not None else os.environ.get(ENV_VAR, "data")).expanduser()


class TensorImageDataset(Dataset):
    """Images held in memory as uint8 ``(N, C, H, W)``; items are float in [0, 1] with optional augmentation.

    Attributes ``images`` (uint8 tensor), ``targets`` (int64 tensor), ``info`` (:class:`DatasetInfo`).
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, info: DatasetInfo, augment: bool = False):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images, self.targets, self.info = images, targets.long(), info
        self.augment = augment and info.augment != "none"

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        x = self.images[i].float().div_(255)
        if self.augment:
            x = augment_image(x, flip="flip" in self.info.augment)
        return x, int(self.targets[i])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as float [0, 1] ``(N, C, H, W)`` and labels ``(N,)`` (no augmentation)."""
        return self.images.float().div_(255), self.targets


def augment_image(x: torch.Tensor, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """Random crop with ``pad``-pixel zero padding, then (if ``flip``) a horizontal flip with probability 1/2."""
    c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    i, j = torch.randint(0, 2 * pad + 1, (2,)).tolist()
    x = padded[:, i:i + h, j:j + w]
    if flip and torch.rand(()) < 0.5:
        x = x.flip(-1)
    return x


class ImageFolderDataset(Dataset):
    """``<path>/<split>/<class>/<image>`` read lazily with PIL; items float [0, 1] ``(3, H, W)``."""

    def __init__(self, path: Path, split: str, info: DatasetInfo, augment: bool = False):
        from torchvision.datasets import ImageFolder

        self.folder = ImageFolder(str(path / split))
        self.targets = torch.tensor(self.folder.targets)
        self.classes = self.folder.classes
        self.info = info
        self.augment = augment and info.augment != "none"

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i):
        from torchvision.transforms.functional import pil_to_tensor

        img, y = self.folder[i]
        x = pil_to_tensor(img.convert("RGB")).float().div_(255)
        if self.augment:
            x = augment_image(x, flip="flip" in self.info.augment)
        return x, y


def _missing(name: str, root: Path, detail: str = "") -> FileNotFoundError:
    """The one-line error for data that is not where the data root says (no torchvision text about
    ``download=True``, which no command-line flag offers: the Python API's ``download=True`` is named instead)."""
    expected = _EXPECTED_FILES.get(name, "<split>/<class>/<images>")
    if name == "cifar10":  # the lossy JPEG copy is what these machines have (../shared/data)
        jpeg = root / "CIFAR10-JPEG"
        there = "it is there" if (jpeg / "test").is_dir() else "not found there either"
        return FileNotFoundError(
            f"the CIFAR-10 originals are not in the data root {str(root)!r} (expected files: {expected}); set the "
            f"environment variable {ENV_VAR} (or root=...) to the folder that holds them, or use the dataset "
            f"'cifar10-jpeg' (the lossy JPEG copy, CIFAR10-JPEG/ under the data root: {there}; its numbers are not "
            "comparable to published CIFAR-10 numbers); from Python, get_dataset(..., download=True) fetches the "
            f"originals where internet is available{('; ' + detail) if detail else ''}")
    return FileNotFoundError(
        f"dataset {name!r} not found under data root {str(root)!r} (expected files: {expected}); set the "
        f"environment variable {ENV_VAR} (or root=...) to the folder that holds it; from Python, "
        "get_dataset(..., download=True) fetches it where it can be downloaded"
        f"{('; ' + detail) if detail else ''}")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def get_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None, download: bool = False,
                augment: bool | None = None) -> Dataset:
    """Dataset ``name`` (see :data:`DATASETS`), ``split`` in {"train", "test"}, as ``(image [0,1] (C,H,W), label)``.

    Args:
        root: data root (default ``$OT_ROBUST_DATA``, else ``./data``); ignored for ``mnist-sample``.
        download: let torchvision download the original (needs internet; never done here).
        augment: the dataset's training augmentation; default ``True`` for ``train`` and ``False`` for ``test``.
    Raises:
        ValueError: unknown name or split.
        FileNotFoundError: data missing (with ``download=False``) or a failed download; one line naming the root,
            the expected files and ``OT_ROBUST_DATA`` (for ``cifar10``, also the ``cifar10-jpeg`` copy).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {SPLITS}")
    info = dataset_info(name)
    augment = (split == "train") if augment is None else augment
    if name == "mnist-sample":
        return load_mnist_sample(split, augment)
    base = data_root(root)
    if name.startswith("imagefolder:") or name == "cifar10-jpeg":
        path = base / "CIFAR10-JPEG" if name == "cifar10-jpeg" else Path(name.split(":", 1)[1])
        if not (path / split).is_dir():
            raise _missing(name, path if name != "cifar10-jpeg" else base)
        return ImageFolderDataset(path, split, info, augment)
    import torchvision.datasets as tvd

    try:
        if name in ("mnist", "fashion-mnist"):
            cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
            ds = cls(str(base), train=split == "train", download=download)
            images, targets = ds.data.unsqueeze(1), ds.targets
        elif name in ("cifar10", "cifar100"):
            cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
            ds = cls(str(base), train=split == "train", download=download)
            images, targets = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets)
        else:  # svhn
            ds = tvd.SVHN(str(base), split=split, download=download)
            images, targets = torch.from_numpy(ds.data), torch.from_numpy(ds.labels.astype(np.int64))
    except RuntimeError as e:  # torchvision raises RuntimeError for missing/corrupt files ("use download=True")
        raise _missing(name, base, "" if not download else f"download failed: {_first_line(e)}") from e
    except (OSError, ValueError) as e:  # failed download
        raise _missing(name, base, f"download failed: {_first_line(e)}") from e
    return TensorImageDataset(images, targets, info, augment)


def sample_checksum(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of the raw bytes of a uint8 image array followed by an int64 label array."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def load_mnist_sample(split: str = "train", augment: bool = False, verify: bool = True) -> TensorImageDataset:
    """The bundled MNIST subset (10,000 train / 2,000 test); ``verify`` checks its recorded SHA-256.

    Raises:
        RuntimeError: if the stored arrays do not match the checksum in ``assets/mnist_sample.json``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {SPLITS}")
    with np.load(SAMPLE_PATH) as z:
        images, labels = z[f"{split}_images"], z[f"{split}_labels"]
    if verify:
        meta = json.loads(SAMPLE_META.read_text())
        got = sample_checksum(images, labels)
        if got != meta["sha256"][split]:
            raise RuntimeError(f"bundled MNIST sample ({split}) checksum {got} != recorded {meta['sha256'][split]}; "
                               f"rebuild it with scripts/build_mnist_sample.py")
    return TensorImageDataset(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels),
                              _INFO["mnist-sample"], augment)


def dataset_targets(dataset: Dataset) -> torch.Tensor | None:
    """The labels of a dataset as a long tensor, from its ``targets`` / ``labels`` attribute (None if it has
    neither)."""
    t = getattr(dataset, "targets", None)
    if t is None:
        t = getattr(dataset, "labels", None)
    return None if t is None else torch.as_tensor(t, dtype=torch.long)


def first_n_indices(dataset: Dataset, n: int) -> Sequence[int]:
    """The ``n`` examples an evaluation subset takes: the first ``n`` in dataset order, except for a dataset sorted
    by class (the ImageFolder layout of ``cifar10-jpeg`` / ``imagefolder:``, where the first ``n`` are one class):
    then the first ``n`` of a round-robin over the classes (dataset order inside each class), so every class is
    represented. Deterministic; unsorted datasets (MNIST, CIFAR pickles, SVHN) keep the plain first ``n``."""
    n = min(n, len(dataset))
    t = dataset_targets(dataset)
    if t is None or len(t) < 2 or not bool((t[1:] >= t[:-1]).all()) or t[0] == t[-1]:
        return range(n)
    return class_round_robin(t)[:n].tolist()


def class_round_robin(targets: torch.Tensor) -> torch.Tensor:
    """All indices ordered round-robin over the classes (one example of each class in turn, dataset order inside a
    class): the first ``n`` of it are a class-balanced subset. ``targets`` (N,) int; returns (N,) long."""
    N = len(targets)
    order = torch.argsort(targets, stable=True)
    sorted_t = targets[order]
    starts = torch.searchsorted(sorted_t, sorted_t, right=False)
    rank = torch.empty(N, dtype=torch.long)
    rank[order] = torch.arange(N) - starts                    # rank of each example within its class
    return torch.argsort(rank * N + torch.arange(N))           # round-robin over classes, dataset order inside


def as_tensors(dataset: Dataset, n: int | None = None, indices: Sequence[int] | None = None):
    """The first ``n`` items (see :func:`first_n_indices`; class-sorted datasets are interleaved by class) or the
    given ``indices`` of a dataset as ``(x (n, C, H, W), y (n,))`` tensors."""
    if indices is None:
        indices = range(len(dataset)) if n is None else first_n_indices(dataset, n)
    if isinstance(dataset, TensorImageDataset) and not dataset.augment:
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return dataset.images[idx].float().div_(255), dataset.targets[idx]
    xs, ys = zip(*(dataset[i] for i in indices))
    return torch.stack(xs), torch.tensor(ys)
