"""Generate the GOT notebooks ``31_tables_got`` and ``41_figures_got`` with nbformat.

Run ``python scripts/make_notebooks_got.py`` after changing this file (``--check`` exits 1 if a notebook differs).
Both notebooks read ``<runs_dir>/eval/<experiment>/eval.json`` (+ ``curves.json``) written by ``20_evaluate`` and
the profile (which experiment is which GOT variant / latent / cost / beta comes from ``methods.<exp>.params``);
anything the profile did not run is reported as "not run in this profile" instead of failing.
"""
from __future__ import annotations

import sys

import nbformat
from nbgen import build, code, main, markdown


PARAMS = '''profile = "quick"
profile_file = ""            # the profile YAML (default: the shipped one)
profile_sha256 = ""          # content hash of the profile (so that editing it reruns this step)
runs_dir = "runs"            # runs/ or runs/<profile>/ (both accepted)
fig_dir = None               # None: figures/<profile>
{extra}'''

SETUP = '''\
import json, os
from pathlib import Path
if Path.cwd().name == "notebooks":  # opened in JupyterLab: run from the project root like papermill does
    os.chdir("..")
import pandas as pd
from IPython.display import Markdown, display
from ot_robust.profiles import load_profile
from ot_robust.tables import load_evals, paper_table

prof = load_profile(profile_file or profile)
rd = Path(runs_dir)
if not (rd / "eval").is_dir() and (rd / prof.name / "eval").is_dir():
    rd = rd / prof.name
out = Path(fig_dir) if fig_dir else Path("figures") / prof.name
evals = load_evals(rd)
NOT_RUN = "not run in this profile"
print(f"profile {prof.name}: {len(evals)} evaluated experiments under {rd}")'''

# Which experiment is which GOT setting: read from the profile's method and parameters (defaults = GOT App. A.3).
SELECT = '''\
GOT_ROW = {"got_pgd_s": "GOT-PGD-S", "got_trades_s": "GOT-TRADES-S", "got_pgd_lm": "GOT-PGD-LM",
           "got_trades_lm": "GOT-TRADES-LM", "pgd_at": "PGD-AT", "trades": "TRADES", "mart": "MART"}
DEFAULT = {"latent": "penultimate", "d_x": "cosine", "d_y": "kl", "beta": 10.0}

def setting(exp):
    m = prof.methods[exp]
    return {**DEFAULT, **{k: v for k, v in m.get("params", {}).items() if k in DEFAULT}}, m["method"]

def ours(exp, pgd_key=None):
    """Nat / PGD / AA of one experiment (PGD: the profile's strongest PGD column unless given)."""
    ev = evals[exp]
    acc = ev.get("accuracy", {})
    pgd = pgd_key or max((k for k in acc if k.startswith("pgd") and k[3:].isdigit()), key=lambda k: int(k[3:]),
                         default=None)
    checks = ev.get("sanity") or []
    flagged = [c.get("check", "?") for c in checks if c.get("status") != "pass"]
    return {"nat": acc.get("clean"), "pgd": acc.get(pgd) if pgd else None, "aa": ev.get("autoattack"),
            "attack": pgd, "sanity": ("pass" if not flagged else "flag: " + ", ".join(flagged)) if checks else ""}

def table(key, rows_for):
    """Paper rows with ours beneath; ``rows_for(paper_row)`` -> list of experiments standing for it."""
    pt = paper_table("got", key)
    recs = []
    for label, vals in pt["rows"].items():
        recs.append({"row": label, "source": "paper", **dict(zip(pt["columns"], vals))})
        exps = [e for e in rows_for(label) if e in evals]
        if not exps:
            recs.append({"row": label, "source": f"ours ({prof.name})", "sanity": NOT_RUN})
        for e in exps:
            recs.append({"row": label, "source": f"ours ({prof.name}: {e})", **ours(e)})
    df = pd.DataFrame(recs).set_index(["row", "source"])
    return df.reindex(columns=["nat", "pgd", "aa", "attack", "sanity"])

def save(df, name, caption):
    (out / "tables").mkdir(parents=True, exist_ok=True)
    flat = df.reset_index()
    cell = lambda v: "" if v is None or (isinstance(v, float) and v != v) else (f"{v:.2f}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(flat.columns) + " |", "|" + "---|" * len(flat.columns)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in flat.itertuples(index=False)]
    md = f"**{name}.** {caption}\\n\\n" + "\\n".join(lines) + "\\n"
    (out / "tables" / f"{name}.md").write_text(md)
    df.to_csv(out / "tables" / f"{name}.csv", float_format="%.2f")
    display(Markdown(md))

got_exps = [e for e in prof.methods if prof.methods[e]["method"].startswith("got_")]'''


