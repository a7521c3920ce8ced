"""Reporting: every table and figure of the three papers, paper numbers beside ours, one renderer.

* :mod:`.tables` - the renderer (:class:`~.tables.TableSpec`, :func:`~.tables.build_table`, Markdown / CSV / LaTeX)
  and :data:`~.tables.TABLES`, the registry of every paper's tables (filled here from the paper modules).
* :mod:`.figures` - result figures shared by the papers (accuracy vs eps / steps, PGD loss curves).
* :mod:`.fs`, :mod:`.got`, :mod:`.otjr` - one module per paper: its table specs, the tables that need their own
  builder (GOT Tables 1/4/5, OTJR Tables 10-12), its figures and its checks of the paper's own numbers.
* :data:`FIGURES` - figure name -> builder ``(runs_dir, fig_dir, labels) -> [paths]`` (the figure notebooks).

The plotting style is :mod:`ot_robust.style`; the analysis figures (t-SNE, landscapes, ...) are in
:mod:`ot_robust.analysis`; the claims-verdict table in :mod:`ot_robust.claims`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import fs, got, otjr, tables
from .tables import TABLES, build_table, build_tables, load_evals, paper_table, render_frame

for _spec in (*fs.TABLES, *got.TABLES, *otjr.TABLES):
    tables.register_table(_spec)

#: every registered figure builder of the papers, by name
FIGURES: dict[str, Callable[..., list[Path]]] = {**fs.FIGURES}

__all__ = ["TABLES", "FIGURES", "build_table", "build_tables", "load_evals", "paper_table", "render_frame", "fs", "got",
           "otjr", "tables"]
