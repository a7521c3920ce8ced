"""Input validation of the OT solvers: tensors and marginals here; scalar parameters through the project's one
vocabulary (:mod:`ot_robust.core.validation`)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..core.validation import check_choice as _check_choice
from ..core.validation import check_int as _check_int
from ..core.validation import check_number


def check_choice(name: str, value, allowed) -> None:
    """Raise ValueError unless ``value`` is one of ``allowed`` (:func:`ot_robust.core.validation.check_choice`)."""
    _check_choice(name, value, allowed)


def check_positive(name: str, value, allow_zero: bool = False) -> float:
    """Return ``float(value)``; ValueError unless it is a finite number > 0 (>= 0 if ``allow_zero``)."""
    return check_number(name, value, low=0.0, low_open=not allow_zero)


def check_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` as int; ValueError unless it is an integer >= ``minimum`` (a float such as 3.0 is refused:
    solver iteration counts are ints)."""
    if isinstance(value, float):
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return _check_int(name, value, minimum)


def check_cost(C) -> Tensor:
    """Validate a cost tensor of shape (..., n, m): floating point, n, m >= 1, finite."""
    if not isinstance(C, Tensor):
        raise ValueError(f"cost C must be a torch.Tensor, got {type(C).__name__}")
    if C.dim() < 2 or C.shape[-1] == 0 or C.shape[-2] == 0:
        raise ValueError(f"cost C must have shape (..., n, m) with n, m >= 1, got {tuple(C.shape)}")
    if not C.is_floating_point():
        raise ValueError(f"cost C must be a floating point tensor, got dtype {C.dtype}")
    if not bool(torch.isfinite(C).all()):
        raise ValueError("cost C contains NaN or inf values")
    return C


def check_points(name: str, x, dim: int | None = None) -> Tensor:
    """Validate a point cloud of shape (..., n, d) (exactly ``dim`` dims if given)."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating point torch.Tensor")
    if x.dim() < 2 or (dim is not None and x.dim() != dim):
        want = f"exactly {dim}" if dim is not None else "at least 2"
        raise ValueError(f"{name} must have {want} dimensions (..., n, d), got shape {tuple(x.shape)}")
    return x


def marginal(w, size: int, batch_shape, ref: Tensor, name: str, atol: float | None = None) -> Tensor:
    """Return the marginal ``w`` expanded to ``batch_shape + (size,)`` (uniform if None).

    Raises ValueError if its last dimension is not ``size``, it does not broadcast to the batch shape, it has
    negative entries, or it does not sum to 1 (tolerance ``atol``, default 1e-5 for float32 and 1e-8 for float64).
    """
    shape = tuple(batch_shape) + (size,)
    if w is None:
        return torch.full(shape, 1.0 / size, dtype=ref.dtype, device=ref.device)
    w = torch.as_tensor(w, dtype=ref.dtype, device=ref.device)
    if w.dim() == 0 or w.shape[-1] != size:
        raise ValueError(f"marginal {name} must have last dimension {size}, got shape {tuple(w.shape)}")
    try:
        w = w.expand(shape)
    except RuntimeError:
        raise ValueError(f"marginal {name} of shape {tuple(w.shape)} does not broadcast to {shape}") from None
    if bool((w < 0).any()):
        raise ValueError(f"marginal {name} has negative entries")
    tol = atol if atol is not None else (1e-8 if w.dtype == torch.float64 else 1e-5)
    total = w.detach().sum(-1)
    if bool(((total - 1).abs() > tol).any()):
        raise ValueError(f"marginal {name} must sum to 1 (tol {tol}); sums range "
                         f"[{float(total.min()):.6g}, {float(total.max()):.6g}]")
    return w
