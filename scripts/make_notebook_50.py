"""Generate notebooks/50_claims.ipynb (the claims-verdict table of the study, issue 14) with nbformat.

Run: ``.venv/bin/python scripts/make_notebook_50.py``; executed by ``python -m ot_robust reproduce --profile study``.
"""
import sys

from nbgen import build, code, main
from nbgen import markdown as md

cells = [
    md("# 50 - Claims and verdicts\n\nOne row per headline claim of the three papers: the paper's effect (from "
       "`paper_tables.yaml`), ours at CPU scale with its 95% interval (Student t over seeds, or the paired McNemar "
       "test on the same images for one seed), and a verdict (reproduced / contradicted / inconclusive) by the rule "
       "in the README (`ot_robust.core.stats.verdict`). Claims whose models have not been evaluated yet read "
       "*not run yet*. Writes `claims.md`, `claims.csv`, `claims.tex` and the figure `claims.png` / `.pdf` to "
       "`out_dir`."),
    code('profiles = \'["study-fashion", "study-mnist"]\'   # JSON list of the study profiles\n'
         'runs_dir = "results"          # where their eval/<experiment>/eval.json + masks.npz are\n'
         'out_dir = "runs/study/claims"  # the pipeline passes figures/study', ["parameters"]),
    code("import json, os\nfrom pathlib import Path\nif Path.cwd().name == \"notebooks\":  # opened in JupyterLab: run "
         "from the project root like papermill does\n    os.chdir(\"..\")\n\nimport matplotlib.pyplot as plt\n"
         "from IPython.display import Image, Markdown, display\n\n"
         "from ot_robust.reports.claims import claims_table, plot_claims, render_claims"),
    code("df = claims_table(runs_dir, profiles=json.loads(profiles))\n"
         "paths = render_claims(df, out_dir)\ndisplay(Markdown(paths[0].read_text()))", ["nbval-check-output"]),
    code("df.verdict.value_counts()"),
    md("The study's main figure (`claims.png` / `.pdf` in `out_dir`): ours with its 95% interval, coloured by verdict, "
       "beside the paper's effect (open diamond), for every claim that has run."),
    code("fig, fig_paths = plot_claims(df, out_dir)\nplt.close(fig)  # shown from its PNG below\nfig_paths",
         ["nbval-check-output"]),
    code("Image(filename=str(fig_paths[0]))"),
    md("## Has training levelled off?\n\nHeld-out clean and PGD-10 accuracy after every epoch of every study run "
       "(`metrics.jsonl`, n = 500 held-out images), its last-epoch change judged against binomial noise and its best "
       "epoch (`ot_robust.reports.convergence`, rule in its docstring). A run whose best epoch is its last is still "
       "gaining: "
       "the study compares methods at an equal, written-down number of epochs (README, The study). Writes "
       "`training_curves_<profile>.png` / `.pdf` to `out_dir`."),
    code("from ot_robust.reports.convergence import convergence_markdown, plot_training_curves, training_curves\n"
         "from ot_robust.core.style import save_figure\n\n"
         "curves = {p: training_curves(p, runs_dir) for p in json.loads(profiles)}\n"
         "for p, c in curves.items():\n"
         "    if not c.empty:\n"
         "        display(Markdown(convergence_markdown(c, p)))",
         ["nbval-check-output"]),
    code("curve_paths = [save_figure(plot_training_curves(c, p), f\"training_curves_{p}\", out_dir)[0]\n"
         "               for p, c in curves.items() if not c.empty]\n"
         "for path in curve_paths:\n    display(Image(filename=str(path)))"),
]

if __name__ == "__main__":
    sys.exit(main({"50_claims": lambda: build(cells)}, __file__, __doc__))
