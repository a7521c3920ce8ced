"""An evaluation's files: the one reader and writer of ``eval.json`` (the accuracies, intervals, sanity report and
provenance of one model's evaluation) and ``masks.npz`` (its per-example correctness masks).

This module owns the names of an evaluation folder's files: the one place they are written (the rest of the package
asks here; :class:`ot_robust.profiles.paths.RunLayout` builds the folders' paths from them). An evaluation folder
(``<runs_dir>/<profile>/eval/<experiment>/``, :data:`EVAL_DIR` under a profile's runs) holds :data:`EVAL_FILE` and
:data:`MASKS_FILE`; :func:`write_evaluation` writes both (masks first, so an ``eval.json`` never points at missing
masks), :func:`read_eval` / :func:`read_evals` / :func:`read_masks` read them. Beside them it may hold
:data:`CURVES_FILE` (``curves.json``: accuracy vs eps and vs PGD steps, for the figures), :data:`LOSS_CURVES_FILE`
(``loss_curves.json``: the PGD loss per iteration of several random starts) and, while an evaluation runs,
:data:`PARTIAL_DIR` (``partial/``: its finished attack batches, :mod:`ot_robust.evaluation.batch_cache`, so a killed
evaluation resumes from them).

A model's masking audit (``<runs_dir>/<profile>/audit/<group>/<experiment>/``, :data:`AUDIT_DIR` under a profile's
runs, :mod:`ot_robust.study.audit`) is written in the same two files; its columns run on a prefix of the evaluation's
images. :func:`with_audit` merges an audit into its evaluation (:func:`read_evals` and :func:`read_evaluation` do by
default), so that tables and claims read audit columns (rays, feature_attack, pgd1000x5, ...) like any other.

``masks.npz`` holds, for each column of an evaluation (clean, fgsm, pgd20, autoattack, ...), the bit-packed bool
mask "still classified correctly" over the evaluated images, plus ``indices`` (the test-set index of each image,
in evaluation order) and ``n_<column>`` (how many images that column covers: the strong attacks and AutoAttack
cover the first ``n`` of the same order). Two models' masks on the same indices give the paired (McNemar) test.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.stats import wilson_interval
from ..core.utils import atomic_write_bytes, atomic_write_json

#: an evaluation's summary (JSON) and its per-example masks (npz), in the evaluation folder
EVAL_FILE = "eval.json"
MASKS_FILE = "masks.npz"
#: an evaluation's accuracy curves (vs eps, vs PGD steps) and loss curves (JSON), in the evaluation folder
CURVES_FILE = "curves.json"
LOSS_CURVES_FILE = "loss_curves.json"
#: the folder of an evaluation's finished attack batches while it runs, in the evaluation folder
PARTIAL_DIR = "partial"
#: the folders of a profile's runs that hold one evaluation folder per experiment, and one audit folder per group
EVAL_DIR = "eval"
AUDIT_DIR = "audit"


def write_evaluation(eval_dir: str | Path, result: dict[str, Any], masks: Mapping[str, Sequence[bool]],
                     indices: Sequence[int]) -> dict[str, Any]:
    """Write ``masks`` / ``indices`` to ``<eval_dir>/masks.npz``, then ``result`` (with ``"masks"`` naming that file)
    to ``<eval_dir>/eval.json``, both atomically. Returns the dict written to ``eval.json``. Raises ValueError as
    :func:`save_masks`."""
    eval_dir = Path(eval_dir)
    save_masks(eval_dir / MASKS_FILE, masks, indices)
    result = {**result, "masks": MASKS_FILE}
    atomic_write_json(eval_dir / EVAL_FILE, result)
    return result


def has_eval(eval_dir: str | Path, masks: bool = False) -> bool:
    """Whether ``eval_dir`` holds a finished evaluation (and, with ``masks``, its masks too)."""
    eval_dir = Path(eval_dir)
    return (eval_dir / EVAL_FILE).is_file() and (not masks or (eval_dir / MASKS_FILE).is_file())


def read_eval(eval_dir: str | Path) -> dict[str, Any]:
    """The ``eval.json`` of ``eval_dir`` as a dict. Raises FileNotFoundError when there is none."""
    return json.loads((Path(eval_dir) / EVAL_FILE).read_text())


def read_evals(runs_dir: str | Path, audits: bool = True) -> dict[str, dict[str, Any]]:
    """``{experiment: eval.json content}`` for every ``<runs_dir>/eval/<experiment>/eval.json``, by name; with
    ``audits``, each one that has a masking audit merged with it (:func:`read_evaluation`)."""
    exps = [p.parent.name for p in sorted(Path(runs_dir).glob(f"{EVAL_DIR}/*/{EVAL_FILE}"))]
    return {e: read_evaluation(runs_dir, e)[0] if audits and read_audits(runs_dir, e) else
            read_eval(Path(runs_dir) / EVAL_DIR / e) for e in exps}


def read_audits(runs_dir: str | Path, experiment: str) -> dict[str, dict[str, Any]]:
    """``{group: eval.json content}`` of the masking audit of ``experiment``,
    ``<runs_dir>/audit/<group>/<experiment>/eval.json`` (:mod:`ot_robust.study.audit`), groups by name."""
    return {p.parent.parent.name: json.loads(p.read_text())
            for p in sorted(Path(runs_dir).glob(f"{AUDIT_DIR}/*/{experiment}/{EVAL_FILE}"))}


def with_audit(ev: dict[str, Any], audits: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The evaluation ``ev`` with its audit groups' columns added (``{group: audit eval.json}``, see
    :func:`read_audits`): ``accuracy``, ``n``, ``ci`` gain the audit columns, ``audit_attacks`` their specs,
    ``audit_columns`` their details (family, restarts, ...), ``transfer`` the audit's paper rows, ``sanity`` the
    audit's checks, ``eps_sweep`` its sweeps (by group). A column name in both keeps the evaluation's value (the
    profile schema forbids the clash). The worst case over both needs the masks: :func:`read_evaluation`."""
    cols = {c: v for a in audits.values() for c, v in a.get("columns", {}).items()}
    out = {**ev, "audit_attacks": {c: v["spec"] for c, v in cols.items()}, "audit_columns": cols,
           "accuracy": {**{c: v["accuracy"] for c, v in cols.items()}, **ev.get("accuracy", {})},
           "n": {**{c: v["n"] for c, v in cols.items()}, **ev.get("n", {})},
           "ci": {**{c: v["ci"] for c, v in cols.items()}, **ev.get("ci", {})},
           "eps_sweep": {g: s for a in audits.values() for g, s in a.get("eps_sweep", {}).items()},
           "sanity": list(ev.get("sanity", [])) + [c for a in audits.values() for c in a.get("sanity", [])]}
    transfer = {row: dict(v) for row, v in ev.get("transfer", {}).items()}
    for a in audits.values():
        for row, v in a.get("transfer", {}).items():
            transfer[row] = {**v, **transfer.get(row, {})}
    out["transfer"] = transfer
    return out