def notebook(title_md: str, params: str, cells: list) -> nbformat.NotebookNode:
    return build([markdown(title_md), code(params, ["parameters"]), code(SETUP), code(SELECT)] + cells)


def tables_nb():
    return notebook("""# 31 - GOT tables (paper numbers beside ours) and a check of the paper's own numbers

GOT ("Improving Robustness with Optimal Transport based Adversarial Generalization", ICLR 2022 submission; no
public code: `ot_robust.defenses.got` is the first implementation). Regenerates under `figures/<profile>/tables/`:
**Table 1** (MNIST Nat / PGD / AA: PGD-AT, TRADES, MART and the four GOT variants), **Table 4** (latent layer:
penultimate vs middle), **Table 5** (cost metrics d_x / d_y), and checks the **eps plateau of appendix Tables 6-8**
(robust accuracy constant from eps 0.4 to 0.7 on MNIST: a gradient-masking sign) on our models with the sanity
checks and AutoAttack. Our rows: experiments of the profile chosen by their method and parameters; a paper row
without a matching experiment reads "not run in this profile". The `quick` profile uses the bundled MNIST sample,
a CPU model and few epochs: compare orderings and gaps, not absolute numbers.""",
                    PARAMS.format(extra='tables = "null"          # JSON list of table names; null: all'), [
        markdown("## Table 1: MNIST, PGD-AT / TRADES / MART and the four GOT variants"),
        code('''t1 = table("table1_mnist", lambda row: [e for e in prof.methods if GOT_ROW.get(prof.methods[e]["method"]) == row
                                        and (not e in got_exps or setting(e)[0] == DEFAULT)])
save(t1, "got_table1", "GOT Table 1 (MNIST, CW CNN, eps 0.3, PGD-40, AA standard) beside ours; attack = our PGD column.")'''),
        markdown("""## Table 2: ResNet-18 on CIFAR-10 / CIFAR-100 / SVHN (Nat / PGD-20 / AA)

One profile per dataset (`got-cifar10-paper`, `got-cifar100-paper`, `got-svhn-paper` on GPUs; `got-cifar10-cpu` here,
a small CNN on the lossy JPEG copy of CIFAR-10): each fills its own dataset's rows, the experiments naming their
paper row in `methods.<exp>.tables.got_table2`."""),
        code('''from ot_robust.tables import build_table
t2 = build_table("got_table2", evals, prof)
t2.write(out / "tables")
display(Markdown(t2.render("md")))'''),
        markdown("## Table 4: latent layer (penultimate vs middle)"),
        code('''def t4_rows(row):
    meth, layer = row.split(" / ")
    want = "penultimate" if layer.startswith("penultimate") else "middle"
    return [e for e in got_exps if GOT_ROW[prof.methods[e]["method"]] == meth
            and (setting(e)[0]["latent"] == "penultimate") == (want == "penultimate")
            and {k: v for k, v in setting(e)[0].items() if k != "latent"} == {k: v for k, v in DEFAULT.items() if k != "latent"}]
save(table("table4_latent_layer_mnist", t4_rows), "got_table4", "GOT Table 4: latent layer of the OT term.")'''),
        markdown("## Table 5: cost metrics d_x / d_y"),
        code('''def t5_rows(row):
    meth, costs = row.split(" / ")
    dx, dy = {"COS": "cosine", "L2": "l2"}[costs.split("-")[0]], costs.split("-")[1].lower()
    return [e for e in got_exps if GOT_ROW[prof.methods[e]["method"]] == meth
            and setting(e)[0] == {**DEFAULT, "d_x": dx, "d_y": dy}]
save(table("table5_cost_metrics_mnist", t5_rows), "got_table5", "GOT Table 5: d_x / d_y of the joint cost.")'''),
        markdown("""## Checking the paper: does robust accuracy plateau as eps grows (appendix Tables 6-8)?

The paper's GOT rows stay exactly constant from eps = 0.4 to 0.7 on MNIST (e.g. 80.26%) while PGD-AT and TRADES
fall to a few percent. A model cannot be robust at eps = 0.7 on MNIST (half the pixel range: the digit can be
erased), so a flat curve means the attack stopped finding adversarial examples (gradient masking or an attack
bug), not robustness. We look at our accuracy-vs-eps curves (`curves.json`), flag a plateau (the last three
points within 1 point of each other while above 10%), and print the sanity checks and AutoAttack next to PGD."""),
        code('''pt6 = paper_table("got", "table6_mnist_eps_sweep")
print("paper Table 6:", pt6["columns"]); display(pd.DataFrame(pt6["rows"], index=pt6["columns"]).T)
recs = []
for e in prof.methods:
    if e not in evals:
        recs.append({"experiment": e, "method": prof.methods[e]["method"], "plateau": NOT_RUN}); continue
    cpath = rd / "eval" / e / "curves.json"
    o = ours(e)
    rec = {"experiment": e, "method": prof.methods[e]["method"], "PGD": o["pgd"], "AA": o["aa"],
           "PGD - AA": None if o["pgd"] is None or o["aa"] is None else o["pgd"] - o["aa"], "sanity": o["sanity"]}
    if cpath.is_file():
        c = json.loads(cpath.read_text())["vs_epsilon"]
        tail = c["accuracy"][-3:]
        rec.update({"eps": c["x"], "acc_vs_eps": [round(a, 1) for a in c["accuracy"]],
                    "plateau": bool(len(tail) == 3 and max(tail) - min(tail) <= 1.0 and min(tail) > 10.0)})
    else:
        rec["plateau"] = "no curves in this profile"
    recs.append(rec)
check = pd.DataFrame(recs).set_index("experiment")
(out / "tables").mkdir(parents=True, exist_ok=True)
check.to_csv(out / "tables" / "got_eps_plateau_check.csv")
check'''),
        code('''got_rows = check[check["method"].str.startswith("got_")] if len(check) else check
flat = [e for e, r in got_rows.iterrows() if r.get("plateau") is True]
flags = [e for e, r in got_rows.iterrows() if str(r.get("sanity", "")).startswith("flag")]
gap = got_rows["PGD - AA"].dropna() if "PGD - AA" in got_rows else pd.Series(dtype=float)
verdict = (f"GOT models evaluated: {len(got_rows)}. Plateau in accuracy vs eps: {flat or 'none'}. "
           f"Sanity flags: {flags or 'none'}. PGD - AutoAttack gap (points): "
           f"{', '.join(f'{e}: {v:.1f}' for e, v in gap.items()) or 'AutoAttack not run in this profile'}.")
Path(out / "tables" / "got_eps_plateau_check.md").write_text(verdict + "\\n")
display(Markdown(verdict))'''),
    ])


