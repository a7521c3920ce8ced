"""The leaderboard: the zoo ranked per dataset by AutoAttack accuracy (RobustBench's rule), as Markdown, CSV and a
self-contained HTML page (:mod:`ot_robust.zoo.page`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.utils import atomic_write_bytes, git_commit
from ..reports.tables import render_frame
from .catalog import COLUMNS, IN_TRAINING, METRICS, STATUS_OK, list_models
from .page import render_html

#: leaderboard columns sorted best (highest) first by ``--sort``; every other column sorts ascending
DESCENDING = tuple(f"{m}{s}" for m in METRICS for s in ("", "_lo", "_hi", "_n"))
#: shown header -> (column of :func:`leaderboard` it displays, the column its cells sort by in the HTML page)
DISPLAY = {"#": ("rank", "rank"), "name": ("name", None), "method": ("method", None),
           "architecture": ("architecture", None), "seed": ("seed", "seed"), "epochs": ("epochs", "epochs"),
           "eps (Linf)": ("eps", "eps"), "Clean": ("clean", "clean"), "Clean 95% CI": ("clean_lo", "clean_lo"),
           "PGD-20": ("pgd20", "pgd20"), "PGD-20 95% CI": ("pgd20_lo", "pgd20_lo"),
           "AutoAttack": ("autoattack", "autoattack"), "AA 95% CI": ("autoattack_lo", "autoattack_lo"),
           "n (clean / PGD-20 / AA)": ("clean_n", "clean_n"), "sanity": ("sanity", None),
           "status": ("status", None)}
TITLE = "Model zoo leaderboard"
#: the files :func:`write_leaderboard` writes
FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.html")


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def sort_column(name: str) -> str:
    """The :func:`leaderboard` column that ``name`` means (a column or a shown header, any case; ``aa`` is
    ``autoattack``). Raises ValueError naming it and the allowed columns."""
    cols = ["rank"] + COLUMNS
    known = {_key(c): c for c in cols} | {_key(h): c for h, (c, _) in DISPLAY.items()} | {"aa": "autoattack"}
    if _key(name) not in known:
        raise ValueError(f"unknown sort column {name!r}; allowed: {', '.join(cols)}")
    return known[_key(name)]


def _ranks(df: pd.DataFrame) -> pd.Series:
    """1, 2, ... per dataset over the rows with status ``ok`` and an AutoAttack accuracy, best first (ties: PGD-20,
    then clean); <NA> elsewhere."""
    rank = pd.Series(pd.NA, index=df.index, dtype="Int64")
    ranked = df[(df["status"] == STATUS_OK) & df["autoattack"].notna()]
    ranked = ranked.sort_values(["autoattack", "pgd20", "clean"], ascending=False, kind="stable")
    for _, group in ranked.groupby("dataset", sort=False):
        rank[group.index] = range(1, len(group) + 1)
    return rank


def leaderboard(results_dir: str | Path | None = None, dataset: str | None = None,
                sort: str | None = None) -> pd.DataFrame:
    """:func:`ot_robust.zoo.list_models` with a ``rank`` column in front, in leaderboard order: by dataset, ranked
    rows first (AutoAttack, best first), then PGD-20 (best first) and the rows with no current evaluation last.

    Args:
        dataset: keep only this dataset's models (``fashion-mnist``, ``mnist``, ...).
        sort: reorder by this column (:func:`sort_column`): accuracies, their intervals and ``n`` best first,
            every other column ascending; blanks last, ties in leaderboard order.
    Raises:
        ValueError: a dataset with no model in the zoo or an unknown sort column (both list what is allowed).
    """
    col = sort_column(sort) if sort is not None else None
    df = list_models(results_dir)
    if dataset is not None:
        if dataset not in set(df["dataset"]):
            raise ValueError(f"no zoo model for dataset {dataset!r}; allowed: {', '.join(sorted(set(df['dataset'])))}")
        df = df[df["dataset"] == dataset]
    df = df.assign(rank=_ranks(df))[["rank"] + COLUMNS]
    df = df.sort_values(["dataset", "rank", "pgd20", "name"], ascending=[True, True, False, True],
                        na_position="last", kind="stable")
    if col is not None:
        df = df.sort_values(col, ascending=col not in DESCENDING, na_position="last", kind="stable")
    return df.reset_index(drop=True)


def _num(v: Any, digits: int = 2) -> str:
    return "" if v is None or pd.isna(v) else f"{float(v):.{digits}f}"


def _int(v: Any) -> str:
    return "" if v is None or pd.isna(v) else str(int(v))


def display_frame(board: pd.DataFrame) -> pd.DataFrame:
    """The shown table of a :func:`leaderboard` frame: the :data:`DISPLAY` headers, every cell text (accuracies
    with two decimals, intervals ``[lo, hi]`` with one, blank where not measured or withheld)."""
    def ci(r, m):
        return "" if pd.isna(r[f"{m}_lo"]) else f"[{r[f'{m}_lo']:.1f}, {r[f'{m}_hi']:.1f}]"

    def status(r):
        trained = r["weights"] or str(r["status"]).startswith(IN_TRAINING)
        return r["status"] + ("" if trained else "; weights not in this checkout")

    rows = [{"#": _int(r["rank"]), "name": r["name"], "method": str(r["method"] or ""),
             "architecture": str(r["architecture"] or ""), "seed": _int(r["seed"]), "epochs": _int(r["epochs"]),
             "eps (Linf)": "" if pd.isna(r["eps"]) else f"{r['eps']:g}", "Clean": _num(r["clean"]),
             "Clean 95% CI": ci(r, "clean"), "PGD-20": _num(r["pgd20"]), "PGD-20 95% CI": ci(r, "pgd20"),
             "AutoAttack": _num(r["autoattack"]), "AA 95% CI": ci(r, "autoattack"),
             "n (clean / PGD-20 / AA)": " / ".join(_int(r[f"{m}_n"]) or "-" for m in METRICS)
             if r["status"] == STATUS_OK else "",
             "sanity": r["sanity"], "status": status(r)} for _, r in board.iterrows()]
    return pd.DataFrame(rows, columns=list(DISPLAY))


def caption(board: pd.DataFrame, command: str) -> str:
    """The leaderboard's caption: what it holds, how it is ranked, and how it was produced (``command`` and the git
    commit of the code, :func:`ot_robust.core.utils.git_commit`)."""
    n_ok = int((board["status"] == STATUS_OK).sum())
    datasets = ", ".join(sorted(set(board["dataset"])))
    return (f"{len(board)} trained models of this repository's `results/` ({datasets}), {n_ok} with a current "
            "evaluation. `#` ranks each dataset's models by AutoAttack accuracy (RobustBench's rule; ties by PGD-20); "
            "accuracy in % on the first n test images of the class-balanced order, 95% Wilson intervals. A row whose "
            "status is not `ok` has no evaluation of the model as it is now (retrained since, or trained with other "
            "parameters than its profile states), so its numbers are left blank. Load a model with "
            "`ot_robust.zoo.load(name)`. Produced by `" + command + f"` at git commit {git_commit() or 'unknown'}.")


def write_leaderboard(out_dir: str | Path, board: pd.DataFrame, command: str) -> list[Path]:
    """Write :data:`FILES` for a :func:`leaderboard` frame into ``out_dir`` (created): ``leaderboard.md`` (the shown
    table, caption above: :func:`ot_robust.reports.tables.render_frame`), ``leaderboard.csv`` (every column of the
    frame, numbers to two decimals) and ``leaderboard.html`` (the shown table, its columns sorting on
    click, no network access). ``command`` is recorded in the caption. Returns the paths written."""
    out = Path(out_dir)
    shown = display_frame(board)
    cap = caption(board, command)
    keys = {h: (board[k].tolist() if k else None) for h, (_, k) in DISPLAY.items()}
    texts = {"leaderboard.md": render_frame(shown, "md", TITLE, cap, "zoo", n_text=4),
             "leaderboard.csv": render_frame(board, "csv", TITLE, cap, "zoo"),
             "leaderboard.html": render_html(shown, keys, TITLE, cap,
                                                  [h for h, (_, k) in DISPLAY.items() if k in DESCENDING])}
    paths = []
    for fname in FILES:
        atomic_write_bytes(out / fname, texts[fname].encode())
        paths.append(out / fname)
    return paths
