"""Benchmark: our AutoAttack "standard" vs fra31/auto-attack's reference driver, same model, images and seed.

    .venv/bin/python benchmarks/bench_autoattack.py [--run results/study-fashion/train/pgd_at] [--n 100]
        [--eps 0.1] [--repeats 2] [--threads 1]

The default model is the committed PGD-AT model of the study (Fashion-MNIST, small_cnn, trained at eps 0.1), so
that every component has robust points to work on (a non-robust model stops after APGD-CE). Runs ours
(:class:`ot_robust.attacks.AutoAttack`, one call on the n images) and the reference
(``pyautoattack.AutoAttack(version="standard").run_standard_evaluation`` with ``batch_size = n``) interleaved,
``--repeats`` times each, and prints the seconds of each, the ratio ours / reference (best of the repeats and the
median of interleaved pairs; target <= 1.0), the robust accuracy of each and the per-example agreement of the
robust masks (expected: 100%, the same component code on the same batch and seed).
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="results/study-fashion/train/pgd_at", help="run folder with model.pt")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)
    try:
        import pyautoattack
    except ImportError:
        print("skipped: fra31's reference is not installed (pip install pyautoattack==0.2.0)")
        return
    from ot_robust.attacks import AutoAttack
    from ot_robust.core.data import as_tensors, get_dataset
    from ot_robust.training.api import load_model
    from ot_robust.core.utils import get_device

    logging.getLogger("auto-attack").setLevel(logging.ERROR)  # the reference's per-batch log lines
    torch.set_num_threads(a.threads)
    dev = get_device(a.device)
    model = load_model(a.run, dev)
    x, y = as_tensors(get_dataset(a.dataset, "test"), a.n)
    x, y = x.to(dev), y.to(dev)

    def ours():
        aa = AutoAttack(eps=a.eps, seed=0)
        x_adv = aa(model, x, y)
        with torch.no_grad():
            return model(x_adv).argmax(1) == y

    def reference():
        ref = pyautoattack.AutoAttack(model, eps=a.eps, norm="Linf", version="standard", seed=0, device=dev)
        ref.verbose = False
        _, y_adv = ref.run_standard_evaluation(x, y, batch_size=len(x))
        return y_adv == y

    times = {"ours": [], "fra31": []}
    masks = {}
    for _ in range(a.repeats):  # interleaved so that load changes hit both alike
        for name, fn in (("ours", ours), ("fra31", reference)):
            t0 = time.perf_counter()
            masks[name] = fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    print(f"run={a.run} dataset={a.dataset} n={a.n} eps={a.eps} device={dev} threads={torch.get_num_threads()} "
          f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    for name, ts in times.items():
        print(f"AutoAttack {name:5s}: {min(ts):8.1f} s best  (runs: {', '.join(f'{t:.1f}' for t in ts)}), "
              f"robust accuracy {100 * masks[name].float().mean().item():.1f}%")
    pair = sorted(o / r for o, r in zip(times["ours"], times["fra31"]))
    agree = 100 * (masks["ours"] == masks["fra31"]).float().mean().item()
    print(f"time ratio ours/fra31 = {min(times['ours']) / min(times['fra31']):.3f} best-of; median of interleaved "
          f"pairs {pair[len(pair) // 2]:.3f}  (target <= 1.0); per-example agreement {agree:.1f}% of {a.n}")


if __name__ == "__main__":
    main()
