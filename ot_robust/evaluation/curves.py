"""Diagnostic curves of a trained model: accuracy vs eps, accuracy vs PGD steps, and the PGD loss over iterations.

* :func:`accuracy_vs_epsilon` - FS Fig. 3a, GOT Figs. 2-5 (PGD-``steps`` accuracy at each eps). GOT's protocol
  (App. A.3) is an option of it: ``steps=40, step_size=0.01, labels="predicted"`` (a fixed step size whatever eps;
  the attack given the model's clean predictions as its labels).
* :func:`accuracy_vs_steps` - FS Fig. 3b-c (one PGD run gives every point, through ``fooled_at``).
* :func:`pgd_loss_curves` - FS supplement Fig. 1 / rebuttal Sec. 3 (loss per iteration for many random starts).

Accuracies in %, correct on the clean input *and* on the attack's output; epsilons on the [0, 1] pixel scale;
``x`` ``(N, C, H, W)`` in [0, 1], ``y`` ``(N,)``. Deterministic for a seed (each batch seeded as in
:func:`ot_robust.evaluation.suite.evaluate`).
"""

from __future__ import annotations

import time
from typing import Sequence

import pandas as pd
import torch

from ..attacks import PGD, fast_path, model_mode
from ..attacks.losses import LOSSES
from ..core.utils import derive_seed, get_device
from ..core.validation import check_choice
from .batch_cache import BatchCache

#: what the attack of :func:`accuracy_vs_epsilon` is given as labels: the true ones, or the model's clean predictions
LABELS = ("true", "predicted")


def _accuracy(model, attack, x, y, batch_size, device, seed, labels: str = "true", cache_dir=None) -> float:
    """Accuracy (%) under ``attack`` (None: clean), correct on the clean input and on the attack's output, both
    against the true ``y``. ``labels="predicted"``: the attack is given the clean argmax (eval mode, no grad).
    ``cache_dir``: each finished batch's outcome is kept there and reused
    (:class:`~ot_robust.evaluation.batch_cache.BatchCache`, keyed by the attack, the labels rule and the batch)."""
    attack = fast_path(attack) if attack is not None else None
    cache = BatchCache(cache_dir, model) if cache_dir is not None and attack is not None else None
    dev = get_device(device)
    model.to(dev)
    ok = []
    with model_mode(model):
        for b, i in enumerate(range(0, len(x), batch_size)):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            key = cache.key(f"{attack!r}|labels {labels}|batch seed {derive_seed(seed, b)}", xb, yb) if cache else None
            hit = cache.get(key) if cache else None
            if hit is not None:
                ok.append(hit[0])
                continue
            t0 = time.perf_counter()
            xb, yb = xb.to(dev), yb.to(dev)
            ya = yb
            if labels == "predicted" and attack is not None:
                with torch.no_grad():
                    ya = model(xb).argmax(1)
            torch.manual_seed(derive_seed(seed, b))
            xa = attack(model, xb, ya) if attack is not None else xb
            with torch.no_grad():
                ok.append(((model(xb).argmax(1) == yb) & (model(xa).argmax(1) == yb)).cpu())
            if cache:
                cache.put(key, ok[-1], time.perf_counter() - t0)
    return 100.0 * torch.cat(ok).float().mean().item()


def accuracy_vs_epsilon(model, x, y, epsilons: Sequence[float], steps: int = 20, norm: str = "linf",
                        step_size: float | None = None, restarts: int = 1, loss: str = "ce", batch_size: int = 250,
                        device=None, seed: int = 0, labels: str = "true", random_start: bool = True,
                        cache_dir=None) -> pd.DataFrame:
    """PGD-``steps`` accuracy (%) at each eps (FS Fig. 3a; GOT Figs. 2-5).

    Args:
        step_size: None -> ``2.5 * eps / steps`` per eps (Madry et al.); a number: that step at every eps. A fixed
            step bounds how far the ``steps`` gradient steps move a pixel from the attack's (random) start whatever
            eps: at most ``steps * step_size`` (GOT: 40 * 0.01 = 0.4 on the [0, 1] scale); an eps above that is
            reached only through the random start.
        labels: ``"true"`` - the attack is given ``y`` (the default, the usual protocol); ``"predicted"`` - it is
            given the model's clean predictions (argmax of the logits on the clean batch, eval mode, no grad), as
            in GOT's protocol (GOT, ICLR 2022 submission, App. A.3: PGD with k = 40 steps of eta = 0.01 whatever
            eps, on the predicted labels: ``steps=40, step_size=0.01, labels="predicted"``). Either way accuracy is
            counted against the true ``y``: correct on the clean input and on the attack's output. With that count
            and a model that treats each image on its own, ``"predicted"`` gives the numbers of ``"true"`` up to
            floating-point rounding (a misclassified image counts wrong either way; a correct one gets ``y``).
        random_start: PGD's uniform start in the eps ball (default); ``False`` starts at the clean image. Without it
            and with a fixed step, every eps >= ``steps * step_size`` gives the same attack (the projection onto the
            ball never binds): GOT Table 6's GOT rows, identical from eps 0.4 to 0.7, have that signature.
        cache_dir: keep each finished (eps, batch) outcome there and reuse it, so that a stopped sweep goes on where
            it stopped (:mod:`ot_robust.evaluation.batch_cache`; the caller removes the folder when done).
    Returns:
        A DataFrame with columns ``epsilon, accuracy`` (eps on the [0, 1] pixel scale, accuracy in %).
    Raises:
        ValueError: ``labels`` not one of :data:`LABELS` (and PGD's own checks of eps / steps / step_size).
    """
    check_choice("labels", labels, LABELS)
    accs = []
    for e in epsilons:
        atk = None if e == 0 else PGD(e, steps, step_size, norm=norm, restarts=restarts, loss=loss, seed=seed,
                                      random_start=random_start)
        accs.append(_accuracy(model, atk, x, y, batch_size, device, seed, labels, cache_dir))
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
