"""Log-domain, batched, differentiable Sinkhorn (FS supplement Alg. 1; Cuturi 2013).

Problem (FS supplement Eq. 1, per batch element)::

    T* = argmin_{T 1 = a, T^T 1 = b, T >= 0}  <T, C> + reg * KL(T || a b^T)

(the FS form ``<T,C> - reg h(T)`` with ``h(T) = -sum T (log T - 1)`` differs only by a constant, so it has the
same minimiser and the same gradient in C). Alg. 1's scalings ``l, r`` are kept as potentials in log form,
``f = reg log l`` and ``g = reg log r`` (cost units), and updated with logsumexp, so ``reg`` down to 1e-3 on costs in
[0, 2] neither under- nor overflows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ._checks import check_choice, check_cost, check_int, check_positive, marginal

STOPS = ("marginal", "fs")
GRADS = ("unrolled", "envelope")

#: Feature Scattering's official configuration (FS Sec. 4 / supplement Table 3: tau = 0.01; official code:
#: ``sinkhorn(C, 0.01, 100)`` with ``thresh = 0.1`` on the summed change of the row potential, checked every iteration,
#: gradients through the unrolled loop, and 1e-6 added inside its log-sum-exp, ``ot.py`` lines 53-56). Use as
#: ``sinkhorn(cosine_cost(logits, logits_adv), **FS_SINKHORN)``; ``lse_offset=0`` gives the exactly balanced plan.
FS_SINKHORN = dict(reg=0.01, max_iter=100, stop="fs", tol=0.1, grad="unrolled", check_every=1, lse_offset=1e-6)


@dataclass
class OTResult:
    """Result of an OT solver.

    plan (..., n, m): transport plan T; cost (...,): transport cost <T, C>; n_iter: iterations run;
    err: L1 violation of the row marginal ``max_batch sum_i |(T 1)_i - a_i|`` of the returned plan (the column
    marginal is exact after the last Sinkhorn half-step); objective (...,): the value the solver minimises
    (entropic ``<T,C> + reg KL(T||ab^T)`` for Sinkhorn, ``<T,C>`` for IPOT / exact); f, g: dual potentials in cost
    units (Sinkhorn only, detached).
    """

    plan: Tensor
    cost: Tensor
    n_iter: int
    err: float
    objective: Optional[Tensor] = None
    f: Optional[Tensor] = None
    g: Optional[Tensor] = None


def _prepare(C, a, b):
    C = check_cost(C)
    batch = C.shape[:-2]
    n, m = C.shape[-2:]
    a = marginal(a, n, batch, C, "a")
    b = marginal(b, m, batch, C, "b")
    return C, a, b


def log_domain_setup(C, a, b, grad: str, scale: float):
    """Shared prologue of the log-domain solvers (Sinkhorn, IPOT): validated ``C, a, b``, their logs ``loga, logb``,
    ``track`` (autograd follows the iterations: ``grad="unrolled"`` and an input requires grad) and the log-kernel
    ``K = -C / scale``, detached (with the logs) when not tracked."""
    C, a, b = _prepare(C, a, b)
    loga, logb = _safe_log(a), _safe_log(b)
    track = grad == "unrolled" and torch.is_grad_enabled() and (C.requires_grad or a.requires_grad
                                                                 or b.requires_grad)
    with torch.set_grad_enabled(track):
        K = (C if track else C.detach()) / -scale
    if not track:
        loga, logb = loga.detach(), logb.detach()
    return C, a, b, loga, logb, track, K


def _safe_log(w: Tensor) -> Tensor:
    """log of a marginal; zero mass -> a very negative finite number (those rows/cols carry no mass)."""
    return torch.log(w.clamp_min(torch.finfo(w.dtype).tiny))


def row_error(plan: Tensor, a: Tensor) -> float:
    """Max over the batch of ``sum_i |(T 1)_i - a_i|`` (one host sync)."""
    return float((plan.sum(-1) - a).abs().sum(-1).max())


def _lse_floor(dtype: torch.dtype) -> float:
    """Lower clamp for ``x - max`` inside logsumexp: exp of it stays a normal float (no subnormals)."""
    return 0.9 * math.log(torch.finfo(dtype).tiny)   # about -78.6 (float32), -638 (float64)


class _LSE:
    """``logsumexp(K + w, dim)``. Terms below ``exp(_lse_floor)`` relative to the largest one are raised to that
    floor (relative error < n * 1e-34 in float32): with tiny reg most entries of exp(K - max) would otherwise be
    subnormal floats, which are 10-100x slower on CPUs. The no-grad path reuses one buffer and works in place."""

    def __init__(self, K: Tensor, inplace: bool):
        self.K = K
        self.floor = _lse_floor(K.dtype)
        self.buf = torch.empty_like(K) if inplace else None

    def __call__(self, w: Tensor, dim: int) -> Tensor:
        if self.buf is None:
            x = self.K + w
            mx = x.detach().amax(dim, keepdim=True)
            return (torch.exp((x - mx).clamp_min(self.floor)).sum(dim).log() + mx.squeeze(dim))
        x = torch.add(self.K, w, out=self.buf)
        mx = x.amax(dim, keepdim=True)
        return x.sub_(mx).clamp_min_(self.floor).exp_().sum(dim).log_().add_(mx.squeeze(dim))


def sinkhorn(C: Tensor, a: Optional[Tensor] = None, b: Optional[Tensor] = None, reg: float = 0.01,
             max_iter: int = 100, tol: float = 1e-9, stop: str = "marginal", grad: str = "unrolled",
             check_every: int = 10, lse_offset: float = 0.0) -> OTResult:
    r"""Entropic OT by log-domain Sinkhorn iterations, batched over the leading dims of ``C``.

    Parameters
    ----------
    C : (..., n, m) cost matrix (e.g. :func:`cosine_cost` of clean vs perturbed logits, values in [0, 2]).
    a, b : (..., n), (..., m) or broadcastable; non-negative, summing to 1. None -> uniform ``1/n``, ``1/m``.
    reg : entropic weight tau > 0 (FS uses 0.01; stable down to 1e-3 and below on costs in [0, 2]).
    max_iter : maximum number of iterations (one iteration = row update then column update, the order of
        the official FS code; Alg. 1 in the supplement writes the column update first).
    tol : stopping tolerance; ``tol <= 0`` runs exactly ``max_iter`` iterations with no host sync.
    stop : "marginal": stop when the row-marginal L1 error ``max_batch sum_i |(T 1)_i - a_i|`` < tol.
        "fs": the official Feature Scattering rule. The official ``sinkhorn(C, epsilon, niter)`` keeps the
        row potential in the *scaled* form ``u = epsilon * log(l)`` (cost units, ``l`` being the row scaling
        of Alg. 1), starts from ``u = 0`` and stops once ``err = sum_i |u_i^{(t)} - u_i^{(t-1)}| < thresh = 0.1``,
        i.e. the summed absolute change of the row potential over the current iteration's row update. Our ``f``
        is that same ``u``; with a batch we stop when every problem satisfies it (max over the batch).
    grad : "unrolled": autograd through every iteration (what the official FS code does; memory grows with the
        number of iterations; gradients in C, a and b). "envelope": iterations run without autograd; the plan
        is returned detached and ``cost = <T*, C>`` is differentiable in C only, with gradient ``T*``. That is
        the exact gradient of the entropic value ``objective`` (envelope/Danskin theorem, at convergence) and
        an approximation for ``<T, C>`` that ignores dT/dC (exact as reg -> 0); cheap in memory.
    check_every : check the stopping rule every k iterations (and at ``max_iter``); each check costs one
        device-to-host sync, which on a GPU stalls the queue, so k > 1 is faster at the price of up to k - 1
        extra iterations. ``FS_SINKHORN`` uses 1 to reproduce the official iteration count exactly.
    lse_offset : the official FS code's ``lse(A) = log(sum exp(A) + 1e-6)`` applied to its scaled potentials
        (``u <- eps (log mu - lse((u + v - C) / eps)) + u``): 0 (default) is exact Sinkhorn; 1e-6 (``FS_SINKHORN``)
        reproduces the official iterates, whose plan is slightly unbalanced where the costs are large (it changes the
        sign of some input-gradient pixels of an FS adversary). In our log variables the update reads
        ``u <- u + log a - logaddexp(u + lse_j(K_ij + v_j), log lse_offset)`` (columns alike).

    Returns
    -------
    :class:`OTResult` with ``plan`` (..., n, m), ``cost`` (...,), ``n_iter``, ``err``, ``objective`` (...,)
    and the potentials ``f`` (..., n), ``g`` (..., m) in cost units (``T = exp((f_i + g_j - C_ij)/reg)``).

    Raises
    ------
    ValueError : bad shapes, non-finite C, negative marginals or not summing to 1, reg <= 0, max_iter < 1,
        unknown ``stop`` / ``grad``, lse_offset < 0.
    """
    check_choice("stop", stop, STOPS)
    check_choice("grad", grad, GRADS)
    reg = check_positive("reg", reg)
    check_int("max_iter", max_iter)
    check_int("check_every", check_every)
    tol = float(tol)
    offset = check_positive("lse_offset", lse_offset, allow_zero=True)
    C, a, b, loga, logb, track, K = log_domain_setup(C, a, b, grad, reg)
    with torch.set_grad_enabled(track):
        lse = _LSE(K, inplace=not track)
        u = torch.zeros_like(loga)          # u = f / reg = log l  (Alg. 1 row scaling, log form)
        v = torch.zeros_like(logb)          # v = g / reg = log r
        n_iter = 0
        for n_iter in range(1, max_iter + 1):
            u_prev = u
            if offset:  # the official FS update (see lse_offset)
                log_off = math.log(offset)
                u = u + loga - torch.logaddexp(u + lse(v.unsqueeze(-2), -1), torch.full_like(u, log_off))
                v = v + logb - torch.logaddexp(v + lse(u.unsqueeze(-1), -2), torch.full_like(v, log_off))
            else:
                u = loga - lse(v.unsqueeze(-2), -1)
                v = logb - lse(u.unsqueeze(-1), -2)
            if tol > 0 and (n_iter % check_every == 0 or n_iter == max_iter):
                with torch.no_grad():
                    if stop == "fs":
                        crit = float((reg * (u - u_prev)).abs().sum(-1).max())
                    else:
                        crit = row_error(torch.exp(K + u.unsqueeze(-1) + v.unsqueeze(-2)), a)
                if crit < tol:
                    break
        log_plan = K + u.unsqueeze(-1) + v.unsqueeze(-2)
        plan = torch.exp(log_plan)
    if not track:
        plan = plan.detach()
    cost = (plan * C).sum((-2, -1))
    kl = (plan * (log_plan - loga.unsqueeze(-1) - logb.unsqueeze(-2))).sum((-2, -1))
    if not track:
        kl = kl.detach()
    with torch.no_grad():
        err = row_error(plan, a)
    return OTResult(plan=plan, cost=cost, n_iter=n_iter, err=err, objective=cost + reg * kl,
                    f=(reg * u).detach(), g=(reg * v).detach())
