"""Reporting: every table and figure of the three papers, paper numbers beside ours, one renderer.

* :mod:`.tables` - the renderer (:class:`~.tables.TableSpec`, :func:`~.tables.build_table`, Markdown / CSV / LaTeX)
  and :data:`~.tables.TABLES`, the registry of every paper's tables (filled here from the paper modules).
* :mod:`.figures` - result figures shared by the papers (accuracy vs eps / steps, PGD loss curves).
* :mod:`.fs`, :mod:`.got`, :mod:`.otjr` - one module per paper: its table specs, the tables that need their own
  builder (GOT Tables 1/4/5, OTJR Tables 10-12), its figures and its checks of the paper's own numbers.
* :func:`check_names` - every table and figure a profile names has a builder (the profile's own checks stop short
  of this: reports sit above profiles).
* :func:`write_tables` / :func:`draw_figures` - the one entry point of the table and figure notebooks (30-32,
  40-42) for every paper: each table name goes to its paper's writer (:data:`WRITERS`), each figure name to its
  builder in :data:`FIGURES` (``(profile, runs_dir, fig_dir) -> [paths]``).

The plotting style is :mod:`ot_robust.core.style`; the analysis figures (t-SNE, landscapes, ...) are in
:mod:`ot_robust.analysis`; the claims-verdict table in :mod:`ot_robust.reports.claims`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from ..profiles import FIGURE_NOTEBOOKS, TABLE_NOTEBOOKS, Profile, ProfileError
from . import fs, got, otjr, tables
from .figures import FigureNotDrawn
from .tables import TABLES, build_table, build_tables, paper_table, render_frame

for _spec in (*fs.TABLES, *got.TABLES, *otjr.TABLES):
    tables.register_table(_spec)

#: each paper's table writer ``(profile, runs_dir, out_dir, names) -> {table: [paths] | reason not built}``
WRITERS: dict[str, Callable[..., dict]] = {"fs": build_tables, "got": got.write_tables, "otjr": otjr.write_tables}

#: every figure builder of the papers, by name: ``(profile, runs_dir, fig_dir) -> [paths]``
FIGURES: dict[str, Callable[..., list[Path]]] = {**fs.FIGURES, **got.FIGURES, **otjr.FIGURES}


def _paper(name: str) -> str:
    return name.split("_", 1)[0]


def write_tables(profile, runs_dir: str | Path, out_dir: str | Path, names: Sequence[str] | None = None
                 ) -> dict[str, list[Path] | str]:
    """Write the tables ``names`` (default: the profile's ``tables``) of any paper into ``out_dir`` (Markdown, CSV,
    LaTeX) from ``runs_dir`` (``runs/<profile>``). Returns ``{table: [paths]}``, or ``{table: reason}`` for a
    table the profile cannot build (e.g. an MNIST table on other data). Raises ValueError for an unknown paper
    prefix or table name."""
    names = list(names if names is not None else profile.tables)
    written: dict[str, list[Path] | str] = {}
    for paper in dict.fromkeys(map(_paper, names)):
        if paper not in WRITERS:
            raise ValueError(f"no tables for paper prefix {paper!r}; allowed prefixes: {sorted(WRITERS)}")
        written.update(WRITERS[paper](profile, runs_dir, out_dir, [n for n in names if _paper(n) == paper]))
    return written


def draw_figures(profile, runs_dir: str | Path, fig_dir: str | Path, names: Sequence[str]
                 ) -> dict[str, list[Path] | str]:
    """Draw the figures ``names`` (keys of :data:`FIGURES`) of ``profile`` from ``runs_dir`` into ``fig_dir`` (PNG,
    PDF). Returns ``{figure: [paths]}``, or ``{figure: reason}`` for one whose models the profile did not run
    (:class:`~.figures.FigureNotDrawn`). Raises ValueError for an unknown name."""
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figures {unknown}; allowed: {sorted(FIGURES)}")
    out: dict[str, list[Path] | str] = {}
    for n in names:
        try:
            out[n] = FIGURES[n](profile, runs_dir, fig_dir)
        except FigureNotDrawn as e:
            out[n] = str(e)
    return out


__all__ = ["TABLES", "FIGURES", "WRITERS", "write_tables", "draw_figures", "build_table", "build_tables",
           "paper_table", "render_frame", "fs", "got", "otjr", "tables"]


def check_names(profile: Profile) -> Profile:
    """Return ``profile`` when every table and figure it names (``tables``, ``figures``, ``methods.<exp>.tables``)
    has a builder: FS names are checked against :data:`TABLES` / :data:`FIGURES`; a GOT or OTJR name only needs its
    paper's notebook (that notebook's writer checks the rest).

    Raises:
        ProfileError: an unknown name, with the allowed ones.
    """
    src = str(profile.path or profile.name)

    def known(name: str, registry: dict, notebooks: dict) -> bool:
        paper = name.split("_", 1)[0]
        return name in registry or (paper != "fs" and paper in notebooks)

    for t in profile.tables:
        if not known(t, TABLES, TABLE_NOTEBOOKS):
            raise ProfileError(f"{src}: tables entry {t!r} unknown; allowed: {sorted(TABLES)} or "
                               f"a name starting with {sorted(k + '_' for k in TABLE_NOTEBOOKS if k != 'fs')}")
    for exp, m in profile.methods.items():
        for t in m.tables:
            if not known(t, TABLES, TABLE_NOTEBOOKS):
                raise ProfileError(f"{src}: methods.{exp}.tables key {t!r} unknown; allowed: {sorted(TABLES)}")
    for f in profile.figures:
        if not known(f, FIGURES, FIGURE_NOTEBOOKS):
            raise ProfileError(f"{src}: figures entry {f!r} unknown; allowed: {sorted(FIGURES)} or "
                               f"a name starting with {sorted(k + '_' for k in FIGURE_NOTEBOOKS if k != 'fs')}")
    return profile
