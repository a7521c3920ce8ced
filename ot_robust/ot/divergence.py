"""Debiased Sinkhorn divergence (Feydy et al. 2019), as used by SAT (Bouniot et al. 2021)."""
from __future__ import annotations

from typing import Optional

from torch import Tensor

from .costs import cost_matrix
from .sinkhorn import sinkhorn


def sinkhorn_divergence(x: Tensor, y: Tensor, reg: float = 0.1, metric: str = "sqeuclidean",
                        a: Optional[Tensor] = None, b: Optional[Tensor] = None, max_iter: int = 100,
                        tol: float = 1e-6, grad: str = "unrolled") -> Tensor:
    r"""``S(x, y) = OT_reg(x, y) - (OT_reg(x, x) + OT_reg(y, y)) / 2`` with the entropic value
    ``OT_reg = min_T <T, C> + reg KL(T || a b^T)`` (the ``objective`` of :func:`sinkhorn`).

    The debiasing removes the entropic bias, so ``S(x, x) = 0`` and ``S >= 0`` (Feydy et al. 2019, Thm. 1) for
    ``metric="sqeuclidean"`` (``|x - y|^2``, no 1/2 factor unlike geomloss' p=2 default) or "euclidean".
    x (..., n, d), y (..., m, d); a (..., n), b (..., m) weights (None -> uniform). Returns (...,): a scalar
    tensor for 2-D inputs, differentiable in x and y (``grad`` as in :func:`sinkhorn`; with "envelope" the
    gradient is the exact gradient of each OT_reg term at convergence).
    Raises ValueError as :func:`cost_matrix` and :func:`sinkhorn`.
    """
    kw = dict(reg=reg, max_iter=max_iter, tol=tol, grad=grad)
    xy = sinkhorn(cost_matrix(x, y, metric), a, b, **kw).objective
    xx = sinkhorn(cost_matrix(x, x, metric), a, a, **kw).objective
    yy = sinkhorn(cost_matrix(y, y, metric), b, b, **kw).objective
    return xy - 0.5 * (xx + yy)
