"""The ``audit:`` mapping of a profile: the masking audit (the attacks that settled the Feature Scattering
debate, run on the study's models after their evaluation). The profile schema owns it (the loader checks it); the
pipeline turns each group into one ``audit/<group>/<exp>`` step per listed model (notebook ``21_audit``,
:func:`ot_robust.study.audit.run_audit`), so a group added later adds steps and leaves finished ones alone.

Schema (every key of a group optional except ``experiments``; a group needs ``attacks`` or ``eps_sweep``)::

    audit:
      masking:                                  # a group name (lower case); groups share nothing but the images
        experiments: [pgd_at, feature_scattering]   # methods of this profile
        n_examples: 1000                        # the first n of the evaluation's class-balanced image order
        attacks:                                # column -> attack spec, or a transfer attack crafted on a source
          rays: "rays eps=0.1 queries=10000"
          pgd20_undefended: {source: standard, via: "pgd-linf eps=0.1 steps=20 step=0.0125", row: Undefended,
                             column: pgd20}    # row / column: its cell in the FS black-box table (optional)
      plateau:
        experiments: [got_pgd_s, pgd_at]
        eps_sweep:                              # accuracy vs eps under one or more PGD protocols (GOT Table 6)
          epsilons: [0.1, 0.3, 0.5, 0.7]
          n_examples: 1000
          protocols: {ours: {steps: 20}, paper: {steps: 40, step_size: 0.01, labels: predicted}}

A protocol's ``step_size`` is fixed for every eps (absent: 2.5 eps / steps per eps); ``labels`` is ``true`` or
``predicted``; ``random_start`` (default true) the uniform start in the ball
(:func:`ot_robust.evaluation.curves.accuracy_vs_epsilon`). Column names must differ from each other
and from the profile's ``eval`` columns (the tables put them side by side). A transfer column whose source is the
audited model itself is left out for that model. Epsilons are on the [0, 1] pixel scale.

Raises ValueError naming the key path and what is allowed (the loader reports it as a ProfileError).
"""
from __future__ import annotations

import re
from typing import Any

from ..core.validation import check_keys

GROUP_KEYS = {"experiments": list, "n_examples": int, "attacks": dict, "eps_sweep": dict}
TRANSFER_KEYS = {"source": str, "via": str, "row": str, "column": str}
SWEEP_KEYS = {"epsilons": list, "n_examples": int, "protocols": dict}
PROTOCOL_KEYS = {"steps": int, "step_size": (int, float, str), "labels": str, "random_start": bool}
LABELS = ("true", "predicted")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


def check_audit(audit: Any, methods: dict[str, Any], eval_columns: set[str]) -> dict[str, Any]:
    """Validate a profile's ``audit`` mapping against its ``methods`` and its ``eval`` column names; returns it.
    Attack specs are checked by the loader's registry pass (:func:`attack_specs`). Raises ValueError."""
    if not isinstance(audit, dict):
        raise ValueError(f"audit must be a mapping of group name -> group, got {audit!r}")
    seen: dict[str, str] = {}
    for group, g in audit.items():
        where = f"audit.{group}"
        if not isinstance(group, str) or not _NAME_RE.match(group):
            raise ValueError(f"audit group name {group!r} must be lower-case letters, digits, '-' or '_'")
        check_keys(g, GROUP_KEYS, where, ("experiments",))
        if not g.get("attacks") and not g.get("eps_sweep"):
            raise ValueError(f"{where} has neither attacks nor eps_sweep; give at least one")
        unknown = [e for e in g["experiments"] if e not in methods]
        if unknown or not g["experiments"]:
            raise ValueError(f"{where}.experiments names unknown experiment(s) {unknown or '(none)'}; "
                             f"experiments: {sorted(methods)}")
        if g.get("attacks") and "n_examples" not in g:
            raise ValueError(f"{where} has attacks but no n_examples; give the number of test images")
        if g.get("n_examples", 1) < 1:
            raise ValueError(f"{where}.n_examples must be >= 1, got {g['n_examples']}")
        for col, a in (g.get("attacks") or {}).items():
            if not isinstance(col, str) or not _NAME_RE.match(col) or col == "clean":
                raise ValueError(f"{where}.attacks key {col!r} must be a column name like rays ('clean' is implicit)")
            if col in eval_columns or col in seen:
                raise ValueError(f"{where}.attacks.{col}: column {col!r} is already "
                                 f"{'an eval column' if col in eval_columns else 'in audit.' + seen[col]}; "
                                 "use another name")
            seen[col] = group
            if isinstance(a, dict):
                check_keys(a, TRANSFER_KEYS, f"{where}.attacks.{col}", ("source", "via"))
                if a["source"] not in methods:
                    raise ValueError(f"{where}.attacks.{col}.source {a['source']!r} is not one of the experiments "
                                     f"{sorted(methods)}")
            elif not isinstance(a, str):
                raise ValueError(f"{where}.attacks.{col} must be an attack spec string or {{source, via}}, got {a!r}")
        if g.get("eps_sweep") is not None:
            sw = g["eps_sweep"]
            check_keys(sw, SWEEP_KEYS, f"{where}.eps_sweep", ("epsilons", "n_examples", "protocols"))
            if not sw["protocols"]:
                raise ValueError(f"{where}.eps_sweep.protocols is empty; "
                                 f"name at least one, e.g. {{ours: {{steps: 20}}}}")
            for name, p in sw["protocols"].items():
                check_keys(p, PROTOCOL_KEYS, f"{where}.eps_sweep.protocols.{name}", ("steps",))
                if p.get("labels", "true") not in LABELS:
                    raise ValueError(f"{where}.eps_sweep.protocols.{name}.labels {p['labels']!r}; allowed: "
                                     f"{list(LABELS)}")
    return audit


def attack_specs(audit: dict[str, Any]) -> dict[str, str]:
    """``{"audit.<group>.<column>": spec}`` of every attack of ``audit`` (a transfer column: its ``via`` spec), for
    the loader's check that each spec parses."""
    return {f"audit.{g}.{col}": a["via"] if isinstance(a, dict) else a
            for g, grp in audit.items() for col, a in (grp.get("attacks") or {}).items()}


def groups_of(audit: dict[str, Any], experiment: str) -> dict[str, dict[str, Any]]:
    """The groups of ``audit`` that list ``experiment`` (in profile order), each as ``{n_examples, attacks,
    eps_sweep}`` with the transfer columns whose source is ``experiment`` itself left out."""
    out = {}
    for name, g in audit.items():
        if experiment in g["experiments"]:
            attacks = {c: a for c, a in (g.get("attacks") or {}).items()
                       if not (isinstance(a, dict) and a["source"] == experiment)}
            out[name] = {"n_examples": g.get("n_examples"), "attacks": attacks, "eps_sweep": g.get("eps_sweep")}
    return out
