"""Training methods ("defenses"), one file per paper, registered by name (see :mod:`.base` for the interface).

``get_defense("feature_scattering", eps=8/255)``; ``DEFENSES`` maps names to classes. Every module of this package
is imported here, and each registers its names with ``@register_defense`` (a new defense file is added to the
imports below).
"""
from __future__ import annotations

from . import awp, got, otjr, sat  # noqa: F401  (register got_*, random_jr/optimal_jr/sw/otjr, sat*, awp*)
from .alp import ALP
from .base import DEFENSES, Defense, DefenseOutput, get_defense, register_defense
from .feature_scattering import FeatureScattering, smooth_labels, soft_cross_entropy
from .lbgat import LBGAT
from .mart import MART
from .pgd_at import PGDAT
from .random_targeted import RandomTargeted
from .standard import Standard
from .trades import TRADES

__all__ = ["Defense", "DefenseOutput", "DEFENSES", "get_defense", "register_defense", "Standard", "PGDAT", "TRADES",
           "ALP", "MART", "LBGAT", "RandomTargeted", "FeatureScattering", "smooth_labels", "soft_cross_entropy"]
