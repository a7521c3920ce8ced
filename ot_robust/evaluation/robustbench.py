"""RobustBench-style evaluation of any model: its model interface, its test-set convention, its protocol.

RobustBench (Croce et al. 2021, ``robustbench.eval.benchmark``) evaluates an ``nn.Module`` that maps images in
[0, 1] ``(B, C, H, W)`` to logits (normalization inside the model), in eval mode, on the **first n test images in
the dataset's own order** (no shuffling, no class balancing), and reports clean accuracy and the accuracy under
AutoAttack "standard" (fra31's driver with ``bs = batch_size``, 32 by default). :func:`benchmark` follows that
protocol with our AutoAttack (fra31's own components and driver order, :class:`ot_robust.attacks.AutoAttack`) and
adds what RobustBench leaves out: n and a 95% Wilson interval for each accuracy, the per-example masks and the
gradient-masking sanity checks of :mod:`ot_robust.evaluation.sanity`. :func:`load_checkpoint` reads RobustBench /
DataParallel checkpoints (``state_dict`` nesting, ``module.`` prefixes) weights-only.

No download happens (the model zoo needs internet): build the architecture yourself, load its weights with
:func:`load_checkpoint`. Our CIFAR-10 is the JPEG copy in ``../shared/data`` (lossy): numbers on it are not
comparable with RobustBench's leaderboard, and the result says so.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

import torch
from torch import nn

from ..models.loading import load_checkpoint, load_user_model  # noqa: F401 - load_checkpoint: public here too

THREAT_MODELS = {"Linf": "linf", "L2": "l2"}


def first_n(dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test images in the dataset's own order (RobustBench's ``_load_dataset``): ``x (n, C, H, W)``
    in [0, 1], ``y (n,)``. Raises ValueError if ``n`` is not in 1..len(dataset)."""
    from ..core.data import as_tensors

    if int(n) != n or not 1 <= n <= len(dataset):
        raise ValueError(f"n_examples={n!r} must be an integer in 1..{len(dataset)}")
    return as_tensors(dataset, indices=range(int(n)))


