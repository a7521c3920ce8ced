"""Ground costs between point clouds (FS Eq. 5: cosine on logits; GOT Sec. 3.2: joint latent + label cost).

Every function maps ``x`` (..., n, d) and ``y`` (..., m, d) to a cost matrix (..., n, m), batched over the
leading dimensions and differentiable in both arguments.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_choice, check_points

METRICS = ("cosine", "sqeuclidean", "euclidean", "kl", "l1")
_EPS = 1e-12


def cosine_cost(x: Tensor, y: Tensor, eps: float = 1e-8) -> Tensor:
    """Cosine distance ``C_ij = 1 - <x_i, y_j> / (|x_i| |y_j|)`` in [0, 2] (FS Eq. 5, official ``cost_matrix_cos``).

    Norms are clamped at ``eps`` (a zero vector has cost 1 to everything); the result is clamped to [0, 2]
    against round-off.
    """
    xn = x / x.norm(dim=-1, keepdim=True).clamp_min(eps)
    yn = y / y.norm(dim=-1, keepdim=True).clamp_min(eps)
    return (1.0 - xn @ yn.transpose(-1, -2)).clamp(0.0, 2.0)


def _kl(p: Tensor, q: Tensor) -> Tensor:
    """``C_ij = KL(p_i || q_j) = sum_k p_ik (log p_ik - log q_jk)`` for rows on the probability simplex."""
    logp = p.clamp_min(_EPS).log()
    logq = q.clamp_min(_EPS).log()
    return ((p * logp).sum(-1, keepdim=True) - p @ logq.transpose(-1, -2)).clamp_min(0.0)


def cost_matrix(x: Tensor, y: Tensor, metric: str = "sqeuclidean") -> Tensor:
    """Pairwise cost matrix (..., n, m) between ``x`` (..., n, d) and ``y`` (..., m, d).

    metric: "cosine" (see :func:`cosine_cost`), "sqeuclidean" ``|x_i - y_j|^2`` (no 1/2 factor),
    "euclidean" ``|x_i - y_j|``, "l1" ``sum_k |x_ik - y_jk|``, and for probability vectors (rows on the simplex,
    e.g. softmax outputs) "kl" ``KL(x_i || y_j)`` (entries clamped at 1e-12 inside the logs).
    Raises ValueError for an unknown metric or bad shapes.
    """
    check_choice("metric", metric, METRICS)
    check_points("x", x)
    check_points("y", y)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x and y must have the same feature dimension, got {x.shape[-1]} and {y.shape[-1]}")
    if metric == "cosine":
        return cosine_cost(x, y)
    if metric == "kl":
        return _kl(x, y)
    if metric == "l1":
        return torch.cdist(x, y, p=1.0)
    if metric == "euclidean":
        return torch.cdist(x, y, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")
    # squared Euclidean through the expansion (fast matmul); clamped against round-off
    sq = (x * x).sum(-1, keepdim=True) + (y * y).sum(-1).unsqueeze(-2) - 2.0 * x @ y.transpose(-1, -2)
    return sq.clamp_min(0.0)


def joint_cost(z: Tensor, z2: Tensor, p: Tensor, p2: Tensor, lam: float = 1.0,
               d_x: str = "cosine", d_y: str = "kl") -> Tensor:
    """GOT joint cost ``d(u_i, u_j^a) = lam * d_x(z_i, z2_j) + d_y(p_i, p2_j)`` (GOT Sec. 3.2, below Eq. 2).

    z (..., n, d), z2 (..., m, d): latent features (clean, adversarial); p (..., n, k), p2 (..., m, k): the
    classifier outputs h(z) as probability vectors (softmax) when ``d_y="kl"``. Returns (..., n, m).
    The paper uses lam = 1, d_x = cosine, d_y = KL (GOT App. A.3).
    """
    return lam * cost_matrix(z, z2, d_x) + cost_matrix(p, p2, d_y)
