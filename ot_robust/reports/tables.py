"""Paper tables with our numbers beside the paper's, as Markdown, CSV and LaTeX: the one renderer of the project.

The paper numbers come from ``ot_robust/assets/paper_tables.yaml`` (a copy of the project's transcription of the
papers' tables, see ``assets/paper_tables.source.json``); ours come from the ``eval.json`` files that
``notebooks/20_evaluate.ipynb`` writes under ``runs/<profile>/eval/<experiment>/``.

Every table has the index (row, source): the paper's row, then ours for the model of the profile that stands for
that row (``methods.<exp>.tables: {<table>: <paper row>}`` in the profile), then our rows the paper does not have.
Extra columns the papers did not have: ``AA`` (AutoAttack accuracy), ``worst`` (worst case over our attacks) and
``sanity`` (the gradient-masking checks of :func:`ot_robust.evaluation.suite.evaluate`: ``pass`` or the flagged checks).
Accuracies are in percent; a blank cell is "not reported" (paper) or "not measured in this profile" (ours).

Table kinds:
* ``rows``: paper rows x metric columns (FS Tables 1, 2, 3, supplement Tables 1-4, random-targeted baseline).
* ``blocks``: columns ``<dataset>_<metric>`` (FS Table 4) are split into one row per (row, dataset).
* ``sweep``: columns are settings (batch size, label smoothing) and every cell is one metric (PGD100): each of our
  models names its row and column (``{row: Proposed, column: bs60}``).
* ``transfer``: rows are black-box source models (FS Sec. 5.3); ours come from ``eval.json["transfer"]``.
* ``measured``: built by its paper module from what every trained run measured (OTJR Tables 10-12: sanity runs,
  training time, input gradients), one row of ours per run, named by its ``methods.<exp>.tables`` entry or else
  its experiment name.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ..core.stats import t_interval
from ..core.utils import PACKAGE_ROOT
from ..evaluation.results import read_evals

PAPER_TABLES_PATH = PACKAGE_ROOT / "assets" / "paper_tables.yaml"
EXTRA_COLUMNS = ("AA", "RayS", "FeatAtk", "worst", "sanity")
#: extra columns from the masking audit (RayS: the hard-label attack; FeatAtk: FeatureAttack): shown only in a table
#: where some row has them (``worst`` then covers them too: :func:`ot_robust.evaluation.results.read_evaluation`)
AUDIT_EXTRAS = {"RayS": "rays", "FeatAtk": "feature_attack"}
FORMATS = ("md", "csv", "tex")
_PRETTY = {"clean": "Clean", "fgsm": "FGSM", "aa": "AA", "local_search": "LocalSearch", "spsa": "SPSA"}


@dataclass(frozen=True)
class TableSpec:
    """One paper table: ``paper``/``key`` locate it in paper_tables.yaml; ``kind`` see the module docstring;
    ``metric`` is the cell metric of a ``sweep`` table (with ``fallback`` metrics tried in order when a profile did
    not measure it, the substitution being named in the caption)."""

    name: str
    paper: str
    key: str
    title: str
    kind: str = "rows"
    metric: str | None = None
    fallback: tuple[str, ...] = field(default_factory=tuple)
    #: paper column -> our eval key, where the paper names them differently (GOT: nat -> clean, pgd -> pgd20)
    aliases: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    #: the paper reports the lowest of several random-start runs (FS supplement Table 1): a column run with restarts
    #: shows its lowest single run (``min_run``, not the per-example worst case over the runs, which ``worst``
    #: covers) and gains a ``<column> max-min`` column, the spread of the runs (:mod:`ot_robust.study.audit`)
    lowest_run: bool = False


#: every table of the three papers, by name (filled by :mod:`ot_robust.reports` from its paper modules)
TABLES: dict[str, TableSpec] = {}


def register_table(spec: TableSpec) -> TableSpec:
    """Add a table to :data:`TABLES` (done for every paper by :mod:`ot_robust.reports`). Raises ValueError if the
    name exists or is not in the YAML."""
    if spec.name in TABLES:
        raise ValueError(f"table {spec.name!r} already registered")
    paper_table(spec.paper, spec.key)
    TABLES[spec.name] = spec
    return spec


@lru_cache(maxsize=4)
def load_paper_tables(path: str | Path = PAPER_TABLES_PATH) -> dict[str, Any]:
    """The parsed paper_tables.yaml: ``{paper: {table_key: {source, setting, columns, rows, note?, issues?}}}``."""
    return yaml.safe_load(Path(path).read_text())


def paper_table(paper: str, key: str) -> dict[str, Any]:
    """One paper table. Raises ValueError naming the paper/key and listing what exists."""
    tables = load_paper_tables()
    if paper not in tables:
        raise ValueError(f"unknown paper {paper!r}; allowed: {sorted(tables)}")
    if key not in tables[paper]:
        raise ValueError(f"unknown table {key!r} of paper {paper!r}; allowed: {sorted(tables[paper])}")
    return tables[paper][key]


def _pretty(col: str) -> str:
    if col in _PRETTY:
        return _PRETTY[col]
    for pre in ("pgd", "cw"):
        if col.startswith(pre) and col[len(pre):].isdigit():
            return pre.upper() + col[len(pre):]
    return col


_FLAG = "flag: "


def sanity_text(ev: dict[str, Any]) -> str:
    """The ``sanity`` cell of one evaluation: ``pass``, ``flag: <check>, <check>`` or ``""`` when no checks ran
    (:func:`sanity_flags` reads it back). Only status ``flag`` is a flag (``n/a``: the check did not apply)."""
    checks = ev.get("sanity") or []
    if not checks:
        return ""
    flagged = [c.get("check", "?") for c in checks if c.get("status") == "flag"]
    return "pass" if not flagged else _FLAG + ", ".join(flagged)


def sanity_flags(text: str | None) -> list[str]:
    """The flagged checks named by a :func:`sanity_text` cell (``[]`` for ``pass`` or blank)."""
    return (text or "").removeprefix(_FLAG).split(", ") if (text or "").startswith(_FLAG) else []


#: column prefixes of tables whose models are wrapped in a training scheme (OTJR Table 3: "awp_clean" is the clean
#: accuracy of the model trained inside AWP; the profile maps only such models to those rows)
WRAPPER_PREFIXES = ("awp_",)


def _ours(ev: dict[str, Any], columns: list[str], aliases: tuple[tuple[str, str], ...] = (),
          extras: tuple[str, ...] = EXTRA_COLUMNS, lowest_run: bool = False) -> dict[str, Any]:
    """Our values for ``columns`` (+ the ``extras`` of :data:`EXTRA_COLUMNS` that the paper does not have); with
    ``lowest_run`` (:attr:`TableSpec.lowest_run`) an audit column run with restarts gives its lowest single run and
    a ``<column> max-min`` entry."""
    acc = ev.get("accuracy", {})
    alias = dict(aliases)
    runs = {c: v for c, v in ev.get("audit_columns", {}).items() if lowest_run and v.get("min_run") is not None}

    def value(c: str):
        base = next((c[len(p):] for p in WRAPPER_PREFIXES if c.startswith(p)), c)
        base = alias.get(base, base)
        if base in runs:
            return runs[base]["min_run"]
        v = acc.get(base)
        return ev.get("autoattack") if v is None and base == "autoattack" else v

    row = {c: value(c) for c in columns}
    row.update({f"{c} max-min": runs[alias.get(c, c)]["max_min"] for c in columns if alias.get(c, c) in runs})
    extra = {"AA": ev.get("autoattack"), "worst": ev.get("worst_case"), "sanity": sanity_text(ev),
             **{k: acc.get(col) for k, col in AUDIT_EXTRAS.items()}}
    row.update({k: v for k, v in extra.items() if k in extras})
    return row


def pool_seeds(rows: list[dict[str, Any]], seeds: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(mean, half_width)`` of one model trained with several seeds: ``rows`` are its per-seed table rows (as
    :func:`_ours` gives them, one per seed in ``seeds``). Each numeric column measured for every seed gets its mean
    and its 95% Student-t half-width (:func:`ot_robust.core.stats.t_interval`); ``sanity`` reads ``pass`` when every
    seed passes, else each flagged check with its seeds; another text column is kept when all seeds agree.

    Raises:
        ValueError: if fewer than two rows are given or ``seeds`` does not match ``rows``.
    """
    if len(rows) < 2 or len(rows) != len(seeds):
        raise ValueError(f"pool_seeds needs one row per seed and at least two seeds; got {len(rows)} rows for "
                         f"seeds {seeds}")
    mean: dict[str, Any] = {}
    half: dict[str, Any] = {}
    for key in rows[0]:
        vals = [r.get(key) for r in rows]
        if key == "sanity":
            flagged: dict[str, list[int]] = {}
            for s, v in zip(seeds, vals):
                for check in sanity_flags(v):
                    flagged.setdefault(check, []).append(s)
            mean[key] = (_FLAG + ", ".join(f"{c} (seed {', '.join(map(str, ss))})" for c, ss in flagged.items())
                         if flagged else ("pass" if all(v == "pass" for v in vals) else ""))
        elif all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
            ti = t_interval([float(v) for v in vals])
            mean[key], half[key] = ti["mean"], ti["ci_high"] - ti["mean"]
        elif all(isinstance(v, str) for v in vals) and len(set(vals)) == 1:
            mean[key] = vals[0]
    return mean, half


