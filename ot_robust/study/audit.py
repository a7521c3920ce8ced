"""The ``21_audit`` step: the masking audit of one trained model, the attacks that settled the Feature
Scattering debate run where the study's evaluation stops.

:func:`run_audit` runs one group of the profile's ``audit`` mapping on one model (step ``audit/<group>/<exp>``,
:mod:`ot_robust.profiles.audit_schema`): the group's attacks on the first ``n_examples`` images of the
evaluation's class-balanced order (RayS, FeatureAttack, PGD / CW with 500-1,000 steps and 5 restarts, transfer
attacks from other models, SPSA, local search, Square, ...), and GOT's eps sweep under one or more PGD protocols.
Because the images are a prefix of those of ``evaluate/<exp>``, every audit column pairs with the evaluation's columns
image by image; the audit's sanity flag uses that (:func:`ot_robust.evaluation.sanity.check_weaker_family_vs_whitebox`).

Writes ``<runs>/<profile>/audit/<group>/<exp>/eval.json`` and ``masks.npz``
(:func:`ot_robust.evaluation.results.write_evaluation`); finished attack batches and sweep points are kept in
``<out_dir>/partial/`` while it runs, so a step stopped at the pipeline's ``--budget`` (or killed) goes on where it
stopped. Accuracies in %, epsilons on the [0, 1] scale.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..attacks import AttackSpec
from ..core.utils import ProgressLog, provenance

#: the per-example worst case over restarts (an image counts robust only if every restart failed) is a column's
#: ``accuracy``; the supplement's "lowest of 5 runs" (the worst single run) is ``min_run``
RESTART_NOTE = ("accuracy: per-example worst case over the restarts (robust only if no restart succeeds); min_run: "
                "the lowest accuracy of a single restart run (FS supplement Table 1); max_min: the spread of the runs")


def _spec(attack: str | dict[str, str]) -> AttackSpec:
    """A group's attack entry parsed (a transfer entry ``{source: run_dir, via: spec}`` -> ``transfer``)."""
    return AttackSpec.parse(attack if isinstance(attack, str)
                            else f"transfer source={attack['source']} via={attack['via']}")


def _columns(report: Any, cols: dict[str, AttackSpec]) -> dict[str, dict[str, Any]]:
    """Per column of one group's EvalReport: accuracy, n, ci, runs, min_run, max_min, time_s (restart runs folded)."""
    rows = report.table.to_dict("records")
    out = {}
    for col, parsed in cols.items():
        spec = str(parsed)
        main = next(r for r in rows if r["spec"] == spec and "(min over" not in r["attack"])
        worst = next((r for r in rows if r["spec"] == spec and "(min over" in r["attack"]), main)
        out[col] = {"spec": spec, "accuracy": main["accuracy"], "n": main["n"], "ci": [main["ci_low"], main["ci_high"]],
                    "runs": main["runs"], "min_run": worst["accuracy"], "max_min": main["max_min"],
                    "time_s": main["time_s"], "label": main["attack"]}
    return out


def _sweep(model, test, sweep: dict[str, Any], seed: int, batch_size: int, partial: Path, log) -> dict[str, Any]:
    """Accuracy vs eps per protocol (GOT Table 6 / Fig. 2); each finished (protocol, eps, batch) outcome is kept in
    the step's batch cache (``partial``) so that a stopped step does not redo it."""
    from ..core.utils import parse_number
    from ..evaluation.curves import accuracy_vs_epsilon
    from ..evaluation.suite import _load_data
    from ..training.budget import BudgetReached
    from .signals import deadline_passed

    x, y, _, _ = _load_data(test, int(sweep["n_examples"]), "balanced")
    epsilons = [parse_number(e) for e in sweep["epsilons"]]
    out = {"epsilons": epsilons, "n_examples": len(x), "protocols": {}}
    for name, p in sweep["protocols"].items():
        step = parse_number(p["step_size"]) if p.get("step_size") is not None else None
        labels, start = p.get("labels", "true"), bool(p.get("random_start", True))
        acc = []
        for e in epsilons:
            df = accuracy_vs_epsilon(model, x, y, [e], steps=int(p["steps"]), step_size=step, labels=labels,
                                     batch_size=batch_size, seed=seed, random_start=start, cache_dir=partial)
            acc.append(float(df["accuracy"].iloc[0]))
            log(f"eps sweep {name} eps={e:g}: {acc[-1]:.1f}% on {len(x)} images", force=True)
            if deadline_passed():
                raise BudgetReached(f"eps sweep stopped at the budget after {name} eps={e:g}; finished batches "
                                    f"are kept in {partial}: rerun to continue")
        out["protocols"][name] = {"steps": int(p["steps"]), "step_size": step, "labels": labels,
                                  "random_start": start, "accuracy": acc,
                                  "step_rule": "fixed" if step is not None else "2.5 * eps / steps"}
    return out


