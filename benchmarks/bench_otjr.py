"""OTJR training-step time relative to PGD-AT with the same PGD-10 attack (OTJR supp. Table 11: 18.68 / 13.67 = 1.37x).

Target: <= 1.25x. Both ways of differentiating the Jacobian penalty are timed: the exact double backprop (the
default, as the reference code) and ``jr_gradient="finite_difference"`` (the frozen-linear-piece difference, see
``ot_robust.defenses.jacobian.jacobian_frobenius_fd``; its gradient error is printed by
``scripts/jr_finite_difference.py``). One training step = attack + loss + backward + optimizer step. The methods
are timed in alternation (interleaved rounds, after warm-up) so machine load affects both alike; the ratio of medians is
printed for wall-clock and for process CPU time (the latter is robust to other processes on a shared machine).

    python benchmarks/bench_otjr.py                       # small_cnn, MNIST sample, batch 128
    python benchmarks/bench_otjr.py --model wrn --depth 16 --width 4 --dataset cifar10 --batch 64
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ot_robust.defenses import get_defense
from ot_robust.models import get_model
from ot_robust.training.api import backward


def step_timer(model, defense, x, y, opt):
    def step():
        w0, c0 = time.perf_counter(), time.process_time()
        out = defense.loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        backward(out.loss, model.parameters())  # as the Trainer
        opt.step()
        return time.perf_counter() - w0, time.process_time() - c0
    return step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="small_cnn")
    ap.add_argument("--depth", type=int, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--dataset", default="mnist-sample", help="sets the input shape and classes (random pixels)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    kw = {k: v for k, v in (("depth", args.depth), ("width", args.width)) if v is not None}
    torch.manual_seed(0)
    model = get_model(args.model, dataset=args.dataset, **kw).to(device).train()
    from ot_robust.core.data import dataset_info

    info = dataset_info(args.dataset)
    x = torch.rand(args.batch, info.channels, info.size, info.size, device=device)
    y = torch.randint(0, info.num_classes, (args.batch,), device=device)
    attack = dict(eps=8 / 255, step_size=2 / 255, steps=10)
    n_slices = 32 if info.num_classes <= 10 else 128
    methods = {"pgd_at": get_defense("pgd_at", **attack),
               "otjr": get_defense("otjr", **attack, n_slices=n_slices),
               "otjr_fd": get_defense("otjr", **attack, n_slices=n_slices, jr_gradient="finite_difference")}
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    steps = {k: step_timer(model, d, x, y, opt) for k, d in methods.items()}
    for s in steps.values():  # warm-up
        s()
    times = {k: [] for k in steps}
    for _ in range(args.rounds):
        for k, s in steps.items():
            times[k].append(s())
    med = {k: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for k, v in times.items()}
    print(f"model={args.model}{kw or ''} dataset={args.dataset} batch={args.batch} device={device} "
          f"threads={args.threads} rounds={args.rounds}")
    for k, (w, c) in med.items():
        print(f"  {k:7s} step: wall {w * 1e3:8.1f} ms   cpu {c * 1e3:8.1f} ms")
    for k, label in (("otjr", "double backprop (exact, default)"), ("otjr_fd", "jr_gradient='finite_difference'")):
        rw, rc = med[k][0] / med["pgd_at"][0], med[k][1] / med["pgd_at"][1]
        print(f"OTJR / PGD-AT step time, {label}: wall {rw:.2f}x, cpu {rc:.2f}x (paper 1.37x; target <= 1.25x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
