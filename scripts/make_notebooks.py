"""Generate the pipeline's numbered notebooks (00, 10, 20, 30_tables_fs, 40_figures_fs) with nbformat.

Run ``python scripts/make_notebooks.py`` after changing this file; the notebooks are committed and
``tests/test_pipeline.py`` checks they are up to date (``--check`` exits 1 if a notebook differs).
Every notebook: a title cell saying which paper table/figure it regenerates and how a profile differs, a cell tagged
``parameters`` (papermill), a setup cell (cwd = project root), then thin cells calling the package.
(``01_ot_solvers.ipynb`` is written by the solvers work, not by this script.)
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
from ot_robust import steps"""

PROFILE_NOTE = """\
**Profiles.** The numbers depend on the profile (`ot_robust/profiles/<name>.yaml`): `smoke` (CI, seconds),
`quick` (default; bundled real MNIST sample, CW CNN, eps = 0.3, at most 15 minutes on 2 cores), `mnist`
(full MNIST, CW CNN, eps = 0.3, GOT protocol with fewer epochs) and the GPU profiles `cifar10-paper`,
`cifar100-paper`, `svhn-paper` (the papers' WRN settings). The papers' own numbers (CIFAR/SVHN, WRN-28-10) are
printed beside ours; compare trends (orderings, gaps), not absolute values, unless the profile matches the paper."""


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
| `20_evaluate` | white-box suite, AutoAttack, sanity checks, FS Fig. 3 curves, FS supp. Fig. 1 loss curves | `runs/<profile>/eval/<method>/eval.json` |
| `30_tables_fs` | FS Tables 1-4, Sec. 5.3 black-box, supplement Tables 1-4, rebuttal tables | `figures/<profile>/tables/` |
| `40_figures_fs` | FS Fig. 3 (accuracy vs eps / iterations), supplement Fig. 1 (PGD loss, 20 starts) | `figures/<profile>/` |

A step is skipped when its `.done.json` records the same content hash (notebook, parameters, upstream steps,
package version); `--force`, `--only 'train/*'`, `--jobs N` and `--dry-run` (papermill commands) exist.

""" + PROFILE_NOTE,
        'profile = "quick"\nruns_dir = "runs/quick"\nfig_dir = "figures/quick"',
        [markdown("## The plan of this profile\nEvery step, its notebook, parameters and whether it is "
                           "up to date."),
         code("plan = steps.describe_plan(profile, runs_dir=str(Path(runs_dir).parent), "
              "fig_dir=str(Path(fig_dir).parent))\nplan"),
         code("steps.write_json(Path(runs_dir) / 'overview' / 'plan.json', plan.to_dict(orient='records'))")])


def train_nb():
    return notebook(
        """# 10 - Train one model

Trains one defense of the profile with `ot_robust.train.train` (checkpoints every epoch, resumes when rerun).
The methods are the papers' training objectives: Standard, Madry PGD-AT (FS Table 1 "Madry"), TRADES, ALP, MART,
random-targeted AT (FS rebuttal), Feature Scattering (FS Alg. 1, "Proposed"), and the GOT/OTJR defenses when present.

Outputs in `run_dir`: `config.json`, `checkpoint.pt`, `metrics.jsonl`, `model.pt`, `train_summary.json`.

""" + PROFILE_NOTE + """
The training settings of the papers (WRN-28-10, 100/200 epochs, batch 60/128, learning-rate schedules) are in the
`*-paper` profiles; `max_batches` stops a run early (one-batch check).""",
        '''profile = "quick"
experiment = "standard"
method = "standard"
method_params = "{}"        # JSON: keyword arguments of ot_robust.defenses.get_defense
dataset = "mnist-sample"
data_root = None
model = "small_cnn"
model_params = "{}"         # JSON: keyword arguments of ot_robust.models.get_model
train_params = "{}"         # JSON: TrainConfig fields (epochs, batch_size, lr, ...)
seed = 0
max_batches = None          # stop after this many batches (one-batch check)
run_dir = "runs/quick/train/standard"''',
        [code("summary = steps.run_train(profile=profile, experiment=experiment, method=method, "
              "method_params=method_params,\n"
              "                          dataset=dataset, data_root=data_root, model=model, model_params=model_params,\n"
              "                          train_params=train_params, seed=seed, max_batches=max_batches, "
              "run_dir=run_dir)\nsummary"),
         code("steps.plot_training(run_dir);")])


def evaluate_nb():
    return notebook(
        """# 20 - Evaluate one model

White-box robustness of one trained model with `ot_robust.evaluate.evaluate`: clean accuracy and the profile's
attack suite (FGSM, PGD-k and CW-k = CW margin loss inside PGD, as in FS Table 1), AutoAttack on a subset (a
column the papers did not have), gradient-masking sanity checks, and, when asked, the curves of FS Fig. 3
(accuracy vs epsilon at 20 steps; vs PGD iterations) and FS supplement Fig. 1 (PGD loss for 20 random starts),
and black-box transfer attacks from source models (FS Sec. 5.3). Writes `out_dir/eval.json` (accuracy in %),
`masks.npz` (per-example correctness of every column, for paired tests), `curves.json`, `loss_curves.json`.
Every attack runs on the first n images of one fixed class-balanced order; each accuracy carries its 95% Wilson
interval (`result['ci']`).

