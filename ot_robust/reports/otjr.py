"""OTJR paper tables and Fig. 7 from a profile's runs, paper numbers beside ours (used by notebooks 32 and 42).

Our numbers come from ``<runs_dir>/eval/<exp>/eval.json`` (accuracies, %), ``<runs_dir>/train/<exp>/metrics.jsonl``
(per-epoch ``train_time_s`` and training losses) and ``config.json``; ``runs_dir`` is ``runs/<profile>``. Which
experiment stands for which paper row is the profile's ``methods.<exp>.tables: {otjr_table2: OTJR, ...}``; a paper
row without an experiment is listed as "not run in this profile" in the caption, never an error.

Tables (:data:`TABLES`, registered in :data:`ot_robust.reports.tables.TABLES` by :mod:`ot_robust.reports`):
``otjr_table2`` (CIFAR-10 block; ``otjr_table2_c100``), ``otjr_table6``, ``otjr_table7`` (+ ``_c100``),
``otjr_table8``, ``otjr_table9`` (WRN-28 layout), plus :func:`table11_training_time`,
:func:`table12_input_gradients` (Tables 5/12), :func:`table10_sanity` and :func:`paper_consistency` (flags OTJR
Table 7's AutoAttack > PGD-20 with :func:`ot_robust.evaluation.sanity.check_table_consistency`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.run_files import METRICS_FILE, MODEL_FILE, TRAIN_DIR, read_config
from ..core.utils import read_jsonl
from ..evaluation.results import CURVES_FILE, EVAL_DIR, read_evals
from ..profiles.paths import RunLayout
from . import tables as T

TABLES = [
    T.TableSpec("otjr_table2", "otjr", "table2_wrn34_cifar10", "OTJR Table 2 (CIFAR-10 block): white-/black-box"),
    T.TableSpec("otjr_table2_c100", "otjr", "table2_wrn34_cifar100", "OTJR Table 2 (CIFAR-100 block)"),
    T.TableSpec("otjr_table3", "otjr", "table3_awp_lbgat_cifar100", "OTJR Table 3: losses inside AWP / LBGAT"),
    T.TableSpec("otjr_table6", "otjr", "table6_sat_jr_vs_otjr_cifar10", "OTJR Table 6: SAT + random JR vs OTJR"),
    T.TableSpec("otjr_table7", "otjr", "table7_random_vs_optimal_jr_cifar10", "OTJR Table 7: random vs optimal JR"),
    T.TableSpec("otjr_table7_c100", "otjr", "table7_random_vs_optimal_jr_cifar100",
                "OTJR Table 7 (CIFAR-100 block): random vs optimal JR"),
    T.TableSpec("otjr_table8", "otjr", "table8_hyperparameters", "OTJR Table 8: lambda_J, lambda_SW, K sensitivity"),
    T.TableSpec("otjr_table9", "otjr", "table9_wrn28_cifar10", "OTJR Table 9: smaller backbone (WRN-28)"),
    T.TableSpec("otjr_table10", "otjr", "table10a_sanity_pgd_steps", "OTJR Table 10: sanity tests (PGD steps)",
                kind="measured"),
    T.TableSpec("otjr_table11", "otjr", "table11_training_time", "OTJR Table 11: training time per epoch",
                kind="measured"),
    T.TableSpec("otjr_table12", "otjr", "table12_input_gradient_vs_pgd_steps",
                "OTJR Tables 5/12: mean |grad_x CE| after PGD iterations", kind="measured"),
]

#: table -> builder for the tables that are not plain accuracy rows
NOT_RUN = "not run in this profile"
ALIASES = {"cw": ("cw", "cw20", "cw-linf"), "l2_pgd": ("l2_pgd", "pgd_l2", "l2pgd")}
HYPER = {"lambda_J": "lambda_j", "lambda_SW": "lambda_sw", "K": "n_slices"}


def load_runs(runs_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{exp: eval.json}`` with OTJR column aliases filled: ``cw`` <- cw20, ``l2_pgd``, and the Table 8
    hyper-parameters <- the experiment's ``config.json`` method_params (``autoattack`` and Table 3's ``awp_*``
    columns are read by :func:`ot_robust.reports.tables.build_table` itself)."""
    runs_dir = Path(runs_dir)
    evals = read_evals(runs_dir)
    for exp, ev in evals.items():
        acc = ev.setdefault("accuracy", {})
        for col, names in ALIASES.items():
            if acc.get(col) is None:
                acc[col] = next((acc[n] for n in names if acc.get(n) is not None), None)
        cfg = read_config(RunLayout.at(runs_dir).train(exp)) or {}
        cfg = cfg.get("config", cfg)  # the trainer nests the TrainConfig fields under "config"
        params = cfg.get("method_params") or {}
        params = params.get("inner_params", params) if str(cfg.get("method", "")).startswith("awp") else params
        for col, key in HYPER.items():
            acc.setdefault(col, params.get(key))
    return evals


