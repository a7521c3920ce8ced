"""The OTJR paper's training settings (Sec. 4.1, Table 7-8, Sec. 4.3) and a CPU-scale MNIST variant.

Each preset is a dict of :class:`~ot_robust.training.api.TrainConfig` fields (``method``, ``method_params``,
``dataset``, ``model``, optimiser and schedule), named ``<method>-<dataset>-<model>`` (e.g. ``otjr-cifar10-wrn34-10``,
``otjr-mnist-small_cnn``); :func:`ot_robust.presets.get_preset` returns a copy.

Paper (Sec. 4.1): WRN-34-10, 100 epochs, SGD momentum 0.9, lr 0.1 divided by 10 at epochs 75 and 90, batch 128,
weight decay 2e-4 (authors' config), L_inf PGD-10 training attack eps 8/255 step 2/255, last-epoch model;
OTJR K = 32, lambda_J = 0.002, lambda_SW = 64 (CIFAR-10), K = 128, lambda_J = 0.001 (CIFAR-100); JR-only models
(Table 7) lambda_J = 0.02. The authors' public config uses step 0.007 and lambda_J 0.005; we follow the paper's text.

MNIST CPU-scale variant (our choice, ``mnist_*``): small_cnn on the bundled MNIST sample (or full MNIST), eps 0.1
with PGD-10 step 0.025 (the smoke/quick profiles' budget: a 60k-parameter CNN cannot fit eps 0.3 in a few epochs),
K = 32 (C = 10 as on CIFAR-10), lambda_SW = 64, lambda_J = 0.002 (JR-only: 0.02), Adam lr 1e-3.
"""
from __future__ import annotations

import math

_CIFAR_TRAIN = dict(model="wrn34_10", epochs=100, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9,
                    weight_decay=2e-4, schedule="multistep", milestones=[75, 90], gamma=0.1)
_CIFAR_ATTACK = dict(eps=8 / 255, step_size=2 / 255, steps=10)
_MNIST_TRAIN = dict(dataset="mnist-sample", model="small_cnn", epochs=3, batch_size=128, optimizer="adam", lr=1e-3,
                    weight_decay=0.0, schedule="constant")
_MNIST_ATTACK = dict(eps=0.1, step_size=0.025, steps=10)

#: lambda_J / K per dataset for OTJR (Sec. 4.1) and lambda_J for the JR-only models (Eq. 14 / Table 7).
DATASET_SETTINGS = {
    "cifar10": dict(n_slices=32, lambda_j=0.002, lambda_sw=64.0, jr_only_lambda_j=0.02),
    "cifar100": dict(n_slices=128, lambda_j=0.001, lambda_sw=64.0, jr_only_lambda_j=0.02),
    "mnist": dict(n_slices=32, lambda_j=0.002, lambda_sw=64.0, jr_only_lambda_j=0.02),
}


def _presets() -> dict[str, dict]:
    out = {}
    for ds, s in DATASET_SETTINGS.items():
        attack = _MNIST_ATTACK if ds == "mnist" else _CIFAR_ATTACK
        train = dict(_MNIST_TRAIN) if ds == "mnist" else dict(_CIFAR_TRAIN, dataset=ds)
        otjr = dict(attack, n_slices=s["n_slices"], lambda_j=s["lambda_j"], lambda_sw=s["lambda_sw"])
        warmup = 0 if ds == "mnist" else 10 * math.ceil(50000 / train["batch_size"])
        trades = dict(eps=attack["eps"], step_size=attack["step_size"], steps=attack["steps"], beta=6.0)
        methods = {
            "otjr": otjr,
            "sw": dict(attack, n_slices=s["n_slices"], lambda_sw=s["lambda_sw"]),
            "random_jr": dict(lambda_j=s["jr_only_lambda_j"]),
            "optimal_jr": dict(attack, n_slices=s["n_slices"], lambda_j=s["jr_only_lambda_j"]),
            "sat": dict(attack),
            "sat_jr": dict(attack, lambda_j=s["lambda_j"]),
            "pgd_at": dict(attack),
            # OTJR Table 2's other baselines, trained with the same settings (the paper gives no others): TRADES
            # beta 6 (Zhang et al. 2019), ALP (Kannan et al. 2018) pairing weight 0.5 on a mixed batch
            "trades": trades,
            "alp": dict(attack, lam=0.5, clean_weight=0.5),
            # OTJR Table 3 (CIFAR-100 in the paper): the TRADES / OTJR losses inside AWP, gamma 5e-3 (Wu et al.)
            # warm-up: Wu et al.'s TRADES-AWP trains 10 epochs without the weight perturbation (391 steps/epoch)
            "awp_trades": dict(gamma=5e-3, inner_params=trades, warmup_steps=warmup),
            "awp_otjr": dict(gamma=5e-3, inner_params=otjr, warmup_steps=warmup),
        }
        for method, params in methods.items():
            out[f"{method}-{ds}-{train['model']}".replace("wrn34_10", "wrn34-10")] = dict(
                train, method=method, method_params=params)
    return out


PRESETS = _presets()


#: Table 8 sensitivity grid (CIFAR-10): (lambda_J, lambda_SW, K) rows, the first being the default.
TABLE8_GRID = [(0.002, 64, 32), (0.01, 64, 32), (0.05, 64, 32), (0.002, 32, 32), (0.002, 72, 32), (0.002, 64, 16),
               (0.002, 64, 64)]
