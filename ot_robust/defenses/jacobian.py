"""Input-output Jacobian regularization: random projections (Hoffman et al. 2019) and optimal ones (OTJR Eq. 12).

For a network ``z = f(x)`` with ``C`` outputs, the squared Frobenius norm of the Jacobian ``J(x) = dz/dx`` is
(OTJR Eq. 3, Hoffman et al. 2019 Eq. 9)::

    ||J(x)||_F^2 = C * E_{v ~ U(S^{C-1})} ||v^T J(x)||^2

estimated by Monte Carlo with ``n_proj`` unit vectors (OTJR Eq. 4-5), each ``v^T J`` being one vector-Jacobian
product ``d(v . z)/dx`` computed by backprop with ``create_graph=True`` so that the penalty can itself be
differentiated w.r.t. the parameters (double backprop). Scaling follows Hoffman et al.'s reference code
(facebookresearch/jacobian_regularizer, ``JacobianReg``) and the OTJR authors' code (``losses/JAC.py``), i.e.
``C / (n_proj * B) * sum_{k,i} ||v_{k,i}^T J(x_i)||^2``: the batch mean of the per-example estimate. (Hoffman's
class additionally halves it; neither the OTJR code nor this module does, so OTJR's lambda_J values apply as printed.)

Optimal JR (OTJR Eq. 12) replaces the random ``v`` by the per-example optimal movement direction ``Delta_i`` of the
sliced-Wasserstein step (OTJR Eq. 10-11), treated as a constant; the same ``C / B`` scale is applied, exactly as in
the OTJR authors' code, which passes ``Delta`` through the same estimator.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def random_unit_vectors(n_proj: int, batch: int, dim: int, generator: Optional[torch.Generator] = None,
                        device=None, dtype=None) -> Tensor:
    """Independent uniform samples of the unit sphere S^{dim-1}: shape ``(n_proj, batch, dim)``.

    Drawn as normalized standard Gaussians (uniform on the sphere, so ``E[v v^T] = I / dim`` and the estimator of
    Eq. 3 is unbiased). For ``dim == 1`` every vector is ``+1``.

    Raises:
        ValueError: ``n_proj``, ``batch`` or ``dim`` below 1.
    """
    for name, value in (("n_proj", n_proj), ("batch", batch), ("dim", dim)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if dim == 1:
        return torch.ones(n_proj, batch, 1, device=device, dtype=dtype)
    g_device = generator.device if generator is not None else device
    v = torch.randn(n_proj, batch, dim, generator=generator, device=g_device, dtype=dtype)
    v = v.to(device) if device is not None else v
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def jacobian_frobenius(x: Tensor, z: Tensor, n_proj: int = 1, projections: Optional[Tensor] = None,
                       generator: Optional[torch.Generator] = None, create_graph: bool = True) -> Tensor:
    """Estimate of the batch-mean squared Frobenius norm ``mean_i ||J(x_i)||_F^2`` (OTJR Eq. 3-5 / Eq. 12).

    Args:
        x: inputs ``(B, ...)`` with ``requires_grad=True``, from which ``z`` was computed (per example: ``z_i``
            depends on ``x_i`` only, as in any network in eval mode or with per-example layers; BatchNorm in train
            mode couples examples weakly, as in the reference implementations).
        z: outputs ``(B, C)`` (logits).
        n_proj: number of random projections per example (ignored when ``projections`` is given).
        projections: optional fixed projections, ``(B, C)`` (one per example, e.g. OTJR's optimal directions
            ``Delta_i``, Eq. 12) or ``(P, B, C)``; they are detached (treated as constants). They should have unit
            norm for the Frobenius interpretation; they are used as given.
        generator: torch Generator for the random projections (reproducibility).
        create_graph: keep the graph so the result can be back-propagated to the parameters (training: True).

    Returns:
        scalar tensor ``C / (P * B) * sum_{k, i} ||v_{k,i}^T J(x_i)||^2`` where ``P`` is the number of projections.

    Raises:
        ValueError: ``z`` not 2-D, batch sizes differ, bad ``n_proj`` or ``projections`` shape, ``x`` without grad.
    """
    if z.dim() != 2:
        raise ValueError(f"z must have shape (B, C), got {tuple(z.shape)}")
    B, C = z.shape
    if x.shape[0] != B:
        raise ValueError(f"x has batch size {x.shape[0]} but z has {B}")
    if not x.requires_grad:
        raise ValueError("x must require grad (call x.requires_grad_() before computing z = model(x))")
    if projections is None:
        v = random_unit_vectors(n_proj, B, C, generator=generator, device=z.device, dtype=z.dtype)
    else:
        v = projections.detach().to(device=z.device, dtype=z.dtype)
        if v.dim() == 2:
            v = v.unsqueeze(0)
        if v.dim() != 3 or tuple(v.shape[1:]) != (B, C):
            raise ValueError(f"projections must have shape (B, C) = {(B, C)} or (P, B, C), got {tuple(projections.shape)}")
    total = z.new_zeros(())
    for k in range(v.shape[0]):  # loop over projections only (n_proj = 1 in training); each is one VJP
        (jv,) = torch.autograd.grad(z, x, grad_outputs=v[k], retain_graph=True, create_graph=create_graph)
        total = total + jv.pow(2).sum()
    return total * (C / (v.shape[0] * B))
