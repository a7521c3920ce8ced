"""ot-robust: optimal transport for adversarial robustness.

A companion to Feature Scattering (Zhang & Wang, NeurIPS 2019), GOT (ICLR 2022 submission) and OTJR
(Le, Tariq & Woo): OT solvers (:mod:`ot_robust.ot`), models (:mod:`ot_robust.models`), attacks
(:mod:`ot_robust.attacks`), defenses (:mod:`ot_robust.defenses`), training (:mod:`ot_robust.training`), the
robust-evaluation suite (:mod:`ot_robust.evaluation`) and the papermill study (:mod:`ot_robust.study`,
``python -m ot_robust``). The folders are the layers (docs/design.md): ``core`` < ``ot``, ``models`` < ``attacks`` <
``defenses`` < ``presets`` < ``training`` < ``evaluation`` < ``analysis`` < ``profiles`` < ``reports`` < ``study``.

``ot_robust.train``, ``ot_robust.evaluate`` and ``ot_robust.load_model`` are the three entry points (imported on
first use, so ``import ot_robust`` stays light).

All images are float tensors in [0, 1], NCHW; every epsilon is on that [0, 1] pixel scale.
"""

__version__ = "0.1.0"

from .core.utils import get_device, set_seed  # noqa: E402,F401

_API = {"train": ("training.api", "train"), "evaluate": ("evaluation.suite", "evaluate"),
        "load_model": ("models.loading", "load_model")}


def __getattr__(name: str):
    if name in _API:
        import importlib

        module, attr = _API[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'ot_robust' has no attribute {name!r}")
