"""Threat models: one step object per eps-ball (MadryLab ``robustness.attack_steps`` style).

Each object owns the three pieces of projected gradient ascent (Madry et al. 2018) that depend on the ball:

* :meth:`ThreatStep.random_perturb`: the random start ``delta_0`` (uniform in the ball, ``init_std * N(0, 1)`` as
  TRADES, or zeros), optionally left unclipped by the image box as the official TRADES/MART/FS training codes do;
* :meth:`ThreatStep.step`: the ascent step ``delta += alpha * sign(g)`` (Linf) or ``alpha * g / ||g||_2`` (L2),
  after the optional MIM momentum ``buf = mu * buf + g / ||g||_1`` (Dong et al. 2018, Alg. 1);
* :meth:`ThreatStep.project`: onto the eps-ball around ``x`` intersected with the image box [0, 1].

Tensors are image batches ``(B, C, H, W)`` (any ``(B, ...)``) with pixels in [0, 1]; ``eps`` and ``step_size`` are
on that pixel scale (Linf: per pixel; L2: per example). ``eps = inf`` means no ball (the box only). All updates are
in place on ``delta`` (the perturbation, not the image).
"""

from __future__ import annotations

import math

import torch

NORMS = ("linf", "l2")
INITS = ("uniform", "normal", "none")


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm, shaped ``(B, 1, ..., 1)`` for broadcasting."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


class ThreatStep:
    """The eps-ball of one norm with its start, step and projection. ``momentum``: MIM decay ``mu`` or None."""

    norm = ""

    def __init__(self, eps: float, step_size: float = 0.0, momentum: float | None = None):
        self.eps, self.step_size, self.momentum = eps, step_size, momentum

    def ball_(self, delta: torch.Tensor) -> torch.Tensor:
        """In place: project ``delta`` onto the eps-ball only (no image box); a no-op for ``eps = inf``."""
        raise NotImplementedError

    def norms(self, delta: torch.Tensor) -> torch.Tensor:
        """The per-example size ``||delta||`` in this norm, shape ``(B,)``."""
        raise NotImplementedError

    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _uniform(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def project(self, delta: torch.Tensor, x: torch.Tensor,
                bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """In place: project ``delta`` onto the eps-ball, then so that ``x + delta`` lies in [0, 1].

        The box clamp only shrinks each coordinate towards 0, so the ball bound still holds afterwards.
        ``bounds = (-x, 1 - x)`` may be passed precomputed (hot loop).
        """
        self.ball_(delta)
        lo, hi = bounds if bounds is not None else (-x, 1 - x)  # x + delta in [0, 1]  <=>  -x <= delta <= 1 - x
        return torch.max(torch.min(delta, hi, out=delta), lo, out=delta)

    def random_perturb(self, x: torch.Tensor, init: str, init_std: float = 0.001,
                       generator: torch.Generator | None = None, clip: bool = True) -> torch.Tensor:
        """A starting ``delta`` shaped like ``x``, in the eps-ball and (``clip``) with ``x + delta`` in [0, 1].

        ``init``: ``"uniform"`` (Madry random start: see the subclass), ``"normal"`` (``init_std * N(0, 1)``, TRADES,
        Zhang et al. 2019) or ``"none"`` (zeros). ``clip=False`` leaves ``x + delta`` outside the box where the noise
        puts it (the official TRADES, MART and FS training codes take the first gradient there). Draws from
        ``generator`` (None: the global RNG); ``"none"`` draws nothing.
        """
        if init == "none":
            return torch.zeros_like(x)
        if init == "normal":
            delta = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype).mul_(init_std)
        elif init == "uniform":
            delta = self._uniform(x, generator)
        else:
            raise ValueError(f"init={init!r}; allowed: {INITS}")
        return self.project(delta, x) if clip else self.ball_(delta)

    def momentum_buffer(self, x: torch.Tensor) -> torch.Tensor | None:
        """A zero MIM buffer shaped like ``x``, or None without momentum."""
        return torch.zeros_like(x) if self.momentum is not None else None

    def accumulate(self, buf: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """In place MIM update ``buf = mu * buf + g / ||g||_1`` (per example); returns ``buf``, the step direction."""
        l1 = g.abs().flatten(1).sum(1).clamp_min(1e-12).view(-1, *([1] * (g.dim() - 1)))
        return buf.mul_(self.momentum).add_(g / l1)

    def step(self, delta: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """In place ascent step ``delta += step_size * direction(g)`` (unprojected); returns ``delta``."""
        return delta.add_(self._direction(g), alpha=self.step_size)


class LinfStep(ThreatStep):
    """``||delta||_inf <= eps``: sign steps, coordinate-wise clamp; uniform start U(-eps, eps) per pixel."""

    norm = "linf"

    def ball_(self, delta):
        return delta.clamp_(-self.eps, self.eps) if math.isfinite(self.eps) else delta

    def norms(self, delta):
        return delta.flatten(1).abs().amax(1)

    def _direction(self, g):
        return g.sign()

    def _uniform(self, x, generator):
        r = min(self.eps, 1.0)  # eps = inf: the size of the image box
        return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype).mul_(2 * r).sub_(r)


class L2Step(ThreatStep):
    """``||delta||_2 <= eps`` per example: normalised steps, radial rescaling; uniform start: a uniformly random
    direction scaled by ``eps * U(0, 1)``."""

    norm = "l2"

    def ball_(self, delta):
        if math.isfinite(self.eps):
            delta.mul_((self.eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0))
        return delta

    def norms(self, delta):
        return delta.flatten(1).norm(dim=1)

    def _direction(self, g):
        return g / _flat_norm(g).clamp_min(1e-12)

    def _uniform(self, x, generator):
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        r = min(self.eps, math.sqrt(x[0].numel()))  # eps = inf: the diameter scale of the image box
        u = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=generator, device=x.device, dtype=x.dtype)
        return noise.div_(_flat_norm(noise).clamp_min(1e-12)).mul_(u * r)


def make_step(norm: str, eps: float, step_size: float = 0.0, momentum: float | None = None) -> ThreatStep:
    """The step object of ``norm`` (``"linf"`` or ``"l2"``; ValueError otherwise)."""
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r}; allowed: {NORMS}")
    return (LinfStep if norm == "linf" else L2Step)(eps, step_size, momentum)


def project_(delta: torch.Tensor, x: torch.Tensor, eps: float, norm: str,
             bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """In place: project ``delta`` onto the eps-ball (``norm``) and so that ``x + delta`` lies in [0, 1]."""
    return make_step(norm, eps).project(delta, x, bounds)


def random_init(x: torch.Tensor, eps: float, norm: str, init: str, init_std: float = 0.001,
                generator: torch.Generator | None = None, clip: bool = True) -> torch.Tensor:
    """A starting perturbation: :meth:`ThreatStep.random_perturb` of the ``norm`` ball of radius ``eps``."""
    return make_step(norm, eps).random_perturb(x, init, init_std, generator, clip)


def step_(delta: torch.Tensor, g: torch.Tensor, step_size: float, norm: str) -> torch.Tensor:
    """In place ascent step: ``delta += step_size * sign(g)`` (Linf) or ``step_size * g / ||g||_2`` (L2)."""
    return make_step(norm, math.inf, step_size).step(delta, g)
