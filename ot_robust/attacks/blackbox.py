"""Black-box attacks: transfer from a source model, SimBA, and greedy local search.

* :class:`Transfer` - adversarial examples crafted on a *source* model and evaluated on the target (FS paper Sec. 5.3:
  "Undefended" = a standard-trained source, "Siamese" = a second copy of the defended model trained separately).
* :class:`SimBA` - Simple Black-box Attack, Guo et al. (ICML 2019), Algorithm 1: try +/- a step along a random
  orthonormal direction (pixel or low-frequency DCT basis), keep it if the true-class probability drops.
* :class:`LocalSearch` - the gradient-free greedy local search of Narodytska & Kasiviswanathan (CVPRW 2017),
  Algorithm 3 (LocSearchAdv), used in the FS rebuttal Sec. 4 (FS model: 89.9%).

All use only the model's output probabilities (score-based), are batched over examples, keep
``||x_adv - x|| <= eps`` and ``x_adv`` in [0, 1], and are deterministic for a given ``seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .protocol import AttackProtocol
from .loop import check_attack_params, check_images, model_mode, project_
from .whitebox import make_generator


def _true_prob(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(probability of class ``y``, predicted class) for a batch; no gradients."""
    logits = model(x)
    return F.softmax(logits, 1).gather(1, y[:, None]).squeeze(1), logits.argmax(1)


@dataclass
class Transfer(AttackProtocol):
    """Transfer attack: ``attack`` (e.g. a :class:`~ot_robust.attacks.PGD`) run on ``source``, evaluated on the target.

    ``eps``/``norm`` are the inner attack's, so the bounds hold by construction.
    """

    source: nn.Module
    attack: Callable
    kind: ClassVar[str] = "black-box"

    @property
    def eps(self) -> float:
        return self.attack.eps

    @property
    def norm(self) -> str:
        return getattr(self.attack, "norm", "linf")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.attack(self.source.to(x.device), x, y)


