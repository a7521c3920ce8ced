"""Per-parameter gradient-norm ratios between adversarial and clean inputs (OTJR Fig. 4 and Fig. 6).

For every parameter tensor theta_i of the model:

    r_i = E_(x, y) [ ||grad_theta_i CE(f(x_adv), y)||_2 / ||grad_theta_i CE(f(x), y)||_2 ]

the expectation being over test examples, with per-example gradients computed exactly in one batched pass by
``torch.func`` (``functional_call`` + ``vmap`` + ``grad``). The model is evaluated in eval mode (BatchNorm running
statistics, no dropout), as at test time. Low ratios mean the model's parameters react little to the perturbation
relative to the clean loss (OTJR Sec. 3: "the more emphasis the model puts on perturbations").

Note: a confidently classified clean example has a near-zero clean gradient, so single ratios can be very large and
the mean is heavy-tailed; ``GradRatios.per_example`` keeps every ratio so medians can be shown as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from ._common import Perturbation, apply_in_batches, batches, model_device, take


@dataclass
class GradRatios:
    """Gradient-norm ratios per parameter tensor.

    Attributes:
        names: the ``P`` trainable parameter names (``model.named_parameters()`` order, input to output).
        ratios: ``(P,)`` mean over examples of the per-example ratio (the papers' quantity, no unit).
        per_example: ``(N, P)`` per-example ratios.
        clean_norms, adv_norms: ``(N, P)`` per-example gradient L2 norms on clean and adversarial inputs.
        labels: the same parameters for a figure axis (:func:`readable_parameter_names`: ``conv 1 weight``, ...).
    """

    names: list[str]
    ratios: np.ndarray
    per_example: np.ndarray
    clean_norms: np.ndarray
    adv_norms: np.ndarray
    labels: list[str] | None = None


def per_example_grad_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                           chunk_size: int | None = None) -> torch.Tensor:
    """``(N, P)`` L2 norms of the per-example gradients ``grad_theta_i CE(f(x_n), y_n)`` for each parameter tensor.

    Uses ``torch.func.vmap(grad(...))`` over the batch (``chunk_size`` bounds the memory: per-example gradients of
    ``chunk_size`` examples are materialised at once). The model must be in the mode wanted (eval for analysis).
    """
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss_one(p, xi, yi):
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    grads = vmap(grad(loss_one), in_dims=(None, 0, 0), chunk_size=chunk_size)(params, x, y)
    return torch.stack([g.flatten(1).norm(dim=1) for g in grads.values()], 1)


def gradient_norm_ratios(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Perturbation,
                         n_examples: int | None = None, batch_size: int = 64, chunk_size: int | None = None,
                         eps: float = 1e-12, progress: bool = True) -> GradRatios:
    """OTJR Fig. 4/6: ``E(||grad_theta_i L(x_adv)|| / ||grad_theta_i L(x)||)`` for every parameter tensor.

    Args:
        model: any classifier (its trainable parameters are analysed).
        x, y: images ``(N, C, H, W)`` in [0, 1], labels ``(N,)``; the first ``n_examples`` are used.
        attack: ``attack(model, x, y) -> x_adv`` (the papers: PGD-20 on test images).
        batch_size: examples per vmap pass (memory ~ ``batch_size`` x number of parameters floats, or ``chunk_size``).
        eps: added to the clean norm to avoid division by an exactly zero gradient.
    Returns:
        :class:`GradRatios` with ``ratios`` of shape ``(P,)``.
    """
    x, y = take(x, y, n_examples)
    x_adv = apply_in_batches(attack, model, x, y, batch_size, progress, "attack")
    dev = model_device(model)
    was_training = model.training
    model.eval()
    clean, adv = [], []
    try:
        for s in batches(len(x), batch_size, progress, "per-example grads"):
            xb, xab, yb = x[s].to(dev), x_adv[s].to(dev), y[s].to(dev)
            clean.append(per_example_grad_norms(model, xb, yb, chunk_size).cpu())
            adv.append(per_example_grad_norms(model, xab, yb, chunk_size).cpu())
    finally:
        model.train(was_training)
    clean_n, adv_n = torch.cat(clean).double(), torch.cat(adv).double()
    per_ex = adv_n / (clean_n + eps)
    names = [k for k, v in model.named_parameters() if v.requires_grad]
    return GradRatios(names, per_ex.mean(0).numpy(), per_ex.numpy(), clean_n.numpy(), adv_n.numpy(),
                      readable_parameter_names(model))


def readable_parameter_names(model: nn.Module) -> list[str]:
    """Names of the trainable parameters for a figure axis: layer kind and its rank among layers of that kind, input
    to output, e.g. ``conv 1 weight``, ``batchnorm 2 bias``, ``linear 1 weight`` (instead of ``stages.0.0.0.weight``).
    """
    owner = {id(p): m for m in model.modules() for p in m.parameters(recurse=False)}
    rank: dict[str, dict[int, int]] = {}
    out = []
    for key, p in model.named_parameters():
        if not p.requires_grad:
            continue
        m = owner.get(id(p))
        kind = type(m).__name__.lower().replace("2d", "").replace("1d", "") if m is not None else "param"
        kind = {"conv": "conv", "batchnorm": "batchnorm", "linear": "linear"}.get(kind, kind)
        seen = rank.setdefault(kind, {})
        k = seen.setdefault(id(m), len(seen) + 1)
        out.append(f"{kind} {k} {key.rsplit('.', 1)[-1]}")
    return out


def plot_gradient_ratios(results: Mapping[str, GradRatios], statistic: str = "mean", log: bool = True) -> plt.Figure:
    """Ratios per parameter tensor (x: parameter index from input to output), one line per method.

    ``statistic``: ``"mean"`` (the papers' expectation) or ``"median"`` (robust to near-zero clean gradients).

    Raises:
        ValueError: empty ``results`` or unknown ``statistic``.
    """
    from ..core.style import legend_outside, method_style, use_style

    use_style()
    if not results:
        raise ValueError("results is empty: nothing to plot")
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic={statistic!r}; allowed: 'mean', 'median'")
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for name, r in results.items():
        vals = r.ratios if statistic == "mean" else np.median(r.per_example, 0)
        ax.plot(np.arange(len(vals)), vals, ms=3, label=name, **method_style(name))
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    if log:
        ax.set_yscale("log")
    first = next(iter(results.values()))
    names = first.labels or first.names
    if len(names) <= 24:  # small models: name every tensor
        ax.set_xticks(np.arange(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("parameter tensor (input -> output)")
    ax.set_ylabel(f"{statistic} ||grad(x_adv)|| / ||grad(x)|| (ratio)")
    legend_outside(ax, fontsize=8)
    fig.tight_layout()
    return fig
