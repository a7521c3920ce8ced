"""Entropic semi-dual with a learned Kantorovich potential (GOT Eq. 5-6; Genevay et al. 2016)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ._checks import check_cost, check_positive, marginal


class KantorovichPotential(nn.Module):
    """Kantorovich potential ``phi(z) = w^T z + c`` on the latent space: GOT uses "a linear real value layer with
    the inputs as the features extracted from the penultimate layer" (GOT App. A.3).

    forward: z (..., in_dim) -> phi (...,). Raises ValueError if ``in_dim`` < 1.
    """

    def __init__(self, in_dim: int, bias: bool = True):
        super().__init__()
        if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim < 1:
            raise ValueError(f"in_dim={in_dim!r} must be a positive integer")
        self.linear = nn.Linear(in_dim, 1, bias=bias)

    def forward(self, z: Tensor) -> Tensor:
        return self.linear(z).squeeze(-1)


def entropic_dual(phi: Tensor, C: Tensor, theta: float = 0.1, a: Optional[Tensor] = None,
                  b: Optional[Tensor] = None, labels: Optional[Tensor] = None,
                  labels_adv: Optional[Tensor] = None) -> Tensor:
    r"""Smoothed semi-dual of entropic OT between clean points i (weights a) and adversarial points j (weights b)::

        D(phi) = sum_i a_i phi_i  -  theta * sum_j b_j log( sum_i a_i M_ij exp((phi_i - C_ij) / theta) )

    GOT Eq. 5 (``M = 1``): ``E[phi(z)] - theta E_{u^a}[log E_u exp((-d(u, u^a) + phi(z))/theta)]``; GOT Eq. 6
    (label matching, ``labels`` and ``labels_adv`` given): ``M_ij = 1[y_i = y^a_j]`` restricts the inner expectation
    to clean points with the adversarial point's label. Adversarial points with no same-label clean point are
    dropped (the remaining b is renormalised). For every phi, ``D(phi) <= OT_theta = min_T <T, C> +
    theta KL(T || a b^T)`` (over plans supported on M), with equality at ``phi_i = f_i - theta log a_i`` where f is
    :func:`sinkhorn`'s row potential. GOT maximises D over phi (the potential's own optimiser) and minimises the
    resulting value over the model. GOT uses theta = 0.1.

    phi: (..., n) potential values on the clean points (e.g. ``KantorovichPotential(d)(z_clean)``);
    C: (..., n, m) costs ``d(u_i, u^a_j)`` (e.g. :func:`joint_cost`); labels (n,) / labels_adv (m,) int.
    Returns (...,) (scalar for one problem), differentiable in phi and C.
    Raises ValueError on shape mismatch, theta <= 0, only one of the label tensors given, or bad marginals.
    """
    theta = check_positive("theta", theta)
    C = check_cost(C)
    n, m = C.shape[-2:]
    if phi.shape[-1:] != (n,):
        raise ValueError(f"phi must have shape (..., n={n}), got {tuple(phi.shape)}")
    batch = torch.broadcast_shapes(phi.shape[:-1], C.shape[:-2])
    a = marginal(a, n, batch, C, "a")
    b = marginal(b, m, batch, C, "b")
    logits = (phi.unsqueeze(-1) - C) / theta + torch.log(a.clamp_min(torch.finfo(C.dtype).tiny)).unsqueeze(-1)
    if (labels is None) != (labels_adv is None):
        raise ValueError("label matching needs both labels (clean, shape (n,)) and labels_adv (shape (m,))")
    if labels is not None:
        if labels.shape[-1:] != (n,) or labels_adv.shape[-1:] != (m,):
            raise ValueError(f"labels must have shape (n={n},) and labels_adv (m={m},), got "
                             f"{tuple(labels.shape)} and {tuple(labels_adv.shape)}")
        mask = labels.unsqueeze(-1) == labels_adv.unsqueeze(-2)          # (n, m)
        valid = mask.any(-2)                                              # (m,)
        logits = logits.masked_fill(~mask, float("-inf")).masked_fill(~valid.unsqueeze(-2), 0.0)
        b = b * valid
        b = b / b.sum(-1, keepdim=True).clamp_min(torch.finfo(C.dtype).tiny)
    ctrans = -theta * torch.logsumexp(logits, dim=-2)                     # (..., m) smoothed c-transform
    return (a * phi).sum(-1) + (b * ctrans).sum(-1)