def _unrun_rows(name: str, evals: dict, profile: Any) -> list[str]:
    pt = T.paper_table(T.TABLES[name].paper, T.TABLES[name].key)
    have = {str(m.tables.get(name)) for exp, m in (profile.methods.items() if profile else [])
            if exp in evals and m.tables.get(name) is not None}
    return [r for r in pt["rows"] if r not in have]


def build_otjr_table(name: str, runs_dir: str | Path, profile: Any = None) -> T.TableResult:
    """An OTJR accuracy table (Tables 2, 3, 6, 7, 8, 9, 10a) with ours beside the paper's; missing rows are named
    in the caption ("not run in this profile"). Raises ValueError for an unknown table name."""
    if name not in T.TABLES or not name.startswith("otjr_"):
        raise ValueError(f"unknown OTJR table {name!r}; allowed: {[s.name for s in TABLES]}")
    evals = load_runs(runs_dir)
    res = T.build_table(name, evals, profile)
    missing = _unrun_rows(name, evals, profile)
    if missing:
        res.caption += f" Paper rows {NOT_RUN}: {', '.join(missing)}."
    return res


def paper_consistency(name: str) -> pd.DataFrame:
    """Sanity flags of the paper's own table ``name`` (AutoAttack vs PGD, black-box vs white-box, iterative vs
    FGSM) from :func:`ot_robust.evaluation.sanity.check_table_consistency`: one row per (paper row, check)."""
    from ..evaluation.sanity import check_table_consistency

    spec = T.TABLES[name]
    pt = T.paper_table(spec.paper, spec.key)
    out = []
    for row, vals in pt["rows"].items():
        recs = [{"attack": c, "accuracy": v} for c, v in zip(pt["columns"], vals) if v is not None]
        for chk in check_table_consistency(recs):
            out.append({"table": name, "row": row, **chk})
    return pd.DataFrame(out)


def table11_training_time(runs_dir: str | Path, profile: Any = None, reference: str = "standard") -> pd.DataFrame:
    """OTJR Table 11 as ratios to standard training: mean ``train_time_s`` per epoch of every experiment divided by
    that of the ``reference`` method's experiment (paper: minutes per epoch / XE's 1.27)."""
    runs_dir = Path(runs_dir)
    pt = T.paper_table("otjr", "table11_training_time")
    paper = {r: v[0] / pt["rows"]["XE"][0] for r, v in pt["rows"].items()}
    row_of = {exp: str(m.tables.get("otjr_table11", exp))
              for exp, m in (profile.methods.items() if profile else [])}
    method_of = {exp: m.method for exp, m in (profile.methods.items() if profile else [])}
    times = {}
    for p in sorted(runs_dir.glob(f"{TRAIN_DIR}/*/{METRICS_FILE}")):
        recs = [r["train_time_s"] for r in read_jsonl(p) if "train_time_s" in r]
        if recs:
            times[p.parent.name] = sum(recs) / len(recs)
    ref = next((t for e, t in times.items() if method_of.get(e, e) == reference), None)
    rows = [{"row": r, "source": "paper", "ratio_to_standard": v, "seconds_per_epoch": None} for r, v in paper.items()]
    for exp, t in times.items():
        rows.append({"row": row_of.get(exp, exp), "source": f"ours ({exp})",
                     "ratio_to_standard": t / ref if ref else None, "seconds_per_epoch": t})
    return pd.DataFrame(rows).set_index(["row", "source"])


