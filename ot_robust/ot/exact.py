"""Exact OT through POT's network simplex (``ot.emd``): the reference for tests and the solver notebook."""
from __future__ import annotations

from typing import Optional

import numpy as np
import ot as pot
import torch
from torch import Tensor

from .sinkhorn import OTResult, _prepare, row_error


def emd(C: Tensor, a: Optional[Tensor] = None, b: Optional[Tensor] = None, num_itermax: int = 1_000_000) -> OTResult:
    r"""Exact OT ``min_{T in Pi(a, b)} <T, C>`` with POT's ``ot.emd`` (network simplex, float64 on the CPU).

    C (..., n, m); a, b marginals (None -> uniform). The batch is solved one problem at a time (POT has no
    batched exact solver; meant for small reference problems). The plan has no gradient; ``cost = <T*, C>`` is
    differentiable in C with the (envelope) gradient T*. Returns :class:`OTResult` with ``n_iter = 0``.
    Raises ValueError for bad shapes or marginals.
    """
    C, a, b = _prepare(C, a, b)
    batch = C.shape[:-2]
    n, m = C.shape[-2:]
    Cn = C.detach().cpu().double().reshape(-1, n, m).numpy()
    an = a.detach().cpu().double().reshape(-1, n).numpy()
    bn = b.detach().cpu().double().reshape(-1, m).numpy()
    plans = np.stack([pot.emd(an[k] / an[k].sum(), bn[k] / bn[k].sum(), Cn[k], numItermax=num_itermax)
                      for k in range(Cn.shape[0])])
    plan = torch.as_tensor(plans, dtype=C.dtype, device=C.device).reshape(*batch, n, m)
    cost = (plan * C).sum((-2, -1))
    return OTResult(plan=plan, cost=cost, n_iter=0, err=row_error(plan, a), objective=cost)
