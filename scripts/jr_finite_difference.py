"""How exact is the double-backprop-free Jacobian penalty gradient (``jr_gradient="finite_difference"``)?

The parameter gradient of ``R = ||g||^2`` with ``g = J(x)^T v`` is ``2 d/dtheta [v^T J g]`` (``g`` held fixed), and
``J g`` is a directional derivative of the network, so the second backprop can be replaced by a forward difference
``(f(x + t g) - f(x)) / t``: one first-order VJP, one more forward and an ordinary backward instead of a VJP with
``create_graph`` plus a double backward. This script compares, against the exact gradient (``jacobian_frobenius``),
on the models OTJR is benchmarked with (train mode):

* ``plain``: the difference through the network as it is (dropout masks replayed, running statistics spared): the
  finite-difference input-gradient regularization of Finlay & Oberman (2019);
* ``frozen``: the package's ``jacobian_frobenius_fd``, the difference on the linear piece of ``x`` (ReLU masks and
  max-pool indices frozen, ``ot_robust.defenses.linearize``);

plus a smooth control (small_cnn with Softplus instead of ReLU), and times one CE + JR forward/backward.

    python scripts/jr_finite_difference.py

Finding (docs/otjr.md): for ReLU networks the plain difference of *gradients* jumps wherever the step
crosses an activation boundary, an O(1/t) error per crossing and O(t) crossings, so its error does not vanish as
the step shrinks; only the smooth control converges. The frozen difference matches the exact gradient to float32
rounding (no BatchNorm) or to O(t) (BatchNorm).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from ot_robust.core.data import as_tensors, load_mnist_sample
from ot_robust.defenses.jacobian import jacobian_frobenius, jacobian_frobenius_fd, random_unit_vectors
from ot_robust.defenses.linearize import pattern_forward
from ot_robust.models import get_model


def softplus_(model: nn.Module) -> nn.Module:
    for name, child in model.named_children():
        if isinstance(child, nn.ReLU):
            setattr(model, name, nn.Softplus(beta=5.0))
        else:
            softplus_(child)
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", default="0.1,0.01,0.001,0.0001", help="finite-difference steps h (l2, [0,1] scale)")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats (median)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    xm, ym = as_tensors(load_mnist_sample("train"), n=args.batch)
    cases = [("cw_cnn (dropout)", get_model("cw_cnn", dataset="mnist"), xm, ym),
             ("small_cnn", get_model("small_cnn", dataset="mnist"), xm, ym),
             ("small_cnn, Softplus (smooth control)", softplus_(get_model("small_cnn", dataset="mnist")), xm, ym),
             ("wrn-16-4 (BatchNorm; random 32x32 input)", get_model("wrn", dataset="cifar10", depth=16, width=4),
              torch.rand(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,)))]
    hs = [float(s) for s in args.steps.split(",")]
    print(f"batch {args.batch}, one random unit projection per example, train mode, one thread")
    for label, model, x, y in cases:
        model.train()
        params = [p for p in model.parameters()]
        v = random_unit_vectors(1, x.shape[0], 10, generator=torch.Generator().manual_seed(1))[0]

        def penalty(kind, h):
            torch.manual_seed(5)  # same dropout masks for every variant
            xc = x.clone().requires_grad_(True)
            if kind == "exact":
                z = model(xc)
                return z, jacobian_frobenius(xc, z, projections=v)
            z, replay = pattern_forward(model, xc, freeze=kind == "frozen")
            return z, jacobian_frobenius_fd(xc, z, replay, projections=v, h=h)

        def gradient(kind, h=None):
            """(JR value, its parameter gradient flattened)."""
            _, jr = penalty(kind, h)
            grads = torch.autograd.grad(jr, params, allow_unused=True)
            flat = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])
            return float(jr.detach()), flat

        def seconds(kind, h=None):
            """Median time of what a training step does: CE + 0.002 JR, forward and backward."""
            def once():
                t0 = time.perf_counter()
                z, jr = penalty(kind, h)
                (F.cross_entropy(z, y) + 0.002 * jr).backward()
                model.zero_grad(set_to_none=True)
                return time.perf_counter() - t0
            once()  # warm-up
            return statistics.median(once() for _ in range(args.repeats))

        value, exact = gradient("exact")
        t_exact = seconds("exact")
        print(f"\n{label}: JR value {value:.4g}; exact step (CE + JR, fwd + bwd) {t_exact * 1e3:.0f} ms")
        for kind in ("plain", "frozen"):
            if kind == "frozen" and "Softplus" in label:
                continue  # nothing to freeze
            for h in hs:
                v_fd, fd = gradient(kind, h)
                cos = float(F.cosine_similarity(exact, fd, dim=0))
                rel = float((fd - exact).norm() / exact.norm())
                t_fd = seconds(kind, h)
                print(f"  {kind:6s} h={h:<7g} value {v_fd:.4g}  gradient cosine {cos:+.4f}  relative error {rel:9.2e}"
                      f"  time {t_fd * 1e3:.0f} ms ({t_fd / t_exact:.2f}x exact)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
