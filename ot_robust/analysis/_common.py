"""Small helpers shared by the analysis modules: batching with a progress bar, devices, default threat models.

Every analysis function takes images ``x`` ``(N, C, H, W)`` in [0, 1] and labels ``y`` ``(N,)`` plus ``n_examples``
(the first ``n_examples`` are used; ``None`` = all) and shows a tqdm progress bar over its batches.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import nn

from ..core.utils import tqdm_class

# An attack or perturbation: ``attack(model, x, y) -> x_pert`` (the contract of :mod:`ot_robust.attacks`).
Perturbation = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-free model)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def take(x: torch.Tensor, y: torch.Tensor, n_examples: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_examples`` of ``(x, y)``.

    Raises:
        ValueError: ``x``/``y`` of mismatched lengths, ``x`` not 4-D, or ``n_examples`` < 1.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be images of shape (N, C, H, W), got {tuple(x.shape)}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if n_examples is not None:
        if int(n_examples) != n_examples or n_examples < 1:
            raise ValueError(f"n_examples={n_examples!r} must be None or an integer >= 1")
        x, y = x[: int(n_examples)], y[: int(n_examples)]
    return x, y


def batches(n: int, batch_size: int, progress: bool = True, desc: str = "") -> Iterator[slice]:
    """Slices ``[i, i + batch_size)`` covering ``range(n)``, with a tqdm bar when ``progress``.

    Raises:
        ValueError: ``batch_size`` < 1.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1")
    starts = range(0, n, int(batch_size))
    for i in tqdm_class()(starts, desc=desc, disable=not progress, total=math.ceil(n / batch_size), leave=False):
        yield slice(i, min(i + int(batch_size), n))


def default_eps(dataset: str) -> float:
    """The dataset's Linf budget on the [0, 1] scale (:func:`ot_robust.core.data.default_attack`: MNIST 0.3,
    Fashion-MNIST 0.1, colour data 8/255)."""
    from ..core.data import default_attack

    return default_attack(dataset)[0]


def pgd(eps: float, steps: int = 20, step_size: float | None = None, seed: int | None = 0) -> Perturbation:
    """The supervised PGD-Linf attack (Madry et al. 2018) of :mod:`ot_robust.attacks`, uniform random start.

    ``step_size`` defaults to ``2.5 * eps / steps`` (Madry et al.'s rule), so PGD-20 can reach the ball's surface;
    ``seed`` fixes the random start (``None`` = global RNG).
    """
    from ..attacks import PGD

    return PGD(eps=eps, steps=steps, step_size=step_size, seed=seed)


def feature_scattering(eps: float, steps: int = 1, step_size: float | None = None,
                       seed: int | None = 0) -> Perturbation:
    """The unsupervised feature-scattering perturbation (FS paper Alg. 1, Eq. 6; :func:`ot_robust.attacks.
    feature_scattering.feature_scatter`): maximise the OT distance between clean and perturbed logits of the batch.

    FS uses a single step of size ``eps`` (the paper's CIFAR setting: 1 step of 8/255); this is the default. The
    perturbation is batch-coupled, so it depends on the batch it is applied to. ``seed`` fixes the uniform start.
    """
    from ..attacks.feature_scattering import feature_scatter

    def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gen = None if seed is None else torch.Generator(device=x.device).manual_seed(seed)
        return feature_scatter(model, x, eps=eps, step_size=step_size, steps=steps, generator=gen)

    return attack


def apply_in_batches(perturbation: Perturbation | None, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     batch_size: int, progress: bool = True, desc: str = "attack") -> torch.Tensor:
    """``perturbation(model, x_b, y_b)`` over batches on the model's device, concatenated on ``x``'s device.

    ``None`` returns ``x`` unchanged (clean images).
    """
    if perturbation is None:
        return x
    dev = model_device(model)
    out = [perturbation(model, x[s].to(dev), y[s].to(dev)).detach().to(x.device)
           for s in batches(len(x), batch_size, progress, desc)]
    return torch.cat(out)
