"""Shared helpers of the notebook generators (``scripts/make_notebook*.py``): cells, notebooks with stable cell ids,
and the common command line (write the notebooks, or ``--check`` that the committed ones are up to date).

A committed notebook may carry outputs (``make notebook-outputs`` executes the ones in
``scripts/execute_notebooks.py``): it is up to date when its cells (types, sources, tags) and kernelspec equal the
generator's, and regenerating leaves such a notebook, outputs included, as it is."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ot-robust)", "language": "python"}


def code(src: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    """A code cell, optionally tagged (papermill's ``parameters`` tag)."""
    c = new_code_cell(src)
    if tags:
        c.metadata["tags"] = tags
    return c


def markdown(src: str) -> nbformat.NotebookNode:
    return new_markdown_cell(src)


def build(cells: list) -> nbformat.NotebookNode:
    """A notebook of ``cells`` with the project's kernel and stable cell ids (regenerating gives identical files)."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = list(cells)
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    return nb


def canonical(text: str) -> list:
    """What a generator decides about a notebook: kernelspec and each cell's type, source and tags (not outputs,
    execution counts or execution metadata)."""
    nb = nbformat.reads(text, as_version=4)
    return [nb.metadata.get("kernelspec")] + [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]


def _same(path: Path, text: str) -> bool:
    return path.is_file() and (path.read_text() == text or canonical(path.read_text()) == canonical(text))


def main(notebooks: dict[str, Callable[[], nbformat.NotebookNode]], script: str, description: str,
         argv: list[str] | None = None) -> int:
    """Write ``notebooks`` (stem -> builder) to ``notebooks/``, or with ``--check`` return 1 if any differs."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--check", action="store_true", help="exit 1 if a committed notebook differs from its generator")
    ap.add_argument("--out", default=str(NB_DIR), help="output folder (default notebooks/)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stale = []
    for stem, builder in notebooks.items():
        text, path = nbformat.writes(builder(), version=4) + "\n", out / f"{stem}.ipynb"
        if args.check:
            if not _same(path, text):
                stale.append(str(path))
        elif _same(path, text):
            print(f"up to date: {path}")
        else:
            nbformat.validate(nbformat.reads(text, as_version=4))
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"stale notebooks (run python scripts/{Path(script).name}):", *stale, sep="\n  ")
        return 1
    return 0
