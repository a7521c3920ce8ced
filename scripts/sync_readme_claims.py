"""Copy the committed verdict table (figures/study/claims.md, written by notebook 50_claims) into the README between
its claims markers, so that the README's findings come from the table (tests/test_readme_claims.py checks they are
equal). The README keeps the rows that have a result, with the columns a reader needs (the attack's column key, the
test's name and the McNemar p stay in the whole table, linked; of each side's training budget the README shows the
epochs, the whole table also the training adversary); the rows whose models are not yet trained or
evaluated (verdict *not run yet*) are counted and named in one line below it, the CIFAR-10 block's as one group.
Run after `make study`: ``.venv/bin/python scripts/sync_readme_claims.py``."""
import sys
from pathlib import Path

from ot_robust.reports.claims import CIFAR10_SUFFIX as CIFAR, NOT_RUN, budget_epochs as epochs

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- claims:begin (scripts/sync_readme_claims.py) -->", "<!-- claims:end -->"
#: claims.md's columns that the README leaves out (kept in the whole table)
DROPPED = ("column", "test", "p")
#: claims.md's budget column, shown in the README as the epochs of the two sides (reports.claims.budget_epochs)
BUDGET, EPOCHS = "budget", "epochs"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _row(cells: list[str]) -> str:
    if all(set(c) <= set("-:") for c in cells):       # the header's separator line, as markdown writes it
        return "|" + "|".join(cells) + "|"
    return "| " + " | ".join(cells) + " |"


def block() -> str:
    """The README's claims block: claims.md less the columns in ``DROPPED`` and without its *not run yet* rows, plus
    one line naming those (the CIFAR-10 rows, which repeat claims above on CIFAR-10, counted by paper)."""
    lines = (ROOT / "figures" / "study" / "claims.md").read_text().strip().splitlines()
    header = next(_cells(line) for line in lines if line.startswith("| paper"))
    keep = [i for i, name in enumerate(header) if name not in DROPPED]
    budget = header.index(BUDGET)
    kept, waiting, cifar = [], [], []
    for line in lines:
        if not line.startswith("|"):
            kept.append(line)
            continue
        cells = _cells(line)
        if cells[0] == "paper":
            cells[budget] = EPOCHS
        elif not set(cells[budget]) <= set("-:"):
            cells[budget] = epochs(cells[budget])
        if cells[-1] == NOT_RUN:
            paper, claim = cells[:2]
            if claim.endswith(CIFAR):
                cifar.append(paper)
            else:
                waiting.append(f"{paper}: {claim}")
        else:
            kept.append(_row([cells[i] for i in keep]))
    if waiting or cifar:
        counts = ", ".join(f"{p} {cifar.count(p)}" for p in dict.fromkeys(cifar))
        block_rows = [f"the CIFAR-10 block's {len(cifar)} rows ({counts}: claims above, on CIFAR-10)"] if cifar else []
        named = "; ".join(waiting + block_rows)
        kept += ["", f"*Not run yet* ({len(waiting) + len(cifar)} rows, their models not yet trained or evaluated): "
                     + named + ". The whole table: [figures/study/claims.md](figures/study/claims.md)."]
    return "\n".join(kept)


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    i, j = text.index(BEGIN) + len(BEGIN), text.index(END)
    readme.write_text(text[:i] + "\n" + block() + "\n" + text[j:])
    print(f"README claims block updated from {ROOT / 'figures/study/claims.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
