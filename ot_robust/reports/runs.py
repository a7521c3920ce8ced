"""A run of a profile as the reports read it: its training configuration normalised for comparison, its evaluation
with the masking audit's columns, and two runs' per-image results paired on the same images.

Shared by the verdict table (:mod:`ot_robust.reports.claims`) and the paired comparison
(:mod:`ot_robust.reports.paired`), so that both compare configurations and pair images the same way.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.run_files import read_config
from ..evaluation.results import has_eval, read_evaluation
from ..profiles.paths import RunLayout

#: TrainConfig fields that every compared pair must share (the method and its parameters are compared separately)
SAME_TRAINING = ("dataset", "model", "model_params", "epochs", "batch_size", "optimizer", "lr", "momentum",
                 "weight_decay", "nesterov", "schedule", "milestones", "gamma", "num_train", "subset", "augment",
                 "amp", "eval_eps", "eval_steps", "eval_step_size", "eval_n")
#: configuration fields that say nothing about the trained model (where and how verbosely it ran)
NOT_TRAINING = ("progress", "device", "data_root", "num_workers")


def train_config(runs_dir: str | Path, profile: str, exp: str) -> dict | None:
    """The training ``config`` of ``runs_dir/profile/train/exp/config.json``, or None if it has none."""
    rec = read_config(RunLayout(str(runs_dir), profile).train(exp))
    return None if rec is None else rec["config"]


def load_run(runs_dir: str | Path, profile: str, exp: str) -> tuple[dict, dict] | None:
    """``(eval, {"masks": {column: bool array}, "indices": int array})`` of ``exp``, its evaluation merged with its
    masking audit (audit columns such as ``rays`` count as columns too), or None when it has not been evaluated."""
    if not has_eval(RunLayout(str(runs_dir), profile).eval(exp), masks=True):
        return None
    ev, masks, idx = read_evaluation(Path(runs_dir) / profile, exp)
    return ev, {"masks": masks, "indices": idx}


def flat(params: dict, prefix: str = "") -> dict:
    """``{"inner_params": {"eps": 0.1}}`` -> ``{"inner_params.eps": 0.1}``: a wrapper's inner adversary (AWP's) is
    compared key by key, like a plain method's."""
    out = {}
    for k, v in params.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def normalised(cfg: dict) -> tuple[dict, dict]:
    """``(training, params)`` of a run's ``config``: ``training`` has every TrainConfig field (one newer than the
    run's config.json ran at its default, as on resume) without ``method_params``; ``params`` has the method's
    parameters with the values runs had before a key was recorded
    (:func:`ot_robust.defenses.base.resolve_recorded`), flattened by :func:`flat`."""
    from ..defenses.base import resolve_recorded
    from ..training.config import TrainConfig

    training = {**TrainConfig().to_dict(), **cfg}
    mp = training.pop("method_params", None) or {}
    return training, flat(resolve_recorded(cfg["method"], mp, mp))


def config_differences(cfg_a: dict, cfg_b: dict, fields: tuple[str, ...] | None = None, params: str = "union",
                       ignore: tuple[str, ...] = ()) -> list[str]:
    """``["epochs: 4 vs 6", "steps: 5 vs 3", ...]``: where two run configurations differ. ``fields``: the training
    fields compared (None: all but :data:`NOT_TRAINING` and ``seed``); ``params``: ``"union"`` compares every method
    parameter either run has (one the other lacks reads ``'default'``), ``"shared"`` only those both have;
    ``ignore``: names left out of both (e.g. the factor a claim is about).

    Raises:
        ValueError: ``params`` is neither ``"union"`` nor ``"shared"``.
    """
    if params not in ("union", "shared"):
        raise ValueError(f"params={params!r}: allowed 'union' or 'shared'")
    (ta, pa), (tb, pb) = normalised(cfg_a), normalised(cfg_b)
    keys = fields if fields is not None else sorted(k for k in set(ta) | set(tb)
                                                    if k not in NOT_TRAINING and k != "seed")
    out = [f"{k}: {ta.get(k)!r} vs {tb.get(k)!r}" for k in keys if ta.get(k) != tb.get(k) and k not in ignore]
    names = set(pa) | set(pb) if params == "union" else set(pa) & set(pb)
    return out + [f"{k}: {pa.get(k, 'default')!r} vs {pb.get(k, 'default')!r}" for k in sorted(names)
                  if pa.get(k, "default") != pb.get(k, "default") and k not in ignore]


def paired_robust(run_a: tuple[dict, dict], run_b: tuple[dict, dict], column: str,
                  what: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-image robustness of two loaded runs (:func:`load_run`) under ``column`` on their shared images (the
    first ``min`` of both): an image counts only if it is also classified correctly clean (bool arrays, equal length).

    Raises:
        ValueError: the runs were evaluated on different images (``what`` names them in the message).
    """
    (ma, ia), (mb, ib) = ((r[1]["masks"], r[1]["indices"]) for r in (run_a, run_b))
    n = min(len(ma[column]), len(mb[column]))
    if not np.array_equal(ia[:n], ib[:n]):
        raise ValueError(f"{what} were evaluated on different images (column {column!r}); rerun their evaluations "
                         "with the same profile")
    return ma[column][:n] & ma["clean"][:n], mb[column][:n] & mb["clean"][:n]
