"""Optimal transport solvers: pure, batched, differentiable tensor functions (see each module's docstring).

Costs (FS Eq. 5, GOT Sec. 3.2), log-domain Sinkhorn (FS supp. Alg. 1) with the FS preset, IPOT (FS supp. Alg. 2),
exact OT via POT, sliced Wasserstein with optimal movement directions (OTJR Eq. 7-11), the debiased Sinkhorn
divergence (SAT) and GOT's entropic semi-dual with a Kantorovich potential (GOT Eq. 5-6).
"""
from .costs import METRICS, cosine_cost, cost_matrix, joint_cost
from .divergence import sinkhorn_divergence
from .dual import KantorovichPotential, dual_potential, entropic_dual
from .exact import emd
from .ipot import ipot
from .sinkhorn import FS_SINKHORN, GRADS, STOPS, OTResult, sinkhorn
from .sliced import SlicedResult, random_projections, sliced_wasserstein

__all__ = [
    "METRICS", "cosine_cost", "cost_matrix", "joint_cost", "sinkhorn", "OTResult", "FS_SINKHORN", "STOPS", "GRADS",
    "ipot", "emd", "sliced_wasserstein", "SlicedResult", "random_projections", "sinkhorn_divergence",
    "KantorovichPotential", "entropic_dual", "dual_potential",
]
