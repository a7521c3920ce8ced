"""Reproduction profiles: what ``python -m ot_robust reproduce --profile NAME`` trains, evaluates and renders.

A profile is a YAML file in this folder (or any path ending in ``.yaml``). Schema (unknown keys are errors)::

    name: quick                      # must equal the file stem
    description: one line
    dataset: mnist-sample            # a name accepted by ot_robust.core.data.get_dataset
    data_root: null                  # optional; null = $OT_ROBUST_DATA or ./data
    model: small_cnn                 # a name accepted by ot_robust.models.get_model
    model_params: {}                 # extra keyword arguments of get_model
    seed: 0
    defaults: {epochs: 2, ...}       # TrainConfig fields shared by every method
    methods:                         # one trained model per entry (the key is the experiment name)
      pgd_at:
        method: pgd_at               # a defense registered in ot_robust.defenses
        preset: madry-cifar10-wrn28-10   # or a named paper configuration (ot_robust.presets): it gives method,
                                     # params and train settings; the entry's own keys win key by key
        label: Madry                 # display name (optional; default: the key)
        params: {eps: 0.3, ...}      # keyword arguments of get_defense
        train: {epochs: 3}           # TrainConfig overrides for this method (optional)
        seed: 1                      # optional, overrides the profile seed
        tables: {fs_table1: Madry}   # table name -> paper row this model stands for (optional)
        curves: true                 # compute the accuracy-vs-epsilon/steps curves (FS Fig. 3)
        transfer_from: {}            # black-box rows: paper row label -> source experiment
    eval:
      n_examples: 1000               # test examples per attack
      batch_size: 250
      attacks: {fgsm: "fgsm eps=0.3", pgd20: "pgd-linf eps=0.3 steps=20 step=0.0375"}   # column key -> spec
      strong: {n_examples: 1000, attacks: {pgd100: "pgd-linf eps=0.3 steps=100 step=0.0075"}}  # or null:
                                     # costly attacks on the first n of the same images (AutoAttack's n)
      autoattack: {spec: "autoattack eps=0.3", n_examples: 100}                          # or null
      curves: {epsilons: [...], steps: [...], eps: 0.3, n_examples: 200}                 # FS Fig. 3
      loss_curves: {experiment: feature_scattering, restarts: 20, steps: 40, n_examples: 4}  # FS supp. Fig. 1
    tables: [fs_table1, ...]         # names in ot_robust.reports.TABLES
    figures: [fs_fig3, ...]          # names in ot_robust.reports.FIGURES
    notebooks: [00_overview, 01_ot_solvers]   # stand-alone notebooks run with (profile, fig_dir)
    analysis:                        # analysis figure notebooks (43-47) -> their papermill parameters
      43_figures_tsne: {models: [standard, feature_scattering], n_examples: 150}
    audit:                           # optional: the masking audit (RayS, FeatureAttack, the authors' checks, GOT's
      masking: {experiments: [pgd_at], n_examples: 500, attacks: {rays: "rays eps=0.3 queries=2000"}}
                                     # protocol): steps audit/<exp>; schema in ot_robust/profiles/audit_schema.py
    slurm:                           # optional: SLURM resources of the steps (--executor slurm,
                                     # ot_robust/study/slurm.py)
      "train/*": {gpus: 1, time: 24h}   # step-name glob or notebook stem -> gpus, cpus, mem, time, partition, ...
                                     # (a method's own `slurm:` mapping sets its training step's resources)

Attack column keys follow the papers' tables (``clean`` is always measured): fgsm, pgd10, pgd20, pgd40, pgd100,
cw10, cw20, cw40, cw100, ... Every epsilon is on the [0, 1] pixel scale.

Raises:
    ProfileError (a ValueError) naming the file, the key path and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..core.validation import check_keys

PROFILE_DIR = Path(__file__).resolve().parent
DEFAULT_PROFILE = "quick"

TOP_KEYS = {"name": str, "description": str, "dataset": str, "data_root": (str, type(None)), "model": str,
            "model_params": dict, "seed": int, "defaults": dict, "methods": dict, "eval": dict, "tables": list,
            "figures": list, "notebooks": list, "analysis": dict, "runs_dir": str, "slurm": dict, "audit": dict}
#: a meta profile (``study``) runs other profiles in order under one budget, then the claims-verdict notebook
META_KEYS = {"name": str, "description": str, "include": list, "runs_dir": str, "claims": bool}
REQUIRED_TOP = ("name", "description", "dataset", "model", "methods", "eval")
METHOD_KEYS = {"method": str, "preset": str, "label": str, "params": dict, "train": dict, "seed": int, "tables": dict,
               "curves": bool, "transfer_from": dict, "autoattack": bool, "slurm": dict}
#: preset fields that a profile takes from the profile itself (checked equal), not from the preset
_PRESET_PROFILE_FIELDS = ("dataset", "model")
EVAL_KEYS = {"n_examples": int, "batch_size": int, "attacks": dict, "strong": (dict, type(None)),
             "autoattack": (dict, type(None)),
             "curves": (dict, type(None)), "loss_curves": (dict, type(None)), "sanity": bool}
AUTOATTACK_KEYS = {"spec": str, "n_examples": int}
STRONG_KEYS = {"attacks": dict, "n_examples": int}
CURVE_KEYS = {"epsilons": list, "steps": list, "eps": (int, float, str), "step_size": (int, float, str, type(None)),
              "n_examples": int}
LOSS_CURVE_KEYS = {"experiment": str, "restarts": int, "steps": int, "n_examples": int, "eps": (int, float, str),
                   "step_size": (int, float, str)}
NOTEBOOKS = ("00_overview", "01_ot_solvers")
#: the notebook that renders each paper's tables / figures (names ``<paper>_...`` go to it)
TABLE_NOTEBOOKS = {"fs": "30_tables_fs", "got": "31_tables_got", "otjr": "32_tables_otjr"}
FIGURE_NOTEBOOKS = {"fs": "40_figures_fs", "got": "41_figures_got", "otjr": "42_figures_otjr"}
#: analysis notebooks: each takes ``models`` (experiment names of this profile) and its own parameters
ANALYSIS_NOTEBOOKS = ("43_figures_tsne", "44_figures_landscape", "45_figures_activations",
                      "46_figures_decision_cells", "47_figures_toy")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


class ProfileError(ValueError):
    """A profile file that does not follow the schema (the message names the file and the key path)."""


@dataclass(frozen=True)
class MethodEntry:
    """One experiment of a profile's ``methods`` (the YAML keys of :data:`METHOD_KEYS`, a ``preset`` already expanded
    into ``method``, ``params`` and ``train``): the defense ``method`` (``ot_robust.defenses.DEFENSES``) with its
    ``params``, TrainConfig fields over the profile's ``defaults`` (``train``), the display ``label`` (None: the
    experiment key), its own training ``seed`` (None: the profile's), the paper table cells it stands for
    (``tables``), whether its evaluation draws ``curves`` and runs ``autoattack``, the experiments it is attacked
    from in the transfer rows (``transfer_from``: row -> experiment), SLURM resources (``slurm``)."""

    method: str
    label: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    tables: dict[str, Any] = field(default_factory=dict)
    curves: bool = False
    autoattack: bool = True
    transfer_from: dict[str, str] = field(default_factory=dict)
    slurm: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None

    def training(self) -> tuple:
        """What decides the trained model but for the seed: two entries with equal ``training()`` and label are one
        model trained with different seeds."""
        return (self.method, self.label, self.params, self.train, self.transfer_from, self.preset)


@dataclass
class Profile:
    """A validated profile (see the module docstring for the meaning of each field)."""

    name: str
    description: str
    dataset: str
    model: str
    methods: dict[str, MethodEntry]
    eval: dict[str, Any]
    data_root: str | None = None
    model_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    defaults: dict[str, Any] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    notebooks: list[str] = field(default_factory=list)
    analysis: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs_dir: str | None = None
    slurm: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str | None = None
    #: every attack spec of ``eval`` (its columns, ``strong`` columns, ``autoattack``) and of ``audit``
    #: (``audit.<group>.<column>``; a transfer column: its ``via`` spec), parsed once when the profile is loaded
    attack_specs: dict[str, Any] = field(default_factory=dict, repr=False)

    def attack(self, key: str):
        """The parsed :class:`~ot_robust.attacks.AttackSpec` of an ``eval`` column (``pgd20``, a ``strong`` column,
        ``autoattack``) or of an audit column (``audit.<group>.<column>``), parsed once. Raises KeyError for a key the
        profile does not have, ValueError for a spec that does not parse (a profile loaded without its registry
        check)."""
        if key not in self.attack_specs:
            from ..attacks import AttackSpec

            specs = _spec_strings(self)
            if key not in specs:
                raise KeyError(f"profile {self.name!r} has no attack {key!r}; it has {sorted(specs)}")
            self.attack_specs[key] = AttackSpec.parse(specs[key])
        return self.attack_specs[key]

    def label(self, experiment: str) -> str:
        """Display name of an experiment (its ``label``, else the experiment key)."""
        return self.methods[experiment].label or experiment

    def table_row(self, experiment: str, table: str) -> str | None:
        """The paper row ``experiment`` stands for in ``table`` (its ``tables`` entry), None if it has none. Raises
        KeyError if ``experiment`` is not a method of the profile."""
        return table_cell(self.methods[experiment].tables.get(table))[0]

    def seed_of(self, experiment: str) -> int:
        """The training seed of ``experiment``: its own ``seed``, else the profile's. Raises KeyError if
        ``experiment`` is not a method of the profile."""
        seed = self.methods[experiment].seed
        return int(self.seed if seed is None else seed)

    def seeds_of(self, experiment: str) -> list[tuple[int, str]]:
        """``(seed, experiment)`` of every experiment that is ``experiment`` trained with another seed: the same
        label and the same method entry but for ``seed`` (and what is done with the model: ``tables``, ``curves``,
        ``autoattack``); sorted by seed, ``experiment`` itself included.

        Raises:
            KeyError: if ``experiment`` is not a method of the profile.
        """
        ref = self.methods[experiment].training()
        return sorted((self.seed_of(e), e) for e, m in self.methods.items()
                      if self.label(e) == self.label(experiment) and m.training() == ref)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def list_profiles() -> list[str]:
    """Names of the profiles shipped in ``ot_robust/profiles/`` (sorted)."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def profile_path(name_or_path: str | Path) -> Path:
    """The YAML file of a profile given by name (``quick``) or by path (``my.yaml``).

    Raises:
        ProfileError: if no such profile exists (the message lists the shipped ones).
    """
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ProfileError(f"profile file {str(p)!r} does not exist")
        return p
    cand = PROFILE_DIR / f"{name_or_path}.yaml"
    if not cand.is_file():
        raise ProfileError(f"unknown profile {str(name_or_path)!r}; available: {', '.join(list_profiles())} "
                           "(or pass a path to a .yaml file)")
    return cand


@dataclass
class MetaProfile:
    """A profile made of other profiles (``include``), run in order under one ``--budget``; ``runs_dir`` is where
    their results go (``results``: committed to git), ``claims`` runs the claims-verdict notebook (50_claims) after
    them."""

    name: str
    description: str
    include: list[str]
    runs_dir: str | None = None
    claims: bool = False
    path: str | None = None


def load_meta_profile(name_or_path: str | Path) -> MetaProfile | None:
    """The :class:`MetaProfile` of a profile file that has ``include:``, else None.

    Raises:
        ProfileError: unknown keys, wrong types, or an included profile that does not load.
    """
    path = profile_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ProfileError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict) or "include" not in raw:
        return None
    _check_keys(raw, META_KEYS, "the meta profile", str(path), ("name", "description", "include"))
    for sub in raw["include"]:
        if not isinstance(sub, str) or load_meta_profile(sub) is not None:
            raise ProfileError(f"{path}: include entry {sub!r} must name a plain profile")
        load_profile(sub)
    return MetaProfile(**raw, path=str(path))


