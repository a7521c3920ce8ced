"""Is GOT's Kantorovich potential at the dual maximum? Load committed GOT checkpoints (model, saved potential and its
Adam state), draw fresh training batches with the training adversary, and compare both potential solvers with the
exact entropic W (POT's log-domain Sinkhorn, float64): the measurement behind docs/got.md, "The potential".

    python scripts/got_potential_check.py                       # the four study-mnist seed-0 GOT models, 12 batches
    python scripts/got_potential_check.py --runs results/study-mnist/train/got_pgd_s --batches 4

Per checkpoint and solver: W after the solver's potential step, the exact W, the dual at phi = 0, the cosine between
the gradient of the solver's W and of the exact W with respect to the adversarial latents (mean and range over the
batches), and the solver's time per batch.
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import ot as pot
import torch

from ot_robust.core.data import as_tensors, get_dataset
from ot_robust.defenses import get_defense
from ot_robust.defenses.got import latent_forward
from ot_robust.models.loading import load_model
from ot_robust.ot import dual_potential, entropic_dual
from ot_robust.training.checkpoint import load_latest

RUNS = [f"results/study-mnist/train/{m}" for m in ("got_pgd_s", "got_trades_s", "got_pgd_lm", "got_trades_lm")]


def exact_w(C: torch.Tensor, theta: float, y: torch.Tensor | None, use_pot: bool = False):
    """(W, plan) of the entropic problem the semi-dual maximises (LM: one problem per class, as Eq. 6 restricts):
    by Newton on the semi-dual to a marginal error of 1e-10 (:func:`ot_robust.ot.dual_potential`, tested against
    POT in tests/test_got_potential.py), or with ``use_pot`` by POT's log-domain Sinkhorn (slow on these costs: it
    needs 10^4-10^5 iterations)."""
    if not use_pot:
        Cg = C.detach().double().requires_grad_(True)
        phi, _ = dual_potential(Cg, theta, labels=y, labels_adv=y, tol=1e-10, max_iter=200)
        w = entropic_dual(phi, Cg, theta, labels=y, labels_adv=y)
        plan, = torch.autograd.grad(w, Cg)
        return float(w), plan.float()
    Cn = C.detach().double().numpy()
    n = Cn.shape[0]
    plan = np.zeros_like(Cn)
    if y is None:
        plan = pot.sinkhorn(np.full(n, 1 / n), np.full(n, 1 / n), Cn, theta, method="sinkhorn_log",
                            numItermax=200000, stopThr=1e-12)
    else:
        yn = y.numpy()
        for c in np.unique(yn):
            i = np.flatnonzero(yn == c)
            share = len(i) / n
            plan[np.ix_(i, i)] = share * pot.sinkhorn(np.full(len(i), 1 / len(i)), np.full(len(i), 1 / len(i)),
                                                      Cn[np.ix_(i, i)], theta, method="sinkhorn_log",
                                                      numItermax=200000, stopThr=1e-12)
    ab = np.full((n, n), 1 / n ** 2)
    nz = plan > 0
    w = float((plan * Cn).sum() + theta * (plan[nz] * np.log(plan[nz] / ab[nz])).sum())
    return w, torch.from_numpy(plan).float()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", default=RUNS)
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pot", action="store_true", help="exact W by POT's Sinkhorn instead of Newton (slow)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| checkpoint | solver | W after the potential step | exact entropic W | dual at phi = 0 | "
          "cosine(gradient, exact gradient) mean [min, max] | ms per batch |")
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        state, _ = load_latest(run)
        cfg = state["config"]
        model = load_model(run, device="cpu").eval()
        x, y = as_tensors(get_dataset(cfg["dataset"], "train", augment=False))
        gen = torch.Generator().manual_seed(args.seed)
        batches = [torch.randperm(len(x), generator=gen)[:cfg["batch_size"]] for _ in range(args.batches)]
        rows = {}
        for solver in ("adam", "sinkhorn"):
            defense = get_defense(cfg["method"], **{**cfg["method_params"], "potential_solver": solver})
            defense.load_state_dict(copy.deepcopy(state["defense"]))
            got = defense.ot
            ws, exact, zero, cos, ms = [], [], [], [], []
            torch.manual_seed(args.seed)
            for idx in batches:
                xb, yb = x[idx], y[idx]
                x_adv = defense.attack(model, xb, yb)
                with torch.no_grad():
                    logits, z = latent_forward(model, xb, defense.latent)
                logits_adv, z_adv = latent_forward(model, x_adv, defense.latent)
                z_adv = z_adv.detach().requires_grad_()
                logits_adv = model.fc(z_adv)  # h(z^a): the gradient reaches z^a through both costs
                t0 = time.perf_counter()
                w, _ = got(z, z_adv, logits, logits_adv, yb)
                ms.append(1000 * (time.perf_counter() - t0))
                g_ours, = torch.autograd.grad(w, z_adv, retain_graph=True)
                C = got.cost(z, z_adv, logits.softmax(-1), logits_adv.softmax(-1))
                lab = yb if got.label_matching else None
                w_ex, plan = exact_w(C, got.theta, lab, args.pot)
                g_ex, = torch.autograd.grad((plan * C).sum(), z_adv)
                ws.append(float(w.detach()))
                exact.append(w_ex)
                zero.append(float(entropic_dual(torch.zeros(len(idx)), C.detach(), got.theta, labels=lab,
                                                labels_adv=lab)))
                cos.append(cosine(g_ours, g_ex))
            rows[solver] = (np.mean(ws), np.mean(exact), np.mean(zero), cos, np.median(ms))
            print(f"| {run.rsplit('/', 1)[-1]} | {solver} | {np.mean(ws):.3f} | {np.mean(exact):.3f} | "
                  f"{np.mean(zero):.3f} | {np.mean(cos):.2f} [{min(cos):.2f}, {max(cos):.2f}] | {np.median(ms):.0f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
