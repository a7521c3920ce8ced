"""The model zoo: every trained model under ``results/`` by a stable name, with its evaluation, and the leaderboard.

Names are ``<dataset>/<experiment>``: the dataset the model was trained on (``config.json``, the profile's
``dataset``) and the profile's experiment key, whose ``_s<k>`` suffix is the training seed ``k`` (no suffix: the
profile's own seed, 0 in the study), e.g. ``"fashion-mnist/pgd_at"``, ``"fashion-mnist/pgd_at_s1"``,
``"mnist/got_pgd_lm_s2"``. Should two profiles under the same results folder ever hold the same experiment on the
same dataset, both are named ``<dataset>/<profile>/<experiment>`` instead.

* :func:`list_models` - one row per trained model: names, method, seed, clean / PGD-20 / AutoAttack accuracy with
  ``n`` and 95% Wilson intervals, sanity flags and a ``status`` (``ok``, or why the numbers are withheld).
* :func:`load` - a model by name, in eval mode (:func:`ot_robust.models.loading.load_model`).
* :func:`leaderboard` / :func:`write_leaderboard` - the ranked table and its Markdown / CSV / HTML files
  (``python -m ot_robust zoo``, :mod:`ot_robust.zoo.cli`).
"""

from .catalog import (COLUMNS, IN_TRAINING, RESULTS_DIR, RESULTS_ENV, STATUS_OK, list_models, model_names, resolve,
                      results_root)
from .leaderboard import leaderboard, write_leaderboard
from .loading import load

__all__ = ["COLUMNS", "IN_TRAINING", "RESULTS_DIR", "RESULTS_ENV", "STATUS_OK", "leaderboard", "list_models", "load",
           "model_names", "resolve", "results_root", "write_leaderboard"]
