"""Benchmark: PGD-20 evaluation throughput of our loop vs torchattacks.PGD (same model, data, batch size).

    .venv/bin/python benchmarks/bench_attacks.py [--run results/study-fashion/train/pgd_at] [--n 500]
        [--batch-size 250] [--threads 1]

Three timings, interleaved ``--repeats`` times: our PGD as a user calls it (keep-best), our PGD as every
evaluation runs it (the fast path, ``stop_fooled``: an example leaves the batch once fooled; same per-example
outcome, checked here), and torchattacks' PGD. Prints examples/s (best of the repeats), the ratios ours /
torchattacks (targets: plain >= 1.0, fast path >= 1.3) and the robust accuracy of each. The speed-up of the fast
path grows as robust accuracy falls, so the default model is the committed PGD-AT model of the study
(Fashion-MNIST, eps 0.1: ~66% robust, a hard case); ``--run ''`` trains a small_cnn briefly on ``--dataset``
instead. AutoAttack is timed against fra31's reference by ``bench_autoattack.py``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torchattacks

from ot_robust.attacks import PGD, fast_path
from ot_robust.core.data import as_tensors, get_dataset
from ot_robust.core.utils import get_device

from _bench_model import bench_model  # noqa: E402  (benchmarks/ is the script's folder)


def _throughput(fn, model, x, y, bs, device) -> tuple[float, float]:
    """(examples per second, robust accuracy %) of the attack ``fn`` over ``x`` in batches of ``bs``."""
    t0 = time.perf_counter()
    correct = 0
    for i in range(0, len(x), bs):
        xb, yb = x[i:i + bs].to(device), y[i:i + bs].to(device)
        xa = fn(xb, yb)
        with torch.no_grad():
            correct += (model(xa).argmax(1) == yb).sum().item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - t0), 100.0 * correct / len(x)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="results/study-fashion/train/pgd_at", help="run folder with model.pt ('' = train)")
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--dataset", default=None, help="default: fashion-mnist with --run, else mnist-sample")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--eps", type=float, default=None, help="default: 0.1 with --run, else 0.3")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-images", type=int, default=5000)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = get_device(a.device)
    dataset, eps, model = bench_model(a, dev)
    x, y = as_tensors(get_dataset(dataset, "test"), a.n)
    step = 2.5 * eps / 20
    plain = PGD(eps, steps=20, step_size=step, seed=0)
    fast = fast_path(plain)
    theirs = torchattacks.PGD(model, eps=eps, alpha=step, steps=20, random_start=True)
    runs = {"ours (plain)": lambda xb, yb: plain(model, xb, yb), "ours (fast path)": lambda xb, yb: fast(model, xb, yb),
            "torchattacks": lambda xb, yb: theirs(xb, yb)}
    times = {k: [] for k in runs}
    accs = {}
    for _ in range(a.repeats):  # interleaved so that load changes hit both alike
        for k, fn in runs.items():
            tp, accs[k] = _throughput(fn, model, x, y, a.batch_size, dev)
            times[k].append(tp)
    print(f"run={a.run or '(trained here)'} dataset={dataset} eps={eps} n={a.n} batch={a.batch_size} device={dev} "
          f"threads={torch.get_num_threads()} load={os.getloadavg()[0]:.1f}")
    for k, ts in times.items():
        print(f"PGD-20 {k:17s}: {max(ts):9.1f} ex/s  (runs: {', '.join(f'{t:.1f}' for t in ts)}), "
              f"robust accuracy {accs[k]:.1f}%")
    for k, target in (("ours (plain)", 1.0), ("ours (fast path)", 1.3)):
        pair = sorted(o / t for o, t in zip(times[k], times["torchattacks"]))
        print(f"throughput ratio {k}/torchattacks = {max(times[k]) / max(times['torchattacks']):.3f} best-of; "
              f"median of interleaved pairs {pair[len(pair) // 2]:.3f}  (target >= {target})")
    print("AutoAttack vs fra31's reference: benchmarks/bench_autoattack.py")

if __name__ == "__main__":
    main()
