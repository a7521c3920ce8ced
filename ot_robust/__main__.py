"""Command line: ``python -m ot_robust reproduce|train|evaluate|robustbench|zoo|compare|profiles|presets ...``.

* ``reproduce --profile NAME [--force] [--only PATTERN] [--jobs N] [--dry-run | --status] [--runs-dir DIR]
  [--fig-dir DIR] [--max-batches N] [--kernel NAME] [--executor local|slurm --partition P --account A --qos Q
  --slurm-time T --slurm-gpus N --slurm-cpus N --slurm-mem M --slurm-wait]``: run a profile's plan (see
  :mod:`ot_robust.study.pipeline`; ``--executor slurm``: :mod:`ot_robust.study.slurm`); default profile ``quick``.
* ``train ...`` -> :func:`ot_robust.training.api.cli`; ``evaluate ...`` -> :func:`ot_robust.evaluation.suite.cli`;
  ``robustbench ...`` -> :func:`ot_robust.evaluation.robustbench.cli`; ``zoo ...`` (the model zoo's leaderboard)
  -> :func:`ot_robust.zoo.cli.cli`; ``compare ...`` (two evaluated runs paired on the same images) ->
  :func:`ot_robust.reports.paired.cli`.
* ``profiles``: list the shipped profiles with their descriptions.
* ``presets``: list the named paper configurations (``--preset`` of ``train``, ``preset:`` in a profile).

Exit status: 0 on success, 1 when a pipeline step fails (the message names the executed notebook and the failing
cell), 2 for bad arguments, bad values or an invalid profile: one line ``error: ...`` naming the value and what is
allowed (``--debug`` anywhere on the command line shows the traceback instead).
"""

from __future__ import annotations

import argparse
import sys


