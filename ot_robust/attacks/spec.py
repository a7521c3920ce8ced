"""Attack spec strings -> attack objects: ``make_attack("pgd-linf eps=8/255 steps=20 step=2/255 restarts=5")``;
:class:`AttackSpec` is a spec parsed once (name, keys, family, threat model), accepted wherever a string is.

Grammar: ``NAME key=value key=value ...``; numbers accept fractions (``8/255``) and ``inf``; booleans
``true/false/1/0/yes/no``; ``targeted`` also accepts ``random``. Every budget is on the [0, 1] pixel scale.
``ATTACKS`` lists the names and ``ATTACKS[name].keys`` the keys each accepts; anything else raises ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..core.utils import parse_number
from . import blackbox, feature_attack, library, rays, square, whitebox

_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _num(v: str) -> float:
    return parse_number(v)


def _int(v: str) -> int:
    f = parse_number(v)
    if f != int(f):
        raise ValueError(f"{v!r} is not an integer")
    return int(f)


def _bool(v: str) -> bool:
    if v.lower() not in _BOOL:
        raise ValueError(f"{v!r} is not a boolean (allowed: {sorted(_BOOL)})")
    return _BOOL[v.lower()]


def _target(v: str):
    return "random" if v.lower() == "random" else _bool(v)


def _str(v: str) -> str:
    return v


@dataclass(frozen=True)
class Entry:
    """One attack name: its factory and the accepted keys ``{spec key: (constructor argument, parser)}``."""

    factory: Callable[..., Any]
    keys: dict
    fixed: dict


_PGD_KEYS = {"eps": ("eps", _num), "steps": ("steps", _int), "step": ("step_size", _num),
             "restarts": ("restarts", _int), "loss": ("loss", _str), "kappa": ("kappa", _num),
             "targeted": ("targeted", _target), "seed": ("seed", _int), "rs": ("random_start", _bool),
             "random_start": ("random_start", _bool), "keep_best": ("keep_best", _bool)}
_COMMON = {"eps": ("eps", _num), "norm": ("norm", _str), "seed": ("seed", _int)}


def _sub(keys: dict, drop=()) -> dict:
    return {k: v for k, v in keys.items() if k not in drop}


ATTACKS: dict[str, Entry] = {
    "fgsm": Entry(whitebox.FGSM, {**_COMMON, "step": ("step_size", _num), "loss": ("loss", _str),
                                  "targeted": ("targeted", _target)}, {}),
    "pgd-linf": Entry(whitebox.PGD, _PGD_KEYS, {"norm": "linf"}),
    "pgd-l2": Entry(whitebox.PGD, _PGD_KEYS, {"norm": "l2"}),
    "cw-linf": Entry(whitebox.CW, _sub(_PGD_KEYS, ["loss"]), {"norm": "linf"}),
    "mim": Entry(whitebox.MIM, {**_sub(_PGD_KEYS, ["loss", "rs", "random_start"]), "norm": ("norm", _str),
                                "decay": ("momentum", _num)}, {}),
    "apgd-ce": Entry(library.APGD, {**_COMMON, "steps": ("steps", _int), "restarts": ("restarts", _int)},
                     {"loss": "ce"}),
    "apgd-dlr": Entry(library.APGD, {**_COMMON, "steps": ("steps", _int), "restarts": ("restarts", _int)},
                      {"loss": "dlr"}),
    "apgd-t": Entry(library.APGDT, {**_COMMON, "steps": ("steps", _int), "restarts": ("restarts", _int),
                                    "targets": ("n_targets", _int)}, {}),
    "fab": Entry(library.FAB, {**_COMMON, "steps": ("steps", _int), "restarts": ("restarts", _int),
                               "targeted": ("targeted", _bool), "targets": ("n_targets", _int)}, {}),
    "square": Entry(square.Square, {**_COMMON, "queries": ("queries", _int), "restarts": ("restarts", _int),
                                    "p_init": ("p_init", _num), "rescale": ("rescale_schedule", _bool)}, {}),
    "spsa": Entry(library.SPSA, {**_COMMON, "steps": ("steps", _int), "samples": ("samples", _int),
                                 "delta": ("delta", _num), "lr": ("lr", _num), "max_batch": ("max_batch", _int)}, {}),
    "cw-l2": Entry(library.CWL2, {"eps": ("eps", _num), "c": ("c", _num), "kappa": ("kappa", _num),
                                  "steps": ("steps", _int), "lr": ("lr", _num)}, {}),
    "deepfool": Entry(library.DeepFool, {"eps": ("eps", _num), "steps": ("steps", _int),
                                         "overshoot": ("overshoot", _num)}, {}),
    "autoattack": Entry(library.AutoAttack, {**_COMMON, "steps": ("apgd_steps", _int),
                                             "fab_steps": ("fab_steps", _int), "targets": ("n_targets", _int),
                                             "queries": ("queries", _int)}, {}),
    "simba": Entry(blackbox.SimBA, {**_COMMON, "iters": ("iters", _int), "basis": ("basis", _str),
                                    "step": ("step", _num), "freq": ("freq", _int)}, {}),
    "localsearch": Entry(blackbox.LocalSearch, {"eps": ("eps", _num), "seed": ("seed", _int),
                                                "rounds": ("rounds", _int), "top": ("top", _int),
                                                "radius": ("radius", _int), "candidates": ("candidates", _int),
                                                "init_frac": ("init_frac", _num)}, {}),
    "rays": Entry(rays.RayS, {"eps": ("eps", _num), "queries": ("queries", _int), "seed": ("seed", _int)}, {}),
    "feature-attack": Entry(feature_attack.FeatureAttack, {"eps": ("eps", _num), "steps": ("steps", _int),
                                                           "step": ("step_size", _num),
                                                           "targets": ("n_targets", _int),
                                                           "seed": ("seed", _int)}, {}),
}
ALIASES = {"pgd": "pgd-linf", "cw": "cw-linf", "aa": "autoattack", "local-search": "localsearch",
           "apgd": "apgd-ce", "fab-t": "fab", "c&w-l2": "cw-l2"}
TRANSFER_INNER = ("pgd-linf", "pgd-l2", "cw-linf", "fgsm", "mim")
#: what an attack may use of the model, the families of the masking audit: a defense that masks gradients
#: falls to the families that do not follow its gradient (Athalye et al. 2018; Carlini et al. 2019, Sec. 4)
FAMILIES = ("white-box", "feature-space", "transfer", "score-based", "hard-label")
_FAMILY = {"feature-attack": "feature-space", "transfer": "transfer", "square": "score-based",
           "spsa": "score-based", "simba": "score-based", "localsearch": "score-based", "rays": "hard-label"}


@dataclass(frozen=True)
class AttackSpec:
    """An attack spec string parsed once: ``AttackSpec.parse("pgd-linf eps=8/255 steps=20")``.

    ``text`` is the string as given (what tables and ``eval.json`` record), ``name`` the canonical attack name
    (aliases resolved: ``pgd`` -> ``pgd-linf``), ``raw`` the ``key=value`` pairs as strings, in order. Every key and
    value is checked when parsed (a transfer spec's keys when it is built); :meth:`build` makes the attack object,
    :meth:`value` reads one typed value (``eps`` on the [0, 1] pixel scale), :attr:`family` and :attr:`norm` classify
    it without building it. A parsed spec is accepted wherever a spec string is (``make_attack``, ``evaluate``).
    """

    text: str
    name: str
    raw: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, spec: "str | AttackSpec") -> "AttackSpec":
        """Parse ``"name k=v k=v"`` (an :class:`AttackSpec` is returned as it is).

        Raises:
            ValueError: empty spec, a token without ``=``, a repeated key, an unknown attack name, a key the attack
                does not take or a value its parser refuses (the message names the spec and the allowed keys).
        """
        if isinstance(spec, AttackSpec):
            return spec
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"attack spec must be a non-empty string like 'pgd-linf eps=8/255 steps=20', got {spec!r}")
        name, *tokens = spec.split()
        name = ALIASES.get(name.lower(), name.lower())
        if name not in ATTACKS and name != "transfer":
            raise ValueError(f"unknown attack {name!r} in spec {spec!r}; valid names: "
                             f"{sorted(ATTACKS) + ['transfer']} (aliases: {ALIASES})")
        raw: dict[str, str] = {}
        for tok in tokens:
            if "=" not in tok:
                raise ValueError(f"bad token {tok!r} in spec {spec!r}: expected key=value")
            k, v = tok.split("=", 1)
            if k in raw:
                raise ValueError(f"key {k!r} given twice in spec {spec!r}")
            raw[k] = v
        parsed = cls(spec, name, tuple(raw.items()))
        if name != "transfer":
            _kwargs(name, raw, spec)
        return parsed

    def __str__(self) -> str:
        return self.text

    @property
    def params(self) -> dict[str, str]:
        """The ``key=value`` pairs as strings."""
        return dict(self.raw)

    @property
    def family(self) -> str:
        """One of :data:`FAMILIES`: ``white-box`` (the model's input gradient: FGSM, PGD, CW, MIM, APGD, FAB,
        AutoAttack, ...), ``feature-space`` (FeatureAttack), ``transfer`` (crafted on another model), ``score-based``
        (scores only: Square, SPSA, SimBA, local search), ``hard-label`` (top-1 decisions only: RayS)."""
        return _FAMILY.get(self.name, "white-box")

    @property
    def norm(self) -> str:
        """The threat model, ``linf`` or ``l2``; a transfer spec gives its ``via`` attack's without loading the
        source model. Raises ValueError as :meth:`build`."""
        if self.name == "transfer":
            return "l2" if self._via().endswith("l2") else "linf"
        return getattr(self.build(), "norm", "linf")

    def value(self, key: str, default: Any = None) -> Any:
        """The typed value of ``key`` (``eps`` -> float on the [0, 1] scale, ``steps`` -> int, ...), ``default``
        when the spec does not set it. Raises ValueError for a key the attack does not take."""
        name = self._via() if self.name == "transfer" else self.name
        keys = ATTACKS[name].keys
        if key not in keys:
            raise ValueError(f"attack {name!r} takes no key {key!r}; allowed keys: {sorted(keys)}")
        v = self.params.get(key)
        return default if v is None else keys[key][1](v)

    def _via(self) -> str:
        """A transfer spec's inner attack name (``via``, aliases resolved). Raises ValueError outside
        ``TRANSFER_INNER``."""
        via = self.params.get("via", "pgd-linf")
        via = ALIASES.get(via, via)
        if via not in TRANSFER_INNER:
            raise ValueError(f"via={via!r} in spec {self.text!r}; allowed: {TRANSFER_INNER}")
        return via

    def build(self, source=None):
        """The attack object (see :func:`make_attack`, which this is). Raises ValueError as it."""
        if self.name != "transfer":
            return _build(self.name, self.params, self.text)
        via, raw = self._via(), self.params
        raw.pop("via", None)
        path = raw.pop("source", None)
        if source is None:
            if path is None:
                raise ValueError(f"spec {self.text!r}: transfer needs source=RUN_DIR (or make_attack(spec, "
                                 "source=model))")
            from ..models.loading import load_model

            source = load_model(path)
        return blackbox.Transfer(source, _build(via, raw, self.text))


def parse_spec(spec: "str | AttackSpec") -> tuple[str, dict[str, str]]:
    """Split ``"name k=v k=v"`` into the canonical name and the raw ``{key: value}`` strings
    (:meth:`AttackSpec.parse`). Raises ValueError as it."""
    s = AttackSpec.parse(spec)
    return s.name, s.params


def attack_family(spec: "str | AttackSpec") -> str:
    """The family (one of :data:`FAMILIES`) of the attack a spec names (:attr:`AttackSpec.family`). Raises
    ValueError as :meth:`AttackSpec.parse`."""
    return AttackSpec.parse(spec).family


def attack_norm(spec: "str | AttackSpec") -> str:
    """The threat model (``linf`` or ``l2``) of the attack a spec names (:attr:`AttackSpec.norm`). Raises
    ValueError as :func:`make_attack`."""
    return AttackSpec.parse(spec).norm


def _kwargs(name: str, raw: dict[str, str], spec: str) -> dict[str, Any]:
    """The constructor arguments of attack ``name`` from its raw ``{key: value}`` strings."""
    entry = ATTACKS[name]
    kwargs = dict(entry.fixed)
    for k, v in raw.items():
        if k not in entry.keys:
            raise ValueError(f"unknown key {k!r} for attack {name!r} in spec {spec!r}; "
                             f"allowed keys: {sorted(entry.keys)}")
        arg, parse = entry.keys[k]
        try:
            kwargs[arg] = parse(v)
        except ValueError as e:
            raise ValueError(f"bad value for {k!r} in spec {spec!r}: {e}") from None
    return kwargs


def _build(name: str, raw: dict[str, str], spec: str):
    entry = ATTACKS[name]
    try:
        return entry.factory(**_kwargs(name, raw, spec))
    except TypeError as e:  # a required argument (eps) is missing
        raise ValueError(f"spec {spec!r}: {e}; allowed keys: {sorted(entry.keys)}") from None
    except library.MissingDependencyError as e:  # torchattacks not installed: name the spec, keep the one line
        raise library.MissingDependencyError(f"spec {spec!r}: {e}") from None
    except ValueError as e:
        raise ValueError(f"spec {spec!r}: {e}") from None


def make_attack(spec: "str | AttackSpec", source=None):
    """Build an attack object from a spec string or a parsed :class:`AttackSpec` (see module docstring and
    ``ATTACKS``).

    ``transfer source=RUN_DIR via=pgd-linf eps=... steps=...`` builds a :class:`~ot_robust.attacks.blackbox.Transfer`
    whose inner attack (``via``, one of ``TRANSFER_INNER``) takes the remaining keys; the source model is ``source``
    (an ``nn.Module``) or loaded from ``RUN_DIR`` with ``ot_robust.models.loading.load_model``.

    Raises:
        ValueError: unknown name or key, unparsable value, invalid setting (negative eps, a single Linf step larger
            than eps, ...), or a transfer spec without a source.
    """
    return AttackSpec.parse(spec).build(source)
