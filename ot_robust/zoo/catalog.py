"""The zoo's catalogue: every trained run under a results folder, its stable name, its evaluation and its status.

A run is a folder ``<results_dir>/<profile>/train/<experiment>/`` holding ``config.json`` or ``model.pt``
(:class:`ot_robust.profiles.paths.RunLayout`); its evaluation is ``<results_dir>/<profile>/eval/<experiment>/``,
read with :func:`ot_robust.evaluation.results.read_eval`. The naming scheme is in :mod:`ot_robust.zoo`.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.run_files import (CHECKPOINT_FILE, CONFIG_FILE, MODEL_FILE, TRAIN_DIR, read_config, read_diverged,
                              read_metrics)
from ..core.stats import wilson_interval
from ..core.utils import REPO_ROOT
from ..evaluation.results import has_eval, read_eval
from ..profiles.paths import RunLayout

#: the committed results of the study (``<profile>/train/<experiment>/``, ``<profile>/eval/<experiment>/``) of the
#: checkout this package was imported from; see :func:`results_root` for where the zoo looks
RESULTS_DIR = REPO_ROOT / "results"
#: environment variable naming the results folder of the zoo (a clone's ``results/``)
RESULTS_ENV = "OT_ROBUST_RESULTS"


def results_root(results_dir: str | Path | None = None) -> Path:
    """Where the zoo's runs are: ``results_dir`` if given, else ``$OT_ROBUST_RESULTS``, else :data:`RESULTS_DIR`
    when the package runs from a checkout (or an editable install), else ``./results`` (a plain ``pip install .``
    used from inside the clone)."""
    import os

    if results_dir is not None:
        return Path(results_dir)
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    return RESULTS_DIR if RESULTS_DIR.is_dir() else Path.cwd() / "results"
#: the status of a model whose evaluation is current (every other status withholds the numbers)
STATUS_OK = "ok"
#: the accuracy columns of the zoo: clean, PGD-20 and AutoAttack (each with ``_n``, ``_lo``, ``_hi``)
METRICS = ("clean", "pgd20", "autoattack")
#: the columns of :func:`list_models`, in order
COLUMNS = (["name", "dataset", "eps", "architecture", "method", "seed", "epochs"]
           + [f"{m}{s}" for m in METRICS for s in ("", "_lo", "_hi", "_n")]
           + ["sanity", "status", "weights", "profile", "experiment", "run_dir"])


@dataclass(frozen=True)
class Run:
    """One trained run: its zoo ``name``, ``profile`` and ``experiment`` (folder names), ``run_dir`` and recorded
    training ``config`` (the ``config`` mapping of its ``config.json``; ``{}`` when there is none)."""

    name: str
    profile: str
    experiment: str
    run_dir: Path
    config: dict[str, Any]


def _config(run_dir: Path) -> dict[str, Any]:
    try:
        rec = read_config(run_dir)
    except json.JSONDecodeError as e:
        raise ValueError(f"{run_dir / CONFIG_FILE} is not a run configuration (JSON): {e}") from None
    if rec is None:
        return {}
    cfg = rec.get("config", {}) if isinstance(rec, dict) else {}
    spec = rec.get("model_spec", {}) if isinstance(rec, dict) else {}
    return {**cfg, "model": cfg.get("model", spec.get("name")), "dataset": cfg.get("dataset", spec.get("dataset"))}


def runs(results_dir: str | Path | None = None) -> list[Run]:
    """Every run under ``results_dir`` (default :func:`results_root`), sorted by profile and experiment, named by the
    scheme of :mod:`ot_robust.zoo`. Raises ValueError for a ``config.json`` that is not JSON."""
    from ..profiles.paths import profile_dataset

    root = results_root(results_dir)
    found = []
    for d in sorted(root.glob(f"*/{TRAIN_DIR}/*")):
        if d.is_dir() and ((d / CONFIG_FILE).is_file() or (d / MODEL_FILE).exists()):
            cfg = _config(d)
            profile = d.parent.parent.name
            found.append((profile, d.name, d, cfg, cfg.get("dataset") or profile_dataset(profile, "unknown")))
    clash = Counter((ds, exp) for _, exp, _, _, ds in found)
    return [Run(f"{ds}/{prof}/{exp}" if clash[ds, exp] > 1 else f"{ds}/{exp}", prof, exp, d, cfg)
            for prof, exp, d, cfg, ds in found]


def model_names(results_dir: str | Path | None = None) -> list[str]:
    """The names of every model of the zoo (sorted)."""
    return sorted(r.name for r in runs(results_dir))


def resolve(name: str, results_dir: str | Path | None = None) -> Run:
    """The run named ``name``.

    Raises:
        ValueError: ``name`` is not a zoo name; one line naming it and its close matches (or how to list them all).
    """
    found = {r.name: r for r in runs(results_dir)}
    if isinstance(name, str) and name in found:
        return found[name]
    text = str(name)
    tail = text.rsplit("/", 1)[-1]
    by_tail: dict[str, list[str]] = {}
    for n in sorted(found):
        by_tail.setdefault(n.rsplit("/", 1)[-1], []).append(n)
    close = [n for t in difflib.get_close_matches(tail, list(by_tail), n=3, cutoff=0.7) for n in by_tail[t]]
    close += [n for n in difflib.get_close_matches(text, sorted(found), n=5, cutoff=0.6) if n not in close]
    if not found:
        raise ValueError(f"unknown zoo model {name!r}: no trained run under {results_root(results_dir)} (the zoo "
                         f"reads a clone's results/: run from the clone or set {RESULTS_ENV})")
    hint = f"close matches: {', '.join(close[:6])}" if close else "no close match"
    raise ValueError(f"unknown zoo model {name!r}; {hint} (names are <dataset>/<experiment>; "
                     f"`python -m ot_robust zoo` lists all {len(found)})")


def weights_missing(run_dir: str | Path) -> str | None:
    """Why ``run_dir`` holds no loadable ``model.pt`` in this checkout (one sentence), or None when it does."""
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        partial = (f" (training not finished: only {CHECKPOINT_FILE})" if (path.parent / CHECKPOINT_FILE).is_file()
                   else "")
        return f"{path} is not in this checkout{partial}"
    with open(path, "rb") as f:
        if f.read(64).startswith(b"version https://git-lfs"):
            return f"{path} is a Git LFS pointer, not the weights (fetch them with `git lfs pull`)"
    return None


#: status of a run stopped between epochs (a checkpoint, no final ``model.pt`` yet): the next chunk resumes it
IN_TRAINING = "in training"


def _status(root: Path, prof: Any, run: Run) -> str:
    """``ok`` when the evaluation stands for the model and its profile, else why not (``in training (epoch k of
    N)`` for a run stopped between epochs)."""
    from ..reports.claims import stale_reason

    if prof is None:
        return f"unknown profile {run.profile!r}"
    if run.experiment not in prof.methods:
        return f"not a method of profile {run.profile!r}"
    diverged = read_diverged(run.run_dir)
    if diverged is not None:
        return f"training diverged (epoch {diverged['epoch']}, batch {diverged['batch']}): no model"
    if not (run.run_dir / MODEL_FILE).exists() and (run.run_dir / CHECKPOINT_FILE).is_file():
        done = sum(1 for m in read_metrics(run.run_dir) if "epoch" in m)
        return f"{IN_TRAINING} (epoch {done} of {run.config.get('epochs', '?')})"
    why = stale_reason(root, prof, run.experiment)
    if why:
        return f"stale: {why}"
    if not has_eval(RunLayout(str(root), run.profile).eval(run.experiment)):
        return "not evaluated"
    return STATUS_OK


def scores(ev: dict[str, Any]) -> dict[str, Any]:
    """``{clean, clean_lo, clean_hi, clean_n, pgd20, ..., autoattack_n}`` of one ``eval.json``: accuracy in %, 95%
    Wilson interval in % (the recorded ``ci``, else :func:`ot_robust.core.stats.wilson_interval` of the rounded
    count) and the number of images; None where the evaluation did not measure the column."""
    out: dict[str, Any] = {}
    for col in METRICS:
        acc = (ev.get("accuracy") or {}).get(col)
        n = (ev.get("n") or {}).get(col)
        if col == "autoattack":
            acc = ev.get("autoattack") if acc is None else acc
            n = ev.get("autoattack_n_examples") if n is None else n
        ci = (ev.get("ci") or {}).get(col)
        if acc is not None and n and ci is None:
            ci = wilson_interval(round(acc * n / 100), int(n))
        known = acc is not None and bool(n)
        out.update({col: acc if known else None, f"{col}_lo": ci[0] if known else None,
                    f"{col}_hi": ci[1] if known else None, f"{col}_n": int(n) if known else None})
    return out


def _shown_path(p: Path) -> str:
    try:
        return p.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return p.as_posix()


def list_models(results_dir: str | Path | None = None) -> pd.DataFrame:
    """Every model under ``results_dir`` (default :func:`results_root`), one row each, in :data:`COLUMNS` order.

    Columns: ``name`` (the zoo name), ``dataset``, ``eps`` (the Linf budget of the profile's attacks),
    ``architecture`` (the model registry name), ``method`` (the profile's ``label`` under the figures' one name
    map, :func:`ot_robust.core.style.figure_name`: Madry -> PGD-AT, Proposed -> FS), ``seed``,
    ``epochs``; for clean, PGD-20 and AutoAttack: the accuracy in %, its 95% Wilson interval (``_lo``, ``_hi``, in %)
    and the number of test images (``_n``); ``sanity`` (``pass``, ``flag: <checks>`` or blank when none ran),
    ``status`` (``ok``, or why no current evaluation stands for the model: ``stale: ...`` from
    :func:`ot_robust.reports.claims.stale_reason`, ``not evaluated``, ``in training (epoch k of N)``, ...),
    ``weights`` (whether ``model.pt`` is in
    this checkout), ``profile``, ``experiment`` and ``run_dir`` (relative to the repository when inside it).
    A row whose status is not ``ok`` has blank accuracies and sanity: numbers of an older model are never shown.

    Raises:
        ValueError: a ``config.json`` that is not JSON.
    """
    from ..profiles import ProfileError, load_profile
    from ..profiles.paths import profile_eps
    from ..core.style import figure_name  # one name map for figures and the leaderboard (Madry -> PGD-AT)
    from ..reports.tables import sanity_text

    root = results_root(results_dir)
    profiles: dict[str, Any] = {}
    eps: dict[tuple[str, str], float] = {}
    rows = []
    for run in runs(root):
        if run.profile not in profiles:
            try:
                profiles[run.profile] = load_profile(run.profile)
            except ProfileError:
                profiles[run.profile] = None
        prof = profiles[run.profile]
        known = prof is not None and run.experiment in prof.methods
        dataset = run.name.split("/", 1)[0]
        if (run.profile, dataset) not in eps:
            try:
                eps[run.profile, dataset] = profile_eps(run.profile, dataset)
            except ValueError:  # neither the profile nor the dataset is known
                eps[run.profile, dataset] = None
        status = _status(root, prof, run)
        ev = read_eval(RunLayout(str(root), run.profile).eval(run.experiment)) if status == STATUS_OK else {}
        rows.append({
            "name": run.name, "dataset": dataset, "eps": eps[run.profile, dataset],
            "architecture": run.config.get("model"),
            "method": figure_name(prof.label(run.experiment)) if known else run.config.get("method"),
            "seed": prof.seed_of(run.experiment) if known else run.config.get("seed"),
            "epochs": run.config.get("epochs"), **scores(ev),
            "sanity": sanity_text(ev) if ev else "", "status": status,
            "weights": weights_missing(run.run_dir) is None, "profile": run.profile,
            "experiment": run.experiment, "run_dir": _shown_path(run.run_dir)})
    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in ["seed", "epochs"] + [f"{m}_n" for m in METRICS]:
        df[col] = df[col].astype("Int64")
    for col in ["eps"] + [f"{m}{s}" for m in METRICS for s in ("", "_lo", "_hi")]:
        df[col] = df[col].astype(float)
    return df
