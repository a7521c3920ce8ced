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


sys.path.insert(0, str(REPO / "scripts"))
from execute_notebooks import OUTPUT_NOTEBOOKS, RENDERED_NOTEBOOKS  # noqa: E402


def test_every_notebook_has_one_parameters_cell():
    notebooks = sorted(REPO.glob("notebooks/*.ipynb"))
    assert len(notebooks) >= 14
    for nb_path in notebooks:
        nb = nbformat.read(nb_path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb_path.name}: {len(tagged)} cells tagged 'parameters'"
        assert "profile" in tagged[0].source, nb_path.name
        if nb_path.stem not in OUTPUT_NOTEBOOKS + RENDERED_NOTEBOOKS:  # the others are committed clean
            assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{nb_path.name} has outputs"


def test_lab_shows_the_notebooks_kernel_under_their_own_display_name():
    """Opening a notebook in `make lab` must not mark it modified: the venv's python3 kernelspec that `make lab`
    installs carries the display name the committed notebooks record (issue 17)."""
    import re

    lab = re.search(r"^lab:.*?(?=^\S)", (REPO / "Makefile").read_text() + "\nend", re.M | re.S).group(0)
    m = re.search(r'ipykernel install --sys-prefix --name (\S+) --display-name "([^"]+)"', lab)
    assert m, lab
    for nb_path in sorted(REPO.glob("notebooks/*.ipynb")):
        spec = nbformat.read(nb_path, as_version=4).metadata["kernelspec"]
        assert (spec["name"], spec["display_name"]) == (m.group(1), m.group(2)), nb_path.name


@pytest.mark.slow
def test_solver_notebook_shows_its_figures_inline_and_writes_them_where_told(tmp_path):
    """01_ot_solvers run as a user runs it: its figures appear in the notebook (not only as files, issue 17) and
    go to the fig_dir it is given (by hand, without one: runs/<profile>/figures, never the committed figures/)."""
    out = tmp_path / "01.ipynb"
    r = subprocess.run([sys.executable, "-m", "papermill", "--log-level", "WARNING", "notebooks/01_ot_solvers.ipynb",
                        str(out), "-p", "profile", "smoke", "-p", "fig_dir", str(tmp_path / "figs"), "--cwd", "."],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    nb = nbformat.read(out, as_version=4)
    assert sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])) >= 4
    assert (tmp_path / "figs/01_convergence.png").stat().st_size > 1000
    params = next(c for c in nbformat.read(REPO / "notebooks/01_ot_solvers.ipynb", as_version=4).cells
                  if "parameters" in c.metadata.get("tags", []))
    assert "runs/<profile>/figures" in params.source


def test_progress_bars_in_a_kernel_without_ipywidgets_write_to_stdout(monkeypatch, capsys):
    """JupyterLab shows a finished text bar on stderr (leave=False) as an empty pink box: in a kernel without
    ipywidgets the bars write to stdout instead; outside a kernel they stay on stderr."""
    import sys
    import types

    from ot_robust.core.utils import tqdm_class

    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    for _ in tqdm_class()(range(3), leave=False):
        pass
    out = capsys.readouterr()
    assert "0/3" in out.err and out.out == ""
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    for _ in tqdm_class()(range(3), leave=False):
        pass
    out = capsys.readouterr()
    assert "0/3" in out.out and out.err == ""
