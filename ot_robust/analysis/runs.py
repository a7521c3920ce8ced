"""Finding the trained models and the threat model of a profile, for the analysis notebooks (43-47).

Trained runs live at ``runs/<profile>/train/<experiment>/`` (the pipeline's layout); ``runs/<profile>/<experiment>/``
is accepted too. The notebooks pass ``runs_dir`` either as the parent ``runs`` or as ``runs/<profile>`` (what the
pipeline passes to stand-alone notebooks); both resolve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from torch import nn

from ._common import default_eps


def find_run_dir(runs_dir: str | Path, profile: str, experiment: str) -> Path | None:
    """The first existing run directory of ``experiment`` (holding ``model.pt``), or ``None``."""
    r = Path(runs_dir)
    bases = [r / profile, r] if r.name != profile else [r]
    for base in bases:
        for cand in (base / "train" / experiment, base / experiment):
            if (cand / "model.pt").is_file():
                return cand
    return None


def load_trained_models(experiments: Sequence[str], runs_dir: str | Path, profile: str,
                        device=None, verbose: bool = True) -> dict[str, nn.Module]:
    """``{experiment: model}`` for every experiment whose run exists (``ot_robust.train.load_model``, eval mode).

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
        from ..profiles import load_profile

        return load_profile(profile).dataset
    except (ValueError, FileNotFoundError, ImportError):
        return default


def profile_eps(profile: str, dataset: str) -> float:
    """The Linf budget of ``profile``'s PGD evaluation (first Linf attack spec of ``eval.attacks`` with an eps);
    falls back to :func:`ot_robust.analysis.default_eps` for the dataset when the profile is unknown."""
    try:
        from ..attacks import make_attack
        from ..profiles import load_profile

        prof = load_profile(profile)
    except (ValueError, FileNotFoundError, ImportError):
        return default_eps(dataset)
    for spec in prof.eval.get("attacks", {}).values():
        atk = make_attack(spec)
        if getattr(atk, "norm", None) == "linf" and getattr(atk, "eps", None):
            return float(atk.eps)
    return default_eps(dataset)
