"""OTJR and its components: Random JR, Optimal JR, SW (Le, Tariq & Woo, OTJR paper, Algorithm 1, Eq. 13-14).

One parameterized loss covers the four defenses of OTJR Tables 2 and 7::

    L = CE(f(x_ce), y) + lambda_J * ||J(x | v)||_F^2 + lambda_SW * SW(mu, nu)                  (OTJR Eq. 13)

    mu = {f(x~_i)} (adversarial logits, PGD-10 on CE), nu = {f(x_i)} (clean logits), SW with K random slices
    (Eq. 9; psi = squared l2, averaged over slices and samples as in the authors' code), J the Jacobian of the clean
    logits w.r.t. the clean input, v either random unit vectors (Hoffman et al. 2019, Eq. 5) or the detached optimal
    movement directions Delta_i of the adversarial logits under the SW step (Eq. 10-12).

=============  =========  ==============  ===========  =================================================
name           CE on      lambda_J        projections  lambda_SW
=============  =========  ==============  ===========  =================================================
``random_jr``  clean x    0.02 (Table 7)  random       0 (no attack: Eq. 14, Hoffman et al.)
``optimal_jr`` clean x    0.02 (Table 7)  optimal      0 (the attack only supplies Delta_i: Eq. 14 + 12)
``sw``         x~ (adv)   0               --           64 (Table 2 "SW")
``otjr``       x~ (adv)   0.002           optimal      64, K = 32 (Algorithm 1; CIFAR-100: K=128, 0.001)
=============  =========  ==============  ===========  =================================================

Implementation notes (checked against the authors' code, github.com/Leminhbinh0209/OTJR, ``losses/TransportJac.py``):
the training attack is L_inf PGD on CE started at ``x + 0.001 N(0, 1)`` in eval mode (last iterate); its random start
follows that code (``__gen_adversarial_sample``, and ``losses/PGD.py`` for the SW / PGD baselines): the first
gradient is taken at the unclipped start and the box [0, 1] is applied after each step (``clip_start=False``, the
default); ``clip_start=True`` projects the start into [0, 1] first, as the study's OTJR-family runs made before the
option were trained (recorded in ``config.json``: they resume clipped). Clean and
adversarial batches go through the model in two forward passes (train mode); the SW term is two-sided (gradients
reach both logit clouds); the JR scale is ``C / B`` (see :mod:`.jacobian`). SAT (:mod:`.sat`) reuses this class with
the Sinkhorn divergence as the alignment term.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import perturb
from ..attacks.losses import ce_loss
from ..ot import sliced_wasserstein
from ..core.validation import check_choice, check_int, check_number
from .base import Defense, DefenseOutput, attack_params, register_defense
from .jacobian import jacobian_frobenius, jacobian_frobenius_fd
from .linearize import pattern_forward

CE_ON = ("adv", "clean")
PROJECTIONS = ("random", "optimal")
INITS = ("normal", "uniform")
JR_GRADIENTS = ("double_backward", "finite_difference")


class OTJR(Defense):
    """CE + lambda_J * Jacobian regularization + lambda_SW * sliced Wasserstein (OTJR Algorithm 1 / Eq. 13-14).

    Args:
        ce_on: ``"adv"`` (CE on PGD examples, Eq. 13) or ``"clean"`` (CE on clean inputs, Eq. 14: JR-only training).
        lambda_j: weight of the Jacobian penalty (>= 0; 0 disables it). OTJR: 0.002 (CIFAR-10), 0.001 (CIFAR-100);
            Table 7 JR-only models: 0.02.
        projection: ``"random"`` (uniform on S^{C-1}, Hoffman et al.) or ``"optimal"`` (SW directions Delta_i, Eq. 12).
        lambda_sw: weight of the alignment term (>= 0; OTJR: 64).
        n_slices: K, random slices of the SW distance (>= 1; OTJR: 32 for CIFAR-10, 128 for CIFAR-100).
        n_proj: random projections per example for ``projection="random"`` (>= 1; Hoffman/OTJR: 1).
        eps, step_size, steps: L_inf PGD training attack on the [0, 1] scale (OTJR: 8/255, 2/255, 10).
        init: PGD start, ``"normal"`` (``x + 0.001 N(0,1)``, the authors' code) or ``"uniform"`` (Madry).
        clip_start: False (default, the authors' code) takes the first gradient at the unclipped start; True
            projects it into [0, 1] first (recorded in ``config.json``; runs made before the option resume with
            True).
        jr_gradient: how the Jacobian penalty is differentiated w.r.t. the parameters: ``"double_backward"``
            (default; autograd through the VJP, as Hoffman et al. and the OTJR code) or ``"finite_difference"``
            (same penalty value; gradient from one forward on the network's frozen linear piece,
            :func:`~ot_robust.defenses.jacobian.jacobian_frobenius_fd`: exact for ReLU networks without BatchNorm,
            to O(1e-3) relative with it; faster for wide networks, see ``benchmarks/bench_otjr.py``).
    Raises:
        ValueError: an unknown ``ce_on``/``projection``/``init``/``jr_gradient``, a negative weight, K < 1,
            n_proj < 1, eps < 0, step_size <= 0, steps < 1, or a combination with nothing to train on
            (see :meth:`validate`).
    """

    #: name of the alignment term in the logs
    align_name = "sw"
    recorded = {"clip_start": (False, True)}

    def __init__(self, ce_on: str = "adv", lambda_j: float = 0.002, projection: str = "optimal",
                 lambda_sw: float = 64.0, n_slices: int = 32, n_proj: int = 1, eps: float = 8 / 255,
                 step_size: float = 2 / 255, steps: int = 10, init: str = "normal",
                 jr_gradient: str = "double_backward", clip_start: bool = False):
        super().__init__()
        self.clip_start = bool(clip_start)
        self.jr_gradient = check_choice("jr_gradient", jr_gradient, JR_GRADIENTS)
        self.ce_on = check_choice("ce_on", ce_on, CE_ON)
        self.projection = check_choice("projection", projection, PROJECTIONS)
        self.init = check_choice("init", init, INITS)
        self.lambda_j = check_number("lambda_j", lambda_j)
        self.lambda_sw = check_number("lambda_sw", lambda_sw)
        self.n_slices = check_int("n_slices (K)", n_slices)
        self.n_proj = check_int("n_proj", n_proj)
        self.eps, self.step_size, self.steps = attack_params(eps, step_size, steps)
        if self.uses_optimal_directions and not self.has_alignment_directions:
            raise ValueError(f"projection='optimal' needs an alignment with movement directions; "
                             f"{type(self).__name__} has none (use projection='random')")

    # --- which parts are active --------------------------------------------------------------------------------
    has_alignment_directions = True

    @property
    def uses_optimal_directions(self) -> bool:
        return self.lambda_j > 0 and self.projection == "optimal"

    @property
    def needs_attack(self) -> bool:
        return self.ce_on == "adv" or self.lambda_sw > 0 or self.uses_optimal_directions

    @property
    def uses_finite_difference(self) -> bool:  # the Jacobian penalty's gradient by jacobian_frobenius_fd
        return self.lambda_j > 0 and self.jr_gradient == "finite_difference"

    @property
    def needs_double_backprop(self) -> bool:  # the Jacobian penalty is differentiated w.r.t. the parameters
        return self.lambda_j > 0 and not self.uses_finite_difference

    @property
    def supports_amp(self) -> bool:  # a finite difference drowns in float16 rounding
        return not self.uses_finite_difference

    @property
    def batch_coupled(self) -> bool:  # the alignment term compares the batch's two logit clouds (base: batch >= 2)
        return self.lambda_sw > 0 or self.uses_optimal_directions

    # --- the two steps of Algorithm 1 ---------------------------------------------------------------------------
    def attack(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor | None:
        """PGD examples ``x~`` (Algorithm 1, inner loop; OTJR supp. Eq. 17) or ``None`` when no term needs them."""
        if not self.needs_attack:
            return None
        return perturb(model, x, y, ce_loss, self.eps, self.step_size, self.steps, norm="linf", init=self.init,
                       init_std=0.001, keep_best=False, clip_start=self.clip_start)

    def alignment(self, z_adv: Tensor, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(SW(mu, nu), Delta)``: mean squared 1-D displacement over K slices and B samples (the authors' scale of
        Eq. 9, = ``distance**2`` of :func:`ot_robust.ot.sliced_wasserstein`) and the unit directions (Eq. 11)."""
        res = sliced_wasserstein(z_adv, z, n_projections=self.n_slices)
        return res.total / (z.shape[0] * self.n_slices), res.directions

    def objective(self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None) -> DefenseOutput:
        """Eq. 13 (or Eq. 14) for a batch: the scalar loss to minimize and its terms (unweighted) in ``logs``:
        ``ce_adv`` or ``ce_clean``, ``sw`` (or ``sinkhorn``), ``jr`` (batch mean of the ||J||_F^2 estimate),
        ``loss``."""
        need_clean = self.ce_on == "clean" or self.lambda_j > 0 or self.lambda_sw > 0 or self.uses_optimal_directions
        xc = x.detach().requires_grad_(self.lambda_j > 0)
        fd = self.uses_finite_difference
        z, replay = pattern_forward(model, xc) if fd else (model(xc) if need_clean else None, None)
        z_adv = model(x_adv) if x_adv is not None else None
        ce = F.cross_entropy(z_adv if self.ce_on == "adv" else z, y)
        loss, logs = ce, {f"ce_{self.ce_on}": float(ce.detach())}
        directions = None
        if self.lambda_sw > 0:
            dist, directions = self.alignment(z_adv, z)
            loss = loss + self.lambda_sw * dist
            logs[self.align_name] = float(dist.detach())
        elif self.uses_optimal_directions:
            with torch.no_grad():
                _, directions = self.alignment(z_adv, z)
        if self.lambda_j > 0:
            proj = directions.detach() if self.uses_optimal_directions else None
            jr = jacobian_frobenius_fd(xc, z, replay, n_proj=self.n_proj, projections=proj) if fd else \
                jacobian_frobenius(xc, z, n_proj=self.n_proj, projections=proj)
            loss = loss + self.lambda_j * jr
            logs["jr"] = float(jr.detach())
        logs["loss"] = float(loss.detach())
        return DefenseOutput(loss=loss, logs=logs, logits_adv=(z_adv if z_adv is not None else z).detach())

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> DefenseOutput:
        """Algorithm 1 for one batch: PGD examples, then Eq. 13/14. ``x`` (B, C, H, W) in [0, 1], ``y`` (B,)."""
        return self.objective(model, x, y, self.attack(model, x, y))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(ce_on={self.ce_on!r}, lambda_j={self.lambda_j:g}, projection="
                f"{self.projection!r}, lambda_{self.align_name}={self.lambda_sw:g}, n_slices={self.n_slices}, "
                f"eps={self.eps:.4g}, step_size={self.step_size:.4g}, steps={self.steps}"
                + (f", jr_gradient={self.jr_gradient!r})" if self.jr_gradient != "double_backward" else ")"))


#: The four OTJR-paper configurations: name -> (fixed settings, defaults of the free parameters).
VARIANTS = {
    "random_jr": (dict(ce_on="clean", projection="random", lambda_sw=0.0), dict(lambda_j=0.02)),
    "optimal_jr": (dict(ce_on="clean", projection="optimal", lambda_sw=0.0), dict(lambda_j=0.02)),
    "sw": (dict(ce_on="adv", lambda_j=0.0), dict(lambda_sw=64.0)),
    "otjr": ({}, dict(ce_on="adv", projection="optimal", lambda_j=0.002, lambda_sw=64.0)),
}


def _variant(name: str):
    fixed, defaults = VARIANTS[name]

    def build(**params) -> OTJR:
        clash = sorted(k for k in fixed if k in params and params[k] != fixed[k])
        if clash:
            raise ValueError(f"{name!r} fixes {', '.join(f'{k}={fixed[k]!r}' for k in clash)}; "
                             "use the 'otjr' defense to set them freely")
        defense = OTJR(**{**defaults, **params, **fixed})
        defense.name = name
        return defense

    build.__name__ = build.__qualname__ = name
    if name != "random_jr":  # random_jr attacks nothing: no random start to record
        build.recorded = OTJR.recorded  # read by defenses.base.resolve_recorded
    build.__doc__ = (f"OTJR-family defense {name!r}: :class:`OTJR` with {fixed or 'nothing'} fixed and defaults "
                     f"{defaults} (see the module table).")
    return build


for _name in VARIANTS:
    register_defense(_name)(_variant(_name))
