"""Generate the pipeline's numbered notebooks (00, 10, 20, the tables 30-32 and figures 40-42) with nbformat.

Run ``python scripts/make_notebooks.py`` after changing this file; the notebooks are committed and
``tests/test_pipeline.py`` checks they are up to date (``--check`` exits 1 if a notebook differs).
Every notebook: a title cell saying which paper table/figure it regenerates and how a profile differs, a cell tagged
``parameters`` (papermill), a setup cell (cwd = project root), then thin cells calling the package; the table and
figure notebooks of the three papers are one two-cell pattern (``tables_notebook`` / ``figures_notebook``). The
other generators: ``make_notebook_01.py``, ``make_notebooks_analysis.py`` (43-47), ``make_notebook_50.py``.
"""

from __future__ import annotations

import sys

import nbformat
from nbgen import build, code, main, markdown


SETUP = """\
import json, os
from pathlib import Path
if Path.cwd().name == "notebooks":  # opened in JupyterLab: run from the project root like papermill does
    os.chdir("..")
from ot_robust.study import tasks"""

PROFILE_NOTE = """\
**Profiles.** The numbers depend on the profile (`ot_robust/profiles/<name>.yaml`): `smoke` (CI: 2.5 min on idle
cores, 5 min measured with both cores busy), `quick` (default; bundled real MNIST sample, CW CNN, eps = 0.3; 38 min
measured on 2 shared cores; illustrative numbers), `ablations`, `mnist` (full MNIST, CW CNN, eps = 0.3, GOT
protocol with fewer epochs), the study (`study-fashion`, `study-mnist`: the results the findings rest on, committed
under `results/`) and the GPU profiles `cifar10-paper`, `cifar100-paper`, `svhn-paper` (the papers' WRN settings).
The papers' own numbers (CIFAR/SVHN, WRN-28-10) are printed beside ours; compare trends (orderings, gaps), not
absolute values, unless the profile matches the paper."""

def notebook(title_md: str, params: str, cells: list) -> nbformat.NotebookNode:
    return build([markdown(title_md), code(params, ["parameters"]), code(SETUP)] + cells)


def overview():
    return notebook(
        """# 00 - Overview: what this repository regenerates and how

A reproducible companion to three papers on optimal transport for adversarial robustness:
**Feature Scattering** (FS, Zhang & Wang, NeurIPS 2019, + supplement and rebuttal), **GOT** (ICLR 2022
submission) and **OTJR** (Le, Tariq & Woo). `python -m ot_robust reproduce --profile NAME` (what `make reproduce`
runs) executes these numbered notebooks with papermill, in dependency order:

| notebook | regenerates | outputs |
|---|---|---|
| `01_ot_solvers` | OT solver checks and illustrations | `figures/<profile>/` |
| `10_train` | one trained model per profile method | `runs/<profile>/train/<method>/` |
| `20_evaluate` | white-box suite, AutoAttack, sanity checks, FS Fig. 3 curves, FS supp. Fig. 1 loss curves \
| `runs/<profile>/eval/<method>/eval.json` |
| `21_audit` | masking audit: RayS, FeatureAttack, the authors' checks, transfer, GOT's eps-sweep protocol \
| `runs/<profile>/audit/<method>/eval.json` |
| `30_tables_fs` | FS Tables 1-4, Sec. 5.3 black-box, supplement Tables 1-4, rebuttal tables \
| `figures/<profile>/tables/` |
| `40_figures_fs` | FS Fig. 3 (accuracy vs eps / iterations), supplement Fig. 1 (PGD loss, 20 starts) \
| `figures/<profile>/` |

A step is skipped when its `.done.json` records the same content hash (the notebook's code cells without comments,
parameters, upstream steps, package version: rewording Markdown reruns nothing); `--force`, `--only 'train/*'`,
`--jobs N` and `--dry-run` (papermill commands) exist.

""" + PROFILE_NOTE,
        'profile = "quick"\nruns_dir = "runs/quick"\nfig_dir = "figures/quick"',
        [markdown("## The plan of this profile\nEvery step, its notebook, parameters and whether it is "
                           "up to date."),
         code("plan = tasks.describe_plan(profile, runs_dir=str(Path(runs_dir).parent), "
              "fig_dir=str(Path(fig_dir).parent))\nplan"),
         code("tasks.write_json(Path(runs_dir) / 'overview' / 'plan.json', plan.to_dict(orient='records'))")])


