"""Model registry. ``get_model(name, dataset=...)`` builds a model for a dataset's input shape and normalization.

Every model: input in [0, 1] NCHW, normalization inside, logits out; ``model(x, return_features=True)`` also
returns the penultimate features (see :class:`ot_robust.models.base.Classifier`).
"""

from __future__ import annotations

from typing import Callable

from .base import Classifier
from .cnn import CWCNN, SmallCNN
from .resnet import preact_resnet18, resnet18, resnet50
from .wrn import WideResNet

MODELS: dict[str, Callable[..., Classifier]] = {
    "cw_cnn": CWCNN,
    "small_cnn": SmallCNN,
    "resnet18": resnet18,
    "preact_resnet18": preact_resnet18,
    "resnet50": resnet50,
    "wrn": WideResNet,
    "wrn28_10": lambda **kw: WideResNet(depth=28, width=10, **kw),
    "wrn34_10": lambda **kw: WideResNet(depth=34, width=10, **kw),
}


def get_model(name: str, dataset: str | None = None, num_classes: int | None = None, **kwargs) -> Classifier:
    """Build model ``name`` (see ``MODELS``) for ``dataset`` (sets channels, classes, input size, mean/std).

    Args:
        name: one of ``MODELS`` (``wrn`` takes ``depth`` and ``width``).
        dataset: a name accepted by :func:`ot_robust.core.data.dataset_info`; ``None`` leaves the model's defaults.
        num_classes: overrides the dataset's class count.
        kwargs: passed to the constructor (e.g. ``width`` for ``small_cnn``, ``depth``/``width`` for ``wrn``).
    Raises:
        ValueError: unknown name (the message lists the valid names).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {sorted(MODELS)}")
    if dataset is not None:
        from ..core.data import dataset_info

        info = dataset_info(dataset)
        kwargs.setdefault("in_channels", info.channels)
        kwargs.setdefault("mean", info.mean)
        kwargs.setdefault("std", info.std)
        kwargs.setdefault("num_classes", info.num_classes)
        if name in ("cw_cnn", "small_cnn"):
            kwargs.setdefault("input_size", info.size)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return MODELS[name](**kwargs)


__all__ = ["MODELS", "Classifier", "get_model", "CWCNN", "SmallCNN", "WideResNet"]
