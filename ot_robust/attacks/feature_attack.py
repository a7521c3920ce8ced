"""The feature-space attack of Line290/FeatureAttack, used against Feature Scattering (its README: FS's CIFAR-10 model
at 62.4% under CW-20 but 36.94% under FeatureAttack-100).

For each clean image ``x`` (label ``y``) and a *target* image ``t`` of another class, Linf PGD *descends* the cosine
distance between the penultimate features of the perturbed image and those of the target,

    x' <- P_{B_eps(x) ∩ [0, 1]^d}( x' - alpha * sign grad_{x'} [ 1 - cos(phi(x'), phi(t)) ] ),

from a uniform random start in the ball, for ``steps`` steps; the attack is *untargeted*: it succeeds on ``x`` as soon
as an iterate is misclassified (prediction != y, checked on every iterate, the final one included; early stop), never
because the feature distance became small. Up to ``n_targets`` target images are tried per image, each with a fresh
random start, and the image counts as robust only if none of them flips it. The reference settings (Feature
Scattering, CIFAR-10): eps 8/255, step 1/255, 100 steps, 100 target test images of other classes drawn at random.

Written from the reference (read, not copied). Differences: the reference runs one image at a time with its
targets as the batch; here the images are the batch and target round k gives every still-robust image its k-th
target (in eval mode an image's trajectory depends only on itself, its target and its random start, so each
(image, target) pair gets the same search). The reference's TF early-stop variant does not check the last iterate;
this one does.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..core.validation import check_eps, check_image_batch, check_int, check_labels, check_step
from .loop import model_mode, random_init
from .protocol import AttackProtocol
from .whitebox import make_generator


def cosine_distance(f: Tensor, g: Tensor, eps: float = 1e-8) -> Tensor:
    """Row-wise cosine distance ``1 - <f_i, g_i> / (|f_i| |g_i|)`` ``(N,)`` in [0, 2] for features ``(N, D)``
    (norms clamped at ``eps``: a zero vector is at distance 1 from everything)."""
    fn = f / f.norm(dim=1, keepdim=True).clamp_min(eps)
    gn = g / g.norm(dim=1, keepdim=True).clamp_min(eps)
    return 1.0 - (fn * gn).sum(1)


def _features(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(logits, features (N, D))`` from ``model(x, return_features=True)``; ValueError if the model lacks it."""
    try:
        out = model(x, return_features=True)
    except TypeError as e:
        raise ValueError("FeatureAttack needs a model called as model(x, return_features=True) -> (logits, "
                         f"features) (see ot_robust.models.base.Classifier); this one raised: {e}") from None
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise ValueError("FeatureAttack needs model(x, return_features=True) to return (logits, features), got "
                         f"{type(out).__name__}")
    return out[0], out[1].flatten(1)


def _fingerprint(pool) -> str:
    if pool is None:
        return "batch"
    h = hashlib.sha256()
    for t in pool:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return f"{len(pool[0])} images sha256:{h.hexdigest()[:12]}"