STEP_PARAMS = """profile_file = "ot_robust/profiles/quick.yaml"  # the profile (YAML); every setting of the step \
comes from it
profile_sha256 = ""         # its sha256 when the plan was built (empty: do not check that it is unchanged)
step = "{step}"  # the step of the profile's plan this notebook runs
runs_dir = None             # parent of <profile>/ run outputs (None: the profile's runs_dir, else runs)
fig_dir = "figures"         # parent of <profile>/ figures and tables
max_batches = None          # stop every training run after this many batches (one-batch check)"""


def train_nb():
    return notebook(
        """# 10 - Train one model

Trains one defense of the profile with `ot_robust.training.api.train` (checkpoints every epoch, resumes when rerun).
The methods are the papers' training objectives: Standard, Madry PGD-AT (FS Table 1 "Madry"), TRADES, ALP, MART,
random-targeted AT (FS rebuttal), Feature Scattering (FS Alg. 1, "Proposed"), and the GOT/OTJR defenses when present.

Outputs in `run_dir`: `config.json`, `checkpoint.pt`, `metrics.jsonl`, `model.pt`, `train_summary.json`.

""" + PROFILE_NOTE + """
The training settings of the papers (WRN-28-10, 100/200 epochs, batch 60/128, learning-rate schedules) are in the
`*-paper` profiles; `max_batches` stops a run early (one-batch check). To train with other settings, edit (a copy
of) the profile and pass its file: every setting of a step comes from its profile, nothing else.""",
        STEP_PARAMS.format(step="train/standard"),
        [code("summary = tasks.train_step(profile_file, step, profile_sha256=profile_sha256, runs_dir=runs_dir,\n"
              "                            fig_dir=fig_dir, max_batches=max_batches)\nsummary"),
         code("tasks.plot_training(summary['run_dir']);")])


def evaluate_nb():
    return notebook(
        """# 20 - Evaluate one model

White-box robustness of one trained model with `ot_robust.evaluation.suite.evaluate`: clean accuracy and the profile's
attack suite (FGSM, PGD-k and CW-k = CW margin loss inside PGD, as in FS Table 1), AutoAttack on a subset (a
column the papers did not have), gradient-masking sanity checks, and, when asked, the curves of FS Fig. 3
(accuracy vs epsilon at 20 steps; vs PGD iterations) and FS supplement Fig. 1 (PGD loss for 20 random starts),
and black-box transfer attacks from source models (FS Sec. 5.3). Writes `out_dir/eval.json` (accuracy in %),
`masks.npz` (per-example correctness of every column, for paired tests), `curves.json`, `loss_curves.json`.
Every attack runs on the first n images of one fixed class-balanced order; each accuracy carries its 95% Wilson
interval (`result['ci']`).

""" + PROFILE_NOTE,
        STEP_PARAMS.format(step="evaluate/standard"),
        [code("result = tasks.evaluate_step(profile_file, step, profile_sha256=profile_sha256, runs_dir=runs_dir,\n"
              "                             fig_dir=fig_dir, max_batches=max_batches)\n"
              "tasks.accuracy_frame(result)"),
         markdown("Sanity checks (gradient masking): every check should read `pass`."),
         code("tasks.sanity_frame(result)")])


def audit_nb():
    return notebook(
        """# 21 - Audit one model for gradient masking

The attacks that settled the Feature Scattering debate, run on one trained model after its evaluation
(`ot_robust.study.audit.run_audit`, the groups of the profile's `audit:` mapping that list this model): the
hard-label RayS (Chen & Gu 2020), the feature-space FeatureAttack (Line290/FeatureAttack), the authors' own checks
(PGD and CW with 500 and 1,000 steps, the lowest of 5 random-start runs: FS supplement Table 1 and rebuttal
section 2; transfer attacks from an undefended and a Siamese model: FS Sec. 5.3; SPSA and local search: supplement
Sec. 2.2), OTJR Table 2's other columns, and GOT's eps sweep under the paper's protocol (App. A.3: 40 steps of
0.01 on predicted labels) beside ours. Every column runs on the first n images of the evaluation's class-balanced
order, so it pairs image by image with `20_evaluate`'s columns; the sanity flag names any black-box, transfer or
hard-label attack that does significantly better than white-box PGD on the same images (the masking signature).
Writes `out_dir/eval.json` (accuracy in %) and `masks.npz`.

""" + PROFILE_NOTE,
        STEP_PARAMS.format(step="audit/standard"),
        [code("from ot_robust.study import audit\n"
              "result = audit.audit_step(profile_file, step, profile_sha256=profile_sha256, runs_dir=runs_dir,\n"
              "                          fig_dir=fig_dir, max_batches=max_batches)\n"
              "audit.audit_frame(result)"),
         markdown("Masking signature: a black-box, transfer or hard-label attack significantly stronger than "
                  "white-box PGD on the same images reads `flag`."),
         code("tasks.sanity_frame(result)")])


