"""The Trainer (:class:`Trainer`, used through :func:`ot_robust.training.api.train`): one loop for every method (the
defense supplies the loss), with checkpoints, resume, metrics and DDP.

``train(config, run_dir)`` writes into ``run_dir``:

* ``config.json``: every parameter (:class:`TrainConfig`), model spec, dataset and whether it is the exact original,
  git commit and package versions (:func:`ot_robust.core.utils.provenance`), world size;
* ``checkpoint.pt`` every epoch (atomic; the previous kept as ``checkpoint.prev.pt``; SHA-256 sidecars) with the
  model, optimiser(s) (the defense's own too), scheduler, AMP scaler, defense state, RNG states of every process
  (Python, NumPy, torch CPU/CUDA, DataLoader generator) and the epoch: resuming continues exactly as if never stopped
  (bit-identical on CPU with ``deterministic=True``);
* ``metrics.jsonl``: one line per epoch (train loss, train accuracy on the training inputs, clean and PGD accuracy on
  a fixed held-out batch, the defense's logs averaged, lr, time, images/s);
* ``model.pt`` at the end: weights + model spec, for :func:`ot_robust.models.loading.load_model`.

The epoch order comes from a ``DistributedSampler`` (also with one process: same permutation, seeded by
``seed + epoch``) and ``drop_last`` batches, so that with P processes each takes a slice of every global batch and
the union of the slices is exactly the single-process batch.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from ..core.run_files import (CHECKPOINT_FILE, CONFIG_FILE, DIVERGED_FILE, METRICS_FILE, MODEL_FILE,
                              PREVIOUS_CHECKPOINT_FILE)
from ..core.utils import (ProgressLog, atomic_torch_save, atomic_write_bytes, atomic_write_json, get_device, provenance,
                     set_seed)
from ..defenses.base import resolve_recorded
from .checkpoint import load_latest, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .distributed import DistInfo, init_distributed

class ConfigMismatch(ValueError):
    """Resuming a run folder whose checkpoint was made with another configuration (the message names the fields)."""


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or model output (epoch and batch counted from 1). The trainer writes
    ``record`` to ``diverged.json`` and no ``model.pt``: the run has no model to evaluate (a diverged method at a
    setting is a result, reported as such by the evaluation and the tables). Checked per process: under DDP a
    diverging rank stops while the others wait at the gradient all-reduce, so stop the job by hand there."""

    def __init__(self, epoch: int, batch: int, reason: str):
        self.record = {"epoch": epoch, "batch": batch, "reason": reason, "last_finite_epoch": epoch - 1}
        super().__init__(f"training diverged at epoch {epoch}, batch {batch}: {reason}")


class CheckpointUnusable(ValueError):
    """Resuming a run folder that holds checkpoint files of which none can be used (their warnings say why):
    nothing is retrained over them silently."""


# config fields that may change between the first run and a resume without changing the numbers' meaning
_RESUMABLE = {"epochs", "progress", "num_workers", "device", "data_root", "ddp", "ddp_backend"}


def subset_indices(targets: torch.Tensor, n: int, how: str, seed: int) -> torch.Tensor:
    """Indices of an ``n``-example training subset (sorted). ``stratified``: per class the first examples in dataset
    order, classes balanced (round-robin by within-class rank); ``random``: seeded; ``first``: ``0..n-1``."""
    N = len(targets)
    n = min(n, N)
    if how == "first":
        return torch.arange(n)
    if how == "random":
        return torch.randperm(N, generator=torch.Generator().manual_seed(seed))[:n].sort().values
    from ..core.data import class_round_robin

    return class_round_robin(targets)[:n].sort().values


