"""Cost of one training step of every defense, relative to one Standard step on the same model and batch.

Prints, per defense, measured = t(step) / t(standard step) next to the ideal count of forward+backward passes
(a forward counted as 1/3 and a backward as 2/3 of one forward+backward pass):

    standard 1 | PGD-AT, random-targeted: K + 1 | ALP, MART: K + 2 (clean and adversarial passes)
    TRADES: K + 2 + 1/3 (clean eval forward for the KL target) | FS (T steps): T + 1 + 1/3 (clean eval forward)

Target: measured / ideal <= 1.1. Also the share of the OT solver (Sinkhorn forward + backward on the (B, B) cosine
cost of the logits) in an FS step (target < 5%), and our FS step against a faithful re-creation of the official
step design (the model deep-copied per batch with pickle, as ``Attack_FeaScatter`` does), as a ratio.

    python benchmarks/bench_defenses.py [--model small_cnn] [--dataset mnist-sample] [--batch 128] [--repeats 15]

Steps of the different methods are interleaved (round-robin) and the median is reported, so load drifts on a
shared machine affect all methods alike.
"""
from __future__ import annotations

import argparse
import pickle
import statistics
import time

import torch

from ot_robust.attacks.feature_scattering import feature_matching_distance
from ot_robust.core.data import as_tensors, get_dataset
from ot_robust.defenses import get_defense
from ot_robust.defenses.feature_scattering import smooth_labels, soft_cross_entropy
from ot_robust.models import get_model
from ot_robust.ot import FS_SINKHORN, cosine_cost, sinkhorn

K = 7
METHODS = {  # name: (defense, params, ideal passes)
    "standard": ("standard", {}, 1.0),
    f"pgd_at K={K}": ("pgd_at", dict(steps=K), K + 1.0),
    f"random_targeted K={K}": ("random_targeted", dict(steps=K), K + 1.0),
    f"alp K={K}": ("alp", dict(steps=K), K + 2.0),
    "trades K=10": ("trades", dict(steps=10), 10 + 2 + 1 / 3),
    "mart K=10": ("mart", dict(steps=10), 10 + 2.0),
    "feature_scattering T=1": ("feature_scattering", {}, 1 + 1 + 1 / 3),
    "feature_scattering T=1 ipot": ("feature_scattering", dict(solver="ipot"), 1 + 1 + 1 / 3),
}


def official_fs_step(model, x, y, eps=8 / 255, delta=0.5):
    """Re-creation of the official FS step design: an eval-mode deep copy (pickle) of the model per batch for the
    clean logits and the scattering step, then soft CE on the perturbed batch with the training model."""
    aux = pickle.loads(pickle.dumps(model))
    aux.eval()
    with torch.no_grad():
        f = aux(x)
    x_adv = x + torch.empty_like(x).uniform_(-eps, eps)
    x_adv = x_adv.clamp(0, 1).requires_grad_(True)
    d = feature_matching_distance(f, aux(x_adv))
    aux.zero_grad()
    d.backward()
    x_adv = torch.min(torch.max(x_adv.detach() + eps * x_adv.grad.sign(), x - eps), x + eps).clamp(0, 1)
    return soft_cross_entropy(model(x_adv), smooth_labels(y, model.num_classes, delta))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--dataset", default="mnist-sample")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 = stable timings on a shared machine)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x, y = as_tensors(get_dataset(a.dataset, "train"), a.batch)
    model = get_model(a.model, a.dataset).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step(loss_fn):
        def run():
            loss = loss_fn()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return run

    fs = get_defense("feature_scattering")
    runs = {name: step(lambda d=get_defense(n, **kw): d.loss(model, x, y).loss) for name, (n, kw, _) in METHODS.items()}
    runs["official FS design (deepcopy)"] = step(lambda: official_fs_step(model, x, y))
    with torch.no_grad():
        logits = model(x)
    logits_adv = (logits + 0.1 * torch.randn_like(logits)).requires_grad_(True)

    def solver():
        cost = sinkhorn(cosine_cost(logits, logits_adv), **FS_SINKHORN).cost
        torch.autograd.grad(cost, logits_adv)
    runs["OT solver (sinkhorn fwd+bwd)"] = solver
    del fs

    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(a.repeats + 2):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            if r >= 2:                      # 2 warm-up rounds
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["standard"]
    print(f"model={a.model} dataset={a.dataset} batch={a.batch} threads={a.threads} repeats={a.repeats}")
    print(f"standard step: {1000 * base:.1f} ms")
    print(f"{'method':32s} {'measured':>9s} {'ideal':>7s} {'meas/ideal':>10s}")
    for name, (_, _, ideal) in METHODS.items():
        m = med[name] / base
        print(f"{name:32s} {m:9.2f} {ideal:7.2f} {m / ideal:10.2f}{'' if m / ideal <= 1.1 else '  > 1.1'}")
    fs_t = med["feature_scattering T=1"]
    print(f"OT solver share of an FS step: {100 * med['OT solver (sinkhorn fwd+bwd)'] / fs_t:.1f}% (target < 5%)")
    print(f"FS step ours / official design (deepcopy per batch): {fs_t / med['official FS design (deepcopy)']:.2f}")


if __name__ == "__main__":
    main()
