"""The step hash covers code, not prose: Markdown, comments, blank lines and outputs of a notebook leave it alone,
a changed line of code changes it; and the migration that re-stamps the committed study after a hash-scheme change
counts exactly the steps that the code of a given revision counts as done."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ot_robust.study.pipeline import DONE_FILE, Step, normalise_code, notebook_digest, restamp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import migrate_step_hashes  # noqa: E402


def _write(path: Path, cells) -> str:
    nbformat.write(new_notebook(cells=cells), path)
    return notebook_digest(path)


def test_prose_comments_and_outputs_do_not_change_the_digest_code_does(tmp_path):
    nb = tmp_path / "a.ipynb"
    base = _write(nb, [new_markdown_cell("# Title\nquick takes 15 minutes"), new_code_cell("x = 1\nprint(x)")])
    assert _write(nb, [new_markdown_cell("# Title\nquick takes 38 minutes"), new_code_cell("x = 1\nprint(x)")]) == base
    assert _write(nb, [new_code_cell("x = 1   # one\n\n\nprint(x)  \n# done")]) == base
    with_output = new_code_cell("x = 1\nprint(x)", execution_count=3,
                                outputs=[nbformat.v4.new_output("stream", text="1\n")])
    assert _write(nb, [with_output]) == base
    assert _write(nb, [new_code_cell("x = 2\nprint(x)")]) != base
    assert _write(nb, [new_code_cell("x = 1"), new_code_cell("print(x)")]) != base  # cell boundaries count
    assert _write(nb, [new_code_cell("s = '# not a comment'")]) != _write(nb, [new_code_cell("s = '")])


def test_normalise_code_keeps_strings_and_indentation_and_survives_magics():
    assert normalise_code("if a:  # why\n    b = '# kept'\n\n") == "if a:\n    b = '# kept'"
    assert normalise_code("%matplotlib inline\nx = 1 # c") == "%matplotlib inline\nx = 1"
    assert normalise_code("x = (1,\n") == "x = (1,"  # untokenizable: kept as written


def test_restamp_keeps_the_old_hash_and_the_reason(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / DONE_FILE).write_text(json.dumps({"hash": "old", "params": {"x": 1}, "seconds": 3}))
    restamp(Step("s", "nb.ipynb", "out.ipynb", {"x": 1}, "d", hash="new"), tmp_path, {"reason": "moved"})
    rec = json.loads((tmp_path / "d" / DONE_FILE).read_text())
    assert rec["hash"] == "new" and rec["seconds"] == 3
    assert rec["restamped"][0]["old_hash"] == "old" and rec["restamped"][0]["reason"] == "moved"


def test_migration_from_this_revision_finds_nothing_to_restamp():
    """Run against HEAD, the old code is this code: every committed step is current, none needs a new stamp, and
    the steps HEAD's own copy counts as done are exactly those this checkout counts as done."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    old = migrate_step_hashes.done_at(head.stdout.strip(), list(migrate_step_hashes.PROFILES), REPO)
    report = migrate_step_hashes.migrate(head.stdout.strip(), "", root=REPO, check=True, old=old)
    assert report["restamped"] == [] and report["params changed"] == []
    assert len(report["current"]) > 90  # the committed study
    assert sorted(f"{p}:{s}" for p, steps in old.items() for s in steps) == sorted(report["current"])
