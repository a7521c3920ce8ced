"""Feature Scattering's inner maximisation (Zhang & Wang, NeurIPS 2019, Eq. 4-6, Alg. 1; supplement Alg. 1-2).

The feature matching distance between the clean batch {x_i} and the perturbed batch {x'_j} (uniform weights)::

    D(mu, nu) = min_{T in Pi(u, v)} sum_ij T_ij C_ij,    C_ij = 1 - <f_i, f'_j> / (||f_i|| ||f'_j||)     (Eq. 4-5)

with f = the logits ("the network up to the softmax layer", Sec. 3.1). Feature scattering maximises D over the
perturbed batch inside the eps-ball (Eq. 6) by T steps of ``x' <- P(x' + eps * sign grad_{x'} D)`` from a uniform
random start (Alg. 1); it is a batch-coupled, label-free loss plugged into the one attack loop
:func:`ot_robust.attacks.perturb`. Faithful to the official code (``Attack_FeaScatter``): clean logits from the
model in eval mode (no gradient), Sinkhorn with tau = 0.01 stopping when the summed change of the row potential is
below 0.1 (``FS_SINKHORN``), gradient through the unrolled iterations; IPOT as in the official ``IPOT``
(beta 0.5, 50 outer x 1 inner iterations, plan detached). Unlike the official code the model is NOT deep-copied per
batch: it is put in eval mode and its previous mode restored (same numbers, no copy).

Matching schemes (FS Table 3b): ``"ot"`` (the plan above), ``"uniform"`` (T_ij = 1/n^2: D = mean_ij C_ij) and
``"identity"`` (T = I/n: D = mean_i C_ii, each clean example matched to its own perturbation only).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from ..ot import FS_SINKHORN, cosine_cost, ipot, sinkhorn
from .loop import model_mode, perturb

MATCHINGS = ("ot", "uniform", "identity")
SOLVERS = ("sinkhorn", "ipot")
#: the official FS ``IPOT`` settings (``ot.py``): beta 0.5, 50 proximal steps of 1 Sinkhorn sweep, plan detached.
FS_IPOT = dict(beta=0.5, max_iter=50, inner_iter=1, grad="envelope")


def feature_matching_distance(f: Tensor, f_adv: Tensor, matching: str = "ot", solver: str = "sinkhorn",
                              reg: float = FS_SINKHORN["reg"], ipot_beta: float = FS_IPOT["beta"],
                              lse_offset: float = FS_SINKHORN["lse_offset"]) -> Tensor:
    """D(mu, nu) of FS Eq. (4) with the cosine cost of Eq. (5): a differentiable scalar (cost units, in [0, 2]).

    Args:
        f: clean features/logits ``(n, d)``. f_adv: perturbed features ``(m, d)`` (gradients flow through it).
        matching: ``"ot"`` | ``"uniform"`` | ``"identity"`` (FS Table 3b; identity needs n == m).
        solver: ``"sinkhorn"`` (``FS_SINKHORN`` with ``reg`` = tau) or ``"ipot"`` (``FS_IPOT`` with ``ipot_beta``).
        lse_offset: Sinkhorn's log-sum-exp offset (``FS_SINKHORN``: the official 1e-6; 0: exact Sinkhorn).
    Raises:
        ValueError: unknown matching/solver, identity with n != m, and the solvers' own errors.
    """
    if matching not in MATCHINGS:
        raise ValueError(f"matching={matching!r}; allowed: {MATCHINGS}")
    if solver not in SOLVERS:
        raise ValueError(f"solver={solver!r}; allowed: {SOLVERS}")
    C = cosine_cost(f, f_adv)
    if matching == "uniform":
        return C.mean()
    if matching == "identity":
        if C.shape[-1] != C.shape[-2]:
            raise ValueError(f"identity matching needs equal batch sizes, got {tuple(C.shape)}")
        return C.diagonal(dim1=-2, dim2=-1).mean(-1)
    if solver == "sinkhorn":
        return sinkhorn(C, **{**FS_SINKHORN, "reg": reg, "lse_offset": lse_offset}).cost
    return ipot(C, **{**FS_IPOT, "beta": ipot_beta}).cost


def feature_scatter(model: nn.Module, x: Tensor, eps: float = 8 / 255, step_size: Optional[float] = None,
                    steps: int = 1, matching: str = "ot", solver: str = "sinkhorn", reg: float = FS_SINKHORN["reg"],
                    ipot_beta: float = FS_IPOT["beta"], gather: Optional[Callable[[Tensor], Tensor]] = None,
                    generator: Optional[torch.Generator] = None,
                    callback: Optional[Callable[[int, int, Tensor], None]] = None, clip_start: bool = True,
                    lse_offset: float = FS_SINKHORN["lse_offset"]) -> Tensor:
    """Feature-scattering perturbation of a batch (FS Alg. 1, inner loop; Eq. 6).

    Args:
        model: images ``(B, C, H, W)`` in [0, 1] -> logits ``(B, K)``; used in eval mode, mode restored.
        x: clean batch in [0, 1]. eps: Linf budget ([0, 1] scale). step_size: default ``eps`` (Alg. 1).
        steps: T >= 1 (FS: 1). matching, solver, reg (tau), ipot_beta: see :func:`feature_matching_distance`.
        gather: optional map from this process's logits ``(b, K)`` to the globally coupled batch ``(B, K)``
            (DDP "global" coupling, see :func:`ot_robust.training.distributed.gather_with_grad`); ``None`` couples
            the local batch only (what the official DataParallel code effectively did).
        generator: RNG of the uniform start. callback: ``callback(0, t, D_t)`` with the distance before step t.
        clip_start: project the uniform start into [0, 1] before the first gradient (True); False takes it at the
            unclipped start as the official ``attack_methods.py`` (line 170) does.
        lse_offset: the Sinkhorn log-sum-exp offset (:func:`ot_robust.ot.sinkhorn`; official code: 1e-6).
    Returns:
        ``x_adv`` ``(B, C, H, W)``, detached, ``||x_adv - x||_inf <= eps``, in [0, 1].
    Raises:
        ValueError: bad eps/step/steps/matching/solver (from :func:`perturb` and the distance).
    """
    gather = gather or (lambda t: t)
    with torch.no_grad(), model_mode(model):
        f_clean = gather(model(x))

    def loss_fn(logits_adv: Tensor, _y) -> Tensor:
        return feature_matching_distance(f_clean, gather(logits_adv), matching, solver, reg, ipot_beta, lse_offset)

    return perturb(model, x, None, loss_fn, eps, eps if step_size is None else step_size, steps, init="uniform",
                   keep_best=False, generator=generator, callback=callback, clip_start=clip_start)