def metas_with_claims(profile: str) -> list[MetaProfile]:
    """The shipped meta profiles that include ``profile`` and build a claims-verdict table from it (``study`` for
    ``study-fashion`` and ``study-mnist``): a run of ``profile`` alone into their ``runs_dir`` changes results that
    table reads."""
    metas = (load_meta_profile(name) for name in list_profiles())
    return [m for m in metas if m is not None and m.claims and profile in m.include]


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE, check_registries: bool = True) -> Profile:
    """Load and validate a profile.

    Args:
        name_or_path: a shipped profile name or a path to a YAML file.
        check_registries: also check dataset, model, defense names, attack specs, table and figure names against the
            package's registries (those modules that exist; skipped for a module that is not importable).

    Raises:
        ProfileError: unknown or missing keys, wrong types, bad names (the message names file and key path).
    """
    path = profile_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ProfileError(f"{path}: not valid YAML: {e}") from None
    if isinstance(raw, dict) and "include" in raw:
        raise ProfileError(f"{path}: a meta profile (include: {raw['include']}); run it with "
                           "`python -m ot_robust reproduce --profile NAME` (ot_robust.study.pipeline.run_profile)")
    return validate_profile(raw, source=str(path), check_registries=check_registries,
                            expected_name=path.stem if path.parent == PROFILE_DIR else None)


