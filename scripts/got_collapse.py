"""Does a GOT model collapse? Train a GOT defense for a few hundred steps on the bundled MNIST sample and print
the terms and the clean test accuracy every 10 steps (the measurements behind the GOT table of docs/got.md).

    python scripts/got_collapse.py --defense got_trades_lm --w-gradient both --warmup 0        # collapses
    python scripts/got_collapse.py --defense got_trades_lm --w-gradient adversarial --warmup 78 --steps 156

CW CNN, Adam 1e-3, batch 128, training adversary 3 x 0.25 at eps 0.3 (the quick profile), 500 test images, seed 0,
one torch thread. ``--ramp N`` ramps beta linearly over N steps after the warm-up.
"""
from __future__ import annotations

import argparse
import time

import torch

from ot_robust.core.data import as_tensors, load_mnist_sample
from ot_robust.defenses import get_defense
from ot_robust.models import get_model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--defense", default="got_trades_lm", choices=["got_pgd_s", "got_pgd_lm", "got_trades_s",
                                                                  "got_trades_lm"])
    ap.add_argument("--w-gradient", default="adversarial", choices=["adversarial", "both"])
    ap.add_argument("--beta", type=float, default=10.0)
    ap.add_argument("--warmup", type=int, default=0, help="steps with W weighted 0")
    ap.add_argument("--ramp", type=int, default=0, help="steps of linear ramp of beta after the warm-up")
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--clean-weight", type=float, default=None, help="GOT-PGD: CE weight on clean images (0)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    xtr, ytr = as_tensors(load_mnist_sample("train"))
    xte, yte = as_tensors(load_mnist_sample("test"), n=500)
    model = get_model("cw_cnn", dataset="mnist")
    params = dict(eps=0.3, step_size=0.25, steps=3, beta=args.beta, w_gradient=args.w_gradient,
                  warmup_steps=args.warmup, ramp_steps=args.ramp)
    if "pgd" in args.defense:
        params["clean_weight"] = 0.0 if args.clean_weight is None else args.clean_weight
    defense = get_defense(args.defense, **params)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    perm = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(0))
    per_epoch = len(xtr) // 128
    t0 = time.time()
    for it in range(args.steps):
        idx = perm[(it % per_epoch) * 128:(it % per_epoch + 1) * 128]
        model.train()
        out = defense.loss(model, xtr[idx], ytr[idx])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if it % 10 == 0 or it == args.steps - 1:
            model.eval()
            with torch.no_grad():
                acc = (model(xte).argmax(1) == yte).float().mean().item()
            logs = " ".join(f"{k}={v:.4f}" for k, v in out.logs.items())
            print(f"step {it:4d} {logs} clean_acc={acc:.3f} ({time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
