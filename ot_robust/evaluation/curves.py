"""Diagnostic curves of a trained model: accuracy vs eps, accuracy vs PGD steps, and the PGD loss over iterations.

* :func:`accuracy_vs_epsilon` - FS Fig. 3a, GOT Figs. 2-5 (PGD-``steps`` accuracy at each eps).
* :func:`accuracy_vs_steps` - FS Fig. 3b-c (one PGD run gives every point, through ``fooled_at``).
* :func:`pgd_loss_curves` - FS supplement Fig. 1 / rebuttal Sec. 3 (loss per iteration for many random starts).

Accuracies in %, correct on the clean input *and* on the attack's output; epsilons on the [0, 1] pixel scale;
``x`` ``(N, C, H, W)`` in [0, 1], ``y`` ``(N,)``. Deterministic for a seed (each batch seeded as in
:func:`ot_robust.evaluation.suite.evaluate`).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch

from ..attacks import PGD, fast_path, model_mode
from ..attacks.losses import LOSSES
from ..core.utils import derive_seed, get_device


def _accuracy(model, attack, x, y, batch_size, device, seed) -> float:
    attack = fast_path(attack) if attack is not None else None
    dev = get_device(device)
    model.to(dev)
    ok = []
    with model_mode(model):
        for b, i in enumerate(range(0, len(x), batch_size)):
            xb, yb = x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)
            torch.manual_seed(derive_seed(seed, b))
            xa = attack(model, xb, yb) if attack is not None else xb
            with torch.no_grad():
                ok.append(((model(xb).argmax(1) == yb) & (model(xa).argmax(1) == yb)).cpu())
    return 100.0 * torch.cat(ok).float().mean().item()


def accuracy_vs_epsilon(model, x, y, epsilons: Sequence[float], steps: int = 20, norm: str = "linf",
                        step_size: float | None = None, restarts: int = 1, loss: str = "ce", batch_size: int = 250,
                        device=None, seed: int = 0) -> pd.DataFrame:
    """PGD-``steps`` accuracy (%) at each eps (FS Fig. 3a). ``step_size`` None -> 2.5 * eps / steps per eps.

    Returns a DataFrame with columns ``epsilon, accuracy``.
    """
    accs = []
    for e in epsilons:
        atk = None if e == 0 else PGD(e, steps, step_size, norm=norm, restarts=restarts, loss=loss, seed=seed)
        accs.append(_accuracy(model, atk, x, y, batch_size, device, seed))
    return pd.DataFrame({"epsilon": list(epsilons), "accuracy": accs})


def accuracy_vs_steps(model, x, y, eps: float, steps_list: Sequence[int], step_size: float, norm: str = "linf",
                      restarts: int = 1, loss: str = "ce", batch_size: int = 250, device=None,
                      seed: int = 0) -> pd.DataFrame:
    """PGD accuracy (%) at a fixed eps and step size for each number of steps (FS Fig. 3b-c).

    With one restart and a named loss, one run of ``max(steps_list)`` steps gives every point (no
    repeated work): a ``k``-step PGD from the same start fools exactly the examples whose first fooling iterate
    is ``<= k`` (``fooled_at`` of :func:`ot_robust.attacks.perturb`); otherwise one run per point.

    Returns a DataFrame with columns ``steps, accuracy``.
    """
    steps_list = [int(s) for s in steps_list]
    if restarts != 1 or loss not in LOSSES or not steps_list:
        accs = [_accuracy(model, PGD(eps, s, step_size, norm=norm, restarts=restarts, loss=loss, seed=seed),
                          x, y, batch_size, device, seed) for s in steps_list]
        return pd.DataFrame({"steps": steps_list, "accuracy": accs})
    from ..attacks import perturb
    from ..attacks.whitebox import make_generator

    PGD(eps, max(steps_list), step_size, norm=norm, loss=loss)  # the same checks as a PGD of these settings
    dev = get_device(device)
    model.to(dev)
    clean, first = [], []
    with model_mode(model):
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)
            fa = torch.empty(len(xb), dtype=torch.int64, device=dev)
            perturb(model, xb, yb, LOSSES[loss], eps, step_size, max(steps_list), norm=norm,
                    generator=make_generator(seed, dev), stop_fooled=True, fooled_at=fa)
            with torch.no_grad():
                clean.append((model(xb).argmax(1) == yb).cpu())
            first.append(fa.cpu())
    clean, first = torch.cat(clean), torch.cat(first)
    accs = [100.0 * (clean & (first > k)).float().mean().item() for k in steps_list]
    return pd.DataFrame({"steps": steps_list, "accuracy": accs})


def pgd_loss_curves(model, x, y, n_starts: int = 20, steps: int = 20, eps: float = 8 / 255,
                    step_size: float | None = None, norm: str = "linf", loss: str = "ce", device=None,
                    seed: int = 0) -> pd.DataFrame:
    """Loss over PGD iterations for ``n_starts`` random starts (FS supplement Fig. 1; FS rebuttal Sec. 3).

    All starts run in one batched call (x repeated ``n_starts`` times). Returns a long DataFrame with columns
    ``start, iteration (0..steps), loss`` (mean over the examples of ``x`` for that start).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r}; allowed: {sorted(LOSSES)}")
    dev = get_device(device)
    model.to(dev)
    b = len(x)
    xr, yr = x.to(dev).repeat(n_starts, 1, 1, 1), y.to(dev).repeat(n_starts)
    record = torch.zeros(steps + 1, n_starts)

    def cb(_r, t, val):
        record[t] = val.view(n_starts, b).mean(1).cpu()

    from ..attacks import perturb

    step_size = 2.5 * eps / steps if step_size is None else step_size
    gen = torch.Generator(device=dev).manual_seed(seed)
    perturb(model, xr, yr, LOSSES[loss], eps, step_size, steps, norm=norm, keep_best=True, generator=gen,
            callback=cb)
    return pd.DataFrame([(s, t, float(record[t, s])) for t in range(steps + 1) for s in range(n_starts)],
                        columns=["start", "iteration", "loss"])
