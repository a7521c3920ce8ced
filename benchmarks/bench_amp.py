"""A training step in float32 vs mixed precision (bfloat16 autocast on the CPU, float16 on CUDA), same model,
batch and defense, steps interleaved, median of ``--repeats``; prints the speed-up (issue 15 target: >= 1.5x where
accuracy holds; the accuracy check is ``scripts/amp_training.sh``).

    python benchmarks/bench_amp.py [--model small_cnn] [--dataset fashion-mnist] [--batch 128] [--repeats 10]
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from ot_robust.defenses import get_defense
from ot_robust.models import get_model

METHODS = {"pgd_at (5 steps)": ("pgd_at", dict(eps=0.1, step_size=0.025, steps=5)),
           "feature_scattering": ("feature_scattering", dict(eps=0.1, steps=1)),
           "trades (5 steps)": ("trades", dict(eps=0.1, step_size=0.025, steps=5))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="small_cnn")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if dev.type == "cuda" else torch.bfloat16
    torch.manual_seed(0)
    model = get_model(a.model, a.dataset).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.rand(a.batch, model.in_channels if hasattr(model, "in_channels") else 1, 28, 28, device=dev)
    y = torch.randint(0, 10, (a.batch,), device=dev)
    print(f"{a.model} on {dev} ({a.threads} thread(s)), batch {a.batch}, median of {a.repeats}: fp32 vs {dtype}")
    for name, (method, params) in METHODS.items():
        d = get_defense(method, **params)
        times = {"fp32": [], "amp": []}

        def step(kind):
            ctx = torch.autocast(dev.type, dtype=dtype) if kind == "amp" else contextlib.nullcontext()
            t0 = time.perf_counter()
            with ctx:
                out = d.loss(model, x, y)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        for _ in range(2):
            step("fp32"), step("amp")
        for _ in range(a.repeats):
            for kind in ("fp32", "amp"):
                times[kind].append(step(kind))
        f, m = statistics.median(times["fp32"]), statistics.median(times["amp"])
        print(f"  {name:22s} fp32 {1e3 * f:7.1f} ms   amp {1e3 * m:7.1f} ms   speed-up {f / m:.2f}x")


if __name__ == "__main__":
    main()
