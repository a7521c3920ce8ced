"""Shared test helpers for the attack/evaluation tests: a small MLP trained on real MNIST (cached per session),
a gradient-masked wrapper, and test data."""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F
from torch import nn

from ot_robust.core.data import as_tensors, load_mnist_sample


@functools.lru_cache(maxsize=None)
def mnist_test(n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of the bundled mnist-sample test split."""
    return as_tensors(load_mnist_sample("test"), n)


@contextlib.contextmanager
def one_thread():
    """Run with one torch thread (restored afterwards): on this shared, oversubscribed 2-core machine a single thread
    is several times faster than two for these tiny models."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class MLP(nn.Module):
    """A small fully connected MNIST classifier (784-128-10): trains to ~90% in about a second on a CPU."""

    num_classes = 10

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net((x - 0.1307) / 0.3081)


@functools.lru_cache(maxsize=None)
def trained_model() -> nn.Module:
    """An :class:`MLP` trained for 3 epochs on 5000 real MNIST images (seconds on a loaded CPU), eval mode.

    (small_cnn needs about a minute for a usable accuracy on this shared 2-core machine, too slow for the test budget.)
    """
    torch.manual_seed(0)
    return fit_on_mnist(MLP(), n_train=5000, epochs=3)


def fit_on_mnist(model: nn.Module, n_train: int, epochs: int) -> nn.Module:
    """``model`` trained with Adam (lr 3e-3, batch 64, cross-entropy) for ``epochs`` on the first ``n_train`` images of
    the bundled MNIST sample (seed the RNG before building the model); returned in eval mode with no gradients."""
    x, y = as_tensors(load_mnist_sample("train"), n_train)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            b = perm[i:i + 64]
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model


class Quantized(nn.Module):
    """Gradient masking on purpose: rounds the input to ``levels`` grey levels (torch.round has zero gradient)."""

    def __init__(self, model: nn.Module, levels: int = 4):
        super().__init__()
        self.model, self.levels = model, levels
        self.num_classes = model.num_classes

    def forward(self, x):
        return self.model(torch.round(x * (self.levels - 1)) / (self.levels - 1))