def read_evaluation(runs_dir: str | Path, experiment: str
                    ) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    """``(eval.json merged with its audit, masks of both, indices)`` of ``<runs_dir>/eval/<experiment>`` and its
    audit groups (:func:`with_audit`). With an audit, ``worst["linf_audit"]`` and ``worst_case`` / ``worst_case_n``
    become the per-example worst case over every Linf column of the evaluation's worst case (AutoAttack included)
    and every Linf audit column run on at least as many images, on those images (an audit column on fewer images,
    e.g. RayS on 500 of AutoAttack's 1,000, keeps its own accuracy but stays out of ``worst``, which is never
    computed on fewer images than the evaluation's).

    Raises FileNotFoundError without an evaluation and ValueError when an audit ran on other images than a prefix
    of the evaluation's."""
    ev_dir = Path(runs_dir) / EVAL_DIR / experiment
    ev = read_eval(ev_dir)
    audits = read_audits(runs_dir, experiment)
    masks, idx = read_masks(ev_dir) if audits or has_eval(ev_dir, masks=True) else ({}, np.zeros(0, dtype=int))
    if not audits:
        return ev, masks, idx
    for group in audits:
        am, aidx = read_masks(Path(runs_dir) / AUDIT_DIR / group / experiment)
        if len(aidx) > len(idx) or not np.array_equal(aidx, idx[:len(aidx)]):
            raise ValueError(f"audit {group!r} of {experiment!r} ran on other images than its evaluation: rerun it")
        masks = {**{k: v for k, v in am.items() if k != "clean"}, **masks}
    ev = with_audit(ev, audits)
    base = ev.get("worst", {}).get("linf_all") or ev.get("worst", {}).get("linf") or {}
    linf = [c for c in base.get("columns", []) if c in masks]
    n_base = min((len(masks[c]) for c in linf), default=len(masks.get("clean", [])))
    linf += [c for c, v in ev["audit_columns"].items() if v.get("norm", "linf") == "linf" and c in masks
             and len(masks[c]) >= n_base]  # on the evaluation's worst-case images: never fewer
    if linf:
        n = min(len(masks[c]) for c in linf + ["clean"])
        worst = masks["clean"][:n] & np.logical_and.reduce([masks[c][:n] for c in linf])
        k = int(worst.sum())
        lo, hi = wilson_interval(k, n)
        ev["worst"] = {**ev.get("worst", {}), "linf_audit": {"accuracy": 100.0 * k / n, "n": n, "ci_low": lo,
                                                             "ci_high": hi, "columns": linf}}
        ev["worst_case"], ev["worst_case_n"] = 100.0 * k / n, n
    return ev, masks, idx


def read_masks(eval_dir: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``({column: (n_col,) bool}, indices (n,) int)`` of the evaluation in ``eval_dir`` (:func:`load_masks`)."""
    return load_masks(Path(eval_dir) / MASKS_FILE)


def save_masks(path: str | Path, masks: Mapping[str, Sequence[bool]], indices: Sequence[int]) -> Path:
    """Write ``masks`` ({column: (n_col,) bool, n_col <= len(indices)}) and ``indices`` to ``path`` (npz)
    atomically. Raises ValueError for a mask longer than ``indices`` or a column name with '/'."""
    arrays = {"indices": np.asarray(indices, dtype=np.int32)}
    for k, m in masks.items():
        m = np.asarray(m, dtype=bool)
        if "/" in k or k.startswith("n_") or k == "indices":
            raise ValueError(f"mask name {k!r} not allowed (no '/', not 'indices', not starting with 'n_')")
        if m.ndim != 1 or m.size > len(indices):
            raise ValueError(f"mask {k!r} has shape {m.shape}; expected (n,) with n <= {len(indices)} images")
        arrays[k] = np.packbits(m)
        arrays[f"n_{k}"] = np.asarray(m.size, dtype=np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_masks(path: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``({column: (n_col,) bool}, indices (n,) int)`` from a file written by :func:`save_masks`.

    Raises FileNotFoundError if missing, ValueError if it is not a masks file."""
    with np.load(path, allow_pickle=False) as z:
        if "indices" not in z.files:
            raise ValueError(f"{path} is not a masks file (no 'indices' array)")
        indices = z["indices"]
        out = {k: np.unpackbits(z[k])[: int(z[f"n_{k}"])].astype(bool) for k in z.files
               if k != "indices" and not k.startswith("n_")}
    return out, indices