def seed_rows(source: str, per_seed: list[tuple[int, dict[str, Any]]], first_seed: bool = True
              ) -> list[tuple[str, dict[str, Any]]]:
    """The ``(source, row)`` pairs that stand for one model in a table: its one row as ``source`` with one seed;
    with several, the first seed's row (``first_seed``: the model the one-seed ablations are compared with and the
    analysis figures use), ``source`` + ``mean of k seeds`` and the ``95% t half-width`` row (:func:`pool_seeds`)."""
    if len(per_seed) == 1:
        return [(source, per_seed[0][1])]
    k = len(per_seed)
    mean, half = pool_seeds([r for _, r in per_seed], [s for s, _ in per_seed])
    base = source[:-1] + ", " if source.endswith(")") else source + " ("
    head = [(f"{base}seed {per_seed[0][0]})", per_seed[0][1])] if first_seed else []
    return head + [(f"{base}mean of {k} seeds)", mean), (f"+- 95% t half-width ({k} seeds)", half)]


def _table_entry(entry: Any, name: str) -> Any:
    return entry.tables.get(name)


def expected_rows(name: str, profile: Any) -> set[str] | None:
    """The rows of table ``name`` that ``profile`` may fill with its own numbers: for a ``rows`` table the paper rows
    its experiments stand for (``methods.<exp>.tables``), for a ``transfer`` table the source rows of those
    experiments' ``transfer_from`` and of the transfer attacks of their masking-audit groups (``row``); None for
    the other kinds (their rows are not read from the profile). What the committed-table check holds every committed
    table to, so a mislabelled row cannot be committed again."""
    spec = TABLES.get(name)
    if spec is None or spec.kind not in ("rows", "transfer"):
        return None
    mapped = {exp: _table_entry(m, name) for exp, m in profile.methods.items() if _table_entry(m, name) is not None}
    if spec.kind == "rows":
        return {str(entry) for entry in mapped.values()}
    audited = {a["row"] for g in profile.audit.values() if set(mapped) & set(g.get("experiments", []))
               for a in (g.get("attacks") or {}).values() if isinstance(a, dict) and a.get("row")}
    return {row for exp in mapped for row in profile.methods[exp].transfer_from} | audited


