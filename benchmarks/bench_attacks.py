"""Benchmark: PGD-20 evaluation throughput of our loop vs torchattacks.PGD (same model, data, batch size), and the
time of AutoAttack "standard" (reference settings) per 100 examples.

    .venv/bin/python benchmarks/bench_attacks.py [--model small_cnn] [--n 500] [--batch-size 250] [--aa-n 100]

Prints examples/s for both PGD implementations (best of interleaved repeats) and the ratio ours / torchattacks
(target >= 1.0), then AutoAttack seconds per 100 examples. The model is trained briefly (``--train-images``) so
that the attacks have something to do; throughput does not depend on it.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
import torchattacks

from ot_robust.attacks import PGD, AutoAttack
from ot_robust.data import as_tensors, get_dataset
from ot_robust.models import get_model
from ot_robust.utils import get_device


def _train(model, x, y, device, epochs=1):
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            loss = F.cross_entropy(model(x[i:i + 64].to(device)), y[i:i + 64].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()


def _throughput(fn, model, x, y, bs, device) -> float:
    t0 = time.perf_counter()
    correct = 0
    for i in range(0, len(x), bs):
        xb, yb = x[i:i + bs].to(device), y[i:i + bs].to(device)
        xa = fn(xb, yb)
        with torch.no_grad():
            correct += (model(xa).argmax(1) == yb).sum().item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--dataset", default="mnist-sample")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--aa-n", type=int, default=100)
    p.add_argument("--aa-eps", type=float, default=None, help="AutoAttack eps (default: --eps)")
    p.add_argument("--train-images", type=int, default=5000)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = get_device(a.device)
    torch.manual_seed(0)
    model = get_model(a.model, a.dataset).to(dev)
    _train(model, *as_tensors(get_dataset(a.dataset, "train"), a.train_images), dev)
    x, y = as_tensors(get_dataset(a.dataset, "test"), a.n)
    step = 2.5 * a.eps / 20
    ours = PGD(a.eps, steps=20, step_size=step, seed=0)
    theirs = torchattacks.PGD(model, eps=a.eps, alpha=step, steps=20, random_start=True)
    t_ours, t_theirs = [], []
    for _ in range(a.repeats):  # interleaved so that load changes hit both alike
        t_ours.append(_throughput(lambda xb, yb: ours(model, xb, yb), model, x, y, a.batch_size, dev))
        t_theirs.append(_throughput(lambda xb, yb: theirs(xb, yb), model, x, y, a.batch_size, dev))
    mo, mt = max(t_ours), max(t_theirs)  # best of the repeats: least disturbed by other load
    print(f"model={a.model} dataset={a.dataset} n={a.n} batch={a.batch_size} device={dev} "
          f"threads={torch.get_num_threads()}")
    print(f"PGD-20 ours        : {mo:9.1f} ex/s  (runs: {', '.join(f'{t:.1f}' for t in t_ours)})")
    print(f"PGD-20 torchattacks: {mt:9.1f} ex/s  (runs: {', '.join(f'{t:.1f}' for t in t_theirs)})")
    pair = sorted(o / t for o, t in zip(t_ours, t_theirs))
    print(f"throughput ratio ours/torchattacks = {mo / mt:.3f} best-of; median of interleaved pairs "
          f"{pair[len(pair) // 2]:.3f}  (target >= 1.0)")
    xa, ya = x[: a.aa_n].to(dev), y[: a.aa_n].to(dev)
    aa = AutoAttack(eps=a.aa_eps or a.eps, seed=0)
    t0 = time.perf_counter()
    x_adv = aa(model, xa, ya)
    dt = time.perf_counter() - t0
    with torch.no_grad():
        acc = (model(x_adv).argmax(1) == ya).float().mean().item() * 100
    print(f"AutoAttack standard: {dt * 100 / len(xa):.1f} s per 100 examples (n={len(xa)}, robust acc {acc:.1f}%, "
          f"log {[(k, round(v, 1)) for k, v in aa.last_log]})")


if __name__ == "__main__":
    main()
