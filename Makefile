# ot-robust: the README's two commands.
#   make reproduce   the main job: build .venv if needed, then run the reproduction pipeline (default profile: quick;
#                    PROFILE=..., JOBS=..., EXECUTOR=slurm submits every step as a SLURM job: docs/cluster.md)
#   make test        build .venv if needed, then run the whole test suite (what CI runs) in TEST_WORKERS=2 pytest-xdist
#                    workers
# Both create or reuse .venv; it is rebuilt when pyproject.toml changes.

PYTHON   ?= $(shell command -v python3.11 || command -v python3)
VENV     ?= .venv
PROFILE  ?= quick
JOBS     ?= 2
TEST_WORKERS ?= 2
EXECUTOR ?= local
PY        = $(VENV)/bin/python
STAMP     = $(VENV)/.installed
TORCHATTACKS = $(shell sed -n 's/^no_deps = \["\(torchattacks==[^"]*\)"\]/\1/p' pyproject.toml)

BUDGET   ?= 150m

.PHONY: reproduce reproduce-dry study study-sync notebooks notebook-outputs test lab venv clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version.split()[0]}"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# everything: the library (`pip install .`) plus the extras notebooks (papermill, Jupyter), dev (pytest, nbval)
	# and slurm (submitit), for both commands
	$(PY) -m pip install --quiet -e ".[notebooks,dev,slurm]"
	# torchattacks cannot be an extra: it pins requests~=2.25.1 (conflicts with jupyterlab) and never imports it, so
	# it is installed without deps (APGD/FAB alone, SPSA, C&W-L2, DeepFool; Square and AutoAttack do not need it).
	$(PY) -m pip install --quiet --no-deps "$(TORCHATTACKS)"
	touch $(STAMP)

reproduce: $(STAMP)
	$(PY) -m ot_robust reproduce --profile $(PROFILE) --jobs $(JOBS) --executor $(EXECUTOR) $(ARGS)

# the CPU-scale study (issue 14), one chunk: stops cleanly when BUDGET is spent; run again to continue
study: $(STAMP)
	$(PY) -m ot_robust reproduce --profile study --budget $(BUDGET) --jobs $(JOBS) $(ARGS)
	$(MAKE) --no-print-directory study-sync

# after any study chunk (also one run on study-fashion or study-mnist alone): rebuild the verdict table from the
# results, copy it into the README, re-execute the notebooks committed with outputs; then commit all of it
# (tests/test_readme_claims.py and tests/test_notebook_outputs.py fail on a table left behind its results)
study-sync: $(STAMP)
	$(PY) -m ot_robust reproduce --profile study --only claims --jobs 1
	$(PY) scripts/sync_readme_claims.py
	$(PY) scripts/execute_notebooks.py --checked

reproduce-dry: $(STAMP)
	$(PY) -m ot_robust reproduce --profile $(PROFILE) --dry-run $(ARGS)

# regenerate the numbered notebooks from their generators (tests/test_notebooks.py checks they are up to date)
notebooks: $(STAMP)
	for g in scripts/make_notebook*.py; do $(PY) $$g || exit 1; done

# re-execute the notebooks committed with outputs (tables, figures, claims) from the committed results: run after a
# study chunk or after `make notebooks` changed one of them (tests/test_notebook_outputs.py checks them with nbval)
notebook-outputs: $(STAMP)
	$(PY) scripts/execute_notebooks.py

# --durations: CI prints its slowest tests, to keep the suite within its 30 minutes on 2 cores
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

lab: $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ot-robust)"
	# JupyterLab default for this venv: no autosave; the server refuses to save over a committed notebook (Save As
	# works): running a notebook in Lab leaves every tracked file unchanged (scripts/jupyter_server_config.py)
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp scripts/lab_overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	$(VENV)/bin/jupyter lab notebooks/ --config scripts/jupyter_server_config.py $(if $(filter 0,$(shell id -u)),--allow-root) $(ARGS)

# one-command GPU run (issue 34; scripts/gpu_run.py, docs/gpu.md): FS and PGD-AT on PreAct ResNet-18, JPEG CIFAR-10,
# trained and evaluated within --budget-min (default 8 min), continuing from results/gpu/. ARGS go to the script,
# e.g. make gpu-run ARGS="--official-fs ../FeatureScatter". On an offline machine whose Python already has the
# project's dependencies: make gpu-run GPU_PY=python3 (no .venv build).
GPU_PY ?= $(PY)
.PHONY: gpu-run
gpu-run: $(if $(filter $(PY),$(GPU_PY)),$(STAMP))
	$(GPU_PY) scripts/gpu_run.py $(ARGS)

clean-venv:
	rm -rf $(VENV)
