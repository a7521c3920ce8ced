"""Copy the committed verdict table (figures/study/claims.md, written by notebook 50_claims) into the README between
its claims markers, so that the README's findings come from the table (tests/test_readme_claims.py checks they are
equal). Run after `make study`: ``.venv/bin/python scripts/sync_readme_claims.py``."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- claims:begin (scripts/sync_readme_claims.py) -->", "<!-- claims:end -->"


def block() -> str:
    return (ROOT / "figures" / "study" / "claims.md").read_text().strip()


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    i, j = text.index(BEGIN) + len(BEGIN), text.index(END)
    readme.write_text(text[:i] + "\n" + block() + "\n" + text[j:])
    print(f"README claims block updated from {ROOT / 'figures/study/claims.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
