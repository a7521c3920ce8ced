"""Benchmark: batched log-domain Sinkhorn (ot_robust.ot.sinkhorn) vs POT.

B x n x n cosine costs between random features (B in {1, 16}, n in {60, 128, 512}), reg = 0.01 (the FS value),
exactly 100 iterations (no early stop), float32, on the device of ``ot_robust.core.utils.get_device(None)``.
Peers, measured in the same run on the same tensors:
  * POT ``ot.sinkhorn(..., method="sinkhorn_log")`` looped over the batch (torch backend),
  * POT ``ot.batch.solve_batch(M, reg, method="log_sinkhorn")`` if the installed POT has ``ot.batch``.
Prints the best wall time (ms) over repeats (min: robust on a shared machine), speed-up ratios (peer time / our
time; > 1 means we are faster) and the max absolute plan difference (accuracy check). Usage:
``python benchmarks/bench_sinkhorn.py [--quick]``.
"""
from __future__ import annotations

import argparse
import time
import warnings

import ot
import torch

from ot_robust.ot import cosine_cost, sinkhorn
from ot_robust.core.utils import get_device

try:
    import ot.batch as ot_batch
except ImportError:  # POT < 0.9.6
    ot_batch = None

REG, ITERS = 0.01, 100


def timeit(fn, repeats, device):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3, out


def ours(C):
    return sinkhorn(C, reg=REG, max_iter=ITERS, tol=0.0, grad="envelope").plan


def pot_loop(C):
    n, m = C.shape[-2:]
    a = torch.full((n,), 1.0 / n, dtype=C.dtype, device=C.device)
    b = torch.full((m,), 1.0 / m, dtype=C.dtype, device=C.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.stack([ot.sinkhorn(a, b, Ck, REG, method="sinkhorn_log", numItermax=ITERS, stopThr=0.0)
                            for Ck in C])


def pot_batch(C):
    return ot_batch.solve_batch(C, REG, max_iter=ITERS, tol=0.0, method="log_sinkhorn", grad="detach").plan


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and skip n=512 with B=16")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads for all solvers (default 1: stable timings on a shared machine)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = get_device(None)
    repeats = 3 if args.quick else 7
    torch.manual_seed(0)
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} POT={ot.__version__} "
          f"reg={REG} iters={ITERS} float32; ot.batch={'yes' if ot_batch else 'absent'}")
    hdr = f"{'B':>3} {'n':>4} | {'ours ms':>8} {'loop ms':>8} {'batch ms':>8} | {'x loop':>6} {'x batch':>7} | max|dT|"
    print(hdr + "\n" + "-" * len(hdr))
    for B in (1, 16):
        for n in (60, 128, 512):
            if args.quick and B == 16 and n == 512:
                continue
            feats = torch.randn(B, n, 10, device=device)
            C = cosine_cost(feats, feats + 0.1 * torch.randn_like(feats))
            t_ours, P = timeit(lambda: ours(C), repeats, device)
            t_loop, P_loop = timeit(lambda: pot_loop(C), repeats, device)
            diff = (P - P_loop).abs().max().item()
            if ot_batch is not None:
                t_batch, P_batch = timeit(lambda: pot_batch(C), repeats, device)
                diff = max(diff, (P - P_batch).abs().max().item())
                batch_cols = f"{t_batch:8.1f}", f"{t_batch / t_ours:7.2f}"
            else:
                batch_cols = f"{'-':>8}", f"{'-':>7}"
            print(f"{B:>3} {n:>4} | {t_ours:8.1f} {t_loop:8.1f} {batch_cols[0]} | {t_loop / t_ours:6.2f} "
                  f"{batch_cols[1]} | {diff:.2e}")


if __name__ == "__main__":
    main()
