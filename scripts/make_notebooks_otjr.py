"""Generate the OTJR notebooks ``32_tables_otjr`` and ``42_figures_otjr`` with nbformat (``--check``: exit 1 if stale).

Same conventions as ``scripts/make_notebooks.py`` (title cell, a cell tagged ``parameters``, setup cell, thin cells
calling :mod:`ot_robust.reports.otjr`). Parameters: ``profile``, ``runs_dir`` (``runs`` or
``runs/<profile>``: both work), ``fig_dir`` (None = do not write files), and the pipeline's ``tables``/``figures``.
"""
from __future__ import annotations

import sys

from make_notebooks import PROFILE_NOTE, notebook
from nbgen import code, main, markdown

PARAMS = '''profile = "quick"
runs_dir = "runs"           # runs/ or runs/<profile>/
fig_dir = None              # None: show only; else tables go to <fig_dir>/tables/, figures to <fig_dir>/
profile_file = ""
profile_sha256 = ""
{extra}'''

RESOLVE = """from ot_robust.reports import otjr as O
from ot_robust.profiles import load_profile
prof = load_profile(profile_file or profile)
rd = Path(runs_dir) if Path(runs_dir).name == prof.name else Path(runs_dir) / prof.name
wanted = json.loads(WANTED) if isinstance(WANTED, str) else (WANTED or DEFAULT)
print(f"profile {prof.name}: runs in {rd}; {len(list(rd.glob('eval/*/eval.json')))} evaluated models")"""


def tables_nb():
    return notebook(
        """# 32 - OTJR tables (Le, Tariq & Woo): paper numbers beside ours

Regenerates OTJR Table 2 / Table 9 layout (Clean, PGD20, PGD100, L2-PGD, MIM, FGSM, CW, FAB, Square, SimBA,
AutoAttack) for TRADES, ALP, PGD-AT, SAT, Random JR, SW and OTJR; Table 3 (TRADES vs OTJR inside AWP); Table 6
(SAT + random JR vs OTJR); Table 7 (random vs optimal JR); Table 8 (lambda_J, lambda_SW, K); Table 10 (sanity: PGD
steps and budgets); Table 11 (training time per epoch as ratios to standard training, from `metrics.jsonl`);
Tables 5/12 (mean |grad_x CE| after 0-20 PGD iterations, computed here from the trained models). Paper rows with no
model in the profile are listed as "not run in this profile". The paper's own tables are checked for internal
consistency: its Table 7 (CIFAR-100) prints Optimal JR AutoAttack 24.14 above its PGD-20 of 11.20, impossible for
a sound evaluation (AutoAttack starts with APGD-CE); the check flags it.

""" + PROFILE_NOTE,
        PARAMS.format(extra='tables = None               # JSON list of otjr_* table names (None: all)'),
        [code(RESOLVE.replace("WANTED", "tables").replace("DEFAULT", "[s.name for s in O.TABLES]")),
         markdown("## Accuracy tables (Tables 2, 3, 6, 7, 8, 9, 10)"),
         code("""special = {"otjr_table10", "otjr_table11", "otjr_table12"}
out_dir = Path(fig_dir) / "tables" if fig_dir else None
built = {}
for name in [n for n in wanted if n not in special]:
    res = O.build_otjr_table(name, rd, prof)
    built[name] = res
    if out_dir:
        res.write(out_dir)
    display(Markdown(res.render("md")))"""),
         markdown("## The paper's own consistency (OTJR Table 7: AutoAttack above PGD-20)"),
         code("""flags = pd.concat([O.paper_consistency(n) for n in ("otjr_table7", "otjr_table7_c100", "otjr_table2",
                                                           "otjr_table6")], ignore_index=True)
flagged = flags[flags["status"] != "pass"]
flagged"""),
         markdown("## Tables 10 (sanity: accuracy vs PGD steps and vs budget), 11 (training time per epoch, ratio "
                  "to standard training) and 5/12 (mean |grad_x CE| x 1e-4 after 0-20 PGD iterations)"),
         code("""for name, res in O.special_tables(rd, prof, wanted).items():
    if out_dir:
        res.write(out_dir)
    display(Markdown(res.render("md")))
if out_dir:
    from ot_robust.reports.tables import render_frame
    (out_dir / "otjr_paper_flags.md").write_text(render_frame(flags, "md", "OTJR: the paper's own consistency",
                                                              "Checks of the paper's numbers (ot_robust.sanity).",
                                                              "otjr_paper_flags", n_text=1))""")])


def figures_nb():
    return notebook(
        """# 42 - OTJR figures: Fig. 7 (training cross-entropy, SW vs SAT)

OTJR Fig. 7 plots the training cross-entropy of WRN-34 trained with SW and with SAT on CIFAR-10/100 (SAT fails to
converge on CIFAR-100 in 100 epochs). Ours: the per-epoch adversarial CE (`train_ce_adv` in `metrics.jsonl`) of
the profile's `sw` and `sat` experiments; "not run in this profile" when they are absent.

""" + PROFILE_NOTE,
        PARAMS.format(extra='figures = None              # JSON list of figure names (otjr_fig7)'),
        [code(RESOLVE.replace("WANTED", "figures").replace("DEFAULT", '["otjr_fig7"]')),
         code("""fig, paths = O.fig7_ce_curves(rd, fig_dir, prof)
print(paths or "figure not written (fig_dir is None or SW/SAT not run in this profile)")
fig""")])


EXTRA_SETUP = "import pandas as pd\nfrom IPython.display import Markdown, display\n"


def _with_extra_setup(builder):
    def build_nb():
        nb = builder()
        nb.cells[2].source = nb.cells[2].source + "\n" + EXTRA_SETUP.rstrip()
        return nb
    return build_nb


NOTEBOOKS = {"32_tables_otjr": _with_extra_setup(tables_nb), "42_figures_otjr": _with_extra_setup(figures_nb)}

if __name__ == "__main__":
    sys.exit(main(NOTEBOOKS, __file__, __doc__.split("\n\n")[0]))
