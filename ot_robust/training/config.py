"""TrainConfig: every parameter of a training run, its validation (before any training) and file/CLI loading."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..core.utils import parse_number

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("multistep", "cosine", "constant")
SUBSETS = ("stratified", "random", "first")


@dataclass
class TrainConfig:
    """All parameters of a training run (written to ``config.json``). Epsilons are on the [0, 1] pixel scale.

    Fields:
        method, method_params: defense name (``ot_robust.defenses.DEFENSES``) and its keyword arguments.
        dataset, model, model_params: names for ``get_dataset`` / ``get_model`` and extra model kwargs.
        epochs, batch_size: ``batch_size`` is the GLOBAL batch (split evenly over DDP processes).
        optimizer ("sgd" | "adam"), lr, momentum, weight_decay, nesterov: the optimiser (SGD momentum; Adam betas
            default; weight decay as L2 in both, as the papers' code).
        schedule ("multistep" | "cosine" | "constant"), milestones (epochs), gamma: per-epoch LR schedule.
        seed, deterministic: seeding (Python, NumPy, torch) and torch deterministic kernels.
        device: "cpu" | "cuda" | None (auto). amp: mixed precision for training (float16 with loss scaling on CUDA,
            bfloat16 autocast on the CPU); evaluation attacks always run in float32. channels_last: NHWC memory
            layout for the model and its batches (same arithmetic, other conv kernels; measured 1.15-1.27x per
            training step on this CPU, docs/training.md); off by default.
        num_train, subset: optional training subset size and how it is drawn ("stratified": the first examples of
            each class in dataset order, balanced; "random": a seeded random subset; "first": the first n).
        eval_n: size of the fixed held-out batch (first eval_n test images) for the per-epoch clean/PGD accuracy.
        eval_eps, eval_steps, eval_step_size: the per-epoch PGD (None -> the dataset's default,
            :func:`ot_robust.core.data.default_attack`: MNIST 0.3 / 20 / 0.01, Fashion-MNIST 0.1, colour 8/255 / 20 /
            2/255).
        num_workers, data_root, augment (None = the dataset's default training augmentation).
        ddp: None (auto: on when launched by torchrun with WORLD_SIZE > 1), True or False. ddp_backend: None
            (nccl on CUDA, gloo on CPU). progress: tqdm bars. preset: name in ``ot_robust.presets``.
    """

    method: str = "standard"
    method_params: dict = field(default_factory=dict)
    dataset: str = "mnist-sample"
    model: str = "small_cnn"
    model_params: dict = field(default_factory=dict)
    epochs: int = 1
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "multistep"
    milestones: list = field(default_factory=list)
    gamma: float = 0.1
    seed: int = 0
    deterministic: bool = False
    device: Optional[str] = None
    num_train: Optional[int] = None
    subset: str = "stratified"
    eval_n: int = 256
    eval_eps: Optional[float] = None
    eval_steps: Optional[int] = None
    eval_step_size: Optional[float] = None
    num_workers: int = 0
    data_root: Optional[str] = None
    augment: Optional[bool] = None
    amp: bool = False
    channels_last: bool = False
    ddp: Optional[bool] = None
    ddp_backend: Optional[str] = None
    progress: bool = True
    preset: Optional[str] = None

    def __post_init__(self):
        """``TrainConfig(preset=NAME, epochs=3, ...)``: the fields left at their defaults take the preset's values
        (``method_params`` / ``model_params`` merged key by key, the given keys win). ValueError: unknown preset."""
        if not self.preset:
            return
        from ..presets import NESTED, get_preset, over_preset

        base = get_preset(self.preset)
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in NESTED
                 or getattr(self, f.name) != (f.default_factory() if f.default_factory is not dataclasses.MISSING
                                              else f.default)}
        for k, v in over_preset(base, given).items():
            if k in base:
                setattr(self, k, v)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build from a mapping; with ``preset`` the preset's values are the defaults and ``d`` overrides them
        (``method_params`` / ``model_params`` are merged key by key). ValueError on unknown keys or preset."""
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {unknown}; allowed: {sorted(names)}")
        from ..presets import get_preset, over_preset

        base = get_preset(d["preset"]) if d.get("preset") else {}
        merged = {**over_preset(base, d), "preset": None}  # given keys win, even where they equal a field's default
        cfg = cls(**merged)
        cfg.preset = d.get("preset")
        return cfg

    @classmethod
    def from_file(cls, path: str | Path, overrides: list[str] | None = None) -> "TrainConfig":
        """Load a JSON or YAML file (a ``config.json`` of a run is accepted: its ``config`` entry), then apply
        ``key=value`` overrides (dotted keys reach into ``method_params``/``model_params``; values parsed as YAML)."""
        text = Path(path).read_text()
        d = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a mapping of TrainConfig fields, got {type(d).__name__}")
        if "config" in d and isinstance(d["config"], dict):
            d = d["config"]
        return cls.from_dict(apply_overrides(d, overrides or []))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # ---------------------------------------------------------------- derived values
    def eval_attack(self) -> tuple[float, int, float]:
        """(eps, steps, step_size) of the per-epoch PGD check (:func:`ot_robust.core.data.default_attack` for unset
        fields)."""
        from ..core.data import default_attack

        d = default_attack(self.dataset)
        eps = d[0] if self.eval_eps is None else parse_number(self.eval_eps)
        steps = d[1] if self.eval_steps is None else self.eval_steps
        step = d[2] if self.eval_step_size is None else parse_number(self.eval_step_size)
        return eps, steps, step

    # ---------------------------------------------------------------- validation
    def validate(self, world_size: int = 1):
        """Check every field and build the defense; returns it. Raises ValueError with a clear message BEFORE any
        training: unknown method/model/dataset/optimizer/schedule, bad numbers (eps < 0, step <= 0, T < 1, label
        smoothing outside [0, 1), ...), batch size 1 for a batch-coupled (OT) method, a batch size that does not
        split over the DDP processes. The defense is built once per configuration: validating the same, unchanged
        config again (the pipeline's task, then the Trainer) returns the same defense."""
        key = json.dumps([dataclasses.asdict(self), world_size], sort_keys=True, default=repr)
        cached = self.__dict__.get("_validated")
        if cached is not None and cached[0] == key:
            return cached[1]
        defense = self._validate(world_size)
        self.__dict__["_validated"] = (key, defense)  # not a dataclass field: not in asdict, ==, or config.json
        return defense

    def _validate(self, world_size: int):
        from ..core.data import dataset_info
        from ..defenses import get_defense
        from ..core.validation import check_choice, check_int, check_number
        from ..models import MODELS

        dataset_info(self.dataset)
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; valid names: {sorted(MODELS)}")
        if not isinstance(self.method_params, dict) or not isinstance(self.model_params, dict):
            raise ValueError("method_params and model_params must be mappings")
        check_int("epochs", self.epochs)
        check_int("batch_size", self.batch_size)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("subset", self.subset, SUBSETS)
        check_number("lr", self.lr, low_open=True)
        check_number("momentum", self.momentum, high=1.0)
        check_number("weight_decay", self.weight_decay)
        check_number("gamma", self.gamma, low_open=True, high=1.0, high_open=False)
        ms = list(self.milestones or [])
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in ms) or ms != sorted(set(ms)):
            raise ValueError(f"milestones={self.milestones!r} must be strictly increasing integers >= 1 (epochs)")
        check_int("seed", self.seed, low=0)
        if self.num_train is not None:
            check_int("num_train", self.num_train)
        check_int("eval_n", self.eval_n)
        check_int("num_workers", self.num_workers, low=0)
        eps, steps, step = self.eval_attack()
        check_number("eval_eps", eps)
        check_int("eval_steps", steps)
        check_number("eval_step_size", step, low_open=True)
        if self.ddp_backend not in (None, "gloo", "nccl", "mpi"):
            raise ValueError(f"ddp_backend={self.ddp_backend!r}; allowed: None, 'gloo', 'nccl', 'mpi'")
        if self.batch_size % world_size:
            raise ValueError(f"batch_size={self.batch_size} (global) must be divisible by the {world_size} processes")
        if self.num_train is not None and self.num_train < self.batch_size:
            raise ValueError(f"num_train={self.num_train} is smaller than batch_size={self.batch_size}: no full batch")
        params = {k: (parse_number(v) if isinstance(v, str) and _looks_numeric(v) else v)
                  for k, v in self.method_params.items()}
        defense = get_defense(self.method, **params)
        defense.validate(self.batch_size)
        if self.amp and not defense.supports_amp:
            raise ValueError(f"amp=True is not supported by {self.method} with {params}: use amp=False "
                             "(or jr_gradient='double_backward' for the OTJR family)")
        return defense


def _looks_numeric(s: str) -> bool:
    try:
        parse_number(s)
        return True
    except ValueError:
        return False


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """``["lr=0.01", "method_params.eps=8/255"]`` applied to a copy of ``d``; values parsed as YAML.

    Raises ValueError for an item without ``=``."""
    d = json.loads(json.dumps(d))
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value (e.g. lr=0.01 or method_params.eps=8/255)")
        key, raw = item.split("=", 1)
        value: Any = yaml.safe_load(raw) if raw.strip() else None
        target = d
        *parents, last = key.strip().split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[last] = value
    return d
