"""Benchmark: our RayS vs the authors' implementation (uclaml/RayS, ``RayS.py``), same model, images and query budget.

    .venv/bin/python benchmarks/bench_rays.py --reference PATH/TO/RayS.py [--run results/study-fashion/train/pgd_at]
        [--n 100] [--eps 0.1] [--queries 10000] [--repeats 1] [--threads 1]

``--reference`` is a local copy of the authors' ``RayS.py`` (not shipped here; e.g. ``git clone
https://github.com/uclaml/RayS`` and pass ``RayS/RayS.py``); without it, or when the file is missing, the benchmark
prints one line saying that the comparison is skipped and exits 0. The reference imports ``pgbar.progress_bar`` (a
no-op stand-in is used when the module is absent) and calls ``.cuda()`` throughout; on a machine without CUDA those
calls are made no-ops for the reference's run, so both run on the same device.

Both attacks run on the same images (the first ``--n`` test images of ``--dataset``) with the same per-image query
budget, interleaved ``--repeats`` times. The authors' code never stops early (it refines the boundary distance to
the end of the budget), so ours runs with ``early_stop=False`` for the comparison; the third row is ours as an
evaluation runs it (``early_stop=True``: an image stops once a boundary point within eps is found), robust accuracy
and speed only. Every model forward of every image is counted by the same wrapper for all runs. Printed per run:
robust accuracy (images still correctly classified within eps; images misclassified at the start count as broken),
mean ADBD over the correctly classified images (the Linf distance of the best boundary point found; where ours
found none, its ``inf`` counts as 1, the largest Linf distance in the box), queries per second (best of the
repeats) and seconds (best of the repeats), the largest per-image query count (ours never exceeds the budget; the
authors' binary search may), and the ratios ours / reference. Queries per second counts every query, including
those the authors' code spends on images misclassified at the start (it queries them to the end of the budget; ours
stops them after one query), so it favours the reference; the last column, queries per second on the correctly
classified images (the ones actually attacked, best-of time), compares like with like.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import sys
import time
import types
from pathlib import Path

import torch
from torch import nn


class Counted(nn.Module):
    """Wraps the model: counts the images of every forward; ``predict_label`` is the reference's model interface."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.model(x)

    def predict_label(self, x):
        with torch.no_grad():
            return self(x).argmax(1)


def _load_reference(path: Path):
    """The reference's ``RayS`` class, imported from ``path`` (a ``pgbar`` stand-in when it is not importable)."""
    if "pgbar" not in sys.modules and importlib.util.find_spec("pgbar") is None:
        sys.modules["pgbar"] = types.SimpleNamespace(progress_bar=lambda *a, **k: None)
    spec = importlib.util.spec_from_file_location("rays_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.RayS


@contextlib.contextmanager
def _cuda_as_noop(active: bool):
    """``Tensor.cuda()`` returns the tensor itself (the reference hard-codes ``.cuda()``) while ``active``."""
    if not active:
        yield
        return
    saved = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda = saved


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", default=None, help="path to a local copy of uclaml/RayS's RayS.py")
    p.add_argument("--run", default="results/study-fashion/train/pgd_at", help="run folder with model.pt ('' = train)")
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--dataset", default=None, help="default: fashion-mnist with --run, else mnist-sample")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--eps", type=float, default=None, help="default: 0.1 with --run, else 0.3")
    p.add_argument("--queries", type=int, default=10000)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--train-images", type=int, default=5000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)
    if not a.reference or not Path(a.reference).is_file():
        print(f"skipped: no local copy of the authors' RayS.py (--reference {a.reference or '(not given)'}); "
              "the comparison needs one (a copy of uclaml/RayS)")
        return 0
    import numpy as np

    from ot_robust.attacks import RayS
    from ot_robust.core.data import as_tensors, get_dataset
    from ot_robust.core.utils import get_device

    from _bench_model import bench_model  # benchmarks/ is the script's folder

    Reference = _load_reference(Path(a.reference))
    torch.set_num_threads(a.threads)
    dev = get_device(a.device)
    dataset, eps, model = bench_model(a, dev)
    model.eval()
    counted = Counted(model)
    x, y = as_tensors(get_dataset(dataset, "test"), a.n)
    x, y = x.to(dev), y.to(dev)
    with torch.no_grad():
        clean = model(x).argmax(1) == y

    def ours(early_stop):
        def run():
            atk = RayS(eps, queries=a.queries, early_stop=early_stop)
            x_adv = atk(counted, x, y)
            with torch.no_grad():
                assert torch.equal(model(x_adv).argmax(1) != y, atk.last_success)
            return atk.last_success, atk.last_adbd, atk.last_queries
        return run

    def reference():
        ref = Reference(counted, epsilon=eps, order=np.inf)
        with _cuda_as_noop(dev.type != "cuda"), contextlib.redirect_stdout(io.StringIO()):
            _, _, dist, succ = ref.attack_hard_label(x, y, target=None, query_limit=a.queries)
        return succ | ~clean, dist, ref.queries.clone()

    runs = {"ours (no early stop)": ours(False), "uclaml/RayS": reference, "ours (early stop)": ours(True)}
    qps = {k: [] for k in runs}
    secs = {k: [] for k in runs}
    out = {}
    for _ in range(a.repeats):  # interleaved so that load changes hit all alike
        for name, fn in runs.items():
            counted.rows = 0
            t0 = time.perf_counter()
            out[name] = fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            secs[name].append(time.perf_counter() - t0)
            qps[name].append(counted.rows / secs[name][-1])
    print(f"run={a.run or '(trained here)'} dataset={dataset} eps={eps:g} n={a.n} queries={a.queries} device={dev} "
          f"threads={torch.get_num_threads()} cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} "
          f"clean accuracy {100 * clean.float().mean():.1f}%")
    stats = {}
    for name, (success, adbd, q) in out.items():
        robust = 100 * (clean & ~success).float().mean().item()
        mean_adbd = adbd[clean].clamp(max=1.0).float().mean().item() if bool(clean.any()) else float("nan")
        attacked_qps = int(q[clean].sum()) / min(secs[name])
        stats[name] = (robust, mean_adbd, max(qps[name]), attacked_qps)
        adbd_txt = "(ADBD: n/a)" if name == "ours (early stop)" else f"mean ADBD {mean_adbd:.4f}"
        print(f"RayS {name:21s}: robust accuracy {robust:5.1f}%  {adbd_txt:18s} {max(qps[name]):9.1f} queries/s  "
              f"{min(secs[name]):7.2f} s  max queries/image {int(q.max())}  "
              f"(runs: {', '.join(f'{t:.0f}' for t in qps[name])} q/s; {attacked_qps:.1f} q/s on the attacked images)")
    r_ours, r_ref = stats["ours (no early stop)"], stats["uclaml/RayS"]
    print(f"ratio ours/uclaml: robust accuracy {r_ours[0] - r_ref[0]:+.1f} points, mean ADBD "
          f"{r_ours[1] / r_ref[1]:.3f}x, queries/s {r_ours[2] / r_ref[2]:.3f}x (on the attacked images "
          f"{r_ours[3] / r_ref[3]:.3f}x), seconds "
          f"{min(secs['ours (no early stop)']) / min(secs['uclaml/RayS']):.3f}x (early stop: "
          f"{stats['ours (early stop)'][2] / r_ref[2]:.3f}x queries/s, "
          f"{min(secs['ours (early stop)']) / min(secs['uclaml/RayS']):.3f}x seconds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