def table12_input_gradients(runs_dir: str | Path, profile: Any = None, eps: float | None = None,
                            step_size: float | None = None, n_examples: int = 200, seed: int = 0) -> pd.DataFrame:
    """OTJR Tables 5 and 12: mean pixel-level ``|grad_x CE|`` (x 1e-4, the paper's unit) on clean inputs and after
    1/5/10/15/20 PGD iterations, for every trained model of the profile (rows: the profile's ``otjr_table12`` entry
    or the experiment name). ``eps`` defaults to the profile's ``pgd20`` budget (else 8/255), step to eps/4."""
    from ..core.data import as_tensors, get_dataset
    from ..models.loading import load_model
    from ..analysis.input_gradients import TABLE12_STEPS, input_gradient_l1

    runs_dir = Path(runs_dir)
    pt = T.paper_table("otjr", "table12_input_gradient_vs_pgd_steps")
    cols = list(pt["columns"])
    rows = [{"row": r, "source": "paper", **dict(zip(cols, v))} for r, v in pt["rows"].items()]
    if profile is not None and eps is None and "pgd20" in (profile.eval.get("attacks") or {}):
        eps = float(profile.attack("pgd20").value("eps"))
    if eps is None:
        from ..core.data import default_attack

        eps = default_attack(profile.dataset if profile is not None else "cifar10")[0]
    step_size = eps / 4 if step_size is None else step_size
    x = y = None
    for model_pt in sorted(runs_dir.glob(f"{TRAIN_DIR}/*/{MODEL_FILE}")):
        exp = model_pt.parent.name
        tables = profile.methods[exp].tables if profile and exp in profile.methods else {}
        if x is None:
            dataset = profile.dataset if profile else "mnist-sample"
            x, y = as_tensors(get_dataset(dataset, "test", root=getattr(profile, "data_root", None)), n_examples)
        g = input_gradient_l1(load_model(model_pt.parent), x, y, TABLE12_STEPS, eps=eps, step_size=step_size,
                              n_examples=n_examples, seed=seed, progress=False)
        label = str(tables.get("otjr_table12", exp))
        rows.append({"row": label, "source": f"ours ({exp})", **{c: g[t] * 1e4 for c, t in zip(cols, TABLE12_STEPS)}})
    return pd.DataFrame(rows).set_index(["row", "source"])


def table10_sanity(runs_dir: str | Path, experiment: str | None = None) -> pd.DataFrame:
    """OTJR Table 10 from an experiment's ``curves.json`` (accuracy vs PGD steps and vs eps at 20 steps, as the
    pipeline's evaluate notebook writes for methods with ``curves: true``); paper rows first."""
    runs_dir = Path(runs_dir)
    rows = []
    for key in ("table10a_sanity_pgd_steps", "table10b_sanity_eps"):
        pt = T.paper_table("otjr", key)
        rows.append({"row": "OTJR", "source": "paper", "sweep": key.split("_")[-1],
                     **{c: v for c, v in zip(pt["columns"], pt["rows"]["OTJR"])}})
    for p in sorted(runs_dir.glob(f"{EVAL_DIR}/*/{CURVES_FILE}")):
        if experiment and p.parent.name != experiment:
            continue
        c = json.loads(p.read_text())
        steps = dict(zip((f"pgd{s}" for s in c["vs_steps"]["x"]), c["vs_steps"]["accuracy"]))
        epss = dict(zip((f"eps={e:.3g}" for e in c["vs_epsilon"]["x"]), c["vs_epsilon"]["accuracy"]))
        rows.append({"row": p.parent.name, "source": "ours", "sweep": "steps", **steps})
        rows.append({"row": p.parent.name, "source": "ours", "sweep": "eps", **epss})
    return pd.DataFrame(rows).set_index(["row", "source", "sweep"])


