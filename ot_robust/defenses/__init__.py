"""Training methods ("defenses"), one file per paper, registered by name (see :mod:`.base` for the interface).

``get_defense("feature_scattering", eps=8/255)``; ``DEFENSES`` maps names to classes. Every module of this package
is imported on first use of the registry, so a new defense file registers itself with ``@register_defense``.
"""
from __future__ import annotations

import importlib
import pkgutil

from .alp import ALP
from .base import DEFENSES, Defense, DefenseOutput, get_defense, register_defense
from .feature_scattering import FeatureScattering, smooth_labels, soft_cross_entropy
from .mart import MART
from .pgd_at import PGDAT
from .random_targeted import RandomTargeted
from .standard import Standard
from .trades import TRADES

_LOADED = False


def _load_all() -> None:
    """Import every module of the package once (other helpers' defenses, e.g. GOT and OTJR, register on import)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


__all__ = ["Defense", "DefenseOutput", "DEFENSES", "get_defense", "register_defense", "Standard", "PGDAT", "TRADES",
           "ALP", "MART", "RandomTargeted", "FeatureScattering", "smooth_labels", "soft_cross_entropy"]
