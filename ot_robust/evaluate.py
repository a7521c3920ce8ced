"""The robust-evaluation suite: every robustness number of this project comes from :func:`evaluate`.

``evaluate(model, data, ["pgd-linf eps=8/255 steps=20 step=2/255 restarts=5", "autoattack eps=8/255"])`` returns an
:class:`EvalReport`: a table with clean accuracy, accuracy under each attack (per-example worst case over its
restarts), the FS-rebuttal "min over R runs" row for attacks with restarts, the per-example worst case over all
attacks, and the gradient-masking sanity checks of :mod:`ot_robust.sanity` beside them. Accuracy = correct on the
clean input *and* on the attack's output, in %. Curves: :func:`accuracy_vs_epsilon` (FS Fig. 3a, GOT Figs. 2-5),
:func:`accuracy_vs_steps` (FS Fig. 3b-c), :func:`pgd_loss_curves` (FS supplement Fig. 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from torch import nn

from .attacks import PGD, fast_path, make_attack, model_mode, parse_spec
from .attacks.losses import LOSSES
from .batch_cache import BatchCache
from .sanity import SanityConfig, check_table_consistency, run_sanity
from .utils import atomic_write_json, get_device, provenance, tqdm_class

COLUMNS = ["attack", "spec", "accuracy", "n", "ci_low", "ci_high", "runs", "max_min", "time_s"]


@dataclass
class EvalReport:
    """Result of :func:`evaluate`. ``table`` columns: attack, spec, accuracy (%), n, ci_low/ci_high (95% Wilson
    interval, %, :func:`ot_robust.stats.wilson_interval`), runs, max_min (spread of the per-run accuracies, FS
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


def _load_data(dataset, n: int, order: str = "first"):
    """``(x, y, name, indices)``: the first ``n`` examples, or with ``order="balanced"`` the first ``n`` of the
    class round-robin (:func:`ot_robust.data.class_round_robin`), a fixed class-balanced order in which every
    prefix is balanced: AutoAttack on the first 1,000 and PGD on all 10,000 then share their first 1,000 images."""
    if order not in ("first", "balanced"):
        raise ValueError(f"order={order!r}; allowed: 'first', 'balanced'")
    from .data import as_tensors, class_round_robin, dataset_targets, get_dataset

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
    from .data import first_n_indices

    idx = list(first_n_indices(dataset, n))
    x, y = as_tensors(dataset, indices=idx)
    return x, y, name, idx


def _row(attack: str, spec: str, mask: torch.Tensor, **kw) -> dict[str, Any]:
    from .stats import wilson_interval

    k, n = int(mask.sum()), int(mask.numel())
    lo, hi = wilson_interval(k, n)
    return dict(attack=attack, spec=spec, accuracy=100.0 * k / n, n=n, ci_low=lo, ci_high=hi, **kw)


def _seed(base: int, *parts: int) -> int:
    s = base
    for p in parts:
        s = (s * 1_000_003 + p + 1) % (2**31 - 1)
    return s


def _runs(attack, seed: int, i: int) -> list:
    """Restart studies run one restart at a time (per-run accuracies for the FS 'min over R runs' row)."""
    r = getattr(attack, "restarts", 1)
    fields = {f.name for f in dataclasses.fields(attack)} if dataclasses.is_dataclass(attack) else set()
    if r > 1 and hasattr(attack, "replace") and "seed" in fields:
        return [attack.replace(restarts=1, seed=_seed(seed, i, j)) for j in range(r)]
    return [attack]


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


def _robust_mask(model, attack, x, y, batch_size, device, seed, spec, bar, cache=None, log=None
                 ) -> tuple[torch.Tensor, float]:
    """Per-example robust mask of ``attack`` on ``x`` (batches seeded from ``seed``) and the attack seconds it took
    (cached batches count with the seconds they took when they ran)."""
    attack = fast_path(attack)  # only the masks are read
    out, seconds = [], 0.0
    for b, start in enumerate(range(0, len(x), batch_size)):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        s = _seed(seed, b)
        atk = attack
        if dataclasses.is_dataclass(attack) and "seed" in {f.name for f in dataclasses.fields(attack)} \
                and attack.seed is None:
            atk = dataclasses.replace(attack, seed=s)
        key = cache.key(f"{atk!r}|batch seed {s}", xb, yb) if cache is not None else None
        hit = cache.get(key) if cache is not None else None
        if hit is None:
            t0 = time.perf_counter()
            xb, yb = xb.to(device), yb.to(device)
            torch.manual_seed(s)
            x_adv = atk(model, xb, yb)
            _check_bounds(atk, xb, x_adv, spec)
            with torch.no_grad(), model_mode(model):
                mask = (model(x_adv).argmax(1) == yb).cpu()
            hit = (mask, time.perf_counter() - t0)
            if cache is not None:
                cache.put(key, *hit)
        out.append(hit[0])
        seconds += hit[1]
        bar.update(len(xb))
        if log is not None:
            done = start + len(xb)
            log(f"{spec}: {done}/{len(x)} images, {100.0 * float(torch.cat(out).float().mean()):.1f}% robust so far",
                force=done == len(x))
    return torch.cat(out), seconds


def evaluate(model: nn.Module, dataset, attacks: Sequence[str], n_examples: int = 1000, seed: int = 0,
             batch_size: int = 250, device=None, sanity: bool = True, progress: bool = True,
             eps_for_sanity: float | None = None, sanity_config: SanityConfig | None = None,
             norm_for_sanity: str | None = None, order: str = "first", cache_dir: str | Path | None = None,
             log=None) -> EvalReport:
    """Robust accuracy of ``model`` on the first ``n_examples`` of ``dataset`` under each attack spec.

    Args:
        model: images (B, C, H, W) in [0, 1] -> logits; evaluated in eval mode (its modes are restored).
        dataset: a Dataset, a dataset name (its test split) or an ``(x, y)`` tuple of tensors.
        attacks: spec strings for :func:`ot_robust.attacks.make_attack` (or attack objects).
        seed: every random choice (starts, targets, Square) derives from it: equal seeds give equal numbers.
        sanity: run :func:`ot_robust.sanity.run_sanity` (at ``eps_for_sanity``, default: the first attack's eps)
            plus :func:`~ot_robust.sanity.check_table_consistency` on the table.
        order: ``"first"`` (the first ``n_examples``; class-sorted datasets interleaved) or ``"balanced"`` (the
            first ``n_examples`` of the class round-robin: the pipeline's order, so that evaluations with
            different ``n_examples`` share their first images).
        cache_dir: keep each finished attack batch's outcome there (:mod:`ot_robust.batch_cache`) and reuse
            outcomes found there: a killed evaluation, called again, goes on where it stopped with the same numbers.
            The caller removes the folder when done (:func:`ot_robust.batch_cache.clear`).
        log: called with a progress line after each attack batch (``log(message, force=...)``, e.g. a
            :class:`ot_robust.utils.ProgressLog`, which streams them to the pipeline's console log).
    Returns:
        :class:`EvalReport`.
    Raises:
        ValueError: bad spec (see ``make_attack``), ``n_examples``/``batch_size`` < 1, inputs outside [0, 1].
        RuntimeError: an attack returned a point outside its budget or [0, 1] (a bug, never silently accepted).
    """
    if n_examples < 1 or batch_size < 1:
        raise ValueError(f"n_examples={n_examples} and batch_size={batch_size} must be >= 1")
    objs = [make_attack(a) if isinstance(a, str) else a for a in attacks]
    specs = [a if isinstance(a, str) else repr(a) for a in attacks]
    dev = get_device(device)
    model = model.to(dev)
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2 and len(dataset[0]) != len(dataset[1]):
        raise ValueError(f"x has {len(dataset[0])} images but y has {len(dataset[1])} labels; give one label per image")
    x, y, data_name, indices = _load_data(dataset, n_examples, order)
    from .validation import check_images, check_labels

    check_images(x)
    check_labels(y, len(x))
    rows, robust = [], {}
    devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), model_mode(model):
        with torch.no_grad():
            clean = torch.cat([model(x[i:i + batch_size].to(dev)).argmax(1).cpu() == y[i:i + batch_size]
                               for i in range(0, len(x), batch_size)])
        rows.append(_row("clean", "", clean, runs=1, max_min=0.0, time_s=0.0))
        robust["clean"] = clean
        worst = clean.clone()
        cache = None if cache_dir is None else BatchCache(cache_dir, model)
        total = sum(len(_runs(a, seed, i)) for i, a in enumerate(objs)) * len(x)
        with tqdm_class()(total=total, disable=not progress, desc="evaluate", unit="ex") as bar:
            for i, (spec, atk) in enumerate(zip(specs, objs)):
                name = parse_spec(spec)[0] if isinstance(attacks[i], str) else type(atk).__name__
                done = [_robust_mask(model, run, x, y, batch_size, dev, _seed(seed, i, j), spec, bar, cache,
                                     log)
                        for j, run in enumerate(_runs(atk, seed, i))]
                runs = [clean & m for m, _ in done]
                acc_runs = [100.0 * r.float().mean().item() for r in runs]
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
            eps = eps if eps is not None else (0.3 if x.shape[1] == 1 else 8 / 255)
            checks = check_table_consistency(table) + run_sanity(model, x.to(dev), y.to(dev), eps, norm or "linf",
                                                                 sanity_config)
    meta = dict(n_examples=len(x), seed=seed, batch_size=batch_size, dataset=data_name, attacks=specs,
                device=str(dev), order=order, indices=[int(i) for i in indices])
    return EvalReport(table, rows[-1]["accuracy"], checks, meta, {k: v.tolist() for k, v in robust.items()})