def _check_keys(obj: Any, schema: dict[str, Any], where: str, src: str, required: tuple[str, ...] = ()) -> None:
    try:
        check_keys(obj, schema, where, required)
    except ValueError as e:
        raise ProfileError(f"{src}: {e}") from None


def _expand_preset(m: dict[str, Any], raw: dict[str, Any], where: str, src: str) -> dict[str, Any]:
    """A method entry with ``preset: NAME`` (:func:`ot_robust.presets.get_preset`): the preset gives ``method``,
    ``params`` (its method_params) and ``train`` (its training fields); the entry's own keys win, key by key. The
    preset's dataset and model must be the profile's."""
    from ..presets import get_preset, over_preset

    try:
        p = get_preset(m["preset"])
    except ValueError as e:
        raise ProfileError(f"{src}: {where}.preset: {e}") from None
    for k in _PRESET_PROFILE_FIELDS:
        if k in p and p[k] != raw.get(k):
            raise ProfileError(f"{src}: {where}.preset {m['preset']!r} is for {k}={p[k]!r}, the profile has "
                               f"{k}={raw.get(k)!r}")
    if "method" in m and m["method"] != p["method"]:
        raise ProfileError(f"{src}: {where}.method {m['method']!r} contradicts preset {m['preset']!r} "
                           f"(method {p['method']!r}); leave method out")
    train = {k: v for k, v in p.items() if k not in ("method", "method_params", "preset", *_PRESET_PROFILE_FIELDS)}
    return over_preset({"method": p["method"], "params": p.get("method_params", {}), "train": train}, m,
                       nested=("params", "train"))