def training_curves(runs_dir: str | Path, keys: tuple[str, ...] = ("train_ce_adv",)) -> dict[str, list[float]]:
    """``{exp: [per-epoch value]}`` of the first of ``keys`` found in each ``metrics.jsonl`` (OTJR Fig. 7: CE)."""
    out = {}
    for p in sorted(Path(runs_dir).glob(f"{TRAIN_DIR}/*/{METRICS_FILE}")):
        recs = read_jsonl(p)
        key = next((k for k in keys if recs and k in recs[0]), None)
        if key:
            out[p.parent.name] = [r[key] for r in recs]
    return out


def fig7_ce_curves(runs_dir: str | Path, fig_dir: str | Path | None, profile: Any = None,
                   methods: tuple[str, ...] = ("sw", "sat")) -> tuple[Any, list[Path]]:
    """OTJR Fig. 7: training cross-entropy (adversarial CE, per epoch) of the SW and SAT models (experiments whose
    method is in ``methods``); returns ``(fig, written paths)`` (none when ``fig_dir`` is None or nothing ran)."""
    from ..core.style import figure, integer_ticks, legend_outside, method_style, save_figure

    method_of = {exp: m.method for exp, m in (profile.methods.items() if profile else [])}
    curves = {e: c for e, c in training_curves(runs_dir).items() if method_of.get(e, e) in methods}
    fig, ax = figure()
    ax = ax[0][0]
    for exp, ys in curves.items():
        label = profile.label(exp) if profile and exp in profile.methods else exp
        ax.plot(range(1, len(ys) + 1), ys, label=label, **method_style(label))
    integer_ticks(ax.xaxis)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training CE (adversarial)")
    ax.set_title("OTJR Fig. 7: SW vs SAT" + (f" ({profile.name}, {profile.dataset})" if profile and curves else "")
                 + ("" if curves else f" ({NOT_RUN})"))
    if curves:
        legend_outside(ax)
    paths = save_figure(fig, "otjr_fig7", fig_dir, close=False) if (fig_dir and curves) else []
    return fig, paths


#: the OTJR tables with their own builders (not plain accuracy rows), rendered by :func:`special_tables`
SPECIAL = {"otjr_table10a": ("table10a_sanity_pgd_steps", "OTJR Table 10(a): sanity test, accuracy vs PGD steps"),
           "otjr_table10b": ("table10b_sanity_eps", "OTJR Table 10(b): sanity test, accuracy vs the budget eps"),
           "otjr_table11": ("table11_training_time", "OTJR Table 11: training time per epoch, ratio to standard"),
           "otjr_table12": ("table12_input_gradient_vs_pgd_steps",
                            "OTJR Tables 5/12: mean |grad_x CE| (x 1e-4) after PGD iterations")}


def _result(name: str, frame: pd.DataFrame, profile: Any, note: str) -> T.TableResult:
    key, title = SPECIAL[name]
    frame = frame.dropna(axis=1, how="all")
    return T.TableResult(T.TableSpec(name, "otjr", key, title), frame,
                         T.caption(T.paper_table("otjr", key), profile, {}, note))


#: Table 10's two halves, each a file of its own, and the sweep each shows
TABLE10_HALVES = {"otjr_table10a": "steps", "otjr_table10b": "eps"}
#: the file stem of the paper-consistency summary that :func:`write_tables` always writes
PAPER_FLAGS = "otjr_paper_flags"