""" + PROFILE_NOTE,
        """profile = "quick"
experiment = "standard"
label = "Standard"
method = "standard"
run_dir = "runs/quick/train/standard"
out_dir = "runs/quick/eval/standard"
dataset = "mnist-sample"
data_root = None
# attacks: JSON {column: attack spec}, or "default": FGSM and PGD-20 at the dataset's eps (steps.default_attacks)
# autoattack: JSON {"spec", "n_examples"} or null
attacks = "default"

n_examples = 1000
batch_size = 250
sanity = True
autoattack = "null"
curves = "null"             # JSON {epsilons, steps, eps, step_size, n_examples} or null
loss_curves = "null"        # JSON {experiment, restarts, steps, eps, step_size, n_examples} or null
transfer_from = "{}"        # JSON: black-box source row label -> source run_dir
seed = 0
strong = "null"             # JSON {attacks: {column: spec}, n_examples} or null (e.g. PGD-100 on 1,000)""",
        [code("result = steps.run_evaluate(profile=profile, experiment=experiment, label=label, method=method,\n"
              "                            run_dir=run_dir, out_dir=out_dir, dataset=dataset, data_root=data_root,\n"
              "                            attacks=attacks, n_examples=n_examples, batch_size=batch_size, "
              "sanity=sanity,\n"
              "                            autoattack=autoattack, curves=curves, loss_curves=loss_curves,\n"
              "                            transfer_from=transfer_from, seed=seed, strong=strong)\n"
              "steps.accuracy_frame(result)"),
         markdown("Sanity checks (gradient masking): every check should read `pass`."),
         code("steps.sanity_frame(result)")])


def tables_fs_nb():
    return notebook(
        """# 30 - Feature Scattering tables (paper numbers beside ours)

Regenerates, as Markdown, CSV and LaTeX under `figures/<profile>/tables/`:
FS **Table 1** (CIFAR-10 white-box: Clean, FGSM, PGD10/20/40/100, CW10/20/40/100), **Table 2(a)/(b)** (SVHN,
CIFAR-100), **Table 3(a)** (perturbation: random / supervised / feature scattering) and **3(b)** (matching:
uniform / identity / OT), **Table 4** (Sinkhorn vs IPOT), the **Sec. 5.3 black-box table** (Undefended and Siamese
transfer sources), **supplement Tables 1-4** (stronger attacks, label smoothing, Sinkhorn tau, IPOT beta) and the
**rebuttal's** batch-size, label-smoothing and random-targeted tables. Paper numbers come from
`ot_robust/assets/paper_tables.yaml`; ours from `runs/<profile>/eval/*/eval.json`. Columns the papers did not have:
`AA` (AutoAttack), `worst` (worst case over our attacks) and `sanity` (gradient-masking checks).

""" + PROFILE_NOTE,
        """profile = "quick"
profile_file = ""            # the profile YAML (default: the shipped one)
profile_sha256 = ""          # content hash of the profile (so that editing it reruns this step)
runs_dir = "runs/quick"
fig_dir = "runs/quick/figures"  # by hand: a scratch folder; the pipeline passes figures/<profile>
tables = '["fs_table1"]'     # JSON list of table names (ot_robust.reports.TABLES)""",
        [code("written = steps.run_tables(profile=profile_file or profile, runs_dir=runs_dir, fig_dir=fig_dir, "
              "tables=tables)\nlist(written)"),
         code("steps.show_tables(written)")])


def figures_fs_nb():
    return notebook(
        """# 40 - Feature Scattering figures

Regenerates, as PNG and PDF under `figures/<profile>/`: FS **Fig. 3** (accuracy under PGD-20 vs the attack budget
epsilon, and vs the number of PGD iterations at the profile's epsilon; the paper plots Standard, Madry and
Proposed on CIFAR-10 with eps up to 20/255) and FS **supplement Fig. 1** (the PGD loss over iterations for 20
random starts on test examples, for the Feature Scattering model). Curves come from
`runs/<profile>/eval/*/curves.json` and `loss_curves.json` (written by `20_evaluate`).

""" + PROFILE_NOTE,
        """profile = "quick"
profile_file = ""
profile_sha256 = ""
runs_dir = "runs/quick"
fig_dir = "runs/quick/figures"  # by hand: a scratch folder; the pipeline passes figures/<profile>
figures = '["fs_fig3", "fs_supp_fig1"]'   # JSON list of figure names (ot_robust.reports.FIGURES)""",
        [code("written = steps.run_figures(profile=profile_file or profile, runs_dir=runs_dir, fig_dir=fig_dir, "
              "figures=figures)\nwritten"),
         code("steps.show_figures(written)")])


NOTEBOOKS = {"00_overview": overview, "10_train": train_nb, "20_evaluate": evaluate_nb,
             "30_tables_fs": tables_fs_nb, "40_figures_fs": figures_fs_nb}


if __name__ == "__main__":
    sys.exit(main(NOTEBOOKS, __file__, __doc__.split("\n\n")[0]))
