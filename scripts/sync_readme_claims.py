"""Copy the committed verdict table (figures/study/claims.md, written by notebook 50_claims) into the README between
its claims markers, so that the README's findings come from the table (tests/test_readme_claims.py checks they are
equal). The README keeps the rows that have a result; the rows whose models are not yet trained or evaluated
(verdict *not run yet*) are counted and named in one line below it, with a link to the whole table. Run after
`make study`: ``.venv/bin/python scripts/sync_readme_claims.py``."""
import sys
from pathlib import Path

from ot_robust.reports.claims import NOT_RUN

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- claims:begin (scripts/sync_readme_claims.py) -->", "<!-- claims:end -->"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def block() -> str:
    """The README's claims block: claims.md without its *not run yet* rows, plus one line naming them."""
    lines = (ROOT / "figures" / "study" / "claims.md").read_text().strip().splitlines()
    kept, waiting = [], []
    for line in lines:
        if line.startswith("| ") and _cells(line)[-1] == NOT_RUN:
            paper, claim = _cells(line)[:2]
            waiting.append(f"{paper}: {claim}")
        else:
            kept.append(line)
    if waiting:
        kept += ["", f"*Not run yet* ({len(waiting)} rows, their models not yet trained or evaluated): "
                     + "; ".join(waiting) + ". The whole table: [figures/study/claims.md](figures/study/claims.md)."]
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
