"""ResNets with the CIFAR stem (3x3 conv, no max-pool): ResNet-18, PreAct ResNet-18, ResNet-50.

He et al. 2016 ("Deep residual learning"; "Identity mappings" for the pre-activation variant). Layouts follow the
CIFAR versions used by TRADES, MART, GOT (ResNet-18) and Rice et al. 2020 (PreAct ResNet-18).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .base import Classifier


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class ResNet(Classifier):
    """CIFAR-stem ResNet. ``block`` in {BasicBlock, Bottleneck, PreActBlock}; ``layers`` = blocks per stage.

    Input ``(N, in_channels, H, W)`` (32x32 for CIFAR/SVHN); penultimate features ``512 * block.expansion``-d.
    """

    def __init__(self, block, layers, num_classes=10, in_channels=3, mean=(0.4914, 0.4822, 0.4465),
                 std=(0.2471, 0.2435, 0.2616), preact=False):
        super().__init__(mean, std)
        stem = [nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)]
        if not preact:
            stem += [nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        stages = [nn.Sequential(*stem)]
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, (1 if i == 0 else 2) if j == 0 else 1))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        head = [nn.BatchNorm2d(cin), nn.ReLU(inplace=True)] if preact else []
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(*head, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes)


def resnet18(**kw):
    """ResNet-18, CIFAR stem (the GOT Table 2 model)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kw)


def preact_resnet18(**kw):
    """Pre-activation ResNet-18, CIFAR stem."""
    return ResNet(PreActBlock, (2, 2, 2, 2), preact=True, **kw)


def resnet50(**kw):
    """ResNet-50 (bottleneck blocks), CIFAR stem."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **kw)