def _against_evaluation(eval_dir: Path, indices: list[int], masks: dict[str, Any],
                        columns: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The masking-signature checks: each transfer, score-based or hard-label column against the evaluation's
    strongest Linf PGD on the same images (:func:`ot_robust.evaluation.sanity.check_weaker_family_vs_whitebox`);
    ``[]`` without an evaluation (with masks) or without such a column. Raises ValueError when the evaluation ran on
    other images than a prefix of its own."""
    import numpy as np

    from ..evaluation.results import has_eval, read_eval, read_masks
    from ..evaluation.sanity import check_weaker_family_vs_whitebox

    weaker = {c: v["family"] for c, v in columns.items() if v["family"] in ("transfer", "score-based", "hard-label")}
    if not weaker or not has_eval(eval_dir, masks=True):
        return []
    ev_masks, idx = read_masks(eval_dir)
    if len(idx) < len(indices) or not np.array_equal(idx[:len(indices)], np.asarray(indices)):
        raise ValueError(f"{eval_dir} ran on other images than this audit: rerun the evaluation first")
    ev = read_eval(eval_dir)
    specs = {k: AttackSpec.parse(s) for k, s in {**ev.get("attacks", {}), **ev.get("strong_attacks", {})}.items()}
    n = max(c["n"] for c in columns.values())
    pgd = [k for k, s in specs.items() if s.name == "pgd-linf" and k in ev_masks and len(ev_masks[k]) >= n]
    if not pgd:
        return []
    col = min(pgd, key=lambda k: int((ev_masks[k][:n] & ev_masks["clean"][:n]).sum()))
    return check_weaker_family_vs_whitebox({**masks, col: ev_masks[col], "clean": ev_masks["clean"]}, col, weaker)


def run_audit(*, profile: str, experiment: str, label: str, method: str, group: str, run_dir: str | Path,
              eval_dir: str | Path, out_dir: str | Path, dataset: str, data_root: str | None, batch_size: int,
              seed: int, n_examples: int | None, attacks: Any, eps_sweep: Any = None) -> dict[str, Any]:
    """Run one audit group on the model of ``run_dir`` and write ``out_dir/eval.json`` + ``masks.npz``; returns
    what was written. ``attacks``: ``{column: spec or {source: run_dir, via: spec, row?, column?}}`` on the first
    ``n_examples`` images; ``eps_sweep``: ``{epsilons, n_examples, protocols: {name: {steps, step_size?, labels?}}}``
    or None.

    eval.json: ``{"group", "columns": {column: {spec, family, norm, accuracy, n, ci, runs, min_run, max_min,
    time_s}}, "accuracy": {column: %}, "n": {column: n}, "eps_sweep": {group: {epsilons, n_examples, protocols:
    {name: {steps, step_size, labels, accuracy}}}}, "sanity": [...], "transfer": {paper row: {paper column: %}},
    "profile", "experiment", "label", "method", "provenance", "restart_note"}``; the masks: ``clean`` and every
    column, on the first ``n`` of the class-balanced order. :func:`ot_robust.evaluation.results.read_evals` merges
    the groups into the model's evaluation.

    Raises:
        BudgetReached: the pipeline's ``--budget`` passed between attack batches or sweep points (kept: rerun).
        ValueError: a bad attack spec, an unknown dataset, an evaluation on other images.
    """
    from ..core.data import get_dataset
    from ..evaluation.batch_cache import clear as clear_cache
    from ..evaluation.results import write_evaluation
    from ..evaluation.suite import _load_data, evaluate
    from ..models.loading import load_model
    from .signals import deadline_passed, progress_requested
    from .tasks import PARTIAL_DIR, _masks_by_key, _obj

    attacks, eps_sweep = _obj(attacks) or {}, _obj(eps_sweep)
    out_dir = Path(out_dir)
    partial = out_dir / PARTIAL_DIR
    model = load_model(run_dir)
    test = get_dataset(dataset, "test", root=data_root)
    log = ProgressLog(f"[audit/{group}/{experiment}]", on=progress_requested())
    cols = {c: _spec(a) for c, a in attacks.items()}
    columns: dict[str, dict[str, Any]] = {}
    masks: dict[str, Any] = {}
    if cols:
        rep = evaluate(model, test, list(cols.values()), n_examples=int(n_examples), sanity=False, seed=seed,
                       batch_size=batch_size, progress=False, order="balanced", cache_dir=partial, log=log,
                       should_stop=deadline_passed)
        columns = {c: {**info, "family": cols[c].family, "norm": cols[c].norm}
                   for c, info in _columns(rep, cols).items()}
        masks, indices = _masks_by_key(rep, cols), rep.meta["indices"]
    sweeps = {}
    if eps_sweep:
        partial.mkdir(parents=True, exist_ok=True)
        sweeps[group] = _sweep(model, test, eps_sweep, seed, batch_size, partial, log)
        if not cols:  # a sweep-only group: no masks, but the file format wants the image order
            indices = _load_data(test, int(eps_sweep["n_examples"]), "balanced")[3]
    sanity = _against_evaluation(Path(eval_dir), indices, {k: v for k, v in masks.items() if k != "clean"},
                                 columns) if columns else []
    transfer: dict[str, dict[str, float]] = {}
    for c, a in attacks.items():
        if isinstance(a, dict) and a.get("row") and a.get("column"):
            transfer.setdefault(a["row"], {})[a["column"]] = columns[c]["accuracy"]
    result = {"profile": profile, "experiment": experiment, "label": label, "method": method, "group": group,
              "run_dir": str(run_dir), "dataset": dataset, "order": "balanced", "columns": columns,
              "accuracy": {c: v["accuracy"] for c, v in columns.items()}, "n": {c: v["n"] for c, v in columns.items()},
              "eps_sweep": sweeps, "sanity": sanity, "transfer": transfer, "restart_note": RESTART_NOTE,
              "provenance": provenance(profile=profile, experiment=experiment, group=group)}
    result = write_evaluation(out_dir, result, masks, indices)
    clear_cache(partial)
    return result


def audit_step(profile_file: str | Path, step: str, **plan_options: Any) -> dict[str, Any]:
    """Run the audit step ``step`` (``audit/<exp>``) of the profile in ``profile_file``: :func:`run_audit` with the
    parameters its plan resolves (``plan_options`` as :func:`ot_robust.study.tasks.resolve_step`)."""
    from .tasks import _run_step

    return _run_step(run_audit, profile_file, step, plan_options)


def audit_frame(result: dict[str, Any]):
    """The audit's columns as a DataFrame: column, family, accuracy (%), n, 95% interval, runs, min_run, max_min,
    seconds."""
    import pandas as pd

    return pd.DataFrame([{"column": c, "family": v["family"], "accuracy": v["accuracy"],
                          "n": v["n"], "ci_low": v["ci"][0], "ci_high": v["ci"][1], "runs": v["runs"],
                          "min_run": v["min_run"], "max_min": v["max_min"], "time_s": v["time_s"]}
                         for c, v in result["columns"].items()])