def validate_profile(raw: Any, source: str = "<profile>", check_registries: bool = True,
                     expected_name: str | None = None) -> Profile:
    """Validate a profile given as a parsed mapping and return a :class:`Profile` (see :func:`load_profile`)."""
    src = source
    _check_keys(raw, TOP_KEYS, "the profile", src, REQUIRED_TOP)
    raw = copy.deepcopy(raw)
    if not _NAME_RE.match(raw["name"]):
        raise ProfileError(f"{src}: name {raw['name']!r} must be lower-case letters, digits, '-' or '_'")
    if expected_name is not None and raw["name"] != expected_name:
        raise ProfileError(f"{src}: name {raw['name']!r} must equal the file name {expected_name!r}")
    if not raw["methods"]:
        raise ProfileError(f"{src}: methods is empty; give at least one method to train")
    for exp, m in raw["methods"].items():
        where = f"methods.{exp}"
        if not isinstance(exp, str) or not _NAME_RE.match(exp):
            raise ProfileError(f"{src}: experiment name {exp!r} must be lower-case letters, digits, '-' or '_'")
        _check_keys(m, METHOD_KEYS, where, src, () if "preset" in m else ("method",))
        if "preset" in m:
            raw["methods"][exp] = m = _expand_preset(m, raw, where, src)
        for row_src, other in m.get("transfer_from", {}).items():
            if other not in raw["methods"]:
                raise ProfileError(f"{src}: {where}.transfer_from.{row_src} names unknown experiment {other!r}; "
                                   f"experiments: {sorted(raw['methods'])}")
    ev = raw["eval"]
    _check_keys(ev, EVAL_KEYS, "eval", src, ("attacks", "n_examples"))
    for key in ev["attacks"]:
        if not isinstance(key, str) or not _NAME_RE.match(key) or key == "clean":
            raise ProfileError(f"{src}: eval.attacks key {key!r} must be a column name like pgd20 "
                               "('clean' is implicit)")
        if not isinstance(ev["attacks"][key], str):
            raise ProfileError(f"{src}: eval.attacks.{key} must be an attack spec string, got {ev['attacks'][key]!r}")
    if ev.get("autoattack") is not None:
        _check_keys(ev["autoattack"], AUTOATTACK_KEYS, "eval.autoattack", src, ("spec",))
    if ev.get("strong") is not None:
        _check_keys(ev["strong"], STRONG_KEYS, "eval.strong", src, ("attacks", "n_examples"))
        clash = sorted(set(ev["strong"]["attacks"]) & set(ev["attacks"]))
        if clash:
            raise ProfileError(f"{src}: eval.strong.attacks key(s) {clash} also in eval.attacks; use other names")
    if ev.get("curves") is not None:
        _check_keys(ev["curves"], CURVE_KEYS, "eval.curves", src, ("epsilons", "steps", "eps"))
    if ev.get("loss_curves") is not None:
        lc = ev["loss_curves"]
        _check_keys(lc, LOSS_CURVE_KEYS, "eval.loss_curves", src, ("experiment", "eps"))
        if lc["experiment"] not in raw["methods"]:
            raise ProfileError(f"{src}: eval.loss_curves.experiment {lc['experiment']!r} is not one of the methods "
                               f"{sorted(raw['methods'])}")
    for nb in raw.get("notebooks", []):
        if nb not in NOTEBOOKS:
            raise ProfileError(f"{src}: notebooks entry {nb!r} unknown; allowed: {list(NOTEBOOKS)}")
    for nb, params in raw.get("analysis", {}).items():
        if nb not in ANALYSIS_NOTEBOOKS:
            raise ProfileError(f"{src}: analysis entry {nb!r} unknown; allowed: {list(ANALYSIS_NOTEBOOKS)}")
        if not isinstance(params, dict):
            raise ProfileError(f"{src}: analysis.{nb} must be a mapping of notebook parameters, got {params!r}")
        bad = [m for m in params.get("models", []) if m not in raw["methods"]]
        if bad:
            raise ProfileError(f"{src}: analysis.{nb}.models names unknown experiment(s) {bad}; "
                               f"experiments: {sorted(raw['methods'])}")
    for exp, m in raw["methods"].items():
        _check_table_settings(exp, m, raw.get("defaults", {}), src)
    if "audit" in raw:
        from .audit_schema import check_audit

        eval_cols = {*ev["attacks"], *((ev.get("strong") or {}).get("attacks") or {}), "autoattack"}
        try:
            check_audit(raw["audit"], raw["methods"], eval_cols)
        except ValueError as e:
            raise ProfileError(f"{src}: {e}") from None
    if "slurm" in raw or any("slurm" in m for m in raw["methods"].values()):
        from .slurm_schema import check_profile_slurm  # the resource keys the SLURM executor applies

        try:
            check_profile_slurm(raw.get("slurm"), raw["methods"], src)
        except ValueError as e:
            raise ProfileError(str(e)) from None
    prof = Profile(**{**raw, "methods": {e: MethodEntry(**m) for e, m in raw["methods"].items()}}, path=source)
    if check_registries:
        _check_registries(prof, src)
    return prof


