"""Every relative link of the README and docs/ points at a file of the repository (issue 17: a README once pointed at
a design note that was not there), and every docs/ page is reachable from the README."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _pages():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def broken_links(page: Path) -> list[str]:
    bad = []
    for target in LINK.findall(page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        if not (page.parent / target).exists():
            bad.append(target)
    return bad


def test_relative_links_resolve():
    bad = {p.name: broken_links(p) for p in _pages()}
    assert not {k: v for k, v in bad.items() if v}, bad


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t).resolve() for t in LINK.findall((ROOT / "README.md").read_text()) if "://" not in t}
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"docs pages not linked from README.md: {missing}"


def test_a_broken_link_is_found(tmp_path):
    page = tmp_path / "x.md"
    (tmp_path / "there.md").write_text("")
    page.write_text("[a](there.md) [b](missing.md#part) [c](https://example.org/y)")
    assert broken_links(page) == ["missing.md"]
