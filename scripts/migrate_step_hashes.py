"""Re-stamp the committed study after a change of how step hashes are computed, or of where the notebooks' code
lives, that does not change what any step computes (a new hash scheme, modules moved between packages).

Each finished step keeps its results only if (1) it was done under the code of ``--from`` (that revision's own
``build_plan`` and ``is_done`` / ``is_committed``, run on this checkout's ``results/`` and ``figures/``), and (2) its
parameters there equal its parameters now. Its ``.done.json`` then records the new hash, with the old hash, the
revision and ``--reason`` in its ``restamped`` list. A step that fails (1) or (2) is left alone and reported: it
reruns as usual.

    python scripts/migrate_step_hashes.py --from eeb60c1 --reason "step hashes cover code cells, not Markdown"
    python scripts/migrate_step_hashes.py --from eeb60c1 --check   # report only, change nothing

What the change claims (the same results) is checked by the tests of the commit that makes it, not here.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ot_robust.study.pipeline import build_plan, is_committed, is_done, restamp

#: the committed profiles whose results carry ``.done.json`` files
PROFILES = ("study-fashion", "study-mnist")

#: run by the old revision's own code, in a copy of its package and notebooks beside this checkout's results
_OLD_STATUS = """
import json, os, sys
# only the old copy may answer: an editable install's finder would fill a module the old copy lacks from this checkout
sys.meta_path = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", type(f).__module__)]
import ot_robust
assert ot_robust.__file__.startswith(os.getcwd()), ot_robust.__file__
try:
    from ot_robust.study.pipeline import build_plan, is_committed, is_done
except ImportError:  # before the layer folders (2026-12-06)
    from ot_robust.pipeline import build_plan, is_committed, is_done
out = {}
for name in sys.argv[1:]:
    plan = build_plan(name)
    out[name] = {s.name: {"hash": s.hash, "params": s.params} for s in plan.steps
                 if is_done(s, plan.root) or is_committed(s, plan.root)}
print(json.dumps(out))
"""


def done_at(rev: str, profiles: list[str], root: Path) -> dict[str, dict[str, dict]]:
    """``{profile: {step: {hash, params}}}`` of the steps that the code of git revision ``rev`` counts as done in
    ``root``'s results. Raises subprocess.CalledProcessError when ``rev`` is unknown or its code fails."""
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp)
        archive = subprocess.run(["git", "archive", "--format=tar", rev, "ot_robust", "notebooks"], cwd=root,
                                 check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(old, filter="data")
        for name in ("results", "figures"):
            (old / name).symlink_to((root / name).resolve(), target_is_directory=True)
        res = subprocess.run([sys.executable, "-c", _OLD_STATUS, *profiles], cwd=old, check=True,
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(old)})
        return json.loads(res.stdout)


def migrate(rev: str, reason: str, profiles=PROFILES, root: Path = Path("."), check: bool = False,
            old: dict[str, dict[str, dict]] | None = None) -> dict[str, list[str]]:
    """Re-stamp every step done under ``rev`` whose parameters did not change; returns ``{"restamped": [...],
    "current": [...], "params changed": [...], "not done at rev": [...]}`` (names ``profile:step``). ``old``: what
    :func:`done_at` answered for ``rev`` (asked here when None)."""
    root = Path(root)
    old = done_at(rev, list(profiles), root) if old is None else old
    report: dict[str, list[str]] = {"restamped": [], "current": [], "params changed": [], "not done at rev": []}
    for name in profiles:
        plan = build_plan(name, root=root)
        for step in plan.steps:
            key = f"{name}:{step.name}"
            if is_done(step, root) or is_committed(step, root):
                report["current"].append(key)
            elif step.name not in old[name]:
                report["not done at rev"].append(key)
            elif old[name][step.name]["params"] != step.params:
                report["params changed"].append(key)
            else:
                if not check:
                    restamp(step, root, {"reason": reason, "from_rev": rev})
                report["restamped"].append(key)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="rev", required=True, help="the git revision the committed results were done at")
    ap.add_argument("--reason", default="", help="why the results still stand (required unless --check)")
    ap.add_argument("--profile", nargs="+", default=list(PROFILES))
    ap.add_argument("--check", action="store_true", help="report only; change no .done.json")
    args = ap.parse_args(argv)
    if not args.check and not args.reason:
        ap.error("--reason is required unless --check")
    try:
        report = migrate(args.rev, args.reason, args.profile, check=args.check)
    except subprocess.CalledProcessError as e:
        print(f"error: the code at {args.rev} could not list its finished steps: {e.stderr or e}", file=sys.stderr)
        return 2
    for kind, names in report.items():
        print(f"{kind} ({len(names)}): " + (", ".join(names) if kind != "current" else "..."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