def _reproduce_parser(sub) -> None:
    from .profiles import DEFAULT_PROFILE

    p = sub.add_parser("reproduce", help="run a profile's plan of notebooks with papermill",
                       description="Train, evaluate and regenerate tables/figures of a profile with papermill.")
    p.add_argument("--profile", default=DEFAULT_PROFILE, help=f"profile name or YAML path (default {DEFAULT_PROFILE})")
    p.add_argument("--force", action="store_true", help="rerun selected steps even if up to date")
    p.add_argument("--only", default=None, metavar="PATTERN",
                   help="glob(s) on step names, comma-separated, e.g. 'train/*' or 'evaluate/pgd_at,tables/*'")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="independent steps run in parallel (default 1)")
    p.add_argument("--dry-run", action="store_true", help="print one papermill command per step and exit")
    p.add_argument("--status", action="store_true",
                   help="run nothing: print which steps are done, in progress (a stopped chunk) or still to run, "
                        "with the estimated time left")
    p.add_argument("--runs-dir", default=None, metavar="DIR",
                   help="run outputs go to DIR/<profile> (default: the profile's runs_dir, else runs)")
    p.add_argument("--budget", default=None, metavar="TIME",
                   help="e.g. 150m or 2.5h: start no step after this much time; a training step stops at its next "
                        "epoch end with its checkpoint saved; the same command again continues")
    p.add_argument("--fig-dir", default="figures", metavar="DIR",
                   help="figures and tables go to DIR/<profile> (default figures)")
    p.add_argument("--max-batches", type=int, default=None, metavar="N",
                   help="stop every training run after N batches (one-batch check of the GPU profiles)")
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebooks' own, python3)")
    g = p.add_argument_group("SLURM (--executor slurm, docs/cluster.md)")
    g.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local (default): run the steps here; slurm: submit each step that must run as a SLURM job "
                        "(submitit), its dependencies as afterok")
    g.add_argument("--partition", default=None, help="SLURM partition of every job")
    g.add_argument("--account", default=None, help="SLURM account of every job")
    g.add_argument("--qos", default=None, help="SLURM QOS of every job")
    g.add_argument("--slurm-time", default=None, metavar="TIME",
                   help="time limit of every job (minutes, 90m, 2h, HH:MM:SS); default: per notebook/profile")
    g.add_argument("--slurm-gpus", type=int, default=None, metavar="N", help="GPUs of every job")
    g.add_argument("--slurm-cpus", type=int, default=None, metavar="N", help="CPUs of every job")
    g.add_argument("--slurm-mem", default=None, metavar="MEM", help="memory of every job, e.g. 32G")
    g.add_argument("--slurm-constraint", default=None, metavar="FEATURES", help="node constraint of every job")
    g.add_argument("--slurm-wait", action="store_true", help="wait for every job to end (default: submit and exit)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ot_robust``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        return _main(argv)
    except (ValueError, FileNotFoundError, KeyError, TypeError) as e:  # bad input: one line, exit 2
        if debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2


def _main(argv: list[str]) -> int:
    if argv and argv[0] in ("train", "evaluate", "robustbench", "zoo", "compare"):  # delegate what follows
        if argv[0] == "train":
            from .training.api import cli
        elif argv[0] == "evaluate":
            from .evaluation.suite import cli
        elif argv[0] == "zoo":
            from .zoo.cli import cli
        elif argv[0] == "compare":
            from .reports.paired import cli
        else:
            from .evaluation.robustbench import cli
        return int(cli(argv[1:]) or 0)
    parser = argparse.ArgumentParser(prog="python -m ot_robust", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _reproduce_parser(sub)
    sub.add_parser("train", help="train one model (see `python -m ot_robust train --help`)")
    sub.add_parser("evaluate", help="evaluate one model (see `python -m ot_robust evaluate --help`)")
    sub.add_parser("robustbench", help="RobustBench's protocol on any model (see `python -m ot_robust robustbench "
                                       "--help`)")
    sub.add_parser("zoo", help="the model zoo's leaderboard of the committed models (see `python -m ot_robust zoo "
                               "--help`)")
    sub.add_parser("compare", help="two evaluated runs of a profile, paired on the same images (see `python -m "
                                   "ot_robust compare --help`)")
    sub.add_parser("profiles", help="list the shipped profiles")
    sub.add_parser("presets", help="list the named paper configurations (TrainConfig presets)")
    args = parser.parse_args(argv)
    if args.command == "presets":
        from .presets import get_preset, list_presets

        for name in list_presets():
            p = get_preset(name)
            print(f"{name:32s} {p['method']:18s} {p['dataset']:12s} {p['model']:10s} {p['epochs']:>3} epochs")
        return 0

    from .study.pipeline import PipelineError, run_profile
    from .profiles import ProfileError, list_profiles, load_meta_profile, load_profile

    if args.command == "profiles":
        for name in list_profiles():
            try:
                meta = load_meta_profile(name)
                desc = (meta or load_profile(name, check_registries=False)).description
            except ProfileError as e:
                desc = f"INVALID: {e}"
            print(f"{name:16s} {desc}")
        return 0
    if args.status:
        from .study.status import report

        report(args.profile, runs_dir=args.runs_dir, fig_dir=args.fig_dir, only=args.only, jobs=args.jobs)
        return 0
    slurm = None
    given = [f"--{k.replace('_', '-')}" for k in ("partition", "account", "qos", "slurm_time", "slurm_gpus",
                                                  "slurm_cpus", "slurm_mem", "slurm_constraint", "slurm_wait")
             if getattr(args, k) not in (None, False)]
    if given and args.executor != "slurm":
        raise ValueError(f"{', '.join(given)}: needs --executor slurm")
    if args.executor == "slurm":
        overrides = {"partition": args.partition, "account": args.account, "qos": args.qos, "time": args.slurm_time,
                     "gpus": args.slurm_gpus, "cpus": args.slurm_cpus, "mem": args.slurm_mem,
                     "constraint": args.slurm_constraint}
        slurm = {"overrides": overrides, "wait": args.slurm_wait}
    if not args.dry_run:
        import importlib.util

        missing = [m for m in ("papermill", "nbformat", "ipykernel") if importlib.util.find_spec(m) is None]
        if missing:
            raise ValueError(f"reproduce runs the notebooks and needs {', '.join(missing)}: install the notebooks "
                             "extra (from a checkout: pip install \".[notebooks]\")")
    executor = "local"
    if args.executor == "slurm":
        from .study.slurm import submit_plan

        executor = submit_plan
    try:
        run_profile(args.profile, runs_dir=args.runs_dir, fig_dir=args.fig_dir, max_batches=args.max_batches,
                    force=args.force, only=args.only, jobs=args.jobs, dry_run=args.dry_run, kernel=args.kernel,
                    budget=args.budget, log=lambda s: print(s, flush=True), executor=executor, slurm=slurm)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
