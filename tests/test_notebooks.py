"""The committed notebooks are exactly what their generators in scripts/ produce (`make notebooks` rebuilds them)."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
GENERATORS = sorted(REPO.glob("scripts/make_notebook*.py"))


@pytest.mark.parametrize("script", GENERATORS, ids=lambda p: p.name)
def test_generated_notebooks_are_up_to_date(script):
    r = subprocess.run([sys.executable, str(script), "--check"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{script.name} --check: {r.stdout}{r.stderr} (run `make notebooks`)"


def test_every_notebook_has_one_parameters_cell():
    notebooks = sorted(REPO.glob("notebooks/*.ipynb"))
    assert len(notebooks) >= 14
    for nb_path in notebooks:
        nb = nbformat.read(nb_path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb_path.name}: {len(tagged)} cells tagged 'parameters'"
        assert "profile" in tagged[0].source, nb_path.name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{nb_path.name} has outputs"