#: the study profile whose committed results (results/<profile>/) the paper notebooks show by default, so that they
#: run on a fresh clone; the committed copies of some carry these outputs (scripts/execute_notebooks.py)
DEFAULT_PROFILE = {"fs": "study-fashion", "got": "study-mnist", "otjr": "study-fashion"}
CHECK = ["nbval-check-output"]  # nbval --nbval-lax compares this cell's output with the committed one


def _params(paper: str, kind: str, names: list[str]) -> str:
    prof = DEFAULT_PROFILE[paper]
    listed = "[" + ", ".join(f'"{n}"' for n in names) + "]"
    what = "table names (ot_robust.reports.TABLES / WRITERS)" if kind == "tables" else \
        "figure names (ot_robust.reports.FIGURES)"
    return f"""profile = "{prof}"
profile_file = ""            # the profile YAML (default: the shipped one)
profile_sha256 = ""          # content hash of the profile (so that editing it reruns this step)
runs_dir = "results/{prof}"   # the committed study results; your runs: runs/<profile>
fig_dir = "runs/{prof}/figures"  # by hand: a scratch folder; the pipeline passes figures/<profile>
{kind} = '{listed}'   # JSON list of {what}"""


def tables_notebook(title_md: str, paper: str, tables: list[str]):
    """The two-cell table notebook of every paper: build the tables (ot_robust.reports.write_tables), show them."""
    return notebook(title_md + "\n\n" + PROFILE_NOTE, _params(paper, "tables", tables),
        [code("written = tasks.run_tables(profile=profile_file or profile, runs_dir=runs_dir, fig_dir=fig_dir, "
              "tables=tables)\nlist(written)"),
         code("tasks.show_tables(written)", CHECK)])


def figures_notebook(title_md: str, paper: str, figures: list[str]):
    """The two-cell figure notebook of every paper: draw the figures (ot_robust.reports.draw_figures), show them."""
    return notebook(title_md + "\n\n" + PROFILE_NOTE, _params(paper, "figures", figures),
        [code("written = tasks.run_figures(profile=profile_file or profile, runs_dir=runs_dir, fig_dir=fig_dir, "
              "figures=figures)\nwritten", CHECK),
         code("tasks.show_figures(written)")])


def tables_fs_nb():
    return tables_notebook("""# 30 - Feature Scattering tables (paper numbers beside ours)

Regenerates, as Markdown, CSV and LaTeX under `figures/<profile>/tables/`:
FS **Table 1** (CIFAR-10 white-box: Clean, FGSM, PGD10/20/40/100, CW10/20/40/100), **Table 2(a)/(b)** (SVHN,
CIFAR-100), **Table 3(a)** (perturbation: random / supervised / feature scattering) and **3(b)** (matching:
uniform / identity / OT), **Table 4** (Sinkhorn vs IPOT), the **Sec. 5.3 black-box table** (Undefended and Siamese
transfer sources), **supplement Tables 1-4** (stronger attacks, label smoothing, Sinkhorn tau, IPOT beta) and the
**rebuttal's** batch-size, label-smoothing and random-targeted tables. Paper numbers come from
`ot_robust/assets/paper_tables.yaml`; ours from `runs/<profile>/eval/*/eval.json`. Columns the papers did not have:
`AA` (AutoAttack), `worst` (worst case over our attacks) and `sanity` (gradient-masking checks).""", "fs",
                           ["fs_table1", "fs_table3a", "fs_table3b", "fs_table4"])


def tables_got_nb():
    return tables_notebook("""# 31 - GOT tables (paper numbers beside ours) and a check of the paper's own numbers

GOT ("Improving Robustness with Optimal Transport based Adversarial Generalization", ICLR 2022 submission; no
public code: `ot_robust.defenses.got` is the first implementation). Regenerates under `figures/<profile>/tables/`:
**Table 1** (MNIST Nat / PGD / AA: PGD-AT, TRADES, MART and the four GOT variants), **Table 2** (ResNet-18 on
CIFAR-10 / CIFAR-100 / SVHN, for profiles that map experiments to it), **Table 4** (latent layer: penultimate vs
middle), **Table 5** (cost metrics d_x / d_y), and checks the **eps plateau of appendix Tables 6-8** (robust
accuracy constant from eps 0.4 to 0.7 on MNIST: a gradient-masking sign) on our models with the sanity checks and
AutoAttack (`ot_robust.reports.got`). Which experiment is which GOT variant / latent / cost / beta comes from
`methods.<exp>.params`; a paper row without a matching experiment reads "not run in this profile"; the MNIST
tables are not built for a profile on other data (the reason is printed).""",
                           "got", ["got_table1", "got_table4", "got_table5", "got_eps_plateau_check"])


