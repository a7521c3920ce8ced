"""The robust-evaluation suite: every robustness number of this project comes from :func:`evaluate`.

``evaluate(model, data, ["pgd-linf eps=8/255 steps=20 step=2/255 restarts=5", "autoattack eps=8/255"])`` returns an
:class:`EvalReport`: a table with clean accuracy, accuracy under each attack (per-example worst case over its
restarts), the FS-rebuttal "min over R runs" row for attacks with restarts, the per-example worst case over all
attacks, and the gradient-masking sanity checks of :mod:`ot_robust.evaluation.sanity` beside them. Accuracy = correct on
the clean input *and* on the attack's output, in %. The curves (accuracy vs eps / steps, PGD loss over iterations) are
in :mod:`ot_robust.evaluation.curves`; loading models (run folders, your own factory, checkpoints) in
:mod:`ot_robust.models.loading`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from torch import nn

from ..attacks import AttackSpec, correct_mask, fast_path, model_mode, restart_runs, with_default_seed
from .batch_cache import BatchCache
from ..core.run_files import CONFIG_FILE
from .results import EVAL_FILE
from ..models.loading import load_model, load_user_model
from .sanity import SanityConfig, _kind, check_table_consistency, run_sanity
from ..training.budget import BudgetReached
from ..core.utils import atomic_write_json, derive_seed, get_device, provenance, tqdm_class
from ..core.validation import check_choice, check_image_batch, check_labels, check_model

COLUMNS = ["attack", "spec", "accuracy", "n", "ci_low", "ci_high", "runs", "max_min", "time_s"]
#: the image orders of :func:`evaluate` (``order=``) and of ``python -m ot_robust evaluate --order``
ORDERS = ("balanced", "first")
DEFAULT_ORDER = "balanced"  #: the pipeline's order; the API and the command line default to it alike


@dataclass
class EvalReport:
    """Result of :func:`evaluate`. ``table`` columns: attack, spec, accuracy (%), n, ci_low/ci_high (95% Wilson
    interval, %, :func:`ot_robust.core.stats.wilson_interval`), runs, max_min (spread of the per-run accuracies, FS
    rebuttal), time_s. ``robust`` maps each row's attack name to a per-example bool list (the same images, in the
    order of ``meta["indices"]`` when the data came from a dataset)."""

    table: pd.DataFrame
    worst_case: float
    sanity: list[dict[str, Any]]
    meta: dict[str, Any]
    robust: dict[str, list[bool]] = field(default_factory=dict, repr=False)

    @property
    def flags(self) -> list[dict[str, Any]]:
        """The sanity checks with status ``"flag"``."""
        return [s for s in self.sanity if s["status"] == "flag"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: table records, worst case, sanity, meta and provenance (git commit, versions, host)."""
        meta = {k: v for k, v in self.meta.items() if k != "indices"}  # the indices go with the masks
        return {"table": json.loads(self.table.to_json(orient="records")), "worst_case": self.worst_case,
                "sanity": self.sanity, "meta": meta, "provenance": provenance(kind="evaluation", **meta)}

    def to_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` atomically to ``path``."""
        atomic_write_json(path, self.to_dict())


def _load_data(dataset, n: int, order: str = DEFAULT_ORDER):
    """``(x, y, name, indices)``: the first ``n`` examples, or with ``order="balanced"`` the first ``n`` of the
    class round-robin (:func:`ot_robust.core.data.class_round_robin`), a fixed class-balanced order in which every
    prefix is balanced: AutoAttack on the first 1,000 and PGD on all 10,000 then share their first 1,000 images."""
    check_choice("order", order, ORDERS)
    from ..core.data import as_tensors, class_round_robin, dataset_targets, get_dataset

    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        x, y = dataset
        idx = class_round_robin(torch.as_tensor(y))[:n] if order == "balanced" else torch.arange(min(n, len(y)))
        return x[idx], y[idx], "tensors", idx.tolist()
    name = dataset if isinstance(dataset, str) else type(dataset).__name__
    if isinstance(dataset, str):
        dataset = get_dataset(dataset, "test")
    t = dataset_targets(dataset) if order == "balanced" else None
    if t is not None:
        idx = class_round_robin(t)[:n].tolist()
        x, y = as_tensors(dataset, indices=idx)
        return x, y, name, idx
    from ..core.data import first_n_indices

    idx = list(first_n_indices(dataset, n))
    x, y = as_tensors(dataset, indices=idx)
    return x, y, name, idx


def _row(attack: str, spec: str, mask: torch.Tensor, **kw) -> dict[str, Any]:
    from ..core.stats import wilson_interval

    k, n = int(mask.sum()), int(mask.numel())
    lo, hi = wilson_interval(k, n)
    return dict(attack=attack, spec=spec, accuracy=100.0 * k / n, n=n, ci_low=lo, ci_high=hi, **kw)


def _runs(attack, seed: int, i: int) -> list:
    """Restart studies run one restart at a time (per-run accuracies for the FS 'min over R runs' row)."""
    return list(restart_runs(attack, lambda j: derive_seed(seed, i, j)))


def _check_bounds(attack, x: torch.Tensor, x_adv: torch.Tensor, spec: str) -> None:
    if x_adv.shape != x.shape or float(x_adv.min()) < 0 or float(x_adv.max()) > 1:
        raise RuntimeError(f"attack {spec!r} returned an output outside [0, 1] or with the wrong shape")
    eps = getattr(attack, "eps", None)
    if eps is None or not math.isfinite(eps):
        return
    d = (x_adv - x).flatten(1)
    size = d.abs().amax(1) if getattr(attack, "norm", "linf") == "linf" else d.norm(dim=1)
    if float(size.max()) > eps * (1 + 1e-5) + 1e-6:
        raise RuntimeError(f"attack {spec!r} exceeded its budget: {float(size.max()):.6g} > eps={eps:.6g}")


def _robust_mask(model, attack, x, y, batch_size, device, seed, spec, bar, cache=None, log=None, should_stop=None
                 ) -> tuple[torch.Tensor, float]:
    """Per-example robust mask of ``attack`` on ``x`` (batches seeded from ``seed``) and the attack seconds it took
    (cached batches count with the seconds they took when they ran). With a ``cache``, ``should_stop()`` is asked
    after each batch that ran; True raises :class:`~ot_robust.training.budget.BudgetReached` (the batch is kept)."""
    attack = fast_path(attack)  # only the masks are read
    out, seconds, robust = [], 0.0, 0
    for b, start in enumerate(range(0, len(x), batch_size)):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        s = derive_seed(seed, b)
        atk = with_default_seed(attack, s)
        key = cache.key(f"{atk!r}|batch seed {s}", xb, yb) if cache is not None else None
        hit = cache.get(key) if cache is not None else None
        if hit is None:
            t0 = time.perf_counter()
            xb, yb = xb.to(device), yb.to(device)
            torch.manual_seed(s)
            x_adv = atk(model, xb, yb)
            _check_bounds(atk, xb, x_adv, spec)
            hit = (correct_mask(model, x_adv, yb).cpu(), time.perf_counter() - t0)
            if cache is not None:
                cache.put(key, *hit)
                if should_stop is not None and start + len(xb) < len(x) and should_stop():
                    raise BudgetReached(f"evaluation stopped at the budget after {start + len(xb)}/{len(x)} images "
                                        f"of {spec!r}; finished batches are kept in {cache.dir}: rerun to continue")
        out.append(hit[0])
        seconds += hit[1]
        robust += int(hit[0].sum())
        bar.update(len(xb))
        if log is not None:
            done = start + len(xb)
            log(f"{spec}: {done}/{len(x)} images, {100.0 * robust / done:.1f}% robust so far", force=done == len(x))
    return torch.cat(out), seconds


def evaluate(model: nn.Module, dataset, attacks: Sequence[str], n_examples: int = 1000, seed: int = 0,
             batch_size: int = 250, device=None, sanity: bool = True, progress: bool = True,
             eps_for_sanity: float | None = None, sanity_config: SanityConfig | None = None,
             norm_for_sanity: str | None = None, order: str = DEFAULT_ORDER, cache_dir: str | Path | None = None,
             log=None, should_stop=None) -> EvalReport:
    """Robust accuracy of ``model`` on ``n_examples`` images of ``dataset`` (by default the first ``n_examples`` of
    the class-balanced order, see ``order``) under each attack spec.

    Args:
        model: images (B, C, H, W) in [0, 1] -> logits (B, num_classes); evaluated in eval mode on ``device``, and
            handed back on the device it came on (when all its parameters and buffers are on one) and in its
            original train/eval modes. A one-batch probe checks it first
            (:func:`ot_robust.core.validation.check_model`).
        dataset: a Dataset, a dataset name (its test split) or an ``(x, y)`` tuple of tensors: ``x`` (N, C, H, W)
            floating in [0, 1] (a grayscale batch keeps its channel dimension: (N, 1, H, W)), ``y`` (N,) integer
            labels.
        attacks: spec strings or parsed :class:`~ot_robust.attacks.AttackSpec` (see
            :func:`~ot_robust.attacks.make_attack`), or attack objects (any ``attack(model, x, y) -> x_adv`` callable
            with optional ``eps``/``norm``; evaluate asks it only through the attack protocol,
            :mod:`ot_robust.attacks.protocol`: subclass ``AttackProtocol`` to be seeded per batch, split into restart
            runs, or given a fast path).
        seed: every random choice (starts, targets, Square) derives from it: equal seeds give equal numbers.
        sanity: run :func:`ot_robust.evaluation.sanity.run_sanity` (at ``eps_for_sanity``, default: the first attack's
            eps) plus :func:`~ot_robust.evaluation.sanity.check_table_consistency` on the table.
        order: ``"balanced"`` (default: the first ``n_examples`` of the class round-robin, the pipeline's and the
            command line's order, so that evaluations with different ``n_examples`` share their first images) or
            ``"first"`` (the first ``n_examples``; class-sorted datasets interleaved). The per-example masks follow
            ``meta["indices"]``.
        cache_dir: keep each finished attack batch's outcome there (:mod:`ot_robust.evaluation.batch_cache`) and reuse
            outcomes found there: a killed evaluation, called again, goes on where it stopped with the same numbers.
            The caller removes the folder when done (:func:`ot_robust.evaluation.batch_cache.clear`).
        should_stop: with ``cache_dir``, called after each attack batch that ran (e.g.
            :func:`ot_robust.study.signals.deadline_passed`, the pipeline's ``--budget``); True stops the
            evaluation with :class:`~ot_robust.training.budget.BudgetReached`, its finished batches kept in the cache,
            so that the next call goes on from them.
        log: called with a progress line after each attack batch (``log(message, force=...)``, e.g. a
            :class:`ot_robust.core.utils.ProgressLog`, which streams them to the pipeline's console log).
    Returns:
        :class:`EvalReport`.
    Raises:
        ValueError: bad spec (see ``make_attack``), ``n_examples``/``batch_size`` < 1, unknown ``order``, images
            that are not (N, C, H, W) floating in [0, 1], labels outside [0, num_classes), and a model that fails the
            probe: it does not run on the images' shape (both shapes named), returns something other than a logits
            tensor (e.g. a tuple), or (unless every attack is black-box) its output has no autograd graph back to
            its input (``torch.no_grad`` / ``.detach()`` inside ``forward``).
        RuntimeError: an attack returned a point outside its budget or [0, 1] (a bug, never silently accepted).
    """
    if n_examples < 1 or batch_size < 1:
        raise ValueError(f"n_examples={n_examples} and batch_size={batch_size} must be >= 1")
    check_choice("order", order, ORDERS)
    parsed = [AttackSpec.parse(a) if isinstance(a, (str, AttackSpec)) else None for a in attacks]
    objs = [a if p is None else p.build() for a, p in zip(attacks, parsed)]
    specs = [repr(a) if p is None else p.text for a, p in zip(attacks, parsed)]
    names = [type(a).__name__ if p is None else p.name for a, p in zip(objs, parsed)]
    dev = get_device(device)
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        check_image_batch(dataset[0])
        if len(dataset[0]) != len(dataset[1]):
            raise ValueError(f"x has {len(dataset[0])} images but y has {len(dataset[1])} labels; give one label "
                             "per image")
    x, y, data_name, indices = _load_data(dataset, n_examples, order)
    check_image_batch(x)
    homes = {t.device for t in itertools.chain(model.parameters(), model.buffers())}
    model.to(dev)
    try:
        blackbox_only = all(_kind(n) == "black-box" or n.lower() == "rays" for n in names)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):  # a random forward draws nothing
            num_classes = check_model(model, x[:2].to(dev), need_grad=not blackbox_only)
        check_labels(y, len(x), num_classes)
        return _evaluate(model, x, y, data_name, indices, names, objs, specs, seed, batch_size, dev, sanity,
                         progress, eps_for_sanity, sanity_config, norm_for_sanity, order, cache_dir, log, should_stop)
    finally:
        if len(homes) == 1:  # hand the caller's model back where it was
            model.to(homes.pop())


def _evaluate(model, x, y, data_name, indices, names, objs, specs, seed, batch_size, dev, sanity, progress,
              eps_for_sanity, sanity_config, norm_for_sanity, order, cache_dir, log, should_stop) -> EvalReport:
    """The body of :func:`evaluate` once its inputs are checked and the model is on ``dev``."""
    rows, robust = [], {}
    devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), model_mode(model):
        clean = correct_mask(model, x, y, batch_size, dev)
        rows.append(_row("clean", "", clean, runs=1, max_min=0.0, time_s=0.0))
        robust["clean"] = clean
        worst = clean.clone()
        cache = None if cache_dir is None else BatchCache(cache_dir, model)
        total = sum(len(_runs(a, seed, i)) for i, a in enumerate(objs)) * len(x)
        with tqdm_class()(total=total, disable=not progress, desc="evaluate", unit="ex") as bar:
            for i, (spec, atk, name) in enumerate(zip(specs, objs, names)):
                done = [_robust_mask(model, run, x, y, batch_size, dev, derive_seed(seed, i, j), spec, bar, cache,
                                     log, should_stop)
                        for j, run in enumerate(_runs(atk, seed, i))]
                runs = [clean & m for m, _ in done]
                acc_runs = [100.0 * int(r.sum()) / len(r) for r in runs]  # exact: no float32 noise
                both = torch.stack(runs).all(0)
                label = name if name not in robust else f"{name} #{i}"
                rows.append(_row(label, spec, both, runs=len(runs), max_min=max(acc_runs) - min(acc_runs),
                                 time_s=sum(t for _, t in done)))
                robust[label] = both
                if len(runs) > 1:
                    worst_run = runs[min(range(len(runs)), key=lambda j: acc_runs[j])]
                    rows.append(_row(f"{label} (min over {len(runs)} runs)", spec, worst_run, runs=len(runs),
                                     max_min=max(acc_runs) - min(acc_runs), time_s=0.0))
                worst &= both
        rows.append(_row("worst case (all attacks)", "", worst, runs=1, max_min=0.0, time_s=0.0))
        robust["worst case (all attacks)"] = worst
        table = pd.DataFrame(rows, columns=COLUMNS)
        checks = []
        if sanity:
            eps = eps_for_sanity
            norm = norm_for_sanity
            for a in objs:
                if eps is None and isinstance(getattr(a, "eps", None), (int, float)) and 0 < a.eps < math.inf:
                    eps, norm = a.eps, norm or getattr(a, "norm", "linf")
            if eps is None:  # no attack with a finite eps: the dataset's default (tensors: by channel count)
                from ..core.data import default_attack

                eps = default_attack(data_name)[0] if data_name != "tensors" else (0.3 if x.shape[1] == 1 else 8 / 255)
            checks = check_table_consistency(table) + run_sanity(model, x.to(dev), y.to(dev), eps, norm or "linf",
                                                                 sanity_config)
    meta = dict(n_examples=len(x), seed=seed, batch_size=batch_size, dataset=data_name, attacks=specs,
                device=str(dev), order=order, indices=[int(i) for i in indices])
    return EvalReport(table, rows[-1]["accuracy"], checks, meta, {k: v.tolist() for k, v in robust.items()})


def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m ot_robust evaluate --run RUN_DIR --attacks "pgd-linf eps=8/255 steps=20; autoattack eps=8/255"
    --n 500 [--order balanced|first] [--out eval.json]``: load ``RUN_DIR`` with ``ot_robust.training.api.load_model``,
    evaluate (:func:`evaluate`, the same default image order), print the table and the sanity checks, write the JSON
    and print where. ``--model pkg.module:factory [--checkpoint weights.pt] --dataset NAME`` evaluates your own model
    instead (:func:`load_user_model`). The JSON goes to ``--out``, by default ``RUN_DIR/eval.json`` with ``--run`` and
    ``./eval.json`` with ``--model``; an existing file at the default path is never silently replaced (pass ``--out
    PATH`` or ``--overwrite``).

    Raises ValueError (``python -m ot_robust`` prints it as one line ``error: ...``, exit status 2) for bad
    arguments, a ``--run`` that is not a directory, an existing default output without ``--overwrite``, and
    everything :func:`evaluate` refuses."""
    p = argparse.ArgumentParser(prog="python -m ot_robust evaluate", description=cli.__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run directory of this project (config.json, model.pt)")
    src.add_argument("--model", metavar="PKG.MODULE:FACTORY",
                     help="your own model: a callable returning an nn.Module that maps [0, 1] images to logits")
    p.add_argument("--checkpoint", default=None, help="with --model: a state_dict file (read weights-only)")
    p.add_argument("--attacks", required=True, help="attack specs separated by ';'")
    p.add_argument("--dataset", default=None, help="dataset name (default: the run's config.json 'dataset')")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--order", default=DEFAULT_ORDER, choices=ORDERS,
                   help=f"which n test images (default {DEFAULT_ORDER}, as evaluate() and the pipeline): 'balanced' "
                        "= the first n of the class round-robin, 'first' = the first n")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="JSON output (default: RUN_DIR/eval.json with --run, ./eval.json "
                                               "with --model)")
    p.add_argument("--overwrite", action="store_true",
                   help="without --out: replace an existing RUN_DIR/eval.json or ./eval.json")
    p.add_argument("--no-sanity", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    run = Path(a.run) if a.run else None
    dataset = a.dataset
    if run is None and dataset is None:
        raise ValueError("--model needs --dataset (e.g. --dataset cifar10 or imagefolder:<path>)")
    if run is not None and not run.is_dir():
        raise ValueError(f"--run {a.run!r} is not a directory; give a run directory holding config.json and model.pt "
                         "(what `python -m ot_robust train --run-dir DIR` writes)")
    out = Path(a.out) if a.out else (run / EVAL_FILE if run else Path(EVAL_FILE))
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a directory; give a file path, e.g. {str(out / EVAL_FILE)!r}")
    if a.out is None and out.exists() and not a.overwrite:
        default = "RUN_DIR/eval.json with --run" if run else "./eval.json with --model"
        raise ValueError(f"{str(out.resolve())!r} already exists (the default output is {default}); pass --out PATH "
                         "to write elsewhere or --overwrite to replace it")
    if dataset is None:
        cfg = json.loads((run / CONFIG_FILE).read_text())   # no config.json: FileNotFoundError
        dataset = cfg.get("config", cfg).get("dataset")  # the trainer nests the TrainConfig fields under "config"
        if not dataset:
            raise ValueError(f"{run / CONFIG_FILE} names no dataset; pass --dataset")
    specs = [s.strip() for s in a.attacks.split(";") if s.strip()]
    if not specs:
        raise ValueError(f"--attacks {a.attacks!r} names no attack; give specs separated by ';', "
                         "e.g. 'pgd-linf eps=8/255 steps=20; autoattack eps=8/255'")
    for spec in specs:  # bad specs are refused before a model is loaded
        AttackSpec.parse(spec).build()
    if a.n < 1 or a.batch_size < 1:
        raise ValueError(f"--n {a.n} and --batch-size {a.batch_size} must be >= 1")
    model = load_model(run, device=a.device) if run else load_user_model(a.model, a.checkpoint)
    rep = evaluate(model, dataset, specs, n_examples=a.n, seed=a.seed, batch_size=a.batch_size, device=a.device,
                   sanity=not a.no_sanity, progress=not a.no_progress, order=a.order)
    print(format_table(rep.table))
    for s in rep.sanity:
        print(f"[{s['status']}] {s['check']}: {s['details']}")
    rep.to_json(out)
    print(f"wrote {out.resolve()}")
    return 0


def format_table(table: pd.DataFrame, decimals: int = 2) -> str:
    """The table as :func:`cli` prints it: accuracies, intervals and spreads rounded to ``decimals`` (no float noise
    such as 97.00000286102295), seconds to one decimal. The JSON keeps the full values."""
    t = table.copy()
    for c in ("accuracy", "ci_low", "ci_high", "max_min"):
        t[c] = t[c].map(lambda v: f"{v:.{decimals}f}")
    t["time_s"] = t["time_s"].map(lambda v: f"{v:.1f}")
    return t.to_string(index=False)
