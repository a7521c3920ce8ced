"""The model contract shared by every architecture.

Every model takes images in [0, 1] (NCHW), normalizes them inside with its dataset's mean and std, and returns
logits. ``model(x, return_features=True)`` also returns the penultimate features (the input of the last linear
layer); ``return_features="middle"`` returns the flattened output of the middle stage instead (GOT Table 4).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

FEATURE_LAYERS = ("penultimate", "middle")


class Classifier(nn.Module):
    """Base class: ``stages`` (a list of modules applied in turn), then ``head`` (flatten/pool -> features), then
    ``fc``.

    Args:
        mean, std: per-channel normalization constants on the [0, 1] scale (length = input channels).
    Subclasses build ``self.stages`` (``nn.ModuleList``), ``self.head`` and ``self.fc`` (``nn.Linear``).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    @property
    def feature_dim(self) -> int:
        """Dimension of the penultimate features."""
        return self.fc.in_features

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    def forward(self, x: torch.Tensor, return_features: bool | str = False):
        """Logits ``(N, num_classes)`` for images ``x`` ``(N, C, H, W)`` in [0, 1].

        With ``return_features=True`` (or ``"penultimate"``) returns ``(logits, feats)`` with feats
        ``(N, feature_dim)``; with ``"middle"`` returns ``(logits, middle)``, the flattened output of stage
        ``len(stages) // 2 - 1``.

        Raises:
            ValueError: for an unknown ``return_features`` value or an input with the wrong number of channels.
        """
        if x.dim() != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"expected input of shape (N, {self.mean.shape[1]}, H, W), got {tuple(x.shape)}")
        if return_features not in (False, True) and return_features not in FEATURE_LAYERS:
            raise ValueError(f"return_features={return_features!r}; allowed: False, True, {FEATURE_LAYERS}")
        h = (x - self.mean) / self.std
        middle_at = len(self.stages) // 2 - 1
        middle = None
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if i == middle_at:
                middle = h
        feats = self.head(h)
        logits = self.fc(feats)
        if return_features is False:
            return logits
        if return_features == "middle":
            return logits, middle.flatten(1)
        return logits, feats
