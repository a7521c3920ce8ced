"""Sizing of the masking audit (issue 33): seconds per image of each audit attack on a committed study model, and the
projected time of each ``audit/<exp>`` step of a profile.

    .venv/bin/python benchmarks/bench_audit.py --profile study-fashion [--experiment pgd_at] [--n 20]
        [--attack 'rays=rays eps=0.1 queries=10000' ...] [--threads 1]

Each attack runs once on the first ``--n`` images of the evaluation's class-balanced order (the images the audit
uses; the prefix keeps the classes balanced, so its share of robust images, which cost the most, is close to the
full set's). The per-image time is scaled to the group's ``n_examples``; a step's projection is the sum over its
groups' columns (+ one eps-sweep point = one PGD run per eps and protocol, timed the same way). ``--attack KEY=SPEC``
times specs not yet in the profile (projected at ``--project-n`` images). Attack time dominates on these models;
the numbers are for the CPU it runs on, with whatever else runs beside it: compare, don't quote.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ot_robust.attacks import make_attack  # noqa: E402
from ot_robust.core.data import get_dataset  # noqa: E402
from ot_robust.evaluation.curves import accuracy_vs_epsilon  # noqa: E402
from ot_robust.evaluation.suite import _load_data  # noqa: E402
from ot_robust.profiles import load_profile  # noqa: E402
from ot_robust.profiles.audit_schema import groups_of  # noqa: E402
from ot_robust.profiles.paths import RunLayout  # noqa: E402
from ot_robust.training.api import load_model  # noqa: E402


def _spec(a, lay):
    return a if isinstance(a, str) else f"transfer source={lay.train(a['source'])} via={a['via']}"


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", required=True)
    p.add_argument("--experiment", action="append", help="models to time (default: every model the audit lists)")
    p.add_argument("--n", type=int, default=20, help="images per timing (default 20)")
    p.add_argument("--attack", action="append", default=[], metavar="KEY=SPEC", help="an extra spec to time")
    p.add_argument("--project-n", type=int, default=1000, help="images an --attack spec is projected to")
    p.add_argument("--runs-dir", default="results")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    prof = load_profile(a.profile)
    lay = RunLayout(a.runs_dir, prof.name)
    exps = a.experiment or [e for e in prof.methods if groups_of(prof.audit, e)]
    if not exps:
        raise SystemExit(f"profile {prof.name!r} has no audit and no --experiment was given")
    test = get_dataset(prof.dataset, "test", root=prof.data_root)
    x, y, _, _ = _load_data(test, a.n, "balanced")
    extra = dict(s.split("=", 1) for s in a.attack)
    total = 0.0
    print(f"{prof.name}: {a.n} images per timing, {a.threads} thread(s); seconds per image -> projected minutes")
    for exp in exps:
        model = load_model(lay.train(exp))
        step_s = 0.0
        jobs = [(g, col, _spec(at, lay), grp["n_examples"]) for g, grp in groups_of(prof.audit, exp).items()
                for col, at in grp["attacks"].items()]
        jobs += [("--attack", k, s, a.project_n) for k, s in extra.items()]
        for group, col, spec, n in jobs:
            atk = make_attack(spec)
            s = _time(lambda: atk(model, x, y)) / a.n
            step_s += s * n
            print(f"  {exp:24s} {group:9s} {col:18s} {s:8.3f} s/image  x {n:5d} = {s * n / 60:7.1f} min")
        for g, grp in groups_of(prof.audit, exp).items():
            sw = grp.get("eps_sweep")
            if not sw:
                continue
            for name, pr in sw["protocols"].items():
                s = _time(lambda: accuracy_vs_epsilon(model, x, y, [float(e) for e in sw["epsilons"]],
                                                      steps=pr["steps"], step_size=pr.get("step_size"),
                                                      labels=pr.get("labels", "true"), batch_size=a.n,
                                                      random_start=pr.get("random_start", True))) / a.n
                step_s += s * sw["n_examples"]
                print(f"  {exp:24s} {g:9s} sweep:{name:12s} {s:8.3f} s/image  x {sw['n_examples']:5d} = "
                      f"{s * sw['n_examples'] / 60:7.1f} min")
        total += step_s
        print(f"  {exp:24s} step audit/{exp}: {step_s / 60:.1f} min")
    print(f"all {len(exps)} audit steps: {total / 3600:.2f} h with one job on this CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
