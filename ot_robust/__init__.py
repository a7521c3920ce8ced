"""ot-robust: optimal transport for adversarial robustness.

A companion to Feature Scattering (Zhang & Wang, NeurIPS 2019), GOT (ICLR 2022 submission) and OTJR
(Le, Tariq & Woo): OT solvers (:mod:`ot_robust.ot`), models (:mod:`ot_robust.models`), attacks
(:mod:`ot_robust.attacks`), defenses (:mod:`ot_robust.defenses`), the trainer (:mod:`ot_robust.train`), the
robust-evaluation suite (:mod:`ot_robust.evaluate`) and the papermill pipeline (``python -m ot_robust``).

All images are float tensors in [0, 1], NCHW; every epsilon is on that [0, 1] pixel scale.
"""

__version__ = "0.1.0"

from .utils import get_device, set_seed  # noqa: E402,F401
