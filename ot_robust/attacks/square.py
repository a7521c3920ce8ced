"""Square Attack: the score-based black-box attack of Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a
query-efficient black-box adversarial attack via random search", ECCV 2020 (Algorithm 1; the Linf sampling of
Algorithm 2, the L2 sampling of Algorithm 3), batched over images with per-image random choices.

Random search on the margin loss ``L(x) = f_y(x) - max_{k != y} f_k(x)`` (logits; the image is fooled once it is
<= 0): each iteration proposes one update ``delta`` localised in a random ``s x s`` square window and keeps it if
the loss decreases. One model query per image per iteration; images stop as soon as they are fooled.

* **Linf** (Alg. 2): start from vertical stripes ``x + eps * (+-1)`` (one random sign per column and channel);
  a proposal sets the window of every channel to ``x + eps * (+-1)`` (one random sign per channel); a proposal that
  would leave the current best point unchanged draws new signs (as the authors' code does).
* **L2** (Alg. 3): start from a grid of ``h // 5``-sided squares, each filled with the "pseudo-Gaussian" pattern
  ``eta`` (two halves of concentric rings weighted ``1 / (r + 1)^2``, the second half negated) times a random sign
  per channel, rescaled to norm ``eps``; a proposal moves the mass of a second random window into the first one,
  adds a new ``eta`` pattern there and keeps the total perturbation on the eps-sphere.
* **Schedule of the side** ``s``: ``s = round(sqrt(p * H * W))`` (at least 1 for Linf; at least 3 and odd for L2,
  at most ``min(H, W)``) with ``p`` halved from ``p_init`` at iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000 and
  8000 of a 10,000-query run; ``rescale_schedule=True`` (the authors' code, and torchattacks' default) stretches
  these milestones to ``queries``; ``False`` keeps them fixed (fra31's AutoAttack).

Written from the paper's algorithms and checked against the authors' reference code (max-andr/square-attack, and
fra31's PyTorch port in ``pyautoattack.square``, which ``tests/test_square.py`` compares with). Differences from
the reference code, none of which changes the algorithm: every image draws its own window position (the PyTorch
port draws one position for the whole batch, and for Linf one sign vector), every position ``0..H-s`` can be drawn
(the reference ``randint(0, H - s)`` leaves out the last one), and the query budget ``queries`` counts the initial
point (the reference runs ``queries`` iterations after it). No dependency beyond torch: this is the black-box check
of the sanity suite (:mod:`ot_robust.evaluation.sanity`) and the ``square`` attack spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..core.validation import check_eps, check_image_batch, check_int, check_labels, check_number
from .loop import model_mode, project_
from .losses import margin
from .protocol import AttackProtocol

NORMS = ("linf", "l2")
#: iterations (of a 10,000-query run) after which ``p`` is halved (Andriushchenko et al. 2020, Sec. 3.1 / code)
P_MILESTONES = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_RESAMPLE = 10  # Linf: redraws of the signs of a proposal that would not change the current point


def p_schedule(p_init: float, it: int, queries: int, rescale: bool = True) -> float:
    """The fraction ``p`` of pixels a square covers at iteration ``it`` (0-based) of a ``queries``-query run."""
    if rescale:
        it = int(it / queries * 10000)
    return p_init / 2 ** sum(it > m for m in P_MILESTONES)


def _rect_pattern(a: int, b: int) -> torch.Tensor:
    """``(a, b)`` block of concentric rectangles weighted ``1 / (r + 1)^2`` around the centre, unit L2 norm
    (the authors' ``pseudo_gaussian_pert_rectangles``)."""
    d = torch.zeros(a, b, dtype=torch.float64)
    ca, cb = a // 2, b // 2
    for r in range(max(ca, cb) + 1):
        d[max(ca - r, 0):min(ca - r + 2 * r + 1, a), max(cb - r, 0):min(cb - r + 2 * r + 1, b)] += 1.0 / (r + 1) ** 2
    n = d.norm()
    return d / n if n > 0 else d


def eta(s: int) -> torch.Tensor:
    """The L2 update pattern ``(s, s)`` of Alg. 3 (the authors' ``meta_pseudo_gaussian_pert``): the top half a ring
    pattern, the bottom half its negative, unit L2 norm (float64; transposed at random by the caller)."""
    d = torch.zeros(s, s, dtype=torch.float64)
    d[: s // 2] = _rect_pattern(s // 2, s)
    d[s // 2:] = -_rect_pattern(s - s // 2, s)
    return d / d.norm()


@dataclass
class Square(AttackProtocol):
    """Square Attack (Andriushchenko et al., ECCV 2020), untargeted, margin loss, Linf or L2; score-based black-box.

    ``attack(model, x, y) -> x_adv``: ``x`` ``(B, C, H, W)`` in [0, 1], ``y`` ``(B,)``; only the model's logits are
    read (no gradients); the model runs in eval mode (every submodule's mode restored).

    Args:
        eps: budget on the [0, 1] pixel scale (Linf or L2).
        norm: ``"linf"`` | ``"l2"``.
        queries: model queries per image per restart (>= 1), the initial point included.
        restarts: runs from new random starts, each on the images still not fooled.
        p_init: initial fraction of the pixels a square covers (0 < p_init <= 1; the paper tunes it per dataset
            and norm; AutoAttack and torchattacks use 0.8).
        seed: the random draws (a CPU generator: the same draws on every device); ``None``: drawn from torch's
            global RNG (the caller's stream: ``evaluate`` seeds each batch).
        rescale_schedule: stretch the halving milestones of ``p`` to ``queries`` (module doc).

    Returns (of a call): ``x_adv`` ``(B, C, H, W)``: the best point found for a fooled image, ``x`` itself
    otherwise (and for an image misclassified from the start); ``||x_adv - x|| <= eps``, ``x_adv`` in [0, 1].
    After a call ``last_queries`` (int64 ``(B,)``, queries spent, the clean forward not counted) and
    ``last_success`` (bool ``(B,)``, fooled, misclassified clean images included).

    Raises:
        ValueError: bad eps / norm, queries or restarts < 1, p_init outside (0, 1]; at call time images outside
            [0, 1] / non-finite, labels of the wrong shape or outside the model's classes.
    """

    eps: float
    norm: str = "linf"
    queries: int = 5000
    restarts: int = 1
    p_init: float = 0.8
    seed: int | None = 0
    rescale_schedule: bool = True
    kind: ClassVar[str] = "black-box"

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"norm={self.norm!r}; allowed: {NORMS}")
        if self.eps is None:
            raise ValueError("Square needs eps")
        self.eps = check_eps(self.eps, self.norm)
        self.queries = check_int("queries", self.queries, 1)
        self.restarts = check_int("restarts", self.restarts, 1)
        self.p_init = check_number("p_init", self.p_init, 0.0, low_open=True, high=1.0, high_open=False)
        self.last_queries = self.last_success = None

    # ---- random draws (CPU generator, moved to the images' device) ----
    def _signs(self, gen: torch.Generator, *shape, like: torch.Tensor) -> torch.Tensor:
        return (torch.randint(0, 2, shape, generator=gen) * 2 - 1).to(device=like.device, dtype=like.dtype)

    def _positions(self, gen: torch.Generator, n: int, h: int, w: int, s: int, device) -> tuple:
        vh = torch.randint(0, h - s + 1, (n,), generator=gen).to(device)
        vw = torch.randint(0, w - s + 1, (n,), generator=gen).to(device)
        return vh, vw

    @staticmethod
    def _window(vh: torch.Tensor, vw: torch.Tensor, s: int, h: int, w: int) -> torch.Tensor:
        """Per-image window masks ``(n, 1, h, w)`` bool: rows ``vh..vh+s-1``, columns ``vw..vw+s-1``."""
        rows = torch.arange(h, device=vh.device)
        cols = torch.arange(w, device=vw.device)
        in_h = (rows[None] >= vh[:, None]) & (rows[None] < vh[:, None] + s)
        in_w = (cols[None] >= vw[:, None]) & (cols[None] < vw[:, None] + s)
        return (in_h[:, :, None] & in_w[:, None, :])[:, None]

    def _side(self, it: int, h: int, w: int) -> int:
        p = p_schedule(self.p_init, it, self.queries, self.rescale_schedule)
        s = int(round(math.sqrt(p * h * w)))
        if self.norm == "linf":
            return min(max(s, 1), h, w)
        s = max(s, 3)
        s += s % 2 == 0
        return min(s, h, w)

    # ---- one run ----
    def _init_linf(self, x, gen):
        b, c, h, w = x.shape
        return (x + self.eps * self._signs(gen, b, c, 1, w, like=x)).clamp(0, 1)

    def _eta_batch(self, n: int, s: int, gen, like) -> torch.Tensor:
        """``n`` copies of ``eta(s)``, each transposed with probability 1/2: ``(n, 1, s, s)``."""
        e = eta(s).to(device=like.device, dtype=like.dtype)
        flip = (torch.rand(n, generator=gen) > 0.5).to(like.device).view(n, 1, 1, 1)
        return torch.where(flip, e.t().expand(n, 1, s, s), e.expand(n, 1, s, s))

    def _init_l2(self, x, gen):
        b, c, h, w = x.shape
        s = max(min(h, w) // 5, 1)
        nh, nw = h // s, w // s
        oh, ow = (h - s * nh) // 2, (w - s * nw) // 2
        delta = torch.zeros_like(x)
        for i in range(nh):
            for j in range(nw):
                pattern = self._eta_batch(b, s, gen, x) * self._signs(gen, b, c, 1, 1, like=x)
                delta[:, :, oh + i * s: oh + (i + 1) * s, ow + j * s: ow + (j + 1) * s] += pattern
        nrm = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(b, 1, 1, 1)
        return (x + delta / nrm * self.eps).clamp(0, 1)

    def _propose_linf(self, xa, xb, it, gen):
        n, c, h, w = xa.shape
        s = self._side(it, h, w)
        win = self._window(*self._positions(gen, n, h, w, s, xa.device), s, h, w)
        signs = self._signs(gen, n, c, 1, 1, like=xa)
        cand = (xa + self.eps * signs).clamp(0, 1)
        for _ in range(_RESAMPLE):  # a proposal equal to the current point wastes a query: draw new signs
            same = (((cand - xb).abs() < 1e-7) | ~win).flatten(1).all(1)
            if not bool(same.any()):
                break
            k = int(same.sum())
            signs[same] = self._signs(gen, k, c, 1, 1, like=xa)
            cand[same] = (xa[same] + self.eps * signs[same]).clamp(0, 1)
        return torch.where(win, cand, xb)

    def _propose_l2(self, xa, xb, it, gen):
        n, c, h, w = xa.shape
        s = self._side(it, h, w)
        vh, vw = self._positions(gen, n, h, w, s, xa.device)
        vh2, vw2 = self._positions(gen, n, h, w, s, xa.device)
        win1, win2 = self._window(vh, vw, s, h, w), self._window(vh2, vw2, s, h, w)
        delta = xb - xa
        ar = torch.arange(s, device=xa.device)
        bi = torch.arange(n, device=xa.device)[:, None, None]
        rows, cols = (vh[:, None] + ar)[:, :, None], (vw[:, None] + ar)[:, None, :]
        patch = delta[bi, :, rows, cols].permute(0, 3, 1, 2)  # (n, c, s, s): window 1 of each image
        norm_w1 = patch.pow(2).sum((2, 3), keepdim=True).sqrt()
        norm_img = delta.flatten(1).norm(dim=1).view(n, 1, 1, 1)
        norm_ws = (delta * (win1 | win2)).pow(2).sum((2, 3), keepdim=True).sqrt()  # (n, c, 1, 1)
        new = self._eta_batch(n, s, gen, xa) * self._signs(gen, n, c, 1, 1, like=xa) + patch / (1e-10 + norm_w1)
        budget = ((self.eps ** 2 - norm_img ** 2).clamp_min(0) / c + norm_ws ** 2).sqrt()
        new = new / new.pow(2).sum((2, 3), keepdim=True).sqrt().clamp_min(1e-12) * budget
        delta = delta.masked_fill(win2, 0.0)  # window 2 gives up its mass ...
        delta[bi, :, rows, cols] = new.permute(0, 2, 3, 1)  # ... which window 1 takes, with the new pattern
        nrm = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(n, 1, 1, 1)
        return (xa + delta / nrm * self.eps).clamp(0, 1)

    def _run(self, model, x, y, gen):
        """One restart on images ``x`` (all correctly classified): (best points, their margins, queries)."""
        x_best = self._init_linf(x, gen) if self.norm == "linf" else self._init_l2(x, gen)
        m_best = margin(model(x_best), y)
        q = torch.ones(len(x), dtype=torch.long, device=x.device)
        propose = self._propose_linf if self.norm == "linf" else self._propose_l2
        for it in range(self.queries - 1):
            act = (m_best > 0).nonzero().squeeze(1)
            if act.numel() == 0:
                break
            x_new = propose(x[act], x_best[act], it, gen)
            m = margin(model(x_new), y[act])
            q[act] += 1
            better = m < m_best[act]
            x_best[act[better]] = x_new[better]
            m_best[act[better]] = m[better]
        return x_best, m_best, q

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Adversarial examples for ``x`` ``(B, C, H, W)`` in [0, 1], labels ``y`` ``(B,)`` (see the class doc)."""
        check_image_batch(x)
        b = x.shape[0]
        check_labels(y, b)
        x, y = x.detach(), y.to(x.device)
        seed = int(self.seed) if self.seed is not None else int(torch.randint(0, 2**31 - 1, ()))
        gen = torch.Generator().manual_seed(seed)
        x_adv = x.clone()
        queries = torch.zeros(b, dtype=torch.long, device=x.device)
        with torch.no_grad(), model_mode(model):
            logits = model(x)
            check_labels(y, b, logits.shape[-1])
            success = logits.argmax(1) != y
            for _ in range(self.restarts):
                idx = (~success).nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                best, _, q = self._run(model, x[idx], y[idx], gen)
                queries[idx] += q
                best = x[idx] + project_(best - x[idx], x[idx], self.eps, self.norm)  # round-off guard
                fooled = model(best).argmax(1) != y[idx]  # a margin of exactly 0 (a tie) is not a success
                x_adv[idx[fooled]] = best[fooled]
                success[idx[fooled]] = True
        self.last_queries, self.last_success = queries, success
        return x_adv