#: (table, row or column) -> the FS setting a model standing for it must have been trained with: a table's cell can
#: only hold a model trained as its row / column says (a batch-128 model once sat in the bs60 column)
_FS_ROW_SETTINGS = {
    ("fs_table3a", "Random"): ("perturbation", "random"), ("fs_table3a", "Supervised"): ("perturbation", "supervised"),
    ("fs_table3a", "FeaScatter"): ("perturbation", "feature_scattering"),
    ("fs_table3b", "Uniform"): ("matching", "uniform"), ("fs_table3b", "Identity"): ("matching", "identity"),
    ("fs_table3b", "OT"): ("matching", "ot"), ("fs_table4", "Sinkhorn"): ("solver", "sinkhorn"),
    ("fs_table4", "IPOT"): ("solver", "ipot")}
_FS_DEFAULTS = {"perturbation": "feature_scattering", "matching": "ot", "solver": "sinkhorn", "label_smoothing": 0.5}


def table_cell(entry: Any) -> tuple[Any, Any]:
    """``(row, column)`` of a method's ``tables`` entry: a row name alone, or ``{row: ..., column: ...}``; ``(None,
    None)`` for no entry."""
    return (entry.get("row"), entry.get("column")) if isinstance(entry, dict) else (entry, None)


def _check_table_settings(exp: str, m: dict[str, Any], defaults: dict[str, Any], src: str) -> None:
    """Refuse a table entry whose model was not trained with the settings its row / column claims."""
    params = m.get("params", {})
    fs = {k: params.get(k, v) for k, v in _FS_DEFAULTS.items()}
    for table, entry in m.get("tables", {}).items():
        where = f"{src}: methods.{exp}.tables.{table}"
        row, col = table_cell(entry)
        need = _FS_ROW_SETTINGS.get((table, row))
        if need and (m["method"] != "feature_scattering" or fs[need[0]] != need[1]):
            raise ProfileError(f"{where}: row {row!r} needs a feature_scattering model with {need[0]}={need[1]!r}; "
                               f"{exp!r} is method {m['method']!r} with {need[0]}={fs.get(need[0])!r}")
        if table == "fs_rebuttal_batch_size" and isinstance(col, str) and col.startswith("bs"):
            bs = m.get("train", {}).get("batch_size", defaults.get("batch_size", 128))
            if bs != int(col[2:]):
                raise ProfileError(f"{where}: column {col!r} needs a model trained at batch size {col[2:]}; "
                                   f"{exp!r} trains at batch_size={bs}")
        if (table == "fs_rebuttal_label_smoothing" and isinstance(col, str) and col.startswith("ls")
                and m["method"] == "feature_scattering" and float(fs["label_smoothing"]) != float(col[2:])):
            raise ProfileError(f"{where}: column {col!r} needs label_smoothing={col[2:]}; {exp!r} has "
                               f"label_smoothing={fs['label_smoothing']}")