def benchmark(model: nn.Module, n_examples: int = 10000, dataset: str = "cifar10", threat_model: str = "Linf",
              eps: float | None = None, batch_size: int = 32, device: str | torch.device | None = None,
              data_root: str | None = None, sanity: bool = True, autoattack=None) -> dict[str, Any]:
    """RobustBench's ``benchmark(model, n_examples, dataset, threat_model, eps, batch_size)`` on our data.

    Args:
        model: [0, 1] images ``(B, C, H, W)`` -> logits ``(B, K)``; run in eval mode (its modes are restored).
        n_examples: the first n test images in dataset order. dataset: a name of :data:`ot_robust.core.data.DATASETS`.
        threat_model: ``"Linf"`` or ``"L2"``. eps: the budget on the [0, 1] scale (required, e.g. 8/255).
        batch_size: fra31's ``bs`` (it decides how robust points are grouped, hence the seeds per batch).
        sanity: also run the gradient-masking checks on the first 100 images (at ``eps``).
        autoattack: an :class:`~ot_robust.attacks.AutoAttack` with lowered budgets (tests only); default: the
            reference "standard" settings at ``eps``.
    Returns:
        ``{"clean_accuracy", "robust_accuracy"}`` (%, as RobustBench's pair), ``n``, ``ci`` (95% Wilson for both),
        ``masks`` (per-example booleans, lists), ``autoattack_log`` (robust % after each component), ``sanity``,
        ``protocol`` (what was run) and ``data_note`` (set when the data differ from RobustBench's).
    Raises:
        ValueError: unknown threat model, missing or bad eps (:func:`ot_robust.core.validation.check_eps`), bad n.
    """
    from ..attacks import AutoAttack, correct_mask
    from ..core.data import get_dataset
    from ..core.stats import wilson_interval
    from ..core.utils import get_device
    from ..core.validation import check_eps

    if threat_model not in THREAT_MODELS:
        raise ValueError(f"threat_model={threat_model!r}; allowed: {sorted(THREAT_MODELS)}")
    if eps is None:
        raise ValueError("eps is required for the Linf and L2 threat models (e.g. 8/255 for CIFAR-10 Linf)")
    norm = THREAT_MODELS[threat_model]
    eps = check_eps(eps, norm)
    dev = get_device(device)
    model.to(dev)
    x, y = first_n(get_dataset(dataset, "test", root=data_root), n_examples)
    aa = autoattack or AutoAttack(eps=eps, norm=norm, seed=0)
    if (aa.eps, aa.norm) != (eps, norm):
        raise ValueError(f"autoattack has eps={aa.eps}, norm={aa.norm!r}; the benchmark asks eps={eps}, {norm!r}")
    x_adv = aa.run(model, x, y, batch_size=batch_size)
    clean = aa.last_clean.cpu()  # the clean predictions the driver started from
    robust = correct_mask(model, x_adv, y, batch_size, dev).cpu() & clean  # re-checked on the returned points
    out: dict[str, Any] = {
        "clean_accuracy": 100.0 * int(clean.sum()) / len(x), "robust_accuracy": 100.0 * int(robust.sum()) / len(x),
        "n": len(x), "ci": {"clean": list(wilson_interval(int(clean.sum()), len(x))),
                            "robust": list(wilson_interval(int(robust.sum()), len(x)))},
        "masks": {"clean": clean.tolist(), "autoattack": robust.tolist()}, "autoattack_log": aa.last_log,
        "protocol": {"dataset": dataset, "threat_model": threat_model, "eps": eps, "batch_size": batch_size,
                     "images": f"first {len(x)} of the test set in dataset order",
                     "attack": ("AutoAttack standard (fra31's components and driver, seed 0)" if autoattack is None
                                else repr(aa))},
        "data_note": ("CIFAR-10 here is a JPEG copy (lossy): not comparable with RobustBench's leaderboard"
                      if dataset.startswith("cifar") else None),
        "sanity": [],
    }
    if sanity:
        from .sanity import run_sanity

        k = min(100, len(x))
        out["sanity"] = run_sanity(model, x[:k].to(dev), y[:k].to(dev), eps, norm)
    return out


def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m ot_robust robustbench --model pkg.module:factory [--checkpoint file] --dataset cifar10
    --eps 8/255 [--threat-model Linf] [--n 1000] [--batch-size 32] [--out result.json]``"""
    from ..core.utils import atomic_write_json, parse_number

    p = argparse.ArgumentParser(prog="python -m ot_robust robustbench", description=cli.__doc__)
    p.add_argument("--model", required=True, metavar="PKG.MODULE:FACTORY",
                   help="a callable returning an nn.Module that maps [0, 1] images to logits")
    p.add_argument("--checkpoint", default=None, help="RobustBench-style weights (state_dict, module. prefixes ok)")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--threat-model", default="Linf", choices=sorted(THREAT_MODELS))
    p.add_argument("--eps", required=True, help="budget on the [0, 1] scale, e.g. 8/255")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None)
    p.add_argument("--no-sanity", action="store_true")
    p.add_argument("--out", default="robustbench.json")
    a = p.parse_args(argv)
    model = load_user_model(a.model)
    if a.checkpoint:
        load_checkpoint(model, a.checkpoint)
    res = benchmark(model, a.n, a.dataset, a.threat_model, parse_number(a.eps), a.batch_size, a.device,
                    sanity=not a.no_sanity)
    ci = {k: "[" + ", ".join(f"{v:.2f}" for v in res["ci"][k]) + "]" for k in ("clean", "robust")}  # no float noise
    print(f"clean accuracy {res['clean_accuracy']:.2f}% {ci['clean']}, robust accuracy (AutoAttack) "
          f"{res['robust_accuracy']:.2f}% {ci['robust']}, n = {res['n']}, {a.threat_model} eps {a.eps}")
    if res["data_note"]:
        print("note:", res["data_note"])
    for s in res["sanity"]:
        print(f"[{s['status']}] {s['check']}: {s['details']}")
    atomic_write_json(a.out, res)
    return 0
