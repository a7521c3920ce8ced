"""Re-stamp finished steps whose parameters changed in writing only: the profile now states a value the run already
used (e.g. a default made explicit before the default changed), so the step's results stand, but its parameters,
and therefore its hash, changed. Each selected step must be done under its old parameters except for the keys
named with ``--added`` (checked: the recorded parameters, with the added keys removed from the new ones, must
equal the new parameters); its ``.done.json`` then records the new hash and parameters, and a ``restamped`` entry
(old hash, reason, date). Downstream steps are not touched: they rerun (tables, figures) as usual.

    python scripts/restamp_steps.py --profile study-mnist --only 'train/got_*_lm*,evaluate/got_*_lm*' \\
        --added potential_solver --reason "trained before the exact potential existed: the Adam update"
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ot_robust.study.pipeline import DONE_FILE, build_plan, matches, restamp as restamp_step


def _strip(params: dict, added: set[str]) -> dict:
    """Step parameters with the ``added`` keys removed from the JSON-encoded method parameters."""
    out = dict(params)
    raw = out.get("method_params")
    if isinstance(raw, str):
        mp = {k: v for k, v in json.loads(raw).items() if k not in added}
        out["method_params"] = json.dumps(mp, sort_keys=True, separators=(",", ":"))
    return out


def restamp(profile: str, only: str, added: list[str], reason: str, root: Path = Path(".")) -> list[str]:
    """Re-stamp the selected done steps of ``profile``; returns their names. Raises ValueError when a selected step
    has no ``.done.json``, or its recorded parameters differ from the new ones in more than the ``added`` keys."""
    plan = build_plan(profile, root=root)
    added_set = set(added)
    done = []
    for step in plan.steps:
        if not matches(step.name, only):
            continue
        path = root / step.done_dir / DONE_FILE
        if not path.is_file():
            raise ValueError(f"{step.name}: no {path}; only finished steps can be re-stamped")
        rec = json.loads(path.read_text())
        if rec.get("hash") == step.hash:
            continue
        old = _strip(rec["params"], added_set)
        new = _strip(step.params, added_set)
        if step.name.startswith("train/"):
            same = old == new
        else:  # an evaluation's own parameters are unchanged; only its upstream hash moved
            same = rec["params"] == step.params
        if not same:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ValueError(f"{step.name}: parameters differ beyond {sorted(added_set)}: {diff}; rerun it instead")
        restamp_step(step, root, {"reason": reason, "added": sorted(added_set)})
        done.append(step.name)
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--only", required=True, help="comma-separated glob patterns of step names")
    ap.add_argument("--added", nargs="+", required=True, help="method parameters the profile made explicit")
    ap.add_argument("--reason", required=True)
    args = ap.parse_args(argv)
    try:
        names = restamp(args.profile, args.only, args.added, args.reason)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(f"re-stamped {n}" for n in names) or "nothing to re-stamp")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
