"""Two evaluated runs of one profile compared on the same images, column by column: what one training choice does.

``paired_table(runs_dir, profile, a, b)`` reads both evaluations (``masks.npz`` with the masking audit's columns) and,
for every attack column both have, gives accuracy A and B and the paired difference A - B in points with its 95%
Wald interval and the exact McNemar p-value (:func:`ot_robust.core.stats.mcnemar`); a column counts an image as
robust only if it is also classified correctly clean (as the verdict table does). The training configurations
are compared too (:func:`ot_robust.reports.runs.config_differences`, as the verdict table compares them):
``differences`` names every key in which the two runs differ, so a reader sees what the comparison measures (e.g.
``clip_start: False vs True``).

Used for the measurements that are not paper claims: FS with the official random start against the study's FS,
GOT-LM with the exact potential against the Adam update (docs/fs.md, docs/got.md).
``python -m ot_robust compare --profile P A B [--columns c1,c2] [--results-dir DIR]`` prints it as Markdown.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ..core.stats import mcnemar
from .runs import SAME_TRAINING, config_differences, load_run, paired_robust, train_config


def differences(runs_dir: str | Path, profile: str, a: str, b: str) -> list[str]:
    """The training keys in which runs ``a`` and ``b`` of ``profile`` differ: the method, the seed, the fields every
    verdict compares (:data:`ot_robust.reports.runs.SAME_TRAINING`) and every method parameter either run states
    (one the other leaves out reads ``default``), e.g. ``["clip_start: False vs True"]``.

    Raises:
        FileNotFoundError: ``a`` or ``b`` has no training config.json under ``runs_dir/profile``.
    """
    cfgs = [train_config(runs_dir, profile, e) for e in (a, b)]
    for exp, cfg in zip((a, b), cfgs):
        if cfg is None:
            raise FileNotFoundError(f"{exp!r} of profile {profile!r} has no training config.json under {runs_dir}")
    return config_differences(*cfgs, fields=("method", "seed", *SAME_TRAINING), params="union")


def paired_table(runs_dir: str | Path, profile: str, a: str, b: str,
                 columns: list[str] | None = None) -> pd.DataFrame:
    """One row per attack column: ``acc_a``, ``acc_b`` (%), ``diff`` = A - B and ``ci_low`` / ``ci_high`` (points,
    95% paired Wald), ``p_value`` (exact McNemar), ``n`` (images: the shorter of the two masks), ``a_only`` /
    ``b_only`` (images robust for one run only). ``columns`` default: every column both evaluations have, in A's
    order, ``clean`` first.

    Raises:
        FileNotFoundError: ``a`` or ``b`` has no evaluation with masks under ``runs_dir/profile``.
        ValueError: a requested column is missing from either run, or the runs were evaluated on other images.
    """
    loaded = []
    for exp in (a, b):
        run = load_run(runs_dir, profile, exp)
        if run is None:
            raise FileNotFoundError(f"{exp!r} of profile {profile!r} has no evaluation with masks under {runs_dir}")
        loaded.append(run)
    shared = [c for c in loaded[0][1]["masks"] if c in loaded[1][1]["masks"]]
    cols = columns or shared
    missing = [c for c in cols if c not in shared]
    if missing:
        raise ValueError(f"columns {missing} are not in both evaluations; allowed: {shared}")
    rows = []
    for c in cols:
        ra, rb = paired_robust(*loaded, c, f"{a!r} and {b!r}")
        mc = mcnemar(ra, rb)
        rows.append({"column": c, "acc_a": 100.0 * ra.mean(), "acc_b": 100.0 * rb.mean(), "diff": mc["diff"],
                     "ci_low": mc["ci_low"], "ci_high": mc["ci_high"], "p_value": mc["p_value"], "n": mc["n"],
                     "a_only": mc["a_only"], "b_only": mc["b_only"]})
    return pd.DataFrame(rows).set_index("column")


def cli(argv: list[str] | None = None) -> int:
    """``python -m ot_robust compare``: print :func:`paired_table` and the runs' differences; returns 0."""
    p = argparse.ArgumentParser(prog="python -m ot_robust compare",
                                description="Two evaluated runs of a profile, paired on the same images.")
    p.add_argument("a", help="experiment A (e.g. fs_official_start)")
    p.add_argument("b", help="experiment B (e.g. feature_scattering)")
    p.add_argument("--profile", required=True, help="the profile both belong to (e.g. study-fashion)")
    p.add_argument("--columns", default=None, help="comma-separated attack columns (default: every shared one)")
    p.add_argument("--results-dir", default="results", metavar="DIR", help="holds <profile>/eval/ (default results)")
    args = p.parse_args(argv)
    cols = [c.strip() for c in args.columns.split(",")] if args.columns else None
    table = paired_table(args.results_dir, args.profile, args.a, args.b, cols)
    diff = differences(args.results_dir, args.profile, args.a, args.b)
    from .tables import render_frame

    caption = (f"Profile {args.profile}: A = {args.a}, B = {args.b}; accuracy in %, diff = A - B in points with its "
               f"95% paired interval, exact McNemar p. The runs differ in: {'; '.join(diff) or 'nothing'}.")
    print(render_frame(table.reset_index(), "md", "Paired comparison", caption, "paired", n_text=1), end="")
    return 0