def backward(loss: torch.Tensor, params) -> None:
    """``loss.backward()`` restricted to ``params`` (the tensors an optimizer steps): the same gradients for them,
    nothing accumulated elsewhere, and autograd skips the work only other leaves need, e.g. the first layer's input
    gradient when a defense's clean inputs require grad (OTJR's Jacobian penalty). Raises ``ValueError`` when no
    parameter requires grad."""
    inputs = [p for p in params if p.requires_grad]
    if not inputs:
        raise ValueError("no parameter requires grad: nothing to train")
    torch.autograd.backward(loss, inputs=inputs)


def _targets(ds) -> torch.Tensor:
    from ..core.data import dataset_targets

    t = dataset_targets(ds)
    return t if t is not None else torch.tensor([ds[i][1] for i in range(len(ds))], dtype=torch.long)


def clean_and_robust_counts(model, x, y, attack, batch_size: int) -> tuple[int, int]:
    """How many of ``x`` (N, C, H, W) in [0, 1] the model classifies correctly, clean and under ``attack(model, x,
    y) -> x_adv``, in batches of ``batch_size`` (the per-epoch held-out check; the model's mode is the caller's)."""
    clean = robust = 0
    for i in range(0, len(y), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        with torch.no_grad():
            clean += int((model(xb).argmax(1) == yb).sum())
        x_adv = attack(model, xb, yb)
        with torch.no_grad():
            robust += int((model(x_adv).argmax(1) == yb).sum())
    return clean, robust


class Trainer:
    """Builds the model, defense, optimiser, schedule and data of a :class:`TrainConfig` and runs the epochs.

    Raises ValueError (from :meth:`TrainConfig.validate`) for a bad configuration before anything is trained.
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path):
        from ..core.data import as_tensors, dataset_info, get_dataset
        from ..models import get_model

        self.cfg, self.run_dir = config, Path(run_dir)
        self.device = get_device(config.device)
        self.dist: DistInfo = init_distributed(config.ddp, config.ddp_backend, self.device.type)
        try:
            self.defense = config.validate(self.dist.world_size)
        except Exception:
            self.dist.close()
            raise
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.defense.distributed = self.dist if self.dist.enabled else None
        set_seed(config.seed, config.deterministic)
        self.info = dataset_info(config.dataset)
        self.model = get_model(config.model, config.dataset, **config.model_params).to(self.device)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.dist.broadcast_module(self.model)
        # each process draws its own attack noise (as P independent slices of one batch would)
        torch.manual_seed(config.seed + 1_000_003 * self.dist.rank)
        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        # mixed precision: float16 + loss scaling on CUDA, bfloat16 autocast (no scaling needed) on the CPU
        self.amp = bool(config.amp)
        self.amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.device.type == "cuda")

        train_ds = get_dataset(config.dataset, "train", root=config.data_root, augment=config.augment)
        if config.num_train is not None:
            train_ds = Subset(train_ds, subset_indices(_targets(train_ds), config.num_train, config.subset,
                                                       config.seed).tolist())
        self.sampler = DistributedSampler(train_ds, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                          shuffle=True, seed=config.seed, drop_last=True)
        self.loader_gen = torch.Generator().manual_seed(config.seed)
        self.loader = DataLoader(train_ds, batch_size=config.batch_size // self.dist.world_size,
                                 sampler=self.sampler, drop_last=True, num_workers=config.num_workers,
                                 generator=self.loader_gen, pin_memory=self.device.type == "cuda",
                                 persistent_workers=False)
        test_ds = get_dataset(config.dataset, "test", root=config.data_root, augment=False)
        self.eval_x, self.eval_y = (t.to(self.device) for t in as_tensors(test_ds, config.eval_n))
        self.start_epoch = 0

    # ------------------------------------------------------------------ construction helpers
    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.cfg
        if c.optimizer == "sgd":
            return torch.optim.SGD(self.model.parameters(), lr=c.lr, momentum=c.momentum,
                                   weight_decay=c.weight_decay, nesterov=c.nesterov)
        return torch.optim.Adam(self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay)

    def _make_scheduler(self):
        c = self.cfg
        if c.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=c.epochs)
        milestones = list(c.milestones) if c.schedule == "multistep" else []
        return torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=milestones, gamma=c.gamma)

    def model_spec(self) -> dict:
        return {"name": self.cfg.model, "dataset": self.cfg.dataset, "num_classes": self.model.num_classes,
                "params": dict(self.cfg.model_params)}

    # ------------------------------------------------------------------ checkpoint / resume
    def state(self, epoch: int) -> dict:
        rngs = self.dist.gather_object(rng_state(self.loader_gen))
        return {"epoch": epoch, "config": self.cfg.to_dict(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "defense": self.defense.state_dict(),
                "rng": rngs, "world_size": self.dist.world_size}

    def resume(self, latest: tuple[dict | None, Path | None] | None = None) -> int:
        """Load the newest intact checkpoint (if any; ``latest``: :func:`load_latest`'s answer when the caller has
        read it already); returns the number of completed epochs."""
        state, path = latest if latest is not None else load_latest(self.run_dir)
        if state is None:
            present = [n for n in (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE) if (self.run_dir / n).exists()]
            if present:
                raise CheckpointUnusable(f"{self.run_dir}: {', '.join(present)} present but none can be resumed "
                                         "(see the warnings above); nothing trained: move them away or pass "
                                         "resume=False to start afresh")
            self._truncate_metrics(0)  # killed after an epoch's metrics line, before its first checkpoint
            return 0
        old, new = dict(state["config"]), self.cfg.to_dict()
        # parameters recorded since the run began (Defense.recorded) take their older value: like with like
        old["method_params"] = resolve_recorded(old.get("method", ""), old.get("method_params", {}),
                                                old.get("method_params", {}))
        default = TrainConfig().to_dict()  # a field newer than the checkpoint ran at its default
        diff = sorted(k for k in new if k not in _RESUMABLE and old.get(k, default.get(k)) != new[k])
        if diff:
            raise ConfigMismatch(f"{path}: the run was made with a different configuration ({diff}); "
                             "use another run_dir or resume=False")
        if state["world_size"] != self.dist.world_size:
            raise ValueError(f"{path}: saved with {state['world_size']} processes, resuming with "
                             f"{self.dist.world_size}: the RNG streams would differ")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.defense.load_state_dict(state["defense"])  # its own optimisers too (older checkpoints also hold a
        # duplicate "defense_optimizers" entry, ignored)
        set_rng_state(state["rng"][self.dist.rank], self.loader_gen)
        self.start_epoch = int(state["epoch"])
        self._truncate_metrics(self.start_epoch)
        return self.start_epoch

    def _truncate_metrics(self, epochs_done: int) -> None:
        """Drop metric lines of epochs after the checkpoint we resume from (e.g. after a fallback to ``prev``)."""
        path = self.run_dir / METRICS_FILE
        if self.dist.is_main and path.exists():
            lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
            keep = [ln for ln in lines if json.loads(ln)["epoch"] <= epochs_done]
            if len(keep) != len(lines):
                path.write_text("".join(ln + "\n" for ln in keep))

    # ------------------------------------------------------------------ the loop
    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training data; returns the epoch's averaged training metrics (global under DDP)."""
        from ..core.utils import tqdm_class

        tqdm = tqdm_class()

        self.model.train()
        self.sampler.set_epoch(epoch)
        sums: dict[str, float] = {}
        loss_sum = correct = count = 0.0
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", leave=False,
                   disable=not (self.cfg.progress and self.dist.is_main))
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        log = ProgressLog(f"[train/{self.run_dir.name}] epoch {epoch + 1}/{self.cfg.epochs}:", every_s=120.0,
                          on=self._progress_lines and self.dist.is_main)
        for i, (x, y) in enumerate(bar):
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if x.dim() == 4:
                x = x.contiguous(memory_format=self.memory_format)
            autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp
                        else contextlib.nullcontext())
            with autocast:
                out = self._checked_loss(x, y, epoch, i)
            self.optimizer.zero_grad(set_to_none=True)
            backward(self.scaler.scale(out.loss), params)
            self.dist.all_reduce_grads(params)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.defense.after_step(self.model)  # e.g. AWP removes its weight perturbation
            self.dist.broadcast_module(self.model, buffers_only=True)
            b = x.shape[0]
            loss_value = float(out.loss.detach())  # the batch's one host sync, as before: also the finiteness check
            if not math.isfinite(loss_value):  # the step just taken is discarded with the model (no model.pt)
                raise TrainingDiverged(epoch + 1, i + 1, f"non-finite loss ({loss_value})")
            loss_sum += loss_value * b
            count += b
            if out.logits_adv is not None:
                correct += float((out.logits_adv.argmax(1) == y).sum())
            for k, v in out.logs.items():
                sums[k] = sums.get(k, 0.0) + float(v) * b
            bar.set_postfix(loss=f"{loss_sum / count:.4f}")
            log(f"batch {i + 1}/{len(self.loader)}, loss {loss_sum / count:.4f}")
        keys = sorted(sums)
        tot = self.dist.all_sum([loss_sum, correct, count] + [sums[k] for k in keys], self.device)
        n = max(tot[2], 1.0)
        return {"train_loss": tot[0] / n, "train_acc": 100 * tot[1] / n, "train_images": int(tot[2]),
                **{f"train_{k}": v / n for k, v in zip(keys, tot[3:])}}

    def _checked_loss(self, x: torch.Tensor, y: torch.Tensor, epoch: int, i: int):
        """The defense's loss on batch ``i``; :class:`TrainingDiverged` when the defense refuses non-finite values
        (an OT solver's cost check) because the model's output is not finite (a non-finite loss is caught where
        :meth:`train_epoch` reads it anyway)."""
        try:
            out = self.defense.loss(self.model, x, y)
        except ValueError as e:
            with torch.no_grad():
                finite = bool(torch.isfinite(self.model(x)).all())
            if finite:
                raise
            raise TrainingDiverged(epoch + 1, i + 1, f"non-finite model output ({e})") from e
        return out

    def evaluate_heldout(self) -> dict:
        """Clean and PGD accuracy (%) on the fixed held-out batch (eval mode; fixed attack seed)."""
        from ..attacks import PGD

        eps, steps, step = self.cfg.eval_attack()
        attack = PGD(eps=eps, steps=steps, step_size=step, seed=self.cfg.seed)
        self.model.eval()
        clean, robust = clean_and_robust_counts(self.model, self.eval_x, self.eval_y, attack, self.cfg.batch_size)
        self.model.train()
        n = len(self.eval_x)
        return {"eval_clean_acc": 100 * clean / n, f"eval_pgd{steps}_acc": 100 * robust / n, "eval_n": n,
                "eval_eps": eps}

    def fit(self, resume: bool = True, should_stop=None, progress_lines: bool = False) -> Path:
        """Run the remaining epochs; returns ``run_dir/model.pt``. ``should_stop()`` True at an epoch end (before
        the last; the checkpoint saved) raises :class:`~ot_robust.training.budget.BudgetReached`;
        ``progress_lines`` writes progress lines for the pipeline's console (:class:`ProgressLog`)."""
        self._progress_lines = progress_lines
        self.run_dir.mkdir(parents=True, exist_ok=True)
        latest = load_latest(self.run_dir) if resume else None   # read once: recorded parameters, then resume
        self._record_parameters(latest[0] if latest else None)
        if resume:
            self.resume(latest)
        elif self.dist.is_main:
            for name in (METRICS_FILE, CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE):
                (self.run_dir / name).unlink(missing_ok=True)
                (self.run_dir / (name + ".sha256")).unlink(missing_ok=True)
        if self.dist.is_main:
            self.write_config()
            (self.run_dir / DIVERGED_FILE).unlink(missing_ok=True)  # an earlier divergence is redone from here
        self.dist.barrier()
        for epoch in range(self.start_epoch, self.cfg.epochs):
            t0 = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            try:
                rec = {"epoch": epoch + 1, "lr": lr, **self.train_epoch(epoch)}
            except TrainingDiverged as e:
                if self.dist.is_main:
                    for name in (MODEL_FILE, MODEL_FILE + ".sha256"):  # a shorter run's model is not this run's
                        (self.run_dir / name).unlink(missing_ok=True)
                    atomic_write_json(self.run_dir / DIVERGED_FILE, e.record)
                raise
            train_time = time.perf_counter() - t0
            self.scheduler.step()
            if self.dist.is_main:
                rec.update(self.evaluate_heldout())
            rec.update(time_s=time.perf_counter() - t0, train_time_s=train_time,
                       images_per_s=rec["train_images"] / max(train_time, 1e-9))
            state = self.state(epoch + 1)
            if self.dist.is_main:
                held = ", ".join(f"{k[5:-4]} {v:.1f}" for k, v in rec.items()
                                 if k.startswith("eval_") and k.endswith("_acc"))
                ProgressLog(f"[train/{self.run_dir.name}]", on=self._progress_lines)(
                    f"epoch {epoch + 1}/{self.cfg.epochs} done in {rec['time_s'] / 60:.1f} min: train loss "
                    f"{rec['train_loss']:.4f}, held-out {held}", force=True)
                with open(self.run_dir / METRICS_FILE, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                save_checkpoint(self.run_dir, state)
            self.dist.barrier()
            from .budget import BudgetReached

            if epoch + 1 < self.cfg.epochs and should_stop is not None and should_stop():
                raise BudgetReached(f"pipeline budget reached after epoch {epoch + 1}/{self.cfg.epochs} of "
                                    f"{self.run_dir}; the checkpoint is saved, rerun to continue")
        path = self.run_dir / MODEL_FILE
        if self.dist.is_main:
            data = atomic_torch_save({"format": "ot_robust.model/1", "spec": self.model_spec(),
                                      "state_dict": self.model.state_dict(), "epochs": self.cfg.epochs,
                                      "config": self.cfg.to_dict()}, path)
            import hashlib

            atomic_write_bytes(self.run_dir / (MODEL_FILE + ".sha256"),
                               (hashlib.sha256(data).hexdigest() + "\n").encode())
        self.dist.barrier()
        return path

    def _record_parameters(self, state: dict | None) -> None:
        """Make the defense's recorded parameters explicit in the config (and so in ``config.json``): today's defaults
        for a new run, the resumed run's own values (older runs: the values from before the parameter existed)
        otherwise; rebuilds the defense if that changes its parameters."""
        previous = state["config"].get("method_params", {}) if state and state["config"].get("method") == \
            self.cfg.method else None
        params = resolve_recorded(self.cfg.method, self.cfg.method_params, previous)
        if params != self.cfg.method_params:
            self.cfg.method_params = params
            distributed = self.defense.distributed
            self.defense = self.cfg.validate(self.dist.world_size)
            self.defense.distributed = distributed

    def write_config(self) -> None:
        info = self.info
        atomic_write_json(self.run_dir / CONFIG_FILE, {
            "config": self.cfg.to_dict(), "model_spec": self.model_spec(),
            "defense": repr(self.defense), "world_size": self.dist.world_size, "device": str(self.device),
            "amp_active": self.amp, "amp_dtype": str(self.amp_dtype).replace("torch.", "") if self.amp else None,
            "eval_attack": dict(zip(("eps", "steps", "step_size"), self.cfg.eval_attack())),
            "dataset": {"name": info.name, "exact": info.exact, "note": info.note},
            "provenance": provenance(),
        })
