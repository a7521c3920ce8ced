"""The model a benchmark attacks (shared by bench_attacks.py and bench_rays.py): a committed study run (``--run``,
Fashion-MNIST, eps 0.1 by default) or a model of ``--model`` trained for one quick epoch on ``--train-images`` of
the MNIST sample (eps 0.3 by default). Run the benchmarks as scripts (``python benchmarks/bench_*.py``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ot_robust.core.data import as_tensors, get_dataset
from ot_robust.models import get_model


def quick_train(model, x, y, device, epochs=1):
    """Adam 3e-3, batches of 64, ``epochs`` passes; leaves the model in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            loss = F.cross_entropy(model(x[i:i + 64].to(device)), y[i:i + 64].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()


def bench_model(a, device):
    """``(dataset, eps, model)`` from the parsed arguments ``a`` (``run``, ``dataset``, ``eps``, ``model``,
    ``train_images``)."""
    torch.manual_seed(0)
    if a.run:
        from ot_robust.training.api import load_model

        return a.dataset or "fashion-mnist", a.eps or 0.1, load_model(a.run, device)
    dataset = a.dataset or "mnist-sample"
    model = get_model(a.model, dataset).to(device)
    quick_train(model, *as_tensors(get_dataset(dataset, "train"), a.train_images), device)
    return dataset, a.eps or 0.3, model
