"""Wide ResNet (Zagoruyko & Komodakis 2016), the WRN-28-10 of Feature Scattering and WRN-34-10 of OTJR/TRADES."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .base import Classifier


class WideBlock(nn.Module):
    def __init__(self, cin, cout, stride, drop_rate=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop_rate = drop_rate
        self.equal = cin == cout
        self.shortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        shortcut = x if self.equal else self.shortcut(o)
        out = self.conv1(o)
        out = F.relu(self.bn2(out))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return self.conv2(out) + shortcut


class WideResNet(Classifier):
    """WRN-depth-width. ``depth`` must be 6n + 4 (28 -> n = 4, 34 -> n = 5). Penultimate features: ``64 * width``-d.

    Raises:
        ValueError: if ``(depth - 4) % 6 != 0``.
    """

    def __init__(self, depth=28, width=10, num_classes=10, in_channels=3, mean=(0.4914, 0.4822, 0.4465),
                 std=(0.2471, 0.2435, 0.2616), drop_rate=0.0):
        super().__init__(mean, std)
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth={depth} is not of the form 6n + 4 with n >= 1 (e.g. 16, 28, 34)")
        n = (depth - 4) // 6
        chans = [16, 16 * width, 32 * width, 64 * width]
        stages = [nn.Conv2d(in_channels, chans[0], 3, 1, 1, bias=False)]
        for i in range(3):
            stages.append(nn.Sequential(*[
                WideBlock(chans[i] if j == 0 else chans[i + 1], chans[i + 1], (1 if i == 0 else 2) if j == 0 else 1,
                          drop_rate) for j in range(n)]))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(nn.BatchNorm2d(chans[3]), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.fc = nn.Linear(chans[3], num_classes)
