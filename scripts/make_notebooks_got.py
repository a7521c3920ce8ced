"""Generate the GOT notebooks ``31_tables_got`` and ``41_figures_got`` with nbformat.

Run ``python scripts/make_notebooks_got.py`` after changing this file (``--check`` exits 1 if a notebook differs).
Both are thin: parameters, then calls into :mod:`ot_robust.reports.got` (which experiment is which GOT variant /
latent / cost / beta comes from ``methods.<exp>.params``; anything the profile did not run is reported as "not run
in this profile"; the MNIST tables are not built for a profile on other data).
"""
from __future__ import annotations

import sys

from make_notebooks import notebook
from nbgen import code, main


PARAMS = '''profile = "quick"
profile_file = ""            # the profile YAML (default: the shipped one)
profile_sha256 = ""          # content hash of the profile (so that editing it reruns this step)
runs_dir = "runs"            # runs/ or runs/<profile>/ (both accepted)
fig_dir = None               # None: runs/<profile>/figures (scratch; the pipeline passes figures/<profile>)
{extra}'''

RESOLVE = """from IPython.display import Markdown, display
from ot_robust.profiles import load_profile
from ot_robust.reports import got
prof = load_profile(profile_file or profile)
rd = Path(runs_dir)
if not (rd / "eval").is_dir() and (rd / prof.name / "eval").is_dir():
    rd = rd / prof.name
out = Path(fig_dir) if fig_dir else Path("runs") / prof.name / "figures"
print(f"profile {prof.name} ({prof.dataset}): runs in {rd}")"""


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
        code(RESOLVE),
        code('''written = got.write_tables(prof, rd, out / "tables", json.loads(tables) if isinstance(tables, str) else tables)
for name, paths in written.items():
    if isinstance(paths, str):
        print(f"{name}: not built ({paths})")
    else:
        md = next(p for p in paths if p.suffix == ".md")
        display(Markdown(md.read_text()))'''),
    ])


def figures_nb():
    return notebook("""# 41 - GOT figures

Regenerates under `figures/<profile>/` (PNG, PDF): **Figs. 2-5** (robust accuracy under PGD vs the attack budget
eps and vs the number of PGD steps; the paper: MNIST eps 0.1-0.7 with k = 40, CIFAR/SVHN eps 0.02-0.1 with k = 20)
for every experiment with `curves.json`, and **Fig. 7** (sensitivity to beta, the weight of the OT term; paper:
MNIST, beta in {0.01, 0.1, 1, 10, 100}) from the GOT experiments of the profile that differ only in beta.
Fig. 6 (t-SNE) is made by the analysis notebooks.""",
                    PARAMS.format(extra='figures = "null"         # JSON list of figure names; null: all'), [
        code(RESOLVE),
        code('''try:
    print(got.fig_got_fig2(prof, rd, out))
except ValueError as e:
    print("Figs. 2-5: not drawn:", e)
paths = got.fig_got_fig7(prof, rd, out)
print(paths if paths else "Fig. 7: not run in this profile (needs GOT experiments differing only in beta)")'''),
    ])


NOTEBOOKS = {"31_tables_got": tables_nb, "41_figures_got": figures_nb}


if __name__ == "__main__":
    sys.exit(main(NOTEBOOKS, __file__, __doc__.split("\n\n")[0]))
