"""The ``slurm:`` mappings of a profile (top level and per method): their keys, types and time format. The profile
schema owns them (the loader checks them); the SLURM executor (:mod:`ot_robust.study.slurm`) applies them."""
from __future__ import annotations

import re
from typing import Any

#: the keys of a ``slurm:`` mapping (profile top level: ``{step glob or notebook stem: {key: value}}``; a method:
#: ``{key: value}`` for its training step)
RESOURCE_KEYS = {"gpus": int, "cpus": int, "mem": str, "time": (int, str), "partition": str, "account": str,
                 "qos": str, "constraint": str, "signal_delay_s": int}


def parse_time(value: int | str) -> int:
    """A time limit in minutes: an int (minutes), ``"90m"``, ``"2h"``, ``"1.5h"``, ``"HH:MM:SS"``, ``"D-HH:MM:SS"``.
    Raises ValueError naming the bad value."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    t = str(value).strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([mh])", t)
    if m:
        return max(1, round(float(m.group(1)) * (60 if m.group(2) == "h" else 1)))
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d\d)(?::(\d\d))?", t)
    if m:
        d, h, mi, s = (int(x or 0) for x in m.groups())
        return max(1, d * 1440 + h * 60 + mi + (1 if s else 0))
    if t.isdigit() and int(t) > 0:
        return int(t)
    raise ValueError(f"slurm time {value!r}: give minutes (90), 90m, 2h, HH:MM:SS or D-HH:MM:SS")


def check_resources(res: Any, where: str) -> dict[str, Any]:
    """Validate one resource mapping (keys :data:`RESOURCE_KEYS`); returns it. Raises ValueError naming ``where``."""
    if not isinstance(res, dict):
        raise ValueError(f"{where} must be a mapping of {sorted(RESOURCE_KEYS)}, got {res!r}")
    bad = sorted(set(res) - set(RESOURCE_KEYS))
    if bad:
        raise ValueError(f"{where}: unknown key(s) {bad}; allowed: {sorted(RESOURCE_KEYS)}")
    for k, v in res.items():
        if not isinstance(v, RESOURCE_KEYS[k]) or isinstance(v, bool):
            raise ValueError(f"{where}.{k} has the wrong type: {v!r}")
        if k in ("gpus", "cpus") and v < (0 if k == "gpus" else 1):
            raise ValueError(f"{where}.{k} must be >= {0 if k == 'gpus' else 1}, got {v}")
    if "time" in res:
        parse_time(res["time"])
    return res


def check_profile_slurm(top: Any, methods: dict[str, dict[str, Any]], src: str) -> None:
    """The profile loader's check of the ``slurm:`` mappings (top level and per method). Raises ValueError."""
    if top is not None:
        if not isinstance(top, dict):
            raise ValueError(f"{src}: slurm must be a mapping {{step glob or notebook stem: resources}}")
        for pattern, res in top.items():
            check_resources(res, f"{src}: slurm.{pattern}")
    for exp, m in methods.items():
        if "slurm" in m:
            check_resources(m["slurm"], f"{src}: methods.{exp}.slurm")
