"""Small CNNs for MNIST-like data: the Carlini & Wagner (2017) MNIST network and a CPU-sized CNN."""

from __future__ import annotations

from torch import nn

from .base import Classifier


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, padding: int = 0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=padding), nn.ReLU(inplace=True))


class CWCNN(Classifier):
    """The MNIST CNN of Carlini & Wagner (2017), used by GOT (and TRADES/MART) for MNIST.

    conv32-conv32-maxpool-conv64-conv64-maxpool-fc200-fc200-fc(num_classes), 3x3 kernels, ReLU, dropout 0.5 before
    the second fc. Penultimate features: 200-d. Input ``(N, in_channels, 28, 28)``.
    """

    def __init__(self, num_classes=10, in_channels=1, mean=(0.1307,), std=(0.3081,), input_size=28):
        super().__init__(mean, std)
        self.stages = nn.ModuleList([
            nn.Sequential(_conv(in_channels, 32), _conv(32, 32), nn.MaxPool2d(2)),
            nn.Sequential(_conv(32, 64), _conv(64, 64), nn.MaxPool2d(2)),
        ])
        side = ((input_size - 4) // 2 - 4) // 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * side * side, 200), nn.ReLU(inplace=True),
                                  nn.Dropout(0.5), nn.Linear(200, 200), nn.ReLU(inplace=True))
        self.fc = nn.Linear(200, num_classes)


class SmallCNN(Classifier):
    """A CPU-sized CNN (about 0.1 M parameters): conv16-conv32(s2)-conv64(s2)-global avg pool-fc.

    Sized so that an epoch of PGD training on 10,000 MNIST images fits in tens of seconds on 2 CPU cores.
    Penultimate features: ``width * 4``-d (64 by default).
    """

    def __init__(self, num_classes=10, in_channels=1, mean=(0.1307,), std=(0.3081,), width=16, input_size=28):
        super().__init__(mean, std)
        w = width
        self.stages = nn.ModuleList([
            _conv(in_channels, w, 3, padding=1),
            _conv(w, 2 * w, 3, stride=2, padding=1),
            _conv(2 * w, 4 * w, 3, stride=2, padding=1),
            _conv(4 * w, 4 * w, 3, padding=1),
        ])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4 * w, num_classes)
