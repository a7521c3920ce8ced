"""The table-settings check: a table's column must match the settings of the run it prints.

A column named for an attack (``PGD100``, ``CW20``, ``FGSM``; key ``pgd100``, ``cw20``, ``fgsm`` in ``eval.json``,
``awp_`` wrapper prefixes included) must come from that attack with that many steps: the spec recorded for the key in
the run's ``attacks``, ``strong_attacks`` or audit columns. A sweep column named for a training setting (``ls0.5``:
label smoothing 0.5, ``bs60``: batch size 60; FS rebuttal tables) must be filled by a run trained with it, read from
the run's own ``config.json``. Once a table printed PGD-40 under PGD-100 and Madry's numbers in a "Supervised" row;
:func:`ot_robust.reports.tables.build_table` now refuses such a table, and CI runs the check over every committed
table whose runs are committed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ATTACK_KEY = re.compile(r"^(?:awp_)?(pgd|cw)(\d+)$")
#: sweep column prefix -> (where in config.json, key, type)
SWEEP_SETTINGS = {"ls": ("method_params", "label_smoothing", float), "bs": (None, "batch_size", int)}


def attack_mismatches(ev: dict[str, Any]) -> list[str]:
    """Each attack key of evaluation ``ev`` whose recorded spec is not the attack its name says: ``pgd<k>`` /
    ``cw<k>`` must be a PGD / CW attack with ``steps=k``, ``fgsm`` FGSM (specs read by
    :meth:`ot_robust.attacks.spec.AttackSpec.parse`, aliases resolved; one that does not parse is a mismatch).
    One line per mismatch."""
    from ..attacks.spec import AttackSpec

    specs = {**ev.get("attacks", {}), **ev.get("strong_attacks", {}), **ev.get("audit_attacks", {})}
    bad = []
    for key, spec in specs.items():
        m = ATTACK_KEY.match(key)
        if not m and key != "fgsm":
            continue
        try:
            parsed = AttackSpec.parse(spec)
            steps = parsed.value("steps") if m and parsed.name.startswith(m.group(1)) else None
        except ValueError:  # not a spec, or an attack that takes no steps
            parsed = steps = None
        if m and steps != int(m.group(2)):
            bad.append(f"column {key!r} holds {spec!r} (a {m.group(1)} attack with steps={m.group(2)} expected)")
        elif not m and (parsed is None or parsed.name != "fgsm"):
            bad.append(f"column 'fgsm' holds {spec!r}")
    return bad


def sweep_mismatch(column: str, config: dict[str, Any]) -> str | None:
    """Why a run trained with ``config`` (the ``config`` of its ``config.json``) cannot fill sweep column
    ``column`` (``ls0.5``, ``bs60``), or None when it can (or the column names no training setting)."""
    m = re.match(r"^([a-z]+)([0-9.]+)$", column)
    if not m or m.group(1) not in SWEEP_SETTINGS:
        return None
    where, key, kind = SWEEP_SETTINGS[m.group(1)]
    value = (config.get(where) or {}).get(key) if where else config.get(key)
    if value is None or kind(value) != kind(m.group(2)):
        return f"column {column!r} holds a run trained with {key}={value}"
    return None


def table_setting_mismatches(name: str, evals: dict[str, dict[str, Any]], profile: Any,
                             runs_dir: str | Path | None = None) -> list[str]:
    """Every mismatch between table ``name``'s columns and the settings of the runs ``profile`` maps to it
    (``methods.<exp>.tables``), one line each naming the experiment: attack columns from their ``eval.json``
    (:func:`attack_mismatches`), sweep columns from ``<runs_dir>/train/<exp>/config.json`` when ``runs_dir`` is
    given (:func:`sweep_mismatch`). ``[]`` when the table is right."""
    from ..core.run_files import read_config
    from ..profiles.paths import RunLayout

    bad = []
    for exp, cfg in profile.methods.items():
        entry = cfg.tables.get(name)
        if entry is None or exp not in evals:
            continue
        bad += [f"{name}: {exp}: {b}" for b in attack_mismatches(evals[exp])]
        if isinstance(entry, dict) and runs_dir is not None:
            rec = read_config(RunLayout.at(runs_dir).train(exp)) or {}
            why = sweep_mismatch(str(entry.get("column")), rec.get("config", {}))
            if why:
                bad.append(f"{name}: {exp}: {why}")
    return bad
