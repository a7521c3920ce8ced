"""The README is a user's page (issue 36): what the project is, how to install it and a short example on its first
screen, about 1,500 words in all; history and details live in docs/. Words are counted as a reader sees them: a
token with at least one letter or digit (the pipes and dashes of a markdown table are not words), code included."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_SCREEN = 45  # lines
WORD_BUDGET = 1500


def reader_words(text: str) -> int:
    return sum(1 for token in re.findall(r"\S+", text) if re.search(r"[A-Za-z0-9]", token))


def test_word_count_ignores_table_punctuation():
    assert reader_words("| a | b |\n|---|---:|\n| 1 | +2.0 |") == 4
    assert reader_words("pip install . # the library") == 4


def test_readme_stays_within_its_word_budget():
    n = reader_words((ROOT / "README.md").read_text())
    assert n <= WORD_BUDGET, f"README has {n} words, budget {WORD_BUDGET}: move details to docs/"


def test_first_screen_says_what_how_to_install_and_shows_an_example():
    lines = (ROOT / "README.md").read_text().splitlines()[:FIRST_SCREEN]
    screen = "\n".join(lines)
    assert lines[0].startswith("# ot-robust")
    assert "pip install ." in screen
    example = screen.split("```python\n", 1)
    assert len(example) == 2, "no Python example on the first screen"
    code = [line for line in example[1].split("```", 1)[0].splitlines() if line.strip()]
    assert 3 <= len(code) <= 8, code
    assert "ot_robust" in code[0]