def _accuracy(model, attack, x, y, batch_size, device, seed) -> float:
    attack = fast_path(attack) if attack is not None else None
    dev = get_device(device)
    model.to(dev)
    ok = []
    with model_mode(model):
        for b, i in enumerate(range(0, len(x), batch_size)):
            xb, yb = x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)
            torch.manual_seed(_seed(seed, b))
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

    With one restart and a named loss, one run of ``max(steps_list)`` steps gives every point (issue 15: no
    repeated work): a ``k``-step PGD from the same start fools exactly the examples whose first fooling iterate
    is ``<= k`` (``fooled_at`` of :func:`ot_robust.attacks.perturb`); otherwise one run per point.

    Returns a DataFrame with columns ``steps, accuracy``.
    """
    steps_list = [int(s) for s in steps_list]
    if restarts != 1 or loss not in LOSSES or not steps_list:
        accs = [_accuracy(model, PGD(eps, s, step_size, norm=norm, restarts=restarts, loss=loss, seed=seed),
                          x, y, batch_size, device, seed) for s in steps_list]
        return pd.DataFrame({"steps": steps_list, "accuracy": accs})
    from .attacks import perturb
    from .attacks.whitebox import make_generator

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

    from .attacks import perturb

    step_size = 2.5 * eps / steps if step_size is None else step_size
    gen = torch.Generator(device=dev).manual_seed(seed)
    perturb(model, xr, yr, LOSSES[loss], eps, step_size, steps, norm=norm, keep_best=True, generator=gen,
            callback=cb)
    return pd.DataFrame([(s, t, float(record[t, s])) for t in range(steps + 1) for s in range(n_starts)],
                        columns=["start", "iteration", "loss"])


def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m ot_robust evaluate --run RUN_DIR --attacks "pgd-linf eps=8/255 steps=20; autoattack eps=8/255"
    --n 500 --out eval.json``: load ``RUN_DIR`` with ``ot_robust.train.load_model``, evaluate, print, write JSON.
    ``--model pkg.module:factory [--checkpoint weights.pt] --dataset NAME`` evaluates your own model instead
    (:func:`load_user_model`)."""
    p = argparse.ArgumentParser(prog="python -m ot_robust evaluate", description=cli.__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run directory of this project (config.json, model.pt)")
    src.add_argument("--model", metavar="PKG.MODULE:FACTORY",
                     help="your own model: a callable returning an nn.Module that maps [0, 1] images to logits")
    p.add_argument("--checkpoint", default=None, help="with --model: a state_dict file (read weights-only)")
    p.add_argument("--attacks", required=True, help="attack specs separated by ';'")
    p.add_argument("--dataset", default=None, help="dataset name (default: the run's config.json 'dataset')")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="JSON output (default: RUN_DIR/eval.json)")
    p.add_argument("--no-sanity", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    from .train import load_model  # lazy: owned by the trainer

    run = Path(a.run) if a.run else None
    dataset = a.dataset
    if run is None and dataset is None:
        raise ValueError("--model needs --dataset (e.g. --dataset cifar10 or imagefolder:<path>)")
    if dataset is None:
        cfg = json.loads((run / "config.json").read_text())
        dataset = cfg.get("config", cfg).get("dataset")  # the trainer nests the TrainConfig fields under "config"
        if not dataset:
            raise ValueError(f"{run / 'config.json'} names no dataset; pass --dataset")
    specs = [s.strip() for s in a.attacks.split(";") if s.strip()]
    if not specs:
        raise ValueError(f"--attacks {a.attacks!r} names no attack; give specs separated by ';', "
                         "e.g. 'pgd-linf eps=8/255 steps=20; autoattack eps=8/255'")
    for spec in specs:  # bad specs are refused before a model is loaded
        make_attack(spec)
    if a.n < 1 or a.batch_size < 1:
        raise ValueError(f"--n {a.n} and --batch-size {a.batch_size} must be >= 1")
    model = load_model(run, device=a.device) if run else load_user_model(a.model, a.checkpoint)
    rep = evaluate(model, dataset, specs, n_examples=a.n, seed=a.seed, batch_size=a.batch_size, device=a.device,
                   sanity=not a.no_sanity, progress=not a.no_progress)
    print(rep.table.to_string(index=False))
    for s in rep.sanity:
        print(f"[{s['status']}] {s['check']}: {s['details']}")
    rep.to_json(a.out or (run / "eval.json" if run else "eval.json"))
    return 0


def load_user_model(factory: str, checkpoint: str | None = None) -> nn.Module:
    """Your own model for :func:`evaluate`: ``"pkg.module:factory"`` is imported and called with no arguments; its
    result must be an ``nn.Module`` mapping ``(B, C, H, W)`` images in [0, 1] to logits ``(B, K)`` (put any input
    normalization inside the model). ``checkpoint``: a ``state_dict`` file (or a dict holding one under
    ``state_dict`` / ``model``), read with ``torch.load(weights_only=True)``. Returned in eval mode.

    Raises ValueError for a malformed factory string, an import or attribute error, a factory that returns no
    module, or a checkpoint that is not weights-only or does not fit the model.
    """
    import importlib

    mod_name, _, attr = factory.partition(":")
    if not mod_name or not attr:
        raise ValueError(f"--model {factory!r}: expected 'pkg.module:factory' (a callable returning an nn.Module)")
    try:
        fn = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"--model {factory!r}: {type(e).__name__}: {e}") from None
    model = fn()
    if not isinstance(model, nn.Module):
        raise ValueError(f"--model {factory!r} returned {type(model).__name__}, not a torch.nn.Module")
    if checkpoint:
        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - unpickling errors come in many types
            raise ValueError(f"--checkpoint {checkpoint}: cannot be read as weights ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
        if isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
            state = state.get("state_dict", state.get("model", state))
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"--checkpoint {checkpoint} does not fit {factory}: {str(e).splitlines()[0]}") from None
    return model.eval()
