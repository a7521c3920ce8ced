"""Sizing of the study's CIFAR-10 block (issue 34): training throughput of candidate models on 32x32x3 images and the
epochs each can afford inside a core-hour budget.

    .venv/bin/python benchmarks/bench_cifar10_sizing.py [--budget-core-h 30] [--threads 1] [--batch 128]
        [--models small_cnn:16,small_cnn:32,wrn:10:2,preact_resnet18]

For each model (``name[:width]`` or ``wrn:depth:width``) one forward + backward at batch ``--batch`` is timed (best of
``--repeats`` after a warm-up) with ``--threads`` threads, giving images per second per core. The block's cost is
counted in forward-backward passes per training image: an adversarial method with a k-step attack costs k + 1
(the attack's k steps plus the update; TRADES, GOT and OTJR one more for the clean logits), Standard 1, Feature
Scattering 2 (one attack step) plus its OT solve, ignored here. The block (FS, PGD-AT, TRADES, GOT-TRADES-LM with 3
seeds; Standard, GOT-PGD-LM, SW, SAT, OTJR with 1) trains on 50,000 images with a 5-step adversary; the evaluation
(clean, FGSM, PGD-20, CW-20 on 10,000, PGD-100 and AutoAttack on 1,000) is added per model: AutoAttack standard
costs about 4,500 passes on an image that survives it (APGD-CE 100, APGD-T 9 x 100, FAB-T 9 x 100 at about two
passes each, Square's 5,000 forwards at about a third) and a few dozen on one APGD-CE breaks at once; at the 30%
robust accuracy the block aims for, about 1,500 on average. Printed: images/s per core, the core-hours of one epoch of
the block, and the epochs that fit in the budget. Measured on a shared machine, the numbers move with its load: the
ratios between models are what the choice rests on.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ot_robust.models import get_model  # noqa: E402

#: (method, seeds, forward-backward passes per training image with a 5-step adversary)
BLOCK = [("standard", 1, 1), ("feature_scattering", 3, 2), ("pgd_at", 3, 6), ("trades", 3, 7),
         ("got_trades_lm", 3, 7), ("got_pgd_lm", 1, 7), ("sw", 1, 7), ("sat", 1, 6), ("otjr", 1, 8)]
#: passes of the evaluation of one model: clean + FGSM + PGD-20 + CW-20 on all 10,000, PGD-100 and AutoAttack (about
#: 1,500 passes per image on average, see the module docstring) on 1,000
EVAL_PASSES = 10_000 * (1 + 1 + 20 + 20) + 1_000 * (100 + 1_500)


def parse_model(spec: str):
    parts = spec.split(":")
    if parts[0] == "wrn":
        return get_model("wrn", "cifar10-jpeg", depth=int(parts[1]), width=int(parts[2]))
    if len(parts) == 2:
        return get_model(parts[0], "cifar10-jpeg", width=int(parts[1]))
    return get_model(parts[0], "cifar10-jpeg")


def images_per_s(model, batch: int, repeats: int) -> float:
    x, y = torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    best = float("inf")
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        model.zero_grad()
        loss.backward()
        if i:  # the first is a warm-up
            best = min(best, time.perf_counter() - t0)
    return batch / best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="small_cnn:16,small_cnn:24,small_cnn:32,wrn:10:2,preact_resnet18")
    p.add_argument("--budget-core-h", type=float, default=30.0)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    per_epoch_passes = sum(seeds * passes for _, seeds, passes in BLOCK) * 50_000
    n_models = sum(seeds for _, seeds, _ in BLOCK)
    print(f"block: {n_models} models, {per_epoch_passes / 50_000:.0f} passes per training image per epoch in all; "
          f"evaluation {EVAL_PASSES * n_models / 1e6:.1f} M passes; budget {a.budget_core_h:g} core-hours; "
          f"{a.threads} thread(s), batch {a.batch}")
    print(f"{'model':22s} {'params':>9s} {'img/s/core':>11s} {'epoch (core-h)':>15s} {'eval (core-h)':>14s} "
          f"{'epochs in budget':>17s}")
    for spec in a.models.split(","):
        model = parse_model(spec.strip()).train()
        rate = images_per_s(model, a.batch, a.repeats) / a.threads
        epoch_h = per_epoch_passes / rate / 3600
        eval_h = EVAL_PASSES * n_models / rate / 3600
        epochs = (a.budget_core_h - eval_h) / epoch_h
        params = sum(t.numel() for t in model.parameters())
        print(f"{spec:22s} {params:9d} {rate:11.0f} {epoch_h:15.2f} {eval_h:14.2f} {max(epochs, 0):17.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
