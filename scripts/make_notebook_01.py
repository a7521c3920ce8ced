"""Generate notebooks/01_ot_solvers.ipynb (the OT-solver companion notebook) with nbformat.

Run: ``.venv/bin/python scripts/make_notebook_01.py``; execute with papermill, e.g.
``.venv/bin/python -m papermill notebooks/01_ot_solvers.ipynb /tmp/01_out.ipynb -p profile smoke``.
"""
import sys

from nbgen import build, code, main
from nbgen import markdown as md

cells = [
    md("# 01 - OT solvers\n\nThe optimal-transport computations behind the three papers, from `ot_robust.ot`: "
       "log-domain Sinkhorn (FS supplement Alg. 1), IPOT (FS supplement Alg. 2), exact OT (POT `ot.emd`), the "
       "Feature Scattering solver preset, and sliced-Wasserstein movement directions (OTJR Eq. 7-11, Fig. 5). "
       "Figures are shown inline and written (PNG + PDF) to `fig_dir` (the pipeline: `figures/<profile>/`; by hand: "
       "`runs/<profile>/figures/` unless you set it), numbers to `runs/<profile>/ot_solvers/results.json`."),
    code('profile = "quick"   # "smoke" (CI, seconds) or "quick"\n'
         'fig_dir = None      # None -> runs/<profile>/figures/ (the pipeline passes figures/<profile>)\n'
         'seed = 0', ["parameters"]),
    code("""import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ot_robust.ot import (FS_SINKHORN, cosine_cost, cost_matrix, emd, ipot, random_projections, sinkhorn,
                          sliced_wasserstein)
from ot_robust.core.style import save_figure
from ot_robust.core.utils import atomic_write_json, provenance, set_seed

set_seed(seed)
smoke = profile == "smoke"
root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
fig_dir = Path(fig_dir) if fig_dir is not None else root / "runs" / profile / "figures"
run_dir = root / "runs" / profile / "ot_solvers"
fig_dir.mkdir(parents=True, exist_ok=True)
run_dir.mkdir(parents=True, exist_ok=True)
results = {}


def save(fig, name):
    save_figure(fig, f"01_{name}", fig_dir, close=False)  # atomic PNG + PDF; the figure stays, shown inline"""),
    md("## 1. Plans: Sinkhorn at several tau (FS supp. Alg. 1, Table 3's tau values), IPOT (Alg. 2) and exact OT\n\n"
       "One small problem: 12 source and 12 target points in 2-D, squared-Euclidean cost scaled to [0, 1]. "
       "Large tau blurs the plan; as tau -> 0 Sinkhorn and IPOT approach the exact (permutation) plan."),
    code("""g = torch.Generator().manual_seed(seed)
n = 12
xs = torch.randn(n, 2, generator=g, dtype=torch.float64)
xt = torch.randn(n, 2, generator=g, dtype=torch.float64) + torch.tensor([2.0, 0.5], dtype=torch.float64)
C = cost_matrix(xs, xt, "sqeuclidean")
C = C / C.max()
taus = [0.5, 0.05, 0.01, 0.001]
plans = {f"Sinkhorn tau={t}": sinkhorn(C, reg=t, max_iter=5000, tol=1e-7, check_every=50) for t in taus}
plans["IPOT beta=1 (200 it)"] = ipot(C, beta=1.0, max_iter=200)
plans["exact (ot.emd)"] = emd(C)
fig, axes = plt.subplots(1, len(plans), figsize=(3 * len(plans), 3))
for ax, (name, r) in zip(axes, plans.items()):
    ax.imshow(r.plan.numpy(), cmap="viridis")
    ax.set_title(f"{name}\\n<T,C>={float(r.cost):.4f}", fontsize=8)
    ax.set_xticks([]); ax.set_yticks([])
save(fig, "plans")
results["plans"] = {k: {"cost": float(r.cost), "n_iter": r.n_iter, "marginal_err": r.err} for k, r in plans.items()}
results["plans"]"""),
    md("## 2. Cost and marginal error vs iterations (Alg. 1 and Alg. 2)\n\n"
       "`err` is the L1 violation of the row marginal of the returned plan (the column marginal is exact after the "
       "last half-step). The exact cost is the horizontal line."),
    code("""iters = [1, 2, 5, 10, 20, 50, 100, 200] if smoke else [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]
exact = float(plans["exact (ot.emd)"].cost)
curves = {}
for name, solve in {"Sinkhorn tau=0.01": lambda k: sinkhorn(C, reg=0.01, max_iter=k, tol=0.0),
                    "Sinkhorn tau=0.001": lambda k: sinkhorn(C, reg=0.001, max_iter=k, tol=0.0),
                    "IPOT beta=1": lambda k: ipot(C, beta=1.0, max_iter=k),
                    "IPOT beta=0.1": lambda k: ipot(C, beta=0.1, max_iter=k)}.items():
    rs = [solve(k) for k in iters]
    curves[name] = {"iters": iters, "cost": [float(r.cost) for r in rs], "err": [r.err for r in rs]}
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
for name, c in curves.items():
    a1.plot(c["iters"], c["cost"], marker="o", ms=3, label=name)
    a2.plot(c["iters"], c["err"], marker="o", ms=3, label=name)
a1.axhline(exact, color="k", ls="--", label="exact")
a1.set(xscale="log", xlabel="iterations", ylabel="<T, C>")
a2.set(xscale="log", yscale="log", xlabel="iterations", ylabel="row-marginal L1 error")
a1.legend(fontsize=7)
save(fig, "convergence")
results["convergence"] = {"exact_cost": exact, "curves": curves}"""),
    md("## 3. The Feature Scattering preset (`FS_SINKHORN`): how many iterations it really takes\n\n"
       "FS computes a Sinkhorn plan (tau = 0.01, at most 100 iterations) between the cosine costs of clean and "
       "perturbed logits of a batch, and the official code stops once the summed absolute change of the row "
       "potential `u = tau log l` (cost units) drops below 0.1. Here: 60 random 10-class logit vectors "
       "(N(0, 3^2), roughly the scale of a trained model's logits) versus the same logits slightly perturbed "
       "(FS's random start / one attack step), and versus unrelated logits. We report the iterations taken, the "
       "marginal error, and how far cost and plan are from the converged solution."),
    code("""trials = 3 if smoke else 20
conv_iter = 2000 if smoke else 10000   # reference "converged" solve; its own error is reported
fs_rows = []
for t in range(trials):
    gen = torch.Generator().manual_seed(1000 + t)
    logits = 3 * torch.randn(60, 10, generator=gen)
    for kind, pert in (("slight (sigma=0.1)", 0.1), ("medium (sigma=1)", 1.0), ("unrelated", None)):
        other = 3 * torch.randn(60, 10, generator=gen) if pert is None else \
logits + pert * torch.randn(60, 10, generator=gen)
        Cf = cosine_cost(logits, other).double()
        fs = sinkhorn(Cf, **FS_SINKHORN)
        conv = sinkhorn(Cf, reg=0.01, max_iter=conv_iter, tol=1e-6, check_every=50)
        fs_rows.append(dict(kind=kind, n_iter=fs.n_iter, err=fs.err, converged_err=conv.err,
                            cost=float(fs.cost), cost_converged=float(conv.cost),
                            cost_rel_gap=abs(float(fs.cost - conv.cost)) / float(conv.cost),
                            plan_l1_to_converged=float((fs.plan - conv.plan).abs().sum())))
summary = {}
for kind in dict.fromkeys(r["kind"] for r in fs_rows):
    rows = [r for r in fs_rows if r["kind"] == kind]
    mean = lambda key: sum(r[key] for r in rows) / len(rows)
    summary[kind] = {k: mean(k) for k in ("n_iter", "err", "converged_err", "cost_rel_gap", "plan_l1_to_converged")}
    summary[kind]["n_iter_min"] = min(r["n_iter"] for r in rows)
    summary[kind]["n_iter_max"] = max(r["n_iter"] for r in rows)
results["fs_preset"] = {"preset": FS_SINKHORN, "trials": trials, "summary": summary, "rows": fs_rows}
fig, ax = plt.subplots(figsize=(5, 3.5))
for kind in summary:
    ax.scatter([r["n_iter"] for r in fs_rows if r["kind"] == kind],
               [r["plan_l1_to_converged"] for r in fs_rows if r["kind"] == kind], label=kind, s=15)
ax.set(xlabel="iterations taken by FS_SINKHORN", ylabel="|T_fs - T_converged|_1 (total mass 1)")
ax.legend(fontsize=7)
save(fig, "fs_preset")
summary"""),
    md("## 4. Random vs optimal movement directions (OTJR Fig. 5, Eq. 10-11)\n\n"
       "Top: random unit directions (what random Jacobian regularization projects on). Bottom: the optimal "
       "movement directions Delta_i of the source points (green) towards the target (orange) from the sliced "
       "Wasserstein distance with K projections."),
    code("""gen = torch.Generator().manual_seed(seed)
src = 0.6 * torch.randn(40, 2, generator=gen)
tgt = 0.6 * torch.randn(40, 2, generator=gen) + torch.tensor([2.5, 1.5])
rand_dir = random_projections(2, 40, gen).T
K = 16 if smoke else 128
sw = sliced_wasserstein(src, tgt, n_projections=K, generator=gen)
fig, axes = plt.subplots(2, 1, figsize=(5, 8), sharex=True)
for ax, d, title in ((axes[0], rand_dir, "random directions"), (axes[1], sw.directions, f"optimal directions (K={K})")):
    ax.scatter(*src.T, c="tab:green", s=12, label="source")
    ax.scatter(*tgt.T, c="tab:orange", s=12, label="target")
    ax.quiver(src[:, 0], src[:, 1], d[:, 0], d[:, 1], color="tab:green", angles="xy", scale_units="xy", scale=2)
    ax.set_title(title); ax.set_aspect("equal")
axes[0].legend(fontsize=7)
save(fig, "movement_directions")
mean_shift = (tgt.mean(0) - src.mean(0)) / (tgt.mean(0) - src.mean(0)).norm()
results["movement_directions"] = {"K": K, "sw_distance": float(sw.distance),
                                  "mean_cos_to_mean_shift_optimal": float((sw.directions @ mean_shift).mean()),
                                  "mean_cos_to_mean_shift_random": float((rand_dir @ mean_shift).mean())}
results["movement_directions"]"""),
    code("""results["provenance"] = provenance(profile=profile, seed=seed, notebook="01_ot_solvers")
atomic_write_json(run_dir / "results.json", results)
print("wrote", run_dir / "results.json", "and figures in", fig_dir)"""),
]

NOTEBOOKS = {"01_ot_solvers": lambda: build(cells)}

if __name__ == "__main__":
    sys.exit(main(NOTEBOOKS, __file__, __doc__.split("\n\n")[0]))