def _spec_strings(p: Profile) -> dict[str, str]:
    """Every attack spec string of ``p`` keyed as :meth:`Profile.attack` reads them."""
    from .audit_schema import attack_specs

    specs = {**p.eval.get("attacks", {}), **(p.eval.get("strong") or {}).get("attacks", {})}
    if p.eval.get("autoattack"):
        specs["autoattack"] = p.eval["autoattack"]["spec"]
    return {**specs, **attack_specs(p.audit)}


def _check_registries(p: Profile, src: str) -> None:
    """Check names against the package registries (dataset, model, defenses, TrainConfig fields, attacks); the table
    and figure names are checked by :func:`ot_robust.reports.check_names` (reports sit above profiles)."""
    from .. import models
    from ..core import data

    try:
        data.dataset_info(p.dataset)
    except ValueError as e:
        raise ProfileError(f"{src}: dataset {p.dataset!r}: {e}") from None
    names = getattr(models, "MODELS", None)
    if names is not None and p.model not in names:
        raise ProfileError(f"{src}: model {p.model!r} unknown; allowed: {sorted(names)}")
    from ..attacks import AttackSpec
    from ..defenses import DEFENSES
    from ..training.config import TrainConfig

    for exp, m in p.methods.items():
        if m.method not in DEFENSES:
            raise ProfileError(f"{src}: methods.{exp}.method {m.method!r} unknown; allowed: {sorted(DEFENSES)}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for where, d in [("defaults", p.defaults)] + [(f"methods.{e}.train", m.train)
                                                   for e, m in p.methods.items()]:
        bad = sorted(set(d) - fields)
        if bad:
            raise ProfileError(f"{src}: unknown TrainConfig field(s) {bad} in {where}; allowed: {sorted(fields)}")
    for key, spec in _spec_strings(p).items():
        try:
            p.attack_specs[key] = AttackSpec.parse(spec)
            p.attack_specs[key].build()
        except ValueError as e:
            raise ProfileError(f"{src}: {key if key.startswith('audit.') else 'eval attack ' + repr(key)}: "
                               f"{e}") from None