def figures_nb():
    return notebook("""# 41 - GOT figures

Regenerates under `figures/<profile>/` (PNG, PDF): **Figs. 2-5** (robust accuracy under PGD vs the attack budget
eps and vs the number of PGD steps; the paper: MNIST eps 0.1-0.7 with k = 40, CIFAR/SVHN eps 0.02-0.1 with k = 20)
for every experiment with `curves.json`, and **Fig. 7** (sensitivity to beta, the weight of the OT term; paper:
MNIST, beta in {0.01, 0.1, 1, 10, 100}) from the GOT experiments of the profile that differ only in beta.
Fig. 6 (t-SNE) is made by the analysis notebooks.""",
                    PARAMS.format(extra='figures = "null"         # JSON list of figure names; null: all'), [
        code('''from ot_robust.plots import plot_accuracy_curves, save_figure, figure
curves = {prof.label(e): json.loads((rd / "eval" / e / "curves.json").read_text())
          for e in prof.methods if (rd / "eval" / e / "curves.json").is_file()}
if curves:
    print(save_figure(plot_accuracy_curves(curves, f" ({prof.name})"), "got_fig2_accuracy_vs_eps_steps", out))
else:
    print("Figs. 2-5:", NOT_RUN, "(no curves.json)")'''),
        code('''groups = {}
for e in got_exps:
    if e in evals:
        s, meth = setting(e)
        key = (meth,) + tuple(sorted((k, v) for k, v in s.items() if k != "beta"))
        groups.setdefault(key, []).append((float(s["beta"]), e))
groups = {k: sorted(v) for k, v in groups.items() if len({b for b, _ in v}) > 1}
if groups:
    fig, axes = figure()
    ax = axes[0, 0]
    for key, pts in groups.items():
        ax.plot([b for b, _ in pts], [ours(e)["pgd"] for _, e in pts], marker="o", label=GOT_ROW[key[0]])
    ax.set_xscale("log"); ax.set_xlabel(r"$\\beta$ (weight of the OT term)"); ax.set_ylabel("PGD accuracy (%)")
    ax.set_title(f"GOT Fig. 7: beta sensitivity ({prof.name})"); ax.legend()
    print(save_figure(fig, "got_fig7_beta_sensitivity", out))
else:
    print("Fig. 7:", NOT_RUN, "(needs GOT experiments differing only in beta)")'''),
    ])


NOTEBOOKS = {"31_tables_got": tables_nb, "41_figures_got": figures_nb}


if __name__ == "__main__":
    sys.exit(main(NOTEBOOKS, __file__, __doc__.split("\n\n")[0]))
