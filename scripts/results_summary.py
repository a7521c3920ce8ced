"""Print a Markdown summary of a profile's evaluations (runs/<profile>/eval/*/eval.json) with their provenance.

Usage: python scripts/results_summary.py [--profile quick] [--runs-dir runs]
(the README's "Results at a glance" table is this script's output for the committed run).
"""

import argparse
import json
from pathlib import Path

COLUMNS = ["clean", "fgsm", "pgd10", "pgd20", "pgd40", "cw20", "mim", "l2_pgd"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--runs-dir", default="runs")
    args = ap.parse_args()
    evals = sorted(Path(args.runs_dir, args.profile, "eval").glob("*/eval.json"))
    if not evals:
        raise SystemExit(f"no eval.json under {Path(args.runs_dir, args.profile, 'eval')}: run the profile first")
    rows, commits = [], set()
    for p in evals:
        e = json.loads(p.read_text())
        acc = e["accuracy"]
        flags = [c["check"] for c in e.get("sanity", []) if c.get("status") == "flag"]
        aa = e.get("autoattack")
        cells = [f"{acc[c]:.1f}" if acc.get(c) is not None else "" for c in COLUMNS]
        aa_cell = f"{aa:.1f} (n={e.get('autoattack_n_examples')})" if aa is not None else ""
        rows.append(f"| {e.get('label', p.parent.name)} | " + " | ".join(cells) +
                    f" | {aa_cell} | {e['worst_case']:.1f} | {'flag: ' + ', '.join(flags) if flags else 'pass'} |")
        commits.add(e.get("provenance", {}).get("git_commit"))
        n = e.get("n_examples")
    print("| method | " + " | ".join(COLUMNS) + " | AutoAttack | worst | sanity |")
    print("|---|" + "---:|" * (len(COLUMNS) + 2) + "---|")
    print("\n".join(rows))
    print(f"\nProfile `{args.profile}`; {n} test images (AutoAttack on the first n shown); accuracy in %; "
          f"worst = per-example worst case over the listed attacks; commit(s): {', '.join(sorted(map(str, commits)))}.")


if __name__ == "__main__":
    main()
