"""``python -m ot_robust zoo [--dataset NAME] [--sort COLUMN] [--write DIR] [--results-dir DIR]``: print the
leaderboard (Markdown), or write ``leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.html`` into ``DIR``.

Bad values (an unknown dataset or column) raise ValueError, which ``python -m ot_robust`` prints as one line
``error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import shlex

from ..reports.tables import render_frame
from .leaderboard import TITLE, caption, display_frame, leaderboard, write_leaderboard


def cli(argv: list[str] | None = None) -> int:
    """Run the ``zoo`` command with ``argv`` (the arguments after ``zoo``); returns the exit status (0)."""
    p = argparse.ArgumentParser(prog="python -m ot_robust zoo",
                                description="The model zoo's leaderboard: every trained model under results/ with "
                                            "clean, PGD-20 and AutoAttack accuracy (95%% intervals) and its status.")
    p.add_argument("--dataset", default=None, metavar="NAME", help="only this dataset's models (e.g. mnist)")
    p.add_argument("--sort", default=None, metavar="COLUMN",
                   help="sort by COLUMN (e.g. autoattack, clean, pgd20, name, seed; accuracies best first); "
                        "default: per dataset by AutoAttack rank")
    p.add_argument("--write", default=None, metavar="DIR",
                   help="write leaderboard.md, leaderboard.csv and leaderboard.html into DIR instead of printing")
    p.add_argument("--results-dir", default=None, metavar="DIR",
                   help="the folder holding <profile>/train/<experiment>/ (default: the checkout's results/)")
    args = p.parse_args(argv)
    board = leaderboard(args.results_dir, dataset=args.dataset, sort=args.sort)
    command = shlex.join(["python", "-m", "ot_robust", "zoo", *(argv or [])])
    if args.write:
        for path in write_leaderboard(args.write, board, command):
            print(path)
        return 0
    print(render_frame(display_frame(board), "md", TITLE, caption(board, command), "zoo", n_text=4), end="")
    return 0
