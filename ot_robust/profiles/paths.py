"""Where everything of a profile lives (:class:`RunLayout`), and finding its trained models and threat model.

One layout for every path under ``runs/`` and ``figures/`` (the pipeline builds its steps from it)::

    <runs_dir>/<profile>/train/<exp>/      config.json, metrics.jsonl, checkpoint.pt, model.pt
    <runs_dir>/<profile>/eval/<exp>/       eval.json, masks.npz, curves.json (+ partial/ while it runs)
    <runs_dir>/<profile>/audit/<group>/<exp>/  eval.json, masks.npz of one group of the masking audit
    <runs_dir>/<profile>/notebooks/        the executed notebooks
    <runs_dir>/<profile>/<kind>/<name>/    .done.json of the table / figure / analysis / claims steps
    <fig_dir>/<profile>/                   figures;  <fig_dir>/<profile>/tables/  tables

A notebook may be given ``runs_dir`` as the parent (``runs``) or as ``runs/<profile>`` (what the pipeline passes
to stand-alone notebooks): :meth:`RunLayout.resolve` accepts both, and :meth:`RunLayout.at` is the layout of a given
``runs/<profile>`` folder. Trained runs at ``runs/<profile>/<exp>/`` (no ``train/``) are found too.

The folder and file names come from their owners: a training run's from :mod:`ot_robust.core.run_files`, an
evaluation's and an audit's from :mod:`ot_robust.evaluation.results`, the steps' :data:`DONE_FILE` from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from torch import nn

from ..core.run_files import MODEL_FILE, TRAIN_DIR
from ..evaluation.results import AUDIT_DIR, EVAL_DIR

#: the record of a finished step of the pipeline, in the step's folder (:func:`ot_robust.study.pipeline.is_done`)
DONE_FILE = ".done.json"


@dataclass(frozen=True)
class RunLayout:
    """The paths of one profile's runs and figures (posix strings, as the pipeline's step parameters hold them)."""

    runs_dir: str = "runs"
    profile: str = "quick"
    fig_dir: str = "figures"

    @classmethod
    def at(cls, root: str | Path, fig_dir: str = "figures") -> "RunLayout":
        """The layout whose :attr:`root` is ``root``, a ``<runs_dir>/<profile>`` folder."""
        root = Path(root)
        return cls(str(root.parent), root.name, fig_dir)

    @property
    def root(self) -> str:
        """``<runs_dir>/<profile>``."""
        return f"{Path(self.runs_dir).as_posix().rstrip('/')}/{self.profile}"

    @property
    def figures(self) -> str:
        """``<fig_dir>/<profile>``."""
        return f"{Path(self.fig_dir).as_posix().rstrip('/')}/{self.profile}"

    @property
    def tables(self) -> str:
        return f"{self.figures}/tables"

    @property
    def notebooks(self) -> str:
        return f"{self.root}/notebooks"

    def train(self, experiment: str) -> str:
        return f"{self.root}/{TRAIN_DIR}/{experiment}"

    def eval(self, experiment: str) -> str:
        return f"{self.root}/{EVAL_DIR}/{experiment}"

    def audit(self, group: str, experiment: str) -> str:
        """One group of the masking audit of one model (RayS, FeatureAttack, the authors' own checks, ...):
        ``<root>/audit/<group>/<exp>``."""
        return f"{self.root}/{AUDIT_DIR}/{group}/{experiment}"

    def step(self, kind: str, name: str = "") -> str:
        """The ``.done.json`` folder of a table / figure / analysis / claims step: ``<root>/<kind>[/<name>]``."""
        return f"{self.root}/{kind}/{name}" if name else f"{self.root}/{kind}"

    @staticmethod
    def resolve(runs_dir: str | Path, profile: str) -> Path:
        """The profile's run folder from either convention: ``runs_dir`` itself if it holds ``eval/`` or ``train/``
        (it is ``runs/<profile>``), else ``runs_dir/<profile>``."""
        r = Path(runs_dir)
        if r.name == profile or (r / EVAL_DIR).is_dir() or (r / TRAIN_DIR).is_dir():
            return r
        return r / profile


def find_run_dir(runs_dir: str | Path, profile: str, experiment: str) -> Path | None:
    """The first existing run directory of ``experiment`` (holding ``model.pt``), or ``None``."""
    r = Path(runs_dir)
    bases = [r / profile, r] if r.name != profile else [r]
    for base in bases:
        for cand in (base / TRAIN_DIR / experiment, base / experiment):
            if (cand / MODEL_FILE).is_file():
                return cand
    return None


def load_trained_models(experiments: Sequence[str], runs_dir: str | Path, profile: str,
                        device=None, verbose: bool = True) -> dict[str, nn.Module]:
    """``{experiment: model}`` for every experiment whose run exists (``ot_robust.training.api.load_model``, eval mode).

    A missing run is skipped with a printed note naming where it was looked for (the notebook then renders the
    figures for the models that exist).
    """
    from ..models.loading import load_model

    models = {}
    for exp in experiments:
        run = find_run_dir(runs_dir, profile, exp)
        if run is None:
            if verbose:
                print(f"skipping {exp!r}: no trained model (model.pt) under {Path(runs_dir)} for profile {profile!r}; "
                      f"train it with `python -m ot_robust reproduce --profile {profile} --only 'train/{exp}'`")
            continue
        models[exp] = load_model(run, device=device)
    return models


def profile_dataset(profile: str, default: str = "mnist-sample") -> str:
    """The dataset of ``profile`` (its test split is what the analyses use), ``default`` if the profile is unknown."""
    try:
        from . import load_profile

        return load_profile(profile).dataset
    except (ValueError, FileNotFoundError, ImportError):
        return default


def profile_labels(profile: str) -> dict[str, str]:
    """``{experiment: the paper's name}`` (the profile's ``label`` of each method), for figure legends; ``{}`` if
    the profile is unknown."""
    try:
        from . import load_profile

        prof = load_profile(profile)
    except (ValueError, FileNotFoundError, ImportError):
        return {}
    return {e: prof.label(e) for e in prof.methods}


def profile_eps(profile: str, dataset: str) -> float:
    """The Linf budget of ``profile``'s PGD evaluation (first Linf attack spec of ``eval.attacks`` with an eps);
    falls back to the dataset's default (:func:`ot_robust.core.data.default_attack`) when the profile is unknown."""
    from ..core.data import default_attack

    try:
        from . import load_profile

        prof = load_profile(profile)
    except (ValueError, FileNotFoundError, ImportError):
        return default_attack(dataset)[0]
    for column in prof.eval.get("attacks", {}):
        spec = prof.attack(column)
        if spec.norm == "linf" and spec.value("eps"):
            return float(spec.value("eps"))
    return default_attack(dataset)[0]
