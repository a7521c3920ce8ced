#!/usr/bin/env python
"""One-command GPU run (issue 34, item 3): PreAct ResNet-18 on the lossy JPEG CIFAR-10, Feature Scattering and
Madry PGD-AT, trained and evaluated inside one time budget; continues from the results of a previous run.

    python scripts/gpu_run.py [--budget-min 8] [--official-fs PATH] [--save-weights] [--fresh] [--eval-only]
    python scripts/gpu_run.py --smoke --out /tmp/gpu-smoke      # the CPU check that CI runs (tests/test_gpu_run.py)
    make gpu-run ARGS="--official-fs ../FeatureScatter"

What one run does (docs/gpu.md has the details):

1. decodes ``CIFAR10-JPEG/{train,test}`` under the data root once into uint8 tensors, cached in
   ``<out>/.cache/`` (a later run reads the cache and skips decoding), and moves them to the device;
2. optionally times one FS training step of ours against the official FS code (``--official-fs PATH``, CUDA only);
3. trains each method with the package's defense (``get_defense``) and model (``get_model("preact_resnet18")``):
   augmentation (4-pixel-padded random crop, horizontal flip) on the device in batches, bf16 autocast around the
   network's forward (losses, attacks' projections and the OT solver stay float32), channels_last, SGD momentum
   0.9, weight decay 5e-4, a one-cycle (triangular) learning rate per cycle; the training time left after a reserve
   for the evaluation is split evenly between the methods and each cycle's number of epochs is chosen from the
   measured time of a few steps;
4. evaluates every method with :func:`ot_robust.evaluation.suite.evaluate` on the same class-balanced first 1,000 test
   images (clean, PGD-20 at 8/255 step 2/255, AutoAttack standard at 8/255) and writes ``eval.json`` and
   ``masks.npz`` with the package's writers (the same keys as the pipeline's ``steps.run_evaluate``);
5. writes ``<out>/<method>/metrics.jsonl`` (one line per epoch), ``checkpoint.pt`` (every epoch, at most every
   ``--checkpoint-every-s``, and at the end), ``config.json``, ``model.pt`` with ``--save-weights``, and
   ``<out>/provenance.json``.

A later run continues: an unfinished cycle is resumed where it stopped; a finished one is followed by a new cycle
(warm restart) from the saved weights and optimiser. ``--fresh`` starts over. Device chosen at run time (``cuda``
if available, else cpu).
"""
from __future__ import annotations

import time

_T_START = time.monotonic()  # the budget counts from here (before torch is imported); main() called again resets it
_CALLS = [0]

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the package from this checkout also when it is not pip-installed
    sys.path.insert(0, str(REPO))
FORMAT = "ot_robust.gpu_run/1"
DATASET = "cifar10-jpeg"
DATASET_NOTE = "CIFAR-10 JPEG copy: lossy"
EPS = 8 / 255
PGD20 = "pgd-linf eps=8/255 steps=20 step=2/255"
AUTOATTACK = "autoattack eps=8/255"
SMOKE_AUTOATTACK = "apgd-ce eps=8/255 steps=5"
METHODS: dict[str, dict[str, Any]] = {
    # FS paper settings (Zhang & Wang 2019, Sec. 5): T = 1 step of size eps, label smoothing 0.5, Sinkhorn tau 0.01
    "feature_scattering": dict(eps=EPS, step_size=EPS, steps=1, label_smoothing=0.5, reg=0.01),
    # Madry PGD-AT as the FS paper trains it: K = 7 steps of 2/255 from a uniform start
    "pgd_at": dict(eps=EPS, step_size=2 / 255, steps=7),
}
# settings that differ between the GPU run and the CPU smoke run (None on the command line = this default)
FULL = dict(model="preact_resnet18", n_train=None, batch_size=128, max_batches=None, max_epochs=None, n_eval=1000,
            n_heldout=512, heldout_steps=20, eval_batch=250, sanity=True, autoattack=AUTOATTACK,
            eval_reserve_min=3.0, warmup_steps=3, timed_steps=10, out="results/gpu")
SMOKE = dict(model="small_cnn", n_train=512, batch_size=16, max_batches=2, max_epochs=1, n_eval=64, n_heldout=32,
             heldout_steps=5, eval_batch=64, sanity=False, autoattack=SMOKE_AUTOATTACK, eval_reserve_min=0.0,
             warmup_steps=0, timed_steps=1, out="results/gpu-smoke")
# the keys of a checkpoint's config that must equal the current run's to continue it
RESUME_KEYS = ("method", "method_params", "model", "batch_size", "n_train", "lr", "momentum", "weight_decay",
               "schedule", "seed")


