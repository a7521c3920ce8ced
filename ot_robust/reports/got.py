"""GOT's tables and figures ("Improving Robustness with Optimal Transport based Adversarial Generalization", ICLR
2022 submission), paper beside ours, rendered by the one renderer of :mod:`ot_robust.reports.tables`.

* ``got_table2`` (:data:`TABLES`): ResNet-18 on CIFAR-10 / CIFAR-100 / SVHN, Nat / PGD-20 / AA; one profile per
  dataset, each experiment naming its paper row in ``methods.<exp>.tables.got_table2``.
* ``got_table1`` / ``got_table4`` / ``got_table5`` (:func:`build_mnist_table`): the MNIST tables (the four GOT
  variants with PGD-AT / TRADES / MART; latent layer; cost metrics). Which experiment stands for which row is read
  from its method and GOT parameters (defaults: App. A.3). They are MNIST tables: a profile on other data gets
  none (``None``), never its numbers under an MNIST caption.
* :func:`eps_plateau_check` - appendix Tables 6-8's plateau (robust accuracy constant from eps 0.4 to 0.7 on MNIST,
  a gradient-masking sign) checked on our accuracy-vs-eps curves, with the sanity checks and AutoAttack.
* :data:`FIGURES` - ``got_fig2`` (Figs. 2-5: accuracy vs eps and vs steps) and ``got_fig7`` (beta sensitivity).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..core.style import figure, legend_outside, method_style, save_figure
from .figures import FigureNotDrawn, draw_masking_signature, plot_accuracy_curves
from ..evaluation.results import CURVES_FILE, read_evals
from ..profiles.paths import RunLayout
from .tables import TableResult, TableSpec, caption, paper_table, sanity_flags, sanity_text, seed_rows

TABLES: list[TableSpec] = [
    # GOT Table 2 spans three datasets (one profile each)
    TableSpec("got_table2", "got", "table2_resnet18", "GOT Table 2: ResNet-18, Nat / PGD-20 / AA", kind="blocks",
              aliases=(("nat", "clean"), ("pgd", "pgd20"), ("aa", "autoattack"))),
]
#: the MNIST tables: name -> (paper key, title)
MNIST_TABLES = {
    "got_table1": ("table1_mnist", "GOT Table 1: MNIST, PGD-AT / TRADES / MART and the four GOT variants"),
    "got_table4": ("table4_latent_layer_mnist", "GOT Table 4: latent layer of the OT term (MNIST)"),
    "got_table5": ("table5_cost_metrics_mnist", "GOT Table 5: cost metrics d_x / d_y of the joint cost (MNIST)"),
}
ROW = {"got_pgd_s": "GOT-PGD-S", "got_trades_s": "GOT-TRADES-S", "got_pgd_lm": "GOT-PGD-LM",
       "got_trades_lm": "GOT-TRADES-LM", "pgd_at": "PGD-AT", "trades": "TRADES", "mart": "MART"}
#: the GOT parameters that tell Tables 4, 5 and Fig. 7 apart, at their App. A.3 defaults
DEFAULT = {"latent": "penultimate", "d_x": "cosine", "d_y": "kl", "beta": 10.0}
NOT_RUN = "not run in this profile"
_COSTS = {"COS": "cosine", "L2": "l2"}


def setting(profile: Any, exp: str) -> dict[str, Any]:
    """The :data:`DEFAULT` keys of experiment ``exp`` (its profile parameters over the defaults)."""
    params = profile.methods[exp].params
    return {**DEFAULT, **{k: v for k, v in params.items() if k in DEFAULT}}


def is_mnist(profile: Any) -> bool:
    """True for MNIST-like data (``mnist``, ``mnist-sample``): GOT Tables 1, 4, 5 and 6-8 are MNIST tables."""
    return profile.dataset in ("mnist", "mnist-sample")


def _strongest_pgd(acc: dict[str, Any]) -> str | None:
    return max((k for k in acc if k.startswith("pgd") and k[3:].isdigit() and acc[k] is not None),
               key=lambda k: int(k[3:]), default=None)


def ours(ev: dict[str, Any]) -> dict[str, Any]:
    """Nat / PGD (the strongest PGD column of the evaluation) / AA of one ``eval.json``, with the PGD column's name
    and the sanity summary."""
    acc = ev.get("accuracy", {})
    pgd = _strongest_pgd(acc)
    return {"Nat": acc.get("clean"), "PGD": acc.get(pgd) if pgd else None, "AA": ev.get("autoattack"),
            "attack": pgd or "", "sanity": sanity_text(ev)}


def _rows_for(name: str, profile: Any) -> Callable[[str], list[str]]:
    got = [e for e, m in profile.methods.items() if m.method.startswith("got_")]

    def table1(row: str) -> list[str]:
        return [e for e, m in profile.methods.items() if ROW.get(m.method) == row
                and (e not in got or setting(profile, e) == DEFAULT)]

    def table4(row: str) -> list[str]:
        meth, layer = row.split(" / ")
        want_pen = layer.startswith("penultimate")
        return [e for e in got if ROW[profile.methods[e].method] == meth
                and (setting(profile, e)["latent"] == "penultimate") == want_pen
                and {k: v for k, v in setting(profile, e).items() if k != "latent"}
                == {k: v for k, v in DEFAULT.items() if k != "latent"}]

    def table5(row: str) -> list[str]:
        meth, costs = row.split(" / ")
        dx, dy = _COSTS[costs.split("-")[0]], costs.split("-")[1].lower()
        return [e for e in got if ROW[profile.methods[e].method] == meth
                and setting(profile, e) == {**DEFAULT, "d_x": dx, "d_y": dy}]

    return {"got_table1": table1, "got_table4": table4, "got_table5": table5}[name]


def build_mnist_table(name: str, evals: dict[str, dict[str, Any]], profile: Any) -> TableResult | None:
    """GOT Table 1, 4 or 5 (``name`` in :data:`MNIST_TABLES`): each paper row, then ours for every experiment of
    ``profile`` standing for it (or an empty "not run in this profile" row). ``None`` if the profile is not on
    MNIST. Raises ValueError for another name."""
    if name not in MNIST_TABLES:
        raise ValueError(f"unknown GOT MNIST table {name!r}; allowed: {sorted(MNIST_TABLES)}")
    if not is_mnist(profile):
        return None
    key, title = MNIST_TABLES[name]
    pt = paper_table("got", key)
    rows_for = _rows_for(name, profile)
    records = []
    for label, vals in pt["rows"].items():
        records.append(((label, "paper"), dict(zip(("Nat", "PGD", "AA"), vals))))
        exps = [e for e in rows_for(label) if e in evals]
        if not exps:
            records.append(((label, f"ours ({profile.name})"), {"sanity": NOT_RUN}))
        for e in exps:
            records.append(((label, f"ours ({profile.name}: {e})"), ours(evals[e])))
        # a model with several seeds: its mean and interval too (groups in the order of their first experiment)
        for seeds in dict.fromkeys(tuple(profile.seeds_of(e)) for e in exps):
            first, group = seeds[0][1], [(s, e) for s, e in seeds if e in exps]
            if len(group) >= 2:
                per_seed = [(s, ours(evals[e])) for s, e in group]
                records += [((label, src), r) for src, r in seed_rows(f"ours ({profile.name}: {first})", per_seed,
                                                                         first_seed=False)]
    index = pd.MultiIndex.from_tuples([k for k, _ in records], names=["row", "source"])
    frame = pd.DataFrame([r for _, r in records], index=index).reindex(
        columns=["Nat", "PGD", "AA", "attack", "sanity"])
    for c in ("Nat", "PGD", "AA"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    spec = TableSpec(name, "got", key, title)
    return TableResult(spec, frame, caption(pt, profile, evals, "Our PGD is the profile's strongest PGD column "
                                                                 "(named in 'attack')."))


def eps_plateau_check(profile: Any, runs_dir: str | Path, evals: dict[str, dict[str, Any]]
                      ) -> tuple[pd.DataFrame, str]:
    """Appendix Tables 6-8: the paper's GOT rows stay constant from eps 0.4 to 0.7 on MNIST while PGD-AT and TRADES
    fall to a few percent; a model cannot be robust at eps 0.7 (half the pixel range), so a flat curve means the
    attack stopped finding adversarial examples. Per experiment: PGD, AA, PGD - AA, sanity, our accuracy-vs-eps
    curve and ``plateau`` (the last three points within 1 point of each other while above 10%). Returns the frame
    and a one-paragraph verdict. A model with a masking audit's eps sweep (the profile's ``audit``: the paper's
    protocol, App. A.3: k = 40 steps of eta = 0.01 on predicted labels, which can move a pixel by at most 0.4 whatever
    eps, beside ours) gets ``acc_vs_eps (<protocol>)`` and ``plateau (<protocol>)`` for each protocol."""
    layout = RunLayout.at(runs_dir)
    recs = []
    plateau = lambda acc: bool(len(acc) >= 3 and max(acc[-3:]) - min(acc[-3:]) <= 1.0  # noqa: E731
                               and min(acc[-3:]) > 10.0)
    for e, m in profile.methods.items():
        if e not in evals:
            recs.append({"experiment": e, "method": m.method, "plateau": NOT_RUN})
            continue
        o = ours(evals[e])
        rec = {"experiment": e, "method": m.method, "PGD": o["PGD"], "AA": o["AA"],
               "PGD - AA": None if o["PGD"] is None or o["AA"] is None else o["PGD"] - o["AA"],
               "sanity": o["sanity"]}
        cpath = Path(layout.eval(e)) / CURVES_FILE
        if cpath.is_file():
            c = json.loads(cpath.read_text())["vs_epsilon"]
            tail = c["accuracy"][-3:]
            rec.update({"eps": c["x"], "acc_vs_eps": [round(a, 1) for a in c["accuracy"]],
                        "plateau": bool(len(tail) == 3 and max(tail) - min(tail) <= 1.0 and min(tail) > 10.0)})
        else:
            rec["plateau"] = "no curves in this profile"
        for sweep in evals[e].get("eps_sweep", {}).values():
            for name, p in sweep["protocols"].items():
                rec.update({f"eps ({name})": sweep["epsilons"],
                            f"acc_vs_eps ({name})": [round(a, 1) for a in p["accuracy"]],
                            f"plateau ({name})": plateau(p["accuracy"])})
        recs.append(rec)
    check = pd.DataFrame(recs).set_index("experiment")
    got = check[check["method"].str.startswith("got_")] if len(check) else check
    flat = [e for e, r in got.iterrows() if r.get("plateau") is True]
    flags = [e for e, r in got.iterrows() if sanity_flags(str(r.get("sanity", "")))]
    gap = got["PGD - AA"].dropna() if "PGD - AA" in got else pd.Series(dtype=float)
    evaluated = [e for e in got.index if e in evals]
    verdict = (f"GOT models evaluated: {len(evaluated)} of {len(got)} in the profile. "
               f"Plateau in accuracy vs eps: {flat or 'none'}. "
               f"Sanity flags: {flags or 'none'}. PGD - AutoAttack gap (points): "
               f"{', '.join(f'{e}: {v:.1f}' for e, v in gap.items()) or 'AutoAttack not run in this profile'}.")
    for col in [c for c in check.columns if c.startswith("plateau (")]:
        swept = check[check[col].notna()]
        verdict += (f" Audit sweep, protocol {col[9:-1]}: plateau in "
                    f"{[e for e, v in swept[col].items() if v is True] or 'none'} of {list(swept.index)}.")
    return check, verdict


def write_tables(profile: Any, runs_dir: str | Path, out_dir: str | Path, names: list[str] | None = None
                 ) -> dict[str, list[Path] | str]:
    """Write GOT's tables of ``profile`` into ``out_dir`` (Markdown, CSV, LaTeX): Table 2 if the profile maps
    experiments to it, Tables 1/4/5 and the plateau check on MNIST profiles. ``names`` restricts the tables
    (default: all). Returns ``{name: [paths]}``, or ``{name: reason}`` for a table not built."""
    from ..core.utils import atomic_write_bytes
    from .tables import build_table

    evals = read_evals(runs_dir)
    out_dir = Path(out_dir)
    wanted = names or ["got_table1", "got_table2", "got_table4", "got_table5", "got_eps_plateau_check"]
    written: dict[str, list[Path] | str] = {}
    for name in wanted:
        if name == "got_table2":
            if any("got_table2" in m.tables for m in profile.methods.values()):
                written[name] = build_table(name, evals, profile).write(out_dir)
            else:
                written[name] = "no experiment of this profile names a got_table2 row"
        elif name in MNIST_TABLES:
            t = build_mnist_table(name, evals, profile)
            written[name] = t.write(out_dir) if t is not None else (
                f"an MNIST table; profile {profile.name} trains on {profile.dataset}")
        elif name == "got_eps_plateau_check":
            if not is_mnist(profile):
                written[name] = f"the plateau is an MNIST finding; profile {profile.name} trains on {profile.dataset}"
                continue
            check, verdict = eps_plateau_check(profile, runs_dir, evals)
            csv, md = out_dir / f"{name}.csv", out_dir / f"{name}.md"
            atomic_write_bytes(csv, check.to_csv().encode())
            atomic_write_bytes(md, (verdict + "\n").encode())
            written[name] = [csv, md]
        else:
            raise ValueError(f"unknown GOT table {name!r}; allowed: {wanted}")
    return written


def fig_got_fig2(profile: Any, runs_dir: str | Path, fig_dir: str | Path) -> list[Path]:
    """GOT Figs. 2-5: accuracy under PGD vs eps and vs steps for the GOT paper's methods of ``profile`` (PGD-AT,
    TRADES, MART, the GOT variants: :data:`ROW`) that have ``eval/<exp>/curves.json``; other methods of the profile
    (OTJR, FS, ...) are left out; a model is named by its GOT Table 1 row where it has one. Models with a masking
    audit's eps sweep (the paper's protocol, App. A.3: 40 steps of 0.01 on predicted labels, with and without the
    random start) get a third panel with it, beside our sweep. Raises ValueError when none has curves."""
    rd = Path(runs_dir)
    layout = RunLayout.at(rd)
    name = lambda e: profile.table_row(e, "got_table1") or profile.label(e)  # noqa: E731
    curves = {name(e): json.loads(p.read_text()) for e, m in profile.methods.items()
              if m.method in ROW and (p := Path(layout.eval(e)) / CURVES_FILE).is_file()}
    if not curves:
        raise ValueError(f"no GOT-paper method of profile {profile.name} has eval/<exp>/curves.json under {rd}")
    evals = read_evals(rd)
    sweeps = {name(e): s for e, m in profile.methods.items() if m.method in ROW and name(e) in curves
              for s in list(evals.get(e, {}).get("eps_sweep", {}).values())[:1]}
    return save_figure(plot_accuracy_curves(curves, f" ({profile.name}, {profile.dataset})", sweeps or None),
                       "got_fig2_accuracy_vs_eps_steps", fig_dir)


def fig_got_fig7(profile: Any, runs_dir: str | Path, fig_dir: str | Path) -> list[Path] | None:
    """GOT Fig. 7: PGD accuracy vs beta (the weight of the OT term) for GOT experiments that differ only in beta;
    ``None`` if the profile has no such group. A beta whose training diverged has no point; the legend names it."""
    evals = read_evals(runs_dir)
    groups: dict[tuple, list[tuple[float, str]]] = {}
    for e, m in profile.methods.items():
        if m.method.startswith("got_") and e in evals:
            s = setting(profile, e)
            key = (m.method,) + tuple(sorted((k, v) for k, v in s.items() if k != "beta"))
            groups.setdefault(key, []).append((float(s["beta"]), e))
    groups = {k: sorted(v) for k, v in groups.items() if len({b for b, _ in v}) > 1}
    if not groups:
        return None
    fig, axes = figure()
    ax = axes[0, 0]
    for key, pts in groups.items():
        drawn = [(b, ours(evals[e])["PGD"]) for b, e in pts if not evals[e].get("diverged")]
        diverged = [b for b, e in pts if evals[e].get("diverged")]  # no model, no point: said in the legend
        note = f" (diverged at beta {', '.join(f'{b:g}' for b in diverged)})" if diverged else ""
        ax.plot([b for b, _ in drawn], [v for _, v in drawn], label=ROW[key[0]] + note, **method_style(ROW[key[0]]))
    ax.set_xscale("log")
    ax.set_xlabel(r"$\beta$ (weight of the OT term)")
    ax.set_ylabel("PGD accuracy (%)")
    ax.set_title(f"GOT Fig. 7: beta sensitivity ({profile.name})")
    legend_outside(ax)
    return save_figure(fig, "got_fig7_beta_sensitivity", fig_dir)


def _fig2(profile: Any, runs_dir: str | Path, fig_dir: str | Path) -> list[Path]:
    try:
        return fig_got_fig2(profile, runs_dir, fig_dir)
    except ValueError as e:
        raise FigureNotDrawn(str(e)) from None


def _fig7(profile: Any, runs_dir: str | Path, fig_dir: str | Path) -> list[Path]:
    paths = fig_got_fig7(profile, runs_dir, fig_dir)
    if not paths:
        raise FigureNotDrawn(f"{NOT_RUN} (needs GOT experiments differing only in beta)")
    return paths


#: GOT figure builders ``(profile, runs_dir, fig_dir) -> [paths]`` (raise FigureNotDrawn with the reason)
def _signature(profile: Any, runs_dir: str | Path, fig_dir: str | Path) -> list[Path]:
    return draw_masking_signature(profile, runs_dir, fig_dir, "got_masking_signature")


FIGURES: dict[str, Callable[..., list[Path]]] = {"got_fig2": _fig2, "got_fig7": _fig7,
                                                 "got_masking_signature": _signature}