@dataclass
class TableResult:
    """A built table: ``frame`` indexed by (row, source), with a caption and the spec it came from."""

    spec: TableSpec
    frame: pd.DataFrame
    caption: str

    def render(self, fmt: str) -> str:
        """The table as ``md`` (Markdown with the caption above), ``csv`` or ``tex`` (LaTeX table with caption)."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown table format {fmt!r}; allowed: {list(FORMATS)}")
        return render_frame(self.frame.reset_index(), fmt, self.spec.title, self.caption, self.spec.name)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``<name>.md``, ``<name>.csv``, ``<name>.tex`` into ``out_dir``; returns the paths."""
        from ..core.utils import atomic_write_bytes

        paths = []
        for fmt in FORMATS:
            p = Path(out_dir) / f"{self.spec.name}.{fmt}"
            atomic_write_bytes(p, self.render(fmt).encode())
            paths.append(p)
        return paths


def render_frame(df: pd.DataFrame, fmt: str, title: str, caption: str, label: str, n_text: int = 2) -> str:
    """One renderer for every table of the project: ``md`` (Markdown, caption above), ``csv`` or ``tex`` (LaTeX
    table with caption and ``tab:<label>``). The first ``n_text`` columns are left-aligned text."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; allowed: {list(FORMATS)}")
    if fmt == "csv":
        return df.to_csv(index=False, float_format="%.2f")
    cells = [[_fmt_cell(v) for v in row] for row in df.itertuples(index=False)]
    if fmt == "md":
        head = "| " + " | ".join(map(str, df.columns)) + " |"
        sep = "|" + "|".join("---" if i < n_text else "---:" for i in range(len(df.columns))) + "|"
        body = ["| " + " | ".join(r) + " |" for r in cells]
        return f"**{title}.** {caption}\n\n" + "\n".join([head, sep] + body) + "\n"
    esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")  # noqa: E731
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{esc(title)}. {esc(caption)}}}",
             rf"\label{{tab:{label}}}", r"\begin{tabular}{" + "l" * n_text + "r" * (len(df.columns) - n_text) + "}",
             r"\toprule", " & ".join(esc(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(c) for c in r) + r" \\" for r in cells]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _fmt_cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.1f}" if v == 0 or abs(v) >= 0.1 else f"{v:.2g}"  # accuracies; small weights (lambda_J 0.002)
    return str(v)


def caption(pt: dict[str, Any], profile: Any, evals: dict[str, dict], note: str = "") -> str:
    """The caption of a paper-beside-ours table: the paper's setting and source, our profile, n, AutoAttack's n."""
    ev0 = next(iter(evals.values()), {})
    n = ev0.get("n_examples", (profile.eval or {}).get("n_examples") if profile else None)
    aa = (profile.eval.get("autoattack") or {}) if profile else {}
    ours = (f"Ours: profile `{profile.name}` ({profile.dataset}, {profile.model}; {profile.description.rstrip('.')}; "
            f"n={n} test examples" + (f", AutoAttack on n={aa.get('n_examples')}" if aa else "") + ")."
            if profile else "")
    return (f"Paper: {pt['setting']} ({pt['source']}). {ours} "
            f"Accuracy in %; blank = not reported / not measured. AA, worst and sanity are our additions "
            f"(AutoAttack, worst case over our attacks, gradient-masking checks)."
            f"{(' ' + note) if note else ''}").strip()


def build_table(name: str, evals: dict[str, dict[str, Any]], profile: Any = None,
                runs_dir: str | Path | None = None) -> TableResult:
    """Build table ``name`` (a key of :data:`TABLES`) from our ``evals`` ({experiment: eval.json}) and the paper.

    ``profile`` (a :class:`ot_robust.profiles.Profile`, optional) says which experiment stands for which paper row
    (``methods.<exp>.tables``) and is named in the caption; without it only the paper rows are shown. ``runs_dir``
    (the profile's run folder, optional) lets the table-settings check read each run's ``config.json`` too.

    Raises:
        ValueError: unknown table name; a column that would print another attack (or, with ``runs_dir``, another
            training setting) than its name says (the table-settings check, :mod:`ot_robust.reports.table_settings`).
    """
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; allowed: {sorted(TABLES)}")
    if profile is not None:
        from .table_settings import table_setting_mismatches

        bad = table_setting_mismatches(name, evals, profile, runs_dir)
        if bad:
            raise ValueError(f"table {name} would mislabel its columns: {'; '.join(bad)}")
    spec = TABLES[name]
    pt = paper_table(spec.paper, spec.key)
    ours_src = f"ours ({profile.name})" if profile else "ours"
    mapping = {}  # experiment -> table entry
    if profile is not None:
        for exp, cfg in profile.methods.items():
            entry = _table_entry(cfg, name)
            if entry is not None and exp in evals:
                mapping[exp] = entry
    note = ""
    records: list[tuple[tuple[str, str], dict[str, Any]]] = []
    cols = list(pt["columns"])
    if spec.kind in ("rows", "transfer"):
        if spec.kind == "transfer":
            ours_rows = {}
            for exp in mapping:
                for src_row, accs in (evals[exp].get("transfer") or {}).items():
                    ours_rows.setdefault(src_row, []).append((ours_src, {c: accs.get(c) for c in cols}))
        else:  # a model trained with several seeds: their mean and its interval (seed_rows)
            ours_rows, pooled = {}, set()
            for exp, entry in mapping.items():
                if exp in pooled:
                    continue
                group = [(s, e) for s, e in profile.seeds_of(exp) if e in evals]
                pooled.update(e for _, e in group)
                ours_rows.setdefault(str(entry), []).extend(
                    seed_rows(ours_src, [(s, _ours(evals[e], cols, spec.aliases, lowest_run=spec.lowest_run))
                                         for s, e in group]))
        for label in list(pt["rows"]) + [r for r in ours_rows if r not in pt["rows"]]:
            if label in pt["rows"]:
                records.append(((label, "paper"), dict(zip(cols, pt["rows"][label]))))
            for source, r in ours_rows.get(label, []):
                records.append(((label, source), r))
        # the paper's own AutoAttack column makes our extra AA column redundant
        extras = tuple(c for c in EXTRA_COLUMNS if not (c == "AA" and "autoattack" in cols))
        spread = [f"{c} max-min" for c in cols] if spec.lowest_run else []
        columns = ([_pretty(c) for c in cols] + [_pretty(c[:-8]) + " max-min" for c in spread]
                   + (list(extras) if spec.kind == "rows" else []))
        rename = {c: _pretty(c) for c in cols} | {c: _pretty(c[:-8]) + " max-min" for c in spread}
    elif spec.kind == "blocks":
        datasets = list(dict.fromkeys(c.split("_", 1)[0] for c in cols))
        metrics = list(dict.fromkeys(c.split("_", 1)[1] for c in cols))
        dataset = profile.dataset if profile else "ours"
        extras = tuple(c for c in EXTRA_COLUMNS if c not in {_pretty(m) for m in metrics})  # GOT: "aa" is AA
        for label, vals in pt["rows"].items():
            d = dict(zip(cols, vals))
            for ds in datasets:
                records.append(((label, f"paper ({ds})"), {m: d.get(f"{ds}_{m}") for m in metrics}))
            for exp, entry in mapping.items():
                if entry == label:
                    records.append(((label, f"{ours_src[:-1]}, {dataset})"),
                                    _ours(evals[exp], metrics, spec.aliases, extras)))
        columns = [_pretty(m) for m in metrics] + list(extras)
        rename = {m: _pretty(m) for m in metrics}
    elif spec.kind == "sweep":
        metric = spec.metric
        have = {m for exp in mapping for m, v in evals[exp].get("accuracy", {}).items() if v is not None}
        if mapping and metric not in have:
            sub = next((m for m in spec.fallback if m in have), None)
            note = (f"Our cells use {_pretty(sub)} because this profile did not run {_pretty(metric)}."
                    if sub else f"This profile did not run {_pretty(metric)}.")
            metric = sub
        for label, vals in pt["rows"].items():
            records.append(((label, "paper"), dict(zip(cols, vals))))
            ours = {}
            for exp, entry in mapping.items():
                if isinstance(entry, dict) and entry.get("row") == label and entry.get("column") in cols:
                    ours[entry["column"]] = evals[exp].get("accuracy", {}).get(metric) if metric else None
            if ours:
                records.append(((label, ours_src), ours))
        columns = cols
        rename = {}
    else:  # pragma: no cover - specs are fixed above
        raise ValueError(f"unknown table kind {spec.kind!r}")
    index = pd.MultiIndex.from_tuples([k for k, _ in records], names=["row", "source"])
    frame = pd.DataFrame([r for _, r in records], index=index).rename(columns=rename)
    frame = frame.reindex(columns=columns)
    frame = frame.drop(columns=[c for c in AUDIT_EXTRAS if c in frame and frame[c].isna().all()])
    for c in frame.columns:
        if c != "sanity":
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return TableResult(spec, frame, caption(pt, profile, evals, note))


def build_tables(profile: Any, runs_dir: str | Path, out_dir: str | Path, names: list[str] | None = None
                 ) -> dict[str, list[Path]]:
    """Build and write every table of ``profile`` (or ``names``) from ``<runs_dir>/eval/*/eval.json`` into
    ``out_dir`` (Markdown, CSV, LaTeX); returns ``{table: [paths]}``. Every table is built (and checked) before
    any is written, so a refused table leaves the committed ones as they were."""
    evals = read_evals(runs_dir)
    built = {n: build_table(n, evals, profile, runs_dir) for n in (names or profile.tables)}
    return {n: t.write(out_dir) for n, t in built.items()}
