"""SAT, Sinkhorn adversarial training (Bouniot, Audigier & Loesch, ICPR 2020/2021), and SAT + random JR (OTJR Table 6).

    L = CE(f(x~), y) + lambda_ot * S_reg(nu, mu) [+ lambda_J * ||J(x)||_F^2 with random projections]

``S_reg`` is the debiased Sinkhorn divergence (Feydy et al. 2019) between the clean logits ``nu = {f(x_i)}`` and the
adversarial logits ``mu = {f(x~_i)}`` of the batch, with the squared Euclidean cost, computed by
:func:`ot_robust.ot.sinkhorn_divergence`; ``x~`` is the same PGD-10 (CE) adversary as OTJR's. It is the OTJR loss
(:class:`~ot_robust.defenses.otjr.OTJR`) with the sliced Wasserstein term replaced by the Sinkhorn divergence, so
SAT + JR is the "naive combination" OTJR Table 6 compares against.

Defaults follow the SAT re-implementation in the OTJR authors' code (``losses/SINK.py``, taken from CEA-LIST/adv-sat):
``reg = 1``, 50 Sinkhorn iterations, weight 1. That code debiases the transport costs ``<T, C>`` of the three
entropic plans; we use the entropic objectives (Feydy's divergence, the definition in Bouniot et al.), which is
non-negative and zero for identical clouds.
"""
from __future__ import annotations

from torch import Tensor

from ..ot import sinkhorn_divergence
from ..core.validation import check_int, check_number
from .base import register_defense
from .otjr import OTJR


class SAT(OTJR):
    """Sinkhorn adversarial training (optionally + random Jacobian regularization).

    Args:
        lambda_ot: weight of the Sinkhorn divergence (>= 0; SAT / OTJR code: 1).
        reg: entropic regularization of the divergence (> 0; in squared-logit units; 1 as in the reference code).
        max_iter: Sinkhorn iterations per OT problem (>= 1; 50).
        lambda_j: weight of the random-projection Jacobian penalty on the clean logits (>= 0; SAT: 0, SAT + JR: 0.002,
            OTJR's CIFAR-10 value, since the paper gives none for Table 6).
        n_proj, eps, step_size, steps, init, jr_gradient, clip_start: as for :class:`~ot_robust.defenses.otjr.OTJR`
            (the random start of the OTJR authors' ``losses/SINK.py``: unclipped, ``clip_start=False``).
    Raises:
        ValueError: negative weights, reg <= 0, max_iter < 1, bad attack parameters.
    """

    align_name = "sinkhorn"
    has_alignment_directions = False

    def __init__(self, lambda_ot: float = 1.0, reg: float = 1.0, max_iter: int = 50, lambda_j: float = 0.0,
                 n_proj: int = 1, eps: float = 8 / 255, step_size: float = 2 / 255, steps: int = 10,
                 init: str = "normal", jr_gradient: str = "double_backward", clip_start: bool = False):
        super().__init__(ce_on="adv", lambda_j=lambda_j, projection="random", lambda_sw=lambda_ot, n_proj=n_proj,
                         eps=eps, step_size=step_size, steps=steps, init=init, jr_gradient=jr_gradient,
                         clip_start=clip_start)
        self.reg = check_number("reg", reg, low_open=True)
        self.max_iter = check_int("max_iter", max_iter)

    def alignment(self, z_adv: Tensor, z: Tensor) -> tuple[Tensor, None]:
        """``(S_reg(clean, adversarial logits), None)``: debiased Sinkhorn divergence, squared Euclidean cost."""
        return sinkhorn_divergence(z, z_adv, reg=self.reg, metric="sqeuclidean", max_iter=self.max_iter), None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(lambda_ot={self.lambda_sw:g}, reg={self.reg:g}, max_iter={self.max_iter}, "
                f"lambda_j={self.lambda_j:g}, eps={self.eps:.4g}, step_size={self.step_size:.4g}, steps={self.steps})")


@register_defense("sat")
def sat(**params) -> SAT:
    """SAT (Bouniot et al.): CE(adv) + Sinkhorn divergence; ``lambda_j`` defaults to 0."""
    defense = SAT(**params)
    defense.name = "sat"
    return defense


sat.recorded = SAT.recorded


@register_defense("sat_jr")
def sat_jr(**params) -> SAT:
    """SAT + random JR (OTJR Table 6): :class:`SAT` with ``lambda_j`` defaulting to 0.002 (must be > 0)."""
    params.setdefault("lambda_j", 0.002)
    if check_number("lambda_j", params["lambda_j"]) == 0:
        raise ValueError("sat_jr needs lambda_j > 0 (lambda_j = 0 is plain 'sat')")
    defense = SAT(**params)
    defense.name = "sat_jr"
    return defense


sat_jr.recorded = SAT.recorded
