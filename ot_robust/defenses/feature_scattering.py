"""Feature Scattering adversarial training (Zhang & Wang, NeurIPS 2019): Alg. 1, Eq. (6)-(7); supplement Sec. 2.3.

Algorithm 1, per random batch {x_i, y_i}, i = 1..n::

    x'_i ~ U(B(x_i, eps))                                                            (initialization)
    for t = 1..T:  x'_i <- P_{S_x}( x'_i + eps * sign grad_{x'_i} D(mu, nu) )         (feature scattering, Eq. 6)
    theta <- theta - gamma * 1/n sum_i grad_theta L(x'_i, y_i; theta)                 (adversarial training, Eq. 7)

``L`` is the soft cross-entropy with the label-smoothed target of supplement Eq. (3),
``q(c) = 1 - Delta`` for ``c = y`` and ``Delta / (C - 1)`` otherwise (the official ``label_smoothing``; it sums to
1; Eq. (3) as printed adds Delta/(C-1) to the true class too, which does not). The loss uses the perturbed images
only; the model is in train mode for it (BatchNorm sees the perturbed batch only), while the perturbation is
computed in eval mode (official code: an eval-mode deep copy; here the model itself, mode restored).

Ablations (FS Table 3, 4; supplement Tables 2-4; rebuttal): ``perturbation`` = "random" (uniform start only,
no gradient step), "supervised" (the same T steps on CE with the true labels) or "feature_scattering";
``matching`` = "ot" | "uniform" | "identity"; ``solver`` = "sinkhorn" | "ipot"; ``label_smoothing`` Delta;
``reg`` tau; ``ipot_beta``; batch size is the Trainer's.

Follows the official code (``Attack_FeaScatter`` in ``attack_methods.py``, ``ot.py``) in two details the paper does
not state, both recorded per run (``config.json``; runs made before these options existed resume with the older
values: clipped start, exact Sinkhorn): ``clip_start=False`` takes the first gradient at the unclipped uniform start
(``attack_methods.py`` line 170; the box is applied after the step), and ``lse_offset=1e-6`` is the official
Sinkhorn's log-sum-exp offset (``ot.py`` lines 53-56). docs/fs.md lists every remaining difference.

Under DDP, ``coupling`` chooses the OT batch: "local" (each process matches its own slice; what the official
``nn.DataParallel`` code effectively did, every GPU running the attack on its chunk) or "global" (the logits of all
processes are all-gathered, own slice with gradient, so D couples the whole global batch as single-process training).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import ce_loss, perturb
from ..attacks.feature_scattering import MATCHINGS, SOLVERS, feature_matching_distance, feature_scatter
from ..core.validation import check_eps
from ..core.validation import check_choice, check_int, check_number
from .base import Defense, DefenseOutput, register_defense


PERTURBATIONS = ("feature_scattering", "supervised", "random")
COUPLINGS = ("local", "global")


def smooth_labels(y: Tensor, num_classes: int, delta: float) -> Tensor:
    """Label-smoothed targets ``(B, C)``: ``1 - delta`` on the label, ``delta / (C - 1)`` elsewhere (rows sum to 1).

    FS supplement Eq. (3) / official ``utils.label_smoothing``. Raises ValueError for delta outside [0, 1) or C < 2.
    """
    delta = check_number("label_smoothing", delta, high=1.0)
    if num_classes < 2:
        raise ValueError(f"label smoothing needs num_classes >= 2, got {num_classes}")
    q = torch.full((y.shape[0], num_classes), delta / (num_classes - 1), device=y.device)
    return q.scatter_(1, y[:, None], 1.0 - delta)


def soft_cross_entropy(logits: Tensor, q: Tensor) -> Tensor:
    """``1/n sum_i -sum_c q_ic log softmax(logits_i)_c`` (official ``softCrossEntropy``), a scalar."""
    return -(q * F.log_softmax(logits, 1)).sum(1).mean()


@register_defense("feature_scattering")
class FeatureScattering(Defense):
    """FS adversarial training (Alg. 1) with the Table 3 ablation switches.

    Args:
        eps: Linf budget ([0, 1] scale; FS 8/255). step_size: default eps (Alg. 1). steps: T (FS 1).
        label_smoothing: Delta in [0, 1) (FS 0.5; 0 = hard labels). perturbation, matching, solver: see the module
        docstring. reg: Sinkhorn tau > 0 (FS 0.01). ipot_beta: IPOT proximal weight > 0 (official 0.5).
        coupling: "local" | "global" (DDP only; see the module docstring).
        clip_start: False (default, official) / True (the start projected into [0, 1] before the first gradient).
        lse_offset: Sinkhorn's log-sum-exp offset (official 1e-6, default; 0 = exact Sinkhorn).
    Raises:
        ValueError: eps < 0, step_size <= 0, T < 1, Delta outside [0, 1), tau/beta <= 0, unknown choices, and
        (:meth:`validate`) batch size < 2 for an OT-coupled perturbation.
    """

    batch_coupled = True
    recorded = {"clip_start": (False, True), "lse_offset": (1e-6, 0.0)}

    def __init__(self, eps: float = 8 / 255, step_size: float | None = None, steps: int = 1,
                 label_smoothing: float = 0.5, perturbation: str = "feature_scattering", matching: str = "ot",
                 solver: str = "sinkhorn", reg: float = 0.01, ipot_beta: float = 0.5, coupling: str = "local",
                 clip_start: bool = False, lse_offset: float = 1e-6):
        super().__init__()
        self.clip_start = bool(clip_start)
        self.lse_offset = check_number("lse_offset", lse_offset)
        self.eps = check_eps(check_number("eps", eps))
        self.step_size = self.eps if step_size is None else check_number("step_size", step_size, low_open=True)
        self.steps = check_int("steps (T)", steps)
        self.label_smoothing = check_number("label_smoothing", label_smoothing, high=1.0)
        self.perturbation = check_choice("perturbation", perturbation, PERTURBATIONS)
        self.matching = check_choice("matching", matching, MATCHINGS)
        self.solver = check_choice("solver", solver, SOLVERS)
        self.reg = check_number("reg (tau)", reg, low_open=True)
        self.ipot_beta = check_number("ipot_beta", ipot_beta, low_open=True)
        self.coupling = check_choice("coupling", coupling, COUPLINGS)
        self.batch_coupled = perturbation == "feature_scattering"

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, callback=None) -> Tensor:
        """The perturbed batch x' of Alg. 1 for the chosen scheme (FS Table 3a)."""
        if self.perturbation == "random":
            return perturb(model, x, y, ce_loss, self.eps, self.step_size, 0, init="uniform", keep_best=False,
                           clip_start=self.clip_start)
        if self.perturbation == "supervised":
            return perturb(model, x, y, ce_loss, self.eps, self.step_size, self.steps, init="uniform",
                           keep_best=False, clip_start=self.clip_start)
        gather = None
        if self.coupling == "global" and self.distributed is not None and self.distributed.world_size > 1:
            gather = self.distributed.gather_with_grad
        return feature_scatter(model, x, self.eps, self.step_size, self.steps, self.matching, self.solver, self.reg,
                               self.ipot_beta, gather=gather, callback=callback, clip_start=self.clip_start,
                               lse_offset=self.lse_offset)

    def distance(self, f: Tensor, f_adv: Tensor) -> Tensor:
        """The feature matching distance D (Eq. 4-5) with this defense's matching/solver settings."""
        return feature_matching_distance(f, f_adv, self.matching, self.solver, self.reg, self.ipot_beta,
                                         self.lse_offset)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> DefenseOutput:
        seen: list[float] = []
        x_adv = self.perturb(model, x, y, callback=lambda r, t, d: seen.append(float(d.mean())))
        logits_adv = model(x_adv)
        q = smooth_labels(y, logits_adv.shape[1], self.label_smoothing)
        loss = soft_cross_entropy(logits_adv, q)                                            # Eq. (7)
        logs = {"soft_ce_adv": float(loss.detach())}
        if seen and self.perturbation == "feature_scattering":
            logs["ot_distance_start"] = seen[0]
        return DefenseOutput(loss=loss, logs=logs, logits_adv=logits_adv.detach())
