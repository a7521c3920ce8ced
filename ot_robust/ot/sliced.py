"""Sliced Wasserstein distance and per-sample optimal movement directions (OTJR Eq. 7-11, Listing 1)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ._checks import check_int, check_points, check_positive


@dataclass
class SlicedResult:
    """distance: scalar ``SW_p`` in POT's convention ``(mean_k W_p^p(proj_k x, proj_k y))^(1/p)``;
    total: OTJR's Eq. 9 / Listing 1 value ``sum_k sum_i |disp_ki|^p`` (= n * K * distance^p);
    directions (n, d): unit-norm optimal movement directions Delta_i of the source points (Eq. 11);
    projections (d, K): the unit directions used; displacement (K, n): ``tau_1^{-1} tau_2 R y - R x`` (Eq. 10)."""

    distance: Tensor
    total: Tensor
    directions: Tensor
    projections: Tensor
    displacement: Tensor


def random_projections(d: int, n_projections: int, generator: Optional[torch.Generator] = None,
                       dtype=torch.float32, device=None) -> Tensor:
    """``n_projections`` directions uniform on the unit sphere S^{d-1}, as columns of a (d, K) matrix
    (normalised Gaussians, as OTJR Listing 1 and POT). Seedable through a ``torch.Generator``."""
    g = torch.randn(d, n_projections, generator=generator, dtype=dtype,
                    device=generator.device if generator is not None else device)
    return (g / g.norm(dim=0, keepdim=True)).to(device if device is not None else g.device)


def sliced_wasserstein(x: Tensor, y: Tensor, n_projections: int = 32, projections: Optional[Tensor] = None,
                       generator: Optional[torch.Generator] = None, p: float = 2) -> SlicedResult:
    r"""Sliced p-Wasserstein between the uniform empirical measures of ``x`` (source, e.g. adversarial logits)
    and ``y`` (target, e.g. clean logits), plus each source point's optimal movement direction.

    For each unit direction v_k (OTJR Eq. 8-9) both clouds are projected and sorted; the rank of source point i
    picks its matched target value (``tau_1^{-1} o tau_2``), giving the displacement
    ``disp_ki = (tau_1^{-1} tau_2 R_k y)_i - (R_k x)_i`` and the movement ``m_k = disp_k (x) v_k`` (Eq. 10).
    ``Delta_i = sum_k m_ki / |sum_k m_ki|`` (Eq. 11) is computed as one matrix product ``disp^T V^T``: there is no
    Python loop over the K projections. A point whose summed movement is exactly zero gets a zero direction.

    Parameters
    ----------
    x, y : (n, d) point clouds with the same n (uniform weights; sort matching needs equal sizes).
    n_projections : K, number of random directions (ignored if ``projections`` is given). OTJR: K = 32 (CIFAR-10).
    projections : optional (d, K) matrix of directions (POT's convention); columns are used as given (POT does
        not normalise either), so pass unit columns to get the sliced distance.
    generator : optional ``torch.Generator`` for reproducible random directions.
    p : exponent (>= 1) of the 1-D cost |.|^p; OTJR uses p = 2 (psi = squared l2).

    Returns :class:`SlicedResult`; ``distance`` equals ``ot.sliced_wasserstein_distance(x, y, projections=V, p=p)``
    and ``total = n * K * distance**p`` is the Listing 1 ``sw``. All outputs are differentiable in x and y
    (``directions`` too: detach them if they should act as constants).

    Raises ValueError if x, y are not 2-D, differ in n or d, K < 1, p < 1, or projections has the wrong shape.
    """
    check_points("x", x, dim=2)
    check_points("y", y, dim=2)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape (n, d), got {tuple(x.shape)} and {tuple(y.shape)}")
    p = check_positive("p", p)
    if p < 1:
        raise ValueError(f"p={p} must be >= 1")
    n, d = x.shape
    if projections is None:
        check_int("n_projections", n_projections)
        projections = random_projections(d, n_projections, generator, dtype=x.dtype, device=x.device)
    elif (not isinstance(projections, Tensor) or projections.dim() != 2 or projections.shape[0] != d
          or projections.shape[1] < 1):
        raise ValueError(f"projections must be a (d={d}, K) tensor, got "
                         f"{tuple(projections.shape) if isinstance(projections, Tensor) else type(projections)}")
    projections = projections.to(dtype=x.dtype, device=x.device)
    k = projections.shape[1]
    xp = (x @ projections).transpose(0, 1)                 # (K, n) R_k x
    yp = (y @ projections).transpose(0, 1)                 # (K, n) R_k y
    y_sorted = torch.sort(yp, dim=1).values                # tau_2 R_k y
    rank = torch.argsort(torch.argsort(xp, dim=1), dim=1)  # tau_1^{-1}: rank of each source value
    matched = torch.gather(y_sorted, 1, rank)              # tau_1^{-1} o tau_2 R_k y
    disp = matched - xp                                    # (K, n), Eq. 10 scalar part
    total = disp.abs().pow(p).sum()                        # Eq. 9 with psi = |.|^p (Listing 1: p = 2)
    distance = (total / (n * k)).pow(1.0 / p)
    move = disp.transpose(0, 1) @ projections.transpose(0, 1)   # (n, d) = sum_k disp_ki v_k  (Eq. 10-11)
    norm = move.norm(dim=1, keepdim=True)
    directions = move / norm.clamp_min(torch.finfo(x.dtype).tiny)
    return SlicedResult(distance=distance, total=total, directions=directions, projections=projections,
                        displacement=disp)
