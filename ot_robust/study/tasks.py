"""What each pipeline notebook does, as functions (the notebooks stay thin and the tests can call the same code).

* :func:`train_step` - ``10_train``: the step of the profile's plan -> :func:`run_train` (TrainConfig from the
  profile's settings, ``train(config, run_dir)``).
* :func:`evaluate_step` - ``20_evaluate``: the step of the profile's plan -> :func:`run_evaluate` (attack suite +
  AutoAttack + sanity checks + curves -> ``eval.json``).
* :func:`run_tables` - ``30_tables_*``: paper tables with our numbers (:mod:`ot_robust.reports`).
* :func:`run_figures` - ``40_figures_*``: figures (:mod:`ot_robust.reports`).

The train and evaluate notebooks receive only the profile file, its sha256, the step's name and the plan options,
and resolve everything else from the profile (:func:`resolve_step`), so no value crosses papermill as a string.
The table and figure notebooks receive the profile file too; structured parameters of the analysis notebooks arrive
as JSON (their lists of models). Accuracies are in percent; epsilons on the [0, 1] pixel scale.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from ..profiles.paths import RunLayout
from ..core.run_files import read_diverged, read_metrics
from ..core.utils import ProgressLog, atomic_write_json, provenance
from ..evaluation.results import CURVES_FILE, LOSS_CURVES_FILE, PARTIAL_DIR


def _obj(v: Any) -> Any:
    """A parameter value: JSON text -> Python object; anything else unchanged."""
    return json.loads(v) if isinstance(v, str) else v


def resolve_step(profile_file: str | Path, step: str, profile_sha256: str = "", runs_dir: str | None = None,
                 fig_dir: str = "figures", max_batches: int | None = None):
    """The :class:`~ot_robust.study.pipeline.Step` named ``step`` of the plan of the profile in ``profile_file``
    (built as ``python -m ot_robust reproduce`` builds it, from the current directory); its ``values`` are the
    step's parameters as Python objects.

    Raises:
        ValueError: the profile file changed since the plan that started this step was built (``profile_sha256``
            given and different), or the plan has no such step (KeyError's message, as ValueError).
        ProfileError: the profile is invalid.
    """
    import hashlib

    from ..profiles import load_profile
    from .pipeline import build_plan

    if profile_sha256:
        now = hashlib.sha256(Path(profile_file).read_bytes()).hexdigest()
        if now != profile_sha256:
            raise ValueError(f"{profile_file} changed since this step was planned (sha256 {now[:12]}, planned "
                             f"{profile_sha256[:12]}): run `python -m ot_robust reproduce` again")
    plan = build_plan(load_profile(profile_file), runs_dir=runs_dir, fig_dir=fig_dir, max_batches=max_batches)
    try:
        return plan[step]
    except KeyError as e:
        raise ValueError(e.args[0]) from None


def _run_step(task, profile_file: str | Path, step: str, plan_options: dict[str, Any]) -> dict[str, Any]:
    """``task(**values)`` of the resolved step; a stop at the budget (:class:`BudgetReached`) is recorded in the
    step's ``.stopped.json`` (what the pipeline reads to tell a stop from a failure) before it propagates."""
    import time

    from ..training.budget import BudgetReached
    from .pipeline import STOPPED_FILE

    s = resolve_step(profile_file, step, **plan_options)
    try:
        return task(**s.values)
    except BudgetReached as e:
        atomic_write_json(Path(s.done_dir) / STOPPED_FILE, {"step": s.name, "reason": str(e),
                                                            "stopped": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        raise


def train_step(profile_file: str | Path, step: str, **plan_options: Any) -> dict[str, Any]:
    """Run the training step ``step`` (``train/<exp>``) of the profile in ``profile_file``: :func:`run_train` with
    the parameters its plan resolves (``plan_options``: ``profile_sha256``, ``runs_dir``, ``fig_dir``,
    ``max_batches``, as :func:`resolve_step`). Returns the run's summary. Raises BudgetReached (recorded in the
    step's ``.stopped.json``) when the pipeline's budget stops it at an epoch end."""
    return _run_step(run_train, profile_file, step, plan_options)


def evaluate_step(profile_file: str | Path, step: str, **plan_options: Any) -> dict[str, Any]:
    """Run the evaluation step ``step`` (``evaluate/<exp>``) of the profile in ``profile_file``: :func:`run_evaluate`
    with the parameters its plan resolves (as :func:`train_step`). Returns the evaluation (``eval.json``)."""
    return _run_step(run_evaluate, profile_file, step, plan_options)


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as JSON (creates folders); returns the path."""
    atomic_write_json(path, obj)
    return Path(path)


def train_config(*, method: str, method_params: Any, dataset: str, data_root: str | None, model: str,
                 model_params: Any, seed: int, train_params: Any = None, max_batches: int | None = None):
    """Build an :class:`ot_robust.training.api.TrainConfig` from a pipeline step's parameters.

    ``train_params`` (dict or JSON) holds further TrainConfig fields (epochs, batch_size, lr, ...). ``max_batches``
    (the one-batch check of the GPU profiles) trains ``max_batches * batch_size`` examples for one epoch. Progress
    bars are off unless ``train_params`` turns them on (papermill logs stay readable).

    Raises:
        ValueError: unknown TrainConfig field, or a value TrainConfig.validate rejects (checked before training).
    """
    from ..training.config import TrainConfig

    kw = {"progress": False, **dict(_obj(train_params) or {})}
    kw.update(method=method, method_params=dict(_obj(method_params) or {}), dataset=dataset, model=model,
              model_params=dict(_obj(model_params) or {}), seed=seed, data_root=data_root)
    if max_batches is not None:
        kw.update(epochs=1, num_train=int(max_batches) * int(kw.get("batch_size", 128)))
    cfg = TrainConfig.from_dict(kw)
    cfg.validate()
    return cfg


def run_train(*, profile: str, experiment: str, method: str, method_params: Any, dataset: str, data_root: str | None,
              model: str, model_params: Any, train_params: Any, seed: int, max_batches: int | None,
              run_dir: str | Path) -> dict[str, Any]:
    """Train one model into ``run_dir`` and write ``train_summary.json`` (last metrics, provenance, and
    ``diverged``: the :class:`~ot_robust.training.trainer.TrainingDiverged` record or None); returns it. A run that
    diverges finishes the step without a model (its evaluation reports the divergence)."""
    from ..training.api import train
    from ..training.trainer import ConfigMismatch, TrainingDiverged
    from .signals import deadline_passed, progress_requested

    cfg = train_config(method=method, method_params=method_params, dataset=dataset, data_root=data_root, model=model,
                       model_params=model_params, seed=seed, max_batches=max_batches, train_params=train_params)
    run_dir = Path(run_dir)
    try:
        try:
            train(cfg, run_dir, should_stop=deadline_passed,  # resumes an interrupted run with the same configuration
                  progress_lines=progress_requested())
        except ConfigMismatch as e:
            print(f"{run_dir} holds a run with other settings ({e}); starting afresh")
            train(cfg, run_dir, resume=False, should_stop=deadline_passed, progress_lines=progress_requested())
    except TrainingDiverged as e:
        print(f"[train/{experiment}] {e}: no model; its evaluation reports the divergence")
    metrics = read_metrics(run_dir)
    summary = {"profile": profile, "experiment": experiment, "method": method, "run_dir": str(run_dir),
               "config": dataclasses.asdict(cfg), "diverged": read_diverged(run_dir),
               "last_metrics": metrics[-1] if metrics else {}, "n_metric_records": len(metrics),
               "provenance": provenance(profile=profile, experiment=experiment)}
    write_json(run_dir / "train_summary.json", summary)
    return summary


def plot_training(run_dir: str | Path):
    """Plot every numeric series of ``metrics.jsonl`` against its step/epoch (for the notebook; not saved)."""
    import pandas as pd

    from ..core.style import figure

    rows = read_metrics(run_dir)
    if not rows:
        return None
    df = pd.DataFrame(rows)
    x = next((c for c in ("step", "epoch") if c in df), None)
    num = [c for c in df.select_dtypes("number").columns if c not in ("step", "epoch", "time", "seconds")]
    fig, axes = figure(ncols=max(1, min(len(num), 4)))
    for ax, col in zip(axes.ravel(), num[:4]):
        d = df[[col] + ([x] if x else [])].dropna()
        ax.plot(d[x] if x else range(len(d)), d[col])
        ax.set_title(col)
        ax.set_xlabel(x or "record")
    fig.tight_layout()
    return fig


def _accuracy_by_spec(report: Any, specs: list[str]) -> dict[str, float]:
    """``{spec: accuracy %}`` plus ``{"clean": %}`` from an EvalReport's table (columns attack, spec, accuracy, ...);
    for an attack with restarts the first row (per-example worst case over the runs) is used."""
    out: dict[str, float] = {}
    for _, r in report.table.iterrows():
        key = "clean" if r["attack"] == "clean" else str(r["spec"])
        if key in specs + ["clean"] and key not in out:
            out[key] = float(r["accuracy"])
    return out


def _masks_by_key(report: Any, specs: dict[str, Any]) -> dict[str, list[bool]]:
    """``{column key: per-example mask}`` (and ``clean``) of an EvalReport, for the ``{key: spec}`` it ran (spec
    strings or :class:`~ot_robust.attacks.AttackSpec`)."""
    label_of: dict[str, str] = {}
    for _, r in report.table.iterrows():
        if r["attack"] != "clean" and str(r["spec"]) not in label_of:
            label_of[str(r["spec"])] = str(r["attack"])
    out = {"clean": report.robust["clean"]}
    out.update({key: report.robust[label_of[str(spec)]] for key, spec in specs.items()})
    return out


def worst_by_threat_model(masks: dict[str, Any], specs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-example worst case per threat model (never mix Linf with L2).

    ``masks``: {column: (n_col,) bool}, every column on a prefix of the same image order; ``specs``: {column: attack
    spec string or :class:`~ot_robust.attacks.AttackSpec`} (``clean`` excluded). For each norm (``linf``, ``l2``) the
    result has ``<norm>`` (the columns that cover the most images) and, when some columns cover fewer (strong attacks,
    AutoAttack), ``<norm>_all`` (every column of that norm, on their common prefix). Each entry: accuracy, n, ci_low,
    ci_high (%, Wilson) and the columns.
    """
    import numpy as np

    from ..attacks import AttackSpec
    from ..core.stats import accuracy_summary

    out: dict[str, dict[str, Any]] = {}
    clean = np.asarray(masks["clean"], dtype=bool)
    norms = {k: AttackSpec.parse(s).norm for k, s in specs.items()}
    for norm in sorted(set(norms.values())):
        cols = [k for k in specs if norms[k] == norm]
        full = [k for k in cols if len(masks[k]) == len(clean)]
        if full:
            m = clean & np.logical_and.reduce([np.asarray(masks[k], dtype=bool) for k in full])
            out[norm] = {**accuracy_summary(m), "columns": full}
        if len(full) < len(cols):
            n = min(len(masks[k]) for k in cols)
            m = clean[:n] & np.logical_and.reduce([np.asarray(masks[k][:n], dtype=bool) for k in cols])
            out[f"{norm}_all"] = {**accuracy_summary(m), "columns": cols}
    return out


def default_attacks(dataset: str) -> dict[str, str]:
    """The evaluate notebook's default suite: FGSM and PGD-20 (step 2.5 eps / 20) at the dataset's eps
    (:func:`ot_robust.core.data.default_attack`: MNIST 0.3, Fashion-MNIST 0.1, else 8/255)."""
    from ..core.data import default_attack

    eps = default_attack(dataset)[0]
    return {"fgsm": f"fgsm eps={eps!r}", "pgd20": f"pgd-linf eps={eps!r} steps=20 step={2.5 * eps / 20!r}"}


def run_evaluate(*, profile: str, experiment: str, label: str, method: str, run_dir: str | Path, out_dir: str | Path,
                 dataset: str, data_root: str | None, attacks: Any, n_examples: int, batch_size: int = 250,
                 sanity: bool = True, autoattack: Any = None, curves: Any = None, loss_curves: Any = None,
                 transfer_from: Any = None, seed: int = 0, strong: Any = None) -> dict[str, Any]:
    """Evaluate the model of ``run_dir`` and write ``out_dir/eval.json``, ``out_dir/masks.npz`` (+ ``curves.json``,
    ``loss_curves.json``). Finished attack batches are kept in ``out_dir/partial/`` while it runs
    (:mod:`ot_robust.evaluation.batch_cache`): killed and run again, it goes on where it stopped; removed at the end.

    Every attack runs on the first ``n`` images of one fixed class-balanced order (the class round-robin of the
    test set): ``attacks`` on ``n_examples``, ``strong`` attacks and AutoAttack on the first ``n`` of the same
    images, so that every column shares its images with the others and with other models (paired tests).

    ``attacks``: ``{column: spec}`` (e.g. ``{"pgd20": "pgd-linf eps=0.1 steps=20 step=0.0125"}``) or ``"default"``
    (:func:`default_attacks`); ``clean`` is always measured. ``strong``: ``{"attacks": {column: spec}, "n_examples"}``
    or None (e.g. PGD-100 on 1,000). ``autoattack``: ``{"spec", "n_examples"}`` or None. ``curves``: ``{"epsilons",
    "steps", "eps", "step_size"?, "n_examples"?}`` (FS Fig. 3) or None. ``loss_curves``: ``{"restarts", "steps", "eps",
    "step_size", "n_examples"}`` (FS supp. Fig. 1) or None. ``transfer_from``: ``{paper row: source run_dir}`` - every
    white-box column is re-run as a transfer attack crafted on that source model (FS Sec. 5.3).

    eval.json: ``{"accuracy": {column: %}, "n": {column: n}, "ci": {column: [low, high]} (95% Wilson),
    "autoattack": % | None, "worst": {threat model: {accuracy, n, ci_low, ci_high, columns}}, "worst_case": % (Linf,
    every Linf column incl. AutoAttack on their common images), "sanity": [...], "transfer": {row: {column: %}},
    "report": EvalReport.to_dict(), "n_examples", "profile", "experiment", "label", "method", "attacks",
    "provenance"}``; masks.npz: see :mod:`ot_robust.evaluation.results`. A run whose training diverged (no model)
    gets the same files with no numbers, its ``diverged`` record and one flagged check, ``training_diverged``.
    """
    from ..attacks import AttackSpec
    from ..evaluation.batch_cache import clear as clear_cache
    from ..core.data import get_dataset
    from ..evaluation.suite import evaluate
    from ..evaluation.results import write_evaluation
    from ..core.stats import wilson_interval
    from ..models.loading import load_model
    from .signals import deadline_passed, progress_requested

    specs = default_attacks(dataset) if attacks == "default" else dict(_obj(attacks))
    parsed = {k: AttackSpec.parse(s) for k, s in specs.items()}  # every spec parsed once, here
    aa, curves, loss_curves, transfer_from = (_obj(autoattack), _obj(curves), _obj(loss_curves),
                                              _obj(transfer_from) or {})
    strong = _obj(strong) or {}
    out_dir = Path(out_dir)
    head = {"profile": profile, "experiment": experiment, "label": label, "method": method, "run_dir": str(run_dir),
            "dataset": dataset, "n_examples": n_examples, "order": "balanced", "attacks": specs,
            "strong_attacks": strong.get("attacks", {})}
    diverged = read_diverged(run_dir)
    if diverged is not None:
        return _diverged_evaluation(out_dir, head, diverged)
    model = load_model(run_dir)
    test = get_dataset(dataset, "test", root=data_root)
    partial = out_dir / PARTIAL_DIR  # finished attack batches: a killed evaluation resumes from them
    kw = dict(seed=seed, batch_size=batch_size, progress=False, order="balanced", cache_dir=partial,
              log=ProgressLog(f"[evaluate/{experiment}]", on=progress_requested()),
              should_stop=deadline_passed)  # --budget: stop, resume
    report = evaluate(model, test, list(parsed.values()), n_examples=n_examples, sanity=sanity, **kw)
    masks = _masks_by_key(report, specs)
    indices = report.meta["indices"]
    all_specs = dict(parsed)
    extra_reports = {}
    if strong.get("attacks"):
        sspecs = {k: AttackSpec.parse(s) for k, s in strong["attacks"].items()}
        rep = evaluate(model, test, list(sspecs.values()), n_examples=int(strong["n_examples"]), sanity=False, **kw)
        masks.update({k: v for k, v in _masks_by_key(rep, strong["attacks"]).items() if k != "clean"})
        all_specs.update(sspecs)
        extra_reports["strong_report"] = rep.to_dict()
    if aa:
        aspec = AttackSpec.parse(aa["spec"])
        rep = evaluate(model, test, [aspec], n_examples=aa.get("n_examples", n_examples), sanity=False, **kw)
        masks["autoattack"] = _masks_by_key(rep, {"autoattack": aa["spec"]})["autoattack"]
        all_specs["autoattack"] = aspec
        extra_reports["autoattack_report"] = rep.to_dict()
    n = {k: len(m) for k, m in masks.items()}
    accuracy = {k: 100.0 * sum(m) / len(m) for k, m in masks.items()}
    ci = {k: list(wilson_interval(int(sum(m)), len(m))) for k, m in masks.items()}
    worst = worst_by_threat_model(masks, all_specs)
    linf = worst.get("linf_all") or worst.get("linf") or {}
    result: dict[str, Any] = {
        **head, "accuracy": {k: v for k, v in accuracy.items() if k != "autoattack"}, "n": n, "ci": ci,
        "worst": worst, "worst_case": linf.get("accuracy", float(report.worst_case)),
        "worst_case_n": linf.get("n", n_examples), "sanity": list(report.sanity), "report": report.to_dict(),
        "autoattack": accuracy.get("autoattack"), "transfer": {}, **extra_reports}
    if aa:
        result["autoattack_n_examples"] = n["autoattack"]
        from ..evaluation.sanity import check_pgd_autoattack_gap

        pgd_cols = [k for k, sp in all_specs.items() if sp.name == "pgd-linf" and len(masks[k]) >= n["autoattack"]]
        if pgd_cols:
            na = n["autoattack"]
            col = min(pgd_cols, key=lambda k: sum(masks[k][:na]))  # the strongest PGD on those images
            result["sanity"].append(check_pgd_autoattack_gap(masks, col))
    for row, src in transfer_from.items():
        tspecs = {k: f"transfer source={src} via={s}" for k, s in specs.items() if parsed[k].name != "fgsm"}
        rep = evaluate(model, test, list(tspecs.values()), n_examples=n_examples, sanity=False, **kw)
        acc = _accuracy_by_spec(rep, list(tspecs.values()))
        result["transfer"][row] = {k: acc.get(s) for k, s in tspecs.items()}
    if curves:
        result["curves"] = write_json(out_dir / CURVES_FILE, _curves(model, test, curves, seed, batch_size)).name
    if loss_curves:
        result["loss_curves"] = write_json(out_dir / LOSS_CURVES_FILE,
                                           _loss_curves(model, test, loss_curves, seed)).name
    result["provenance"] = provenance(profile=profile, experiment=experiment)
    result = write_evaluation(out_dir, result, masks, indices)
    clear_cache(partial)
    return result


def _diverged_evaluation(out_dir: Path, head: dict[str, Any], diverged: dict[str, Any]) -> dict[str, Any]:
    """The evaluation files of a run whose training diverged: no accuracy, the record, a flagged check."""
    from ..evaluation.results import write_evaluation

    detail = (f"training diverged at epoch {diverged['epoch']}, batch {diverged['batch']}: {diverged['reason']}; "
              "no model to evaluate")
    print(f"[evaluate/{head['experiment']}] {detail}")
    result = {**head, "accuracy": {}, "n": {}, "ci": {}, "worst": {}, "worst_case": None, "worst_case_n": 0,
              "sanity": [{"check": "training_diverged", "status": "flag", "details": detail, "numbers": diverged}],
              "autoattack": None, "transfer": {}, "diverged": diverged,
              "provenance": provenance(profile=head["profile"], experiment=head["experiment"])}
    return write_evaluation(out_dir, result, {}, [])


def _curves(model, test, c: dict[str, Any], seed: int, batch_size: int) -> dict[str, Any]:
    """FS Fig. 3 data: accuracy under PGD-20 vs epsilon (step 2.5 eps / 20) and vs iterations at ``c["eps"]``."""
    from ..evaluation.curves import accuracy_vs_epsilon, accuracy_vs_steps
    from ..core.utils import parse_number

    from ..evaluation.suite import _load_data

    x, y, _, _ = _load_data(test, c.get("n_examples", 200), "balanced")
    eps = parse_number(c["eps"])
    epsilons = [parse_number(e) for e in c["epsilons"]]
    steps_list = [int(s) for s in c["steps"]]
    step = parse_number(c["step_size"]) if c.get("step_size") is not None else 2.5 * eps / max(steps_list)
    vs_steps = accuracy_vs_steps(model, x, y, eps, steps_list, step, batch_size=batch_size, seed=seed)
    by_steps = dict(zip(steps_list, (float(v) for v in vs_steps["accuracy"])))
    # the PGD-20 point at eps is the same run as vs_steps' 20-step point (same start, step 2.5 eps / 20): reuse it
    shared = {eps: by_steps[20]} if 20 in by_steps and math.isclose(step, 2.5 * eps / 20) else {}
    rest = [e for e in epsilons if e not in shared]
    vs_eps = dict(zip(rest, (float(v) for v in accuracy_vs_epsilon(model, x, y, rest, steps=20, batch_size=batch_size,
                                                                    seed=seed)["accuracy"]))) if rest else {}
    vs_eps.update(shared)
    return {"vs_epsilon": {"x": epsilons, "accuracy": [vs_eps[e] for e in epsilons], "steps": 20},
            "vs_steps": {"x": steps_list, "accuracy": [by_steps[k] for k in steps_list], "eps": eps,
                         "step_size": step},
            "n_examples": len(x)}


def _loss_curves(model, test, c: dict[str, Any], seed: int) -> dict[str, Any]:
    """FS supplement Fig. 1 data: the PGD cross-entropy per iteration for ``restarts`` random starts (mean over
    ``n_examples`` test images), as a restarts x (steps + 1) list."""
    from ..core.data import as_tensors
    from ..evaluation.curves import pgd_loss_curves
    from ..core.utils import parse_number

    eps = parse_number(c["eps"])
    steps = int(c.get("steps", 20))
    step = parse_number(c["step_size"]) if c.get("step_size") is not None else 2.5 * eps / steps
    x, y = as_tensors(test, int(c.get("n_examples", 1)))
    df = pgd_loss_curves(model, x, y, n_starts=int(c.get("restarts", 20)), steps=steps, eps=eps, step_size=step,
                         seed=seed)
    wide = df.pivot(index="start", columns="iteration", values="loss").sort_index()
    return {"loss": wide.to_numpy().tolist(), "loss_name": "cross-entropy", "eps": eps, "step_size": step,
            "restarts": int(wide.shape[0]), "n_examples": len(x)}


def accuracy_frame(result: dict[str, Any]):
    """The accuracies of an eval result as a DataFrame: column, accuracy (%), n, 95% Wilson interval."""
    import pandas as pd

    acc = {**result["accuracy"], **({"autoattack": result["autoattack"]} if result.get("autoattack") is not None
                                    else {})}
    return pd.DataFrame([{"column": k, "accuracy": v, "n": result.get("n", {}).get(k),
                          "ci_low": (result.get("ci", {}).get(k) or [None, None])[0],
                          "ci_high": (result.get("ci", {}).get(k) or [None, None])[1]} for k, v in acc.items()])


def sanity_frame(result: dict[str, Any]):
    """The sanity checks of an eval result as a DataFrame (check, status, numbers)."""
    import pandas as pd

    return pd.DataFrame(result.get("sanity") or [])


def run_tables(*, profile: Any, runs_dir: str | Path, fig_dir: str | Path, tables: Any
               ) -> dict[str, list[Path] | str]:
    """Build the ``tables`` (JSON list or list of names, any paper) of ``profile`` into ``<fig_dir>/tables/`` with
    :func:`ot_robust.reports.write_tables`, reading ``runs_dir`` (``runs`` or ``runs/<profile>``; only read, so a
    notebook run by hand on the committed ``results/`` leaves them untouched). A table the profile cannot build
    maps to the reason."""
    from ..profiles import Profile, load_profile
    from ..reports import write_tables

    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    names = list(_obj(tables) or [])
    return write_tables(prof, RunLayout.resolve(runs_dir, prof.name), Path(fig_dir) / "tables", names or None)


def show_tables(written: dict[str, list[Path] | str]):
    """Display the Markdown version of each written table (in a notebook); print the reason for one not built."""
    from IPython.display import Markdown, display

    for name, paths in written.items():
        if isinstance(paths, str):
            print(f"{name}: not built ({paths})")
            continue
        md = next(Path(p) for p in paths if str(p).endswith(".md"))
        display(Markdown(md.read_text()))


def run_figures(*, profile: Any, runs_dir: str | Path, fig_dir: str | Path, figures: Any
                ) -> dict[str, list[str] | str]:
    """Draw the ``figures`` (JSON list or list of names, keys of ``ot_robust.reports.FIGURES``, any paper) into
    ``fig_dir`` with :func:`ot_robust.reports.draw_figures`, reading ``runs_dir``. A figure whose models the profile
    did not run maps to the reason."""
    from ..profiles import Profile, load_profile
    from ..reports import draw_figures

    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    names = list(_obj(figures))
    return {k: v if isinstance(v, str) else [str(p) for p in v]
            for k, v in draw_figures(prof, RunLayout.resolve(runs_dir, prof.name), fig_dir, names).items()}


def show_figures(written: dict[str, list[str] | str]):
    """Display the PNG of each written figure (in a notebook); print the reason for one not drawn."""
    from IPython.display import Image, display

    for name, paths in written.items():
        if isinstance(paths, str):
            print(f"{name}: not drawn ({paths})")
            continue
        display(Image(filename=next(p for p in paths if p.endswith(".png"))))


def describe_plan(profile: str, runs_dir: str = "runs", fig_dir: str = "figures"):
    """The plan of ``profile`` as a DataFrame: step, notebook, dependencies, up to date?, papermill command."""
    import pandas as pd

    from .pipeline import build_plan, is_done, papermill_command

    plan = build_plan(profile, runs_dir=runs_dir, fig_dir=fig_dir)
    return pd.DataFrame([{"step": s.name, "notebook": s.notebook, "deps": ", ".join(s.deps),
                          "up_to_date": is_done(s, plan.root), "command": papermill_command(s)} for s in plan.steps])