def dct_matrix(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``(n, n)``: row ``k`` is the k-th cosine basis vector."""
    i = torch.arange(n, device=device, dtype=dtype)
    d = torch.cos(math.pi * (2 * i[None, :] + 1) * i[:, None] / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


@dataclass
class SimBA(AttackProtocol):
    """SimBA (Guo et al. 2019, Alg. 1), batched: all active examples try the same direction ``q_t`` each iteration.

    Args:
        eps: budget (Linf or L2) on the [0, 1] scale. norm: ``"linf"`` | ``"l2"``.
        iters: directions tried (each costs 2 queries per still-unbroken example).
        basis: ``"pixel"`` (standard basis) or ``"dct"`` (low-frequency 2-D DCT first, SimBA-DCT).
        step: step along a direction; ``None`` -> ``eps`` for Linf (directions scaled to unit Linf peak) and
            ``min(eps, 0.2)`` for L2 (unit-L2 directions, the paper's 0.2).
        freq: side of the low-frequency DCT block tried first (``None`` -> ceil(H / 4)).
        seed: direction order.
    """

    eps: float
    norm: str = "linf"
    iters: int = 1000
    basis: str = "pixel"
    step: float | None = None
    freq: int | None = None
    seed: int | None = 0
    kind: ClassVar[str] = "black-box"

    def __post_init__(self):
        check_attack_params(self.eps, self.norm, iters=self.iters)
        if self.basis not in ("pixel", "dct"):
            raise ValueError(f"basis={self.basis!r}; allowed: 'pixel', 'dct'")
        if self.step is not None and not self.step > 0:
            raise ValueError(f"step={self.step!r} must be > 0")

    def _order(self, c: int, h: int, w: int, gen, device) -> torch.Tensor:
        perm = torch.randperm(c * h * w, generator=gen, device="cpu").to(device)
        if self.basis == "pixel":
            return perm
        f = self.freq or math.ceil(h / 4)
        u = (perm % (h * w)) // w
        v = perm % w
        low = (u < f) & (v < f)
        return torch.cat([perm[low], perm[~low]])

    def _direction(self, k: int, shape, dct_h, dct_w) -> torch.Tensor:
        c, h, w = shape
        q = torch.zeros(shape, device=dct_h.device, dtype=dct_h.dtype)
        ch, u, v = k // (h * w), (k % (h * w)) // w, k % w
        if self.basis == "pixel":
            q[ch, u, v] = 1.0
        else:
            q[ch] = dct_h[u][:, None] * dct_w[v][None, :]
        return q / q.abs().max() if self.norm == "linf" else q

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_images(x)
        step = self.step or (self.eps if self.norm == "linf" else min(self.eps, 0.2))
        gen = torch.Generator().manual_seed(int(self.seed or 0))
        shape = x.shape[1:]
        order = self._order(*shape, gen, x.device).tolist()
        dct_h, dct_w = dct_matrix(shape[1], x.device, x.dtype), dct_matrix(shape[2], x.device, x.dtype)
        delta = torch.zeros_like(x)
        with torch.no_grad(), model_mode(model):
            p, pred = _true_prob(model, x, y)
            active = pred == y
            for k in order[: self.iters]:
                idx = active.nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                q = self._direction(k, shape, dct_h, dct_w) * step
                xi, di = x[idx], delta[idx]
                cand = torch.cat([di - q, di + q])
                project_(cand, xi.repeat(2, 1, 1, 1), self.eps, self.norm)
                pc, predc = _true_prob(model, xi.repeat(2, 1, 1, 1) + cand, y[idx].repeat(2))
                n = idx.numel()
                p_minus, p_plus = pc[:n], pc[n:]
                take_minus = p_minus < p[idx]
                take_plus = ~take_minus & (p_plus < p[idx])
                keep_plus = torch.where(take_plus.view(-1, 1, 1, 1), cand[n:], di)
                new_d = torch.where(take_minus.view(-1, 1, 1, 1), cand[:n], keep_plus)
                delta[idx] = new_d
                p[idx] = torch.where(take_minus, p_minus, torch.where(take_plus, p_plus, p[idx]))
                fooled = torch.where(take_minus, predc[:n] != y[idx], take_plus & (predc[n:] != y[idx]))
                active[idx[fooled]] = False
        return (x + delta).clamp_(0, 1)


@dataclass
class LocalSearch(AttackProtocol):
    """Greedy local search (Narodytska & Kasiviswanathan 2017, Alg. 3 LocSearchAdv), Linf-bounded and batched.

    Each round scores up to ``candidates`` pixel locations from the current candidate set P (initially a random
    ``init_frac`` of all locations) by the true-class probability after perturbing that location alone, applies the
    perturbation at the ``top`` best ones, and sets P to their (2 * ``radius`` + 1)^2 neighbourhoods; it stops per
    example at misclassification or after ``rounds``. Adaptation to a Linf budget: the paper's PERT (p * sign(I), then
    a cyclic r-scaling) is replaced by moving all channels of a location by ``eps`` towards the farther end of [0, 1],
    so ``|x_adv - x| <= eps``. Queries per example: ``rounds * (candidates + 1)`` at most.
    """

    eps: float
    rounds: int = 50
    top: int = 5
    radius: int = 2
    candidates: int = 64
    init_frac: float = 0.1
    seed: int | None = 0
    norm: str = "linf"
    kind: ClassVar[str] = "black-box"

    def __post_init__(self):
        check_attack_params(self.eps, "linf", rounds=self.rounds, top=self.top, candidates=self.candidates)
        if self.norm != "linf":
            raise ValueError(f"LocalSearch is Linf-bounded; norm={self.norm!r} not supported")
        if self.radius < 0 or not (0 < self.init_frac <= 1):
            raise ValueError(f"need radius >= 0 and 0 < init_frac <= 1; got radius={self.radius}, "
                             f"init_frac={self.init_frac}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_images(x)
        b, c, h, w = x.shape
        n_loc = h * w
        k, t = min(self.candidates, n_loc), min(self.top, self.candidates, n_loc)
        gen = make_generator(self.seed or 0, x.device)
        flat0 = x.reshape(b, c, n_loc)
        target = torch.where(flat0 < 0.5, flat0 + self.eps, flat0 - self.eps).clamp_(0, 1)  # (B, C, L)
        cur = flat0.clone()
        in_p = torch.rand(b, n_loc, generator=gen, device=x.device) < self.init_frac
        with torch.no_grad(), model_mode(model):
            active = model(x).argmax(1) == y
            for _ in range(self.rounds):
                idx = active.nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                m = idx.numel()
                # candidates: random locations of P first (random fill-up when P is small)
                score = torch.rand(m, n_loc, generator=gen, device=x.device) + 2.0 * in_p[idx]
                cand = score.topk(k, dim=1).indices  # (m, k)
                tv = target[idx].gather(2, cand[:, None, :].expand(m, c, k))  # (m, C, k)
                xc = cur[idx][:, None].expand(m, k, c, n_loc).clone()
                xc.scatter_(3, cand.view(m, k, 1, 1).expand(m, k, c, 1), tv.permute(0, 2, 1).unsqueeze(-1))
                p, _ = _true_prob(model, xc.view(m * k, c, h, w), y[idx].repeat_interleave(k))
                best = cand.gather(1, p.view(m, k).topk(t, dim=1, largest=False).indices)  # (m, t)
                sel = best[:, None, :].expand(m, c, t)
                cur[idx] = cur[idx].scatter(2, sel, target[idx].gather(2, sel))
                mask = torch.zeros(m, 1, n_loc, device=x.device)
                mask.scatter_(2, best[:, None, :], 1.0)
                mask = F.max_pool2d(mask.view(m, 1, h, w), 2 * self.radius + 1, 1, self.radius)
                in_p[idx] = mask.view(m, n_loc) > 0
                active[idx] = model(cur[idx].view(m, c, h, w)).argmax(1) == y[idx]
        return cur.view_as(x).clamp_(0, 1)
