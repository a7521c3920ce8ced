"""A training step in float32 vs mixed precision (bfloat16 autocast on the CPU, float16 on CUDA) vs float32 with
the channels_last memory layout, same model, batch and defense, steps interleaved, median of ``--repeats``; prints
each speed-up against float32 (issue 15 target for amp: >= 1.5x where accuracy holds; the accuracy check is
``scripts/amp_training.sh``; channels_last changes no arithmetic, tests/test_train.py checks it trains the same model).

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
    ap.add_argument("--kinds", default="fp32,amp,channels_last",
                    help="comma-separated subset of fp32,amp,channels_last (fp32 always runs: the reference)")
    a = ap.parse_args()
    kinds = ["fp32"] + [k for k in a.kinds.split(",") if k in ("amp", "channels_last")]
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
        times = {k: [] for k in kinds}
        x_cl = x.contiguous(memory_format=torch.channels_last)

        def step(kind):
            ctx = torch.autocast(dev.type, dtype=dtype) if kind == "amp" else contextlib.nullcontext()
            fmt = torch.channels_last if kind == "channels_last" else torch.contiguous_format
            model.to(memory_format=fmt)
            t0 = time.perf_counter()
            with ctx:
                out = d.loss(model, x_cl if kind == "channels_last" else x, y)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        for _ in range(2):
            for kind in times:
                step(kind)
        for _ in range(a.repeats):
            for kind in times:
                times[kind].append(step(kind))
        med = {k: statistics.median(v) for k, v in times.items()}
        f = med["fp32"]
        print(f"  {name:22s} fp32 {1e3 * f:7.1f} ms" + "".join(
            f"   {k} {1e3 * t:7.1f} ms ({f / t:.2f}x)" for k, t in med.items() if k != "fp32"))


if __name__ == "__main__":
    main()