def log(msg: str) -> None:
    print(f"[gpu_run {time.monotonic() - _T_START:6.1f}s] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------------------- data
def default_data_root() -> Path:
    """``$OT_ROBUST_DATA``, else the first of ``../shared/data``, ``./shared/data``, ``./data`` that exists."""
    if os.environ.get("OT_ROBUST_DATA"):
        return Path(os.environ["OT_ROBUST_DATA"]).expanduser()
    for p in (REPO.parent / "shared" / "data", REPO / "shared" / "data", REPO / "data"):
        if (p / "CIFAR10-JPEG").is_dir():
            return p
    return REPO / "data"


def _decode(paths: list[str]) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` from image files, decoded with PIL as ``ImageFolderDataset`` does (``convert("RGB")``),
    in a thread pool (PIL releases the GIL while decoding)."""
    from PIL import Image

    def one(p: str) -> np.ndarray:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))

    if not paths:
        return torch.zeros(0, 3, 32, 32, dtype=torch.uint8)
    with ThreadPoolExecutor(max_workers=min(32, os.cpu_count() or 1)) as pool:
        arrays = list(pool.map(one, paths, chunksize=256))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def class_balanced(targets: torch.Tensor) -> torch.Tensor:
    """The package's class round-robin order (:func:`ot_robust.core.data.class_round_robin`): its first ``n`` are the
    pipeline's class-balanced evaluation images."""
    from ot_robust.core.data import class_round_robin

    return class_round_robin(targets)


def load_data(root: Path, cache_dir: Path, n_train: int | None, n_eval: int, n_heldout: int) -> dict[str, Any]:
    """Decoded CIFAR-10 JPEG as uint8 tensors (CPU), from the cache when it is there.

    Returns ``{"train_x", "train_y", "eval_x", "eval_y", "eval_idx", "held_x", "held_y", "held_idx", "info"}``:
    the training images (all 50,000, or the first ``n_train`` of the class round-robin, in dataset order), the
    evaluation images (the first ``n_eval`` of the test set's class round-robin, the pipeline's order) and the
    held-out batch of the per-epoch check (the last ``n_heldout`` of that order: disjoint from the evaluation).
    """
    from ot_robust.core.utils import atomic_torch_save

    tag = "full" if n_train is None else f"train{n_train}-eval{n_eval}-held{n_heldout}"
    path = cache_dir / f"cifar10-jpeg-uint8-{tag}.pt"
    t0 = time.monotonic()
    blob = None
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file: decode again
            log(f"cache {path} unreadable ({type(e).__name__}); decoding again")
    from_cache = blob is not None
    if blob is None:
        from ot_robust.core.data import get_dataset

        train_ds, test_ds = (get_dataset(DATASET, s, root=root, augment=False) for s in ("train", "test"))
        train_y_all, test_y_all = train_ds.targets.long(), test_ds.targets.long()
        if n_train is None:
            train_idx = torch.arange(len(train_y_all))
        else:
            train_idx = class_balanced(train_y_all)[:n_train].sort().values
        order = class_balanced(test_y_all)
        need = torch.arange(len(test_y_all)) if n_train is None else \
            torch.cat([order[:n_eval], order[len(order) - n_heldout:]]).unique()
        log(f"decoding {len(train_idx)} train + {len(need)} test JPEGs from {root / 'CIFAR10-JPEG'} "
            f"({min(32, os.cpu_count() or 1)} threads)")
        blob = {"format": "ot_robust.cifar10_jpeg_uint8/1", "train_x": _decode([train_ds.folder.samples[i][0]
                                                                                for i in train_idx.tolist()]),
                "train_y": train_y_all[train_idx], "train_idx": train_idx,
                "test_x": _decode([test_ds.folder.samples[i][0] for i in need.tolist()]),
                "test_idx": need, "test_all_y": test_y_all, "root": str(root),
                "classes": list(train_ds.classes)}
        atomic_torch_save(blob, path)
    test_all_y = blob["test_all_y"]
    order = class_balanced(test_all_y)
    pos = {int(i): k for k, i in enumerate(blob["test_idx"].tolist())}

    def pick(idx: torch.Tensor):
        return blob["test_x"][[pos[int(i)] for i in idx.tolist()]], test_all_y[idx], idx

    eval_x, eval_y, eval_idx = pick(order[:n_eval])
    held_x, held_y, held_idx = pick(order[len(order) - n_heldout:])
    if len(set(eval_idx.tolist()) & set(held_idx.tolist())):
        raise ValueError(f"n_eval={n_eval} + n_heldout={n_heldout} exceed the {len(order)} test images")
    info = {"cache": str(path), "from_cache": from_cache, "seconds": time.monotonic() - t0,
            "train_images": len(blob["train_y"]), "decoded_test_images": len(blob["test_idx"]),
            "data_root": blob.get("root"), "decoder": "PIL (convert('RGB')), as ImageFolderDataset"}
    log(f"data {'read from cache' if from_cache else 'decoded and cached'} ({path}): "
        f"{info['train_images']} train images, {n_eval} evaluation + {n_heldout} held-out test images, "
        f"{info['seconds']:.1f} s")
    return dict(train_x=blob["train_x"], train_y=blob["train_y"], eval_x=eval_x, eval_y=eval_y, eval_idx=eval_idx,
                held_x=held_x, held_y=held_y, held_idx=held_idx, info=info)


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None, pad: int = 4,
                  flip: bool = True) -> torch.Tensor:
    """Random crop with ``pad``-pixel zero padding, then a horizontal flip with probability 1/2, per image, for a
    whole batch on its device (uint8 or float ``(B, C, H, W)``; same dtype out). The same augmentation as
    :func:`ot_robust.core.data.augment_image`, drawn from ``generator`` (on ``x``'s device)."""
    B, C, H, W = x.shape
    dev = x.device
    xp = F.pad(x, (pad, pad, pad, pad))
    i = torch.randint(0, 2 * pad + 1, (B,), device=dev, generator=generator)
    j = torch.randint(0, 2 * pad + 1, (B,), device=dev, generator=generator)
    rows = (i[:, None] + torch.arange(H, device=dev))[:, None, :, None]
    cols = (j[:, None] + torch.arange(W, device=dev))[:, None, None, :]
    out = xp[torch.arange(B, device=dev)[:, None, None, None], torch.arange(C, device=dev)[None, :, None, None],
             rows, cols]
    if flip:
        f = torch.rand(B, device=dev, generator=generator) < 0.5
        out = torch.where(f[:, None, None, None], out.flip(-1), out)
    return out


# --------------------------------------------------------------------------------------------------------- model
class AutocastForward(nn.Module):
    """The classifier's forward under autocast (bf16 on CUDA), outputs cast back to float32: the network runs in
    mixed precision while everything the defenses compute from its outputs (cross-entropy, the FS cosine cost and
    Sinkhorn, the attack steps) stays float32. Backward passes follow the forward's dtypes as usual."""

    def __init__(self, model: nn.Module, device_type: str, dtype: torch.dtype | None):
        super().__init__()
        self.model, self.device_type, self.dtype = model, device_type, dtype

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    def forward(self, x: torch.Tensor, return_features: bool | str = False):
        with torch.autocast(self.device_type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None):
            out = self.model(x, return_features=return_features)
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()


def lr_at(step: int, total: int, peak: float) -> float:
    """One-cycle (triangular) learning rate: 0 -> ``peak`` at half the cycle -> 0 (Wong et al. 2020, the PreAct
    ResNet-18 adversarial-training schedule), evaluated at the middle of step ``step`` of ``total``."""
    return float(np.interp(step + 0.5, [0, total / 2, total], [0.0, peak, 0.0]))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rng_states(device: torch.device) -> dict[str, Any]:
    st = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state(device)
    return st


def set_rng_states(st: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(st["torch"])
    if device.type == "cuda" and "cuda" in st:
        torch.cuda.set_rng_state(st["cuda"], device)


class MethodRun:
    """One method's model, optimiser, cycle bookkeeping and files under ``<out>/<method>/``."""

    def __init__(self, method: str, a: argparse.Namespace, data: dict[str, Any], device: torch.device,
                 amp_dtype: torch.dtype | None):
        from ot_robust.defenses import get_defense
        from ot_robust.models import get_model

        self.method, self.a, self.device, self.amp_dtype = method, a, device, amp_dtype
        self.dir = Path(a.out) / method
        self.params = dict(METHODS[method])
        torch.manual_seed(a.seed)
        self.defense = get_defense(method, **self.params)
        self.defense.validate(a.batch_size)
        self.model = get_model(a.model, DATASET).to(device).to(memory_format=torch.channels_last)
        self.net = AutocastForward(self.model, device.type, amp_dtype)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.0, momentum=a.momentum,
                                   weight_decay=a.weight_decay)
        self.train_x = data["train_x_dev"]
        self.train_y = data["train_y_dev"]
        self.held_x, self.held_y = data["held_x_dev"], data["held_y_dev"]
        n = len(self.train_y)
        self.steps_per_epoch = n // a.batch_size
        if a.max_batches:
            self.steps_per_epoch = min(self.steps_per_epoch, a.max_batches)
        if self.steps_per_epoch < 1:
            raise ValueError(f"{n} training images give no batch of {a.batch_size}")
        self.epoch = 0                   # epochs done in total (over every run)
        self.cycles: list[dict] = []     # [{"start_epoch", "epochs"}], the last one may be unfinished
        self.resumed_from: int | None = None
        self.run_epochs = 0
        self.train_s = 0.0
        self.step_s: float | None = None
        self.epoch_s: float | None = None
        self.last_ckpt = -math.inf

    # ------------------------------------------------------------------------------------------- config / files
    def config(self) -> dict[str, Any]:
        a = self.a
        return {"method": self.method, "method_params": self.params, "model": a.model, "dataset": DATASET,
                "batch_size": a.batch_size, "n_train": len(self.train_y), "lr": a.lr, "momentum": a.momentum,
                "weight_decay": a.weight_decay, "schedule": "one-cycle (triangular) per cycle", "seed": a.seed,
                "steps_per_epoch": self.steps_per_epoch, "amp": str(self.amp_dtype).replace("torch.", "")
                if self.amp_dtype else None, "channels_last": True, "augment": "crop (pad 4) + flip, on device"}

    def fresh(self) -> None:
        from ot_robust.evaluation.batch_cache import clear

        for name in ("checkpoint.pt", "checkpoint.prev.pt", "checkpoint.pt.sha256", "checkpoint.prev.pt.sha256",
                     "metrics.jsonl", "eval.json", "masks.npz", "model.pt", "model.pt.sha256", "config.json"):
            (self.dir / name).unlink(missing_ok=True)
        clear(self.dir / "partial")

    def resume(self, keys: tuple[str, ...] = RESUME_KEYS) -> bool:
        """Load the newest intact checkpoint of ``<out>/<method>/`` (True if there was one); the settings in
        ``keys`` must be the checkpoint's (only the model for ``--eval-only``)."""
        from ot_robust.training.checkpoint import load_latest

        state, path = load_latest(self.dir)
        if state is None:
            return False
        if state.get("format") != FORMAT:
            raise SystemExit(f"{path} is not a gpu_run checkpoint; use --fresh or another --out")
        old, new = state["config"], self.config()
        diff = [k for k in keys if json.dumps(old.get(k), sort_keys=True) != json.dumps(new.get(k),
                                                                                                 sort_keys=True)]
        if diff:
            changes = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff)
            raise SystemExit(f"{path} was trained with other settings ({changes}); use --fresh to start over "
                             "or another --out")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.epoch, self.cycles = int(state["epoch"]), list(state["cycles"])
        set_rng_states(state["rng"], self.device)
        self.resumed_from = self.epoch
        self._truncate_metrics()
        if (self.dir / "metrics.jsonl").is_file():  # an unfinished cycle goes on without a new measurement:
            lines = (self.dir / "metrics.jsonl").read_text().splitlines()  # its last epoch's time is the estimate
            self.epoch_s = json.loads(lines[-1]).get("seconds") if lines else None
        cyc = self.cycles[-1] if self.cycles else None
        where = f"cycle {len(self.cycles)}: {self.epoch - cyc['start_epoch']}/{cyc['epochs']} epochs" if cyc else ""
        log(f"{self.method}: resumed from {path} after epoch {self.epoch} ({where})")
        return True

    def _truncate_metrics(self) -> None:
        path = self.dir / "metrics.jsonl"
        if path.is_file():
            lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
            keep = [ln for ln in lines if json.loads(ln)["epoch"] <= self.epoch]
            if len(keep) != len(lines):
                path.write_text("".join(ln + "\n" for ln in keep))

    def save(self, force: bool = False) -> None:
        from ot_robust.training.checkpoint import save_checkpoint
        from ot_robust.core.utils import atomic_write_json

        if not force and time.monotonic() - self.last_ckpt < self.a.checkpoint_every_s:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        state = {"format": FORMAT, "epoch": self.epoch, "cycles": self.cycles, "config": self.config(),
                 "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                 "rng": rng_states(self.device)}
        save_checkpoint(self.dir, state)
        self.last_ckpt = time.monotonic()
        atomic_write_json(self.dir / "config.json", {"config": {**self.config(), "epochs": self.epoch},
                                                     "cycles": self.cycles, "dataset": {"name": DATASET,
                                                                                        "exact": False,
                                                                                        "note": DATASET_NOTE}})

    def save_weights(self) -> Path:
        """``model.pt`` in the package's model format (``ot_robust.models.loading.load_model`` reads it)."""
        import hashlib

        from ot_robust.core.utils import atomic_torch_save, atomic_write_bytes

        path = self.dir / "model.pt"
        spec = {"name": self.a.model, "dataset": DATASET, "num_classes": self.model.num_classes, "params": {}}
        data = atomic_torch_save({"format": "ot_robust.model/1", "spec": spec, "state_dict": self.model.state_dict(),
                                  "epochs": self.epoch, "config": self.config()}, path)
        atomic_write_bytes(self.dir / "model.pt.sha256", (hashlib.sha256(data).hexdigest() + "\n").encode())
        return path

    # ------------------------------------------------------------------------------------------------ training
    def _batch(self, idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = augment_batch(self.train_x[idx], gen).float().div_(255).contiguous(memory_format=torch.channels_last)
        return x, self.train_y[idx]

    def _step(self, x: torch.Tensor, y: torch.Tensor, lr: float):
        for g in self.opt.param_groups:
            g["lr"] = lr
        out = self.defense.loss(self.net, x, y)
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        self.opt.step()
        return out

    def _order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.a.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.train_y), generator=g)
        return perm[: self.steps_per_epoch * self.a.batch_size].view(self.steps_per_epoch, self.a.batch_size)

    def _aug_gen(self, epoch: int) -> torch.Generator:
        return torch.Generator(self.device).manual_seed(self.a.seed * 1_000_003 + 7919 * (epoch + 1))

    def measure(self) -> float:
        """Seconds per training step, timed on ``timed_steps`` steps after ``warmup_steps`` (cudnn autotuning)
        and undone afterwards (weights, optimiser and RNG restored)."""
        a = self.a
        keep = (copy.deepcopy(self.model.state_dict()), copy.deepcopy(self.opt.state_dict()), rng_states(self.device))
        order, gen = self._order(10 ** 6), self._aug_gen(10 ** 6)
        self.model.train()
        times = []
        for k in range(a.warmup_steps + a.timed_steps):
            idx = order[k % len(order)].to(self.device)
            x, y = self._batch(idx, gen)
            sync(self.device)
            t = time.perf_counter()
            self._step(x, y, 0.1 * a.lr)
            sync(self.device)
            if k >= a.warmup_steps:
                times.append(time.perf_counter() - t)
        self.model.load_state_dict(keep[0])
        self.opt.load_state_dict(keep[1])
        set_rng_states(keep[2], self.device)
        self.step_s = statistics.median(times)
        return self.step_s

    def heldout(self) -> dict[str, Any]:
        """Clean and PGD accuracy (%) on the fixed held-out batch, float32, eval mode, fixed attack seed."""
        from ot_robust.attacks import PGD
        from ot_robust.training.trainer import clean_and_robust_counts

        attack = PGD(eps=EPS, steps=self.a.heldout_steps, step_size=2 / 255, seed=self.a.seed)
        self.model.eval()
        clean, robust = clean_and_robust_counts(self.model, self.held_x, self.held_y, attack, 256)
        self.model.train()
        n = len(self.held_y)
        return {"heldout_clean_acc": 100.0 * clean / n, "heldout_pgd_acc": 100.0 * robust / n, "heldout_n": n,
                "heldout_pgd": f"pgd-linf eps=8/255 steps={self.a.heldout_steps} step=2/255"}

    def plan(self, share_s: float) -> None:
        """Start a new cycle when the last one is finished (or there is none): its epochs from the measured step
        time and this method's share of the budget (at least 1; ``--epochs`` / ``--max-epochs`` override)."""
        if self.cycles and self.epoch < self.cycles[-1]["start_epoch"] + self.cycles[-1]["epochs"]:
            cyc = self.cycles[-1]
            log(f"{self.method}: continuing cycle {len(self.cycles)} ({cyc['start_epoch'] + cyc['epochs'] - self.epoch}"
                f" of {cyc['epochs']} epochs left)")
            return
        a = self.a
        t0 = time.monotonic()
        step_s = self.measure()
        avail = share_s - (time.monotonic() - t0)
        # an epoch: its steps plus the held-out check (~ (heldout_steps + 2) forward/backward passes per image)
        self.epoch_s = step_s * self.steps_per_epoch * 1.03 + self._heldout_estimate(step_s)
        if a.epochs:
            n = a.epochs
        else:
            n = max(1, int(avail // self.epoch_s))
            if a.max_epochs:
                n = min(n, a.max_epochs)
        self.cycles.append({"start_epoch": self.epoch, "epochs": n, "planned_from": {
            "share_s": round(share_s, 1), "step_s": step_s, "epoch_s_estimate": self.epoch_s}})
        log(f"{self.method}: {step_s * 1000:.0f} ms/step x {self.steps_per_epoch} steps -> "
            f"~{self.epoch_s:.1f} s/epoch; "
            f"new cycle {len(self.cycles)} of {n} epochs (share {share_s:.0f} s)")

    def _heldout_estimate(self, step_s: float) -> float:
        # a training step is ~ (K + 1) forward/backward passes of the batch (FS: ~2.3); the held-out check is
        # (heldout_steps + 2) passes of n_heldout images in float32 (assume 2x slower than the mixed-precision step)
        passes = self.params.get("steps", 1) + 1.3 if self.method == "feature_scattering" else \
            self.params.get("steps", 1) + 1
        per_image_pass = step_s / (passes * self.a.batch_size)
        return 2.0 * per_image_pass * len(self.held_y) * (self.a.heldout_steps + 2)

    def train(self, deadline: float) -> None:
        """Epochs of the current cycle until it is finished or the next epoch would end after ``deadline``
        (at least one epoch per run)."""
        cyc = self.cycles[-1]
        total = cyc["epochs"] * self.steps_per_epoch
        t_run = time.monotonic()
        while self.epoch < cyc["start_epoch"] + cyc["epochs"]:
            if self.run_epochs and time.monotonic() + (self.epoch_s or 0.0) > deadline:
                log(f"{self.method}: stopping before epoch {self.epoch + 1}: its ~{self.epoch_s:.0f} s would pass "
                    "the budget (the next run continues this cycle)")
                break
            t0 = time.monotonic()
            e_in = self.epoch - cyc["start_epoch"]
            order, gen = self._order(self.epoch), self._aug_gen(self.epoch)
            self.model.train()
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), device=self.device)
            logs: dict[str, float] = {}
            lr0 = lr_at(e_in * self.steps_per_epoch, total, self.a.lr)
            for s in range(self.steps_per_epoch):
                idx = order[s].to(self.device, non_blocking=True)
                x, y = self._batch(idx, gen)
                out = self._step(x, y, lr_at(e_in * self.steps_per_epoch + s, total, self.a.lr))
                loss_sum += out.loss.detach() * len(y)
                if out.logits_adv is not None:
                    correct += (out.logits_adv.argmax(1) == y).sum()
                for k, v in out.logs.items():
                    logs[k] = logs.get(k, 0.0) + float(v) * len(y)
            sync(self.device)
            train_s = time.monotonic() - t0
            n_img = self.steps_per_epoch * self.a.batch_size
            self.epoch += 1
            self.run_epochs += 1
            rec = {"epoch": self.epoch, "cycle": len(self.cycles), "epoch_in_cycle": e_in + 1,
                   "cycle_epochs": cyc["epochs"], "lr_start": lr0,
                   "lr_end": lr_at((e_in + 1) * self.steps_per_epoch - 1, total, self.a.lr),
                   "loss": float(loss_sum) / n_img, "train_acc": 100.0 * float(correct) / n_img,
                   **{f"train_{k}": v / n_img for k, v in sorted(logs.items())}, **self.heldout(),
                   "images": n_img, "train_seconds": train_s, "images_per_s": n_img / max(train_s, 1e-9)}
            done = self.epoch == cyc["start_epoch"] + cyc["epochs"]
            rec["seconds"] = time.monotonic() - t0
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            self.save(force=done)
            rec["seconds"] = time.monotonic() - t0
            self.epoch_s = rec["seconds"]
            log(f"{self.method}: epoch {self.epoch} (cycle {len(self.cycles)}: {e_in + 1}/{cyc['epochs']}) "
                f"loss {rec['loss']:.4f}, held-out clean {rec['heldout_clean_acc']:.1f}% "
                f"pgd{self.a.heldout_steps} {rec['heldout_pgd_acc']:.1f}%, {rec['images_per_s']:.0f} img/s, "
                f"{rec['seconds']:.1f} s")
        self.save(force=True)
        self.train_s += time.monotonic() - t_run

    @property
    def cycle_complete(self) -> bool:
        return bool(self.cycles) and self.epoch >= self.cycles[-1]["start_epoch"] + self.cycles[-1]["epochs"]


# ---------------------------------------------------------------------------------------------------- evaluation
def evaluate_method(run: MethodRun, data: dict[str, Any], a: argparse.Namespace, phase: str,
                    hard_deadline: float, profile: str) -> dict[str, Any]:
    """``phase="pgd"``: clean + PGD-20 (+ sanity checks) -> eval.json, masks.npz (AutoAttack pending);
    ``phase="autoattack"``: adds AutoAttack on the same images (stopped at ``hard_deadline`` after the batch that
    crosses it; its finished batches stay in ``partial/`` and ``--eval-only`` finishes them). The keys of eval.json
    are those of the pipeline's :func:`ot_robust.study.tasks.run_evaluate`."""
    from ot_robust.evaluation.batch_cache import clear as clear_cache
    from ot_robust.evaluation.suite import evaluate
    from ot_robust.evaluation.results import load_masks, save_masks
    from ot_robust.evaluation.sanity import check_pgd_autoattack_gap
    from ot_robust.core.stats import wilson_interval
    from ot_robust.study.tasks import _masks_by_key, worst_by_threat_model, write_json
    from ot_robust.training.budget import BudgetReached

    t0 = time.monotonic()
    model = run.model.eval()
    x, y = data["eval_x"].float().div_(255), data["eval_y"]
    partial = run.dir / "partial"
    specs = {"pgd20": PGD20}
    kw = dict(seed=0, batch_size=a.eval_batch, device=run.device, progress=False, order="first", cache_dir=partial)
    path = run.dir / "eval.json"
    if phase == "pgd":
        report = evaluate(model, (x, y), list(specs.values()), n_examples=len(y), sanity=a.sanity, **kw)
        masks = _masks_by_key(report, specs)
        result = {"report": report.to_dict(), "sanity": list(report.sanity), "autoattack_status": "pending"}
    else:
        result = json.loads(path.read_text())
        masks, _ = load_masks(run.dir / "masks.npz")
        masks = {k: v.tolist() for k, v in masks.items() if k != "autoattack"}
        result["sanity"] = [s for s in result["sanity"] if s.get("check") != "pgd_autoattack_gap"]
        try:
            rep = evaluate(model, (x, y), [a.autoattack], n_examples=len(y), sanity=False,
                           should_stop=lambda: time.monotonic() > hard_deadline, **kw)
        except BudgetReached as e:
            result["autoattack_status"] = f"stopped at the budget: {e} (run again with --eval-only to finish)"
            log(f"{run.method}: AutoAttack {result['autoattack_status']}")
        else:
            masks["autoattack"] = _masks_by_key(rep, {"autoattack": a.autoattack})["autoattack"]
            result["autoattack_report"] = rep.to_dict()
            result["autoattack_status"] = "done"
    all_specs = dict(specs, **({"autoattack": a.autoattack} if "autoattack" in masks else {}))
    n = {k: len(m) for k, m in masks.items()}
    accuracy = {k: 100.0 * sum(m) / len(m) for k, m in masks.items()}
    worst = worst_by_threat_model(masks, all_specs)
    linf = worst.get("linf_all") or worst.get("linf") or {}
    result.update({
        "profile": profile, "experiment": run.method, "label": run.method, "method": run.method,
        "run_dir": str(run.dir), "dataset": DATASET, "dataset_note": DATASET_NOTE, "n_examples": len(y),
        "order": "balanced", "attacks": specs, "strong_attacks": {},
        "accuracy": {k: v for k, v in accuracy.items() if k != "autoattack"}, "n": n,
        "ci": {k: list(wilson_interval(int(sum(m)), len(m))) for k, m in masks.items()},
        "worst": worst, "worst_case": linf.get("accuracy"), "worst_case_n": linf.get("n", len(y)),
        "autoattack": accuracy.get("autoattack"), "autoattack_spec": a.autoattack, "transfer": {},
        "masks": "masks.npz", "epochs": run.epoch, "cycles": run.cycles, "cycle_complete": run.cycle_complete,
        "model": a.model, "method_params": run.params, "smoke": a.smoke})
    if "autoattack" in masks:
        result["autoattack_n_examples"] = n["autoattack"]
        result["sanity"].append(check_pgd_autoattack_gap(masks, "pgd20"))
    if a.smoke:
        result["smoke_note"] = (f"smoke run: {a.model} on {len(run.train_y)} training images, {len(y)} test images; "
                                f"AutoAttack replaced by '{a.autoattack}'; sanity checks "
                                f"{'on' if a.sanity else 'off'}: not a result")
    from ot_robust.core.utils import provenance

    result["provenance"] = provenance(profile=profile, experiment=run.method)
    save_masks(run.dir / "masks.npz", masks, data["eval_idx"].tolist())
    write_json(path, result)
    if result["autoattack_status"] == "done":
        clear_cache(partial)
    secs = time.monotonic() - t0
    acc = ", ".join(f"{k} {v:.1f}%" for k, v in accuracy.items())
    log(f"{run.method}: evaluated ({phase}) on {len(y)} images in {secs:.1f} s: {acc}")
    return {"seconds": secs, "accuracy": accuracy, "autoattack_status": result["autoattack_status"]}


# ------------------------------------------------------------------------------------------------- official FS
def load_official_fs(path: str | None) -> tuple[Any, str]:
    """``(Attack_FeaScatter class, "")`` from a local copy of Haichao-Zhang/FeatureScatter, or ``(None, why not)``.

    The official modules are imported under their own top-level names (``attack_methods``, ``ot``, ``utils``,
    ``models``), with any modules of those names set aside and restored afterwards; ``zero_gradients`` (removed
    from PyTorch 1.9, imported by the official code) is supplied when missing."""
    if not path:
        return None, "no --official-fs PATH given (a local copy of Haichao-Zhang/FeatureScatter)"
    root = Path(path).expanduser().resolve()
    missing = [f for f in ("attack_methods.py", "ot.py", "utils.py", "models/__init__.py") if not (root / f).is_file()]
    if missing:
        return None, f"{root} lacks {', '.join(missing)} (expected a copy of Haichao-Zhang/FeatureScatter)"
    if not torch.cuda.is_available():
        return None, "the official FS code runs on CUDA only (it calls .to('cuda') and torch.cuda.FloatTensor)"
    import importlib

    # the module (``import torch.autograd.gradcheck as m`` would give the function of that name)
    gradcheck = importlib.import_module("torch.autograd.gradcheck")
    if not hasattr(gradcheck, "zero_gradients"):
        def zero_gradients(x):  # the PyTorch < 1.9 helper the official code imports
            if isinstance(x, torch.Tensor) and x.grad is not None:
                x.grad.detach_()
                x.grad.zero_()
        gradcheck.zero_gradients = zero_gradients
    names = ("attack_methods", "ot", "utils", "models")
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] in names}
    sys.path.insert(0, str(root))
    try:
        mod = importlib.import_module("attack_methods")
        return mod.Attack_FeaScatter, ""
    except Exception as e:  # noqa: BLE001 - report any import failure as a skip
        return None, f"importing the official code from {root} failed: {type(e).__name__}: {e}"
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if k.split(".")[0] in names]:
            sys.modules.pop(k)
        sys.modules.update(saved)


class _OfficialNet(nn.Module):
    """Our classifier with the official code's interface: inputs in [-1, 1] (its normalisation), returns
    ``(logits, features)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model((x + 1) / 2, return_features=True)


def time_official_fs(a: argparse.Namespace, data: dict[str, Any], device: torch.device,
                     amp_dtype: torch.dtype | None) -> dict[str, Any]:
    """Median time of one FS training step: ours (training settings, and float32 NCHW) vs the official
    ``Attack_FeaScatter`` step (float32, its per-batch deep copy), same GPU, model, initial weights and batch;
    interleaved rounds after warm-up. Returns the timings and ratios (official / ours), or ``{"skipped": why}``
    (printed as one line) when there is no official copy, no CUDA, or the comparison fails."""
    cls, why = load_official_fs(a.official_fs)
    if cls is None:
        msg = f"official FS timing skipped: {why}"
        print(msg, flush=True)
        return {"skipped": msg}
    try:
        return _time_official_fs(cls, a, data, device, amp_dtype)
    except Exception as e:  # noqa: BLE001 - an optional comparison never stops the run
        msg = f"official FS timing skipped: it failed with {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        print(msg, flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {"skipped": msg}


def _time_official_fs(cls, a: argparse.Namespace, data: dict[str, Any], device: torch.device,
                      amp_dtype: torch.dtype | None) -> dict[str, Any]:
    from ot_robust.defenses import get_defense
    from ot_robust.models import get_model

    t0 = time.monotonic()
    torch.manual_seed(a.seed)
    base = get_model(a.model, DATASET).to(device)
    gen = torch.Generator(device).manual_seed(a.seed)
    # a random batch (the training set is stored class by class): Sinkhorn's iteration count depends on the batch
    idx = torch.randperm(len(data["train_y_dev"]), generator=torch.Generator().manual_seed(a.seed))[:a.batch_size]
    idx = idx.to(device)
    x = augment_batch(data["train_x_dev"][idx], gen).float().div_(255)
    y = data["train_y_dev"][idx]

    def sgd(m):
        return torch.optim.SGD(m.parameters(), lr=1e-3, momentum=a.momentum, weight_decay=a.weight_decay)

    ours_cl = copy.deepcopy(base).to(memory_format=torch.channels_last)
    ours_net = AutocastForward(ours_cl, device.type, amp_dtype)
    ours_fp32 = copy.deepcopy(base)
    fs = get_defense("feature_scattering", **METHODS["feature_scattering"])
    official = cls(_OfficialNet(copy.deepcopy(base)), {"train": True, "epsilon": 2 * EPS, "num_steps": 1,
                                                       "step_size": 2 * EPS, "random_start": True, "ls_factor": 0.5})
    opts = {"ours": sgd(ours_cl), "ours_fp32_nchw": sgd(ours_fp32), "official": sgd(official)}
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def step(name):
        if name == "ours":
            loss = fs.loss(ours_net, x_cl, y).loss
        elif name == "ours_fp32_nchw":
            loss = fs.loss(ours_fp32, x, y).loss
        else:  # the official training step (fs_main.py): net(inputs, targets) -> (outputs, loss_fs, ...)
            loss = official(x * 2 - 1, y)[1]
        opts[name].zero_grad()
        loss.backward()
        opts[name].step()

    times: dict[str, list[float]] = {k: [] for k in opts}
    for r in range(a.official_rounds + 2):
        for name in opts:
            sync(device)
            t = time.perf_counter()
            step(name)
            sync(device)
            if r >= 2:
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"official_path": str(Path(a.official_fs).resolve()), "batch_size": a.batch_size, "model": a.model,
           "rounds": a.official_rounds, "median_ms": {k: 1000 * v for k, v in med.items()},
           "ratio_official_over_ours": med["official"] / med["ours"],
           "ratio_official_over_ours_fp32_nchw": med["official"] / med["ours_fp32_nchw"],
           "ours": "get_defense('feature_scattering') step with the training settings ("
                   + (f"{str(amp_dtype).replace('torch.', '')} autocast" if amp_dtype else "float32")
                   + " + channels_last); ours_fp32_nchw: the same step in float32 NCHW",
           "official": "Attack_FeaScatter (eps 16/255 on [-1, 1] inputs = 8/255 on [0, 1]; model deep-copied per "
                       "step), float32 NCHW, as its fs_main.py trains", "seconds": time.monotonic() - t0}
    print(f"FS step time: ours {1000 * med['ours']:.1f} ms, ours fp32 NCHW {1000 * med['ours_fp32_nchw']:.1f} ms, "
          f"official {1000 * med['official']:.1f} ms; ratio official/ours {out['ratio_official_over_ours']:.2f} "
          f"(vs fp32 NCHW {out['ratio_official_over_ours_fp32_nchw']:.2f})", flush=True)
    del ours_cl, ours_fp32, official, opts, base
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


# ------------------------------------------------------------------------------------------------------- driver
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-min", type=float, default=8.0,
                   help="wall-clock minutes for the whole run (default 8): the evaluation reserve is set aside and "
                        "the rest of the training time is split evenly between the methods")
    p.add_argument("--hard-limit-min", type=float, default=8.5,
                   help="AutoAttack stops after the batch that passes this many minutes (default 8.5; a batch of "
                        "250 images is expected to take under a minute on a GPU); its finished batches are kept and "
                        "--eval-only finishes them")
    p.add_argument("--out", default=None, help="output folder (default results/gpu; results/gpu-smoke with --smoke)")
    p.add_argument("--cache-dir", default=None, help="where the decoded tensors are cached (default <out>/.cache)")
    p.add_argument("--data-root", default=None, help="folder holding CIFAR10-JPEG/ (default $OT_ROBUST_DATA, "
                                                     "else ../shared/data, ./shared/data, ./data)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {list(METHODS)}")
    p.add_argument("--smoke", action="store_true",
                   help="CPU check: small_cnn, a few batches of each method, 64 test images, APGD-CE (5 iterations) "
                        "in place of AutoAttack, no sanity checks; writes the same files")
    p.add_argument("--fresh", action="store_true", help="delete the methods' checkpoints and results, start over")
    p.add_argument("--eval-only", action="store_true",
                   help="no training: evaluate the saved checkpoints (finishes a stopped AutoAttack)")
    p.add_argument("--save-weights", action="store_true", help="also write <method>/model.pt (load_model format)")
    p.add_argument("--official-fs", default=None, metavar="PATH",
                   help="a local copy of Haichao-Zhang/FeatureScatter: time its FS step against ours (CUDA only)")
    p.add_argument("--official-rounds", type=int, default=10, help="timed rounds of the FS step comparison")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--no-amp", action="store_true", help="float32 training (default: bf16 autocast on CUDA)")
    p.add_argument("--lr", type=float, default=0.2, help="peak of the one-cycle learning rate (default 0.2)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="epochs of a new cycle (default: from the budget)")
    p.add_argument("--checkpoint-every-s", type=float, default=30.0,
                   help="save a checkpoint after an epoch at most this often (always at the end of a run)")
    for k, v in FULL.items():
        if k in ("out", "sanity"):
            continue
        p.add_argument("--" + k.replace("_", "-"), type=type(v) if v is not None else int, default=None,
                       help=f"default {'no limit' if v is None else v} ({SMOKE[k]} with --smoke)")
    p.add_argument("--sanity", dest="sanity", action="store_true", default=None, help="run the sanity checks")
    p.add_argument("--no-sanity", dest="sanity", action="store_false", help="skip the sanity checks")
    a = p.parse_args(argv)
    if a.fresh and a.eval_only:
        p.error("--fresh and --eval-only exclude each other (--eval-only evaluates the saved checkpoints)")
    prof = SMOKE if a.smoke else FULL
    for k, v in prof.items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    a.methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in a.methods if m not in METHODS]
    if bad or not a.methods:
        p.error(f"--methods {bad or a.methods}: choose from {list(METHODS)}")
    return a


def _gpu_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                            "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(gpu=torch.cuda.get_device_name(device), gpu_memory_gib=round(p.total_memory / 2 ** 30, 1),
                    capability=f"{p.major}.{p.minor}", gpu_count=torch.cuda.device_count())
    else:
        info["gpu"] = None
    return info


def _git_dirty() -> list[str] | None:
    """Modified tracked files (read-only: ``--no-optional-locks`` keeps git from refreshing the index)."""
    try:
        out = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                             cwd=REPO, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [ln[3:] for ln in out.stdout.splitlines()] if out.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    global _T_START
    if _CALLS[0]:  # a second call in the same process (tests): its budget starts now
        _T_START = time.monotonic()
    _CALLS[0] += 1
    t_main = time.monotonic()
    a = parse_args(argv)
    from ot_robust.core.utils import atomic_write_json, get_device, git_commit, package_versions

    device = get_device(a.device)
    amp_dtype = None
    if device.type == "cuda" and not a.no_amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(a.cache_dir) if a.cache_dir else out / ".cache"
    if not a.cache_dir and not (out / ".gitignore").exists():
        (out / ".gitignore").write_text("# decoded CIFAR-10 tensors (scripts/gpu_run.py): rebuilt in seconds\n"
                                        ".cache/\n")
    budget_s, hard_s = 60 * a.budget_min, 60 * a.hard_limit_min
    log(f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
        f"amp {amp_dtype}, methods {a.methods}, budget {a.budget_min:g} min, out {out}"
        f"{', SMOKE (CPU check, not a result)' if a.smoke else ''}")
    old_prov = {}
    if (out / "provenance.json").is_file():
        try:
            old_prov = json.loads((out / "provenance.json").read_text())
        except json.JSONDecodeError:
            old_prov = {}

    root = Path(a.data_root).expanduser() if a.data_root else default_data_root()
    data = load_data(root, cache_dir, a.n_train, a.n_eval, a.n_heldout)
    data["train_x_dev"] = data["train_x"].to(device)
    data["train_y_dev"] = data["train_y"].to(device)
    data["held_x_dev"] = data["held_x"].float().div_(255).to(device)
    data["held_y_dev"] = data["held_y"].to(device)
    t_data = time.monotonic()

    official = {"skipped": "--eval-only"} if a.eval_only else time_official_fs(a, data, device, amp_dtype)

    runs = {m: MethodRun(m, a, data, device, amp_dtype) for m in a.methods}
    for r in runs.values():
        if a.fresh:
            r.fresh()
            log(f"{r.method}: --fresh: previous checkpoint and results removed")
        elif not r.resume(("model",) if a.eval_only else RESUME_KEYS) and a.eval_only:
            raise SystemExit(f"--eval-only: no checkpoint in {r.dir}")
    train_info: dict[str, Any] = {}
    if not a.eval_only:
        reserve = 60 * a.eval_reserve_min
        for k, (m, r) in enumerate(runs.items()):
            left = budget_s - (time.monotonic() - _T_START) - reserve
            share = left / (len(runs) - k)  # the time left, split evenly over the methods still to train
            t_m = time.monotonic()
            r.plan(max(share, 0.0))
            r.train(deadline=time.monotonic() + max(share - (time.monotonic() - t_m), 0.0))
            if a.save_weights:
                r.save_weights()
            train_info[m] = {"share_s": share, "seconds": time.monotonic() - t_m}
    t_train = time.monotonic()

    profile = "gpu-smoke" if a.smoke else "gpu"
    # the attacks' batches shrink as examples are fooled: cudnn autotuning every new shape would cost more than it
    # saves (training keeps it: fixed shapes)
    torch.backends.cudnn.benchmark = False
    hard_deadline = _T_START + hard_s
    evals: dict[str, Any] = {m: {} for m in runs}
    for m, r in runs.items():      # clean + PGD-20 for every method first (cheap), then AutoAttack
        evals[m]["pgd"] = evaluate_method(r, data, a, "pgd", hard_deadline, profile)
    for m, r in runs.items():
        evals[m]["autoattack"] = evaluate_method(r, data, a, "autoattack", hard_deadline, profile)
    t_end = time.monotonic()

    # methods not run this time keep their entry from the previous provenance.json
    methods = {m: {**v, "this_run": False} for m, v in old_prov.get("methods", {}).items() if m not in runs}
    for m, r in runs.items():
        metrics = [json.loads(ln) for ln in (r.dir / "metrics.jsonl").read_text().splitlines() if ln.strip()] \
            if (r.dir / "metrics.jsonl").is_file() else []
        this_run = metrics[len(metrics) - r.run_epochs:] if r.run_epochs else []
        methods[m] = {"epochs_reached": r.epoch, "epochs_this_run": r.run_epochs, "resumed_from_epoch": r.resumed_from,
                      "cycles": r.cycles, "cycle_complete": r.cycle_complete, "steps_per_epoch": r.steps_per_epoch,
                      "measured_step_s": r.step_s, "train_s": r.train_s,
                      "images_per_s": statistics.median([x["images_per_s"] for x in this_run]) if this_run else None,
                      "eval_s": sum(v["seconds"] for v in evals[m].values()),
                      "autoattack_status": evals[m]["autoattack"]["autoattack_status"],
                      "config": r.config(), "this_run": True, **train_info.get(m, {})}
    prov = {
        "format": FORMAT, "profile": profile, "command": " ".join([sys.executable, *sys.argv] if argv is None
                                                                  else ["scripts/gpu_run.py", *argv]),
        "argv": sys.argv[1:] if argv is None else list(argv), **_gpu_info(device),
        "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else None, "channels_last": True,
        "git_commit": git_commit(), "git_modified_files": _git_dirty(), "versions": package_versions(),
        "dataset": {"name": DATASET, "note": DATASET_NOTE, "exact": False, **data["info"],
                    "eval_images": len(data["eval_y"]), "eval_order": "class round-robin of the test set, first n "
                                                                     "(the pipeline's 'balanced' order)",
                    "heldout_images": len(data["held_y"]), "heldout": "the last n of the same order"},
        "budget": {"budget_min": a.budget_min, "hard_limit_min": a.hard_limit_min,
                   "eval_reserve_min": 0.0 if a.eval_only else a.eval_reserve_min, "eval_only": a.eval_only},
        "evaluation": {"n_examples": a.n_eval, "clean": True, "pgd20": PGD20, "autoattack": a.autoattack,
                       "sanity": a.sanity, "batch_size": a.eval_batch},
        "methods": methods, "official_fs_timing": official,
        "wall_times_s": {"startup": t_main - _T_START, "data": t_data - t_main,
                         "official_fs": official.get("seconds", 0.0), "train": t_train - t_data - official.get(
                             "seconds", 0.0), "evaluate": t_end - t_train, "total": time.monotonic() - _T_START},
    }
    if a.smoke:
        prov["smoke"] = {"note": "CPU check of the script, not a result", "changes": [
            f"model {a.model} instead of preact_resnet18 (PreAct ResNet-18 takes ~0.2 s per image forward+backward "
            "on these 2 CPU cores)" if a.model != "preact_resnet18" else "model preact_resnet18",
            f"{len(data['train_y'])} training images, {a.max_batches} batches of {a.batch_size} per epoch, "
            f"{a.max_epochs} epoch per run",
            f"{a.n_eval} test images; " + (f"AutoAttack replaced by '{a.autoattack}' (AutoAttack standard on an "
                                           "untrained model took over 9 min on 64 images on the project's CPU: "
                                           "Square and FAB run on the images it never fools)"
                                           if a.autoattack != AUTOATTACK else "AutoAttack standard"),
            f"sanity checks {'on' if a.sanity else 'off'}; held-out check: {a.n_heldout} images, "
            f"PGD-{a.heldout_steps}",
            "float32 on the CPU (bf16 is emulated there, docs/training.md)" if device.type == "cpu" else
            f"{prov['amp'] or 'float32'} autocast on {device}"]}
    history = list(old_prov.get("history", []))
    if old_prov.get("format") == FORMAT:
        history.append({k: old_prov.get(k) for k in ("command", "git_commit", "gpu", "device", "budget")}
                       | {"epochs_reached": {m: v.get("epochs_reached")
                                             for m, v in old_prov.get("methods", {}).items()},
                          "total_s": old_prov.get("wall_times_s", {}).get("total")})
    prov["history"] = history
    atomic_write_json(out / "provenance.json", prov)
    log(f"done in {prov['wall_times_s']['total']:.1f} s: " + "; ".join(
        f"{m} {v['epochs_reached']} epochs ({v['epochs_this_run']} this run)" for m, v in methods.items())
        + f"; wrote {out}/provenance.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
