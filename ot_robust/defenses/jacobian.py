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

:func:`jacobian_frobenius_fd` is an opt-in variant without double backprop (OTJR's
``jr_gradient="finite_difference"``): same value; parameter gradient from one more forward on the network's frozen
linear piece, exact for ReLU networks without BatchNorm.
"""
from __future__ import annotations

from typing import Callable, Optional

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


def _projection_vectors(z: Tensor, n_proj: int, projections: Optional[Tensor],
                        generator: Optional[torch.Generator]) -> Tensor:
    """The ``(P, B, C)`` projections: random unit vectors, or the given ones (detached, shape-checked)."""
    B, C = z.shape
    if projections is None:
        return random_unit_vectors(n_proj, B, C, generator=generator, device=z.device, dtype=z.dtype)
    v = projections.detach().to(device=z.device, dtype=z.dtype)
    if v.dim() == 2:
        v = v.unsqueeze(0)
    if v.dim() != 3 or tuple(v.shape[1:]) != (B, C):
        raise ValueError(f"projections must have shape (B, C) = {(B, C)} or (P, B, C), got {tuple(projections.shape)}")
    return v


def _check_io(x: Tensor, z: Tensor) -> None:
    if z.dim() != 2:
        raise ValueError(f"z must have shape (B, C), got {tuple(z.shape)}")
    if x.shape[0] != z.shape[0]:
        raise ValueError(f"x has batch size {x.shape[0]} but z has {z.shape[0]}")
    if not x.requires_grad:
        raise ValueError("x must require grad (call x.requires_grad_() before computing z = model(x))")


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
    _check_io(x, z)
    B, C = z.shape
    v = _projection_vectors(z, n_proj, projections, generator)
    total = z.new_zeros(())
    for k in range(v.shape[0]):  # loop over projections only (n_proj = 1 in training); each is one VJP
        (jv,) = torch.autograd.grad(z, x, grad_outputs=v[k], retain_graph=True, create_graph=create_graph)
        total = total + jv.pow(2).sum()
    return total * (C / (v.shape[0] * B))


def jacobian_frobenius_fd(x: Tensor, z: Tensor, replay: Callable[[Tensor], Tensor], n_proj: int = 1,
                          projections: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                          h: float = 1e-2) -> Tensor:
    """:func:`jacobian_frobenius` without double backprop: the same value, the parameter gradient by a difference.

    With ``g = J^T v`` (one first-order VJP, no graph kept) the parameter gradient of ``||g||^2`` is
    ``2 d/dtheta [v^T J g]`` (``g`` held fixed), and ``J g = (replay(x + t g) - z) / t`` where ``replay`` evaluates
    the network on the linear piece of ``x`` (:func:`.linearize.pattern_forward`: ReLU masks and max-pool indices
    frozen). For ReLU networks without BatchNorm this is the exact double-backprop gradient (up to rounding, for
    any ``t``); with BatchNorm in train mode (smooth) it is exact to O(t). A plain difference without the frozen
    pattern would be wrong: gradients jump at activation boundaries (``scripts/jr_finite_difference.py``). One step
    ``t`` for the whole batch (BatchNorm's coupling of examples is differentiated too), chosen so that the examples
    move ``h`` in l2 (root mean square of ``t ||g_i||``). The returned tensor's value is the exact estimate.

    Args:
        x, z, n_proj, projections, generator: as for :func:`jacobian_frobenius` (``x`` requires grad).
        replay: the second output of :func:`.linearize.pattern_forward` for the call that produced ``z``.
        h: difference step, l2 distance on the input scale (> 0; [0, 1] pixels for images).
    Returns:
        scalar tensor: value ``C / (P B) sum_{k,i} ||v_{k,i}^T J(x_i)||^2``, parameter gradient as described.
    Raises:
        ValueError: as :func:`jacobian_frobenius`, ``h <= 0``, or half-precision logits / autocast (the difference
            would drown in rounding).
    """
    if not h > 0:
        raise ValueError(f"h (finite-difference step) must be > 0, got {h!r}")
    _check_io(x, z)
    autocast = torch.is_autocast_enabled(z.device.type)
    if z.dtype in (torch.float16, torch.bfloat16) or autocast:
        raise ValueError(f"the finite difference needs float32 or float64 logits, got {z.dtype} "
                         f"(autocast {'on' if autocast else 'off'}); use jr_gradient='double_backward' with AMP")
    B, C = z.shape
    v = _projection_vectors(z, n_proj, projections, generator)
    total = z.new_zeros(())
    for k in range(v.shape[0]):
        (g,) = torch.autograd.grad(z, x, grad_outputs=v[k], retain_graph=True)
        rms = g.flatten(1).pow(2).sum(1).mean().sqrt()
        if float(rms) == 0.0:  # locally constant network: value 0, gradient 0
            continue
        t = h / rms
        surrogate = 2.0 * (v[k] * (replay(x.detach() + t * g) - z)).sum() / t  # d/dtheta: 2 d(v^T J g)/dtheta
        total = total + g.pow(2).sum() + (surrogate - surrogate.detach())
    return total * (C / (v.shape[0] * B))
