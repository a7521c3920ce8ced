"""RayS: the hard-label (decision-based) Linf attack of Chen & Gu, "RayS: A Ray Searching Method for Hard-label
Adversarial Attack", KDD 2020 (Algorithms 1-3), batched over images: each image keeps its own query counter and its
own place in the hierarchical search, and spends one query per model call, so every call carries all the images
still searching (a batch gives each image exactly the result of RayS run on it alone).

RayS reformulates the minimum-Linf adversarial problem as a search over *ray directions* ``s`` in {-1, +1}^d
(d = C * H * W): along the ray ``x + r * s`` (clipped to the image box [0, 1]) the decision-boundary radius

    g(s) = min { r >= 0 : f(clip(x + r * s)) != y }

is found by binary search on the top-1 label alone (Alg. 1), and RayS minimises g over the sign vectors:

* **Fast check** (Alg. 2): a new direction ``s'`` can only beat the current best radius ``r_best`` if the point at
  ``r_best`` along ``s'`` is already adversarial; one query decides it, and only then does the binary search on
  ``[0, r_best]`` run (``[0, 1]`` while no boundary is known: radius 1 reaches a vertex of the box).
* **Hierarchical search** (Alg. 3): starting from ``s = (1, ..., 1)``, stage ``k`` cuts the (flattened) current best
  direction into ``2^k`` blocks of ``ceil(d / 2^k)`` coordinates and tries flipping the signs of each block in turn,
  keeping a flip when it lowers ``r_best``; the block size halves from stage to stage down to single coordinates,
  which are then cycled through until the budget is spent (as in the authors' ``RayS.py``).
* **Early stop**: an image stops as soon as its best boundary point is within ``eps`` (``early_stop=True``, the
  robust-accuracy setting); ``early_stop=False`` spends the whole budget refining the boundary distance (the
  ADBD setting of the paper's Sec. 4.3).

Written from the paper's algorithms (the authors' public code, uclaml/RayS, was read for reference only). Units:
the radius is the Linf distance on the [0, 1] pixel scale (the authors' code measures it along the L2-normalised
ray, ``r * sqrt(d)``, and stops its binary search at 1e-3 there; the default ``tol`` is that same tolerance,
``1e-3 / sqrt(d)`` in Linf units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..core.validation import check_choice, check_eps, check_images, check_int, check_labels, check_number
from .loop import model_mode
from .protocol import AttackProtocol

INITS = ("ones", "random")


@dataclass
class RayS(AttackProtocol):
    """RayS (Chen & Gu, KDD 2020): decision-based Linf attack by hierarchical sign search over ray directions.

    ``attack(model, x, y) -> x_adv``: ``x`` ``(B, C, H, W)`` in [0, 1], ``y`` ``(B,)`` labels; only the model's top-1
    prediction is used (no scores, no gradients). The model runs in eval mode (every submodule's mode restored).

    Args:
        eps: Linf budget on the [0, 1] pixel scale (0 <= eps <= 1): an image counts as fooled once a boundary point
            within ``eps`` is found.
        queries: query budget per image (>= 1). Every model forward of an image counts one query, including the
            first one on the clean image; no image is ever queried more than ``queries`` times.
        seed: the random initial signs of ``init="random"``; the paper's all-ones start (default) draws nothing, so
            RayS is then deterministic.
        early_stop: stop an image once its best boundary point is within ``eps`` (robust accuracy); ``False`` spends
            the whole budget on every image, refining ``last_adbd`` (boundary distance).
        tol: binary-search tolerance on the Linf radius (> 0); ``None`` -> ``1e-3 / sqrt(d)``, the authors' 1e-3 on
            their L2-normalised ray.
        init: ``"ones"`` (s = (1, ..., 1), the paper) or ``"random"`` (seeded Rademacher signs).

    Returns (of a call):
        ``x_adv`` ``(B, C, H, W)``: for a fooled image the best boundary point found, ``clip(x + r_best * s_best)``
        (adversarial, Linf distance ``last_adbd <= eps``); otherwise ``x`` itself (no adversarial point within
        ``eps`` was found). Always ``||x_adv - x||_inf <= eps`` and ``x_adv`` in [0, 1].

    Per-example results of the last call (tensors ``(B,)`` on ``x``'s device):
        ``last_adbd``: the Linf distance ``||x_adv' - x||_inf`` of the best boundary point ``x_adv'`` found (its
            radius along the ray, less where the box clips it), i.e. the image's decision-boundary distance as
            estimated by RayS (the paper's ADBD is the mean over images); ``0`` for an image misclassified at the
            start; ``inf`` where no ray direction tried within the budget crossed the boundary inside the box. With
            ``early_stop`` a fooled image stops at its first radius <= eps, so its value is an upper bound <= eps.
            Average with ``last_adbd[isfinite].mean()`` or over all images after replacing ``inf`` (e.g. by 1).
        ``last_queries``: queries spent per image (int64, ``1 <= q <= queries``).
        ``last_success``: bool, fooled within ``eps`` (misclassified at the start included).
    Robust accuracy = fraction still correctly classified = ``1 - last_success.float().mean()``.

    Raises:
        ValueError: eps outside [0, 1], queries < 1, tol <= 0 or > 1, unknown init; at call time images outside
            [0, 1] / non-finite, or labels of the wrong shape or outside the model's classes.
    """

    eps: float
    queries: int = 10000
    seed: int | None = 0
    early_stop: bool = True
    tol: float | None = None
    init: str = "ones"
    norm: ClassVar[str] = "linf"
    kind: ClassVar[str] = "black-box"

    def __post_init__(self):
        self.eps = check_eps(self.eps, "linf")
        self.queries = check_int("queries", self.queries, 1)
        if self.tol is not None:
            self.tol = check_number("tol", self.tol, 0.0, low_open=True, high=1.0, high_open=False)
        check_choice("init", self.init, INITS)
        self.last_adbd = self.last_queries = self.last_success = None

    def _initial_signs(self, b: int, d: int, device, dtype) -> torch.Tensor:
        if self.init == "ones":
            return torch.ones(b, d, device=device, dtype=dtype)
        gen = torch.Generator().manual_seed(int(self.seed or 0))  # CPU draw: the same signs on every device
        return (torch.randint(0, 2, (b, d), generator=gen) * 2 - 1).to(device=device, dtype=dtype)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Adversarial examples for ``x`` ``(B, C, H, W)`` in [0, 1] with labels ``y`` ``(B,)`` (see the class doc)."""
        check_images(x)
        if x.dim() < 2:
            raise ValueError(f"x must be a batch of images (B, C, H, W), got shape {tuple(x.shape)}")
        b = x.shape[0]
        check_labels(y, b)
        x = x.detach()
        y = y.to(x.device)
        d = x[0].numel()
        tol = self.tol if self.tol is not None else 1e-3 / math.sqrt(d)
        xf = x.reshape(b, d)
        q = torch.ones(b, dtype=torch.long, device=x.device)  # the clean query below
        coord = torch.arange(d, device=x.device)

        with torch.no_grad(), model_mode(model):
            logits = model(x)
            check_labels(y, b, logits.shape[-1])
            wrong = logits.argmax(1) != y  # misclassified at the start: distance 0, nothing to search
            success = wrong.clone()
            adbd = torch.full((b,), math.inf, device=x.device, dtype=x.dtype).masked_fill_(wrong, 0.0)
            r_best = torch.full((b,), math.inf, device=x.device, dtype=x.dtype)  # radius along the ray
            s_best = self._initial_signs(b, d, x.device, x.dtype)
            # Each image runs its own copy of Alg. 3 (its own block counter) and spends exactly one query per tick,
            # either on the fast check of its next block flip or on one bisection step of its current candidate:
            # every model call carries all active images, and each image's sequence of queries is that of RayS run
            # on it alone.
            level = torch.zeros(b, dtype=torch.long, device=x.device)
            block = torch.zeros_like(level)
            searching = torch.zeros(b, dtype=torch.bool, device=x.device)  # in a binary search (Alg. 1)
            cand = s_best.clone()
            lo, hi = torch.zeros_like(r_best), torch.zeros_like(r_best)
            active = ~success & (q < self.queries)
            while bool(active.any()):
                idx = active.nonzero().squeeze(1)
                srch = searching[idx]
                size = (d + (1 << level[idx]) - 1) >> level[idx]  # ceil(d / 2^level)
                start = block[idx] * size
                new = idx[~srch]  # fast check (Alg. 2) of the next block flip, at the best radius so far
                if new.numel():
                    flip = (coord >= start[~srch, None]) & (coord < (start + size)[~srch, None])
                    cand[new] = torch.where(flip, -s_best[new], s_best[new])
                    hi[new] = r_best[new].clamp(max=1.0)
                    lo[new] = 0.0
                radius = torch.where(srch, (lo[idx] + hi[idx]) / 2, hi[idx])
                pts = (xf[idx] + radius[:, None] * cand[idx]).clamp_(0, 1)
                q[idx] += 1
                adv = model(pts.view(-1, *x.shape[1:])).argmax(1) != y[idx]
                # a bisection step keeps hi adversarial; a failed fast check ends the candidate
                hi[idx] = torch.where(srch & adv, radius, hi[idx])
                lo[idx] = torch.where(srch & ~adv, radius, lo[idx])
                go_on = (srch | adv) & ((hi[idx] - lo[idx]) > tol) & (q[idx] < self.queries)
                searching[idx] = go_on
                done = ~go_on
                fin = idx[done & (srch | adv)]  # candidates whose search ended: keep the flip if it lowers r_best
                better = fin[hi[fin] < r_best[fin]]
                if better.numel():
                    r_best[better] = hi[better]
                    s_best[better] = cand[better]
                    pts = (xf[better] + hi[better, None] * cand[better]).clamp_(0, 1)
                    adbd[better] = (pts - xf[better]).abs().amax(1)
                # next block; the last stage (single coordinates) is cycled through until the budget is spent
                nxt = idx[done]
                if nxt.numel():
                    sz = size[done]
                    blk = block[nxt] + 1
                    wrap = (blk * sz >= d) | (blk >= (1 << level[nxt]))  # the block just tried ended the stage
                    block[nxt] = torch.where(wrap, 0, blk)
                    level[nxt] += (wrap & (sz > 1)).long()
                success = success | (adbd <= self.eps)
                active = (q < self.queries) & ~(success if self.early_stop else wrong)

        x_adv = xf.clone()
        win = success & ~wrong
        if bool(win.any()):  # the very points whose distance adbd (<= eps) was measured: same ops, same floats
            x_adv[win] = (xf[win] + r_best[win][:, None] * s_best[win]).clamp_(0, 1)
        self.last_adbd, self.last_queries, self.last_success = adbd, q, success
        return x_adv.view_as(x)