def special_tables(runs_dir: str | Path, profile: Any, wanted: list[str], n_examples: int = 100
                   ) -> dict[str, T.TableResult]:
    """OTJR Tables 10 (split into its steps and budget halves), 11 and 12 as :class:`~.tables.TableResult` (the
    one renderer: Markdown, CSV, LaTeX), for the names of ``wanted`` among ``otjr_table10`` / ``_11`` / ``_12``."""
    out: dict[str, T.TableResult] = {}
    if "otjr_table10" in wanted:
        t10 = table10_sanity(runs_dir)
        for half, sweep in TABLE10_HALVES.items():
            frame = t10.xs(sweep, level="sweep") if len(t10) else t10
            out[half] = _result(half, frame, profile, "Ours: every model with accuracy-vs-steps / eps curves "
                                "(curves.json, PGD-20 for the budget sweep).")
    if "otjr_table11" in wanted:
        out["otjr_table11"] = _result("otjr_table11", table11_training_time(runs_dir, profile), profile,
                                      "Ratio = mean training seconds per epoch / the standard model's (paper: "
                                      "minutes per epoch / XE's); our seconds are CPU seconds of this machine.")
    if "otjr_table12" in wanted:
        out["otjr_table12"] = _result("otjr_table12", table12_input_gradients(runs_dir, profile,
                                                                              n_examples=n_examples), profile,
                                      f"Ours: the first {n_examples} test images, PGD step eps/4.")
    return out


#: the paper tables whose own numbers are checked by :func:`paper_consistency`
CHECKED = ("otjr_table7", "otjr_table7_c100", "otjr_table2", "otjr_table6")


def output_names(names: list[str]) -> set[str]:
    """The file stems :func:`write_tables` writes for the OTJR tables ``names``: each name, Table 10 as its two
    halves ``otjr_table10a`` / ``b``, and ``otjr_paper_flags`` whenever any OTJR table is written."""
    ours = [n for n in names if n.startswith("otjr_")]
    split = {"otjr_table10": tuple(TABLE10_HALVES)}
    return {s for n in ours for s in split.get(n, (n,))} | ({PAPER_FLAGS} if ours else set())


def write_tables(profile: Any, runs_dir: str | Path, out_dir: str | Path, names: list[str] | None = None
                 ) -> dict[str, list[Path]]:
    """Write OTJR's tables of ``profile`` (``names``, default all of :data:`TABLES`) into ``out_dir`` (Markdown,
    CSV, LaTeX): the accuracy tables, Tables 10 (as ``otjr_table10a``/``b``), 11 and 12, and
    ``otjr_paper_flags`` (the paper's own consistency, :func:`paper_consistency` of :data:`CHECKED`).
    Returns ``{name: [paths]}``. Raises ValueError for a name that is not an OTJR table."""
    wanted = list(names or [s.name for s in TABLES])
    written: dict[str, list[Path]] = {}
    for name in wanted:
        if getattr(T.TABLES.get(name), "kind", None) != "measured":  # 10-12 come from special_tables; an unknown
            # name goes to build_otjr_table, whose ValueError names the allowed ones
            written[name] = build_otjr_table(name, runs_dir, profile).write(out_dir)
    for name, res in special_tables(runs_dir, profile, wanted).items():
        written[name] = res.write(out_dir)
    from ..core.utils import atomic_write_bytes

    flags = pd.concat([paper_consistency(n) for n in CHECKED], ignore_index=True)
    written[PAPER_FLAGS] = []
    for fmt in T.FORMATS:  # the whole check list (the notebook shows the rows that do not pass)
        path = Path(out_dir) / f"{PAPER_FLAGS}.{fmt}"
        atomic_write_bytes(path, T.render_frame(flags, fmt, "OTJR: the paper's own consistency",
                                                "Checks of the paper's numbers (ot_robust.evaluation.sanity).",
                                                PAPER_FLAGS, n_text=1).encode())
        written[PAPER_FLAGS].append(path)
    return written


def _fig7(profile: Any, runs_dir: str | Path, fig_dir: str | Path) -> list[Path]:
    from .figures import FigureNotDrawn

    import matplotlib.pyplot as plt

    fig, paths = fig7_ce_curves(runs_dir, fig_dir, profile)
    plt.close(fig)  # saved; a notebook shows the PNG (steps.show_figures), not a second inline copy
    if not paths:
        raise FigureNotDrawn(f"SW and SAT {NOT_RUN}")
    return paths


#: OTJR figure builders ``(profile, runs_dir, fig_dir) -> [paths]`` (raise FigureNotDrawn with the reason)
FIGURES = {"otjr_fig7": _fig7}