def tables_otjr_nb():
    return tables_notebook("""# 32 - OTJR tables (Le, Tariq & Woo): paper numbers beside ours

Regenerates OTJR Table 2 / Table 9 layout (Clean, PGD20, PGD100, L2-PGD, MIM, FGSM, CW, FAB, Square, SimBA,
AutoAttack) for TRADES, ALP, PGD-AT, SAT, Random JR, SW and OTJR; Table 3 (TRADES vs OTJR inside AWP); Table 6
(SAT + random JR vs OTJR); Table 7 (random vs optimal JR); Table 8 (lambda_J, lambda_SW, K); Table 10 (sanity: PGD
steps and budgets, as 10a / 10b); Table 11 (training time per epoch as ratios to standard training, from
`metrics.jsonl`); Tables 5/12 (mean |grad_x CE| after 0-20 PGD iterations, computed here from the trained models)
(`ot_robust.reports.otjr`). Paper rows with no model in the profile are listed as "not run in this profile". The
paper's own tables are checked for internal consistency (`otjr_paper_flags`): its Table 7 (CIFAR-100) prints
Optimal JR AutoAttack 24.14 above its PGD-20 of 11.20, impossible for a sound evaluation (AutoAttack starts with
APGD-CE); the check flags it.""", "otjr", ["otjr_table2", "otjr_table7", "otjr_table10", "otjr_table11"])


def figures_fs_nb():
    return figures_notebook("""# 40 - Feature Scattering figures

Regenerates, as PNG and PDF under `figures/<profile>/`: FS **Fig. 3** (accuracy under PGD-20 vs the attack budget
epsilon, and vs the number of PGD iterations at the profile's epsilon; the paper plots Standard, Madry and
Proposed on CIFAR-10 with eps up to 20/255) and FS **supplement Fig. 1** (the PGD loss over iterations for 20
random starts on test examples, for the Feature Scattering model). Curves come from
`runs/<profile>/eval/*/curves.json` and `loss_curves.json` (written by `20_evaluate`).""",
                            "fs", ["fs_fig3"])


def figures_got_nb():
    return figures_notebook("""# 41 - GOT figures

Regenerates under `figures/<profile>/` (PNG, PDF): **Figs. 2-5** (robust accuracy under PGD vs the attack budget
eps and vs the number of PGD steps; the paper: MNIST eps 0.1-0.7 with k = 40, CIFAR/SVHN eps 0.02-0.1 with k = 20)
for the GOT paper's methods with `curves.json`, and **Fig. 7** (sensitivity to beta, the weight of the OT term;
paper: MNIST, beta in {0.01, 0.1, 1, 10, 100}) from the GOT experiments of the profile that differ only in beta;
a figure whose models the profile did not run prints the reason. Fig. 6 (t-SNE) is made by the analysis
notebooks.""", "got", ["got_fig2", "got_fig7"])


def figures_otjr_nb():
    return figures_notebook("""# 42 - OTJR figures: Fig. 7 (training cross-entropy, SW vs SAT)

OTJR Fig. 7 plots the training cross-entropy of WRN-34 trained with SW and with SAT on CIFAR-10/100 (SAT fails to
converge on CIFAR-100 in 100 epochs). Ours: the per-epoch adversarial CE (`train_ce_adv` in `metrics.jsonl`) of
the profile's `sw` and `sat` experiments; the reason is printed when they are absent. OTJR Figs. 2-4, 6 and 9 are
made by the analysis notebooks (43-46).""", "otjr", ["otjr_fig7"])


NOTEBOOKS = {"00_overview": overview, "10_train": train_nb, "20_evaluate": evaluate_nb, "21_audit": audit_nb,
             "30_tables_fs": tables_fs_nb, "31_tables_got": tables_got_nb, "32_tables_otjr": tables_otjr_nb,
             "40_figures_fs": figures_fs_nb, "41_figures_got": figures_got_nb, "42_figures_otjr": figures_otjr_nb}


if __name__ == "__main__":
    sys.exit(main(NOTEBOOKS, __file__, __doc__.split("\n\n")[0]))
