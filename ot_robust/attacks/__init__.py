"""Attacks: one iterative loop (:func:`perturb`), white-box attacks over it, torchattacks adapters (a separate install
step; see :mod:`.library`), AutoAttack "standard" with the reference settings, black-box attacks (Square, SimBA,
local search, RayS, transfer), and the spec-string parser :func:`make_attack`.

Images are ``(B, C, H, W)`` floats in [0, 1]; every eps / step is on that pixel scale. Every attack is called as
``attack(model, x, y) -> x_adv`` with ``||x_adv - x|| <= eps`` and ``x_adv`` in [0, 1].
"""

from .feature_scattering import FS_IPOT, feature_matching_distance, feature_scatter
from .blackbox import LocalSearch, SimBA, Transfer
from .feature_attack import FeatureAttack
from .library import APGD, APGDT, CWL2, FAB, SPSA, AutoAttack, DeepFool
from .loop import correct_mask, model_mode, perturb, project_, random_init, step_
from .losses import ce_loss, cw_margin_loss, margin
from .spec import ATTACKS, FAMILIES, AttackSpec, attack_family, attack_norm, make_attack, parse_spec
from .protocol import AttackProtocol, fast_path, restart_runs, with_default_seed
from .rays import RayS
from .square import Square
from .whitebox import CW, FGSM, MIM, PGD, random_targets

__all__ = ["perturb", "correct_mask", "AttackProtocol", "fast_path", "restart_runs", "with_default_seed", "project_",
           "random_init", "step_", "model_mode", "ce_loss", "cw_margin_loss",
           "margin",
           "PGD", "FGSM", "CW", "MIM", "random_targets", "APGD", "APGDT", "FAB", "Square", "SPSA", "CWL2",
           "DeepFool", "AutoAttack", "Transfer", "SimBA", "LocalSearch", "make_attack", "parse_spec", "ATTACKS",
           "FAMILIES", "AttackSpec", "attack_family", "attack_norm",
           "feature_scatter", "feature_matching_distance", "FS_IPOT", "RayS", "FeatureAttack"]