@dataclass
class FeatureAttack(AttackProtocol):
    """Feature attack (Line290/FeatureAttack): Linf PGD towards the penultimate features of target images of other
    classes, with early stop on the prediction.

    ``attack(model, x, y) -> x_adv`` with ``x`` ``(B, C, H, W)`` in [0, 1] and ``y`` ``(B,)``; ``model`` must accept
    ``return_features=True`` and return ``(logits (B, K), features (B, D))`` (every :mod:`ot_robust.models` model
    does). The model runs in eval mode (every submodule's mode restored); no parameter gradient is left behind.

    Args:
        eps: Linf budget on the [0, 1] pixel scale (0 <= eps <= 1).
        step_size: per-pixel step alpha (> 0); ``None`` -> ``eps / 8`` (the reference's 1/255 at eps 8/255).
        steps: PGD steps per target (>= 1; the reference: 100).
        n_targets: target images tried per image (>= 1; the reference: 100); fewer where fewer images of other
            classes are available.
        seed: the draw of the targets and the random starts (``None``: the global RNG's state decides; evaluation
            sets a per-batch seed).
        pool: ``(images (N, C, H, W) in [0, 1], labels (N,))`` to draw targets from (the reference: the test set);
            ``None`` draws them from the attacked batch itself (its images of other classes).
        random_start: uniform start in the ball for each target (the reference does); else start at ``x``.

    Returns (of a call):
        ``x_adv`` ``(B, C, H, W)``, ``||x_adv - x||_inf <= eps``, in [0, 1]: for a flipped image the first iterate
        whose prediction differs from ``y``; for an image misclassified at the start ``x``; for a robust image the
        last iterate of its last target (still classified ``y``).

    Per-example results of the last call (on ``x``'s device):
        ``last_fooled``: bool ``(B,)``, the prediction flipped (or was wrong at the start).
        ``last_targets``: int64 ``(B, n_targets)``, the targets drawn for each image in the order tried, as indices
            into ``pool`` (or into the batch), ``-1`` past the available ones.
        ``last_tried``: int64 ``(B,)``, the number of targets actually attacked (0 for an image wrong at the start).
    Robust accuracy = fraction still correctly classified = ``1 - last_fooled.float().mean()``.

    Raises:
        ValueError: eps outside [0, 1], step_size <= 0, steps or n_targets < 1, a bad pool (not images in [0, 1]
            with one integer label each); at call time bad images/labels or a model without ``return_features``.
    Warns:
        UserWarning: when a correctly classified image has no target of another class (then it counts as robust).
    """

    eps: float
    step_size: float | None = None
    steps: int = 100
    n_targets: int = 100
    seed: int | None = 0
    pool: tuple[Tensor, Tensor] | None = field(default=None, repr=False, compare=False)
    random_start: bool = True
    norm: ClassVar[str] = "linf"
    kind: ClassVar[str] = "white-box"

    def __post_init__(self):
        self.eps = check_eps(self.eps, "linf")
        self.steps = check_int("steps", self.steps, 1)
        self.n_targets = check_int("n_targets", self.n_targets, 1)
        if self.step_size is None:
            self.step_size = self.eps / 8
        self.step_size = check_step(self.eps, self.step_size, self.steps, "linf", self.random_start)
        if self.pool is not None:
            if not (isinstance(self.pool, (tuple, list)) and len(self.pool) == 2):
                raise ValueError("pool must be a pair (images (N, C, H, W) in [0, 1], labels (N,)), got "
                                 f"{type(self.pool).__name__}")
            px, py = self.pool
            check_image_batch(px, "pool images")
            check_labels(py, px.shape[0], name="pool labels")
            self.pool = (px.detach(), py.detach())
        self._pool_id = _fingerprint(self.pool)
        self.last_fooled = self.last_targets = self.last_tried = None

    def __repr__(self) -> str:  # the pool enters by fingerprint (evaluation caches key on the repr)
        return (f"FeatureAttack(eps={self.eps!r}, step_size={self.step_size!r}, steps={self.steps!r}, "
                f"n_targets={self.n_targets!r}, seed={self.seed!r}, pool={self._pool_id!r}, "
                f"random_start={self.random_start!r})")

    def draw_targets(self, y: Tensor, pool_y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``(B, n_targets)`` indices into ``pool_y``, per row distinct images of a class other than ``y[i]`` in
        random order, ``-1`` past the available ones (drawn on the CPU: the same targets on every device)."""
        yc, pc = y.detach().cpu(), pool_y.detach().cpu()
        scores = torch.rand(len(yc), len(pc), generator=generator)
        scores[pc[None, :] == yc[:, None]] = 2.0  # same class: never drawn
        k = min(self.n_targets, len(pc))
        vals, order = scores.topk(k, dim=1, largest=False)
        order[vals > 1.0] = -1
        if k < self.n_targets:
            order = torch.cat([order, order.new_full((len(yc), self.n_targets - k), -1)], 1)
        return order.to(y.device)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Adversarial examples for ``x`` ``(B, C, H, W)`` in [0, 1] with labels ``y`` ``(B,)`` (see the class doc)."""
        check_image_batch(x)
        b = x.shape[0]
        check_labels(y, b)
        x, y = x.detach(), y.to(x.device)
        px, py = self.pool if self.pool is not None else (x, y)
        if px.shape[1:] != x.shape[1:]:
            raise ValueError(f"pool images have shape {tuple(px.shape[1:])} per image, the batch "
                             f"{tuple(x.shape[1:])}")
        cpu_gen = None if self.seed is None else torch.Generator().manual_seed(int(self.seed))
        gen = make_generator(self.seed, x.device)
        x_adv = x.clone()
        tried = torch.zeros(b, dtype=torch.long, device=x.device)
        with model_mode(model):
            with torch.no_grad():
                logits, _ = _features(model, x)  # checks the model's return_features contract up front
                check_labels(y, b, logits.shape[-1])
                fooled = logits.argmax(1) != y
            targets = self.draw_targets(y, py, cpu_gen)
            n_avail = (targets >= 0).sum(1)
            if bool((~fooled & (n_avail == 0)).any()):
                warnings.warn(f"FeatureAttack: {int((~fooled & (n_avail == 0)).sum())} correctly classified "
                              "image(s) have no target image of another class (pass a pool, or a batch with "
                              "several classes); they count as robust", stacklevel=2)
            bounds = (-x, 1 - x)
            for k in range(self.n_targets):
                idx = (~fooled & (n_avail > k)).nonzero().squeeze(1)
                if not idx.numel():
                    break
                tried[idx] += 1
                with torch.no_grad():
                    _, t_feat = _features(model, px[targets[idx, k].to(px.device)].to(x.device))
                flipped, xa = self._pgd(model, x[idx], y[idx], t_feat, gen, (bounds[0][idx], bounds[1][idx]))
                fooled[idx] |= flipped
                x_adv[idx] = xa
        self.last_fooled, self.last_targets, self.last_tried = fooled, targets, tried
        return x_adv

    def _pgd(self, model, x, y, t_feat, gen, bounds) -> tuple[Tensor, Tensor]:
        """PGD descending the cosine feature distance to ``t_feat`` for a batch of images, each stopping at its first
        misclassified iterate. Returns (flipped (m,), x_adv (m, C, H, W))."""
        delta = random_init(x, self.eps, "linf", "uniform" if self.random_start else "none", generator=gen)
        flipped = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        out = x + delta
        cur = torch.arange(len(x), device=x.device)  # images still attacked
        lo, hi = bounds
        for t in range(self.steps + 1):
            xa = x[cur] + delta[cur]
            if t == self.steps:  # the final iterate: only its prediction is needed
                with torch.no_grad():
                    logits = model(xa)
                g = None
            else:
                xa.requires_grad_(True)
                with torch.enable_grad():
                    logits, feat = _features(model, xa)
                    loss = cosine_distance(feat, t_feat[cur]).sum()  # per-image terms: independent gradients
                    (g,) = torch.autograd.grad(loss, xa)
            hit = logits.detach().argmax(1) != y[cur]
            out[cur] = xa.detach()
            flipped[cur[hit]] = True
            if g is None:
                break
            keep = ~hit
            cur, g = cur[keep], g[keep]
            if not cur.numel():
                break
            d = delta[cur] - self.step_size * g.sign()
            d = torch.max(torch.min(d.clamp_(-self.eps, self.eps), hi[cur]), lo[cur])
            delta[cur] = d
        return flipped, out
