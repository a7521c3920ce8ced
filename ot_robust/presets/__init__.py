"""Named paper configurations of all three papers, one lookup: ``get_preset(name)`` -> TrainConfig fields.

Used by ``TrainConfig(preset=...)`` / ``TrainConfig.from_dict``, ``python -m ot_robust train --preset NAME`` and a
profile method's ``preset:`` key (:mod:`ot_robust.profiles`). One module per paper, each with its sources and the
choices made where the paper is unclear:

* :mod:`.fs` - Feature Scattering (Zhang & Wang 2019) and its baselines: ``fs-cifar10-wrn28-10``, ``madry-...``,
  ``standard-...``, ``random-targeted-...`` for cifar10 / cifar100 / svhn.
* :mod:`.got` - GOT App. A.3: ``got-<pgd|trades>-<s|lm>-<dataset>-<model>`` for mnist / cifar10 / cifar100 / svhn
  (and :func:`.got.got_preset`, the same settings by dataset and variant).
* :mod:`.otjr` - OTJR Sec. 4.1: ``<method>-<dataset>-<model>`` for otjr, sw, sat, sat_jr, random_jr, optimal_jr,
  pgd_at, awp_trades, awp_otjr on cifar10 / cifar100 (WRN-34-10) and the CPU-scale ``...-mnist-small_cnn``.

A preset is a dict of :class:`~ot_robust.training.config.TrainConfig` fields (``dataset``, ``model``, ``method``,
``method_params``, optimiser, schedule, epochs, batch size).
"""

from __future__ import annotations

import copy

from . import fs, got, otjr


def _merge() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for module in (fs, got, otjr):
        clash = sorted(set(out) & set(module.PRESETS))
        if clash:  # pragma: no cover - a programming error caught by the tests
            raise RuntimeError(f"preset names {clash} defined twice")
        out.update(module.PRESETS)
    return out


#: every preset of the three papers, by name
PRESETS: dict[str, dict] = _merge()


#: the fields of a preset that are mappings: a setting on top of a preset overrides them key by key
NESTED = ("method_params", "model_params")


def over_preset(base: dict, given: dict, nested: tuple[str, ...] = NESTED) -> dict:
    """``given`` on top of ``base`` (a preset or its profile form): every key of ``given`` wins, the ``nested``
    mappings are merged key by key (``given``'s keys win). The one rule by which a preset is overridden, used by
    ``TrainConfig(preset=...)``, ``TrainConfig.from_dict`` and a profile's ``preset:`` entries."""
    out = {**base, **given}
    for k in nested:
        if k in base or k in given:
            out[k] = {**(base.get(k) or {}), **(given.get(k) or {})}
    return out


def list_presets() -> list[str]:
    """The preset names (sorted)."""
    return sorted(PRESETS)


def get_preset(name: str) -> dict:
    """A deep copy of preset ``name`` (TrainConfig fields).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid names: {list_presets()}")
    return copy.deepcopy(PRESETS[name])
